//! Forwarding vrift's termination signals to the program it runs.

use std::io;

/// Signals vrift passes on to the program.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

fn set_of(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and edit a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the forwarded signals in the calling thread (call before spawning threads, so
/// every thread inherits the mask and only the waiter receives them).
pub fn block_forwarded() -> io::Result<()> {
    let set = set_of(&FORWARDED);
    // SAFETY: pthread_sigmask reads `set`; the old mask is not needed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Unblock every signal (in the child, before exec: the mask survives exec).
pub fn unblock_all() -> io::Result<()> {
    // SAFETY: as above, with an empty set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    };
    // SAFETY: pthread_sigmask reads `set`; the old mask is not needed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Wait for one of the forwarded signals. Returns the signal and whether another process
/// sent it (`kill`), as opposed to the terminal, which already signals the whole foreground
/// process group and so the program too.
pub fn wait_forwarded() -> io::Result<(libc::c_int, bool)> {
    let set = set_of(&FORWARDED);
    // SAFETY: sigwaitinfo fills the zeroed siginfo_t we own.
    let (sig, info) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigwaitinfo(&set, &mut info);
        (sig, info)
    };
    if sig < 0 {
        return Err(io::Error::last_os_error());
    }
    let from_process = info.si_code == libc::SI_USER || info.si_code == libc::SI_QUEUE;
    Ok((sig, from_process))
}

/// Send `sig` to process `pid`.
pub fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill takes integers only; a stale pid just fails.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Make the calling process receive SIGKILL when its parent dies (in the child).
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
