//! The platform-neutral core: one process's side of a run's view. Safe code only; the
//! platform layers turn C calls into these methods and the answers back into C results.
//!
//! Every answer is an [`Act`]: done here (a value or an errno, as the kernel would give),
//! or "let the real call run" (with the original arguments, or with a path the view
//! rewrote, e.g. a view symlink pointing out of the view).

use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt as _;
use vrift_common::acl;
use vrift_common::index::Index;
use vrift_common::manifest::{XATTR_NAME_MAX, XATTR_SIZE_MAX};
use vrift_common::runlog::{self, Done, Op, Record};
use vrift_common::vfs::{
    Caller, Content, Cred, DirEntry, Errno, Exec, FileType, OpenFlags, Opened, Owner, Resolved,
    Routed, Seed, Stat, TimeSpec, View, XATTR_CREATE, XATTR_REPLACE,
};

use crate::env;
use crate::sys::{self, SharedCounter};

/// The per-process tables (kept answers by path, descriptors) hash with foldhash's fixed
/// seed, not std's SipHash, which cost a few hundred instructions per path on every stat
/// and open: their keys are made by the program itself, so keys chosen to collide could
/// slow only that program. A fixed seed needs nothing from the system while the shim sets
/// itself up.
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// What a hook does.
#[derive(Debug, PartialEq, Eq)]
pub enum Act<T> {
    /// Run the real call; with `Some(path)`, on that absolute path instead.
    Real(Option<Vec<u8>>),
    /// A two-path call for the kernel, on these absolute paths.
    RealBoth(Vec<u8>, Vec<u8>),
    Done(Result<T, Errno>),
}

impl<T> Act<T> {
    fn from_routed<U>(r: Result<Routed<U>, Errno>, f: impl FnOnce(U) -> Result<T, Errno>) -> Self {
        match r {
            Err(e) => Act::Done(Err(e)),
            Ok(Routed::View(u)) => Act::Done(f(u)),
            Ok(Routed::Outside(p)) => Act::Real(Some(p)),
            Ok(Routed::OutsideBoth(..)) => Act::Real(None),
        }
    }
}

/// What a file descriptor opened in the view stands for.
#[derive(Clone, Debug)]
pub struct FdInfo {
    /// The view path it was opened at.
    pub rel: Vec<u8>,
    pub dir: bool,
}

/// An open directory stream of the view.
pub struct DirStream {
    pub fd: i32,
    pub entries: Vec<DirEntry>,
    pub pos: usize,
}

