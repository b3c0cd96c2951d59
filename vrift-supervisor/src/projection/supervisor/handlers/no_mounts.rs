//! The answers of a supervisor serving a view without mounts (see
//! `supervisor::no_mounts`): the kernel sees the real disk at the view's paths, so every
//! call on a view path is answered here, and what the kernel is let to run must reach the
//! object the view means.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::{paths, Call, Handled, PathArg, Reply, Served, PASS};
use crate::projection::supervisor::model::{Outcome, Place};
use crate::sys::mem;
use crate::view::lexical;

const EROFS: (Served, Reply) = (Served::Denied, Reply::Errno(libc::EROFS));

fn os(p: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(p))
}

/// A change outside the view goes to the kernel, unless (without mounts) the kernel would
/// make it in the store.
pub(super) fn pass_change(c: &Call, p: &PathArg) -> (Served, Reply) {
    match &c.model.no_mounts {
        Some(nm) if nm.in_store(&p.kernel) => EROFS,
        _ => PASS,
    }
}

/// [`pass_change`] for a call on two paths (rename, link): neither may be in the store.
pub(super) fn pass_change_both(c: &Call, a: &PathArg, b: &PathArg) -> (Served, Reply) {
    match &c.model.no_mounts {
        Some(nm) if nm.in_store(&a.kernel) || nm.in_store(&b.kernel) => EROFS,
        _ => PASS,
    }
}

/// Open `path` as vrift, with the caller's flags less what the view decided (creation,
/// truncation) and with our copy closed on exec.
fn open_here(path: &Path, flags: i32) -> std::io::Result<std::fs::File> {
    let acc = flags & libc::O_ACCMODE;
    let keep = flags
        & !(libc::O_ACCMODE
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_TRUNC
            | libc::O_CLOEXEC
            | libc::O_NOCTTY);
    std::fs::OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(acc != libc::O_RDONLY)
        .custom_flags(keep | libc::O_CLOEXEC)
        .open(path)
}

/// Is the caller vrift's own user (so an open vrift makes for it is one it could make)?
fn same_user(c: &Call) -> bool {
    c.cred()
        .is_some_and(|cred| cred.uid == nix::unistd::geteuid().as_raw())
}

/// An open of a view path the view allowed and that changes nothing (or a create that
/// found the file there): a descriptor of the farm's object, installed in the caller.
pub(super) fn serve_open(c: &Call, p: &PathArg, flags: i32) -> (Served, Reply) {
    let Some(nm) = &c.model.no_mounts else {
        return PASS;
    };
    let follow = flags & libc::O_NOFOLLOW == 0 && !p.fd_itself;
    let state = &c.model.state;
    let rel = state.with_view(|v| state.rel_in(v, &p.abs, follow));
    let target = match rel {
        Some(rel) => nm.farm_path(&rel),
        // A view symlink leading out of the view: what it names, on disk.
        None => match state.with_view(|v| v.resolve(&p.abs, v.root(), follow)) {
            Ok(vrift_common::vfs::Resolved::Outside(out)) if same_user(c) => os(&out).to_path_buf(),
            _ => return PASS,
        },
    };
    // The farm's path may be longer than the kernel takes.
    let target = match vrift_common::longpath::Short::of(&target) {
        Ok(t) => t,
        Err(e) => {
            return (
                Served::Denied,
                Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        }
    };
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let fifo = std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_fifo());
    if fifo {
        // Its open waits for the other end, which may be a later call: on a thread of its
        // own, so no worker waits.
        let Ok(listener) = c.listener.try_clone() else {
            return (Served::Denied, Reply::Errno(libc::EIO));
        };
        let id = c.n.id;
        let started = std::thread::Builder::new()
            .name("vrift-fifo".into())
            .spawn(move || match open_here(&target, flags) {
                Ok(f) => {
                    let _ = listener.reply_with_fd(id, f.into(), cloexec, writes(flags));
                }
                Err(e) => {
                    let _ = listener.reply_errno(id, e.raw_os_error().unwrap_or(libc::EIO));
                }
            });
        return match started {
            Ok(_) => (Served::Hit, Reply::Done),
            Err(_) => (Served::Denied, Reply::Errno(libc::EAGAIN)),
        };
    }
    if flags & libc::O_PATH != 0 {
        // The kernel will not pass an O_PATH descriptor over (ADDFD takes only files that
        // can be read or written): the kernel opens it itself when it would reach the
        // farm's object, else the object is opened for reading.
        if nm.lands_on(&p.kernel, &target) {
            return (Served::Hit, Reply::Continue);
        }
        let is_link = std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_symlink());
        if is_link {
            nm.refuse(&p.abs, "open of the symlink itself (O_PATH|O_NOFOLLOW)");
            return (Served::Denied, Reply::Errno(libc::ENOTSUP));
        }
        let plain = flags & !(libc::O_PATH | libc::O_ACCMODE) | libc::O_RDONLY;
        return hand_over(c, open_here(&target, plain), plain);
    }
    hand_over(c, open_here(&target, flags), flags)
}

