//! The Darwin layer: the same core, reached through dyld's interposition. dyld reads the
//! (replacement, original) pairs of the `__DATA,__interpose` section of every library
//! inserted with DYLD_INSERT_LIBRARIES and binds every other image's references to the
//! original to the replacement; the shim's own references keep reaching the originals, so
//! a hook calls libSystem's function by its plain name. Calls inside one of libSystem's
//! libraries (libsystem_c's scandir to its opendir) are not bound through dyld and are not
//! interposed; its calls to another (libsystem_c's readdir to libsystem_kernel's
//! `__getdirentries64`) are.
//!
//! The `libc` crate links `stat`, `lstat`, `fstat`, `fstatat`, `opendir`, `fdopendir`,
//! `readdir`, `readdir_r`, `rewinddir`, `telldir` and `seekdir` to their `$INODE64` names on
//! x86_64 and `realpath` to `realpath$DARWIN_EXTSN`, so the originals named below are the
//! ones programs call; `scandir$INODE64` is named here. `open$NOCANCEL`, `openat$NOCANCEL`
//! and `close$NOCANCEL` (what libSystem itself uses) are reached through `link_name`.
//!
//! On arm64, a variadic argument (open's mode) is passed on the stack, not in a register:
//! the hooks of the variadic functions take eight fixed arguments before it so that the
//! ninth is read from where the caller put it.
//!
//! Hooked, with the same core calls as the Linux layer's, whose end-to-end suites test that
//! core (the bodies the two share are in `hooks.rs`): open and open$NOCANCEL, the stat
//! family, access, getcwd, execve, posix_spawn(p), chdir and fchdir, readlink(at), close
//! and close$NOCANCEL, the changes (mkdir, unlink, rmdir, rename, link, symlink, chmod,
//! fchmod, with their *at forms), chown, lchown, fchown, fchownat, truncate, the times
//! (utimes, lutimes, futimes, utimensat, futimens), the xattr calls with macOS's options
//! and position (getxattr, setxattr, listxattr, removexattr and their f-forms), and the
//! directory streams: opendir, fdopendir, readdir, readdir_r, closedir, dirfd, rewinddir,
//! telldir, seekdir and scandir on a view directory make a stream of the shim's own (see
//! "directory streams" below), and `__getdirentries64` and lseek serve libSystem's own
//! streams on a view directory's descriptor. setattrlist and fsetattrlist setting the
//! times alone are the view's utimensat; getattrlist, getattrlistbulk and any other
//! setattrlist refuse view entries with ENOTSUP, so that libSystem falls back to calls the
//! core serves.
//!
//! Not hooked: openat (declared, not interposed), ftruncate (as on Linux: a descriptor the
//! view opened for writing is its private copy, which the kernel truncates), scandir_b, and
//! the x86_64 names with 32-bit inodes (their streams are libSystem's alone); the attribute
//! buffers of getattrlist and getattrlistbulk are not filled (refused, as above).
//!
//! Type-checked on Linux for both Apple targets (`scripts/check-darwin.sh`); not run here.
#![allow(clippy::missing_safety_doc)] // C entry points: their contract is libSystem's.

use std::ffi::{c_char, c_int, CStr, CString};

use vrift_common::vfs::{Errno, Stat};

use crate::core::{Act, DirStream, XattrTarget};
use crate::hooks::{
    self, ask, at, bytes, changed, cstring, fail, set_errno, xattr_name, xattr_value,
};
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
        #[link_name = "close$NOCANCEL"]
        pub fn close_nocancel(fd: c_int) -> c_int;
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

/// getattrlistbulk(2) on a view directory fd: refused (ENOTSUP), so its callers see an
/// error rather than the run's empty directory (the attribute buffers it fills are not
/// made here; `__getdirentries64`, below, lists a view directory for libSystem's readdir).
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

/// A program about to start: where the kernel should find it (`None`: as the caller named
/// it) and the environment it gets, with the shim's variables and DYLD_INSERT_LIBRARIES
/// put back.
struct Child {
    path: Option<CString>,
    env: Vec<CString>,
}

impl Child {
    /// `None` when the shim does not take the call; `Err` when the view refuses the program.
    ///
    /// # Safety
    /// `path` is NULL or a C string; `envp` is NULL or a NULL-terminated array of them.
    unsafe fn of(path: *const c_char, envp: *const *const c_char) -> Option<Result<Child, Errno>> {
        let mut env = Vec::new();
        let mut i = 0;
        // SAFETY: forwarded contract.
        unsafe {
            while !envp.is_null() && !(*envp.add(i)).is_null() {
                env.push(CStr::from_ptr(*envp.add(i)).to_bytes().to_vec());
                i += 1;
            }
        }
        // SAFETY: forwarded contract.
        let p = unsafe { bytes(path) }?;
        let (target, env) = with(|s| (s.exec(p), s.child_environment(env)))?;
        let path = match target {
            Act::Done(Ok(t)) | Act::Real(Some(t)) => Some(cstring(t)),
            Act::Done(Err(e)) => return Some(Err(e)),
            Act::Real(None) | Act::RealBoth(..) => None,
        };
        let env = env
            .into_iter()
            .filter_map(|l| CString::new(l).ok())
            .collect();
        Some(Ok(Child { path, env }))
    }

    fn path_or(&self, given: *const c_char) -> *const c_char {
        self.path.as_ref().map_or(given, |p| p.as_ptr())
    }

    /// The environment as a NULL-terminated array (valid while `self` is).
    fn env_ptrs(&self) -> Vec<*mut c_char> {
        self.env
            .iter()
            .map(|c| c.as_ptr() as *mut c_char)
            .chain([std::ptr::null_mut()])
            .collect()
    }
}

/// execve(2) with DYLD_INSERT_LIBRARIES put back into the child's environment.
pub unsafe extern "C" fn hook_execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: execve(2)'s arguments: C strings and NULL-terminated arrays of them.
    unsafe {
        match Child::of(path, envp) {
            None => libc::execve(path, argv, envp),
            Some(Err(e)) => fail(e),
            Some(Ok(c)) => {
                let env = c.env_ptrs();
                libc::execve(c.path_or(path), argv, env.as_ptr() as *const *const c_char)
            }
        }
    }
}
interpose!(I_EXECVE: hook_execve => libc::execve);

/// The view forgets a descriptor the program closes.
fn closing(fd: c_int) {
    if crate::state::has_view_fds() {
        with(|s| s.closed(fd));
        listing_gone(fd);
    }
}

