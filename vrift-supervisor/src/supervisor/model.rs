//! The supervisor's model of the view: vrift-common's layered [`View`] and RFC-0047 state
//! machine, kept in step with the run's link farm.
//!
//! Every decision (exists? allowed? which errno?) is the state machine's; this module only
//! carries it out on the farm, through the supervisor's own writable path to it (the
//! program sees the farm through a read-only bind mount, so it can never change the farm, or
//! a store blob hardlinked from it, except through here).

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;
use vrift_common::vfs::{
    Caller, Cred, DeltaNode, Errno, OpenFlags, Opened, RenameMode, Routed, Seed, Stat, TimeSpec,
    View,
};

use super::creds::CredCache;

/// What the supervisor answers.
pub enum Outcome {
    /// Let the kernel run the call as issued (outside the view, or the farm gives the same
    /// answer the view would).
    Continue,
    Value(i64),
    Errno(i32),
    /// Write this stat into the caller's buffer and return 0.
    Stat(Stat),
    /// Install this file as the call's result (open for writing).
    Fd {
        file: OwnedFd,
        cloexec: bool,
        /// If the fd cannot be delivered (the caller was interrupted), undo the create.
        undo: Option<(RelPath, Option<DeltaNode>)>,
    },
}

impl From<Errno> for Outcome {
    fn from(e: Errno) -> Outcome {
        Outcome::Errno(e.raw())
    }
}

/// Where a path the program named lies, before any resolution.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    Outside,
    /// Inside a real path excluded from the view: the kernel serves it.
    Passthrough,
    View,
}

pub type ViewOf = View<Arc<Manifest>>;

