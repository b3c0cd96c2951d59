//! Permission checks, judged the way the Linux kernel judges them (`generic_permission`,
//! `may_delete`, `check_sticky`), from an entry's mode and the caller's credentials.
//!
//! Ownership: each check takes the owner of the entry it judges, as the view reports it
//! (`View::owner_of`): the entry's own where the manifest records one or the run set one
//! (a file made by another user, a chown), else the view's [`Owner`].

use super::entry::ViewEntry;

/// Read permission bit for [`permits`] (same value as `R_OK`).
pub const MAY_READ: u32 = 4;
/// Write permission bit (`W_OK`).
pub const MAY_WRITE: u32 = 2;
/// Execute / search permission bit (`X_OK`).
pub const MAY_EXEC: u32 = 1;

const S_ISVTX: u32 = 0o1000;

/// Who is asking: the caller's ids as the kernel uses them for permission checks
/// (fsuid/fsgid and supplementary groups; real ids for `access`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Holds CAP_DAC_OVERRIDE and CAP_FOWNER (as root normally does): bypasses read/write
    /// checks and owner checks; execute still needs some x bit on a file.
    pub privileged: bool,
}

impl Cred {
    /// An unprivileged user whose only group is `gid`.
    pub fn user(uid: u32, gid: u32) -> Cred {
        Cred {
            uid,
            gid,
            groups: Vec::new(),
            privileged: false,
        }
    }
    /// Root with its usual capabilities.
    pub fn root() -> Cred {
        Cred {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            privileged: true,
        }
    }
    /// Is `gid` the caller's group or one of its supplementary groups?
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The uid/gid of an entry; a view's own is what its entries report when they record none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Does `cred` have every permission in `want` (`MAY_*` bits) on an entry with `mode`?
pub fn permits(cred: &Cred, owner: Owner, e: &ViewEntry, want: u32) -> bool {
    if cred.privileged {
        // CAP_DAC_OVERRIDE: everything, except executing a file that has no x bit at all.
        return !(want & MAY_EXEC != 0 && !e.is_dir() && e.mode & 0o111 == 0);
    }
    let class = if cred.uid == owner.uid {
        (e.mode >> 6) & 7
    } else if cred.in_group(owner.gid) {
        (e.mode >> 3) & 7
    } else {
        e.mode & 7
    };
    class & want == want
}

/// Owner of the entry, or CAP_FOWNER (chmod, explicit utimes, O_NOATIME, sticky dirs).
pub fn owns(cred: &Cred, owner: Owner) -> bool {
    cred.privileged || cred.uid == owner.uid
}

/// The sticky-bit rule of `check_sticky`: in a sticky directory only the owner of the entry
/// (`victim`), the owner of the directory (`dir_owner`) or a CAP_FOWNER caller may remove or
/// rename an entry.
pub fn sticky_allows(cred: &Cred, victim: Owner, dir_owner: Owner, dir: &ViewEntry) -> bool {
    dir.mode & S_ISVTX == 0 || owns(cred, victim) || cred.uid == dir_owner.uid
}

/// `fs.protected_hardlinks` (on by default): a caller who does not own the source may link it
/// only if it is a regular file, not set-uid, not set-gid-executable, and readable and
/// writable by the caller.
pub fn may_hardlink(cred: &Cred, owner: Owner, src: &ViewEntry) -> bool {
    if owns(cred, owner) {
        return true;
    }
    let safe = src.is_file() && src.mode & 0o4000 == 0 && src.mode & 0o2010 != 0o2010;
    safe && permits(cred, owner, src, MAY_READ | MAY_WRITE)
}
