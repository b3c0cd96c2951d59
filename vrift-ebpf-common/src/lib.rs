//! Layouts shared by the eBPF programs (vrift-ebpf) and the user-space tracer
//! (vrift-supervisor's `trace` module): map sizes, the per-syscall statistics slot, the
//! timeline record, and the latency histogram's bucketing.
//!
//! Everything here is `#[repr(C)]` plain data so both sides agree byte for byte.

#![no_std]

/// Slots in the per-syscall statistics array. x86_64 syscall numbers are below 512 (the
/// highest in Linux 6.18 is 467); anything outside `0..OVERFLOW_SLOT` is counted in
/// [`OVERFLOW_SLOT`].
pub const MAX_SYSCALLS: u32 = 512;
/// Slot that counts syscall numbers outside the table (x32 ABI, `-1` from seccomp, ...).
pub const OVERFLOW_SLOT: u32 = MAX_SYSCALLS - 1;

/// Most processes (and not-yet-exited threads, see the eBPF fork handler) traced at once.
pub const MAX_TRACED: u32 = 16_384;
/// Most threads of the traced tree inside a syscall at once.
pub const MAX_INFLIGHT: u32 = 16_384;
/// Size of the timeline ring buffer (a power of two, a multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 8 << 20;

/// Sub-buckets per power of two in the latency histogram.
pub const HIST_SUB_BUCKETS: u32 = 4;
/// The largest power of two resolved by the histogram: durations of 2^41 ns (about 37
/// minutes) and more all fall into the last bucket.
pub const HIST_MAX_LOG2: u32 = 40;
/// Buckets per histogram: values 0..4 exactly, then 4 per power of two up to 2^41.
pub const HIST_BUCKETS: usize = (HIST_SUB_BUCKETS * HIST_MAX_LOG2) as usize;

/// Indexes into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Timeline records lost because the ring buffer was full.
    pub const EVENTS_DROPPED: u32 = 0;
    /// Syscalls whose duration was not measured because `INFLIGHT` was full.
    pub const INFLIGHT_FULL: u32 = 1;
    /// Children not followed because `TRACED` was full.
    pub const TRACED_FULL: u32 = 2;
    /// Path records lost (ring buffer or in-flight map full): the classes are then short.
    pub const PATHS_DROPPED: u32 = 3;
    /// Number of counters.
    pub const COUNT: u32 = 4;
}

/// Bytes of a path argument captured per call, NUL included; a longer path is cut (see
/// [`PathRecord::path_len`]).
pub const PATH_CAPTURE: usize = 256;
/// Size of the path-record ring buffer (a power of two, a multiple of the page size).
pub const PATHS_RING_BYTES: u32 = 16 << 20;
/// Most threads of the traced tree inside a path call at once.
pub const MAX_PATH_INFLIGHT: u32 = 4096;

/// What user space asks the programs to record of one syscall number, in the `ARG_SPECS`
/// array: whether to record it at all, which argument is a path to copy, and whether to
/// record at entry instead of at return (for `close`, whose fd may be reused by another
/// thread before `close` returns).
///
/// The path is copied at return, when the kernel has itself read it (so its page is in
/// memory: a copy at entry fails on a page not yet faulted in), except for exec, whose old
/// memory is gone by then.
pub mod arg_spec {
    /// Record this syscall.
    pub const RECORD: u32 = 1;
    /// Record at `sys_enter` (the result is then unknown, 0).
    pub const AT_ENTER: u32 = 1 << 1;
    /// Copy the path at `sys_enter` (exec).
    pub const PATH_AT_ENTER: u32 = 1 << 2;
    /// Bits 4..8: the index of the path argument plus one (0: none).
    const PATH_SHIFT: u32 = 4;

    /// The spec of a syscall whose argument `path` (0..=2), if any, is a path.
    pub const fn new(path: Option<u32>, at_enter: bool, path_at_enter: bool) -> u32 {
        let path = match path {
            Some(i) => (i + 1) << PATH_SHIFT,
            None => 0,
        };
        RECORD
            | path
            | if at_enter { AT_ENTER } else { 0 }
            | if path_at_enter { PATH_AT_ENTER } else { 0 }
    }

