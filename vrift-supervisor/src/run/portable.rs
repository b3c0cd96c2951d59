//! `vrift run` off Linux (macOS): the shim projection alone, over the same views, run
//! directories, recovery and destinations as on Linux. What needs Linux is refused, by
//! name, before anything is prepared: the overlay (overlayfs, mount namespaces), the
//! supervisor and shim+supervisor (seccomp user notification), `--isolate` (namespaces,
//! mounts, cgroups), sessions (overlayfs upper directories) and `vrift trace` (eBPF).

use anyhow::{bail, Result};

use super::{start, view, Finished, RunOptions};
use crate::projection::Choice;

/// Run the program under the shim; its exit status is the one to give (128+N when killed
/// by signal N).
pub fn run(opts: RunOptions) -> Result<Finished> {
    refuse_what_needs_linux(&opts)?;
    let super::begin::Begun {
        store,
        lock: _lock,
        cwd,
    } = super::begin::begin()?;
    let spec = view::choose(
        &store,
        opts.manifest.as_deref(),
        opts.mount.as_deref(),
        &cwd,
    )?;
    let start = start::dir(&opts, &spec, &cwd)?;
    tracing::info!(
        "projection: shim ({})",
        match opts.projection {
            Choice::Shim => "asked for with --projection shim",
            _ => "the only projection off Linux",
        }
    );
    let status = crate::projection_shim::run(&store, &spec, &start, &opts.cmd)?;
    Ok(Finished { status })
}

/// The options only Linux can serve, in words.
fn refuse_what_needs_linux(opts: &RunOptions) -> Result<()> {
    let os = std::env::consts::OS;
    if opts.trace {
        bail!("vrift trace needs Linux (eBPF and seccomp user notification); this is {os}");
    }
    let needs = match opts.projection {
        Choice::Auto | Choice::Shim => None,
        Choice::Overlay => Some(("--projection overlay", "overlayfs and mount namespaces")),
        Choice::Supervisor => Some(("--projection supervisor", "seccomp user notification")),
        Choice::ShimSupervisor => Some((
            "--projection shim+supervisor",
            "seccomp user notification for the supervisor behind the shim",
        )),
    };
    if let Some((what, needs)) = needs {
        bail!("{what} needs Linux ({needs}); this is {os}: use --projection shim");
    }
    if opts.isolate.isolate {
        bail!("--isolate needs Linux (namespaces, mounts and cgroups); this is {os}");
    }
    if opts.session.is_some() {
        bail!("--session needs Linux (a session is an overlayfs upper directory); this is {os}");
    }
    if !opts.bases.is_empty() {
        bail!(
            "--base needs a projection that mounts the view (overlay or supervisor, on Linux): \
             the shim alone serves one manifest and saves the run's changes over it"
        );
    }
    Ok(())
}
