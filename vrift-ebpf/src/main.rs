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
//! - With `RECORD_PATHS` set, the syscalls user space lists in `ARG_SPECS` are also recorded
//!   one by one with their first arguments, their path argument and their result
//!   (`PATHS`), so that user space can classify each against the view (hit, miss,
//!   pass-through) where no supervisor sees the calls. Forks are recorded there too, so
//!   user space can follow each process's working directory and open directories.
//!
//! Field offsets of the two sched tracepoints differ between kernels, so user space reads
//! them from tracefs and sets the globals below before loading.

#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_user_str_bytes,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
    Global,
};
use aya_log_ebpf::warn;
use vrift_ebpf_common::{
    arg_spec, counter, hist_bucket, path_kind, syscall_slot, Inflight, PathRecord, SyscallEvent,
    SyscallSlot, EVENTS_RING_BYTES, MAX_INFLIGHT, MAX_PATH_INFLIGHT, MAX_SYSCALLS, MAX_TRACED,
    PATHS_RING_BYTES, PATH_UNREADABLE,
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
/// 1 to send path records of the syscalls in `ARG_SPECS`, 0 for none.
#[no_mangle]
static RECORD_PATHS: Global<u32> = Global::new(0);

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
/// Per syscall number: what to record of it (`vrift_ebpf_common::arg_spec`), set by user
/// space; 0 for the syscalls not recorded.
#[map]
static ARG_SPECS: Array<u32> = Array::with_max_entries(MAX_SYSCALLS, 0);
/// Thread id -> its path call in flight, completed at `sys_exit`.
#[map]
static PATH_INFLIGHT: HashMap<u32, PathRecord> = HashMap::with_max_entries(MAX_PATH_INFLIGHT, 0);
/// Per CPU: where a path record is built (it is too big for the 512-byte stack).
#[map]
static PATH_SCRATCH: PerCpuArray<PathRecord> = PerCpuArray::with_max_entries(1, 0);
/// Path records for user space.
#[map]
static PATHS: RingBuf = RingBuf::with_byte_size(PATHS_RING_BYTES, 0);

/// Offsets in x86_64's `struct pt_regs` of the registers holding a syscall's first three
/// arguments (di, si, dx): the kernel's ABI, fixed since the struct's layout is.
const ARG_REG_OFFSETS: [usize; 3] = [14 * 8, 13 * 8, 12 * 8];

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
    if RECORD_PATHS.load() != 0 {
        record_path_call(&ctx, tgid, tid, nr);
    }
    0
}

/// Starts the path record of a call `ARG_SPECS` lists: sent now when recorded at entry,
/// else kept until `sys_exit` adds the result.
#[inline(always)]
fn record_path_call(ctx: &RawTracePointContext, tgid: u32, tid: u32, nr: u32) {
    let spec = match ARG_SPECS.get(nr) {
        Some(spec) if *spec & arg_spec::RECORD != 0 => *spec,
        _ => return,
    };
    let Some(rec) = PATH_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot; programs do not preempt each other on one CPU.
    let rec = unsafe { &mut *rec };
    rec.pid = tgid;
    rec.tid = tid;
    rec.nr = nr;
    rec.kind = path_kind::CALL;
    rec.ret = 0;
    rec.path_len = 0;
    let regs: *const u8 = ctx.arg(0);
    for (i, offset) in ARG_REG_OFFSETS.iter().enumerate() {
        // SAFETY: `regs` is the tracepoint's `struct pt_regs *`; the helper checks the read.
        rec.args[i] = unsafe { bpf_probe_read_kernel(regs.add(*offset) as *const u64) }
            .unwrap_or(0);
    }
    rec.flags = 0;
    // The spec travels in `nr`'s slot of ARG_SPECS; `sys_exit` reads it again.
    if spec & arg_spec::PATH_AT_ENTER != 0 {
        copy_path(rec, spec);
    }
    let sent = if spec & arg_spec::AT_ENTER != 0 {
        PATHS.output::<PathRecord>(rec, BPF_RB_NO_WAKEUP as u64).is_ok()
    } else {
        PATH_INFLIGHT.insert(tid, rec, 0).is_ok()
    };
    if !sent && bump(counter::PATHS_DROPPED) == 0 {
        warn!(ctx, "vrift: path record dropped; the view classes are short");
    }
}

/// Copies the path argument the spec names into the record.
#[inline(always)]
fn copy_path(rec: &mut PathRecord, spec: u32) {
    let path_ptr = match arg_spec::path_arg(spec) {
        Some(0) => rec.args[0],
        Some(1) => rec.args[1],
        Some(2) => rec.args[2],
        _ => 0,
    };
    if path_ptr == 0 {
        return;
    }
    // SAFETY: reads a NUL-terminated string from the caller's memory; the helper checks the
    // address and stops at the buffer's end.
    match unsafe { bpf_probe_read_user_str_bytes(path_ptr as *const u8, &mut rec.path) } {
        Ok(path) => rec.path_len = path.len() as u32,
        Err(_) => rec.flags |= PATH_UNREADABLE,
    }
}

/// Completes and sends the path record of the call this thread is returning from.
#[inline(always)]
fn finish_path_call(ctx: &RawTracePointContext, tid: u32) {
    let Some(rec) = PATH_INFLIGHT.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: pointer from a lookup of this thread's own key; only this thread writes it.
    let rec = unsafe { &mut *rec };
    rec.ret = ctx.arg(1);
    if let Some(spec) = ARG_SPECS.get(rec.nr) {
        if *spec & arg_spec::PATH_AT_ENTER == 0 {
            copy_path(rec, *spec);
        }
    }
    if PATHS
        .output::<PathRecord>(rec, BPF_RB_NO_WAKEUP as u64)
        .is_err()
        && bump(counter::PATHS_DROPPED) == 0
    {
        warn!(ctx, "vrift: path ring buffer full; the view classes are short");
    }
    let _ = PATH_INFLIGHT.remove(tid);
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn vrift_sys_exit(ctx: RawTracePointContext) -> u32 {
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let (tgid, tid) = current_ids();
    if RECORD_PATHS.load() != 0 {
        finish_path_call(&ctx, tid);
    }
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
    if RECORD_PATHS.load() != 0 {
        record_fork(&ctx, tgid, child as u32);
    }
    0
}

/// Tells user space that `parent` made `child` (which starts with its parent's working
/// directory and open files), before the child's own records.
#[inline(always)]
fn record_fork(ctx: &TracePointContext, parent: u32, child: u32) {
    let Some(rec) = PATH_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot, see `record_path_call`.
    let rec = unsafe { &mut *rec };
    rec.pid = parent;
    rec.tid = child;
    rec.nr = 0;
    rec.kind = path_kind::FORK;
    rec.args = [child as u64, 0, 0];
    rec.ret = 0;
    rec.path_len = 0;
    rec.flags = 0;
    if PATHS
        .output::<PathRecord>(rec, BPF_RB_NO_WAKEUP as u64)
        .is_err()
        && bump(counter::PATHS_DROPPED) == 0
    {
        warn!(ctx, "vrift: path ring buffer full; the view classes are short");
    }
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn vrift_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_ids();
    if !is_traced(tgid) {
        return 0;
    }
    let _ = INFLIGHT.remove(tid);
    let _ = PATH_INFLIGHT.remove(tid);
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
