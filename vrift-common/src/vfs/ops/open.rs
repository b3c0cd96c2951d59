//! open / creat, exec, truncate, and committing a finished write.

use super::{Caller, Hit, Routed};
use crate::hash::Hash;
use crate::manifest::RelPath;
use crate::vfs::entry::{Content, DeltaId, Node, ViewEntry};
use crate::vfs::errno::Errno;
use crate::vfs::layers::{LayerSource, View};
use crate::vfs::perm::{owns, permits, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::vfs::resolve::{Follow, Last};

/// The open(2) flags a view cares about. Build with [`OpenFlags::from_raw`] from a syscall's
/// flags, or with the constructors in tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    pub read: bool,
    pub write: bool,
    pub creat: bool,
    pub excl: bool,
    pub trunc: bool,
    pub append: bool,
    pub directory: bool,
    pub nofollow: bool,
    /// O_PATH (Linux): a handle without access; other flags but O_DIRECTORY and O_NOFOLLOW
    /// are ignored.
    pub path: bool,
    pub noatime: bool,
    pub tmpfile: bool,
}

impl OpenFlags {
    /// Decode the platform's raw open flags.
    pub fn from_raw(flags: i32) -> OpenFlags {
        let has = |f: i32| flags & f == f;
        let (read, write) = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            // O_RDWR, and 3 which needs both permissions.
            _ => (true, true),
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let (path, noatime, tmpfile) = (
            has(libc::O_PATH),
            has(libc::O_NOATIME),
            has(libc::O_TMPFILE),
        );
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let (path, noatime, tmpfile) = (false, false, false);
        OpenFlags {
            read,
            write,
            creat: has(libc::O_CREAT),
            excl: has(libc::O_EXCL),
            trunc: has(libc::O_TRUNC),
            append: has(libc::O_APPEND),
            directory: has(libc::O_DIRECTORY) && !tmpfile,
            nofollow: has(libc::O_NOFOLLOW),
            path,
            noatime,
            tmpfile,
        }
    }
    pub fn read_only() -> OpenFlags {
        OpenFlags {
            read: true,
            ..Default::default()
        }
    }
    pub fn write_only() -> OpenFlags {
        OpenFlags {
            write: true,
            ..Default::default()
        }
    }
    pub fn read_write() -> OpenFlags {
        OpenFlags {
            read: true,
            write: true,
            ..Default::default()
        }
    }
    pub fn creat(mut self) -> Self {
        self.creat = true;
        self
    }
    pub fn excl(mut self) -> Self {
        self.excl = true;
        self
    }
    pub fn trunc(mut self) -> Self {
        self.trunc = true;
        self
    }
    pub fn append(mut self) -> Self {
        self.append = true;
        self
    }
    pub fn directory(mut self) -> Self {
        self.directory = true;
        self
    }
    pub fn nofollow(mut self) -> Self {
        self.nofollow = true;
        self
    }
    pub fn o_path(mut self) -> Self {
        self.path = true;
        self
    }
    pub fn noatime(mut self) -> Self {
        self.noatime = true;
        self
    }
}

/// How the projection prepares the private copy of a file opened for writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seed {
    /// Copy this blob (the store's file is never opened for writing).
    CopyOf(Hash),
    /// Start empty (new file, or O_TRUNC).
    Empty,
    /// The private copy already exists (the file is already being written); truncate it
    /// first if asked.
    Existing { truncate: bool },
}

/// What an open resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A regular file opened without write intent: serve the blob, or the private copy of a
    /// pending write.
    Read { rel: RelPath, content: Content },
    /// Write intent (write access, O_TRUNC or a new file): open the private copy `id`,
    /// prepared as `seed`, with the caller's flags. The entry is now pending; call
    /// [`View::commit`] once the last writer is done.
    Write {
        rel: RelPath,
        id: DeltaId,
        seed: Seed,
        created: bool,
    },
    /// A directory (read-only): open its materialized directory.
    Dir { rel: RelPath },
    /// A FIFO made in this view.
    Fifo { rel: RelPath },
    /// O_PATH: a handle on the entry itself (a symlink too, with O_NOFOLLOW).
    Path { rel: RelPath, entry: ViewEntry },
}

/// What execve runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub rel: RelPath,
    pub content: Content,
}

/// A truncate(2): make the private copy `id` from `seed`, set its length to `len`, commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncate {
    pub rel: RelPath,
    pub id: DeltaId,
    pub seed: Seed,
    pub len: u64,
}

