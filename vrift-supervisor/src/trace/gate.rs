//! Holding a new child before it runs anything of its own, so the tracer can be started
//! with the child's pid first: every syscall the traced program makes is then counted.
//!
//! Two ways in:
//! - [`spawn_gated`] for a `std::process::Command`: the child reports its pid from
//!   `pre_exec` and waits there; `before_exec(pid)` runs in the parent (start the tracer
//!   there), then the child goes on to `exec`. (A plain `pre_exec` wait would deadlock:
//!   `Command::spawn` itself waits for the exec.)
//! - [`StartGate`] for a child made with a raw `fork`: the child calls
//!   [`StartGate::wait_in_child`], the parent starts the tracer and calls
//!   [`StartGate::open`].

use std::{
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::process::CommandExt,
    },
    process::{Child, Command},
};

/// A one-shot pipe: the child blocks on it until the parent opens it.
pub struct StartGate {
    read: OwnedFd,
    write: OwnedFd,
}

impl StartGate {
    pub fn new() -> io::Result<Self> {
        let (read, write) = pipe()?;
        Ok(Self { read, write })
    }

    /// In a forked child: waits until the parent calls [`open`](Self::open). Returns false
    /// when the parent dropped the gate without opening it (the child should then exit).
    /// Only async-signal-safe calls, so it is fine between `fork` and `exec`.
    pub fn wait_in_child(&self) -> bool {
        close_raw(self.write.as_raw_fd());
        read_byte(self.read.as_raw_fd()) == Some(1)
    }

    /// In the parent: lets the child go on.
    pub fn open(self) -> io::Result<()> {
        write_all(self.write.as_raw_fd(), &[1])
    }
}

/// Spawns `cmd` but holds the child after `fork`, before `exec`, while `before_exec` runs
/// in the parent with the child's pid. The child execs once `before_exec` returns. If
/// `before_exec` panics, the child exits without running the command and the panic goes on.
///
/// Uses one short-lived scoped thread (spawn blocks until the exec), joined before return.
pub fn spawn_gated<T>(
    cmd: &mut Command,
    before_exec: impl FnOnce(u32) -> T,
) -> io::Result<(Child, T)> {
    let (pid_read, pid_write) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let (pid_w, go_r) = (pid_write.as_raw_fd(), go_read.as_raw_fd());
    let (pid_r_child, go_w_child) = (pid_read.as_raw_fd(), go_write.as_raw_fd());
    // SAFETY: the closure runs in the child between fork and exec and uses only
    // async-signal-safe calls (getpid, close, read, write) on fds it owns copies of.
    unsafe {
        cmd.pre_exec(move || {
            close_raw(pid_r_child);
            close_raw(go_w_child);
            let pid = libc::getpid() as u32;
            write_all(pid_w, &pid.to_ne_bytes())?;
            close_raw(pid_w);
            match read_byte(go_r) {
                Some(1) => {
                    close_raw(go_r);
                    Ok(())
                }
                _ => Err(io::Error::other("vrift: parent gave up before start")),
            }
        });
    }
    std::thread::scope(|scope| {
        // The parent's copies of the child's pipe ends must stay open until the fork has
        // happened, so the spawning thread closes them once spawn returns: after the exec,
        // or on failure (which also ends our wait for the pid).
        let spawner = scope.spawn(move || {
            let child = cmd.spawn();
            drop(pid_write);
            drop(go_read);
            child
        });
        let mut pid = [0u8; 4];
        let got = read_exact(pid_read.as_raw_fd(), &mut pid);
        let outcome = got.map(|()| {
            let value = before_exec(u32::from_ne_bytes(pid));
            // An error here means the child is gone; spawn reports why.
            let _ = write_all(go_write.as_raw_fd(), &[1]);
            value
        });
        drop(go_write);
        let child = spawner.join().expect("spawn thread does not panic")?;
        Ok((child, outcome?))
    })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn close_raw(fd: RawFd) {
    // SAFETY: closes this process's copy of an fd; used only in a forked child, where the
    // parent's OwnedFd does not exist.
    unsafe { libc::close(fd) };
}

/// One byte, retrying on EINTR; `None` at end of file or on error.
fn read_byte(fd: RawFd) -> Option<u8> {
    let mut b = [0u8; 1];
    read_exact(fd, &mut b).ok().map(|()| b[0])
}

fn read_exact(fd: RawFd, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reads into the unfilled tail of `buf`, which is valid for that length.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => done += n as usize,
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

fn write_all(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes from the unsent tail of `buf`, which is valid for that length.
        let n = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        if n >= 0 {
            done += n as usize;
        } else {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_exec_sees_the_childs_pid_before_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(format!("echo $$ > {}", marker.display()));
        let (mut child, (pid, existed)) =
            spawn_gated(&mut cmd, |pid| (pid, marker.exists())).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(pid, child.id());
        assert!(!existed, "the command ran before before_exec returned");
        let written: u32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(written, pid);
    }

    #[test]
    fn a_panicking_before_exec_leaves_no_command_running() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(format!("touch {}", marker.display()));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spawn_gated(&mut cmd, |_| panic!("tracer failed"))
        }));
        assert!(result.is_err());
        assert!(!marker.exists());
    }
}
