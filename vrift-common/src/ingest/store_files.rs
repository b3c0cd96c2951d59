//! Storing the files the stat cache could not vouch for: a few scoped threads, results
//! handed back to the calling thread (which alone reports progress).

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::walk::FileItem;
use super::IngestError;
use crate::longpath::Short;
use crate::statcache::FileStat;
use crate::store::{Inserted, Store, StoreError};

/// How many times a file that keeps changing under us is read before giving up.
pub(crate) const ATTEMPTS: u32 = 3;

/// The outcome for one file.
pub(crate) enum Stored {
    /// Stored; `stat` is what `lstat` said both before and after the content was read.
    Done { stat: FileStat, inserted: Inserted },
    /// The file was deleted while we were at it: it is not part of the tree.
    Vanished,
    /// The user may not read it: it stays on disk and passes through to the view.
    Unreadable,
}

/// Store one file, re-reading it (up to [`ATTEMPTS`] times) when it changes meanwhile.
pub(crate) fn store_one(store: &Store, item: &FileItem) -> Result<Stored, IngestError> {
    store_one_with(item, &|path| store.insert_file(path))
}

/// `store_one` with the insert operation given (tests simulate files that keep changing).
pub(crate) fn store_one_with(
    item: &FileItem,
    insert: &dyn Fn(&std::path::Path) -> Result<Inserted, StoreError>,
) -> Result<Stored, IngestError> {
    let mut stat = item.stat;
    // A deep tree's path may be longer than the kernel takes: `at` reaches it.
    let at = match Short::of(&item.abs) {
        Ok(at) => at,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::Vanished),
        Err(source) => {
            return Err(IngestError::Io {
                path: item.abs.clone(),
                source,
            })
        }
    };
    let is_item = |p: &std::path::Path| p == item.abs || p == at.path();
    for _ in 0..ATTEMPTS {
        match insert(&at) {
            Ok(inserted) => {
                let after = match fs::symlink_metadata(&at) {
                    Ok(m) => FileStat::from_metadata(&m),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Stored::Vanished)
                    }
                    Err(source) => {
                        return Err(IngestError::Io {
                            path: item.abs.clone(),
                            source,
                        })
                    }
                };
                // The walk's stat is the one the manifest and the stat cache record: it must
                // describe the content we stored.
                if after == stat && inserted.size == stat.size {
                    return Ok(Stored::Done { stat, inserted });
                }
                stat = after;
            }
            Err(StoreError::ChangedDuringIngest { .. }) => match fs::symlink_metadata(&at) {
                Ok(m) => stat = FileStat::from_metadata(&m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::Vanished),
                Err(source) => {
                    return Err(IngestError::Io {
                        path: item.abs.clone(),
                        source,
                    })
                }
            },
            Err(e) if e.is_not_found() => return Ok(Stored::Vanished),
            Err(StoreError::Io { path, source })
                if is_item(&path) && super::walk::is_denied(&source) =>
            {
                return Ok(Stored::Unreadable)
            }
            Err(StoreError::Io { path, source }) if is_item(&path) => {
                return Err(IngestError::Io {
                    path: item.abs.clone(),
                    source,
                })
            }
            Err(source) => {
                return Err(IngestError::Store {
                    path: item.abs.clone(),
                    source,
                })
            }
        }
    }
    Err(IngestError::KeptChanging {
        path: item.abs.clone(),
        attempts: ATTEMPTS,
    })
}

/// Store `files[i]` for every `i` in `jobs` on `threads` scoped threads. `on_result` runs on
/// the calling thread for each finished file, in completion order. Stops at the first error
/// (files already stored stay in the store: blobs are immutable and only added).
pub(crate) fn store_all(
    store: &Store,
    files: &[FileItem],
    jobs: &[usize],
    threads: usize,
    on_result: &mut dyn FnMut(usize, Stored),
) -> Result<(), IngestError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let threads = threads.clamp(1, jobs.len());
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let mut first_error = None;
    // Threads that cannot be made (a container's limits or seccomp profile) leave their
    // share to the others; with none at all, this thread stores every file itself.
    let mut started = 0;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, abort) = (&next, &abort);
            let worker = std::thread::Builder::new().spawn_scoped(s, move || {
                while !abort.load(Ordering::Relaxed) {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = jobs.get(j) else { break };
                    let result = store_one(store, &files[i]);
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
            match worker {
                Ok(_) => started += 1,
                Err(e) => {
                    tracing::debug!("ingest: cannot start a thread ({e}); going on with {started}");
                    break;
                }
            }
        }
        drop(tx);
        for (i, result) in rx {
            match result {
                Ok(stored) => on_result(i, stored),
                Err(e) => {
                    abort.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    if started == 0 {
        for &i in jobs {
            on_result(i, store_one(store, &files[i])?);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
