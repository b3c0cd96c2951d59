//! One `vrift run`, from start to end. Its life cycle, in order:
//!
//! 1. recover runs whose vrift was killed ([`recover`]);
//! 2. choose the view: the `--manifest` file, or the project refreshed or ingested on the
//!    fly ([`view`], [`project`]);
//! 3. prepare the projection in a fresh run directory ([`crate::projection`], [`rundir`]);
//! 4. launch the program in its namespaces and mounts ([`launch`], [`mounts`]), passing
//!    signals on, and wait for it;
//! 5. harvest the run's result from the projection;
//! 6. save it to its destination: written back to the project, or over the `--manifest`
//!    file ([`destination`], [`writeback`]).
//!
//! What the life cycle hands a projection (the view's spec, the view state and its journal,
//! the mount plan, the run directory) lives outside this folder (`crate::view`,
//! `crate::mounts`, `crate::rundir`), so projections never depend on the life cycle.

pub mod base;
mod begin;
#[cfg(target_os = "linux")]
pub mod cgroup;
pub mod destination;
pub mod isolate;
pub mod launch;
#[cfg(not(target_os = "linux"))]
mod portable;
pub mod project;
pub mod recover;
pub mod start;
pub mod unapplied;
pub mod view;
pub mod writeback;

#[cfg(not(target_os = "linux"))]
pub use portable::run;

#[cfg(target_os = "linux")]
use std::ffi::CString;
use std::ffi::OsString;
#[cfg(target_os = "linux")]
use std::os::unix::ffi::{OsStrExt, OsStringExt};
#[cfg(target_os = "linux")]
use std::os::unix::process::ExitStatusExt;
#[cfg(target_os = "linux")]
use std::path::Path;
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::process::Command;
#[cfg(target_os = "linux")]
use std::sync::{Arc, Mutex};

#[cfg(target_os = "linux")]
use anyhow::{bail, Context, Result};
#[cfg(target_os = "linux")]
use vrift_common::store::Store;
#[cfg(target_os = "linux")]
use vrift_common::vfs::Owner;

#[cfg(target_os = "linux")]
use crate::mounts::{self, cstring, Mount};
#[cfg(target_os = "linux")]
use crate::projection::supervisor::served::ServedStats;
use crate::projection::Choice;
#[cfg(target_os = "linux")]
use crate::projection::{self, Kind, Projection};
#[cfg(target_os = "linux")]
use crate::rundir::{self, RunDir, RunRecord, RECORD_VERSION};
#[cfg(target_os = "linux")]
use crate::sys::{ns, signals};
#[cfg(target_os = "linux")]
use crate::trace::{EbpfTracer, TraceData, TraceOptions, TraceUnavailable, ViewPaths};
#[cfg(target_os = "linux")]
use crate::view::spec::ViewSpec;
#[cfg(target_os = "linux")]
use crate::view::state::lock;

pub struct RunOptions {
    pub manifest: Option<PathBuf>,
    pub mount: Option<PathBuf>,
    pub projection: Choice,
    pub cmd: Vec<OsString>,
    /// Measure the run for `vrift trace`.
    pub trace: bool,
    /// `--base` manifests, lowest first.
    pub bases: Vec<PathBuf>,
    pub isolate: isolate::IsolateArgs,
    /// `-C/--cwd`: where the program starts.
    pub start: Option<PathBuf>,
    /// Run in a named session instead (see `crate::session`).
    pub session: Option<crate::session::enter::Options>,
}

/// What `vrift trace` gets back besides the exit status.
#[cfg(target_os = "linux")]
pub struct Traced {
    pub ebpf: Result<TraceData, TraceUnavailable>,
    /// The hit, miss, pass-through and denied classes: the supervisor's answers, or the
    /// eBPF path records classified against the view (the overlay). `None` when the overlay
    /// ran without eBPF, which alone could tell them.
    pub served: Option<Arc<ServedStats>>,
    pub projection: Kind,
    pub wall: std::time::Duration,
}

