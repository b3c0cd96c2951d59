//! Loading vrift's eBPF programs (built by build.rs and embedded in the binary), following
//! one process tree with them, and reading back what they measured.
//!
//! Usage, so that no syscall of the traced program is missed: create the child held before
//! it runs (see [`super::gate`]), call [`EbpfTracer::start_with`] with its pid, let it go, wait
//! for it, then call [`EbpfTracer::finish`].

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::Path,
    sync::Arc,
    thread::JoinHandle,
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        raw_trace_point::RawTracePointLinkId, trace_point::TracePointLinkId, ProgramError,
        RawTracePoint, TracePoint,
    },
    Ebpf, EbpfError, EbpfLoader,
};
use vrift_ebpf_common::{counter, PathRecord, SyscallSlot, MAX_SYSCALLS, PATH_CAPTURE};

use super::{
    classify::{self, Classifier, ViewPaths},
    stats::{merge_slots, rows, SyscallRow},
    tracefs,
};
use crate::projection::supervisor::served::ServedStats;

/// The eBPF object built from ../vrift-ebpf; empty when built with `VRIFT_SKIP_EBPF=1`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vrift-ebpf"));

/// Why eBPF tracing cannot run here. The message says what is missing and what would fix it.
#[derive(Debug, thiserror::Error)]
pub enum TraceUnavailable {
    #[error("this vrift was built without its eBPF programs (VRIFT_SKIP_EBPF=1)")]
    NotBuilt,
    #[error("eBPF tracing needs root, or the CAP_BPF and CAP_PERFMON capabilities ({0})")]
    NotPermitted(String),
    #[error("tracefs is unavailable: {0}")]
    NoTracefs(String),
    #[error("the kernel cannot load vrift's eBPF object: {0}")]
    Object(String),
    #[error("the kernel's verifier rejected eBPF program {program}: {message}")]
    Load {
        program: &'static str,
        message: String,
    },
    #[error("cannot attach eBPF program {program} to {attach_point}: {message}")]
    Attach {
        program: &'static str,
        attach_point: &'static str,
        message: String,
    },
    #[error("eBPF map {map}: {message}")]
    Map { map: &'static str, message: String },
    #[error("reading the eBPF timeline: {0}")]
    Reader(String),
}

impl TraceUnavailable {
    /// True when the cause is the machine (privileges, kernel configuration, build), not a
    /// fault in vrift: tests skip on these and fail on the rest.
    #[cfg(test)]
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            Self::NotBuilt | Self::NotPermitted(_) | Self::NoTracefs(_)
        )
    }
}

/// Why eBPF tracing cannot run here (this build, this process's privileges), or `None`
/// when it may: checked before a run chooses its projection.
pub fn unavailable() -> Option<String> {
    if EBPF_OBJECT.is_empty() {
        return Some(TraceUnavailable::NotBuilt.to_string());
    }
    check_capabilities().err().map(|e| e.to_string())
}

/// What to collect.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    /// Send a record per completed syscall for the timeline (statistics are always kept).
    pub record_events: bool,
    /// Keep at most this many timeline records in memory; later ones count as dropped.
    pub max_events: usize,
    /// Classify each file call against this view (root, pass-through paths) from its path
    /// argument, for a projection with no supervisor to count them; the traced process
    /// starts in the directory given.
    pub classify: Option<(ViewPaths, Vec<u8>)>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            record_events: true,
            max_events: 2_000_000,
            classify: None,
        }
    }
}

/// One completed syscall of the traced tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Process id and thread id, as seen from the initial PID namespace.
    pub pid: u32,
    pub tid: u32,
    /// x86_64 syscall number (`vrift_ebpf_common::OVERFLOW_SLOT` when outside the table).
    pub nr: u32,
    /// `CLOCK_MONOTONIC` nanoseconds at entry; compare with [`TraceData::clock_start_ns`].
    pub start_ns: u64,
    pub dur_ns: u64,
}

