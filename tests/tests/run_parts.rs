//! A run made of parts: which projection runs and why, the metadata layer cache of the
//! overlay, two runs at once on one store, and set-up failures that name what was refused.

use std::process::{Command, Stdio};
use std::time::Duration;

use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
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

/// The full metadata layers in the store (not deltas, sidecars or project pointers).
fn full_layers(env: &Env) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(env.home().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            p.is_dir() && !n.contains('.') && !n.starts_with("project-")
        })
        .collect();
    v.sort();
    v
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
    assert_eq!(full_layers(&env).len(), 1);
    // An edit on disk makes a new manifest: a delta layer shows it over the first layer.
    write(&proj.join("a.txt"), "edited\n");
    let (ok, out, err) = run(&env);
    assert!(ok, "{err}");
    assert_eq!(out, "edited\n", "the view follows the edit: {err}");
    assert!(err.contains("delta of"), "{err}");
    assert_eq!(full_layers(&env).len(), 1);
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
    let layer = full_layers(&env).pop().expect("a layer was built");
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
    vrift_tests::confine().display().to_string()
}

/// `vrift -v run --projection P -- busybox true` in a project, under a seccomp profile that
/// refuses namespaces (as a container's default one does): exit status and stderr.
fn run_confined(projection: &str) -> (Option<i32>, String) {
    let env = Env::new();
    let proj = project(&env);
    let vrift = vrift_bin().display().to_string();
    // The shim alone serves dynamic programs only.
    let bb = if projection == "shim" {
        DYNAMIC_BUSYBOX.to_string()
    } else {
        busybox()
    };
    let out = Command::new(confine())
        .args([
            "ns",
            &vrift,
            "-v",
            "run",
            "--",
            &bb,
            "sh",
            "-c",
            "cat a.txt >/dev/null",
        ])
        .current_dir(&proj)
        .env("VRIFT_HOME", env.home())
        .env("VRIFT_PROJECTION", projection)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code(), err)
}

// Where namespaces are refused, a projection that needs them, asked for by name, says which
// step was refused and what to do, and exits non-zero.
#[test]
fn refused_namespaces_are_named() {
    for projection in ["supervisor", "overlay"] {
        let (code, err) = run_confined(projection);
        assert_eq!(code, Some(1), "{projection}: {err}");
        assert!(
            err.contains("namespaces (unshare): Operation not permitted"),
            "{err}"
        );
        assert!(err.contains("does not let vrift make namespaces"), "{err}");
    }
}

// `auto` (and shim+supervisor) fall back to the shim in front of a supervisor that mounts
// nothing, and `-v` says why; the shim alone needs no namespaces at all.
#[test]
fn refused_namespaces_fall_back_to_shim_supervisor_without_mounts() {
    for projection in ["auto", "shim+supervisor"] {
        let (code, err) = run_confined(projection);
        assert_eq!(code, Some(0), "{projection}: {err}");
        assert!(
            err.contains(
                "projection: shim+supervisor without mounts (this system refuses namespaces"
            ),
            "{projection}: {err}"
        );
    }
    let (code, err) = run_confined("shim");
    assert_eq!(code, Some(0), "{err}");
}

// Without namespaces the view is not mounted: a static program (which the shim does not
// serve) runs a script made in the run named relative to its cwd in the view (the kernel
// reaches the farm's file) and enters a directory that is on disk; a directory or a file
// made in the run, named by a path the kernel would look for on disk (busybox's `cd`
// makes every path absolute), is refused with a message naming it, never served from the
// disk. (Dynamic programs are served by the shim: the `no-namespaces` axis of the suites.)
#[test]
fn without_namespaces_static_programs_get_the_view_or_a_clear_refusal() {
    let env = Env::new();
    let proj = project(&env);
    let vrift = vrift_bin().display().to_string();
    let bb = busybox();
    let script = "mkdir made && printf 'echo from the view\\n' > made/s.sh && \
         chmod 755 made/s.sh && ./made/s.sh && cat sub/b.txt; cd sub && pwd; cd ../made; \
         echo cd=$?; $PWD/../made/s.sh; echo status=$?";
    let out = Command::new(confine())
        .args(["ns", &vrift, "run", "--", &bb, "sh", "-c", script])
        .current_dir(&proj)
        .env("VRIFT_HOME", env.home())
        .env("VRIFT_PROJECTION", "auto")
        .output()
        .unwrap();
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{err}");
    assert_eq!(
        stdout,
        format!(
            "from the view\nbeta\n{}/sub\ncd=2\nstatus=126\n",
            proj.display()
        ),
        "{err}"
    );
    let p = proj.display();
    assert!(
        err.contains(&format!("vrift: {p}/made: chdir: without namespaces")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "vrift: {p}/sub/../made/s.sh: exec: without namespaces"
        )),
        "{err}"
    );
    // The run's changes were written back, as by every projection.
    assert_eq!(
        std::fs::read_to_string(proj.join("made/s.sh")).unwrap(),
        "echo from the view\n"
    );
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

