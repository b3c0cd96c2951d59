//! The stat cache: like git's index, it lets a re-ingest of an unchanged tree skip reading
//! file contents.
//!
//! One cache file per project root lives in the store (`<store>/statcache/<blake3 of the
//! canonical absolute root path>`), never in the project. For each file it records what
//! `lstat` said when the file was hashed (size, mtime, ctime, inode, device, mode) and the
//! hash. A later ingest reuses the hash only when every one of those fields is equal and the
//! entry is not *racy*: a file whose mtime is not older than the moment the caching ingest
//! started could have been changed again within the same timestamp tick after it was hashed,
//! so it is re-hashed next time (git's "racy clean" problem).
//!
//! The cache also records the store's blob generation (`Store::blob_generation`) when it
//! was written: while the store has removed no blob since, every hash in the cache names a
//! blob still there, so a re-ingest need not look at the blobs at all (one stat per file, the
//! file's own, instead of two).
//!
//! Each entry also says whether the file had extended attributes a manifest keeps: setting
//! or removing one changes the file's ctime, so while the stat matches (ctime included, and
//! not racy) a file recorded without any still has none, and a re-ingest need not list them
//! (one system call per file, as costly as the `lstat`).
//!
//! Format (little-endian): magic `VRIFTSC3`, root path (u32 length + bytes), racy reference
//! (i64 ns), blob generation (u64), entry count (u64), entries (path u32 length + bytes,
//! size u64, mtime i64, ctime i64, ino u64, dev u64, mode u32, hash 32 bytes, flags u8: 1 =
//! no kept xattrs), then the BLAKE3 of everything before it. `VRIFTSC2` (the same without
//! the flags, so every file's xattrs are read) and `VRIFTSC1` (without the generation
//! either, so its blobs are checked) are still read. A file that fails any check is
//! reported as corrupt and never trusted.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hash::Hash;

const MAGIC: &[u8; 8] = b"VRIFTSC3";
/// The format before each entry's flags were recorded.
const MAGIC_V2: &[u8; 8] = b"VRIFTSC2";
/// The format before the blob generation was recorded.
const MAGIC_V1: &[u8; 8] = b"VRIFTSC1";
/// Entry flag: the file had no extended attributes a manifest keeps.
const NO_XATTRS: u8 = 1;

/// How far the racy reference is put before the ingest's start: the kernel stamps files
/// from a coarse clock that can lag the real-time clock by a scheduler tick.
const CLOCK_SLACK: Duration = Duration::from_millis(50);
/// File systems with whole-second (or 2 s, FAT) timestamps: an mtime with no nanoseconds
/// must be this much older than the reference to be trusted.
const COARSE_GRANULARITY_NS: i64 = 2_000_000_000;

/// The `lstat` fields that must be unchanged for a cached hash to be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
}

impl FileStat {
    pub fn from_metadata(m: &fs::Metadata) -> FileStat {
        FileStat {
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
            dev: m.dev(),
            mode: m.mode(),
        }
    }
}

/// Errors loading a stat cache. Callers treat any of them as "no cache" plus a warning.
#[derive(Debug, thiserror::Error)]
pub enum StatCacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt stat cache ({reason}); it will be rebuilt")]
    Corrupt { path: PathBuf, reason: String },
}

/// The racy reference for an ingest starting now: file mtimes at or after it are not trusted.
pub fn racy_reference_now() -> i64 {
    let t = SystemTime::now()
        .checked_sub(CLOCK_SLACK)
        .unwrap_or(UNIX_EPOCH);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(_) => 0,
    }
}

/// Where the cache for `canonical_root` lives in the store at `store_root`.
pub fn cache_path(store_root: &Path, canonical_root: &Path) -> PathBuf {
    let key = blake3::hash(canonical_root.as_os_str().as_bytes());
    store_root.join("statcache").join(key.to_hex().as_str())
}

