//! Writing a run's changes back to the real project tree.
//!
//! The run worked on a copy-on-write view; when it ends, what it changed (the difference
//! between the manifest it started from and the one it ended with) is applied to the real
//! directory, so a user finds the program's output where the program put it. A path that
//! changed on disk while the run went on is left alone and reported: nothing is overwritten
//! that the run did not see.
//!
//! A file is replaced whole (a new file beside it, renamed over it), except a file the run
//! only appended to: its new bytes are written at its end, in place, so a log or a data file
//! that grows costs what was added, and the file keeps its inode (owner, extended
//! attributes, hard links). A file that is one of several names of an inode, and still is
//! in the run's result (a hard-link group), is rewritten in place too, so its other names
//! see the new content as they would natively. A replaced file keeps the owner and group of
//! the file it replaces unless the manifest records others (`keep`); names of a link group
//! made in the run become hard links on disk.

mod keep;

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use anyhow::{Context, Result};
use vrift_common::hash::Hash;
use vrift_common::longpath::Short;
use vrift_common::manifest::{Entry, EntryKind, Manifest, RelPath};
use vrift_common::statcache::FileStat;
use vrift_common::store::Store;

use crate::progress::Progress;

#[derive(Debug, Default)]
pub struct Report {
    pub written: usize,
    pub removed: usize,
    /// Paths left as they are because they changed on disk during the run.
    pub conflicts: Vec<RelPath>,
    /// The files written, with their stat once written and their content's hash: the
    /// refresh of the project's manifest that follows need not read them again.
    pub files: HashMap<RelPath, (FileStat, Hash)>,
}

/// The real path of `rel`, as the run's messages name it. It may be longer than the kernel
/// takes (a deep tree in a project with a long path): every call on it goes through
/// [`at`].
fn real(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// `p` as the kernel takes it, through its directory's descriptor when it is too long.
fn at(p: &Path) -> Result<Short> {
    Short::of(p).with_context(|| format!("{}", p.display()))
}

/// Was `at`'s failure that `p`'s directory is not there (so neither is `p`)?
fn absent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| {
        e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
    })
}

/// A path write-back cannot even look at (a directory it may not search) is a failure,
/// not a change on disk: the result is then kept. `p` names it, `at` reaches it.
fn check_reachable(p: &Path, at: &Path) -> Result<()> {
    match std::fs::symlink_metadata(at) {
        Ok(_) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("{}", p.display())),
    }
}

/// Does the real path still look the way the run's starting manifest saw it?
fn unchanged_on_disk(p: &Path, before: Option<&Entry>) -> bool {
    let meta = std::fs::symlink_metadata(p);
    match (before, meta) {
        (None, Err(e)) => e.kind() == io::ErrorKind::NotFound,
        (None, Ok(_)) => false,
        (Some(_), Err(_)) => false,
        (Some(e), Ok(m)) => match e.kind {
            EntryKind::Dir => m.is_dir(),
            EntryKind::Symlink => m.file_type().is_symlink(),
            EntryKind::Fifo => {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_fifo()
            }
            EntryKind::File => {
                m.is_file()
                    && m.size() == e.size
                    && m.mtime() * 1_000_000_000 + m.mtime_nsec() == e.mtime_ns
            }
        },
    }
}

/// Is the real path already what the run made of it?
fn already_there(p: &Path, e: &Entry) -> bool {
    match e.kind {
        EntryKind::Symlink => {
            std::fs::read_link(p).is_ok_and(|t| t.as_os_str().as_bytes() == e.target.as_slice())
        }
        EntryKind::File => {
            unchanged_on_disk(p, Some(e))
                && std::fs::symlink_metadata(p)
                    .is_ok_and(|m| m.permissions().mode() & 0o7777 == e.mode & 0o7777)
        }
        EntryKind::Dir => unchanged_on_disk(p, Some(e)),
        EntryKind::Fifo => {
            unchanged_on_disk(p, Some(e))
                && std::fs::symlink_metadata(p)
                    .is_ok_and(|m| m.permissions().mode() & 0o7777 == e.mode & 0o7777)
        }
    }
}

fn set_mtime(p: &Path, mtime_ns: i64) -> io::Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(mtime_ns.max(0) as u64);
    std::fs::File::options()
        .write(true)
        .open(p)?
        .set_modified(t)
}

