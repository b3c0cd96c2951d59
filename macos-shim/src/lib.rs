//! vrift's interposition shim: a library the loader puts into every process of a run
//! (`LD_PRELOAD` on Linux, `DYLD_INSERT_LIBRARIES` on macOS) that answers the program's file
//! calls from the run's view, inside the process: stat from the memory-mapped manifest index
//! without a system call, reads from the store's blobs, writes to private copies decided by
//! the RFC-0047 state machine, and changes shared with the run's other processes through
//! the run's change log.
//!
//! - [`core`]: one process's view, cwd and descriptors; platform-neutral, safe code.
//! - `linux` / `darwin`: the exported C entry points of each platform, and the only other
//!   place with `unsafe` besides [`sys`].
//! - [`env`]: what vrift passes in the environment, and what children keep.
//!
//! See "The interposition shim" in docs/ARCHITECTURE.md for the design and its limits.

#![deny(unsafe_op_in_unsafe_fn)]
// The unit tests build without the platform layers (their exported `open`, `stat`... would
// take over the test binary), so what only those layers use is unused there.
#![cfg_attr(test, allow(dead_code))]

pub mod core;
pub mod env;
#[cfg(not(test))]
mod hooks;
mod state;
mod sys;

#[cfg(all(target_os = "linux", not(test)))]
mod linux;

#[cfg(all(target_os = "macos", not(test)))]
mod darwin;