pub unsafe extern "C" fn hook_close(fd: c_int) -> c_int {
    closing(fd);
    // SAFETY: the original with the caller's argument.
    unsafe { libc::close(fd) }
}
interpose!(I_CLOSE: hook_close => libc::close);

/// close$NOCANCEL, libSystem's own close (fclose, closedir), as [`hook_close`].
pub unsafe extern "C" fn hook_close_nocancel(fd: c_int) -> c_int {
    closing(fd);
    // SAFETY: the original with the caller's argument.
    unsafe { nocancel::close_nocancel(fd) }
}
interpose!(I_CLOSE_NC: hook_close_nocancel => nocancel::close_nocancel);

// ---- spawn, cwd, symlinks and the changes: the same core calls as the Linux layer's ------

/// posix_spawn(2) with the program found in the view and DYLD_INSERT_LIBRARIES put back
/// into the child's environment, as [`hook_execve`] does.
pub unsafe extern "C" fn hook_posix_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: posix_spawn(2)'s arguments: C strings and NULL-terminated arrays of them.
    unsafe {
        match Child::of(path, envp as *const *const c_char) {
            None => libc::posix_spawn(pid, path, fa, attr, argv, envp),
            // posix_spawn answers with the error number itself.
            Some(Err(e)) => e.0,
            Some(Ok(c)) => {
                let env = c.env_ptrs();
                libc::posix_spawn(pid, c.path_or(path), fa, attr, argv, env.as_ptr())
            }
        }
    }
}
interpose!(I_POSIX_SPAWN: hook_posix_spawn => libc::posix_spawn);

/// posix_spawnp(3): PATH is searched here, with the view's stat and access, so that a
/// program of the view is found as the kernel would find it.
pub unsafe extern "C" fn hook_posix_spawnp(
    pid: *mut libc::pid_t,
    file: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: posix_spawnp(3)'s arguments.
    unsafe {
        let Some(name) = bytes(file) else {
            return libc::ENOENT;
        };
        if name.contains(&b'/') {
            return hook_posix_spawn(pid, file, fa, attr, argv, envp);
        }
        let found = hooks::search_path(name, |c| {
            let mut st: libc::stat = std::mem::zeroed();
            hook_access(c.as_ptr(), libc::X_OK) == 0
                && do_stat(libc::AT_FDCWD, c.as_ptr(), &mut st, 0) == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFREG
        });
        match found {
            Some(c) => hook_posix_spawn(pid, c.as_ptr(), fa, attr, argv, envp),
            None => libc::ENOENT,
        }
    }
}
interpose!(I_POSIX_SPAWNP: hook_posix_spawnp => libc::posix_spawnp);

pub unsafe extern "C" fn hook_chdir(path: *const c_char) -> c_int {
    // SAFETY: chdir(2)'s argument.
    unsafe { hooks::chdir(path, |p| libc::chdir(p)) }
}
interpose!(I_CHDIR: hook_chdir => libc::chdir);

pub unsafe extern "C" fn hook_fchdir(fd: c_int) -> c_int {
    // SAFETY: the original with the caller's argument.
    hooks::fchdir(fd, |fd| unsafe { libc::fchdir(fd) })
}
interpose!(I_FCHDIR: hook_fchdir => libc::fchdir);

/// # Safety
/// readlinkat(2)'s arguments.
unsafe fn do_readlink(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: libc::size_t,
) -> libc::ssize_t {
    // SAFETY: the caller's arguments; at most `size` bytes are written to `buf`.
    unsafe {
        match ask(path, |s, p| s.readlink(at(dirfd), p)) {
            Some(Act::Done(Ok(t))) => {
                let n = t.len().min(size);
                std::ptr::copy_nonoverlapping(t.as_ptr(), buf as *mut u8, n);
                n as libc::ssize_t
            }
            Some(Act::Done(Err(e))) => fail(e) as libc::ssize_t,
            Some(Act::Real(Some(p))) => {
                libc::readlinkat(libc::AT_FDCWD, cstring(p).as_ptr(), buf, size)
            }
            _ => libc::readlinkat(dirfd, path, buf, size),
        }
    }
}

pub unsafe extern "C" fn hook_readlink(
    path: *const c_char,
    buf: *mut c_char,
    size: libc::size_t,
) -> libc::ssize_t {
    // SAFETY: readlink(2)'s arguments.
    unsafe { do_readlink(libc::AT_FDCWD, path, buf, size) }
}
interpose!(I_READLINK: hook_readlink => libc::readlink);

pub unsafe extern "C" fn hook_readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: libc::size_t,
) -> libc::ssize_t {
    // SAFETY: readlinkat(2)'s arguments.
    unsafe { do_readlink(dirfd, path, buf, size) }
}
interpose!(I_READLINKAT: hook_readlinkat => libc::readlinkat);

pub unsafe extern "C" fn hook_mkdirat(
    dirfd: c_int,
    path: *const c_char,
    mode: libc::mode_t,
) -> c_int {
    // SAFETY: mkdirat(2)'s arguments.
    unsafe {
        hooks::mkdirat(dirfd, path, u32::from(mode), |d, p| {
            libc::mkdirat(d, p, mode)
        })
    }
}
interpose!(I_MKDIRAT: hook_mkdirat => libc::mkdirat);

pub unsafe extern "C" fn hook_mkdir(path: *const c_char, mode: libc::mode_t) -> c_int {
    // SAFETY: mkdir(2)'s arguments.
    unsafe { hook_mkdirat(libc::AT_FDCWD, path, mode) }
}
interpose!(I_MKDIR: hook_mkdir => libc::mkdir);

pub unsafe extern "C" fn hook_unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: unlinkat(2)'s arguments.
    unsafe { hooks::unlinkat(dirfd, path, flags, |d, p| libc::unlinkat(d, p, flags)) }
}
interpose!(I_UNLINKAT: hook_unlinkat => libc::unlinkat);

pub unsafe extern "C" fn hook_unlink(path: *const c_char) -> c_int {
    // SAFETY: unlink(2)'s argument.
    unsafe { hook_unlinkat(libc::AT_FDCWD, path, 0) }
}
interpose!(I_UNLINK: hook_unlink => libc::unlink);

pub unsafe extern "C" fn hook_rmdir(path: *const c_char) -> c_int {
    // SAFETY: rmdir(2)'s argument.
    unsafe { hook_unlinkat(libc::AT_FDCWD, path, libc::AT_REMOVEDIR) }
}
interpose!(I_RMDIR: hook_rmdir => libc::rmdir);

