//! One handler per notified system call (x86_64 argument layouts).
//!
//! A handler turns the call's path arguments into absolute paths as the caller sees them,
//! checks the notification is still valid after reading the caller's memory, lets the
//! kernel run everything outside the view (`Continue`), and hands view paths to the model.

use std::io;

use vrift_common::vfs::TimeSpec;

use super::model::{Model, Outcome, Place};
use super::{paths, Reply, Served};
use crate::sys::mem;
use crate::sys::notify::{Listener, Notif};
use vrift_common::runlog::Op;

mod no_mounts;
mod xattrs;

use xattrs::Target;

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

struct Call<'a> {
    model: &'a Model,
    listener: &'a Listener,
    n: &'a Notif,
    /// The first path argument, kept for `vrift trace`.
    seen: Option<std::cell::RefCell<Option<Vec<u8>>>>,
}

/// A path argument, made absolute, and where it lies.
struct PathArg {
    abs: Vec<u8>,
    place: Place,
    /// The argument named an open file itself (AT_EMPTY_PATH, or /proc/self/fd/N): the call
    /// is about that object, so a final symlink is never followed.
    fd_itself: bool,
    /// The path as the kernel resolves it: made absolute against the caller's real cwd or
    /// directory, which is a farm path where the caller holds a farm directory (a view
    /// served without mounts; with mounts it is `abs`).
    kernel: Vec<u8>,
}

impl PathArg {
    /// Whether to follow a final symlink, given the call's own AT_SYMLINK_NOFOLLOW.
    fn follow(&self, nofollow_flag: bool) -> bool {
        !self.fd_itself && !nofollow_flag
    }
}

/// `/proc/self/fd/N` and `/proc/thread-self/fd/N` (glibc's fchmodat and friends use them):
/// the caller's fd N, with no rest; `/proc/self/fd/N/REST`, a path under the caller's
/// directory fd N (gnulib's `*at` emulations, such as tar's `setxattrat`, name files so):
/// N and REST.
fn proc_self_fd(abs: &[u8]) -> Option<(i32, Option<&[u8]>)> {
    let rest = abs
        .strip_prefix(b"/proc/self/fd/")
        .or_else(|| abs.strip_prefix(b"/proc/thread-self/fd/"))?;
    let (n, under) = match rest.iter().position(|&b| b == b'/') {
        Some(slash) => (&rest[..slash], Some(&rest[slash + 1..])),
        None => (rest, None),
    };
    Some((std::str::from_utf8(n).ok()?.parse().ok()?, under))
}

