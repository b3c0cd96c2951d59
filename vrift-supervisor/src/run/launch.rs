//! Starting the program inside the view: fork, private namespaces, the projection's mounts,
//! a seccomp filter if the projection has one, and exec once vrift is ready to serve.
//!
//! All of it is Linux's but [`ExecFailed`], which the shim's launcher on macOS gives too.

#[cfg(target_os = "linux")]
use {
    crate::mounts::{self, Mount},
    crate::sys::{fdpass, init, mount::Kernel, notify, ns, signals},
    anyhow::{anyhow, Context, Result},
    std::io::{Read, Write},
    std::os::fd::{AsFd, OwnedFd},
    std::os::unix::net::UnixStream,
    std::os::unix::process::CommandExt,
    std::process::{Child, Command},
};

/// A step of the child failed before the program could start.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
#[cfg(target_os = "linux")]
pub struct SetupFailed {
    /// The mount step that failed, if it was one.
    pub mount: Option<Mount>,
    pub message: String,
    step: u32,
    errno: Option<i32>,
}

#[cfg(target_os = "linux")]
impl SetupFailed {
    /// The kernel refused the run's namespaces (a container's seccomp profile, user
    /// namespaces turned off): nothing ran, and a projection without them may.
    pub fn namespaces_refused(&self) -> bool {
        self.step == NAMESPACES
            && matches!(
                self.errno,
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOSPC) | Some(libc::EINVAL)
            )
    }

    /// The kernel refused the seccomp filter for another reason than a listener already
    /// there (EBUSY, said as such): only the shim alone can serve the view then.
    pub fn filter_refused(&self) -> bool {
        self.step == FILTER && self.errno != Some(libc::EBUSY)
    }
}

/// What the child does between fork and exec, prepared in the parent.
#[cfg(target_os = "linux")]
pub struct LaunchPlan {
    /// The namespaces to enter; None for a run without them (the shim), whose process tree
    /// is kept by a subreaper instead of a pid namespace's init.
    pub ns: Option<ns::NsConfig>,
    pub mounts: Vec<Mount>,
    /// A seccomp filter (BPF program) whose listener vrift serves; None for a projection the
    /// kernel serves alone.
    pub filter: Option<Vec<u8>>,
}

/// The child-side steps, as reported back when one fails (a mount step is `MOUNT + index`).
#[cfg(target_os = "linux")]
const PARENT_DEATH: u32 = 0;
#[cfg(target_os = "linux")]
const NAMESPACES: u32 = 1;
#[cfg(target_os = "linux")]
const INIT: u32 = 2;
#[cfg(target_os = "linux")]
const DROP_CAP: u32 = 3;
#[cfg(target_os = "linux")]
const SIGNALS: u32 = 4;
#[cfg(target_os = "linux")]
const FILTER: u32 = 5;
#[cfg(target_os = "linux")]
const HANDSHAKE: u32 = 6;
#[cfg(target_os = "linux")]
const ISOLATION: u32 = 7;
#[cfg(target_os = "linux")]
const MOUNT: u32 = 1000;

/// The program could not be started (the view and its namespaces were ready): as a shell
/// says it, with a shell's exit status (127 not found, 126 found but not runnable).
#[derive(Debug)]
pub struct ExecFailed {
    pub program: String,
    pub error: std::io::Error,
}

impl ExecFailed {
    /// `exec` reports EACCES when a PATH search met a directory it may not search, even
    /// though no such program exists anywhere; a shell says "command not found" then.
    #[cfg(target_os = "linux")]
    fn new(program: String, error: std::io::Error) -> ExecFailed {
        let searched = !program.contains('/');
        let exists_on_path = || {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|d| d.join(&program).symlink_metadata().is_ok())
            })
        };
        let error = if searched
            && error.kind() == std::io::ErrorKind::PermissionDenied
            && !exists_on_path()
        {
            std::io::Error::from_raw_os_error(libc::ENOENT)
        } else {
            error
        };
        ExecFailed { program, error }
    }

    pub fn exit_code(&self) -> u8 {
        if self.error.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

impl std::fmt::Display for ExecFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.error.kind() == std::io::ErrorKind::NotFound {
            write!(f, "{}: command not found", self.program)
        } else {
            let e = std::io::Error::from_raw_os_error(self.error.raw_os_error().unwrap_or(0));
            let text = e.to_string();
            // "Permission denied (os error 13)" -> "Permission denied", as a shell says it.
            let text = text.split(" (os error").next().unwrap_or(&text);
            write!(f, "{}: {text}", self.program)
        }
    }
}

