//! Manifests: the deterministic, versioned description of a tree.
//!
//! Paths are relative to the tree's root, '/'-separated, stored as raw bytes (file names need
//! not be UTF-8). The root directory itself is the entry with the empty path.
//!
//! Entries are kept sorted by raw path bytes, so lookup is a binary search and the entries
//! under a directory are one contiguous range. The binary encoding is in `codec`.

mod codec;
mod diff;
mod meta;

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::Hash;

pub(crate) use codec::{decode_entry_meta, encode_entry_meta};
pub use codec::{FORMAT_VERSION, FORMAT_VERSION_1, MAGIC};
pub use diff::{Change, Field};
pub use meta::{is_kept_xattr, EntryMeta, EntryOwner, Xattr, XATTR_NAME_MAX, XATTR_SIZE_MAX};

/// A path relative to a view's root, as raw bytes: no leading '/', no "." or ".." components,
/// no trailing '/'. The root is the empty path.
pub type RelPath = Vec<u8>;

/// What kind of object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A named pipe (format version 2): no content, only a name, mode and owner.
    Fifo,
}

impl EntryKind {
    /// "file", "dir", "symlink" or "fifo".
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
        }
    }
}

/// One path of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Content hash; meaningful for files only (dirs and symlinks carry `Hash([0; 32])`).
    pub hash: Hash,
    /// Size in bytes: file length, symlink target length, 0 for dirs.
    pub size: u64,
    /// Permission bits and the set-id/sticky bits (`mode & 0o7777`); the kind is in `kind`.
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Symlink target, raw bytes; empty for files and dirs.
    pub target: Vec<u8>,
    /// Owner, extended attributes and hard-link group (format version 2); empty when the
    /// manifest records none of them.
    pub meta: EntryMeta,
}

impl Entry {
    /// A directory entry.
    pub fn dir(mode: u32, mtime_ns: i64) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            hash: Hash([0; 32]),
            size: 0,
            mode,
            mtime_ns,
            target: Vec::new(),
            meta: EntryMeta::default(),
        }
    }

    /// A symlink entry (mode 0777, size the target's length).
    pub fn symlink(target: Vec<u8>, mtime_ns: i64) -> Entry {
        Entry {
            kind: EntryKind::Symlink,
            hash: Hash([0; 32]),
            size: target.len() as u64,
            mode: 0o777,
            mtime_ns,
            target,
            meta: EntryMeta::default(),
        }
    }

    /// A FIFO entry.
    pub fn fifo(mode: u32, mtime_ns: i64) -> Entry {
        Entry {
            kind: EntryKind::Fifo,
            hash: Hash([0; 32]),
            size: 0,
            mode,
            mtime_ns,
            target: Vec::new(),
            meta: EntryMeta::default(),
        }
    }

    /// With `meta` as its version 2 fields.
    pub fn with_meta(mut self, meta: EntryMeta) -> Entry {
        self.meta = meta;
        self
    }

    /// A file entry.
    pub fn file(hash: Hash, size: u64, mode: u32, mtime_ns: i64) -> Entry {
        Entry {
            kind: EntryKind::File,
            hash,
            size,
            mode,
            mtime_ns,
            target: Vec::new(),
            meta: EntryMeta::default(),
        }
    }
}

/// Errors reading or writing a manifest; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vrift manifest or corrupt: {reason}")]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(
        "{path}: manifest format version {found} is not supported (this vrift reads versions 1 to {supported})"
    )]
    Version {
        path: std::path::PathBuf,
        found: u32,
        supported: u32,
    },
}

impl ManifestError {
    /// True when the manifest file does not exist (or a directory on its path is missing).
    pub fn is_not_found(&self) -> bool {
        match self {
            ManifestError::Io { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(libc::ENOTDIR)
            }
            _ => false,
        }
    }
}

