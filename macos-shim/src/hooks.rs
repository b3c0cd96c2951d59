//! What the Linux and Darwin layers' C entry points share: reading their arguments, setting
//! errno, and the bodies of the changes (mkdir, unlink, rename, link, symlink, chmod, chown,
//! truncate, the times), of chdir and fchdir and of posix_spawnp's PATH search, which ask
//! the core and, where the kernel should carry the call out, run the platform's own real
//! function, given as a closure, on the path it should get; and the argument and answer
//! forms of the xattr calls, which both platforms give in the same shape.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use vrift_common::runlog::Op;
use vrift_common::vfs::Errno;

use crate::core::{Act, Shim};
use crate::state::with;

/// The bytes of a C string; `None` for NULL or a pointer that cannot be read (see
/// `core::may_be_mapped`): the real call then answers as the kernel does.
///
/// # Safety
/// `p` is NULL, outside the user address space, or a NUL-terminated string that outlives
/// `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if !crate::core::may_be_mapped(p as usize) {
        None
    } else {
        // SAFETY: non-NULL, NUL-terminated by the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

pub(crate) fn set_errno(e: i32) {
    // SAFETY: the C library's errno of this thread, valid for the thread's life.
    #[cfg(target_os = "linux")]
    unsafe {
        *libc::__errno_location() = e
    };
    // SAFETY: as above.
    #[cfg(target_os = "macos")]
    unsafe {
        *libc::__error() = e
    };
}

pub(crate) fn fail(e: Errno) -> c_int {
    set_errno(e.0);
    -1
}

pub(crate) fn cstring(p: Vec<u8>) -> CString {
    CString::new(p).unwrap_or_default()
}

pub(crate) fn at(dirfd: c_int) -> Option<i32> {
    (dirfd != libc::AT_FDCWD).then_some(dirfd)
}

/// Ask the core about a path call; `None` when the shim does not take it.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
pub(crate) unsafe fn ask<T>(
    path: *const c_char,
    f: impl FnOnce(&mut Shim, &[u8]) -> Act<T>,
) -> Option<Act<T>> {
    // SAFETY: forwarded contract.
    let p = unsafe { bytes(path) }?;
    with(|s| f(s, p))
}

/// Run a one-path change; `real_call` runs the real function on a path (the caller's,
/// `None`, or the view's rewritten one).
pub(crate) fn changed(
    act: Option<Act<()>>,
    real_call: impl FnOnce(Option<CString>) -> c_int,
) -> c_int {
    match act {
        Some(Act::RealBoth(..)) => fail(Errno(libc::EXDEV)),
        Some(Act::Done(Ok(()))) => 0,
        Some(Act::Done(Err(e))) => fail(e),
        Some(Act::Real(Some(p))) => real_call(Some(cstring(p))),
        _ => real_call(None),
    }
}

/// A one-path change of `path` relative to `dirfd`: `make` is its record; `real(dirfd,
/// path)` carries it out where the kernel should, on the caller's path or the view's
/// rewritten one (then absolute).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
pub(crate) unsafe fn change_at(
    dirfd: c_int,
    path: *const c_char,
    make: impl FnOnce(Vec<u8>) -> Op,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    let act = unsafe { ask(path, |s, p| s.change_path(at(dirfd), p, make)) };
    changed(act, |p| match p {
        Some(p) => real(libc::AT_FDCWD, p.as_ptr()),
        None => real(dirfd, path),
    })
}

/// A two-path change (rename, link): `real(olddirfd, old, newdirfd, new)` carries it out
/// where the kernel should.
///
/// # Safety
/// `old` and `new` are NULL or NUL-terminated strings.
pub(crate) unsafe fn change_pair_at(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    make: impl FnOnce(Vec<u8>, Vec<u8>) -> Op,
    real: impl Fn(c_int, *const c_char, c_int, *const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    let (Some(a), Some(b)) = (unsafe { bytes(old) }, unsafe { bytes(new) }) else {
        return real(olddirfd, old, newdirfd, new);
    };
    let act = with(|s| s.change_pair((at(olddirfd), a), (at(newdirfd), b), make));
    if let Some(Act::RealBoth(a, b)) = act {
        let (a, b) = (cstring(a), cstring(b));
        return real(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr());
    }
    changed(act, |_| real(olddirfd, old, newdirfd, new))
}

/// mkdirat(2).
///
/// # Safety
/// mkdirat's arguments.
pub(crate) unsafe fn mkdirat(
    dirfd: c_int,
    path: *const c_char,
    mode: u32,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { change_at(dirfd, path, |path| Op::Mkdir { path, mode }, real) }
}

/// unlinkat(2), also rmdir with AT_REMOVEDIR.
///
/// # Safety
/// unlinkat's arguments.
pub(crate) unsafe fn unlinkat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    let dir = flags & libc::AT_REMOVEDIR != 0;
    let make = |path| {
        if dir {
            Op::Rmdir { path }
        } else {
            Op::Unlink { path }
        }
    };
    // SAFETY: forwarded contract.
    unsafe { change_at(dirfd, path, make, real) }
}

/// symlinkat(2): `target` goes through unchanged.
///
/// # Safety
/// symlinkat's arguments.
pub(crate) unsafe fn symlinkat(
    target: *const c_char,
    dirfd: c_int,
    path: *const c_char,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    let Some(t) = (unsafe { bytes(target) }) else {
        return real(dirfd, path);
    };
    let make = |path| Op::Symlink {
        target: t.to_vec(),
        path,
    };
    // SAFETY: forwarded contract.
    unsafe { change_at(dirfd, path, make, real) }
}

/// fchmodat(2).
///
/// # Safety
/// fchmodat's arguments.
pub(crate) unsafe fn fchmodat(
    dirfd: c_int,
    path: *const c_char,
    mode: u32,
    flags: c_int,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    let make = |path| Op::Chmod { path, mode, follow };
    // SAFETY: forwarded contract.
    unsafe { change_at(dirfd, path, make, real) }
}

/// fchmod(2): the chmod of the path a view descriptor was opened at; `real` runs the real
/// call for any other descriptor.
pub(crate) fn fchmod(fd: c_int, mode: u32, real: impl FnOnce() -> c_int) -> c_int {
    let act = with(|s| {
        s.change_fd(fd, |path| Op::Chmod {
            path,
            mode,
            follow: true,
        })
    });
    changed(act, |_| real())
}

/// fchownat(2), also chown and lchown (`uid`/`gid` as the call passed them).
///
/// # Safety
/// fchownat's arguments.
pub(crate) unsafe fn fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: u32,
    gid: u32,
    flags: c_int,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    // SAFETY: forwarded contract.
    let act = unsafe { ask(path, |s, p| s.chown(at(dirfd), p, uid, gid, follow)) };
    changed(act, |p| match p {
        Some(p) => real(libc::AT_FDCWD, p.as_ptr()),
        None => real(dirfd, path),
    })
}

