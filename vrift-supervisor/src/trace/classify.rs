//! The hit, miss, pass-through and denied classes of `vrift trace` where no supervisor sees
//! the calls (the overlay projection: the kernel serves them all). The eBPF programs send a
//! record per file call with its path argument and result (`vrift_ebpf_common::PathRecord`);
//! this module classifies each against the view as the supervisor would have:
//!
//! - a call on a path inside the view is a *hit* when it succeeds, a *miss* when it fails
//!   with ENOENT, and *denied* on any other error;
//! - a call on a path outside the view, or on a pass-through path (`.git/`, `target/`...),
//!   *passes through*.
//!
//! A relative path is resolved against the caller's working directory or the directory fd it
//! passed. Both are followed from the records themselves: a child starts with a copy of its
//! parent's (the fork record), chdir and fchdir move it, successful opens add fds, close
//! (recorded at entry, before another thread can reuse the number) drops them, and the dup
//! family copies them. What cannot be resolved (an fd vrift never saw opened: a pipe, a
//! socket, one inherited from outside) passes through, as the supervisor counts an fd that
//! is not a view path. Resolution is lexical, like the supervisor's decision of which paths
//! are the view's.

use std::collections::HashMap;

use vrift_ebpf_common::{arg_spec, path_kind, PathRecord, PATH_CAPTURE, PATH_UNREADABLE};

use super::syscall_names::syscall_number;
use crate::projection::supervisor::served::ServedStats;
use crate::projection::supervisor::Served;
use crate::view::lexical;

/// Where a call's path argument is, and what the call does to the caller's directory and fd
/// table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CallShape {
    /// The argument holding a directory fd the path is relative to (none: the cwd).
    dirfd: Option<usize>,
    /// The argument holding the path (none: the call is on the fd in `dirfd` itself).
    path: Option<usize>,
    effect: Effect,
    /// Counted in the report's classes (the supervisor's file calls); the rest are only
    /// followed for their effect.
    classified: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    None,
    /// A successful call returns a new fd for the path.
    Opens,
    /// A successful call makes the path the working directory.
    Chdir,
    /// A successful call makes the fd in argument 0 the working directory.
    Fchdir,
    /// The fd in argument 0 is closed (recorded at entry).
    Close,
    /// A successful call returns a copy of the fd in argument 0.
    Dup,
    /// fcntl: a copy of the fd in argument 0 when argument 1 is F_DUPFD(_CLOEXEC).
    Fcntl,
}

const fn shape(
    dirfd: Option<usize>,
    path: Option<usize>,
    effect: Effect,
    classified: bool,
) -> CallShape {
    CallShape {
        dirfd,
        path,
        effect,
        classified,
    }
}