pub struct Model {
    view: RwLock<ViewOf>,
    root: Vec<u8>,
    farm: PathBuf,
    farm_bytes: Vec<u8>,
    passthrough: HashSet<RelPath>,
    store: Store,
    pub creds: CredCache,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Model {
    pub fn new(
        view: ViewOf,
        farm: PathBuf,
        passthrough: impl IntoIterator<Item = RelPath>,
        store: Store,
    ) -> Model {
        let root = view.root().to_vec();
        Model {
            view: RwLock::new(view),
            root,
            farm_bytes: farm.as_os_str().as_bytes().to_vec(),
            farm,
            passthrough: passthrough.into_iter().collect(),
            store,
            creds: CredCache::default(),
        }
    }

    /// The view's absolute root, without a trailing slash.
    pub fn root(&self) -> &[u8] {
        &self.root
    }

    /// A file the supervisor opened for the program shows the farm's path in /proc; map it
    /// back to the view path the program knows.
    pub fn unfarm(&self, path: Vec<u8>) -> Vec<u8> {
        match path.strip_prefix(self.farm_bytes.as_slice()) {
            Some(rest) if rest.is_empty() || rest[0] == b'/' => [&self.root[..], rest].concat(),
            _ => path,
        }
    }

    /// Classify an absolute path lexically: cheap, and enough to let everything outside the
    /// view go to the kernel at once.
    pub fn place(&self, abs: &[u8]) -> Place {
        let rel = match super::paths::under_root(abs, &self.root) {
            Some(rel) => rel.to_vec(),
            None if abs.windows(2).any(|w| w == b"..") => {
                let norm = super::paths::normalize(abs);
                match super::paths::under_root(&norm, &self.root) {
                    Some(rel) => rel.to_vec(),
                    None => return Place::Outside,
                }
            }
            None => return Place::Outside,
        };
        if !self.passthrough.is_empty() {
            let norm = super::paths::normalize(&[b"/", &rel[..]].concat());
            let mut prefix = Vec::new();
            for comp in norm[1..].split(|&b| b == b'/') {
                if !prefix.is_empty() {
                    prefix.push(b'/');
                }
                prefix.extend_from_slice(comp);
                if self.passthrough.contains(&prefix) {
                    return Place::Passthrough;
                }
            }
        }
        Place::View
    }

    fn farm_path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.farm.clone()
        } else {
            self.farm.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    fn with_caller<T>(&self, cred: &Cred, umask: u32, f: impl FnOnce(&Caller) -> T) -> T {
        let c = Caller {
            cred,
            cwd: &self.root,
            umask,
            now_ns: now_ns(),
        };
        f(&c)
    }

    // ---- reads ----

    pub fn stat(&self, cred: &Cred, abs: &[u8], follow: bool) -> Outcome {
        let r = self.with_caller(cred, 0, |c| self.view.read().unwrap().stat(c, abs, follow));
        match r {
            Ok(Routed::View(mut st)) => {
                if st.pending.is_some() {
                    // Size and times of a file being written are the private copy's.
                    if let Ok(rel) = self.rel_of(abs, follow) {
                        if let Ok(m) = std::fs::symlink_metadata(self.farm_path(&rel)) {
                            st.size = m.size();
                            st.blocks = m.blocks();
                            st.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
                            st.ctime_ns = st.mtime_ns;
                            st.atime_ns = st.mtime_ns;
                        }
                    }
                }
                Outcome::Stat(st)
            }
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    /// The resolved relative path of `abs` (for callers that already know it is in the view).
    fn rel_of(&self, abs: &[u8], follow: bool) -> Result<RelPath, Errno> {
        match self.view.read().unwrap().resolve(abs, &self.root, follow)? {
            vrift_common::vfs::Resolved::View { rel, .. } => Ok(rel),
            _ => Err(Errno::ENOENT),
        }
    }

    pub fn access(&self, cred: &Cred, abs: &[u8], mode: u32, follow: bool) -> Outcome {
        let r = self.with_caller(cred, 0, |c| {
            self.view.read().unwrap().access(c, abs, mode, follow)
        });
        match r {
            Ok(Routed::View(())) => Outcome::Value(0),
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    pub fn exec(&self, cred: &Cred, abs: &[u8]) -> Outcome {
        let r = self.with_caller(cred, 0, |c| self.view.read().unwrap().exec(c, abs));
        match r {
            // The farm's file is a hardlink to the blob (mode 0555) or the private copy:
            // the kernel can exec it.
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    // ---- open ----

    pub fn open(&self, tid: u32, abs: &[u8], raw_flags: i32, mode: u32) -> Outcome {
        let flags = OpenFlags::from_raw(raw_flags);
        if !ViewOf::open_changes_view(flags) {
            let cred = match self.creds.get(tid) {
                Ok(c) => c,
                Err(_) => return Outcome::Continue,
            };
            let r = self.with_caller(&cred, 0, |c| {
                self.view.read().unwrap().open_read(c, abs, flags)
            });
            return match r {
                Ok(_) => Outcome::Continue,
                Err(e) => e.into(),
            };
        }
        let status = match self.creds.fresh(tid) {
            Ok(s) => s,
            Err(_) => return Outcome::Continue,
        };
        let mut view = self.view.write().unwrap();
        let prev = if flags.creat {
            self.rel_of_locked(&view, abs).and_then(|rel| {
                view.lookup(&rel)
                    .is_none()
                    .then(|| (rel.clone(), view.delta().get(&rel).cloned()))
            })
        } else {
            None
        };
        let r = self.with_caller(&status.cred, status.umask, |c| {
            view.open(c, abs, flags, mode)
        });
        let opened = match r {
            Ok(Routed::View(o)) => o,
            Ok(_) => return Outcome::Continue,
            Err(e) => return e.into(),
        };
        match opened {
            Opened::Write { rel, seed, .. } => {
                let entry_mode = view.lookup(&rel).map(|e| (e.mode, e.mtime_ns));
                let (perm, mtime) = entry_mode.unwrap_or((0o644, now_ns()));
                match self
                    .prepare_private(&rel, seed, perm, mtime)
                    .and_then(|()| self.open_farm_file(&rel, raw_flags))
                {
                    Ok(file) => Outcome::Fd {
                        file,
                        cloexec: raw_flags & libc::O_CLOEXEC != 0,
                        undo: prev,
                    },
                    Err(e) => {
                        if let Some((rel, prev)) = prev {
                            view.undo_create(&rel, prev);
                        }
                        tracing::warn!("preparing {}: {e}", self.farm_path(&rel).display());
                        Outcome::Errno(errno_of(&e))
                    }
                }
            }
            // Read-only, directory, FIFO or O_PATH opens: the farm serves them.
            _ => Outcome::Continue,
        }
    }

    fn rel_of_locked(&self, view: &ViewOf, abs: &[u8]) -> Option<RelPath> {
        match view.resolve(abs, &self.root, true).ok()? {
            vrift_common::vfs::Resolved::View { rel, .. } => Some(rel),
            _ => None,
        }
    }

    /// The fd could not be delivered: put the view back as it was before the create.
    pub fn undo_create(&self, rel: &[u8], prev: Option<DeltaNode>) {
        self.view.write().unwrap().undo_create(rel, prev);
        let _ = std::fs::remove_file(self.farm_path(rel));
    }

    /// Make the farm's file at `rel` a private copy the program may write: the store's blob
    /// is copied (never opened for writing), or an empty file is made.
    fn prepare_private(&self, rel: &[u8], seed: Seed, perm: u32, mtime_ns: i64) -> io::Result<()> {
        let target = self.farm_path(rel);
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
            std::process::id() as u64 * 1_000_003 ^ now_ns() as u64
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
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
                out.set_modified(t)?;
            }
            out.set_permissions(std::fs::Permissions::from_mode(perm & 0o7777))?;
            std::fs::rename(&tmp, target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn open_farm_file(&self, rel: &[u8], raw_flags: i32) -> io::Result<OwnedFd> {
        // The view decided creation, exclusivity and truncation; the rest of the caller's
        // flags (access mode, O_APPEND, O_NONBLOCK, O_SYNC...) apply to the private copy.
        let keep = raw_flags
            & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC);
        let acc = raw_flags & libc::O_ACCMODE;
        let f = std::fs::OpenOptions::new()
            .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
            .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
            .custom_flags((keep & !libc::O_ACCMODE) | libc::O_CLOEXEC)
            .open(self.farm_path(rel))?;
        Ok(f.into())
    }

    // ---- changes to names and attributes ----

    fn mutate<T>(
        &self,
        tid: u32,
        op: impl FnOnce(&mut ViewOf, &Caller) -> Result<Routed<T>, Errno>,
        apply: impl FnOnce(&Self, &ViewOf, T) -> io::Result<()>,
    ) -> Outcome {
        let status = match self.creds.fresh(tid) {
            Ok(s) => s,
            Err(_) => return Outcome::Continue,
        };
        let mut view = self.view.write().unwrap();
        let c = Caller {
            cred: &status.cred,
            cwd: &self.root,
            umask: status.umask,
            now_ns: now_ns(),
        };
        match op(&mut view, &c) {
            Ok(Routed::View(t)) => match apply(self, &view, t) {
                Ok(()) => Outcome::Value(0),
                Err(e) => {
                    tracing::warn!("applying a change to the link farm: {e}");
                    Outcome::Errno(errno_of(&e))
                }
            },
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    pub fn mkdir(&self, tid: u32, abs: &[u8], mode: u32) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.mkdir(c, abs, mode),
            |m, _, rel| std::fs::create_dir(m.farm_path(&rel)),
        )
    }

    pub fn rmdir(&self, tid: u32, abs: &[u8]) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.rmdir(c, abs),
            |m, _, rel| std::fs::remove_dir(m.farm_path(&rel)),
        )
    }

    pub fn unlink(&self, tid: u32, abs: &[u8]) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.unlink(c, abs),
            |m, _, rel| std::fs::remove_file(m.farm_path(&rel)),
        )
    }

    pub fn rename(&self, tid: u32, old: &[u8], new: &[u8], flags: u32) -> Outcome {
        let mode = match RenameMode::from_linux_flags(flags) {
            Ok(m) => m,
            Err(e) => return e.into(),
        };
        self.mutate(
            tid,
            |v, c| v.rename(c, old, new, mode),
            |m, _, (a, b)| crate::sys::fsops::renameat2(&m.farm_path(&a), &m.farm_path(&b), flags),
        )
    }

    pub fn link(&self, tid: u32, old: &[u8], new: &[u8], follow: bool) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.link(c, old, new, follow),
            |m, v, rel| {
                // The new name shows the same content: a hardlink in the farm to whatever the
                // source resolved to (blob or private copy).
                let src = match v
                    .resolve(old, &m.root, follow)
                    .map_err(|e| io::Error::from_raw_os_error(e.raw()))?
                {
                    vrift_common::vfs::Resolved::View { rel, .. } => rel,
                    _ => return Err(io::Error::from_raw_os_error(libc::EXDEV)),
                };
                std::fs::hard_link(m.farm_path(&src), m.farm_path(&rel))
            },
        )
    }

    pub fn symlink(&self, tid: u32, target: &[u8], linkpath: &[u8]) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.symlink(c, target, linkpath),
            |m, _, rel| {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), m.farm_path(&rel))
            },
        )
    }

    pub fn mknod(&self, tid: u32, abs: &[u8], mode: u32) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.mknod(c, abs, mode),
            |m, v, rel| {
                let perm = v.lookup(&rel).map(|e| e.mode).unwrap_or(0o644);
                crate::sys::fsops::mkfifo(&m.farm_path(&rel), perm)
            },
        )
    }

    pub fn chmod(&self, tid: u32, abs: &[u8], mode: u32, follow: bool) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.chmod(c, abs, mode, follow),
            |m, v, ()| m.sync_private_attrs(v, abs, follow),
        )
    }

    pub fn utimens(
        &self,
        tid: u32,
        abs: &[u8],
        atime: TimeSpec,
        mtime: TimeSpec,
        follow: bool,
    ) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.utimens(c, abs, atime, mtime, follow),
            |m, v, ()| m.sync_private_attrs(v, abs, follow),
        )
    }

    /// A private copy's real mode and mtime follow its entry, since stat reads its size and
    /// times from disk and the kernel checks its mode on native reads.
    fn sync_private_attrs(&self, v: &ViewOf, abs: &[u8], follow: bool) -> io::Result<()> {
        let rel = match v.resolve(abs, &self.root, follow) {
            Ok(vrift_common::vfs::Resolved::View { rel, .. }) => rel,
            _ => return Ok(()),
        };
        let Some(e) = v.lookup(&rel) else {
            return Ok(());
        };
        if !matches!(e.content(), Some(vrift_common::vfs::Content::Pending(_))) {
            return Ok(());
        }
        let p = self.farm_path(&rel);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
        let f = std::fs::OpenOptions::new().read(true).open(&p)?;
        f.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.mtime_ns.max(0) as u64),
        )
    }

    pub fn truncate(&self, tid: u32, abs: &[u8], len: i64) -> Outcome {
        self.mutate(
            tid,
            |v, c| v.truncate(c, abs, len),
            |m, v, t| {
                let (perm, mtime) = v
                    .lookup(&t.rel)
                    .map(|e| (e.mode, e.mtime_ns))
                    .unwrap_or((0o644, now_ns()));
                m.prepare_private(&t.rel, t.seed, perm, mtime)?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(m.farm_path(&t.rel))?
                    .set_len(t.len)
            },
        )
    }

    /// chown on a view path: the view does not store ownership (manifests are portable), so
    /// only what the kernel would allow anyway succeeds, and changes nothing.
    pub fn chown(&self, tid: u32, abs: &[u8], uid: u32, gid: u32, follow: bool) -> Outcome {
        let cred = match self.creds.get(tid) {
            Ok(c) => c,
            Err(_) => return Outcome::Continue,
        };
        let r = self.with_caller(&cred, 0, |c| self.view.read().unwrap().stat(c, abs, follow));
        match r {
            Ok(Routed::View(st)) => {
                let same_uid = uid == u32::MAX || uid == st.uid;
                let own_group = gid == u32::MAX
                    || gid == st.gid
                    || cred.groups.contains(&gid)
                    || gid == cred.gid;
                if cred.privileged || (cred.uid == st.uid && same_uid && own_group) {
                    Outcome::Value(0)
                } else {
                    Outcome::Errno(libc::EPERM)
                }
            }
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    // ---- end of run ----

    /// Hash every private copy into the store and return the view's new manifest.
    pub fn commit(&self) -> anyhow::Result<Manifest> {
        let mut view = self.view.write().unwrap();
        let mut done = HashSet::new();
        for (id, rel) in view.pending() {
            if !done.insert(id) {
                continue;
            }
            let p = self.farm_path(&rel);
            let meta = std::fs::symlink_metadata(&p)?;
            let ins = self.store.insert_file(&p)?;
            let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            view.commit(id, ins.hash, ins.size, mtime);
        }
        let entries = view.flatten()?;
        Ok(Manifest::from_entries(entries))
    }
}