/// Whether an open with `flags` gives a descriptor open for writing.
fn writes(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
}

/// Install `opened` (opened with `flags`) in the caller as its call's result, or answer the
/// error.
fn hand_over(c: &Call, opened: std::io::Result<std::fs::File>, flags: i32) -> (Served, Reply) {
    let cloexec = flags & libc::O_CLOEXEC != 0;
    match opened {
        Ok(f) => match c
            .listener
            .reply_with_fd(c.n.id, f.into(), cloexec, writes(flags))
        {
            Ok(_) => (Served::Hit, Reply::Done),
            // Interrupted, or gone: nothing to answer.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) || !c.still_valid() => {
                (Served::Hit, Reply::Done)
            }
            Err(e) => (
                Served::Denied,
                Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO)),
            ),
        },
        Err(e) => (
            Served::Denied,
            Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO)),
        ),
    }
}

/// A read-only open outside the view that the kernel would resolve from a farm directory
/// (a relative path climbing out of the view from the caller's cwd): vrift opens the path
/// the caller means and hands it over, when it is the caller's user.
pub(super) fn open_outside(c: &Call, p: &PathArg, flags: i32) -> Option<(Served, Reply)> {
    c.model.no_mounts.as_ref()?;
    if p.kernel == p.abs || p.place == Place::View {
        return None;
    }
    let reads = flags & (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) == 0;
    if !reads || !same_user(c) {
        return None;
    }
    let target = lexical::normalize(&p.abs);
    Some(hand_over(c, open_here(os(&target), flags), flags))
}

/// exec of a view path the view allows: the kernel may run it when it would reach the
/// farm's file (a path relative to a farm directory), or the file on disk when that is the
/// view's, unchanged; anything else cannot be run without a mount and is refused.
pub(super) fn exec(c: &Call, p: &PathArg) -> (Served, Reply) {
    let Some(nm) = &c.model.no_mounts else {
        return (Served::Hit, Reply::Continue);
    };
    let state = &c.model.state;
    let found = state.with_view(|v| {
        let rel = state.rel_in(v, &p.abs, true)?;
        let entry = v.lookup(&rel)?;
        // A name of a manifest's link group is in the delta from the start, unchanged.
        let unchanged = v.delta().get(&rel).is_none()
            || v.layers().iter().rev().find_map(|l| l.get(&rel)) == entry.to_manifest().as_ref();
        Some((rel.clone(), entry, unchanged))
    });
    let Some((rel, entry, unchanged)) = found else {
        return (Served::Hit, Reply::Continue); // out of the view through a symlink
    };
    if nm.lands_on(&p.kernel, &nm.farm_path(&rel))
        || (p.kernel == p.abs && unchanged && nm.disk_is_view(&p.abs, &entry))
    {
        return (Served::Hit, Reply::Continue);
    }
    nm.refuse(&p.abs, "exec");
    (Served::Denied, Reply::Errno(libc::EACCES))
}

/// The calls only a view without mounts is notified of.
pub(super) fn other(c: &Call) -> Handled {
    if c.model.no_mounts.is_none() {
        return Ok(PASS);
    }
    let a = |i: usize| c.n.data.args[i];
    let cwd = libc::AT_FDCWD;
    match c.n.data.nr as i64 {
        libc::SYS_readlink => readlink(c, cwd, a(0), a(1), a(2)),
        libc::SYS_readlinkat => readlink(c, a(0) as i32, a(1), a(2), a(3)),
        libc::SYS_chdir => chdir(c, a(0)),
        libc::SYS_getcwd => getcwd(c, a(0), a(1)),
        _ => Ok(PASS),
    }
}

/// Answer a call with `bytes` written at `buf` (at most `size` of them) and their count.
fn give(c: &Call, buf: u64, size: u64, bytes: &[u8]) -> (Served, Reply) {
    let n = bytes.len().min(size as usize);
    if !c.still_valid() {
        return (Served::Hit, Reply::Done);
    }
    match mem::write_bytes(c.tid(), buf, &bytes[..n]) {
        Ok(()) => (Served::Hit, Reply::Value(n as i64)),
        Err(_) => (Served::Denied, Reply::Errno(libc::EFAULT)),
    }
}

fn read_link_here(path: &Path) -> std::io::Result<Vec<u8>> {
    Ok(std::fs::read_link(path)?.as_os_str().as_bytes().to_vec())
}

