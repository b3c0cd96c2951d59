//! What stat and getdents report for view entries.

use super::entry::{Content, DeltaId, Node, ViewEntry};
use super::errno::Errno;
use super::layers::{LayerSource, View};

/// File type bits of `st_mode` (the same values on Linux and macOS).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFSOCK: u32 = 0o140000;

/// The kind of an entry, as stat and getdents name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

impl FileType {
    pub fn of(e: &ViewEntry) -> FileType {
        match e.node {
            Node::File(_) => FileType::File,
            Node::Dir => FileType::Dir,
            Node::Symlink(_) => FileType::Symlink,
            Node::Fifo => FileType::Fifo,
            Node::Special { kind: S_IFCHR, .. } => FileType::Char,
            Node::Special { kind: S_IFBLK, .. } => FileType::Block,
            Node::Special { .. } => FileType::Socket,
        }
    }
    /// The `S_IF*` bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::File => S_IFREG,
            FileType::Dir => S_IFDIR,
            FileType::Symlink => S_IFLNK,
            FileType::Fifo => S_IFIFO,
            FileType::Char => S_IFCHR,
            FileType::Block => S_IFBLK,
            FileType::Socket => S_IFSOCK,
        }
    }
    /// The `d_type` of a dirent (`DT_REG`, ...; the same values on Linux and macOS).
    pub fn d_type(self) -> u8 {
        match self {
            FileType::Fifo => 1,
            FileType::Char => 2,
            FileType::Block => 6,
            FileType::Socket => 12,
            FileType::Dir => 4,
            FileType::File => 8,
            FileType::Symlink => 10,
        }
    }
}

/// The fields of `struct stat` / `statx` a view answers. Times: a manifest records only the
/// modification time, so atime and ctime report it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    /// Type bits and permission bits.
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Set while the file is being written: its size and mtime are then the private copy's,
    /// which the projection should read from that copy.
    pub pending: Option<DeltaId>,
}

/// One line of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub kind: FileType,
}

impl<L: LayerSource> View<L> {
    /// The stat of the entry at `rel` (no symlink followed, no permission check).
    pub fn stat_rel(&self, rel: &[u8]) -> Result<Stat, Errno> {
        let (e, _) = self.locate(rel).ok_or(Errno::ENOENT)?;
        Ok(self.stat_of(rel, &e))
    }

    /// The stat of `e`, found at `rel`.
    pub(crate) fn stat_of(&self, rel: &[u8], e: &ViewEntry) -> Stat {
        let kind = FileType::of(e);
        let quick = e.is_dir().then(|| self.layer_dir_nlink(rel)).flatten();
        let nlink = match quick {
            Some(n) => n,
            None => self.stat_nlink(rel, e),
        };
        // Symlinks always show 0777, as on Linux.
        let perm = if e.is_symlink() {
            0o777
        } else {
            e.mode & 0o7777
        };
        // Directories report one block, as ext4 and most disk file systems do; files are
        // counted in whole 4 KiB blocks like a real allocation.
        let size = if e.is_dir() { 4096 } else { e.size };
        Stat {
            dev: self.dev,
            ino: e.ino,
            mode: kind.mode_bits() | perm,
            nlink,
            // The entry's own owner where it records one (format version 2), else the view's.
            uid: self.owner_of(e).uid,
            gid: self.owner_of(e).gid,
            rdev: match e.node {
                Node::Special { rdev, .. } => rdev,
                _ => 0,
            },
            size,
            blksize: 4096,
            blocks: size.div_ceil(4096) * 8,
            atime_ns: e.atime(),
            mtime_ns: e.mtime_ns,
            ctime_ns: e.ctime().max(self.delta.inode_ctime(e.ino).unwrap_or(0)),
            pending: match e.content() {
                Some(Content::Pending(id)) => Some(id),
                _ => None,
            },
        }
    }

    /// `st_nlink` of `e` at `rel` through the merged layers and the delta.
    fn stat_nlink(&self, rel: &[u8], e: &ViewEntry) -> u64 {
        match e.is_dir().then(|| self.locate(rel)).flatten() {
            Some((_, mask)) => self.dir_nlink(rel, mask),
            None if e.is_dir() => 1,
            // Names hard-linked during the run share the inode.
            None => self.delta.name_count(e.ino).max(1) as u64,
        }
    }

    /// The listing of directory `rel` for getdents: ".", "..", then the merged children by
    /// name. The root's ".." is the root itself, as for the root of a mounted file system.
    pub fn list_dir(&self, rel: &[u8]) -> Result<Vec<DirEntry>, Errno> {
        let (e, mask) = self.locate(rel).ok_or(Errno::ENOENT)?;
        if !e.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let parent_ino = if rel.is_empty() {
            e.ino
        } else {
            self.lookup(super::layers::parent_of(rel))
                .map(|p| p.ino)
                .unwrap_or(e.ino)
        };
        let mut out = vec![
            DirEntry {
                name: b".".to_vec(),
                ino: e.ino,
                kind: FileType::Dir,
            },
            DirEntry {
                name: b"..".to_vec(),
                ino: parent_ino,
                kind: FileType::Dir,
            },
        ];
        for (name, c, _) in self.merged_children(rel, mask) {
            out.push(DirEntry {
                name,
                ino: c.ino,
                kind: FileType::of(&c),
            });
        }
        Ok(out)
    }
}