/// A whole tree: entries in canonical order, with fast lookup by path and by directory.
///
/// Construction sorts entries canonically; `encode` is deterministic; `hash` is the BLAKE3 of
/// `encode()`.
///
/// A manifest that is the top layer of a stack (`vrift run --base`) may also hold
/// **whiteouts**: paths removed from the layers below it. They are kept apart from the
/// entries, so `get`, `iter` and `children` (and everything built on them: farms, layers,
/// gc, push) never see them; only the encoding and the stacking of layers
/// (`vfs::LayerSource::is_whiteout`) do.
#[derive(Clone)]
pub struct Manifest {
    /// The entries and whiteouts; built from the encoding on first use when the manifest
    /// was read by [`Manifest::decode_canonical`] (then the encoding is set, and was checked
    /// whole, so building it cannot fail).
    tree: std::sync::OnceLock<Tree>,
    /// [`Manifest::encode`] and [`Manifest::hash`], once asked: a manifest does not change
    /// once made, and a run asks for both several times (each an encoding of the whole
    /// manifest).
    hash: HashOnce,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tree {
    entries: Vec<(RelPath, Entry)>,
    /// Sorted, no duplicates, never the root, never the path of an entry.
    whiteouts: Vec<RelPath>,
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest::of_tree(Tree::default())
    }
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Manifest) -> bool {
        match (self.hash.encoding.get(), other.hash.encoding.get()) {
            // One tree has one encoding.
            (Some(a), Some(b)) => a[..] == b[..],
            _ => self.tree() == other.tree(),
        }
    }
}

impl Eq for Manifest {}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("entries", &self.tree().entries)
            .field("whiteouts", &self.tree().whiteouts)
            .finish()
    }
}

/// The encoding and hash, each computed at most once. Not part of what a manifest is: two
/// manifests are equal whether or not either was encoded.
#[derive(Clone, Default)]
struct HashOnce {
    encoding: std::sync::OnceLock<crate::mapped::Bytes>,
    hash: std::sync::OnceLock<Hash>,
}

impl Manifest {
    /// Build from entries in any order. Later duplicates of a path replace earlier ones.
    ///
    /// Fields a kind does not carry are normalized (the hash of a dir or symlink becomes zero,
    /// the target of a file or dir empty), so equal trees give equal manifests. Paths must be
    /// valid `RelPath`s (see `is_valid_rel_path`); a manifest with an invalid path will not
    /// load back.
    pub fn from_entries(entries: impl IntoIterator<Item = (RelPath, Entry)>) -> Manifest {
        let mut entries: Vec<(RelPath, Entry)> = entries
            .into_iter()
            .map(|(p, e)| (p, normalize(e)))
            .collect();
        // Stable sort keeps insertion order among equal paths; keep the last of each run
        // (in place: an ingest's entries are the largest thing a refresh holds).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        meta::canonical_links(&mut entries);
        Manifest::of_tree(Tree {
            entries,
            whiteouts: Vec::new(),
        })
    }

    fn of_tree(tree: Tree) -> Manifest {
        Manifest {
            tree: std::sync::OnceLock::from(tree),
            hash: HashOnce::default(),
        }
    }

    /// The entries and whiteouts, built from the encoding if not yet.
    fn tree(&self) -> &Tree {
        self.tree.get_or_init(|| {
            let bytes = self.hash.encoding.get().expect(
                "a manifest without its tree has its encoding (Manifest::decode_canonical)",
            );
            let (entries, whiteouts) =
                codec::decode_with(bytes, Path::new("manifest"), codec::Checksum::Vouched)
                    .expect("checked whole by Manifest::decode_canonical");
            Tree { entries, whiteouts }
        })
    }

    /// The same tree, with `paths` as its whiteouts (replacing any it had). A path that is
    /// the root or one of the manifest's entries is dropped: an entry there already hides
    /// what is below.
    pub fn with_whiteouts(self, paths: impl IntoIterator<Item = RelPath>) -> Manifest {
        let mut w: Vec<RelPath> = paths
            .into_iter()
            .filter(|p| !p.is_empty() && self.get(p).is_none())
            .collect();
        w.sort();
        w.dedup();
        self.tree(); // built from the encoding, if it was not
        let mut tree = self.tree.into_inner().unwrap_or_default();
        tree.whiteouts = w;
        Manifest::of_tree(tree)
    }

    /// Paths this manifest removes from the layers below it, sorted.
    pub fn whiteouts(&self) -> &[RelPath] {
        &self.tree().whiteouts
    }

