//! The manifest index: an immutable, position-independent, memory-mappable form of a
//! manifest, for projections that run inside the program's own processes (the interposition
//! shim). Every process of a run maps the same file, so they share its pages in the page
//! cache and none of them decodes the manifest.
//!
//! Layout (all integers little-endian, every offset relative to the start of the file, so the
//! file means the same wherever it is mapped):
//!
//! ```text
//! header   160 bytes  magic, version, counts, the manifest's hash, section offsets,
//!                     total length, a BLAKE3 checksum (first 16 bytes) of everything after it
//! entries  88 bytes each, in manifest (path) order
//! table    u32 slots, a power of two, open addressing with linear probing on FNV-1a 64 of
//!          the path: 0 is empty, i + 1 names entry i
//! children u32 entry numbers, grouped by parent directory, each group sorted by name; a
//!          directory's record holds the start and length of its group (its "range")
//! strings  path and symlink target bytes
//! meta     (version 3) each entry's owner, xattrs and link group, in the manifest's own
//!          encoding of them (flags, then as flagged); a record names its bytes (none: none)
//! links    (version 3) 8 bytes per member of a hard-link group: group number and entry
//!          number, by group then path, so a process finds the groups without a walk
//! origins  (only with header flag 1) 16 bytes per entry, in entry order: the inode number
//!          and ctime (ns) the entry's file had on disk when it was ingested (0: none;
//!          see [`crate::origin`])
//! ```
//!
//! Opening checks the header only (O(1)), and every read through an [`Index`] is bounds
//! checked: a damaged index answers "not there" or an error, never a panic.
//! [`Index::verify`] checks the checksum and every record, once, when a run starts
//! ([`cached`] does it for a reused file).

mod build;
mod layout;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::hash::Hash;
use crate::manifest::{decode_entry_meta, Entry, EntryKind, EntryMeta, Manifest};
use crate::mapped::Bytes;
use crate::store::Store;
use crate::vfs::LayerSource;

pub use build::{encode, encode_with_origins, encode_with_origins_section, origins_section};
use layout::{Header, Record, CHUNK, HEADER_LEN, LINK_LEN, ORIGIN_LEN, RECORD_LEN};

use crate::origin::{Origin, Origins};

/// Where cached indexes live, under the store's root: `index/<manifest hash>.vidx`.
pub const INDEX_DIR: &str = "index";

/// An index cannot be read, built or saved. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vrift manifest index or corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: the manifest is too large for an index ({reason})")]
    TooLarge { path: PathBuf, reason: String },
}

/// One entry, read in place from the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub path: &'a [u8],
    pub kind: EntryKind,
    pub hash: Hash,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    pub target: &'a [u8],
    /// The owner, xattrs and link group as encoded (empty: none); see [`EntryRef::meta`].
    pub meta: &'a [u8],
}

impl<'a> EntryRef<'a> {
    /// The entry's last component ("" for the root).
    pub fn name(self) -> &'a [u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[i + 1..],
            None => self.path,
        }
    }

    /// The entry's owner, xattrs and link group, decoded and checked; `Err` names what is
    /// wrong with them.
    pub fn meta(&self) -> Result<EntryMeta, String> {
        if self.meta.is_empty() {
            return Ok(EntryMeta::default());
        }
        let m = decode_entry_meta(self.meta)?;
        if m.is_empty() {
            return Err("an empty owner, xattrs and link group recorded".into());
        }
        Ok(m)
    }

    /// The owned entry, its meta included; `Err` when its meta is damaged (see
    /// [`EntryRef::meta`]).
    pub fn to_entry(&self) -> Result<Entry, String> {
        Ok(Entry {
            kind: self.kind,
            hash: self.hash,
            size: self.size,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            target: self.target.to_vec(),
            meta: self.meta()?,
        })
    }
}

/// A mapped (or in-memory) index. Implements [`LayerSource`], so a [`crate::vfs::View`] can
/// stack it like a manifest; the owned [`Entry`] values that trait hands out are made on
/// first use, per chunk of entries, and kept for the life of the index.
pub struct Index {
    bytes: Bytes,
    header: Header,
    path: PathBuf,
    cache: Box<[OnceLock<Chunk>]>,
}

/// The decoded entries of one chunk, all made at the first use of any (`None`: damaged).
/// One lock per chunk, not per entry: a walk of a whole tree (`git status`) makes every
/// entry once, and a lock's first use costs more than making the entry.
type Chunk = Box<[Option<Entry>]>;

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("entries", &self.header.count)
            .finish()
    }
}

