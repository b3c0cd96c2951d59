//! The supervisor's [`Backend`]: the run's changes carried out on its link farm, through
//! vrift's own writable path to it (the program sees the farm through a read-only bind
//! mount, so it can never change the farm, or a store blob hardlinked from it, except
//! through here).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use vrift_common::longpath::Short;
use vrift_common::store::Store;
use vrift_common::vfs::{Content, Node, Opened, Seed, Stat};

use crate::view::state::{Backend, Committed, Done, Outcome, ViewOf};
use vrift_common::runlog::Op;

pub struct FarmBackend {
    root: Vec<u8>,
    farm: PathBuf,
    farm_bytes: Vec<u8>,
    store: Store,
    tmp_seq: std::sync::atomic::AtomicU64,
}

/// Is the view's file at `rel` an unchanged blob (its farm file the blob's own link)?
fn is_blob(view: &ViewOf, rel: &[u8]) -> bool {
    matches!(
        view.lookup(rel).and_then(|e| e.content()),
        Some(Content::Blob(_))
    )
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn system_time(ns: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64)
}

impl FarmBackend {
    pub fn new(root: &[u8], farm: PathBuf, store: Store) -> FarmBackend {
        FarmBackend {
            root: root.to_vec(),
            farm_bytes: farm.as_os_str().as_bytes().to_vec(),
            farm,
            store,
            tmp_seq: Default::default(),
        }
    }

    /// A file the supervisor opened for the program shows the farm's path in /proc; map it
    /// back to the view path the program knows.
    pub fn unfarm(&self, path: Vec<u8>) -> Vec<u8> {
        match path.strip_prefix(self.farm_bytes.as_slice()) {
            Some(rest) if rest.is_empty() || rest[0] == b'/' => [&self.root[..], rest].concat(),
            _ => path,
        }
    }

    /// The farm's object at `rel`, as a path the kernel takes however long `rel` is (see
    /// [`Short`]).
    fn farm_path(&self, rel: &[u8]) -> io::Result<Short> {
        Short::join(&self.farm, rel)
    }

    fn rel_in(&self, view: &ViewOf, abs: &[u8], follow: bool) -> Option<Vec<u8>> {
        match view.resolve(abs, &self.root, follow).ok()? {
            vrift_common::vfs::Resolved::View { rel, .. } => Some(rel),
            vrift_common::vfs::Resolved::Outside(_) => None,
        }
    }

