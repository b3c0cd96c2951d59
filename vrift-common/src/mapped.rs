//! Bytes of a file that is never written in place (an index, a blob of the store), mapped
//! read-only, or bytes held in memory: a reader that only looks at some of a large file
//! (a run of a watched project, the shim's index lookups) neither copies nor faults in the
//! rest.

use std::fs::File;

pub enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    /// Map `file` read-only. The caller promises the file is never written in place: it was
    /// written under a temp name and renamed into place (indexes, blobs), so its bytes do not
    /// change under the mapping.
    pub fn map_immutable(file: &File) -> std::io::Result<Bytes> {
        // SAFETY: a read-only mapping of a file that is never modified in place (the
        // caller's promise above), so the bytes behind the slice do not change. A file
        // truncated by someone else could still raise SIGBUS on access, which no safe API
        // avoids for mapped files; every reader bounds-checks what it reads.
        unsafe { memmap2::Mmap::map(file) }.map(Bytes::Map)
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes::Owned(v)
    }
}

/// A copy is held in memory (copies are rare: a mapped manifest cloned for a layer stack).
impl Clone for Bytes {
    fn clone(&self) -> Bytes {
        Bytes::Owned(self.to_vec())
    }
}
