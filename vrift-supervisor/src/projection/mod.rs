//! Projections: how a view reaches the program. Each one prepares what backs the view and
//! the mounts that put it at its root, may serve calls in user space (through a seccomp
//! listener), and gives back the run's result when the program has ended. The run's life
//! cycle (`crate::run`) drives them all the same way.
//!
//! - [`overlay`]: overlayfs over a metadata layer of the manifest and the store's blobs; the
//!   kernel serves everything, writes copy up into the run's upper directory.
//! - [`supervisor`]: a link farm of the manifest bind-mounted read-only, with a seccomp
//!   supervisor that serves metadata and carries out every change.
//!
//! Both need Linux (overlayfs and mount namespaces; seccomp user notification), as does
//! everything here but [`Choice`] and [`recover`]; elsewhere (macOS) only the shim
//! projection runs (`crate::projection_shim`).

#[cfg(target_os = "linux")]
pub mod overlay;
#[cfg(target_os = "linux")]
pub mod supervisor;

#[cfg(target_os = "linux")]
use {
    crate::mounts::Mount, crate::view::spec::ViewSpec, std::os::fd::OwnedFd, std::sync::Arc,
    supervisor::served::ServedStats, vrift_common::vfs::Owner,
};

use anyhow::Result;
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use crate::rundir::{RunDir, RunRecord};

pub use crate::view::spec::Kind;

/// What `--projection` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// The best projection that works here: the overlay, else the supervisor (on macOS, the
    /// shim: the others need Linux).
    Auto,
    /// overlayfs over the store (Linux 6.5+, as root or in a user namespace).
    Overlay,
    /// A link farm and a seccomp supervisor (any kernel with seccomp user notification).
    Supervisor,
    /// The interposition shim alone (LD_PRELOAD; DYLD_INSERT_LIBRARIES on macOS): no mounts,
    /// namespaces or seccomp; dynamic programs only (see `projection_shim`).
    Shim,
    /// The shim in front of the supervisor: the shim answers dynamic programs' reads from
    /// memory, the supervisor serves the rest (static programs, raw system calls, changes).
    #[value(name = "shim+supervisor")]
    ShimSupervisor,
}

/// Which projection a run uses, and why (said with `-v`). With `auto`, a run whose overlay
/// cannot be mounted falls back to the supervisor (see `crate::run`).
#[cfg(target_os = "linux")]
pub fn choose(choice: Choice, store: &Store, trace: bool) -> (Kind, String) {
    match choice {
        Choice::Supervisor => (
            Kind::Supervisor,
            "asked for with --projection supervisor".into(),
        ),
        Choice::Overlay => (Kind::Overlay, "asked for with --projection overlay".into()),
        Choice::ShimSupervisor if trace => (
            Kind::Supervisor,
            "vrift trace runs shim+supervisor without the shim: what the shim answers inside \
             the process, nothing can count"
                .into(),
        ),
        Choice::ShimSupervisor => (
            Kind::Supervisor,
            "asked for with --projection shim+supervisor (the shim in front)".into(),
        ),
        // The per-call classes (hit, miss, pass-through) come from the eBPF side under the
        // overlay; without eBPF only the supervisor can tell them. (A run with the shim
        // never comes here untraced: `crate::run` starts it itself.)
        Choice::Auto | Choice::Shim if trace && crate::trace::ebpf::unavailable().is_some() => (
            Kind::Supervisor,
            format!(
                "vrift trace without eBPF ({}) classifies each call through the supervisor",
                crate::trace::ebpf::unavailable().unwrap_or_default()
            ),
        ),
        Choice::Auto | Choice::Shim => match overlay::unavailable(store) {
            None => (Kind::Overlay, "the kernel serves the view".into()),
            Some(why) => (
                Kind::Supervisor,
                format!("the overlay cannot be used: {why}"),
            ),
        },
    }
}

/// What a projection is prepared from.
#[cfg(target_os = "linux")]
pub struct Context<'a> {
    pub store: &'a Store,
    pub spec: &'a ViewSpec,
    pub run_dir: &'a RunDir,
    pub owner: Owner,
    /// The shim serves in front of this projection (`shim+supervisor`): its calls carry
    /// the marker the filter lets through, and the journal's count is published to it.
    pub with_shim: bool,
    /// Serve the view without mounts (no namespaces here): the supervisor answers every
    /// call on a view path itself, handing the farm's files over as descriptors (see
    /// `supervisor::no_mounts`).
    pub without_mounts: bool,
}

/// One prepared projection of one run.
#[cfg(target_os = "linux")]
pub trait Projection: Send + Sync {
    fn kind(&self) -> Kind;
    /// The device number the view reports, kept in the run's record.
    fn dev(&self) -> u64;
    /// The mounts that put the view at its root (the run adds the rest: private mounts,
    /// a root that does not exist on disk, the store read-only, /proc, the working dir).
    fn mounts(&self) -> Result<Vec<Mount>>;
    /// A seccomp filter whose listener [`Projection::serve`] answers; None when the kernel
    /// serves the view alone.
    fn filter(&self) -> Result<Option<Vec<u8>>>;
    /// Start answering the listener (called before the program execs).
    fn serve(&self, listener: OwnedFd, served: Option<Arc<ServedStats>>) -> Result<()>;
    /// The run's resulting manifest, once the program and everything it started are gone:
    /// what it wrote is in the store by then.
    fn harvest(&self) -> Result<Manifest>;
}

/// Prepare `kind` for a run.
#[cfg(target_os = "linux")]
pub fn prepare(kind: Kind, cx: &Context) -> Result<Arc<dyn Projection>> {
    Ok(match kind {
        Kind::Overlay => Arc::new(overlay::OverlayProjection::prepare(cx)?),
        Kind::Supervisor => Arc::new(supervisor::SupervisorProjection::prepare(cx)?),
        Kind::Shim => anyhow::bail!("the shim projection is started by projection_shim::run"),
    })
}

/// Rebuild the result of a run whose vrift was killed, from what its projection left in
/// the run's directory.
pub fn recover(store: &Store, dir: &RunDir, rec: &RunRecord, base: Manifest) -> Result<Manifest> {
    match rec.projection {
        #[cfg(target_os = "linux")]
        Kind::Overlay => overlay::recover(store, dir, rec, base),
        #[cfg(target_os = "linux")]
        Kind::Supervisor => supervisor::recover(store, dir, rec, base),
        // Not made here: a store shared with a Linux machine.
        #[cfg(not(target_os = "linux"))]
        Kind::Overlay | Kind::Supervisor => {
            let _ = base;
            anyhow::bail!(
                "a run of the {} projection can be recovered on Linux only",
                rec.projection.name()
            )
        }
        Kind::Shim => crate::projection_shim::recover(store, dir, rec, base),
    }
}
