//! The Darwin layer: the same core, reached through dyld's interposition. dyld reads the
//! (replacement, original) pairs of the `__DATA,__interpose` section of every library
//! inserted with DYLD_INSERT_LIBRARIES and binds every other image's references to the
//! original to the replacement; the shim's own references keep reaching the originals, so
//! a hook calls libSystem's function by its plain name.
//!
//! The `libc` crate links `stat`, `lstat`, `fstat`, `fstatat`, `opendir`, `readdir` to their
//! `$INODE64` names on x86_64 and `realpath` to `realpath$DARWIN_EXTSN`, so the originals
//! named below are the ones programs call. `open$NOCANCEL` and `openat$NOCANCEL` (what
//! libSystem itself uses) are interposed through `link_name`.
//!
//! On arm64, a variadic argument (open's mode) is passed on the stack, not in a register:
//! the hooks of the variadic functions take eight fixed arguments before it so that the
//! ninth is read from where the caller put it.
//!
//! Type-checked on Linux for both Apple targets (`scripts/check-darwin.sh`); not run here.
#![allow(clippy::missing_safety_doc)] // C entry points: their contract is libSystem's.

use std::ffi::{c_char, c_int, CStr, CString};

use vrift_common::vfs::{Errno, Stat};

use crate::core::Act;
use crate::state::with;

#[repr(C)]
pub struct Interpose {
    replacement: *const (),
    original: *const (),
}

// SAFETY: two code addresses, read by dyld only; never written.
unsafe impl Sync for Interpose {}

macro_rules! interpose {
    ($name:ident: $hook:ident => $orig:path) => {
        #[used]
        #[link_section = "__DATA,__interpose"]
        static $name: Interpose = Interpose {
            replacement: $hook as *const (),
            original: $orig as *const (),
        };
    };
}

mod nocancel {
    use std::ffi::{c_char, c_int};
    extern "C" {
        #[link_name = "open$NOCANCEL"]
        pub fn open_nocancel(path: *const c_char, flags: c_int, ...) -> c_int;
        #[link_name = "openat$NOCANCEL"]
        pub fn openat_nocancel(fd: c_int, path: *const c_char, flags: c_int, ...) -> c_int;
        pub fn getattrlist(
            path: *const c_char,
            attrs: *mut libc::c_void,
            buf: *mut libc::c_void,
            size: libc::size_t,
            options: libc::c_uint,
        ) -> c_int;
        pub fn __getdirentries64(
            fd: c_int,
            buf: *mut c_char,
            nbytes: libc::size_t,
            basep: *mut i64,
        ) -> libc::ssize_t;
        pub fn getattrlistbulk(
            dirfd: c_int,
            attrs: *mut libc::c_void,
            buf: *mut libc::c_void,
            size: libc::size_t,
            options: u64,
        ) -> c_int;
    }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: forwarded contract.
    (crate::core::may_be_mapped(p as usize)).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

fn set_errno(e: i32) {
    // SAFETY: __error returns this thread's errno.
    unsafe { *libc::__error() = e };
}

fn fail(e: Errno) -> c_int {
    set_errno(e.0);
    -1
}

fn cstring(p: Vec<u8>) -> CString {
    CString::new(p).unwrap_or_default()
}

/// # Safety
/// `buf` points to a writable struct stat.
unsafe fn fill_stat(buf: *mut libc::stat, st: &Stat) {
    // SAFETY: struct stat is plain integers; all zero is valid.
    let mut s: libc::stat = unsafe { std::mem::zeroed() };
    s.st_dev = st.dev as _;
    s.st_ino = st.ino as _;
    s.st_nlink = st.nlink as _;
    s.st_mode = st.mode as _;
    s.st_uid = st.uid;
    s.st_gid = st.gid;
    s.st_size = st.size as _;
    s.st_blksize = st.blksize as _;
    s.st_blocks = st.blocks as _;
    s.st_mtime = st.mtime_ns.div_euclid(1_000_000_000) as _;
    s.st_mtime_nsec = st.mtime_ns.rem_euclid(1_000_000_000) as _;
    s.st_atime = s.st_mtime;
    s.st_atime_nsec = s.st_mtime_nsec;
    s.st_ctime = s.st_mtime;
    s.st_ctime_nsec = s.st_mtime_nsec;
    // SAFETY: the caller's buffer.
    unsafe { buf.write(s) };
}

/// # Safety
/// openat's arguments.
unsafe fn do_open(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_int,
    nocancel: bool,
) -> c_int {
    // SAFETY: the caller's C string.
    let p = unsafe { bytes(path) };
    let at = (dirfd != libc::AT_FDCWD).then_some(dirfd);
    let act = p.and_then(|p| with(|s| s.open(at, p, flags, mode as u32)));
    // SAFETY: the original functions with the caller's (or the view's rewritten) arguments.
    unsafe {
        match act {
            Some(Act::Done(Ok(fd))) => fd,
            Some(Act::Done(Err(e))) => fail(e),
            Some(Act::Real(Some(p))) => {
                let c = cstring(p);
                if nocancel {
                    nocancel::openat_nocancel(libc::AT_FDCWD, c.as_ptr(), flags, mode)
                } else {
                    libc::openat(libc::AT_FDCWD, c.as_ptr(), flags, mode)
                }
            }
            _ if nocancel => nocancel::openat_nocancel(dirfd, path, flags, mode),
            _ => libc::openat(dirfd, path, flags, mode),
        }
    }
}

#[cfg(target_arch = "aarch64")]
macro_rules! va_open {
    ($name:ident, $nc:expr) => {
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            flags: c_int,
            _r2: usize,
            _r3: usize,
            _r4: usize,
            _r5: usize,
            _r6: usize,
            _r7: usize,
            mode: c_int,
        ) -> c_int {
            // SAFETY: open(2)'s arguments; the mode is the first stack slot.
            unsafe { do_open(libc::AT_FDCWD, path, flags, mode, $nc) }
        }
    };
}

