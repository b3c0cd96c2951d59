//! Keeping the store whole: blobs whose content no longer matches their name are moved aside
//! to `quarantine/` (so nothing serves them again), and put back from any file that has the
//! right content.
//!
//! `quarantine/<hex>.<n>` keeps the damaged bytes for inspection (gc never reads or deletes
//! them; remove them by hand). A quarantined blob is, for every reader, a missing blob: the
//! next ingest of a file with that content stores it again, and `vrift store verify --repair`
//! looks for such files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{hash_file, Store, StoreError};
use crate::hash::Hash;

/// Where damaged blobs are moved, under the store root.
pub const QUARANTINE_DIR: &str = "quarantine";

/// What is wrong with one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobDamage {
    /// Its content hashes to something else.
    Corrupt,
    /// It cannot be read (the error text).
    Unreadable(String),
}

impl std::fmt::Display for BlobDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobDamage::Corrupt => f.write_str("corrupt (content does not match its hash)"),
            BlobDamage::Unreadable(e) => write!(f, "unreadable ({e})"),
        }
    }
}

impl Store {
    /// Move the blob `hash` aside to `quarantine/`, so that nothing serves it. Returns where
    /// it went, or `None` when there was no such blob (someone moved it first).
    pub fn quarantine_blob(&self, hash: &Hash) -> Result<Option<PathBuf>, StoreError> {
        let dir = self.root().join(QUARANTINE_DIR);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(dir, e)),
        }
        let from = self.blob_path(hash);
        self.note_blobs_removed()?;
        for n in 0u32.. {
            let to = dir.join(format!("{}.{n}", hash.to_hex()));
            match super::place::place_noreplace(&from, &to) {
                Ok(()) => return Ok(Some(to)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !from.exists() => return Ok(None),
                Err(e) => return Err(StoreError::io(from, e)),
            }
        }
        unreachable!("u32 names run out")
    }

    /// Blobs moved aside, with where each one is, sorted.
    pub fn quarantined(&self) -> Result<Vec<(Hash, PathBuf)>, StoreError> {
        let dir = self.root().join(QUARANTINE_DIR);
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let mut out = Vec::new();
        for e in listing {
            let e = e.map_err(|e| StoreError::io(&dir, e))?;
            let name = e.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.split('.').next()) else {
                continue;
            };
            if let Ok(h) = hex.parse::<Hash>() {
                out.push((h, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hash the blob `hash`: `None` when it is whole, else what is wrong. A missing blob
    /// is an `Io` `NotFound` error.
    pub fn check_blob(&self, hash: &Hash) -> Result<Option<BlobDamage>, StoreError> {
        match hash_file(&self.blob_path(hash)) {
            Ok(h) if h == *hash => Ok(None),
            Ok(_) => Ok(Some(BlobDamage::Corrupt)),
            Err(e) if e.is_not_found() => Err(e),
            Err(e) => Ok(Some(BlobDamage::Unreadable(e.to_string()))),
        }
    }

    /// Store the file at `candidate` as the blob `hash` if its content hashes to `hash`.
    /// Returns whether it did (a file that does not match, or cannot be read, is no error:
    /// it is just no source for this blob). The blob must not be present (quarantine a
    /// damaged one first).
    pub fn repair_from(&self, hash: &Hash, candidate: &Path) -> Result<bool, StoreError> {
        match hash_file(candidate) {
            Ok(h) if h == *hash => {}
            _ => return Ok(false),
        }
        match self.insert_file(candidate) {
            Ok(ins) => Ok(ins.hash == *hash),
            // Changed while we read it, vanished, unreadable: not a source after all.
            Err(StoreError::ChangedDuringIngest { .. }) => Ok(false),
            Err(StoreError::Io { path, .. }) if path == candidate => Ok(false),
            Err(e) => Err(e),
        }
    }
}
