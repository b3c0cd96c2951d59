//! The link farm: a real directory tree that mirrors a manifest, with every file a hardlink
//! to its blob in the store.
//!
//! The supervisor bind-mounts it (read-only) at the view's root in the program's private
//! mount namespace, so the kernel itself serves reads, directory listings, symlinks, chdir,
//! getcwd and exec of view paths; the supervisor only corrects what a hardlink cannot carry
//! (mode, mtime, owner of each path). Farms are cached by manifest hash and built atomically.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest, RelPath};

/// What a pass-through placeholder is: a mount point for a directory or for a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceholderKind {
    Dir = 0,
    File = 1,
}

fn placeholders(dest: &Path, passthrough: &[(RelPath, PlaceholderKind)]) -> Result<(), FarmError> {
    for (rel, kind) in passthrough {
        let p = join(dest, rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        match kind {
            PlaceholderKind::Dir => std::fs::create_dir_all(&p).map_err(io_err(&p))?,
            PlaceholderKind::File => {
                std::fs::File::create(&p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}
use vrift_common::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: blob {hash} is missing from the store (run `vrift manifest verify`)")]
    MissingBlob { path: String, hash: Hash },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FarmError + '_ {
    move |source| FarmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The farm for `manifest`, built if not yet cached. Returns its root directory.
///
/// `passthrough` names real paths that will be bind-mounted over the farm (excluded by the
/// filters); the farm holds an empty placeholder of the right kind for each, and its cache
/// key includes them.
pub fn ensure(
    store: &Store,
    manifest: &Manifest,
    passthrough: &[(RelPath, PlaceholderKind)],
) -> Result<PathBuf, FarmError> {
    let farms = store.root().join("farms");
    let mut key = blake3::Hasher::new();
    key.update(manifest.hash().to_hex().as_bytes());
    for (rel, kind) in passthrough {
        key.update(&[0, *kind as u8]);
        key.update(rel);
    }
    let dest = farms.join(key.finalize().to_hex().as_str());
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&farms).map_err(io_err(&farms))?;
    let tmp = farms.join(format!(".build-{}-{}", std::process::id(), unique()));
    let built = build(store, manifest, &tmp).and_then(|()| placeholders(&tmp, passthrough));
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another run built the same farm meanwhile: use theirs.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => Err(io_err(&dest)(e)),
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    }
}

/// Materialize `manifest` at `dest` (which must not exist).
pub fn build(store: &Store, manifest: &Manifest, dest: &Path) -> Result<(), FarmError> {
    std::fs::create_dir(dest).map_err(io_err(dest))?;
    // Canonical order puts every directory before its contents.
    for (rel, e) in manifest.iter() {
        let p = join(dest, rel);
        match e.kind {
            EntryKind::Dir if rel.is_empty() => {}
            EntryKind::Dir => std::fs::create_dir(&p).map_err(io_err(&p))?,
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&e.target), &p)
                    .map_err(io_err(&p))?
            }
            EntryKind::File => {
                let blob = store.blob_path(&e.hash);
                if let Err(err) = std::fs::hard_link(&blob, &p) {
                    match err.raw_os_error() {
                        Some(libc::ENOENT) if !blob.exists() => {
                            return Err(FarmError::MissingBlob {
                                path: String::from_utf8_lossy(rel).into_owned(),
                                hash: e.hash,
                            })
                        }
                        // Too many links to one blob (ext4 stops at 65000): copy it.
                        Some(libc::EMLINK) => {
                            std::fs::copy(&blob, &p).map_err(io_err(&p))?;
                        }
                        _ => return Err(io_err(&p)(err)),
                    }
                }
            }
        }
    }
    Ok(())
}
