//! Reading a run's result out of its overlay upper directory: every new or changed file is
//! hashed, whiteouts and opaque directories become removals, and modes, mtimes and symlinks
//! are taken from what the upper directory holds. The upper directory is the run's journal:
//! this is also how a killed run is recovered.
//!
//! New content is moved into the store, not copied: the upper directory is on the store's
//! file system and the run is done with it. Before the first file moves, the result is
//! saved in the run directory (`result.manifest`), since from then on the upper directory
//! no longer holds the whole result; a recovery that finds it finishes the moves from it.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vrift_common::hash::Hash;
use vrift_common::longpath::Short;
use vrift_common::manifest::{Entry, EntryKind, EntryMeta, EntryOwner, Manifest, RelPath};
use vrift_common::store::Store;

use super::layer::Flavor;
use crate::progress::Progress;
use crate::sys::xattr;

fn join(rel: &[u8], name: &[u8]) -> RelPath {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

/// Remove everything below `rel` (not `rel` itself).
fn remove_below(entries: &mut BTreeMap<RelPath, Entry>, rel: &[u8]) {
    let lo = join(rel, b"");
    let lo = if rel.is_empty() { Vec::new() } else { lo };
    let below: Vec<RelPath> = entries
        .range(lo.clone()..)
        .take_while(|(k, _)| rel.is_empty() || k.starts_with(&lo))
        .filter(|(k, _)| !k.is_empty() && k.as_slice() != rel)
        .map(|(k, _)| k.clone())
        .collect();
    for k in below {
        entries.remove(&k);
    }
}

fn remove_tree(entries: &mut BTreeMap<RelPath, Entry>, rel: &[u8]) {
    remove_below(entries, rel);
    entries.remove(rel);
}

fn mtime_of(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// A new file's content, hashed where it is, for the store to take in.
struct NewContent {
    path: PathBuf,
    hash: Hash,
    size: u64,
}

/// What the walk of the upper directory found beyond the entries: the new content.
struct Found {
    new: Vec<NewContent>,
    /// Counts the paths looked at.
    progress: Progress,
}

/// What becomes of the upper directory's new content.
#[derive(Clone, Copy)]
pub enum Take<'a> {
    /// The run is over: move it into the store, after saving the result at this path (when
    /// it already exists, a harvest was cut short, and it is the result).
    Move { result: &'a Path },
    /// The upper directory lives on (a session's): copy it into the store.
    Copy,
}

/// The manifest of the view that started as `base` and whose changes are in `upper`, with
/// every blob it names in the store. `passthrough` paths (mount points vrift made) are not
/// part of the view.
pub fn harvest(
    store: &Store,
    base: &Manifest,
    upper: &Path,
    flavor: Flavor,
    passthrough: &HashSet<RelPath>,
    take: Take,
) -> Result<Manifest> {
    if let Take::Move { result } = take {
        if result.exists() {
            return finish_interrupted(store, upper, result);
        }
    }
    let mut entries: BTreeMap<RelPath, Entry> =
        base.iter().map(|(p, e)| (p.to_vec(), e.clone())).collect();
    let mut found = Found {
        new: Vec::new(),
        progress: Progress::counting("reading the run's changes"),
    };
    let mut meta = MetaReader::new(base);
    walk(
        store,
        upper,
        b"",
        flavor,
        passthrough,
        &mut entries,
        &mut found,
        &mut meta,
    )?;
    found.progress.finish();
    let new = found.new;
    let mut entries: Vec<(RelPath, Entry)> = entries.into_iter().collect();
    base.follow_link_writes(&mut entries);
    let manifest = Manifest::from_entries(entries);
    let progress = Progress::new("storing the run's new files", new.len() as u64);
    match take {
        Take::Move { result } => {
            if !new.is_empty() {
                manifest
                    .save_atomic(result)
                    .with_context(|| format!("{}", result.display()))?;
            }
            for n in new {
                adopt(store, &n)?;
                progress.inc(1);
            }
        }
        Take::Copy => {
            for n in new {
                copy_in(store, &n)?;
                progress.inc(1);
            }
        }
    }
    Ok(manifest)
}

fn copy_in(store: &Store, n: &NewContent) -> Result<()> {
    let path = Short::of(&n.path).with_context(|| format!("{}", n.path.display()))?;
    let stored =
        crate::sys::fsops::with_owner_access(&path, || store.insert_file(&path).map_err(store_io))
            .with_context(|| format!("{}", n.path.display()))?;
    if stored.hash != n.hash {
        anyhow::bail!("{}: changed while it was being stored", n.path.display());
    }
    Ok(())
}

fn adopt(store: &Store, n: &NewContent) -> Result<()> {
    // Moving the file out needs its directory writable (a program may have made it 0555).
    let named = || format!("{}", n.path.display());
    let dir = Short::of(n.path.parent().unwrap_or(Path::new("/"))).with_context(named)?;
    let path = Short::of(&n.path).with_context(named)?;
    crate::sys::fsops::with_owner_access(&dir, || {
        store
            .adopt_file(&path, n.hash, n.size)
            .map(|_| ())
            .map_err(store_io)
    })
    .with_context(named)
}

fn store_io(e: vrift_common::store::StoreError) -> io::Error {
    match e {
        vrift_common::store::StoreError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// A harvest whose result was saved but whose new files were not all moved yet: move the
/// rest (each still at its path in `upper`, with the content the result names).
fn finish_interrupted(store: &Store, upper: &Path, result: &Path) -> Result<Manifest> {
    let manifest = Manifest::load(result).with_context(|| format!("{}", result.display()))?;
    for (rel, e) in manifest.iter() {
        if e.kind != EntryKind::File || store.has_blob(&e.hash, e.size) {
            continue;
        }
        let path = upper.join(std::ffi::OsStr::from_bytes(rel));
        let hashed = Short::of(&path).and_then(|at| {
            crate::sys::fsops::with_owner_access(&at, || {
                Store::hash_in_place(&at, None).map_err(store_io)
            })
        });
        match hashed {
            Ok((hash, size)) if hash == e.hash => adopt(
                store,
                &NewContent {
                    path,
                    hash,
                    size,
                },
            )?,
            _ => anyhow::bail!(
                "{}: the run's result names content for {} that is neither in the store nor                  in the run's upper directory",
                result.display(),
                String::from_utf8_lossy(rel)
            ),
        }
    }
    Ok(manifest)
}

/// The version 2 fields of what the upper directory holds: xattrs as they are, owners where
/// the manifest records them or where they are not the runner's (a file made by another
/// user), link groups from the upper directory's own hard links, and, for a file copied up
/// from a name of a link group, that group (the copy is the same file, written through one
/// of its names: `Manifest::follow_link_writes` then updates the others).
struct MetaReader<'a> {
    base: &'a Manifest,
    owners: bool,
    runner: (u32, u32),
    /// Upper inode -> link group number given to it.
    inodes: std::collections::HashMap<u64, u64>,
}

impl<'a> MetaReader<'a> {
    fn new(base: &'a Manifest) -> MetaReader<'a> {
        MetaReader {
            base,
            owners: base.has_owners(),
            runner: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
            inodes: Default::default(),
        }
    }

    fn read(&mut self, rel: &[u8], path: &Path, m: &std::fs::Metadata) -> Result<EntryMeta> {
        let mut meta = EntryMeta::default();
        if !m.file_type().is_symlink() {
            // user.* xattrs need read permission: a file made 0000 is opened up for it.
            meta.xattrs = crate::sys::fsops::with_owner_access(path, || {
                vrift_common::sys::xattr::read_kept(path)
            })
            .with_context(|| format!("{}", path.display()))?;
        }
        if self.owners || (m.uid(), m.gid()) != self.runner {
            meta.owner = Some(EntryOwner {
                uid: m.uid(),
                gid: m.gid(),
            });
        }
        if m.is_file() || m.file_type().is_fifo() {
            if m.nlink() > 1 {
                // Numbers above any the base uses: only equality matters until the result
                // is made canonical.
                let next = (1u64 << 62) + self.inodes.len() as u64;
                meta.link = *self.inodes.entry(m.ino()).or_insert(next);
            } else if let Some(old) = self.base.get(rel).filter(|e| e.meta.link != 0) {
                meta.link = old.meta.link;
            }
        }
        Ok(meta)
    }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    store: &Store,
    upper: &Path,
    rel: &[u8],
    flavor: Flavor,
    passthrough: &HashSet<RelPath>,
    entries: &mut BTreeMap<RelPath, Entry>,
    found: &mut Found,
    meta_of: &mut MetaReader<'_>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        upper.to_path_buf()
    } else {
        upper.join(std::ffi::OsStr::from_bytes(rel))
    };
    // A directory the program shut its owner out of (chmod 0644, 0000: no search bit) is
    // opened up while its entries are read and walked, and its mode put back after; the
    // mode recorded for it is the one it had.
    // The upper directory's tree may be deeper than PATH_MAX below the store's path: the
    // calls reach each path through its directory's descriptor when it is (see `Short`).
    let at = Short::of(&dir).with_context(|| format!("{}", dir.display()))?;
    let mode = std::fs::symlink_metadata(&at)
        .with_context(|| format!("{}", dir.display()))?
        .permissions()
        .mode()
        & 0o7777;
    let opened = mode & 0o500 != 0o500
        && std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode | 0o700)).is_ok();
    let walked = walk_entries(
        store,
        upper,
        rel,
        &dir,
        flavor,
        passthrough,
        entries,
        found,
        meta_of,
    );
    if opened {
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("{}", dir.display()))?;
    }
    walked
}