impl Call<'_> {
    fn tid(&self) -> u32 {
        self.n.pid
    }
    fn arg(&self, i: usize) -> u64 {
        self.n.data.args[i]
    }
    fn still_valid(&self) -> bool {
        self.listener.id_valid(self.n.id)
    }

    /// The absolute path of (`dirfd`, path at `addr`); an empty path names `dirfd` itself
    /// when `empty_ok` (AT_EMPTY_PATH).
    fn path(&self, dirfd: i32, addr: u64, empty_ok: bool) -> io::Result<PathArg> {
        let path = paths::read_path(self.tid(), addr)?;
        if path.is_empty() {
            if !empty_ok {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            return self.fd_arg(dirfd);
        }
        let proc_fd = proc_self_fd(&path);
        if let Some((fd, None)) = proc_fd {
            return self.fd_arg(fd);
        }
        let (abs, kernel) = if let Some((fd, Some(rest))) = proc_fd {
            // A descriptor not open: no such name in /proc, as the kernel says.
            let real = paths::fd_path(self.tid(), fd).map_err(|e| match e.raw_os_error() {
                Some(libc::EBADF) => io::Error::from_raw_os_error(libc::ENOENT),
                _ => e,
            })?;
            let base = self.model.unfarm(real.clone());
            (paths::join(&base, rest), paths::join(&real, rest))
        } else if path[0] == b'/' {
            (path.clone(), path)
        } else {
            let real = paths::base_dir(self.tid(), dirfd)?;
            let base = self.model.unfarm(real.clone());
            (paths::join(&base, &path), paths::join(&real, &path))
        };
        let place = self.place(&abs);
        self.note(&abs);
        Ok(PathArg {
            abs,
            place,
            fd_itself: false,
            kernel,
        })
    }

    /// Where `abs` lies. Without mounts a path in the store is never the view's, even where
    /// the store is under the view's root: by its name, or as the descriptor of a file
    /// there (the shim's fstat of its index).
    fn place(&self, abs: &[u8]) -> Place {
        match &self.model.no_mounts {
            Some(nm) if nm.names_the_store(abs) => Place::Outside,
            _ => self.model.place(abs),
        }
    }

    fn note(&self, abs: &[u8]) {
        if let Some(seen) = &self.seen {
            let mut s = seen.borrow_mut();
            if s.is_none() {
                *s = Some(abs.to_vec());
            }
        }
    }

    fn fd_arg(&self, fd: i32) -> io::Result<PathArg> {
        let kernel = if fd == libc::AT_FDCWD {
            paths::base_dir(self.tid(), fd)?
        } else {
            match (paths::fd_path(self.tid(), fd), &self.model.no_mounts) {
                // A farm file deeper than the kernel names (its view path is shorter).
                (Err(e), Some(nm)) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                    paths::long_file_path(self.tid(), fd, &nm.farm_path(b"")).map_err(|_| e)?
                }
                (r, _) => r?,
            }
        };
        let abs = self.model.unfarm(kernel.clone());
        // An open file whose last name was removed ("PATH (deleted)" in /proc) is no longer
        // in the view: the kernel answers for it from the farm's file, as a disk would.
        let place = if abs.ends_with(b" (deleted)") {
            Place::Outside
        } else if abs.first() == Some(&b'/') {
            self.place(&abs)
        } else {
            Place::Outside // pipe:[..], socket:[..], anon_inode:...
        };
        self.note(&abs);
        Ok(PathArg {
            abs,
            place,
            fd_itself: true,
            kernel,
        })
    }

    /// A change outside the view, for the kernel: without mounts, none that would reach the
    /// store (nothing keeps it read-only then).
    fn pass_change(&self, p: &PathArg) -> (Served, Reply) {
        no_mounts::pass_change(self, p)
    }

    fn cred(&self) -> Option<vrift_common::vfs::Cred> {
        self.model.creds.get(self.tid()).ok()
    }

    /// Deliver an outcome.
    fn finish(&self, o: Outcome, stat_buf: u64, statx: bool) -> (Served, Reply) {
        match o {
            Outcome::Continue => (Served::Passthrough, Reply::Continue),
            Outcome::Value(v) => (Served::Hit, Reply::Value(v)),
            Outcome::Errno(e) if e == libc::ENOENT => (Served::Miss, Reply::Errno(e)),
            Outcome::Errno(e) => (Served::Denied, Reply::Errno(e)),
            Outcome::Stat(st) => {
                let bytes = if statx {
                    super::statbuf::statx_bytes(&st)
                } else {
                    super::statbuf::stat_bytes(&st)
                };
                if !self.still_valid() {
                    return (Served::Hit, Reply::Done);
                }
                match mem::write_bytes(self.tid(), stat_buf, &bytes) {
                    Ok(()) => (Served::Hit, Reply::Value(0)),
                    Err(_) => (Served::Hit, Reply::Errno(libc::EFAULT)),
                }
            }
            Outcome::Fd {
                file,
                cloexec,
                undo,
            } => {
                match self.listener.reply_with_fd(self.n.id, file, cloexec, true) {
                    Ok(_) => (Served::Hit, Reply::Done),
                    Err(e) => {
                        // Interrupted or gone: a restarted call must find the view as it was.
                        if let Some(undo) = undo {
                            self.model.undo_create(undo);
                        }
                        tracing::debug!("installing fd: {e}");
                        (Served::Hit, Reply::Done)
                    }
                }
            }
        }
    }
}

