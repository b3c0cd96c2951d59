//! Extended attributes of view entries: getxattr, listxattr, setxattr and removexattr, judged
//! as the kernel judges them (`xattr_permission`, then the file system's handler), over the
//! xattrs a manifest keeps (`manifest::is_kept_xattr`). The entry's xattrs change in the
//! delta, like its mode, so they reach the run's manifest and the write-back.

use super::{Caller, Routed};
use crate::manifest::{is_kept_xattr, RelPath, Xattr, XATTR_NAME_MAX, XATTR_SIZE_MAX};
use crate::vfs::entry::ViewEntry;
use crate::vfs::errno::Errno;
use crate::vfs::layers::{LayerSource, View};
use crate::vfs::perm::{owns, permits, MAY_READ, MAY_WRITE};
use crate::vfs::resolve::Follow;

/// setxattr's XATTR_CREATE: fail with EEXIST if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// setxattr's XATTR_REPLACE: fail with ENODATA if the attribute does not exist.
pub const XATTR_REPLACE: u32 = 2;

const S_ISVTX: u32 = 0o1000;

/// The namespace an xattr name is in, which decides who may use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Namespace {
    User,
    Trusted,
    Security,
    /// `system.posix_acl_access` and `system.posix_acl_default`.
    Acl,
    /// Any other name: no file system handler takes it (EOPNOTSUPP).
    Unknown,
}

fn namespace(name: &[u8]) -> Namespace {
    if name.starts_with(b"user.") {
        Namespace::User
    } else if name.starts_with(b"trusted.") {
        Namespace::Trusted
    } else if name.starts_with(b"security.") {
        Namespace::Security
    } else if name == b"system.posix_acl_access" || name == b"system.posix_acl_default" {
        Namespace::Acl
    } else {
        Namespace::Unknown
    }
}

/// The kernel's check of a name copied from the caller: empty or too long is ERANGE.
fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        Err(Errno::ERANGE)
    } else {
        Ok(())
    }
}

/// `user.*` lives on regular files and directories only.
fn holds_user_xattrs(e: &ViewEntry) -> bool {
    e.is_file() || e.is_dir()
}

/// The entry a path names (its path in the view and itself), or the path outside the view.
type Found = Result<(RelPath, ViewEntry), Vec<u8>>;

impl<L: LayerSource> View<L> {
    fn xattr_target(&self, c: &Caller, path: &[u8], follow: bool) -> Result<Found, Errno> {
        let follow = if follow { Follow::Yes } else { Follow::No };
        Ok(match self.hit(c, path, follow)? {
            Ok(h) => Ok((h.rel, h.entry.ok_or(Errno::ENOENT)?)),
            Err(p) => Err(p),
        })
    }

    /// `xattr_permission(MAY_READ)`: what stops a read before the value is looked up.
    fn may_read_xattr(&self, c: &Caller, e: &ViewEntry, ns: Namespace) -> Result<(), Errno> {
        match ns {
            Namespace::Security | Namespace::Acl => Ok(()),
            Namespace::Trusted if !c.cred.privileged => Err(Errno::ENODATA),
            Namespace::Trusted => Ok(()),
            Namespace::User if !holds_user_xattrs(e) => Err(Errno::ENODATA),
            Namespace::User | Namespace::Unknown => {
                if permits(c.cred, self.owner_of(e), e, MAY_READ) {
                    Ok(())
                } else {
                    Err(Errno::EACCES)
                }
            }
        }
    }

    /// `xattr_permission(MAY_WRITE)` and the ACL handler's owner check.
    fn may_write_xattr(&self, c: &Caller, e: &ViewEntry, ns: Namespace) -> Result<(), Errno> {
        let owner = self.owner_of(e);
        match ns {
            Namespace::Security => Ok(()),
            Namespace::Acl if owns(c.cred, owner) => Ok(()),
            Namespace::Acl => Err(Errno::EPERM),
            Namespace::Trusted if !c.cred.privileged => Err(Errno::EPERM),
            Namespace::Trusted => Ok(()),
            Namespace::User if !holds_user_xattrs(e) => Err(Errno::EPERM),
            Namespace::User if e.is_dir() && e.mode & S_ISVTX != 0 && !owns(c.cred, owner) => {
                Err(Errno::EPERM)
            }
            Namespace::User | Namespace::Unknown => {
                if permits(c.cred, owner, e, MAY_WRITE) {
                    Ok(())
                } else {
                    Err(Errno::EACCES)
                }
            }
        }
    }

