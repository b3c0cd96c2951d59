//! A run made of parts: which projection runs and why, the metadata layer cache of the
//! overlay, two runs at once on one store, and set-up failures that name what was refused.

use std::process::{Command, Stdio};
use std::time::Duration;

use vrift_tests::*;

fn busybox() -> String {
    require_tool("busybox").display().to_string()
}

fn stderr_of(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn project(env: &Env) -> std::path::PathBuf {
    let proj = env.mkdir("proj");
    write(&proj.join("a.txt"), "alpha\n");
    write(&proj.join("sub/b.txt"), "beta\n");
    proj
}

#[test]
fn auto_uses_the_overlay_and_says_why() {
    let mut env = Env::new();
    env.projection = "auto".into();
    let proj = project(&env);
    let bb = busybox();
    let (ok, out, err) =
        stderr_of(&mut env.vrift(&proj, &["-v", "run", "--", &bb, "cat", "a.txt"]));
    assert!(ok, "{err}");
    assert_eq!(out, "alpha\n");
    assert!(
        err.contains("projection: overlay (the kernel serves the view)"),
        "{err}"
    );
}

#[test]
fn the_supervisor_is_the_fallback_when_the_overlay_is_ruled_out() {
    let mut env = Env::new();
    env.projection = "auto".into();
    let proj = project(&env);
    let bb = busybox();
    let (ok, out, err) = stderr_of(
        env.vrift(&proj, &["-v", "run", "--", &bb, "cat", "sub/b.txt"])
            .env("VRIFT_NO_OVERLAY", "1"),
    );
    assert!(ok, "{err}");
    assert_eq!(out, "beta\n");
    assert!(
        err.contains(
            "projection: supervisor (the overlay cannot be used: VRIFT_NO_OVERLAY is set)"
        ),
        "{err}"
    );
}

#[test]
fn the_metadata_layer_is_built_once_and_rebuilt_for_a_changed_manifest() {
    let mut env = Env::new();
    env.projection = "overlay".into();
    let proj = project(&env);
    let bb = busybox();
    let run =
        |env: &Env| stderr_of(&mut env.vrift(&proj, &["-v", "run", "--", &bb, "cat", "a.txt"]));
    let (ok, out, err) = run(&env);
    assert!(ok && out == "alpha\n", "{out} {err}");
    assert!(err.contains("(built now)"), "{err}");
    let (ok, out, err) = run(&env);
    assert!(ok && out == "alpha\n", "{out} {err}");
    assert!(
        err.contains("(cached)"),
        "a second run reuses the layer: {err}"
    );
    let layers = || {
        std::fs::read_dir(env.home().join("layers"))
            .unwrap()
            .count()
    };
    assert_eq!(layers(), 1);
    // An edit on disk makes a new manifest: its layer is built, and the view shows the edit.
    write(&proj.join("a.txt"), "edited\n");
    let (ok, out, err) = run(&env);
    assert!(ok, "{err}");
    assert_eq!(out, "edited\n", "the view follows the edit: {err}");
    assert!(err.contains("(built now)"), "{err}");
    assert_eq!(layers(), 2);
}

#[test]
fn an_overlay_layer_never_changes_through_a_run() {
    let mut env = Env::new();
    env.projection = "overlay".into();
    let proj = project(&env);
    let bb = busybox();
    let before_store = store_snapshot(&env.home());
    let (ok, _, err) = stderr_of(&mut env.vrift(
        &proj,
        &[
            "run",
            "--",
            &bb,
            "sh",
            "-c",
            "echo x >> a.txt; chmod 600 sub/b.txt; rm -r sub",
        ],
    ));
    assert!(ok, "{err}");
    let layer = std::fs::read_dir(env.home().join("layers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The layer still describes the manifest it was built for.
    let meta = std::fs::metadata(layer.join("a.txt")).unwrap();
    assert_eq!(meta.len(), 6);
    assert!(layer.join("sub/b.txt").exists());
    assert_eq!(
        std::fs::read_to_string(proj.join("a.txt")).unwrap(),
        "alpha\nx\n"
    );
    assert!(!proj.join("sub").exists());
    let after = store_snapshot(&env.home());
    assert!(
        before_store.iter().all(|b| after.contains(b)),
        "no blob changed"
    );
}

// Two runs on one store at once: the second never takes the first, still running, for a
// killed one to recover.
projections! {
    fn a_second_run_leaves_a_live_run_alone() {
        let env = Env::new();
        let proj = project(&env);
        let out = env.mkdir("out");
        let fifo = out.join("go");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let bb = busybox();
        let script = format!("echo first > first.txt; echo started > {0}/started; cat {0}/go", out.display());
        let mut first = env
            .vrift(&proj, &["run", "--", &bb, "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(20), || out.join("started").exists()),
            "the first run did not start"
        );
        let (ok, second_out, err) =
            stderr_of(&mut env.vrift(&proj, &["run", "--", &bb, "cat", "a.txt"]));
        assert!(ok, "{err}");
        assert_eq!(second_out, "alpha\n");
        assert!(!err.contains("recovered"), "the live run was taken for a dead one: {err}");
        // Let the first run end; its write lands.
        std::fs::write(&fifo, "").unwrap();
        let status = first.wait().unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(proj.join("first.txt")).unwrap(), "first\n");
        let runs = env.home().join("runs");
        let left = std::fs::read_dir(&runs).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "every run directory is gone once saved");
    }
}

fn confine() -> String {
    build_static_c("gcc", "confine.c", &[])
        .display()
        .to_string()
}

// Under a seccomp profile that refuses namespaces (as a container's default one does),
// vrift says which step was refused and what to do, and exits non-zero without a panic.
projections! {
    fn refused_namespaces_are_named() {
        let env = Env::new();
        let proj = project(&env);
        let vrift = vrift_bin().display().to_string();
        let bb = busybox();
        let out = Command::new(confine())
            .args(["ns", &vrift, "run", "--", &bb, "true"])
            .current_dir(&proj)
            .env("VRIFT_HOME", env.home())
            .env("VRIFT_PROJECTION", &env.projection)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("namespaces (unshare): Operation not permitted"), "{err}");
        assert!(err.contains("does not let vrift make namespaces"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn ingest_goes_on_when_threads_cannot_be_made() {
    let env = Env::new();
    let proj = env.mkdir("proj");
    for i in 0..64 {
        write(
            &proj.join(format!("d{}/f{i}.txt", i % 4)),
            format!("file {i}\n"),
        );
    }
    let vrift = vrift_bin().display().to_string();
    let out = Command::new(confine())
        .args(["threads", &vrift, "init"])
        .current_dir(&proj)
        .env("VRIFT_HOME", env.home())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(proj.join("vrift.manifest").exists());
    let shown = stdout_ok(&mut env.vrift(&proj, &["manifest", "show", "vrift.manifest"]));
    assert!(shown.contains("d3/f63.txt"), "{shown}");
}
