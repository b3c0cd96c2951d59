//! `vrift init` through the binary: project types and their default filters, .gitignore,
//! .vriftignore and --exclude, the stat cache on re-runs, odd trees and bad input.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use vrift_common::manifest::Manifest;
use vrift_tests::{run_expect, store_snapshot, vrift_bin, write, Env};

/// `vrift init --json ARGS` in `dir`; the parsed report.
fn init(env: &Env, dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["init", "--json"];
    all.extend_from_slice(args);
    let out = run_expect(&mut env.vrift(dir, &all), true);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The paths in `dir/vrift.manifest` as `vrift manifest show --json` lists them, root as "".
fn manifest_paths(env: &Env, dir: &Path) -> Vec<String> {
    let out = run_expect(
        &mut env.vrift(dir, &["manifest", "show", "--json", "vrift.manifest"]),
        true,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e["path"].as_str().unwrap() {
            "." => String::new(),
            p => p.to_string(),
        })
        .collect()
}

fn files(dir: &Path, list: &[&str]) {
    for f in list {
        write(&dir.join(f), format!("content of {f}\n"));
    }
}

/// Give every file an mtime long past, like a tree checked out a while ago. (Files modified
/// within the last instant are "racy" and re-read by the next run, as in git.)
fn age(root: &Path) {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                fs::File::options()
                    .write(true)
                    .open(e.path())
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
    }
}

fn excluded(report: &Value) -> Vec<String> {
    report["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn types(report: &Value) -> Vec<String> {
    report["project_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cargo_project_leaves_out_target_and_git() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(
        &p,
        &[
            "Cargo.toml",
            "Cargo.lock",
            "src/main.rs",
            "src/target/mod.rs",
            "target/debug/app",
            "target/release/.fingerprint/x",
            ".git/HEAD",
            ".git/objects/ab/cdef",
        ],
    );
    let r = init(&env, &p, &[]);
    assert_eq!(types(&r), ["cargo"]);
    assert_eq!(
        manifest_paths(&env, &p),
        [
            "",
            "Cargo.lock",
            "Cargo.toml",
            "src",
            "src/main.rs",
            "src/target",
            "src/target/mod.rs"
        ]
    );
    assert_eq!(excluded(&r), [".git", "target"]);
    assert_eq!(r["files"], 4);
}

#[test]
fn npm_project_keeps_node_modules_even_when_gitignored() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(
        &p,
        &[
            "package.json",
            "index.js",
            "dist/bundle.js",
            "out.log",
            "node_modules/left-pad/index.js",
            "node_modules/left-pad/package.json",
            "node_modules/left-pad/dist/lp.min.js",
            "node_modules/.cache/babel/x.json",
            ".next/cache/page",
            ".git/HEAD",
        ],
    );
    write(&p.join(".gitignore"), "node_modules/\ndist/\n*.log\n");
    let r = init(&env, &p, &[]);
    assert_eq!(types(&r), ["npm"]);
    assert_eq!(
        manifest_paths(&env, &p),
        [
            "",
            ".gitignore",
            "index.js",
            "node_modules",
            "node_modules/left-pad",
            "node_modules/left-pad/dist",
            "node_modules/left-pad/dist/lp.min.js",
            "node_modules/left-pad/index.js",
            "node_modules/left-pad/package.json",
            "package.json",
        ]
    );
    assert_eq!(
        excluded(&r),
        [".git", ".next", "dist", "node_modules/.cache", "out.log",]
    );
}

#[test]
fn python_project_keeps_the_venv_and_drops_bytecode() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(
        &p,
        &[
            "pyproject.toml",
            "pkg/__init__.py",
            "pkg/__pycache__/__init__.cpython-311.pyc",
            "pkg/stray.pyc",
            "build/lib/pkg/__init__.py",
            "dist/pkg-1.0.tar.gz",
            "pkg.egg-info/PKG-INFO",
            ".venv/pyvenv.cfg",
            ".venv/lib/python3.11/site-packages/six.py",
            ".venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc",
        ],
    );
    // what `python -m venv` (3.13) writes: the venv ignores itself
    write(&p.join(".venv/.gitignore"), "*\n");
    write(&p.join(".gitignore"), ".venv/\n");
    let r = init(&env, &p, &[]);
    assert_eq!(types(&r), ["python"]);
    assert_eq!(
        manifest_paths(&env, &p),
        [
            "",
            ".gitignore",
            ".venv",
            ".venv/.gitignore",
            ".venv/lib",
            ".venv/lib/python3.11",
            ".venv/lib/python3.11/site-packages",
            ".venv/lib/python3.11/site-packages/__pycache__",
            ".venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc",
            ".venv/lib/python3.11/site-packages/six.py",
            ".venv/pyvenv.cfg",
            "pkg",
            "pkg/__init__.py",
            "pyproject.toml",
        ]
    );
    assert_eq!(
        excluded(&r),
        [
            "build",
            "dist",
            "pkg.egg-info",
            "pkg/__pycache__",
            "pkg/stray.pyc",
        ]
    );
}

