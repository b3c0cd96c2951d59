//! Garbage collection: blobs that no registered manifest references.
//!
//! Every manifest in the roots registry protects the blobs its file entries name. A root whose
//! manifest file is gone protects nothing (and is removed by `execute`); a root whose manifest
//! cannot be read or is corrupt makes gc refuse, since deleting on partial knowledge could
//! lose blobs that manifest still needs.
//!
//! `plan` only reads. `execute` needs the store's exclusive lock: ingests and runs hold the
//! shared lock while they add blobs that no registered manifest names yet, so under the
//! exclusive lock every blob in the store is either referenced by a root or garbage.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use crate::hash::Hash;
use crate::manifest::{EntryKind, Manifest, ManifestError};
use crate::store::{Root, Store, StoreError, StoreLock};

/// Why gc cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{source}\n(gc root {}); refusing to collect garbage: repair that manifest, or delete the root file if the manifest is no longer needed",
        root_file.display()
    )]
    BrokenRoot {
        manifest: PathBuf,
        root_file: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("deleting garbage needs the store's exclusive lock")]
    NotExclusive,
}

/// The roots registry read back: which manifests are there, gone, or unreadable.
#[derive(Debug, Default)]
pub struct RootScan {
    pub live: Vec<(Root, Manifest)>,
    /// Roots whose manifest file no longer exists.
    pub stale: Vec<Root>,
    /// Roots whose manifest exists but cannot be read or decoded.
    pub broken: Vec<(Root, ManifestError)>,
}

/// Load every manifest the roots registry names.
pub fn scan_roots(store: &Store) -> Result<RootScan, StoreError> {
    let mut scan = RootScan::default();
    for root in store.roots()? {
        match Manifest::load(&root.manifest) {
            Ok(m) => scan.live.push((root, m)),
            Err(e) if e.is_not_found() => scan.stale.push(root),
            Err(e) => scan.broken.push((root, e)),
        }
    }
    // A run that was interrupted (its vrift killed) keeps the manifest it started from in
    // `runs/<id>/base.manifest` until the next `vrift run` recovers it: its blobs stay.
    // (Runs in progress hold the shared lock, so gc --delete waits for them anyway.)
    if let Ok(runs) = std::fs::read_dir(store.root().join(RUNS_DIR)) {
        for run in runs.flatten() {
            let base = run.path().join(RUN_BASE_MANIFEST);
            if let Ok(m) = Manifest::load(&base) {
                let root = Root {
                    manifest: base,
                    file: run.path(),
                };
                scan.live.push((root, m));
            }
        }
    }
    Ok(scan)
}

/// Where `vrift run` keeps a run's state in the store, and the manifest it started from.
pub const RUNS_DIR: &str = "runs";
pub const RUN_BASE_MANIFEST: &str = "base.manifest";

/// What gc would do (or, from `execute`, what it did).
#[derive(Debug, Default)]
pub struct GcPlan {
    /// Blobs no live manifest references, with their sizes, sorted by hash.
    pub unreferenced: Vec<(Hash, u64)>,
    /// Roots whose manifest is gone.
    pub stale_roots: Vec<Root>,
    /// Roots that protect blobs.
    pub live_roots: Vec<Root>,
    /// Blobs in the store that some live manifest references.
    pub referenced_blobs: usize,
    /// Blobs a live manifest references that are not in the store (`manifest verify` tells
    /// which paths); gc cannot fix these, it only reports them.
    pub missing_blobs: Vec<Hash>,
    /// Files left in `tmp/` by interrupted inserts (deleted by `execute` only).
    pub tmp_leftovers: Vec<PathBuf>,
}

impl GcPlan {
    pub fn unreferenced_bytes(&self) -> u64 {
        self.unreferenced.iter().map(|(_, s)| s).sum()
    }
}

/// The hashes every live manifest references.
pub fn referenced(scan: &RootScan) -> HashSet<Hash> {
    scan.live
        .iter()
        .flat_map(|(_, m)| m.iter())
        .filter(|(_, e)| e.kind == EntryKind::File)
        .map(|(_, e)| e.hash)
        .collect()
}

