//! The few places where vrift talks to the kernel through raw, unsafe interfaces.
//!
//! Everything unsafe in the supervisor lives in this module tree; each block carries a
//! `// SAFETY:` comment. Callers get safe functions returning `std::io::Result`.

pub mod fdpass;
pub mod fsops;
pub mod init;
pub mod mem;
pub mod mount;
pub mod notify;
pub mod ns;
pub mod pidfd;
pub mod probe;
pub mod signals;
pub mod xattr;
