//! The command line's conventions: examples in every command's --help, completions, man
//! pages, `vrift doctor`, -q, no colour off a terminal.

use vrift_tests::*;

const COMMANDS: &[&str] = &[
    "run",
    "trace",
    "init",
    "ingest",
    "status",
    "gc",
    "runs",
    "push",
    "pull",
    "doctor",
    "completions",
    "man",
];

#[test]
fn every_command_has_examples_in_its_help() {
    let env = Env::new();
    let top = stdout_ok(&mut env.vrift(env.dir.path(), &["--help"]));
    assert!(
        top.contains("Examples:") && top.contains("Exit status:"),
        "{top}"
    );
    for c in COMMANDS {
        let help = stdout_ok(&mut env.vrift(env.dir.path(), &[c, "--help"]));
        assert!(
            help.contains("Examples:"),
            "vrift {c} --help has no examples:\n{help}"
        );
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_ok(&mut env.vrift(env.dir.path(), &["completions", shell]));
        assert!(
            script.contains("isolate"),
            "{shell} completion lacks --isolate"
        );
    }
    let dir = env.dir.path().join("man");
    stdout_ok(&mut env.vrift(env.dir.path(), &["-q", "man", dir.to_str().unwrap()]));
    let run = std::fs::read_to_string(dir.join("vrift-run.1")).unwrap();
    assert!(run.contains("isolate"));
    assert!(dir.join("vrift.1").exists());
}

#[test]
fn doctor_reports_every_check_as_json() {
    let env = Env::new();
    let out = stdout_ok(&mut env.vrift(env.dir.path(), &["doctor", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for want in [
        "seccomp user notification",
        "seccomp ADDFD",
        "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP",
        "user namespaces",
        "overlay data-only layers (trusted xattrs)",
        "overlay data-only layers (userxattr)",
        "eBPF and tracefs",
        "cgroup limits",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // This machine runs the suite as root with user namespaces: those probes must work.
    let ok = |n: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == n && c["ok"] == true)
    };
    assert!(ok("user namespaces"));
    // The cgroup check names, per controller, the version that serves it or why none does.
    let cg = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "cgroup limits")
        .unwrap();
    let found = cg["found"].as_str().unwrap();
    for c in ["memory", "pids"] {
        assert!(
            found.contains(&format!("{c}: cgroup v1 at "))
                || found.contains(&format!("{c}: cgroup v2 at "))
                || found.contains(&format!("{c}: none (cgroup v2")),
            "{found}"
        );
    }
    if is_root() && cgroup_v1_has("pids") && cgroup_v1_has("memory") {
        assert!(
            ok("cgroup limits"),
            "root with cgroup v1 controllers: {found}"
        );
    }
    // Text off a terminal has no colour codes, even without NO_COLOR.
    let text = stdout_ok(&mut env.vrift(env.dir.path(), &["doctor"]));
    assert!(!text.contains('\x1b'), "{text:?}");
}

#[test]
fn run_writes_a_json_summary() {
    let env = Env::new();
    let dir = env.mkdir("proj");
    write(&dir.join("f"), "x");
    let summary = env.dir.path().join("summary.json");
    let out = run_expect(
        &mut env.vrift(
            &dir,
            &[
                "run",
                "--json",
                summary.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
        ),
        false,
    );
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(v["status"], 3);
    assert_eq!(v["isolate"], false);
    assert!(v["wall_ms"].as_f64().unwrap() > 0.0);
}

/// A directory of `n` small files and its manifest (`vrift ingest DIR -o FILE`).
fn large_tree(env: &Env, n: usize) -> std::path::PathBuf {
    let tree = env.mkdir("tree");
    for i in 0..n {
        let d = tree.join(format!("d{}", i % 50));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), format!("{i}\n")).unwrap();
    }
    let m = env.dir.path().join("tree.manifest");
    stdout_ok(&mut env.vrift(
        env.dir.path(),
        &[
            "-q",
            "ingest",
            tree.to_str().unwrap(),
            "-o",
            m.to_str().unwrap(),
        ],
    ));
    m
}

/// `vrift ARGS` under a pseudo-terminal (`script`), so stderr is a terminal: what it shows.
fn on_a_terminal(env: &Env, args: &[&str], extra_env: &[(&str, &str)]) -> String {
    let script = require_tool("script");
    let line = std::iter::once(vrift_bin().display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = std::process::Command::new(script);
    c.args(["-qec", &line, "/dev/null"])
        .current_dir(env.dir.path())
        .env("VRIFT_HOME", env.home())
        .env("VRIFT_PROJECTION", &env.projection)
        .envs(extra_env.iter().copied());
    let out = output_within(&mut c, RUN_TIMEOUT);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

projections! {
    needs_namespaces = "the shim alone builds neither a layer nor a link farm, and the test names its projection with --projection, which the no-namespaces axis is not";
    fn progress_shows_on_a_terminal_only() {
        let env = Env::new();
        let m = large_tree(&env, 3000);
        let view = env.dir.path().join("view");
        let args = [
            "run",
            "--manifest",
            m.to_str().unwrap(),
            "--mount",
            view.to_str().unwrap(),
            "--",
            "/bin/true",
        ];
        // Off a terminal nothing but the program's output, even with no delay at all.
        let out = run_expect(
            env.vrift(env.dir.path(), &args)
                .env("VRIFT_PROGRESS_DELAY_MS", "0"),
            true,
        );
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        // On a terminal, with -q: nothing either.
        let mut quiet = vec!["-q"];
        quiet.extend_from_slice(&args);
        let shown = on_a_terminal(&env, &quiet, &[("VRIFT_PROGRESS_DELAY_MS", "0")]);
        assert!(!shown.contains("building the view"), "{shown:?}");
        // With the cached layers gone the view is built again: the bar shows.
        std::fs::remove_dir_all(env.home().join("layers")).ok();
        let shown = on_a_terminal(&env, &args, &[("VRIFT_PROGRESS_DELAY_MS", "0")]);
        assert!(
            shown.contains("building the view's layer")
                || shown.contains("building the view's link farm"),
            "no progress on a terminal: {shown:?}"
        );
        // Short work under the usual delay draws nothing: the layer is cached now.
        if env.projection == "overlay" {
            let shown = on_a_terminal(&env, &args, &[]);
            assert!(!shown.contains("building the view"), "{shown:?}");
        }
        // gc --delete of many blobs shows its own bar.
        stdout_ok(&mut env.vrift(
            env.dir.path(),
            &["-q", "gc", "--forget", m.to_str().unwrap()],
        ));
        let shown = on_a_terminal(
            &env,
            &["gc", "--delete"],
            &[("VRIFT_PROGRESS_DELAY_MS", "0")],
        );
        assert!(shown.contains("deleting unreferenced blobs"), "{shown:?}");
    }
}

/// Colour on a terminal, and never with NO_COLOR (off a terminal there is none either:
/// `doctor_reports_every_check_as_json`). `vrift doctor` is the one command that colours;
/// progress bars have no colour.
#[test]
fn colour_on_a_terminal_unless_no_color() {
    let env = Env::new();
    let shown = on_a_terminal(&env, &["doctor"], &[]);
    assert!(
        shown.contains("\x1b[32m"),
        "no colour on a terminal: {shown:?}"
    );
    let shown = on_a_terminal(&env, &["doctor"], &[("NO_COLOR", "1")]);
    assert!(!shown.contains('\x1b'), "colour with NO_COLOR: {shown:?}");
}