/// fchown(2): as [`fchownat`] on the path a view descriptor was opened at.
pub(crate) fn fchown(fd: c_int, uid: u32, gid: u32, real: impl FnOnce() -> c_int) -> c_int {
    let act = with(|s| s.fchown(fd, uid, gid));
    changed(act, |_| real())
}

/// truncate(2); `real` runs the real call on a path (the caller's or the rewritten one).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
pub(crate) unsafe fn truncate(
    path: *const c_char,
    len: i64,
    real: impl FnOnce(*const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    let act = unsafe {
        ask(path, |s, p| {
            s.change_path(None, p, |path| Op::Truncate { path, len })
        })
    };
    changed(act, |p| match p {
        Some(p) => real(p.as_ptr()),
        None => real(path),
    })
}

/// The two times of utimensat and futimens as (seconds, nanoseconds); `None` for NULL
/// (both now).
///
/// # Safety
/// `t` is NULL or two timespecs.
pub(crate) unsafe fn times(t: *const libc::timespec) -> Option<[(i64, i64); 2]> {
    if t.is_null() {
        return None;
    }
    // SAFETY: two timespecs, by the caller's contract.
    let (a, m) = unsafe { (*t, *t.add(1)) };
    Some([(a.tv_sec, a.tv_nsec), (m.tv_sec, m.tv_nsec)])
}

/// utimensat(2) on a path (Linux's NULL path, futimens on `dirfd`, is the Linux layer's).
///
/// # Safety
/// utimensat's arguments, `path` not NULL.
pub(crate) unsafe fn utimensat(
    dirfd: c_int,
    path: *const c_char,
    t: *const libc::timespec,
    flags: c_int,
    real: impl FnOnce(c_int, *const c_char) -> c_int,
) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    // SAFETY: forwarded contract.
    let ts = unsafe { times(t) };
    let make = |p| Shim::utimens_op(p, ts, follow);
    // SAFETY: forwarded contract.
    unsafe { change_at(dirfd, path, make, real) }
}

