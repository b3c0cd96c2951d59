//! Where a run's result goes when it ends: written back to the project, or saved over the
//! `--manifest` file.

use anyhow::{Context, Result};
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use super::{project, unapplied, writeback};
pub use crate::view::spec::Destination;

/// What became of a run's result.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// Applied (or there was nothing to apply); paths that changed on disk meanwhile may
    /// have been kept aside, as a result of their own.
    Done,
    /// Applying it failed; the whole result is kept as `vrift runs` entry `id` (and the user
    /// has been told how to apply it).
    Kept { id: String },
}

/// Put the run's result (`new`, from a view that started as `before`) where it belongs. A
/// failure to apply it keeps it (see [`unapplied`]) and says so; only a failure to keep it
/// is an error.
pub fn save(
    store: &Store,
    before: &Manifest,
    destination: &Destination,
    new: &Manifest,
) -> Result<Saved> {
    if new.hash() == before.hash() {
        return Ok(Saved::Done);
    }
    match apply(store, before, destination, new) {
        Ok(()) => Ok(Saved::Done),
        Err(e) => {
            let why = format!("{e:#}");
            let id = unapplied::keep(
                store,
                destination,
                before,
                new,
                format!("saving failed: {why}"),
            )
            .with_context(|| {
                format!(
                    "saving the run's result to {} failed ({why}), and keeping it failed too",
                    destination.describe()
                )
            })?;
            eprintln!(
                "vrift: saving the run's result to {} failed: {why}",
                destination.describe()
            );
            unapplied::tell_kept(store, &id);
            Ok(Saved::Kept { id })
        }
    }
}

/// Apply `new` to its destination (the part of [`save`] that may fail half way).
pub fn apply(
    store: &Store,
    before: &Manifest,
    destination: &Destination,
    new: &Manifest,
) -> Result<()> {
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
                unapplied::keep_conflicts(store, destination, before, new, &report.conflicts)?;
            }
            if *has_manifest {
                project::refresh(store, dir, report.files)?;
            }
        }
    }
    Ok(())
}
