//! Garbage collection: blobs that no registered manifest references.
//!
//! Like a Nix GC root, every manifest in the roots registry protects the blobs its file
//! entries name. A root also *pins* the manifest's own bytes as a blob (see
//! [`crate::store::Root`]), so the protection does not depend on the manifest file staying
//! where it was:
//!
//! - a root whose manifest file is there protects that manifest's blobs (and, while the file
//!   differs from the pinned copy, the pinned copy's blobs too);
//! - a root whose manifest file is gone (moved, deleted, its folder renamed) protects the
//!   pinned copy's blobs: gc reports it as moved or deleted and keeps them until the user
//!   releases it with `vrift gc --forget PATH`;
//! - a root whose manifest cannot be read or is corrupt, or is gone with no usable pin, makes
//!   gc refuse, since deleting on partial knowledge could lose blobs that manifest needs.
//!
//! Only an explicit forget, or a manifest that was only ever a cache (an interrupted run's
//! `base.manifest`, removed with its run), releases blobs.
//!
//! `plan` only reads. `execute` needs the store's exclusive lock: ingests and runs hold the
//! shared lock while they add blobs that no registered manifest names yet, so under the
//! exclusive lock every blob in the store is either referenced by a root or garbage.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::hash::Hash;
use crate::manifest::{EntryKind, Manifest, ManifestError};
use crate::store::{Root, Store, StoreError, StoreLock};

/// Why a root cannot tell gc which blobs it needs.
#[derive(Debug)]
pub enum RootProblem {
    /// The manifest file exists but cannot be read or decoded.
    Unreadable(ManifestError),
    /// The manifest file is gone and its pinned copy in the store is missing or damaged.
    PinLost { pinned: Hash, reason: String },
    /// The manifest file is gone and the root (written by an older vrift) pins no copy.
    Unpinned,
}

impl fmt::Display for RootProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootProblem::Unreadable(e) => write!(f, "{e}"),
            RootProblem::PinLost { pinned, reason } => write!(
                f,
                "the manifest is gone and its copy in the store ({pinned}) is {reason}"
            ),
            RootProblem::Unpinned => f.write_str(
                "the manifest is gone and this root (written by an older vrift) keeps no copy of it",
            ),
        }
    }
}

impl std::error::Error for RootProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RootProblem::Unreadable(e) => Some(e),
            _ => None,
        }
    }
}

/// Why gc cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{}{problem}\n(gc root {}); refusing to collect garbage: {}",
        if matches!(problem, RootProblem::Unreadable(_)) { String::new() } else { format!("{}: ", manifest.display()) },
        root_file.display(),
        if matches!(problem, RootProblem::Unreadable(_)) {
            format!("repair that manifest, or `vrift gc --forget {}` if it is no longer needed", manifest.display())
        } else {
            format!("put the manifest back, or `vrift gc --forget {}` to release its blobs", manifest.display())
        }
    )]
    BrokenRoot {
        manifest: PathBuf,
        root_file: PathBuf,
        #[source]
        problem: RootProblem,
    },
    #[error("deleting garbage needs the store's exclusive lock")]
    NotExclusive,
    #[error("{}: not a gc root (`vrift gc --json` lists the roots under \"live_roots\" and \"moved_roots\")", path.display())]
    NotARoot { path: PathBuf },
}

/// The roots registry read back: which manifests are there, moved away, or unusable.
#[derive(Debug, Default)]
pub struct RootScan {
    /// Roots whose manifest file loads (with that manifest).
    pub live: Vec<(Root, Manifest)>,
    /// Roots whose manifest file is gone, with the pinned copy that still protects its blobs.
    pub moved: Vec<(Root, Manifest)>,
    /// Earlier contents of live manifests, still pinned by their roots.
    pub pinned_versions: Vec<Manifest>,
    /// Blobs holding pinned manifests.
    pub pins: Vec<Hash>,
    /// Roots that cannot say which blobs they need.
    pub broken: Vec<(Root, RootProblem)>,
}

/// Load a pinned manifest copy from the store, checking its bytes against its name.
fn load_pinned(store: &Store, pinned: &Hash) -> Result<Manifest, String> {
    let path = store.blob_path(pinned);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err("missing".into()),
        Err(e) => return Err(format!("unreadable ({e})")),
    };
    if Hash::of(&bytes) != *pinned {
        return Err("corrupt (content does not match its hash)".into());
    }
    Manifest::decode(&bytes, &path).map_err(|e| format!("not a manifest ({e})"))
}