/// futimens(3): the times of the path a view descriptor was opened at.
///
/// # Safety
/// `t` is NULL or two timespecs.
pub(crate) unsafe fn futimens(
    fd: c_int,
    t: *const libc::timespec,
    real: impl FnOnce() -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    let ts = unsafe { times(t) };
    let act = with(|s| s.change_fd(fd, |p| Shim::utimens_op(p, ts, true)));
    changed(act, |_| real())
}

/// An xattr read's answer as the kernel gives it: with `size` 0 the length alone, ERANGE
/// when the bytes do not fit, else the bytes and their length.
///
/// # Safety
/// `buf` is writable for `size` bytes (or `size` is 0).
pub(crate) unsafe fn give_xattr(
    act: Option<Act<Vec<u8>>>,
    buf: *mut c_void,
    size: usize,
    real_call: impl FnOnce(Option<CString>) -> isize,
) -> isize {
    match act {
        Some(Act::Done(Ok(bytes))) => {
            if size == 0 {
                bytes.len() as isize
            } else if size < bytes.len() {
                fail(Errno::ERANGE) as isize
            } else {
                if !bytes.is_empty() {
                    // SAFETY: the caller's buffer holds `size` >= `bytes.len()` bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, bytes.len())
                    };
                }
                bytes.len() as isize
            }
        }
        Some(Act::Done(Err(e))) => fail(e) as isize,
        Some(Act::Real(Some(p))) => real_call(Some(cstring(p))),
        _ => real_call(None),
    }
}

/// The attribute name argument; `None` for one the shim cannot read (the kernel answers).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub(crate) unsafe fn xattr_name<'a>(name: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: forwarded contract.
    unsafe { bytes(name) }
}

/// The value argument of a setxattr: `size` bytes at `value` (none for size 0); `None`
/// when it cannot be read or is too large to be valid (the kernel answers).
///
/// # Safety
/// `value` points to `size` readable bytes, or `size` is 0.
pub(crate) unsafe fn xattr_value<'a>(value: *const c_void, size: usize) -> Option<&'a [u8]> {
    if size == 0 {
        return Some(&[]);
    }
    if size > vrift_common::manifest::XATTR_SIZE_MAX || !crate::core::may_be_mapped(value as usize)
    {
        return None;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    Some(unsafe { std::slice::from_raw_parts(value as *const u8, size) })
}

/// renameat(2) (renameat2's `flags` on Linux; none on macOS).
///
/// # Safety
/// renameat's arguments.
pub(crate) unsafe fn renameat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: u32,
    real: impl Fn(c_int, *const c_char, c_int, *const c_char) -> c_int,
) -> c_int {
    let make = |old, new| Op::Rename { old, new, flags };
    // SAFETY: forwarded contract.
    unsafe { change_pair_at(olddirfd, old, newdirfd, new, make, real) }
}

/// linkat(2).
///
/// # Safety
/// linkat's arguments.
pub(crate) unsafe fn linkat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: c_int,
    real: impl Fn(c_int, *const c_char, c_int, *const c_char) -> c_int,
) -> c_int {
    let follow = flags & libc::AT_SYMLINK_FOLLOW != 0;
    let make = |old, new| Op::Link { old, new, follow };
    // SAFETY: forwarded contract.
    unsafe { change_pair_at(olddirfd, old, newdirfd, new, make, real) }
}

/// chdir(2): into a view directory the cwd is the process's own; elsewhere `real` runs
/// (on the caller's path or the view's rewritten one) and the shim learns where it went.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
pub(crate) unsafe fn chdir(path: *const c_char, real: impl Fn(*const c_char) -> c_int) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { ask(path, |s, p| s.chdir(p)) } {
        Some(Act::Done(Ok(()))) => 0,
        Some(Act::Done(Err(e))) => fail(e),
        Some(Act::RealBoth(..)) => fail(Errno(libc::EINVAL)),
        Some(Act::Real(p)) => {
            let r = match p {
                Some(p) => real(cstring(p).as_ptr()),
                None => real(path),
            };
            if r == 0 {
                with(|s| s.set_real_cwd());
            }
            r
        }
        None => real(path),
    }
}