#[test]
fn an_edit_gets_a_small_delta_layer_not_a_rebuild() {
    let mut env = Env::new();
    env.projection = "overlay".into();
    let proj = project(&env);
    for i in 0..50 {
        write(&proj.join(format!("many/f{i}.txt")), format!("{i}\n"));
    }
    let bb = busybox();
    let run = |env: &Env, script: &str| {
        stderr_of(&mut env.vrift(&proj, &["-v", "run", "--", &bb, "sh", "-c", script]))
    };
    let (ok, _, err) = run(&env, "true");
    assert!(ok && err.contains("(built now)"), "{err}");
    write(&proj.join("a.txt"), "edited\n");
    write(&proj.join("many/new.txt"), "new\n");
    let (ok, out, err) = run(&env, "cat a.txt many/new.txt many/f7.txt; ls many | wc -l");
    assert!(ok, "{err}");
    assert_eq!(out, "edited\nnew\n7\n51\n");
    assert!(
        err.contains("delta of"),
        "an edit builds a delta layer: {err}"
    );
    // The next run of the same tree reuses it.
    let (ok, out, err) = run(&env, "cat a.txt");
    assert!(ok && out == "edited\n", "{err}");
    assert!(err.contains("(cached delta)"), "{err}");
    // A removal needs a full layer.
    std::fs::remove_file(proj.join("many/f3.txt")).unwrap();
    let (ok, out, err) = run(&env, "ls many | wc -l");
    assert!(ok && out == "50\n", "{out} {err}");
    assert!(err.contains("(built now)"), "{err}");
}

#[test]
fn gc_keeps_the_layers_in_use_and_removes_the_others() {
    let mut env = Env::new();
    env.projection = "overlay".into();
    let proj = project(&env);
    let bb = busybox();
    stdout_ok(&mut env.vrift(&proj, &["init"]));
    let run = |env: &Env| stdout_ok(&mut env.vrift(&proj, &["run", "--", &bb, "cat", "a.txt"]));
    run(&env);
    write(&proj.join("a.txt"), "second\n");
    assert_eq!(run(&env), "second\n");
    std::fs::remove_file(proj.join("sub/b.txt")).unwrap();
    run(&env);
    let layers = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.home().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = layers();
    let current = vrift_common::manifest::Manifest::load(&proj.join("vrift.manifest"))
        .unwrap()
        .hash()
        .to_hex();
    let dry = stdout_ok(&mut env.vrift(&proj, &["gc"]));
    assert!(
        dry.contains("unused metadata layers: 2"),
        "{dry}\n{before:?}"
    );
    assert_eq!(layers(), before, "a dry run removes nothing");
    let done = stdout_ok(&mut env.vrift(&proj, &["gc", "--delete"]));
    assert!(done.contains("deleted metadata layers: 2"), "{done}");
    let after = layers();
    assert!(
        after
            .iter()
            .any(|n| n.starts_with(&current) && !n.ends_with(".manifest")),
        "{after:?}"
    );
    assert!(after.iter().all(|n| !n.contains(".on-")), "{after:?}");
    // The kept layer still serves the project.
    assert_eq!(run(&env), "second\n");
    let again = stdout_ok(&mut env.vrift(&proj, &["-v", "run", "--", &bb, "true"]));
    assert!(again.is_empty());
}