fn errno_of(e: std::io::Error) -> (Served, Reply) {
    (
        Served::Denied,
        Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}

fn readlink(c: &Call, dirfd: i32, addr: u64, buf: u64, size: u64) -> Handled {
    if size as i64 <= 0 {
        return Ok((Served::Denied, Reply::Errno(libc::EINVAL)));
    }
    let raw = paths::read_path(c.tid(), addr)?;
    if let Some(rest) = raw.strip_prefix(b"/proc/") {
        // The caller's /proc links (fd/N, cwd, exe): the kernel's answer, with a farm path
        // named as the view path it stands for.
        let me = c.tid().to_string();
        let (who, tail) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, &b""[..]),
        };
        let who: &[u8] = if who == b"self" || who == b"thread-self" {
            me.as_bytes()
        } else {
            who
        };
        let link = [b"/proc/", who, tail].concat();
        return Ok(match read_link_here(os(&link)) {
            Ok(target) => {
                let shown = c.model.unfarm(target);
                give(c, buf, size, &shown)
            }
            Err(e) => errno_of(e),
        });
    }
    let p = c.path(dirfd, addr, false)?;
    if p.place != Place::View {
        if p.kernel == p.abs {
            return Ok(PASS);
        }
        // Relative to a farm directory: the path the caller means (a pass-through path's
        // placeholder in the farm is itself a symlink).
        return Ok(match read_link_here(os(&lexical::normalize(&p.abs))) {
            Ok(t) => give(c, buf, size, &t),
            Err(e) => errno_of(e),
        });
    }
    let Some(cred) = c.cred() else {
        return Ok(PASS);
    };
    Ok(match c.model.state.readlink(&cred, &p.abs) {
        Ok(vrift_common::vfs::Routed::View(target)) => give(c, buf, size, &target),
        Ok(vrift_common::vfs::Routed::Outside(out)) => match read_link_here(os(&out)) {
            Ok(t) => give(c, buf, size, &t),
            Err(e) => errno_of(e),
        },
        Ok(_) => PASS,
        Err(e) => (Served::Denied, Reply::Errno(e.raw())),
    })
}

/// chdir: the kernel keeps the cwd, so it must be able to enter what the view means: the
/// farm's directory (a path relative to a farm directory the caller is in), or the real
/// directory at the view path. A directory that is only in the view, named so that the
/// kernel would look for it on disk, cannot be entered: refused, and said.
fn chdir(c: &Call, addr: u64) -> Handled {
    let Some(nm) = &c.model.no_mounts else {
        return Ok(PASS);
    };
    let p = c.path(libc::AT_FDCWD, addr, false)?;
    if p.place != Place::View {
        if p.kernel != p.abs {
            nm.refuse(&p.abs, "chdir out of the view from a directory of the view");
            return Ok((Served::Denied, Reply::Errno(libc::ENOTSUP)));
        }
        return Ok(PASS);
    }
    let Some(cred) = c.cred() else {
        return Ok(PASS);
    };
    match c.model.stat(&cred, &p.abs, true) {
        Outcome::Stat(st) if st.mode & libc::S_IFMT != libc::S_IFDIR => {
            return Ok((Served::Denied, Reply::Errno(libc::ENOTDIR)))
        }
        Outcome::Stat(_) => {}
        Outcome::Errno(e) => return Ok((Served::Denied, Reply::Errno(e))),
        _ => return Ok(PASS),
    }
    if let Outcome::Errno(e) = c.model.access(&cred, &p.abs, libc::X_OK as u32, true) {
        return Ok((Served::Denied, Reply::Errno(e)));
    }
    let state = &c.model.state;
    let rel = state.with_view(|v| state.rel_in(v, &p.abs, true));
    let Some(rel) = rel else {
        return Ok(PASS);
    };
    if nm.lands_on(&p.kernel, &nm.farm_path(&rel)) || (p.kernel == p.abs && os(&p.abs).is_dir()) {
        return Ok((Served::Hit, Reply::Continue));
    }
    nm.refuse(&p.abs, "chdir");
    Ok((Served::Denied, Reply::Errno(libc::ENOTSUP)))
}

/// getcwd: the view path, where the kernel's cwd is a farm directory.
fn getcwd(c: &Call, buf: u64, size: u64) -> Handled {
    let real = paths::base_dir(c.tid(), libc::AT_FDCWD)?;
    let shown = c.model.unfarm(real.clone());
    if shown == real {
        return Ok(PASS);
    }
    let mut bytes = shown;
    bytes.push(0);
    if (bytes.len() as u64) > size {
        return Ok((Served::Denied, Reply::Errno(libc::ERANGE)));
    }
    Ok(give(c, buf, size, &bytes))
}