/// A loaded (or empty) stat cache for one root.
#[derive(Clone, Debug, Default)]
pub struct StatCache {
    racy_ref_ns: i64,
    /// The store's blob generation when the cache was written (`None`: not recorded).
    blob_generation: Option<u64>,
    /// The cache file's bytes, which hold the entries' paths.
    bytes: Vec<u8>,
    /// The entries in path order, found by binary search. One allocation for the whole
    /// cache instead of one per path: a refresh loads it before every run in a project.
    entries: Vec<CacheEntry>,
    /// Written with entry flags (`VRIFTSC3`).
    has_flags: bool,
}

/// One file of the cache: where its path lies in [`StatCache::bytes`], and what was recorded.
#[derive(Clone, Debug)]
struct CacheEntry {
    path_at: usize,
    path_len: usize,
    stat: FileStat,
    hash: Hash,
    flags: u8,
}

impl StatCache {
    fn path(&self, e: &CacheEntry) -> &[u8] {
        &self.bytes[e.path_at..e.path_at + e.path_len]
    }

    fn entry(&self, rel_path: &[u8]) -> Option<&CacheEntry> {
        let i = self
            .entries
            .binary_search_by(|e| self.path(e).cmp(rel_path))
            .ok()?;
        Some(&self.entries[i])
    }

