//! Where a run's result goes when it ends: written back to the project, or saved over the
//! `--manifest` file.

use anyhow::Result;
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use super::{project, writeback};
pub use crate::view::spec::Destination;

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
                let kept = dir.join(".vrift").join("unapplied.manifest");
                std::fs::create_dir_all(dir.join(".vrift"))?;
                new.save_atomic(&kept)?;
                store.register_root(&kept)?;
                eprintln!(
                    "vrift: {} path(s) changed on disk during the run were left as they are: {}",
                    report.conflicts.len(),
                    report
                        .conflicts
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                eprintln!(
                    "vrift: the run's full result is kept in {} (compare with `vrift manifest diff`)",
                    kept.display()
                );
            }
            if *has_manifest {
                project::refresh(store, dir)?;
            }
        }
    }
    Ok(())
}