/// Whether `new` is `old` with bytes appended (its first `old.size` bytes are `old`'s).
fn is_append(store: &Store, old: &Entry, new: &Entry) -> bool {
    old.kind == EntryKind::File
        && new.kind == EntryKind::File
        && old.size > 0
        && old.size < new.size
        && store
            .blob_starts_with(&new.hash, old.size, &old.hash)
            .unwrap_or(false)
}

/// Append what `new` has past `old.size` to the file at `p` (which holds `old`, as checked
/// before), then give it `new`'s mode and mtime.
fn append_in_place(store: &Store, p: &Path, old: &Entry, new: &Entry) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut blob = std::fs::File::open(store.blob_path(&new.hash))?;
    blob.seek(SeekFrom::Start(old.size))?;
    let open = || std::fs::OpenOptions::new().write(true).open(p);
    let mut file = match open() {
        // The file's mode on disk shuts its owner out of writing (0444), but the run's
        // result says what it becomes (the program made it writable, or wrote as the
        // owner may): let the owner write for the append; the new mode is set below.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = std::fs::symlink_metadata(p)?.permissions().mode() & 0o7777;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o200))?;
            open().inspect_err(|_| {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
            })?
        }
        r => r?,
    };
    file.seek(SeekFrom::Start(old.size))?;
    let copied = io::copy(&mut blob, &mut file)?;
    if old.size + copied != new.size {
        return Err(io::Error::other(format!(
            "the store's copy is {} bytes, not {}",
            old.size + copied,
            new.size
        )));
    }
    if file.metadata()?.permissions().mode() & 0o7777 != new.mode & 0o7777 {
        file.set_permissions(std::fs::Permissions::from_mode(new.mode & 0o7777))?;
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(new.mtime_ns.max(0) as u64);
    file.set_modified(t)
}

/// Put one file's content from the store at `p`: a new file beside it, renamed over it.
fn write_file(store: &Store, p: &Path, e: &Entry) -> io::Result<()> {
    let dir = p.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".vrift-writeback-{}-{}",
        std::process::id(),
        e.hash.to_hex().get(..12).unwrap_or_default()
    ));
    let replaced = std::fs::symlink_metadata(p).ok().filter(|m| m.is_file());
    std::fs::copy(store.blob_path(&e.hash), &tmp)?;
    let r = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        keep::apply(&tmp, e, replaced.as_ref())?;
        set_mtime(&tmp, e.mtime_ns)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(p)?;
        }
        std::fs::rename(&tmp, p)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Rewrite the file at `p` in place with `e`'s content (truncate, copy), keeping its inode:
/// for a file with other names, which must see the new content too.
fn rewrite_in_place(store: &Store, p: &Path, e: &Entry) -> io::Result<()> {
    let mut blob = std::fs::File::open(store.blob_path(&e.hash))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p)?;
    io::copy(&mut blob, &mut file)?;
    drop(file);
    finish_in_place(p, e)
}

/// Owner, xattrs, mode and mtime of a file written in place.
fn finish_in_place(p: &Path, e: &Entry) -> io::Result<()> {
    let before = std::fs::symlink_metadata(p)?;
    keep::apply(p, e, Some(&before))?;
    if std::fs::symlink_metadata(p)?.permissions().mode() & 0o7777 != e.mode & 0o7777 {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
    }
    // By path, without opening: a FIFO would block an open, a 0444 file refuse it.
    crate::sys::fsops::set_mtime(p, e.mtime_ns)
}

/// Is the file at `p` one of several names of its inode?
fn has_other_names(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.nlink() > 1)
}