impl std::error::Error for ExecFailed {}

/// A step of the child that failed, in words, with what to do about it.
#[cfg(target_os = "linux")]
fn explain(step: u32, plan: &LaunchPlan, err: &std::io::Error) -> String {
    let refused = matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES));
    match step {
        NAMESPACES => {
            let what = if plan.ns.as_ref().is_some_and(|n| n.id_maps.is_some()) {
                "creating the run's user, mount and pid namespaces (unshare)"
            } else {
                "creating the run's mount and pid namespaces (unshare)"
            };
            if refused || err.raw_os_error() == Some(libc::ENOSPC) {
                format!(
                    "{what}: {err}. This system does not let vrift make namespaces (a \
                     container's seccomp profile, user.max_user_namespaces = 0, or \
                     kernel.unprivileged_userns_clone = 0); every projection that mounts the \
                     view needs them, so run vrift where namespaces are allowed (for a \
                     container: --security-opt seccomp=unconfined, or run it as root)"
                )
            } else {
                format!("{what}: {err}")
            }
        }
        FILTER if err.raw_os_error() == Some(libc::EBUSY) => {
            "installing the seccomp filter: this process already runs under a seccomp \
             supervisor (vrift inside vrift, or another sandbox that uses seccomp user \
             notification); the kernel allows only one listener, so the supervisor \
             projection cannot serve a view here"
                .to_string()
        }
        FILTER => format!("installing the seccomp filter: {err}"),
        PARENT_DEATH => format!("asking for a parent-death signal: {err}"),
        INIT => format!("starting the run's init process: {err}"),
        DROP_CAP => format!("dropping CAP_SYS_ADMIN from the program: {err}"),
        SIGNALS => format!("unblocking signals: {err}"),
        HANDSHAKE => format!("handing the program over to vrift: {err}"),
        ISOLATION => format!("isolating the program (hostname, user namespace, fds): {err}"),
        m if m >= MOUNT => match plan.mounts.get((m - MOUNT) as usize) {
            Some(step) => {
                let hint = if refused {
                    " (this system refuses mounts in a new namespace)"
                } else {
                    ""
                };
                format!("{}: {err}{hint}", mounts::describe(step))
            }
            None => format!("setting up the view's mounts: {err}"),
        },
        _ => format!("setting up the view: {err}"),
    }
}

