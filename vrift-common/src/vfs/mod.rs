//! The view: layered manifests plus a writable delta, path resolution inside it, and the
//! RFC-0047 mutation state machine that every projection (seccomp supervisor, interposition
//! shim, link farm) drives.
//!
//! Pure: no system calls, no clock. Callers pass credentials, the cwd, the umask and the
//! current time in a [`Caller`]; results are what the kernel would return ([`Errno`]) plus
//! what the projection must do ([`Opened`], [`Routed::Outside`], ...).
//!
//! Ownership: a manifest stores no owner, because it must be portable between machines and
//! users. Every entry of a view reports the view's [`Owner`] (normally the user running it),
//! and permission checks compare the caller against that owner.

mod delta;
mod entry;
mod errno;
mod layers;
mod ops;
mod perm;
mod resolve;
mod stat;

#[cfg(test)]
mod tests;

pub use delta::{Delta, DeltaNode};
pub use entry::{path_ino, Content, DeltaId, Node, ViewEntry};
pub use errno::Errno;
pub use layers::{FlattenError, LayerSource, View, ViewError};
pub use ops::{Caller, Exec, OpenFlags, Opened, RenameMode, Routed, Seed, TimeSpec, Truncate};
pub use perm::{Cred, Owner, MAY_EXEC, MAY_READ, MAY_WRITE};
pub use resolve::{Last, Resolved, MAXSYMLINKS, NAME_MAX, PATH_MAX};
pub use stat::{
    DirEntry, FileType, Stat, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK,
};
