//! The bytes of `struct stat` and `struct statx` that the supervisor writes into a tracee.

use vrift_common::manifest::EntryKind;

/// Everything a stat call reports about a view entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatInfo {
    pub kind: EntryKind,
    /// Permission bits (`& 0o7777`).
    pub perm: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
}

impl StatInfo {
    pub fn mode(&self) -> u32 {
        let fmt = match self.kind {
            EntryKind::File => libc::S_IFREG,
            EntryKind::Dir => libc::S_IFDIR,
            EntryKind::Symlink => libc::S_IFLNK,
        };
        fmt | (self.perm & 0o7777)
    }
    fn blocks(&self) -> u64 {
        self.size.div_ceil(4096) * 8
    }
    fn secs_nsecs(&self) -> (i64, i64) {
        (
            self.mtime_ns.div_euclid(1_000_000_000),
            self.mtime_ns.rem_euclid(1_000_000_000),
        )
    }

    /// `struct stat` as x86_64 lays it out. All times report the manifest's mtime.
    pub fn to_stat_bytes(&self) -> Vec<u8> {
        let (s, ns) = self.secs_nsecs();
        let mut b = Vec::with_capacity(144);
        b.extend_from_slice(&self.dev.to_ne_bytes()); // st_dev
        b.extend_from_slice(&self.ino.to_ne_bytes()); // st_ino
        b.extend_from_slice(&self.nlink.to_ne_bytes()); // st_nlink
        b.extend_from_slice(&self.mode().to_ne_bytes()); // st_mode
        b.extend_from_slice(&self.uid.to_ne_bytes()); // st_uid
        b.extend_from_slice(&self.gid.to_ne_bytes()); // st_gid
        b.extend_from_slice(&0u32.to_ne_bytes()); // __pad0
        b.extend_from_slice(&0u64.to_ne_bytes()); // st_rdev
        b.extend_from_slice(&(self.size as i64).to_ne_bytes()); // st_size
        b.extend_from_slice(&4096i64.to_ne_bytes()); // st_blksize
        b.extend_from_slice(&(self.blocks() as i64).to_ne_bytes()); // st_blocks
        for _ in 0..3 {
            b.extend_from_slice(&s.to_ne_bytes());
            b.extend_from_slice(&ns.to_ne_bytes());
        }
        b.extend_from_slice(&[0u8; 24]); // __unused
        debug_assert_eq!(b.len(), std::mem::size_of::<libc::stat>());
        b
    }

    /// `struct statx` (256 bytes) with the basic fields filled in.
    pub fn to_statx_bytes(&self) -> Vec<u8> {
        let (s, ns) = self.secs_nsecs();
        let ts = |b: &mut Vec<u8>| {
            b.extend_from_slice(&s.to_ne_bytes());
            b.extend_from_slice(&(ns as u32).to_ne_bytes());
            b.extend_from_slice(&0i32.to_ne_bytes());
        };
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(&(libc::STATX_BASIC_STATS).to_ne_bytes()); // stx_mask
        b.extend_from_slice(&4096u32.to_ne_bytes()); // stx_blksize
        b.extend_from_slice(&0u64.to_ne_bytes()); // stx_attributes
        b.extend_from_slice(&(self.nlink as u32).to_ne_bytes()); // stx_nlink
        b.extend_from_slice(&self.uid.to_ne_bytes());
        b.extend_from_slice(&self.gid.to_ne_bytes());
        b.extend_from_slice(&(self.mode() as u16).to_ne_bytes()); // stx_mode
        b.extend_from_slice(&0u16.to_ne_bytes()); // __spare0
        b.extend_from_slice(&self.ino.to_ne_bytes());
        b.extend_from_slice(&self.size.to_ne_bytes());
        b.extend_from_slice(&self.blocks().to_ne_bytes());
        b.extend_from_slice(&0u64.to_ne_bytes()); // stx_attributes_mask
        for _ in 0..4 {
            ts(&mut b); // atime, btime, ctime, mtime
        }
        b.extend_from_slice(&0u32.to_ne_bytes()); // rdev_major
        b.extend_from_slice(&0u32.to_ne_bytes()); // rdev_minor
        b.extend_from_slice(&libc::major(self.dev).to_ne_bytes());
        b.extend_from_slice(&libc::minor(self.dev).to_ne_bytes());
        b.resize(256, 0);
        debug_assert_eq!(b.len(), std::mem::size_of::<libc::statx>());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> StatInfo {
        StatInfo {
            kind: EntryKind::File,
            perm: 0o640,
            size: 5000,
            mtime_ns: 1_700_000_000_123_456_789,
            ino: 42,
            nlink: 1,
            uid: 1000,
            gid: 100,
            dev: libc::makedev(8, 1),
        }
    }

    #[test]
    fn stat_layout_matches_libc() {
        let b = info().to_stat_bytes();
        // SAFETY(test): libc::stat is plain old data of exactly this size.
        let st: libc::stat = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        assert_eq!(st.st_mode, libc::S_IFREG | 0o640);
        assert_eq!(st.st_size, 5000);
        assert_eq!(st.st_ino, 42);
        assert_eq!(st.st_uid, 1000);
        assert_eq!(st.st_gid, 100);
        assert_eq!(st.st_mtime, 1_700_000_000);
        assert_eq!(st.st_mtime_nsec, 123_456_789);
        assert_eq!(st.st_blocks, 16);
        assert_eq!(st.st_dev, libc::makedev(8, 1));
    }

    #[test]
    fn statx_layout_matches_libc() {
        let b = info().to_statx_bytes();
        // SAFETY(test): libc::statx is plain old data of exactly this size.
        let st: libc::statx = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        assert_eq!(st.stx_mode as u32, libc::S_IFREG | 0o640);
        assert_eq!(st.stx_size, 5000);
        assert_eq!(st.stx_ino, 42);
        assert_eq!(st.stx_mtime.tv_sec, 1_700_000_000);
        assert_eq!(st.stx_mtime.tv_nsec, 123_456_789);
        assert_eq!(st.stx_dev_major, 8);
        assert_eq!(st.stx_dev_minor, 1);
        assert_eq!(
            st.stx_mask & libc::STATX_BASIC_STATS,
            libc::STATX_BASIC_STATS
        );
    }
}