impl Index {
    /// Map the index file at `path` read-only; checks its header (see the module comment).
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let io = |source| IndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // Index files are written once to a temp name and renamed into place, never
        // modified; every read of one is bounds checked.
        let map = Bytes::map_immutable(&file).map_err(io)?;
        Index::with_bytes(map, path)
    }

    /// An index held in memory (`path` names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Index, IndexError> {
        Index::with_bytes(Bytes::Owned(bytes), path)
    }

    fn with_bytes(bytes: Bytes, path: &Path) -> Result<Index, IndexError> {
        let header = Header::parse(&bytes).map_err(|reason| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })?;
        let chunks = (header.count as usize).div_ceil(CHUNK);
        let cache = (0..chunks).map(|_| OnceLock::new()).collect();
        Ok(Index {
            bytes,
            header,
            path: path.to_path_buf(),
            cache,
        })
    }

    /// The file this index was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash of the manifest this index was built from.
    pub fn manifest_hash(&self) -> Hash {
        self.header.manifest
    }

    pub fn len(&self) -> usize {
        self.header.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    fn corrupt(&self, reason: impl Into<String>) -> IndexError {
        IndexError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn record(&self, i: u32) -> Result<Record, IndexError> {
        if i >= self.header.count {
            return Err(self.corrupt(format!("entry {i} out of range")));
        }
        let at = self.header.entries_off as usize + i as usize * RECORD_LEN;
        Record::parse(&self.bytes, at).ok_or_else(|| self.corrupt(format!("entry {i} truncated")))
    }

    /// Entry `i`'s path, reading only the two fields that locate it (the hash table's
    /// probes compare paths and need nothing else of the record).
    fn path_of(&self, i: u32) -> Option<&[u8]> {
        if i >= self.header.count {
            return None;
        }
        let at = self.header.entries_off as usize + i as usize * RECORD_LEN;
        let off = layout::u32_at(&self.bytes, at)?;
        let len = layout::u32_at(&self.bytes, at + 4)?;
        self.string(off, len)
    }

    /// The kind byte of entry `i` (0 file, 1 directory, 2 symlink, 3 FIFO).
    fn kind_of(&self, i: u32) -> Option<u8> {
        if i >= self.header.count {
            return None;
        }
        let at = self.header.entries_off as usize + i as usize * RECORD_LEN + layout::KIND_AT;
        self.bytes.get(at).copied()
    }

    fn string(&self, off: u32, len: u32) -> Option<&[u8]> {
        if u64::from(off) + u64::from(len) > self.header.strings_len {
            return None;
        }
        let start = self.header.strings_off as usize + off as usize;
        self.bytes.get(start..start + len as usize)
    }

    /// Bytes `off..off + len` of the meta section.
    fn meta_bytes(&self, off: u32, len: u32) -> Option<&[u8]> {
        if u64::from(off) + u64::from(len) > self.header.meta_len {
            return None;
        }
        let start = self.header.meta_off as usize + off as usize;
        self.bytes.get(start..start + len as usize)
    }

    /// Entry number `i`, read in place.
    pub fn entry(&self, i: u32) -> Result<EntryRef<'_>, IndexError> {
        let r = self.record(i)?;
        let path = self
            .string(r.path_off, r.path_len)
            .ok_or_else(|| self.corrupt(format!("entry {i}: path out of range")))?;
        let target = self
            .string(r.target_off, r.target_len)
            .ok_or_else(|| self.corrupt(format!("entry {i}: symlink target out of range")))?;
        let meta = self
            .meta_bytes(r.meta_off, r.meta_len)
            .ok_or_else(|| self.corrupt(format!("entry {i}: owner and xattrs out of range")))?;
        let kind = match r.kind {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            3 => EntryKind::Fifo,
            k => return Err(self.corrupt(format!("entry {i}: unknown kind {k}"))),
        };
        Ok(EntryRef {
            path,
            kind,
            hash: Hash(r.hash),
            size: r.size,
            mode: r.mode,
            mtime_ns: r.mtime_ns,
            target,
            meta,
        })
    }

    /// The owned entry `i`, its owner, xattrs and link group included.
    pub fn owned_entry(&self, i: u32) -> Result<Entry, IndexError> {
        self.entry(i)?
            .to_entry()
            .map_err(|reason| self.corrupt(format!("entry {i}: {reason}")))
    }

    /// The member of the link groups section at `k`: (group, entry number).
    fn link_member(&self, k: u64) -> Option<(u32, u32)> {
        if k >= self.header.links_len {
            return None;
        }
        let at = (self.header.links_off as usize).checked_add(k as usize * LINK_LEN)?;
        Some((
            layout::u32_at(&self.bytes, at)?,
            layout::u32_at(&self.bytes, at + 4)?,
        ))
    }

    /// The entry numbers of each hard-link group, in group order (group 1 first), each
    /// group's names in path order: from the link groups section alone, without a walk of
    /// the entries.
    pub fn link_groups(&self) -> Result<Vec<Vec<u32>>, IndexError> {
        let mut out: Vec<Vec<u32>> = Vec::new();
        for k in 0..self.header.links_len {
            let (g, i) = self
                .link_member(k)
                .ok_or_else(|| self.corrupt("link groups truncated"))?;
            if i >= self.header.count {
                return Err(self.corrupt(format!("link group {g}: entry {i} out of range")));
            }
            if g as usize == out.len() + 1 {
                out.push(vec![i]);
            } else if g as usize == out.len() && out.last().is_some_and(|l| l[l.len() - 1] < i) {
                out.last_mut().expect("checked").push(i);
            } else {
                return Err(self.corrupt(format!("link group {g} out of order")));
            }
        }
        Ok(out)
    }

    /// The paths of each hard-link group (see [`Index::link_groups`]).
    pub fn link_group_paths(&self) -> Result<Vec<Vec<&[u8]>>, IndexError> {
        self.link_groups()?
            .into_iter()
            .map(|g| g.into_iter().map(|i| Ok(self.entry(i)?.path)).collect())
            .collect()
    }

    /// The entry number of `path`, if the index has it.
    pub fn find(&self, path: &[u8]) -> Option<u32> {
        let slots = self.header.slots;
        if slots == 0 {
            return None;
        }
        let mask = slots - 1;
        let mut s = (layout::fnv1a(path) as u32) & mask;
        // At most `slots` probes, so a damaged table full of non-matching entries still ends.
        for _ in 0..slots {
            let v = self.slot(s)?;
            if v == 0 {
                return None;
            }
            let i = v - 1;
            if self.path_of(i) == Some(path) {
                return Some(i);
            }
            s = (s + 1) & mask;
        }
        None
    }

    /// Where entry `i`'s file came from on disk, if the index records it.
    pub fn origin_of(&self, i: u32) -> Option<Origin> {
        if self.header.origins_len() == 0 || i >= self.header.count {
            return None;
        }
        let at = (self.header.origins_off() as usize).checked_add(i as usize * ORIGIN_LEN)?;
        let ino = layout::u64_at(&self.bytes, at)?;
        let ctime_ns = layout::u64_at(&self.bytes, at + 8)? as i64;
        let o = Origin { ino, ctime_ns };
        o.usable().then_some(o)
    }

    /// Does the index record where its entries came from on disk?
    pub fn has_origins(&self) -> bool {
        self.header.origins_len() != 0
    }

    fn slot(&self, s: u32) -> Option<u32> {
        let at = self.header.table_off as usize + s as usize * 4;
        layout::u32_at(&self.bytes, at)
    }

    /// The entry numbers of the direct children of directory entry `i`, sorted by name
    /// (empty for a non-directory).
    pub fn children_of(&self, i: u32) -> Result<Vec<u32>, IndexError> {
        let r = self.record(i)?;
        let end = u64::from(r.children_start) + u64::from(r.children_count);
        if end > self.header.children_len {
            return Err(self.corrupt(format!("entry {i}: children out of range")));
        }
        (r.children_start..r.children_start + r.children_count)
            .map(|k| {
                let at = self.header.children_off as usize + k as usize * 4;
                match layout::u32_at(&self.bytes, at) {
                    Some(c) if c < self.header.count => Ok(c),
                    _ => Err(self.corrupt(format!("entry {i}: bad child number"))),
                }
            })
            .collect()
    }

    /// Check the checksum and every record: the whole file, O(size). An index that passes
    /// answers every lookup as its manifest would.
    pub fn verify(&self) -> Result<(), IndexError> {
        let body = self
            .bytes
            .get(HEADER_LEN..self.header.total_len as usize)
            .ok_or_else(|| self.corrupt("truncated"))?;
        if blake3::hash(body).as_bytes()[..16] != self.header.checksum {
            return Err(self.corrupt("checksum mismatch"));
        }
        let mut linked = 0u64;
        for i in 0..self.header.count {
            if self.owned_entry(i)?.meta.link != 0 {
                linked += 1;
            }
            self.children_of(i)?;
        }
        // The link groups section lists exactly the entries with a link group, each under
        // its own group.
        let groups = self.link_groups()?;
        if linked != self.header.links_len {
            return Err(self.corrupt("link groups do not list every linked entry"));
        }
        for (g, members) in groups.iter().enumerate() {
            for &i in members {
                if self.owned_entry(i)?.meta.link != g as u64 + 1 {
                    return Err(self.corrupt(format!("entry {i} listed in link group {}", g + 1)));
                }
            }
        }
        for s in 0..self.header.slots {
            match self.slot(s) {
                Some(v) if v <= self.header.count => {}
                _ => return Err(self.corrupt(format!("hash slot {s} out of range"))),
            }
        }
        Ok(())
    }

    /// The owned entry `i`, made once (with the rest of its chunk) and kept.
    fn cached(&self, i: u32) -> Option<&Entry> {
        let c = i as usize / CHUNK;
        let chunk = self.cache.get(c)?.get_or_init(|| {
            let start = (c * CHUNK) as u32;
            let end = (start as u64 + CHUNK as u64).min(self.header.count as u64) as u32;
            (start..end).map(|j| self.owned_entry(j).ok()).collect()
        });
        chunk.get(i as usize % CHUNK)?.as_ref()
    }

    /// Decode the whole index back into a manifest.
    pub fn to_manifest(&self) -> Result<Manifest, IndexError> {
        let mut entries = Vec::with_capacity(self.len());
        for i in 0..self.header.count {
            let path = self.entry(i)?.path.to_vec();
            entries.push((path, self.owned_entry(i)?));
        }
        Ok(Manifest::from_entries(entries))
    }
}

