//! The walk: every path under the root that the filter keeps, with its `lstat`, never
//! following symlinks (so symlink loops are harmless).

use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Excluded, IngestError, IngestWarning};
use crate::filters::{ExcludeReason, Filter};
use crate::hash::Hash;
use crate::longpath::Short;
use crate::manifest::{Entry, EntryKind, RelPath};
use crate::statcache::FileStat;

/// A regular file to store (or to find in the stat cache).
pub(crate) struct FileItem {
    pub rel: RelPath,
    pub abs: PathBuf,
    pub stat: FileStat,
}

/// What the walk found.
#[derive(Default)]
pub(crate) struct Walked {
    /// Directories (the root first, with the empty path) and symlinks: complete entries.
    pub entries: Vec<(RelPath, Entry)>,
    pub files: Vec<FileItem>,
    pub excluded: Vec<Excluded>,
    pub warnings: Vec<IngestWarning>,
    pub dirs: u64,
    pub symlinks: u64,
    pub fifos: u64,
    /// Who owns each path and which inode it is, for `meta::attach`.
    pub ids: std::collections::HashMap<RelPath, DiskId>,
}

/// The inode behind a path, as the walk's `lstat` saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DiskId {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub ctime_ns: i64,
}

impl DiskId {
    pub fn of(m: &fs::Metadata) -> DiskId {
        DiskId {
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Permission denied (EACCES or EPERM).
pub(crate) fn is_denied(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
}

pub(crate) fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn special_kind(ft: &fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Walk `root` (canonical, a directory). `progress` gets the number of paths seen so far.
pub(crate) fn walk(
    root: &Path,
    filter: &Filter,
    store_root: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Walked, IngestError> {
    let mut out = Walked::default();
    let root_meta = fs::symlink_metadata(root).map_err(io_err(root))?;
    out.entries.push((RelPath::new(), dir_entry(&root_meta)));
    out.ids.insert(RelPath::new(), DiskId::of(&root_meta));
    out.dirs = 1;
    let mut seen = 0u64;
    let mut stack: Vec<(RelPath, PathBuf)> = vec![(RelPath::new(), root.to_path_buf())];
    while let Some((dir_rel, dir_abs)) = stack.pop() {
        // DirEntry::metadata is an lstat relative to the open directory (fstatat), which
        // spares resolving the whole path again for every file.
        let mut listed: Vec<(std::ffi::OsString, std::io::Result<fs::Metadata>)> = Vec::new();
        // A deep tree's paths may be longer than the kernel takes: reached through their
        // directory's descriptor then (see `Short`).
        let listing = match Short::of(&dir_abs).and_then(fs::read_dir) {
            Ok(l) => l,
            // A directory the user may not list is not part of the view; it passes through,
            // so it stays exactly as unreadable as it is on disk.
            Err(e) if is_denied(&e) && !dir_rel.is_empty() => {
                out.entries.retain(|(p, _)| *p != dir_rel);
                out.dirs -= 1;
                out.warnings
                    .push(IngestWarning::Unreadable { path: dir_abs });
                out.excluded.push(Excluded {
                    path: dir_rel,
                    is_dir: true,
                    reason: ExcludeReason::Unreadable,
                });
                continue;
            }
            Err(e) => return Err(io_err(&dir_abs)(e)),
        };
        for e in listing {
            let e = e.map_err(io_err(&dir_abs))?;
            listed.push((e.file_name(), e.metadata()));
        }
        // Sorted so that the walk, its errors and its warnings come in a stable order.
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, meta) in listed {
            seen += 1;
            if seen & 1023 == 0 {
                progress(seen);
            }
            let mut rel = dir_rel.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let abs = dir_abs.join(&name);
            let meta = match meta {
                Ok(m) => m,
                // Deleted since the directory was listed: it is simply not part of the tree.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&abs)(e)),
            };
            let ft = meta.file_type();
            // The store itself (a project that holds it, such as a home directory) is never
            // part of a tree: it passes through, as vrift's own files do.
            let exclusion = if ft.is_dir() && abs == store_root {
                Some(ExcludeReason::Internal)
            } else {
                filter.exclusion(&rel, ft.is_dir())
            };
            if let Some(reason) = exclusion {
                out.excluded.push(Excluded {
                    path: rel,
                    is_dir: ft.is_dir(),
                    reason,
                });
                continue;
            }
            out.ids.insert(rel.clone(), DiskId::of(&meta));
            if ft.is_file() {
                out.files.push(FileItem {
                    rel,
                    abs,
                    stat: FileStat::from_metadata(&meta),
                });
            } else if ft.is_dir() {
                out.entries.push((rel.clone(), dir_entry(&meta)));
                out.dirs += 1;
                subdirs.push((rel, abs));
            } else if ft.is_symlink() {
                let target = match Short::of(&abs).and_then(fs::read_link) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&abs)(e)),
                };
                let target = target.into_os_string().into_vec();
                out.entries.push((
                    rel,
                    Entry {
                        kind: EntryKind::Symlink,
                        hash: Hash([0; 32]),
                        size: target.len() as u64,
                        mode: meta.mode() & 0o7777,
                        mtime_ns: mtime_ns(&meta),
                        target,
                        meta: Default::default(),
                    },
                ));
                out.symlinks += 1;
            } else if ft.is_fifo() {
                out.entries
                    .push((rel, Entry::fifo(meta.mode() & 0o7777, mtime_ns(&meta))));
                out.fifos += 1;
            } else {
                out.warnings.push(IngestWarning::SpecialFileSkipped {
                    path: abs,
                    kind: special_kind(&ft),
                });
            }
        }
        // Reversed so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    progress(seen);
    Ok(out)
}

fn dir_entry(meta: &fs::Metadata) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        hash: Hash([0; 32]),
        size: 0,
        mode: meta.mode() & 0o7777,
        mtime_ns: mtime_ns(meta),
        target: Vec::new(),
        meta: Default::default(),
    }
}
