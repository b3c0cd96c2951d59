//! The RFC-0047 state machine: each operation checks what the kernel would check, in the
//! kernel's order, changes the delta, and says what the projection has to do.

mod attrs;
mod names;
mod open;
mod rename;
mod xattrs;

pub use attrs::TimeSpec;
pub use open::{Exec, OpenFlags, Opened, Seed, Truncate};
pub use rename::RenameMode;
pub use xattrs::{XATTR_CREATE, XATTR_REPLACE};

use super::entry::ViewEntry;
use super::errno::Errno;
use super::layers::{parent_of, LayerSource, View};
use super::perm::{permits, sticky_allows, Cred, Owner, MAY_EXEC, MAY_WRITE};
use super::resolve::{Follow, Last, Resolved};
use crate::manifest::{EntryOwner, RelPath};

/// The calling process, as far as one operation needs it.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub cred: &'a Cred,
    /// Where relative paths start: the process's cwd, or for `*at` calls the path of the
    /// directory fd. Absolute and canonical.
    pub cwd: &'a [u8],
    /// Applied to the mode of new entries.
    pub umask: u32,
    /// The time to record for changes (nanoseconds since the epoch): this code reads no
    /// clock.
    pub now_ns: i64,
}

/// Whether an operation happened in the view or is for the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed<T> {
    /// Done in the view; the result is what the projection needs.
    View(T),
    /// The path is outside the view: run the syscall on the real file system with this
    /// absolute path (it differs from the caller's when a view symlink pointed out).
    Outside(Vec<u8>),
    /// Both paths of a two-path call (rename, link) are outside the view.
    OutsideBoth(Vec<u8>, Vec<u8>),
}

impl<T> Routed<T> {
    /// The view result; panics for an outside path (for tests and callers that know).
    pub fn unwrap_view(self) -> T {
        match self {
            Routed::View(t) => t,
            _ => panic!("path is outside the view"),
        }
    }
}

/// A path found in the view.
pub(crate) struct Hit {
    pub rel: RelPath,
    pub entry: Option<ViewEntry>,
    pub last: Last,
    pub trailing: bool,
}

impl<L: LayerSource> View<L> {
    /// Resolve for an operation: `Ok(Ok(hit))` in the view, `Ok(Err(path))` outside.
    pub(crate) fn hit(
        &self,
        c: &Caller,
        path: &[u8],
        follow: Follow,
    ) -> Result<Result<Hit, Vec<u8>>, Errno> {
        Ok(match self.walk(Some(c.cred), path, c.cwd, follow)? {
            Resolved::Outside(p) => Err(p),
            Resolved::View {
                rel,
                entry,
                last,
                trailing_slash,
            } => Ok(Hit {
                rel,
                entry,
                last,
                trailing: trailing_slash,
            }),
        })
    }

    /// The directory holding `rel` (which is not the root).
    pub(crate) fn parent_dir(&self, rel: &[u8]) -> ViewEntry {
        self.lookup(parent_of(rel))
            .expect("resolution reached the entry through its parent")
    }

    /// `may_create`: write and search permission on the parent directory.
    pub(crate) fn may_create(&self, c: &Caller, rel: &[u8]) -> Result<(), Errno> {
        let dir = self.parent_dir(rel);
        if permits(c.cred, self.owner_of(&dir), &dir, MAY_WRITE | MAY_EXEC) {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    /// `may_delete`: write and search permission on the parent, the sticky-bit rule, and the
    /// kind of the victim (`want_dir`: rmdir or a directory rename).
    pub(crate) fn may_delete(
        &self,
        c: &Caller,
        rel: &[u8],
        victim: &ViewEntry,
        want_dir: bool,
    ) -> Result<(), Errno> {
        let dir = self.parent_dir(rel);
        if !permits(c.cred, self.owner_of(&dir), &dir, MAY_WRITE | MAY_EXEC) {
            return Err(Errno::EACCES);
        }
        if !sticky_allows(c.cred, self.owner_of(victim), self.owner_of(&dir), &dir) {
            return Err(Errno::EPERM);
        }
        match (want_dir, victim.is_dir()) {
            (true, false) => Err(Errno::ENOTDIR),
            (false, true) => Err(Errno::EISDIR),
            _ => Ok(()),
        }
    }

    /// A new entry's owner, inode number and the parent's mtime update.
    ///
    /// The owner is the kernel's (`inode_init_owner`): the caller's fsuid, and its fsgid or,
    /// in a set-gid directory, the directory's group; a set-gid, group-executable file made
    /// there by a caller outside that group without CAP_FSETID loses S_ISGID
    /// (`mode_strip_sgid`). It is recorded in the entry only where it differs from the
    /// view's owner, so a tree made by the user running the view stays portable.
    pub(crate) fn new_entry_at(&mut self, c: &Caller, rel: &[u8], mut e: ViewEntry) {
        const S_ISGID: u32 = 0o2000;
        let dir = self.parent_dir(rel);
        let gid = if dir.mode & S_ISGID != 0 {
            self.owner_of(&dir).gid
        } else {
            c.cred.gid
        };
        let strip_sgid = dir.mode & S_ISGID != 0
            && !e.is_dir()
            && e.mode & (S_ISGID | 0o010) == S_ISGID | 0o010
            && !c.cred.privileged
            && !c.cred.in_group(gid);
        if strip_sgid {
            e.mode &= !S_ISGID;
        }
        let owner = Owner {
            uid: c.cred.uid,
            gid,
        };
        e.meta.owner = (owner != self.owner).then_some(EntryOwner {
            uid: owner.uid,
            gid: owner.gid,
        });
        e.ino = self.delta.new_ino();
        e.ctime_ns = c.now_ns;
        e.atime_ns = e.atime();
        self.create(rel, e);
        self.touch_dir(parent_of(rel), c.now_ns);
    }
}
