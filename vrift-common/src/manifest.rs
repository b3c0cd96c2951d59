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
