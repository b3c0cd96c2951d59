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
//! attributes, hard links).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use anyhow::{Context, Result};
use vrift_common::hash::Hash;
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

fn real(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// A path write-back cannot even look at (a name too long for the destination, a directory
/// it may not search) is a failure, not a change on disk: the result is then kept.
fn check_reachable(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
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
    let mut file = std::fs::OpenOptions::new().write(true).open(p)?;
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
    std::fs::copy(store.blob_path(&e.hash), &tmp)?;
    let r = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
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
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
        if mode & 0o300 != 0o300 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700))?;
            self.modes.insert(dir.to_path_buf(), mode);
        }
        Ok(())
    }

    fn restore(self) -> io::Result<()> {
        for (dir, mode) in self.modes {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
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
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
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
        check_reachable(&p)?;
        if !unchanged_on_disk(&p, Some(e)) {
            if p.symlink_metadata().is_ok() {
                report.conflicts.push(rel.to_vec());
            }
            continue;
        }
        opened
            .parent_of(&p)
            .with_context(|| format!("{}", p.display()))?;
        let r = match e.kind {
            EntryKind::Dir => std::fs::remove_dir(&p),
            _ => std::fs::remove_file(&p),
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
    for (rel, e) in new.iter() {
        let old = before.get(rel);
        if old == Some(e) {
            continue;
        }
        progress.inc(1);
        let p = real(root, rel);
        check_reachable(&p)?;
        let dir_already_there = e.kind == EntryKind::Dir && p.is_dir();
        if !dir_already_there && !unchanged_on_disk(&p, old) {
            // Already as the run left it (a kept result applied again after a failure half
            // way): nothing to do. Anything else changed on disk meanwhile.
            if !already_there(&p, e) {
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
                if !p.is_dir() {
                    if p.symlink_metadata().is_ok() {
                        std::fs::remove_file(&p).with_context(|| format!("{}", p.display()))?;
                    }
                    std::fs::create_dir(&p).with_context(|| format!("{}", p.display()))?;
                }
                dir_modes.push((p, e.mode));
            }
            EntryKind::File => {
                if old.is_some_and(|o| o.kind == EntryKind::File && o.hash == e.hash) {
                    // Same content: only the mode or the time changed.
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))
                        .and_then(|()| set_mtime(&p, e.mtime_ns).or(Ok(())))
                        .with_context(|| format!("{}", p.display()))?;
                } else if let Some(old) = old.filter(|o| is_append(store, o, e)) {
                    append_in_place(store, &p, old, e)
                        .with_context(|| format!("{}", p.display()))?;
                } else {
                    write_file(store, &p, e).with_context(|| format!("{}", p.display()))?;
                }
                if let Ok(m) = std::fs::symlink_metadata(&p) {
                    report
                        .files
                        .insert(rel.to_vec(), (FileStat::from_metadata(&m), e.hash));
                }
            }
            EntryKind::Symlink => {
                if p.symlink_metadata().is_ok() {
                    if p.is_dir() && !p.is_symlink() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    }
                    .with_context(|| format!("{}", p.display()))?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&e.target), &p)
                    .with_context(|| format!("{}", p.display()))?;
            }
        }
        report.written += 1;
    }
    // Directory modes last, so a read-only directory does not stop its own contents.
    Ok((report, dir_modes))
}