/// The calls followed, by x86_64 name.
const SHAPES: &[(&str, CallShape)] = &[
    ("open", shape(None, Some(0), Effect::Opens, true)),
    ("openat", shape(Some(0), Some(1), Effect::Opens, true)),
    ("openat2", shape(Some(0), Some(1), Effect::Opens, true)),
    ("creat", shape(None, Some(0), Effect::Opens, true)),
    ("stat", shape(None, Some(0), Effect::None, true)),
    ("lstat", shape(None, Some(0), Effect::None, true)),
    ("fstat", shape(Some(0), None, Effect::None, true)),
    ("newfstatat", shape(Some(0), Some(1), Effect::None, true)),
    ("statx", shape(Some(0), Some(1), Effect::None, true)),
    ("access", shape(None, Some(0), Effect::None, true)),
    ("faccessat", shape(Some(0), Some(1), Effect::None, true)),
    ("faccessat2", shape(Some(0), Some(1), Effect::None, true)),
    ("execve", shape(None, Some(0), Effect::None, true)),
    ("execveat", shape(Some(0), Some(1), Effect::None, true)),
    ("mkdir", shape(None, Some(0), Effect::None, true)),
    ("mkdirat", shape(Some(0), Some(1), Effect::None, true)),
    ("rmdir", shape(None, Some(0), Effect::None, true)),
    ("unlink", shape(None, Some(0), Effect::None, true)),
    ("unlinkat", shape(Some(0), Some(1), Effect::None, true)),
    // The renames and links are classified by their first (source) path.
    ("rename", shape(None, Some(0), Effect::None, true)),
    ("renameat", shape(Some(0), Some(1), Effect::None, true)),
    ("renameat2", shape(Some(0), Some(1), Effect::None, true)),
    ("link", shape(None, Some(0), Effect::None, true)),
    ("linkat", shape(Some(0), Some(1), Effect::None, true)),
    // A symlink's target is only text; the link is made at the second path.
    ("symlink", shape(None, Some(1), Effect::None, true)),
    ("symlinkat", shape(Some(1), Some(2), Effect::None, true)),
    ("mknod", shape(None, Some(0), Effect::None, true)),
    ("mknodat", shape(Some(0), Some(1), Effect::None, true)),
    ("truncate", shape(None, Some(0), Effect::None, true)),
    ("chmod", shape(None, Some(0), Effect::None, true)),
    ("fchmod", shape(Some(0), None, Effect::None, true)),
    ("fchmodat", shape(Some(0), Some(1), Effect::None, true)),
    ("fchmodat2", shape(Some(0), Some(1), Effect::None, true)),
    ("chown", shape(None, Some(0), Effect::None, true)),
    ("lchown", shape(None, Some(0), Effect::None, true)),
    ("fchown", shape(Some(0), None, Effect::None, true)),
    ("fchownat", shape(Some(0), Some(1), Effect::None, true)),
    ("getxattr", shape(None, Some(0), Effect::None, true)),
    ("lgetxattr", shape(None, Some(0), Effect::None, true)),
    ("fgetxattr", shape(Some(0), None, Effect::None, true)),
    ("listxattr", shape(None, Some(0), Effect::None, true)),
    ("llistxattr", shape(None, Some(0), Effect::None, true)),
    ("flistxattr", shape(Some(0), None, Effect::None, true)),
    ("setxattr", shape(None, Some(0), Effect::None, true)),
    ("lsetxattr", shape(None, Some(0), Effect::None, true)),
    ("fsetxattr", shape(Some(0), None, Effect::None, true)),
    ("removexattr", shape(None, Some(0), Effect::None, true)),
    ("lremovexattr", shape(None, Some(0), Effect::None, true)),
    ("fremovexattr", shape(Some(0), None, Effect::None, true)),
    ("utime", shape(None, Some(0), Effect::None, true)),
    ("utimes", shape(None, Some(0), Effect::None, true)),
    ("futimesat", shape(Some(0), Some(1), Effect::None, true)),
    ("utimensat", shape(Some(0), Some(1), Effect::None, true)),
    ("chdir", shape(None, Some(0), Effect::Chdir, false)),
    ("fchdir", shape(None, None, Effect::Fchdir, false)),
    ("close", shape(None, None, Effect::Close, false)),
    ("dup", shape(None, None, Effect::Dup, false)),
    ("dup2", shape(None, None, Effect::Dup, false)),
    ("dup3", shape(None, None, Effect::Dup, false)),
    ("fcntl", shape(None, None, Effect::Fcntl, false)),
];

/// What the eBPF programs must record: `(syscall number, arg_spec)` for `ARG_SPECS`.
pub fn arg_specs() -> Vec<(u32, u32)> {
    SHAPES
        .iter()
        .filter_map(|&(name, shape)| {
            let nr = syscall_number(name)?;
            // An exec's path is gone with the old memory by the time it returns.
            let path_at_enter = name.starts_with("execve");
            Some((
                nr,
                arg_spec::new(
                    shape.path.map(|i| i as u32),
                    shape.effect == Effect::Close,
                    path_at_enter,
                ),
            ))
        })
        .collect()
}

/// The view as the traced programs see it: its root and the pass-through paths in it.
#[derive(Clone, Debug)]
pub struct ViewPaths {
    root: Vec<u8>,
    passthrough: Vec<Vec<u8>>,
}

