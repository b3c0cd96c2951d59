//! One handler per notified system call (x86_64 argument layouts).
//!
//! Every handler reads its path argument, checks the notification is still valid (the
//! tracee's memory could have changed hands otherwise), and either answers from the view or
//! lets the kernel run the call (`Continue`): outside the view, and inside it wherever the
//! kernel, working on the bind-mounted link farm, gives the same answer the view would.

use std::io;

use super::model::{Access, Model, Resolved};
use super::statbuf::StatInfo;
use super::{creds, paths, Reply, Served};
use crate::sys::mem;
use crate::sys::notify::{Listener, Notif};

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EACCESS: u64 = 0x200;
const AT_EMPTY_PATH: u64 = 0x1000;

/// Where a path argument leads.
enum Target {
    /// Outside the view (or unreadable): the kernel decides.
    Outside,
    /// Inside the view.
    View(InView),
}

/// A path inside the view, resolved: its relative path and, if it exists, its metadata.
struct InView {
    #[allow(dead_code)] // used by the write path
    rel: Vec<u8>,
    info: Option<StatInfo>,
}

struct Call<'a> {
    model: &'a Model,
    listener: &'a Listener,
    n: &'a Notif,
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

    /// Resolve (`dirfd`, path at `addr`) the way the tracee's kernel call would.
    fn target(&self, dirfd: i32, addr: u64, follow: bool, empty_ok: bool) -> io::Result<Target> {
        let path = paths::read_path(self.tid(), addr)?;
        let abs = if path.is_empty() {
            if !empty_ok {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            if dirfd == libc::AT_FDCWD {
                paths::base_dir(self.tid(), dirfd)?
            } else {
                paths::fd_path(self.tid(), dirfd)?
            }
        } else if path[0] == b'/' {
            path
        } else {
            paths::join(&paths::base_dir(self.tid(), dirfd)?, &path)
        };
        self.target_of_abs(&abs, follow)
    }

    fn target_of_abs(&self, abs: &[u8], follow: bool) -> io::Result<Target> {
        let root = self.model.root();
        let rel = match paths::under_root(abs, root) {
            Some(rel) => rel.to_vec(),
            None => {
                // A path like /p/other/../proj/x only enters the view after "..".
                if !abs.windows(2).any(|w| w == b"..") {
                    return Ok(Target::Outside);
                }
                let norm = paths::normalize(abs);
                match paths::under_root(&norm, root) {
                    Some(rel) => rel.to_vec(),
                    None => return Ok(Target::Outside),
                }
            }
        };
        match self.model.resolve(&rel, follow) {
            Ok(Resolved::Outside) => Ok(Target::Outside),
            Ok(Resolved::View { rel, info }) => Ok(Target::View(InView { rel, info })),
            Err(errno) => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    fn target_of_fd(&self, fd: i32) -> io::Result<Target> {
        let abs = paths::fd_path(self.tid(), fd)?;
        if abs.first() != Some(&b'/') {
            return Ok(Target::Outside); // pipe:[..], socket:[..], anon_inode:...
        }
        self.target_of_abs(&abs, false)
    }

    fn cred(&self) -> io::Result<creds::Cred> {
        creds::of_thread(self.tid())
    }

    /// Judge `want` on a view entry; only reads the caller's credentials when the mode does
    /// not already grant the access to everybody.
    fn permitted(&self, info: &StatInfo, want: Access) -> Result<(), i32> {
        if self.model.granted_to_all(info, want) {
            return Ok(());
        }
        let cred = self.cred().map_err(|_| libc::ESRCH)?;
        self.model.check(info, want, &cred)
    }

    /// Write a stat buffer into the tracee and complete the call with 0.
    fn reply_stat(&self, buf: u64, bytes: &[u8]) -> (Served, Reply) {
        if !self.still_valid() {
            return (Served::Hit, Reply::Done);
        }
        match mem::write_bytes(self.tid(), buf, bytes) {
            Ok(()) => (Served::Hit, Reply::Value(0)),
            Err(_) => (Served::Hit, Reply::Errno(libc::EFAULT)),
        }
    }
}

fn from_io(e: io::Error) -> (Served, Reply) {
    match e.raw_os_error() {
        // The tracee is gone or the path unreadable for a reason the kernel will report
        // itself: let it run the call and give its own answer.
        Some(libc::ESRCH) | None => (Served::Passthrough, Reply::Continue),
        Some(libc::ENOENT) => (Served::Miss, Reply::Errno(libc::ENOENT)),
        Some(errno) => (Served::Denied, Reply::Errno(errno)),
    }
}

/// Serve one notification.
pub fn dispatch(model: &Model, listener: &Listener, n: &Notif) -> (Served, Reply) {
    let c = Call { model, listener, n };
    let nr = n.data.nr as i64;
    let a = |i: usize| n.data.args[i];
    let r = match nr {
        libc::SYS_open => open(&c, libc::AT_FDCWD, a(0), a(1)),
        libc::SYS_openat => open(&c, a(0) as i32, a(1), a(2)),
        libc::SYS_openat2 => match mem::read_bytes(c.tid(), a(2), 8) {
            Ok(b) => open(
                &c,
                a(0) as i32,
                a(1),
                u64::from_ne_bytes(b.try_into().unwrap()),
            ),
            Err(_) => Ok((Served::Passthrough, Reply::Continue)),
        },
        libc::SYS_creat => open(
            &c,
            libc::AT_FDCWD,
            a(0),
            (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
        ),
        libc::SYS_stat => stat(&c, libc::AT_FDCWD, a(0), 0, a(1), false),
        libc::SYS_lstat => stat(&c, libc::AT_FDCWD, a(0), AT_SYMLINK_NOFOLLOW, a(1), false),
        libc::SYS_newfstatat => stat(&c, a(0) as i32, a(1), a(3), a(2), false),
        libc::SYS_statx => stat(&c, a(0) as i32, a(1), a(2), a(4), true),
        libc::SYS_fstat => fstat(&c, a(0) as i32, a(1)),
        libc::SYS_access => access(&c, libc::AT_FDCWD, a(0), a(1), 0),
        libc::SYS_faccessat => access(&c, a(0) as i32, a(1), a(2), 0),
        libc::SYS_faccessat2 => access(&c, a(0) as i32, a(1), a(2), a(3)),
        libc::SYS_execve => exec(&c, libc::AT_FDCWD, a(0), 0),
        libc::SYS_execveat => exec(&c, a(0) as i32, a(1), a(4)),
        _ => Ok((Served::Passthrough, Reply::Continue)),
    };
    r.unwrap_or_else(from_io)
}

type Handled = io::Result<(Served, Reply)>;

fn open(c: &Call, dirfd: i32, path: u64, flags: u64) -> Handled {
    let flags = flags as i32;
    let follow = flags & libc::O_NOFOLLOW == 0;
    let t = c.target(dirfd, path, follow, false)?;
    let Target::View(r) = t else {
        return Ok((Served::Passthrough, Reply::Continue));
    };
    let Some(info) = r.info else {
        // Not in the view: the farm has no such name either, so the kernel answers ENOENT
        // (or EROFS for a create: the view is read-only until copy-on-write lands).
        return Ok((Served::Miss, Reply::Continue));
    };
    let acc = flags & libc::O_ACCMODE;
    if flags & libc::O_PATH == 0 {
        let want = match acc {
            libc::O_WRONLY => Access::WRITE,
            libc::O_RDWR => Access::READ | Access::WRITE,
            _ => Access::READ,
        };
        if let Err(errno) = c.permitted(&info, want) {
            return Ok((Served::Denied, Reply::Errno(errno)));
        }
    }
    Ok((Served::Hit, Reply::Continue))
}

fn stat(c: &Call, dirfd: i32, path: u64, flags: u64, buf: u64, statx: bool) -> Handled {
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    let t = c.target(dirfd, path, follow, flags & AT_EMPTY_PATH != 0)?;
    serve_stat(c, t, buf, statx)
}

fn fstat(c: &Call, fd: i32, buf: u64) -> Handled {
    let t = c.target_of_fd(fd)?;
    serve_stat(c, t, buf, false)
}

fn serve_stat(c: &Call, t: Target, buf: u64, statx: bool) -> Handled {
    let Target::View(r) = t else {
        return Ok((Served::Passthrough, Reply::Continue));
    };
    let Some(info) = r.info else {
        return Ok((Served::Miss, Reply::Errno(libc::ENOENT)));
    };
    let bytes = if statx {
        info.to_statx_bytes()
    } else {
        info.to_stat_bytes()
    };
    Ok(c.reply_stat(buf, &bytes))
}

fn access(c: &Call, dirfd: i32, path: u64, mode: u64, flags: u64) -> Handled {
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    let _ = AT_EACCESS; // effective vs real ids: vrift judges with the fs ids either way
    let t = c.target(dirfd, path, follow, flags & AT_EMPTY_PATH != 0)?;
    let Target::View(r) = t else {
        return Ok((Served::Passthrough, Reply::Continue));
    };
    let Some(info) = r.info else {
        return Ok((Served::Miss, Reply::Errno(libc::ENOENT)));
    };
    let mut want = Access::empty();
    if mode & libc::R_OK as u64 != 0 {
        want |= Access::READ;
    }
    if mode & libc::W_OK as u64 != 0 {
        want |= Access::WRITE;
    }
    if mode & libc::X_OK as u64 != 0 {
        want |= Access::EXEC;
    }
    match c.permitted(&info, want) {
        Ok(()) => Ok((Served::Hit, Reply::Value(0))),
        Err(errno) => Ok((Served::Denied, Reply::Errno(errno))),
    }
}

fn exec(c: &Call, dirfd: i32, path: u64, flags: u64) -> Handled {
    let t = c.target(dirfd, path, true, flags & AT_EMPTY_PATH != 0)?;
    let Target::View(r) = t else {
        return Ok((Served::Passthrough, Reply::Continue));
    };
    let Some(info) = r.info else {
        return Ok((Served::Miss, Reply::Errno(libc::ENOENT)));
    };
    if info.kind != vrift_common::manifest::EntryKind::File {
        return Ok((Served::Denied, Reply::Errno(libc::EACCES)));
    }
    match c.permitted(&info, Access::EXEC) {
        // The farm's file is a hardlink to a blob (mode 0555): the kernel can exec it.
        Ok(()) => Ok((Served::Hit, Reply::Continue)),
        Err(errno) => Ok((Served::Denied, Reply::Errno(errno))),
    }
}
