//! Finding or making the manifest a plain `vrift run` uses: the project's vrift.manifest,
//! refreshed from disk by a stat check, or a transient ingest of the current directory.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vrift_common::fileid::{self, FileId};
use vrift_common::filters::{Filter, FilterOptions};
use vrift_common::hash::Hash;
use vrift_common::index::origins_section;
use vrift_common::ingest::{self, IngestOptions, IngestReport, Owners};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::mapped::Bytes;
use vrift_common::statcache::FileStat;
use vrift_common::store::Store;

use crate::view::spec::PassthroughKind;
use crate::watch::{self, record::Record};

pub const MANIFEST_NAME: &str = "vrift.manifest";

pub struct Prepared {
    pub manifest: Manifest,
    pub root: PathBuf,
    /// The project has a vrift.manifest (else this was a transient ingest).
    pub persistent: bool,
    /// Paths the filters excluded that exist on disk: they pass through to the real tree.
    pub passthrough: Vec<(RelPath, PassthroughKind)>,
    /// Where each entry came from on disk (the ingest's `lstat`), as the index's origins
    /// section (`index::origins_section`).
    pub origins: Vec<u8>,
}

/// The nearest directory at or above `dir` holding a vrift.manifest.
pub fn find_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(MANIFEST_NAME).is_file())
        .map(Path::to_path_buf)
}

/// Files vrift has just written itself, with their stat and content (see
/// [`IngestOptions::known`]).
pub type Known = HashMap<RelPath, (FileStat, Hash)>;

/// Ingest `root` with the filters `vrift init` applies by default (a project's own
/// adjustments live in its `.vriftignore`, so runs and inits agree). Files unchanged since
/// the last ingest are not read again (stat cache), nor are the `known` ones.
fn ingest_knowing(store: &Store, root: &Path, known: Known) -> Result<IngestReport> {
    let filter = Filter::new(root, &FilterOptions::default())?;
    let mut opts = IngestOptions::new(filter);
    opts.known = known;
    if records_owners(&root.join(MANIFEST_NAME)) {
        opts.owners = Owners::Always;
    }
    ingest::ingest(store, root, &opts, &|_| {})
        .with_context(|| format!("ingesting {}", root.display()))
}

/// Does the project's manifest record owners (`vrift init --owners`)? Then its re-ingests
/// keep recording them. Only a version 2 manifest can; a version 1 one is not decoded.
fn records_owners(manifest: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    let is_v2 = std::fs::File::open(manifest)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head[8..12] == vrift_common::manifest::FORMAT_VERSION.to_le_bytes();
    is_v2 && Manifest::load(manifest).is_ok_and(|m| m.has_owners())
}

/// [`ingest_knowing`] nothing beyond the stat cache.
pub fn ingest(store: &Store, root: &Path) -> Result<IngestReport> {
    ingest_knowing(store, root, Known::new())
}

/// Re-ingest a project with a vrift.manifest and save it if anything changed on disk;
/// `known` are files vrift has just written there.
pub fn refresh(store: &Store, root: &Path, known: Known) -> Result<IngestReport> {
    let canonical = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mark = watch::mark(store, &canonical);
    Ok(refresh_marked(store, &canonical, known, mark)?.0)
}

/// [`refresh`], with the project's watcher's mark taken before the walk (if it is
/// watched): the walk's result is recorded against it, so that a later run with the same
/// mark can take it as it is. Returns the report and its pass-through paths.
fn refresh_marked(
    store: &Store,
    root: &Path,
    known: Known,
    mark: Option<watch::Mark>,
) -> Result<(IngestReport, Vec<(RelPath, PassthroughKind)>)> {
    let report = ingest_knowing(store, root, known)?;
    let path = root.join(MANIFEST_NAME);
    let new = report.manifest.hash();
    // A manifest's hash is that of its encoding, which is what vrift saved: the file's
    // bytes tell without decoding it (an older format is decoded and compared).
    let mut seen = read_with_id(&path).filter(|(bytes, _)| Hash::of(bytes) == new);
    if seen.is_none() && Manifest::load(&path).ok().map(|m| m.hash()) != Some(new) {
        ingest::write_project_manifest(root, &report.manifest, store)?;
        tracing::info!("{}: refreshed from disk", path.display());
        seen = read_with_id(&path).filter(|(bytes, _)| Hash::of(bytes) == new);
    }
    let passthrough = passthrough_of(root, &report);
    if let Some(mark) = mark {
        let rec = Record {
            mark,
            root: root.to_path_buf(),
            blob_generation: store.blob_generation(),
            manifest_hash: new,
            manifest_id: seen.map(|(_, id)| id),
            passthrough: passthrough.clone(),
            origins: origins_section(&report.manifest, &report.origins),
        };
        let at = watch::Paths::of(store, root).record();
        if let Err(e) = rec.save(&at) {
            tracing::warn!("{}: {e} (the next run walks the project)", at.display());
        }
    }
    Ok((report, passthrough))
}

