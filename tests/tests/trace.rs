//! `vrift trace`: exact counts per syscall and per way of serving, only the traced process
//! tree, a report for people, JSON for tools, a timeline, and an honest fallback without eBPF.

use std::process::{Command, Stdio};

use serde_json::Value;
use vrift_tests::*;

fn setup(env: &Env) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let proj = env.mkdir("proj");
    let outside = env.mkdir("outside").join("plain.txt");
    write(&outside, "outside the view\n");
    let tool = std::fs::read(build_static_c("gcc", "tracecounts.c", &[])).unwrap();
    let m = env.dir.path().join("view.manifest");
    let mut nodes = vec![Node::Dir("data", 0o755), Node::File("tool", &tool, 0o755)];
    let names: Vec<String> = (0..10).map(|i| format!("data/f{i}")).collect();
    for n in &names {
        nodes.push(Node::File(n, b"x", 0o644));
    }
    make_manifest(env, &m, &nodes);
    (proj, outside, m)
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["file_syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {report:#}"))
}

fn trace(
    env: &Env,
    proj: &std::path::Path,
    m: &std::path::Path,
    outside: &std::path::Path,
    as_user: bool,
) -> (Value, String) {
    let json = env.dir.path().join("report.json");
    let chrome = env.dir.path().join("timeline.json");
    let mut args = vec![
        "trace".to_string(),
        "--manifest".into(),
        m.display().to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    if !as_user {
        args.push("--chrome-trace".into());
        args.push(chrome.display().to_string());
    }
    args.extend(["--".into(), "./tool".into(), outside.display().to_string()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = if as_user {
        env.vrift_as_user(proj, &a)
    } else {
        env.vrift(proj, &a)
    };
    let out = run_expect(&mut cmd, true);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (report, text)
}

#[test]
fn counts_are_exact_and_only_the_traced_tree_is_counted() {
    let env = Env::new();
    let (proj, outside, m) = setup(&env);
    // A noisy neighbour making the same calls on the same files the whole time.
    let bb = require_tool("busybox");
    let mut noise = Command::new(&bb)
        .args([
            "sh",
            "-c",
            &format!(
                "while :; do stat {} >/dev/null; cat {} >/dev/null; done",
                outside.display(),
                outside.display()
            ),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (report, text) = trace(&env, &proj, &m, &outside, false);
    noise.kill().unwrap();
    noise.wait().unwrap();

    let stat = row(&report, "newfstatat");
    assert_eq!(stat["hit"], 1000, "{text}");
    assert_eq!(stat["miss"], 500, "{text}");
    let open = row(&report, "openat");
    assert_eq!(open["passthrough"], 250, "{text}");
    if is_root() {
        // CI runs as root with eBPF: the eBPF columns must be there, and agree.
        assert!(
            report["ebpf_missing"].is_null(),
            "eBPF unavailable as root: {text}"
        );
        assert_eq!(stat["calls"], 1500, "{text}");
        assert_eq!(open["calls"], 250, "{text}");
        assert!(open["p50_ns"].as_u64().is_some(), "{text}");
        // close is not a file call the supervisor sees: it is in the other table, exactly.
        let close = report["other_syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "close")
            .unwrap_or_else(|| panic!("no close row: {text}"));
        assert_eq!(close["calls"], 250, "{text}");
        let timeline: Value =
            serde_json::from_slice(&std::fs::read(env.dir.path().join("timeline.json")).unwrap())
                .unwrap();
        let events = timeline["traceEvents"].as_array().unwrap();
        let opens = events.iter().filter(|e| e["name"] == "openat").count();
        assert_eq!(opens, 250, "timeline openat events");
        assert!(events
            .iter()
            .all(|e| e["pid"].is_u64() && e["tid"].is_u64() && e["ph"] == "X"));
    }
    assert!(text.contains("file syscall"), "{text}");
    assert!(text.contains("hot misses"), "{text}");
    assert!(text.contains("data/missing"), "{text}");
}

#[test]
fn without_ebpf_the_supervisor_counts_remain_and_the_gap_is_explained() {
    let env = Env::new();
    let (proj, outside, m) = setup(&env);
    env.give_to_nobody();
    let (report, text) = trace(&env, &proj, &m, &outside, true);
    assert_eq!(row(&report, "newfstatat")["hit"], 1000, "{text}");
    assert_eq!(row(&report, "newfstatat")["miss"], 500, "{text}");
    assert_eq!(row(&report, "openat")["passthrough"], 250, "{text}");
    if is_root() {
        // Run as nobody: no CAP_BPF, so the eBPF columns are missing, and it says why.
        let why = report["ebpf_missing"]
            .as_str()
            .unwrap_or_else(|| panic!("{text}"));
        assert!(!why.is_empty());
        assert!(text.contains("are missing"), "{text}");
    }
}
