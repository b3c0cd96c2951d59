//! `vrift trace`: exact counts per syscall and per way of serving, only the traced process
//! tree, a report for people, JSON for tools, a timeline, and an honest fallback without eBPF.
//! Every projection gives the same classes: the supervisor from its own answers, the overlay
//! from the eBPF side's path records.

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

/// The projection a trace runs on: the one asked for, but for the shim, whose in-process
/// answers nothing could count (the shim alone traces as `auto` does, shim+supervisor
/// without the shim).
fn traced_by(env: &Env) -> &str {
    match env.projection.as_str() {
        "shim" if is_root() => "overlay",
        "shim" | "shim+supervisor" => "supervisor",
        p => p,
    }
}

/// `vrift trace --manifest M --json FILE -- PROGRAM` under `projection`: the report and what
/// vrift printed.
fn trace_under(
    env: &Env,
    proj: &std::path::Path,
    m: &std::path::Path,
    projection: &str,
    program: &[&str],
) -> (Value, String) {
    let json = env
        .dir
        .path()
        .join(format!("{}.json", projection.replace('+', "-")));
    let (m, json_s) = (m.display().to_string(), json.display().to_string());
    let mut args = vec!["trace", "--manifest", &m, "--json", &json_s, "--"];
    args.extend_from_slice(program);
    let mut cmd = env.vrift(proj, &args);
    cmd.env("VRIFT_PROJECTION", projection);
    let out = run_expect(&mut cmd, true);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (report, text)
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
    let mut cmd = env.vrift_as(as_user, proj, &a);
    let out = run_expect(&mut cmd, true);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (report, text)
}

projections! {
fn counts_are_exact_and_only_the_traced_tree_is_counted() {
    let env = Env::new();
    if env.projection == NO_NAMESPACES {
        // vrift trace measures a projection that mounts the view: where namespaces are
        // refused it says so and stops (`trace_without_namespaces_says_why`).
        return;
    }
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
    assert_eq!(report["projection"], traced_by(&env), "{text}");
    assert_eq!(report["unclassified"], 0, "{text}");
}
}

projections! {
fn without_ebpf_the_gap_is_explained() {
    let env = Env::new();
    if env.projection == NO_NAMESPACES {
        // vrift trace measures a projection that mounts the view: where namespaces are
        // refused it says so and stops (`trace_without_namespaces_says_why`).
        return;
    }
    let (proj, outside, m) = setup(&env);
    env.give_to_nobody();
    let (report, text) = trace(&env, &proj, &m, &outside, true);
    if report["projection"] == "supervisor" {
        // The supervisor's own counts need no eBPF.
        assert_eq!(row(&report, "newfstatat")["hit"], 1000, "{text}");
        assert_eq!(row(&report, "newfstatat")["miss"], 500, "{text}");
        assert_eq!(row(&report, "openat")["passthrough"], 250, "{text}");
        assert!(report["classes_missing"].is_null(), "{text}");
    }
    if is_root() {
        // Run as nobody: no CAP_BPF, so the eBPF columns are missing, and it says why.
        let why = report["ebpf_missing"]
            .as_str()
            .unwrap_or_else(|| panic!("{text}"));
        assert!(!why.is_empty());
        assert!(text.contains("are missing"), "{text}");
        if report["projection"] == "overlay" {
            // Nothing but eBPF sees the overlay's calls: no class is made up.
            let why = report["classes_missing"]
                .as_str()
                .unwrap_or_else(|| panic!("{text}"));
            assert!(why.contains("eBPF"), "{why}");
            assert!(text.contains("--projection supervisor"), "{text}");
            assert!(report["file_syscalls"].as_array().unwrap().is_empty(), "{text}");
        }
    }
}
}

/// With `auto`, a trace runs on the overlay where eBPF can classify its calls, and on the
/// supervisor where it cannot.
#[test]
fn auto_traces_on_the_overlay_with_ebpf_and_on_the_supervisor_without() {
    let env = Env::new();
    let (proj, outside, m) = setup(&env);
    let out_s = outside.display().to_string();
    let (report, text) = trace_under(&env, &proj, &m, "auto", &["./tool", &out_s]);
    if is_root() {
        assert_eq!(report["projection"], "overlay", "{text}");
    } else {
        assert_eq!(report["projection"], "supervisor", "{text}");
    }
    assert_eq!(row(&report, "newfstatat")["hit"], 1000, "{text}");
}

/// A shell that changes directory, opens directories and walks a tree with fds: the overlay's
/// classes (worked out from paths, cwd and fds the eBPF side saw) are the supervisor's.
#[test]
fn the_overlay_classifies_every_call_as_the_supervisor_does() {
    if !is_root() {
        eprintln!("not run: eBPF tracing needs root");
        return;
    }
    let env = Env::new();
    let (proj, outside, m) = setup(&env);
    let bb = require_tool("busybox");
    let script = format!(
        "cd data && cat f1 f2 nope 2>/dev/null; ls -la . >/dev/null; cd ..; \
         find . -name 'f*' | wc -l; (cd /; cat {out} >/dev/null); ls -R >/dev/null; \
         mkdir -p made/deeper && cd made && echo x > deeper/new && mv deeper/new n2; \
         rm -f ../data/missing; cat ../data/f3 >/dev/null; true",
        out = outside.display()
    );
    let mut reports = Vec::new();
    for projection in ["supervisor", "overlay"] {
        // Each run starts from the same view (a run saves its changes into its manifest).
        let own = env.dir.path().join(format!("{projection}.manifest"));
        std::fs::copy(&m, &own).unwrap();
        let bb = bb.display().to_string();
        let (report, text) =
            trace_under(&env, &proj, &own, projection, &[&bb, "sh", "-c", &script]);
        assert_eq!(report["unclassified"], 0, "{text}");
        let classes: Vec<(String, [u64; 4])> = report["file_syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let n = |k: &str| r[k].as_u64().unwrap();
                (
                    r["name"].as_str().unwrap().to_string(),
                    [n("hit"), n("miss"), n("passthrough"), n("denied")],
                )
            })
            .filter(|(_, c)| c.iter().sum::<u64>() > 0)
            .collect();
        reports.push((classes, text));
    }
    let (supervisor, overlay) = (&reports[0], &reports[1]);
    assert!(supervisor.0.len() >= 4, "{}", supervisor.1);
    let mut sorted = [supervisor.0.clone(), overlay.0.clone()];
    for s in &mut sorted {
        s.sort();
    }
    assert_eq!(
        sorted[0], sorted[1],
        "classes differ:\nsupervisor:\n{}\noverlay:\n{}",
        supervisor.1, overlay.1
    );
}

// Where namespaces are refused, vrift trace (which measures a projection that mounts the
// view) fails with the refused step named; it does not fall back to a run it cannot count.
#[test]
fn trace_without_namespaces_says_why() {
    let env = Env::new();
    let (proj, _outside, m) = setup(&env);
    let vrift = vrift_bin().display().to_string();
    let m = m.display().to_string();
    let out = Command::new(confine())
        .args(["ns", &vrift, "trace", "--manifest", &m, "--", "true"])
        .current_dir(&proj)
        .env("VRIFT_HOME", env.home())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("does not let vrift make namespaces"), "{err}");
}
