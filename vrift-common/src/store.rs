//! TheSource: the global content-addressed store (CAS) of immutable blobs.
//!
//! Layout under the store root (`$VRIFT_HOME`, default `$XDG_DATA_HOME/vrift` or
//! `~/.local/share/vrift`, created 0700):
//!
//! - `blobs/<2 hex>/<62 hex>`: one file per distinct content, named by its BLAKE3 hash, mode
//!   0o555 and never rewritten (the exec bit is there because the link-farm projection runs
//!   blobs through hardlinks, and a hardlink shares the blob's mode);
//! - `tmp/`: in-flight writes (same file system, so a finished blob is renamed into place);
//! - `roots/<blake3 of a manifest path>`: the registry of manifests that protect blobs from gc;
//! - `quarantine/<hex>.<n>`: blobs found damaged, moved aside so that nothing serves them;
//! - `lock`: flock'd shared by ingests and runs, exclusively by `gc --delete`.

mod heal;
mod insert;
mod place;
mod prefixes;
pub use place::renameat2;
mod roots;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

// Called as `FileExt::...` because newer std has inherent `File` lock methods of the same
// names; fs2 keeps the crate building on the workspace's minimum Rust version.
use fs2::FileExt;

use crate::hash::Hash;

pub use heal::{BlobDamage, QUARANTINE_DIR};
pub use insert::{BlobWriter, Verified};
pub use roots::Root;

/// Errors from the store. Every variant names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file changed while it was being stored; try again")]
    ChangedDuringIngest { path: PathBuf },
    #[error("no store location: set VRIFT_HOME or HOME")]
    NoHome,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// True for an I/O error whose cause is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// The result of putting content into the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub hash: Hash,
    pub size: u64,
    /// False when the blob was already present (nothing was written).
    pub newly_stored: bool,
}

/// A handle on a store directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// Held while an ingest or a run may add blobs or rely on them; gc --delete takes it exclusively.
/// Dropping it releases the lock.
pub struct StoreLock {
    _file: std::fs::File,
    exclusive: bool,
}