    /// An empty cache: nothing is trusted.
    pub fn empty() -> StatCache {
        StatCache::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The store's blob generation when this cache was written, if it recorded one.
    pub fn blob_generation(&self) -> Option<u64> {
        self.blob_generation
    }

    /// The hash recorded for `rel_path`, if `stat` matches what was recorded and the entry
    /// is not racy.
    pub fn lookup(&self, rel_path: &[u8], stat: &FileStat) -> Option<Hash> {
        let e = self.entry(rel_path)?;
        if e.stat != *stat || is_racy(e.stat.mtime_ns, self.racy_ref_ns) {
            return None;
        }
        Some(e.hash)
    }

    /// Does the cache vouch that `rel_path`, whose `lstat` is `stat`, has no extended
    /// attributes a manifest keeps? Only when it recorded none for the same stat, and the
    /// ctime is not racy (an attribute set within the clock tick after the caching ingest
    /// listed them would leave the ctime as it was).
    pub fn has_no_xattrs(&self, rel_path: &[u8], stat: &FileStat) -> bool {
        self.entry(rel_path).is_some_and(|e| {
            e.stat == *stat
                && !is_racy(e.stat.mtime_ns, self.racy_ref_ns)
                && e.flags & NO_XATTRS != 0
                && !is_racy(e.stat.ctime_ns, self.racy_ref_ns)
        })
    }

    /// Was the cache written with each entry's flags (the current format)?
    pub fn has_flags(&self) -> bool {
        self.has_flags
    }

    /// Load the cache at `path`, written for `canonical_root`. A missing file is an empty
    /// cache; anything malformed is `Corrupt`.
    pub fn load(path: &Path, canonical_root: &Path) -> Result<StatCache, StatCacheError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StatCache::empty()),
            Err(source) => {
                return Err(StatCacheError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        decode(bytes, canonical_root).map_err(|reason| StatCacheError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// Could the file have changed after it was hashed without its mtime changing?
fn is_racy(mtime_ns: i64, racy_ref_ns: i64) -> bool {
    if mtime_ns >= racy_ref_ns {
        return true;
    }
    // Whole-second timestamps hide changes within the same second (or two, on FAT).
    mtime_ns % 1_000_000_000 == 0 && mtime_ns > racy_ref_ns - COARSE_GRANULARITY_NS
}

/// Encode a cache for `canonical_root`; `racy_ref_ns` is [`racy_reference_now`] taken before
/// the ingest that produced `entries` looked at any file, and `blob_generation` the store's
/// blob generation read then (every hash in `entries` names a blob stored since). Each entry
/// says whether its file had no kept extended attributes.
pub fn encode<'a>(
    canonical_root: &Path,
    racy_ref_ns: i64,
    blob_generation: u64,
    entries: impl ExactSizeIterator<Item = (&'a [u8], &'a FileStat, &'a Hash, bool)>,
) -> Vec<u8> {
    let root = canonical_root.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(64 + entries.len() * 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(root.len() as u32).to_le_bytes());
    out.extend_from_slice(root);
    out.extend_from_slice(&racy_ref_ns.to_le_bytes());
    out.extend_from_slice(&blob_generation.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, st, hash, no_xattrs) in entries {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&st.size.to_le_bytes());
        out.extend_from_slice(&st.mtime_ns.to_le_bytes());
        out.extend_from_slice(&st.ctime_ns.to_le_bytes());
        out.extend_from_slice(&st.ino.to_le_bytes());
        out.extend_from_slice(&st.dev.to_le_bytes());
        out.extend_from_slice(&st.mode.to_le_bytes());
        out.extend_from_slice(&hash.0);
        out.push(if no_xattrs { NO_XATTRS } else { 0 });
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Write `bytes` to `path` atomically (temp file beside it, rename). No fsync: a cache lost
/// or torn by a crash fails its checksum and is rebuilt.
pub fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache path has a parent");
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

fn decode(bytes: Vec<u8>, canonical_root: &Path) -> Result<StatCache, String> {
    if bytes.len() < MAGIC.len() + 32 {
        return Err("bad magic".into());
    }
    let version = match &bytes[..MAGIC.len()] {
        m if m == MAGIC => 3,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V1 => 1,
        _ => return Err("bad magic".into()),
    };
    let v1 = version == 1;
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader {
        buf: &body[MAGIC.len()..],
    };
    let root_len = r.u32()? as usize;
    if r.take(root_len)? != canonical_root.as_os_str().as_bytes() {
        return Err("written for another directory".into());
    }
    let racy_ref_ns = r.i64()?;
    let blob_generation = if v1 { None } else { Some(r.u64()?) };
    let count = r.u64()?;
    // Each entry is at least 80 bytes: refuse counts the data cannot hold.
    if count > (r.buf.len() / 80) as u64 {
        return Err("entry count larger than the file".into());
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = r.u32()? as usize;
        let path_at = body.len() - r.buf.len();
        r.take(len)?;
        let st = FileStat {
            size: r.u64()?,
            mtime_ns: r.i64()?,
            ctime_ns: r.i64()?,
            ino: r.u64()?,
            dev: r.u64()?,
            mode: r.u32()?,
        };
        let hash = Hash(r.take(32)?.try_into().unwrap());
        let flags = if version >= 3 { r.take(1)?[0] } else { 0 };
        entries.push(CacheEntry {
            path_at,
            path_len: len,
            stat: st,
            hash,
            flags,
        });
    }
    if !r.buf.is_empty() {
        return Err("trailing bytes".into());
    }
    // Ingests write their files in path order; a cache written otherwise (by an older
    // vrift) is put in order once. Of two entries for one path the later one counts.
    let path = |e: &CacheEntry| &bytes[e.path_at..e.path_at + e.path_len];
    if !entries.windows(2).all(|w| path(&w[0]) < path(&w[1])) {
        entries.sort_by(|a, b| path(a).cmp(path(b)));
        entries.dedup_by(|later, kept| {
            let same = path(later) == path(kept);
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
    }
    Ok(StatCache {
        racy_ref_ns,
        blob_generation,
        bytes,
        entries,
        has_flags: version >= 3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(mtime_ns: i64) -> FileStat {
        FileStat {
            size: 10,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 7,
            dev: 3,
            mode: 0o100644,
        }
    }

    const NOW: i64 = 1_700_000_000_123_456_789;

    fn cache_with(path: &[u8], s: FileStat, racy_ref: i64) -> StatCache {
        let h = Hash::of(b"x");
        let bytes = encode(
            Path::new("/r"),
            racy_ref,
            0,
            vec![(path, &s, &h, true)].into_iter(),
        );
        decode(bytes, Path::new("/r")).unwrap()
    }

    #[test]
    fn round_trip_and_lookup() {
        let s = st(NOW - 10_000_000_000);
        let c = cache_with(b"a/b\xff", s, NOW);
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(b"a/b\xff", &s), Some(Hash::of(b"x")));
        assert_eq!(c.lookup(b"a/b", &s), None);
    }

    #[test]
    fn any_changed_field_misses() {
        let s = st(NOW - 10_000_000_000);
        let c = cache_with(b"f", s, NOW);
        let variants = [
            FileStat { size: 11, ..s },
            FileStat {
                mtime_ns: s.mtime_ns + 1,
                ..s
            },
            FileStat {
                ctime_ns: s.ctime_ns + 1,
                ..s
            },
            FileStat { ino: 8, ..s },
            FileStat { dev: 4, ..s },
            FileStat {
                mode: 0o100755,
                ..s
            },
        ];
        for v in variants {
            assert_eq!(c.lookup(b"f", &v), None, "{v:?}");
        }
    }

    #[test]
    fn racy_entries_are_not_trusted() {
        // mtime equal to or after the reference: racy
        let s = st(NOW);
        assert_eq!(cache_with(b"f", s, NOW).lookup(b"f", &s), None);
        let s = st(NOW + 5);
        assert_eq!(cache_with(b"f", s, NOW).lookup(b"f", &s), None);
        // just before: trusted
        let s = st(NOW - 1);
        assert!(cache_with(b"f", s, NOW).lookup(b"f", &s).is_some());
    }

    #[test]
    fn whole_second_mtimes_need_more_margin() {
        let whole = (NOW / 1_000_000_000) * 1_000_000_000; // < NOW, same second
        let s = st(whole);
        assert_eq!(cache_with(b"f", s, NOW).lookup(b"f", &s), None);
        let s = st(whole - 3_000_000_000);
        assert!(cache_with(b"f", s, NOW).lookup(b"f", &s).is_some());
    }

    #[test]
    fn corruption_is_detected() {
        let s = st(1);
        let h = Hash::of(b"x");
        let good = encode(
            Path::new("/r"),
            NOW,
            0,
            vec![(&b"f"[..], &s, &h, false)].into_iter(),
        );
        assert!(decode(good.clone(), Path::new("/r")).is_ok());
        assert!(decode(good.clone(), Path::new("/other")).is_err());
        for i in [0, 9, 20, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(bad.clone(), Path::new("/r")).is_err(), "flip at {i}");
        }
        for n in [0, 5, good.len() - 1] {
            assert!(
                decode(good[..n].to_vec(), Path::new("/r")).is_err(),
                "truncated at {n}"
            );
        }
    }

    #[test]
    fn the_blob_generation_round_trips_and_the_older_formats_are_still_read() {
        let (s, h) = (st(1), Hash::of(b"x"));
        let v3 = encode(
            Path::new("/r"),
            NOW,
            7,
            vec![(&b"f"[..], &s, &h, true)].into_iter(),
        );
        let c = decode(v3.clone(), Path::new("/r")).unwrap();
        assert_eq!(c.blob_generation(), Some(7));
        assert_eq!(c.len(), 1);
        assert!(c.has_flags() && c.has_no_xattrs(b"f", &s));
        // The older formats: no flags byte; the first also no generation field. Each has
        // its own magic and checksum.
        let entry = &v3[8 + 4 + 2 + 8 + 8 + 8..v3.len() - 32 - 1];
        for (magic, generation) in [(MAGIC_V2, Some(7u64)), (MAGIC_V1, None)] {
            let mut old = Vec::new();
            old.extend_from_slice(magic);
            old.extend_from_slice(&2u32.to_le_bytes());
            old.extend_from_slice(b"/r");
            old.extend_from_slice(&NOW.to_le_bytes());
            if let Some(g) = generation {
                old.extend_from_slice(&g.to_le_bytes());
            }
            old.extend_from_slice(&1u64.to_le_bytes());
            old.extend_from_slice(entry);
            let sum = blake3::hash(&old);
            old.extend_from_slice(sum.as_bytes());
            let c = decode(old.clone(), Path::new("/r")).unwrap();
            assert_eq!(c.blob_generation(), generation);
            assert_eq!(c.lookup(b"f", &s), Some(h));
            assert!(!c.has_flags() && !c.has_no_xattrs(b"f", &s));
        }
    }

    #[test]
    fn no_xattrs_is_vouched_for_only_with_the_same_stat_and_a_ctime_that_is_not_racy() {
        let s = st(NOW - 10_000_000_000);
        let c = cache_with(b"f", s, NOW);
        assert!(c.has_no_xattrs(b"f", &s));
        assert!(!c.has_no_xattrs(
            b"f",
            &FileStat {
                ctime_ns: s.ctime_ns + 1,
                ..s
            }
        ));
        assert!(!c.has_no_xattrs(b"g", &s));
        let racy_ctime = FileStat { ctime_ns: NOW, ..s };
        assert!(!cache_with(b"f", racy_ctime, NOW).has_no_xattrs(b"f", &racy_ctime));
        let h = Hash::of(b"x");
        let with = encode(
            Path::new("/r"),
            NOW,
            0,
            vec![(&b"f"[..], &s, &h, false)].into_iter(),
        );
        assert!(!decode(with.clone(), Path::new("/r"))
            .unwrap()
            .has_no_xattrs(b"f", &s));
    }

    #[test]
    fn load_missing_is_empty_and_corrupt_is_error() {
        let d = tempfile::tempdir().unwrap();
        let p = cache_path(d.path(), Path::new("/proj"));
        assert!(p.starts_with(d.path().join("statcache")));
        assert!(StatCache::load(&p, Path::new("/proj")).unwrap().is_empty());
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            &p,
            b"garbage that is long enough to pass the length check....",
        )
        .unwrap();
        let err = StatCache::load(&p, Path::new("/proj")).unwrap_err();
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
        let s = st(1);
        let h = Hash::of(b"x");
        save(
            &p,
            &encode(
                Path::new("/proj"),
                NOW,
                0,
                vec![(&b"f"[..], &s, &h, false)].into_iter(),
            ),
        )
        .unwrap();
        assert_eq!(
            StatCache::load(&p, Path::new("/proj"))
                .unwrap()
                .lookup(b"f", &s),
            Some(h)
        );
    }

    #[test]
    fn distinct_roots_distinct_files() {
        let a = cache_path(Path::new("/s"), Path::new("/p/a"));
        let b = cache_path(Path::new("/s"), Path::new("/p/b"));
        assert_ne!(a, b);
    }

    #[test]
    fn a_cache_written_out_of_path_order_is_found_whole_and_the_later_of_two_entries_counts() {
        let (old, new) = (st(NOW - 10_000_000_000), st(NOW - 5_000_000_000));
        let (x, y, z) = (Hash::of(b"x"), Hash::of(b"y"), Hash::of(b"z"));
        let entries: Vec<(&[u8], &FileStat, &Hash, bool)> = vec![
            (b"sub/b", &old, &x, true),
            (b"a", &old, &y, true),
            (b"sub/b", &new, &z, false),
            (b"c", &new, &x, true),
        ];
        let bytes = encode(Path::new("/r"), NOW, 0, entries.into_iter());
        let c = decode(bytes, Path::new("/r")).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(b"a", &old), Some(y));
        assert_eq!(c.lookup(b"c", &new), Some(x));
        assert_eq!(c.lookup(b"sub/b", &new), Some(z));
        assert_eq!(c.lookup(b"sub/b", &old), None);
        assert!(!c.has_no_xattrs(b"sub/b", &new));
        assert!(c.has_no_xattrs(b"a", &old));
        assert_eq!(c.lookup(b"missing", &old), None);
    }
}