pub unsafe extern "C" fn hook_renameat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
) -> c_int {
    // SAFETY: renameat(2)'s arguments; macOS has no renameat2, so no flags.
    unsafe {
        hooks::renameat(olddirfd, old, newdirfd, new, 0, |a, p, b, q| {
            libc::renameat(a, p, b, q)
        })
    }
}
interpose!(I_RENAMEAT: hook_renameat => libc::renameat);

pub unsafe extern "C" fn hook_rename(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: rename(2)'s arguments.
    unsafe { hook_renameat(libc::AT_FDCWD, old, libc::AT_FDCWD, new) }
}
interpose!(I_RENAME: hook_rename => libc::rename);

pub unsafe extern "C" fn hook_linkat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    // SAFETY: linkat(2)'s arguments.
    unsafe {
        hooks::linkat(olddirfd, old, newdirfd, new, flags, |a, p, b, q| {
            libc::linkat(a, p, b, q, flags)
        })
    }
}
interpose!(I_LINKAT: hook_linkat => libc::linkat);

pub unsafe extern "C" fn hook_link(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: link(2)'s arguments. XNU's link follows a symlink named by `old` (it is
    // linkat with AT_SYMLINK_FOLLOW there, unlike Linux's).
    unsafe {
        hook_linkat(
            libc::AT_FDCWD,
            old,
            libc::AT_FDCWD,
            new,
            libc::AT_SYMLINK_FOLLOW,
        )
    }
}
interpose!(I_LINK: hook_link => libc::link);

pub unsafe extern "C" fn hook_symlinkat(
    target: *const c_char,
    dirfd: c_int,
    path: *const c_char,
) -> c_int {
    // SAFETY: symlinkat(2)'s arguments.
    unsafe { hooks::symlinkat(target, dirfd, path, |d, p| libc::symlinkat(target, d, p)) }
}
interpose!(I_SYMLINKAT: hook_symlinkat => libc::symlinkat);

pub unsafe extern "C" fn hook_symlink(target: *const c_char, path: *const c_char) -> c_int {
    // SAFETY: symlink(2)'s arguments.
    unsafe { hook_symlinkat(target, libc::AT_FDCWD, path) }
}
interpose!(I_SYMLINK: hook_symlink => libc::symlink);

pub unsafe extern "C" fn hook_fchmodat(
    dirfd: c_int,
    path: *const c_char,
    mode: libc::mode_t,
    flags: c_int,
) -> c_int {
    // SAFETY: fchmodat(2)'s arguments.
    unsafe {
        hooks::fchmodat(dirfd, path, u32::from(mode), flags, |d, p| {
            libc::fchmodat(d, p, mode, flags)
        })
    }
}
interpose!(I_FCHMODAT: hook_fchmodat => libc::fchmodat);

pub unsafe extern "C" fn hook_chmod(path: *const c_char, mode: libc::mode_t) -> c_int {
    // SAFETY: chmod(2)'s arguments.
    unsafe { hook_fchmodat(libc::AT_FDCWD, path, mode, 0) }
}
interpose!(I_CHMOD: hook_chmod => libc::chmod);

pub unsafe extern "C" fn hook_fchmod(fd: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: the original with the caller's arguments.
    hooks::fchmod(fd, u32::from(mode), || unsafe { libc::fchmod(fd, mode) })
}
interpose!(I_FCHMOD: hook_fchmod => libc::fchmod);

// ---- owners, sizes and times: the same core calls as the Linux layer's -------------------

pub unsafe extern "C" fn hook_fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: libc::uid_t,
    gid: libc::gid_t,
    flags: c_int,
) -> c_int {
    // SAFETY: fchownat(2)'s arguments.
    unsafe {
        hooks::fchownat(dirfd, path, uid, gid, flags, |d, p| {
            libc::fchownat(d, p, uid, gid, flags)
        })
    }
}
interpose!(I_FCHOWNAT: hook_fchownat => libc::fchownat);

pub unsafe extern "C" fn hook_chown(
    path: *const c_char,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> c_int {
    // SAFETY: chown(2)'s arguments.
    unsafe { hook_fchownat(libc::AT_FDCWD, path, uid, gid, 0) }
}
interpose!(I_CHOWN: hook_chown => libc::chown);

pub unsafe extern "C" fn hook_lchown(
    path: *const c_char,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> c_int {
    // SAFETY: lchown(2)'s arguments.
    unsafe { hook_fchownat(libc::AT_FDCWD, path, uid, gid, libc::AT_SYMLINK_NOFOLLOW) }
}
interpose!(I_LCHOWN: hook_lchown => libc::lchown);

pub unsafe extern "C" fn hook_fchown(fd: c_int, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    // SAFETY: the original with the caller's arguments.
    hooks::fchown(fd, uid, gid, || unsafe { libc::fchown(fd, uid, gid) })
}
interpose!(I_FCHOWN: hook_fchown => libc::fchown);

pub unsafe extern "C" fn hook_truncate(path: *const c_char, len: libc::off_t) -> c_int {
    // SAFETY: truncate(2)'s arguments.
    unsafe { hooks::truncate(path, len, |p| libc::truncate(p, len)) }
}
interpose!(I_TRUNCATE: hook_truncate => libc::truncate);

pub unsafe extern "C" fn hook_utimensat(
    dirfd: c_int,
    path: *const c_char,
    t: *const libc::timespec,
    flags: c_int,
) -> c_int {
    // SAFETY: utimensat(2)'s arguments (a NULL path is the kernel's EFAULT: `ask` leaves it
    // to the original).
    unsafe {
        hooks::utimensat(dirfd, path, t, flags, |d, p| {
            libc::utimensat(d, p, t, flags)
        })
    }
}
interpose!(I_UTIMENSAT: hook_utimensat => libc::utimensat);

pub unsafe extern "C" fn hook_futimens(fd: c_int, t: *const libc::timespec) -> c_int {
    // SAFETY: futimens(2)'s arguments.
    unsafe { hooks::futimens(fd, t, || libc::futimens(fd, t)) }
}
interpose!(I_FUTIMENS: hook_futimens => libc::futimens);

/// The two timevals of utimes and its kin as utimensat's timespecs; `None` for NULL.
///
/// # Safety
/// `tv` is NULL or two timevals.
unsafe fn timespecs(tv: *const libc::timeval) -> Option<[libc::timespec; 2]> {
    if tv.is_null() {
        return None;
    }
    // SAFETY: two timevals, by the caller's contract.
    let (a, m) = unsafe { (*tv, *tv.add(1)) };
    let ts = |t: libc::timeval| libc::timespec {
        tv_sec: t.tv_sec,
        tv_nsec: libc::c_long::from(t.tv_usec) * 1000,
    };
    Some([ts(a), ts(m)])
}

/// utimes and lutimes as utimensat on the path; where the kernel should make the change,
/// `real` runs the original (with the caller's timevals) on the path it should get.
///
/// # Safety
/// utimes(2)'s arguments.
unsafe fn do_utimes(
    path: *const c_char,
    tv: *const libc::timeval,
    flags: c_int,
    real: impl FnOnce(*const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        let ts = timespecs(tv);
        let t = ts.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        // The path is the caller's, or the rewritten one, both relative to the cwd.
        hooks::utimensat(libc::AT_FDCWD, path, t, flags, |_, p| real(p))
    }
}

pub unsafe extern "C" fn hook_utimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    // SAFETY: utimes(2)'s arguments.
    unsafe { do_utimes(path, tv, 0, |p| libc::utimes(p, tv)) }
}
interpose!(I_UTIMES: hook_utimes => libc::utimes);

pub unsafe extern "C" fn hook_lutimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    // SAFETY: lutimes(2)'s arguments.
    unsafe {
        do_utimes(path, tv, libc::AT_SYMLINK_NOFOLLOW, |p| {
            libc::lutimes(p, tv)
        })
    }
}
interpose!(I_LUTIMES: hook_lutimes => libc::lutimes);