    /// True if `path` is one of the whiteouts.
    pub fn is_whiteout(&self, path: &[u8]) -> bool {
        self.tree()
            .whiteouts
            .binary_search_by(|p| p.as_slice().cmp(path))
            .is_ok()
    }

    /// The format version `encode` writes: 1 when no entry carries anything version 2 adds
    /// (so manifests of plain trees keep their bytes and hash), 2 otherwise.
    pub fn format_version(&self) -> u32 {
        let t = self.tree();
        codec::version_needed(&t.entries, &t.whiteouts)
    }

    /// The paths of each hard-link group, in path order; group `g` is at index `g - 1`.
    pub fn link_groups(&self) -> Vec<Vec<&[u8]>> {
        let entries = &self.tree().entries;
        meta::groups(entries)
            .into_iter()
            .map(|g| g.into_iter().map(|i| entries[i].0.as_slice()).collect())
            .collect()
    }

    /// Make a run's result say what a disk would after writes through one name of a hard-link
    /// group of `self` (the run's base): the names of the group that still carry it in
    /// `entries` (so they are the same inode, not a file renamed over a name) all take the
    /// newest state written through any of them. Without this, a write through `a` of a
    /// linked pair `a`, `b` would leave `b` with the old content and split the group.
    pub fn follow_link_writes(&self, entries: &mut [(RelPath, Entry)]) {
        meta::follow_link_writes(self, entries)
    }

    /// True when some entry records an owner.
    pub fn has_owners(&self) -> bool {
        self.tree()
            .entries
            .iter()
            .any(|(_, e)| e.meta.owner.is_some())
    }