fn from_io(e: io::Error) -> (Served, Reply) {
    match e.raw_os_error() {
        // The caller is gone, or its memory unreadable in a way the kernel will report
        // itself: let it run the call.
        Some(libc::ESRCH) | None => (Served::Passthrough, Reply::Continue),
        Some(libc::ENOENT) => (Served::Miss, Reply::Errno(libc::ENOENT)),
        Some(errno) => (Served::Denied, Reply::Errno(errno)),
    }
}

type Handled = io::Result<(Served, Reply)>;

const PASS: (Served, Reply) = (Served::Passthrough, Reply::Continue);

/// Could answering this call take long? Changes carried out on the farm can (a copy of a
/// large file opened for writing); lookups, stats and pass-through cannot.
pub fn may_be_slow(n: &Notif) -> bool {
    let a = |i: usize| n.data.args[i] as i32;
    let writes = |flags: i32| flags & (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) != 0;
    match n.data.nr as i64 {
        libc::SYS_open => writes(a(1)),
        libc::SYS_openat => writes(a(2)),
        libc::SYS_stat
        | libc::SYS_lstat
        | libc::SYS_newfstatat
        | libc::SYS_statx
        | libc::SYS_fstat
        | libc::SYS_access
        | libc::SYS_faccessat
        | libc::SYS_faccessat2
        | libc::SYS_execve
        | libc::SYS_execveat => false,
        _ => true,
    }
}

