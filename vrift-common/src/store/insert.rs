//! Putting content into the store: write to `tmp/` while hashing, then move into place
//! (never over an existing blob).
//!
//! Blobs are not fsync'd one by one (that would make a first ingest of a large tree many times
//! slower than `cp -r`); manifests are. A blob torn by a crash is caught by
//! `Store::verify_blob` / `vrift store verify`. Inserting content whose blob already exists
//! checks that blob: its size, then its content (one read of the blob); a blob that fails
//! either is moved aside to `quarantine/` (see `heal.rs`) and replaced by the content just
//! read, so storing a file again repairs its blob.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::place::place_noreplace;
use super::{Inserted, Stamp, Store, StoreError, BLOB_MODE};
use crate::hash::Hash;

/// Read buffer size for streaming.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Files up to this size are read into memory first, so content already in the store costs
/// no write at all.
const SMALL_FILE: u64 = 1 << 20;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Copy the file at `path` into the store, hashing while copying (one read).
    ///
    /// Fails with `ChangedDuringIngest` when the file's size, mtime, ctime or inode differ
    /// between before and after reading it. Symlinks are not followed (ingest stores their
    /// targets in the manifest); anything but a regular file is an `InvalidInput` error.
    pub fn insert_file(&self, path: &Path) -> Result<Inserted, StoreError> {
        self.insert_file_observed(path, &mut || {})
    }

    /// `insert_file` with a hook run after the content was read and before the file is
    /// checked for changes (tests use it to change the file at exactly that moment).
    pub(crate) fn insert_file_observed(
        &self,
        path: &Path,
        after_read: &mut dyn FnMut(),
    ) -> Result<Inserted, StoreError> {
        let io_err = |e| StoreError::io(path, e);
        let (mut file, before) = open_regular(path)?;

        if before.size() <= SMALL_FILE {
            let mut data = Vec::with_capacity(before.size() as usize + 1);
            file.read_to_end(&mut data).map_err(io_err)?;
            after_read();
            check_unchanged(path, &file, before, data.len() as u64)?;
            return self.insert_bytes(&data);
        }

        let mut temp = TempBlob::create(self)?;
        let mut hasher = blake3::Hasher::new();
        let size = super::read_chunks(&mut file, path, |chunk| {
            hasher.update(chunk);
            temp.write_all(chunk)
        })?;
        after_read();
        check_unchanged(path, &file, before, size)?;
        self.commit(temp, hasher.finalize().into(), size)
    }

    /// Hash the regular file at `path` where it is, without storing it: its hash and size.
    /// Fails with `ChangedDuringIngest` when it changed while being read (see
    /// [`Store::insert_file`]). With `prefix_at` = Some(n) and a longer file, the hash of its
    /// first n bytes is computed on the way and remembered for [`Store::blob_starts_with`]
    /// (a file that grew by appending: its write-back then appends without reading it again).
    pub fn hash_in_place(path: &Path, prefix_at: Option<u64>) -> Result<(Hash, u64), StoreError> {
        let (mut file, before) = open_regular(path)?;
        let mut hasher = blake3::Hasher::new();
        let mut prefix = None;
        let mut seen = 0u64;
        let size = super::read_chunks(&mut file, path, |chunk| {
            match prefix_at {
                Some(at) if prefix.is_none() && at > 0 && seen + chunk.len() as u64 >= at => {
                    let (head, tail) = chunk.split_at((at - seen) as usize);
                    hasher.update(head);
                    prefix = Some(Hash::from(hasher.finalize()));
                    hasher.update(tail);
                }
                _ => {
                    hasher.update(chunk);
                }
            }
            seen += chunk.len() as u64;
            Ok(())
        })?;
        check_unchanged(path, &file, before, size)?;
        let hash: Hash = hasher.finalize().into();
        if let (Some(at), Some(p)) = (prefix_at, prefix) {
            if size > at {
                super::prefixes::remember(hash, at, p);
            }
        }
        Ok((hash, size))
    }

    /// Whether the blob `hash` is in the store with `size` bytes.
    pub fn has_blob(&self, hash: &Hash, size: u64) -> bool {
        self.existing_size(hash) == Some(size)
    }

    /// Make the file at `path`, which [`Store::hash_in_place`] found to hold `hash` (`size`
    /// bytes) and which nothing writes any more, the blob `hash` by moving it into the store:
    /// no copy. For files the caller owns and is done with (a finished run's upper
    /// directory, on the store's file system). `path` is gone afterwards, unless the store
    /// already had the blob. On another file system it is copied (and left in place).
    pub fn adopt_file(&self, path: &Path, hash: Hash, size: u64) -> Result<Inserted, StoreError> {
        if self.has_blob(&hash, size) {
            return Ok(Inserted {
                hash,
                size,
                newly_stored: false,
            });
        }
        let mut temp = TempBlob::create(self)?;
        temp.file = None;
        match fs::rename(path, &temp.path) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                drop(temp);
                let inserted = self.insert_file(path)?;
                if inserted.hash != hash {
                    return Err(StoreError::ChangedDuringIngest {
                        path: path.to_path_buf(),
                    });
                }
                return Ok(inserted);
            }
            Err(e) => return Err(StoreError::io(path, e)),
        }
        let meta = fs::symlink_metadata(&temp.path).map_err(|e| StoreError::io(&temp.path, e))?;
        if !meta.is_file() || meta.len() != size {
            // Not what was hashed: put it back where it was, and say so.
            let _ = fs::rename(&temp.path, path);
            temp.placed = true;
            return Err(StoreError::ChangedDuringIngest {
                path: path.to_path_buf(),
            });
        }
        fs::set_permissions(&temp.path, fs::Permissions::from_mode(BLOB_MODE))
            .map_err(|e| StoreError::io(&temp.path, e))?;
        self.commit(temp, hash, size)
    }

    /// Put bytes into the store.
    pub fn insert_bytes(&self, data: &[u8]) -> Result<Inserted, StoreError> {
        let hash = Hash::of(data);
        let size = data.len() as u64;
        if self.existing_size(&hash) == Some(size) && self.existing_matches(&hash, Some(data)) {
            return Ok(Inserted {
                hash,
                size,
                newly_stored: false,
            });
        }
        let mut temp = TempBlob::create(self)?;
        temp.write_all(data)?;
        self.commit(temp, hash, size)
    }

    /// A writer for content that must turn out to be the blob `expected` (a blob fetched from
    /// somewhere untrusted, such as a remote store). The bytes go to a temp file in `tmp/`
    /// while they are hashed; [`BlobWriter::commit`] moves the file into place only when the
    /// hash matches, so nothing that is not the named content ever enters the store.
    pub fn blob_writer(&self, expected: Hash) -> Result<BlobWriter, StoreError> {
        Ok(BlobWriter {
            store: self.clone(),
            expected,
            temp: TempBlob::create(self)?,
            hasher: blake3::Hasher::new(),
            size: 0,
        })
    }

    fn existing_size(&self, hash: &Hash) -> Option<u64> {
        fs::metadata(self.blob_path(hash)).ok().map(|m| m.len())
    }

    /// Whether the existing blob `hash` holds that content: compared with `data` when the
    /// caller has it in memory, else re-hashed. An unreadable blob counts as not matching
    /// (it is then moved aside and replaced, which is what a reader of it needs).
    fn existing_matches(&self, hash: &Hash, data: Option<&[u8]>) -> bool {
        let path = self.blob_path(hash);
        match data {
            Some(data) => fs::read(&path).is_ok_and(|b| b == data),
            None => super::hash_file(&path).is_ok_and(|h| h == *hash),
        }
    }

    /// Make the finished temp file the blob `hash`, unless that blob already exists.
    fn commit(&self, mut temp: TempBlob, hash: Hash, size: u64) -> Result<Inserted, StoreError> {
        temp.finish()?;
        let dest = self.blob_path(&hash);
        let mut made_shard = false;
        let mut replaced = 0;
        let newly_stored = loop {
            // Fails when the name exists, so a present blob is never replaced, and two
            // concurrent inserts of the same content both succeed with exactly one writer.
            match place_noreplace(&temp.path, &dest) {
                Ok(()) => {
                    temp.placed = true;
                    break true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !made_shard => {
                    let shard = dest.parent().expect("blob path has a shard");
                    match fs::create_dir(shard) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(StoreError::io(shard, e)),
                    }
                    made_shard = true;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if self.existing_size(&hash) == Some(size) && self.existing_matches(&hash, None)
                    {
                        break false;
                    }
                    // The blob's size or content is wrong (torn by a crash before its data
                    // reached the disk, or overwritten): move it aside, where nothing serves
                    // it, and put the content we just wrote in its place.
                    tracing::warn!(blob = %dest.display(), "replacing a damaged blob");
                    replaced += 1;
                    if replaced > 3 {
                        return Err(StoreError::io(
                            &dest,
                            io::Error::other("a damaged blob keeps coming back at this name"),
                        ));
                    }
                    self.quarantine_blob(&hash)?;
                    continue;
                }
                Err(e) => return Err(StoreError::io(&dest, e)),
            }
        };
        Ok(Inserted {
            hash,
            size,
            newly_stored,
        })
    }
}

