//! Paths the kernel would refuse for their length, reached through a descriptor of their
//! directory.
//!
//! A path in a view may be up to PATH_MAX (4096 bytes, with its NUL) long relative to where
//! the program stands, and its directory may lie deeper still; vrift names the same object
//! under another directory (the link farm, the project, an upper directory), so its own
//! path to it can be longer than any one system call takes. [`Short::of`] gives a path the
//! kernel accepts for any such path: the path itself when it fits (no extra call), else
//! `/proc/self/fd/N/NAME`, where N is a descriptor of the directory holding NAME, opened a
//! run of components at a time (each run relative to the descriptor of the one before).
//! Every call that takes a path then works on it unchanged; the descriptor stays open as
//! long as the [`Short`] lives.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest path a system call takes, its terminating NUL included.
pub const PATH_MAX: usize = 4096;
/// The longest name of one directory entry.
pub const NAME_MAX: usize = 255;

/// How many bytes of a long path one open takes at a time: short enough that the
/// `/proc/self/fd/N/` in front of it still fits in PATH_MAX.
const CHUNK: usize = 3800;

/// A path the kernel accepts, naming what a possibly longer path names.
#[derive(Debug)]
pub struct Short {
    path: PathBuf,
    /// The directory `path` goes through, when the path was too long.
    _dir: Option<File>,
}

impl Short {
    /// `p` itself when it fits in PATH_MAX, else a path through its directory's descriptor.
    /// A symlink in `p`'s directories is followed, as the kernel would follow it in `p`.
    pub fn of(p: &Path) -> io::Result<Short> {
        if p.as_os_str().len() < PATH_MAX {
            return Ok(Short {
                path: p.to_path_buf(),
                _dir: None,
            });
        }
        Short::through_dir(p)
    }

    /// [`Short::of`] for a path already owned: no copy when it fits.
    pub fn of_owned(p: PathBuf) -> io::Result<Short> {
        if p.as_os_str().len() < PATH_MAX {
            return Ok(Short {
                path: p,
                _dir: None,
            });
        }
        Short::through_dir(&p)
    }

    fn through_dir(p: &Path) -> io::Result<Short> {
        let bytes = p.as_os_str().as_bytes();
        let trimmed = trim_trailing_slashes(bytes);
        let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(0) => (&trimmed[..1], &trimmed[1..]),
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b"."[..], trimmed),
        };
        if name.len() > NAME_MAX {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        let dir = open_dir(parent)?;
        let path = through(&dir, name);
        Ok(Short {
            path,
            _dir: Some(dir),
        })
    }

    /// `root` joined with the relative path `rel` (empty: `root` itself), as [`Short::of`].
    pub fn join(root: &Path, rel: &[u8]) -> io::Result<Short> {
        Short::of_owned(join(root, rel))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for Short {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Short {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// `root/rel`, or `root` for an empty `rel`.
pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

fn trim_trailing_slashes(mut b: &[u8]) -> &[u8] {
    while b.len() > 1 && b.ends_with(b"/") {
        b = &b[..b.len() - 1];
    }
    b
}

/// Where this process's descriptors are named as paths.
#[cfg(target_os = "linux")]
const FD_DIR: &str = "/proc/self/fd";
#[cfg(not(target_os = "linux"))]
const FD_DIR: &str = "/dev/fd";

/// Opening a directory only to name it (no read access needed where the system has it).
#[cfg(target_os = "linux")]
const NAME_ONLY: i32 = libc::O_PATH;
#[cfg(not(target_os = "linux"))]
const NAME_ONLY: i32 = 0;

/// `/proc/self/fd/N/rest`: `rest` relative to the open directory `dir`.
fn through(dir: &File, rest: &[u8]) -> PathBuf {
    let mut p = format!("{FD_DIR}/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(rest);
    PathBuf::from(OsStr::from_bytes(&p))
}

fn open_path_dir(p: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(NAME_ONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(p)
}

/// Open the directory `path` (of any length) a run of at most [`CHUNK`] bytes at a time.
fn open_dir(path: &[u8]) -> io::Result<File> {
    let mut dir: Option<File> = None;
    let mut rest = path;
    loop {
        let take = if rest.len() <= CHUNK {
            rest.len()
        } else {
            // The longest run of whole components that fits (a leading "/" stays in the
            // first run).
            match rest[..=CHUNK].iter().rposition(|&b| b == b'/') {
                Some(i) if i > 0 => i,
                _ => return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG)),
            }
        };
        let (run, tail) = rest.split_at(take);
        let next = match &dir {
            None => open_path_dir(Path::new(OsStr::from_bytes(run)))?,
            Some(d) => open_path_dir(&through(d, run))?,
        };
        dir = Some(next);
        rest = tail;
        while rest.first() == Some(&b'/') {
            rest = &rest[1..];
        }
        if rest.is_empty() {
            return Ok(dir.expect("opened at least once"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree under a temporary directory whose full path is longer than PATH_MAX.
    fn deep(root: &Path) -> (PathBuf, Vec<u8>) {
        let mut rel = Vec::new();
        let comp = "c".repeat(200);
        while root.as_os_str().len() + rel.len() < PATH_MAX + 300 {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(comp.as_bytes());
        }
        // Made a level at a time from the one before, as a program would.
        let mut dir = root.to_path_buf();
        for c in rel.split(|&b| b == b'/') {
            let s = Short::of(&dir.join(OsStr::from_bytes(c))).unwrap();
            std::fs::create_dir(&s).unwrap();
            dir.push(OsStr::from_bytes(c));
        }
        (dir, rel)
    }

    #[test]
    fn a_short_path_is_itself() {
        let s = Short::of(Path::new("/tmp/x")).unwrap();
        assert_eq!(s.path(), Path::new("/tmp/x"));
    }

    #[test]
    fn a_path_longer_than_path_max_is_reached() {
        let d = tempfile::tempdir().unwrap();
        let (dir, rel) = deep(d.path());
        assert!(dir.as_os_str().len() >= PATH_MAX);
        let name = "n".repeat(NAME_MAX);
        let file = Short::of(&dir.join(&name)).unwrap();
        assert!(file.as_os_str().len() < 40 + NAME_MAX, "{}", file.display());
        std::fs::write(&file, "deep").unwrap();
        let again = Short::join(d.path(), &[&rel[..], b"/", name.as_bytes()].concat()).unwrap();
        assert_eq!(std::fs::read_to_string(&again).unwrap(), "deep");
        // Renamed from one long path to another, through two descriptors.
        let other = Short::of(&dir.join("other")).unwrap();
        std::fs::rename(&again, &other).unwrap();
        assert!(std::fs::symlink_metadata(&*Short::of(&dir.join(&name)).unwrap()).is_err());
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "deep");
        // The directory itself, with a trailing slash.
        let mut with_slash = dir.as_os_str().as_bytes().to_vec();
        with_slash.push(b'/');
        let s = Short::of(Path::new(OsStr::from_bytes(&with_slash))).unwrap();
        assert!(std::fs::metadata(&s).unwrap().is_dir());
    }

    #[test]
    fn a_name_over_name_max_is_enametoolong() {
        let long = format!("/tmp/{}", "n".repeat(PATH_MAX));
        let err = Short::of(Path::new(&long)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    }
}