/// Serve one notification. With `want_path`, also return the (first) path the call named,
/// for `vrift trace`'s per-path counts.
pub fn dispatch(
    model: &Model,
    listener: &Listener,
    n: &Notif,
    want_path: bool,
) -> (Served, Reply, Option<Vec<u8>>) {
    let c = Call {
        model,
        listener,
        n,
        seen: want_path.then(|| std::cell::RefCell::new(None)),
    };
    let a = |i: usize| n.data.args[i];
    let cwd = libc::AT_FDCWD;
    let r = match n.data.nr as i64 {
        libc::SYS_open => open(&c, cwd, a(0), a(1), a(2)),
        libc::SYS_openat => open(&c, a(0) as i32, a(1), a(2), a(3)),
        libc::SYS_openat2 => match mem::read_bytes(c.tid(), a(2), 16) {
            Ok(b) => {
                let flags = u64::from_ne_bytes(b[..8].try_into().unwrap());
                let mode = u64::from_ne_bytes(b[8..].try_into().unwrap());
                open(&c, a(0) as i32, a(1), flags, mode)
            }
            Err(_) => Ok(PASS),
        },
        libc::SYS_creat => open(
            &c,
            cwd,
            a(0),
            (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
            a(1),
        ),
        libc::SYS_stat => stat(&c, cwd, a(0), 0, a(1), false),
        libc::SYS_lstat => stat(&c, cwd, a(0), AT_SYMLINK_NOFOLLOW, a(1), false),
        libc::SYS_newfstatat => stat(&c, a(0) as i32, a(1), a(3), a(2), false),
        libc::SYS_statx => stat(&c, a(0) as i32, a(1), a(2), a(4), true),
        libc::SYS_fstat => fstat(&c, a(0) as i32, a(1)),
        libc::SYS_access => access(&c, cwd, a(0), a(1), 0),
        libc::SYS_faccessat => access(&c, a(0) as i32, a(1), a(2), 0),
        libc::SYS_faccessat2 => access(&c, a(0) as i32, a(1), a(2), a(3)),
        libc::SYS_execve => exec(&c, cwd, a(0), 0),
        libc::SYS_execveat => exec(&c, a(0) as i32, a(1), a(4)),
        libc::SYS_mkdir => one_path(&c, cwd, a(0), |m, t, p, _| m.change(t, Op::Mkdir { path: p.to_vec(), mode: a(1) as u32 })),
        libc::SYS_mkdirat => one_path(&c, a(0) as i32, a(1), |m, t, p, _| m.change(t, Op::Mkdir { path: p.to_vec(), mode: a(2) as u32 })),
        libc::SYS_rmdir => one_path(&c, cwd, a(0), |m, t, p, _| m.change(t, Op::Rmdir { path: p.to_vec() })),
        libc::SYS_unlink => one_path(&c, cwd, a(0), |m, t, p, _| m.change(t, Op::Unlink { path: p.to_vec() })),
        libc::SYS_unlinkat => one_path(&c, a(0) as i32, a(1), |m, t, p, _| {
            if a(2) & AT_REMOVEDIR != 0 {
                m.change(t, Op::Rmdir { path: p.to_vec() })
            } else {
                m.change(t, Op::Unlink { path: p.to_vec() })
            }
        }),
        libc::SYS_mknod => one_path(&c, cwd, a(0), |m, t, p, _| m.change(t, Op::Mknod { path: p.to_vec(), mode: a(1) as u32, rdev: a(2) })),
        libc::SYS_mknodat => one_path(&c, a(0) as i32, a(1), |m, t, p, _| m.change(t, Op::Mknod { path: p.to_vec(), mode: a(2) as u32, rdev: a(3) })),
        libc::SYS_truncate => one_path(&c, cwd, a(0), |m, t, p, _| m.change(t, Op::Truncate { path: p.to_vec(), len: a(1) as i64 })),
        libc::SYS_chmod => one_path(&c, cwd, a(0), |m, t, p, f| m.change(t, Op::Chmod { path: p.to_vec(), mode: a(1) as u32, follow: f })),
        libc::SYS_fchmodat => one_path(&c, a(0) as i32, a(1), |m, t, p, f| {
            m.change(t, Op::Chmod { path: p.to_vec(), mode: a(2) as u32, follow: f })
        }),
        452 /* fchmodat2 */ => at_path(&c, a(0) as i32, a(1), a(3), |m, t, p, follow| {
            m.change(t, Op::Chmod { path: p.to_vec(), mode: a(2) as u32, follow })
        }),
        libc::SYS_fchmod => on_fd(&c, a(0) as i32, |m, t, p| m.change(t, Op::Chmod { path: p.to_vec(), mode: a(1) as u32, follow: false })),
        libc::SYS_chown => one_path(&c, cwd, a(0), |m, t, p, f| m.chown(t, p, a(1) as u32, a(2) as u32, f)),
        libc::SYS_lchown => one_path(&c, cwd, a(0), |m, t, p, _| m.chown(t, p, a(1) as u32, a(2) as u32, false)),
        libc::SYS_fchown => on_fd(&c, a(0) as i32, |m, t, p| m.chown(t, p, a(1) as u32, a(2) as u32, false)),
        libc::SYS_fchownat => at_path(&c, a(0) as i32, a(1), a(4), |m, t, p, follow| {
            m.chown(t, p, a(2) as u32, a(3) as u32, follow)
        }),
        libc::SYS_getxattr => xattrs::get(&c, by_path(a(0), true), a(1), a(2), a(3)),
        libc::SYS_lgetxattr => xattrs::get(&c, by_path(a(0), false), a(1), a(2), a(3)),
        libc::SYS_fgetxattr => xattrs::get(&c, Target::Fd(a(0) as i32), a(1), a(2), a(3)),
        libc::SYS_listxattr => xattrs::list(&c, by_path(a(0), true), a(1), a(2)),
        libc::SYS_llistxattr => xattrs::list(&c, by_path(a(0), false), a(1), a(2)),
        libc::SYS_flistxattr => xattrs::list(&c, Target::Fd(a(0) as i32), a(1), a(2)),
        libc::SYS_setxattr => xattrs::set(&c, by_path(a(0), true), set_args(n)),
        libc::SYS_lsetxattr => xattrs::set(&c, by_path(a(0), false), set_args(n)),
        libc::SYS_fsetxattr => xattrs::set(&c, Target::Fd(a(0) as i32), set_args(n)),
        libc::SYS_removexattr => xattrs::remove(&c, by_path(a(0), true), a(1)),
        libc::SYS_lremovexattr => xattrs::remove(&c, by_path(a(0), false), a(1)),
        libc::SYS_fremovexattr => xattrs::remove(&c, Target::Fd(a(0) as i32), a(1)),
        libc::SYS_utimensat => set_times(&c, a(0) as i32, a(1), a(2), a(3), Times::Timespec),
        libc::SYS_utimes => set_times(&c, cwd, a(0), a(1), 0, Times::Timeval),
        libc::SYS_futimesat => set_times(&c, a(0) as i32, a(1), a(2), 0, Times::Timeval),
        libc::SYS_utime => set_times(&c, cwd, a(0), a(1), 0, Times::Utimbuf),
        libc::SYS_rename => two_paths(&c, cwd, a(0), cwd, a(1), |m, t, o, n| m.change(t, Op::Rename { old: o.to_vec(), new: n.to_vec(), flags: 0 })),
        libc::SYS_renameat => two_paths(&c, a(0) as i32, a(1), a(2) as i32, a(3), |m, t, o, n| {
            m.change(t, Op::Rename { old: o.to_vec(), new: n.to_vec(), flags: 0 })
        }),
        libc::SYS_renameat2 => two_paths(&c, a(0) as i32, a(1), a(2) as i32, a(3), |m, t, o, n| {
            m.change(t, Op::Rename { old: o.to_vec(), new: n.to_vec(), flags: a(4) as u32 })
        }),
        libc::SYS_link => two_paths(&c, cwd, a(0), cwd, a(1), |m, t, o, n| m.change(t, Op::Link { old: o.to_vec(), new: n.to_vec(), follow: false })),
        libc::SYS_linkat => linkat(&c),
        libc::SYS_bind => bind(&c, a(0) as i32, a(1), a(2)),
        libc::SYS_symlink => symlink(&c, a(0), cwd, a(1)),
        libc::SYS_symlinkat => symlink(&c, a(0), a(1) as i32, a(2)),
        libc::SYS_setuid
        | libc::SYS_setgid
        | libc::SYS_setreuid
        | libc::SYS_setregid
        | libc::SYS_setresuid
        | libc::SYS_setresgid
        | libc::SYS_setfsuid
        | libc::SYS_setfsgid
        | libc::SYS_setgroups
        | libc::SYS_capset => {
            c.model.creds.forget(c.tid());
            Ok(PASS)
        }
        // The calls only a view served without mounts is notified of.
        _ => no_mounts::other(&c),
    };
    let (served, reply) = r.unwrap_or_else(from_io);
    let path = c.seen.and_then(|s| s.into_inner());
    (served, reply, path)
}

/// An xattr call's path argument at `addr`.
fn by_path(addr: u64, follow: bool) -> Target {
    Target::Path { addr, follow }
}

/// The (name, value, size, flags) of a setxattr family call, after its path or fd.
fn set_args(n: &Notif) -> xattrs::SetArgs {
    let a = |i: usize| n.data.args[i];
    xattrs::SetArgs {
        name: a(1),
        value: a(2),
        size: a(3),
        flags: a(4),
    }
}

/// bind(2): a Unix socket bound to a path in the view is bound by the supervisor on the
/// farm (which the program sees read-only); every other address goes to the kernel.
fn bind(c: &Call, fd: i32, addr: u64, len: u64) -> Handled {
    const FAMILY: usize = std::mem::size_of::<libc::sa_family_t>();
    let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_un>());
    if addr == 0 || len <= FAMILY {
        return Ok(PASS);
    }
    let Ok(raw) = mem::read_bytes(c.tid(), addr, len) else {
        return Ok(PASS);
    };
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    let path = &raw[FAMILY..];
    let path = &path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())];
    // Abstract sockets (a leading NUL) and other families name no file.
    if family != libc::AF_UNIX as u16 || path.is_empty() {
        return Ok(PASS);
    }
    let abs = if path[0] == b'/' {
        path.to_vec()
    } else {
        paths::join(&paths::base_dir(c.tid(), libc::AT_FDCWD)?, path)
    };
    if c.model.place(&abs) != Place::View {
        return Ok(PASS);
    }
    c.note(&abs);
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    Ok(c.finish(c.model.bind(c.tid(), &abs, fd), 0, false))
}

