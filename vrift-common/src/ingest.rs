//! Ingest: walk a real directory, put every file into the store, and describe the tree as a
//! [`Manifest`].
//!
//! [`ingest`] never writes into the project; [`write_project_manifest`] saves
//! `<root>/vrift.manifest` when the caller wants it. A re-ingest of an unchanged tree reads
//! no file content: the stat cache (see [`crate::statcache`]) vouches for unchanged files.

mod meta;
mod store_files;
mod walk;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::filters::{ExcludeReason, Filter, MANIFEST_FILE};
use crate::hash::Hash;
use crate::manifest::{Entry, EntryKind, Manifest, ManifestError, RelPath};
use crate::origin::{Origin, Origins};
use crate::statcache::{self, FileStat, StatCache};
use crate::store::{Store, StoreError};

use store_files::Stored;

/// How to ingest.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Which paths to leave out (built for the same root).
    pub filter: Filter,
    /// Reuse hashes of unchanged files from the stat cache (and update it afterwards).
    pub use_stat_cache: bool,
    /// Threads storing files; 0 picks a small number from the machine's cores.
    pub threads: usize,
    /// Files whose content the caller knows, with their `lstat` as it was once that content
    /// was in place: vrift wrote them itself from these stored blobs (a run's write-back).
    /// Trusted like stat-cache entries, when the file's stat is still the same.
    pub known: HashMap<RelPath, (FileStat, Hash)>,
    /// Record each entry's owner and group (see [`Owners`]).
    pub owners: Owners,
}

/// When ingest records owners in the manifest (format version 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Owners {
    /// When ingest runs as root over a tree with more than one owner (uid and gid): then
    /// the tree's owners are part of what it is, and a view must keep them. A tree that is
    /// all one user's is portable, and stays so.
    #[default]
    Auto,
    /// Always (`--owners`).
    Always,
}

impl IngestOptions {
    pub fn new(filter: Filter) -> IngestOptions {
        IngestOptions {
            filter,
            use_stat_cache: true,
            threads: 0,
            known: HashMap::new(),
            owners: Owners::Auto,
        }
    }
}

/// Where an ingest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestPhase {
    /// Listing the tree; `entries_seen` grows.
    Walking,
    /// Storing files; `files_done` of `files_total` (only files that needed reading).
    Storing,
}

/// Progress, reported on the calling thread.
#[derive(Clone, Copy, Debug)]
pub struct IngestProgress {
    pub phase: IngestPhase,
    pub entries_seen: u64,
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A path the filter left out (the topmost one: nothing below it was looked at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excluded {
    /// Relative to the root, raw bytes.
    pub path: RelPath,
    pub is_dir: bool,
    pub reason: ExcludeReason,
}

/// Something the user should know that did not stop the ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestWarning {
    /// Sockets and devices are not part of a view (FIFOs are).
    SpecialFileSkipped { path: PathBuf, kind: &'static str },
    /// The file was deleted while the ingest was running.
    Vanished { path: PathBuf },
    /// The user may not read it: left out of the manifest, kept on disk as it is, and passed
    /// through to the view (where it is just as unreadable).
    Unreadable { path: PathBuf },
    /// The stat cache could not be used (corrupt, unreadable); every file was read.
    StatCacheIgnored { reason: String },
    /// The stat cache could not be written; the next ingest will read every file again.
    StatCacheNotSaved { reason: String },
}

impl IngestWarning {
    /// The path the warning is about (`None` for the stat cache's own).
    pub fn path(&self) -> Option<&Path> {
        match self {
            IngestWarning::SpecialFileSkipped { path, .. }
            | IngestWarning::Vanished { path }
            | IngestWarning::Unreadable { path } => Some(path),
            IngestWarning::StatCacheIgnored { .. } | IngestWarning::StatCacheNotSaved { .. } => {
                None
            }
        }
    }
}

impl fmt::Display for IngestWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestWarning::SpecialFileSkipped { path, kind } => {
                write!(f, "{}: skipped ({kind})", path.display())
            }
            IngestWarning::Vanished { path } => {
                write!(f, "{}: deleted during ingest, left out", path.display())
            }
            IngestWarning::Unreadable { path } => write!(
                f,
                "{}: Permission denied; left out of the manifest and passed through as it is on disk",
                path.display()
            ),
            IngestWarning::StatCacheIgnored { reason } => {
                write!(f, "stat cache ignored: {reason}")
            }
            IngestWarning::StatCacheNotSaved { reason } => {
                write!(f, "stat cache not saved: {reason}")
            }
        }
    }
}