impl LayerSource for Index {
    fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.find(path).and_then(|i| self.cached(i))
    }

    fn origin(&self, path: &[u8]) -> Option<Origin> {
        if !self.has_origins() {
            return None;
        }
        self.find(path).and_then(|i| self.origin_of(i))
    }

    fn get_with_origin(&self, path: &[u8]) -> Option<(&Entry, Option<Origin>)> {
        let i = self.find(path)?;
        Some((self.cached(i)?, self.origin_of(i)))
    }

    fn children_with_origins(&self, dir: &[u8]) -> Vec<(&[u8], &Entry, Option<Origin>)> {
        let Some(kids) = self.find(dir).and_then(|i| self.children_of(i).ok()) else {
            return Vec::new();
        };
        kids.into_iter()
            .filter_map(|k| {
                let name = self.entry(k).ok()?.name();
                Some((name, self.cached(k)?, self.origin_of(k)))
            })
            .collect()
    }

    fn subdir_count(&self, dir: &[u8]) -> usize {
        let Some(r) = self.find(dir).and_then(|i| self.record(i).ok()) else {
            return 0;
        };
        if u64::from(r.children_start) + u64::from(r.children_count) > self.header.children_len {
            return 0;
        }
        (r.children_start..r.children_start + r.children_count)
            .filter(|&k| {
                let at = self.header.children_off as usize + k as usize * 4;
                layout::u32_at(&self.bytes, at).and_then(|c| self.kind_of(c)) == Some(1)
            })
            .count()
    }

    fn children(&self, dir: &[u8]) -> Vec<(&[u8], &Entry)> {
        let Some(i) = self.find(dir) else {
            return Vec::new();
        };
        let Ok(kids) = self.children_of(i) else {
            return Vec::new();
        };
        kids.into_iter()
            .filter_map(|k| {
                let name = self.entry(k).ok()?.name();
                Some((name, self.cached(k)?))
            })
            .collect()
    }
}