/// Load every manifest the roots registry names.
pub fn scan_roots(store: &Store) -> Result<RootScan, StoreError> {
    let mut scan = RootScan::default();
    for root in store.roots()? {
        if let Some(p) = root.pinned {
            scan.pins.push(p);
        }
        match Manifest::load(&root.manifest) {
            Ok(m) => {
                if let Some(p) = root.pinned.filter(|p| *p != m.hash()) {
                    // The file was replaced behind the registry's back: keep both versions.
                    if let Ok(old) = load_pinned(store, &p) {
                        scan.pinned_versions.push(old);
                    }
                }
                scan.live.push((root, m));
            }
            Err(e) if e.is_not_found() => match root.pinned {
                Some(p) => match load_pinned(store, &p) {
                    Ok(m) => scan.moved.push((root, m)),
                    Err(reason) => scan
                        .broken
                        .push((root, RootProblem::PinLost { pinned: p, reason })),
                },
                None => scan.broken.push((root, RootProblem::Unpinned)),
            },
            Err(e) => scan.broken.push((root, RootProblem::Unreadable(e))),
        }
    }
    // A run that was interrupted (its vrift killed) keeps the manifest it started from in
    // `runs/<id>/base.manifest` until the next `vrift run` recovers it: its blobs stay. So do
    // those of the result it had harvested (`result.manifest`), whose new files may already
    // have been moved into the store. (Runs in progress hold the shared lock, so gc
    // --delete waits for them anyway.)
    if let Ok(runs) = std::fs::read_dir(store.root().join(RUNS_DIR)) {
        for run in runs.flatten() {
            for name in [RUN_BASE_MANIFEST, RUN_RESULT_MANIFEST] {
                let path = run.path().join(name);
                if let Ok(m) = Manifest::load(&path) {
                    let root = Root {
                        manifest: path,
                        file: run.path(),
                        pinned: None,
                    };
                    scan.live.push((root, m));
                }
            }
        }
    }
    Ok(scan)
}

/// Where `vrift run` keeps a run's state in the store, and the manifest it started from.
pub const RUNS_DIR: &str = "runs";
pub const RUN_BASE_MANIFEST: &str = "base.manifest";
/// A run's harvested result, written before its new files are moved into the store.
pub const RUN_RESULT_MANIFEST: &str = "result.manifest";

/// A root whose manifest file is gone, and what its pinned copy keeps.
#[derive(Debug, Clone)]
pub struct MovedRoot {
    pub root: Root,
    /// Distinct blobs the pinned copy names (kept, whether or not other roots need them).
    pub blobs: usize,
    /// Registered manifests with the same content (where it may have moved to).
    pub same_as: Vec<PathBuf>,
}

/// What gc would do (or, from `execute`, what it did).
#[derive(Debug, Default)]
pub struct GcPlan {
    /// Blobs no live manifest references, with their sizes, sorted by hash.
    pub unreferenced: Vec<(Hash, u64)>,
    /// Roots whose manifest is gone; their pinned copies keep their blobs.
    pub moved_roots: Vec<MovedRoot>,
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

fn file_hashes(m: &Manifest) -> impl Iterator<Item = Hash> + '_ {
    m.iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .map(|(_, e)| e.hash)
}

/// The hashes every root protects: its manifest's files, the pinned copies and theirs.
pub fn referenced(scan: &RootScan) -> HashSet<Hash> {
    let mut set: HashSet<Hash> = scan
        .live
        .iter()
        .chain(&scan.moved)
        .flat_map(|(_, m)| file_hashes(m))
        .collect();
    set.extend(scan.pinned_versions.iter().flat_map(file_hashes));
    set.extend(scan.pins.iter().copied());
    set
}