/// What an ingest did.
#[derive(Clone, Debug)]
pub struct IngestReport {
    pub manifest: Manifest,
    /// The canonical root that was ingested.
    pub root: PathBuf,
    /// Counts of manifest entries by kind (`dirs` includes the root).
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Total size of the files.
    pub bytes: u64,
    /// Bytes written to the store as new blobs.
    pub bytes_new: u64,
    /// Bytes whose content the store already had (`bytes - bytes_new`).
    pub bytes_present: u64,
    /// Files whose content was read and hashed.
    pub files_hashed: u64,
    /// Files whose hash came from the stat cache (content not read).
    pub files_unchanged: u64,
    /// Paths the filter left out, sorted.
    pub excluded: Vec<Excluded>,
    pub warnings: Vec<IngestWarning>,
    pub elapsed: Duration,
    /// Each manifest entry's inode number and ctime on disk, as this ingest saw them (see
    /// [`crate::origin`]).
    pub origins: Origins,
}

/// Errors that stop an ingest. Each names the path concerned. When one is returned nothing
/// was written to the project, the stat cache is unchanged, and blobs already in the store
/// are untouched (blobs added by the failed ingest are unreferenced; gc removes them).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path}: storing it failed: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("{path}: kept changing while it was being stored ({attempts} attempts); try again when it is quiet")]
    KeptChanging { path: PathBuf, attempts: u32 },
    #[error(transparent)]
    StoreLock(StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Threads for storing files when the caller does not say: reading and hashing small files
/// is mostly system-call bound, so a couple more than the cores keeps them busy.
fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores + 1).min(8)
}

