//! Finding or making the manifest a plain `vrift run` uses: the project's vrift.manifest,
//! refreshed from disk by a stat check, or a transient ingest of the current directory.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vrift_common::filters::{Filter, FilterOptions};
use vrift_common::ingest::{self, IngestOptions};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;

use crate::farm::PlaceholderKind;

pub const MANIFEST_NAME: &str = "vrift.manifest";

pub struct Prepared {
    pub manifest: Manifest,
    pub root: PathBuf,
    /// Paths the filters excluded that exist on disk: they pass through to the real tree.
    pub passthrough: Vec<(RelPath, PlaceholderKind)>,
}

/// The nearest directory at or above `dir` holding a vrift.manifest.
pub fn find_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(MANIFEST_NAME).is_file())
        .map(Path::to_path_buf)
}

pub fn prepare(store: &Store, cwd: &Path) -> Result<Prepared> {
    let (root, persistent) = match find_root(cwd) {
        Some(root) => (root, true),
        None => (cwd.to_path_buf(), false),
    };
    // The same filters `vrift init` applies by default; `.vriftignore` carries a project's
    // own adjustments, so runs and inits agree.
    let filter = Filter::new(&root, &FilterOptions::default())?;
    let report = ingest::ingest(store, &root, &IngestOptions::new(filter), &|_| {})
        .with_context(|| format!("ingesting {}", root.display()))?;
    if persistent {
        let path = root.join(MANIFEST_NAME);
        let old = Manifest::load(&path).ok();
        if old.as_ref().map(Manifest::hash) != Some(report.manifest.hash()) {
            ingest::write_project_manifest(&root, &report.manifest, store)?;
            tracing::info!("{}: refreshed from disk", path.display());
        }
    }
    let mut passthrough = Vec::new();
    for ex in &report.excluded {
        let p = root.join(std::ffi::OsStr::from_bytes(&ex.path));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => passthrough.push((ex.path.clone(), PlaceholderKind::Dir)),
            Ok(m) if m.is_file() => passthrough.push((ex.path.clone(), PlaceholderKind::File)),
            // Symlinks and special files cannot be mount points; they stay hidden.
            _ => {}
        }
    }
    Ok(Prepared {
        manifest: report.manifest,
        root,
        passthrough,
    })
}