/// The view as this process sees it, and the process's own state (cwd, fds, umask).
pub struct Shim {
    pub view: View<Index>,
    root: Vec<u8>,
    run: PathBuf,
    store: PathBuf,
    log: File,
    log_path: PathBuf,
    /// The process that opened `log`: a forked child shares the parent's open file, and so
    /// its lock, and must open its own.
    log_pid: u32,
    log_read: u64,
    generation: SharedCounter,
    fds: FastMap<i32, FdInfo>,
    /// stat answers by (absolute path, follow), valid while the view is unchanged: emptied
    /// whenever a change is made here or read from the log.
    stat_cache: FastMap<(Vec<u8>, bool), Result<Stat, Errno>>,
    /// Hashes of the (path, follow) keys asked once and not kept, one per slot: an answer
    /// is kept at the second ask. A walk of a tree (`git status`, `find`) asks each path
    /// once, and keeping every answer cost it more than the answers.
    stat_seen: Box<[u64]>,
    /// The same for opens that change nothing, by (absolute path, flags).
    open_cache: FastMap<(Vec<u8>, i32), Result<Opened, Errno>>,
    /// Directory streams handed out (their addresses), owned by the platform layer.
    pub dirs: FastSet<usize>,
    cwd: Vec<u8>,
    /// Real paths under the root that bypass the view (see [`env::PASSTHROUGH`]).
    passthrough: Vec<Vec<u8>>,
    cred: Cred,
    umask: u32,
    /// `NAME=value` lines a child needs to keep the shim (see [`env`]).
    pub child_env: Vec<(Vec<u8>, Vec<u8>)>,
    /// A supervisor serves the run behind the shim ([`env::NET`]): `generation` is then the
    /// number of changes the supervisor has made, and `served` counts the calls the shim
    /// answered.
    net: bool,
    served: Option<SharedCounter>,
    /// The link farm of a supervisor serving the view without mounts ([`env::FARM`]).
    farm: Option<Vec<u8>>,
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

fn open_log(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).append(true).open(p)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A path the view does not serve: the kernel gets it as the program gave it when it is
/// absolute, else made absolute, since the kernel's cwd is not the program's while the
/// program's is in the view.
fn outside<T>(path: &[u8], abs: Vec<u8>) -> Act<T> {
    if path.first() == Some(&b'/') {
        Act::Real(None)
    } else {
        Act::Real(Some(abs))
    }
}

/// `dir/name`, for absolute `dir`.
fn join_abs(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// `p` with "." and ".." applied lexically.
fn lexical(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(p.len());
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Absolute `p` without "." components and empty ones ("//").
fn without_dots(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for c in p.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Could the address `a` point into the process's memory? Not when it lies in the
/// never-mapped first page or above the highest user address. A program may pass such a
/// pointer on purpose (pjdfstest's EFAULT cases pass `usize::MAX`): the kernel answers
/// EFAULT, where reading it here would crash the program. A pointer to unmapped memory in
/// between is not caught (telling it would cost a system call on every path call).
pub fn may_be_mapped(a: usize) -> bool {
    #[cfg(target_arch = "aarch64")]
    // The top byte may carry a tag; no user address has the bits below it set.
    const BEYOND_USER: usize = 0x00f0_0000_0000_0000;
    #[cfg(not(target_arch = "aarch64"))]
    // Above the user half of the address space, with five-level page tables too.
    const BEYOND_USER: usize = !0x00ff_ffff_ffff_ffff;
    a >= 4096 && a & BEYOND_USER == 0
}

/// The cwd a process starts with. The parent hands its own on (`env::CWD`), but a child
/// may have moved between fork and exec by a call no hook sees (the chdir system call, as
/// Go does; posix_spawn's chdir action, as Rust does): then the kernel's cwd is the right
/// one. With a supervisor behind the shim the kernel's cwd always is the program's (the
/// view's directories exist for the kernel, or stand in the farm). Under the shim alone the
/// kernel's cwd is the run's empty directory exactly while the program's is in the view
/// (the shim's chdir into the view moves it there), so the parent's word is taken only
/// there.
fn start_cwd(cfg: &env::Config) -> Vec<u8> {
    let kernel = std::env::current_dir()
        .ok()
        .map(|p| p.into_os_string().into_vec());
    let in_view = !cfg.net && same_dir(Path::new("."), &cfg.run.join(env::EMPTY));
    let cwd = if in_view {
        cfg.cwd.clone().or(kernel)
    } else {
        kernel.or_else(|| cfg.cwd.clone())
    };
    cwd.unwrap_or_else(|| b"/".to_vec())
}

/// Are `a` and `b` the same directory (device and inode)?
fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// A blob's name under the store's blob directory, NUL-terminated: `ab/cdef...` (the
/// first two hex digits of its hash name the subdirectory, as `Store::blob_path` lays it out).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn blob_name(h: &vrift_common::hash::Hash) -> [u8; 66] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 64];
    for (i, b) in h.0.iter().enumerate() {
        hex[2 * i] = HEX[usize::from(b >> 4)];
        hex[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    let mut out = [0u8; 66];
    out[..2].copy_from_slice(&hex[..2]);
    out[2] = b'/';
    out[3..65].copy_from_slice(&hex[2..]);
    out
}

/// Open `path` (no creation flags), which is longer than the kernel takes in one argument
/// (the farm's path of a deep view entry, under a supervisor without mounts): through its
/// directory's descriptor ([`vrift_common::longpath::Short`]), the open itself marked.
#[cfg(target_os = "linux")]
fn open_long(path: &[u8], flags: i32) -> Result<i32, i32> {
    let short = vrift_common::longpath::Short::of(Path::new(std::ffi::OsStr::from_bytes(path)))
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let c = std::ffi::CString::new(short.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    sys::openat_marked(&c, flags, 0)
}

/// What an xattr call names: a path (and whether a final symlink is followed: getxattr,
/// not lgetxattr), or a descriptor (fgetxattr and the other f* calls).
#[derive(Clone, Copy, Debug)]
pub enum XattrTarget<'a> {
    Path(&'a [u8], bool),
    Fd(i32),
}

/// `/proc/self/fd/N/REST` or `/dev/fd/N/REST` (REST may be empty): N and REST.
fn fd_path_with_rest(p: &[u8]) -> Option<(i32, &[u8])> {
    let n = p
        .strip_prefix(b"/proc/self/fd/")
        .or_else(|| p.strip_prefix(b"/dev/fd/"))?;
    let (num, rest) = match n.iter().position(|&b| b == b'/') {
        Some(i) => (&n[..i], &n[i + 1..]),
        None => (n, &[][..]),
    };
    if num.is_empty() || !num.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(num).ok()?.parse().ok()?, rest))
}

/// Is `h` the hash of no bytes?
fn is_empty_blob(h: &vrift_common::hash::Hash) -> bool {
    static EMPTY: std::sync::OnceLock<vrift_common::hash::Hash> = std::sync::OnceLock::new();
    *h == *EMPTY.get_or_init(|| vrift_common::hash::Hash::of(b""))
}

/// `/proc/self/fd/N` or `/dev/fd/N`: the descriptor N.
fn fd_path(p: &[u8]) -> Option<i32> {
    let n = p
        .strip_prefix(b"/proc/self/fd/")
        .or_else(|| p.strip_prefix(b"/dev/fd/"))?;
    std::str::from_utf8(n).ok()?.parse().ok()
}

impl Shim {
    /// Is `abs` in the store? The run's program may read the store's blobs (they back the
    /// view) but never change them: without the read-only mount the other projections
    /// make, the shim refuses every change there with EROFS.
    fn in_store(&self, abs: &[u8]) -> bool {
        let store = self.store.as_os_str().as_bytes();
        let p = lexical(abs);
        p == store || (p.starts_with(store) && p.get(store.len()) == Some(&b'/'))
    }

    /// `act` for a change, unless it would reach the store (see [`Shim::in_store`]), or
    /// link a descriptor of the view (whose file is a blob) by its `/proc/self/fd` name.
    fn guard_change<T>(&self, given: &[u8], act: Act<T>) -> Act<T> {
        self.guard_change_of(given, act, false)
    }

    /// [`Shim::guard_change`]; for a `mkdir` (`exists_is_eexist`), a path that exists gets
    /// EEXIST, as from a read-only mount (`create_dir_all` of the store's own directories,
    /// by a vrift run inside the run, relies on it).
    fn guard_change_of<T>(&self, given: &[u8], act: Act<T>, exists_is_eexist: bool) -> Act<T> {
        if exists_is_eexist {
            let target = match &act {
                Act::Real(Some(p)) => Some(p.as_slice()),
                Act::Real(None) if given.first() == Some(&b'/') => Some(given),
                _ => None,
            };
            if let Some(t) = target.filter(|t| self.in_store(t)) {
                if std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(t)).is_ok() {
                    return Act::Done(Err(Errno(libc::EEXIST)));
                }
            }
        }
        self.guard_change_inner(given, act)
    }

    fn guard_change_inner<T>(&self, given: &[u8], act: Act<T>) -> Act<T> {
        let refused = match &act {
            Act::Real(Some(p)) => self.in_store(p),
            Act::Real(None) => given.first() == Some(&b'/') && self.in_store(given),
            Act::RealBoth(a, b) => {
                self.in_store(a)
                    || self.in_store(b)
                    || fd_path(a).is_some_and(|fd| self.fds.contains_key(&fd))
            }
            Act::Done(_) => false,
        };
        if refused {
            Act::Done(Err(Errno(libc::EROFS)))
        } else {
            act
        }
    }

    /// chown, lchown, fchownat on a path: a change of the view's entry, judged by the state
    /// machine as the kernel judges it (`View::chown`), logged like every change, so the
    /// run's manifest and the write-back carry the new owner. `uid`/`gid` as the call
    /// passed them (`u32::MAX`: unchanged).
    pub fn chown(
        &mut self,
        dirfd: Option<i32>,
        path: &[u8],
        uid: u32,
        gid: u32,
        follow: bool,
    ) -> Act<()> {
        self.change_path(dirfd, path, |path| Op::Chown {
            path,
            uid,
            gid,
            follow,
        })
    }

    /// fchown on a descriptor: as [`Shim::chown`] on the path a view descriptor was opened
    /// at; `Real` for any other descriptor.
    pub fn fchown(&mut self, fd: i32, uid: u32, gid: u32) -> Act<()> {
        self.change_fd(fd, |path| Op::Chown {
            path,
            uid,
            gid,
            follow: false,
        })
    }

    // ---- extended attributes ---------------------------------------------------------------

    /// The absolute path an xattr call names and whether a final symlink is followed;
    /// `None` when the view cannot tell (a descriptor it did not open). A path
    /// `/proc/self/fd/N/REST` (or `/dev/fd/N/REST`) of a view directory's descriptor N is
    /// REST under that directory, as the kernel would resolve it (tar names the files it
    /// sets xattrs on so).
    fn xattr_path(&self, target: XattrTarget<'_>) -> Option<(Vec<u8>, bool)> {
        match target {
            XattrTarget::Fd(fd) => {
                let info = self.fds.get(&fd)?;
                Some((self.view.abs_path(&info.rel), false))
            }
            XattrTarget::Path(path, follow) => {
                if let Some((fd, rest)) = fd_path_with_rest(path) {
                    if let Some(info) = self.fds.get(&fd) {
                        let base = self.view.abs_path(&info.rel);
                        let abs = if rest.is_empty() {
                            base
                        } else {
                            join_abs(&base, rest)
                        };
                        // The descriptor itself is the object when nothing follows it.
                        return Some((abs, follow && !rest.is_empty()));
                    }
                }
                Some((self.abs(None, path)?, follow))
            }
        }
    }

    /// A read of the view's xattrs: `read` on the path, or `Real` outside the view.
    fn xattr_read(
        &mut self,
        target: XattrTarget<'_>,
        read: impl FnOnce(&View<Index>, &Caller, &[u8], bool) -> Result<Routed<Vec<u8>>, Errno>,
    ) -> Act<Vec<u8>> {
        if self.aside() {
            return Act::Real(None);
        }
        let Some((abs, follow)) = self.xattr_path(target) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return match target {
                XattrTarget::Path(path, _) => outside(path, abs),
                XattrTarget::Fd(_) => Act::Real(None),
            };
        }
        self.catch_up();
        let r = read(&self.view, &self.caller(), &abs, follow);
        let act = Act::from_routed(r, Ok);
        if matches!(act, Act::Done(_)) {
            self.count_served();
        }
        act
    }

    /// getxattr, lgetxattr, fgetxattr: the value of `name` on a view entry (the view's
    /// rules: `View::getxattr`).
    pub fn getxattr(&mut self, target: XattrTarget<'_>, name: &[u8]) -> Act<Vec<u8>> {
        self.xattr_read(target, |v, c, abs, follow| v.getxattr(c, abs, name, follow))
    }

    /// listxattr, llistxattr, flistxattr: the entry's names, each followed by a NUL.
    pub fn listxattr(&mut self, target: XattrTarget<'_>) -> Act<Vec<u8>> {
        self.xattr_read(target, |v, c, abs, follow| v.listxattr(c, abs, follow))
    }

    /// A change of the view's xattrs (`make` gives the record for the absolute path and
    /// whether to follow a final symlink); a change outside the view goes to the kernel,
    /// unless it reaches the store.
    fn xattr_change(
        &mut self,
        target: XattrTarget<'_>,
        make: impl FnOnce(&mut Shim, Vec<u8>, bool) -> Result<Op, Errno>,
    ) -> Act<()> {
        if self.net {
            return Act::Real(None); // the supervisor makes every change
        }
        let Some((abs, follow)) = self.xattr_path(target) else {
            return Act::Real(None);
        };
        let given: &[u8] = match target {
            XattrTarget::Path(path, _) => path,
            XattrTarget::Fd(_) => b"",
        };
        if !self.may_enter(&abs) {
            let act = match target {
                XattrTarget::Path(path, _) => outside(path, abs),
                XattrTarget::Fd(_) => Act::Real(None),
            };
            return self.guard_change(given, act);
        }
        let op = match make(self, abs, follow) {
            Ok(op) => op,
            Err(e) => return Act::Done(Err(e)),
        };
        let act = Act::from_routed(self.change(op), |_| Ok(()));
        self.guard_change(given, act)
    }

    /// setxattr, lsetxattr, fsetxattr on a view entry: a logged change (`View::setxattr`).
    /// An access ACL that says no more than a mode (`sed -i` and `cp -p` set the mode of
    /// what they write so) is the chmod it stands for, as the kernel makes it.
    pub fn setxattr(
        &mut self,
        target: XattrTarget<'_>,
        name: &[u8],
        value: &[u8],
        flags: u32,
    ) -> Act<()> {
        self.xattr_change(target, |s, path, follow| {
            // The kernel's order: the flags, the name, the value's size, then the path.
            if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
                return Err(Errno::EINVAL);
            }
            if name.is_empty() || name.len() > XATTR_NAME_MAX {
                return Err(Errno::ERANGE);
            }
            if value.len() > XATTR_SIZE_MAX {
                return Err(Errno::E2BIG);
            }
            if name == acl::ACCESS_ACL {
                if let Some(perm) = acl::equivalent_mode(value) {
                    s.catch_up();
                    let st = match s.view.stat(&s.caller(), &path, follow)? {
                        Routed::View(st) => st,
                        _ => return Err(Errno::ENOENT),
                    };
                    return Ok(Op::Chmod {
                        path,
                        mode: (st.mode & 0o7000) | perm,
                        follow,
                    });
                }
            }
            Ok(Op::SetXattr {
                path,
                name: name.to_vec(),
                value: value.to_vec(),
                flags,
                follow,
            })
        })
    }

    /// removexattr, lremovexattr, fremovexattr on a view entry: a logged change
    /// (`View::removexattr`).
    pub fn removexattr(&mut self, target: XattrTarget<'_>, name: &[u8]) -> Act<()> {
        self.xattr_change(target, |_, path, follow| {
            Ok(Op::RemoveXattr {
                path,
                name: name.to_vec(),
                follow,
            })
        })
    }

    /// Set up from the environment vrift gave the program; `Ok(None)` when it gave none
    /// (the library was loaded outside a run: every call passes through).
    pub fn from_env() -> Result<Option<Shim>, String> {
        match env::Config::read()? {
            Some(mut cfg) => {
                cfg.cwd = Some(start_cwd(&cfg));
                Shim::new(&cfg).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Set up from `cfg`: map the index, open the run's log and generation, read the log.
    pub fn new(cfg: &env::Config) -> Result<Shim, String> {
        // Descriptors the parent opened in the view and this process still has open (those
        // closed on exec are gone), told apart before the shim opens files of its own, which
        // may take the numbers of those that are gone.
        let inherited: Vec<(i32, FdInfo)> = cfg
            .fds
            .iter()
            .filter(|(fd, _, _)| sys::is_open(*fd))
            .map(|(fd, dir, rel)| {
                (
                    *fd,
                    FdInfo {
                        rel: rel.clone(),
                        dir: *dir,
                    },
                )
            })
            .collect();
        let index = Index::open(&cfg.index).map_err(|e| e.to_string())?;
        let owner = Owner {
            uid: cfg.owner.0,
            gid: cfg.owner.1,
        };
        // The names of each of the index's hard-link groups are one inode in the view (one
        // link count, a write or chmod through one name seen through the others), as the
        // supervisor makes its view and the launcher its replay: the same records then give
        // every process, and the run's result, the same view.
        let groups: Vec<Vec<Vec<u8>>> = index
            .link_group_paths()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|g| g.into_iter().map(<[u8]>::to_vec).collect())
            .collect();
        let mut view = View::new(&cfg.root, owner, vec![index])
            .map_err(|e| e.to_string())?
            .with_dev(cfg.dev);
        for g in &groups {
            let names: Vec<&[u8]> = g.iter().map(Vec::as_slice).collect();
            view.share_link_group(&names);
        }
        let log_path = cfg.run.join(env::LOG);
        // With a supervisor the run directory is read-only to the program (it lies in the
        // store) and the shim only reads the generation the supervisor publishes.
        let log = if cfg.net {
            File::open(&log_path)
        } else {
            open_log(&log_path)
        }
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let gen_path = cfg.run.join(env::GENERATION);
        let gen_file = std::fs::OpenOptions::new()
            .read(true)
            .write(!cfg.net)
            .open(&gen_path)
            .map_err(|e| format!("{}: {e}", gen_path.display()))?;
        let generation = if cfg.net {
            SharedCounter::open_read_only(&gen_file)
        } else {
            SharedCounter::open(&gen_file)
        }
        .map_err(|e| format!("{}: {e}", gen_path.display()))?;
        // Counting is for the run's summary only: no counter, no count.
        let served = cfg.served.as_ref().filter(|_| cfg.net).and_then(|p| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .ok()?;
            SharedCounter::open(&f).ok()
        });
        let (uid, gid, groups) = sys::ids();
        let cwd = match cfg.cwd.clone() {
            Some(c) => c,
            None => std::env::current_dir()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .unwrap_or_else(|_| b"/".to_vec()),
        };
        let mut shim = Shim {
            root: view.root().to_vec(),
            view,
            run: cfg.run.clone(),
            store: cfg.store.clone(),
            log,
            log_path,
            log_pid: std::process::id(),
            log_read: 0,
            generation,
            fds: FastMap::default(),
            stat_cache: FastMap::default(),
            stat_seen: vec![0; STAT_SEEN_SLOTS].into_boxed_slice(),
            open_cache: FastMap::default(),
            dirs: FastSet::default(),
            cwd,
            passthrough: cfg.passthrough.clone(),
            cred: Cred {
                uid,
                gid,
                groups,
                privileged: uid == 0,
            },
            umask: sys::read_umask(),
            child_env: cfg.child_env.clone(),
            net: cfg.net,
            served,
            farm: cfg.farm.clone().filter(|_| cfg.net),
        };
        shim.fds.extend(inherited);
        let cwd = std::mem::take(&mut shim.cwd);
        shim.cwd = shim.unfarm(cwd);
        shim.count_fds();
        shim.catch_up();
        Ok(shim)
    }

    // ---- paths -----------------------------------------------------------------------------

    /// The absolute path a call names (`dirfd` as for the *at calls, `None` for AT_FDCWD).
    /// `None` when it cannot be told without the kernel (relative to a real directory fd
    /// outside the view): such paths are outside the view. A real directory's descriptor
    /// whose path lies in the view ([`Shim::real_dir_in_view`]) stands for the view's.
    pub fn abs(&self, dirfd: Option<i32>, path: &[u8]) -> Option<Vec<u8>> {
        // Too long for the kernel: it says so itself (the view takes absolute paths of any
        // length, made from a deep cwd).
        if path.len() >= vrift_common::vfs::PATH_MAX {
            return None;
        }
        if path.first() == Some(&b'/') {
            return Some(path.to_vec());
        }
        let joined = |base: &[u8]| {
            if path.is_empty() {
                base.to_vec()
            } else {
                join_abs(base, path)
            }
        };
        match dirfd {
            None => Some(joined(&self.cwd)),
            Some(fd) => match self.fds.get(&fd) {
                Some(info) => Some(joined(&self.view.abs_path(&info.rel))),
                None => Some(joined(&self.real_dir_in_view(fd)?)),
            },
        }
    }

    /// Under the shim alone, the path of a descriptor the shim did not open when it names
    /// a place in the view: a real directory of the project opened by a call no hook saw
    /// or relative to a real directory outside the view (rsync 3.4 and later walk a
    /// destination from "/" with `openat(O_PATH)` one name at a time). The view's root is
    /// the project's directory on disk, so what the kernel would find there is the view's.
    /// One readlink of `/proc/self/fd/N`, paid only by calls relative to such descriptors.
    /// With a supervisor behind the shim, the kernel's descriptors are its (`None`).
    fn real_dir_in_view(&self, fd: i32) -> Option<Vec<u8>> {
        if self.net || fd < 0 {
            return None;
        }
        let base = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        let base = base.as_os_str().as_bytes();
        // A socket, a pipe, a deleted directory, or the store (the run's own files).
        if base.first() != Some(&b'/') || base.ends_with(b" (deleted)") || self.in_store(base) {
            return None;
        }
        let under = base.starts_with(&self.root)
            && (base.len() == self.root.len()
                || base[self.root.len()] == b'/'
                || self.root == b"/");
        (under && self.may_enter(base)).then(|| base.to_vec())
    }

    /// [`Shim::abs`], also for a descriptor the view did not open (a real directory): its
    /// path as the kernel names it. For two-path calls, where one side may be in the view
    /// and the other a real directory (`mv` opens its target directory with O_PATH).
    fn abs_any(&self, dirfd: Option<i32>, path: &[u8]) -> Option<Vec<u8>> {
        if path.len() >= vrift_common::vfs::PATH_MAX {
            return None;
        }
        if let Some(p) = self.abs(dirfd, path) {
            return Some(p);
        }
        let fd = dirfd?;
        let base = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        let base = base.as_os_str().as_bytes();
        if base.first() != Some(&b'/') {
            return None; // a socket, a pipe, a deleted directory
        }
        Some(if path.is_empty() {
            base.to_vec()
        } else {
            join_abs(base, path)
        })
    }

    /// Could `abs` lead into the view? (A lexical test: paths with "." or ".." components or
    /// "//" go to the resolver.)
    pub fn may_enter(&self, abs: &[u8]) -> bool {
        let under =
            |dir: &[u8]| abs.starts_with(dir) && (abs.len() == dir.len() || abs[dir.len()] == b'/');
        // One pass: does the path have "." or ".." components or "//"?
        let odd = abs.windows(2).any(|w| w == b"//" || w == b"/.");
        if !self.passthrough.is_empty() {
            // Pass-through paths are judged without "." components and doubled slashes,
            // which change nothing ("./__pycache__/x.pyc" is in `__pycache__`); ".." may
            // cross a symlink, so it is left to the resolver.
            let plain = if odd {
                std::borrow::Cow::Owned(without_dots(abs))
            } else {
                std::borrow::Cow::Borrowed(abs)
            };
            let through = |dir: &[u8]| {
                plain.starts_with(dir) && (plain.len() == dir.len() || plain[dir.len()] == b'/')
            };
            if self.passthrough.iter().any(|p| through(p)) {
                return false;
            }
        }
        self.root == b"/" || under(&self.root) || odd
    }

    /// Bring this process's view up to date with the changes other processes logged.
    fn catch_up(&mut self) {
        if self.net {
            return; // the supervisor keeps the changes; see `aside`
        }
        let gen = self.generation.load();
        if gen <= self.log_read {
            return;
        }
        let mut buf = vec![0u8; (gen - self.log_read) as usize];
        if self.log.read_exact_at(&mut buf, self.log_read).is_err() {
            return;
        }
        match runlog::decode_all(&buf, self.log_read) {
            Ok(records) => {
                self.forget_answers();
                runlog::replay(&mut self.view, &records)
            }
            Err(e) => env::warn(&format!("{}: {e}", self.run.join(env::LOG).display())),
        }
        self.log_read = gen;
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            cred: &self.cred,
            cwd: &self.cwd,
            umask: self.umask,
            now_ns: 0,
        }
    }

    fn private(&self, id: u64) -> PathBuf {
        self.run.join(env::WRITES).join(id.to_string())
    }

    fn blob(&self, h: &vrift_common::hash::Hash) -> PathBuf {
        let hex = h.to_hex();
        self.store.join("blobs").join(&hex[..2]).join(&hex[2..])
    }

    /// Open the blob `h` (read-only: `flags` carry no creation flags) by its short name under
    /// the store's blob directory, kept open (see [`crate::state::BLOBS_DIR`]); by its whole
    /// path when that directory cannot be used.
    #[cfg(target_os = "linux")]
    fn open_blob(&self, h: &vrift_common::hash::Hash, flags: i32) -> Result<i32, Errno> {
        use std::sync::atomic::Ordering;
        let name = blob_name(h);
        let name = std::ffi::CStr::from_bytes_with_nul(&name).expect("one NUL, at the end");
        let mut dir = crate::state::BLOBS_DIR.load(Ordering::Acquire);
        if dir < 0 {
            let p = self.store.join("blobs");
            if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) {
                if let Ok(fd) =
                    sys::openat_marked(&c, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
                {
                    crate::state::BLOBS_DIR.store(fd, Ordering::Release);
                    dir = fd;
                }
            }
        }
        if dir >= 0 {
            match sys::openat_marked_in(dir, name, flags) {
                Ok(fd) => return Ok(fd),
                // The number is no longer the shim's directory (closed by the program in a way
                // no hook saw, e.g. close_range): forget it, never close it.
                Err(libc::EBADF) | Err(libc::ENOTDIR) => {
                    let _ = crate::state::BLOBS_DIR.compare_exchange(
                        dir,
                        -1,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                Err(_) => {}
            }
        }
        self.open_real(&self.blob(h), flags, 0)
    }

    #[cfg(not(target_os = "linux"))]
    fn open_blob(&self, h: &vrift_common::hash::Hash, flags: i32) -> Result<i32, Errno> {
        self.open_real(&self.blob(h), flags, 0)
    }

    /// Open what a file's content is: its blob, or its private copy. The empty blob, which
    /// a file made by mknod in the run is and the store may not hold yet (the launcher
    /// puts it there at the end), is `/dev/null` until then: read, it ends at once.
    fn open_content(&self, c: &Content, flags: i32, mode: u32) -> Result<i32, Errno> {
        match c {
            Content::Blob(h) => {
                let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
                match self.open_blob(h, flags) {
                    Err(Errno(libc::ENOENT)) if is_empty_blob(h) => {
                        self.open_real(Path::new("/dev/null"), flags, 0)
                    }
                    r => r,
                }
            }
            Content::Pending(id) => self.open_real(&self.private(id.0), flags, mode),
        }
    }

    fn content_path(&self, c: &Content) -> PathBuf {
        match c {
            Content::Blob(h) => self.blob(h),
            Content::Pending(id) => self.private(id.0),
        }
    }

    // ---- reading -----------------------------------------------------------------------------

    /// stat, lstat, fstatat, statx on a path.
    pub fn stat(&mut self, dirfd: Option<i32>, path: &[u8], follow: bool) -> Act<Stat> {
        if self.aside() {
            return Act::Real(None);
        }
        let act = self.stat_view(dirfd, path, follow);
        if matches!(act, Act::Done(_)) {
            self.count_served();
        }
        act
    }

    fn stat_view(&mut self, dirfd: Option<i32>, path: &[u8], follow: bool) -> Act<Stat> {
        let Some(abs) = self.abs(dirfd, path) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return outside(path, abs);
        }
        self.catch_up();
        let key = (abs, follow);
        if let Some(r) = self.stat_cache.get(&key) {
            return Act::Done(r.clone());
        }
        let r = self.view.stat(&self.caller(), &key.0, follow);
        // Answers that depend only on the view are kept until it changes; a file being
        // written (its size is its private copy's) and paths sent out are asked each time.
        let kept = match &r {
            Ok(Routed::View(st)) if st.pending.is_none() => Some(Ok(st.clone())),
            Err(e) => Some(Err(*e)),
            Ok(_) => None,
        };
        if let Some(v) = kept.filter(|_| self.asked_before(&key)) {
            if self.stat_cache.len() >= STAT_CACHE_MAX {
                self.stat_cache.clear();
            }
            self.stat_cache.insert(key, v);
        }
        Act::from_routed(r, |st| Ok(self.live(st)))
    }

    /// Was `key` asked before (and its answer not kept)? Else it is noted as asked now. Two
    /// keys sharing a slot push each other out: an answer then waits for a later ask.
    fn asked_before(&mut self, key: &(Vec<u8>, bool)) -> bool {
        use std::hash::BuildHasher;
        let h = self.stat_cache.hasher().hash_one(key) | 1;
        let slot = &mut self.stat_seen[(h >> 7) as usize % STAT_SEEN_SLOTS];
        if *slot == h {
            return true;
        }
        *slot = h;
        false
    }

    /// The view is about to change: no kept answer holds any more.
    fn forget_answers(&mut self) {
        self.stat_cache.clear();
        self.open_cache.clear();
    }

    /// A pending file's size and times are its private copy's.
    fn live(&self, mut st: Stat) -> Stat {
        if let Some(id) = st.pending {
            if let Ok(m) = std::fs::metadata(self.private(id.0)) {
                use std::os::unix::fs::MetadataExt;
                st.size = m.size();
                st.blocks = m.blocks();
                st.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
                st.ctime_ns = st.mtime_ns;
            }
        }
        st
    }

    /// fstat on a descriptor the view handed out (`Real` for any other).
    pub fn fstat(&mut self, fd: i32) -> Act<Stat> {
        let act = self.fstat_view(fd);
        if matches!(act, Act::Done(_)) {
            self.count_served();
        }
        act
    }

    fn fstat_view(&mut self, fd: i32) -> Act<Stat> {
        let Some(info) = self.fds.get(&fd).cloned() else {
            return Act::Real(None);
        };
        self.catch_up();
        match self.view.stat_rel(&info.rel) {
            Ok(st) => Act::Done(Ok(self.live(st))),
            // Renamed or removed since it was opened: the real file answers.
            Err(_) => Act::Real(None),
        }
    }

    pub fn access(&mut self, dirfd: Option<i32>, path: &[u8], mode: u32, follow: bool) -> Act<()> {
        if self.aside() {
            return Act::Real(None);
        }
        let act = self.access_view(dirfd, path, mode, follow);
        if matches!(act, Act::Done(_)) {
            self.count_served();
        }
        act
    }

    fn access_view(&mut self, dirfd: Option<i32>, path: &[u8], mode: u32, follow: bool) -> Act<()> {
        let Some(abs) = self.abs(dirfd, path) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return outside(path, abs);
        }
        self.catch_up();
        Act::from_routed(self.view.access(&self.caller(), &abs, mode, follow), Ok)
    }

    pub fn readlink(&mut self, dirfd: Option<i32>, path: &[u8]) -> Act<Vec<u8>> {
        if self.aside() {
            return Act::Real(None);
        }
        let act = self.readlink_view(dirfd, path);
        if matches!(act, Act::Done(_)) {
            self.count_served();
        }
        act
    }

    fn readlink_view(&mut self, dirfd: Option<i32>, path: &[u8]) -> Act<Vec<u8>> {
        let Some(abs) = self.abs(dirfd, path) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return outside(path, abs);
        }
        self.catch_up();
        Act::from_routed(self.view.readlink(&self.caller(), &abs), Ok)
    }

