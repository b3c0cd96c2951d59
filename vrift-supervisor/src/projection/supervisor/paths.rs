//! Turning a system call's path arguments into an absolute path as the tracee sees it.
//!
//! The tracee's cwd and dirfds are read from /proc (`/proc/TID/cwd`, `/proc/TID/fd/N`); the
//! kernel reports them as paths in the tracee's mount namespace, i.e. view paths for
//! anything inside the view, because the view is bind-mounted at its own path there.

use std::io;
use std::os::unix::ffi::OsStrExt;

use crate::sys::mem;

pub use crate::view::lexical::join;

const PATH_MAX: usize = 4096;

/// Read a path argument from the tracee's memory.
pub fn read_path(tid: u32, addr: u64) -> io::Result<Vec<u8>> {
    if addr == 0 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    mem::read_cstring(tid, addr, PATH_MAX)
}

fn readlink(p: String) -> io::Result<Vec<u8>> {
    Ok(std::fs::read_link(p)?.as_os_str().as_bytes().to_vec())
}

/// The directory a relative path starts from: the cwd for AT_FDCWD, else what `dirfd` names.
pub fn base_dir(tid: u32, dirfd: i32) -> io::Result<Vec<u8>> {
    if dirfd == libc::AT_FDCWD {
        readlink(format!("/proc/{tid}/cwd"))
    } else {
        fd_path(tid, dirfd)
    }
}

/// What an open file descriptor of the tracee refers to (EBADF when it has no such fd).
pub fn fd_path(tid: u32, fd: i32) -> io::Result<Vec<u8>> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    readlink(format!("/proc/{tid}/fd/{fd}")).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            io::Error::from_raw_os_error(libc::EBADF)
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cwd_and_fds() {
        let me = std::process::id();
        let cwd = base_dir(me, libc::AT_FDCWD).unwrap();
        assert_eq!(cwd, std::env::current_dir().unwrap().as_os_str().as_bytes());
        assert_eq!(
            fd_path(me, 9999).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
