//! The few places where vrift talks to the kernel through raw, unsafe interfaces.
//!
//! Everything unsafe in the supervisor lives in this module tree; each block carries a
//! `// SAFETY:` comment. Callers get safe functions returning `std::io::Result`.
//!
//! All but `fsops` and `signals` are Linux's (namespaces, mounts, seccomp, pidfds, Linux's
//! xattr calls, the pid-namespace init): they are built for Linux only. `signals` has a
//! macOS form (`signals_macos.rs`), since macOS has no `sigwaitinfo`.

#[cfg(target_os = "linux")]
pub mod fdpass;
pub mod fsops;
#[cfg(target_os = "linux")]
pub mod init;
#[cfg(target_os = "linux")]
pub mod mem;
#[cfg(target_os = "linux")]
pub mod mount;
#[cfg(target_os = "linux")]
pub mod notify;
#[cfg(target_os = "linux")]
pub mod ns;
#[cfg(target_os = "linux")]
pub mod pidfd;
#[cfg(target_os = "linux")]
pub mod probe;
#[cfg_attr(not(target_os = "linux"), path = "signals_macos.rs")]
pub mod signals;
#[cfg(target_os = "linux")]
pub mod xattr;
