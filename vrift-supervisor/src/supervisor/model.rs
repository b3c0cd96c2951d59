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
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;
use vrift_common::vfs::{
    Caller, Content, Cred, DeltaNode, Errno, OpenFlags, Opened, RenameMode, Resolved, Routed, Seed,
    Stat, Truncate, View,
};

use super::creds::CredCache;
use super::journal::{Journal, Op, Record};

/// A create to undo if its fd cannot be delivered.
pub struct Undo {
    pub rel: RelPath,
    pub prev: Option<DeltaNode>,
    /// The journal record of the create.
    pub seq: u64,
}

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
        undo: Option<Undo>,
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
    /// Locked only while the view is locked for writing, so records keep the view's order.
    journal: Mutex<Option<Journal>>,
    tmp_seq: std::sync::atomic::AtomicU64,
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

fn system_time(ns: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64)
}

/// Run `f` on a private copy the supervisor owns; if its mode shuts the owner out (a file
/// the program made 0444 or 0200), open it up for the duration and put the mode back. The
/// state machine already decided the program may do what `f` does.
fn with_owner_access<T>(path: &Path, f: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match f() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o600))?;
            let r = f();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            r
        }
        r => r,
    }
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
        journal: Option<Journal>,
    ) -> Model {
        let root = view.root().to_vec();
        Model {
            view: RwLock::new(view),
            journal: Mutex::new(journal),
            tmp_seq: Default::default(),
            root,
            farm_bytes: farm.as_os_str().as_bytes().to_vec(),
            farm,
            passthrough: passthrough.into_iter().collect(),
            store,
            creds: CredCache::default(),
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
                    if let Some(rel) = self.rel_in(&self.view.read().unwrap(), abs, follow) {
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

    // ---- changes (open for writing, names, attributes) ----

    /// Open: read-only opens are judged on a shared view and served by the farm; the rest
    /// go through [`Model::change`].
    pub fn open(&self, tid: u32, abs: &[u8], raw_flags: i32, mode: u32) -> Outcome {
        let flags = OpenFlags::from_raw(raw_flags);
        if ViewOf::open_changes_view(flags) {
            return self.change(
                tid,
                Op::Open {
                    path: abs.to_vec(),
                    flags: raw_flags,
                    mode,
                },
            );
        }
        let cred = match self.creds.get(tid) {
            Ok(c) => c,
            Err(_) => return Outcome::Continue,
        };
        let r = self.with_caller(&cred, 0, |c| {
            self.view.read().unwrap().open_read(c, abs, flags)
        });
        match r {
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    /// Carry out a change: the state machine decides, the farm follows, the journal records.
    pub fn change(&self, tid: u32, op: Op) -> Outcome {
        let status = match self.creds.fresh(tid) {
            Ok(s) => s,
            Err(_) => return Outcome::Continue,
        };
        let now = now_ns();
        let c = Caller {
            cred: &status.cred,
            cwd: &self.root,
            umask: status.umask,
            now_ns: now,
        };
        let mut view = self.view.write().unwrap();
        // What a create replaces, to undo it if its fd cannot be delivered.
        let before_create = match &op {
            Op::Open { path, flags, .. } if flags & libc::O_CREAT != 0 => {
                self.rel_in(&view, path, true).and_then(|rel| {
                    view.lookup(&rel)
                        .is_none()
                        .then(|| (rel.clone(), view.delta().get(&rel).cloned()))
                })
            }
            _ => None,
        };
        let done = match apply(&mut view, &c, &op) {
            Ok(Routed::View(done)) => done,
            Ok(_) => return Outcome::Continue,
            Err(e) => return e.into(),
        };
        let outcome = match self.carry_out(&view, &op, done) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("carrying out a change on the link farm: {e}");
                if let Some((rel, prev)) = before_create {
                    view.undo_create(&rel, prev);
                }
                return Outcome::Errno(errno_of(&e));
            }
        };
        let seq = self.journal(&status.cred, status.umask, now, op);
        match outcome {
            Outcome::Fd { file, cloexec, .. } => Outcome::Fd {
                file,
                cloexec,
                undo: before_create.map(|(rel, prev)| Undo { rel, prev, seq }),
            },
            o => o,
        }
    }

    fn journal(&self, cred: &Cred, umask: u32, now: i64, op: Op) -> u64 {
        match self.journal.lock().unwrap().as_mut() {
            Some(j) => j.append(cred, umask, now, op),
            None => 0,
        }
    }

    /// Where `abs` leads in `view`, if it stays in the view.
    fn rel_in(&self, view: &ViewOf, abs: &[u8], follow: bool) -> Option<RelPath> {
        match view.resolve(abs, &self.root, follow).ok()? {
            Resolved::View { rel, .. } => Some(rel),
            Resolved::Outside(_) => None,
        }
    }

    /// The fd of a create could not be delivered (the caller was interrupted and will
    /// restart the call): put the view back as it was, so a restarted O_EXCL succeeds.
    pub fn undo_create(&self, undo: Undo) {
        let mut view = self.view.write().unwrap();
        view.undo_create(&undo.rel, undo.prev);
        let _ = std::fs::remove_file(self.farm_path(&undo.rel));
        if let Some(j) = self.journal.lock().unwrap().as_mut() {
            j.append(&Cred::root(), 0, 0, Op::Undo { seq: undo.seq });
        }
    }

    /// Do on the farm what the view just did.
    fn carry_out(&self, view: &ViewOf, op: &Op, done: Done) -> io::Result<Outcome> {
        let ok = Ok(Outcome::Value(0));
        match (op, done) {
            (Op::Open { flags, .. }, Done::Opened(Opened::Write { rel, seed, .. })) => {
                let (perm, mtime) = view
                    .lookup(&rel)
                    .map(|e| (e.mode, e.mtime_ns))
                    .unwrap_or((0o644, now_ns()));
                self.prepare_private(&rel, seed, perm, mtime)?;
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
                std::fs::create_dir(self.farm_path(&rel))?;
                ok
            }
            (Op::Rmdir { .. }, Done::Rel(rel)) => {
                std::fs::remove_dir(self.farm_path(&rel))?;
                ok
            }
            (Op::Unlink { .. }, Done::Rel(rel)) => {
                std::fs::remove_file(self.farm_path(&rel))?;
                ok
            }
            (Op::Rename { flags, .. }, Done::Pair(a, b)) => {
                crate::sys::fsops::renameat2(&self.farm_path(&a), &self.farm_path(&b), *flags)?;
                ok
            }
            (Op::Link { old, follow, .. }, Done::Rel(rel)) => {
                // The new name shows the same content: a hardlink in the farm to whatever
                // the source is there (the blob's link or the private copy).
                let src = self
                    .rel_in(view, old, *follow)
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EXDEV))?;
                std::fs::hard_link(self.farm_path(&src), self.farm_path(&rel))?;
                ok
            }
            (Op::Symlink { target, .. }, Done::Rel(rel)) => {
                std::os::unix::fs::symlink(
                    std::ffi::OsStr::from_bytes(target),
                    self.farm_path(&rel),
                )?;
                ok
            }
            (Op::Mknod { .. }, Done::Rel(rel)) => {
                let perm = view.lookup(&rel).map(|e| e.mode).unwrap_or(0o644);
                crate::sys::fsops::mkfifo(&self.farm_path(&rel), perm)?;
                ok
            }
            (Op::Chmod { path, follow, .. } | Op::Utimens { path, follow, .. }, Done::Unit) => {
                self.sync_private_attrs(view, path, *follow)?;
                ok
            }
            (Op::Truncate { .. }, Done::Truncate(t)) => {
                let (perm, mtime) = view
                    .lookup(&t.rel)
                    .map(|e| (e.mode, e.mtime_ns))
                    .unwrap_or((0o644, now_ns()));
                self.prepare_private(&t.rel, t.seed, perm, mtime)?;
                let p = self.farm_path(&t.rel);
                with_owner_access(&p, || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&p)?
                        .set_len(t.len)
                })?;
                ok
            }
            _ => Err(io::Error::other(
                "state machine result does not match the call",
            )),
        }
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

    fn open_farm_file(&self, rel: &[u8], raw_flags: i32) -> io::Result<OwnedFd> {
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
        let path = self.farm_path(rel);
        let f = with_owner_access(&path, || {
            std::fs::OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(acc != libc::O_RDONLY)
                .custom_flags(keep | libc::O_CLOEXEC)
                .open(&path)
        })?;
        Ok(f.into())
    }

    /// A private copy's real mode and mtime follow its entry, since stat reads its size and
    /// times from disk and the kernel checks its mode on native reads.
    fn sync_private_attrs(&self, v: &ViewOf, abs: &[u8], follow: bool) -> io::Result<()> {
        let Some(rel) = self.rel_in(v, abs, follow) else {
            return Ok(());
        };
        let Some(e) = v.lookup(&rel) else {
            return Ok(());
        };
        if !matches!(e.content(), Some(Content::Pending(_))) {
            return Ok(());
        }
        let p = self.farm_path(&rel);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
        crate::sys::fsops::set_mtime(&p, e.mtime_ns)
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
                let keeps_uid = uid == u32::MAX || uid == st.uid;
                let own_group = gid == u32::MAX
                    || gid == st.gid
                    || gid == cred.gid
                    || cred.groups.contains(&gid);
                if cred.privileged || (cred.uid == st.uid && keeps_uid && own_group) {
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
            let ins = with_owner_access(&p, || {
                self.store.insert_file(&p).map_err(|e| match e {
                    vrift_common::store::StoreError::Io { source, .. } => source,
                    other => io::Error::other(other.to_string()),
                })
            })
            .with_context(|| format!("{}", p.display()))?;
            let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            view.commit(id, ins.hash, ins.size, mtime);
        }
        let entries = view.flatten()?;
        Ok(Manifest::from_entries(entries))
    }
}