pub unsafe extern "C" fn hook_futimes(fd: c_int, tv: *const libc::timeval) -> c_int {
    // SAFETY: futimes(2)'s arguments.
    unsafe {
        let ts = timespecs(tv);
        let t = ts.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        hooks::futimens(fd, t, || libc::futimes(fd, tv))
    }
}
interpose!(I_FUTIMES: hook_futimes => libc::futimes);

// ---- extended attributes: the same core calls as the Linux layer's ---------------------
//
// macOS's xattr calls take `options` instead of l-forms (XATTR_NOFOLLOW) and with their own
// values of XATTR_CREATE and XATTR_REPLACE, and getxattr/setxattr a `position`, which only
// the resource fork uses. The core's answers are Linux's: ENODATA (no such attribute) is
// given as macOS's ENOATTR, EOPNOTSUPP as ENOTSUP. The view keeps the xattrs a manifest
// keeps, by Linux's namespaces (`user.*`...), so a macOS name (`com.apple.quarantine`) on
// a view entry is answered ENOTSUP.

/// Whether a final symlink is followed, and setxattr's flags in the core's values; `None`
/// for options the shim leaves to the kernel (XATTR_NOSECURITY and XATTR_NODEFAULT, which
/// it refuses with EINVAL before it looks at the path).
fn xattr_options(options: c_int) -> Option<(bool, u32)> {
    use vrift_common::vfs::{XATTR_CREATE, XATTR_REPLACE};
    const TAKEN: c_int = libc::XATTR_NOFOLLOW
        | libc::XATTR_CREATE
        | libc::XATTR_REPLACE
        | libc::XATTR_SHOWCOMPRESSION;
    if options & !TAKEN != 0 {
        return None;
    }
    let mut flags = 0;
    if options & libc::XATTR_CREATE != 0 {
        flags |= XATTR_CREATE;
    }
    if options & libc::XATTR_REPLACE != 0 {
        flags |= XATTR_REPLACE;
    }
    Some((options & libc::XATTR_NOFOLLOW == 0, flags))
}

/// The core's answer with macOS's errno values (see above).
fn darwin_xattr<T>(act: Option<Act<T>>) -> Option<Act<T>> {
    let e = |e: Errno| match e.0 {
        libc::ENODATA => Errno(libc::ENOATTR),
        libc::EOPNOTSUPP => Errno(libc::ENOTSUP),
        _ => e,
    };
    match act {
        Some(Act::Done(Err(x))) => Some(Act::Done(Err(e(x)))),
        a => a,
    }
}

/// A view entry's attribute read or written at a nonzero `position`: only the resource fork,
/// which the view does not keep, has one; the kernel refuses any other with EINVAL.
fn at_position<T>(act: Option<Act<Vec<u8>>>) -> Option<Act<T>> {
    act.map(|a| match a {
        Act::Done(Ok(_)) => Act::Done(Err(Errno(libc::EINVAL))),
        Act::Done(Err(e)) => Act::Done(Err(e)),
        Act::Real(p) => Act::Real(p),
        Act::RealBoth(a, b) => Act::RealBoth(a, b),
    })
}

/// An attribute read's answer: the view's (at `position` 0 only) in macOS's errno values,
/// with a NULL buffer asking for the size, as a size of 0 does.
///
/// # Safety
/// `value` is NULL or writable for `size` bytes.
unsafe fn give_xattr(
    act: Option<Act<Vec<u8>>>,
    value: *mut libc::c_void,
    size: libc::size_t,
    position: u32,
    real: impl FnOnce(Option<CString>) -> libc::ssize_t,
) -> libc::ssize_t {
    let act = if position != 0 { at_position(act) } else { act };
    let size = if value.is_null() { 0 } else { size };
    // SAFETY: forwarded contract.
    unsafe { hooks::give_xattr(darwin_xattr(act), value, size, real) }
}

pub unsafe extern "C" fn hook_getxattr(
    path: *const c_char,
    name: *const c_char,
    value: *mut libc::c_void,
    size: libc::size_t,
    position: u32,
    options: c_int,
) -> libc::ssize_t {
    // SAFETY: getxattr(2)'s arguments.
    unsafe {
        let act = match (xattr_name(name), xattr_options(options)) {
            (Some(n), Some((follow, _))) => {
                ask(path, |s, p| s.getxattr(XattrTarget::Path(p, follow), n))
            }
            _ => None,
        };
        give_xattr(act, value, size, position, |p| match p {
            Some(p) => libc::getxattr(p.as_ptr(), name, value, size, position, options),
            None => libc::getxattr(path, name, value, size, position, options),
        })
    }
}
interpose!(I_GETXATTR: hook_getxattr => libc::getxattr);

pub unsafe extern "C" fn hook_fgetxattr(
    fd: c_int,
    name: *const c_char,
    value: *mut libc::c_void,
    size: libc::size_t,
    position: u32,
    options: c_int,
) -> libc::ssize_t {
    // SAFETY: fgetxattr(2)'s arguments.
    unsafe {
        let act = match (xattr_name(name), xattr_options(options)) {
            (Some(n), Some(_)) => with(|s| s.getxattr(XattrTarget::Fd(fd), n)),
            _ => None,
        };
        give_xattr(act, value, size, position, |_| {
            libc::fgetxattr(fd, name, value, size, position, options)
        })
    }
}
interpose!(I_FGETXATTR: hook_fgetxattr => libc::fgetxattr);

