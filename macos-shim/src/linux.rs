//! The Linux layer: the C entry points the loader binds ahead of glibc's (LD_PRELOAD), and
//! the real functions behind them (dlsym(RTLD_NEXT)).
//!
//! Each hook reads its C arguments, asks the core, and writes the answer back in the C
//! form; a call the core does not take runs the real function with the same arguments.
//! The variadic `open`, `openat` and `fcntl` are defined with their optional argument as a
//! plain one: on x86-64 and aarch64 Linux a variadic integer argument travels in the same
//! register as a fixed one.
#![allow(clippy::missing_safety_doc)] // C entry points: their contract is libc's.

use std::ffi::{c_char, c_int, c_long, c_uint, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;

use vrift_common::runlog::Op;
use vrift_common::vfs::{DirEntry, Errno, Stat};

use crate::core::{Act, DirStream, Shim, XattrTarget};
use crate::hooks;
use crate::state::with;

type Mode = libc::mode_t;

// ---- the real functions ---------------------------------------------------------------------

mod real {
    use std::ffi::{c_char, c_int, c_long, c_uint, c_void};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn lookup(name: &'static [u8]) -> usize {
        // SAFETY: `name` is NUL-terminated; RTLD_NEXT asks for the next definition after this
        // library, i.e. libc's.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) };
        if p.is_null() {
            crate::sys::write_stderr(b"vrift-shim: a libc function is missing: ");
            crate::sys::write_stderr(&name[..name.len() - 1]);
            crate::sys::write_stderr(b"\n");
            std::process::abort();
        }
        p as usize
    }

    macro_rules! real {
        ($name:ident($($arg:ident: $t:ty),*) -> $r:ty) => {
            real!(@ $name($($arg: $t),*) -> $r; fn($($t),*) -> $r);
        };
        // A variadic function, called with one optional argument.
        ($name:ident($($arg:ident: $t:ty),*; $va:ident: $vt:ty) -> $r:ty) => {
            real!(@ $name($($arg: $t,)* $va: $vt) -> $r; fn($($t),*, ...) -> $r);
        };
        (@ $name:ident($($arg:ident: $t:ty),* $(,)?) -> $r:ty; fn($($ft:tt)*) -> $fr:ty) => {
            pub unsafe fn $name($($arg: $t),*) -> $r {
                static PTR: AtomicUsize = AtomicUsize::new(0);
                let mut p = PTR.load(Ordering::Relaxed);
                if p == 0 {
                    p = lookup(concat!(stringify!($name), "\0").as_bytes());
                    PTR.store(p, Ordering::Relaxed);
                }
                // SAFETY: `p` is libc's function of this name, whose C prototype this is.
                let f: unsafe extern "C" fn($($ft)*) -> $fr = unsafe { std::mem::transmute(p) };
                // SAFETY: the arguments are the caller's, passed on unchanged.
                unsafe { f($($arg),*) }
            }
        };
    }

    real!(openat(d: c_int, p: *const c_char, f: c_int; m: c_uint) -> c_int);
    real!(fopen(p: *const c_char, m: *const c_char) -> *mut libc::FILE);
    real!(freopen(p: *const c_char, m: *const c_char, s: *mut libc::FILE) -> *mut libc::FILE);
    real!(fstatat(d: c_int, p: *const c_char, b: *mut libc::stat, f: c_int) -> c_int);
    real!(fstat(fd: c_int, b: *mut libc::stat) -> c_int);
    real!(statx(d: c_int, p: *const c_char, f: c_int, m: libc::c_uint, b: *mut libc::statx) -> c_int);
    real!(faccessat(d: c_int, p: *const c_char, m: c_int, f: c_int) -> c_int);
    real!(readlinkat(d: c_int, p: *const c_char, b: *mut c_char, n: usize) -> isize);
    real!(realpath(p: *const c_char, r: *mut c_char) -> *mut c_char);
    real!(opendir(p: *const c_char) -> *mut libc::DIR);
    real!(fdopendir(fd: c_int) -> *mut libc::DIR);
    real!(readdir(d: *mut libc::DIR) -> *mut libc::dirent);
    real!(readdir64(d: *mut libc::DIR) -> *mut libc::dirent64);
    real!(closedir(d: *mut libc::DIR) -> c_int);
    real!(dirfd(d: *mut libc::DIR) -> c_int);
    real!(rewinddir(d: *mut libc::DIR) -> ());
    real!(telldir(d: *mut libc::DIR) -> libc::c_long);
    real!(seekdir(d: *mut libc::DIR, at: libc::c_long) -> ());
    real!(readdir64_r(d: *mut libc::DIR, e: *mut libc::dirent64, r: *mut *mut libc::dirent64) -> c_int);
    real!(scandir(p: *const c_char, l: *mut c_void, f: *const c_void, c: *const c_void) -> c_int);
    real!(chdir(p: *const c_char) -> c_int);
    real!(fchdir(fd: c_int) -> c_int);
    real!(getcwd(b: *mut c_char, n: usize) -> *mut c_char);
    real!(close(fd: c_int) -> c_int);
    real!(fclose(f: *mut libc::FILE) -> c_int);
    real!(close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int);
    real!(closefrom(low: c_int) -> ());
    real!(dup(fd: c_int) -> c_int);
    real!(dup2(a: c_int, b: c_int) -> c_int);
    real!(dup3(a: c_int, b: c_int, f: c_int) -> c_int);
    real!(fcntl(fd: c_int, cmd: c_int; a: c_long) -> c_int);
    real!(execve(p: *const c_char, a: *const *const c_char, e: *const *const c_char) -> c_int);
    real!(posix_spawn(pid: *mut libc::pid_t, p: *const c_char, fa: *const c_void, at: *const c_void, a: *const *mut c_char, e: *const *mut c_char) -> c_int);
    real!(mkdirat(d: c_int, p: *const c_char, m: libc::mode_t) -> c_int);
    real!(unlinkat(d: c_int, p: *const c_char, f: c_int) -> c_int);
    real!(renameat2(a: c_int, p: *const c_char, b: c_int, q: *const c_char, f: libc::c_uint) -> c_int);
    real!(linkat(a: c_int, p: *const c_char, b: c_int, q: *const c_char, f: c_int) -> c_int);
    real!(symlinkat(t: *const c_char, d: c_int, p: *const c_char) -> c_int);
    real!(fchmodat(d: c_int, p: *const c_char, m: libc::mode_t, f: c_int) -> c_int);
    real!(fchmod(fd: c_int, m: libc::mode_t) -> c_int);
    real!(utimensat(d: c_int, p: *const c_char, t: *const libc::timespec, f: c_int) -> c_int);
    real!(futimens(fd: c_int, t: *const libc::timespec) -> c_int);
    real!(truncate(p: *const c_char, n: libc::off_t) -> c_int);
    real!(fchownat(d: c_int, p: *const c_char, u: libc::uid_t, g: libc::gid_t, f: c_int) -> c_int);
    real!(fchown(fd: c_int, u: libc::uid_t, g: libc::gid_t) -> c_int);
    real!(umask(m: libc::mode_t) -> libc::mode_t);
    real!(rmdir(p: *const c_char) -> c_int);
    real!(mkostemps(t: *mut c_char, s: c_int, f: c_int) -> c_int);
}

// ---- helpers ------------------------------------------------------------------------------

use crate::hooks::{
    ask, at, bytes, changed, cstring, fail, give_xattr, set_errno, xattr_name, xattr_value,
};

/// Does the shim mark this pass-through read call (see `Shim::marks`)?
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
unsafe fn marks(dirfd: c_int, path: *const c_char) -> bool {
    // SAFETY: forwarded contract.
    let Some(p) = (unsafe { bytes(path) }) else {
        return false;
    };
    with(|s| s.marks(at(dirfd), p)).unwrap_or(false)
}

/// The pointer and descriptor a pass-through call uses: the rewritten absolute path, or
/// the caller's own arguments.
fn target(p: &Option<CString>, dirfd: c_int, path: *const c_char) -> (usize, usize) {
    match p {
        Some(c) => (libc::AT_FDCWD as usize, c.as_ptr() as usize),
        None => (dirfd as usize, path as usize),
    }
}

fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// # Safety
/// `buf` points to a writable `struct stat`.
unsafe fn fill_stat(buf: *mut libc::stat, st: &Stat) {
    // SAFETY: struct stat is plain integers; all zero is a valid value.
    let mut s: libc::stat = unsafe { std::mem::zeroed() };
    s.st_dev = st.dev as _;
    s.st_ino = st.ino as _;
    s.st_nlink = st.nlink as _;
    s.st_mode = st.mode as _;
    s.st_uid = st.uid;
    s.st_gid = st.gid;
    s.st_rdev = st.rdev as _;
    s.st_size = st.size as _;
    s.st_blksize = st.blksize as _;
    s.st_blocks = st.blocks as _;
    s.st_atime = st.atime_ns.div_euclid(1_000_000_000) as _;
    s.st_atime_nsec = st.atime_ns.rem_euclid(1_000_000_000) as _;
    s.st_mtime = st.mtime_ns.div_euclid(1_000_000_000) as _;
    s.st_mtime_nsec = st.mtime_ns.rem_euclid(1_000_000_000) as _;
    s.st_ctime = st.ctime_ns.div_euclid(1_000_000_000) as _;
    s.st_ctime_nsec = st.ctime_ns.rem_euclid(1_000_000_000) as _;
    // SAFETY: the caller's buffer holds one struct stat.
    unsafe { buf.write(s) };
}

/// # Safety
/// `buf` points to a writable `struct statx`.
unsafe fn fill_statx(buf: *mut libc::statx, st: &Stat) {
    // SAFETY: struct statx is plain integers; all zero is a valid value.
    let mut s: libc::statx = unsafe { std::mem::zeroed() };
    let ts = |ns: i64| {
        // SAFETY: as above, for the timestamp struct.
        let mut t: libc::statx_timestamp = unsafe { std::mem::zeroed() };
        t.tv_sec = ns.div_euclid(1_000_000_000);
        t.tv_nsec = ns.rem_euclid(1_000_000_000) as u32;
        t
    };
    s.stx_mask = libc::STATX_BASIC_STATS;
    s.stx_blksize = st.blksize as u32;
    s.stx_nlink = st.nlink as u32;
    s.stx_uid = st.uid;
    s.stx_gid = st.gid;
    s.stx_mode = st.mode as u16;
    s.stx_ino = st.ino;
    s.stx_size = st.size;
    s.stx_blocks = st.blocks;
    s.stx_atime = ts(st.atime_ns);
    s.stx_mtime = ts(st.mtime_ns);
    s.stx_ctime = ts(st.ctime_ns);
    let (ma, mi) = split_dev(st.dev);
    s.stx_dev_major = ma;
    s.stx_dev_minor = mi;
    // SAFETY: the caller's buffer holds one struct statx.
    unsafe { buf.write(s) };
}

// ---- open ---------------------------------------------------------------------------------

/// # Safety
/// The arguments of openat(2).
unsafe fn do_open(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: `path` is the caller's C string.
    match unsafe { ask(path, |s, p| s.open(at(dirfd), p, flags, mode)) } {
        Some(Act::Done(Ok(fd))) => fd,
        Some(Act::Done(Err(e))) => fail(e),
        Some(Act::Real(p))
            if {
                // SAFETY: `path` is the caller's C string.
                let b = unsafe { bytes(path) };
                b.and_then(|b| with(|s| s.marks_open(at(dirfd), b, flags)))
                    .unwrap_or(false)
            } =>
        {
            let p = p.map(cstring);
            let (d, q) = target(&p, dirfd, path);
            // SAFETY: openat's arguments, the path valid for the call.
            unsafe {
                crate::sys::marked(libc::SYS_openat, d, q, flags as usize, mode as usize, 0)
                    as c_int
            }
        }
        // SAFETY: the real openat with the caller's (or the view's rewritten) arguments.
        Some(Act::Real(Some(p))) => unsafe {
            real::openat(libc::AT_FDCWD, cstring(p).as_ptr(), flags, mode)
        },
        // SAFETY: as above.
        _ => unsafe { real::openat(dirfd, path, flags, mode) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: open(2)'s arguments.
    unsafe { do_open(libc::AT_FDCWD, path, flags, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: open(2)'s arguments.
    unsafe { do_open(libc::AT_FDCWD, path, flags, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: FORTIFY's open without a mode (it refuses O_CREAT without one).
    unsafe { do_open(libc::AT_FDCWD, path, flags, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: as __open_2.
    unsafe { do_open(libc::AT_FDCWD, path, flags, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: openat(2)'s arguments.
    unsafe { do_open(dirfd, path, flags, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: openat(2)'s arguments.
    unsafe { do_open(dirfd, path, flags, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: FORTIFY's openat without a mode.
    unsafe { do_open(dirfd, path, flags, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: as __openat_2.
    unsafe { do_open(dirfd, path, flags, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn creat(path: *const c_char, mode: Mode) -> c_int {
    // SAFETY: creat(2) is open with these flags.
    unsafe {
        do_open(
            libc::AT_FDCWD,
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            mode,
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn creat64(path: *const c_char, mode: Mode) -> c_int {
    // SAFETY: as creat.
    unsafe { creat(path, mode) }
}

/// fopen's mode string as open flags.
fn fopen_flags(mode: &[u8]) -> Option<c_int> {
    let mut f = match mode.first()? {
        b'r' => 0,
        b'w' => libc::O_CREAT | libc::O_TRUNC,
        b'a' => libc::O_CREAT | libc::O_APPEND,
        _ => return None,
    };
    let plus = mode[1..].contains(&b'+');
    f |= match (mode[0], plus) {
        (_, true) => libc::O_RDWR,
        (b'r', false) => libc::O_RDONLY,
        _ => libc::O_WRONLY,
    };
    for &c in &mode[1..] {
        match c {
            b'x' => f |= libc::O_EXCL,
            b'e' => f |= libc::O_CLOEXEC,
            b',' => break,
            _ => {}
        }
    }
    Some(f)
}

/// # Safety
/// fopen(3)'s arguments.
unsafe fn do_fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: `mode` is the caller's C string.
    let Some(flags) = (unsafe { bytes(mode) }).and_then(fopen_flags) else {
        // SAFETY: the real fopen reports the bad mode.
        return unsafe { real::fopen(path, mode) };
    };
    // SAFETY: `path` is the caller's C string.
    match unsafe { ask(path, |s, p| s.open(None, p, flags, 0o666)) } {
        Some(Act::Done(Ok(fd))) => {
            // SAFETY: `fd` is a descriptor the view just opened for this stream.
            let f = unsafe { libc::fdopen(fd, mode) };
            if f.is_null() {
                // SAFETY: as above; the stream could not be made, so the fd is ours to close.
                unsafe { close(fd) };
            }
            f
        }
        Some(Act::Done(Err(e))) => {
            set_errno(e.0);
            std::ptr::null_mut()
        }
        // SAFETY: the real fopen, on the rewritten path.
        Some(Act::Real(Some(p))) => unsafe { real::fopen(cstring(p).as_ptr(), mode) },
        // SAFETY: the real fopen with the caller's arguments.
        _ => unsafe { real::fopen(path, mode) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: fopen(3)'s arguments.
    unsafe { do_fopen(path, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: fopen(3)'s arguments.
    unsafe { do_fopen(path, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn freopen(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: freopen(3)'s arguments; with a view path, the view's descriptor is put in the
    // place of the stream's own, which keeps the stream (and its fd number) valid.
    unsafe {
        let flags = bytes(mode).and_then(fopen_flags);
        if let (Some(flags), false) = (flags, path.is_null()) {
            match ask(path, |s, p| s.open(None, p, flags, 0o666)) {
                Some(Act::Done(Ok(fd))) => {
                    libc::fflush(stream);
                    let target = libc::fileno(stream);
                    dup2(fd, target);
                    close(fd);
                    libc::clearerr(stream);
                    return stream;
                }
                Some(Act::Done(Err(e))) => {
                    set_errno(e.0);
                    return std::ptr::null_mut();
                }
                Some(Act::Real(Some(p))) => {
                    return real::freopen(cstring(p).as_ptr(), mode, stream);
                }
                _ => {}
            }
        }
        real::freopen(path, mode, stream)
    }
}

#[no_mangle]
pub unsafe extern "C" fn freopen64(
    path: *const c_char,
    mode: *const c_char,
    stream: *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: freopen(3)'s arguments.
    unsafe { freopen(path, mode, stream) }
}

// ---- stat ---------------------------------------------------------------------------------

/// fstatat(2), the form every stat call comes down to.
///
/// # Safety
/// fstatat's arguments.
unsafe fn do_stat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    // SAFETY: `path` is the caller's C string.
    let empty = flags & libc::AT_EMPTY_PATH != 0 && unsafe { bytes(path) } == Some(b"");
    let act = if empty && dirfd != libc::AT_FDCWD {
        with(|s| s.fstat(dirfd))
    } else {
        // SAFETY: as above.
        unsafe { ask(path, |s, p| s.stat(at(dirfd), p, follow)) }
    };
    match act {
        Some(Act::Done(Ok(st))) => {
            // SAFETY: `buf` is the caller's struct stat.
            unsafe { fill_stat(buf, &st) };
            0
        }
        Some(Act::Done(Err(e))) => fail(e),
        // SAFETY: `path` is the caller's C string.
        Some(Act::Real(p)) if unsafe { marks(dirfd, path) } => {
            let p = p.map(cstring);
            let (d, q) = target(&p, dirfd, path);
            // SAFETY: newfstatat's arguments: the kernel's struct stat is glibc's here.
            unsafe {
                crate::sys::marked(libc::SYS_newfstatat, d, q, buf as usize, flags as usize, 0)
                    as c_int
            }
        }
        // SAFETY: the real call on the rewritten path.
        Some(Act::Real(Some(p))) => unsafe {
            real::fstatat(libc::AT_FDCWD, cstring(p).as_ptr(), buf, flags)
        },
        // SAFETY: the real call with the caller's arguments.
        _ => unsafe { real::fstatat(dirfd, path, buf, flags) },
    }
}

/// # Safety
/// fstat's arguments.
unsafe fn do_fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    match with(|s| s.fstat(fd)) {
        Some(Act::Done(Ok(st))) => {
            // SAFETY: `buf` is the caller's struct stat.
            unsafe { fill_stat(buf, &st) };
            0
        }
        Some(Act::Done(Err(e))) => fail(e),
        // SAFETY: the real call with the caller's arguments.
        _ => unsafe { real::fstat(fd, buf) },
    }
}

macro_rules! stat_hooks {
    ($($name:ident => $flags:expr),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, buf: *mut libc::stat) -> c_int {
            // SAFETY: stat(2)'s arguments.
            unsafe { do_stat(libc::AT_FDCWD, path, buf, $flags) }
        }
    )*};
}
stat_hooks!(stat => 0, stat64 => 0, lstat => libc::AT_SYMLINK_NOFOLLOW, lstat64 => libc::AT_SYMLINK_NOFOLLOW);

#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: fstat(2)'s arguments.
    unsafe { do_fstat(fd, buf) }
}

#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: fstat(2)'s arguments.
    unsafe { do_fstat(fd, buf) }
}

#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    // SAFETY: fstatat(2)'s arguments.
    unsafe { do_stat(dirfd, path, buf, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    // SAFETY: fstatat(2)'s arguments.
    unsafe { do_stat(dirfd, path, buf, flags) }
}

// glibc before 2.33 compiled stat calls to these, with a structure version first; on
// x86-64 and aarch64 that version's struct is the kernel's struct stat.
macro_rules! xstat_hooks {
    ($($name:ident => $flags:expr),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(_ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int {
            // SAFETY: __xstat's arguments after the version.
            unsafe { do_stat(libc::AT_FDCWD, path, buf, $flags) }
        }
    )*};
}
xstat_hooks!(__xstat => 0, __xstat64 => 0, __lxstat => libc::AT_SYMLINK_NOFOLLOW, __lxstat64 => libc::AT_SYMLINK_NOFOLLOW);

#[no_mangle]
pub unsafe extern "C" fn __fxstat(_ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: __fxstat's arguments after the version.
    unsafe { do_fstat(fd, buf) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstat64(_ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: as __fxstat.
    unsafe { do_fstat(fd, buf) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstatat(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    // SAFETY: __fxstatat's arguments after the version.
    unsafe { do_stat(dirfd, path, buf, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstatat64(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    // SAFETY: as __fxstatat.
    unsafe { do_stat(dirfd, path, buf, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    // SAFETY: statx(2)'s arguments: `path` a C string, `buf` one struct statx.
    unsafe {
        let empty = flags & libc::AT_EMPTY_PATH != 0 && bytes(path) == Some(b"");
        let act = if empty && dirfd != libc::AT_FDCWD {
            with(|s| s.fstat(dirfd))
        } else {
            ask(path, |s, p| s.stat(at(dirfd), p, follow))
        };
        match act {
            Some(Act::Done(Ok(st))) => {
                fill_statx(buf, &st);
                0
            }
            Some(Act::Done(Err(e))) => fail(e),
            Some(Act::Real(p)) if marks(dirfd, path) => {
                let p = p.map(cstring);
                let (d, q) = target(&p, dirfd, path);
                crate::sys::marked(
                    libc::SYS_statx,
                    d,
                    q,
                    flags as usize,
                    mask as usize,
                    buf as usize,
                ) as c_int
            }
            Some(Act::Real(Some(p))) => {
                real::statx(libc::AT_FDCWD, cstring(p).as_ptr(), flags, mask, buf)
            }
            _ => real::statx(dirfd, path, flags, mask, buf),
        }
    }
}

// ---- access, readlink, realpath -------------------------------------------------------------

/// # Safety
/// faccessat's arguments.
unsafe fn do_access(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    // SAFETY: `path` is the caller's C string.
    match unsafe { ask(path, |s, p| s.access(at(dirfd), p, mode as u32, follow)) } {
        Some(Act::Done(Ok(()))) => 0,
        Some(Act::Done(Err(e))) => fail(e),
        // SAFETY: `path` is the caller's C string.
        Some(Act::Real(p)) if unsafe { marks(dirfd, path) } => {
            let p = p.map(cstring);
            let (d, q) = target(&p, dirfd, path);
            // SAFETY: faccessat2's arguments.
            unsafe {
                crate::sys::marked(libc::SYS_faccessat2, d, q, mode as usize, flags as usize, 0)
                    as c_int
            }
        }
        // SAFETY: the real call on the rewritten path.
        Some(Act::Real(Some(p))) => unsafe {
            real::faccessat(libc::AT_FDCWD, cstring(p).as_ptr(), mode, flags)
        },
        // SAFETY: the real call with the caller's arguments.
        _ => unsafe { real::faccessat(dirfd, path, mode, flags) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: access(2)'s arguments.
    unsafe { do_access(libc::AT_FDCWD, path, mode, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: faccessat(2)'s arguments.
    unsafe { do_access(dirfd, path, mode, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn eaccess(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: access(2)'s arguments; the effective ids are the ones the view uses.
    unsafe { do_access(libc::AT_FDCWD, path, mode, libc::AT_EACCESS) }
}

#[no_mangle]
pub unsafe extern "C" fn euidaccess(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: as eaccess.
    unsafe { eaccess(path, mode) }
}

/// # Safety
/// readlinkat's arguments.
unsafe fn do_readlink(dirfd: c_int, path: *const c_char, buf: *mut c_char, size: usize) -> isize {
    // SAFETY: `path` is the caller's C string.
    match unsafe { ask(path, |s, p| s.readlink(at(dirfd), p)) } {
        Some(Act::Done(Ok(t))) => {
            let n = t.len().min(size);
            // SAFETY: `buf` holds `size` bytes; readlink does not add a NUL.
            unsafe { std::ptr::copy_nonoverlapping(t.as_ptr(), buf as *mut u8, n) };
            n as isize
        }
        Some(Act::Done(Err(e))) => fail(e) as isize,
        // SAFETY: `path` is the caller's C string.
        Some(Act::Real(p)) if unsafe { marks(dirfd, path) } => {
            let p = p.map(cstring);
            let (d, q) = target(&p, dirfd, path);
            // SAFETY: readlinkat's arguments, `buf` holding `size` bytes.
            unsafe {
                crate::sys::marked(libc::SYS_readlinkat, d, q, buf as usize, size, 0) as isize
            }
        }
        // SAFETY: the real call on the rewritten path.
        Some(Act::Real(Some(p))) => unsafe {
            real::readlinkat(libc::AT_FDCWD, cstring(p).as_ptr(), buf, size)
        },
        // SAFETY: the real call with the caller's arguments.
        _ => unsafe { real::readlinkat(dirfd, path, buf, size) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize {
    // SAFETY: readlink(2)'s arguments.
    unsafe { do_readlink(libc::AT_FDCWD, path, buf, size) }
}

#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: readlinkat(2)'s arguments.
    unsafe { do_readlink(dirfd, path, buf, size) }
}

#[no_mangle]
pub unsafe extern "C" fn __readlink_chk(
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
    _buflen: usize,
) -> isize {
    // SAFETY: FORTIFY's readlink: `buf` holds `size` bytes.
    unsafe { do_readlink(libc::AT_FDCWD, path, buf, size) }
}

#[no_mangle]
pub unsafe extern "C" fn __readlinkat_chk(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
    _buflen: usize,
) -> isize {
    // SAFETY: FORTIFY's readlinkat: `buf` holds `size` bytes.
    unsafe { do_readlink(dirfd, path, buf, size) }
}

/// Copy `s` into `buf` (or a new malloc'd buffer when it is NULL), NUL-terminated.
///
/// # Safety
/// `buf` is NULL or holds at least `cap` bytes.
unsafe fn give_string(s: &[u8], buf: *mut c_char, cap: usize) -> *mut c_char {
    let out = if buf.is_null() {
        // SAFETY: a fresh allocation the caller frees.
        unsafe { libc::malloc(s.len() + 1) as *mut c_char }
    } else {
        if s.len() + 1 > cap {
            set_errno(libc::ERANGE);
            return std::ptr::null_mut();
        }
        buf
    };
    if out.is_null() {
        set_errno(libc::ENOMEM);
        return out;
    }
    // SAFETY: `out` holds s.len() + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), out as *mut u8, s.len());
        *out.add(s.len()) = 0;
    }
    out
}

#[no_mangle]
pub unsafe extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    // SAFETY: realpath(3)'s arguments: `resolved` is NULL or PATH_MAX bytes.
    unsafe {
        match ask(path, |s, p| s.realpath(p)) {
            Some(Act::Done(Ok(p))) => give_string(&p, resolved, libc::PATH_MAX as usize),
            Some(Act::Done(Err(e))) => {
                set_errno(e.0);
                std::ptr::null_mut()
            }
            Some(Act::Real(Some(p))) => real::realpath(cstring(p).as_ptr(), resolved),
            _ => real::realpath(path, resolved),
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn __realpath_chk(
    path: *const c_char,
    resolved: *mut c_char,
    _len: usize,
) -> *mut c_char {
    // SAFETY: FORTIFY's realpath; the buffer is at least PATH_MAX as realpath requires.
    unsafe { realpath(path, resolved) }
}

#[no_mangle]
pub unsafe extern "C" fn canonicalize_file_name(path: *const c_char) -> *mut c_char {
    // SAFETY: realpath with a NULL buffer, which is what this is.
    unsafe { realpath(path, std::ptr::null_mut()) }
}

// ---- directories ------------------------------------------------------------------------------

/// A directory stream of the view, handed out as a `DIR *`.
struct ShimDir {
    stream: DirStream,
    ent: libc::dirent64,
}

fn is_ours(d: *mut libc::DIR) -> bool {
    with(|s| s.dirs.contains(&(d as usize))).unwrap_or(false)
}

fn hand_out(stream: DirStream) -> *mut libc::DIR {
    // SAFETY: dirent64 is plain data; all zero is valid.
    let ent: libc::dirent64 = unsafe { std::mem::zeroed() };
    let p = Box::into_raw(Box::new(ShimDir { stream, ent }));
    with(|s| s.dirs.insert(p as usize));
    p as *mut libc::DIR
}

#[no_mangle]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    // SAFETY: opendir(3)'s argument.
    unsafe {
        match ask(path, |s, p| s.opendir(p)) {
            Some(Act::Done(Ok(stream))) => hand_out(stream),
            Some(Act::Done(Err(e))) => {
                set_errno(e.0);
                std::ptr::null_mut()
            }
            Some(Act::Real(Some(p))) => real::opendir(cstring(p).as_ptr()),
            _ => real::opendir(path),
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn fdopendir(fd: c_int) -> *mut libc::DIR {
    match with(|s| s.fdopendir(fd)).flatten() {
        Some(Ok(stream)) => hand_out(stream),
        Some(Err(e)) => {
            set_errno(e.0);
            std::ptr::null_mut()
        }
        // SAFETY: the real call with the caller's argument.
        None => unsafe { real::fdopendir(fd) },
    }
}

/// The next entry of one of our streams, written into its dirent.
///
/// # Safety
/// `d` is one of ours (checked with [`is_ours`]).
unsafe fn next_entry(d: *mut libc::DIR) -> *mut libc::dirent64 {
    // SAFETY: `d` came from `hand_out` and is not freed until closedir.
    let sd = unsafe { &mut *(d as *mut ShimDir) };
    let Some(e): Option<&DirEntry> = sd.stream.entries.get(sd.stream.pos) else {
        return std::ptr::null_mut();
    };
    sd.stream.pos += 1;
    let n = e.name.len().min(sd.ent.d_name.len() - 1);
    sd.ent.d_ino = e.ino;
    sd.ent.d_off = sd.stream.pos as i64;
    sd.ent.d_reclen = std::mem::size_of::<libc::dirent64>() as u16;
    sd.ent.d_type = e.kind.d_type();
    for (i, b) in e.name[..n].iter().enumerate() {
        sd.ent.d_name[i] = *b as c_char;
    }
    sd.ent.d_name[n] = 0;
    &mut sd.ent
}

#[no_mangle]
pub unsafe extern "C" fn readdir64(d: *mut libc::DIR) -> *mut libc::dirent64 {
    if is_ours(d) {
        // SAFETY: checked just above.
        return unsafe { next_entry(d) };
    }
    // SAFETY: a real stream.
    unsafe { real::readdir64(d) }
}

#[no_mangle]
pub unsafe extern "C" fn readdir(d: *mut libc::DIR) -> *mut libc::dirent {
    if is_ours(d) {
        // SAFETY: checked just above; on 64-bit glibc `struct dirent` and `struct dirent64`
        // have the same layout.
        return unsafe { next_entry(d) } as *mut libc::dirent;
    }
    // SAFETY: a real stream.
    unsafe { real::readdir(d) }
}

#[no_mangle]
pub unsafe extern "C" fn closedir(d: *mut libc::DIR) -> c_int {
    if is_ours(d) {
        with(|s| s.dirs.remove(&(d as usize)));
        // SAFETY: made by Box::into_raw in `hand_out`, removed from the set just now, so
        // freed once.
        let sd = unsafe { Box::from_raw(d as *mut ShimDir) };
        // SAFETY: the stream's descriptor, owned by the stream.
        return unsafe { close(sd.stream.fd) };
    }
    // SAFETY: a real stream.
    unsafe { real::closedir(d) }
}

#[no_mangle]
pub unsafe extern "C" fn dirfd(d: *mut libc::DIR) -> c_int {
    if is_ours(d) {
        // SAFETY: one of ours, alive until closedir.
        return unsafe { (*(d as *mut ShimDir)).stream.fd };
    }
    // SAFETY: a real stream.
    unsafe { real::dirfd(d) }
}

#[no_mangle]
pub unsafe extern "C" fn rewinddir(d: *mut libc::DIR) {
    if is_ours(d) {
        // SAFETY: one of ours, alive until closedir.
        unsafe { (*(d as *mut ShimDir)).stream.pos = 0 };
        return;
    }
    // SAFETY: a real stream.
    unsafe { real::rewinddir(d) }
}

#[no_mangle]
pub unsafe extern "C" fn telldir(d: *mut libc::DIR) -> libc::c_long {
    if is_ours(d) {
        // SAFETY: one of ours, alive until closedir.
        return unsafe { (*(d as *mut ShimDir)).stream.pos } as libc::c_long;
    }
    // SAFETY: a real stream.
    unsafe { real::telldir(d) }
}

#[no_mangle]
pub unsafe extern "C" fn seekdir(d: *mut libc::DIR, at: libc::c_long) {
    if is_ours(d) {
        // SAFETY: one of ours, alive until closedir; a position past the end reads nothing.
        unsafe { (*(d as *mut ShimDir)).stream.pos = at.max(0) as usize };
        return;
    }
    // SAFETY: a real stream.
    unsafe { real::seekdir(d, at) }
}

#[no_mangle]
pub unsafe extern "C" fn readdir64_r(
    d: *mut libc::DIR,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    if is_ours(d) {
        // SAFETY: one of ours; `entry` and `result` are the caller's, as readdir_r(3) says.
        return unsafe { hooks::readdir_r_into(next_entry(d), entry, result) };
    }
    // SAFETY: a real stream.
    unsafe { real::readdir64_r(d, entry, result) }
}

#[no_mangle]
pub unsafe extern "C" fn readdir_r(
    d: *mut libc::DIR,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    // SAFETY: readdir_r(3)'s arguments; on 64-bit glibc both entry types are one layout.
    unsafe { readdir64_r(d, entry, result) }
}

type Filter = Option<unsafe extern "C" fn(*const libc::dirent) -> c_int>;
type Compar = hooks::Compar;

#[no_mangle]
pub unsafe extern "C" fn scandir(
    path: *const c_char,
    list: *mut *mut *mut libc::dirent,
    filter: Filter,
    compar: Compar,
) -> c_int {
    // SAFETY: scandir(3)'s arguments; glibc's own scandir reads the directory with internal
    // calls the shim cannot see, so a view directory is listed here, into malloc'd entries
    // the caller frees as it would glibc's.
    unsafe {
        let stream = match ask(path, |s, p| s.opendir(p)) {
            Some(Act::Done(Ok(stream))) => stream,
            Some(Act::Done(Err(e))) => return fail(e),
            _ => {
                return real::scandir(
                    path,
                    list as *mut c_void,
                    filter.map_or(std::ptr::null(), |f| f as *const c_void),
                    compar.map_or(std::ptr::null(), |f| f as *const c_void),
                )
            }
        };
        let d = hand_out(stream);
        hooks::scandir_list(
            || next_entry(d) as *const libc::dirent,
            || {
                closedir(d);
            },
            list,
            filter,
            compar,
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn scandir64(
    path: *const c_char,
    list: *mut *mut *mut libc::dirent,
    filter: Filter,
    compar: Compar,
) -> c_int {
    // SAFETY: as scandir; the 64 variant has the same layout on 64-bit glibc.
    unsafe { scandir(path, list, filter, compar) }
}

// ---- cwd ------------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    // SAFETY: chdir(2)'s argument.
    unsafe { hooks::chdir(path, |p| real::chdir(p)) }
}

#[no_mangle]
pub unsafe extern "C" fn fchdir(fd: c_int) -> c_int {
    // SAFETY: the real call with the caller's argument.
    hooks::fchdir(fd, |fd| unsafe { real::fchdir(fd) })
}

#[no_mangle]
pub unsafe extern "C" fn getcwd(buf: *mut c_char, size: usize) -> *mut c_char {
    match with(|s| s.getcwd().to_vec()) {
        Some(cwd) => {
            if !buf.is_null() && size == 0 {
                set_errno(libc::EINVAL);
                return std::ptr::null_mut();
            }
            // SAFETY: `buf` is NULL (glibc allocates) or holds `size` bytes.
            unsafe { give_string(&cwd, buf, size) }
        }
        // SAFETY: the real call with the caller's arguments.
        None => unsafe { real::getcwd(buf, size) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn __getcwd_chk(
    buf: *mut c_char,
    size: usize,
    _buflen: usize,
) -> *mut c_char {
    // SAFETY: FORTIFY's getcwd: `buf` holds `size` bytes.
    unsafe { getcwd(buf, size) }
}

#[no_mangle]
pub unsafe extern "C" fn get_current_dir_name() -> *mut c_char {
    // SAFETY: getcwd with a NULL buffer allocates, as this function does.
    unsafe { getcwd(std::ptr::null_mut(), 0) }
}

#[no_mangle]
pub unsafe extern "C" fn umask(mask: Mode) -> Mode {
    // SAFETY: umask(2) cannot fail.
    let old = unsafe { real::umask(mask) };
    with(|s| s.set_umask(mask));
    old
}

// ---- descriptors --------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    crate::state::fd_gone(fd);
    if crate::state::has_view_fds() {
        with(|s| s.closed(fd));
    }
    // SAFETY: the real call with the caller's argument.
    unsafe { real::close(fd) }
}

// glibc closes a stream's descriptor, and the ranges below, with private calls that never
// reach `close`: without these the view would keep answering for a number the kernel
// hands out again (an archive opened after the Makefile was read and closed).

#[no_mangle]
pub unsafe extern "C" fn fclose(f: *mut libc::FILE) -> c_int {
    if !f.is_null() && crate::state::has_view_fds() {
        // SAFETY: the caller's stream, still open.
        let fd = unsafe { libc::fileno(f) };
        if fd >= 0 {
            crate::state::fd_gone(fd);
            with(|s| s.closed(fd));
        }
    }
    // SAFETY: the real call with the caller's argument.
    unsafe { real::fclose(f) }
}

#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    // SAFETY: the real call with the caller's arguments.
    let r = unsafe { real::close_range(first, last, flags) };
    // With CLOSE_RANGE_CLOEXEC nothing is closed now; exec closes them, and a child checks
    // which descriptors it still has.
    if r == 0 && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        crate::state::fds_gone(first, last);
        if crate::state::has_view_fds() {
            with(|s| s.closed_range(first, last));
        }
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn closefrom(low: c_int) {
    // SAFETY: the real call with the caller's argument.
    unsafe { real::closefrom(low) };
    crate::state::fds_gone(low.max(0) as c_uint, c_uint::MAX);
    if crate::state::has_view_fds() {
        with(|s| s.closed_range(low.max(0) as c_uint, c_uint::MAX));
    }
}

#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the real call with the caller's argument.
    let r = unsafe { real::dup(fd) };
    if r >= 0 && crate::state::has_view_fds() {
        with(|s| s.duped(fd, r));
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    crate::state::fd_gone(new);
    // SAFETY: the real call with the caller's arguments.
    let r = unsafe { real::dup2(old, new) };
    if r >= 0 && old != new && crate::state::has_view_fds() {
        with(|s| s.duped(old, r));
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    crate::state::fd_gone(new);
    // SAFETY: the real call with the caller's arguments.
    let r = unsafe { real::dup3(old, new, flags) };
    if r >= 0 && crate::state::has_view_fds() {
        with(|s| s.duped(old, r));
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: the real call with the caller's arguments (the third, when the command takes
    // none, is whatever the register held, which the kernel ignores).
    let r = unsafe { real::fcntl(fd, cmd, arg) };
    if r >= 0
        && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC)
        && crate::state::has_view_fds()
    {
        with(|s| s.duped(fd, r));
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: as fcntl.
    unsafe { fcntl(fd, cmd, arg) }
}

// ---- exec -----------------------------------------------------------------------------------

/// A NULL-terminated array of C strings as byte strings.
///
/// # Safety
/// `v` is NULL or a NULL-terminated array of C strings.
unsafe fn strings(v: *const *const c_char) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if v.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: within the array, up to and including its NULL.
        let p = unsafe { *v.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: a C string of the array.
        out.push(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec());
        i += 1;
    }
    out
}

/// The environment for a child, and the path to run (the view's file, when it is one).
struct Child {
    path: Option<CString>,
    env: Vec<CString>,
}

impl Child {
    fn env_ptrs(&self) -> Vec<*const c_char> {
        self.env
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    }
}

/// # Safety
/// `path` and `envp` as for execve.
unsafe fn child(path: *const c_char, envp: *const *const c_char) -> Result<Option<Child>, Errno> {
    // SAFETY: the caller's arguments.
    let (p, env) = unsafe { (bytes(path), strings(envp)) };
    let Some(p) = p else { return Ok(None) };
    let r = with(|s| {
        let target = s.exec(p);
        (target, s.child_environment(env))
    });
    let Some((target, env)) = r else {
        return Ok(None);
    };
    let path = match target {
        Act::Done(Ok(t)) => Some(cstring(t)),
        Act::Done(Err(e)) => return Err(e),
        Act::Real(Some(t)) => Some(cstring(t)),
        Act::Real(None) | Act::RealBoth(..) => None,
    };
    Ok(Some(Child {
        path,
        env: env
            .into_iter()
            .filter_map(|l| CString::new(l).ok())
            .collect(),
    }))
}

#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: execve(2)'s arguments.
    unsafe {
        match child(path, envp) {
            Err(e) => fail(e),
            Ok(None) => real::execve(path, argv, envp),
            Ok(Some(c)) => {
                let env = c.env_ptrs();
                let p = c.path.as_ref().map_or(path, |p| p.as_ptr());
                real::execve(p, argv, env.as_ptr())
            }
        }
    }
}

fn environ() -> *const *const c_char {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: glibc's environ, read once (the program's current environment).
    unsafe { environ }
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: execv(3) is execve with the current environment.
    unsafe { execve(path, argv, environ()) }
}

/// Search PATH as execvp does, running each candidate through our execve.
///
/// # Safety
/// execvpe(3)'s arguments.
unsafe fn search_exec(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe {
        let Some(name) = bytes(file) else {
            return fail(Errno::ENOENT);
        };
        if name.is_empty() {
            return fail(Errno::ENOENT);
        }
        if name.contains(&b'/') {
            return execve(file, argv, envp);
        }
        let path = std::env::var_os("PATH")
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
        let mut denied = false;
        for dir in path.split(|&b| b == b':') {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut cand = dir.to_vec();
            cand.push(b'/');
            cand.extend_from_slice(name);
            let c = cstring(cand);
            execve(c.as_ptr(), argv, envp);
            match *libc::__errno_location() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return -1,
            }
        }
        fail(if denied { Errno::EACCES } else { Errno::ENOENT })
    }
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: execvp(3)'s arguments.
    unsafe { search_exec(file, argv, environ()) }
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: execvpe(3)'s arguments.
    unsafe { search_exec(file, argv, envp) }
}

/// # Safety
/// posix_spawn(3)'s arguments, with `path` already searched for.
unsafe fn do_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    fa: *const c_void,
    attr: *const c_void,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe {
        match child(path, envp as *const *const c_char) {
            Err(e) => e.0,
            Ok(None) => real::posix_spawn(pid, path, fa, attr, argv, envp),
            Ok(Some(c)) => {
                let env = c.env_ptrs();
                let p = c.path.as_ref().map_or(path, |p| p.as_ptr());
                real::posix_spawn(pid, p, fa, attr, argv, env.as_ptr() as *const *mut c_char)
            }
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    fa: *const c_void,
    attr: *const c_void,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: posix_spawn(3)'s arguments.
    unsafe { do_spawn(pid, path, fa, attr, argv, envp) }
}

#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut libc::pid_t,
    file: *const c_char,
    fa: *const c_void,
    attr: *const c_void,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: posix_spawnp(3)'s arguments; PATH is searched here so that a program of the
    // view is found as the kernel would find it.
    unsafe {
        let Some(name) = bytes(file) else {
            return libc::ENOENT;
        };
        if name.contains(&b'/') {
            return do_spawn(pid, file, fa, attr, argv, envp);
        }
        let found = hooks::search_path(name, |c| {
            let mut st: libc::stat = std::mem::zeroed();
            do_access(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, 0) == 0
                && do_stat(libc::AT_FDCWD, c.as_ptr(), &mut st, 0) == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFREG
        });
        match found {
            Some(c) => do_spawn(pid, c.as_ptr(), fa, attr, argv, envp),
            None => libc::ENOENT,
        }
    }
}

// ---- changes ----------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: Mode) -> c_int {
    // SAFETY: mkdirat(2)'s arguments.
    unsafe { hooks::mkdirat(dirfd, path, mode, |d, p| real::mkdirat(d, p, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: libc::uid_t,
    gid: libc::gid_t,
    flags: c_int,
) -> c_int {
    // SAFETY: fchownat(2)'s arguments.
    unsafe {
        hooks::fchownat(dirfd, path, uid, gid, flags, |d, p| {
            real::fchownat(d, p, uid, gid, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn chown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    // SAFETY: chown(2)'s arguments.
    unsafe { fchownat(libc::AT_FDCWD, path, uid, gid, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn lchown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    // SAFETY: lchown(2)'s arguments.
    unsafe { fchownat(libc::AT_FDCWD, path, uid, gid, libc::AT_SYMLINK_NOFOLLOW) }
}

#[no_mangle]
pub unsafe extern "C" fn fchown(fd: c_int, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    // SAFETY: the real call with the caller's arguments.
    hooks::fchown(fd, uid, gid, || unsafe { real::fchown(fd, uid, gid) })
}

/// mknod, mknodat: an empty regular file (type 0 or S_IFREG) is made in the view, as
/// `tar --xattrs` makes each file before it sets the file's xattrs and writes it; FIFOs,
/// sockets and device nodes are not served (the kernel gets the call, see
/// docs/ARCHITECTURE.md, the shim).
///
/// # Safety
/// `path` is NULL or a C string.
unsafe fn do_mknod(dirfd: c_int, path: *const c_char, mode: Mode, dev: libc::dev_t) -> c_int {
    let regular = mode & libc::S_IFMT == 0 || mode & libc::S_IFMT == libc::S_IFREG;
    // SAFETY: mknodat(2)'s arguments.
    unsafe {
        let act = if regular {
            ask(path, |s, p| {
                s.change_path(at(dirfd), p, |path| Op::Mknod {
                    path,
                    mode,
                    rdev: 0,
                })
            })
        } else {
            None
        };
        changed(act, |p| match p {
            Some(p) => {
                libc::syscall(libc::SYS_mknodat, libc::AT_FDCWD, p.as_ptr(), mode, dev) as c_int
            }
            None => libc::syscall(libc::SYS_mknodat, dirfd, path, mode, dev) as c_int,
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn mknodat(
    dirfd: c_int,
    path: *const c_char,
    mode: Mode,
    dev: libc::dev_t,
) -> c_int {
    // SAFETY: mknodat(2)'s arguments.
    unsafe { do_mknod(dirfd, path, mode, dev) }
}

#[no_mangle]
pub unsafe extern "C" fn mknod(path: *const c_char, mode: Mode, dev: libc::dev_t) -> c_int {
    // SAFETY: mknod(2)'s arguments.
    unsafe { do_mknod(libc::AT_FDCWD, path, mode, dev) }
}

/// glibc's pre-2.33 name of mknodat (the device number by pointer).
#[no_mangle]
pub unsafe extern "C" fn __xmknodat(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    mode: Mode,
    dev: *const libc::dev_t,
) -> c_int {
    // SAFETY: __xmknodat's arguments; `dev` is NULL or readable.
    unsafe { do_mknod(dirfd, path, mode, if dev.is_null() { 0 } else { *dev }) }
}

/// glibc's pre-2.33 name of mknod.
#[no_mangle]
pub unsafe extern "C" fn __xmknod(
    _ver: c_int,
    path: *const c_char,
    mode: Mode,
    dev: *const libc::dev_t,
) -> c_int {
    // SAFETY: as __xmknodat.
    unsafe {
        do_mknod(
            libc::AT_FDCWD,
            path,
            mode,
            if dev.is_null() { 0 } else { *dev },
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn mkdir(path: *const c_char, mode: Mode) -> c_int {
    // SAFETY: mkdir(2)'s arguments.
    unsafe { mkdirat(libc::AT_FDCWD, path, mode) }
}

#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: unlinkat(2)'s arguments.
    unsafe { hooks::unlinkat(dirfd, path, flags, |d, p| real::unlinkat(d, p, flags)) }
}

#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    // SAFETY: unlink(2)'s argument.
    unsafe { unlinkat(libc::AT_FDCWD, path, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    // SAFETY: rmdir(2)'s argument.
    unsafe {
        hooks::change_at(
            libc::AT_FDCWD,
            path,
            |path| Op::Rmdir { path },
            |_, p| real::rmdir(p),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn renameat2(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    // SAFETY: renameat2(2)'s arguments.
    unsafe {
        hooks::renameat(olddirfd, old, newdirfd, new, flags, |a, p, b, q| {
            real::renameat2(a, p, b, q, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn renameat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
) -> c_int {
    // SAFETY: renameat(2)'s arguments.
    unsafe { renameat2(olddirfd, old, newdirfd, new, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: rename(2)'s arguments.
    unsafe { renameat2(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn linkat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    // SAFETY: linkat(2)'s arguments.
    unsafe {
        hooks::linkat(olddirfd, old, newdirfd, new, flags, |a, p, b, q| {
            real::linkat(a, p, b, q, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: link(2)'s arguments.
    unsafe { linkat(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn symlinkat(
    target: *const c_char,
    dirfd: c_int,
    path: *const c_char,
) -> c_int {
    // SAFETY: symlinkat(2)'s arguments.
    unsafe { hooks::symlinkat(target, dirfd, path, |d, p| real::symlinkat(target, d, p)) }
}

#[no_mangle]
pub unsafe extern "C" fn symlink(target: *const c_char, path: *const c_char) -> c_int {
    // SAFETY: symlink(2)'s arguments.
    unsafe { symlinkat(target, libc::AT_FDCWD, path) }
}

#[no_mangle]
pub unsafe extern "C" fn fchmodat(
    dirfd: c_int,
    path: *const c_char,
    mode: Mode,
    flags: c_int,
) -> c_int {
    // SAFETY: fchmodat(2)'s arguments.
    unsafe {
        hooks::fchmodat(dirfd, path, mode, flags, |d, p| {
            real::fchmodat(d, p, mode, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn chmod(path: *const c_char, mode: Mode) -> c_int {
    // SAFETY: chmod(2)'s arguments.
    unsafe { fchmodat(libc::AT_FDCWD, path, mode, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn fchmod(fd: c_int, mode: Mode) -> c_int {
    // SAFETY: the real call with the caller's arguments.
    hooks::fchmod(fd, mode, || unsafe { real::fchmod(fd, mode) })
}

#[no_mangle]
pub unsafe extern "C" fn utimensat(
    dirfd: c_int,
    path: *const c_char,
    t: *const libc::timespec,
    flags: c_int,
) -> c_int {
    // SAFETY: utimensat(2)'s arguments (a NULL path is futimens on `dirfd`).
    unsafe {
        if path.is_null() {
            let ts = hooks::times(t);
            let act = with(|s| s.change_fd(dirfd, |p| Shim::utimens_op(p, ts, true)));
            return changed(act, |p| match p {
                Some(p) => real::utimensat(libc::AT_FDCWD, p.as_ptr(), t, flags),
                None => real::utimensat(dirfd, path, t, flags),
            });
        }
        hooks::utimensat(dirfd, path, t, flags, |d, p| {
            real::utimensat(d, p, t, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn futimens(fd: c_int, t: *const libc::timespec) -> c_int {
    // SAFETY: futimens(3)'s arguments.
    unsafe { hooks::futimens(fd, t, || real::futimens(fd, t)) }
}

#[no_mangle]
pub unsafe extern "C" fn utimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    // SAFETY: utimes(2)'s arguments: NULL or two timevals.
    unsafe {
        if tv.is_null() {
            return utimensat(libc::AT_FDCWD, path, std::ptr::null(), 0);
        }
        let (a, m) = (*tv, *tv.add(1));
        let ts = [
            libc::timespec {
                tv_sec: a.tv_sec,
                tv_nsec: a.tv_usec * 1000,
            },
            libc::timespec {
                tv_sec: m.tv_sec,
                tv_nsec: m.tv_usec * 1000,
            },
        ];
        utimensat(libc::AT_FDCWD, path, ts.as_ptr(), 0)
    }
}

#[no_mangle]
pub unsafe extern "C" fn truncate(path: *const c_char, len: libc::off_t) -> c_int {
    // SAFETY: truncate(2)'s arguments.
    unsafe { hooks::truncate(path, len, |p| real::truncate(p, len)) }
}

#[no_mangle]
pub unsafe extern "C" fn truncate64(path: *const c_char, len: libc::off_t) -> c_int {
    // SAFETY: as truncate.
    unsafe { truncate(path, len) }
}

// ---- extended attributes ------------------------------------------------------------------------

// The view's extended attributes (`View::getxattr` and the rest), for paths and for
// descriptors of the view; everything else reaches the kernel through the system call
// itself (glibc's functions are plain wrappers of it).

macro_rules! getxattr_hooks {
    ($($name:ident => $follow:expr),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, name: *const c_char, value: *mut c_void, size: usize) -> isize {
            // SAFETY: getxattr(2)'s arguments.
            unsafe {
                let act = match xattr_name(name) {
                    Some(n) => ask(path, |s, p| s.getxattr(XattrTarget::Path(p, $follow), n)),
                    None => None,
                };
                give_xattr(act, value, size, |p| match p {
                    Some(p) => real_xattr::$name(p.as_ptr(), name, value, size),
                    None => real_xattr::$name(path, name, value, size),
                })
            }
        }
    )*};
}
macro_rules! listxattr_hooks {
    ($($name:ident => $follow:expr),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, list: *mut c_char, size: usize) -> isize {
            // SAFETY: listxattr(2)'s arguments.
            unsafe {
                let act = ask(path, |s, p| s.listxattr(XattrTarget::Path(p, $follow)));
                give_xattr(act, list as *mut c_void, size, |p| match p {
                    Some(p) => real_xattr::$name(p.as_ptr(), list, size),
                    None => real_xattr::$name(path, list, size),
                })
            }
        }
    )*};
}
macro_rules! setxattr_hooks {
    ($($name:ident => $follow:expr),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, name: *const c_char, value: *const c_void, size: usize, flags: c_int) -> c_int {
            // SAFETY: setxattr(2)'s arguments.
            unsafe {
                let act = match (xattr_name(name), xattr_value(value, size)) {
                    (Some(n), Some(v)) => ask(path, |s, p| {
                        s.setxattr(XattrTarget::Path(p, $follow), n, v, flags as u32)
                    }),
                    _ => None,
                };
                changed(act, |p| match p {
                    Some(p) => real_xattr::$name(p.as_ptr(), name, value, size, flags),
                    None => real_xattr::$name(path, name, value, size, flags),
                })
            }
        }
    )*};
}
macro_rules! removexattr_hooks {
    ($($name:ident => $follow:expr),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, name: *const c_char) -> c_int {
            // SAFETY: removexattr(2)'s arguments.
            unsafe {
                let act = match xattr_name(name) {
                    Some(n) => ask(path, |s, p| s.removexattr(XattrTarget::Path(p, $follow), n)),
                    None => None,
                };
                changed(act, |p| match p {
                    Some(p) => real_xattr::$name(p.as_ptr(), name),
                    None => real_xattr::$name(path, name),
                })
            }
        }
    )*};
}

#[no_mangle]
pub unsafe extern "C" fn fgetxattr(
    fd: c_int,
    name: *const c_char,
    value: *mut c_void,
    size: usize,
) -> isize {
    // SAFETY: fgetxattr(2)'s arguments.
    unsafe {
        let act = match xattr_name(name) {
            Some(n) => with(|s| s.getxattr(XattrTarget::Fd(fd), n)),
            None => None,
        };
        give_xattr(act, value, size, |_| {
            real_xattr::fgetxattr(fd, name, value, size)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn flistxattr(fd: c_int, list: *mut c_char, size: usize) -> isize {
    // SAFETY: flistxattr(2)'s arguments.
    unsafe {
        let act = with(|s| s.listxattr(XattrTarget::Fd(fd)));
        give_xattr(act, list as *mut c_void, size, |_| {
            real_xattr::flistxattr(fd, list, size)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn fsetxattr(
    fd: c_int,
    name: *const c_char,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    // SAFETY: fsetxattr(2)'s arguments.
    unsafe {
        let act = match (xattr_name(name), xattr_value(value, size)) {
            (Some(n), Some(v)) => with(|s| s.setxattr(XattrTarget::Fd(fd), n, v, flags as u32)),
            _ => None,
        };
        changed(act, |_| real_xattr::fsetxattr(fd, name, value, size, flags))
    }
}

#[no_mangle]
pub unsafe extern "C" fn fremovexattr(fd: c_int, name: *const c_char) -> c_int {
    // SAFETY: fremovexattr(2)'s arguments.
    unsafe {
        let act = match xattr_name(name) {
            Some(n) => with(|s| s.removexattr(XattrTarget::Fd(fd), n)),
            None => None,
        };
        changed(act, |_| real_xattr::fremovexattr(fd, name))
    }
}

/// The xattr system calls themselves, for what the view does not serve.
mod real_xattr {
    use std::ffi::{c_char, c_int, c_void};
    pub unsafe fn getxattr(p: *const c_char, n: *const c_char, v: *mut c_void, s: usize) -> isize {
        // SAFETY: the caller's arguments, to the system call itself.
        unsafe { libc::syscall(libc::SYS_getxattr, p, n, v, s) as isize }
    }
    pub unsafe fn lgetxattr(p: *const c_char, n: *const c_char, v: *mut c_void, s: usize) -> isize {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_lgetxattr, p, n, v, s) as isize }
    }
    pub unsafe fn fgetxattr(fd: c_int, n: *const c_char, v: *mut c_void, s: usize) -> isize {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_fgetxattr, fd, n, v, s) as isize }
    }
    pub unsafe fn listxattr(p: *const c_char, l: *mut c_char, s: usize) -> isize {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_listxattr, p, l, s) as isize }
    }
    pub unsafe fn llistxattr(p: *const c_char, l: *mut c_char, s: usize) -> isize {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_llistxattr, p, l, s) as isize }
    }
    pub unsafe fn flistxattr(fd: c_int, l: *mut c_char, s: usize) -> isize {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_flistxattr, fd, l, s) as isize }
    }
    pub unsafe fn setxattr(
        p: *const c_char,
        n: *const c_char,
        v: *const c_void,
        s: usize,
        f: c_int,
    ) -> c_int {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_setxattr, p, n, v, s, f) as c_int }
    }
    pub unsafe fn lsetxattr(
        p: *const c_char,
        n: *const c_char,
        v: *const c_void,
        s: usize,
        f: c_int,
    ) -> c_int {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_lsetxattr, p, n, v, s, f) as c_int }
    }
    pub unsafe fn fsetxattr(
        fd: c_int,
        n: *const c_char,
        v: *const c_void,
        s: usize,
        f: c_int,
    ) -> c_int {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_fsetxattr, fd, n, v, s, f) as c_int }
    }
    pub unsafe fn removexattr(p: *const c_char, n: *const c_char) -> c_int {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_removexattr, p, n) as c_int }
    }
    pub unsafe fn lremovexattr(p: *const c_char, n: *const c_char) -> c_int {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_lremovexattr, p, n) as c_int }
    }
    pub unsafe fn fremovexattr(fd: c_int, n: *const c_char) -> c_int {
        // SAFETY: as getxattr.
        unsafe { libc::syscall(libc::SYS_fremovexattr, fd, n) as c_int }
    }
}

getxattr_hooks!(getxattr => true, lgetxattr => false);
listxattr_hooks!(listxattr => true, llistxattr => false);
setxattr_hooks!(setxattr => true, lsetxattr => false);
removexattr_hooks!(removexattr => true, lremovexattr => false);

// ---- temporary files ---------------------------------------------------------------------------

// glibc's mkstemp family opens with a private call: a template in the view is filled and
// created here, through the view's open.

/// # Safety
/// `template` is a writable C string ending in "XXXXXX" then `suffix` bytes.
unsafe fn do_mkstemp(template: *mut c_char, suffix: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's template, writable and NUL-terminated.
    unsafe {
        let Some(t) = bytes(template) else {
            return fail(Errno::EINVAL);
        };
        let len = t.len();
        let suffix = suffix.max(0) as usize;
        if len < 6 + suffix || &t[len - 6 - suffix..len - suffix] != b"XXXXXX" {
            return fail(Errno::EINVAL);
        }
        let in_view = with(|s| {
            s.abs(None, t)
                .is_some_and(|a| s.may_enter(&a) && matches!(s.stat(None, t, false), Act::Done(_)))
        });
        if in_view != Some(true) {
            return real::mkostemps(template, suffix as c_int, flags & !libc::O_ACCMODE);
        }
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ ((std::process::id() as u64) << 32);
        for _ in 0..100 {
            let x = template.add(len - 6 - suffix) as *mut u8;
            for i in 0..6 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *x.add(i) = CHARS[(seed % CHARS.len() as u64) as usize];
            }
            let fd = do_open(
                libc::AT_FDCWD,
                template,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | (flags & !libc::O_ACCMODE),
                0o600,
            );
            if fd >= 0 || *libc::__errno_location() != libc::EEXIST {
                return fd;
            }
        }
        fail(Errno::EEXIST)
    }
}

#[no_mangle]
pub unsafe extern "C" fn mkstemp(template: *mut c_char) -> c_int {
    // SAFETY: mkstemp(3)'s arguments.
    unsafe { do_mkstemp(template, 0, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn mkstemp64(template: *mut c_char) -> c_int {
    // SAFETY: mkstemp64(3)'s arguments.
    unsafe { do_mkstemp(template, 0, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn mkostemp(template: *mut c_char, flags: c_int) -> c_int {
    // SAFETY: mkostemp(3)'s arguments.
    unsafe { do_mkstemp(template, 0, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn mkostemp64(template: *mut c_char, flags: c_int) -> c_int {
    // SAFETY: mkostemp64(3)'s arguments.
    unsafe { do_mkstemp(template, 0, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn mkstemps(template: *mut c_char, suffix: c_int) -> c_int {
    // SAFETY: mkstemps(3)'s arguments.
    unsafe { do_mkstemp(template, suffix, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn mkostemps(template: *mut c_char, suffix: c_int, flags: c_int) -> c_int {
    // SAFETY: mkostemps(3)'s arguments.
    unsafe { do_mkstemp(template, suffix, flags) }
}
