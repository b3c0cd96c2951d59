//! The watcher itself (`vrift watch --foreground`): one process per project and store,
//! holding an inotify watch on every directory the filters keep, answering runs on a unix
//! socket in the store. See the module above for what its answers promise.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use vrift_common::filters::{ExcludeReason, Filter, FilterOptions};
use vrift_common::manifest::RelPath;
use vrift_common::store::Store;

use super::tracker::{Event, Follow, Kind, Tracker, GIT_INFO};
use super::{format_answer, socket_address, Answer, Mark, Paths};

/// What each watch reports. `IN_CLOSE_WRITE` as well as `IN_MODIFY`: a program that writes
/// through a shared mapping raises no `IN_MODIFY`, but closing a descriptor it could write
/// through does.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
        // IN_EXCL_UNLINK: nix does not name it; events of a name already unlinked do
        // no harm (they are counted, and a walk follows).
        | AddWatchFlags::from_bits_retain(libc::IN_EXCL_UNLINK)
}

fn kind_of(mask: AddWatchFlags) -> Kind {
    let dir = mask.contains(AddWatchFlags::IN_ISDIR);
    if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        Kind::Overflow
    } else if mask.contains(AddWatchFlags::IN_IGNORED) {
        Kind::Ignored
    } else if mask.intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF) {
        Kind::SelfGone
    } else if mask.contains(AddWatchFlags::IN_CREATE) {
        Kind::Created { dir }
    } else if mask.contains(AddWatchFlags::IN_DELETE) {
        Kind::Deleted { dir }
    } else if mask.contains(AddWatchFlags::IN_MOVED_FROM) {
        Kind::MovedFrom { dir }
    } else if mask.contains(AddWatchFlags::IN_MOVED_TO) {
        Kind::MovedTo { dir }
    } else if mask.contains(AddWatchFlags::IN_ATTRIB) {
        Kind::Attrib
    } else {
        Kind::Modified
    }
}

fn event_of(e: &InotifyEvent) -> Event<WatchDescriptor> {
    let kind = kind_of(e.mask);
    Event {
        wd: (kind != Kind::Overflow).then_some(e.wd),
        kind,
        name: e.name.as_ref().map(|n| n.as_bytes().to_vec()),
    }
}

fn random_instance() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    let drawn = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if drawn.is_err() {
        // Different enough for a watcher restarted later: the time and the pid.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return t ^ (u64::from(std::process::id()) << 40);
    }
    u64::from_le_bytes(b)
}

/// The filters' verdict on `rel`, a store inside the project counting as vrift's own (the
/// walk leaves it out).
fn exclusion(
    filter: &Filter,
    root: &Path,
    store_root: &Path,
    rel: &[u8],
    is_dir: bool,
) -> Option<ExcludeReason> {
    if is_dir && root.join(std::ffi::OsStr::from_bytes(rel)) == store_root {
        return Some(ExcludeReason::Internal);
    }
    filter.exclusion(rel, is_dir)
}

struct Watcher {
    root: PathBuf,
    store_root: PathBuf,
    ino: Inotify,
    filter: Filter,
    tracker: Tracker<WatchDescriptor>,
    instance: u64,
    /// Why it cannot vouch for the tree (a directory it could not watch), if so.
    untrusted: Option<String>,
    /// The watches a rescan found.
    seen: HashSet<WatchDescriptor>,
}

impl Watcher {
    fn distrust(&mut self, why: String) {
        tracing::warn!("{}: {why}: runs walk the project", self.root.display());
        self.untrusted.get_or_insert(why);
    }

