//! The view: layered manifests plus a writable delta, path resolution inside it, and the
//! RFC-0047 mutation state machine that every projection (seccomp supervisor, interposition
//! shim, link farm) drives.
//!
//! Pure: no system calls, no clock. Callers pass credentials, the cwd, the umask and the
//! current time in a [`Caller`]; results are what the kernel would return ([`Errno`]) plus
//! what the projection must do ([`Opened`], [`Routed::Outside`], ...).
//!
//! Ownership: a manifest stores no owner unless asked (it must be portable between machines
//! and users). An entry reports its own owner where it has one (recorded by the manifest,
//! made during the run by another user, or given by a chown), else the view's [`Owner`]
//! (normally the user running it); permission checks compare the caller with the owner of
//! the entry they judge ([`View::owner_of`]).

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
pub use ops::{
    Caller, Exec, OpenFlags, Opened, RenameMode, Routed, Seed, TimeSpec, Truncate, XATTR_CREATE,
    XATTR_REPLACE,
};
pub use perm::{Cred, Owner, MAY_EXEC, MAY_READ, MAY_WRITE};
pub use resolve::{Last, Resolved, MAXSYMLINKS, NAME_MAX, PATH_MAX};
pub use stat::{
    DirEntry, FileType, Stat, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK,
};