/// Where the cached index of the manifest with hash `manifest` lives in `store`.
pub fn cache_path(store: &Store, manifest: &Hash) -> PathBuf {
    store
        .root()
        .join(INDEX_DIR)
        .join(format!("{}.vidx", manifest.to_hex()))
}

/// Where the cached index of the manifest `manifest` with the origins section `origins`
/// lives: `index/<manifest hash>-<first 32 hex digits of the section's BLAKE3>.vidx`.
fn cache_path_with_origins(store: &Store, manifest: &Hash, origins: &[u8]) -> PathBuf {
    let digest = blake3::hash(origins).to_hex();
    store
        .root()
        .join(INDEX_DIR)
        .join(format!("{}-{}.vidx", manifest.to_hex(), &digest[..32]))
}

/// The cached indexes (and leftovers of interrupted builds) under the store's `index/`
/// that no manifest in `keep` (hex hashes of the manifests some root needs) uses; removed
/// when `delete`. Called by `vrift gc` under the store's exclusive lock, so no run has one
/// of them mapped; a run that needs a removed one builds it again.
pub fn collect_garbage(
    store: &Store,
    keep: &std::collections::HashSet<String>,
    delete: bool,
) -> Result<Vec<PathBuf>, IndexError> {
    let dir = store.root().join(INDEX_DIR);
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut gone = Vec::new();
    for e in listing.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `<hash>.vidx`, or `<hash>-<origins digest>.vidx`, and each one's mark.
        let needed = name
            .strip_suffix(CHECKED_SUFFIX)
            .unwrap_or(&name)
            .strip_suffix(".vidx")
            .map(|stem| stem.split_once('-').map_or(stem, |(hash, _)| hash))
            .is_some_and(|hash| keep.contains(hash));
        if needed {
            continue;
        }
        let path = e.path();
        if delete {
            match std::fs::remove_file(&path) {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    return Err(IndexError::Io { path, source });
                }
                _ => {}
            }
        }
        // A mark goes with its index and is not counted as one.
        if !name.ends_with(CHECKED_SUFFIX) {
            gone.push(path);
        }
    }
    gone.sort();
    Ok(gone)
}

