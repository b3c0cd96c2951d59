//! Reading a run's result out of its overlay upper directory: every new or changed file is
//! hashed into the store, whiteouts and opaque directories become removals, and modes,
//! mtimes and symlinks are taken from what the upper directory holds. The upper directory
//! is the run's journal: this is also how a killed run is recovered.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use vrift_common::manifest::{Entry, EntryKind, Manifest, RelPath};
use vrift_common::store::Store;

use super::layer::Flavor;
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

/// The manifest of the view that started as `base` and whose changes are in `upper`.
/// `passthrough` paths (mount points vrift made) are not part of the view.
pub fn harvest(
    store: &Store,
    base: &Manifest,
    upper: &Path,
    flavor: Flavor,
    passthrough: &HashSet<RelPath>,
) -> Result<Manifest> {
    let mut entries: BTreeMap<RelPath, Entry> =
        base.iter().map(|(p, e)| (p.to_vec(), e.clone())).collect();
    walk(store, upper, b"", flavor, passthrough, &mut entries)?;
    Ok(Manifest::from_entries(entries))
}

fn walk(
    store: &Store,
    upper: &Path,
    rel: &[u8],
    flavor: Flavor,
    passthrough: &HashSet<RelPath>,
    entries: &mut BTreeMap<RelPath, Entry>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        upper.to_path_buf()
    } else {
        upper.join(std::ffi::OsStr::from_bytes(rel))
    };
    let listing = crate::sys::fsops::with_owner_access(&dir, || {
        std::fs::read_dir(&dir)?.collect::<io::Result<Vec<_>>>()
    })
    .with_context(|| format!("{}", dir.display()))?;
    for child in listing {
        let name = child.file_name();
        let crel = join(rel, name.as_bytes());
        if passthrough.contains(&crel) {
            continue;
        }
        let path = child.path();
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("{}", path.display()))?;
        let ft = meta.file_type();
        let mode = meta.permissions().mode() & 0o7777;
        if ft.is_char_device() && meta.rdev() == 0 {
            // A whiteout: the lower entry (and what was below it) is gone.
            remove_tree(entries, &crel);
        } else if ft.is_dir() {
            let opaque = xattr::lget(&path, flavor.opaque())
                .with_context(|| format!("{}", path.display()))?;
            let was_dir = entries.get(&crel).map(|e| e.kind) == Some(EntryKind::Dir);
            if opaque.as_deref() == Some(b"y") || !was_dir {
                remove_tree(entries, &crel);
            }
            entries.insert(crel.clone(), Entry::dir(mode, mtime_of(&meta)));
            walk(store, upper, &crel, flavor, passthrough, entries)?;
        } else if ft.is_file() {
            let ins = crate::sys::fsops::with_owner_access(&path, || {
                store.insert_file(&path).map_err(|e| match e {
                    vrift_common::store::StoreError::Io { source, .. } => source,
                    other => io::Error::other(other.to_string()),
                })
            })
            .with_context(|| format!("{}", path.display()))?;
            remove_tree(entries, &crel);
            entries.insert(crel, Entry::file(ins.hash, ins.size, mode, mtime_of(&meta)));
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&path).with_context(|| format!("{}", path.display()))?;
            let target = target.as_os_str().as_bytes().to_vec();
            remove_tree(entries, &crel);
            entries.insert(crel, Entry::symlink(target, mtime_of(&meta)));
        } else {
            // FIFOs, sockets and device nodes live for the run only (a manifest has no such
            // kind); whatever they replaced is gone from the view.
            remove_tree(entries, &crel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