    /// The index of the path argument.
    #[inline(always)]
    pub fn path_arg(spec: u32) -> Option<u32> {
        match (spec >> PATH_SHIFT) & 0xf {
            0 => None,
            i => Some(i - 1),
        }
    }
}

/// [`PathRecord::flags`]: the path argument was not null but could not be copied.
pub const PATH_UNREADABLE: u32 = 1;

/// Kinds of [`PathRecord`].
pub mod path_kind {
    /// A syscall: `nr`, its first arguments, its result and its path argument.
    pub const CALL: u32 = 0;
    /// A process of the traced tree made a child: `args[0]` is the child's pid.
    pub const FORK: u32 = 1;
}

/// One recorded call of the traced tree with its path argument, for classifying it against
/// the view in user space (the overlay projection, where no supervisor sees the calls).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PathRecord {
    /// TGID and thread id, as seen from the initial PID namespace.
    pub pid: u32,
    pub tid: u32,
    /// Syscall number.
    pub nr: u32,
    /// See [`path_kind`].
    pub kind: u32,
    /// The first three arguments, raw.
    pub args: [u64; 3],
    /// The call's result (a negative errno on failure; 0 when recorded at entry).
    pub ret: i64,
    /// Bytes of `path` in use, without the NUL; 0 when there is none or it was unreadable.
    /// `PATH_CAPTURE - 1` means the path may have been cut.
    pub path_len: u32,
    /// [`PATH_UNREADABLE`] when the path argument could not be copied.
    pub flags: u32,
    pub path: [u8; PATH_CAPTURE],
}

/// Per-syscall statistics for the traced tree, one per syscall number and CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallSlot {
    /// Calls entered (counted at `sys_enter`, so `exit_group` and `execve` count too).
    pub count: u64,
    /// Calls whose duration was measured (entered and returned while traced).
    pub timed: u64,
    /// Sum of measured durations, in nanoseconds.
    pub total_ns: u64,
    /// Latency histogram of the measured calls; see [`hist_bucket`].
    pub hist: [u64; HIST_BUCKETS],
}

impl SyscallSlot {
    pub const ZERO: SyscallSlot = SyscallSlot {
        count: 0,
        timed: 0,
        total_ns: 0,
        hist: [0; HIST_BUCKETS],
    };
}

/// A syscall in flight: recorded at `sys_enter`, consumed at `sys_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Inflight {
    pub start_ns: u64,
    pub nr: u32,
    pub _pad: u32,
}

/// One completed syscall of the traced tree, for the timeline.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    /// Process id (TGID) as seen from the initial PID namespace.
    pub pid: u32,
    /// Thread id as seen from the initial PID namespace.
    pub tid: u32,
    /// Syscall number ([`OVERFLOW_SLOT`] when outside the table).
    pub nr: u32,
    pub _pad: u32,
    /// `CLOCK_MONOTONIC` time of `sys_enter`, in nanoseconds.
    pub start_ns: u64,
    /// Time from `sys_enter` to `sys_exit`, in nanoseconds.
    pub dur_ns: u64,
}

/// Histogram bucket of a duration `ns`: values below 4 have their own bucket; above, each
/// power of two is split into [`HIST_SUB_BUCKETS`] equal parts (so a bucket is at most 25%
/// wide). Branch-light and loop-free so the eBPF verifier accepts it.
#[inline(always)]
pub fn hist_bucket(ns: u64) -> usize {
    if ns < HIST_SUB_BUCKETS as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros(); // >= 2
    let sub = ((ns >> (msb - 2)) & 3) as u32;
    let idx = (HIST_SUB_BUCKETS * (msb - 1) + sub) as usize;
    if idx >= HIST_BUCKETS {
        HIST_BUCKETS - 1
    } else {
        idx
    }
}

