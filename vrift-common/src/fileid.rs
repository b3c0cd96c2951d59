//! A file's identity on disk: its device, inode number, size, mtime and ctime. While it is
//! the same, the file at a path is the one seen before: a rename over the path changes the
//! inode, a write the times (and a program cannot set a ctime back). The kernel's clock
//! for file times ticks every few milliseconds, so a write of the same size within the tick
//! of the last look could go unseen; the files this guards are replaced by rename, never
//! written in place (indexes, vrift.manifest). Caches that would otherwise read a whole
//! file to know it unchanged (an index's check, the manifest a watched project's run takes)
//! keep this instead.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The five fields, little-endian, 8 bytes each.
pub type FileId = [u8; 40];

pub fn of_metadata(m: &std::fs::Metadata) -> FileId {
    let ns = |s: i64, ns: i64| {
        (s as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ns as u64)
    };
    let fields = [
        m.dev(),
        m.ino(),
        m.size(),
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec()),
    ];
    let mut id = [0u8; 40];
    for (chunk, f) in id.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&f.to_le_bytes());
    }
    id
}

/// The identity of the file at `path` (symlinks followed); `None` if it cannot be stat'd.
pub fn of_path(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| of_metadata(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_or_a_replacement_changes_the_identity_and_a_read_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let first = of_path(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(of_path(&p), Some(first));
        std::fs::write(&p, b"two!").unwrap();
        let written = of_path(&p).unwrap();
        assert_ne!(written, first);
        let other = dir.path().join("g");
        std::fs::write(&other, b"two!").unwrap();
        std::fs::rename(&other, &p).unwrap();
        assert_ne!(of_path(&p).unwrap(), written);
        assert_eq!(of_path(&dir.path().join("missing")), None);
    }
}