impl<L: LayerSource> View<L> {
    /// open(2) / openat(2) / openat2(2) on `path`; `mode` is used when a file is created.
    pub fn open(
        &mut self,
        c: &Caller,
        path: &[u8],
        flags: OpenFlags,
        mode: u32,
    ) -> Result<Routed<Opened>, Errno> {
        if flags.path {
            return self.open_path(c, path, flags);
        }
        if flags.creat && flags.directory {
            return Err(Errno::EINVAL);
        }
        let hit = if flags.creat {
            let h = match self.hit(c, path, Follow::Parent)? {
                Ok(h) => h,
                Err(p) => return Ok(Routed::Outside(p)),
            };
            if h.last == Last::Normal && h.trailing {
                return Err(Errno::EISDIR);
            }
            if h.last != Last::Normal {
                // ".", ".." or "/": an existing directory.
                return Err(if flags.excl {
                    Errno::EEXIST
                } else {
                    Errno::EISDIR
                });
            }
            let follow = !flags.excl && !flags.nofollow;
            let h = match &h.entry {
                // O_CREAT follows a symlink and creates its target if it is missing.
                Some(e) if e.is_symlink() && follow => match self.hit(c, path, Follow::Yes)? {
                    Ok(h) => h,
                    Err(p) => return Ok(Routed::Outside(p)),
                },
                _ => h,
            };
            if h.entry.is_none() {
                if flags.tmpfile {
                    return Err(Errno::EOPNOTSUPP);
                }
                return self.create_file(c, h.rel, mode).map(Routed::View);
            }
            if flags.excl {
                return Err(Errno::EEXIST);
            }
            if h.entry.as_ref().is_some_and(|e| e.is_dir()) {
                return Err(Errno::EISDIR);
            }
            h
        } else {
            let follow = if flags.nofollow {
                Follow::No
            } else {
                Follow::Yes
            };
            match self.hit(c, path, follow)? {
                Ok(h) => h,
                Err(p) => return Ok(Routed::Outside(p)),
            }
        };
        if flags.tmpfile {
            // An unnamed file in a view directory: not supported, as on file systems
            // without O_TMPFILE.
            return match hit.entry {
                None => Err(Errno::ENOENT),
                Some(e) if !e.is_dir() => Err(Errno::ENOTDIR),
                Some(_) => Err(Errno::EOPNOTSUPP),
            };
        }
        let Hit { rel, entry, .. } = hit;
        let e = entry.ok_or(Errno::ENOENT)?;
        self.open_existing(c, rel, e, flags).map(Routed::View)
    }

    /// Does this open change the view (write access, O_CREAT, O_TRUNC or O_TMPFILE)? When
    /// it does not, [`View::open_read`] answers it on a shared view.
    pub fn open_changes_view(flags: OpenFlags) -> bool {
        !flags.path && (flags.write || flags.creat || flags.trunc || flags.tmpfile)
    }

    /// open(2) that does not change the view (see [`View::open_changes_view`]): the same
    /// checks and results as [`View::open`], through a shared reference, so concurrent
    /// readers do not serialize.
    pub fn open_read(
        &self,
        c: &Caller,
        path: &[u8],
        flags: OpenFlags,
    ) -> Result<Routed<Opened>, Errno> {
        debug_assert!(!Self::open_changes_view(flags));
        if flags.path {
            return self.open_path(c, path, flags);
        }
        let follow = if flags.nofollow {
            Follow::No
        } else {
            Follow::Yes
        };
        let h = match self.hit(c, path, follow)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        self.may_open_existing(c, &e, flags)?;
        Ok(Routed::View(match e.node {
            Node::Dir => Opened::Dir { rel: h.rel },
            Node::Fifo | Node::Special { .. } => Opened::Fifo { rel: h.rel },
            Node::File(content) => Opened::Read {
                rel: h.rel,
                content,
            },
            Node::Symlink(_) => return Err(Errno::ELOOP),
        }))
    }

    fn open_path(
        &self,
        c: &Caller,
        path: &[u8],
        flags: OpenFlags,
    ) -> Result<Routed<Opened>, Errno> {
        let follow = if flags.nofollow {
            Follow::No
        } else {
            Follow::Yes
        };
        let h = match self.hit(c, path, follow)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if flags.directory && !e.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(Routed::View(Opened::Path {
            rel: h.rel,
            entry: e,
        }))
    }

    fn create_file(&mut self, c: &Caller, rel: RelPath, mode: u32) -> Result<Opened, Errno> {
        self.may_create(c, &rel)?;
        let id = self.delta.new_id();
        let e = ViewEntry {
            node: Node::File(Content::Pending(id)),
            size: 0,
            mode: mode & 0o7777 & !c.umask,
            mtime_ns: c.now_ns,
            ino: 0,
            meta: Default::default(),
            atime_ns: 0,
            ctime_ns: 0,
        };
        self.new_entry_at(c, &rel, e);
        // No permission check on the new file itself: creat(path, 0444) returns a writable fd.
        Ok(Opened::Write {
            rel,
            id,
            seed: Seed::Empty,
            created: true,
        })
    }

