//! The record a walk of a watched project leaves: the watcher's mark taken before the walk
//! and what the walk found that its manifest does not hold (the paths passed through, the
//! entries' origins on disk). A later run whose mark is the same takes it instead of
//! walking (see the module above).
//!
//! One file per project in the store's `watch/`, replaced by rename. It is a cache: any
//! doubt (a wrong magic, version or checksum, another root, a count that moved on, a
//! store whose blobs were removed since, a `vrift.manifest` that is not the one recorded)
//! means "walk".

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use vrift_common::fileid::FileId;
use vrift_common::hash::Hash;
use vrift_common::manifest::RelPath;

use super::Mark;
use crate::view::spec::PassthroughKind;

const MAGIC: &[u8; 8] = b"VRWATCH3";

#[derive(Debug, PartialEq)]
pub struct Record {
    pub mark: Mark,
    pub root: PathBuf,
    /// The store's blob generation when the walk ran (`Store::blob_generation`): `gc
    /// --delete` moves it on, and the walk's stat cache would then check the blobs again.
    pub blob_generation: u64,
    pub manifest_hash: Hash,
    /// The identity of the `vrift.manifest` whose bytes the walk saw hash to
    /// `manifest_hash` (`vrift_common::fileid`), if it saw them: while the file keeps it, a
    /// run need not read and hash the file to know it is that manifest.
    pub manifest_id: Option<FileId>,
    pub passthrough: Vec<(RelPath, PassthroughKind)>,
    /// Each entry's origin on disk, as the index's origins section holds them
    /// (`vrift_common::index::origins_section`: 16 bytes per entry in entry order).
    pub origins: Vec<u8>,
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.origins.len() * 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.mark.instance.to_le_bytes());
        out.extend_from_slice(&self.mark.events.to_le_bytes());
        out.extend_from_slice(&self.blob_generation.to_le_bytes());
        out.extend_from_slice(&self.manifest_hash.0);
        match &self.manifest_id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(id);
            }
            None => out.push(0),
        }
        put(&mut out, self.root.as_os_str().as_bytes());
        out.extend_from_slice(&(self.passthrough.len() as u64).to_le_bytes());
        for (p, kind) in &self.passthrough {
            out.push(match kind {
                PassthroughKind::Dir => 0,
                PassthroughKind::File => 1,
            });
            put(&mut out, p);
        }
        put(&mut out, &self.origins);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return None;
        }
        let mark = Mark {
            instance: r.u64()?,
            events: r.u64()?,
        };
        let blob_generation = r.u64()?;
        let manifest_hash = Hash(r.take(32)?.try_into().ok()?);
        let manifest_id = match r.take(1)?[0] {
            0 => None,
            1 => Some(r.take(40)?.try_into().ok()?),
            _ => return None,
        };
        let root = PathBuf::from(std::ffi::OsStr::from_bytes(r.bytes()?));
        let n = usize::try_from(r.u64()?).ok()?;
        let mut passthrough = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let kind = match r.take(1)?[0] {
                0 => PassthroughKind::Dir,
                1 => PassthroughKind::File,
                _ => return None,
            };
            passthrough.push((r.bytes()?.to_vec(), kind));
        }
        let origins = r.bytes()?.to_vec();
        if !r.0.is_empty() {
            return None;
        }
        Some(Record {
            mark,
            root,
            blob_generation,
            manifest_hash,
            manifest_id,
            passthrough,
            origins,
        })
    }

    pub fn load(path: &Path) -> Option<Record> {
        Record::decode(&std::fs::read(path).ok()?)
    }

    /// Replace the record at `path` (by rename: a reader sees the old one or the new one).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &self.encode())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            mark: Mark {
                instance: 7,
                events: 9,
            },
            root: PathBuf::from("/p/proj"),
            blob_generation: 3,
            manifest_hash: Hash::of(b"m"),
            manifest_id: Some([5; 40]),
            passthrough: vec![
                (b"target".to_vec(), PassthroughKind::Dir),
                (b"a.o".to_vec(), PassthroughKind::File),
            ],
            origins: (0u8..48).collect(),
        }
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let r = record();
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let without_id = Record {
            manifest_id: None,
            ..record()
        };
        assert_eq!(Record::decode(&without_id.encode()), Some(without_id));
    }

    #[test]
    fn a_damaged_or_cut_record_is_no_record() {
        let bytes = record().encode();
        for i in [0, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert_eq!(Record::decode(&b), None, "byte {i} flipped");
        }
        for n in [0, 10, bytes.len() - 1] {
            assert_eq!(Record::decode(&bytes[..n]), None, "cut at {n}");
        }
    }
}