/// The half-open range `[lo, hi)` of durations in bucket `idx` (the last bucket's `hi` is
/// `u64::MAX`).
pub fn hist_bucket_range(idx: usize) -> (u64, u64) {
    if idx < HIST_SUB_BUCKETS as usize {
        return (idx as u64, idx as u64 + 1);
    }
    let msb = idx as u32 / HIST_SUB_BUCKETS + 1;
    let sub = idx as u64 % HIST_SUB_BUCKETS as u64;
    let lo = (HIST_SUB_BUCKETS as u64 + sub) << (msb - 2);
    if idx == HIST_BUCKETS - 1 {
        return (lo, u64::MAX);
    }
    (lo, (HIST_SUB_BUCKETS as u64 + sub + 1) << (msb - 2))
}

/// The statistics slot for a raw syscall number.
#[inline(always)]
pub fn syscall_slot(id: i64) -> u32 {
    if id >= 0 && id < OVERFLOW_SLOT as i64 {
        id as u32
    } else {
        OVERFLOW_SLOT
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are #[repr(C)] structs of integers (explicit padding fields, no
    // implicit padding), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::SyscallSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Inflight {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SyscallEvent {}
    // SAFETY: as above (the byte array has no padding either).
    unsafe impl aya::Pod for super::PathRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_specs_say_which_argument_is_the_path() {
        use arg_spec::*;
        let open = new(Some(0), false, false);
        let openat = new(Some(1), false, false);
        let close = new(None, true, false);
        let exec = new(Some(0), false, true);
        assert!(exec & PATH_AT_ENTER != 0 && open & PATH_AT_ENTER == 0);
        assert_eq!(
            (path_arg(open), path_arg(openat), path_arg(close)),
            (Some(0), Some(1), None)
        );
        assert!(open & RECORD != 0 && close & RECORD != 0);
        assert!(close & AT_ENTER != 0 && openat & AT_ENTER == 0);
        assert_eq!(path_arg(0), None);
    }

    #[test]
    fn path_records_have_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<PathRecord>(),
            16 + 24 + 8 + 8 + PATH_CAPTURE
        );
    }

    #[test]
    fn small_values_have_exact_buckets() {
        for v in 0..8u64 {
            assert_eq!(hist_bucket(v), v as usize);
            assert_eq!(hist_bucket_range(v as usize), (v, v + 1));
        }
    }

    #[test]
    fn every_value_lies_in_its_buckets_range() {
        let mut v = 1u64;
        while v < (1u64 << 41) {
            for probe in [v - 1, v, v + 1, v + v / 3, v + v / 2 + 7] {
                let (lo, hi) = hist_bucket_range(hist_bucket(probe));
                assert!(lo <= probe && probe < hi, "{probe} not in [{lo}, {hi})");
            }
            v = v * 3 / 2 + 1;
        }
    }

    #[test]
    fn buckets_are_contiguous_and_at_most_a_quarter_wide() {
        for idx in 1..HIST_BUCKETS {
            let (prev_lo, prev_hi) = hist_bucket_range(idx - 1);
            let (lo, hi) = hist_bucket_range(idx);
            assert_eq!(prev_hi, lo, "gap before bucket {idx}");
            assert!(prev_lo < prev_hi);
            if (4..HIST_BUCKETS - 1).contains(&idx) {
                assert!((hi - lo) * 4 <= lo, "bucket {idx} [{lo},{hi}) too wide");
            }
        }
    }

    #[test]
    fn huge_values_clamp_to_the_last_bucket() {
        assert_eq!(hist_bucket(u64::MAX), HIST_BUCKETS - 1);
        assert_eq!(hist_bucket(1 << 50), HIST_BUCKETS - 1);
        assert_eq!(hist_bucket_range(HIST_BUCKETS - 1).1, u64::MAX);
    }

    #[test]
    fn out_of_table_syscall_numbers_go_to_the_overflow_slot() {
        assert_eq!(syscall_slot(0), 0);
        assert_eq!(syscall_slot(467), 467);
        assert_eq!(syscall_slot(-1), OVERFLOW_SLOT);
        assert_eq!(syscall_slot(0x4000_0000), OVERFLOW_SLOT);
        assert_eq!(syscall_slot(OVERFLOW_SLOT as i64), OVERFLOW_SLOT);
    }
}