fn one_path(
    c: &Call,
    dirfd: i32,
    addr: u64,
    op: impl FnOnce(&Model, u32, &[u8], bool) -> Outcome,
) -> Handled {
    let p = c.path(dirfd, addr, false)?;
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    let follow = p.follow(false);
    Ok(c.finish(op(c.model, c.tid(), &p.abs, follow), 0, false))
}

/// A `*at` call with AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH flags.
fn at_path(
    c: &Call,
    dirfd: i32,
    addr: u64,
    flags: u64,
    op: impl FnOnce(&Model, u32, &[u8], bool) -> Outcome,
) -> Handled {
    let p = c.path(dirfd, addr, flags & AT_EMPTY_PATH != 0)?;
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    let follow = p.follow(flags & AT_SYMLINK_NOFOLLOW != 0);
    Ok(c.finish(op(c.model, c.tid(), &p.abs, follow), 0, false))
}

/// A call on an open file descriptor.
fn on_fd(c: &Call, fd: i32, op: impl FnOnce(&Model, u32, &[u8]) -> Outcome) -> Handled {
    let p = c.fd_arg(fd)?;
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    Ok(c.finish(op(c.model, c.tid(), &p.abs), 0, false))
}

/// rename / link: both outside goes to the kernel; one side in the view is the view's call
/// (it answers EXDEV across the boundary, like two file systems).
fn two_paths(
    c: &Call,
    olddirfd: i32,
    oldaddr: u64,
    newdirfd: i32,
    newaddr: u64,
    op: impl FnOnce(&Model, u32, &[u8], &[u8]) -> Outcome,
) -> Handled {
    let old = c.path(olddirfd, oldaddr, false)?;
    let new = c.path(newdirfd, newaddr, false)?;
    match (&old.place, &new.place) {
        (Place::View, Place::View) => {}
        (Place::View, _) | (_, Place::View) => {
            return Ok((Served::Denied, Reply::Errno(libc::EXDEV)))
        }
        _ => return Ok(no_mounts::pass_change_both(c, &old, &new)),
    }
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    Ok(c.finish(op(c.model, c.tid(), &old.abs, &new.abs), 0, false))
}

