//! Where a run's result goes when it ends: written back to the project, or saved over the
//! `--manifest` file.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use super::{project, writeback};

/// Where a run's changes go when it ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Destination {
    /// A project directory: changes are written back to the real tree, and its
    /// vrift.manifest (if it has one) refreshed.
    Project { dir: PathBuf, has_manifest: bool },
    /// A manifest file given with --manifest: it is replaced atomically by the new one.
    ManifestFile(PathBuf),
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Project { dir, .. } => dir.display().to_string(),
            Destination::ManifestFile(p) => p.display().to_string(),
        }
    }
}

/// Put the run's result (`new`, from a view that started as `before`) where it belongs.
pub fn save(
    store: &Store,
    before: &Manifest,
    destination: &Destination,
    new: &Manifest,
) -> Result<()> {
    if new.hash() == before.hash() {
        return Ok(());
    }
    match destination {
        Destination::ManifestFile(path) => {
            new.save_atomic(path)?;
            store.register_root(path)?;
        }
        Destination::Project { dir, has_manifest } => {
            let report = writeback::apply(store, dir, before, new)?;
            tracing::debug!(
                "written back to {}: {} written, {} removed",
                dir.display(),
                report.written,
                report.removed
            );
            if !report.conflicts.is_empty() {
                writeback::keep_unapplied(
                    store,
                    dir,
                    *has_manifest,
                    before,
                    new,
                    &report.conflicts,
                )?;
            }
            if *has_manifest {
                project::refresh(store, dir)?;
            }
        }
    }
    Ok(())
}