/// What the state machine did, per kind of call.
pub enum Done {
    Opened(Opened),
    Rel(RelPath),
    Pair(RelPath, RelPath),
    Unit,
    Truncate(Truncate),
}

/// Run `op` through the state machine (no farm, no journal): the live path and the replay of
/// a journal share it, so a replay reaches exactly the state the run had.
pub fn apply(view: &mut ViewOf, c: &Caller, op: &Op) -> Result<Routed<Done>, Errno> {
    fn map<T>(
        r: Result<Routed<T>, Errno>,
        f: impl FnOnce(T) -> Done,
    ) -> Result<Routed<Done>, Errno> {
        r.map(|routed| match routed {
            Routed::View(t) => Routed::View(f(t)),
            Routed::Outside(p) => Routed::Outside(p),
            Routed::OutsideBoth(a, b) => Routed::OutsideBoth(a, b),
        })
    }
    match op {
        Op::Open { path, flags, mode } => map(
            view.open(c, path, OpenFlags::from_raw(*flags), *mode),
            Done::Opened,
        ),
        Op::Mkdir { path, mode } => map(view.mkdir(c, path, *mode), Done::Rel),
        Op::Rmdir { path } => map(view.rmdir(c, path), Done::Rel),
        Op::Unlink { path } => map(view.unlink(c, path), Done::Rel),
        Op::Rename { old, new, flags } => {
            let mode = RenameMode::from_linux_flags(*flags)?;
            map(view.rename(c, old, new, mode), |(a, b)| Done::Pair(a, b))
        }
        Op::Link { old, new, follow } => map(view.link(c, old, new, *follow), Done::Rel),
        Op::Symlink { target, path } => map(view.symlink(c, target, path), Done::Rel),
        Op::Mknod { path, mode } => map(view.mknod(c, path, *mode), Done::Rel),
        Op::Chmod { path, mode, follow } => {
            map(view.chmod(c, path, *mode, *follow), |()| Done::Unit)
        }
        Op::Utimens {
            path,
            atime,
            mtime,
            follow,
        } => map(
            view.utimens(c, path, (*atime).into(), (*mtime).into(), *follow),
            |()| Done::Unit,
        ),
        Op::Truncate { path, len } => map(view.truncate(c, path, *len), Done::Truncate),
        Op::Undo { .. } => Ok(Routed::View(Done::Unit)),
    }
}

/// Replay journal records over `view`.
pub fn replay(view: &mut ViewOf, records: &[Record]) {
    let root = view.root().to_vec();
    for r in records {
        let cred = r.cred();
        let c = Caller {
            cred: &cred,
            cwd: &root,
            umask: r.umask,
            now_ns: r.now_ns,
        };
        if let Err(e) = apply(view, &c, &r.op) {
            tracing::debug!("replaying journal record {}: {e}", r.seq);
        }
    }
}