impl ViewPaths {
    /// `root` absolute; `passthrough` relative to it.
    pub fn new(root: &[u8], passthrough: impl IntoIterator<Item = Vec<u8>>) -> ViewPaths {
        let root = lexical::normalize(root);
        ViewPaths {
            passthrough: passthrough
                .into_iter()
                .map(|p| lexical::join(&root, &p))
                .collect(),
            root,
        }
    }

    /// Whether the (normalized, absolute) path `abs` is served by the view.
    fn serves(&self, abs: &[u8]) -> bool {
        lexical::under_root(abs, &self.root).is_some()
            && !self
                .passthrough
                .iter()
                .any(|p| lexical::under_root(abs, p).is_some())
    }
}

/// One process's working directory and open fds, as far as the records tell.
#[derive(Clone, Debug, Default)]
struct Process {
    cwd: Option<Vec<u8>>,
    fds: HashMap<i64, Vec<u8>>,
}

/// Classifies the records of one traced run, in the order the ring buffer gave them.
pub struct Classifier {
    view: ViewPaths,
    shapes: HashMap<u32, CallShape>,
    processes: HashMap<u32, Process>,
    stats: ServedStats,
    unreadable: u64,
}

impl Classifier {
    /// For a run whose first process `root_pid` starts in directory `cwd`.
    pub fn new(view: ViewPaths, root_pid: u32, cwd: &[u8]) -> Classifier {
        let shapes = SHAPES
            .iter()
            .filter_map(|&(name, shape)| Some((syscall_number(name)?, shape)))
            .collect();
        let mut processes = HashMap::new();
        processes.insert(
            root_pid,
            Process {
                cwd: Some(lexical::normalize(cwd)),
                fds: HashMap::new(),
            },
        );
        Classifier {
            view,
            shapes,
            processes,
            stats: ServedStats::default(),
            unreadable: 0,
        }
    }

    /// Takes in one record.
    pub fn feed(&mut self, rec: &PathRecord) {
        if rec.kind == path_kind::FORK {
            let child = self.processes.get(&rec.pid).cloned().unwrap_or_default();
            self.processes.insert(rec.args[0] as u32, child);
            return;
        }
        let Some(&shape) = self.shapes.get(&rec.nr) else {
            return;
        };
        let process = self.processes.entry(rec.pid).or_default();
        let fd_arg = |i: usize| rec.args[i] as i32 as i64;
        let unreadable = rec.flags & PATH_UNREADABLE != 0;
        let target = match (shape.dirfd, shape.path) {
            (_, Some(_)) if unreadable => None,
            (dirfd, Some(p)) => {
                let path = &rec.path[..(rec.path_len as usize).min(PATH_CAPTURE)];
                let base = match dirfd.map(fd_arg) {
                    None | Some(AT_FDCWD) => process.cwd.as_ref(),
                    Some(fd) => process.fds.get(&fd),
                };
                if rec.args[p] == 0 || path.is_empty() {
                    // No path (utimensat's NULL) or an empty one (AT_EMPTY_PATH): the call is
                    // on the directory fd itself.
                    base.cloned()
                } else if path.first() == Some(&b'/') {
                    Some(lexical::normalize(path))
                } else {
                    base.map(|b| lexical::normalize(&lexical::join(b, path)))
                }
            }
            (Some(fd), None) => process.fds.get(&fd_arg(fd)).cloned(),
            (None, None) => None,
        };
        let ok = rec.ret >= 0;
        match shape.effect {
            Effect::None => {}
            Effect::Opens if ok => match &target {
                Some(t) => {
                    process.fds.insert(rec.ret, t.clone());
                }
                None => {
                    process.fds.remove(&rec.ret);
                }
            },
            Effect::Chdir if ok => process.cwd = target.clone(),
            Effect::Fchdir if ok => process.cwd = process.fds.get(&fd_arg(0)).cloned(),
            Effect::Close => {
                process.fds.remove(&fd_arg(0));
            }
            Effect::Dup if ok => copy_fd(process, fd_arg(0), rec.ret),
            Effect::Fcntl if ok && matches!(rec.args[1] as i32, F_DUPFD | F_DUPFD_CLOEXEC) => {
                copy_fd(process, fd_arg(0), rec.ret)
            }
            _ => {}
        }
        if !shape.classified {
            return;
        }
        if unreadable {
            // The kernel read the path, eBPF could not: the call is counted, in no class.
            self.unreadable += 1;
            return;
        }
        let served = match &target {
            Some(t) if self.view.serves(t) => match rec.ret {
                r if r >= 0 => Served::Hit,
                r if r == -(libc::ENOENT as i64) => Served::Miss,
                _ => Served::Denied,
            },
            _ => Served::Passthrough,
        };
        // Every call ran in the kernel: none was answered in its stead.
        self.stats.record(rec.nr as i32, served, true, 0, target);
    }