/// Fork `cmd` so that it enters the plan's namespaces and mounts, installs the filter if
/// there is one, and hands its listener to `ready` (called on a thread of this process).
/// The program execs once `ready` has returned: a supervisor must be answering by then (the
/// exec itself is a notified call), and a tracer attached.
#[cfg(target_os = "linux")]
pub fn spawn(
    mut cmd: Command,
    plan: LaunchPlan,
    ready: impl FnOnce(Option<OwnedFd>) + Send + 'static,
) -> Result<Child> {
    let (parent_sock, child_sock) = UnixStream::pair().context("socketpair")?;
    let (mut failed_step, step_out) = std::io::pipe().context("pipe")?;
    let with_filter = plan.filter.is_some();
    let receiver = std::thread::Builder::new()
        .name("vrift-listener".into())
        .spawn(move || -> std::io::Result<()> {
            let listener = if with_filter {
                Some(fdpass::recv_fd(parent_sock.as_fd())?)
            } else {
                let mut byte = [0u8; 1];
                (&parent_sock).read_exact(&mut byte)?;
                None
            };
            ready(listener);
            (&parent_sock).write_all(b"G")
        })
        .context("starting the thread that hands the program over")?;
    let plan = std::sync::Arc::new(plan);
    let child_plan = std::sync::Arc::clone(&plan);
    // SAFETY: pre_exec's closure runs in the forked child before exec; this one only makes
    // system calls on data prepared here: it allocates nothing and takes no locks, so
    // it is sound even though this process has other threads.
    unsafe {
        cmd.pre_exec(move || {
            let plan = &*child_plan;
            // A failing step writes its number, so the parent can say which one it was.
            let fail = |step: u32, e: std::io::Error| {
                let _ = (&step_out).write_all(&step.to_le_bytes());
                e
            };
            signals::die_with_parent().map_err(|e| fail(PARENT_DEATH, e))?;
            match &plan.ns {
                Some(config) => {
                    ns::enter_namespaces(config).map_err(|e| fail(NAMESPACES, e))?;
                    init::split_keeper_and_init().map_err(|e| fail(INIT, e))?;
                    mounts::apply(&plan.mounts, &mut Kernel)
                        .map_err(|(i, e)| fail(MOUNT + i as u32, e))?;
                    ns::finish_isolation(config).map_err(|e| fail(ISOLATION, e))?;
                    ns::drop_mount_capability().map_err(|e| fail(DROP_CAP, e))?;
                }
                None => {
                    init::split_keeper_for_tree().map_err(|e| fail(INIT, e))?;
                    // Without namespaces a plan holds no mounts, only where to start.
                    mounts::apply(&plan.mounts, &mut Kernel)
                        .map_err(|(i, e)| fail(MOUNT + i as u32, e))?;
                }
            }
            signals::unblock_all().map_err(|e| fail(SIGNALS, e))?;
            match &plan.filter {
                Some(program) => {
                    let listener = notify::install_filter_with_listener(program)
                        .map_err(|e| fail(FILTER, e))?;
                    fdpass::send_fd(child_sock.as_fd(), listener.as_fd())
                        .map_err(|e| fail(HANDSHAKE, e))?;
                }
                None => (&child_sock)
                    .write_all(b"R")
                    .map_err(|e| fail(HANDSHAKE, e))?,
            }
            let mut go = [0u8; 1];
            match (&child_sock).read(&mut go) {
                Ok(1) if plan.ns.as_ref().is_some_and(|n| n.isolation.is_some()) => {
                    ns::close_others_on_exec().map_err(|e| fail(ISOLATION, e))
                }
                Ok(1) => Ok(()),
                _ => Err(fail(
                    HANDSHAKE,
                    std::io::Error::other("vrift went away before the program started"),
                )),
            }
        });
    }
    let program = cmd.get_program().to_owned();
    let spawned = cmd.spawn();
    // Closes this process's copies of the child's socket and of the step pipe's write end.
    drop(cmd);
    // On success the receiver has finished (the child waited for it); on failure the child's
    // socket is closed, so the receiver sees EOF and ends.
    let received = receiver.join();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let mut code = Vec::new();
            let _ = failed_step.read_to_end(&mut code);
            let failed = match code.get(..4) {
                Some(b) => {
                    let step = u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
                    SetupFailed {
                        mount: step
                            .checked_sub(MOUNT)
                            .and_then(|i| plan.mounts.get(i as usize).cloned()),
                        message: explain(step, &plan, &e),
                        step,
                        errno: e.raw_os_error(),
                    }
                }
                // No step failed: the exec itself did.
                None => {
                    return Err(ExecFailed::new(program.to_string_lossy().into_owned(), e).into());
                }
            };
            return Err(failed.into());
        }
    };
    match received {
        Ok(Ok(())) => Ok(child),
        Ok(Err(e)) => Err(anyhow!("handing the program over to vrift: {e}")),
        Err(_) => Err(anyhow!("the thread that hands the program over panicked")),
    }
}