/// How a run ended.
pub struct Finished {
    pub status: u8,
    #[cfg(target_os = "linux")]
    pub traced: Option<Traced>,
}

/// Run the program; its exit status is the one to give (128+N when killed by signal N).
#[cfg(target_os = "linux")]
pub fn run(opts: RunOptions) -> Result<Finished> {
    if !crate::sys::notify::listener_available() {
        bail!(
            "this process already runs under a seccomp supervisor (vrift inside vrift, or \
             inside another sandbox that uses seccomp user notification); the kernel allows \
             only one, so vrift cannot serve a view here"
        );
    }
    let begin::Begun {
        store,
        lock: _lock,
        cwd,
    } = begin::begin()?;
    if let Some(session) = &opts.session {
        return crate::session::enter::run(&store, &opts, session, &cwd);
    }
    let spec = view::choose(
        &store,
        opts.manifest.as_deref(),
        opts.mount.as_deref(),
        &cwd,
    )?;
    let spec = if opts.isolate.isolate {
        spec
    } else {
        base::stack(spec, &opts.bases)?
    };
    if opts.projection == Choice::Shim && !opts.trace {
        if opts.isolate.isolate {
            bail!("--isolate needs a projection that mounts the view: overlay or supervisor");
        }
        if !opts.bases.is_empty() {
            bail!(
                "--base needs a projection that mounts the view (overlay or supervisor): the \
                 shim alone serves one manifest and saves the run's changes over it"
            );
        }
        let start = start::dir(&opts, &spec, &cwd)?;
        let status = crate::projection_shim::run(&store, &spec, &start, &opts.cmd)?;
        return Ok(Finished {
            status,
            traced: None,
        });
    }
    let may_go_without_mounts = matches!(opts.projection, Choice::Auto | Choice::ShimSupervisor)
        && !opts.trace
        && !opts.isolate.isolate;
    if may_go_without_mounts {
        // Found out before anything is prepared (an overlay's layer, a run directory).
        if let Some(why) = namespaces_refused_here() {
            return run_without_mounts(&store, &spec, &opts, &cwd, why);
        }
    }
    let (mut kind, mut why) = projection::choose(opts.projection, &store, opts.trace);
    if kind == Kind::Overlay && opts.projection == Choice::Auto {
        let runner = Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        if view_owner(&spec, runner) != runner {
            // Only the supervisor judges a write as the disk would when the project is not
            // the runner's to write; the overlay would accept it and fail at write-back.
            kind = Kind::Supervisor;
            why = "the project directory is not writable by you: the supervisor refuses the \
                   writes the disk would refuse"
                .into();
        }
    }
    tracing::info!("projection: {} ({why})", kind.name());
    let first = match run_with(kind, &store, &spec, &opts, &cwd, Mounted::Yes) {
        Err(e)
            if kind == Kind::Overlay && opts.projection == Choice::Auto && overlay_refused(&e) =>
        {
            tracing::info!(
                "projection: supervisor (the overlay could not be mounted: {})",
                crate::describe_error(&e)
            );
            run_with(Kind::Supervisor, &store, &spec, &opts, &cwd, Mounted::Yes)
        }
        r => r,
    };
    // Namespaces refused (a container's seccomp profile, user namespaces turned off):
    // nothing ran. `auto` (and shim+supervisor) go on without mounts, then with the shim
    // alone where the seccomp filter is refused too.
    let Err(e) = first else { return first };
    if !(may_go_without_mounts && namespaces_refused(&e)) {
        return Err(e);
    }
    run_without_mounts(&store, &spec, &opts, &cwd, crate::describe_error(&e))
}

