//! Adding and removing names: mkdir, rmdir, unlink, link, symlink, mknod.

use super::{Caller, Routed};
use crate::hash::Hash;
use crate::manifest::RelPath;
use crate::vfs::entry::{Content, Node, ViewEntry};
use crate::vfs::errno::Errno;
use crate::vfs::layers::{parent_of, LayerSource, View};
use crate::vfs::perm::may_hardlink;
use crate::vfs::resolve::{Follow, Last, PATH_MAX};
use crate::vfs::stat::{S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK};

const S_IFDIR: u32 = 0o040000;

impl<L: LayerSource> View<L> {
    /// The kernel's `filename_create`: the new name must not exist; a trailing slash is only
    /// allowed for a directory. `Ok(Err(path))` when the name is outside the view.
    fn new_name(
        &self,
        c: &Caller,
        path: &[u8],
        is_dir: bool,
    ) -> Result<Result<RelPath, Vec<u8>>, Errno> {
        let h = match self.hit(c, path, Follow::Parent)? {
            Ok(h) => h,
            Err(p) => return Ok(Err(p)),
        };
        if h.last != Last::Normal || h.entry.is_some() {
            return Err(Errno::EEXIST);
        }
        if h.trailing && !is_dir {
            return Err(Errno::ENOENT);
        }
        Ok(Ok(h.rel))
    }

