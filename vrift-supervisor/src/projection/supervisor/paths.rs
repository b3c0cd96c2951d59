//! Turning a system call's path arguments into an absolute path as the tracee sees it.
//!
//! The tracee's cwd and dirfds are read from /proc (`/proc/TID/cwd`, `/proc/TID/fd/N`); the
//! kernel reports them as paths in the tracee's mount namespace, i.e. view paths for
//! anything inside the view, because the view is bind-mounted at its own path there.

use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::sys::mem;

pub use crate::view::lexical::join;

const PATH_MAX: usize = 4096;

/// Read a path argument from the tracee's memory.
pub fn read_path(tid: u32, addr: u64) -> io::Result<Vec<u8>> {
    if addr == 0 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    let p = mem::read_cstring(tid, addr, PATH_MAX)?;
    // PATH_MAX counts the terminating NUL.
    if p.len() >= PATH_MAX {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(p)
}

fn readlink(p: String) -> io::Result<Vec<u8>> {
    match std::fs::read_link(&p) {
        Ok(t) => Ok(t.as_os_str().as_bytes().to_vec()),
        // The kernel names a directory in /proc only while its path fits in PATH_MAX; a
        // program may stand deeper (a relative path of up to PATH_MAX from there is valid).
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => long_dir_path(&p).map_err(|_| e),
        Err(e) => Err(e),
    }
}

/// The path of the directory the /proc link `link` leads to, when it is too long for the
/// kernel to name: from the directory up, the name of each level in its parent (its inode
/// in the parent's listing), until the kernel can name the ancestor.
fn long_dir_path(link: &str) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{DirEntryExt, MetadataExt, OpenOptionsExt};
    let open_dir = |p: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(p)
    };
    let mut cur = open_dir(link)?;
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    loop {
        let named = format!("/proc/self/fd/{}", cur.as_raw_fd());
        match std::fs::read_link(&named) {
            Ok(base) => {
                let mut out = base.into_os_string().into_vec();
                for n in names.iter().rev() {
                    out.push(b'/');
                    out.extend_from_slice(n.as_bytes());
                }
                return Ok(out);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {}
            Err(e) => return Err(e),
        }
        // Deeper than any path a program could hand over: give up.
        if names.len() > PATH_MAX {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        let me = cur.metadata()?;
        let parent = open_dir(&format!("{named}/.."))?;
        let listed = format!("/proc/self/fd/{}", parent.as_raw_fd());
        let name = std::fs::read_dir(&listed)?
            .filter_map(Result::ok)
            .filter(|e| e.ino() == me.ino())
            .map(|e| e.file_name())
            .find(|n| {
                std::fs::symlink_metadata(Path::new(&listed).join(n))
                    .is_ok_and(|m| m.dev() == me.dev() && m.ino() == me.ino())
            })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        names.push(name);
        cur = parent;
    }
}

/// The path under `root` of the tracee's open file `fd` (not a directory) whose path is
/// too long for the kernel to name: found by its device and inode among the entries of
/// `root`'s tree, each directory read through a descriptor (so depth is no limit). A search
/// of the whole tree, for the rare descriptor of a file deeper than PATH_MAX (under a view
/// served without mounts, the kernel names the farm's path, longer than the view's).
pub fn long_file_path(tid: u32, fd: i32, root: &Path) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{DirEntryExt, MetadataExt, OpenOptionsExt};
    let want = std::fs::metadata(format!("/proc/{tid}/fd/{fd}"))?;
    let open_dir = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p)
    };
    // Directories still to read: a descriptor, and the path below `root` it stands for.
    let mut todo = vec![(open_dir(root)?, Vec::<u8>::new())];
    while let Some((dir, rel)) = todo.pop() {
        let listed = format!("/proc/self/fd/{}", dir.as_raw_fd());
        for e in std::fs::read_dir(&listed)?.filter_map(Result::ok) {
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(e.file_name().as_bytes());
            let at = Path::new(&listed).join(e.file_name());
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            // Only a name the kernel could not give counts: the farm links identical
            // files to one blob, so a shorter name of the same inode may be another entry.
            let too_long = root.as_os_str().len() + 1 + child.len() >= PATH_MAX - 1;
            if too_long
                && e.ino() == want.ino()
                && std::fs::symlink_metadata(&at)
                    .is_ok_and(|m| m.dev() == want.dev() && m.ino() == want.ino())
            {
                let mut out = root.as_os_str().as_bytes().to_vec();
                out.push(b'/');
                out.extend_from_slice(&child);
                return Ok(out);
            }
            if is_dir {
                if let Ok(d) = open_dir(&at) {
                    todo.push((d, child));
                }
            }
        }
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// The directory a relative path starts from: the cwd for AT_FDCWD, else what `dirfd` names.
pub fn base_dir(tid: u32, dirfd: i32) -> io::Result<Vec<u8>> {
    if dirfd == libc::AT_FDCWD {
        readlink(format!("/proc/{tid}/cwd"))
    } else {
        fd_path(tid, dirfd)
    }
}

/// What an open file descriptor of the tracee refers to (EBADF when it has no such fd).
pub fn fd_path(tid: u32, fd: i32) -> io::Result<Vec<u8>> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    readlink(format!("/proc/{tid}/fd/{fd}")).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            io::Error::from_raw_os_error(libc::EBADF)
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cwd_and_fds() {
        let me = std::process::id();
        let cwd = base_dir(me, libc::AT_FDCWD).unwrap();
        assert_eq!(cwd, std::env::current_dir().unwrap().as_os_str().as_bytes());
        assert_eq!(
            fd_path(me, 9999).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn finds_a_file_deeper_than_path_max_by_its_inode() {
        use std::os::fd::AsRawFd;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("side")).unwrap();
        std::fs::write(d.path().join("side/other"), "o").unwrap();
        let mut rel = std::path::PathBuf::new();
        while d.path().as_os_str().len() + rel.as_os_str().len() < PATH_MAX + 200 {
            rel.push("d".repeat(200));
            let s = vrift_common::longpath::Short::of(&d.path().join(&rel)).unwrap();
            std::fs::create_dir(&s).unwrap();
        }
        let deep = d.path().join(&rel).join("f");
        let s = vrift_common::longpath::Short::of(&deep).unwrap();
        std::fs::write(&s, "deep").unwrap();
        let file = std::fs::File::open(&s).unwrap();
        let me = std::process::id();
        assert_eq!(
            fd_path(me, file.as_raw_fd()).unwrap_err().raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
        let got = long_file_path(me, file.as_raw_fd(), d.path()).unwrap();
        assert_eq!(got, deep.as_os_str().as_bytes());
        let near = std::fs::File::open(d.path().join("side/other")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(long_file_path(me, near.as_raw_fd(), elsewhere.path()).is_err());
    }

    #[test]
    fn names_a_directory_deeper_than_path_max() {
        use std::os::fd::AsRawFd;
        let d = tempfile::tempdir().unwrap();
        let mut rel = std::path::PathBuf::new();
        while d.path().as_os_str().len() + rel.as_os_str().len() < PATH_MAX + 200 {
            rel.push("d".repeat(200));
            let s = vrift_common::longpath::Short::of(&d.path().join(&rel)).unwrap();
            std::fs::create_dir(&s).unwrap();
        }
        let deep = d.path().join(&rel);
        let s = vrift_common::longpath::Short::of(&deep).unwrap();
        let dir = std::fs::File::open(&s).unwrap();
        let me = std::process::id();
        let got = fd_path(me, dir.as_raw_fd()).unwrap();
        assert_eq!(got, deep.as_os_str().as_bytes());
    }
}
