//! The tracer against the real kernel: exact counts for the traced tree only, children
//! followed across fork, exec and threads. These need root and eBPF; they skip (saying
//! why) only when the machine lacks them, and fail on anything else.

use std::{
    ffi::CString,
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use super::{
    gate::{spawn_gated, StartGate},
    syscall_names::syscall_number,
    EbpfTracer, TraceData, TraceOptions, TraceUnavailable,
};

const MISSING_A: &str = "/nonexistent-vrift-trace/a";
const MISSING_B: &str = "/nonexistent-vrift-trace/b";

/// Unwraps a tracer, or says why the machine cannot trace and returns `None`.
fn or_skip(result: Result<EbpfTracer, TraceUnavailable>) -> Option<EbpfTracer> {
    match result {
        Ok(tracer) => Some(tracer),
        Err(err) if err.is_environment() => {
            eprintln!("skipped: {err}");
            None
        }
        Err(err) => panic!("eBPF tracing failed: {err}"),
    }
}

fn calls(data: &TraceData, name: &str) -> u64 {
    let nr = syscall_number(name).expect("known syscall");
    data.per_syscall
        .iter()
        .find(|r| r.nr == nr)
        .map_or(0, |r| r.calls)
}

/// Forks a child that waits on `gate`, runs `work` (raw syscalls only: it runs in a fork of
/// a multi-threaded process) and exits.
fn fork_gated(gate: &StartGate, work: impl Fn()) -> libc::pid_t {
    // SAFETY: the child only makes raw syscalls (no allocation, no locks) and `_exit`s.
    match unsafe { libc::fork() } {
        0 => {
            if gate.wait_in_child() {
                work();
            }
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        pid => pid,
    }
}

fn wait_exit(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid int to fill.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

/// The three syscalls the tests count: none is made by process start-up or exit.
fn make_syscalls(getppid: u32, statfs: u32, chdir: u32, a: &CString, b: &CString) {
    let mut buf = [0u8; 256];
    for _ in 0..getppid {
        // SAFETY: getppid takes no arguments.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    for _ in 0..statfs {
        // SAFETY: a valid path and a buffer larger than struct statfs; it fails with ENOENT.
        unsafe { libc::syscall(libc::SYS_statfs, a.as_ptr(), buf.as_mut_ptr()) };
    }
    for _ in 0..chdir {
        // SAFETY: a valid path; it fails with ENOENT.
        unsafe { libc::syscall(libc::SYS_chdir, b.as_ptr()) };
    }
}

/// A process outside the traced tree making the same syscalls as fast as it can; counts
/// its rounds in shared memory so the test can prove it was busy during the trace.
struct Noise {
    pid: libc::pid_t,
    rounds: &'static AtomicU64,
}

impl Noise {
    fn start(a: &CString, b: &CString) -> Self {
        // SAFETY: a fresh shared anonymous mapping of one page, never unmapped (leaked on
        // purpose: the child writes it until killed).
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        // SAFETY: the page is zeroed, aligned and lives forever; AtomicU64 has u64's layout.
        let rounds: &'static AtomicU64 = unsafe { &*(page as *const AtomicU64) };
        // SAFETY: the child makes raw syscalls and atomic stores only, until killed.
        let pid = match unsafe { libc::fork() } {
            0 => loop {
                make_syscalls(10, 10, 10, a, b);
                rounds.fetch_add(1, Ordering::Relaxed);
            },
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            pid => pid,
        };
        while rounds.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        Self { pid, rounds }
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        // SAFETY: kills and reaps our own child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        wait_exit(self.pid);
    }
}

#[test]
fn counts_are_exact_for_the_traced_process_and_exclude_a_noisy_neighbour() {
    let (a, b) = (
        CString::new(MISSING_A).unwrap(),
        CString::new(MISSING_B).unwrap(),
    );
    let noise = Noise::start(&a, &b);
    let gate = StartGate::new().unwrap();
    let child = fork_gated(&gate, || make_syscalls(1000, 500, 250, &a, &b));
    let Some(tracer) = or_skip(EbpfTracer::start(child as u32)) else {
        drop(gate);
        wait_exit(child);
        return;
    };
    let noise_before = noise.rounds.load(Ordering::Relaxed);
    gate.open().unwrap();
    assert_eq!(wait_exit(child), 0);
    // Keep tracing until the neighbour has provably made syscalls meanwhile.
    while noise.rounds.load(Ordering::Relaxed) < noise_before + 2 {
        std::thread::yield_now();
    }
    let data = tracer.finish().unwrap();
    drop(noise);

    assert_eq!(calls(&data, "getppid"), 1000, "{:#?}", data.per_syscall);
    assert_eq!(calls(&data, "statfs"), 500);
    assert_eq!(calls(&data, "chdir"), 250);
    assert_eq!(calls(&data, "exit_group"), 1);
    // Nothing else but the end of the gate's read (and its close, if not yet done).
    for row in &data.per_syscall {
        assert!(
            ["getppid", "statfs", "chdir", "exit_group", "read", "close"]
                .contains(&row.name.as_str()),
            "unexpected syscall in the traced child: {row:?}"
        );
    }
    let getppid = data
        .per_syscall
        .iter()
        .find(|r| r.name == "getppid")
        .unwrap();
    assert_eq!(getppid.timed, 1000);
    assert!(getppid.total_ns > 0 && getppid.p50_ns.is_some() && getppid.p99_ns.is_some());
    assert!(getppid.p50_ns <= getppid.p99_ns);

    assert_eq!(data.dropped, 0);
    assert!(data.events.iter().all(|e| e.pid == child as u32));
    let getppid_nr = syscall_number("getppid").unwrap();
    let timeline = data.events.iter().filter(|e| e.nr == getppid_nr).count();
    assert_eq!(timeline, 1000);
    assert!(data
        .events
        .iter()
        .all(|e| e.start_ns >= data.clock_start_ns));
}

const TREE_PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

static void getppid_n(int n) { for (int i = 0; i < n; i++) syscall(SYS_getppid); }

static void *thread_main(void *arg) {
    struct statfs s;
    for (int i = 0; i < 50; i++) statfs("/nonexistent-vrift-trace/t", &s);
    return arg;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0) { getppid_n(300); return 0; }
    pid_t child = fork();                       /* fork, then exec: 300 */
    if (child == 0) { execl("/proc/self/exe", argv[0], "exec-child", (char *)0); _exit(127); }
    pthread_t t;                                /* a thread: 50 statfs */
    pthread_create(&t, 0, thread_main, 0);
    pthread_join(t, 0);
    getppid_n(100);                             /* the root itself: 100 */
    int status;
    waitpid(child, &status, 0);
    pid_t mid = fork();                         /* a grandchild: 7 */
    if (mid == 0) {
        pid_t leaf = fork();
        if (leaf == 0) { getppid_n(7); _exit(0); }
        waitpid(leaf, 0, 0);
        _exit(0);
    }
    waitpid(mid, 0, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"#;

#[test]
fn children_are_followed_across_fork_exec_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tree.c");
    let program = dir.path().join("tree");
    std::fs::write(&source, TREE_PROGRAM).unwrap();
    let gcc = Command::new("gcc")
        .arg("-O1")
        .arg("-pthread")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status()
        .expect("gcc is installed by scripts/setup.sh");
    assert!(gcc.success());

    let (mut child, tracer) = spawn_gated(&mut Command::new(&program), EbpfTracer::start).unwrap();
    let Some(tracer) = or_skip(tracer) else {
        child.wait().unwrap();
        return;
    };
    assert!(child.wait().unwrap().success());
    let data = tracer.finish().unwrap();

    assert_eq!(
        calls(&data, "getppid"),
        300 + 100 + 7,
        "{:#?}",
        data.per_syscall
    );
    assert_eq!(calls(&data, "statfs"), 50);
    assert_eq!(calls(&data, "execve"), 2, "the root's exec and the child's");
    assert_eq!(
        calls(&data, "exit_group"),
        4,
        "root, exec'd child, two grandchildren"
    );

    let root = child.id();
    let pids: std::collections::BTreeSet<u32> = data.events.iter().map(|e| e.pid).collect();
    assert!(pids.contains(&root));
    assert_eq!(
        pids.len(),
        4,
        "root, exec'd child, two grandchildren: {pids:?}"
    );
    let statfs_nr = syscall_number("statfs").unwrap();
    let statfs: Vec<_> = data.events.iter().filter(|e| e.nr == statfs_nr).collect();
    assert_eq!(statfs.len(), 50);
    assert!(
        statfs.iter().all(|e| e.pid == root && e.tid != root),
        "statfs runs in the root's second thread"
    );
}

#[test]
fn statistics_only_mode_keeps_counts_and_sends_no_timeline() {
    let (a, b) = (
        CString::new(MISSING_A).unwrap(),
        CString::new(MISSING_B).unwrap(),
    );
    let gate = StartGate::new().unwrap();
    let child = fork_gated(&gate, || make_syscalls(321, 0, 0, &a, &b));
    let options = TraceOptions {
        record_events: false,
        ..TraceOptions::default()
    };
    let Some(tracer) = or_skip(EbpfTracer::start_with(child as u32, options)) else {
        drop(gate);
        wait_exit(child);
        return;
    };
    gate.open().unwrap();
    wait_exit(child);
    let data = tracer.finish().unwrap();
    assert_eq!(calls(&data, "getppid"), 321);
    assert!(data.events.is_empty());
}

/// Overhead of tracing on a tight loop of cheap syscalls. Run by hand:
/// `cargo test -p vrift-supervisor --release -- --ignored --nocapture tracing_overhead`
#[test]
#[ignore = "a measurement, not a check; run by hand"]
fn tracing_overhead() {
    const CALLS: u32 = 1_000_000;
    const RUNS: usize = 7;
    let (a, b) = (
        CString::new(MISSING_A).unwrap(),
        CString::new(MISSING_B).unwrap(),
    );
    // `traced == false`: the programs run for every syscall but the child is not in the
    // traced tree (pid 1 is), which is what every other process pays meanwhile.
    let run_with = |mode: Option<TraceOptions>, traced: bool| -> Duration {
        let gate = StartGate::new().unwrap();
        let child = fork_gated(&gate, || make_syscalls(CALLS, 0, 0, &a, &b));
        let root = if traced { child as u32 } else { 1 };
        let tracer = mode.map(|o| EbpfTracer::start_with(root, o).unwrap());
        let start = Instant::now();
        gate.open().unwrap();
        wait_exit(child);
        let elapsed = start.elapsed();
        if let Some(tracer) = tracer {
            let data = tracer.finish().unwrap();
            if traced {
                assert_eq!(calls(&data, "getppid"), u64::from(CALLS));
            }
        }
        elapsed
    };
    let run = |mode: Option<TraceOptions>| run_with(mode, true);
    let median_of = |run: &dyn Fn() -> Duration| {
        let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
        times.sort();
        times[RUNS / 2]
    };
    let median = |mode: Option<TraceOptions>| {
        let mut times: Vec<Duration> = (0..RUNS).map(|_| run(mode.clone())).collect();
        times.sort();
        times[RUNS / 2]
    };
    let stats_only = TraceOptions {
        record_events: false,
        ..TraceOptions::default()
    };
    let base = median(None);
    let stats = median(Some(stats_only));
    let full = median(Some(TraceOptions::default()));
    let bystander = median_of(&|| run_with(Some(TraceOptions::default()), false));
    let per_call = |d: Duration| d.as_nanos() as f64 / f64::from(CALLS);
    println!(
        "{CALLS} getppid, median of {RUNS}: untraced {base:?} ({:.0} ns/call); \
         statistics {stats:?} ({:.0} ns/call, x{:.2}); statistics + timeline {full:?} \
         ({:.0} ns/call, x{:.2})",
        per_call(base),
        per_call(stats),
        stats.as_secs_f64() / base.as_secs_f64(),
        per_call(full),
        full.as_secs_f64() / base.as_secs_f64(),
    );
    println!(
        "a process outside the traced tree while tracing: {bystander:?} ({:.0} ns/call, x{:.2})",
        per_call(bystander),
        bystander.as_secs_f64() / base.as_secs_f64(),
    );
}
