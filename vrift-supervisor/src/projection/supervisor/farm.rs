//! The link farm: a real directory tree that mirrors a manifest, with every file a hardlink
//! to its blob in the store.
//!
//! The supervisor projection bind-mounts it (read-only) at the view's root in the program's
//! private mount namespace, so the kernel itself serves reads, directory listings, symlinks, chdir,
//! getcwd and exec of view paths; the supervisor only corrects what a hardlink cannot carry
//! (mode, mtime, owner of each path) and carries out the run's changes on it.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use vrift_common::hash::Hash;
use vrift_common::longpath::Short;
use vrift_common::manifest::{EntryKind, Manifest, RelPath};

pub use crate::view::spec::PassthroughKind;

use crate::progress::Progress;

/// With `real_dir`, each pass-through path of a farm that is not mounted is a symlink to
/// the real path: a program that reaches it relative to a farm directory it holds (its cwd,
/// a descriptor) reaches the real one, as a bind mount over a placeholder would give.
fn placeholders(
    dest: &Path,
    passthrough: &[(RelPath, PassthroughKind)],
    real_dir: Option<&Path>,
) -> Result<(), FarmError> {
    for (rel, kind) in passthrough {
        let p = join(dest, rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if let Some(real) = real_dir {
            std::os::unix::fs::symlink(join(real, rel), &p).map_err(io_err(&p))?;
            continue;
        }
        match kind {
            PassthroughKind::Dir => std::fs::create_dir_all(&p).map_err(io_err(&p))?,
            PassthroughKind::File => {
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
    #[error(
        "{path}: blob {hash} is missing from the store (or was moved aside as damaged): \
         `vrift store verify --repair --from DIR` restores it from a directory holding a file \
         with that content"
    )]
    MissingBlob { path: String, hash: Hash },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FarmError + '_ {
    move |source| FarmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Build the farm of one run at `dest`: the manifest's tree, plus an empty placeholder of
/// the right kind for each pass-through path (real paths excluded by the filters, which are
/// bind-mounted over their placeholders, or, for a farm that is not mounted, symlinks to
/// the real paths under `real_dir`). Each run gets its own farm because the supervisor
/// carries the run's changes out on it.
pub fn build_run(
    store: &Store,
    manifest: &Manifest,
    passthrough: &[(RelPath, PassthroughKind)],
    dest: &Path,
    real_dir: Option<&Path>,
) -> Result<(), FarmError> {
    build(store, manifest, dest)?;
    placeholders(dest, passthrough, real_dir)
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
    let progress = Progress::new("building the view's link farm", manifest.len() as u64);
    // Canonical order puts every directory before its contents.
    for (rel, e) in manifest.iter() {
        progress.inc(1);
        // The farm's path may be longer than the kernel takes (a deep tree below a long
        // store path): the error names it, the calls get a short path to the same object.
        let p = join(dest, rel);
        let at = Short::of(&p).map_err(io_err(&p))?;
        match e.kind {
            EntryKind::Dir if rel.is_empty() => {}
            EntryKind::Dir => std::fs::create_dir(&at).map_err(io_err(&p))?,
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&e.target), &at)
                    .map_err(io_err(&p))?
            }
            // The kernel serves a FIFO's opens and data itself; the view gives its mode.
            EntryKind::Fifo => crate::sys::fsops::mkfifo(&at, 0o666).map_err(io_err(&p))?,
            EntryKind::File => {
                let blob = store.blob_path(&e.hash);
                if let Err(err) = std::fs::hard_link(&blob, &at) {
                    match err.raw_os_error() {
                        Some(libc::ENOENT) if !blob.exists() => {
                            return Err(FarmError::MissingBlob {
                                path: String::from_utf8_lossy(rel).into_owned(),
                                hash: e.hash,
                            })
                        }
                        // Too many links to one blob (ext4 stops at 65000): copy it.
                        Some(libc::EMLINK) => {
                            std::fs::copy(&blob, &at).map_err(io_err(&p))?;
                        }
                        _ => return Err(io_err(&p)(err)),
                    }
                }
            }
        }
    }
    Ok(())
}