    /// The classes, per syscall and per path, and how many classified calls had a path
    /// eBPF could not read (in no class).
    pub fn finish(self) -> (ServedStats, u64) {
        (self.stats, self.unreadable)
    }
}

const AT_FDCWD: i64 = libc::AT_FDCWD as i64;
const F_DUPFD: i32 = libc::F_DUPFD;
const F_DUPFD_CLOEXEC: i32 = libc::F_DUPFD_CLOEXEC;

fn copy_fd(process: &mut Process, from: i64, to: i64) {
    match process.fds.get(&from).cloned() {
        Some(p) => {
            process.fds.insert(to, p);
        }
        None => {
            process.fds.remove(&to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_PID: u32 = 100;

    fn nr(name: &str) -> u32 {
        syscall_number(name).unwrap()
    }

    fn call(pid: u32, name: &str, args: [u64; 3], path: &[u8], ret: i64) -> PathRecord {
        let mut rec = PathRecord {
            pid,
            tid: pid,
            nr: nr(name),
            kind: path_kind::CALL,
            args,
            ret,
            path_len: path.len() as u32,
            flags: 0,
            path: [0; PATH_CAPTURE],
        };
        rec.path[..path.len()].copy_from_slice(path);
        rec
    }

    /// A call whose path is argument `p` (a non-null pointer) with `dirfd` in argument 0.
    fn at(pid: u32, name: &str, dirfd: i32, path: &[u8], ret: i64) -> PathRecord {
        call(pid, name, [dirfd as u32 as u64, 0x1000, 0], path, ret)
    }

    fn plain(pid: u32, name: &str, path: &[u8], ret: i64) -> PathRecord {
        call(pid, name, [0x1000, 0, 0], path, ret)
    }

    fn fork(parent: u32, child: u32) -> PathRecord {
        let mut rec = call(parent, "close", [child as u64, 0, 0], b"", 0);
        rec.kind = path_kind::FORK;
        rec.nr = 0;
        rec
    }

    fn classifier() -> Classifier {
        Classifier::new(
            ViewPaths::new(b"/proj", [b".git".to_vec(), b"target".to_vec()]),
            ROOT_PID,
            b"/proj",
        )
    }

    fn row(stats: &ServedStats, name: &str) -> (u64, u64, u64, u64) {
        let rows = stats.rows();
        let r = rows
            .iter()
            .find(|(n, _)| *n == nr(name))
            .map(|(_, r)| *r)
            .unwrap_or_default();
        (r.hit, r.miss, r.passthrough, r.denied)
    }

    const ENOENT: i64 = -(libc::ENOENT as i64);
    const EACCES: i64 = -(libc::EACCES as i64);

    #[test]
    fn view_paths_are_hits_or_misses_and_the_rest_passes_through() {
        let mut c = classifier();
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b"data/f1", 0));
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b"/proj/a", 0));
        c.feed(&at(
            ROOT_PID,
            "newfstatat",
            libc::AT_FDCWD,
            b"data/nope",
            ENOENT,
        ));
        c.feed(&at(
            ROOT_PID,
            "newfstatat",
            libc::AT_FDCWD,
            b"secret",
            EACCES,
        ));
        c.feed(&at(
            ROOT_PID,
            "newfstatat",
            libc::AT_FDCWD,
            b"/etc/passwd",
            0,
        ));
        c.feed(&at(
            ROOT_PID,
            "newfstatat",
            libc::AT_FDCWD,
            b"/etc/nope",
            ENOENT,
        ));
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b".git/HEAD", 0));
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b"target", 0));
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b"targets/x", 0));
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b"../proj/b", 0));
        c.feed(&at(ROOT_PID, "newfstatat", libc::AT_FDCWD, b"../projx", 0));
        let (stats, _) = c.finish();
        assert_eq!(row(&stats, "newfstatat"), (4, 1, 5, 1));
        let paths = stats.paths();
        assert_eq!(paths[&b"/proj/data/nope".to_vec()].misses, 1);
        assert_eq!(paths[&b"/proj/data/f1".to_vec()].calls, 1);
    }

    #[test]
    fn relative_paths_follow_chdir_and_fchdir() {
        let mut c = classifier();
        c.feed(&plain(ROOT_PID, "chdir", b"/tmp", 0));
        c.feed(&plain(ROOT_PID, "stat", b"x", 0)); // /tmp/x: outside
        c.feed(&plain(ROOT_PID, "chdir", b"/nowhere", ENOENT)); // failed: still /tmp
        c.feed(&plain(ROOT_PID, "stat", b"y", 0));
        c.feed(&at(ROOT_PID, "openat", libc::AT_FDCWD, b"/proj/src", 3));
        c.feed(&call(ROOT_PID, "fchdir", [3, 0, 0], b"", 0));
        c.feed(&plain(ROOT_PID, "stat", b"main.c", 0)); // /proj/src/main.c
        let (stats, _) = c.finish();
        assert_eq!(row(&stats, "stat"), (1, 0, 2, 0));
        assert_eq!(row(&stats, "openat"), (1, 0, 0, 0));
        assert!(stats.paths().contains_key(b"/proj/src/main.c".as_slice()));
    }

    #[test]
    fn directory_fds_are_followed_through_open_dup_and_close() {
        let mut c = classifier();
        c.feed(&at(ROOT_PID, "openat", libc::AT_FDCWD, b"src", 4));
        c.feed(&at(ROOT_PID, "newfstatat", 4, b"lib.rs", 0)); // /proj/src/lib.rs
        c.feed(&call(ROOT_PID, "dup", [4, 0, 0], b"", 7));
        c.feed(&call(
            ROOT_PID,
            "fcntl",
            [4, libc::F_DUPFD_CLOEXEC as u64, 0],
            b"",
            8,
        ));
        c.feed(&call(
            ROOT_PID,
            "fcntl",
            [4, libc::F_GETFL as u64, 0],
            b"",
            2,
        )); // not a dup
        c.feed(&at(ROOT_PID, "newfstatat", 7, b"a", 0));
        c.feed(&at(ROOT_PID, "newfstatat", 8, b"b", ENOENT));
        c.feed(&at(ROOT_PID, "newfstatat", 2, b"c", 0)); // fd 2 never opened: unknown
        c.feed(&call(ROOT_PID, "close", [4, 0, 0], b"", 0));
        c.feed(&at(ROOT_PID, "newfstatat", 4, b"d", 0)); // closed: unknown
        c.feed(&call(ROOT_PID, "fstat", [7, 0, 0], b"", 0)); // the fd itself
        c.feed(&call(ROOT_PID, "dup2", [9, 7, 0], b"", 7)); // fd 9 unknown: 7 forgets
        c.feed(&call(ROOT_PID, "fstat", [7, 0, 0], b"", 0));
        let (stats, _) = c.finish();
        assert_eq!(row(&stats, "newfstatat"), (2, 1, 2, 0));
        assert_eq!(row(&stats, "fstat"), (1, 0, 1, 0));
    }

    #[test]
    fn empty_or_null_paths_mean_the_directory_fd_itself() {
        let mut c = classifier();
        c.feed(&at(ROOT_PID, "openat", libc::AT_FDCWD, b"f", 5));
        c.feed(&at(ROOT_PID, "newfstatat", 5, b"", 0)); // AT_EMPTY_PATH
        c.feed(&call(ROOT_PID, "utimensat", [5, 0, 0], b"", 0)); // NULL path
        let (stats, _) = c.finish();
        assert_eq!(row(&stats, "newfstatat"), (1, 0, 0, 0));
        assert_eq!(row(&stats, "utimensat"), (1, 0, 0, 0));
    }

    #[test]
    fn children_start_with_their_parents_directory_and_fds_then_go_their_own_way() {
        let mut c = classifier();
        c.feed(&at(ROOT_PID, "openat", libc::AT_FDCWD, b"src", 4));
        c.feed(&fork(ROOT_PID, 200));
        c.feed(&plain(200, "chdir", b"/tmp", 0));
        c.feed(&plain(200, "stat", b"x", 0)); // the child: /tmp/x
        c.feed(&plain(ROOT_PID, "stat", b"x", 0)); // the parent: still /proj/x
        c.feed(&at(200, "newfstatat", 4, b"y", 0)); // inherited fd: /proj/src/y
        c.feed(&plain(300, "stat", b"x", 0)); // never forked in view: unknown cwd
        let (stats, _) = c.finish();
        assert_eq!(row(&stats, "stat"), (1, 0, 2, 0));
        assert_eq!(row(&stats, "newfstatat"), (1, 0, 0, 0));
    }

    #[test]
    fn a_path_ebpf_could_not_read_is_counted_in_no_class_and_forgets_the_fd() {
        let mut c = classifier();
        c.feed(&at(ROOT_PID, "openat", libc::AT_FDCWD, b"src", 4));
        let mut lost = at(ROOT_PID, "openat", libc::AT_FDCWD, b"", 4);
        lost.flags = PATH_UNREADABLE;
        c.feed(&lost);
        c.feed(&at(ROOT_PID, "newfstatat", 4, b"x", 0)); // fd 4 is no longer src
        let (stats, unreadable) = c.finish();
        assert_eq!(unreadable, 1);
        assert_eq!(row(&stats, "openat"), (1, 0, 0, 0));
        assert_eq!(row(&stats, "newfstatat"), (0, 0, 1, 0));
    }

    #[test]
    fn links_and_symlinks_are_classified_by_the_path_made_in_the_view() {
        let mut c = classifier();
        // symlinkat(target, newdirfd, linkpath): the target is text, the link is in the view.
        c.feed(&call(
            ROOT_PID,
            "symlinkat",
            [0x1000, libc::AT_FDCWD as u32 as u64, 0x2000],
            b"ln",
            0,
        ));
        c.feed(&call(
            ROOT_PID,
            "symlink",
            [0x1000, 0x2000, 0],
            b"/tmp/ln",
            0,
        ));
        let (stats, _) = c.finish();
        assert_eq!(row(&stats, "symlinkat"), (1, 0, 0, 0));
        assert_eq!(row(&stats, "symlink"), (0, 0, 1, 0));
    }

    #[test]
    fn every_followed_call_is_a_known_syscall_and_close_is_recorded_at_entry() {
        for &(name, ..) in SHAPES {
            assert!(syscall_number(name).is_some(), "{name}");
        }
        let specs: HashMap<u32, u32> = arg_specs().into_iter().collect();
        assert_eq!(specs.len(), SHAPES.len());
        assert!(specs[&nr("close")] & arg_spec::AT_ENTER != 0);
        assert!(specs[&nr("openat")] & arg_spec::AT_ENTER == 0);
        assert_eq!(arg_spec::path_arg(specs[&nr("openat")]), Some(1));
        assert_eq!(arg_spec::path_arg(specs[&nr("symlinkat")]), Some(2));
        assert_eq!(arg_spec::path_arg(specs[&nr("fstat")]), None);
    }

    #[test]
    fn every_supervisor_file_call_is_classified() {
        use crate::projection::supervisor::filter::FILE_CALLS;
        for name in FILE_CALLS {
            assert!(
                SHAPES.iter().any(|&(n, s)| n == *name && s.classified),
                "{name} has no shape"
            );
        }
    }
}
