//! The walk: every path under the root that the filter keeps, with its `lstat`, never
//! following symlinks (so symlink loops are harmless).

use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

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
    pub ids: foldhash::HashMap<RelPath, DiskId>,
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

/// Walk `root` (canonical, a directory). `progress` gets the number of paths seen so far
/// (called on the calling thread).
///
/// Directories are listed by a few threads taking them from one shared stack: a walk is
/// mostly `lstat` calls, which the kernel serves in parallel, and the refresh before every
/// run in a project is this walk. The result does not depend on how the work was shared:
/// entries, files and warnings are put in path order at the end.
pub(crate) fn walk(
    root: &Path,
    filter: &Filter,
    store_root: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Walked, IngestError> {
    let root_meta = fs::symlink_metadata(root).map_err(io_err(root))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let shared = Shared {
        work: Mutex::new(Work {
            stack: vec![(RelPath::new(), root.to_path_buf())],
            busy: 0,
            failed: None,
        }),
        wake: Condvar::new(),
        seen: AtomicU64::new(0),
    };
    let lister = Lister { filter, store_root };
    let mut parts: Vec<Part> = std::thread::scope(|scope| {
        // A thread that cannot be made (a sandbox that refuses clone3, a process limit)
        // leaves the work to the others: the calling thread alone can walk the whole tree.
        let helpers: Vec<_> = (1..threads)
            .map_while(|_| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, || shared.run(&lister, &mut |_| {}))
                    .ok()
            })
            .collect();
        let mut mine = vec![shared.run(&lister, &mut |seen| progress(seen))];
        // A helper that panicked has lost its part: the walk cannot be trusted then.
        mine.extend(helpers.into_iter().map(|h| h.join().expect("walk thread")));
        mine
    });
    if let Some(e) = shared
        .work
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .failed
    {
        return Err(e);
    }
    progress(shared.seen.load(Ordering::Relaxed));

    let mut out = Walked::default();
    out.entries.push((RelPath::new(), dir_entry(&root_meta)));
    out.ids.insert(RelPath::new(), DiskId::of(&root_meta));
    out.dirs = 1;
    let mut unlisted: Vec<RelPath> = Vec::new();
    for part in &mut parts {
        let w = &mut part.walked;
        out.entries.append(&mut w.entries);
        out.files.append(&mut w.files);
        out.excluded.append(&mut w.excluded);
        out.warnings.append(&mut w.warnings);
        out.dirs += w.dirs;
        out.symlinks += w.symlinks;
        out.fifos += w.fifos;
        out.ids.extend(w.ids.drain());
        unlisted.append(&mut part.unlisted);
    }
    // A directory the user may not list was entered by the thread that listed its parent
    // and found unreadable by the one that tried to list it.
    if !unlisted.is_empty() {
        let unlisted: std::collections::BTreeSet<RelPath> = unlisted.into_iter().collect();
        let before = out.entries.len();
        out.entries.retain(|(p, _)| !unlisted.contains(p));
        out.dirs -= (before - out.entries.len()) as u64;
    }
    out.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.files.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    out.warnings.sort_by(|a, b| a.path().cmp(&b.path()));
    Ok(out)
}

/// What one thread of the walk found.
#[derive(Default)]
struct Part {
    walked: Walked,
    /// Directories that turned out unreadable (their entries, made by their parent's
    /// listing, are taken out).
    unlisted: Vec<RelPath>,
}

/// The directories still to list, shared by the walk's threads.
struct Work {
    stack: Vec<(RelPath, PathBuf)>,
    /// Threads listing a directory now (which may add more).
    busy: usize,
    /// The first error: every thread stops.
    failed: Option<IngestError>,
}

struct Shared {
    work: Mutex<Work>,
    wake: Condvar,
    seen: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Work> {
        // A thread that panicked while holding it left nothing half-done in `Work`.
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take directories and list them until none is left and no thread is listing one.
    fn run(&self, lister: &Lister<'_>, progress: &mut dyn FnMut(u64)) -> Part {
        let mut part = Part::default();
        let mut work = self.lock();
        loop {
            if work.failed.is_some() {
                break;
            }
            let Some((rel, abs)) = work.stack.pop() else {
                if work.busy == 0 {
                    break;
                }
                work = self.wake.wait(work).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            work.busy += 1;
            drop(work);
            let mut subdirs = Vec::new();
            let listed = lister.list(&mut part, rel, abs, &mut subdirs);
            let n = listed.as_ref().map_or(0, |&n| n);
            let seen = self.seen.fetch_add(n, Ordering::Relaxed) + n;
            if seen >> 10 != (seen - n) >> 10 {
                progress(seen);
            }
            work = self.lock();
            work.busy -= 1;
            match listed {
                Ok(_) => work.stack.extend(subdirs.into_iter().rev()),
                Err(e) => {
                    work.failed.get_or_insert(e);
                }
            }
            self.wake.notify_all();
        }
        drop(work);
        self.wake.notify_all();
        part
    }
}

/// Lists one directory into a thread's [`Part`].
struct Lister<'a> {
    filter: &'a Filter,
    store_root: &'a Path,
}

impl Lister<'_> {
    /// List `dir_abs` (`dir_rel` in the tree): its kept entries go into `part`, its kept
    /// subdirectories into `subdirs`. Returns the number of names seen.
    fn list(
        &self,
        part: &mut Part,
        dir_rel: RelPath,
        dir_abs: PathBuf,
        subdirs: &mut Vec<(RelPath, PathBuf)>,
    ) -> Result<u64, IngestError> {
        let out = &mut part.walked;
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
                out.warnings
                    .push(IngestWarning::Unreadable { path: dir_abs });
                out.excluded.push(Excluded {
                    path: dir_rel.clone(),
                    is_dir: true,
                    reason: ExcludeReason::Unreadable,
                });
                part.unlisted.push(dir_rel);
                return Ok(0);
            }
            Err(e) => return Err(io_err(&dir_abs)(e)),
        };
        for e in listing {
            let e = e.map_err(io_err(&dir_abs))?;
            listed.push((e.file_name(), e.metadata()));
        }
        // Sorted so that the walk, its errors and its warnings come in a stable order.
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let seen = listed.len() as u64;
        for (name, meta) in listed {
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
            let exclusion = if ft.is_dir() && abs == self.store_root {
                Some(ExcludeReason::Internal)
            } else {
                self.filter.exclusion(&rel, ft.is_dir())
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
        Ok(seen)
    }
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