/// Walk `root`, store every file the filter keeps, and return the manifest with a report.
///
/// Holds `store.lock_shared()` throughout. The returned manifest's blobs are protected from
/// `gc --delete` only while some lock is held or once the manifest is registered as a root:
/// callers that keep it should hold their own `lock_shared()` across `ingest` and
/// [`write_project_manifest`].
pub fn ingest(
    store: &Store,
    root: &Path,
    opts: &IngestOptions,
    progress: &dyn Fn(IngestProgress),
) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    let _lock = store.lock_shared().map_err(IngestError::StoreLock)?;
    let root = root.canonicalize().map_err(|source| IngestError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if !root.is_dir() {
        return Err(IngestError::NotADirectory { path: root });
    }

    // Taken before any file is looked at: files modified from now on are racy. Under the
    // shared lock gc cannot remove blobs meanwhile, so the generation holds for this ingest.
    let racy_ref = statcache::racy_reference_now();
    let blob_generation = store.blob_generation();
    let cache_path = statcache::cache_path(store.root(), &root);
    let mut warnings = Vec::new();
    let cache = if opts.use_stat_cache {
        StatCache::load(&cache_path, &root).unwrap_or_else(|e| {
            warnings.push(IngestWarning::StatCacheIgnored {
                reason: e.to_string(),
            });
            StatCache::empty()
        })
    } else {
        StatCache::empty()
    };

    let store_root = store
        .root()
        .canonicalize()
        .unwrap_or_else(|_| store.root().to_path_buf());
    let mut walked = walk::walk(&root, &opts.filter, &store_root, &mut |seen| {
        progress(IngestProgress {
            phase: IngestPhase::Walking,
            entries_seen: seen,
            files_done: 0,
            files_total: 0,
            bytes_done: 0,
            bytes_total: 0,
        })
    })?;
    warnings.append(&mut walked.warnings);
    let entries_seen = (walked.entries.len() + walked.files.len() + walked.excluded.len()) as u64;

    let threads = if opts.threads == 0 {
        default_threads()
    } else {
        opts.threads
    };
    // Per file: the stat and hash that end up in the manifest; None until known.
    let mut results = cached_hashes(store, &cache, blob_generation, &walked.files, threads);
    let mut known_used = 0u64;
    for (item, result) in walked.files.iter().zip(results.iter_mut()) {
        if result.is_none() {
            *result = opts
                .known
                .get(&item.rel)
                .filter(|(stat, hash)| *stat == item.stat && store.contains(hash))
                .map(|(stat, hash)| (*stat, *hash));
            known_used += u64::from(result.is_some());
        }
    }
    let mut jobs = Vec::new();
    let mut bytes_present = 0u64;
    let mut files_unchanged = 0u64;
    for (i, (item, result)) in walked.files.iter().zip(&results).enumerate() {
        match result {
            Some(_) => {
                bytes_present += item.stat.size;
                files_unchanged += 1;
            }
            None => jobs.push(i),
        }
    }

    let bytes_total: u64 = jobs.iter().map(|&i| walked.files[i].stat.size).sum();
    let files_total = jobs.len() as u64;
    let report_progress = |files_done, bytes_done| {
        progress(IngestProgress {
            phase: IngestPhase::Storing,
            entries_seen,
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        })
    };
    report_progress(0, 0);
    let (mut files_done, mut bytes_done, mut bytes_new) = (0u64, 0u64, 0u64);
    let mut vanished = Vec::new();
    let mut unreadable = Vec::new();
    store_files::store_all(store, &walked.files, &jobs, threads, &mut |i, stored| {
        match stored {
            Stored::Done { stat, inserted } => {
                results[i] = Some((stat, inserted.hash));
                if inserted.newly_stored {
                    bytes_new += inserted.size;
                } else {
                    bytes_present += inserted.size;
                }
                bytes_done += inserted.size;
            }
            Stored::Vanished => vanished.push(i),
            Stored::Unreadable => unreadable.push(i),
        }
        files_done += 1;
        if files_done & 127 == 0 || files_done == files_total {
            report_progress(files_done, bytes_done);
        }
    })?;
    vanished.sort_unstable();
    for &i in &vanished {
        warnings.push(IngestWarning::Vanished {
            path: walked.files[i].abs.clone(),
        });
    }

    unreadable.sort_unstable();
    for &i in &unreadable {
        warnings.push(IngestWarning::Unreadable {
            path: walked.files[i].abs.clone(),
        });
        walked.excluded.push(Excluded {
            path: walked.files[i].rel.clone(),
            is_dir: false,
            reason: ExcludeReason::Unreadable,
        });
    }

    let mut entries = std::mem::take(&mut walked.entries);
    let mut origins: Origins = entries
        .iter()
        .filter_map(|(rel, _)| {
            let id = walked.ids.get(rel)?;
            Some((
                rel.clone(),
                Origin {
                    ino: id.ino,
                    ctime_ns: id.ctime_ns,
                },
            ))
        })
        .collect();
    let mut bytes = 0u64;
    let mut cache_entries = Vec::with_capacity(walked.files.len());
    // Files the stat cache vouches have no kept xattrs: not listed again (see `statcache`).
    let mut no_xattrs: foldhash::HashSet<&[u8]> = Default::default();
    let first_file = entries.len();
    for (item, result) in walked.files.iter().zip(&results) {
        let Some((stat, hash)) = result else { continue };
        bytes += stat.size;
        if cache.has_no_xattrs(&item.rel, stat) {
            no_xattrs.insert(&item.rel);
        }
        // The stat the entry was made from (taken again after hashing for a file read now).
        origins.insert(
            item.rel.clone(),
            Origin {
                ino: stat.ino,
                ctime_ns: stat.ctime_ns,
            },
        );
        entries.push((
            item.rel.clone(),
            Entry {
                kind: EntryKind::File,
                hash: *hash,
                size: stat.size,
                mode: stat.mode & 0o7777,
                mtime_ns: stat.mtime_ns,
                target: Vec::new(),
                meta: Default::default(),
            },
        ));
        cache_entries.push((item.rel.as_slice(), stat, hash));
    }
    set_root_mtime(&mut entries);
    meta::attach(&root, &mut entries, &walked.ids, opts.owners, &no_xattrs)
        .map_err(|(path, source)| IngestError::Io { path, source })?;
    // The files' entries, in the order of `cache_entries`, now with their xattrs.
    let cache_entries: Vec<_> = cache_entries
        .into_iter()
        .zip(&entries[first_file..])
        .map(|((path, stat, hash), (_, e))| (path, stat, hash, e.meta.xattrs.is_empty()))
        .collect();
    let files = cache_entries.len() as u64;
    let manifest = Manifest::from_entries(entries);

    // A cache that vouched for every file, with nothing new to record, stays as it is: its
    // racy reference is older, so it trusts no more than a new one would, and not writing
    // it leaves nothing for the next sync of the file system to do (a run's overlay is
    // unmounted with a sync of the store's file system).
    let cache_still_right = files_done == 0
        && known_used == 0
        && files_unchanged == cache.len() as u64
        && cache.blob_generation() == Some(blob_generation)
        && cache.has_flags();
    if opts.use_stat_cache && !cache_still_right {
        let encoded =
            statcache::encode(&root, racy_ref, blob_generation, cache_entries.into_iter());
        if let Err(e) = statcache::save(&cache_path, &encoded) {
            warnings.push(IngestWarning::StatCacheNotSaved {
                reason: format!("{}: {e}", cache_path.display()),
            });
        }
    }

    let mut excluded = walked.excluded;
    excluded.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(IngestReport {
        manifest,
        root,
        files,
        dirs: walked.dirs,
        symlinks: walked.symlinks,
        bytes,
        bytes_new,
        bytes_present,
        files_hashed: files_done - vanished.len() as u64 - unreadable.len() as u64,
        files_unchanged,
        excluded,
        warnings,
        elapsed: started.elapsed(),
        origins,
    })
}

