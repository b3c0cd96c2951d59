//! vrift's eBPF programs: follow one process tree (seeded by user space with its root pid)
//! and, for its syscalls only, count calls, sum and histogram their durations per syscall
//! number, and send a bounded timeline of completed calls to user space.
//!
//! - `sys_enter` / `sys_exit` are raw tracepoints (cheapest attach point; no tracefs
//!   needed). The syscall number and entry time are kept per thread in `INFLIGHT` between
//!   the two.
//! - `sched_process_fork` adds a traced task's child to `TRACED` before the child first
//!   runs, so nothing the child does is missed. Keys are TGIDs: exec keeps the TGID, so
//!   exec needs no handler. A new *thread* is also inserted (the tracepoint does not say
//!   whether the child shares the TGID); that harmless extra key is removed when the thread
//!   exits.
//! - `sched_process_exit` removes an exiting process (when its thread group is dead) and
//!   the thread's extra key.
//!
//! Field offsets of the two sched tracepoints differ between kernels, so user space reads
//! them from tracefs and sets the globals below before loading.

#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
    Global,
};
use aya_log_ebpf::warn;
use vrift_ebpf_common::{
    counter, hist_bucket, syscall_slot, Inflight, SyscallEvent, SyscallSlot, EVENTS_RING_BYTES,
    MAX_INFLIGHT, MAX_SYSCALLS, MAX_TRACED,
};

/// Offset of `child_pid` in the `sched_process_fork` record (set by user space).
#[no_mangle]
static FORK_CHILD_PID_OFFSET: Global<u32> = Global::new(20);
/// Offset of `group_dead` in the `sched_process_exit` record, or 0 when the kernel's record
/// has no such field (before 6.16); then a leader's exit ends the process.
#[no_mangle]
static EXIT_GROUP_DEAD_OFFSET: Global<u32> = Global::new(0);
/// 1 to send timeline records, 0 for statistics only.
#[no_mangle]
static RECORD_EVENTS: Global<u32> = Global::new(1);

/// TGIDs of the traced tree (value unused).
#[map]
static TRACED: HashMap<u32, u8> = HashMap::with_max_entries(MAX_TRACED, 0);
/// Thread id -> the syscall it is in.
#[map]
static INFLIGHT: HashMap<u32, Inflight> = HashMap::with_max_entries(MAX_INFLIGHT, 0);
/// Per syscall number, per CPU: counts, total time and latency histogram.
#[map]
static STATS: PerCpuArray<SyscallSlot> = PerCpuArray::with_max_entries(MAX_SYSCALLS, 0);
/// Per CPU: see `vrift_ebpf_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);
/// Timeline of completed syscalls.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[inline(always)]
fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

#[inline(always)]
fn is_traced(tgid: u32) -> bool {
    TRACED.get_ptr(tgid).is_some()
}

/// Adds one to a per-CPU counter and returns its previous value on this CPU.
#[inline(always)]
fn bump(index: u32) -> u64 {
    match COUNTERS.get_ptr_mut(index) {
        Some(p) => {
            // SAFETY: the pointer comes from a per-CPU array lookup; programs do not
            // preempt each other on one CPU, so nothing else writes this slot meanwhile.
            unsafe {
                let before = *p;
                *p = before + 1;
                before
            }
        }
        None => 0,
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn vrift_sys_enter(ctx: RawTracePointContext) -> u32 {
    let (tgid, tid) = current_ids();
    if !is_traced(tgid) {
        return 0;
    }
    let id: i64 = ctx.arg(1);
    let nr = syscall_slot(id);
    if let Some(slot) = STATS.get_ptr_mut(nr) {
        // SAFETY: per-CPU slot, see `bump`.
        unsafe { (*slot).count += 1 };
    }
    let inflight = Inflight {
        // SAFETY: a helper without arguments or preconditions.
        start_ns: unsafe { bpf_ktime_get_ns() },
        nr,
        _pad: 0,
    };
    if INFLIGHT.insert(tid, inflight, 0).is_err() && bump(counter::INFLIGHT_FULL) == 0 {
        warn!(
            &ctx,
            "vrift: in-flight syscall map full; some durations are not measured"
        );
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn vrift_sys_exit(ctx: RawTracePointContext) -> u32 {
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let (tgid, tid) = current_ids();
    // Only traced threads have entries, so this is the filter too.
    let Some(p) = INFLIGHT.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: pointer from a lookup of this thread's own key; only this thread writes it.
    let inflight = unsafe { *p };
    let _ = INFLIGHT.remove(tid);
    let dur = now.saturating_sub(inflight.start_ns);
    if let Some(slot) = STATS.get_ptr_mut(inflight.nr) {
        // SAFETY: per-CPU slot, see `bump`.
        let slot = unsafe { &mut *slot };
        slot.timed += 1;
        slot.total_ns += dur;
        if let Some(bucket) = slot.hist.get_mut(hist_bucket(dur)) {
            *bucket += 1;
        }
    }
    if RECORD_EVENTS.load() == 0 {
        return 0;
    }
    let event = SyscallEvent {
        pid: tgid,
        tid,
        nr: inflight.nr,
        _pad: 0,
        start_ns: inflight.start_ns,
        dur_ns: dur,
    };
    // No wake-up per record: the reader drains on a short timer, which costs far less than
    // a wake-up per syscall.
    if EVENTS
        .output::<SyscallEvent>(&event, BPF_RB_NO_WAKEUP as u64)
        .is_err()
        && bump(counter::EVENTS_DROPPED) == 0
    {
        warn!(&ctx, "vrift: timeline ring buffer full; dropping records");
    }
    0
}

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn vrift_fork(ctx: TracePointContext) -> u32 {
    // Runs in the parent, before the child is first scheduled.
    let (tgid, _) = current_ids();
    if !is_traced(tgid) {
        return 0;
    }
    // SAFETY: reads a field of the tracepoint record at the offset tracefs gave.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(FORK_CHILD_PID_OFFSET.load() as usize) }) else {
        return 0;
    };
    if TRACED.insert(child as u32, 1, 0).is_err() && bump(counter::TRACED_FULL) == 0 {
        warn!(
            &ctx,
            "vrift: traced-process map full; child {} not followed", child
        );
    }
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn vrift_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_ids();
    if !is_traced(tgid) {
        return 0;
    }
    let _ = INFLIGHT.remove(tid);
    if tid != tgid {
        // The extra key the fork handler added for this thread.
        let _ = TRACED.remove(tid);
    }
    let offset = EXIT_GROUP_DEAD_OFFSET.load();
    let group_dead = if offset == 0 {
        tid == tgid
    } else {
        // SAFETY: reads a field of the tracepoint record at the offset tracefs gave.
        unsafe { ctx.read_at::<u8>(offset as usize) }.map_or(tid == tgid, |v| v != 0)
    };
    if group_dead {
        let _ = TRACED.remove(tgid);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
