//! Forwarding vrift's termination signals to the program it runs, on macOS (the shim
//! projection's launcher; see `signals.rs` for Linux's).
//!
//! macOS has no `sigwaitinfo`, and `sigwait` does not say who sent a signal. So the
//! forwarded signals get a handler instead of being blocked: it writes the signal and
//! whether another process sent it (`kill`) into a pipe, and [`wait_forwarded`] reads the
//! pipe. A signal from the terminal is not passed on: the terminal signals the whole
//! foreground process group, the program included.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// Signals vrift passes on to the program.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

// <sys/signal.h>: the `si_code` of a signal sent by kill(2) and by sigqueue(3).
const SI_USER: libc::c_int = 0x10001;
const SI_QUEUE: libc::c_int = 0x10002;

/// The pipe's ends, once [`block_forwarded`] made it.
static PIPE_READ: AtomicI32 = AtomicI32::new(-1);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands a SA_SIGINFO handler a valid siginfo_t (or none at all).
    let code = unsafe { info.as_ref() }.map_or(0, |i| i.si_code);
    let message = [sig as u8, (code == SI_USER || code == SI_QUEUE) as u8];
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; `message` is a live local buffer. A full pipe
    // (a signal storm nobody reads) drops the signal.
    unsafe {
        libc::write(fd, message.as_ptr().cast(), message.len());
    }
}

/// Catch the forwarded signals from now on (call before starting the program; it gets the
/// default actions back when it execs). The name is Linux's, where they are blocked.
pub fn block_forwarded() -> io::Result<()> {
    if PIPE_WRITE.load(Ordering::Relaxed) < 0 {
        let mut fds = [-1; 2];
        // SAFETY: pipe(2) fills the two-element array.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            // SAFETY: fcntl on the descriptors just made: close them on exec.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        PIPE_READ.store(fds[0], Ordering::Relaxed);
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    }
    for sig in FORWARDED {
        // SAFETY: sigaction with a local, initialised structure and a handler that only
        // calls write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Wait for one of the forwarded signals. Returns the signal and whether another process
/// sent it (`kill`), as opposed to the terminal.
pub fn wait_forwarded() -> io::Result<(libc::c_int, bool)> {
    let fd = PIPE_READ.load(Ordering::Relaxed);
    if fd < 0 {
        return Err(io::Error::other("the forwarded signals are not caught"));
    }
    let mut message = [0u8; 2];
    loop {
        // SAFETY: reading into the local buffer of the given length.
        let n = unsafe { libc::read(fd, message.as_mut_ptr().cast(), message.len()) };
        match n {
            2 => return Ok((libc::c_int::from(message[0]), message[1] == 1)),
            n if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            n if n < 0 => return Err(io::Error::last_os_error()),
            _ => return Err(io::Error::other("the signal pipe was closed")),
        }
    }
}

/// Send `sig` to process `pid`.
pub fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill takes integers only; a stale pid just fails.
    unsafe {
        libc::kill(pid, sig);
    }
}
