//! What a run leaves in the store while it goes on (`runs/<id>/`), and recovering it when
//! vrift was killed before it could save the run's changes.
//!
//! A run directory holds `run.json` (who runs it, where its view is, where its result goes),
//! `base.manifest` (what the view started from), `journal` (every change, in order) and
//! `farm/` (the link farm with the private copies of written files). Replaying the journal
//! over the base reproduces the view; committing the private copies and saving gives what the
//! run would have saved.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;
use vrift_common::vfs::{Owner, View};

use crate::supervisor::journal;
use crate::supervisor::model::{replay, Model};

/// Where a run's changes go when it ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Destination {
    /// A project directory: changes are written back to the real tree, and its
    /// vrift.manifest (if it has one) refreshed.
    Project { dir: PathBuf, has_manifest: bool },
    /// A manifest file given with --manifest: it is replaced atomically by the new one.
    ManifestFile(PathBuf),
}

/// `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub pid: u32,
    /// The process's start time (from /proc), so a reused pid is not mistaken for the run.
    pub start_ticks: u64,
    pub root: PathBuf,
    pub owner_uid: u32,
    pub owner_gid: u32,
    pub dev: u64,
    pub passthrough: Vec<RelPath>,
    pub destination: Destination,
}

pub const RECORD: &str = "run.json";
pub const BASE: &str = vrift_common::gc::RUN_BASE_MANIFEST;
pub const JOURNAL: &str = "journal";
pub const FARM: &str = "farm";

/// Start time of a process, in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl RunRecord {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let p = dir.join(RECORD);
        std::fs::write(&p, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("{}", p.display()))
    }

    fn is_alive(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// Recover every run whose vrift is gone. Returns how many were recovered.
pub fn recover_interrupted(store: &Store) -> usize {
    let runs = store.root().join(vrift_common::gc::RUNS_DIR);
    let Ok(listing) = std::fs::read_dir(&runs) else {
        return 0;
    };
    let mut n = 0;
    for d in listing.flatten() {
        let dir = d.path();
        let Ok(text) = std::fs::read(dir.join(RECORD)) else {
            continue; // not yet started, or not a run directory
        };
        let rec: RunRecord = match serde_json::from_slice(&text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "vrift: {}: unreadable run record ({e}); left as it is",
                    dir.display()
                );
                continue;
            }
        };
        if rec.is_alive() {
            continue;
        }
        match recover(store, &dir, &rec) {
            Ok(changed) => {
                if changed {
                    eprintln!(
                        "vrift: recovered the changes of an interrupted run (pid {}) into {}",
                        rec.pid,
                        match &rec.destination {
                            Destination::Project { dir, .. } => dir.display().to_string(),
                            Destination::ManifestFile(p) => p.display().to_string(),
                        }
                    );
                }
                n += 1;
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("vrift: {}: {e}", dir.display());
                }
            }
            Err(e) => eprintln!(
                "vrift: could not recover the interrupted run in {}: {e:#}; it is kept there",
                dir.display()
            ),
        }
    }
    n
}

/// Rebuild the run's view from its journal, commit its private copies, save the result.
/// Returns whether anything changed.
fn recover(store: &Store, dir: &Path, rec: &RunRecord) -> Result<bool> {
    let base = Manifest::load(&dir.join(BASE))?;
    let owner = Owner {
        uid: rec.owner_uid,
        gid: rec.owner_gid,
    };
    use std::os::unix::ffi::OsStrExt;
    let mut view = View::new(
        rec.root.as_os_str().as_bytes(),
        owner,
        vec![Arc::new(base.clone())],
    )
    .with_context(|| format!("{}", rec.root.display()))?
    .with_dev(rec.dev);
    let records = match journal::read(&dir.join(JOURNAL)) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).context("reading the journal"),
    };
    replay(&mut view, &records);
    let model = Model::new(
        view,
        dir.join(FARM),
        rec.passthrough.clone(),
        store.clone(),
        None,
    );
    let new = model.commit()?;
    if new.hash() == base.hash() {
        return Ok(false);
    }
    crate::session::save(store, &base, &rec.destination, &new)?;
    Ok(true)
}