fn linkat(c: &Call) -> Handled {
    let flags = c.arg(4);
    let old = c.path(c.arg(0) as i32, c.arg(1), flags & AT_EMPTY_PATH != 0)?;
    let new = c.path(c.arg(2) as i32, c.arg(3), false)?;
    match (&old.place, &new.place) {
        (Place::View, Place::View) => {}
        (Place::View, _) | (_, Place::View) => {
            return Ok((Served::Denied, Reply::Errno(libc::EXDEV)))
        }
        _ => return Ok(no_mounts::pass_change_both(c, &old, &new)),
    }
    let follow = flags & AT_SYMLINK_FOLLOW != 0;
    Ok(c.finish(
        c.model.change(
            c.tid(),
            Op::Link {
                old: old.abs,
                new: new.abs,
                follow,
            },
        ),
        0,
        false,
    ))
}

fn symlink(c: &Call, target_addr: u64, dirfd: i32, addr: u64) -> Handled {
    let target = paths::read_path(c.tid(), target_addr)?;
    let p = c.path(dirfd, addr, false)?;
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    Ok(c.finish(
        c.model.change(
            c.tid(),
            Op::Symlink {
                target,
                path: p.abs,
            },
        ),
        0,
        false,
    ))
}

fn open(c: &Call, dirfd: i32, addr: u64, flags: u64, mode: u64) -> Handled {
    let p = c.path(dirfd, addr, false)?;
    if p.place != Place::View {
        if let Some(r) = no_mounts::open_outside(c, &p, flags as i32) {
            return Ok(r);
        }
        let writes = flags as i32 & (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) != 0;
        return Ok(if writes { c.pass_change(&p) } else { PASS });
    }
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    let o = c.model.open(c.tid(), &p.abs, flags as i32, mode as u32);
    Ok(match o {
        Outcome::Continue if c.model.no_mounts.is_some() => {
            no_mounts::serve_open(c, &p, flags as i32)
        }
        Outcome::Continue => (Served::Hit, Reply::Continue),
        o => c.finish(o, 0, false),
    })
}

