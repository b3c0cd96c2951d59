//! Turning a system call's path arguments into an absolute path as the tracee sees it.
//!
//! The tracee's cwd and dirfds are read from /proc (`/proc/TID/cwd`, `/proc/TID/fd/N`); the
//! kernel reports them as paths in the tracee's mount namespace, i.e. view paths for
//! anything inside the view, because the view is bind-mounted at its own path there.

use std::io;
use std::os::unix::ffi::OsStrExt;

use crate::sys::mem;

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

/// Collapse "//", "." and ".." lexically. Only used to decide whether a path outside the
/// view's prefix walks into it; resolution inside the view follows the view's own symlinks.
pub fn normalize(abs: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in abs.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(abs.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Join a base directory and a path (absolute paths replace the base).
pub fn join(base: &[u8], path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let mut out = Vec::with_capacity(base.len() + 1 + path.len());
    out.extend_from_slice(base);
    if !base.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out
}

/// If `abs` lies inside the view rooted at `root` (no trailing slash, not "/"), the part
/// below the root, still unresolved (it may hold "..", "." and symlinks); the root itself
/// gives an empty slice.
pub fn under_root<'a>(abs: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    let rest = abs.strip_prefix(root)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix(b"/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses() {
        assert_eq!(normalize(b"/a//b/./c/../d/"), b"/a/b/d");
        assert_eq!(normalize(b"/../.."), b"/");
        assert_eq!(normalize(b"/"), b"/");
    }

    #[test]
    fn join_and_root() {
        assert_eq!(join(b"/p", b"x/y"), b"/p/x/y");
        assert_eq!(join(b"/", b"x"), b"/x");
        assert_eq!(join(b"/p", b"/abs"), b"/abs");
        assert_eq!(under_root(b"/p/q", b"/p"), Some(&b"q"[..]));
        assert_eq!(under_root(b"/p", b"/p"), Some(&b""[..]));
        assert_eq!(under_root(b"/pq", b"/p"), None);
        assert_eq!(under_root(b"/other", b"/p"), None);
    }

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