impl StoreLock {
    /// True for the lock `gc --delete` needs.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

/// Blob files are read-only for everyone and executable (see the module comment).
pub const BLOB_MODE: u32 = 0o555;
/// The file under the store root holding [`Store::blob_generation`].
const BLOB_GENERATION_FILE: &str = "blobs.generation";

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let root = absolute(root)?;
        if !root.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&root)
                .map_err(|e| StoreError::io(&root, e))?;
        }
        for sub in ["blobs", "tmp", "roots"] {
            let dir = root.join(sub);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::io(dir, e)),
            }
        }
        Ok(Store { root })
    }

    /// Open the store named by `$VRIFT_HOME`, else the XDG data directory.
    pub fn open_default() -> Result<Store, StoreError> {
        Store::open(&Store::default_root()?)
    }

    /// Where the default store is: `$VRIFT_HOME`, else `$XDG_DATA_HOME/vrift` (when absolute),
    /// else `$HOME/.local/share/vrift`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        default_root_from(|name| std::env::var_os(name))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn roots_dir(&self) -> PathBuf {
        self.root.join("roots")
    }

    /// Where the blob named `hash` lives (whether or not it exists).
    pub fn blob_path(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        let mut p = self.blobs_dir();
        p.push(&hex[..2]);
        p.push(&hex[2..]);
        p
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.blob_path(hash).is_file()
    }

    /// The size of a stored blob (an `Io` error with `NotFound` when it is absent).
    pub fn blob_size(&self, hash: &Hash) -> Result<u64, StoreError> {
        let path = self.blob_path(hash);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| StoreError::io(path, e))
    }

    /// Whether the first `len` bytes of blob `hash` hash to `prefix` (the blob of a file that
    /// grew from content `prefix` by appending). A blob shorter than `len` does not match.
    pub fn blob_starts_with(
        &self,
        hash: &Hash,
        len: u64,
        prefix: &Hash,
    ) -> Result<bool, StoreError> {
        if let Some(known) = prefixes::known(hash, len) {
            return Ok(known == *prefix);
        }
        let path = self.blob_path(hash);
        let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut hasher = blake3::Hasher::new();
        let read = read_chunks(&mut file.take(len), &path, |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok(read == len && Hash::from(hasher.finalize()) == *prefix)
    }

    /// Re-hash a stored blob: `Ok(true)` when its content still matches its name, `Ok(false)`
    /// when it does not (a torn or tampered blob). A missing blob is an `Io` `NotFound` error.
    pub fn verify_blob(&self, hash: &Hash) -> Result<bool, StoreError> {
        let path = self.blob_path(hash);
        let actual = hash_file(&path)?;
        Ok(actual == *hash)
    }

    /// Every blob in the store with its size, sorted by hash. Files under `blobs/` whose names
    /// are not hashes are ignored (and never touched by gc).
    pub fn list_blobs(&self) -> Result<Vec<(Hash, u64)>, StoreError> {
        let blobs = self.blobs_dir();
        let mut out = Vec::new();
        for shard in read_dir(&blobs)? {
            let shard = shard.map_err(|e| StoreError::io(&blobs, e))?;
            let shard_name = shard.file_name();
            let Some(prefix) = shard_name.to_str().filter(|s| s.len() == 2) else {
                continue;
            };
            let shard_path = shard.path();
            if !shard_path.is_dir() {
                continue;
            }
            for blob in read_dir(&shard_path)? {
                let blob = blob.map_err(|e| StoreError::io(&shard_path, e))?;
                let name = blob.file_name();
                let Some(rest) = name.to_str().filter(|s| s.len() == 62) else {
                    continue;
                };
                let Ok(hash) = format!("{prefix}{rest}").parse::<Hash>() else {
                    continue;
                };
                let meta = blob
                    .metadata()
                    .map_err(|e| StoreError::io(blob.path(), e))?;
                if meta.is_file() {
                    out.push((hash, meta.len()));
                }
            }
        }
        out.sort_unstable_by_key(|(h, _)| *h);
        Ok(out)
    }

    /// How many times blobs have been removed from this store (by gc, or moved aside as
    /// damaged): while it stays the same, every blob seen earlier is still there. The stat
    /// cache relies on it to skip checking each file's blob (see `statcache`).
    pub fn blob_generation(&self) -> u64 {
        fs::read_to_string(self.root().join(BLOB_GENERATION_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Say that blobs are about to be removed: called before removing any, so that a crash
    /// part-way leaves the generation changed.
    pub(crate) fn note_blobs_removed(&self) -> Result<(), StoreError> {
        let path = self.root().join(BLOB_GENERATION_FILE);
        let next = self.blob_generation().wrapping_add(1);
        let tmp = self
            .tmp_dir()
            .join(format!("generation.{}", std::process::id()));
        fs::write(&tmp, format!("{next}\n")).map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))
    }

    /// Delete a blob. Only gc calls this, holding the exclusive lock, after
    /// [`Store::note_blobs_removed`].
    pub(crate) fn remove_blob(&self, hash: &Hash) -> Result<(), StoreError> {
        let path = self.blob_path(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Files left in `tmp/` by interrupted inserts.
    pub fn tmp_leftovers(&self) -> Result<Vec<PathBuf>, StoreError> {
        let tmp = self.tmp_dir();
        let mut out = Vec::new();
        for e in read_dir(&tmp)? {
            out.push(e.map_err(|e| StoreError::io(&tmp, e))?.path());
        }
        out.sort();
        Ok(out)
    }

    fn lock_file(&self) -> Result<File, StoreError> {
        let path = self.root.join("lock");
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(path, e))
    }

    /// Shared lock: ingests and runs hold it while they add or rely on unregistered blobs.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        let file = self.lock_file()?;
        FileExt::lock_shared(&file).map_err(|e| StoreError::io(self.root.join("lock"), e))?;
        Ok(StoreLock {
            _file: file,
            exclusive: false,
        })
    }

    /// Exclusive lock for gc --delete (blocks until every shared holder is gone).
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        let file = self.lock_file()?;
        FileExt::lock_exclusive(&file).map_err(|e| StoreError::io(self.root.join("lock"), e))?;
        Ok(StoreLock {
            _file: file,
            exclusive: true,
        })
    }

    /// The exclusive lock if it is free right now, `None` if someone holds the lock.
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>, StoreError> {
        let file = self.lock_file()?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(()) => Ok(Some(StoreLock {
                _file: file,
                exclusive: true,
            })),
            Err(e) if is_would_block(&e) => Ok(None),
            Err(e) => Err(StoreError::io(self.root.join("lock"), e)),
        }
    }

    /// The shared lock if no exclusive holder has it right now, `None` otherwise.
    pub fn try_lock_shared(&self) -> Result<Option<StoreLock>, StoreError> {
        let file = self.lock_file()?;
        match FileExt::try_lock_shared(&file) {
            Ok(()) => Ok(Some(StoreLock {
                _file: file,
                exclusive: false,
            })),
            Err(e) if is_would_block(&e) => Ok(None),
            Err(e) => Err(StoreError::io(self.root.join("lock"), e)),
        }
    }
}

/// `Store::default_root` with the environment given as a function (for tests).
fn default_root_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, StoreError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(home) = var("VRIFT_HOME") {
        return absolute(Path::new(&home));
    }
    if let Some(xdg) = var("XDG_DATA_HOME").map(PathBuf::from) {
        // The XDG spec says relative values are invalid and must be ignored.
        if xdg.is_absolute() {
            return Ok(xdg.join("vrift"));
        }
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/vrift")),
        None => Err(StoreError::NoHome),
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}

fn read_dir(dir: &Path) -> Result<fs::ReadDir, StoreError> {
    fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))
}

/// `path` made absolute against the current directory (not canonicalized).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, StoreError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| StoreError::io(path, e))?;
    Ok(cwd.join(path))
}

/// BLAKE3 of a file's content, streamed.
pub(crate) fn hash_file(path: &Path) -> Result<Hash, StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    read_chunks(&mut file, path, |chunk| {
        hasher.update(chunk);
        Ok(())
    })?;
    Ok(hasher.finalize().into())
}

/// Read `from` to its end in chunks, handing each to `each`; the bytes read. Errors name
/// `path`.
pub(crate) fn read_chunks(
    from: &mut impl Read,
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut buf = vec![0u8; insert::CHUNK];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io(path, e)),
        };
        each(&buf[..n])?;
        size += n as u64;
    }
}

/// The (size, mtime, ctime, inode) a file had; compared before and after reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    pub(crate) fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests;
