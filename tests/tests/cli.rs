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
        "cgroup v2 delegation",
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