pub unsafe extern "C" fn hook_listxattr(
    path: *const c_char,
    list: *mut c_char,
    size: libc::size_t,
    options: c_int,
) -> libc::ssize_t {
    // SAFETY: listxattr(2)'s arguments.
    unsafe {
        let act = match xattr_options(options) {
            Some((follow, _)) => ask(path, |s, p| s.listxattr(XattrTarget::Path(p, follow))),
            None => None,
        };
        give_xattr(act, list as *mut libc::c_void, size, 0, |p| match p {
            Some(p) => libc::listxattr(p.as_ptr(), list, size, options),
            None => libc::listxattr(path, list, size, options),
        })
    }
}
interpose!(I_LISTXATTR: hook_listxattr => libc::listxattr);

pub unsafe extern "C" fn hook_flistxattr(
    fd: c_int,
    list: *mut c_char,
    size: libc::size_t,
    options: c_int,
) -> libc::ssize_t {
    // SAFETY: flistxattr(2)'s arguments.
    unsafe {
        let act = match xattr_options(options) {
            Some(_) => with(|s| s.listxattr(XattrTarget::Fd(fd))),
            None => None,
        };
        give_xattr(act, list as *mut libc::c_void, size, 0, |_| {
            libc::flistxattr(fd, list, size, options)
        })
    }
}
interpose!(I_FLISTXATTR: hook_flistxattr => libc::flistxattr);

/// setxattr's core call on `target`: a set at `position` 0; at any other, the entry is only
/// looked at (see [`at_position`]); both XATTR_CREATE and XATTR_REPLACE is EINVAL.
fn set_xattr(
    s: &mut crate::core::Shim,
    target: XattrTarget<'_>,
    name: &[u8],
    value: &[u8],
    position: u32,
    flags: u32,
) -> Act<()> {
    use vrift_common::vfs::{XATTR_CREATE, XATTR_REPLACE};
    if position != 0 {
        let seen = Some(s.listxattr(target));
        return at_position(seen).unwrap_or(Act::Real(None));
    }
    if flags == XATTR_CREATE | XATTR_REPLACE {
        return Act::Done(Err(Errno::EINVAL));
    }
    s.setxattr(target, name, value, flags)
}

pub unsafe extern "C" fn hook_setxattr(
    path: *const c_char,
    name: *const c_char,
    value: *const libc::c_void,
    size: libc::size_t,
    position: u32,
    options: c_int,
) -> c_int {
    // SAFETY: setxattr(2)'s arguments.
    unsafe {
        let act = match (
            xattr_name(name),
            xattr_value(value, size),
            xattr_options(options),
        ) {
            (Some(n), Some(v), Some((follow, flags))) => ask(path, |s, p| {
                set_xattr(s, XattrTarget::Path(p, follow), n, v, position, flags)
            }),
            _ => None,
        };
        changed(darwin_xattr(act), |p| match p {
            Some(p) => libc::setxattr(p.as_ptr(), name, value, size, position, options),
            None => libc::setxattr(path, name, value, size, position, options),
        })
    }
}
interpose!(I_SETXATTR: hook_setxattr => libc::setxattr);

pub unsafe extern "C" fn hook_fsetxattr(
    fd: c_int,
    name: *const c_char,
    value: *const libc::c_void,
    size: libc::size_t,
    position: u32,
    options: c_int,
) -> c_int {
    // SAFETY: fsetxattr(2)'s arguments.
    unsafe {
        let act = match (
            xattr_name(name),
            xattr_value(value, size),
            xattr_options(options),
        ) {
            (Some(n), Some(v), Some((_, flags))) => {
                with(|s| set_xattr(s, XattrTarget::Fd(fd), n, v, position, flags))
            }
            _ => None,
        };
        changed(darwin_xattr(act), |_| {
            libc::fsetxattr(fd, name, value, size, position, options)
        })
    }
}
interpose!(I_FSETXATTR: hook_fsetxattr => libc::fsetxattr);

pub unsafe extern "C" fn hook_removexattr(
    path: *const c_char,
    name: *const c_char,
    options: c_int,
) -> c_int {
    // SAFETY: removexattr(2)'s arguments.
    unsafe {
        let act = match (xattr_name(name), xattr_options(options)) {
            (Some(n), Some((follow, _))) => {
                ask(path, |s, p| s.removexattr(XattrTarget::Path(p, follow), n))
            }
            _ => None,
        };
        changed(darwin_xattr(act), |p| match p {
            Some(p) => libc::removexattr(p.as_ptr(), name, options),
            None => libc::removexattr(path, name, options),
        })
    }
}
interpose!(I_REMOVEXATTR: hook_removexattr => libc::removexattr);

pub unsafe extern "C" fn hook_fremovexattr(
    fd: c_int,
    name: *const c_char,
    options: c_int,
) -> c_int {
    // SAFETY: fremovexattr(2)'s arguments.
    unsafe {
        let act = match (xattr_name(name), xattr_options(options)) {
            (Some(n), Some(_)) => with(|s| s.removexattr(XattrTarget::Fd(fd), n)),
            _ => None,
        };
        changed(darwin_xattr(act), |_| libc::fremovexattr(fd, name, options))
    }
}
interpose!(I_FREMOVEXATTR: hook_fremovexattr => libc::fremovexattr);

// ---- directory streams ------------------------------------------------------------------
//
// A stream of a view directory is the shim's own [`ShimDir`]: its leading fields are laid
// out as Apple's `DIR` (<dirent.h>), with `__dd_fd` the stream's descriptor, a real one the
// core knows as the view directory's, so that `dirfd()` (a macro on `__dd_fd` in older
// SDKs) and `fchdir(dirfd(d))` work; the view's entries, listed when the stream was opened
// (`Shim::opendir`, as for the Linux layer's streams), follow in the shim's own part. The
// hooks take a `DIR *` the shim made (its address is in the core's `dirs`) and pass any
// other, a stream of a directory outside the view, to libSystem's function. On x86_64 the
// hooks are those of the `$INODE64` names (64-bit inodes, `libc::dirent`), which programs
// built since macOS 10.6 call and the `libc` crate links; the older names, with 32-bit
// inodes, are left to libSystem, with streams only libSystem makes.

/// The leading fields of Apple's `DIR`, as <dirent.h> lays them out.
#[repr(C)]
struct AppleDir {
    dd_fd: c_int,
    dd_loc: libc::c_long,
    dd_size: libc::c_long,
    dd_buf: *mut c_char,
    dd_len: c_int,
    dd_seek: libc::c_long,
    padding: libc::c_long,
    dd_flags: c_int,
    dd_lock: libc::pthread_mutex_t,
    dd_td: *mut libc::c_void,
}

