//! Trying a kernel feature in a throwaway child process, for `vrift doctor`: what the child
//! does (unshare, mount) never touches vrift itself.

use std::ffi::CStr;
use std::io;

/// Run `f` in a forked child and report how it ended. Call only while this process has a
/// single thread (the child of a threaded process may only make system calls, which is
/// all the probes below do).
pub fn in_child(f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    // SAFETY: fork has no preconditions; the child below only makes system calls and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = match f() {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(255).clamp(1, 255),
        };
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waitpid writes the status into a local.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => Ok(()),
        Some(code) => Err(io::Error::from_raw_os_error(code)),
        None => Err(io::Error::other("the probe was killed")),
    }
}

/// unshare(2) with `flags`.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// mount(2) of a file system of type `fstype` on `dst` with `options`.
pub fn mount_fs(fstype: &CStr, dst: &CStr, options: &CStr) -> io::Result<()> {
    // SAFETY: every pointer is a NUL-terminated string that lives for the call.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            dst.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