    /// getxattr / lgetxattr: the value of `name`. ENODATA where the entry has none (every
    /// name a manifest does not keep), EOPNOTSUPP for a name in no namespace.
    pub fn getxattr(
        &self,
        c: &Caller,
        path: &[u8],
        name: &[u8],
        follow: bool,
    ) -> Result<Routed<Vec<u8>>, Errno> {
        check_name(name)?;
        let (_, e) = match self.xattr_target(c, path, follow)? {
            Ok(t) => t,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let ns = namespace(name);
        self.may_read_xattr(c, &e, ns)?;
        if ns == Namespace::Unknown {
            return Err(Errno::EOPNOTSUPP);
        }
        e.meta
            .xattr(name)
            .map(|v| Routed::View(v.to_vec()))
            .ok_or(Errno::ENODATA)
    }

    /// listxattr / llistxattr: the entry's xattr names, each followed by a NUL. Needs no
    /// permission on the entry itself; `trusted.*` is listed to privileged callers only.
    pub fn listxattr(
        &self,
        c: &Caller,
        path: &[u8],
        follow: bool,
    ) -> Result<Routed<Vec<u8>>, Errno> {
        let (_, e) = match self.xattr_target(c, path, follow)? {
            Ok(t) => t,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let mut list = Vec::new();
        for x in &e.meta.xattrs {
            if namespace(&x.name) == Namespace::Trusted && !c.cred.privileged {
                continue;
            }
            list.extend_from_slice(&x.name);
            list.push(0);
        }
        Ok(Routed::View(list))
    }

    /// setxattr / lsetxattr: set `name` to `value` on the entry. `flags` is 0, XATTR_CREATE
    /// (EEXIST if it exists) or XATTR_REPLACE (ENODATA if it does not). Names a manifest does
    /// not keep cannot be set (EOPNOTSUPP, as a file system without them says), nor can
    /// ACLs, which are judged by the projection (one that says no more than a mode is a
    /// chmod). The status changes (ctime).
    pub fn setxattr(
        &mut self,
        c: &Caller,
        path: &[u8],
        name: &[u8],
        value: &[u8],
        flags: u32,
        follow: bool,
    ) -> Result<Routed<()>, Errno> {
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        check_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        let (rel, e) = match self.xattr_target(c, path, follow)? {
            Ok(t) => t,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let ns = namespace(name);
        self.may_write_xattr(c, &e, ns)?;
        if ns == Namespace::Acl || !is_kept_xattr(name) {
            return Err(Errno::EOPNOTSUPP);
        }
        let exists = e.meta.xattr(name).is_some();
        if exists && flags & XATTR_CREATE != 0 {
            return Err(Errno::EEXIST);
        }
        if !exists && flags & XATTR_REPLACE != 0 {
            return Err(Errno::ENODATA);
        }
        let x = Xattr {
            name: name.to_vec(),
            value: value.to_vec(),
        };
        self.update_inode(&rel, |e| {
            put_xattr(&mut e.meta.xattrs, x.clone());
            e.ctime_ns = c.now_ns;
        });
        Ok(Routed::View(()))
    }

    /// removexattr / lremovexattr: ENODATA where the entry has no such attribute, except an
    /// ACL, whose removal succeeds when there is none (as on ext4). The status changes.
    pub fn removexattr(
        &mut self,
        c: &Caller,
        path: &[u8],
        name: &[u8],
        follow: bool,
    ) -> Result<Routed<()>, Errno> {
        check_name(name)?;
        let (rel, e) = match self.xattr_target(c, path, follow)? {
            Ok(t) => t,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let ns = namespace(name);
        self.may_write_xattr(c, &e, ns)?;
        if ns == Namespace::Unknown {
            return Err(Errno::EOPNOTSUPP);
        }
        if e.meta.xattr(name).is_none() {
            return if ns == Namespace::Acl {
                Ok(Routed::View(()))
            } else {
                Err(Errno::ENODATA)
            };
        }
        self.update_inode(&rel, |e| {
            e.meta.xattrs.retain(|x| x.name != name);
            e.ctime_ns = c.now_ns;
        });
        Ok(Routed::View(()))
    }
}

/// Set `x` in a list sorted by name with unique names (the manifest's order).
fn put_xattr(xattrs: &mut Vec<Xattr>, x: Xattr) {
    match xattrs.binary_search_by(|y| y.name.cmp(&x.name)) {
        Ok(i) => xattrs[i] = x,
        Err(i) => xattrs.insert(i, x),
    }
}
