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
    /// `--isolate`: the namespaces and settings beyond the view's own.
    pub isolation: Option<Isolation>,
    /// Join a running session's namespaces first (see `session::members`): its user
    /// namespace (None when it is this process's own) and its mount namespace, of which the
    /// child then takes a private copy holding the same mounts.
    pub join: Option<Join>,
}

/// What an isolated run adds (see `run::isolate`).
#[derive(Debug)]
pub struct Isolation {
    /// Keep the caller's network namespace.
    pub net: bool,
    pub hostname: CString,
    /// For root: `uid_map`/`gid_map` of a user namespace entered once the mounts are made.
    pub late_user: Option<(CString, CString)>,
    /// The run's `cgroup.procs` files (one per hierarchy), joined before anything else.
    pub cgroup_procs: Vec<CString>,
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
    if let Some(iso) = &plan.isolation {
        for procs in &iso.cgroup_procs {
            write_file(procs.as_bytes_with_nul(), b"0")?;
        }
        flags |= libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        if !iso.net {
            flags |= libc::CLONE_NEWNET;
        }
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

/// Run in the child once the mounts are made, for an isolated run: set the hostname, enter
/// root's own user namespace, and forbid new privileges (set-id and file capabilities).
pub fn finish_isolation(plan: &NsConfig) -> io::Result<()> {
    let Some(iso) = &plan.isolation else {
        return Ok(());
    };
    let name = iso.hostname.as_bytes();
    // SAFETY: `name` is a live buffer of the given length.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    if let Some((uid_map, gid_map)) = &iso.late_user {
        // SAFETY: unshare takes flags only; this process is single-threaded.
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER) })?;
        write_file(b"/proc/self/setgroups\0", b"deny")?;
        write_file(b"/proc/self/uid_map\0", uid_map.as_bytes())?;
        write_file(b"/proc/self/gid_map\0", gid_map.as_bytes())?;
    }
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

/// Mark every descriptor above stderr close-on-exec, so the program inherits none of
/// vrift's (nor of whoever started vrift).
pub fn close_others_on_exec() -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with integer arguments; it only sets flags on this process's fds.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(r as libc::c_int)
}

/// Drop CAP_SYS_ADMIN from the bounding set, so the program (root included) can never get
/// it back: it cannot remount the view or the store writable, nor mount anything else.
pub fn drop_mount_capability() -> io::Result<()> {
    const CAP_SYS_ADMIN: libc::c_ulong = 21;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) })
}
