//! rename(2) / renameat2(2): files and whole directories, replacing or exchanging.

use super::{Caller, Routed};
use crate::manifest::RelPath;
use crate::vfs::delta::DeltaNode;
use crate::vfs::entry::ViewEntry;
use crate::vfs::errno::Errno;
use crate::vfs::layers::{join, parent_of, LayerSource, View};
use crate::vfs::perm::{permits, MAY_WRITE};
use crate::vfs::resolve::{Follow, Last};

/// renameat2's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameMode {
    /// Plain rename: atomically replace an existing target.
    Replace,
    /// RENAME_NOREPLACE: EEXIST if the target exists.
    NoReplace,
    /// RENAME_EXCHANGE: swap the two entries; both must exist.
    Exchange,
}

impl RenameMode {
    /// Decode Linux renameat2 flags (RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2,
    /// RENAME_WHITEOUT = 4, which a view does not support).
    pub fn from_linux_flags(flags: u32) -> Result<RenameMode, Errno> {
        match flags {
            0 => Ok(RenameMode::Replace),
            1 => Ok(RenameMode::NoReplace),
            2 => Ok(RenameMode::Exchange),
            _ => Err(Errno::EINVAL),
        }
    }
}

fn is_below(path: &[u8], ancestor: &[u8]) -> bool {
    path.len() > ancestor.len() && path.starts_with(ancestor) && path[ancestor.len()] == b'/'
}

impl<L: LayerSource> View<L> {
    /// Rename `old` to `new`. A directory moves with its whole subtree (inode numbers kept);
    /// both parent directories need write and search permission.
    pub fn rename(
        &mut self,
        c: &Caller,
        old: &[u8],
        new: &[u8],
        mode: RenameMode,
    ) -> Result<Routed<(RelPath, RelPath)>, Errno> {
        let oh = self.hit(c, old, Follow::Parent)?;
        let nh = self.hit(c, new, Follow::Parent)?;
        let (oh, nh) = match (oh, nh) {
            (Err(a), Err(b)) => return Ok(Routed::OutsideBoth(a, b)),
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(Errno::EXDEV),
        };
        let exchange = mode == RenameMode::Exchange;
        if oh.last != Last::Normal {
            return Err(Errno::EBUSY);
        }
        if nh.last != Last::Normal {
            return Err(if mode == RenameMode::NoReplace {
                Errno::EEXIST
            } else {
                Errno::EBUSY
            });
        }
        if oh.rel.is_empty() || nh.rel.is_empty() {
            // The root's own name lives in the file system around the view.
            return Err(Errno::EXDEV);
        }
        let src = oh.entry.ok_or(Errno::ENOENT)?;
        match (&nh.entry, mode) {
            (Some(_), RenameMode::NoReplace) => return Err(Errno::EEXIST),
            (None, RenameMode::Exchange) => return Err(Errno::ENOENT),
            (Some(t), RenameMode::Exchange) if nh.trailing && !t.is_dir() => {
                return Err(Errno::ENOTDIR)
            }
            _ => {}
        }
        if !src.is_dir() && (oh.trailing || (nh.trailing && !exchange)) {
            return Err(Errno::ENOTDIR);
        }
        if is_below(&nh.rel, &oh.rel) {
            return Err(Errno::EINVAL);
        }
        if is_below(&oh.rel, &nh.rel) {
            return Err(if exchange {
                Errno::EINVAL
            } else {
                Errno::ENOTEMPTY
            });
        }
        // Two names of one inode (hard links): the kernel does nothing (`source == target`
        // in vfs_rename), before any permission check.
        let same_inode = nh
            .entry
            .as_ref()
            .is_some_and(|t| !t.is_dir() && t.ino == src.ino);
        if oh.rel == nh.rel || same_inode {
            return Ok(Routed::View((oh.rel, nh.rel)));
        }
        self.may_delete(c, &oh.rel, &src, src.is_dir())?;
        match &nh.entry {
            None => self.may_create(c, &nh.rel)?,
            Some(t) => {
                let want_dir = if exchange { t.is_dir() } else { src.is_dir() };
                self.may_delete(c, &nh.rel, t, want_dir)?;
            }
        }
        if parent_of(&oh.rel) != parent_of(&nh.rel) {
            // A directory moving elsewhere has its ".." rewritten: it must be writable.
            let moved_dirs = [Some(&src), if exchange { nh.entry.as_ref() } else { None }];
            for d in moved_dirs.into_iter().flatten() {
                if d.is_dir() && !permits(c.cred, self.owner_of(d), d, MAY_WRITE) {
                    return Err(Errno::EACCES);
                }
            }
        }
        if !exchange {
            if let Some(t) = &nh.entry {
                if t.is_dir() && !self.children(&nh.rel).unwrap_or_default().is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
            }
        }
        // A renamed entry's status changes (Linux file systems update its ctime).
        let renamed = |mut t: Vec<(RelPath, ViewEntry)>| {
            if let Some((_, top)) = t.first_mut() {
                top.ctime_ns = c.now_ns;
            }
            t
        };
        // A file replaced by the rename loses a name: its other names see the status change.
        let replaced = match &nh.entry {
            Some(t) if !exchange && !t.is_dir() => Some(t.ino),
            _ => None,
        };
        let moving = renamed(self.subtree(&oh.rel));
        let swapped = if exchange {
            renamed(self.subtree(&nh.rel))
        } else {
            Vec::new()
        };
        self.remove(&oh.rel);
        self.remove(&nh.rel);
        self.place(&nh.rel, moving);
        if exchange {
            self.place(&oh.rel, swapped);
        }
        // The other names of a renamed file see its status change too.
        let moved = [&nh.rel, &oh.rel]
            .into_iter()
            .filter_map(|at| self.lookup(at).filter(|e| !e.is_dir()).map(|e| e.ino));
        let inos: Vec<u64> = moved.chain(replaced).collect();
        for ino in inos {
            self.delta.touch_inode(ino, c.now_ns);
        }
        self.touch_dir(parent_of(&oh.rel), c.now_ns);
        self.touch_dir(parent_of(&nh.rel), c.now_ns);
        Ok(Routed::View((oh.rel, nh.rel)))
    }

    /// Put a subtree (from [`View::subtree`], parents before children) at `at`.
    fn place(&mut self, at: &[u8], entries: Vec<(RelPath, ViewEntry)>) {
        let mut entries = entries.into_iter();
        let Some((_, top)) = entries.next() else {
            return;
        };
        // The top clears whatever the delta had below `at`; the rest go straight in.
        self.create(at, top);
        for (sub, entry) in entries {
            let node = DeltaNode::Entry {
                entry,
                opaque: true,
            };
            self.delta.insert(join(at, &sub), node);
        }
    }
}
