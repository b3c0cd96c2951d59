//! Reading and changing attributes: stat, readlink, getdents, access, chdir, chmod, chown,
//! utimensat.

use super::{Caller, Routed};
use crate::manifest::{EntryOwner, RelPath};
use crate::vfs::entry::Node;
use crate::vfs::errno::Errno;
use crate::vfs::layers::{LayerSource, View};
use crate::vfs::perm::{owns, permits, Owner, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::vfs::resolve::Follow;
use crate::vfs::stat::{DirEntry, Stat};

/// One time argument of utimensat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeSpec {
    /// UTIME_NOW (or a NULL times argument).
    Now,
    /// UTIME_OMIT.
    Omit,
    /// An explicit time, nanoseconds since the epoch.
    Set(i64),
}

impl<L: LayerSource> View<L> {
    fn follow(follow: bool) -> Follow {
        if follow {
            Follow::Yes
        } else {
            Follow::No
        }
    }

    /// stat / lstat / fstatat / statx.
    pub fn stat(&self, c: &Caller, path: &[u8], follow: bool) -> Result<Routed<Stat>, Errno> {
        let h = match self.hit(c, path, Self::follow(follow))? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        Ok(Routed::View(self.stat_of(&h.rel, &e)))
    }

    /// readlink(2): the manifest's target, byte for byte.
    pub fn readlink(&self, c: &Caller, path: &[u8]) -> Result<Routed<Vec<u8>>, Errno> {
        let h = match self.hit(c, path, Follow::No)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        match h.entry.map(|e| e.node) {
            None => Err(Errno::ENOENT),
            Some(Node::Symlink(t)) => Ok(Routed::View(t)),
            Some(_) => Err(Errno::EINVAL),
        }
    }

    /// Open a directory and list it (getdents): needs read permission on it.
    pub fn read_dir(&self, c: &Caller, path: &[u8]) -> Result<Routed<Vec<DirEntry>>, Errno> {
        let h = match self.hit(c, path, Follow::Yes)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if !e.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !permits(c.cred, self.owner_of(&e), &e, MAY_READ) {
            return Err(Errno::EACCES);
        }
        self.list_dir(&h.rel).map(Routed::View)
    }

    /// access / faccessat / faccessat2: `mode` is F_OK or a mix of R_OK, W_OK, X_OK. Pass
    /// the real ids in `c.cred` unless the call has AT_EACCESS.
    pub fn access(
        &self,
        c: &Caller,
        path: &[u8],
        mode: u32,
        follow: bool,
    ) -> Result<Routed<()>, Errno> {
        if mode & !7 != 0 {
            return Err(Errno::EINVAL);
        }
        let h = match self.hit(c, path, Self::follow(follow))? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let mut e = h.entry.ok_or(Errno::ENOENT)?;
        if e.is_symlink() {
            e.mode = 0o777;
        }
        if mode != 0 && !permits(c.cred, self.owner_of(&e), &e, mode) {
            return Err(Errno::EACCES);
        }
        Ok(Routed::View(()))
    }

    /// chdir(2): the new cwd inside the view (report it with [`View::abs_path`] for getcwd).
    pub fn chdir(&self, c: &Caller, path: &[u8]) -> Result<Routed<RelPath>, Errno> {
        let h = match self.hit(c, path, Follow::Yes)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if !e.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !permits(c.cred, self.owner_of(&e), &e, MAY_EXEC) {
            return Err(Errno::EACCES);
        }
        Ok(Routed::View(h.rel))
    }

    /// chmod / fchmodat: the owner (or a CAP_FOWNER caller) sets `mode & 07777`. Like the
    /// kernel, a caller without CAP_FSETID who is not in the file's group loses S_ISGID.
    pub fn chmod(
        &mut self,
        c: &Caller,
        path: &[u8],
        mode: u32,
        follow: bool,
    ) -> Result<Routed<()>, Errno> {
        let h = match self.hit(c, path, Self::follow(follow))? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if e.is_symlink() {
            // fchmodat2(AT_SYMLINK_NOFOLLOW) on a symlink.
            return Err(Errno::EOPNOTSUPP);
        }
        let owner = self.owner_of(&e);
        if !owns(c.cred, owner) {
            return Err(Errno::EPERM);
        }
        let mut mode = mode & 0o7777;
        if !c.cred.privileged && !c.cred.in_group(owner.gid) {
            mode &= !0o2000;
        }
        self.update_inode(&h.rel, |e| {
            e.mode = mode;
            e.ctime_ns = c.now_ns;
        });
        Ok(Routed::View(()))
    }