/// What the last walk of a watched project found, if its watcher's count has not moved
/// since that walk began (nothing in the project changed) and nothing else says walk again.
fn vouched(store: &Store, root: &Path, mark: watch::Mark) -> Option<Prepared> {
    let rec = Record::load(&watch::Paths::of(store, root).record())?;
    if rec.mark != mark || rec.root != root || rec.blob_generation != store.blob_generation() {
        return None;
    }
    let path = root.join(MANIFEST_NAME);
    // The file the walk saw, unchanged since: its bytes are those of the record's hash,
    // which the store keeps as the project's pinned copy (`Store::register_root`). Mapped
    // from there, nothing is read or hashed but what a check of it touches.
    let by_identity = rec
        .manifest_id
        .filter(|id| fileid::of_path(&path) == Some(*id))
        .and_then(|_| pinned(store, rec.manifest_hash))
        .and_then(|bytes| Manifest::decode_canonical(bytes, rec.manifest_hash, &path).ok());
    let manifest = match by_identity {
        Some(m) => {
            tracing::info!("{}: the store's pinned copy, mapped", path.display());
            m
        }
        None => {
            let bytes = std::fs::read(&path).ok()?;
            if Hash::of(&bytes) != rec.manifest_hash {
                return None;
            }
            tracing::info!("{}: read and hashed", path.display());
            // Its hash is the record's, a manifest's canonical encoding's (checked whole,
            // made into entries only if the run asks).
            Manifest::decode_canonical(bytes, rec.manifest_hash, &path).ok()?
        }
    };
    if rec.origins.len() != manifest.len() * 16 {
        return None;
    }
    Some(Prepared {
        manifest,
        root: root.to_path_buf(),
        persistent: true,
        passthrough: rec.passthrough,
        origins: rec.origins,
    })
}

/// The bytes of the file at `path` and its identity, both of the one file opened.
fn read_with_id(path: &Path) -> Option<(Vec<u8>, FileId)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let id = fileid::of_metadata(&f.metadata().ok()?);
    Some((bytes, id))
}

/// The store's blob of `hash`, mapped (blobs are never written in place), if it holds it.
fn pinned(store: &Store, hash: Hash) -> Option<Bytes> {
    let f = std::fs::File::open(store.blob_path(&hash)).ok()?;
    Bytes::map_immutable(&f).ok()
}

pub fn prepare(store: &Store, cwd: &Path) -> Result<Prepared> {
    let Some(root) = find_root(cwd) else {
        let report = ingest(store, cwd)?;
        return Ok(Prepared {
            passthrough: passthrough_of(cwd, &report),
            origins: origins_section(&report.manifest, &report.origins),
            manifest: report.manifest,
            root: cwd.to_path_buf(),
            persistent: false,
        });
    };
    let canonical = root.canonicalize().unwrap_or_else(|_| root.clone());
    let mark = watch::mark(store, &canonical);
    if let Some(p) = mark.and_then(|m| vouched(store, &canonical, m)) {
        tracing::info!(
            "{}: unchanged since the last walk (its watcher saw nothing)",
            canonical.display()
        );
        return Ok(Prepared { root, ..p });
    }
    let (report, passthrough) = refresh_marked(store, &canonical, Known::new(), mark)?;
    Ok(Prepared {
        origins: origins_section(&report.manifest, &report.origins),
        manifest: report.manifest,
        root,
        persistent: true,
        passthrough,
    })
}

/// The paths an ingest of `root` left out that exist on disk as directories or files: they
/// pass through to the real tree.
pub fn passthrough_of(root: &Path, report: &IngestReport) -> Vec<(RelPath, PassthroughKind)> {
    let mut passthrough = Vec::new();
    for ex in &report.excluded {
        // vrift's own files (vrift.manifest, .vrift, a store inside the project) describe
        // the tree; they are not part of it, so the view does not show them at all (a
        // `git clean -fdx` or `rm -rf *` in the view leaves them be, and vrift keeps
        // vrift.manifest up to date itself).
        if ex.reason == vrift_common::filters::ExcludeReason::Internal {
            continue;
        }
        let p = root.join(std::ffi::OsStr::from_bytes(&ex.path));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => passthrough.push((ex.path.clone(), PassthroughKind::Dir)),
            Ok(m) if m.is_file() => passthrough.push((ex.path.clone(), PassthroughKind::File)),
            // Symlinks and special files cannot be mount points; they stay hidden.
            _ => {}
        }
    }
    passthrough
}
