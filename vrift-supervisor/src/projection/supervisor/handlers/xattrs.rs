//! The xattr calls on view paths and descriptors of view files: answered from the view's
//! entries (the farm's files are the store's blobs, which carry none), with and without
//! mounts alike. Everything outside the view goes to the kernel.

use vrift_common::manifest::XATTR_SIZE_MAX;
use vrift_common::vfs::{XATTR_CREATE, XATTR_REPLACE};

use super::{paths, Call, Handled, PathArg, Reply, Served, PASS};
use crate::projection::supervisor::model::{Outcome, Place};
use crate::sys::mem;
use crate::view::state::XattrRead;
use vrift_common::acl;
use vrift_common::runlog::Op;

/// What an xattr call names.
#[derive(Clone, Copy)]
pub(super) enum Target {
    /// A path argument at this address; `follow` a final symlink (getxattr, not lgetxattr).
    Path { addr: u64, follow: bool },
    /// An open file descriptor (fgetxattr and friends).
    Fd(i32),
}

impl Target {
    fn resolve(self, c: &Call) -> std::io::Result<(PathArg, bool)> {
        match self {
            Target::Path { addr, follow } => {
                let p = c.path(libc::AT_FDCWD, addr, false)?;
                let follow = p.follow(!follow);
                Ok((p, follow))
            }
            Target::Fd(fd) => Ok((c.fd_arg(fd)?, false)),
        }
    }
}

/// The attribute name argument: the kernel reads it before it looks the path up.
fn read_name(c: &Call, addr: u64) -> std::io::Result<Vec<u8>> {
    match paths::read_path(c.tid(), addr) {
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
            Err(std::io::Error::from_raw_os_error(libc::ERANGE))
        }
        r => r,
    }
}

fn errno(e: i32) -> (Served, Reply) {
    (Served::Denied, Reply::Errno(e))
}

/// getxattr, lgetxattr, fgetxattr: the value into the caller's `buf` of `size` bytes.
pub(super) fn get(c: &Call, target: Target, name: u64, buf: u64, size: u64) -> Handled {
    let name = read_name(c, name)?;
    let Some((p, follow, cred)) = in_view(c, target)? else {
        return Ok(PASS);
    };
    Ok(answer(
        c,
        c.model.getxattr(&cred, &p.abs, &name, follow),
        buf,
        size,
    ))
}

/// listxattr, llistxattr, flistxattr: the NUL-ended names into `buf` of `size` bytes.
pub(super) fn list(c: &Call, target: Target, buf: u64, size: u64) -> Handled {
    let Some((p, follow, cred)) = in_view(c, target)? else {
        return Ok(PASS);
    };
    Ok(answer(
        c,
        c.model.listxattr(&cred, &p.abs, follow),
        buf,
        size,
    ))
}

/// A read's target when it is in the view, with whether to follow a final symlink and the
/// caller's credentials; None for the kernel to answer (outside the view, or a caller whose
/// credentials cannot be read).
fn in_view(
    c: &Call,
    target: Target,
) -> std::io::Result<Option<(PathArg, bool, vrift_common::vfs::Cred)>> {
    let (p, follow) = target.resolve(c)?;
    if p.place != Place::View {
        return Ok(None);
    }
    Ok(c.cred().map(|cred| (p, follow, cred)))
}

/// A read's answer as the kernel gives it: with `size` 0 the length alone, ERANGE when the
/// bytes do not fit, else the bytes and their length.
fn answer(c: &Call, r: XattrRead, buf: u64, size: u64) -> (Served, Reply) {
    let bytes = match r {
        XattrRead::Bytes(b) => b,
        XattrRead::Errno(e) => return c.finish(Outcome::Errno(e), 0, false),
        XattrRead::Outside => return PASS,
    };
    if !c.still_valid() {
        return (Served::Hit, Reply::Done);
    }
    if size == 0 {
        return (Served::Hit, Reply::Value(bytes.len() as i64));
    }
    if (size as usize) < bytes.len() {
        return errno(libc::ERANGE);
    }
    match mem::write_bytes(c.tid(), buf, &bytes) {
        Ok(()) => (Served::Hit, Reply::Value(bytes.len() as i64)),
        Err(_) => errno(libc::EFAULT),
    }
}

/// The (name, value, size, flags) arguments of a setxattr.
pub(super) struct SetArgs {
    pub name: u64,
    pub value: u64,
    pub size: u64,
    pub flags: u64,
}

/// setxattr, lsetxattr, fsetxattr: the view's entry takes the attribute (a journalled
/// change). An access ACL that says no more than a mode (`sed -i` and `cp -p` set the mode
/// of what they write so) is the chmod it stands for, as the kernel makes it.
pub(super) fn set(c: &Call, target: Target, a: SetArgs) -> Handled {
    // The kernel's order: the flags, the name, the value's size, then the path.
    if a.flags & !u64::from(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Ok(errno(libc::EINVAL));
    }
    let name = read_name(c, a.name)?;
    if a.size as usize > XATTR_SIZE_MAX {
        return Ok(errno(libc::E2BIG));
    }
    let value = if a.size == 0 {
        Vec::new()
    } else {
        mem::read_bytes(c.tid(), a.value, a.size as usize)?
    };
    let (p, follow) = target.resolve(c)?;
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    if name == acl::ACCESS_ACL {
        if let Some(perm) = acl::equivalent_mode(&value) {
            return Ok(acl_chmod(c, &p, perm, follow));
        }
    }
    let op = Op::SetXattr {
        path: p.abs,
        name,
        value,
        flags: a.flags as u32,
        follow,
    };
    Ok(c.finish(c.model.change(c.tid(), op), 0, false))
}

/// A mode-equivalent access ACL: chmod to its permission bits, keeping the set-id and
/// sticky bits (chmod's rules judge it: the owner, or CAP_FOWNER).
fn acl_chmod(c: &Call, p: &PathArg, perm: u32, follow: bool) -> (Served, Reply) {
    let Some(cred) = c.cred() else {
        return PASS;
    };
    let st = match c.model.stat(&cred, &p.abs, follow) {
        Outcome::Stat(st) => st,
        Outcome::Errno(e) => return errno(e),
        _ => return PASS,
    };
    let chmod = Op::Chmod {
        path: p.abs.clone(),
        mode: (st.mode & 0o7000) | perm,
        follow,
    };
    c.finish(c.model.change(c.tid(), chmod), 0, false)
}

/// removexattr, lremovexattr, fremovexattr: a journalled change of the view's entry.
pub(super) fn remove(c: &Call, target: Target, name: u64) -> Handled {
    let name = read_name(c, name)?;
    let (p, follow) = target.resolve(c)?;
    if p.place != Place::View {
        return Ok(c.pass_change(&p));
    }
    if !c.still_valid() {
        return Ok((Served::Hit, Reply::Done));
    }
    let op = Op::RemoveXattr {
        path: p.abs,
        name,
        follow,
    };
    Ok(c.finish(c.model.change(c.tid(), op), 0, false))
}