#[cfg(not(target_arch = "aarch64"))]
macro_rules! va_open {
    ($name:ident, $nc:expr) => {
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: c_int) -> c_int {
            // SAFETY: open(2)'s arguments; the mode travels in a register.
            unsafe { do_open(libc::AT_FDCWD, path, flags, mode, $nc) }
        }
    };
}

va_open!(hook_open, false);
va_open!(hook_open_nocancel, true);
interpose!(I_OPEN: hook_open => libc::open);
interpose!(I_OPEN_NC: hook_open_nocancel => nocancel::open_nocancel);

/// # Safety
/// fstatat's arguments.
unsafe fn do_stat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    let at = (dirfd != libc::AT_FDCWD).then_some(dirfd);
    // SAFETY: the caller's arguments.
    unsafe {
        let act = bytes(path).and_then(|p| with(|s| s.stat(at, p, follow)));
        match act {
            Some(Act::Done(Ok(st))) => {
                fill_stat(buf, &st);
                0
            }
            Some(Act::Done(Err(e))) => fail(e),
            Some(Act::Real(Some(p))) => {
                libc::fstatat(libc::AT_FDCWD, cstring(p).as_ptr(), buf, flags)
            }
            _ => libc::fstatat(dirfd, path, buf, flags),
        }
    }
}

pub unsafe extern "C" fn hook_stat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    // SAFETY: stat(2)'s arguments.
    unsafe { do_stat(libc::AT_FDCWD, path, buf, 0) }
}

pub unsafe extern "C" fn hook_lstat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    // SAFETY: lstat(2)'s arguments.
    unsafe { do_stat(libc::AT_FDCWD, path, buf, libc::AT_SYMLINK_NOFOLLOW) }
}

pub unsafe extern "C" fn hook_fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    // SAFETY: fstatat(2)'s arguments.
    unsafe { do_stat(dirfd, path, buf, flags) }
}

pub unsafe extern "C" fn hook_fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    match with(|s| s.fstat(fd)) {
        Some(Act::Done(Ok(st))) => {
            // SAFETY: the caller's buffer.
            unsafe { fill_stat(buf, &st) };
            0
        }
        Some(Act::Done(Err(e))) => fail(e),
        // SAFETY: the original with the caller's arguments.
        _ => unsafe { libc::fstat(fd, buf) },
    }
}

interpose!(I_STAT: hook_stat => libc::stat);
interpose!(I_LSTAT: hook_lstat => libc::lstat);
interpose!(I_FSTATAT: hook_fstatat => libc::fstatat);
interpose!(I_FSTAT: hook_fstat => libc::fstat);

pub unsafe extern "C" fn hook_access(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: access(2)'s arguments.
    unsafe {
        let act = bytes(path).and_then(|p| with(|s| s.access(None, p, mode as u32, true)));
        match act {
            Some(Act::Done(Ok(()))) => 0,
            Some(Act::Done(Err(e))) => fail(e),
            Some(Act::Real(Some(p))) => libc::access(cstring(p).as_ptr(), mode),
            _ => libc::access(path, mode),
        }
    }
}
interpose!(I_ACCESS: hook_access => libc::access);

