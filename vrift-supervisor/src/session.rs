//! One `vrift run`: choose the manifest, project it, start the program under the
//! supervisor, pass signals on, and when it ends, save what it changed.

use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;
use vrift_common::vfs::{Owner, View};

use crate::mountplan::cstring;
use crate::recovery::{self, Destination, RunRecord};
use crate::supervisor::journal::Journal;
use crate::supervisor::served::ServedStats;
use crate::supervisor::{Model, Supervisor};
use crate::sys::notify::Listener;
use crate::sys::{ns, signals};
use crate::trace::{EbpfTracer, TraceData, TraceUnavailable};
use crate::{farm, filter, launch, mountplan, project, writeback};

pub struct RunOptions {
    pub manifest: Option<PathBuf>,
    pub mount: Option<PathBuf>,
    pub cmd: Vec<OsString>,
    /// Measure the run for `vrift trace`.
    pub trace: bool,
}

/// What `vrift trace` gets back besides the exit status.
pub struct Traced {
    pub ebpf: Result<TraceData, TraceUnavailable>,
    pub served: Arc<ServedStats>,
    pub wall: std::time::Duration,
}

/// How a run ended.
pub struct Finished {
    pub status: u8,
    pub traced: Option<Traced>,
}

/// The view a run projects.
pub struct ViewSpec {
    pub manifest: Manifest,
    pub root: PathBuf,
    /// Real paths excluded by the filters, which pass through to the real tree.
    pub passthrough: Vec<(RelPath, farm::PlaceholderKind)>,
    pub destination: Destination,
}

fn choose_view(store: &Store, opts: &RunOptions, cwd: &Path) -> Result<ViewSpec> {
    if let Some(mount) = &opts.mount {
        if !mount.is_absolute() {
            bail!("--mount {}: must be an absolute path", mount.display());
        }
    }
    if let Some(path) = &opts.manifest {
        let manifest = Manifest::load(path)?;
        let path = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
        return Ok(ViewSpec {
            manifest,
            root: opts.mount.clone().unwrap_or_else(|| cwd.to_path_buf()),
            passthrough: Vec::new(),
            destination: Destination::ManifestFile(path),
        });
    }
    let prepared = project::prepare(store, cwd)?;
    Ok(ViewSpec {
        manifest: prepared.manifest,
        root: opts.mount.clone().unwrap_or_else(|| prepared.root.clone()),
        passthrough: prepared.passthrough,
        destination: Destination::Project {
            dir: prepared.root,
            has_manifest: prepared.persistent,
        },
    })
}