/// The index of `manifest`, from the store's cache, building and saving it (temp file,
/// rename) when it is missing or fails verification.
pub fn cached(store: &Store, manifest: &Manifest) -> Result<Index, IndexError> {
    let hash = manifest.hash();
    let path = cache_path(store, &hash);
    if let Ok(ix) = Index::open(&path) {
        if ix.manifest_hash() == hash && checked(&path, &ix) {
            return Ok(ix);
        }
    }
    let bytes = encode(manifest, &hash).map_err(|reason| IndexError::TooLarge {
        path: path.clone(),
        reason,
    })?;
    build::save_atomic(&path, &bytes)?;
    mark_checked(&path);
    Index::open(&path)
}

/// The mark beside a cached index that it was checked whole (`Index::verify`) or built by
/// vrift: the file's identity then (device, inode, size, mtime, ctime). An index file is
/// never written after its rename into place, so while its identity is the same it is the
/// same file, and a run need not read all of it again (the check was most of a run's start
/// in a 20,000-file project). `vrift gc` keeps and removes a mark with its index.
fn mark_path(index: &Path) -> PathBuf {
    let mut p = index.as_os_str().to_owned();
    p.push(CHECKED_SUFFIX);
    PathBuf::from(p)
}

const CHECKED_SUFFIX: &str = ".checked";

/// Is the index at `path` (opened as `ix`) sound: marked as checked while it is the same
/// file, or checked whole now (and then marked)?
fn checked(path: &Path, ix: &Index) -> bool {
    let now = crate::fileid::of_path(path);
    if now.is_some()
        && std::fs::read(mark_path(path)).ok().as_deref() == now.as_ref().map(|i| &i[..])
    {
        return true;
    }
    if ix.verify().is_err() {
        return false;
    }
    mark_checked(path);
    true
}

/// Mark the index at `path` as checked (best effort: without the mark the next run checks
/// it again).
fn mark_checked(path: &Path) {
    let Some(id) = crate::fileid::of_path(path) else {
        return;
    };
    let mark = mark_path(path);
    let tmp = mark.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, id).is_ok() && std::fs::rename(&tmp, &mark).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The index of `manifest` with the origins of its entries on disk (`origins`, from the
/// ingest that made it), from the store's cache or built and saved as by [`cached`]. One
/// file per manifest and set of origins: a run of an unchanged project finds it again.
pub fn cached_with_origins(
    store: &Store,
    manifest: &Manifest,
    origins: &Origins,
) -> Result<Index, IndexError> {
    cached_with_origins_section(store, manifest, &origins_section(manifest, origins))
}

/// [`cached_with_origins`] given the origins section itself ([`origins_section`]).
pub fn cached_with_origins_section(
    store: &Store,
    manifest: &Manifest,
    section: &[u8],
) -> Result<Index, IndexError> {
    let hash = manifest.hash();
    let path = cache_path_with_origins(store, &hash, section);
    if let Ok(ix) = Index::open(&path) {
        if ix.manifest_hash() == hash && ix.has_origins() && checked(&path, &ix) {
            return Ok(ix);
        }
    }
    let bytes = encode_with_origins_section(manifest, &hash, section).map_err(|reason| {
        IndexError::TooLarge {
            path: path.clone(),
            reason,
        }
    })?;
    build::save_atomic(&path, &bytes)?;
    mark_checked(&path);
    Index::open(&path)
}