    /// Watch the directory `rel` and every kept directory under it: each is watched before
    /// it is listed, so a name made in it afterwards raises an event.
    fn scan(&mut self, rel: RelPath) {
        let mut stack = vec![rel];
        while let Some(rel) = stack.pop() {
            let path = self.root.join(std::ffi::OsStr::from_bytes(&rel));
            match self.ino.add_watch(&path, mask()) {
                Ok(wd) => {
                    self.tracker.watching(wd, rel.clone());
                    self.seen.insert(wd);
                }
                // Gone (or replaced by a file) meanwhile: its parent reported that.
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue,
                Err(Errno::ENOSPC) => {
                    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                        .unwrap_or_default();
                    self.distrust(format!(
                        "the inotify watch limit (fs.inotify.max_user_watches = {}) is reached",
                        limit.trim()
                    ));
                    return;
                }
                Err(e) => {
                    self.distrust(format!("cannot watch {}: {e}", path.display()));
                    continue;
                }
            }
            let rd = match std::fs::read_dir(&path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.distrust(format!("cannot list {}: {e}", path.display()));
                    continue;
                }
            };
            for ent in rd.flatten() {
                if !ent.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = ent.file_name();
                let mut sub = rel.clone();
                if !sub.is_empty() {
                    sub.push(b'/');
                }
                sub.extend_from_slice(name.as_bytes());
                if exclusion(&self.filter, &self.root, &self.store_root, &sub, true).is_none() {
                    stack.push(sub);
                }
            }
        }
    }

    /// Look the whole tree over: watch every kept directory (and `.git/info`, whose
    /// `exclude` the filters read), drop the watches of directories no longer there.
    fn rescan(&mut self) {
        let was_trusted = self.untrusted.is_none();
        self.untrusted = None;
        self.seen.clear();
        self.scan(Vec::new());
        let info = self.root.join(std::ffi::OsStr::from_bytes(GIT_INFO));
        if info.is_dir() {
            match self.ino.add_watch(&info, mask()) {
                Ok(wd) => {
                    self.tracker.watching(wd, GIT_INFO.to_vec());
                    self.seen.insert(wd);
                }
                Err(e) => self.distrust(format!("cannot watch {}: {e}", info.display())),
            }
        }
        let seen = std::mem::take(&mut self.seen);
        for wd in self.tracker.drop_unless(|w| seen.contains(w)) {
            let _ = self.ino.rm_watch(wd);
        }
        self.tracker.rescan = false;
        // Trusted again after a time it was not: what it missed meanwhile must not match a
        // record made before.
        if !was_trusted {
            self.tracker.events += 1;
        }
    }

    /// Read every event the kernel has queued and act on it; then rebuild what they made
    /// stale. After this, every change made before the call is counted.
    fn settle(&mut self) {
        loop {
            match self.ino.read_events() {
                Ok(events) => {
                    for e in &events {
                        let ev = event_of(e);
                        let (f, r, sr) = (&self.filter, &self.root, &self.store_root);
                        let follow = self
                            .tracker
                            .on_event(&ev, &|rel, d| exclusion(f, r, sr, rel, d));
                        if let Follow::WatchSubtree(rel) = follow {
                            self.scan(rel);
                        }
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    self.tracker.events += 1;
                    self.distrust(format!("reading inotify events: {e}"));
                    break;
                }
            }
        }
        if self.tracker.filter_stale {
            self.tracker.filter_stale = false;
            match Filter::new(&self.root, &FilterOptions::default()) {
                Ok(f) => self.filter = f,
                Err(e) => self.distrust(format!("reading the filters: {e}")),
            }
            self.tracker.rescan = true;
        }
        if self.tracker.rescan {
            self.rescan();
        }
    }

    fn answer(&self) -> Answer {
        Answer {
            mark: Mark {
                instance: self.instance,
                events: self.tracker.events,
            },
            trusted: match &self.untrusted {
                None => Ok(()),
                Some(w) => Err(w.clone()),
            },
            watched: self.tracker.watched() as u64,
            pid: std::process::id(),
        }
    }
}

/// What a connection asked; `true` when it asked the watcher to stop.
fn serve_one(w: &mut Watcher, s: UnixStream) -> bool {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let mut reader = BufReader::new(&s);
    if reader.read_line(&mut line).is_err() {
        return false;
    }
    let stop = match line.trim() {
        "sync" | "status" => false,
        "stop" => true,
        _ => return false,
    };
    w.settle();
    let _ = (&s).write_all(format_answer(&w.answer()).as_bytes());
    stop
}

/// Watch the project at `root` (canonical) until asked to stop or the root goes away.
/// `ready` is called once every directory is watched and the socket listens.
pub fn serve(store: &Store, root: &Path, ready: impl FnOnce(u32)) -> Result<()> {
    let paths = Paths::of(store, root);
    std::fs::create_dir_all(paths.dir()).with_context(|| format!("{}", paths.dir().display()))?;
    let lock = std::fs::File::create(paths.lock())
        .with_context(|| format!("{}", paths.lock().display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "{} is already watched (`vrift watch --stop` stops it)",
            root.display()
        );
    }
    let ino =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).context("inotify_init1")?;
    let filter = Filter::new(root, &FilterOptions::default())
        .with_context(|| format!("reading the filters of {}", root.display()))?;
    let store_root = store
        .root()
        .canonicalize()
        .unwrap_or_else(|_| store.root().to_path_buf());
    let mut w = Watcher {
        root: root.to_path_buf(),
        store_root,
        ino,
        filter,
        tracker: Tracker::default(),
        instance: random_instance(),
        untrusted: None,
        seen: HashSet::new(),
    };
    w.rescan();
    let socket = paths.socket();
    // Ours: the lock says no other watcher of this project runs.
    let _ = std::fs::remove_file(&socket);
    let (addr, _dir) = socket_address(&socket)?;
    let listener =
        UnixListener::bind(&addr).with_context(|| format!("listening on {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    let _ = std::fs::remove_file(paths.record());
    ready(w.tracker.watched() as u32);
    let result = run_loop(&mut w, &listener);
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(paths.record());
    drop(lock);
    result
}

fn run_loop(w: &mut Watcher, listener: &UnixListener) -> Result<()> {
    loop {
        let (events_ready, asked) = {
            let mut fds = [
                PollFd::new(w.ino.as_fd(), PollFlags::POLLIN),
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if events_ready {
            // Read as they come, so the kernel's queue does not overflow between runs.
            w.settle();
        }
        if asked {
            loop {
                match listener.accept() {
                    Ok((s, _)) => {
                        if serve_one(w, s) {
                            tracing::info!("{}: stopped watching", w.root.display());
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context("accepting a connection"),
                }
            }
        }
        if w.tracker.root_gone {
            tracing::info!("{}: gone or moved: stopped watching", w.root.display());
            return Ok(());
        }
    }
}