    /// realpath(3): the canonical absolute path.
    pub fn realpath(&mut self, path: &[u8]) -> Act<Vec<u8>> {
        if self.aside() {
            return Act::Real(None);
        }
        let Some(abs) = self.abs(None, path) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return outside(path, abs);
        }
        self.catch_up();
        match self.view.resolve_as(&self.cred, &abs, &self.cwd, true) {
            Err(e) => Act::Done(Err(e)),
            Ok(Resolved::Outside(p)) => Act::Real(Some(p)),
            Ok(Resolved::View { entry: None, .. }) => Act::Done(Err(Errno::ENOENT)),
            Ok(Resolved::View { rel, .. }) => Act::Done(Ok(self.view.abs_path(&rel))),
        }
    }

    // ---- descriptors ---------------------------------------------------------------------------

    /// With a supervisor behind the shim: has the view changed since the run started? The
    /// supervisor made the change (the shim leaves every change to it) and keeps the view's
    /// state from then on, so the shim steps aside and every call reaches the supervisor;
    /// only the descriptors the shim opened keep their answers.
    fn aside(&self) -> bool {
        self.net && self.generation.load() != 0
    }

    /// With a supervisor behind the shim, may a read call the shim passes to the kernel
    /// carry the marker (skip the supervisor)? Only while the shim serves (the view is
    /// unchanged), and only when the shim itself judged the path outside the view: an
    /// absolute path, one relative to the cwd (the kernel's, in this mode), or to a
    /// directory the shim opened. A path relative to another descriptor may be relative to
    /// a directory of the view the kernel opened, and goes to the supervisor.
    pub fn marks(&self, dirfd: Option<i32>, path: &[u8]) -> bool {
        self.net
            && !self.aside()
            && (path.first() == Some(&b'/') || dirfd.is_none_or(|fd| self.fds.contains_key(&fd)))
    }

    /// [`Shim::marks`] for an open: never for one that changes the view (the supervisor
    /// carries out every change).
    pub fn marks_open(&self, dirfd: Option<i32>, path: &[u8], flags: i32) -> bool {
        self.marks(dirfd, path) && !View::<Index>::open_changes_view(OpenFlags::from_raw(flags))
    }

    /// Count one call the shim answered (with a supervisor behind it).
    pub fn count_served(&self) {
        if let Some(c) = &self.served {
            c.add_one();
        }
    }

    #[cfg(target_os = "linux")]
    fn open_real(&self, path: &Path, flags: i32, mode: u32) -> Result<i32, Errno> {
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() >= libc::PATH_MAX as usize {
            return open_long(bytes, flags).map_err(Errno);
        }
        let c = std::ffi::CString::new(bytes).map_err(|_| Errno(libc::EINVAL))?;
        sys::openat_marked(&c, flags, mode).map_err(Errno)
    }

    #[cfg(not(target_os = "linux"))]
    fn open_real(&self, path: &Path, flags: i32, mode: u32) -> Result<i32, Errno> {
        let acc = flags & libc::O_ACCMODE;
        let mut o = std::fs::OpenOptions::new();
        o.read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
            .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
            .custom_flags(flags & !(libc::O_ACCMODE | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC))
            .mode(mode);
        #[cfg(target_os = "linux")]
        if flags & libc::O_PATH != 0 {
            o.read(true);
        }
        o.open(path)
            .map(std::os::fd::IntoRawFd::into_raw_fd)
            .map_err(|e| errno_of(&e))
    }

    /// Without mounts, the farm's object standing for the view entry at `rel`.
    fn farm_path(&self, rel: &[u8]) -> Option<PathBuf> {
        let farm = self.farm.as_ref()?;
        let mut p = farm.clone();
        if !rel.is_empty() {
            p.push(b'/');
            p.extend_from_slice(rel);
        }
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(&p)))
    }

    /// A path the kernel reports (its cwd, a descriptor's) as the view names it: a farm
    /// path stands for the view path.
    fn unfarm(&self, p: Vec<u8>) -> Vec<u8> {
        match &self.farm {
            Some(farm) => match p.strip_prefix(farm.as_slice()) {
                Some(rest) if rest.is_empty() || rest[0] == b'/' => {
                    if rest.is_empty() {
                        self.root.clone()
                    } else if self.root == b"/" {
                        rest.to_vec()
                    } else {
                        [&self.root[..], rest].concat()
                    }
                }
                _ => p,
            },
            None => p,
        }
    }

    /// The real directory every view directory fd is opened on.
    fn empty_dir(&self) -> PathBuf {
        self.run.join(env::EMPTY)
    }

    /// open, openat, creat, fopen: a descriptor on the blob, the private copy, or (for a
    /// directory) the run's empty directory, remembered as the view path it was opened at.
    pub fn open(&mut self, dirfd: Option<i32>, path: &[u8], flags: i32, mode: u32) -> Act<i32> {
        if self.aside() {
            return Act::Real(None);
        }
        if self.net && View::<Index>::open_changes_view(OpenFlags::from_raw(flags)) {
            return Act::Real(None); // the supervisor makes every change
        }
        let act = self.open_view(dirfd, path, flags, mode);
        if matches!(act, Act::Done(_)) {
            self.count_served();
        }
        act
    }

    fn open_view(&mut self, dirfd: Option<i32>, path: &[u8], flags: i32, mode: u32) -> Act<i32> {
        let Some(abs) = self.abs(dirfd, path) else {
            return Act::Real(None);
        };
        let of = OpenFlags::from_raw(flags);
        let changes = View::<Index>::open_changes_view(of);
        if !self.may_enter(&abs) {
            let act = outside(path, abs);
            return if changes {
                self.guard_change(path, act)
            } else {
                act
            };
        }
        if !changes {
            self.catch_up();
            // The flags the view's answer depends on (not O_CLOEXEC, O_NONBLOCK...).
            let key = (
                abs,
                flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY),
            );
            let r = match self.open_cache.get(&key) {
                Some(r) => r.clone().map(Routed::View),
                None => {
                    let r = self.view.open_read(&self.caller(), &key.0, of);
                    let kept = match &r {
                        Ok(Routed::View(o @ (Opened::Dir { .. } | Opened::Path { .. })))
                        | Ok(Routed::View(
                            o @ Opened::Read {
                                content: Content::Blob(_),
                                ..
                            },
                        )) => Some(Ok(o.clone())),
                        Err(e) => Some(Err(*e)),
                        _ => None,
                    };
                    if let Some(v) = kept {
                        if self.open_cache.len() >= STAT_CACHE_MAX {
                            self.open_cache.clear();
                        }
                        self.open_cache.insert(key, v);
                    }
                    r
                }
            };
            return match r {
                Err(e) => Act::Done(Err(e)),
                Ok(Routed::Outside(p)) => Act::Real(Some(p)),
                Ok(Routed::OutsideBoth(..)) => Act::Real(None),
                Ok(Routed::View(o)) => Act::Done(self.deliver(o, flags)),
            };
        }
        let op = Op::Open {
            path: abs,
            flags,
            mode,
        };
        match self.change(op) {
            Err(e) => Act::Done(Err(e)),
            Ok(Routed::Outside(p)) => self.guard_change(path, Act::Real(Some(p))),
            Ok(Routed::OutsideBoth(..)) => Act::Real(None),
            Ok(Routed::View(Done::Opened(o))) => Act::Done(self.deliver(o, flags)),
            Ok(Routed::View(_)) => Act::Done(Err(Errno(libc::EIO))),
        }
    }

    fn deliver(&mut self, o: Opened, flags: i32) -> Result<i32, Errno> {
        let keep = flags & (libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_APPEND);
        let (fd, rel, dir) = match o {
            Opened::Read { rel, content } => (
                self.open_content(&content, libc::O_RDONLY | keep, 0)?,
                rel,
                false,
            ),
            Opened::Write { rel, id, .. } => {
                // The private copy was prepared when the change was made.
                let p = self.private(id.0);
                (self.open_real(&p, flags, PRIVATE_MODE)?, rel, false)
            }
            Opened::Dir { rel } => {
                // With a supervisor, the view's directories exist (its farm is mounted at the
                // view's root): a descriptor on the real one stays right when the shim
                // steps aside.
                let p = if let Some(farm) = self.farm_path(&rel) {
                    farm
                } else if self.net {
                    PathBuf::from(std::ffi::OsStr::from_bytes(&self.view.abs_path(&rel)))
                } else {
                    self.empty_dir()
                };
                let fd = self.open_real(&p, libc::O_RDONLY | libc::O_DIRECTORY | keep, 0)?;
                (fd, rel, true)
            }
            Opened::Path { rel, entry } => {
                let fd = match entry.content() {
                    Some(c) => self.open_content(&c, flags, 0)?,
                    None => {
                        let p = self.farm_path(&rel).unwrap_or_else(|| self.empty_dir());
                        self.open_real(&p, flags, 0)?
                    }
                };
                (fd, rel, entry.is_dir())
            }
            Opened::Fifo { .. } => return Err(Errno(libc::ENXIO)),
        };
        self.fds.insert(fd, FdInfo { rel, dir });
        self.count_fds();
        Ok(fd)
    }

    pub fn fd_info(&self, fd: i32) -> Option<&FdInfo> {
        self.fds.get(&fd)
    }

    pub fn closed(&mut self, fd: i32) {
        self.fds.remove(&fd);
        self.count_fds();
    }

    /// Every descriptor from `first` to `last` (both included) is closed.
    pub fn closed_range(&mut self, first: u32, last: u32) {
        self.fds
            .retain(|&fd, _| fd < 0 || (fd as u32) < first || (fd as u32) > last);
        self.count_fds();
    }

    fn count_fds(&self) {
        crate::state::VIEW_FDS.store(self.fds.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// `new` is now a copy of `old` (dup, dup2, dup3, F_DUPFD).
    pub fn duped(&mut self, old: i32, new: i32) {
        match self.fds.get(&old).cloned() {
            Some(i) => {
                self.fds.insert(new, i);
            }
            None => {
                self.fds.remove(&new);
            }
        }
        self.count_fds();
    }

    // ---- directories -----------------------------------------------------------------------

    /// opendir(3), or fdopendir(3) of a view directory fd: the listing, taken now.
    pub fn opendir(&mut self, path: &[u8]) -> Act<DirStream> {
        match self.open(
            None,
            path,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        ) {
            Act::Done(Ok(fd)) => match self.fdopendir(fd) {
                Some(Ok(s)) => Act::Done(Ok(s)),
                Some(Err(e)) => {
                    self.closed(fd);
                    sys::close(fd);
                    Act::Done(Err(e))
                }
                None => Act::Done(Err(Errno::ENOTDIR)),
            },
            Act::Done(Err(e)) => Act::Done(Err(e)),
            Act::Real(p) => Act::Real(p),
            Act::RealBoth(a, b) => Act::RealBoth(a, b),
        }
    }

    /// `None` when `fd` is not a view directory.
    pub fn fdopendir(&mut self, fd: i32) -> Option<Result<DirStream, Errno>> {
        let info = self.fds.get(&fd)?.clone();
        if !info.dir {
            return Some(Err(Errno::ENOTDIR));
        }
        self.catch_up();
        Some(self.view.list_dir(&info.rel).map(|mut entries| {
            self.list_passthrough(&info.rel, &mut entries);
            DirStream {
                fd,
                entries,
                pos: 0,
            }
        }))
    }

    /// The pass-through paths directly in the view directory `rel` (files the filters left
    /// out, such as `*.log`, which the disk serves) are listed in it as the disk has them,
    /// as a stat or open of them reaches the disk: a listing shows what a program can open.
    fn list_passthrough(&self, rel: &[u8], entries: &mut Vec<DirEntry>) {
        if self.passthrough.is_empty() {
            return;
        }
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            join_abs(&self.root, rel)
        };
        let prefix_len = if dir.last() == Some(&b'/') {
            dir.len()
        } else {
            dir.len() + 1
        };
        for p in &self.passthrough {
            if p.len() <= prefix_len || !p.starts_with(&dir) || p[prefix_len - 1] != b'/' {
                continue;
            }
            let name = &p[prefix_len..];
            if name.contains(&b'/') || entries.iter().any(|e| e.name == name) {
                continue;
            }
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let Ok(m) = std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(p)) else {
                continue; // gone from the disk: not listed, as a stat finds nothing
            };
            let t = m.file_type();
            let kind = if t.is_dir() {
                FileType::Dir
            } else if t.is_symlink() {
                FileType::Symlink
            } else if t.is_fifo() {
                FileType::Fifo
            } else if t.is_char_device() {
                FileType::Char
            } else if t.is_block_device() {
                FileType::Block
            } else if t.is_socket() {
                FileType::Socket
            } else {
                FileType::File
            };
            entries.push(DirEntry {
                name: name.to_vec(),
                ino: m.ino(),
                kind,
            });
        }
    }

    // ---- cwd -------------------------------------------------------------------------------

    pub fn getcwd(&self) -> &[u8] {
        &self.cwd
    }

    /// chdir(2): into a view directory, the cwd is this process's alone (the kernel's stays
    /// where it was); elsewhere the real call runs and `set_real_cwd` records the result.
    pub fn chdir(&mut self, path: &[u8]) -> Act<()> {
        if self.farm.is_some() {
            return self.chdir_into_farm(path);
        }
        if self.net {
            return Act::Real(None);
        }
        let Some(abs) = self.abs(None, path) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return Act::Real(Some(abs));
        }
        self.catch_up();
        match self.view.chdir(&self.caller(), &abs) {
            Err(e) => Act::Done(Err(e)),
            Ok(Routed::View(rel)) => {
                self.cwd = self.view.abs_path(&rel);
                self.kernel_cwd_to_empty();
                Act::Done(Ok(()))
            }
            Ok(Routed::Outside(p)) => Act::Real(Some(p)),
            Ok(Routed::OutsideBoth(..)) => Act::Real(None),
        }
    }

    /// The program's cwd is now in the view: the kernel's goes to the run's empty
    /// directory, which tells a child started without the shim's exec hook that its
    /// parent's cwd is its own (see [`start_cwd`]).
    fn kernel_cwd_to_empty(&self) {
        if std::env::set_current_dir(self.empty_dir()).is_err() {
            env::warn("cannot enter the run's empty directory");
        }
    }

    pub fn fchdir(&mut self, fd: i32) -> Act<()> {
        if self.net {
            return Act::Real(None);
        }
        let Some(info) = self.fds.get(&fd) else {
            return Act::Real(None);
        };
        if !info.dir {
            return Act::Done(Err(Errno::ENOTDIR));
        }
        self.cwd = self.view.abs_path(&info.rel.clone());
        self.kernel_cwd_to_empty();
        Act::Done(Ok(()))
    }

    /// chdir without mounts: the kernel cannot enter a view path, so the supervisor opens
    /// what the path names (for a view directory, the farm's) and the kernel's cwd becomes
    /// that descriptor's directory; the cwd is named back as the view path.
    #[cfg(target_os = "linux")]
    fn chdir_into_farm(&mut self, path: &[u8]) -> Act<()> {
        let Ok(c) = std::ffi::CString::new(path) else {
            return Act::Done(Err(Errno(libc::EINVAL)));
        };
        let fd = match sys::open_unmarked(&c, libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) => return Act::Done(Err(Errno(e))),
        };
        let r = sys::fchdir_raw(fd);
        sys::close(fd);
        match r {
            Ok(()) => {
                self.set_real_cwd();
                Act::Done(Ok(()))
            }
            Err(e) => Act::Done(Err(Errno(e))),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn chdir_into_farm(&mut self, _path: &[u8]) -> Act<()> {
        Act::Real(None)
    }

    /// After a real chdir succeeded.
    pub fn set_real_cwd(&mut self) {
        if let Ok(p) = std::env::current_dir() {
            self.cwd = self.unfarm(p.as_os_str().as_bytes().to_vec());
        }
    }

    pub fn set_umask(&mut self, m: u32) {
        self.umask = m & 0o777;
    }

    // ---- changes -------------------------------------------------------------------------------

    /// Make one change: under the log's lock, catch up, run the state machine, carry out what
    /// it asks (prepare a private copy), append the record and publish the new generation.
    pub fn change(&mut self, op: Op) -> Result<Routed<Done>, Errno> {
        let pid = std::process::id();
        if pid != self.log_pid {
            self.log = open_log(&self.log_path).map_err(|e| errno_of(&e))?;
            self.log_pid = pid;
        }
        if self.log.lock_exclusive().is_err() {
            return Err(Errno(libc::EIO));
        }
        let r = self.change_locked(op);
        let _ = fs2::FileExt::unlock(&self.log);
        r
    }

    fn change_locked(&mut self, op: Op) -> Result<Routed<Done>, Errno> {
        self.catch_up();
        let rec = Record {
            cred: self.cred.clone(),
            umask: self.umask,
            now_ns: now_ns(),
            op,
        };
        self.forget_answers();
        let r = runlog::apply(&mut self.view, &rec)?;
        if let Routed::View(done) = &r {
            match done {
                Done::Opened(Opened::Write { id, seed, rel, .. }) => {
                    self.prepare(id.0, *seed, None)?;
                    self.copy_keeps_mtime(rel, id.0, *seed);
                }
                Done::Truncate(t) => {
                    self.prepare(t.id.0, t.seed, Some(t.len))?;
                    self.copy_keeps_mtime(&t.rel, t.id.0, t.seed);
                }
                _ => {}
            }
            if let Op::Utimens { path, follow, .. } = &rec.op {
                self.sync_private_mtime(path, *follow);
            }
            let bytes = runlog::encode(&rec);
            if (&self.log).write_all(&bytes).is_err() {
                return Err(Errno(libc::EIO));
            }
            self.log_read += bytes.len() as u64;
            self.generation.store(self.log_read);
        }
        Ok(r)
    }

    /// A file being written reports its private copy's mtime, and the run saves that: after
    /// utimensat on it, the copy takes the entry's time.
    fn sync_private_mtime(&self, path: &[u8], follow: bool) {
        if let Ok(Routed::View(st)) = self.view.stat(&self.caller(), path, follow) {
            if let Some(id) = st.pending {
                let t = std::time::UNIX_EPOCH
                    + std::time::Duration::from_nanos(st.mtime_ns.max(0) as u64);
                if let Ok(f) = std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.private(id.0))
                {
                    let _ = f.set_modified(t);
                }
            }
        }
    }

    /// A private copy just made of a blob takes the entry's mtime, as the supervisor's
    /// does: a file opened for writing and not written keeps its time (a pending file
    /// shows its copy's, and the run saves that).
    fn copy_keeps_mtime(&self, rel: &[u8], id: u64, seed: Seed) {
        if !matches!(seed, Seed::CopyOf(_)) {
            return;
        }
        if let Ok(st) = self.view.stat_rel(rel) {
            let t =
                std::time::UNIX_EPOCH + std::time::Duration::from_nanos(st.mtime_ns.max(0) as u64);
            if let Ok(f) = std::fs::OpenOptions::new()
                .write(true)
                .open(self.private(id))
            {
                let _ = f.set_modified(t);
            }
        }
    }

    /// The private copy `id`, as `seed` says, then cut to `len`.
    fn prepare(&self, id: u64, seed: Seed, len: Option<u64>) -> Result<(), Errno> {
        let p = self.private(id);
        let io = |e: std::io::Error| errno_of(&e);
        match seed {
            Seed::CopyOf(h) => {
                let tmp = self.run.join(env::WRITES).join(format!(".{id}.tmp"));
                match std::fs::copy(self.blob(&h), &tmp) {
                    // The empty blob, which the store may not hold yet (see `open_content`).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_empty_blob(&h) => {
                        std::fs::File::create(&tmp).map_err(io)?;
                    }
                    r => {
                        r.map_err(io)?;
                    }
                }
                std::fs::set_permissions(
                    &tmp,
                    std::os::unix::fs::PermissionsExt::from_mode(PRIVATE_MODE),
                )
                .map_err(io)?;
                std::fs::rename(&tmp, &p).map_err(io)?;
            }
            Seed::Empty => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(PRIVATE_MODE)
                    .open(&p)
                    .map_err(io)?;
            }
            Seed::Existing { truncate } => {
                if truncate {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(&p)
                        .map_err(io)?;
                }
            }
        }
        if let Some(len) = len {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(io)?;
            f.set_len(len).map_err(io)?;
        }
        Ok(())
    }

    /// A one-path change (mkdir, unlink, chmod...): `Real` when the path is plainly outside.
    pub fn change_path(
        &mut self,
        dirfd: Option<i32>,
        path: &[u8],
        make: impl FnOnce(Vec<u8>) -> Op,
    ) -> Act<()> {
        if self.net {
            return Act::Real(None);
        }
        let Some(abs) = self.abs(dirfd, path) else {
            return Act::Real(None);
        };
        let op = make(abs.clone());
        let mkdir = matches!(op, Op::Mkdir { .. });
        if !self.may_enter(&abs) {
            return self.guard_change_of(path, outside(path, abs), mkdir);
        }
        let act = Act::from_routed(self.change(op), |_| Ok(()));
        self.guard_change_of(path, act, mkdir)
    }

    /// A two-path change (rename, link).
    pub fn change_pair(
        &mut self,
        old: (Option<i32>, &[u8]),
        new: (Option<i32>, &[u8]),
        make: impl FnOnce(Vec<u8>, Vec<u8>) -> Op,
    ) -> Act<()> {
        if self.net {
            return Act::Real(None);
        }
        let (Some(a), Some(b)) = (self.abs_any(old.0, old.1), self.abs_any(new.0, new.1)) else {
            return Act::Real(None);
        };
        if !self.may_enter(&a) && !self.may_enter(&b) {
            return self.guard_change(b"", Act::RealBoth(a, b));
        }
        match self.change(make(a, b)) {
            Err(e) => Act::Done(Err(e)),
            Ok(Routed::View(_)) => Act::Done(Ok(())),
            // Both outside (through a view symlink, or relative to the program's cwd): the
            // kernel gets both absolute. One in and one out cannot be a single rename.
            Ok(Routed::OutsideBoth(a, b)) => self.guard_change(b"", Act::RealBoth(a, b)),
            Ok(Routed::Outside(_)) => Act::Done(Err(Errno::EXDEV)),
        }
    }

    /// fchmod / futimens on a view descriptor: the same change on the path it was opened at.
    pub fn change_fd(&mut self, fd: i32, make: impl FnOnce(Vec<u8>) -> Op) -> Act<()> {
        if self.net {
            return Act::Real(None);
        }
        let Some(info) = self.fds.get(&fd) else {
            return Act::Real(None);
        };
        let abs = self.view.abs_path(&info.rel.clone());
        Act::from_routed(self.change(make(abs)), |_| Ok(()))
    }

    pub fn utimens_op(path: Vec<u8>, times: Option<[(i64, i64); 2]>, follow: bool) -> Op {
        let ts = |(sec, nsec): (i64, i64)| {
            if nsec == UTIME_NOW {
                TimeSpec::Now
            } else if nsec == UTIME_OMIT {
                TimeSpec::Omit
            } else {
                TimeSpec::Set(sec * 1_000_000_000 + nsec)
            }
        };
        let (atime, mtime) = match times {
            None => (TimeSpec::Now, TimeSpec::Now),
            Some([a, m]) => (ts(a), ts(m)),
        };
        Op::Utimens {
            path,
            atime,
            mtime,
            follow,
        }
    }

    // ---- exec ------------------------------------------------------------------------------

    /// execve / posix_spawn of `path`: the real file to run (the blob or the private copy).
    pub fn exec(&mut self, path: &[u8]) -> Act<Vec<u8>> {
        if self.aside() {
            return self.exec_aside(path);
        }
        let Some(abs) = self.abs(None, path) else {
            return Act::Real(None);
        };
        if !self.may_enter(&abs) {
            return outside(path, abs);
        }
        self.catch_up();
        let r = self.view.exec(&self.caller(), &abs);
        Act::from_routed(r, |Exec { content, .. }| {
            Ok(self.content_path(&content).as_os_str().as_bytes().to_vec())
        })
    }

    /// exec once the shim has stepped aside: with mounts the kernel runs the view's path
    /// itself; without them the supervisor says which file the path names (a descriptor
    /// of the farm's file), and that file runs.
    #[cfg(target_os = "linux")]
    fn exec_aside(&self, path: &[u8]) -> Act<Vec<u8>> {
        if self.farm.is_none() {
            return Act::Real(None);
        }
        let Ok(c) = std::ffi::CString::new(path) else {
            return Act::Real(None);
        };
        let Ok(fd) = sys::open_unmarked(&c, 0) else {
            return Act::Real(None); // the kernel's exec says why
        };
        let target = sys::fd_target_marked(fd);
        sys::close(fd);
        match target {
            Some(t) if self.unfarm(t.clone()) != t => Act::Real(Some(t)),
            _ => Act::Real(None),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn exec_aside(&self, _path: &[u8]) -> Act<Vec<u8>> {
        Act::Real(None)
    }

    /// The environment a child gets: the program's, with the shim's variables put back (a
    /// program may clear or rewrite them) and the current cwd handed on.
    pub fn child_environment(&self, envp: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut out = env::merge_child_env(envp, &self.child_env, &self.cwd);
        if !self.fds.is_empty() {
            let mut line = format!("{}=", env::FDS).into_bytes();
            line.extend(env::encode_fds(
                self.fds
                    .iter()
                    .map(|(fd, i)| (*fd, i.dir, i.rel.as_slice())),
            ));
            out.push(line);
        }
        out
    }
}

/// Entries the stat cache holds before it starts again.
const STAT_CACHE_MAX: usize = 65_536;
/// Slots of [`Shim::stat_seen`] (32 KiB).
const STAT_SEEN_SLOTS: usize = 4096;

/// The real mode of every private copy: the run's user may read and write it, and execute
/// it (a program built in the view runs from its private copy; the view's mode is what
/// stat reports and what exec is checked against).
const PRIVATE_MODE: u32 = 0o700;

/// `UTIME_NOW` / `UTIME_OMIT`, the same values on Linux; macOS has its own.
pub const UTIME_NOW: i64 = libc::UTIME_NOW;
pub const UTIME_OMIT: i64 = libc::UTIME_OMIT;

#[cfg(test)]
mod tests;
