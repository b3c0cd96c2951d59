//! `vrift run --isolate`: the program sees only what vrift gives it. Each check of
//! tests/programs/escape.c is one way out of a sandbox (docs/SECURITY.md says what each
//! shows); every one must be blocked, as root and as an ordinary user, under every
//! projection, over the minimal set and over a busybox root file system. The same list runs
//! under bubblewrap for comparison.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use vrift_tests::*;

/// A project holding the escape program and its symlinks, a secret outside it, a host
/// process and a loopback listener to reach for.
struct Fixture {
    env: Env,
    proj: PathBuf,
    secret: PathBuf,
    host: Child,
    _listener: TcpListener,
    port: u16,
    as_user: bool,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
    }
}

impl Fixture {
    fn new(as_user: bool) -> Fixture {
        use std::os::unix::fs::PermissionsExt;
        let env = Env::new();
        let proj = env.mkdir("proj");
        let out = env.mkdir("out");
        let secret = out.join("secret");
        write(&secret, "TOPSECRET\n");
        // Readable by anyone: only the isolation keeps it from the program.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let escape = build_static_c("gcc", "escape.c", &[]);
        std::fs::copy(&escape, proj.join("escape")).unwrap();
        std::os::unix::fs::symlink(&secret, proj.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../out/secret", proj.join("rel-link")).unwrap();
        write(&proj.join("a.txt"), "from the project\n");
        if as_user {
            env.give_to_nobody();
        }
        let host = Command::new("sleep").arg("600").spawn().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Fixture {
            env,
            proj,
            secret,
            host,
            _listener: listener,
            port,
            as_user,
        }
    }

    fn vrift(&self, args: &[&str]) -> Command {
        if self.as_user {
            self.env.vrift_as_user(&self.proj, args)
        } else {
            self.env.vrift(&self.proj, args)
        }
    }

    /// The escape program's arguments.
    fn escape_args(&self) -> Vec<String> {
        vec![
            "./escape".into(),
            self.secret.display().to_string(),
            self.host.id().to_string(),
            self.port.to_string(),
            "7".into(),
        ]
    }

    /// Run `cmd` with fd 7 open on the secret (as a careless caller would leave it).
    fn run_with_fd7(&self, cmd: Command) -> std::process::Output {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("exec 7<\"$0\"; exec \"$@\"")
            .arg(&self.secret)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        if let Some(d) = cmd.get_current_dir() {
            sh.current_dir(d);
        }
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        output_within(&mut sh, RUN_TIMEOUT)
    }

    /// `vrift run --isolate EXTRA -- ./escape ...`: its report, one line per check.
    fn escape(&self, extra: &[&str]) -> String {
        let args = self.escape_args();
        let mut a = vec!["run", "--isolate"];
        a.extend_from_slice(extra);
        a.push("--");
        a.extend(args.iter().map(String::as_str));
        let out = self.run_with_fd7(self.vrift(&a));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.lines().count() >= 15,
            "the escape program did not run to its end: {:?}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Nothing the program wrote outside the view reached the host.
    fn assert_nothing_written_outside(&self) {
        for p in [
            PathBuf::from("/written-from-sandbox"),
            PathBuf::from("/etc/written-from-sandbox"),
            PathBuf::from("/usr/written-from-sandbox"),
            self.secret.with_file_name("written-from-sandbox"),
        ] {
            assert!(!p.exists(), "{} was written from the sandbox", p.display());
        }
    }
}

/// Every check of the report was blocked.
fn assert_all_blocked(report: &str) {
    let escaped: Vec<&str> = report.lines().filter(|l| l.contains("ESCAPED")).collect();
    assert!(
        escaped.is_empty(),
        "escaped:\n{}\n\nwhole report:\n{report}",
        escaped.join("\n")
    );
}

/// A busybox root file system (relative links, so they work wherever it is mounted) and
/// its manifest, made with `vrift ingest DIR -o FILE`.
fn busybox_base(f: &Fixture) -> PathBuf {
    let root = f.env.mkdir("bbroot");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(require_tool("busybox"), bin.join("busybox")).unwrap();
    let list = stdout_ok(Command::new(require_tool("busybox")).arg("--list"));
    for app in list.lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", bin.join(app)).unwrap();
    }
    let manifest = f.env.dir.path().join("busybox.manifest");
    if f.as_user {
        f.env.give_to_nobody();
    }
    let before = real_tree(&root, &[]);
    let out = f.vrift(&[
        "ingest",
        root.to_str().unwrap(),
        "-o",
        manifest.to_str().unwrap(),
    ]);
    run_expect(&mut { out }, true);
    assert_eq!(
        before,
        real_tree(&root, &[]),
        "ingest wrote into the directory"
    );
    manifest
}

fn escapes_over_the_minimal_set(as_user: bool) {
    let f = Fixture::new(as_user);
    let report = f.escape(&[]);
    assert_all_blocked(&report);
    f.assert_nothing_written_outside();
}
matrix!(escapes_over_the_minimal_set_are_blocked => escapes_over_the_minimal_set, needs_namespaces = "--isolate needs namespaces and mounts");

fn escapes_over_a_base(as_user: bool) {
    let f = Fixture::new(as_user);
    let base = busybox_base(&f);
    let report = f.escape(&["--base", base.to_str().unwrap()]);
    assert_all_blocked(&report);
    f.assert_nothing_written_outside();
}
matrix!(escapes_over_a_busybox_base_are_blocked => escapes_over_a_base, needs_namespaces = "--isolate needs namespaces and mounts");

fn isolated_basics(as_user: bool) {
    let f = Fixture::new(as_user);
    let base = busybox_base(&f);
    let script = "hostname; id -u; ls /; ls /dev; cat a.txt; \
                  pwd; echo made > made.txt; echo t > /tmp/only-in-the-run; cat /tmp/only-in-the-run";
    let out = ok_within(
        &mut f.vrift(&[
            "run",
            "--isolate",
            "--base",
            base.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            script,
        ]),
        RUN_TIMEOUT,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let uid = if as_user && is_root() {
        65534
    } else {
        nix_uid()
    };
    let root_dir = f.proj.ancestors().last().unwrap();
    let first = f
        .proj
        .strip_prefix(root_dir)
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let first = first.to_str().unwrap();
    let mut want_root = vec!["bin", "dev", "proc", "tmp", first];
    want_root.sort();
    want_root.dedup();
    let want = format!(
        "vrift\n{uid}\n{}\nfd\nfull\nnull\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\nfrom the project\n{}\nt\n",
        want_root.join("\n"),
        f.proj.display()
    );
    assert_eq!(text, want);
    assert_eq!(
        std::fs::read_to_string(f.proj.join("made.txt")).unwrap(),
        "made\n"
    );
    assert!(!Path::new("/tmp/only-in-the-run").exists());
}
matrix!(an_isolated_run_has_its_own_root_tmp_dev_proc_hostname => isolated_basics, needs_namespaces = "--isolate needs namespaces and mounts");

fn nix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

projections! {
    needs_namespaces = "--isolate needs namespaces and mounts";
    fn net_keeps_the_host_network() {
        let f = Fixture::new(false);
        let report = f.escape(&["--net"]);
        let line = report.lines().find(|l| l.starts_with("host_loopback:")).unwrap();
        assert!(line.contains("connected"), "{line}");
    }
}

/// `vrift -v run --isolate LIMITS -- ./limits ARGS` in a project holding tests/programs/
/// limits.c, as root or as the ordinary user.
fn run_limits(as_user: bool, limits: &[&str], args: &[&str]) -> std::process::Output {
    let env = Env::new();
    let proj = env.mkdir("proj");
    std::fs::copy(build_static_c("gcc", "limits.c", &[]), proj.join("limits")).unwrap();
    if as_user {
        env.give_to_nobody();
    }
    let mut a = vec!["-v", "run", "--isolate"];
    a.extend_from_slice(limits);
    a.extend(["--", "./limits"]);
    a.extend_from_slice(args);
    let mut c = env.vrift_as(as_user, &proj, &a);
    output_within(&mut c, RUN_TIMEOUT)
}

/// True when root can set limits here (a cgroup v1 or delegated v2 hierarchy with the
/// controller); otherwise says why the test checks less.
fn limits_usable(controller: &str) -> bool {
    if cgroup_v1_has(controller) || cgroup_v2_delegates(controller) {
        return true;
    }
    eprintln!("skipped: no cgroup hierarchy here has the {controller} controller");
    false
}

/// The run's cgroups named by `-v` ("limits in cgroup v1 DIR, ..."), each gone by now.
fn assert_cgroups_removed(stderr: &str) {
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("limits in cgroup ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("-v did not name the run's cgroup: {stderr}"));
    for part in line.split(", ") {
        let dir = part.split_once(' ').unwrap().1;
        assert!(dir.contains("vrift-"), "{dir}");
        assert!(!Path::new(dir).exists(), "{dir} is left behind");
    }
}

projections! {
    needs_namespaces = "--isolate needs namespaces and mounts";
    fn pids_limit_stops_a_fork_loop() {
        if !limits_usable("pids") {
            return;
        }
        let out = run_limits(false, &["--pids", "16"], &["fork"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        let n: u32 = stdout
            .strip_prefix("forked ")
            .and_then(|r| r.strip_suffix(" then EAGAIN\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("fork did not stop with EAGAIN: {stdout:?}\n{stderr}"));
        // 16 tasks at most: the program, its init, and the children.
        assert!((1..=15).contains(&n), "forked {n} children under --pids 16");
        assert_cgroups_removed(&stderr);
    }
}

projections! {
    needs_namespaces = "--isolate needs namespaces and mounts";
    fn memory_limit_kills_a_program_that_allocates_more() {
        if !limits_usable("memory") {
            return;
        }
        let out = run_limits(false, &["--memory", "64M"], &["alloc", "256"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + 9), "{stdout}\n{stderr}");
        assert!(!stdout.contains("allocated"), "{stdout}");
        assert!(stderr.contains("ran out of memory"), "{stderr}");
        assert_cgroups_removed(&stderr);
        // Under the limit the same program runs to its end.
        let out = run_limits(false, &["--memory", "64M"], &["alloc", "16"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "allocated 16 MiB\n");
    }
}

projections! {
    needs_namespaces = "--isolate needs namespaces and mounts";
    fn limits_an_ordinary_user_cannot_set_are_refused_with_the_cause() {
        if !is_root() || cgroup_v2_delegates("pids") {
            eprintln!("skipped: needs root to act as the ordinary user, and no delegated v2");
            return;
        }
        let out = run_limits(true, &["--pids", "16"], &["fork"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(out.stdout.is_empty(), "the program ran");
        assert!(err.contains("--pids: no cgroup can take the limit here"), "{err}");
        assert!(err.contains("cgroup v2"), "{err}");
        if cgroup_v1_has("pids") {
            assert!(err.contains("not writable by you"), "{err}");
        }
    }
}

/// bubblewrap with the same outside isolation: the minimal set's directories read-only,
/// its own /proc, /dev and /tmp, the project bound, every namespace unshared.
fn bwrap_escape(f: &Fixture) -> String {
    let bwrap = require_tool("bwrap");
    let proj = f.proj.to_str().unwrap();
    let mut c = if f.as_user && is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        c.arg(&bwrap);
        c
    } else {
        Command::new(&bwrap)
    };
    c.args([
        "--unshare-all",
        "--die-with-parent",
        "--ro-bind",
        "/usr",
        "/usr",
    ]);
    for l in ["bin", "sbin", "lib", "lib64"] {
        if let Ok(t) = std::fs::read_link(Path::new("/").join(l)) {
            c.args(["--symlink", t.to_str().unwrap(), &format!("/{l}")]);
        }
    }
    c.args([
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", proj, proj,
    ]);
    c.args(["--chdir", proj]);
    c.args(f.escape_args());
    c.current_dir(&f.proj);
    let out = f.run_with_fd7(c);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bwrap_comparison(as_user: bool) {
    let f = Fixture::new(as_user);
    let theirs = bwrap_escape(&f);
    let ours = f.escape(&[]);
    eprintln!("bubblewrap:\n{theirs}\nvrift --isolate:\n{ours}");
    assert_all_blocked(&ours);
    // bubblewrap blocks the same list but one: it leaves inherited descriptors open.
    for line in theirs.lines() {
        if line.starts_with("inherited_fd:") {
            assert!(
                line.contains("ESCAPED"),
                "bubblewrap closes fds now: {line}"
            );
        } else {
            assert!(line.contains("blocked"), "bubblewrap: {line}");
        }
    }
    assert!(
        theirs.lines().count() >= 15,
        "bubblewrap did not run the list:\n{theirs}"
    );
    f.assert_nothing_written_outside();
}

#[test]
fn bubblewrap_on_the_same_list_as_root() {
    with_projection("overlay", || bwrap_comparison(false));
}

#[test]
fn bubblewrap_on_the_same_list_as_user() {
    with_projection("overlay", || bwrap_comparison(true));
}

#[test]
fn ingest_refuses_to_write_into_the_directory() {
    let env = Env::new();
    let dir = env.mkdir("tree");
    write(&dir.join("f"), "x");
    let inside = dir.join("m.manifest");
    let out = run_expect(
        &mut env.vrift(
            env.dir.path(),
            &[
                "ingest",
                dir.to_str().unwrap(),
                "-o",
                inside.to_str().unwrap(),
            ],
        ),
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(inside.to_str().unwrap()) && err.contains("inside"),
        "{err}"
    );
    assert!(!inside.exists());
    let missing = env.dir.path().join("nope");
    let out = run_expect(
        &mut env.vrift(
            env.dir.path(),
            &["ingest", missing.to_str().unwrap(), "-o", "x.manifest"],
        ),
        false,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing.to_str().unwrap()));
}
