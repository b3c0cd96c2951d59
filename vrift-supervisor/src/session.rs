//! One `vrift run`: choose the manifest, project it, start the program under the
//! supervisor, pass signals on, and end with the program's exit status.

use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;

use crate::mountplan::cstring;
use crate::supervisor::{Model, Supervisor};
use crate::sys::notify::Listener;
use crate::sys::{ns, signals};
use crate::{farm, filter, launch, mountplan, project};

pub struct RunOptions {
    pub manifest: Option<PathBuf>,
    pub mount: Option<PathBuf>,
    pub cmd: Vec<OsString>,
}

/// The view a run projects: its manifest, where it appears, and the real paths that pass
/// through it (excluded by the filters, so they stay on the real disk).
pub struct ViewSpec {
    pub manifest: Manifest,
    pub root: PathBuf,
    pub passthrough: Vec<(RelPath, farm::PlaceholderKind)>,
}

fn choose_view(store: &Store, opts: &RunOptions, cwd: &Path) -> Result<ViewSpec> {
    if let Some(mount) = &opts.mount {
        if !mount.is_absolute() {
            bail!("--mount {}: must be an absolute path", mount.display());
        }
    }
    if let Some(path) = &opts.manifest {
        let manifest = Manifest::load(path)?;
        return Ok(ViewSpec {
            manifest,
            root: opts.mount.clone().unwrap_or_else(|| cwd.to_path_buf()),
            passthrough: Vec::new(),
        });
    }
    let prepared = project::prepare(store, cwd)?;
    Ok(ViewSpec {
        manifest: prepared.manifest,
        root: opts.mount.clone().unwrap_or(prepared.root),
        passthrough: prepared.passthrough,
    })
}

/// Run the program; returns the exit status to give (128+N when killed by signal N).
pub fn run(opts: RunOptions) -> Result<u8> {
    let store = Store::open_default()?;
    // Held for the whole run: gc --delete waits, so no blob this run relies on disappears.
    let _lock = store.lock_shared()?;
    let cwd = std::env::current_dir().context("current directory")?;
    let spec = choose_view(&store, &opts, &cwd)?;

    let farm_dir = farm::ensure(&store, &spec.manifest, &spec.passthrough)?;
    let farm_meta =
        std::fs::metadata(&farm_dir).with_context(|| format!("{}", farm_dir.display()))?;
    use std::os::unix::fs::MetadataExt;
    let owner = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let root_bytes = spec.root.as_os_str().as_bytes().to_vec();
    let model = Arc::new(Model::new(
        root_bytes,
        spec.manifest.iter().map(|(p, e)| (p.to_vec(), e.clone())),
        &spec.passthrough,
        owner,
        farm_meta.dev(),
    ));

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
    // Real paths that pass through are bound onto their placeholders in the farm first;
    // the recursive bind of the farm then carries them to the view (still writable, while
    // the farm itself is remounted read-only). The sources are resolved before the farm
    // covers the real tree.
    let mut binds = Vec::new();
    for (rel, _) in &spec.passthrough {
        let rel_path = Path::new(std::ffi::OsStr::from_bytes(rel));
        binds.push(ns::Bind {
            src: cstring(&spec.root.join(rel_path))?,
            dst: cstring(&farm_dir.join(rel_path))?,
            readonly: false,
        });
    }
    binds.push(ns::Bind {
        src: cstring(&farm_dir)?,
        dst: cstring(&spec.root)?,
        readonly: true,
    });
    let start_dir = if opts.mount.is_some() {
        spec.root.clone()
    } else {
        cwd.clone()
    };
    let euid = owner.0;
    let plan = ns::NsPlan {
        missing_root,
        id_maps: (euid != 0).then(|| {
            (
                CString::new(format!("{euid} {euid} 1")).unwrap(),
                CString::new(format!("{0} {0} 1", owner.1)).unwrap(),
            )
        }),
        binds,
        cwd: cstring(&start_dir)?,
    };
    let program = filter::build_program()?;

    signals::block_forwarded().context("blocking signals")?;
    signals::become_subreaper().context("becoming a subreaper")?;
    let sup: Arc<OnceLock<Arc<Supervisor>>> = Arc::new(OnceLock::new());
    let sup2 = Arc::clone(&sup);
    let model2 = Arc::clone(&model);
    let serve = move |fd: OwnedFd| {
        let listener = Listener::from_fd(fd);
        let sync = listener.set_sync_wake_up();
        tracing::debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: {sync}");
        let s = Supervisor::new(listener, model2);
        s.spawn_workers(worker_count());
        let _ = sup2.set(s);
    };
    let mut cmd = Command::new(&opts.cmd[0]);
    cmd.args(&opts.cmd[1..]);
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
    let status = wait_child(child)?;
    reap_leftovers();
    Ok(status)
}

fn worker_count() -> usize {
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

/// The program has exited: anything it left running would go on over a view that is about
/// to disappear, so end it. vrift is a subreaper, so orphans are its children.
fn reap_leftovers() {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    loop {
        let kids = children_of(std::process::id());
        if kids.is_empty() {
            break;
        }
        for k in &kids {
            signals::kill(*k, libc::SIGKILL);
        }
        for k in kids {
            let _ = waitpid(nix::unistd::Pid::from_raw(k), Some(WaitPidFlag::empty()));
        }
    }
}

/// Children of every thread of process `pid` (orphans may be re-parented to any thread).
fn children_of(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|s| s.parse::<i32>().ok()),
        );
    }
    out
}