/// `auto` and shim+supervisor where namespaces are refused (`why`): the shim in front of a
/// supervisor that mounts nothing, else (the seccomp filter refused too, `auto` only) the
/// shim alone.
#[cfg(target_os = "linux")]
fn run_without_mounts(
    store: &Store,
    spec: &ViewSpec,
    opts: &RunOptions,
    cwd: &Path,
    why: String,
) -> Result<Finished> {
    tracing::info!(
        "projection: shim+supervisor without mounts (this system refuses namespaces: {why})"
    );
    match run_with(Kind::Supervisor, store, spec, opts, cwd, Mounted::No) {
        Err(e)
            if opts.projection == Choice::Auto && filter_refused(&e) && opts.bases.is_empty() =>
        {
            tracing::info!(
                "projection: shim (the seccomp filter is refused too: {})",
                crate::describe_error(&e)
            );
            let start = start::dir(opts, spec, cwd)?;
            let status = crate::projection_shim::run(store, spec, &start, &opts.cmd)?;
            Ok(Finished {
                status,
                traced: None,
            })
        }
        r => r,
    }
}

/// Can this process make the namespaces a run needs? Tried in a child (the probe changes
/// nothing here); the refusal, in words, when it cannot.
#[cfg(target_os = "linux")]
fn namespaces_refused_here() -> Option<String> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if !nix::unistd::geteuid().is_root() {
        flags |= libc::CLONE_NEWUSER;
    }
    match crate::sys::probe::in_child(|| crate::sys::probe::unshare(flags)) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOSPC) | Some(libc::EINVAL)
            ) =>
        {
            Some(format!("unshare of the run's namespaces: {e}"))
        }
        _ => None,
    }
}

/// Whether the view is mounted at its root (in the program's own namespaces), or served
/// without mounts where namespaces are refused (`projection::supervisor::no_mounts`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg(target_os = "linux")]
enum Mounted {
    Yes,
    No,
}

/// The program did not start because the kernel refused the run's namespaces.
#[cfg(target_os = "linux")]
fn namespaces_refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<launch::SetupFailed>()
        .is_some_and(|f| f.namespaces_refused())
}

/// The program did not start because the kernel refused the seccomp filter.
#[cfg(target_os = "linux")]
fn filter_refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<launch::SetupFailed>()
        .is_some_and(|f| f.filter_refused())
}

/// The program did not start because the kernel refused the overlay mount.
#[cfg(target_os = "linux")]
fn overlay_refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<launch::SetupFailed>()
        .is_some_and(|f| matches!(f.mount, Some(Mount::Overlay { .. })))
}

