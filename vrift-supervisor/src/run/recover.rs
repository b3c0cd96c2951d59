//! Recovering runs whose vrift was killed before it could save their changes: the run's
//! projection rebuilds its result from what it left in the run's directory, and the result
//! is saved as the run would have saved it.

use anyhow::Result;
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use super::destination;
use crate::projection;
use crate::rundir::{RunDir, RunRecord, BASE, RECORD};

/// In a run directory: recovering it failed (the error inside); it is not tried again.
pub const UNRECOVERABLE: &str = "unrecoverable";

/// Recover every run whose vrift is gone. Returns how many were recovered.
pub fn recover_interrupted(store: &Store) -> usize {
    let runs = store.root().join(vrift_common::gc::RUNS_DIR);
    let Ok(listing) = std::fs::read_dir(&runs) else {
        return 0;
    };
    let mut n = 0;
    for d in listing.flatten() {
        let path = d.path();
        if !path.join(RECORD).exists() {
            continue; // not yet started, or not a run directory
        }
        if path.join(UNRECOVERABLE).exists() {
            continue; // said once; `vrift runs` lists it, `vrift runs discard` drops it
        }
        let dir = match RunDir::claim(&path) {
            Ok(Some(dir)) => dir,
            Ok(None) => continue, // alive, or being recovered by another vrift
            Err(e) => {
                eprintln!("vrift: {}: {e:#}; left as it is", path.display());
                continue;
            }
        };
        match recover(store, &dir) {
            Ok((rec, changed)) => {
                if changed {
                    eprintln!(
                        "vrift: recovered the changes of an interrupted run (pid {}) into {}",
                        rec.pid,
                        rec.destination.describe()
                    );
                }
                n += 1;
                dir.remove();
            }
            Err(e) => {
                let id = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                eprintln!(
                    "vrift: could not recover the interrupted run {id} in {}: {e:#}; it is kept \
                     there and not tried again (`vrift runs` lists it, `vrift runs discard {id}` \
                     drops it)",
                    dir.path().display()
                );
                let _ = std::fs::write(dir.join(UNRECOVERABLE), format!("{e:#}\n"));
            }
        }
    }
    n
}

/// Rebuild the run's result and save it. Returns its record and whether anything changed.
fn recover(store: &Store, dir: &RunDir) -> Result<(RunRecord, bool)> {
    let rec = RunRecord::read(dir.path())?;
    let base = Manifest::load(&dir.join(BASE))?;
    let new = projection::recover(store, dir, &rec, base.clone())?;
    if new.hash() == base.hash() {
        return Ok((rec, false));
    }
    // A result that cannot be applied is kept aside (and the user told): the run directory
    // is done with either way.
    destination::save(store, &base, &rec.destination, &new)?;
    Ok((rec, true))
}
