//! Which store blob (BLAKE3) holds the content of which git blob (SHA-1), so a tree read
//! from the object database is imported into the store once, and a session's files map back
//! to git blobs without being hashed again.
//!
//! `$VRIFT_HOME/gitmap` is a flat file of 60-byte records (20-byte git id, 32-byte BLAKE3,
//! the size as 8 bytes little-endian),
//! only ever appended to, one `write` per batch with `O_APPEND` (so concurrent writers never
//! interleave inside a record). Both names are content addresses, so a record never goes
//! stale; a torn last record is ignored. A blob gc removed is simply imported again.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use vrift_common::hash::Hash;
use vrift_common::store::Store;

const RECORD: usize = 60;

pub struct GitMap {
    path: PathBuf,
    to_blake: HashMap<[u8; 20], (Hash, u64)>,
    to_git: HashMap<Hash, [u8; 20]>,
    pending: Vec<u8>,
}

impl GitMap {
    pub fn load(store: &Store) -> Result<GitMap> {
        let path = store.root().join("gitmap");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        };
        let mut to_blake = HashMap::with_capacity(bytes.len() / RECORD);
        let mut to_git = HashMap::with_capacity(bytes.len() / RECORD);
        for rec in bytes.chunks_exact(RECORD) {
            let mut git = [0u8; 20];
            git.copy_from_slice(&rec[..20]);
            let mut b = [0u8; 32];
            b.copy_from_slice(&rec[20..52]);
            let size = u64::from_le_bytes(rec[52..].try_into().expect("8 bytes"));
            to_blake.insert(git, (Hash(b), size));
            to_git.insert(Hash(b), git);
        }
        Ok(GitMap {
            path,
            to_blake,
            to_git,
            pending: Vec::new(),
        })
    }

    /// The store blob holding git blob `git`, and its size.
    pub fn blake(&self, git: &gix::oid) -> Option<(Hash, u64)> {
        let key: [u8; 20] = git.as_bytes().try_into().ok()?;
        self.to_blake.get(&key).copied()
    }

    pub fn git(&self, hash: &Hash) -> Option<gix::ObjectId> {
        self.to_git
            .get(hash)
            .map(|g| gix::ObjectId::from_bytes_or_panic(g))
    }

    pub fn insert(&mut self, git: &gix::oid, hash: Hash, size: u64) {
        let Ok(key) = <[u8; 20]>::try_from(git.as_bytes()) else {
            return;
        };
        if self.to_blake.insert(key, (hash, size)) != Some((hash, size)) {
            self.to_git.insert(hash, key);
            self.pending.extend_from_slice(&key);
            self.pending.extend_from_slice(&hash.0);
            self.pending.extend_from_slice(&size.to_le_bytes());
        }
    }

    /// Append what was learnt since loading.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("{}", self.path.display()))?;
        f.write_all(&self.pending)
            .with_context(|| format!("{}", self.path.display()))?;
        self.pending.clear();
        Ok(())
    }
}
