//! Manifests: the deterministic, versioned description of a tree.
//!
//! Paths are relative to the tree's root, '/'-separated, stored as raw bytes (file names need
//! not be UTF-8). The root directory itself is the entry with the empty path.

use crate::hash::Hash;

/// A path relative to a view's root, as raw bytes: no leading '/', no "." or ".." components,
/// no trailing '/'. The root is the empty path.
pub type RelPath = Vec<u8>;

/// What kind of object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One path of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Content hash; meaningful for files only (dirs and symlinks carry `Hash([0; 32])`).
    pub hash: Hash,
    /// Size in bytes: file length, symlink target length, 0 for dirs.
    pub size: u64,
    /// Permission bits and the set-id/sticky bits (`mode & 0o7777`); the kind is in `kind`.
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Symlink target, raw bytes; empty for files and dirs.
    pub target: Vec<u8>,
}

/// Errors reading or writing a manifest; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vrift manifest or corrupt: {reason}")]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(
        "{path}: manifest format version {found} is not supported (this vrift reads {supported})"
    )]
    Version {
        path: std::path::PathBuf,
        found: u32,
        supported: u32,
    },
}

/// A whole tree: entries in canonical order, with fast lookup by path and by directory.
///
/// CONTRACT (bodies are being written): construction sorts entries canonically; `encode` is
/// deterministic; `hash` is the BLAKE3 of `encode()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<(RelPath, Entry)>,
}

impl Manifest {
    /// Build from entries in any order. Later duplicates of a path replace earlier ones.
    pub fn from_entries(entries: impl IntoIterator<Item = (RelPath, Entry)>) -> Manifest {
        let _ = entries.into_iter();
        todo!()
    }
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        let _ = path;
        todo!()
    }
    /// All entries in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> + '_ {
        self.entries.iter().map(|(p, e)| (p.as_slice(), e))
    }
    /// Direct children of `dir` as (file name, entry), sorted by name.
    pub fn children<'a>(&'a self, dir: &[u8]) -> Vec<(&'a [u8], &'a Entry)> {
        let _ = dir;
        todo!()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        todo!()
    }
    /// Parse a canonical encoding; `path` is used in error messages only.
    pub fn decode(bytes: &[u8], path: &std::path::Path) -> Result<Manifest, ManifestError> {
        let _ = (bytes, path);
        todo!()
    }
    /// The manifest's identity: BLAKE3 of its canonical encoding.
    pub fn hash(&self) -> Hash {
        todo!()
    }
    pub fn load(path: &std::path::Path) -> Result<Manifest, ManifestError> {
        let _ = path;
        todo!()
    }
    /// Write to a temp file beside `path`, fsync, rename over `path`.
    pub fn save_atomic(&self, path: &std::path::Path) -> Result<(), ManifestError> {
        let _ = path;
        todo!()
    }
}