    /// mkdir(2): a new, empty (opaque) directory with `mode & 01777 & !umask`; it inherits
    /// the set-gid bit of its parent.
    pub fn mkdir(&mut self, c: &Caller, path: &[u8], mode: u32) -> Result<Routed<RelPath>, Errno> {
        let rel = match self.new_name(c, path, true)? {
            Ok(r) => r,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        self.may_create(c, &rel)?;
        let mut mode = mode & 0o1777 & !c.umask;
        if self.parent_dir(&rel).mode & 0o2000 != 0 {
            mode |= 0o2000;
        }
        let e = ViewEntry {
            node: Node::Dir,
            size: 0,
            mode,
            mtime_ns: c.now_ns,
            ino: 0,
            meta: Default::default(),
            atime_ns: 0,
            ctime_ns: 0,
        };
        self.new_entry_at(c, &rel, e);
        Ok(Routed::View(rel))
    }

    /// rmdir(2).
    pub fn rmdir(&mut self, c: &Caller, path: &[u8]) -> Result<Routed<RelPath>, Errno> {
        let h = match self.hit(c, path, Follow::Parent)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        match h.last {
            Last::Dot => return Err(Errno::EINVAL),
            Last::DotDot => return Err(Errno::ENOTEMPTY),
            Last::Root => return Err(Errno::EBUSY),
            Last::Normal => {}
        }
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if h.rel.is_empty() {
            // The view's root is a mount point.
            return Err(Errno::EBUSY);
        }
        self.may_delete(c, &h.rel, &e, true)?;
        if !self.children(&h.rel).unwrap_or_default().is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove(&h.rel);
        self.touch_dir(parent_of(&h.rel), c.now_ns);
        Ok(Routed::View(h.rel))
    }

    /// unlink(2): removes a file, symlink or FIFO (a directory gives EISDIR, as on Linux).
    pub fn unlink(&mut self, c: &Caller, path: &[u8]) -> Result<Routed<RelPath>, Errno> {
        let h = match self.hit(c, path, Follow::Parent)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        if h.last != Last::Normal {
            return Err(Errno::EISDIR);
        }
        if h.trailing {
            return Err(match &h.entry {
                None => Errno::ENOENT,
                Some(e) if e.is_dir() => Errno::EISDIR,
                Some(_) => Errno::ENOTDIR,
            });
        }
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if h.rel.is_empty() {
            return Err(Errno::EISDIR);
        }
        self.may_delete(c, &h.rel, &e, false)?;
        self.remove(&h.rel);
        // The file's other names see its link count drop: a status change.
        if !e.is_dir() {
            self.delta.touch_inode(e.ino, c.now_ns);
        }
        self.touch_dir(parent_of(&h.rel), c.now_ns);
        Ok(Routed::View(h.rel))
    }

    /// link(2) / linkat(2): `new` becomes another name for the content of `old`.
    ///
    /// During the run the two names are one inode: the same inode number, a link count
    /// counting both, and a write through one name shows through the other. A manifest
    /// (format 1) has no inode identity: after the commit they are two entries sharing a
    /// blob.
    pub fn link(
        &mut self,
        c: &Caller,
        old: &[u8],
        new: &[u8],
        follow: bool,
    ) -> Result<Routed<RelPath>, Errno> {
        let old_h = self.hit(c, old, if follow { Follow::Yes } else { Follow::No })?;
        if let Ok(h) = &old_h {
            if h.entry.is_none() {
                return Err(Errno::ENOENT);
            }
        }
        let new_rel = self.new_name(c, new, false)?;
        let (h, new_rel) = match (old_h, new_rel) {
            (Err(a), Err(b)) => return Ok(Routed::OutsideBoth(a, b)),
            (Ok(h), Ok(n)) => (h, n),
            _ => return Err(Errno::EXDEV),
        };
        let src = h.entry.expect("checked above");
        if !may_hardlink(c.cred, self.owner_of(&src), &src) {
            return Err(Errno::EPERM);
        }
        self.may_create(c, &new_rel)?;
        if src.is_dir() {
            return Err(Errno::EPERM);
        }
        // One inode under two names: the same number, the link count both show, and the
        // status change both see.
        self.update(&h.rel, |e| e.ctime_ns = c.now_ns);
        let mut e = src;
        e.ctime_ns = c.now_ns;
        self.create(&new_rel, e);
        self.touch_dir(parent_of(&new_rel), c.now_ns);
        Ok(Routed::View(new_rel))
    }

    /// symlink(2): a new symlink at `linkpath` pointing at `target` (any bytes).
    pub fn symlink(
        &mut self,
        c: &Caller,
        target: &[u8],
        linkpath: &[u8],
    ) -> Result<Routed<RelPath>, Errno> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let rel = match self.new_name(c, linkpath, false)? {
            Ok(r) => r,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        self.may_create(c, &rel)?;
        let e = ViewEntry {
            node: Node::Symlink(target.to_vec()),
            size: target.len() as u64,
            mode: 0o777,
            mtime_ns: c.now_ns,
            ino: 0,
            meta: Default::default(),
            atime_ns: 0,
            ctime_ns: 0,
        };
        self.new_entry_at(c, &rel, e);
        Ok(Routed::View(rel))
    }

    /// mknod(2) with no device number: see [`View::mknod_dev`].
    pub fn mknod(&mut self, c: &Caller, path: &[u8], mode: u32) -> Result<Routed<RelPath>, Errno> {
        self.mknod_dev(c, path, mode, 0)
    }

    /// mknod(2): a FIFO, a socket, a device node (`rdev`; for a privileged caller only, as
    /// the kernel wants CAP_MKNOD), or an empty regular file (type 0 or S_IFREG), whose
    /// content is the empty blob, which the store must hold. FIFOs, sockets and devices live
    /// for the run only.
    pub fn mknod_dev(
        &mut self,
        c: &Caller,
        path: &[u8],
        mode: u32,
        rdev: u64,
    ) -> Result<Routed<RelPath>, Errno> {
        let kind = mode & S_IFMT;
        let node = match kind {
            0 | S_IFREG => Node::File(Content::Blob(Hash::of(b""))),
            S_IFIFO => Node::Fifo,
            S_IFDIR => return Err(Errno::EPERM),
            S_IFCHR | S_IFBLK => Node::Special { kind, rdev },
            S_IFSOCK => Node::Special { kind, rdev: 0 },
            _ => return Err(Errno::EINVAL),
        };
        let rel = match self.new_name(c, path, false)? {
            Ok(r) => r,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        self.may_create(c, &rel)?;
        if matches!(kind, S_IFCHR | S_IFBLK) && !c.cred.privileged {
            return Err(Errno::EPERM);
        }
        let e = ViewEntry {
            node,
            size: 0,
            mode: mode & 0o7777 & !c.umask,
            mtime_ns: c.now_ns,
            ino: 0,
            meta: Default::default(),
            atime_ns: 0,
            ctime_ns: 0,
        };
        self.new_entry_at(c, &rel, e);
        Ok(Routed::View(rel))
    }
}