#[test]
fn go_project_only_drops_vcs() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(
        &p,
        &[
            "go.mod",
            "main.go",
            "vendor/x/y.go",
            "target/keep.go",
            "dist/keep",
            ".git/config",
            ".hg/store",
        ],
    );
    let r = init(&env, &p, &[]);
    assert_eq!(types(&r), ["go"]);
    assert_eq!(
        manifest_paths(&env, &p),
        [
            "",
            "dist",
            "dist/keep",
            "go.mod",
            "main.go",
            "target",
            "target/keep.go",
            "vendor",
            "vendor/x",
            "vendor/x/y.go"
        ]
    );
    assert_eq!(excluded(&r), [".git", ".hg"]);
}

#[test]
fn untyped_project_and_text_output() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["notes.txt"]);
    let out = String::from_utf8(run_expect(&mut env.vrift(&p, &["init"]), true).stdout).unwrap();
    assert!(out.contains("type: none detected"), "{out}");
    assert!(out.contains("ingested: 1 files"), "{out}");
    let m = Manifest::load(&p.join("vrift.manifest")).unwrap();
    assert!(
        out.contains(&format!("manifest hash: {}", m.hash())),
        "{out}"
    );
    // not a terminal: no progress bar bytes anywhere
    assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:?}");
}

#[test]
fn gitignore_honoured_unless_turned_off() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(
        &p,
        &[
            "a.txt",
            "secret.env",
            "logs/today.log",
            "sub/local.tmp",
            "sub/keep.tmp",
        ],
    );
    write(&p.join(".gitignore"), "*.env\nlogs/\n");
    write(&p.join("sub/.gitignore"), "*.tmp\n!keep.tmp\n");
    init(&env, &p, &[]);
    assert_eq!(
        manifest_paths(&env, &p),
        [
            "",
            ".gitignore",
            "a.txt",
            "sub",
            "sub/.gitignore",
            "sub/keep.tmp"
        ]
    );
    let r = init(&env, &p, &["--no-gitignore"]);
    assert_eq!(r["files"], 7);
    assert!(manifest_paths(&env, &p).contains(&"logs/today.log".to_string()));
}

#[test]
fn vriftignore_and_exclude_flags() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(
        &p,
        &[
            "Cargo.toml",
            "src/lib.rs",
            "target/doc/index.html",
            "target/debug/app",
            "assets/big.bin",
            "assets/small.png",
            "notes.md",
            "scratch/x",
        ],
    );
    // re-include a default exclusion, add one of our own
    write(&p.join(".vriftignore"), "*.bin\n!target/\ntarget/debug/\n");
    init(&env, &p, &["--exclude", "scratch/", "--exclude", "*.md"]);
    assert_eq!(
        manifest_paths(&env, &p),
        [
            "",
            ".vriftignore",
            "Cargo.toml",
            "assets",
            "assets/small.png",
            "src",
            "src/lib.rs",
            "target",
            "target/doc",
            "target/doc/index.html"
        ]
    );
    // --no-default-filters: .git and target come back (user rules still apply)
    files(&p, &[".git/HEAD"]);
    fs::remove_file(p.join(".vriftignore")).unwrap();
    init(&env, &p, &["--no-default-filters", "--exclude", "assets/"]);
    let paths = manifest_paths(&env, &p);
    assert!(paths.contains(&".git/HEAD".to_string()), "{paths:?}");
    assert!(paths.contains(&"target/debug/app".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|x| x.starts_with("assets")), "{paths:?}");
}

#[test]
fn bad_exclude_pattern_is_a_clear_error() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["a"]);
    let out = run_expect(&mut env.vrift(&p, &["init", "--exclude", "a{b"]), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a{b"), "{err}");
    assert!(!p.join("vrift.manifest").exists());
}

#[test]
fn rerun_reads_nothing_and_an_edit_is_picked_up() {
    let env = Env::new();
    let p = env.mkdir("proj");
    for i in 0..40 {
        write(
            &p.join(format!("d{}/f{i}.txt", i % 4)),
            format!("file number {i:04}\n"),
        );
    }
    age(&p);
    let first = init(&env, &p, &[]);
    assert_eq!(first["files_hashed"], 40);
    let second = init(&env, &p, &[]);
    assert_eq!(second["files_hashed"], 0, "{second}");
    assert_eq!(second["files_unchanged"], 40);
    assert_eq!(second["bytes_new"], 0);
    assert_eq!(second["manifest_hash"], first["manifest_hash"]);
    assert_eq!(
        excluded(&second),
        ["vrift.manifest"],
        "its own manifest is never ingested"
    );

    // same size, different content
    write(&p.join("d1/f1.txt"), "file number 9999\n");
    let third = init(&env, &p, &[]);
    assert_eq!(third["files_hashed"], 1, "{third}");
    assert_ne!(third["manifest_hash"], first["manifest_hash"]);
    let m = Manifest::load(&p.join("vrift.manifest")).unwrap();
    assert_eq!(
        m.get(b"d1/f1.txt").unwrap().hash.to_hex(),
        blake3::hash(b"file number 9999\n").to_hex().to_string()
    );
}

#[test]
fn init_takes_a_directory_argument() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["a"]);
    let r = init(&env, env.dir.path(), &["proj"]);
    assert_eq!(r["files"], 1);
    assert!(p.join("vrift.manifest").is_file());
}