/// A directory of the store for this run's farm (removed when the run has been saved).
fn run_dir(store: &Store) -> Result<PathBuf> {
    let runs = store.root().join(vrift_common::gc::RUNS_DIR);
    std::fs::create_dir_all(&runs).with_context(|| format!("{}", runs.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = runs.join(format!("{}-{stamp}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("{}", dir.display()))?;
    Ok(dir)
}

/// Run the program; its exit status is the one to give (128+N when killed by signal N).
pub fn run(opts: RunOptions) -> Result<Finished> {
    if !crate::sys::notify::listener_available() {
        bail!(
            "this process already runs under a seccomp supervisor (vrift inside vrift, or \
             inside another sandbox that uses seccomp user notification); the kernel allows \
             only one, so vrift cannot serve a view here"
        );
    }
    let store = Store::open_default()?;
    // Held for the whole run: gc --delete waits, so no blob this run relies on disappears.
    let _lock = store.lock_shared()?;
    let cwd = std::env::current_dir().context("current directory")?;
    recovery::recover_interrupted(&store);
    let spec = choose_view(&store, &opts, &cwd)?;

    let run_dir = run_dir(&store)?;
    let farm_dir = run_dir.join(recovery::FARM);
    farm::build_run(&store, &spec.manifest, &spec.passthrough, &farm_dir)?;
    let farm_dev = std::fs::metadata(&farm_dir)
        .with_context(|| format!("{}", farm_dir.display()))?
        .dev();
    let owner = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let view = View::new(
        spec.root.as_os_str().as_bytes(),
        owner,
        vec![Arc::new(spec.manifest.clone())],
    )
    .with_context(|| format!("{}: cannot make a view", spec.root.display()))?
    .with_dev(farm_dev);
    // What recovery needs if this vrift is killed: written before the program starts.
    spec.manifest.save_atomic(&run_dir.join(recovery::BASE))?;
    let journal_path = run_dir.join(recovery::JOURNAL);
    let journal =
        Journal::create(&journal_path).with_context(|| format!("{}", journal_path.display()))?;
    RunRecord {
        pid: std::process::id(),
        start_ticks: recovery::start_ticks(std::process::id()).unwrap_or(0),
        root: spec.root.clone(),
        owner_uid: owner.uid,
        owner_gid: owner.gid,
        dev: farm_dev,
        passthrough: spec.passthrough.iter().map(|(p, _)| p.clone()).collect(),
        destination: spec.destination.clone(),
    }
    .write(&run_dir)?;
    let model = Arc::new(Model::new(
        view,
        farm_dir.clone(),
        spec.passthrough.iter().map(|(p, _)| p.clone()),
        store.clone(),
        Some(journal),
    ));

    let plan = ns_plan(&store, &opts, &spec, &farm_dir, &cwd, owner)?;
    let finished = start_and_wait(&opts.cmd, plan, Arc::clone(&model), opts.trace)?;

    let new_manifest = model.commit().context("saving the run's changes")?;
    save(&store, &spec.manifest, &spec.destination, &new_manifest)?;
    if let Err(e) = std::fs::remove_dir_all(&run_dir) {
        tracing::warn!("{}: {e}", run_dir.display());
    }
    Ok(finished)
}

/// The child's namespaces and mounts.
fn ns_plan(
    store: &Store,
    opts: &RunOptions,
    spec: &ViewSpec,
    farm_dir: &Path,
    cwd: &Path,
    owner: Owner,
) -> Result<ns::NsPlan> {
    let missing_root = if spec.root.exists() {
        if !spec.root.is_dir() {
            bail!(
                "{}: the view's root is not a directory",
                spec.root.display()
            );
        }
        None
    } else {
        let stage = store.root().join("stage");
        std::fs::create_dir_all(&stage).with_context(|| format!("{}", stage.display()))?;
        Some(mountplan::missing_root(&spec.root, &stage)?)
    };
    // Real paths that pass through are bound onto their placeholders in the farm first; the
    // recursive bind of the farm then carries them to the view (still writable, while the
    // farm itself is remounted read-only). Their sources resolve before the farm covers the
    // real tree.
    let real_dir = match &spec.destination {
        Destination::Project { dir, .. } => dir.clone(),
        Destination::ManifestFile(_) => spec.root.clone(),
    };
    let mut binds = Vec::new();
    for (rel, _) in &spec.passthrough {
        let rel_path = Path::new(std::ffi::OsStr::from_bytes(rel));
        binds.push(ns::Bind {
            src: cstring(&real_dir.join(rel_path))?,
            dst: cstring(&farm_dir.join(rel_path))?,
            readonly: false,
        });
    }
    binds.push(ns::Bind {
        src: cstring(farm_dir)?,
        dst: cstring(&spec.root)?,
        readonly: true,
    });
    // The store itself, at its own path, read-only too: a program that finds a blob's path
    // must not be able to write or chmod it there either.
    binds.push(ns::Bind {
        src: cstring(store.root())?,
        dst: cstring(store.root())?,
        readonly: true,
    });
    let start_dir = if opts.mount.is_some() {
        spec.root.clone()
    } else {
        cwd.to_path_buf()
    };
    Ok(ns::NsPlan {
        missing_root,
        id_maps: (owner.uid != 0).then(|| {
            (
                CString::new(format!("{0} {0} 1", owner.uid)).unwrap(),
                CString::new(format!("{0} {0} 1", owner.gid)).unwrap(),
            )
        }),
        binds,
        cwd: cstring(&start_dir)?,
    })
}

/// Start the program under the supervisor, pass signals on, wait for it.
fn start_and_wait(
    cmd_line: &[OsString],
    plan: ns::NsPlan,
    model: Arc<Model>,
    trace: bool,
) -> Result<Finished> {
    let program = filter::build_program()?;
    signals::block_forwarded().context("blocking signals")?;
    let served = trace.then(|| Arc::new(ServedStats::default()));
    let served2 = served.clone();
    type Tracer = Result<EbpfTracer, TraceUnavailable>;
    let tracer: Arc<Mutex<Option<Tracer>>> = Arc::new(Mutex::new(None));
    let tracer2 = Arc::clone(&tracer);
    let started = std::time::Instant::now();
    let serve = move |fd: OwnedFd| {
        let listener = Listener::from_fd(fd);
        let sync =
            std::env::var_os("VRIFT_NO_SYNC_WAKEUP").is_none() && listener.set_sync_wake_up();
        tracing::debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: {sync}");
        if trace {
            // The program is held until this returns, so tracing starts before it runs.
            *tracer2.lock().unwrap() = Some(match program_pid() {
                Some(pid) => EbpfTracer::start(pid),
                None => Err(TraceUnavailable::NotPermitted(
                    "the program's process could not be found".into(),
                )),
            });
        }
        // The workers own the supervisor from here; they run until the process exits.
        Supervisor::new(listener, model, served2).spawn_workers(worker_count());
    };
    let mut cmd = Command::new(&cmd_line[0]);
    cmd.args(&cmd_line[1..]);
    let child = launch::spawn(cmd, plan, program, serve)?;
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
    let traced = match served {
        Some(served) => {
            let t = tracer.lock().unwrap().take();
            let ebpf = match t {
                Some(Ok(t)) => t.finish(),
                Some(Err(e)) => Err(e),
                None => Err(TraceUnavailable::NotPermitted(
                    "tracing did not start".into(),
                )),
            };
            Some(Traced { ebpf, served, wall })
        }
        None => None,
    };
    Ok(Finished { status, traced })
}

/// The program's process: the grandchild of vrift's child (keeper, then the pid
/// namespace's init; see sys::init), in vrift's pid namespace.
fn program_pid() -> Option<u32> {
    let keeper = *children_of(std::process::id()).first()?;
    let init = *children_of(keeper).first()?;
    children_of(init).first().copied()
}

/// Children of every thread of process `pid`.
fn children_of(pid: u32) -> Vec<u32> {
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

/// Put the run's result where it belongs.
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

fn wait_child(mut child: std::process::Child) -> Result<u8> {
    let status = child.wait().context("waiting for the program")?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => 1,
    })
}