// Apple's DIR on both 64-bit targets: `__dd_lock` (a 64-byte mutex) at 64, `__dd_td` at 128.
const _: () = {
    assert!(std::mem::offset_of!(AppleDir, dd_seek) == 40);
    assert!(std::mem::offset_of!(AppleDir, dd_flags) == 56);
    assert!(std::mem::offset_of!(AppleDir, dd_lock) == 64);
    assert!(std::mem::offset_of!(AppleDir, dd_td) == 128);
    assert!(std::mem::size_of::<AppleDir>() == 136);
};

/// A directory stream of the view, handed out as a `DIR *`.
#[repr(C)]
struct ShimDir {
    dir: AppleDir,
    stream: DirStream,
    ent: libc::dirent,
}

/// Is `d` a stream the shim made?
fn is_ours(d: *mut libc::DIR) -> bool {
    !d.is_null() && with(|s| s.dirs.contains(&(d as usize))).unwrap_or(false)
}

/// # Safety
/// `d` is one of ours ([`is_ours`]), so alive until [`hook_closedir`].
unsafe fn ours<'a>(d: *mut libc::DIR) -> &'a mut ShimDir {
    // SAFETY: made by `hand_out`, not freed until closedir.
    unsafe { &mut *(d as *mut ShimDir) }
}

fn hand_out(stream: DirStream) -> *mut libc::DIR {
    let dir = AppleDir {
        dd_fd: stream.fd,
        dd_loc: 0,
        dd_size: 0,
        dd_buf: std::ptr::null_mut(),
        dd_len: 0,
        dd_seek: 0,
        padding: 0,
        dd_flags: 0,
        dd_lock: libc::PTHREAD_MUTEX_INITIALIZER,
        dd_td: std::ptr::null_mut(),
    };
    // SAFETY: struct dirent is plain data; all zero is valid.
    let ent: libc::dirent = unsafe { std::mem::zeroed() };
    let p = Box::into_raw(Box::new(ShimDir { dir, stream, ent }));
    with(|s| s.dirs.insert(p as usize));
    p as *mut libc::DIR
}

/// A stream's answer: ours, an error (NULL), or the original's.
fn opened(
    act: Option<Result<DirStream, Errno>>,
    real: impl FnOnce() -> *mut libc::DIR,
) -> *mut libc::DIR {
    match act {
        Some(Ok(stream)) => hand_out(stream),
        Some(Err(e)) => {
            set_errno(e.0);
            std::ptr::null_mut()
        }
        None => real(),
    }
}

pub unsafe extern "C" fn hook_opendir(path: *const c_char) -> *mut libc::DIR {
    // SAFETY: opendir(3)'s argument.
    unsafe {
        match ask(path, |s, p| s.opendir(p)) {
            Some(Act::Done(r)) => opened(Some(r), std::ptr::null_mut),
            Some(Act::Real(Some(p))) => libc::opendir(cstring(p).as_ptr()),
            _ => libc::opendir(path),
        }
    }
}
interpose!(I_OPENDIR: hook_opendir => libc::opendir);

pub unsafe extern "C" fn hook_fdopendir(fd: c_int) -> *mut libc::DIR {
    // SAFETY: the original with the caller's argument.
    opened(with(|s| s.fdopendir(fd)).flatten(), || unsafe {
        libc::fdopendir(fd)
    })
}
interpose!(I_FDOPENDIR: hook_fdopendir => libc::fdopendir);

/// The next entry of one of our streams, written into its dirent; NULL at the end.
///
/// # Safety
/// `d` is one of ours.
unsafe fn next_entry(d: *mut libc::DIR) -> *mut libc::dirent {
    // SAFETY: forwarded contract.
    let sd = unsafe { ours(d) };
    let Some(e) = sd.stream.entries.get(sd.stream.pos) else {
        return std::ptr::null_mut();
    };
    sd.stream.pos += 1;
    let n = e.name.len().min(sd.ent.d_name.len() - 1);
    sd.ent.d_ino = e.ino;
    sd.ent.d_seekoff = sd.stream.pos as u64;
    sd.ent.d_reclen = std::mem::size_of::<libc::dirent>() as u16;
    sd.ent.d_namlen = n as u16;
    sd.ent.d_type = e.kind.d_type();
    for (i, b) in e.name[..n].iter().enumerate() {
        sd.ent.d_name[i] = *b as c_char;
    }
    sd.ent.d_name[n] = 0;
    &mut sd.ent
}

pub unsafe extern "C" fn hook_readdir(d: *mut libc::DIR) -> *mut libc::dirent {
    if is_ours(d) {
        // SAFETY: checked just above.
        return unsafe { next_entry(d) };
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::readdir(d) }
}
interpose!(I_READDIR: hook_readdir => libc::readdir);

pub unsafe extern "C" fn hook_readdir_r(
    d: *mut libc::DIR,
    entry: *mut libc::dirent,
    result: *mut *mut libc::dirent,
) -> c_int {
    if is_ours(d) {
        // SAFETY: one of ours; `entry` and `result` are the caller's, as readdir_r(3) says.
        return unsafe { hooks::readdir_r_into(next_entry(d), entry, result) };
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::readdir_r(d, entry, result) }
}
interpose!(I_READDIR_R: hook_readdir_r => libc::readdir_r);

pub unsafe extern "C" fn hook_closedir(d: *mut libc::DIR) -> c_int {
    if is_ours(d) {
        with(|s| s.dirs.remove(&(d as usize)));
        // SAFETY: made by Box::into_raw in `hand_out`, removed from the set just now, so
        // freed once.
        let sd = unsafe { Box::from_raw(d as *mut ShimDir) };
        // SAFETY: the stream's descriptor, owned by the stream; the close hook makes the
        // core forget it.
        return unsafe { hook_close(sd.stream.fd) };
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::closedir(d) }
}
interpose!(I_CLOSEDIR: hook_closedir => libc::closedir);

pub unsafe extern "C" fn hook_dirfd(d: *mut libc::DIR) -> c_int {
    if is_ours(d) {
        // SAFETY: one of ours.
        return unsafe { ours(d) }.dir.dd_fd;
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::dirfd(d) }
}
interpose!(I_DIRFD: hook_dirfd => libc::dirfd);

pub unsafe extern "C" fn hook_rewinddir(d: *mut libc::DIR) {
    if is_ours(d) {
        // SAFETY: one of ours.
        unsafe { ours(d) }.stream.pos = 0;
        return;
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::rewinddir(d) }
}
interpose!(I_REWINDDIR: hook_rewinddir => libc::rewinddir);