/// See [`Store::blob_writer`]. Dropping it without committing removes the temp file.
pub struct BlobWriter {
    store: Store,
    expected: Hash,
    temp: TempBlob,
    hasher: blake3::Hasher,
    size: u64,
}

/// What [`BlobWriter::commit`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The content was the expected blob; it is in the store now (or already was).
    Stored(Inserted),
    /// The content hashed to something else: nothing was stored, the temp file is gone.
    Mismatch { actual: Hash, size: u64 },
}

impl BlobWriter {
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.temp.write_all(data)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Store the content if, and only if, it hashes to the expected name.
    pub fn commit(self) -> Result<Verified, StoreError> {
        let actual: Hash = self.hasher.finalize().into();
        if actual != self.expected {
            // `temp` is dropped here, which removes the file.
            return Ok(Verified::Mismatch {
                actual,
                size: self.size,
            });
        }
        let inserted = self.store.commit(self.temp, actual, self.size)?;
        Ok(Verified::Stored(inserted))
    }
}

/// Open the regular file at `path` for reading, with its stamp. Symlinks are not followed,
/// and O_NONBLOCK keeps the open of a FIFO from hanging; anything but a regular file is an
/// `InvalidInput` error.
fn open_regular(path: &Path) -> Result<(File, Stamp), StoreError> {
    let io_err = |e| StoreError::io(path, e);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((file, Stamp::of(&meta)))
}

