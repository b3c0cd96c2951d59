//! `vrift watch`: a watched project's runs take the last walk's manifest while nothing
//! changed, and see every change made between runs (files edited, made, removed, renamed,
//! chmodded; directories made deep, renamed, removed; the filters' own files), under every
//! projection, as root and as an ordinary user. A watcher that is gone, restarted or
//! stopped makes runs walk again.
//!
//! Whether a run walked is what `vrift -v run` says: "unchanged since the last walk" when
//! the watcher vouched for the project.

use std::path::Path;
use std::process::Command;

use vrift_tests::{busybox, matrix, ok_within, run_expect, write, Project, RUN_TIMEOUT};

const VOUCHED: &str = "unchanged since the last walk";

/// The project's watcher for the length of a test: `vrift watch --stop` when dropped.
struct Watch<'a> {
    p: &'a Project,
}

fn vrift(p: &Project, args: &[&str]) -> Command {
    p.env.vrift_as(p.as_user, &p.dir, args)
}

impl<'a> Watch<'a> {
    fn start(p: &'a Project) -> Watch<'a> {
        let out = String::from_utf8(run_expect(&mut vrift(p, &["watch"]), true).stdout).unwrap();
        assert!(out.starts_with("watching "), "{out}");
        Watch { p }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let _ = vrift(self.p, &["watch", "--stop"]).output();
    }
}

/// `vrift -v run -- busybox sh -c SCRIPT` in the project: what it printed, and whether the
/// watcher vouched for the project (no walk).
fn run(p: &Project, script: &str) -> (String, bool) {
    let (out, log) = run_logged(p, script);
    (out, log.contains(VOUCHED))
}

/// The same: what it printed, and what vrift said (`-v`).
fn run_logged(p: &Project, script: &str) -> (String, String) {
    let bb = busybox();
    let mut c = vrift(
        p,
        &["-v", "run", "--", bb.to_str().unwrap(), "sh", "-c", script],
    );
    c.env("LC_ALL", "C");
    let out = ok_within(&mut c, RUN_TIMEOUT);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `vrift -v run` says of a watched run's manifest: taken from the store, or read.
const MAPPED: &str = "the store's pinned copy, mapped";
const READ: &str = "read and hashed";

/// What the view shows of the tree: every path with its type, mode and content (vrift's
/// own files left out: the view does not show them).
const LIST: &str = "find . \\( -name vrift.manifest -o -name .vrift \\) -prune -o -print | sort | while read f; do \
    if [ -L \"$f\" ]; then echo \"$f -> $(readlink \"$f\")\"; \
    elif [ -d \"$f\" ]; then echo \"$f/ $(stat -c %a \"$f\")\"; \
    else echo \"$f $(stat -c %a \"$f\") $(cat \"$f\")\"; fi; done";

/// The same, of the real directory (natively, with the same busybox).
fn listing_on_disk(dir: &Path) -> String {
    let out = Command::new(busybox())
        .args(["sh", "-c", LIST])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn project(as_user: bool) -> Project {
    let mut p = Project::new(as_user);
    p.file("a.txt", "one\n", 0o644);
    p.file("src/b.txt", "bee\n", 0o644);
    p.file("src/deep/c.txt", "sea\n", 0o644);
    p.file(".vriftignore", "*.log\n", 0o644);
    run_expect(&mut p.env.vrift(&p.dir, &["init"]), true);
    p.ready();
    p
}

/// Change the project from outside (as the test's user: root, or the project's owner).
fn outside(p: &Project, script: &str) {
    let mut c = if p.as_user && vrift_tests::is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        c.arg(busybox());
        c
    } else {
        Command::new(busybox())
    };
    let out = c
        .args(["sh", "-c", script])
        .current_dir(&p.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn every_change_between_runs_is_seen(as_user: bool) {
    let p = project(as_user);
    let _w = Watch::start(&p);
    // The first run walks and records the walk; the next takes it.
    let (first, vouched) = run(&p, LIST);
    assert!(!vouched, "nothing recorded yet, so the first run walks");
    assert_eq!(first, listing_on_disk(&p.dir));
    let (again, vouched) = run(&p, LIST);
    assert!(vouched, "an unchanged watched project is not walked again");
    assert_eq!(again, first);

    let changes = [
        "echo two > a.txt",
        "echo new > src/new.txt",
        "rm src/b.txt",
        "chmod 600 src/deep/c.txt",
        "mkdir -p x/y/z && echo deep > x/y/z/f.txt",
        "echo deeper > x/y/z/g.txt",
        "mv src lib",
        "echo in-moved > lib/deep/d.txt",
        "rm -r x/y",
        "ln -s lib/deep/d.txt link",
        "touch -t 200101010000 a.txt",
        "echo skipped > a.log",
        "echo '*.txt' >> .vriftignore",
        "printf '*.log\\n' > .vriftignore",
    ];
    for change in changes {
        outside(&p, change);
        let (seen, vouched) = run(&p, LIST);
        assert!(!vouched, "after `{change}` the run walks");
        assert_eq!(seen, listing_on_disk(&p.dir), "after `{change}`");
        let (seen, vouched) = run(&p, LIST);
        assert!(
            vouched,
            "after `{change}` and a walk, the next run does not walk"
        );
        assert_eq!(seen, listing_on_disk(&p.dir), "after `{change}`, again");
    }
    // A run's own changes are written back, and seen by the next run.
    let (_, _) = run(&p, "echo from-a-run > run.txt && rm a.txt");
    let (seen, _) = run(&p, LIST);
    assert_eq!(seen, listing_on_disk(&p.dir));
    assert!(
        seen.contains("./run.txt 644 from-a-run") && !seen.contains("./a.txt"),
        "{seen}"
    );
    let (_, vouched) = run(&p, LIST);
    assert!(vouched);
    p.check_store();
}
matrix!(every_change_between_runs_of_a_watched_project_is_seen => every_change_between_runs_is_seen);

/// An unchanged project's run takes `vrift.manifest` from the store's pinned copy while the
/// file keeps the identity the walk saw. A file touched, or its pinned copy gone, is read
/// and hashed instead (still no walk); a file replaced by another manifest makes the run
/// walk, and the view is the disk's.
fn the_manifest_is_taken_only_while_it_is_the_one_the_walk_saw(as_user: bool) {
    let p = project(as_user);
    let _w = Watch::start(&p);
    let (first, vouched) = run(&p, LIST);
    assert!(!vouched);
    let (seen, log) = run_logged(&p, LIST);
    assert!(log.contains(VOUCHED) && log.contains(MAPPED), "{log}");
    assert_eq!(seen, first);
    let manifest = p.dir.join("vrift.manifest");
    // Touched: same bytes, another identity.
    outside(&p, "touch vrift.manifest");
    let (seen, log) = run_logged(&p, LIST);
    assert!(
        log.contains(VOUCHED) && log.contains(READ) && !log.contains(MAPPED),
        "a touched vrift.manifest with the same bytes is read, and still the one: {log}"
    );
    assert_eq!(seen, first);
    // The pinned copy gone from the store: the file is read.
    let hex = blake3::hash(&std::fs::read(&manifest).unwrap())
        .to_hex()
        .to_string();
    let pin = p.env.home().join("blobs").join(&hex[..2]).join(&hex[2..]);
    assert!(
        pin.is_file(),
        "the project's manifest is pinned in the store"
    );
    std::fs::remove_file(&pin).unwrap();
    let (seen, log) = run_logged(&p, LIST);
    assert!(log.contains(VOUCHED) && log.contains(READ), "{log}");
    assert_eq!(seen, first);
    // Replaced by the manifest of another tree: the run walks, and shows the disk.
    let other = Project::new(false);
    other.file("elsewhere.txt", "not here\n", 0o644);
    run_expect(&mut other.env.vrift(&other.dir, &["init"]), true);
    let replacement = p.dir.join("vrift.manifest.new");
    std::fs::copy(other.dir.join("vrift.manifest"), &replacement).unwrap();
    std::fs::rename(&replacement, &manifest).unwrap();
    let (seen, vouched) = run(&p, LIST);
    assert!(!vouched, "another vrift.manifest: the run walks");
    assert_eq!(seen, listing_on_disk(&p.dir));
    assert!(!seen.contains("elsewhere"), "{seen}");
    // That walk pinned the manifest it wrote, and recorded its identity again.
    let (again, log) = run_logged(&p, LIST);
    assert!(log.contains(VOUCHED) && log.contains(MAPPED), "{log}");
    assert_eq!(again, seen);
}
matrix!(a_watched_project_manifest_is_taken_only_while_unchanged => the_manifest_is_taken_only_while_it_is_the_one_the_walk_saw);

/// Kill the watcher with SIGKILL and make a change meanwhile; start another.
fn a_watcher_gone_or_restarted_makes_runs_walk(as_user: bool) {
    let p = project(as_user);
    let w = Watch::start(&p);
    run(&p, "true");
    assert!(run(&p, "true").1);
    let status =
        String::from_utf8(run_expect(&mut vrift(&p, &["watch", "--status"]), true).stdout).unwrap();
    let pid: i32 = status
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {status:?}"));
    assert!(status.contains("directories"), "{status}");
    nix_kill(pid);
    outside(&p, "echo changed > a.txt");
    let (seen, vouched) = run(&p, "cat a.txt");
    assert!(!vouched, "no watcher: the run walks");
    assert_eq!(seen, "changed\n");
    drop(w);
    // A new watcher: its count is not the old one's, so the old record does not match.
    let _w = Watch::start(&p);
    let (seen, vouched) = run(&p, "cat a.txt");
    assert!(
        !vouched,
        "a restarted watcher vouches for nothing it did not see"
    );
    assert_eq!(seen, "changed\n");
    assert!(run(&p, "cat a.txt").1);
    // Stopped: runs walk.
    let out =
        String::from_utf8(run_expect(&mut vrift(&p, &["watch", "--stop"]), true).stdout).unwrap();
    assert!(out.starts_with("stopped watching"), "{out}");
    let out =
        String::from_utf8(run_expect(&mut vrift(&p, &["watch", "--status"]), true).stdout).unwrap();
    assert!(out.contains("is not watched"), "{out}");
    outside(&p, "echo again > a.txt");
    let (seen, vouched) = run(&p, "cat a.txt");
    assert!(!vouched);
    assert_eq!(seen, "again\n");
}
matrix!(a_killed_restarted_or_stopped_watcher_makes_runs_walk => a_watcher_gone_or_restarted_makes_runs_walk);

fn nix_kill(pid: i32) {
    let ok = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {pid}");
    assert!(
        vrift_tests::wait_until(std::time::Duration::from_secs(10), || !alive(pid as u32)),
        "the watcher {pid} outlived SIGKILL"
    );
}

/// Is process `pid` still running (not gone, not a zombie nobody reaped yet)?
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rsplit(") ").next().and_then(|r| r.chars().next());
        !matches!(state, Some('Z' | 'X'))
    })
}

#[test]
fn watch_outside_a_project_says_so_and_fails() {
    let env = vrift_tests::Env::new();
    let dir = env.mkdir("plain");
    write(&dir.join("f"), "x");
    let out = run_expect(&mut env.vrift(&dir, &["watch"]), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no vrift.manifest") && err.contains("vrift init"),
        "{err}"
    );
}

#[test]
fn a_second_watch_of_a_watched_project_says_it_is_watched() {
    let p = project(false);
    let _w = Watch::start(&p);
    let out = String::from_utf8(run_expect(&mut vrift(&p, &["watch"]), true).stdout).unwrap();
    assert!(out.contains("is already watched"), "{out}");
    let out = run_expect(&mut vrift(&p, &["watch", "--foreground"]), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is already watched"), "{err}");
}

#[test]
fn a_project_removed_ends_its_watcher() {
    let p = project(false);
    let w = Watch::start(&p);
    let status =
        String::from_utf8(run_expect(&mut vrift(&p, &["watch", "--status"]), true).stdout).unwrap();
    let pid: u32 = status
        .split("pid ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::rename(&p.dir, p.env.dir.path().join("moved")).unwrap();
    assert!(
        vrift_tests::wait_until(std::time::Duration::from_secs(20), || !alive(pid)),
        "the watcher of a moved project exits"
    );
    std::mem::forget(w);
}
