//! A run's directory in the store (`runs/<id>/`): its layout, its record, and the lock that
//! says the run is alive.
//!
//! While a run goes on, its directory holds `lock` (flocked by the running vrift for the
//! whole run), `run.json` (the [`RunRecord`]), `base.manifest` (what the view started from)
//! and what its projection keeps (the supervisor: `journal` and `farm/`). Another vrift
//! that can take the lock knows the run's vrift is gone, and recovers it while holding the
//! lock, so two vrifts never recover one run twice.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::TryLockError;
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;

use crate::view::spec::{Destination, Kind};

pub const RECORD: &str = "run.json";
pub const LOCK: &str = "lock";
pub const BASE: &str = vrift_common::gc::RUN_BASE_MANIFEST;
pub const RESULT: &str = vrift_common::gc::RUN_RESULT_MANIFEST;
pub const JOURNAL: &str = "journal";
pub const FARM: &str = "farm";
pub const UPPER: &str = "upper";
pub const WORK: &str = "work";
pub const MNT: &str = "mnt";

/// The version of `run.json` this vrift writes. Version 1 (no version field) had no
/// projection and no lock; its runs are from the supervisor.
pub const RECORD_VERSION: u32 = 2;

fn version_1() -> u32 {
    1
}
fn supervisor() -> Kind {
    Kind::Supervisor
}

/// `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(default = "version_1")]
    pub version: u32,
    /// The projection that served the run, which knows how to recover it.
    #[serde(default = "supervisor")]
    pub projection: Kind,
    pub pid: u32,
    /// The process's start time (from /proc): with version 1 records, the only way to tell
    /// a live run from a reused pid.
    pub start_ticks: u64,
    pub root: PathBuf,
    pub owner_uid: u32,
    pub owner_gid: u32,
    /// The device the view reports.
    pub dev: u64,
    pub passthrough: Vec<RelPath>,
    pub destination: Destination,
}

/// Start time of a process, in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Write `bytes` to `path` by temp file, fsync and rename: readers see the old file or the
/// new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))
}

/// [`write_atomic`] without the fsync, for what a live run's directory holds (its record,
/// its base manifest): it is there to recover from a killed vrift, whose writes are in the
/// page cache, and like the journal and the upper directory beside it (the run's changes,
/// never synced either) it need not outlive a power cut; a torn file fails to load, naming
/// the run. The two fsyncs cost each run about 5 ms here.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))
}

/// Keep the manifest a run starts from in its directory (`BASE`), for recovery and gc: a
/// hard link to the store's blob of it when the store holds one (a project's manifest is
/// pinned there, see `Store::register_root`), so nothing is written and removing the run
/// directory frees nothing but a name (blobs are replaced, never written in place, so the
/// link keeps these bytes); else the bytes, unsynced as [`write_unsynced`] says.
pub fn write_base(store: &Store, run_dir: &Path, manifest: &Manifest) -> Result<()> {
    let at = run_dir.join(BASE);
    if std::fs::hard_link(store.blob_path(&manifest.hash()), &at).is_ok() {
        return Ok(());
    }
    write_unsynced(&at, manifest.encoding())
}

impl RunRecord {
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_unsynced(&dir.join(RECORD), &serde_json::to_vec_pretty(self)?)
    }

    pub fn read(dir: &Path) -> Result<RunRecord> {
        let p = dir.join(RECORD);
        let text = std::fs::read(&p).with_context(|| format!("{}", p.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{}: unreadable run record", p.display()))
    }
}

/// A live run's directory; the lock is held until this is dropped.
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// Make a new run directory under the store, locked.
    pub fn create(store: &Store) -> Result<RunDir> {
        let runs = store.root().join(vrift_common::gc::RUNS_DIR);
        std::fs::create_dir_all(&runs).with_context(|| format!("{}", runs.display()))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = runs.join(format!("{}-{stamp}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("{}", path.display()))?;
        let lock_path = path.join(LOCK);
        let lock = File::create(&lock_path).with_context(|| format!("{}", lock_path.display()))?;
        lock.try_lock()
            .map_err(std::io::Error::from)
            .with_context(|| format!("{}: locking the new run", lock_path.display()))?;
        Ok(RunDir { path, _lock: lock })
    }

    /// Take over the directory of a run whose vrift is gone; None while it is alive.
    pub fn claim(path: &Path) -> Result<Option<RunDir>> {
        let lock_path = path.join(LOCK);
        match File::open(&lock_path) {
            Ok(lock) => match lock.try_lock() {
                Ok(()) => Ok(Some(RunDir {
                    path: path.to_path_buf(),
                    _lock: lock,
                })),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => {
                    Err(e).with_context(|| format!("{}", lock_path.display()))
                }
            },
            // A run of an older vrift (no lock file): alive while its pid and start time
            // still match.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rec = RunRecord::read(path)?;
                if start_ticks(rec.pid) == Some(rec.start_ticks) {
                    return Ok(None);
                }
                let lock =
                    File::create(&lock_path).with_context(|| format!("{}", lock_path.display()))?;
                match lock.try_lock() {
                    Ok(()) => Ok(Some(RunDir {
                        path: path.to_path_buf(),
                        _lock: lock,
                    })),
                    Err(_) => Ok(None), // another vrift is recovering it
                }
            }
            Err(e) => Err(e).with_context(|| format!("{}", lock_path.display())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Remove the directory once its result is saved. Directories the run left without
    /// permissions for their owner (overlayfs's work directory is mode 0) are opened up.
    pub fn remove(self) {
        remove_tree(&self.path);
    }
}

/// Remove `path` and everything under it, opening up directories an overlay's work
/// directory leaves without access (a failure is only logged).
pub fn remove_tree(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    open_up(path);
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!("{}: {e}", path.display());
    }
}

/// Give the owner full access to every directory under `dir`.
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(listing) = std::fs::read_dir(dir) {
        for e in listing.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_run_is_not_claimed_and_a_released_one_is() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let run = RunDir::create(&store).unwrap();
        let path = run.path().to_path_buf();
        assert!(
            RunDir::claim(&path).unwrap().is_none(),
            "a live run is not taken over"
        );
        drop(run);
        let claimed = RunDir::claim(&path)
            .unwrap()
            .expect("a dead run is taken over");
        assert!(
            RunDir::claim(&path).unwrap().is_none(),
            "only one recoverer"
        );
        claimed.remove();
        assert!(!path.exists());
    }

    #[test]
    fn version_1_records_read_as_supervisor_runs() {
        let json = r#"{"pid":1,"start_ticks":0,"root":"/p","owner_uid":0,"owner_gid":0,
            "dev":5,"passthrough":[],"destination":{"ManifestFile":"/m"}}"#;
        let rec: RunRecord = serde_json::from_str(json).unwrap();
        assert_eq!(rec.version, 1);
        assert_eq!(rec.projection, Kind::Supervisor);
    }

    #[test]
    fn records_are_written_whole() {
        let t = tempfile::tempdir().unwrap();
        let rec = RunRecord {
            version: RECORD_VERSION,
            projection: Kind::Supervisor,
            pid: 7,
            start_ticks: 9,
            root: "/p".into(),
            owner_uid: 1,
            owner_gid: 2,
            dev: 3,
            passthrough: vec![b".git".to_vec()],
            destination: Destination::ManifestFile("/m".into()),
        };
        rec.write(t.path()).unwrap();
        let back = RunRecord::read(t.path()).unwrap();
        assert_eq!(back.pid, 7);
        assert_eq!(back.version, RECORD_VERSION);
        assert!(!t.path().join("run.tmp").exists());
    }
}