/// For each file, its stat and hash when the stat cache vouches for it and the blob is still
/// in the store, whole. While the store has removed no blob since the cache was written
/// (`blob_generation`), every blob the cache names is there and none is looked at; else one
/// `stat` of a blob per file (gc may have removed it), done on `threads` scoped threads, as
/// it is then most of a re-ingest's time.
fn cached_hashes(
    store: &Store,
    cache: &StatCache,
    blob_generation: u64,
    files: &[walk::FileItem],
    threads: usize,
) -> Vec<Option<(FileStat, crate::hash::Hash)>> {
    if cache.is_empty() {
        return vec![None; files.len()];
    }
    if cache.blob_generation() == Some(blob_generation) {
        return files
            .iter()
            .map(|item| cache.lookup(&item.rel, &item.stat).map(|h| (item.stat, h)))
            .collect();
    }
    let check = |item: &walk::FileItem| {
        cache
            .lookup(&item.rel, &item.stat)
            .filter(|h| store.blob_size(h).ok() == Some(item.stat.size))
            .map(|h| (item.stat, h))
    };
    let chunk = files.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        // A part whose thread cannot be made (or that panicked) is checked on this thread.
        let parts: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let worker = std::thread::Builder::new()
                    .spawn_scoped(s, move || part.iter().map(check).collect::<Vec<_>>());
                (part, worker.ok())
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(part, worker)| {
                worker
                    .and_then(|w| w.join().ok())
                    .unwrap_or_else(|| part.iter().map(check).collect())
            })
            .collect()
    })
}

/// The root directory's recorded mtime is the newest mtime of its direct children (0 when
/// it has none), not its own: writing `vrift.manifest` into it changes its own mtime, and
/// the manifest of an unchanged tree must not change.
fn set_root_mtime(entries: &mut [(RelPath, Entry)]) {
    let newest = entries
        .iter()
        .filter(|(p, _)| !p.is_empty() && !p.contains(&b'/'))
        .map(|(_, e)| e.mtime_ns)
        .max()
        .unwrap_or(0);
    if let Some((_, root)) = entries.iter_mut().find(|(p, _)| p.is_empty()) {
        root.mtime_ns = newest;
    }
}

/// Save `manifest` as `<root>/vrift.manifest` (atomically) and register it with the store as
/// a gc root. Returns the manifest's path.
pub fn write_project_manifest(
    root: &Path,
    manifest: &Manifest,
    store: &Store,
) -> Result<PathBuf, IngestError> {
    let root = root.canonicalize().map_err(|source| IngestError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let path = root.join(MANIFEST_FILE);
    manifest.save_atomic(&path)?;
    store
        .register_root(&path)
        .map_err(|source| IngestError::Store {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

#[cfg(test)]
mod tests;
