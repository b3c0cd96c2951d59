//! The kernel side of [`MountSys`]: mount(2), pivot_root(2) and friends, for the child
//! between fork and exec (system calls only, no allocation).

use std::ffi::CStr;
use std::io;

use crate::mounts::MountSys;

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The real kernel.
pub struct Kernel;

/// Mount flags a bind remount must keep: in a user namespace the kernel refuses to clear
/// flags it locked (nosuid, nodev, noexec, atime flags).
fn locked_flags(path: &CStr) -> io::Result<libc::c_ulong> {
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into `sv`, which lives for the call; `path` is NUL-terminated.
    check(unsafe { libc::statvfs(path.as_ptr(), &mut sv) })?;
    let mut flags = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if sv.f_flag & st != 0 {
            flags |= ms;
        }
    }
    Ok(flags)
}

fn mount(
    src: Option<&CStr>,
    dst: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is a NUL-terminated string that lives for the call, or null
    // where mount(2) accepts it.
    check(unsafe { libc::mount(p(src), dst.as_ptr(), p(fstype), flags, p(data).cast()) })
}

impl MountSys for Kernel {
    fn make_private(&mut self, path: &CStr) -> io::Result<()> {
        mount(None, path, None, libc::MS_REC | libc::MS_PRIVATE, None)
    }

    fn bind(&mut self, src: &CStr, dst: &CStr, readonly: bool) -> io::Result<()> {
        mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
        if readonly {
            let keep = locked_flags(dst)?;
            let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep;
            mount(None, dst, None, flags, None)?;
        }
        Ok(())
    }

    fn mount_fs(&mut self, fstype: &CStr, dst: &CStr, options: &CStr) -> io::Result<()> {
        let flags = if fstype == c"proc" {
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
        } else {
            0
        };
        let data = (!options.is_empty()).then_some(options);
        mount(Some(fstype), dst, Some(fstype), flags, data)
    }

    fn mkdir(&mut self, path: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) })
    }

    fn make_file(&mut self, path: &CStr) -> io::Result<()> {
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;
        // SAFETY: `path` is NUL-terminated; the fd is closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened here and is not used again.
        unsafe { libc::close(fd) };
        Ok(())
    }

    fn symlink(&mut self, target: &CStr, path: &CStr) -> io::Result<()> {
        // SAFETY: both strings are NUL-terminated.
        check(unsafe { libc::symlink(target.as_ptr(), path.as_ptr()) })
    }

    fn pivot_root(&mut self, new_root: &CStr, put_old: &CStr) -> io::Result<()> {
        // SAFETY: both strings are NUL-terminated.
        let r = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
        check(r as libc::c_int)
    }

    fn detach(&mut self, path: &CStr) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated.
        check(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) })
    }

    fn rmdir(&mut self, path: &CStr) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated.
        check(unsafe { libc::rmdir(path.as_ptr()) })
    }

    fn chdir(&mut self, path: &CStr) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated.
        check(unsafe { libc::chdir(path.as_ptr()) })
    }
}
