//! Where an entry of a project's manifest came from on disk: the inode number and the
//! status-change time its file had when the ingest that made the entry looked at it.
//!
//! A view of a project reports them for the entries the run has not changed, so that tools
//! that cache a file's identity beside its content (git's index keeps each file's inode
//! number and ctime) find the files they saw on disk unchanged. They are facts about the
//! disk, not about the tree: a manifest never holds them (its hash would change whenever a
//! file is copied or touched without a change), and a view of a manifest that was not just
//! ingested from disk has none.

use crate::manifest::RelPath;

/// A path's inode number and ctime on disk, as the ingest's `lstat` saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub ino: u64,
    pub ctime_ns: i64,
}

impl Origin {
    /// Numbers with the top bit set are the ones a view gives entries made during a run
    /// (see `vfs::entry`); a disk inode number there is not used, so the two never meet.
    pub fn usable(&self) -> bool {
        self.ino != 0 && self.ino & (1 << 63) == 0
    }
}

/// The origin of every entry of an ingest's manifest, by path.
///
/// Keyed by foldhash, not SipHash: an ingest of 20,000 files hashes every path several
/// times (here, in the stat cache and in the walk's inode table), and SipHash was a tenth
/// of a refresh. foldhash is seeded per process, so names cannot be chosen to collide.
pub type Origins = foldhash::HashMap<RelPath, Origin>;