    pub fn has_xattrs(&self) -> bool {
        self.tree()
            .entries
            .iter()
            .any(|(_, e)| !e.meta.xattrs.is_empty())
    }

    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        let entries = &self.tree().entries;
        entries
            .binary_search_by(|(p, _)| p.as_slice().cmp(path))
            .ok()
            .map(|i| &entries[i].1)
    }

    /// All entries in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> + '_ {
        self.tree().entries.iter().map(|(p, e)| (p.as_slice(), e))
    }

    /// Direct children of `dir` as (file name, entry), sorted by name.
    ///
    /// The descendants of `dir` are one contiguous range; inside it, each child's own subtree
    /// (`child/...`) is skipped with a binary search, so the cost is O(children * log n).
    pub fn children<'a>(&'a self, dir: &[u8]) -> Vec<(&'a [u8], &'a Entry)> {
        let mut prefix = dir.to_vec();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        let entries = &self.tree().entries;
        let mut i = self.lower_bound(&prefix);
        let mut out = Vec::new();
        while i < entries.len() {
            let (path, entry) = &entries[i];
            let Some(rest) = path.strip_prefix(prefix.as_slice()) else {
                break;
            };
            match rest.iter().position(|&b| b == b'/') {
                // The root entry (empty path) is nobody's child.
                None if rest.is_empty() => i += 1,
                None => {
                    out.push((rest, entry));
                    i += 1;
                }
                Some(slash) => {
                    // A grandchild: jump past everything under `prefix + rest[..slash] + '/'`,
                    // i.e. to the first path >= `prefix + rest[..slash] + '0'` ('/' + 1).
                    let mut end = path[..prefix.len() + slash].to_vec();
                    end.push(b'/' + 1);
                    i = self.lower_bound(&end).max(i + 1);
                }
            }
        }
        out
    }

    fn lower_bound(&self, key: &[u8]) -> usize {
        self.tree()
            .entries
            .partition_point(|(p, _)| p.as_slice() < key)
    }

    pub fn len(&self) -> usize {
        match (self.tree.get(), self.hash.encoding.get()) {
            (Some(t), _) => t.entries.len(),
            // Not built yet: a checked version 1 encoding, whose records are all entries.
            (None, Some(bytes)) => {
                u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize
            }
            (None, None) => unreachable!("a manifest has its tree or its encoding"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the sizes of all file entries.
    pub fn total_file_bytes(&self) -> u64 {
        self.tree()
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .map(|(_, e)| e.size)
            .sum()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.encoding().to_vec()
    }

    /// The canonical encoding, kept.
    pub fn encoding(&self) -> &[u8] {
        self.hash.encoding.get_or_init(|| {
            let t = self.tree();
            codec::encode_with_whiteouts(&t.entries, &t.whiteouts).into()
        })
    }

    /// [`Manifest::decode`] of `bytes` whose BLAKE3 the caller knows to be `hash`, that of
    /// a manifest vrift encoded: the bytes are kept as the manifest's encoding instead of
    /// being made again, their checksum is not computed again (the hash covers it), and a
    /// version 1 encoding is checked whole now but made into entries only when first asked
    /// for (a run of a watched project may never ask). Bytes that are not what the caller
    /// says are refused as `decode` refuses them, or, where only the checksum would tell,
    /// taken as they read; never a panic.
    pub fn decode_canonical(
        bytes: impl Into<crate::mapped::Bytes>,
        hash: Hash,
        path: &std::path::Path,
    ) -> Result<Manifest, ManifestError> {
        let bytes = bytes.into();
        let m = if codec::check_version_1(&bytes, path, codec::Checksum::Vouched)? {
            Manifest {
                tree: std::sync::OnceLock::new(),
                hash: HashOnce::default(),
            }
        } else {
            Manifest::decode(&bytes, path)?
        };
        let _ = m.hash.encoding.set(bytes);
        let _ = m.hash.hash.set(hash);
        Ok(m)
    }

    /// Parse a canonical encoding; `path` is used in error messages only.
    pub fn decode(bytes: &[u8], path: &std::path::Path) -> Result<Manifest, ManifestError> {
        codec::decode(bytes, path)
            .map(|(entries, whiteouts)| Manifest::of_tree(Tree { entries, whiteouts }))
    }

    /// The manifest's identity: BLAKE3 of its canonical encoding.
    pub fn hash(&self) -> Hash {
        *self.hash.hash.get_or_init(|| Hash::of(self.encoding()))
    }

    pub fn load(path: &std::path::Path) -> Result<Manifest, ManifestError> {
        let bytes = fs::read(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::decode(&bytes, path)
    }

    /// Write to a temp file beside `path`, fsync, rename over `path`, fsync the directory:
    /// after a crash the file is either the old manifest or the new one.
    pub fn save_atomic(&self, path: &std::path::Path) -> Result<(), ManifestError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let io_err = |source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        };
        let name = path.file_name().ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file path",
            ))
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".tmp{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = dir.join(temp_name);
        let bytes = self.encode();
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&temp, path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_err(e)
        })
    }

    /// Changes that turn `self` into `other`, in path order.
    pub fn diff(&self, other: &Manifest) -> Vec<Change> {
        diff::diff(&self.tree().entries, &other.tree().entries)
    }
}

fn normalize(mut e: Entry) -> Entry {
    if e.kind != EntryKind::File {
        e.hash = Hash([0; 32]);
    }
    if e.kind != EntryKind::Symlink {
        e.target.clear();
    }
    if e.kind == EntryKind::Fifo {
        e.size = 0;
    }
    meta::normalize_xattrs(&mut e.meta.xattrs);
    e
}

/// True for a well-formed `RelPath`: empty (the root), or '/'-separated components that are
/// non-empty, not "." or "..", and contain no NUL byte.
pub fn is_valid_rel_path(path: &[u8]) -> bool {
    // One pass over the bytes (a manifest's load checks every path): `len` and `dots` count
    // the current component's bytes and its leading dots.
    let bad_component = |len: usize, dots: usize| len == 0 || (len == dots && len <= 2);
    let (mut len, mut dots) = (0usize, 0usize);
    for &b in path {
        match b {
            0 => return false,
            b'/' => {
                if bad_component(len, dots) {
                    return false;
                }
                (len, dots) = (0, 0);
            }
            b'.' if dots == len => (len, dots) = (len + 1, dots + 1),
            _ => len += 1,
        }
    }
    path.is_empty() || !bad_component(len, dots)
}

/// A path for display: UTF-8 shown as is, other bytes and control characters escaped
/// (`\xNN`, `\n`, `\t`, `\\`), so odd names never break a line of output. The root is ".".
pub fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    escape_bytes(path)
}

/// Raw bytes as printable text (see `display_path`), without the root special case.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
