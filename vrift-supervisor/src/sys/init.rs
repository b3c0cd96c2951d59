//! The two small processes between vrift and the program, which make the program's whole
//! process tree end with vrift.
//!
//! vrift's child (the "keeper") enters a new pid namespace and forks its init; the init
//! forks the program. If vrift dies, the keeper gets SIGKILL (parent-death signal), then the
//! init does, and the kernel kills everything in a pid namespace whose init is gone: nothing
//! runs on over a view nobody serves. Both pass on the termination signals another process
//! sends them, and exit with the program's status. They run between fork and exec: system
//! calls only.

use std::io;

use super::signals;

/// Exit status for a child's wait status: its code, or 128 + the signal that killed it.
fn status_code(status: libc::c_int) -> libc::c_int {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// A handler that does nothing: a pid namespace's init drops signals whose action is the
/// default, even blocked ones, so the waited-for signals need a handler.
extern "C" fn ignore(_: libc::c_int) {}

fn prepare_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigaction/sigprocmask on local, initialised structures.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals::FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(*s, &sa, std::ptr::null_mut());
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(set)
    }
}

fn close_inherited_fds() {
    // SAFETY: close_range(3, ~0, 0) closes this process's own descriptors above stderr; the
    // keeper and init need none of them (std's exec-error pipe among them, whose write end
    // must be closed by everyone but the program so the parent learns of the exec).
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

/// Wait for `child`, passing signals sent by other processes on to it; never returns.
fn wait_and_forward(child: libc::pid_t, reap_all: bool, set: &libc::sigset_t) -> ! {
    loop {
        // SAFETY: sigwaitinfo fills the zeroed siginfo we own.
        let (sig, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            (libc::sigwaitinfo(set, &mut info), info)
        };
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                let pid = if reap_all { -1 } else { child };
                // SAFETY: reaping children of this process.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r <= 0 {
                    break;
                }
                if r == child {
                    // SAFETY: ending this process; for the init this ends the namespace.
                    unsafe { libc::_exit(status_code(status)) };
                }
            }
        } else if sig > 0 && (info.si_code == libc::SI_USER || info.si_code == libc::SI_QUEUE) {
            signals::kill(child, sig);
        }
    }
}

/// Called in vrift's child after it entered the new namespaces. Returns only in the
/// program's process (pid 2 of the namespace), which goes on to exec.
pub fn split_keeper_and_init() -> io::Result<()> {
    let set = prepare_signals()?;
    // SAFETY: fork in a single-threaded child; each branch only makes system calls.
    let init = unsafe { libc::fork() };
    if init < 0 {
        return Err(io::Error::last_os_error());
    }
    if init > 0 {
        close_inherited_fds();
        wait_and_forward(init, false, &set);
    }
    // The namespace's init (pid 1).
    signals::die_with_parent()?;
    // SAFETY: as above.
    let program = unsafe { libc::fork() };
    if program < 0 {
        return Err(io::Error::last_os_error());
    }
    if program > 0 {
        close_inherited_fds();
        wait_and_forward(program, true, &set);
    }
    // The program: default signal handling and mask, as an ordinary child would have.
    signals::die_with_parent()?;
    // SAFETY: restoring default actions for the signals prepare_signals changed.
    unsafe {
        for s in signals::FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::signal(*s, libc::SIG_DFL);
        }
    }
    Ok(())
}

/// For a run without namespaces (the shim projection): called in vrift's child, which
/// becomes the "keeper" of the program's process tree. Returns only in the program's
/// process, which goes on to exec. The keeper is a child subreaper, so every process the
/// program leaves behind becomes its child; it passes on the termination signals other
/// processes send it, and when the program exits, or vrift dies (its parent-death signal,
/// SIGTERM here), it kills what is left of the tree and exits with the program's status:
/// as with a pid namespace, nothing runs on over a view nobody keeps.
pub fn split_keeper_for_tree() -> io::Result<()> {
    let set = prepare_signals()?;
    // SAFETY: getppid cannot fail.
    let vrift = unsafe { libc::getppid() };
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // A catchable parent-death signal, so the keeper can end the tree before it goes.
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fork in a single-threaded child; each branch only makes system calls.
    let program = unsafe { libc::fork() };
    if program < 0 {
        return Err(io::Error::last_os_error());
    }
    if program > 0 {
        close_inherited_fds();
        keep_tree(program, vrift, &set);
    }
    signals::die_with_parent()?;
    // SAFETY: restoring default actions for the signals prepare_signals changed.
    unsafe {
        for s in signals::FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::signal(*s, libc::SIG_DFL);
        }
    }
    Ok(())
}

/// The keeper's loop (see [`split_keeper_for_tree`]); never returns.
fn keep_tree(program: libc::pid_t, vrift: libc::pid_t, set: &libc::sigset_t) -> ! {
    loop {
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != vrift {
            end_tree();
            // SAFETY: ending this process.
            unsafe { libc::_exit(128 + libc::SIGKILL) };
        }
        // SAFETY: sigwaitinfo fills the zeroed siginfo we own.
        let (sig, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            (libc::sigwaitinfo(set, &mut info), info)
        };
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: reaping children of this process.
                let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if r <= 0 {
                    break;
                }
                if r == program {
                    end_tree();
                    // SAFETY: ending this process.
                    unsafe { libc::_exit(status_code(status)) };
                }
            }
        } else if sig > 0 && (info.si_code == libc::SI_USER || info.si_code == libc::SI_QUEUE) {
            // SAFETY: as above.
            if unsafe { libc::getppid() } == vrift {
                signals::kill(program, sig);
            }
        }
    }
}

/// Kill every child of this (subreaper) process until none is left: the children of a
/// killed one become ours and are killed in their turn.
fn end_tree() {
    loop {
        let mut buf = [0u8; 4096];
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe {
            libc::open(
                c"/proc/thread-self/children".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        let n = if fd >= 0 {
            // SAFETY: reading into the local buffer of the given length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            n.max(0) as usize
        } else {
            0
        };
        let mut pid: libc::pid_t = 0;
        for &b in &buf[..n] {
            if b.is_ascii_digit() {
                pid = pid * 10 + (b - b'0') as libc::pid_t;
            } else {
                if pid > 0 {
                    signals::kill(pid, libc::SIGKILL);
                }
                pid = 0;
            }
        }
        if pid > 0 {
            signals::kill(pid, libc::SIGKILL);
        }
        let mut status = 0;
        // SAFETY: reaping a child of this process.
        if unsafe { libc::waitpid(-1, &mut status, 0) } < 0 {
            return;
        }
    }
}