/// fchdir(2), as [`chdir`].
pub(crate) fn fchdir(fd: c_int, real: impl FnOnce(c_int) -> c_int) -> c_int {
    match with(|s| s.fchdir(fd)) {
        Some(Act::Done(Ok(()))) => 0,
        Some(Act::Done(Err(e))) => fail(e),
        _ => {
            let r = real(fd);
            if r == 0 {
                with(|s| s.set_real_cwd());
            }
            r
        }
    }
}

/// The program posix_spawnp(3) starts for a `name` without a slash: the first `dir/name` on
/// PATH that `is_program` accepts (the layer asks the view's access and stat, so a program
/// of the view is found as the kernel would find it). execvp instead tries each in turn,
/// as glibc does, since only the exec itself tells why a candidate failed.
pub(crate) fn search_path(name: &[u8], is_program: impl Fn(&CString) -> bool) -> Option<CString> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::var_os("PATH")
        .map(|p| p.as_bytes().to_vec())
        .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
    path.split(|&b| b == b':').find_map(|dir| {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut cand = dir.to_vec();
        cand.push(b'/');
        cand.extend_from_slice(name);
        let c = cstring(cand);
        is_program(&c).then_some(c)
    })
}

/// readdir_r(3) of a view stream, whose next entry (of the platform's `struct dirent`, `E`)
/// `next` is, NULL at the end: copied into the caller's `entry`, `*result` set to it or to
/// NULL. Always 0 (a view stream has no read error).
///
/// # Safety
/// `next` is a valid entry or NULL; `entry` and `result` are writable, as readdir_r(3) says.
pub(crate) unsafe fn readdir_r_into<E>(
    next: *const E,
    entry: *mut E,
    result: *mut *mut E,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        if next.is_null() {
            *result = std::ptr::null_mut();
        } else {
            std::ptr::copy_nonoverlapping(next, entry, 1);
            *result = entry;
        }
    }
    0
}

/// scandir(3)'s comparison of two entries (pointers to the array's elements).
pub(crate) type Compar = Option<unsafe extern "C" fn(*const c_void, *const c_void) -> c_int>;

/// scandir(3) of a view directory, whose entries (of the platform's `struct dirent`, `E`)
/// `next` gives until NULL: those `filter` keeps are copied into malloc'd entries, in a
/// malloc'd array sorted with `compar` and put at `*list`, which the caller frees as it
/// would the C library's; `done` runs once the entries are read (it closes the stream).
/// The number of entries, or -1 (ENOMEM).
///
/// # Safety
/// `next` gives valid entries or NULL; `list` is writable; `filter` and `compar` are the
/// caller's functions, as scandir(3) takes them.
pub(crate) unsafe fn scandir_list<E>(
    mut next: impl FnMut() -> *const E,
    done: impl FnOnce(),
    list: *mut *mut *mut E,
    filter: Option<unsafe extern "C" fn(*const E) -> c_int>,
    compar: Compar,
) -> c_int {
    // SAFETY: forwarded contract; each copy holds one `E`, the array `out.len()` pointers.
    unsafe {
        let mut out: Vec<*mut E> = Vec::new();
        loop {
            let e = next();
            if e.is_null() {
                break;
            }
            if let Some(f) = filter {
                if f(e) == 0 {
                    continue;
                }
            }
            let copy = libc::malloc(std::mem::size_of::<E>()) as *mut E;
            if copy.is_null() {
                break;
            }
            std::ptr::copy_nonoverlapping(e, copy, 1);
            out.push(copy);
        }
        done();
        let arr = libc::malloc(out.len().max(1) * std::mem::size_of::<*mut E>()) as *mut *mut E;
        if arr.is_null() {
            for p in out {
                libc::free(p as *mut c_void);
            }
            return fail(Errno(libc::ENOMEM));
        }
        std::ptr::copy_nonoverlapping(out.as_ptr(), arr, out.len());
        if let Some(c) = compar {
            libc::qsort(
                arr as *mut c_void,
                out.len(),
                std::mem::size_of::<*mut E>(),
                Some(c),
            );
        }
        *list = arr;
        out.len() as c_int
    }
}