    /// What the kernel checks before opening an existing entry, in its order.
    fn may_open_existing(&self, c: &Caller, e: &ViewEntry, flags: OpenFlags) -> Result<(), Errno> {
        if flags.directory && !e.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if e.is_symlink() {
            // Only reachable with O_NOFOLLOW.
            return Err(Errno::ELOOP);
        }
        let write_intent = flags.write || flags.trunc;
        if e.is_dir() && write_intent {
            return Err(Errno::EISDIR);
        }
        let mut want = 0;
        if flags.read {
            want |= MAY_READ;
        }
        if write_intent {
            want |= MAY_WRITE;
        }
        if !permits(c.cred, self.owner_of(e), e, want) {
            return Err(Errno::EACCES);
        }
        if flags.noatime && !owns(c.cred, self.owner_of(e)) {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    fn open_existing(
        &mut self,
        c: &Caller,
        rel: RelPath,
        e: ViewEntry,
        flags: OpenFlags,
    ) -> Result<Opened, Errno> {
        self.may_open_existing(c, &e, flags)?;
        let write_intent = flags.write || flags.trunc;
        match e.node {
            Node::Dir => Ok(Opened::Dir { rel }),
            Node::Fifo | Node::Special { .. } => Ok(Opened::Fifo { rel }),
            Node::File(content) if !write_intent => Ok(Opened::Read { rel, content }),
            Node::File(content) => {
                let (id, seed) = self.begin_write(
                    c,
                    &rel,
                    content,
                    flags.trunc,
                    if flags.trunc { Some(0) } else { None },
                );
                Ok(Opened::Write {
                    rel,
                    id,
                    seed,
                    created: false,
                })
            }
            Node::Symlink(_) => unreachable!("handled above"),
        }
    }

    /// Make the file at `rel` pending (reusing its private copy if it has one); with
    /// `new_len`, its size becomes that and its mtime now.
    fn begin_write(
        &mut self,
        c: &Caller,
        rel: &[u8],
        content: Content,
        empty: bool,
        new_len: Option<u64>,
    ) -> (DeltaId, Seed) {
        let (id, seed) = match content {
            Content::Blob(h) => (
                self.delta.new_id(),
                if empty { Seed::Empty } else { Seed::CopyOf(h) },
            ),
            Content::Pending(id) => (id, Seed::Existing { truncate: empty }),
        };
        let now = c.now_ns;
        let set = |e: &mut ViewEntry| {
            e.node = Node::File(Content::Pending(id));
            if let Some(len) = new_len {
                e.size = len;
                e.mtime_ns = now;
                e.ctime_ns = now;
            }
        };
        self.update(rel, set);
        // Every other name of a file hard-linked during the run shows the same write.
        if let Some(ino) = self.lookup(rel).map(|e| e.ino) {
            for other in self.delta.names_of(ino) {
                if other != rel {
                    self.update(&other, set);
                }
            }
        }
        (id, seed)
    }

    /// execve(2) of `path`: needs the x bit (for a privileged caller, any x bit).
    pub fn exec(&self, c: &Caller, path: &[u8]) -> Result<Routed<Exec>, Errno> {
        let h = match self.hit(c, path, Follow::Yes)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        let Some(content) = e.content() else {
            // Directories and FIFOs cannot be executed.
            return Err(Errno::EACCES);
        };
        if !permits(c.cred, self.owner_of(&e), &e, MAY_EXEC) {
            return Err(Errno::EACCES);
        }
        Ok(Routed::View(Exec {
            rel: h.rel,
            content,
        }))
    }

    /// truncate(2) of `path` to `len` bytes (follows symlinks; needs write permission).
    pub fn truncate(
        &mut self,
        c: &Caller,
        path: &[u8],
        len: i64,
    ) -> Result<Routed<Truncate>, Errno> {
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let h = match self.hit(c, path, Follow::Yes)? {
            Ok(h) => h,
            Err(p) => return Ok(Routed::Outside(p)),
        };
        let e = h.entry.ok_or(Errno::ENOENT)?;
        if e.is_dir() {
            return Err(Errno::EISDIR);
        }
        let Some(content) = e.content() else {
            return Err(Errno::EINVAL);
        };
        if !permits(c.cred, self.owner_of(&e), &e, MAY_WRITE) {
            return Err(Errno::EACCES);
        }
        let len = len as u64;
        let (id, seed) = self.begin_write(c, &h.rel, content, len == 0, Some(len));
        Ok(Routed::View(Truncate {
            rel: h.rel,
            id,
            seed,
            len,
        }))
    }

    /// A write is finished: the private copy `id` was hashed into the store as `hash`. Every
    /// path showing it now points at the blob; its mode is kept. Returns those paths; empty
    /// when none is left (the file was removed while open: discard the copy).
    pub fn commit(&mut self, id: DeltaId, hash: Hash, size: u64, mtime_ns: i64) -> Vec<RelPath> {
        self.delta.commit(id, hash, size, mtime_ns)
    }

    /// Give the files at `paths` (just committed) the mode their content had when it was
    /// committed: a program may set a written file's mode through the kernel alone, by
    /// setting its POSIX ACL on the open file (`sed -i`, `cp -p`).
    pub fn set_committed_mode(&mut self, paths: &[RelPath], mode: u32) {
        for p in paths {
            if let Some(e) = self.delta.get_mut_entry(p) {
                e.mode = mode & 0o7777;
            }
        }
    }
}