/// The entries of the upper directory `dir` (`rel` in the view), opened up by [`walk`].
#[allow(clippy::too_many_arguments)]
fn walk_entries(
    store: &Store,
    upper: &Path,
    rel: &[u8],
    dir: &Path,
    flavor: Flavor,
    passthrough: &HashSet<RelPath>,
    entries: &mut BTreeMap<RelPath, Entry>,
    found: &mut Found,
    meta_of: &mut MetaReader<'_>,
) -> Result<()> {
    let at = Short::of(dir).with_context(|| format!("{}", dir.display()))?;
    let listing = crate::sys::fsops::with_owner_access(&at, || {
        std::fs::read_dir(&at)?.collect::<io::Result<Vec<_>>>()
    })
    .with_context(|| format!("{}", dir.display()))?;
    for child in listing {
        found.progress.inc(1);
        let name = child.file_name();
        let crel = join(rel, name.as_bytes());
        if passthrough.contains(&crel) {
            continue;
        }
        let path = dir.join(&name);
        let a = Short::of(&path).with_context(|| format!("{}", path.display()))?;
        let meta = std::fs::symlink_metadata(&a).with_context(|| format!("{}", path.display()))?;
        let ft = meta.file_type();
        let mode = meta.permissions().mode() & 0o7777;
        if ft.is_char_device() && meta.rdev() == 0 {
            // A whiteout: the lower entry (and what was below it) is gone.
            remove_tree(entries, &crel);
        } else if ft.is_dir() {
            // user.* xattrs need read permission: a directory made 0000 is opened up for it.
            let opaque =
                crate::sys::fsops::with_owner_access(&a, || xattr::lget(&a, flavor.opaque()))
                    .with_context(|| format!("{}", path.display()))?;
            let was_dir = entries.get(&crel).map(|e| e.kind) == Some(EntryKind::Dir);
            if opaque.as_deref() == Some(b"y") || !was_dir {
                remove_tree(entries, &crel);
            }
            let m = meta_of.read(&crel, &a, &meta)?;
            entries.insert(crel.clone(), Entry::dir(mode, mtime_of(&meta)).with_meta(m));
            walk(
                store,
                upper,
                &crel,
                flavor,
                passthrough,
                entries,
                found,
                meta_of,
            )?;
        } else if ft.is_file() {
            // A file that was there before may have only grown: learn the hash of its old
            // length on the way, for the write-back.
            let before = entries
                .get(&crel)
                .filter(|e| e.kind == EntryKind::File)
                .map(|e| e.size);
            let (hash, size) = crate::sys::fsops::with_owner_access(&a, || {
                Store::hash_in_place(&a, before).map_err(store_io)
            })
            .with_context(|| format!("{}", path.display()))?;
            remove_tree(entries, &crel);
            let m = meta_of.read(&crel, &a, &meta)?;
            entries.insert(
                crel,
                Entry::file(hash, size, mode, mtime_of(&meta)).with_meta(m),
            );
            if !store.has_blob(&hash, size) {
                found.new.push(NewContent { path, hash, size });
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&a).with_context(|| format!("{}", path.display()))?;
            let target = target.as_os_str().as_bytes().to_vec();
            remove_tree(entries, &crel);
            let m = meta_of.read(&crel, &a, &meta)?;
            entries.insert(crel, Entry::symlink(target, mtime_of(&meta)).with_meta(m));
        } else if ft.is_fifo() {
            remove_tree(entries, &crel);
            let m = meta_of.read(&crel, &a, &meta)?;
            entries.insert(crel, Entry::fifo(mode, mtime_of(&meta)).with_meta(m));
        } else {
            // Sockets and device nodes live for the run only; whatever they replaced is gone
            // from the view.
            remove_tree(entries, &crel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        _dir: tempfile::TempDir,
        store: Store,
        upper: PathBuf,
        result: PathBuf,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let upper = dir.path().join("run/upper");
        std::fs::create_dir_all(&upper).unwrap();
        World {
            result: dir.path().join("run/result.manifest"),
            _dir: dir,
            store,
            upper,
        }
    }

    fn harvest_of(w: &World, base: &Manifest) -> Result<Manifest> {
        harvest(
            &w.store,
            base,
            &w.upper,
            Flavor::for_uid(nix::unistd::geteuid().as_raw()),
            &HashSet::new(),
            Take::Move { result: &w.result },
        )
    }

    #[test]
    fn new_content_moves_into_the_store_after_the_result_is_saved() {
        let w = world();
        std::fs::write(w.upper.join("new"), b"fresh content").unwrap();
        std::fs::write(w.upper.join("same"), b"already stored").unwrap();
        let stored = w.store.insert_bytes(b"already stored").unwrap().hash;
        let m = harvest_of(&w, &Manifest::from_entries(vec![(Vec::new(), dir_entry())])).unwrap();
        let new = m.get(b"new").unwrap();
        assert_eq!(new.hash, Hash::of(b"fresh content"));
        assert_eq!(
            std::fs::read(w.store.blob_path(&new.hash)).unwrap(),
            b"fresh content"
        );
        // Moved, not copied; what the store had stays where it is.
        assert!(!w.upper.join("new").exists());
        assert!(w.upper.join("same").exists());
        assert_eq!(m.get(b"same").unwrap().hash, stored);
        assert_eq!(Manifest::load(&w.result).unwrap().hash(), m.hash());
    }

    #[test]
    fn new_files_in_read_only_directories_are_moved_too() {
        use std::os::unix::fs::PermissionsExt;
        let w = world();
        let d = w.upper.join("closed");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("f"), b"inside a read-only directory").unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
        let m = harvest_of(&w, &Manifest::from_entries(vec![(Vec::new(), dir_entry())])).unwrap();
        assert_eq!(m.get(b"closed").unwrap().mode, 0o555);
        assert!(w
            .store
            .has_blob(&Hash::of(b"inside a read-only directory"), 28));
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o555, "the directory's mode is put back");
    }

    #[test]
    fn directories_without_a_search_bit_are_walked_and_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let w = world();
        let d = w.upper.join("shut");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), b"below a 0644 directory").unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o644)).unwrap();
        let m = harvest_of(&w, &Manifest::from_entries(vec![(Vec::new(), dir_entry())])).unwrap();
        assert_eq!(m.get(b"shut").unwrap().mode, 0o644);
        assert_eq!(m.get(b"shut/sub/f").unwrap().size, 22);
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "the directory's mode is put back");
    }

    #[test]
    fn a_living_upper_directory_is_copied_from_not_moved() {
        let w = world();
        std::fs::write(w.upper.join("kept"), b"a session's file").unwrap();
        let base = Manifest::from_entries(vec![(Vec::new(), dir_entry())]);
        let flavor = Flavor::for_uid(nix::unistd::geteuid().as_raw());
        let m = harvest(
            &w.store,
            &base,
            &w.upper,
            flavor,
            &HashSet::new(),
            Take::Copy,
        )
        .unwrap();
        assert!(w.store.has_blob(&m.get(b"kept").unwrap().hash, 16));
        assert_eq!(
            std::fs::read(w.upper.join("kept")).unwrap(),
            b"a session's file"
        );
        assert!(!w.result.exists());
    }

    #[test]
    fn nothing_new_writes_no_result_file() {
        let w = world();
        std::fs::write(w.upper.join("same"), b"already stored").unwrap();
        w.store.insert_bytes(b"already stored").unwrap();
        harvest_of(&w, &Manifest::from_entries(vec![(Vec::new(), dir_entry())])).unwrap();
        assert!(!w.result.exists());
    }

    #[test]
    fn a_harvest_cut_short_is_finished_from_its_saved_result() {
        let w = world();
        // The saved result names two new files: one already moved into the store, one still
        // in the upper directory.
        let moved = w.store.insert_bytes(b"moved already").unwrap().hash;
        std::fs::write(w.upper.join("b"), b"still in upper").unwrap();
        let result = Manifest::from_entries(vec![
            (Vec::new(), dir_entry()),
            (b"a".to_vec(), Entry::file(moved, 13, 0o644, 0)),
            (
                b"b".to_vec(),
                Entry::file(Hash::of(b"still in upper"), 14, 0o600, 0),
            ),
        ]);
        result.save_atomic(&w.result).unwrap();
        // Whatever the upper directory shows now, the saved result is the run's result.
        std::fs::write(w.upper.join("stray"), b"x").unwrap();
        let m = harvest_of(&w, &Manifest::from_entries(vec![])).unwrap();
        assert_eq!(m.hash(), result.hash());
        assert!(w.store.has_blob(&Hash::of(b"still in upper"), 14));
        assert!(!w.upper.join("b").exists());
    }

    #[test]
    fn a_saved_result_whose_content_is_nowhere_is_an_error_naming_the_path() {
        let w = world();
        let result = Manifest::from_entries(vec![
            (Vec::new(), dir_entry()),
            (
                b"lost".to_vec(),
                Entry::file(Hash::of(b"gone"), 4, 0o644, 0),
            ),
        ]);
        result.save_atomic(&w.result).unwrap();
        let err = format!(
            "{:#}",
            harvest_of(&w, &Manifest::from_entries(vec![])).unwrap_err()
        );
        assert!(err.contains("lost"), "{err}");
    }

    fn dir_entry() -> Entry {
        Entry::dir(0o755, 0)
    }

    #[test]
    fn removing_below_a_path_keeps_its_neighbours() {
        let mut m: BTreeMap<RelPath, Entry> =
            [&b""[..], b"a", b"a/b", b"a/b/c", b"a-b", b"a.x", b"ab"]
                .iter()
                .map(|p| (p.to_vec(), dir_entry()))
                .collect();
        remove_below(&mut m, b"a");
        let keys: Vec<&[u8]> = m.keys().map(|k| k.as_slice()).collect();
        assert_eq!(keys, vec![&b""[..], b"a", b"a-b", b"a.x", b"ab"]);
        remove_tree(&mut m, b"ab");
        assert!(!m.contains_key(&b"ab"[..]));
        assert!(m.contains_key(&b"a"[..]));
    }
}
