//! Extended attributes by path, never following a final symlink (the `l*xattr` calls), and
//! on open files (the `f*xattr` calls).

//!
//! Only Linux has them here: elsewhere (the shim's macOS build of this crate) a file has
//! none, and setting one is `Unsupported`.

use std::io;
use std::path::Path;

use crate::manifest::{is_kept_xattr, Xattr};

pub use raw::{fget, flist, fset, lget, llist, lremove, lset};

#[cfg(target_os = "linux")]
mod raw {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn cpath(path: &Path) -> io::Result<CString> {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn cname(name: &[u8]) -> io::Result<CString> {
        CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// "This file system or file has no xattrs of that kind": ENODATA, ENOTSUP.
    fn is_absent(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::ENOTSUP))
    }

    /// Call `f(buf)` with a growing buffer until the answer fits (ERANGE means it did not).
    fn sized(mut f: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 256];
        loop {
            let n = f(&mut buf);
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ERANGE) || buf.len() >= 1 << 20 {
                return Err(e);
            }
            let len = buf.len() * 4;
            buf.resize(len, 0);
        }
    }

    /// The names of `path`'s xattrs (empty where the file system has none).
    pub fn llist(path: &Path) -> io::Result<Vec<Vec<u8>>> {
        let p = cpath(path)?;
        // SAFETY: `p` is NUL-terminated and `buf` is a live buffer of the length passed.
        let r = sized(|buf| unsafe {
            libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        });
        match r {
            Ok(names) => Ok(split_names(&names)),
            Err(e) if is_absent(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The names of the xattrs of the open file `fd`.
    pub fn flist(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: `fd` is open for the call and `buf` is a live buffer of the length passed.
        let r = sized(|buf| unsafe {
            libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
        });
        match r {
            Ok(names) => Ok(split_names(&names)),
            Err(e) if is_absent(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn split_names(list: &[u8]) -> Vec<Vec<u8>> {
        list.split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// The value of `name` on `path`; `None` when it has none.
    pub fn lget(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let p = cpath(path)?;
        let n = cname(name)?;
        // SAFETY: `p` and `n` are NUL-terminated and `buf` is a live buffer of the length passed.
        let r = sized(|buf| unsafe {
            libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        });
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `name` on the open file `fd`; `None` when it has none.
    pub fn fget(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let n = cname(name)?;
        // SAFETY: `n` is NUL-terminated, `fd` is open and `buf` is a live buffer of that length.
        let r = sized(|buf| unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                n.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        });
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn check(r: libc::c_int) -> io::Result<()> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Set `name` to `value` on `path` (not following a final symlink).
    pub fn lset(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
        let p = cpath(path)?;
        let n = cname(name)?;
        // SAFETY: `p` and `n` are NUL-terminated; `value` is a live buffer of the given length.
        check(unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })
    }

    /// Set `name` to `value` on the open file `fd`.
    pub fn fset(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
        let n = cname(name)?;
        // SAFETY: `n` is NUL-terminated, `fd` is open, `value` is a live buffer of that length.
        check(unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })
    }

    /// Remove `name` from `path`; not there is not an error.
    pub fn lremove(path: &Path, name: &[u8]) -> io::Result<()> {
        let p = cpath(path)?;
        let n = cname(name)?;
        // SAFETY: `p` and `n` are NUL-terminated.
        match check(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) }) {
            Err(e) if is_absent(&e) => Ok(()),
            r => r,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod raw {
    use std::io;
    use std::os::fd::BorrowedFd;
    use std::path::Path;

    fn unsupported() -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, "extended attributes")
    }
    pub fn llist(_: &Path) -> io::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
    pub fn flist(_: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
    pub fn lget(_: &Path, _: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    pub fn fget(_: BorrowedFd<'_>, _: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    pub fn lset(_: &Path, _: &[u8], _: &[u8]) -> io::Result<()> {
        Err(unsupported())
    }
    pub fn fset(_: BorrowedFd<'_>, _: &[u8], _: &[u8]) -> io::Result<()> {
        Err(unsupported())
    }
    pub fn lremove(_: &Path, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// The xattrs a manifest keeps (see `is_kept_xattr`) of `path`, sorted by name. A file
/// system without xattrs gives none.
pub fn read_kept(path: &Path) -> io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in llist(path)? {
        if !is_kept_xattr(&name) {
            continue;
        }
        if let Some(value) = lget(path, &name)? {
            out.push(Xattr { name, value });
        }
    }
    out.sort();
    Ok(out)
}

/// Make the kept xattrs of `path` exactly `want` (sorted by name): set what differs, remove
/// kept names `want` lacks. Other namespaces are left alone.
pub fn write_kept(path: &Path, want: &[Xattr]) -> io::Result<()> {
    let have = read_kept(path)?;
    for x in &have {
        if !want.iter().any(|w| w.name == x.name) {
            lremove(path, &x.name)?;
        }
    }
    for w in want {
        if !have.contains(w) {
            lset(path, &w.name, &w.value)?;
        }
    }
    Ok(())
}