fn stat(c: &Call, dirfd: i32, addr: u64, flags: u64, buf: u64, statx: bool) -> Handled {
    let p = c.path(dirfd, addr, flags & AT_EMPTY_PATH != 0)?;
    if p.place != Place::View {
        return Ok(PASS);
    }
    let Some(cred) = c.cred() else {
        return Ok(PASS);
    };
    let follow = p.follow(flags & AT_SYMLINK_NOFOLLOW != 0);
    Ok(c.finish(c.model.stat(&cred, &p.abs, follow), buf, statx))
}

fn fstat(c: &Call, fd: i32, buf: u64) -> Handled {
    let p = c.fd_arg(fd)?;
    if p.place != Place::View {
        return Ok(PASS);
    }
    let Some(cred) = c.cred() else {
        return Ok(PASS);
    };
    Ok(c.finish(c.model.stat(&cred, &p.abs, false), buf, false))
}

fn access(c: &Call, dirfd: i32, addr: u64, mode: u64, flags: u64) -> Handled {
    let p = c.path(dirfd, addr, flags & AT_EMPTY_PATH != 0)?;
    if p.place != Place::View {
        return Ok(PASS);
    }
    let Some(cred) = c.cred() else {
        return Ok(PASS);
    };
    let follow = p.follow(flags & AT_SYMLINK_NOFOLLOW != 0);
    Ok(c.finish(c.model.access(&cred, &p.abs, mode as u32, follow), 0, false))
}

fn exec(c: &Call, dirfd: i32, addr: u64, flags: u64) -> Handled {
    let p = c.path(dirfd, addr, flags & AT_EMPTY_PATH != 0)?;
    if p.place != Place::View {
        c.model.creds.forget_all();
        return Ok(PASS);
    }
    let Some(cred) = c.cred() else {
        return Ok(PASS);
    };
    // Exec may drop capabilities: what was cached for this caller is stale after it.
    c.model.creds.forget_all();
    Ok(match c.model.exec(&cred, &p.abs) {
        Outcome::Continue if c.model.no_mounts.is_some() => no_mounts::exec(c, &p),
        Outcome::Continue => (Served::Hit, Reply::Continue),
        o => c.finish(o, 0, false),
    })
}

/// How a times argument is laid out in the caller's memory.
#[derive(Clone, Copy)]
enum Times {
    /// `struct timespec[2]` (utimensat), with UTIME_NOW and UTIME_OMIT.
    Timespec,
    /// `struct timeval[2]` (utimes, futimesat).
    Timeval,
    /// `struct utimbuf` (utime): two whole seconds.
    Utimbuf,
}

