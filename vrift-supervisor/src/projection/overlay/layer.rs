//! The metadata layer: a directory tree mirroring a manifest, where each non-empty file is
//! an empty sparse file with the entry's size, mode and mtime and two xattrs that make
//! overlayfs serve its data from the blob (`overlay.metacopy`, and `overlay.redirect` naming
//! the blob inside the store's blobs directory, the data-only lower layer).
//!
//! A layer is built once per manifest (and xattr flavour and user) into a temporary
//! directory, renamed into place under `layers/` in the store, and then only ever read:
//! every run of that manifest mounts the same one.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vrift_common::manifest::{display_path, EntryKind, Manifest};
use vrift_common::store::Store;

use crate::sys::{fsops, xattr};

/// The directory of the store that holds metadata layers.
pub const LAYERS_DIR: &str = "layers";

/// Which xattrs overlayfs reads: `trusted.overlay.*` for root, `user.overlay.*` (mounted
/// with `userxattr`) in an ordinary user's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Trusted,
    User,
}

impl Flavor {
    pub fn for_uid(uid: u32) -> Flavor {
        if uid == 0 {
            Flavor::Trusted
        } else {
            Flavor::User
        }
    }
    fn name(self) -> &'static str {
        match self {
            Flavor::Trusted => "trusted",
            Flavor::User => "user",
        }
    }
    pub fn metacopy(self) -> &'static CStr {
        match self {
            Flavor::Trusted => c"trusted.overlay.metacopy",
            Flavor::User => c"user.overlay.metacopy",
        }
    }
    pub fn redirect(self) -> &'static CStr {
        match self {
            Flavor::Trusted => c"trusted.overlay.redirect",
            Flavor::User => c"user.overlay.redirect",
        }
    }
    pub fn opaque(self) -> &'static CStr {
        match self {
            Flavor::Trusted => c"trusted.overlay.opaque",
            Flavor::User => c"user.overlay.opaque",
        }
    }
}

/// Where the layer of `manifest` lives (built or not).
pub fn path_of(store: &Store, manifest: &Manifest, flavor: Flavor, uid: u32) -> PathBuf {
    store.root().join(LAYERS_DIR).join(format!(
        "{}-{}-{uid}",
        manifest.hash().to_hex(),
        flavor.name()
    ))
}

/// The layer of `manifest`, built if it is not cached yet. Returns its path and whether it
/// was built now.
pub fn ensure(
    store: &Store,
    manifest: &Manifest,
    flavor: Flavor,
    uid: u32,
) -> Result<(PathBuf, bool)> {
    let dest = path_of(store, manifest, flavor, uid);
    if dest.is_dir() {
        return Ok((dest, false));
    }
    let layers = store.root().join(LAYERS_DIR);
    std::fs::create_dir_all(&layers).with_context(|| format!("{}", layers.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = layers.join(format!(".build-{}-{stamp}", std::process::id()));
    if let Err(e) = build(store, manifest, &tmp, flavor) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another run built the same layer meanwhile: use that one.
        if !dest.is_dir() {
            return Err(e).with_context(|| format!("{}", dest.display()));
        }
    }
    Ok((dest, true))
}

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    }
}

/// The blob's path inside the blobs directory, as overlayfs wants it (`/ab/cdef...`).
fn redirect_of(hex: &str) -> String {
    format!("/{}/{}", &hex[..2], &hex[2..])
}

/// Build the layer of `manifest` at `dest` (which must not exist).
pub fn build(store: &Store, manifest: &Manifest, dest: &Path, flavor: Flavor) -> Result<()> {
    std::fs::create_dir(dest).with_context(|| format!("{}", dest.display()))?;
    let ctx = |p: &Path| format!("{}", p.display());
    let mut dirs = Vec::new();
    // Canonical order puts every directory before its contents.
    for (rel, e) in manifest.iter() {
        let p = join(dest, rel);
        match e.kind {
            EntryKind::Dir => {
                if !rel.is_empty() {
                    std::fs::create_dir(&p).with_context(|| ctx(&p))?;
                }
                dirs.push((p, e.mode, e.mtime_ns));
            }
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&e.target), &p)
                    .with_context(|| ctx(&p))?;
                fsops::set_mtime(&p, e.mtime_ns).with_context(|| ctx(&p))?;
            }
            EntryKind::File => {
                let f = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&p)
                    .with_context(|| ctx(&p))?;
                if e.size > 0 {
                    if !store.contains(&e.hash) {
                        bail!(
                            "{}: blob {} is missing from the store (run `vrift manifest verify`)",
                            display_path(rel),
                            e.hash
                        );
                    }
                    f.set_len(e.size).with_context(|| ctx(&p))?;
                    xattr::fset(f.as_fd(), flavor.metacopy(), b"").with_context(|| ctx(&p))?;
                    let redirect = redirect_of(&e.hash.to_hex());
                    xattr::fset(f.as_fd(), flavor.redirect(), redirect.as_bytes())
                        .with_context(|| ctx(&p))?;
                }
                f.set_permissions(std::fs::Permissions::from_mode(e.mode & 0o7777))
                    .with_context(|| ctx(&p))?;
                f.set_modified(system_time(e.mtime_ns))
                    .with_context(|| ctx(&p))?;
            }
        }
    }
    // Directories last, deepest first: making their children changed their mtimes, and a
    // read-only mode would have kept the children out.
    for (p, mode, mtime) in dirs.iter().rev() {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777))
            .with_context(|| ctx(p))?;
        fsops::set_mtime(p, *mtime).with_context(|| ctx(p))?;
    }
    Ok(())
}

pub fn system_time(ns: i64) -> std::time::SystemTime {
    if ns >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_nanos(ns.unsigned_abs())
    }
}