pub unsafe extern "C" fn hook_telldir(d: *mut libc::DIR) -> libc::c_long {
    if is_ours(d) {
        // SAFETY: one of ours.
        return unsafe { ours(d) }.stream.pos as libc::c_long;
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::telldir(d) }
}
interpose!(I_TELLDIR: hook_telldir => libc::telldir);

pub unsafe extern "C" fn hook_seekdir(d: *mut libc::DIR, at: libc::c_long) {
    if is_ours(d) {
        // SAFETY: one of ours; a position past the end reads nothing.
        unsafe { ours(d) }.stream.pos = at.max(0) as usize;
        return;
    }
    // SAFETY: a stream of libSystem's.
    unsafe { libc::seekdir(d, at) }
}
interpose!(I_SEEKDIR: hook_seekdir => libc::seekdir);

mod dirs {
    use std::ffi::{c_char, c_int};
    extern "C" {
        /// scandir(3), which the `libc` crate does not declare for Apple's targets.
        #[cfg_attr(target_arch = "x86_64", link_name = "scandir$INODE64")]
        pub fn scandir(
            path: *const c_char,
            list: *mut *mut *mut libc::dirent,
            filter: super::Filter,
            compar: crate::hooks::Compar,
        ) -> c_int;
    }
}

type Filter = Option<unsafe extern "C" fn(*const libc::dirent) -> c_int>;

/// scandir(3): libSystem's reads the directory with calls inside libSystem, which dyld does
/// not interpose, so a view directory is listed here, into malloc'd entries the caller frees
/// as it would libSystem's.
pub unsafe extern "C" fn hook_scandir(
    path: *const c_char,
    list: *mut *mut *mut libc::dirent,
    filter: Filter,
    compar: hooks::Compar,
) -> c_int {
    // SAFETY: scandir(3)'s arguments.
    unsafe {
        let stream = match ask(path, |s, p| s.opendir(p)) {
            Some(Act::Done(Ok(stream))) => stream,
            Some(Act::Done(Err(e))) => return fail(e),
            Some(Act::Real(Some(p))) => {
                return dirs::scandir(cstring(p).as_ptr(), list, filter, compar)
            }
            _ => return dirs::scandir(path, list, filter, compar),
        };
        let d = hand_out(stream);
        hooks::scandir_list(
            || next_entry(d) as *const libc::dirent,
            || {
                hook_closedir(d);
            },
            list,
            filter,
            compar,
        )
    }
}
interpose!(I_SCANDIR: hook_scandir => dirs::scandir);

// ---- libSystem's own directory streams ---------------------------------------------------
//
// libSystem's opendir and readdir, reached from inside libSystem (fts, glob, nftw, its
// scandir), are not interposed; on a view directory they read its descriptor, which the
// shim's open made, with `__getdirentries64`, which is: the view's entries are given here in
// the kernel's form, and the descriptor's position, an entry's index, is kept here too and
// moved by `lseek` (libSystem's rewinddir and seekdir). A dup of the descriptor does not
// share the position.

/// What `__getdirentries64` has given of a view directory's descriptor: its entries, listed
/// at a read from the start, and the index of the next.
struct Listing {
    fd: c_int,
    entries: Vec<vrift_common::vfs::DirEntry>,
    pos: usize,
}

static LISTINGS: std::sync::Mutex<Vec<Listing>> = std::sync::Mutex::new(Vec::new());
/// How many [`LISTINGS`] there are: while none, lseek and close need not take the lock.
static LISTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn listings() -> std::sync::MutexGuard<'static, Vec<Listing>> {
    LISTINGS.lock().unwrap_or_else(|p| p.into_inner())
}

fn listing_gone(fd: c_int) {
    use std::sync::atomic::Ordering;
    if LISTED.load(Ordering::Relaxed) != 0 {
        let mut g = listings();
        g.retain(|l| l.fd != fd);
        LISTED.store(g.len(), Ordering::Relaxed);
    }
}

/// The length of the kernel's record for a name of `namlen` bytes (XNU's DIRENT64_LEN).
fn dirent64_len(namlen: usize) -> usize {
    (namlen + 32) & !7
}

/// Where the kernel puts `__getdirentries64`'s flags in a buffer at least this large.
const GETDIRENTRIES64_EXTENDED_BUFSIZE: usize = 1024;
const GETDIRENTRIES64_EOF: u32 = 1;

pub unsafe extern "C" fn hook_getdirentries64(
    fd: c_int,
    buf: *mut c_char,
    nbytes: libc::size_t,
    basep: *mut i64,
) -> libc::ssize_t {
    use std::sync::atomic::Ordering;
    // SAFETY: the original with the caller's arguments.
    let real = || unsafe { nocancel::__getdirentries64(fd, buf, nbytes, basep) };
    if !crate::state::has_view_fds() {
        return real();
    }
    let at = listings().iter().find(|l| l.fd == fd).map(|l| l.pos);
    // A read from the start lists the directory as it is now.
    let fresh = if at.unwrap_or(0) == 0 {
        let listed = with(|s| match s.fd_info(fd) {
            Some(i) if i.dir => s.fdopendir(fd),
            _ => None,
        });
        match listed.flatten() {
            Some(Ok(stream)) => Some(stream.entries),
            Some(Err(e)) => return fail(e) as libc::ssize_t,
            None => return real(),
        }
    } else {
        None
    };
    let mut g = listings();
    let i = match g.iter().position(|l| l.fd == fd) {
        Some(i) => i,
        None => {
            g.push(Listing {
                fd,
                entries: Vec::new(),
                pos: 0,
            });
            g.len() - 1
        }
    };
    LISTED.store(g.len(), Ordering::Relaxed);
    let l = &mut g[i];
    if let Some(entries) = fresh {
        l.entries = entries;
    }
    let start = l.pos;
    let extended = nbytes >= GETDIRENTRIES64_EXTENDED_BUFSIZE;
    let room = if extended { nbytes - 4 } else { nbytes };
    let mut off = 0;
    while let Some(e) = l.entries.get(l.pos) {
        let name = &e.name[..e.name.len().min(libc::PATH_MAX as usize - 1)];
        let len = dirent64_len(name.len());
        if off + len > room {
            break;
        }
        // SAFETY: `buf` holds `nbytes` bytes, of which `off..off + len` are within `room`;
        // the record is the kernel's `struct direntry`: d_ino, d_seekoff, d_reclen, d_namlen,
        // d_type, then the name and a NUL, padded with NULs.
        unsafe {
            let r = (buf as *mut u8).add(off);
            std::ptr::write_bytes(r, 0, len);
            (r as *mut u64).write_unaligned(e.ino);
            (r.add(8) as *mut u64).write_unaligned(l.pos as u64 + 1);
            (r.add(16) as *mut u16).write_unaligned(len as u16);
            (r.add(18) as *mut u16).write_unaligned(name.len() as u16);
            r.add(20).write(e.kind.d_type());
            std::ptr::copy_nonoverlapping(name.as_ptr(), r.add(21), name.len());
        }
        off += len;
        l.pos += 1;
    }
    let at_end = l.pos >= l.entries.len();
    drop(g);
    if off == 0 && !at_end {
        // Not room for one entry, as the kernel says.
        return fail(Errno::EINVAL) as libc::ssize_t;
    }
    // SAFETY: the caller's position and buffer, as __getdirentries64 takes them.
    unsafe {
        if !basep.is_null() {
            *basep = start as i64;
        }
        if extended {
            let flags = if at_end { GETDIRENTRIES64_EOF } else { 0 };
            ((buf as *mut u8).add(nbytes - 4) as *mut u32).write_unaligned(flags);
        }
    }
    off as libc::ssize_t
}
interpose!(I_GETDIRENTRIES64: hook_getdirentries64 => nocancel::__getdirentries64);