/// Work out what gc would delete, without deleting anything.
pub fn plan(store: &Store) -> Result<GcPlan, GcError> {
    let mut scan = scan_roots(store)?;
    if !scan.broken.is_empty() {
        let (root, problem) = scan.broken.remove(0);
        return Err(GcError::BrokenRoot {
            manifest: root.manifest,
            root_file: root.file,
            problem,
        });
    }
    let wanted = referenced(&scan);
    let blobs = store.list_blobs()?;
    let moved_roots = scan
        .moved
        .iter()
        .map(|(root, m)| MovedRoot {
            root: root.clone(),
            blobs: file_hashes(m).collect::<HashSet<_>>().len(),
            same_as: scan
                .live
                .iter()
                .filter(|(r, l)| r.pinned.is_some() && l.hash() == m.hash())
                .map(|(r, _)| r.manifest.clone())
                .collect(),
        })
        .collect();
    let mut plan = GcPlan {
        moved_roots,
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

/// Plan again under the exclusive `lock` and delete: unreferenced blobs and leftover temp
/// files. Live roots written by an older vrift get their pin first. Roots are never removed
/// here (only [`forget`] does that). Returns what was deleted.
pub fn execute(store: &Store, lock: &StoreLock) -> Result<GcPlan, GcError> {
    execute_with_progress(store, lock, &|_, _| {})
}

/// [`execute`], calling `progress(done, total)` as blobs are deleted (for a progress bar).
pub fn execute_with_progress(
    store: &Store,
    lock: &StoreLock,
    progress: &dyn Fn(u64, u64),
) -> Result<GcPlan, GcError> {
    if !lock.is_exclusive() {
        return Err(GcError::NotExclusive);
    }
    // Pin the live roots that have no pin yet, so that moving them later loses nothing.
    for root in store.roots()? {
        if root.pinned.is_none() && root.manifest.is_file() {
            store.register_root(&root.manifest)?;
        }
    }
    let plan = plan(store)?;
    if !plan.unreferenced.is_empty() {
        store.note_blobs_removed()?;
    }
    let total = plan.unreferenced.len() as u64;
    for (i, (hash, _)) in plan.unreferenced.iter().enumerate() {
        store.remove_blob(hash)?;
        progress(i as u64 + 1, total);
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

/// Release the roots registered under `path` (see [`Store::find_roots`]): their manifests,
/// whether still there or moved away, protect nothing any more, and the next
/// `gc --delete` deletes what no other root needs. Returns the roots removed.
pub fn forget(store: &Store, path: &Path) -> Result<Vec<Root>, GcError> {
    let roots = store.find_roots(path)?;
    if roots.is_empty() {
        return Err(GcError::NotARoot {
            path: path.to_path_buf(),
        });
    }
    for r in &roots {
        store.remove_root(r)?;
    }
    Ok(roots)
}

/// What `vrift status` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Manifests the roots registry knows and that load.
    pub manifests: usize,
    /// Roots whose manifest file is gone; their pinned copies keep their blobs.
    pub moved_roots: usize,
    /// Roots that cannot say which blobs they need, with the error (their bytes are not
    /// counted).
    pub broken_roots: Vec<(PathBuf, String)>,
    /// Sum of file sizes over all those manifests (moved ones included): what the trees
    /// would take as plain copies.
    pub logical_bytes: u64,
    /// Blobs in the store.
    pub blobs: usize,
    /// Sum of blob sizes: what the store takes.
    pub stored_bytes: u64,
    /// Blobs (and their bytes) no manifest references; `vrift gc --delete` frees them.
    pub unreferenced_blobs: usize,
    pub unreferenced_bytes: u64,
    /// Bytes of the roots' pinned manifest copies (part of `stored_bytes`).
    pub pinned_bytes: u64,
}

impl Usage {
    /// What sharing saves: the logical bytes less what the blobs of those files take.
    /// Garbage (`unreferenced_bytes`) and the manifests' own copies are not the files' cost,
    /// so they are left out; never negative.
    pub fn saved_bytes(&self) -> u64 {
        let files = self
            .stored_bytes
            .saturating_sub(self.unreferenced_bytes)
            .saturating_sub(self.pinned_bytes);
        self.logical_bytes.saturating_sub(files)
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
    let pins: HashSet<Hash> = scan.pins.iter().copied().collect();
    let blobs = store.list_blobs()?;
    let unreferenced: Vec<u64> = blobs
        .iter()
        .filter(|(h, _)| !wanted.contains(h))
        .map(|(_, s)| *s)
        .collect();
    Ok(Usage {
        manifests: scan.live.len(),
        moved_roots: scan.moved.len(),
        broken_roots: scan
            .broken
            .iter()
            .map(|(r, e)| (r.manifest.clone(), e.to_string()))
            .collect(),
        logical_bytes: scan
            .live
            .iter()
            .chain(&scan.moved)
            .map(|(_, m)| m.total_file_bytes())
            .sum(),
        blobs: blobs.len(),
        stored_bytes: blobs.iter().map(|(_, s)| s).sum(),
        unreferenced_blobs: unreferenced.len(),
        unreferenced_bytes: unreferenced.iter().sum(),
        pinned_bytes: blobs
            .iter()
            .filter(|(h, _)| pins.contains(h))
            .map(|(_, s)| s)
            .sum(),
    })
}

#[cfg(test)]
mod tests;
