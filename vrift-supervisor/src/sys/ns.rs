//! Namespace and mount set-up for the child, between fork and exec.
//!
//! Everything here is prepared in the parent ([`NsConfig`]) and only *executed* in the child,
//! which may therefore make system calls but must not allocate.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The namespaces the child enters.
#[derive(Debug, Default)]
pub struct NsConfig {
    /// For a caller without root: `uid_map`/`gid_map` lines mapping the caller to itself in a
    /// new user namespace (so it may mount). None for root, who needs no user namespace.
    pub id_maps: Option<(CString, CString)>,
    /// Join a running session's namespaces first (see `session::members`): its user
    /// namespace (None when it is this process's own) and its mount namespace, of which the
    /// child then takes a private copy holding the same mounts.
    pub join: Option<Join>,
}

#[derive(Debug)]
pub struct Join {
    pub user: Option<OwnedFd>,
    pub mnt: OwnedFd,
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn write_file(path: &[u8], data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated (callers pass literals ending in \0); `data` is a live
    // buffer of the given length.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// Run in the child: enter new user (for a caller without root), mount and pid namespaces.
/// The caller's next child is the new pid namespace's init.
pub fn enter_namespaces(plan: &NsConfig) -> io::Result<()> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if let Some(join) = &plan.join {
        if let Some(user) = &join.user {
            // SAFETY: setns takes a namespace fd (kept open by the parent's plan) and a flag;
            // the child is single-threaded, as joining a user namespace requires.
            check(unsafe { libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) })?;
        }
        // SAFETY: as above, for the mount namespace.
        check(unsafe { libc::setns(join.mnt.as_raw_fd(), libc::CLONE_NEWNS) })?;
    } else if plan.id_maps.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: unshare takes flags only; the child is single-threaded (just forked).
    check(unsafe { libc::unshare(flags) })?;
    if let Some((uid_map, gid_map)) = &plan.id_maps {
        write_file(b"/proc/self/setgroups\0", b"deny")?;
        write_file(b"/proc/self/uid_map\0", uid_map.as_bytes())?;
        write_file(b"/proc/self/gid_map\0", gid_map.as_bytes())?;
    }
    Ok(())
}

/// Drop CAP_SYS_ADMIN from the bounding set, so the program (root included) can never get
/// it back: it cannot remount the view or the store writable, nor mount anything else.
pub fn drop_mount_capability() -> io::Result<()> {
    const CAP_SYS_ADMIN: libc::c_ulong = 21;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) })
}