    /// chown / lchown / fchownat: `uid` and `gid` are the new owner and group, `None` for -1
    /// (unchanged). As the kernel judges it (`chown_ok`, `chgrp_ok`): a privileged caller may
    /// set any; the owner may keep its uid and set the group to one of its own groups;
    /// anything else is EPERM. On anything but a directory S_ISUID goes, and S_ISGID too when
    /// the file is group-executable or the caller is neither in the file's group nor
    /// privileged (`setattr_should_drop_sgid`), even for root, as on Linux. The status
    /// changes (ctime) even when nothing does.
    pub fn chown(
        &mut self,
        c: &Caller,
        path: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
        follow: bool,
    ) -> Result<Routed<()>, Errno> {
        let h = match self.hit(c, path, Self::follow(follow))? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        let now = self.owner_of(&e);
        let is_owner = c.cred.uid == now.uid;
        let uid_ok = uid.is_none_or(|u| c.cred.privileged || (is_owner && u == now.uid));
        let gid_ok = gid.is_none_or(|g| {
            c.cred.privileged || (is_owner && (g == now.gid || c.cred.in_group(g)))
        });
        if !uid_ok || !gid_ok {
            return Err(Errno::EPERM);
        }
        let new = Owner {
            uid: uid.unwrap_or(now.uid),
            gid: gid.unwrap_or(now.gid),
        };
        let mut kill = 0;
        if !e.is_dir() {
            kill |= 0o4000;
            if e.mode & 0o010 != 0 || !(c.cred.privileged || c.cred.in_group(now.gid)) {
                kill |= 0o2000;
            }
        }
        // Recorded where it differs from the view's owner, or where the entry records one
        // already (a manifest with owners keeps recording them).
        let recorded = (new != self.owner || e.meta.owner.is_some()).then_some(EntryOwner {
            uid: new.uid,
            gid: new.gid,
        });
        self.update_inode(&h.rel, |e| {
            e.meta.owner = recorded;
            e.mode &= !kill;
            e.ctime_ns = c.now_ns;
        });
        Ok(Routed::View(()))
    }

    /// utimensat / utimes. The access time is kept for the run only (a manifest has no atime).
    /// Explicit times need the owner (EPERM); "now" needs the owner or write access (EACCES).
    pub fn utimens(
        &mut self,
        c: &Caller,
        path: &[u8],
        atime: TimeSpec,
        mtime: TimeSpec,
        follow: bool,
    ) -> Result<Routed<()>, Errno> {
        let h = match self.hit(c, path, Self::follow(follow))? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if atime == TimeSpec::Omit && mtime == TimeSpec::Omit {
            return Ok(Routed::View(()));
        }
        let explicit = matches!(atime, TimeSpec::Set(_)) || matches!(mtime, TimeSpec::Set(_));
        if !owns(c.cred, self.owner_of(&e)) {
            if explicit {
                return Err(Errno::EPERM);
            }
            if !permits(c.cred, self.owner_of(&e), &e, MAY_WRITE) {
                return Err(Errno::EACCES);
            }
        }
        let time = |t: TimeSpec| match t {
            TimeSpec::Omit => None,
            TimeSpec::Now => Some(c.now_ns),
            TimeSpec::Set(t) => Some(t),
        };
        let (new_atime, new_mtime) = (time(atime), time(mtime));
        self.update_inode(&h.rel, |e| {
            // Keep an atime that only followed mtime when mtime alone moves.
            let old_atime = e.atime();
            if let Some(m) = new_mtime {
                e.mtime_ns = m;
            }
            e.atime_ns = new_atime.unwrap_or(old_atime);
            e.ctime_ns = c.now_ns;
        });
        Ok(Routed::View(()))
    }
}
