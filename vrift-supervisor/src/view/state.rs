//! The run's view state, shared by every projection that decides changes in user space (the
//! seccomp supervisor today, a shim's server later): vrift-common's layered [`View`] and
//! RFC-0047 state machine, the journal that makes the run recoverable, and the replay of
//! that journal.
//!
//! Every decision (exists? allowed? which errno?) is the state machine's. What a change
//! means on the real objects behind the view (a link farm, a private copy) is the
//! projection's [`Backend`]. Callers pass the credentials of the process that made the call:
//! how they are found (a /proc read, a message from a shim) is the projection's business.

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use vrift_common::hash::Hash;
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::vfs::{Caller, Cred, DeltaNode, Errno, OpenFlags, Resolved, Routed, Stat, View};

use super::journal::{Entry, Journal};
use vrift_common::runlog::Op;

pub type ViewOf = View<Arc<Manifest>>;

/// The credentials and umask of the process that made a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerStatus {
    pub cred: Cred,
    pub umask: u32,
}

/// A create to undo if its fd cannot be delivered.
pub struct Undo {
    pub rel: RelPath,
    pub prev: Option<DeltaNode>,
    /// The journal record of the create.
    pub seq: u64,
}

/// What the projection answers the program.
pub enum Outcome {
    /// Let the kernel run the call as issued (outside the view, or the backing tree gives
    /// the same answer the view would).
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

/// What a getxattr or listxattr of a view path found: the bytes for the caller's buffer, an
/// error, or a path outside the view (for the kernel).
pub enum XattrRead {
    Bytes(Vec<u8>),
    Errno(i32),
    Outside,
}

impl From<Result<Routed<Vec<u8>>, Errno>> for XattrRead {
    fn from(r: Result<Routed<Vec<u8>>, Errno>) -> XattrRead {
        match r {
            Ok(Routed::View(b)) => XattrRead::Bytes(b),
            Ok(_) => XattrRead::Outside,
            Err(e) => XattrRead::Errno(e.raw()),
        }
    }
}

impl From<Errno> for Outcome {
    fn from(e: Errno) -> Outcome {
        Outcome::Errno(e.raw())
    }
}

/// What the state machine did, per kind of call (the shim's log and this journal share it).
pub use vrift_common::runlog::Done;

/// A committed private copy: what the store now holds for it.
pub struct Committed {
    pub hash: Hash,
    pub size: u64,
    pub mtime_ns: i64,
    /// The private copy's own mode: it follows the view's, unless the program changed it
    /// through the kernel (a POSIX ACL set with fsetxattr on the open copy).
    pub mode: u32,
}

/// What a change means on the real objects behind the view.
pub trait Backend: Send + Sync {
    /// Do what the view just did (`done`) for `op`.
    fn carry_out(&self, view: &ViewOf, op: &Op, done: Done) -> io::Result<Outcome>;
    /// Remove what an undone create left.
    fn undo_create(&self, rel: &[u8]);
    /// Size and times of a file being written, from its private copy.
    fn pending_stat(&self, rel: &[u8], st: &mut Stat);
    /// Hash the private copy shown at `rel` into the store.
    fn commit_pending(&self, rel: &[u8]) -> anyhow::Result<Committed>;
}

/// Lock helpers that survive a panicking holder: one handler that panicked must not take
/// every other call, and the end of the run, down with it. The state machine changes the
/// view only after deciding, so a view left by a panic is one of its valid states.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
pub(crate) fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Where a path the program named lies, before any resolution.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    Outside,
    /// Inside a real path excluded from the view: the kernel serves it.
    Passthrough,
    View,
}

pub struct ViewState<B: Backend> {
    view: RwLock<ViewOf>,
    /// Locked only while the view is locked for writing, so records keep the view's order.
    journal: Mutex<Option<Journal>>,
    /// A journal write failed: the run accepts no change it could not recover.
    journal_failed: AtomicBool,
    root: Vec<u8>,
    passthrough: HashSet<RelPath>,
    pub backend: B,
}

impl<B: Backend> ViewState<B> {
    pub fn new(
        view: ViewOf,
        passthrough: impl IntoIterator<Item = RelPath>,
        backend: B,
        journal: Option<Journal>,
    ) -> ViewState<B> {
        let root = view.root().to_vec();
        ViewState {
            view: RwLock::new(view),
            journal: Mutex::new(journal),
            journal_failed: AtomicBool::new(false),
            root,
            passthrough: passthrough.into_iter().collect(),
            backend,
        }
    }

