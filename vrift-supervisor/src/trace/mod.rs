//! `vrift trace`'s measurement layer: eBPF programs (../vrift-ebpf, embedded by build.rs)
//! that follow exactly one process tree and record, per syscall, calls, time and a latency
//! histogram, plus a timeline of calls.
//!
//! A traced run (`crate::run`) starts the tracer on the program's process while the program
//! is held before exec (the launch's ready callback), so nothing it does is missed, and
//! after the program ends calls `EbpfTracer::finish` for the counts, or reports why the eBPF
//! columns are missing. `gate` does the same for the kernel tests, without a view.

pub mod classify;
pub mod ebpf;
#[cfg(test)]
pub mod gate;
pub mod report;
pub mod stats;
pub mod syscall_names;
mod tracefs;

#[cfg(test)]
mod tests;

pub use classify::ViewPaths;
pub use ebpf::{EbpfTracer, TraceData, TraceOptions, TraceUnavailable};
pub use stats::SyscallRow;