#[test]
fn non_utf8_names() {
    let env = Env::new();
    let p = env.mkdir("proj");
    let name = OsStr::from_bytes(b"caf\xe9\xff.txt");
    write(&p.join(name), "latin-1 name");
    write(&p.join("ok.txt"), "x");
    let r = init(&env, &p, &[]);
    assert_eq!(r["files"], 2);
    let m = Manifest::load(&p.join("vrift.manifest")).unwrap();
    let e = m.get(b"caf\xe9\xff.txt").expect("raw bytes kept");
    assert_eq!(
        e.hash.to_hex(),
        blake3::hash(b"latin-1 name").to_hex().to_string()
    );
}

#[test]
fn symlink_loops_are_recorded_not_followed() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["d/f"]);
    symlink("..", p.join("d/up")).unwrap();
    symlink("loop", p.join("loop")).unwrap();
    symlink("/", p.join("rootlink")).unwrap();
    let r = init(&env, &p, &[]);
    assert_eq!(r["symlinks"], 3);
    assert_eq!(r["files"], 1);
    let m = Manifest::load(&p.join("vrift.manifest")).unwrap();
    assert_eq!(m.get(b"d/up").unwrap().target, b"..");
    assert_eq!(m.get(b"rootlink").unwrap().target, b"/");
}

#[test]
fn a_fifo_is_kept_as_a_fifo() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["a"]);
    let st = Command::new("mkfifo").arg(p.join("pipe")).status().unwrap();
    assert!(st.success());
    let out = run_expect(&mut env.vrift(&p, &["init", "--json"]), true);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["warnings"].as_array().unwrap().len(), 0);
    assert_eq!(manifest_paths(&env, &p), ["", "a", "pipe"]);
    let shown = vrift_tests::stdout_ok(&mut env.vrift(&p, &["manifest", "show"]));
    assert!(shown.contains("format:   2"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("fifo ") && l.ends_with(" pipe")),
        "{shown}"
    );
}

#[test]
fn missing_directory_is_an_error() {
    let env = Env::new();
    let out = run_expect(&mut env.vrift(env.dir.path(), &["init", "nowhere"]), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere"), "{err}");
}

/// A command that runs `vrift` as an unprivileged user when we are root (root reads files
/// whatever their mode), else as ourselves.
fn unprivileged_vrift(env: &Env, cwd: &Path, args: &[&str]) -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(vrift_bin());
        c
    } else {
        Command::new(vrift_bin())
    };
    c.current_dir(cwd).env("VRIFT_HOME", env.home()).args(args);
    c
}

fn chown_nobody(path: &Path) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let st = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[test]
fn an_unreadable_file_is_named_and_passed_through_and_changes_nothing_stored() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["a.txt", "secret.txt", "sub/b.txt"]);
    fs::create_dir_all(env.home()).unwrap();
    chown_nobody(env.dir.path());
    // a good first run as the same user
    run_expect(&mut unprivileged_vrift(&env, &p, &["init"]), true);
    let blobs_before = store_snapshot(&env.home());

    files(&p, &["new.txt"]);
    chown_nobody(&p.join("new.txt"));
    fs::set_permissions(
        p.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    // Before: one unreadable file stopped the whole init.
    let out = run_expect(&mut unprivileged_vrift(&env, &p, &["init", "--json"]), true);
    let err = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err.contains(&format!("{}", p.join("secret.txt").display()))
            && err.contains("Permission denied"),
        "{err}"
    );
    assert!(excluded(&r).contains(&"secret.txt".to_string()), "{r}");
    let paths = manifest_paths(&env, &p);
    assert!(paths.contains(&"new.txt".to_string()), "{paths:?}");
    assert!(!paths.contains(&"secret.txt".to_string()), "{paths:?}");
    let blobs_after = store_snapshot(&env.home());
    for blob in &blobs_before {
        assert!(blobs_after.contains(blob), "blob changed or lost: {blob:?}");
    }
}

#[test]
fn an_unreadable_directory_is_named_and_left_out_instead_of_stopping_init() {
    let env = Env::new();
    let p = env.mkdir("proj");
    files(&p, &["a.txt", "locked/inner.txt"]);
    fs::create_dir_all(env.home()).unwrap();
    chown_nobody(env.dir.path());
    fs::set_permissions(
        p.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = run_expect(&mut unprivileged_vrift(&env, &p, &["init"]), true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: Permission denied",
            p.join("locked").display()
        )),
        "{err}"
    );
    let paths = manifest_paths(&env, &p);
    assert!(paths.contains(&"a.txt".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|x| x.starts_with("locked")), "{paths:?}");
}
