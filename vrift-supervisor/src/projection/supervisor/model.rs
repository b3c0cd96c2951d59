//! The supervisor's model of the view: the run's [`ViewState`] over the link farm, with the
//! credentials of each notified thread read from /proc and cached.

use vrift_common::vfs::{Cred, OpenFlags, View};

use super::backend::FarmBackend;
use super::creds::CredCache;
use crate::view::state::{CallerStatus, ViewState, XattrRead};
pub use crate::view::state::{Outcome, Place, Undo};
use vrift_common::runlog::Op;

pub struct Model {
    pub state: ViewState<FarmBackend>,
    pub creds: CredCache,
    /// Set when the view is served without mounts (no namespaces here).
    pub no_mounts: Option<super::no_mounts::NoMounts>,
}

impl Model {
    pub fn new(state: ViewState<FarmBackend>) -> Model {
        Model {
            state,
            creds: CredCache::default(),
            no_mounts: None,
        }
    }

    pub fn place(&self, abs: &[u8]) -> Place {
        self.state.place(abs)
    }

    pub fn unfarm(&self, path: Vec<u8>) -> Vec<u8> {
        self.state.backend.unfarm(path)
    }

    pub fn stat(&self, cred: &Cred, abs: &[u8], follow: bool) -> Outcome {
        self.state.stat(cred, abs, follow)
    }

    pub fn access(&self, cred: &Cred, abs: &[u8], mode: u32, follow: bool) -> Outcome {
        self.state.access(cred, abs, mode, follow)
    }

    pub fn exec(&self, cred: &Cred, abs: &[u8]) -> Outcome {
        self.state.exec(cred, abs)
    }

    /// Open: read-only opens are judged on a shared view and served by the farm; the rest
    /// go through [`Model::change`].
    pub fn open(&self, tid: u32, abs: &[u8], raw_flags: i32, mode: u32) -> Outcome {
        let flags = OpenFlags::from_raw(raw_flags);
        if View::<std::sync::Arc<vrift_common::manifest::Manifest>>::open_changes_view(flags) {
            return self.change(
                tid,
                Op::Open {
                    path: abs.to_vec(),
                    flags: raw_flags,
                    mode,
                },
            );
        }
        match self.creds.get(tid) {
            Ok(cred) => self.state.open_read(&cred, abs, flags),
            Err(_) => Outcome::Continue,
        }
    }

    /// A change, with the caller's fresh credentials and umask.
    pub fn change(&self, tid: u32, op: Op) -> Outcome {
        match self.creds.fresh(tid) {
            Ok(s) => self.state.change(
                &CallerStatus {
                    cred: s.cred,
                    umask: s.umask,
                },
                op,
            ),
            Err(_) => Outcome::Continue,
        }
    }

    /// bind(2) of the caller's Unix socket `fd` to the view path `abs`: the view makes the
    /// socket's entry (as mknod would: EEXIST becomes EADDRINUSE), and the supervisor binds
    /// the caller's socket itself at the farm's path, which the program sees read-only.
    pub fn bind(&self, tid: u32, abs: &[u8], fd: i32) -> Outcome {
        let sock = match crate::sys::pidfd::take_fd(tid, fd) {
            Ok(s) => s,
            Err(_) => return Outcome::Continue, // EBADF and the like: the kernel says so
        };
        let made = self.change(
            tid,
            Op::Mknod {
                path: abs.to_vec(),
                mode: vrift_common::vfs::S_IFSOCK | 0o777,
                rdev: 0,
            },
        );
        match made {
            Outcome::Value(0) => {}
            Outcome::Errno(libc::EEXIST) => return Outcome::Errno(libc::EADDRINUSE),
            other => return other,
        }
        let bound = {
            let view = self.state.view_for_backend();
            match self.state.rel_in(&view, abs, false) {
                Some(rel) => {
                    use std::os::fd::AsFd;
                    self.state.backend.bind_socket(&rel, sock.as_fd())
                }
                None => Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
            }
        };
        match bound {
            Ok(()) => Outcome::Value(0),
            Err(e) => {
                // Take the entry back: the socket was not bound (already bound: EINVAL...).
                let _ = self.change(tid, Op::Unlink { path: abs.to_vec() });
                Outcome::Errno(e.raw_os_error().unwrap_or(libc::EIO))
            }
        }
    }

    pub fn undo_create(&self, undo: Undo) {
        self.state.undo_create(undo)
    }

    pub fn getxattr(&self, cred: &Cred, abs: &[u8], name: &[u8], follow: bool) -> XattrRead {
        self.state.getxattr(cred, abs, name, follow)
    }

    pub fn listxattr(&self, cred: &Cred, abs: &[u8], follow: bool) -> XattrRead {
        self.state.listxattr(cred, abs, follow)
    }

    /// chown family: a change of the view (the owner lives in the view's entry; the farm's
    /// files, some of them the store's blobs, are never chowned).
    pub fn chown(&self, tid: u32, abs: &[u8], uid: u32, gid: u32, follow: bool) -> Outcome {
        self.change(
            tid,
            Op::Chown {
                path: abs.to_vec(),
                uid,
                gid,
                follow,
            },
        )
    }
}
