//! What one path of a view is: a manifest entry as seen through the layers, plus what only a
//! live view has (content still being written, FIFOs, inode numbers).

use crate::hash::Hash;
use crate::manifest::{Entry, EntryKind, EntryMeta};

/// Names a private copy-on-write file that the projection is writing and has not hashed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeltaId(pub u64);

/// Where a regular file's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// An immutable blob in the store (unchanged, or a committed write).
    Blob(Hash),
    /// A private copy being written; `commit` turns it into a blob.
    Pending(DeltaId),
}

/// The kind of a view entry, with what each kind carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File(Content),
    Dir,
    /// Raw target bytes, never empty.
    Symlink(Vec<u8>),
    /// A named pipe: from a manifest (format version 2), or made by `mknod` in the run.
    Fifo,
    /// A device node or socket made during the run: `kind` is `S_IFCHR`, `S_IFBLK` or
    /// `S_IFSOCK`, `rdev` the device number. Lives in the delta only, like a FIFO.
    Special {
        kind: u32,
        rdev: u64,
    },
}

/// One path of a view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewEntry {
    pub node: Node,
    /// File length (as of the last commit for a pending file), target length for a symlink,
    /// 0 otherwise.
    pub size: u64,
    /// Permission, set-id and sticky bits (`& 0o7777`).
    pub mode: u32,
    pub mtime_ns: i64,
    /// Stable within a run: see [`path_ino`].
    pub ino: u64,
    /// The manifest's owner, xattrs and link group of the entry it came from; it moves with
    /// the entry (rename) and stays through writes to it. Empty for entries made in the run.
    pub meta: EntryMeta,
    /// Last access and last status change, for the run only (a manifest records neither);
    /// 0 means "the same as `mtime_ns`", which is what an entry from a manifest shows.
    pub atime_ns: i64,
    pub ctime_ns: i64,
}

impl ViewEntry {
    pub fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir)
    }
    pub fn is_symlink(&self) -> bool {
        matches!(self.node, Node::Symlink(_))
    }
    pub fn is_file(&self) -> bool {
        matches!(self.node, Node::File(_))
    }
    /// The content of a regular file.
    pub fn content(&self) -> Option<Content> {
        match self.node {
            Node::File(c) => Some(c),
            _ => None,
        }
    }

    /// The view of a manifest entry found at `path`.
    pub fn from_manifest(path: &[u8], e: &Entry) -> ViewEntry {
        let mut v = ViewEntry::from_layer(e);
        v.fill_ino(path);
        v
    }

    /// Like [`ViewEntry::from_manifest`] with the inode number left unassigned (0): set it with
    /// [`ViewEntry::fill_ino`] once the entry is needed beyond a path walk.
    pub(crate) fn from_layer(e: &Entry) -> ViewEntry {
        let node = match e.kind {
            EntryKind::File => Node::File(Content::Blob(e.hash)),
            EntryKind::Dir => Node::Dir,
            EntryKind::Symlink => Node::Symlink(e.target.clone()),
            EntryKind::Fifo => Node::Fifo,
        };
        let size = match e.kind {
            EntryKind::File => e.size,
            EntryKind::Dir | EntryKind::Fifo => 0,
            EntryKind::Symlink => e.target.len() as u64,
        };
        ViewEntry {
            node,
            size,
            mode: e.mode & 0o7777,
            mtime_ns: e.mtime_ns,
            ino: 0,
            meta: e.meta.clone(),
            atime_ns: 0,
            ctime_ns: 0,
        }
    }

    /// The access time stat reports.
    pub fn atime(&self) -> i64 {
        if self.atime_ns != 0 {
            self.atime_ns
        } else {
            self.mtime_ns
        }
    }

    /// The status-change time stat reports.
    pub fn ctime(&self) -> i64 {
        if self.ctime_ns != 0 {
            self.ctime_ns
        } else {
            self.mtime_ns
        }
    }

    /// Give an entry from a layer the inode number of its link group, or else the one
    /// derived from the path it was found at.
    pub(crate) fn fill_ino(&mut self, path: &[u8]) {
        if self.ino == 0 {
            self.ino = if self.meta.link != 0 {
                link_ino(self.meta.link)
            } else {
                path_ino(path)
            };
        }
    }

    /// The manifest entry for this view entry; `None` for what a manifest cannot hold
    /// (a pending file).
    pub fn to_manifest(&self) -> Option<Entry> {
        let zero = Hash([0; 32]);
        let (kind, hash, size, target) = match &self.node {
            Node::File(Content::Blob(h)) => (EntryKind::File, *h, self.size, Vec::new()),
            Node::File(Content::Pending(_)) | Node::Special { .. } => return None,
            Node::Fifo => (EntryKind::Fifo, zero, 0, Vec::new()),
            Node::Dir => (EntryKind::Dir, zero, 0, Vec::new()),
            Node::Symlink(t) => (EntryKind::Symlink, zero, t.len() as u64, t.clone()),
        };
        Some(Entry {
            kind,
            hash,
            size,
            mode: self.mode & 0o7777,
            mtime_ns: self.mtime_ns,
            target,
            meta: self.meta.clone(),
        })
    }
}

/// The inode number of the names of a manifest's hard-link group `group`: one number for all
/// of them (a NUL cannot be in a path, so it never equals a path's number).
pub fn link_ino(group: u64) -> u64 {
    let mut key = b"\0link\0".to_vec();
    key.extend_from_slice(&group.to_le_bytes());
    path_ino(&key)
}

/// Inode numbers of entries made during a run have this bit set; path-derived ones do not,
/// so the two never collide.
pub(crate) const NEW_INO_BIT: u64 = 1 << 63;

/// The inode number of an entry that comes from a manifest: derived from the path where it
/// first appears (the first 63 bits of BLAKE3 of the path), so it is the same in every run and
/// in every layer. An entry keeps its number when renamed; entries made during a run take
/// numbers from a counter (see `Delta`) with the top bit set. Never 0 (readdir treats 0 as a
/// deleted slot).
pub fn path_ino(path: &[u8]) -> u64 {
    let h = blake3::hash(path);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    let ino = u64::from_le_bytes(b) & !NEW_INO_BIT;
    if ino == 0 {
        1
    } else {
        ino
    }
}