    /// Classify an absolute path lexically: cheap, and enough to let everything outside the
    /// view go to the kernel at once.
    pub fn place(&self, abs: &[u8]) -> Place {
        use super::lexical as paths;
        let rel = match paths::under_root(abs, &self.root) {
            Some(rel) => rel.to_vec(),
            None if abs.windows(2).any(|w| w == b"..") => {
                let norm = paths::normalize(abs);
                match paths::under_root(&norm, &self.root) {
                    Some(rel) => rel.to_vec(),
                    None => return Place::Outside,
                }
            }
            None => return Place::Outside,
        };
        if !self.passthrough.is_empty() {
            let norm = paths::normalize(&[b"/", &rel[..]].concat());
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

    fn caller<'a>(&'a self, cred: &'a Cred, umask: u32, now_ns: i64) -> Caller<'a> {
        Caller {
            cred,
            cwd: &self.root,
            umask,
            now_ns,
        }
    }

    /// Where `abs` leads in `view`, if it stays in the view.
    pub fn rel_in(&self, view: &ViewOf, abs: &[u8], follow: bool) -> Option<RelPath> {
        match view.resolve(abs, &self.root, follow).ok()? {
            Resolved::View { rel, .. } => Some(rel),
            Resolved::Outside(_) => None,
        }
    }

    /// The view, locked for reading, for a backend step that follows a change.
    pub fn view_for_backend(&self) -> RwLockReadGuard<'_, ViewOf> {
        read(&self.view)
    }

    // ---- reads ----

    /// The view itself, read-locked, for a projection that needs more than the answers
    /// below (the supervisor without mounts, judging what the kernel would reach).
    pub fn with_view<R>(&self, f: impl FnOnce(&ViewOf) -> R) -> R {
        f(&read(&self.view))
    }

    /// readlink of a view path: the symlink's target.
    pub fn readlink(&self, cred: &Cred, abs: &[u8]) -> Result<Routed<Vec<u8>>, Errno> {
        read(&self.view).readlink(&self.caller(cred, 0, now_ns()), abs)
    }

    pub fn stat(&self, cred: &Cred, abs: &[u8], follow: bool) -> Outcome {
        let view = read(&self.view);
        match view.stat(&self.caller(cred, 0, now_ns()), abs, follow) {
            Ok(Routed::View(mut st)) => {
                if st.pending.is_some() {
                    if let Some(rel) = self.rel_in(&view, abs, follow) {
                        self.backend.pending_stat(&rel, &mut st);
                    }
                }
                Outcome::Stat(st)
            }
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    pub fn access(&self, cred: &Cred, abs: &[u8], mode: u32, follow: bool) -> Outcome {
        let r = read(&self.view).access(&self.caller(cred, 0, now_ns()), abs, mode, follow);
        match r {
            Ok(Routed::View(())) => Outcome::Value(0),
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    /// Exec is judged by the view; the backing tree serves the file.
    pub fn exec(&self, cred: &Cred, abs: &[u8]) -> Outcome {
        match read(&self.view).exec(&self.caller(cred, 0, now_ns()), abs) {
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    /// A read-only open, judged on a shared view; the backing tree serves it.
    pub fn open_read(&self, cred: &Cred, abs: &[u8], flags: OpenFlags) -> Outcome {
        match read(&self.view).open_read(&self.caller(cred, 0, now_ns()), abs, flags) {
            Ok(_) => Outcome::Continue,
            Err(e) => e.into(),
        }
    }

    /// getxattr family: the value of `name` of the entry `abs` names.
    pub fn getxattr(&self, cred: &Cred, abs: &[u8], name: &[u8], follow: bool) -> XattrRead {
        let r = read(&self.view).getxattr(&self.caller(cred, 0, now_ns()), abs, name, follow);
        XattrRead::from(r)
    }

    /// listxattr family: the entry's xattr names, each ended by a NUL.
    pub fn listxattr(&self, cred: &Cred, abs: &[u8], follow: bool) -> XattrRead {
        XattrRead::from(read(&self.view).listxattr(&self.caller(cred, 0, now_ns()), abs, follow))
    }

    // ---- changes ----

    /// Carry out a change: the journal records it first, the state machine decides, the
    /// backend follows. A change the state machine refuses, or the backend cannot carry out,
    /// is marked undone in the journal, so a replay reaches exactly the state the run had.
    /// A change that cannot be journalled is refused (EIO), and so is every later one: the
    /// run never accepts what it could not recover.
    pub fn change(&self, caller: &CallerStatus, op: Op) -> Outcome {
        if self.journal_failed.load(Ordering::Relaxed) {
            return Outcome::Errno(libc::EIO);
        }
        let now = now_ns();
        let c = self.caller(&caller.cred, caller.umask, now);
        let mut view = write(&self.view);
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
        let seq = match self.journal(&caller.cred, caller.umask, now, &op) {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!("writing the run's journal: {e}; the view takes no more changes");
                eprintln!(
                    "vrift: writing the run's journal failed ({e}); from now on the view \
                     refuses changes (EIO), so none is accepted that could be lost"
                );
                self.journal_failed.store(true, Ordering::Relaxed);
                return Outcome::Errno(libc::EIO);
            }
        };
        // Recorded, so a change the backend cannot carry out leaves the view as it was:
        // a view that kept it would name what the backing tree does not have, and the end
        // of the run would fail on it.
        view.begin_change();
        let done = match vrift_common::runlog::apply_op(&mut view, &c, &op) {
            Ok(Routed::View(done)) => done,
            Ok(_) => {
                view.roll_back();
                self.journal_undo(seq);
                return Outcome::Continue;
            }
            Err(e) => {
                view.roll_back();
                self.journal_undo(seq);
                return e.into();
            }
        };
        let outcome = match self.backend.carry_out(&view, &op, done) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("carrying out a change behind the view: {e}");
                view.roll_back();
                self.journal_undo(seq);
                return Outcome::Errno(e.raw_os_error().unwrap_or(libc::EIO));
            }
        };
        view.end_change();
        match outcome {
            Outcome::Fd { file, cloexec, .. } => Outcome::Fd {
                file,
                cloexec,
                undo: before_create.map(|(rel, prev)| Undo { rel, prev, seq }),
            },
            o => o,
        }
    }

    fn journal(&self, cred: &Cred, umask: u32, now: i64, op: &Op) -> io::Result<u64> {
        match lock(&self.journal).as_mut() {
            Some(j) => j.append(cred, umask, now, op.clone()),
            None => Ok(0),
        }
    }

    fn journal_undo(&self, seq: u64) {
        if let Some(j) = lock(&self.journal).as_mut() {
            if let Err(e) = j.append(&Cred::root(), 0, 0, Entry::Undo { seq }) {
                tracing::error!("writing the run's journal: {e}");
                self.journal_failed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The fd of a create could not be delivered (the caller was interrupted and will
    /// restart the call): put the view back as it was, so a restarted O_EXCL succeeds.
    pub fn undo_create(&self, undo: Undo) {
        let mut view = write(&self.view);
        view.undo_create(&undo.rel, undo.prev);
        self.backend.undo_create(&undo.rel);
        self.journal_undo(undo.seq);
    }

    // ---- end of run ----

    /// Hash every private copy into the store and return the view's new manifest.
    pub fn commit(&self) -> anyhow::Result<Manifest> {
        let mut view = write(&self.view);
        let mut done = HashSet::new();
        let pending = view.pending();
        let progress =
            crate::progress::Progress::new("storing the run's new files", pending.len() as u64);
        for (id, rel) in pending {
            progress.inc(1);
            if !done.insert(id) {
                continue;
            }
            let c = self.backend.commit_pending(&rel)?;
            let was = view.lookup(&rel).map(|e| e.mode & 0o7777);
            let paths = view.commit(id, c.hash, c.size, c.mtime_ns);
            if was.is_some_and(|m| m != c.mode & 0o7777) {
                view.set_committed_mode(&paths, c.mode);
            }
        }
        let mut entries = view.flatten()?;
        // Hard-link groups come from the project's own manifest (the upper layer).
        if let Some(upper) = view.layers().last() {
            upper.follow_link_writes(&mut entries);
        }
        Ok(Manifest::from_entries(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use vrift_common::manifest::Entry;
    use vrift_common::vfs::Owner;

    /// A backend whose first change panics, as a handler with a bug would.
    #[derive(Default)]
    struct Flaky {
        calls: AtomicUsize,
    }

    impl Backend for Flaky {
        fn carry_out(&self, _: &ViewOf, _: &Op, _: Done) -> io::Result<Outcome> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("a handler with a bug");
            }
            Ok(Outcome::Value(0))
        }
        fn undo_create(&self, _: &[u8]) {}
        fn pending_stat(&self, _: &[u8], _: &mut Stat) {}
        fn commit_pending(&self, _: &[u8]) -> anyhow::Result<Committed> {
            anyhow::bail!("no private copies here")
        }
    }

    fn state() -> ViewState<Flaky> {
        let root = Entry::dir(0o755, 0);
        let manifest = Manifest::from_entries([(Vec::new(), root)]);
        let owner = Owner { uid: 0, gid: 0 };
        let view = crate::view::spec::make(std::path::Path::new("/p"), owner, manifest, 1).unwrap();
        ViewState::new(view, [], Flaky::default(), None)
    }

    #[test]
    fn a_panicking_change_leaves_the_view_usable() {
        let s = Arc::new(state());
        let root = CallerStatus {
            cred: Cred::root(),
            umask: 0o022,
        };
        let mkdir = |p: &[u8]| Op::Mkdir {
            path: p.to_vec(),
            mode: 0o755,
        };
        let s2 = Arc::clone(&s);
        let r2 = root.clone();
        let panicked = std::thread::spawn(move || s2.change(&r2, mkdir(b"/p/a"))).join();
        assert!(
            panicked.is_err(),
            "the first change panics while holding the view"
        );
        // The lock it held is taken back: later calls and the end of the run go on.
        assert!(matches!(s.change(&root, mkdir(b"/p/b")), Outcome::Value(0)));
        assert!(matches!(
            s.stat(&Cred::root(), b"/p/b", true),
            Outcome::Stat(_)
        ));
        let m = s.commit().unwrap();
        assert!(m.get(b"b").is_some());
    }

    /// A backend that makes files but cannot make links, as a farm whose file reached its
    /// link limit cannot.
    struct NoLinks;

    impl Backend for NoLinks {
        fn carry_out(&self, _: &ViewOf, op: &Op, _: Done) -> io::Result<Outcome> {
            match op {
                Op::Link { .. } => Err(io::Error::from_raw_os_error(libc::EMLINK)),
                Op::Open { .. } => Ok(Outcome::Fd {
                    file: std::fs::File::open("/dev/null")?.into(),
                    cloexec: true,
                    undo: None,
                }),
                _ => Ok(Outcome::Value(0)),
            }
        }
        fn undo_create(&self, _: &[u8]) {}
        fn pending_stat(&self, _: &[u8], _: &mut Stat) {}
        fn commit_pending(&self, rel: &[u8]) -> anyhow::Result<Committed> {
            anyhow::ensure!(rel == b"d/f", "no private copy at {rel:?}");
            Ok(Committed {
                hash: Hash([7; 32]),
                size: 0,
                mtime_ns: 0,
                mode: 0o644,
            })
        }
    }

    #[test]
    fn a_change_the_backend_cannot_carry_out_leaves_no_trace_in_the_view() {
        let root_entry = Entry::dir(0o755, 0);
        let manifest = Manifest::from_entries([(Vec::new(), root_entry)]);
        let owner = Owner { uid: 0, gid: 0 };
        let view = crate::view::spec::make(std::path::Path::new("/p"), owner, manifest, 1).unwrap();
        let s = ViewState::new(view, [], NoLinks, None);
        let root = CallerStatus {
            cred: Cred::root(),
            umask: 0o022,
        };
        let mkdir = Op::Mkdir {
            path: b"/p/d".to_vec(),
            mode: 0o755,
        };
        assert!(matches!(s.change(&root, mkdir), Outcome::Value(0)));
        let create = Op::Open {
            path: b"/p/d/f".to_vec(),
            flags: libc::O_CREAT | libc::O_WRONLY,
            mode: 0o644,
        };
        assert!(matches!(s.change(&root, create), Outcome::Fd { .. }));
        let before = match s.stat(&Cred::root(), b"/p/d", true) {
            Outcome::Stat(st) => st,
            _ => panic!("d is in the view"),
        };
        let link = Op::Link {
            old: b"/p/d/f".to_vec(),
            new: b"/p/d/g".to_vec(),
            follow: false,
        };
        assert!(matches!(
            s.change(&root, link),
            Outcome::Errno(libc::EMLINK)
        ));
        // The refused link is nowhere: not at its name, not in its directory's mtime.
        assert!(matches!(
            s.stat(&Cred::root(), b"/p/d/g", false),
            Outcome::Errno(libc::ENOENT)
        ));
        match s.stat(&Cred::root(), b"/p/d", true) {
            Outcome::Stat(st) => assert_eq!(st.mtime_ns, before.mtime_ns),
            _ => panic!("d is in the view"),
        }
        // The end of the run commits the one private copy there is.
        let m = s.commit().unwrap();
        assert!(m.get(b"d/f").is_some());
        assert!(m.get(b"d/g").is_none());
    }
}
