//! vrift's core, shared by every projection (seccomp supervisor, interposition shim, link farm).
//!
//! Nothing in this crate makes system calls on behalf of another process: it is the store,
//! the manifest, ingest, layered views and the RFC-0047 mutation state machine.

pub mod acl;
pub mod fileid;
pub mod filters;
pub mod gc;
pub mod hash;
pub mod index;
pub mod ingest;
pub mod longpath;
pub mod manifest;
pub mod mapped;
pub mod origin;
pub mod runlog;
pub mod statcache;
pub mod store;
pub mod sys;
pub mod verify;
pub mod vfs;
