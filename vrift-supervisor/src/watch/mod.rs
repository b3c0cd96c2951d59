//! `vrift watch`: keeping a project's manifest current between runs, so that a run of a
//! project nothing touched since the last one does not walk it.
//!
//! A run in a project refreshes the project's manifest first (`run::project`): an `lstat`
//! of every file, which in a 20,000-file project costs about what `git status` costs. A
//! watcher (one process per project and store, started by `vrift watch`) holds an inotify
//! watch on every directory the filters keep and counts the events that could change the
//! manifest. The protocol that makes skipping the walk safe:
//!
//! 1. Before it walks, a run asks the watcher for its [`Mark`]: the watcher first reads
//!    every event the kernel has queued (an event is queued by the system call that caused
//!    it, before that call returns), so the mark counts every change made before the
//!    question.
//! 2. The run walks and saves, beside its manifest, a [`record::Record`] of the mark.
//! 3. A later run asks again: the same watcher, the same count, and the record's manifest
//!    still the project's `vrift.manifest` mean nothing changed since the walk began, so
//!    the record's manifest, pass-through paths and origins are the walk's answer.
//!
//! A directory made after the watcher started is watched as soon as the watcher reads its
//! creation, before it answers any question: so every directory that exists when a walk
//! begins is either watched or was made after the mark, which that making moved on. What
//! inotify does not report (a write through a shared `mmap` whose file is not closed
//! afterwards, a write through a hard link from outside the project, other machines'
//! writes on a network file system) is not seen; ARCHITECTURE.md says so, and without a
//! watcher every run walks as before.

#[cfg(target_os = "linux")]
pub mod daemon;
pub mod record;
#[cfg(target_os = "linux")]
mod tracker;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrift_common::store::Store;

/// The first word of every answer, and the protocol's version after it.
const GREETING: &str = "vrift-watch 1";

/// How long a run waits for the watcher's answer before walking anyway.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a project's watcher keeps its socket, lock, log and the last refresh's record: in
/// the store (`watch/`), by a digest of the project's canonical path, so that a project
/// gets one watcher per store and nothing is written into the project.
pub struct Paths {
    dir: PathBuf,
    key: String,
}

impl Paths {
    pub fn of(store: &Store, canonical_root: &Path) -> Paths {
        let key = blake3::hash(canonical_root.as_os_str().as_bytes()).to_hex();
        Paths {
            dir: store.root().join("watch"),
            key: key.as_str()[..32].to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.key))
    }

    pub fn socket(&self) -> PathBuf {
        self.file("sock")
    }

    pub fn lock(&self) -> PathBuf {
        self.file("lock")
    }

    pub fn log(&self) -> PathBuf {
        self.file("log")
    }

    pub fn record(&self) -> PathBuf {
        self.file("refresh")
    }
}

/// A path a unix socket can be bound or reached at: `sun_path` holds 108 bytes, and a
/// store's path may be longer. A long one is reached through the directory's descriptor
/// (`/proc/self/fd/N/NAME`), which `dir_fd` keeps open meanwhile.
pub fn socket_address(path: &Path) -> std::io::Result<(PathBuf, Option<std::fs::File>)> {
    if path.as_os_str().len() < 100 {
        return Ok((path.to_path_buf(), None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((path.to_path_buf(), None));
    };
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    Ok((short, Some(d)))
}

/// Where the watcher's count of changes stood when it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Which watcher (a random number it drew when it started): a count means nothing to
    /// another watcher, or to this one restarted.
    pub instance: u64,
    pub events: u64,
}

/// The watcher's answer to `sync` or `status`.
#[derive(Debug)]
pub struct Answer {
    pub mark: Mark,
    /// It watches every kept directory; else why not (the run walks).
    pub trusted: Result<(), String>,
    pub watched: u64,
    pub pid: u32,
}

/// Ask the watcher of `paths` one question (`sync`, `status` or `stop`).
pub fn ask(paths: &Paths, question: &str) -> std::io::Result<Answer> {
    let (addr, _dir) = socket_address(&paths.socket())?;
    let mut s = UnixStream::connect(addr)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    s.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    s.write_all(format!("{question}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    parse_answer(&line).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the watcher answered {line:?}"),
        )
    })
}

/// `vrift-watch 1 INSTANCE EVENTS TRUSTED WATCHED PID [WHY NOT]`.
fn parse_answer(line: &str) -> Option<Answer> {
    let rest = line.trim_end_matches('\n').strip_prefix(GREETING)?;
    let mut it = rest.trim_start().splitn(6, ' ');
    let instance = u64::from_str_radix(it.next()?, 16).ok()?;
    let events = it.next()?.parse().ok()?;
    let trusted = it.next()?;
    let watched = it.next()?.parse().ok()?;
    let pid = it.next()?.parse().ok()?;
    let why = it.next().unwrap_or("").to_string();
    Some(Answer {
        mark: Mark { instance, events },
        trusted: match trusted {
            "1" => Ok(()),
            _ => Err(why),
        },
        watched,
        pid,
    })
}

pub fn format_answer(a: &Answer) -> String {
    let (t, why) = match &a.trusted {
        Ok(()) => ("1", ""),
        Err(w) => ("0", w.as_str()),
    };
    format!(
        "{GREETING} {:016x} {} {t} {} {} {}\n",
        a.mark.instance,
        a.mark.events,
        a.watched,
        a.pid,
        why.replace('\n', " ")
    )
}

/// The mark of the project's watcher, if one runs and vouches for every directory; `None`
/// otherwise (no watcher, or one that cannot see everything): the run walks.
pub fn mark(store: &Store, canonical_root: &Path) -> Option<Mark> {
    let paths = Paths::of(store, canonical_root);
    match ask(&paths, "sync") {
        Ok(Answer {
            mark,
            trusted: Ok(()),
            ..
        }) => Some(mark),
        Ok(Answer {
            trusted: Err(why), ..
        }) => {
            tracing::info!(
                "{}: the watcher cannot vouch for it ({why}): walking it",
                canonical_root.display()
            );
            None
        }
        Err(e) => {
            if !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) {
                tracing::warn!(
                    "{}: the project's watcher did not answer ({e}): walking it",
                    canonical_root.display()
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reads_back_as_it_was_written() {
        for trusted in [
            Ok(()),
            Err("the inotify watch limit is reached".to_string()),
        ] {
            let a = Answer {
                mark: Mark {
                    instance: 0xfeed_beef_0123_4567,
                    events: 42,
                },
                trusted,
                watched: 201,
                pid: 77,
            };
            let b = parse_answer(&format_answer(&a)).unwrap();
            assert_eq!(b.mark, a.mark);
            assert_eq!(b.trusted, a.trusted);
            assert_eq!((b.watched, b.pid), (201, 77));
        }
        assert!(parse_answer("vrift-watch 2 00 1 1 1 1\n").is_none());
        assert!(parse_answer("nonsense\n").is_none());
    }

    #[test]
    fn a_long_socket_path_is_reached_through_its_directory() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let path = deep.join("x.sock");
        let (addr, dir) = socket_address(&path).unwrap();
        assert!(dir.is_some() && addr.as_os_str().len() < 100);
        let l = std::os::unix::net::UnixListener::bind(&addr).unwrap();
        assert!(path.exists(), "bound in the long directory itself");
        let (addr2, _d2) = socket_address(&path).unwrap();
        UnixStream::connect(addr2).unwrap();
        l.accept().unwrap();
    }
}