/// Make `p` (whatever is there now) a new FIFO with `e`'s mode and mtime.
fn make_fifo(p: &Path, e: &Entry) -> io::Result<()> {
    let replaced = std::fs::symlink_metadata(p).ok();
    if let Some(m) = &replaced {
        if m.is_dir() {
            std::fs::remove_dir_all(p)?;
        } else {
            std::fs::remove_file(p)?;
        }
    }
    crate::sys::fsops::mkfifo(p, 0o600)?;
    keep::apply(p, e, replaced.as_ref().filter(|m| !m.is_dir()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
    crate::sys::fsops::set_mtime(p, e.mtime_ns)
}

/// Same inode? (`a` by its real path, `b` as reached.)
fn same_file(a: &Path, b: &Path) -> bool {
    let Ok(a) = Short::of(a) else {
        return false;
    };
    match (std::fs::symlink_metadata(&a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Directories whose mode vrift opened up (u+wx) to change their contents, with the mode
/// to put back; a directory the run itself made writable or read-only gets its new mode at
/// the end either way.
#[derive(Default)]
struct OpenedDirs {
    modes: std::collections::HashMap<PathBuf, u32>,
}

impl OpenedDirs {
    /// Make sure the directory holding `p` lets its owner add and remove entries.
    fn parent_of(&mut self, p: &Path) -> io::Result<()> {
        let Some(dir) = p.parent() else {
            return Ok(());
        };
        if self.modes.contains_key(dir) {
            return Ok(());
        }
        let at = Short::of(dir)?;
        let mode = std::fs::metadata(&at)?.permissions().mode() & 0o7777;
        if mode & 0o300 != 0o300 {
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode | 0o700))?;
            self.modes.insert(dir.to_path_buf(), mode);
        }
        Ok(())
    }

    fn restore(self) -> io::Result<()> {
        for (dir, mode) in self.modes {
            std::fs::set_permissions(Short::of(&dir)?, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }
}

/// Apply `new` (the run's result) over `before` (what it started from) to the tree at `root`.
pub fn apply(store: &Store, root: &Path, before: &Manifest, new: &Manifest) -> Result<Report> {
    let mut opened = OpenedDirs::default();
    let report = apply_changes(store, root, before, new, &mut opened);
    // Put back what was opened up even if a change failed half way; then the final modes.
    let restored = opened.restore();
    let (report, dir_modes) = report?;
    restored.context("restoring directory modes")?;
    for (p, mode) in dir_modes.into_iter().rev() {
        std::fs::set_permissions(at(&p)?, std::fs::Permissions::from_mode(mode & 0o7777))
            .with_context(|| format!("{}", p.display()))?;
    }
    Ok(report)
}

fn apply_changes(
    store: &Store,
    root: &Path,
    before: &Manifest,
    new: &Manifest,
    opened: &mut OpenedDirs,
) -> Result<(Report, Vec<(PathBuf, u32)>)> {
    let mut report = Report::default();
    // Removals, deepest first.
    let mut gone: Vec<(&[u8], &Entry)> = before
        .iter()
        .filter(|(p, _)| new.get(p).is_none())
        .collect();
    gone.sort_by(|a, b| b.0.cmp(a.0));
    let changed = new
        .iter()
        .filter(|(p, e)| before.get(p) != Some(*e))
        .count();
    let progress = Progress::new(
        "writing the run's changes back",
        (gone.len() + changed) as u64,
    );
    for (rel, e) in gone {
        progress.inc(1);
        let p = real(root, rel);
        let a = match at(&p) {
            Ok(a) => a,
            // Its directory is gone from disk: so is the path.
            Err(err) if absent(&err) => continue,
            Err(err) => return Err(err),
        };
        check_reachable(&p, &a)?;
        if !unchanged_on_disk(&a, Some(e)) {
            if a.symlink_metadata().is_ok() {
                report.conflicts.push(rel.to_vec());
            }
            continue;
        }
        opened
            .parent_of(&p)
            .with_context(|| format!("{}", p.display()))?;
        let r = match e.kind {
            EntryKind::Dir => std::fs::remove_dir(&a),
            _ => std::fs::remove_file(&a),
        };
        match r {
            Ok(()) => report.removed += 1,
            // A directory that still holds excluded (untracked) files stays.
            Err(err) if e.kind == EntryKind::Dir && err.raw_os_error() == Some(libc::ENOTEMPTY) => {
            }
            Err(err) => return Err(err).with_context(|| format!("{}", p.display())),
        }
    }
    // Additions and changes, parents first.
    let mut dir_modes = Vec::new();
    // Link group -> the real path of its first name (in path order) on disk.
    let mut group_paths: HashMap<u64, PathBuf> = HashMap::new();
    for (rel, e) in new.iter() {
        let old = before.get(rel);
        if e.meta.link != 0 && !group_paths.contains_key(&e.meta.link) {
            group_paths.insert(e.meta.link, real(root, rel));
        }
        if old == Some(e) {
            continue;
        }
        progress.inc(1);
        let p = real(root, rel);
        let a = at(&p)?;
        check_reachable(&p, &a)?;
        // A real directory, not a symlink to one: a directory that replaced a symlink in
        // the run must replace it on disk too (and its mode must not go to the target).
        let real_dir = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.is_dir());
        let dir_already_there = e.kind == EntryKind::Dir && real_dir(&a);
        // A later name of a link group whose first name is already written: one more link.
        let first_name = group_paths.get(&e.meta.link).filter(|f| **f != p);
        if let Some(first) = first_name.filter(|_| e.meta.link != 0) {
            if same_file(first, &a) {
                // Written through its first name (in place): nothing left to do.
                report.written += 1;
                continue;
            }
        }
        if !dir_already_there && !unchanged_on_disk(&a, old) {
            // Already as the run left it (a kept result applied again after a failure half
            // way): nothing to do. Anything else changed on disk meanwhile.
            if !already_there(&a, e) {
                report.conflicts.push(rel.to_vec());
            }
            continue;
        }
        if !rel.is_empty() {
            opened
                .parent_of(&p)
                .with_context(|| format!("{}", p.display()))?;
        }
        match e.kind {
            EntryKind::Dir => {
                if !real_dir(&a) {
                    if a.symlink_metadata().is_ok() {
                        std::fs::remove_file(&a).with_context(|| format!("{}", p.display()))?;
                    }
                    std::fs::create_dir(&a).with_context(|| format!("{}", p.display()))?;
                }
                keep::apply(&a, e, None).with_context(|| format!("{}", p.display()))?;
                dir_modes.push((p, e.mode));
            }
            EntryKind::File => {
                let first = group_paths
                    .get(&e.meta.link)
                    .filter(|f| e.meta.link != 0 && **f != p)
                    .and_then(|f| Short::of(f).ok())
                    .filter(|f| f.is_file());
                if let Some(first) = first {
                    // Another name of a group whose first name is in place: link to it.
                    if a.symlink_metadata().is_ok() {
                        std::fs::remove_file(&a).with_context(|| format!("{}", p.display()))?;
                    }
                    std::fs::hard_link(&first, &a).with_context(|| format!("{}", p.display()))?;
                } else if old.is_some_and(|o| o.kind == EntryKind::File && o.hash == e.hash) {
                    // Same content: only the mode, the time, the owner or xattrs changed.
                    finish_in_place(&a, e).with_context(|| format!("{}", p.display()))?;
                } else if let Some(old) = old.filter(|o| is_append(store, o, e)) {
                    append_in_place(store, &a, old, e)
                        .and_then(|()| finish_in_place(&a, e))
                        .with_context(|| format!("{}", p.display()))?;
                } else if e.meta.link != 0 && has_other_names(&a) {
                    rewrite_in_place(store, &a, e).with_context(|| format!("{}", p.display()))?;
                } else {
                    write_file(store, &a, e).with_context(|| format!("{}", p.display()))?;
                }
                if let Ok(m) = std::fs::symlink_metadata(&a) {
                    report
                        .files
                        .insert(rel.to_vec(), (FileStat::from_metadata(&m), e.hash));
                }
            }
            EntryKind::Symlink => {
                if a.symlink_metadata().is_ok() {
                    if a.is_dir() && !a.is_symlink() {
                        std::fs::remove_dir_all(&a)
                    } else {
                        std::fs::remove_file(&a)
                    }
                    .with_context(|| format!("{}", p.display()))?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&e.target), &a)
                    .with_context(|| format!("{}", p.display()))?;
                if e.meta.owner.is_some() {
                    keep::apply(&a, e, None).with_context(|| format!("{}", p.display()))?;
                }
            }
            EntryKind::Fifo => {
                if old.is_some_and(|o| o.kind == EntryKind::Fifo) && a.exists() {
                    finish_in_place(&a, e).with_context(|| format!("{}", p.display()))?;
                } else {
                    make_fifo(&a, e).with_context(|| format!("{}", p.display()))?;
                }
            }
        }
        report.written += 1;
    }
    // Directory modes last, so a read-only directory does not stop its own contents.
    Ok((report, dir_modes))
}
