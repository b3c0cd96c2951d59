//! `vrift trace`'s measurement layer: eBPF programs (../vrift-ebpf, embedded by build.rs)
//! that follow exactly one process tree and record, per syscall, calls, time and a latency
//! histogram, plus a timeline of calls.
//!
//! Typical use (see [`gate`] for why the child is held):
//! ```ignore
//! let (mut child, tracer) = gate::spawn_gated(&mut cmd, EbpfTracer::start)?;
//! let status = child.wait()?;
//! let data = tracer?.finish()?; // or report why eBPF columns are missing
//! ```

pub mod ebpf;
pub mod gate;
pub mod stats;
pub mod syscall_names;
mod tracefs;

#[cfg(test)]
mod tests;

pub use ebpf::{EbpfTracer, Event, TraceData, TraceOptions, TraceUnavailable};
pub use stats::SyscallRow;
