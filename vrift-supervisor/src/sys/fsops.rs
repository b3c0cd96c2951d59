//! File system calls std does not offer, on the supervisor's own paths.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// mkfifo(3) with an exact mode (the umask was already applied by the view).
pub fn mkfifo(path: &Path, perm: u32) -> io::Result<()> {
    let p = c(path)?;
    // SAFETY: `p` is NUL-terminated and lives for the calls.
    unsafe {
        if libc::mkfifo(p.as_ptr(), 0o600) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::chmod(p.as_ptr(), (perm & 0o7777) as libc::mode_t) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Make a FIFO, socket or device node (`kind` is its `S_IF*` bits) with `perm`, whatever
/// the umask.
pub fn mknod(path: &Path, kind: u32, perm: u32, rdev: u64) -> io::Result<()> {
    let p = c(path)?;
    // SAFETY: `p` is NUL-terminated and lives for the calls.
    unsafe {
        if libc::mknod(
            p.as_ptr(),
            (kind | 0o600) as libc::mode_t,
            rdev as libc::dev_t,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::chmod(p.as_ptr(), (perm & 0o7777) as libc::mode_t) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Set a path's modification (and access) time without opening it, not following a
/// symlink: the owner may do this whatever the file's mode.
pub fn set_mtime(path: &Path, mtime_ns: i64) -> io::Result<()> {
    let p = c(path)?;
    let t = libc::timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
    };
    let times = [t, t];
    // SAFETY: `p` is NUL-terminated; `times` is a live array of two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Run `f` on a file or directory vrift owns (a private copy, an upper directory's entry);
/// if the owner is shut out of it by its mode (a program made it 0000), open the owner's
/// bits up for the duration and put the mode back. The view already decided the program
/// may do what `f` does.
pub fn with_owner_access<T>(path: &Path, f: impl Fn() -> io::Result<T>) -> io::Result<T> {
    use std::os::unix::fs::PermissionsExt;
    match f() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700))?;
            let r = f();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            r
        }
        r => r,
    }
}
