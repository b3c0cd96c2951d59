//! The bytes of `struct stat` and `struct statx` (x86_64 layouts) the supervisor writes into
//! a caller's buffer, from the view's [`Stat`].

use vrift_common::vfs::Stat;

fn split_ns(ns: i64) -> (i64, i64) {
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// `struct stat`.
pub fn stat_bytes(st: &Stat) -> Vec<u8> {
    let mut b = Vec::with_capacity(144);
    b.extend_from_slice(&st.dev.to_ne_bytes());
    b.extend_from_slice(&st.ino.to_ne_bytes());
    b.extend_from_slice(&st.nlink.to_ne_bytes());
    b.extend_from_slice(&st.mode.to_ne_bytes());
    b.extend_from_slice(&st.uid.to_ne_bytes());
    b.extend_from_slice(&st.gid.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // __pad0
    b.extend_from_slice(&st.rdev.to_ne_bytes());
    b.extend_from_slice(&(st.size as i64).to_ne_bytes());
    b.extend_from_slice(&(st.blksize as i64).to_ne_bytes());
    b.extend_from_slice(&(st.blocks as i64).to_ne_bytes());
    for t in [st.atime_ns, st.mtime_ns, st.ctime_ns] {
        let (s, ns) = split_ns(t);
        b.extend_from_slice(&s.to_ne_bytes());
        b.extend_from_slice(&ns.to_ne_bytes());
    }
    b.extend_from_slice(&[0u8; 24]); // __unused
    debug_assert_eq!(b.len(), std::mem::size_of::<libc::stat>());
    b
}

/// `struct statx`, with the basic fields (the view has no birth time).
pub fn statx_bytes(st: &Stat) -> Vec<u8> {
    let ts = |b: &mut Vec<u8>, t: i64| {
        let (s, ns) = split_ns(t);
        b.extend_from_slice(&s.to_ne_bytes());
        b.extend_from_slice(&(ns as u32).to_ne_bytes());
        b.extend_from_slice(&0i32.to_ne_bytes());
    };
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(&libc::STATX_BASIC_STATS.to_ne_bytes()); // stx_mask
    b.extend_from_slice(&(st.blksize as u32).to_ne_bytes());
    b.extend_from_slice(&0u64.to_ne_bytes()); // stx_attributes
    b.extend_from_slice(&(st.nlink as u32).to_ne_bytes());
    b.extend_from_slice(&st.uid.to_ne_bytes());
    b.extend_from_slice(&st.gid.to_ne_bytes());
    b.extend_from_slice(&(st.mode as u16).to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes()); // __spare0
    b.extend_from_slice(&st.ino.to_ne_bytes());
    b.extend_from_slice(&st.size.to_ne_bytes());
    b.extend_from_slice(&st.blocks.to_ne_bytes());
    b.extend_from_slice(&0u64.to_ne_bytes()); // stx_attributes_mask
    ts(&mut b, st.atime_ns);
    ts(&mut b, 0); // btime: unknown (not in stx_mask)
    ts(&mut b, st.ctime_ns);
    ts(&mut b, st.mtime_ns);
    b.extend_from_slice(&libc::major(st.rdev).to_ne_bytes());
    b.extend_from_slice(&libc::minor(st.rdev).to_ne_bytes());
    b.extend_from_slice(&libc::major(st.dev).to_ne_bytes());
    b.extend_from_slice(&libc::minor(st.dev).to_ne_bytes());
    b.resize(256, 0);
    debug_assert_eq!(b.len(), std::mem::size_of::<libc::statx>());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stat {
        Stat {
            dev: libc::makedev(8, 1),
            ino: 42,
            mode: libc::S_IFREG | 0o640,
            nlink: 1,
            uid: 1000,
            gid: 100,
            rdev: 0,
            size: 5000,
            blksize: 4096,
            blocks: 16,
            atime_ns: 1_700_000_000_123_456_789,
            mtime_ns: 1_700_000_000_123_456_789,
            ctime_ns: 1_700_000_000_123_456_789,
            pending: None,
        }
    }

    #[test]
    fn stat_layout_matches_libc() {
        let b = stat_bytes(&sample());
        let st: libc::stat = crate::sys::mem::pod_from_bytes(&b);
        assert_eq!(st.st_mode, libc::S_IFREG | 0o640);
        assert_eq!(st.st_size, 5000);
        assert_eq!(st.st_ino, 42);
        assert_eq!((st.st_uid, st.st_gid), (1000, 100));
        assert_eq!(
            (st.st_mtime, st.st_mtime_nsec),
            (1_700_000_000, 123_456_789)
        );
        assert_eq!(st.st_blocks, 16);
        assert_eq!(st.st_dev, libc::makedev(8, 1));
    }

    #[test]
    fn statx_layout_matches_libc() {
        let b = statx_bytes(&sample());
        let st: libc::statx = crate::sys::mem::pod_from_bytes(&b);
        assert_eq!(st.stx_mode as u32, libc::S_IFREG | 0o640);
        assert_eq!(st.stx_size, 5000);
        assert_eq!(st.stx_ino, 42);
        assert_eq!(
            (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            (1_700_000_000, 123_456_789)
        );
        assert_eq!((st.stx_dev_major, st.stx_dev_minor), (8, 1));
        assert_eq!(
            st.stx_mask & libc::STATX_BASIC_STATS,
            libc::STATX_BASIC_STATS
        );
    }
}
