//! TheSource: the global content-addressed store (CAS) of immutable blobs.
//!
//! CONTRACT (other modules code against these signatures; bodies are being written):
//! layout under the store root (`$VRIFT_HOME`, default `$XDG_DATA_HOME/vrift` or
//! `~/.local/share/vrift`): `blobs/<2 hex>/<62 hex>` files, read-only, never rewritten;
//! `tmp/` for in-flight writes (same file system, renamed into place); `roots/` the registry of
//! manifests that protect blobs from gc; `lock` the gc/ingest lock file.

use std::path::{Path, PathBuf};

use crate::hash::Hash;

/// Errors from the store. Every variant names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file changed while it was being stored; try again")]
    ChangedDuringIngest { path: PathBuf },
    #[error("no store location: set VRIFT_HOME or HOME")]
    NoHome,
}

/// The result of putting content into the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub hash: Hash,
    pub size: u64,
    /// False when the blob was already present (nothing was written).
    pub newly_stored: bool,
}

/// A handle on a store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// Held while an ingest or a run may add blobs or rely on them; gc --delete takes it exclusively.
pub struct StoreLock {
    _file: std::fs::File,
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let _ = root;
        todo!()
    }
    /// Open the store named by `$VRIFT_HOME`, else the XDG data directory.
    pub fn open_default() -> Result<Store, StoreError> {
        todo!()
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Where the blob named `hash` lives (whether or not it exists).
    pub fn blob_path(&self, hash: &Hash) -> PathBuf {
        let _ = hash;
        todo!()
    }
    pub fn contains(&self, hash: &Hash) -> bool {
        let _ = hash;
        todo!()
    }
    /// Copy the file at `path` into the store, hashing while copying (one read).
    pub fn insert_file(&self, path: &Path) -> Result<Inserted, StoreError> {
        let _ = path;
        todo!()
    }
    /// Put bytes into the store.
    pub fn insert_bytes(&self, data: &[u8]) -> Result<Inserted, StoreError> {
        let _ = data;
        todo!()
    }
    /// Shared lock: ingests and runs hold it while they add or rely on unregistered blobs.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        todo!()
    }
    /// Exclusive lock for gc --delete.
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        todo!()
    }
    /// Record `manifest_path` (absolute) in the roots registry so gc keeps its blobs.
    pub fn register_root(&self, manifest_path: &Path) -> Result<(), StoreError> {
        let _ = manifest_path;
        todo!()
    }
}
