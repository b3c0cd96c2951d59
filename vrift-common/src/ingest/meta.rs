//! What ingest records beyond content and modes (manifest format version 2): extended
//! attributes, hard-link groups, and owners when asked or when the tree needs them.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::walk::DiskId;
use super::Owners;
use crate::manifest::{Entry, EntryKind, EntryOwner, RelPath};
use crate::sys::xattr;

fn abs(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// Do the owners go in the manifest? See [`Owners`].
pub(super) fn record_owners(policy: Owners, ids: &foldhash::HashMap<RelPath, DiskId>) -> bool {
    match policy {
        Owners::Always => true,
        Owners::Auto => {
            crate::sys::euid() == 0
                && ids
                    .values()
                    .map(|id| (id.uid, id.gid))
                    .collect::<HashSet<_>>()
                    .len()
                    > 1
        }
    }
}

/// Fill in the version 2 fields of `entries` (sorted or not) from the disk at `root`.
pub(super) fn attach(
    root: &Path,
    entries: &mut [(RelPath, Entry)],
    ids: &foldhash::HashMap<RelPath, DiskId>,
    owners: Owners,
    no_xattrs: &foldhash::HashSet<&[u8]>,
) -> Result<(), (PathBuf, std::io::Error)> {
    let with_owners = record_owners(owners, ids);
    // (dev, ino) of files with more than one link -> group number.
    let mut inodes: HashMap<(u64, u64), u64> = HashMap::new();
    for (rel, e) in entries.iter_mut() {
        let Some(id) = ids.get(rel.as_slice()) else {
            continue;
        };
        if with_owners {
            e.meta.owner = Some(EntryOwner {
                uid: id.uid,
                gid: id.gid,
            });
        }
        if matches!(e.kind, EntryKind::File | EntryKind::Fifo) && id.nlink > 1 {
            let next = inodes.len() as u64 + 1;
            e.meta.link = *inodes.entry((id.dev, id.ino)).or_insert(next);
        }
        // Symlinks cannot carry user.* attributes on Linux; nothing to read. Nor for a file
        // the stat cache vouches has none.
        if e.kind != EntryKind::Symlink && !no_xattrs.contains(rel.as_slice()) {
            let p = abs(root, rel);
            // A deep tree's path may be longer than the kernel takes.
            match crate::longpath::Short::of(&p).and_then(|at| xattr::read_kept(&at)) {
                Ok(x) => e.meta.xattrs = x,
                // Gone since the walk: the entry is still right as it was seen.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err((p, err)),
            }
        }
    }
    // `Manifest::from_entries` drops groups whose other names are outside the tree.
    Ok(())
}