/// One attempt at the run with projection `kind`: prepare, launch, wait, harvest, save.
#[cfg(target_os = "linux")]
fn run_with(
    kind: Kind,
    store: &Store,
    spec: &ViewSpec,
    opts: &RunOptions,
    cwd: &Path,
    mounted: Mounted,
) -> Result<Finished> {
    let without_mounts = mounted == Mounted::No;
    let run_dir = RunDir::create(store)?;
    let runner = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    // The supervisor judges permissions itself, against the view's owner; the overlay leaves
    // them to the kernel, over layers made for the runner.
    let owner = if kind == Kind::Supervisor {
        view_owner(spec, runner)
    } else {
        runner
    };
    // With the shim in front (shim+supervisor), its state lives in the same run directory.
    // A trace runs without it: what the shim answers inside the process, neither eBPF nor
    // the supervisor sees.
    // Without mounts the shim is always in front: it serves dynamic programs' reads and
    // keeps their cwd, which the kernel could not enter.
    let with_shim =
        (opts.projection == Choice::ShimSupervisor && kind == Kind::Supervisor && !opts.trace)
            || without_mounts;
    let shim = match with_shim.then(|| prepare_shim(store, spec, opts, cwd, owner, &run_dir)) {
        Some(Err(e)) => {
            run_dir.remove();
            return Err(e);
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let prepared = projection::prepare(
        kind,
        &projection::Context {
            store,
            spec,
            run_dir: &run_dir,
            owner,
            with_shim,
            without_mounts,
        },
    );
    let projection = match prepared {
        Ok(p) => p,
        Err(e) => {
            // Nothing ran: the run leaves nothing behind.
            run_dir.remove();
            return Err(e);
        }
    };
    // What recovery needs if this vrift is killed: written before the program starts.
    rundir::write_base(store, run_dir.path(), &spec.manifest)?;
    RunRecord {
        version: RECORD_VERSION,
        projection: projection.kind(),
        pid: std::process::id(),
        start_ticks: rundir::start_ticks(std::process::id()).unwrap_or(0),
        root: spec.root.clone(),
        owner_uid: owner.uid,
        owner_gid: owner.gid,
        dev: projection.dev(),
        passthrough: spec.passthrough.iter().map(|(p, _)| p.clone()).collect(),
        destination: spec.destination.clone(),
    }
    .write(run_dir.path())?;

    let planned = if without_mounts {
        plan_without_mounts(opts, spec, cwd, projection.as_ref(), &run_dir)
    } else {
        launch_plan(
            store,
            opts,
            spec,
            cwd,
            runner,
            projection.as_ref(),
            Some(&run_dir),
        )
    };
    let (plan, isolation) = match planned {
        Ok(p) => p,
        Err(e) => {
            run_dir.remove();
            return Err(e);
        }
    };
    let trace = match opts.trace {
        // With no supervisor to see the calls, the eBPF side records their paths.
        true => Some(TraceOptions {
            classify: match kind {
                Kind::Supervisor => None,
                _ => Some((
                    ViewPaths::new(
                        spec.root.as_os_str().as_bytes(),
                        spec.passthrough.iter().map(|(p, _)| p.to_vec()),
                    ),
                    start::dir(opts, spec, cwd)?.into_os_string().into_vec(),
                )),
            },
            ..TraceOptions::default()
        }),
        false => None,
    };
    let counter = shim
        .as_ref()
        .and_then(|_| crate::projection_shim::ServedCounter::create(run_dir.path()));
    let env = shim
        .as_ref()
        .map(|p| {
            let farm = without_mounts.then(|| run_dir.join(crate::rundir::FARM));
            crate::projection_shim::env_with_supervisor(
                p,
                projection.dev(),
                counter.as_ref(),
                farm.as_deref(),
            )
        })
        .unwrap_or_default();
    // The supervisor counts what it serves (for a trace, or to report beside the shim's
    // count); under the overlay a trace's classes come from the eBPF side instead.
    let served = ((opts.trace && kind == Kind::Supervisor) || with_shim)
        .then(|| Arc::new(ServedStats::default()));
    let started = start_and_wait(
        &opts.cmd,
        &env,
        plan,
        Arc::clone(&projection),
        served.clone(),
        trace,
        || {},
    );
    if let (true, Some(served)) = (with_shim, &served) {
        let rows = served.rows();
        let by_supervisor: u64 = rows.iter().map(|(_, r)| r.total()).sum();
        let outside: u64 = rows.iter().map(|(_, r)| r.passthrough).sum();
        tracing::info!(
            "calls served: {} by the shim, {by_supervisor} by the supervisor ({outside} of \
             them outside the view, handed back to the kernel)",
            counter.as_ref().map_or(0, |c| c.count())
        );
    }
    let mut finished = match started {
        Ok(f) => f,
        Err(e) => {
            // Nothing ran (the view could not be set up, or the program not started): the
            // run leaves nothing behind.
            if e.downcast_ref::<launch::SetupFailed>().is_some() || e.is::<launch::ExecFailed>() {
                run_dir.remove();
            }
            return Err(e);
        }
    };
    if let Some(iso) = &isolation {
        iso.report_end(finished.status);
    }

    let new_manifest = projection.harvest().context("saving the run's changes")?;
    let (start_manifest, new_manifest) = base::unstack(spec, new_manifest)?;
    let saved = destination::save(store, start_manifest, &spec.destination, &new_manifest)?;
    // Saved or kept aside: the run directory is done with either way.
    run_dir.remove();
    if saved != destination::Saved::Done && finished.status == 0 {
        // The program succeeded but its result is not where it belongs: `a && b` stops.
        finished.status = 1;
    }
    Ok(finished)
}

/// The child's namespaces, mounts and filter.
#[cfg(target_os = "linux")]
pub(crate) fn launch_plan(
    store: &Store,
    opts: &RunOptions,
    spec: &ViewSpec,
    cwd: &Path,
    owner: Owner,
    projection: &dyn Projection,
    run_dir: Option<&RunDir>,
) -> Result<(launch::LaunchPlan, Option<isolate::Prepared>)> {
    let start_dir = start::dir(opts, spec, cwd)?;
    if opts.isolate.isolate {
        let run_dir = run_dir.context("--isolate does not combine with --session")?;
        return isolated_plan(store, opts, spec, &start_dir, owner, projection, run_dir);
    }
    let mut steps = vec![Mount::PrivateRoot];
    if spec.root.exists() {
        if !spec.root.is_dir() {
            bail!(
                "{}: the view's root is not a directory",
                spec.root.display()
            );
        }
    } else {
        let stage = store.root().join("stage");
        std::fs::create_dir_all(&stage).with_context(|| format!("{}", stage.display()))?;
        steps.extend(mounts::missing_root(&spec.root, &stage)?);
    }
    steps.extend(projection.mounts()?);
    // The store itself, at its own path, read-only too: a program that finds a blob's path
    // must not be able to write or chmod it there either. A store inside the view's root
    // (a run from the home directory that holds it) is there only if it passes through; in
    // a view that does not show it there is nothing to reach it by.
    if store_reachable(store.root(), spec) {
        steps.push(Mount::Bind {
            src: cstring(store.root())?,
            dst: cstring(store.root())?,
            readonly: true,
        });
    }
    // A /proc of the new pid namespace, so /proc/PID agrees with getpid.
    steps.push(Mount::Proc);
    steps.push(Mount::Chdir {
        path: cstring(&start_dir)?,
    });
    Ok((
        launch::LaunchPlan {
            ns: Some(ns::NsConfig {
                id_maps: user_maps(owner)?,
                isolation: None,
                join: None,
            }),
            mounts: steps,
            filter: projection.filter()?,
        },
        None,
    ))
}

/// The launch of a run without mounts: no namespaces, no mounts, the projection's filter,
/// and the program started in the farm's directory standing for its start directory (the
/// kernel cannot enter the view's paths), or in the real one outside the view.
#[cfg(target_os = "linux")]
fn plan_without_mounts(
    opts: &RunOptions,
    spec: &ViewSpec,
    cwd: &Path,
    projection: &dyn Projection,
    run_dir: &RunDir,
) -> Result<(launch::LaunchPlan, Option<isolate::Prepared>)> {
    let start = start::dir(opts, spec, cwd)?;
    let in_farm = start
        .strip_prefix(&spec.root)
        .ok()
        .map(|rel| run_dir.join(crate::rundir::FARM).join(rel))
        .filter(|p| p.is_dir());
    let dir = in_farm.unwrap_or(start);
    Ok((
        launch::LaunchPlan {
            ns: None,
            mounts: vec![Mount::Chdir {
                path: cstring(&dir)?,
            }],
            filter: projection.filter()?,
        },
        None,
    ))
}

/// For a caller without root: a user namespace mapping the caller to itself.
#[cfg(target_os = "linux")]
fn user_maps(owner: Owner) -> Result<Option<(CString, CString)>> {
    Ok(if owner.uid != 0 {
        Some((
            CString::new(format!("{0} {0} 1", owner.uid))?,
            CString::new(format!("{0} {0} 1", owner.gid))?,
        ))
    } else {
        None
    })
}

/// The launch plan of `--isolate` ([`isolate`]).
#[cfg(target_os = "linux")]
fn isolated_plan(
    store: &Store,
    opts: &RunOptions,
    spec: &ViewSpec,
    start_dir: &Path,
    owner: Owner,
    projection: &dyn Projection,
    run_dir: &RunDir,
) -> Result<(launch::LaunchPlan, Option<isolate::Prepared>)> {
    let id = run_dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (isolation, prepared) = isolate::namespaces(&opts.isolate, &id, owner.uid, owner.gid)?;
    let mounts = isolate::mounts(isolate::Plan {
        store,
        bases: &opts.bases,
        run_dir: run_dir.path(),
        view_root: &spec.root,
        start_dir,
        runner_uid: owner.uid,
        runner_gid: owner.gid,
        projection_mounts: projection.mounts()?,
    })?;
    Ok((
        launch::LaunchPlan {
            ns: Some(ns::NsConfig {
                id_maps: user_maps(owner)?,
                isolation: Some(isolation),
                join: None,
            }),
            mounts,
            filter: projection.filter()?,
        },
        Some(prepared),
    ))
}

/// Who the view's entries belong to. A manifest records no owner, so a view reports its
/// files as the runner's own, except in a project directory the runner may not write (and
/// does not own): there they are reported as its owner's, so that permissions are judged
/// when a write is made as the disk would judge them (a write the disk would refuse gets
/// EACCES at once, instead of succeeding in the view and failing at write-back). A shared
/// directory the runner may write (`/tmp`) keeps the runner as owner. Root owns everything
/// it may write.
#[cfg(target_os = "linux")]
fn view_owner(spec: &ViewSpec, runner: Owner) -> Owner {
    use std::os::unix::fs::MetadataExt;
    if runner.uid == 0 {
        return runner;
    }
    match &spec.destination {
        destination::Destination::Project { dir, .. } => match std::fs::metadata(dir) {
            Ok(m)
                if m.uid() != runner.uid
                    && nix::unistd::access(dir.as_path(), nix::unistd::AccessFlags::W_OK)
                        .is_err() =>
            {
                Owner {
                    uid: m.uid(),
                    gid: m.gid(),
                }
            }
            _ => runner,
        },
        destination::Destination::ManifestFile(_) => runner,
    }
}

/// Whether the store's own path exists in the program's mount namespace once the view
/// covers its root.
#[cfg(target_os = "linux")]
fn store_reachable(store: &Path, spec: &ViewSpec) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let store = store.canonicalize().unwrap_or_else(|_| store.to_path_buf());
    let root = spec
        .root
        .canonicalize()
        .unwrap_or_else(|_| spec.root.clone());
    let Ok(rel) = store.strip_prefix(&root) else {
        return true;
    };
    let rel = rel.as_os_str().as_bytes();
    spec.passthrough.iter().any(|(p, _)| {
        rel == p.as_slice() || (rel.starts_with(p) && rel.get(p.len()) == Some(&b'/'))
    })
}

/// The shim's state and environment in the run directory, for shim+supervisor.
#[cfg(target_os = "linux")]
fn prepare_shim(
    store: &Store,
    spec: &ViewSpec,
    opts: &RunOptions,
    cwd: &Path,
    owner: Owner,
    run_dir: &RunDir,
) -> Result<crate::projection_shim::Prepared> {
    use std::os::unix::ffi::OsStrExt;
    let start = start::dir(opts, spec, cwd)?;
    let through: Vec<PathBuf> = spec
        .passthrough
        .iter()
        .map(|(rel, _)| spec.root.join(std::ffi::OsStr::from_bytes(rel)))
        .collect();
    let library = crate::projection_shim::find_library()?;
    // No origins: the supervisor behind the shim answers with the view's own inode numbers,
    // and takes over every answer once the view changes.
    crate::projection_shim::prepare(
        store,
        &spec.manifest,
        None,
        &spec.root,
        &start,
        owner,
        &library,
        &through,
        run_dir.path(),
    )
}

/// Start the program (with `env` added to its environment), pass signals on, wait for it;
/// the supervisor counts what it served into `served` when given, and `on_started` is
/// called once the program runs.
#[cfg(target_os = "linux")]
pub(crate) fn start_and_wait(
    cmd_line: &[OsString],
    env: &[(OsString, OsString)],
    plan: launch::LaunchPlan,
    projection: Arc<dyn Projection>,
    served: Option<Arc<ServedStats>>,
    trace: Option<TraceOptions>,
    on_started: impl FnOnce(),
) -> Result<Finished> {
    signals::block_forwarded().context("blocking signals")?;
    let kind = projection.kind();
    let served2 = served.clone();
    let tracing = trace.is_some();
    type Tracer = Result<EbpfTracer, TraceUnavailable>;
    let tracer: Arc<Mutex<Option<Tracer>>> = Arc::new(Mutex::new(None));
    let tracer2 = Arc::clone(&tracer);
    let serve_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();
    let serve_error2 = Arc::clone(&serve_error);
    let started = std::time::Instant::now();
    let ready = move |listener: Option<std::os::fd::OwnedFd>| {
        if let Some(options) = trace {
            // The program is held until this returns, so tracing starts before it runs.
            *lock(&tracer2) = Some(match program_pid() {
                Some(pid) => EbpfTracer::start_with(pid, options),
                None => Err(TraceUnavailable::NotPermitted(
                    "the program's process could not be found".into(),
                )),
            });
        }
        if let Some(listener) = listener {
            if let Err(e) = projection.serve(listener, served2) {
                *lock(&serve_error2) = Some(e);
            }
        }
    };
    let mut cmd = Command::new(&cmd_line[0]);
    cmd.args(&cmd_line[1..])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let child = launch::spawn(cmd, plan, ready)?;
    on_started();
    if let Some(e) = lock(&serve_error).take() {
        // Nobody answers the program's calls: end it rather than let it hang.
        signals::kill(child.id() as i32, libc::SIGKILL);
        return Err(e);
    }
    let pid = child.id() as i32;
    std::thread::Builder::new()
        .name("vrift-signals".into())
        .spawn(move || {
            while let Ok((sig, from_process)) = signals::wait_forwarded() {
                if from_process {
                    signals::kill(pid, sig);
                }
            }
        })
        .context("starting the signal thread")?;
    // The program runs as pid 2 of its own pid namespace: when it exits, its init exits and
    // the kernel ends whatever it left running.
    let status = wait_child(child)?;
    let wall = started.elapsed();
    let traced = tracing.then(|| {
        let t = lock(&tracer).take();
        let ebpf = match t {
            Some(Ok(t)) => t.finish(),
            Some(Err(e)) => Err(e),
            None => Err(TraceUnavailable::NotPermitted(
                "tracing did not start".into(),
            )),
        };
        // The supervisor's counts, or the eBPF side's classes where no supervisor served.
        let served = match served {
            Some(s) => Some(s),
            None => ebpf.as_ref().ok().and_then(|d| d.classes.clone()),
        };
        Traced {
            ebpf,
            served,
            projection: kind,
            wall,
        }
    });
    Ok(Finished { status, traced })
}

/// The program's process: the grandchild of vrift's child (keeper, then the pid
/// namespace's init; see sys::init), in vrift's pid namespace.
#[cfg(target_os = "linux")]
fn program_pid() -> Option<u32> {
    let keeper = *children_of(std::process::id()).first()?;
    let init = *children_of(keeper).first()?;
    children_of(init).first().copied()
}

/// Children of every thread of process `pid`.
#[cfg(target_os = "linux")]
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|s| s.parse::<u32>().ok()),
        );
    }
    out
}

#[cfg(target_os = "linux")]
fn wait_child(mut child: std::process::Child) -> Result<u8> {
    let status = child.wait().context("waiting for the program")?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => 1,
    })
}