    /// Make the farm's file at `rel` a private copy the program may write: the store's blob
    /// is copied (never opened for writing), or an empty file is made.
    fn prepare_private(&self, rel: &[u8], seed: Seed, perm: u32, mtime_ns: i64) -> io::Result<()> {
        let target = self.farm_path(rel)?;
        match seed {
            Seed::Existing { truncate } => {
                if truncate {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&target)?
                        .set_len(0)?;
                }
                Ok(())
            }
            Seed::Empty => self.replace_with(&target, None, perm, None),
            Seed::CopyOf(hash) => self.replace_with(
                &target,
                Some(&self.store.blob_path(&hash)),
                perm,
                Some(mtime_ns),
            ),
        }
    }

    /// Atomically put a new private file at `target`: a copy of `src` (or empty), with
    /// `perm` and, if given, `mtime_ns`.
    fn replace_with(
        &self,
        target: &Path,
        src: Option<&Path>,
        perm: u32,
        mtime_ns: Option<i64>,
    ) -> io::Result<()> {
        let dir = target.parent().unwrap_or(&self.farm);
        let tmp = dir.join(format!(
            ".vrift-new-{}",
            self.tmp_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let result = (|| {
            if let Some(src) = src {
                let mut input = std::fs::File::open(src)?;
                io::copy(&mut input, &mut out)?;
            }
            if let Some(ns) = mtime_ns {
                out.set_modified(system_time(ns))?;
            }
            out.set_permissions(std::fs::Permissions::from_mode(perm & 0o7777))?;
            std::fs::rename(&tmp, target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Bind the Unix socket `sock` at the farm's `rel` (where the view has just made the
    /// socket's entry, and the farm a placeholder), through a short `/proc/self/fd` path to
    /// its directory: the farm's own path may not fit in `sun_path`.
    pub fn bind_socket(&self, rel: &[u8], sock: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let path = self.farm_path(rel)?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)?;
        let short = [
            format!("/proc/self/fd/{}/", dir.as_raw_fd()).as_bytes(),
            name.as_bytes(),
        ]
        .concat();
        std::fs::remove_file(&*path)?;
        crate::sys::pidfd::bind_unix(sock, &short)
    }

    /// A file hard-linked during the run has one private copy: once a new one is at `rel`,
    /// the farm's other names of the inode are linked to it, so the kernel serves the write
    /// through every name.
    fn link_other_names(&self, view: &ViewOf, rel: &[u8]) -> io::Result<()> {
        let Some(e) = view.lookup(rel) else {
            return Ok(());
        };
        let copy = self.farm_path(rel)?;
        for other in view.delta().names_of(e.ino) {
            if other == rel {
                continue;
            }
            let p = self.farm_path(&other)?;
            let tmp = p.with_file_name(format!(
                ".vrift-link-{}",
                self.tmp_seq
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::hard_link(&*copy, &tmp)?;
            if let Err(err) = std::fs::rename(&tmp, &*p) {
                let _ = std::fs::remove_file(&tmp);
                return Err(err);
            }
        }
        Ok(())
    }

    fn open_farm_file(&self, rel: &[u8], raw_flags: i32) -> io::Result<std::os::fd::OwnedFd> {
        // The view decided creation, exclusivity and truncation; the rest of the caller's
        // flags (access mode, O_APPEND, O_NONBLOCK, O_SYNC...) apply to the private copy.
        let keep = raw_flags
            & !(libc::O_CREAT
                | libc::O_EXCL
                | libc::O_TRUNC
                | libc::O_NOFOLLOW
                | libc::O_CLOEXEC
                | libc::O_ACCMODE);
        let acc = raw_flags & libc::O_ACCMODE;
        let path = self.farm_path(rel)?;
        let f = crate::sys::fsops::with_owner_access(&path, || {
            std::fs::OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(acc != libc::O_RDONLY)
                .custom_flags(keep | libc::O_CLOEXEC)
                .open(&*path)
        })?;
        Ok(f.into())
    }

    /// A private copy's real mode (and mtime, when the call set it) follow its entry, since
    /// stat reads its size and mtime from disk and the kernel checks its mode on native reads.
    fn sync_private_attrs(
        &self,
        v: &ViewOf,
        abs: &[u8],
        follow: bool,
        with_mtime: bool,
    ) -> io::Result<()> {
        let Some(rel) = self.rel_in(v, abs, follow) else {
            return Ok(());
        };
        let Some(e) = v.lookup(&rel) else {
            return Ok(());
        };
        if !matches!(e.content(), Some(Content::Pending(_))) {
            return Ok(());
        }
        let p = self.farm_path(&rel)?;
        std::fs::set_permissions(&*p, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
        if !with_mtime {
            return Ok(());
        }
        crate::sys::fsops::set_mtime(&p, e.mtime_ns)
    }
}

impl Backend for FarmBackend {
    fn carry_out(&self, view: &ViewOf, op: &Op, done: Done) -> io::Result<Outcome> {
        let ok = Ok(Outcome::Value(0));
        match (op, done) {
            (Op::Open { flags, .. }, Done::Opened(Opened::Write { rel, seed, .. })) => {
                let (perm, mtime) = view
                    .lookup(&rel)
                    .map(|e| (e.mode, e.mtime_ns))
                    .unwrap_or((0o644, now_ns()));
                let fresh = !matches!(seed, Seed::Existing { .. });
                self.prepare_private(&rel, seed, perm, mtime)?;
                if fresh {
                    self.link_other_names(view, &rel)?;
                }
                let file = self.open_farm_file(&rel, *flags)?;
                Ok(Outcome::Fd {
                    file,
                    cloexec: flags & libc::O_CLOEXEC != 0,
                    undo: None,
                })
            }
            // Read-only, directory, FIFO and O_PATH opens: the farm serves them.
            (Op::Open { .. }, _) => Ok(Outcome::Continue),
            (Op::Mkdir { .. }, Done::Rel(rel)) => {
                std::fs::create_dir(self.farm_path(&rel)?)?;
                ok
            }
            (Op::Rmdir { .. }, Done::Rel(rel)) => {
                std::fs::remove_dir(self.farm_path(&rel)?)?;
                ok
            }
            (Op::Unlink { .. }, Done::Rel(rel)) => {
                std::fs::remove_file(self.farm_path(&rel)?)?;
                ok
            }
            (Op::Rename { flags, .. }, Done::Pair(a, b)) => {
                vrift_common::store::renameat2(&self.farm_path(&a)?, &self.farm_path(&b)?, *flags)?;
                ok
            }
            (Op::Link { old, follow, .. }, Done::Rel(rel)) => {
                // The new name shows the same content: a hardlink in the farm to whatever
                // the source is there (the blob's link or the private copy).
                let src = self
                    .rel_in(view, old, *follow)
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EXDEV))?;
                let (from, to) = (self.farm_path(&src)?, self.farm_path(&rel)?);
                match std::fs::hard_link(&*from, &*to) {
                    // The farm's file is a blob's link, and the blob is linked as often as
                    // the file system allows: the view's link must not fail for that.
                    Err(e) if e.raw_os_error() == Some(libc::EMLINK) && is_blob(view, &src) => {
                        std::fs::copy(&*from, &*to)?;
                    }
                    r => r?,
                }
                ok
            }
            (Op::Symlink { target, .. }, Done::Rel(rel)) => {
                std::os::unix::fs::symlink(
                    std::ffi::OsStr::from_bytes(target),
                    self.farm_path(&rel)?,
                )?;
                ok
            }
            (Op::Mknod { .. }, Done::Rel(rel)) => {
                let Some(e) = view.lookup(&rel) else {
                    return ok;
                };
                let path = self.farm_path(&rel)?;
                match e.node {
                    Node::Fifo => crate::sys::fsops::mkfifo(&path, e.mode)?,
                    Node::Special { kind, rdev } => {
                        crate::sys::fsops::mknod(&path, kind, e.mode, rdev)?
                    }
                    // An empty regular file: the empty blob's link, like any view file.
                    _ => {
                        let empty = self
                            .store
                            .insert_bytes(b"")
                            .map_err(|e| io::Error::other(e.to_string()))?;
                        std::fs::hard_link(self.store.blob_path(&empty.hash), &*path)?
                    }
                }
                ok
            }
            // The owner is the view's alone; a private copy's mode follows a chown's clearing
            // of S_ISUID/S_ISGID.
            (Op::Chmod { path, follow, .. } | Op::Chown { path, follow, .. }, Done::Unit) => {
                self.sync_private_attrs(view, path, *follow, false)?;
                ok
            }
            // Xattrs live in the view's entry alone (the farm's files may be the store's
            // blobs); the write-back puts them on the project's files.
            (Op::SetXattr { .. } | Op::RemoveXattr { .. }, Done::Unit) => ok,
            (
                Op::Utimens {
                    path,
                    follow,
                    mtime,
                    ..
                },
                Done::Unit,
            ) => {
                let mtime_set = !matches!(mtime, vrift_common::vfs::TimeSpec::Omit);
                self.sync_private_attrs(view, path, *follow, mtime_set)?;
                ok
            }
            (Op::Truncate { .. }, Done::Truncate(t)) => {
                let (perm, mtime) = view
                    .lookup(&t.rel)
                    .map(|e| (e.mode, e.mtime_ns))
                    .unwrap_or((0o644, now_ns()));
                let fresh = !matches!(t.seed, Seed::Existing { .. });
                self.prepare_private(&t.rel, t.seed, perm, mtime)?;
                if fresh {
                    self.link_other_names(view, &t.rel)?;
                }
                let p = self.farm_path(&t.rel)?;
                crate::sys::fsops::with_owner_access(&p, || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&*p)?
                        .set_len(t.len)
                })?;
                ok
            }
            _ => Err(io::Error::other(
                "state machine result does not match the call",
            )),
        }
    }

    fn undo_create(&self, rel: &[u8]) {
        if let Ok(p) = self.farm_path(rel) {
            let _ = std::fs::remove_file(p);
        }
    }

    fn pending_stat(&self, rel: &[u8], st: &mut Stat) {
        // Size and times of a file being written are the private copy's, and so is its mode
        // (it follows the view's, unless a POSIX ACL was set on the open copy).
        if let Ok(m) = self.farm_path(rel).and_then(std::fs::symlink_metadata) {
            st.mode = (st.mode & libc::S_IFMT) | (m.mode() & 0o7777);
            st.size = m.size();
            st.blocks = m.blocks();
            st.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
            // A write changes the status too; an access time set in the view stays.
            st.ctime_ns = st.ctime_ns.max(m.ctime() * 1_000_000_000 + m.ctime_nsec());
        }
    }

    fn commit_pending(&self, rel: &[u8]) -> anyhow::Result<Committed> {
        let named = || {
            format!(
                "{}",
                vrift_common::longpath::join(&self.farm, rel).display()
            )
        };
        let p = self.farm_path(rel).with_context(named)?;
        let meta = std::fs::symlink_metadata(&*p).with_context(named)?;
        let ins = crate::sys::fsops::with_owner_access(&p, || {
            self.store.insert_file(&p).map_err(|e| match e {
                vrift_common::store::StoreError::Io { source, .. } => source,
                other => io::Error::other(other.to_string()),
            })
        })
        .with_context(named)?;
        Ok(Committed {
            hash: ins.hash,
            size: ins.size,
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            mode: meta.mode() & 0o7777,
        })
    }
}
