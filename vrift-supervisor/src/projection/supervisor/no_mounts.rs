//! Serving a view without mounts: where the kernel refuses namespaces (a container's default
//! seccomp profile), the link farm cannot be mounted at the view's root, so the kernel sees
//! the real disk at the view's paths. The supervisor then answers every call on a view path
//! itself (`handlers::no_mounts`): an open gets a descriptor of the farm's file
//! (`SECCOMP_IOCTL_NOTIF_ADDFD`), readlink and getcwd are answered from the view, a chdir
//! or an exec goes to the kernel only when the kernel would reach the farm's object (a
//! path relative to a farm directory the caller is in) or an identical file on disk, and
//! is refused with a message otherwise. Nothing keeps the store read-only either, so every
//! change outside the view whose path the kernel would resolve into the store is EROFS.
//!
//! This module holds what those answers need to know; the answers are in the handlers.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vrift_common::vfs::{Content, ViewEntry};

use crate::view::lexical;
use crate::view::state::lock;

pub struct NoMounts {
    /// The store's root, canonical: nothing in it may be changed through the kernel.
    store: Vec<u8>,
    farm: PathBuf,
    /// View paths already named in a refusal message (each is said once).
    warned: Mutex<HashSet<Vec<u8>>>,
}

fn canonical_bytes(p: &Path) -> Vec<u8> {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .as_os_str()
        .as_bytes()
        .to_vec()
}

fn under(path: &[u8], dir: &[u8]) -> bool {
    path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/' || dir == b"/")
}

impl NoMounts {
    pub fn new(store_root: &Path, farm: &Path) -> NoMounts {
        NoMounts {
            store: canonical_bytes(store_root),
            farm: farm.to_path_buf(),
            warned: Mutex::default(),
        }
    }

    /// The farm's object for the view entry at `rel` (a resolved path: no symlink in it).
    pub fn farm_path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.farm.clone()
        } else {
            self.farm.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    /// Would the kernel, given `kernel_path` (absolute, as it resolves it), reach something
    /// in the store? The final component is not followed (a symlink's own name is changed
    /// by unlink or rename), every directory above it is.
    pub fn in_store(&self, kernel_path: &[u8]) -> bool {
        let in_store = |p: &Path| under(p.as_os_str().as_bytes(), &self.store);
        let raw = Path::new(std::ffi::OsStr::from_bytes(kernel_path));
        // Where the kernel would put the name: its directory, every symlink above followed
        // (a farm's pass-through placeholder is a symlink out of the store).
        if let (Some(parent), Some(_)) = (raw.parent(), raw.file_name()) {
            if let Ok(dir) = std::fs::canonicalize(parent) {
                // A symlink outside the store naming something in it: the calls that
                // follow it (open, truncate, chmod...) would reach the store.
                return in_store(&dir) || std::fs::canonicalize(raw).is_ok_and(|f| in_store(&f));
            }
        }
        if let Ok(full) = std::fs::canonicalize(raw) {
            return in_store(&full);
        }
        // Directories that do not exist yet: judged from the deepest one that does.
        let mut dir = raw;
        while let Some(up) = dir.parent() {
            if let Ok(real) = std::fs::canonicalize(up) {
                return in_store(&real);
            }
            dir = up;
        }
        under(&lexical::normalize(kernel_path), &self.store)
    }

    /// Is `abs` in the store by its name alone? Such a path is never the view's, even where
    /// the store lies under the view's root (a run from the home directory that holds it):
    /// the view does not show the store, and the shim reads its index and blobs there.
    pub fn names_the_store(&self, abs: &[u8]) -> bool {
        under(&lexical::normalize(abs), &self.store)
    }

    /// Does `kernel_path` (absolute, as the kernel resolves it) lead to `target`, following
    /// every symlink on the way?
    pub fn lands_on(&self, kernel_path: &[u8], target: &Path) -> bool {
        let k = std::fs::canonicalize(Path::new(std::ffi::OsStr::from_bytes(kernel_path)));
        match (k, std::fs::canonicalize(target)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Is the file on disk at the view path `abs` the view's entry as the manifest recorded
    /// it (same size and mtime, as a re-ingest's stat check judges), unchanged by the run?
    pub fn disk_is_view(&self, abs: &[u8], entry: &ViewEntry) -> bool {
        if !matches!(entry.content(), Some(Content::Blob(_))) {
            return false;
        }
        match std::fs::metadata(Path::new(std::ffi::OsStr::from_bytes(abs))) {
            Ok(m) => {
                m.is_file()
                    && m.size() == entry.size
                    && m.mtime() * 1_000_000_000 + m.mtime_nsec() == entry.mtime_ns
            }
            Err(_) => false,
        }
    }

    /// Say once per path why a call on it was refused.
    pub fn refuse(&self, abs: &[u8], what: &str) {
        if lock(&self.warned).insert(abs.to_vec()) {
            eprintln!(
                "vrift: {}: {what}: without namespaces (this system refuses them) the view \
                 is not mounted, so the kernel cannot reach this path of the view for a \
                 program the shim does not serve (a static program, or a raw system call); \
                 run where namespaces are allowed, or through a dynamically linked program",
                String::from_utf8_lossy(abs)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_reach_the_store_are_found_through_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        std::fs::create_dir_all(store.join("blobs")).unwrap();
        std::fs::write(store.join("blobs/b"), "x").unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(store.join("blobs/b"), out.join("l")).unwrap();
        std::os::unix::fs::symlink(store.join("blobs"), out.join("dirlink")).unwrap();
        let nm = NoMounts::new(&store, &store.join("runs/1/farm"));
        let b = |p: &Path| p.as_os_str().as_bytes().to_vec();
        assert!(nm.in_store(&b(&store.join("blobs/b"))));
        assert!(nm.in_store(&b(&out.join("l"))));
        assert!(nm.in_store(&b(&out.join("dirlink/new"))));
        assert!(nm.in_store(&b(&out.join("../store/blobs/b"))));
        assert!(!nm.in_store(&b(&out.join("plain"))));
        // A farm's pass-through placeholder: a symlink out of the store.
        let farm = store.join("runs/1/farm");
        std::fs::create_dir_all(&farm).unwrap();
        std::os::unix::fs::symlink(&out, farm.join("target")).unwrap();
        assert!(!nm.in_store(&b(&farm.join("target/new"))));
        assert!(!nm.in_store(&b(&farm.join("target/not/yet/there"))));
        assert!(nm.in_store(&b(&farm.join("made"))));
    }
}
