//! `vrift store verify [--repair]`: re-hash every blob in the store (like `git fsck`), and
//! with `repair`, move damaged blobs aside and put them back from files that have the right
//! content.
//!
//! Where the right content may be found: the project directory of every registered
//! `vrift.manifest` (the file at the path its manifest gives that content), then any
//! directory the caller names (`--from DIR`, every regular file of the blob's size). Blobs a
//! registered manifest needs but the store lacks are looked for the same way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::filters::MANIFEST_FILE;
use crate::gc;
use crate::hash::Hash;
use crate::manifest::{EntryKind, Manifest, RelPath};
use crate::store::{BlobDamage, Store, StoreError};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Move damaged blobs aside and look for their content on disk; also look for missing
    /// ones.
    pub repair: bool,
    /// More directories to look in for the content of damaged or missing blobs.
    pub from: Vec<PathBuf>,
    /// Threads re-hashing blobs (0: from the number of cores).
    pub threads: usize,
}

/// One damaged or missing blob and what was done about it.
#[derive(Clone, Debug)]
pub struct BadBlob {
    pub hash: Hash,
    /// `None`: missing (a registered manifest needs it, the store lacks it).
    pub damage: Option<BlobDamage>,
    /// Where the damaged bytes were moved (with `repair`).
    pub quarantined_to: Option<PathBuf>,
    /// The file its right content was stored from (with `repair`, when one was found).
    pub repaired_from: Option<PathBuf>,
    /// A few (manifest, path) pairs that use this content, for the report.
    pub used_by: Vec<(PathBuf, RelPath)>,
}

/// What verify found and did.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub checked: usize,
    /// Damaged blobs, then missing ones, each sorted by hash.
    pub bad: Vec<BadBlob>,
    /// Roots gc cannot read (they are not searched), with the reason.
    pub unreadable_roots: Vec<(PathBuf, String)>,
}

impl VerifyReport {
    /// Bad blobs not repaired.
    pub fn unrepaired(&self) -> usize {
        self.bad
            .iter()
            .filter(|b| b.repaired_from.is_none())
            .count()
    }
}

/// How many users of one blob the report names.
const SHOW_USERS: usize = 3;

/// Verify (and with `opts.repair`, heal) the store.
pub fn verify(store: &Store, opts: &VerifyOptions) -> Result<VerifyReport, StoreError> {
    // Held so that gc --delete cannot remove blobs under us (or the ones a repair adds).
    let _lock = store.lock_shared()?;
    let blobs = store.list_blobs()?;
    let mut report = VerifyReport {
        checked: blobs.len(),
        ..VerifyReport::default()
    };
    let damaged = check_all(store, &blobs, opts.threads);

    let scan = gc::scan_roots(store)?;
    report.unreadable_roots = scan
        .broken
        .iter()
        .map(|(r, e)| (r.manifest.clone(), e.to_string()))
        .collect();
    let present: HashSet<Hash> = blobs.iter().map(|(h, _)| *h).collect();
    let mut missing: Vec<Hash> = gc::referenced(&scan)
        .into_iter()
        .filter(|h| !present.contains(h))
        .collect();
    missing.sort_unstable();

    // Who uses each bad blob, and where on disk its content may be.
    let wanted: HashSet<Hash> = damaged
        .iter()
        .map(|(h, _)| *h)
        .chain(missing.iter().copied())
        .collect();
    let mut users: HashMap<Hash, Vec<(PathBuf, RelPath)>> = HashMap::new();
    let mut candidates: HashMap<Hash, Vec<PathBuf>> = HashMap::new();
    let mut sizes: HashMap<u64, Vec<Hash>> = HashMap::new();
    let manifests: Vec<(&Path, &Manifest)> = scan
        .live
        .iter()
        .chain(&scan.moved)
        .map(|(r, m)| (r.manifest.as_path(), m))
        .collect();
    for (path, m) in manifests {
        let project = (path.file_name() == Some(OsStr::new(MANIFEST_FILE)))
            .then(|| path.parent())
            .flatten();
        for (rel, e) in m.iter() {
            if e.kind != EntryKind::File || !wanted.contains(&e.hash) {
                continue;
            }
            let u = users.entry(e.hash).or_default();
            if u.len() < SHOW_USERS {
                u.push((path.to_path_buf(), rel.to_vec()));
            }
            if let Some(dir) = project {
                candidates
                    .entry(e.hash)
                    .or_default()
                    .push(dir.join(OsStr::from_bytes(rel)));
            }
            let s = sizes.entry(e.size).or_default();
            if !s.contains(&e.hash) {
                s.push(e.hash);
            }
        }
    }
    for (h, size) in &blobs {
        if wanted.contains(h) {
            let s = sizes.entry(*size).or_default();
            if !s.contains(h) {
                s.push(*h);
            }
        }
    }

    let bad_list: Vec<(Hash, Option<BlobDamage>)> = damaged
        .into_iter()
        .map(|(h, d)| (h, Some(d)))
        .chain(missing.into_iter().map(|h| (h, None)))
        .collect();
    let mut from_dirs: Option<HashMap<Hash, Vec<PathBuf>>> = None;
    for (hash, damage) in bad_list {
        let mut bad = BadBlob {
            hash,
            damage,
            quarantined_to: None,
            repaired_from: None,
            used_by: users.remove(&hash).unwrap_or_default(),
        };
        if opts.repair {
            if bad.damage.is_some() {
                bad.quarantined_to = store.quarantine_blob(&hash)?;
            }
            let mut tried = candidates.remove(&hash).unwrap_or_default();
            if !opts.from.is_empty() {
                let found = from_dirs.get_or_insert_with(|| search_dirs(&opts.from, &sizes));
                tried.extend(found.remove(&hash).unwrap_or_default());
            }
            for c in tried {
                if store.contains(&hash) {
                    break;
                }
                if store.repair_from(&hash, &c)? {
                    bad.repaired_from = Some(c);
                    break;
                }
            }
        }
        report.bad.push(bad);
    }
    Ok(report)
}

/// Re-hash `blobs` on a few scoped threads; the damaged ones, sorted. A blob gone meanwhile
/// (`NotFound`) is not reported.
fn check_all(store: &Store, blobs: &[(Hash, u64)], threads: usize) -> Vec<(Hash, BlobDamage)> {
    let threads = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
    } else {
        threads
    };
    let chunk = blobs.len().div_ceil(threads).max(1);
    let mut out: Vec<(Hash, BlobDamage)> = std::thread::scope(|s| {
        let parts: Vec<_> = blobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|(h, _)| match store.check_blob(h) {
                            Ok(Some(d)) => Some((*h, d)),
                            Ok(None) => None,
                            Err(e) if e.is_not_found() => None,
                            Err(e) => Some((*h, BlobDamage::Unreadable(e.to_string()))),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("verify thread panicked"))
            .collect()
    });
    out.sort_by_key(|(h, _)| *h);
    out
}

/// Regular files under `dirs` (symlinks not followed) whose size is one of `sizes`, grouped
/// by the hashes of that size they might have; the caller hashes them to be sure.
fn search_dirs(dirs: &[PathBuf], sizes: &HashMap<u64, Vec<Hash>>) -> HashMap<Hash, Vec<PathBuf>> {
    let mut out: BTreeMap<Hash, Vec<PathBuf>> = BTreeMap::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let Ok(listing) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in listing.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                if let Some(hashes) = sizes.get(&meta.len()) {
                    for h in hashes {
                        out.entry(*h).or_default().push(e.path());
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests;
