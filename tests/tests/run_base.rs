//! `--base M` stacks manifests under the view (writes land in the top layer only), and
//! where a run starts: the caller's cwd (also with `--mount`), or `-C DIR`.

use vrift_common::manifest::Manifest;
use vrift_tests::*;

/// `vrift run --manifest TOP --base BASE --mount VIEW -C VIEW -- busybox sh -c SCRIPT` from
/// `work`, as root or as the ordinary user; its stdout, the run having succeeded.
fn run_stacked(
    env: &Env,
    work: &std::path::Path,
    top: &std::path::Path,
    base: &std::path::Path,
    as_user: bool,
    script: &str,
) -> String {
    let bb = busybox();
    let mount = env.dir.path().join("view");
    let args = [
        "run",
        "--manifest",
        top.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
        "--mount",
        mount.to_str().unwrap(),
        "-C",
        mount.to_str().unwrap(),
        "--",
        bb.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ];
    let mut c = env.vrift_as(as_user, work, &args);
    stdout_ok(&mut c)
}

fn stacked_layers(as_user: bool) {
    let env = Env::new();
    let work = env.mkdir("work");
    let base = env.dir.path().join("base.manifest");
    let top = env.dir.path().join("top.manifest");
    make_manifest(
        &env,
        &base,
        &[
            Node::Dir("etc", 0o755),
            Node::File("etc/base.conf", b"from the base\n", 0o644),
            Node::File("shared.txt", b"base version\n", 0o644),
        ],
    );
    make_manifest(
        &env,
        &top,
        &[Node::File("shared.txt", b"top version\n", 0o644)],
    );
    if as_user {
        env.give_to_nobody();
    }
    let base_before = std::fs::read(&base).unwrap();
    let out = run_stacked(
        &env,
        &work,
        &top,
        &base,
        as_user,
        "cat etc/base.conf shared.txt; echo new > etc/new.conf",
    );
    assert_eq!(out, "from the base\ntop version\n");
    assert_eq!(
        std::fs::read(&base).unwrap(),
        base_before,
        "the base changed"
    );
    let top = Manifest::load(&top).unwrap();
    assert!(
        top.get(b"etc/new.conf").is_some(),
        "the write is in the top layer"
    );
    assert!(
        top.get(b"etc/base.conf").is_none(),
        "the base's entries stay in the base"
    );
}
matrix!(writes_land_in_the_top_layer => stacked_layers, not_shim = "the shim alone serves one manifest and refuses --base");

