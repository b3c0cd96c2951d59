//! Starting the program inside the view: fork, private namespaces and mounts, seccomp
//! filter, listener handed to the supervisor, exec.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use anyhow::{Context, Result};

use crate::sys::{fdpass, init, notify, ns, signals};

/// Fork `cmd` so that it enters the namespaces and mounts of `plan`, installs `program` as
/// its seccomp filter, hands the listener to `serve` (called on a thread of this process),
/// and execs once `serve` has returned (the supervisor must be answering by then: the exec
/// itself is a notified call).
pub fn spawn(
    mut cmd: Command,
    plan: ns::NsPlan,
    program: Vec<u8>,
    serve: impl FnOnce(OwnedFd) + Send + 'static,
) -> Result<Child> {
    let (parent_sock, child_sock) = UnixStream::pair().context("socketpair")?;
    let receiver = std::thread::Builder::new()
        .name("vrift-listener".into())
        .spawn(move || -> std::io::Result<()> {
            let listener = fdpass::recv_fd(parent_sock.as_fd())?;
            serve(listener);
            (&parent_sock).write_all(b"G")
        })
        .context("starting the supervisor thread")?;
    // SAFETY (of the closure's contents): it runs in the forked child before exec and only
    // makes system calls on data prepared here: it allocates nothing and takes no locks, so
    // it is sound even though this process has other threads.
    unsafe {
        cmd.pre_exec(move || {
            signals::die_with_parent()?;
            ns::enter_namespaces(&plan)?;
            init::split_keeper_and_init()?;
            ns::make_mounts(&plan)?;
            ns::drop_mount_capability()?;
            signals::unblock_all()?;
            let listener = notify::install_filter_with_listener(&program)?;
            fdpass::send_fd(child_sock.as_fd(), listener.as_fd())?;
            drop(listener);
            let mut go = [0u8; 1];
            match (&child_sock).read(&mut go) {
                Ok(1) => Ok(()),
                _ => Err(std::io::Error::other("the supervisor went away")),
            }
        });
    }
    let spawned = cmd.spawn();
    drop(cmd); // closes this process's copy of the child's socket
               // On success the receiver has finished (the child waited for it); on failure the child's
               // socket is closed, so the receiver sees EOF and ends.
    let received = receiver.join();
    let child = match spawned {
        Ok(c) => c,
        // Only the seccomp install answers EBUSY here: the kernel allows one listener in a
        // filter chain.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => anyhow::bail!(
            "this process already runs under a seccomp supervisor; the kernel allows only one"
        ),
        Err(e) => return Err(e).context("setting up the view and starting the program"),
    };
    match received {
        Ok(Ok(())) => Ok(child),
        Ok(Err(e)) => Err(anyhow::anyhow!("receiving the seccomp listener: {e}")),
        Err(_) => Err(anyhow::anyhow!("the supervisor thread panicked")),
    }
}