pub unsafe extern "C" fn hook_getcwd(buf: *mut c_char, size: libc::size_t) -> *mut c_char {
    match with(|s| s.getcwd().to_vec()) {
        Some(cwd) if !buf.is_null() && cwd.len() < size => {
            // SAFETY: `buf` holds `size` bytes, more than the cwd and its NUL.
            unsafe {
                std::ptr::copy_nonoverlapping(cwd.as_ptr(), buf as *mut u8, cwd.len());
                *buf.add(cwd.len()) = 0;
            }
            buf
        }
        Some(_) if !buf.is_null() => {
            set_errno(libc::ERANGE);
            std::ptr::null_mut()
        }
        // SAFETY: the original with the caller's arguments (it allocates for NULL).
        _ => unsafe { libc::getcwd(buf, size) },
    }
}
interpose!(I_GETCWD: hook_getcwd => libc::getcwd);

/// getattrlist(2) on a view path: the view has no Darwin attribute lists, so the call is
/// answered ENOTSUP, which makes libSystem's `realpath` and friends fall back to the stat
/// and readlink calls the core serves.
pub unsafe extern "C" fn hook_getattrlist(
    path: *const c_char,
    attrs: *mut libc::c_void,
    buf: *mut libc::c_void,
    size: libc::size_t,
    options: libc::c_uint,
) -> c_int {
    // SAFETY: getattrlist(2)'s arguments.
    unsafe {
        let act = bytes(path).and_then(|p| with(|s| s.stat(None, p, true)));
        match act {
            Some(Act::Done(Ok(_))) => fail(Errno(libc::ENOTSUP)),
            Some(Act::Done(Err(e))) => fail(e),
            _ => nocancel::getattrlist(path, attrs, buf, size, options),
        }
    }
}
interpose!(I_GETATTRLIST: hook_getattrlist => nocancel::getattrlist);

/// getattrlistbulk(2) and __getdirentries64 on a view directory fd: refused (ENOTSUP), so
/// fts and opendir callers see an error rather than the run's empty directory.
pub unsafe extern "C" fn hook_getattrlistbulk(
    dirfd: c_int,
    attrs: *mut libc::c_void,
    buf: *mut libc::c_void,
    size: libc::size_t,
    options: u64,
) -> c_int {
    if with(|s| s.fd_info(dirfd).is_some()).unwrap_or(false) {
        return fail(Errno(libc::ENOTSUP));
    }
    // SAFETY: the original with the caller's arguments.
    unsafe { nocancel::getattrlistbulk(dirfd, attrs, buf, size, options) }
}
interpose!(I_GETATTRLISTBULK: hook_getattrlistbulk => nocancel::getattrlistbulk);

pub unsafe extern "C" fn hook_getdirentries64(
    fd: c_int,
    buf: *mut c_char,
    nbytes: libc::size_t,
    basep: *mut i64,
) -> libc::ssize_t {
    if with(|s| s.fd_info(fd).is_some()).unwrap_or(false) {
        return fail(Errno(libc::ENOTSUP)) as libc::ssize_t;
    }
    // SAFETY: the original with the caller's arguments.
    unsafe { nocancel::__getdirentries64(fd, buf, nbytes, basep) }
}
interpose!(I_GETDIRENTRIES64: hook_getdirentries64 => nocancel::__getdirentries64);

/// execve(2) with DYLD_INSERT_LIBRARIES put back into the child's environment.
pub unsafe extern "C" fn hook_execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: execve(2)'s arguments: C strings and NULL-terminated arrays of them.
    unsafe {
        let mut env = Vec::new();
        let mut i = 0;
        while !envp.is_null() && !(*envp.add(i)).is_null() {
            env.push(CStr::from_ptr(*envp.add(i)).to_bytes().to_vec());
            i += 1;
        }
        let target = bytes(path).and_then(|p| with(|s| (s.exec(p), s.child_environment(env))));
        let Some((target, env)) = target else {
            return libc::execve(path, argv, envp);
        };
        let p = match target {
            Act::Done(Ok(t)) | Act::Real(Some(t)) => Some(cstring(t)),
            Act::Done(Err(e)) => return fail(e),
            Act::Real(None) | Act::RealBoth(..) => None,
        };
        let env: Vec<CString> = env
            .into_iter()
            .filter_map(|l| CString::new(l).ok())
            .collect();
        let ptrs: Vec<*const c_char> = env
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        libc::execve(p.as_ref().map_or(path, |p| p.as_ptr()), argv, ptrs.as_ptr())
    }
}
interpose!(I_EXECVE: hook_execve => libc::execve);

pub unsafe extern "C" fn hook_close(fd: c_int) -> c_int {
    if crate::state::has_view_fds() {
        with(|s| s.closed(fd));
    }
    // SAFETY: the original with the caller's argument.
    unsafe { libc::close(fd) }
}
interpose!(I_CLOSE: hook_close => libc::close);