fn check_unchanged(path: &Path, file: &File, before: Stamp, read: u64) -> Result<(), StoreError> {
    let after = file.metadata().map_err(|e| StoreError::io(path, e))?;
    if Stamp::of(&after) != before || read != before.size() {
        return Err(StoreError::ChangedDuringIngest {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A file being written in `tmp/`; removed on drop (after a successful link, the blob keeps
/// the content through its own name).
struct TempBlob {
    path: PathBuf,
    file: Option<File>,
    /// Renamed into the store: nothing left to clean up.
    placed: bool,
}

impl TempBlob {
    fn create(store: &Store) -> Result<TempBlob, StoreError> {
        let dir = store.tmp_dir();
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = dir.join(format!("{}-{n}-{nanos}.blob", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempBlob {
                        path,
                        file: Some(file),
                        placed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(path, e)),
            }
        }
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let file = self.file.as_mut().expect("temp blob still open");
        file.write_all(data)
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// Set the blob mode and close the file.
    fn finish(&mut self) -> Result<(), StoreError> {
        if let Some(file) = self.file.take() {
            file.set_permissions(fs::Permissions::from_mode(BLOB_MODE))
                .map_err(|e| StoreError::io(&self.path, e))?;
        }
        Ok(())
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        self.file.take();
        if !self.placed {
            let _ = fs::remove_file(&self.path);
        }
    }
}