/// Removing (or renaming away) what a `--base` layer gives is recorded in the `--manifest`
/// top layer as whiteouts: the next run over the same base sees it gone, and what is made
/// again in its place shows without the base's old entries.
fn base_removals(as_user: bool) {
    let env = Env::new();
    let work = env.mkdir("work");
    let base = env.dir.path().join("base.manifest");
    let top = env.dir.path().join("top.manifest");
    make_manifest(
        &env,
        &base,
        &[
            Node::Dir("etc", 0o755),
            Node::File("etc/a.conf", b"a\n", 0o644),
            Node::File("etc/b.conf", b"b\n", 0o644),
            Node::File("etc/keep.conf", b"keep\n", 0o644),
            Node::Dir("share", 0o755),
            Node::File("share/old1", b"1\n", 0o644),
            Node::Dir("share/sub", 0o755),
            Node::File("share/sub/old2", b"2\n", 0o644),
        ],
    );
    make_manifest(&env, &top, &[]);
    if as_user {
        env.give_to_nobody();
    }
    let base_before = std::fs::read(&base).unwrap();
    let run = |script: &str| run_stacked(&env, &work, &top, &base, as_user, script);
    let list = "find etc share 2>/dev/null | sort | tr '\\n' ' '";
    // rm of a base file, rename of another away, rm -r of a base directory.
    run("rm etc/a.conf && mv etc/b.conf renamed.conf && rm -r share");
    let saved = Manifest::load(&top).unwrap();
    for gone in [&b"etc/a.conf"[..], b"etc/b.conf", b"share"] {
        assert!(
            saved.is_whiteout(gone),
            "{} is not a whiteout of the top layer: {:?}",
            String::from_utf8_lossy(gone),
            saved.whiteouts()
        );
    }
    assert_eq!(
        run(&format!("{list}; cat renamed.conf")),
        "etc etc/keep.conf b\n",
        "the removals did not hold in the next run"
    );
    // Made again: the new entries show, the base's old ones under them do not.
    run("echo again > etc/a.conf && mkdir share && echo new > share/new");
    assert_eq!(
        run(&format!("{list}; cat etc/a.conf")),
        "etc etc/a.conf etc/keep.conf share share/new again\n"
    );
    let saved = Manifest::load(&top).unwrap();
    assert!(!saved.is_whiteout(b"etc/a.conf") && saved.get(b"etc/a.conf").is_some());
    assert!(saved.is_whiteout(b"share/old1") && saved.is_whiteout(b"share/sub"));
    assert_eq!(
        std::fs::read(&base).unwrap(),
        base_before,
        "the base changed"
    );
    // Stacked as an isolated run's root file system, the top layer's whiteouts hide the
    // base's entries there too (overlayfs whiteouts in its layer).
    std::fs::copy(busybox(), work.join("busybox")).unwrap();
    let args = [
        "run",
        "--isolate",
        "--base",
        base.to_str().unwrap(),
        "--base",
        top.to_str().unwrap(),
        "--",
        "./busybox",
        "find",
        "/etc",
        "/share",
    ];
    let mut c = env.vrift_as(as_user, &work, &args);
    let mut found: Vec<String> = stdout_ok(&mut c).lines().map(str::to_string).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "/etc",
            "/etc/a.conf",
            "/etc/keep.conf",
            "/share",
            "/share/new"
        ]
    );
}
matrix!(removals_of_base_entries_are_whiteouts => base_removals, needs_namespaces = "the shim alone serves one manifest and refuses --base, and the test ends with an --isolate run");

fn start_dir(as_user: bool) {
    let env = Env::new();
    let work = env.mkdir("work");
    let m = env.dir.path().join("m.manifest");
    make_manifest(&env, &m, &[Node::Dir("sub", 0o755)]);
    if as_user {
        env.give_to_nobody();
    }
    let mount = env.dir.path().join("tool");
    let bb = busybox();
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "--manifest",
            m.to_str().unwrap(),
            "--mount",
            mount.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.extend(["--", bb.to_str().unwrap(), "pwd"]);
        let mut c = env.vrift_as(as_user, &work, &a);
        stdout_ok(&mut c)
    };
    // The caller's cwd lies outside the mount: the program starts there.
    assert_eq!(run(&[]), format!("{}\n", work.display()));
    let sub = mount.join("sub");
    assert_eq!(
        run(&["-C", sub.to_str().unwrap()]),
        format!("{}\n", sub.display())
    );
}
matrix!(mount_keeps_the_callers_cwd_and_c_chooses => start_dir);

/// The shim alone serves one manifest and saves the run's changes over it: it refuses
/// `--base` (and `--isolate`) with a message, and changes nothing.
#[test]
fn the_shim_alone_refuses_base_and_isolate() {
    let env = Env::new();
    let work = env.mkdir("work");
    let base = env.dir.path().join("base.manifest");
    let top = env.dir.path().join("top.manifest");
    make_manifest(&env, &base, &[Node::File("b", b"b\n", 0o644)]);
    make_manifest(&env, &top, &[Node::File("t", b"t\n", 0o644)]);
    let before = std::fs::read(&top).unwrap();
    for extra in [&["--base", base.to_str().unwrap()][..], &["--isolate"][..]] {
        let mut a = vec![
            "run",
            "--projection",
            "shim",
            "--manifest",
            top.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.extend(["--", "true"]);
        let out = run_expect(&mut env.vrift(&work, &a), false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs a projection that mounts the view"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&top).unwrap(), before);
}
