//! Exit status and signals: `vrift run` ends with the program's status (128+N when a signal
//! killed it), passes SIGTERM/SIGINT/SIGHUP on to the program, and when vrift itself is
//! killed, the program tree does not run on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

/// An env with an empty-ish view at `proj` and a real directory `out` outside it.
fn setup() -> (Env, PathBuf, PathBuf, PathBuf) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let out = env.mkdir("out");
    let m = env.dir.path().join("view.manifest");
    make_manifest(&env, &m, &[Node::File("hello.txt", b"hello\n", 0o644)]);
    (env, proj, out, m)
}

fn exit_code(env: &Env, proj: &Path, m: &Path, script: &str) -> Option<i32> {
    let bb = busybox();
    let out = vrift_run(env, proj, m, &[&bb, "sh", "-c", script])
        .output()
        .unwrap();
    out.status.code()
}

projections! {
    fn exit_status_is_the_programs() {
    let (env, proj, _out, m) = setup();
    assert_eq!(exit_code(&env, &proj, &m, "exit 7"), Some(7));
    assert_eq!(exit_code(&env, &proj, &m, "exit 0"), Some(0));
    assert_eq!(exit_code(&env, &proj, &m, "exit 255"), Some(255));
    assert_eq!(
        exit_code(&env, &proj, &m, "cat hello.txt >/dev/null; exit 42"),
        Some(42)
    );
    // A command that is not found in the view or on PATH: the shell's 127.
    assert_eq!(exit_code(&env, &proj, &m, "./not-there"), Some(127));
}
}

projections! {
    fn killed_by_a_signal_gives_128_plus_n() {
    let (env, proj, _out, m) = setup();
    assert_eq!(exit_code(&env, &proj, &m, "kill -KILL $$"), Some(128 + 9));
    assert_eq!(exit_code(&env, &proj, &m, "kill -USR1 $$"), Some(128 + 10));
    assert_eq!(exit_code(&env, &proj, &m, "kill -TERM $$"), Some(128 + 15));
}
}

/// Wait (bounded) for `path` to hold `content`.
fn wait_for_content(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(20), || {
        last = std::fs::read_to_string(path).unwrap_or_default();
        pred(&last)
    });
    assert!(
        ok,
        "{} never got the expected content (last: {last:?})",
        path.display()
    );
    last
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}

fn send(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Kills a child still running when a test fails, so nothing is left behind.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn forwarded(sig: &str, code: i32, as_user: bool) {
    let (env, proj, out, m) = setup();
    if as_user {
        env.give_to_nobody();
    }
    let o = out.display();
    let script = format!(
        "trap 'echo {sig} > {o}/got; exit {code}' {sig}
         read x < hello.txt
         echo \"$x $$\" > {o}/ready
         sleep 1000 & wait $!
         echo wait returned without the trap > {o}/got"
    );
    let bb = busybox();
    let args = run_args(&m, None, &[&bb, "sh", "-c", &script]);
    let mut cmd = env.vrift_as(as_user, &proj, &args);
    let child = cmd.stdin(Stdio::null()).spawn().unwrap();
    let mut child = Reap(child);
    // The trap is installed once the marker exists (and the view served hello.txt).
    wait_for_content(&out.join("ready"), |s| {
        s.starts_with("hello ") && s.ends_with('\n')
    });
    // As an ordinary user, vrift runs under setpriv, which execs it: same pid.
    send(child.0.id(), sig);
    let status = wait_exit(&mut child.0, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("vrift did not end after SIG{sig}"));
    assert_eq!(
        std::fs::read_to_string(out.join("got")).unwrap_or_default(),
        format!("{sig}\n")
    );
    assert_eq!(
        status.code(),
        Some(code),
        "vrift's exit status after SIG{sig}"
    );
}

projections! {
    fn sigterm_to_vrift_reaches_the_program() {
    forwarded("TERM", 10, false);
}
}

projections! {
    fn sigint_to_vrift_reaches_the_program() {
    forwarded("INT", 11, false);
}
}

projections! {
    fn sighup_to_vrift_reaches_the_program() {
    forwarded("HUP", 12, false);
}
}

projections! {
    fn sigterm_reaches_the_program_of_an_ordinary_user() {
    forwarded("TERM", 13, true);
}
}

/// Is process `pid` gone (no such process, or a zombie that can run no more)?
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            let state = s
                .rsplit_once(") ")
                .map(|(_, r)| r.chars().next().unwrap_or('?'));
            state == Some('Z') || state == Some('X')
        }
    }
}

/// Kills pids still alive when the test ends, so a failure leaves no writer behind.
struct KillOnDrop(Vec<u32>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            if !gone(*p) {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
        }
    }
}

projections! {
    fn killing_vrift_stops_the_program_tree() {
    let (env, proj, out, m) = setup();
    let o = out.display();
    let bb = busybox();
    // The program runs in its own pid namespace, so the pids it sees are not the host's:
    // its processes are found on the host by a marker in their command lines.
    let marker = format!("vrift-kill-marker-{}", std::process::id());
    // The writer is a grandchild with its own fd on the file: neither a parent-death
    // signal on the direct child nor a dead supervisor (which fails notified calls) stops
    // it; only ending the tree does.
    let writer = format!("exec 3>>{o}/grow; : {marker}; while :; do echo x >&3; done");
    let script = format!(": {marker}; {bb} sh -c '{writer}' & wait");
    let child = vrift_run(&env, &proj, &m, &[&bb, "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let grow = out.join("grow");
    let size = || std::fs::metadata(&grow).map(|m| m.len()).unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(20), || size() > 0),
        "the writer never wrote"
    );
    let tree = pids_with(&marker);
    assert!(tree.len() >= 2, "shell and writer not found: {tree:?}");
    let _cleanup = KillOnDrop(tree.clone());

    send(child.0.id(), "KILL");
    child.0.wait().unwrap();
    let ended = wait_until(Duration::from_secs(10), || pids_with(&marker).is_empty());
    assert!(
        ended,
        "after SIGKILL to vrift the program tree runs on: {:?} of {tree:?} still there",
        pids_with(&marker)
    );
    // Gone processes write nothing more.
    let s1 = size();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(size(), s1, "{} still grows", grow.display());
}
}

/// Host pids of live processes whose command line holds `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) {
            out.push(pid);
        }
    }
    out
}