/// lseek(2): a view directory's descriptor that `__getdirentries64` has read moves to an
/// entry's index; any other descriptor is the kernel's.
pub unsafe extern "C" fn hook_lseek(fd: c_int, offset: libc::off_t, whence: c_int) -> libc::off_t {
    if LISTED.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        let mut g = listings();
        if let Some(l) = g.iter_mut().find(|l| l.fd == fd) {
            let to = match whence {
                libc::SEEK_SET => Some(offset),
                libc::SEEK_CUR => (l.pos as libc::off_t).checked_add(offset),
                _ => None,
            };
            return match to {
                Some(p) if p >= 0 => {
                    l.pos = p as usize;
                    p
                }
                _ => {
                    drop(g);
                    fail(Errno::EINVAL) as libc::off_t
                }
            };
        }
    }
    // SAFETY: the original with the caller's arguments.
    unsafe { libc::lseek(fd, offset, whence) }
}
interpose!(I_LSEEK: hook_lseek => libc::lseek);

// ---- setattrlist: the times ----------------------------------------------------------------

/// The times a setattrlist(2) sets when its list holds ATTR_CMN_MODTIME and ATTR_CMN_ACCTIME
/// alone (their timespecs packed in the order of their bits, without getattrlist's leading
/// length), as utimensat's two (access, modification), UTIME_OMIT for one not set; `None`
/// for any other list.
///
/// # Safety
/// `attrs` is NULL or one attrlist; `buf` is NULL or holds `size` bytes.
unsafe fn set_times(
    attrs: *const libc::c_void,
    buf: *const libc::c_void,
    size: libc::size_t,
) -> Option<[libc::timespec; 2]> {
    if attrs.is_null() || buf.is_null() {
        return None;
    }
    // SAFETY: the caller's attrlist.
    let a = unsafe { (attrs as *const libc::attrlist).read_unaligned() };
    let times = libc::ATTR_CMN_MODTIME | libc::ATTR_CMN_ACCTIME;
    if a.bitmapcount != libc::ATTR_BIT_MAP_COUNT
        || a.commonattr == 0
        || a.commonattr & !times != 0
        || a.volattr | a.dirattr | a.fileattr | a.forkattr != 0
    {
        return None;
    }
    let n = a.commonattr.count_ones() as usize;
    if size < n * std::mem::size_of::<libc::timespec>() {
        return None;
    }
    let omit = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_OMIT,
    };
    let mut out = [omit, omit];
    let mut p = buf as *const libc::timespec;
    // SAFETY: `n` timespecs in the caller's buffer, checked just above.
    unsafe {
        if a.commonattr & libc::ATTR_CMN_MODTIME != 0 {
            out[1] = p.read_unaligned();
            p = p.add(1);
        }
        if a.commonattr & libc::ATTR_CMN_ACCTIME != 0 {
            out[0] = p.read_unaligned();
        }
    }
    Some(out)
}

/// setattrlist(2): the times alone are a utimensat of the view (as `touch` and copyfile set
/// them); any other attribute of a view entry is refused with ENOTSUP, as getattrlist's are,
/// rather than set on what the kernel finds at the path.
pub unsafe extern "C" fn hook_setattrlist(
    path: *const c_char,
    attrs: *mut libc::c_void,
    buf: *mut libc::c_void,
    size: libc::size_t,
    options: u32,
) -> c_int {
    let follow = options & libc::FSOPT_NOFOLLOW == 0;
    // SAFETY: setattrlist(2)'s arguments.
    unsafe {
        if let Some(ts) = set_times(attrs, buf, size) {
            let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            return hooks::utimensat(libc::AT_FDCWD, path, ts.as_ptr(), flags, |_, p| {
                libc::setattrlist(p, attrs, buf, size, options)
            });
        }
        match ask(path, |s, p| s.stat(None, p, follow)) {
            Some(Act::Done(Ok(_))) => fail(Errno(libc::ENOTSUP)),
            Some(Act::Done(Err(e))) => fail(e),
            Some(Act::Real(Some(p))) => {
                libc::setattrlist(cstring(p).as_ptr(), attrs, buf, size, options)
            }
            _ => libc::setattrlist(path, attrs, buf, size, options),
        }
    }
}
interpose!(I_SETATTRLIST: hook_setattrlist => libc::setattrlist);

/// fsetattrlist(2), as [`hook_setattrlist`] on a view descriptor.
pub unsafe extern "C" fn hook_fsetattrlist(
    fd: c_int,
    attrs: *mut libc::c_void,
    buf: *mut libc::c_void,
    size: libc::size_t,
    options: u32,
) -> c_int {
    // SAFETY: fsetattrlist(2)'s arguments.
    unsafe {
        if let Some(ts) = set_times(attrs, buf, size) {
            return hooks::futimens(fd, ts.as_ptr(), || {
                libc::fsetattrlist(fd, attrs, buf, size, options)
            });
        }
        if with(|s| s.fd_info(fd).is_some()).unwrap_or(false) {
            return fail(Errno(libc::ENOTSUP));
        }
        libc::fsetattrlist(fd, attrs, buf, size, options)
    }
}
interpose!(I_FSETATTRLIST: hook_fsetattrlist => libc::fsetattrlist);