/// Work out what gc would delete, without deleting anything.
pub fn plan(store: &Store) -> Result<GcPlan, GcError> {
    let mut scan = scan_roots(store)?;
    if !scan.broken.is_empty() {
        let (root, source) = scan.broken.remove(0);
        return Err(GcError::BrokenRoot {
            manifest: root.manifest,
            root_file: root.file,
            source,
        });
    }
    let wanted = referenced(&scan);
    let blobs = store.list_blobs()?;
    let mut plan = GcPlan {
        stale_roots: scan.stale,
        live_roots: scan.live.into_iter().map(|(r, _)| r).collect(),
        tmp_leftovers: store.tmp_leftovers()?,
        ..GcPlan::default()
    };
    let mut present = HashSet::with_capacity(blobs.len());
    for (hash, size) in blobs {
        present.insert(hash);
        if wanted.contains(&hash) {
            plan.referenced_blobs += 1;
        } else {
            plan.unreferenced.push((hash, size));
        }
    }
    plan.missing_blobs = wanted.difference(&present).copied().collect();
    plan.missing_blobs.sort_unstable();
    Ok(plan)
}

/// Plan again under the exclusive `lock` and delete: unreferenced blobs, stale roots, and
/// leftover temp files. Returns what was deleted.
pub fn execute(store: &Store, lock: &StoreLock) -> Result<GcPlan, GcError> {
    if !lock.is_exclusive() {
        return Err(GcError::NotExclusive);
    }
    let plan = plan(store)?;
    for root in &plan.stale_roots {
        store.remove_root(root)?;
    }
    for (hash, _) in &plan.unreferenced {
        store.remove_blob(hash)?;
    }
    for tmp in &plan.tmp_leftovers {
        let removed = if tmp.is_dir() {
            fs::remove_dir_all(tmp)
        } else {
            fs::remove_file(tmp)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Io {
                    path: tmp.clone(),
                    source: e,
                }
                .into())
            }
        }
    }
    Ok(plan)
}

/// What `vrift status` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Manifests the roots registry knows and that load.
    pub manifests: usize,
    /// Roots whose manifest file is gone.
    pub stale_roots: usize,
    /// Roots whose manifest cannot be read, with the error (their bytes are not counted).
    pub broken_roots: Vec<(PathBuf, String)>,
    /// Sum of file sizes over all those manifests: what the trees would take as plain copies.
    pub logical_bytes: u64,
    /// Blobs in the store.
    pub blobs: usize,
    /// Sum of blob sizes: what the store takes.
    pub stored_bytes: u64,
    /// Blobs (and their bytes) no manifest references; `vrift gc --delete` frees them.
    pub unreferenced_blobs: usize,
    pub unreferenced_bytes: u64,
}

impl Usage {
    /// `logical_bytes - stored_bytes` (negative when garbage outweighs the sharing).
    pub fn saved_bytes(&self) -> i64 {
        self.logical_bytes as i64 - self.stored_bytes as i64
    }

    /// The saving as a percentage of `logical_bytes` (0 for an empty store).
    pub fn saved_percent(&self) -> f64 {
        if self.logical_bytes == 0 {
            0.0
        } else {
            self.saved_bytes() as f64 * 100.0 / self.logical_bytes as f64
        }
    }
}

/// Measure the store against every registered manifest. Unlike `plan`, a broken root does not
/// stop it; it is listed in `broken_roots`.
pub fn usage(store: &Store) -> Result<Usage, StoreError> {
    let scan = scan_roots(store)?;
    let wanted = referenced(&scan);
    let blobs = store.list_blobs()?;
    let unreferenced: Vec<u64> = blobs
        .iter()
        .filter(|(h, _)| !wanted.contains(h))
        .map(|(_, s)| *s)
        .collect();
    Ok(Usage {
        manifests: scan.live.len(),
        stale_roots: scan.stale.len(),
        broken_roots: scan
            .broken
            .iter()
            .map(|(r, e)| (r.manifest.clone(), e.to_string()))
            .collect(),
        logical_bytes: scan.live.iter().map(|(_, m)| m.total_file_bytes()).sum(),
        blobs: blobs.len(),
        stored_bytes: blobs.iter().map(|(_, s)| s).sum(),
        unreferenced_blobs: unreferenced.len(),
        unreferenced_bytes: unreferenced.iter().sum(),
    })
}

#[cfg(test)]
mod tests;
