//! The supervisor projection: the run's link farm bind-mounted read-only at the view's root
//! (so the kernel serves reads, listings, exec), and a seccomp supervisor that answers
//! metadata calls from the manifest and carries out every change on the farm.

mod backend;
mod creds;
pub mod farm;
pub mod filter;
mod handlers;
pub mod model;
pub mod no_mounts;
pub mod paths;
pub mod served;
mod statbuf;
mod workers;

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;
use vrift_common::vfs::Owner;

use super::{Context, Kind, Projection};
use crate::mounts::{self, Mount};
use crate::rundir::{RunDir, RunRecord, FARM, JOURNAL};
use crate::sys::notify::Listener;
use crate::view::journal::{self, Journal};
use crate::view::spec as view;
use crate::view::state::ViewState;
use backend::FarmBackend;
pub use model::Model;
use served::ServedStats;
pub use workers::{Reply, Served, Supervisor};

pub struct SupervisorProjection {
    model: Arc<Model>,
    farm: PathBuf,
    dev: u64,
    root: PathBuf,
    real_dir: PathBuf,
    passthrough: Vec<PathBuf>,
    with_shim: bool,
    /// Served without mounts (see [`no_mounts`]).
    without_mounts: bool,
}

impl SupervisorProjection {
    pub fn prepare(cx: &Context) -> Result<SupervisorProjection> {
        let spec = cx.spec;
        let farm = cx.run_dir.join(FARM);
        let links_to = cx.without_mounts.then(|| spec.real_dir());
        farm::build_run(cx.store, &spec.manifest, &spec.passthrough, &farm, links_to)?;
        let dev = std::fs::metadata(&farm)
            .with_context(|| format!("{}", farm.display()))?
            .dev();
        let view = view::make(&spec.root, cx.owner, spec.manifest.clone(), dev)?;
        let journal_path = cx.run_dir.join(JOURNAL);
        let mut journal = Journal::create(&journal_path)
            .with_context(|| format!("{}", journal_path.display()))?;
        if cx.with_shim {
            // The shim steps aside once the view has changed (see the shim's `core`).
            let p = cx.run_dir.join(crate::projection_shim::GENERATION);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .with_context(|| format!("{}", p.display()))?;
            journal = journal.publish_count_to(f);
        }
        let backend = FarmBackend::new(view.root(), farm.clone(), cx.store.clone());
        let passthrough: Vec<_> = spec.passthrough.iter().map(|(p, _)| p.clone()).collect();
        let state = ViewState::new(view, passthrough.clone(), backend, Some(journal));
        let mut model = Model::new(state);
        if cx.without_mounts {
            model.no_mounts = Some(no_mounts::NoMounts::new(cx.store.root(), &farm));
        }
        Ok(SupervisorProjection {
            model: Arc::new(model),
            farm,
            dev,
            root: spec.root.clone(),
            real_dir: spec.real_dir().to_path_buf(),
            passthrough: passthrough
                .iter()
                .map(|p| PathBuf::from(OsStr::from_bytes(p)))
                .collect(),
            with_shim: cx.with_shim,
            without_mounts: cx.without_mounts,
        })
    }
}

impl Projection for SupervisorProjection {
    fn kind(&self) -> Kind {
        Kind::Supervisor
    }

    fn dev(&self) -> u64 {
        self.dev
    }

    fn mounts(&self) -> Result<Vec<Mount>> {
        if self.without_mounts {
            return Ok(Vec::new());
        }
        // The farm is remounted read-only at the view; the pass-through paths bound onto
        // its placeholders stay writable.
        let passthrough = self.passthrough.iter().map(PathBuf::as_path);
        mounts::stage_at_root(&self.real_dir, passthrough, &self.farm, &self.root, true)
    }

    fn filter(&self) -> Result<Option<Vec<u8>>> {
        Ok(Some(if self.without_mounts {
            filter::build_program_without_mounts(crate::projection_shim::MARKER)?
        } else if self.with_shim {
            filter::build_program_for_shim(crate::projection_shim::MARKER)?
        } else {
            filter::build_program()?
        }))
    }

    fn serve(&self, listener: OwnedFd, served: Option<Arc<ServedStats>>) -> Result<()> {
        let listener = Listener::from_fd(listener);
        let sync =
            std::env::var_os("VRIFT_NO_SYNC_WAKEUP").is_none() && listener.set_sync_wake_up();
        tracing::debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: {sync}");
        // The workers own the supervisor from here; they run until the last process under
        // the filter is gone.
        Supervisor::new(listener, Arc::clone(&self.model), served)
            .spawn_workers(worker_count())
            .context("starting the supervisor's threads")
    }

    fn harvest(&self) -> Result<Manifest> {
        self.model.state.commit()
    }
}

/// Supervisor threads: one per core (at least 2, so one slow answer never blocks the rest);
/// `VRIFT_WORKERS` overrides it, for measurements.
fn worker_count() -> usize {
    if let Some(n) = std::env::var("VRIFT_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.clamp(1, 64);
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Rebuild the view of a killed run from its journal, and commit its private copies.
pub fn recover(store: &Store, dir: &RunDir, rec: &RunRecord, base: Manifest) -> Result<Manifest> {
    // A shim in front of this run (shim+supervisor) counted its calls outside the store.
    crate::projection_shim::ServedCounter::remove_left(dir.path());
    let owner = Owner {
        uid: rec.owner_uid,
        gid: rec.owner_gid,
    };
    let mut view = view::make(&rec.root, owner, base, rec.dev)?;
    let records = match journal::read_changes(&dir.join(JOURNAL)) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).context("reading the journal"),
    };
    // The one replay of recorded changes, the shim's recovery's too.
    vrift_common::runlog::replay(&mut view, &records);
    let backend = FarmBackend::new(view.root(), dir.join(FARM), store.clone());
    ViewState::new(view, rec.passthrough.clone(), backend, None).commit()
}