/// Read (atime, mtime); a NULL pointer means "now" for both.
fn read_times(c: &Call, addr: u64, layout: Times) -> io::Result<(TimeSpec, TimeSpec)> {
    if addr == 0 {
        return Ok((TimeSpec::Now, TimeSpec::Now));
    }
    let len = if matches!(layout, Times::Utimbuf) {
        16
    } else {
        32
    };
    let b = mem::read_bytes(c.tid(), addr, len)?;
    let mut words = [0i64; 4];
    for (i, w) in words.iter_mut().enumerate().take(len / 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *w = i64::from_ne_bytes(bytes);
    }
    decode_times(&words, layout).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The times a program passed, as nanoseconds; None (EINVAL, as the kernel answers) for a
/// sub-second field out of range or a time that nanoseconds since 1970 cannot hold.
fn decode_times(w: &[i64; 4], layout: Times) -> Option<(TimeSpec, TimeSpec)> {
    const NS: i64 = 1_000_000_000;
    let set = |sec: i64, sub: i64, unit: i64| {
        let ns = sec.checked_mul(NS)?.checked_add(sub.checked_mul(unit)?)?;
        Some(TimeSpec::Set(ns))
    };
    Some(match layout {
        Times::Timespec => {
            let ts = |sec: i64, nsec: i64| match nsec {
                UTIME_NOW => Some(TimeSpec::Now),
                UTIME_OMIT => Some(TimeSpec::Omit),
                n if (0..NS).contains(&n) => set(sec, n, 1),
                _ => None,
            };
            (ts(w[0], w[1])?, ts(w[2], w[3])?)
        }
        Times::Timeval => {
            let tv = |sec: i64, usec: i64| {
                if (0..1_000_000).contains(&usec) {
                    set(sec, usec, 1000)
                } else {
                    None
                }
            };
            (tv(w[0], w[1])?, tv(w[2], w[3])?)
        }
        Times::Utimbuf => (set(w[0], 0, 1)?, set(w[1], 0, 1)?),
    })
}

/// utimensat / utimes / futimesat / utime. utimensat(fd, NULL, ...) is futimens: the fd.
fn set_times(c: &Call, dirfd: i32, addr: u64, times: u64, flags: u64, layout: Times) -> Handled {
    let p = if addr == 0 && matches!(layout, Times::Timespec) {
        c.fd_arg(dirfd)?
    } else {
        c.path(dirfd, addr, flags & AT_EMPTY_PATH != 0)?
    };
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    let (atime, mtime) = read_times(c, times, layout)?;
    let follow = p.follow(flags & AT_SYMLINK_NOFOLLOW != 0);
    let op = Op::Utimens {
        path: p.abs,
        atime,
        mtime,
        follow,
    };
    Ok(c.finish(c.model.change(c.tid(), op), 0, false))
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn a_path_under_a_proc_fd_link_is_that_fd_and_the_rest() {
        assert_eq!(
            proc_self_fd(b"/proc/self/fd/5/a/b"),
            Some((5, Some(&b"a/b"[..])))
        );
        assert_eq!(
            proc_self_fd(b"/proc/thread-self/fd/12/x"),
            Some((12, Some(&b"x"[..])))
        );
        assert_eq!(proc_self_fd(b"/proc/self/fd/5"), Some((5, None)));
        assert_eq!(proc_self_fd(b"/proc/self/fd/x/a"), None);
        assert_eq!(proc_self_fd(b"/proc/1/fd/5/a"), None);
    }

    #[test]
    fn times_that_overflow_are_einval_not_a_panic() {
        let huge = i64::MAX / 2;
        assert!(decode_times(&[huge, 0, 0, 0], Times::Timespec).is_none());
        assert!(decode_times(&[huge, 0, 0, 0], Times::Timeval).is_none());
        assert!(decode_times(&[0, huge, 0, 0], Times::Utimbuf).is_none());
        assert!(decode_times(&[i64::MIN, 0, 0, 0], Times::Timespec).is_none());
        // Sub-second fields out of range.
        assert!(decode_times(&[1, 1_000_000_000, 0, 0], Times::Timespec).is_none());
        assert!(decode_times(&[1, -1, 0, 0], Times::Timespec).is_none());
        assert!(decode_times(&[1, 1_000_000, 0, 0], Times::Timeval).is_none());
    }

    #[test]
    fn times_in_range_decode() {
        let (a, m) = decode_times(&[2, 5, 3, UTIME_OMIT], Times::Timespec).unwrap();
        assert_eq!(a, TimeSpec::Set(2_000_000_005));
        assert_eq!(m, TimeSpec::Omit);
        let (a, m) = decode_times(&[1, 7, 0, UTIME_NOW], Times::Timespec).unwrap();
        assert_eq!((a, m), (TimeSpec::Set(1_000_000_007), TimeSpec::Now));
        let (a, m) = decode_times(&[1, 2, -3, 0], Times::Timeval).unwrap();
        assert_eq!(
            (a, m),
            (TimeSpec::Set(1_000_002_000), TimeSpec::Set(-3_000_000_000))
        );
        let (a, _) = decode_times(&[4, 5, 0, 0], Times::Utimbuf).unwrap();
        assert_eq!(a, TimeSpec::Set(4_000_000_000));
    }
}