/// Everything measured for the traced tree.
#[derive(Clone, Debug, Default)]
pub struct TraceData {
    /// One row per syscall the tree made, by number.
    pub per_syscall: Vec<SyscallRow>,
    /// The timeline, by start time (empty unless `record_events`).
    pub events: Vec<Event>,
    /// Timeline records lost: ring buffer full in the kernel, or past `max_events`.
    pub dropped: u64,
    /// Syscalls counted but not timed because too many were in flight at once.
    pub untimed: u64,
    /// Children that could not be followed because the traced-process map was full.
    pub unfollowed_children: u64,
    /// `CLOCK_MONOTONIC` nanoseconds when tracing started.
    pub clock_start_ns: u64,
    /// The hit, miss, pass-through and denied classes, when asked for
    /// ([`TraceOptions::classify`]).
    pub classes: Option<Arc<ServedStats>>,
    /// File calls in no class: their path record was lost, or their path unreadable.
    pub paths_dropped: u64,
}

/// Attached eBPF programs following one process tree. Dropping it detaches them.
pub struct EbpfTracer {
    bpf: Ebpf,
    links: Links,
    reader: Option<Reader>,
    clock_start_ns: u64,
}

#[derive(Default)]
struct Links {
    raw: Vec<(&'static str, RawTracePointLinkId)>,
    tp: Vec<(&'static str, TracePointLinkId)>,
}

impl EbpfTracer {
    /// Starts tracing the process `root_pid` and every process it creates from now on.
    ///
    /// `root_pid` must already exist and should not yet have started the program to be
    /// traced: syscalls it makes before this returns are not counted. Create it held (see
    /// [`super::gate`]). Needs root (or CAP_BPF + CAP_PERFMON) and tracefs, which it mounts
    /// at /sys/kernel/tracing when missing. Starts one thread that drains the timeline
    /// until [`finish`](Self::finish).
    #[cfg(test)]
    pub fn start(root_pid: u32) -> Result<Self, TraceUnavailable> {
        Self::start_with(root_pid, TraceOptions::default())
    }

    /// [`start`](Self::start) with options.
    pub fn start_with(root_pid: u32, options: TraceOptions) -> Result<Self, TraceUnavailable> {
        if EBPF_OBJECT.is_empty() {
            return Err(TraceUnavailable::NotBuilt);
        }
        check_capabilities()?;
        let tracefs = tracefs::ensure_mounted().map_err(TraceUnavailable::NoTracefs)?;
        let (fork_offset, exit_offset) = record_offsets(&tracefs)?;
        raise_memlock_limit();

        let record = u32::from(options.record_events);
        let record_paths = u32::from(options.classify.is_some());
        let mut bpf = EbpfLoader::new()
            .override_global("FORK_CHILD_PID_OFFSET", &fork_offset, true)
            .override_global("EXIT_GROUP_DEAD_OFFSET", &exit_offset, true)
            .override_global("RECORD_EVENTS", &record, true)
            .override_global("RECORD_PATHS", &record_paths, true)
            .load(EBPF_OBJECT)
            .map_err(load_error)?;
        // Log lines from the programs (rare: a full map) go to vrift's log.
        let logger = aya_log::EbpfLogger::init(&mut bpf).ok();

        let mut traced: HashMap<_, u32, u8> = map(&mut bpf, "TRACED")?;
        traced
            .insert(root_pid, 1, 0)
            .map_err(|e| TraceUnavailable::Map {
                map: "TRACED",
                message: format!("cannot add pid {root_pid}: {e}"),
            })?;
        let ring = take_ring(&mut bpf, "EVENTS")?;
        let paths = match options.classify {
            Some((view, cwd)) => {
                let mut specs: Array<_, u32> = map(&mut bpf, "ARG_SPECS")?;
                for (nr, spec) in classify::arg_specs() {
                    specs.set(nr, spec, 0).map_err(|e| TraceUnavailable::Map {
                        map: "ARG_SPECS",
                        message: format!("syscall {nr}: {e}"),
                    })?;
                }
                Some((
                    take_ring(&mut bpf, "PATHS")?,
                    Classifier::new(view, root_pid, &cwd),
                ))
            }
            None => None,
        };

        let mut tracer = Self {
            bpf,
            links: Links::default(),
            reader: None,
            clock_start_ns: monotonic_ns(),
        };
        // Follow children first, then time syscalls, so the tree is complete before any
        // syscall is counted.
        tracer.attach_tracepoint("vrift_exit", "sched_process_exit")?;
        tracer.attach_tracepoint("vrift_fork", "sched_process_fork")?;
        tracer.attach_raw("vrift_sys_exit", "sys_exit")?;
        tracer.attach_raw("vrift_sys_enter", "sys_enter")?;
        tracer.reader = Some(Reader::spawn(ring, paths, logger, options.max_events)?);
        Ok(tracer)
    }

    /// Stops tracing and returns what was measured. Call after the traced tree has exited
    /// (syscalls made after this are not counted).
    pub fn finish(mut self) -> Result<TraceData, TraceUnavailable> {
        self.detach();
        let drained = match self.reader.take() {
            Some(reader) => reader.finish()?,
            None => Drained::default(),
        };
        let classes = drained.classes.map(Classifier::finish);

        let stats: PerCpuArray<_, SyscallSlot> = map(&mut self.bpf, "STATS")?;
        let mut slots = Vec::new();
        for nr in 0..MAX_SYSCALLS {
            let per_cpu = stats.get(&nr, 0).map_err(|e| TraceUnavailable::Map {
                map: "STATS",
                message: e.to_string(),
            })?;
            slots.push((nr, merge_slots(per_cpu.iter())));
        }
        let counters: PerCpuArray<_, u64> = map(&mut self.bpf, "COUNTERS")?;
        let count = |index: u32| -> Result<u64, TraceUnavailable> {
            let per_cpu = counters.get(&index, 0).map_err(|e| TraceUnavailable::Map {
                map: "COUNTERS",
                message: e.to_string(),
            })?;
            Ok(per_cpu.iter().sum())
        };

        Ok(TraceData {
            per_syscall: rows(slots),
            events: drained.events,
            dropped: count(counter::EVENTS_DROPPED)? + drained.over_limit,
            untimed: count(counter::INFLIGHT_FULL)?,
            unfollowed_children: count(counter::TRACED_FULL)?,
            clock_start_ns: self.clock_start_ns,
            paths_dropped: count(counter::PATHS_DROPPED)?
                + drained.paths_unreadable
                + classes.as_ref().map_or(0, |c| c.1),
            classes: classes.map(|c| Arc::new(c.0)),
        })
    }

    fn attach_raw(
        &mut self,
        program: &'static str,
        attach_point: &'static str,
    ) -> Result<(), TraceUnavailable> {
        let prog: &mut RawTracePoint = self
            .bpf
            .program_mut(program)
            .ok_or_else(|| missing_program(program))?
            .try_into()
            .map_err(|e: ProgramError| wrong_program(program, e))?;
        prog.load().map_err(|e| verifier_error(program, e))?;
        let link = prog
            .attach(attach_point)
            .map_err(|e| attach_error(program, attach_point, e))?;
        self.links.raw.push((program, link));
        Ok(())
    }

    fn attach_tracepoint(
        &mut self,
        program: &'static str,
        name: &'static str,
    ) -> Result<(), TraceUnavailable> {
        let prog: &mut TracePoint = self
            .bpf
            .program_mut(program)
            .ok_or_else(|| missing_program(program))?
            .try_into()
            .map_err(|e: ProgramError| wrong_program(program, e))?;
        prog.load().map_err(|e| verifier_error(program, e))?;
        let link = prog
            .attach("sched", name)
            .map_err(|e| attach_error(program, name, e))?;
        self.links.tp.push((program, link));
        Ok(())
    }

    /// Detaches every program (syscall timing first, tree following last).
    fn detach(&mut self) {
        for (program, link) in self.links.raw.drain(..).rev() {
            if let Some(Ok(prog)) = self
                .bpf
                .program_mut(program)
                .map(<&mut RawTracePoint>::try_from)
            {
                let _ = prog.detach(link);
            }
        }
        for (program, link) in self.links.tp.drain(..).rev() {
            if let Some(Ok(prog)) = self
                .bpf
                .program_mut(program)
                .map(<&mut TracePoint>::try_from)
            {
                let _ = prog.detach(link);
            }
        }
    }
}

impl Drop for EbpfTracer {
    fn drop(&mut self) {
        self.detach();
        if let Some(reader) = self.reader.take() {
            let _ = reader.finish();
        }
    }
}

/// The thread that drains the timeline and path ring buffers (and the programs' log) while
/// tracing.
struct Reader {
    stop: OwnedFd,
    thread: JoinHandle<Drained>,
}

/// What the reader drained.
#[derive(Default)]
struct Drained {
    events: Vec<Event>,
    /// Timeline records past `max_events`.
    over_limit: u64,
    classes: Option<Classifier>,
    /// Path records too short to parse.
    paths_unreadable: u64,
}

impl Reader {
    /// How long the reader sleeps between drains. The programs do not wake it per record
    /// (that would cost a wake-up per syscall); the 8 MiB ring holds about 200,000 records,
    /// far more than arrive in this time.
    const DRAIN_INTERVAL_MS: u16 = 20;

    fn spawn(
        mut ring: RingBuf<MapData>,
        paths: Option<(RingBuf<MapData>, Classifier)>,
        mut logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
        max_events: usize,
    ) -> Result<Self, TraceUnavailable> {
        let (stop_read, stop_write) =
            pipe().map_err(|e| TraceUnavailable::Reader(format!("pipe: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("vrift-trace-reader".into())
            .spawn(move || {
                let mut out = Drained::default();
                let (mut path_ring, classifier) = paths.unzip();
                out.classes = classifier;
                loop {
                    let mut fds = vec![stop_read.as_fd(), ring.as_fd()];
                    fds.extend(path_ring.as_ref().map(|r| r.as_fd()));
                    let stopping = wait_readable(&fds, Self::DRAIN_INTERVAL_MS);
                    while let Some(item) = ring.next() {
                        match parse_event(&item) {
                            Some(event) if out.events.len() < max_events => out.events.push(event),
                            _ => out.over_limit += 1,
                        }
                    }
                    if let (Some(r), Some(c)) = (path_ring.as_mut(), out.classes.as_mut()) {
                        while let Some(item) = r.next() {
                            match parse_path_record(&item) {
                                Some(rec) => c.feed(&rec),
                                None => out.paths_unreadable += 1,
                            }
                        }
                    }
                    if let Some(logger) = logger.as_mut() {
                        logger.flush();
                    }
                    if stopping {
                        break;
                    }
                }
                out
            })
            .map_err(|e| TraceUnavailable::Reader(format!("cannot start thread: {e}")))?;
        Ok(Self {
            stop: stop_write,
            thread,
        })
    }

    /// Stops the thread after one last drain; returns the timeline by start time.
    fn finish(self) -> Result<Drained, TraceUnavailable> {
        drop(self.stop); // the thread sees end-of-file on its end
        let mut drained = self
            .thread
            .join()
            .map_err(|_| TraceUnavailable::Reader("reader thread panicked".into()))?;
        drained.events.sort_by_key(|e| (e.start_ns, e.tid));
        Ok(drained)
    }
}

/// Parses one path record (the layout of `vrift_ebpf_common::PathRecord`).
fn parse_path_record(bytes: &[u8]) -> Option<PathRecord> {
    let u32_at = |i: usize| Some(u32::from_ne_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_ne_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
    Some(PathRecord {
        pid: u32_at(0)?,
        tid: u32_at(4)?,
        nr: u32_at(8)?,
        kind: u32_at(12)?,
        args: [u64_at(16)?, u64_at(24)?, u64_at(32)?],
        ret: u64_at(40)? as i64,
        path_len: u32_at(48)?,
        flags: u32_at(52)?,
        path: bytes.get(56..56 + PATH_CAPTURE)?.try_into().ok()?,
    })
}

fn take_ring(bpf: &mut Ebpf, name: &'static str) -> Result<RingBuf<MapData>, TraceUnavailable> {
    bpf.take_map(name)
        .ok_or_else(|| missing_map(name))?
        .try_into()
        .map_err(|e: aya::maps::MapError| TraceUnavailable::Map {
            map: name,
            message: e.to_string(),
        })
}

/// Parses one timeline record (the layout of `vrift_ebpf_common::SyscallEvent`).
fn parse_event(bytes: &[u8]) -> Option<Event> {
    let u32_at = |i: usize| Some(u32::from_ne_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_ne_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
    Some(Event {
        pid: u32_at(0)?,
        tid: u32_at(4)?,
        nr: u32_at(8)?,
        start_ns: u64_at(16)?,
        dur_ns: u64_at(24)?,
    })
}

/// Offsets of `child_pid` in `sched_process_fork` and of `group_dead` in
/// `sched_process_exit` (0 when that field does not exist on this kernel).
fn record_offsets(tracefs: &Path) -> Result<(u32, u32), TraceUnavailable> {
    let fork = tracefs::read_format(tracefs, "sched", "sched_process_fork")
        .map_err(TraceUnavailable::NoTracefs)?;
    let fork_offset = tracefs::field_offset(&fork, "child_pid").ok_or_else(|| {
        TraceUnavailable::NoTracefs(format!(
            "no child_pid field in {}/events/sched/sched_process_fork/format",
            tracefs.display()
        ))
    })?;
    let exit = tracefs::read_format(tracefs, "sched", "sched_process_exit")
        .map_err(TraceUnavailable::NoTracefs)?;
    Ok((
        fork_offset,
        tracefs::field_offset(&exit, "group_dead").unwrap_or(0),
    ))
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Whether an effective capability set allows loading and attaching tracing programs.
fn caps_allow_tracing(cap_eff: u64) -> bool {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// The `CapEff:` mask of a /proc/PID/status text.
fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn check_capabilities() -> Result<(), TraceUnavailable> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        TraceUnavailable::NotPermitted(format!("cannot read /proc/self/status: {e}"))
    })?;
    match parse_cap_eff(&status) {
        Some(caps) if caps_allow_tracing(caps) => Ok(()),
        Some(caps) => Err(TraceUnavailable::NotPermitted(format!(
            "running as uid {} with effective capabilities {caps:#x}",
            nix::unistd::getuid().as_raw()
        ))),
        None => Err(TraceUnavailable::NotPermitted(
            "no CapEff line in /proc/self/status".into(),
        )),
    }
}

/// Kernels before 5.11 charge eBPF maps to RLIMIT_MEMLOCK; raise it (best effort, only
/// this process: the traced child has already been created).
fn raise_memlock_limit() {
    use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
    let _ = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY);
}

/// CLOCK_MONOTONIC, the clock eBPF's `bpf_ktime_get_ns` reads.
fn monotonic_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Waits until one of `fds` is readable or `timeout_ms` passes; true when the first (the
/// stop pipe) is readable or closed (time to finish).
fn wait_readable(fds: &[BorrowedFd<'_>], timeout_ms: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut polled: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    matches!(poll(&mut polled, PollTimeout::from(timeout_ms)), Ok(n) if n > 0)
        && polled[0].revents().is_some_and(|r| !r.is_empty())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    Ok((r.into(), w.into()))
}

fn map<'a, T>(bpf: &'a mut Ebpf, name: &'static str) -> Result<T, TraceUnavailable>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    bpf.map_mut(name)
        .ok_or_else(|| missing_map(name))?
        .try_into()
        .map_err(|e: aya::maps::MapError| TraceUnavailable::Map {
            map: name,
            message: e.to_string(),
        })
}

fn missing_map(name: &'static str) -> TraceUnavailable {
    TraceUnavailable::Map {
        map: name,
        message: "not in the eBPF object".into(),
    }
}

fn missing_program(program: &'static str) -> TraceUnavailable {
    TraceUnavailable::Load {
        program,
        message: "not in the eBPF object".into(),
    }
}

fn wrong_program(program: &'static str, err: ProgramError) -> TraceUnavailable {
    TraceUnavailable::Load {
        program,
        message: format!("unexpected program type: {err}"),
    }
}

fn load_error(err: EbpfError) -> TraceUnavailable {
    let message = error_chain(&err);
    if message.contains("Operation not permitted") {
        TraceUnavailable::NotPermitted(message)
    } else {
        TraceUnavailable::Object(message)
    }
}

fn verifier_error(program: &'static str, err: ProgramError) -> TraceUnavailable {
    let message = match &err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => format!("{io_error}; verifier log:\n{verifier_log}"),
        other => error_chain(other),
    };
    TraceUnavailable::Load { program, message }
}

fn attach_error(
    program: &'static str,
    attach_point: &'static str,
    err: ProgramError,
) -> TraceUnavailable {
    TraceUnavailable::Attach {
        program,
        attach_point,
        message: error_chain(&err),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_bpf_plus_perfmon_may_trace() {
        assert!(caps_allow_tracing(0x1ff_ffff_ffff)); // root's full set
        assert!(caps_allow_tracing(1 << CAP_SYS_ADMIN));
        assert!(caps_allow_tracing((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_allow_tracing(1 << CAP_BPF));
        assert!(!caps_allow_tracing(0));
    }

    #[test]
    fn reads_the_effective_capabilities() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name:\tcat\n"), None);
    }

    #[test]
    fn timeline_records_parse_and_short_ones_are_rejected() {
        let mut bytes = Vec::new();
        for v in [7u32, 8, 110, 0] {
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        bytes.extend_from_slice(&123_456u64.to_ne_bytes());
        bytes.extend_from_slice(&789u64.to_ne_bytes());
        let event = parse_event(&bytes).unwrap();
        assert_eq!(
            event,
            Event {
                pid: 7,
                tid: 8,
                nr: 110,
                start_ns: 123_456,
                dur_ns: 789
            }
        );
        assert_eq!(parse_event(&bytes[..31]), None);
    }

    #[test]
    fn path_records_parse_in_the_shared_layout() {
        let mut bytes = Vec::new();
        for v in [7u32, 8, 257, 0] {
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        for v in [(-100i64) as u64, 0x1000, 0] {
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        bytes.extend_from_slice(&(-2i64).to_ne_bytes());
        bytes.extend_from_slice(&3u32.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        let mut path = [0u8; PATH_CAPTURE];
        path[..3].copy_from_slice(b"a/b");
        bytes.extend_from_slice(&path);
        assert_eq!(bytes.len(), std::mem::size_of::<PathRecord>());
        let rec = parse_path_record(&bytes).unwrap();
        assert_eq!((rec.pid, rec.tid, rec.nr, rec.kind), (7, 8, 257, 0));
        assert_eq!(rec.args[0] as i64, -100);
        assert_eq!((rec.ret, rec.path_len), (-2, 3));
        assert_eq!(&rec.path[..3], b"a/b");
        assert!(parse_path_record(&bytes[..bytes.len() - 1]).is_none());
    }
}
