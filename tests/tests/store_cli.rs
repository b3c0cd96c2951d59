//! `vrift status`, `vrift gc` and `vrift manifest show|diff|verify` driven through the binary.
//! Manifests are built with the vrift-common library against the test's own store.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use vrift_common::hash::Hash;
use vrift_common::manifest::{Entry, EntryKind, Manifest};
use vrift_common::store::Store;
use vrift_tests::{run_expect, stdout_ok, store_snapshot, Env};

const T0: i64 = 1_700_000_000_000_000_000;

fn dir_entry() -> Entry {
    Entry {
        kind: EntryKind::Dir,
        hash: Hash([0; 32]),
        size: 0,
        mode: 0o755,
        mtime_ns: T0,
        target: Vec::new(),
        meta: Default::default(),
    }
}

/// Store the files, write `<dir>/vrift.manifest` describing them (plus a symlink `link`),
/// register it as a root, and return its path.
fn project(env: &Env, store: &Store, dir: &str, files: &[(&[u8], &[u8])]) -> PathBuf {
    let root = env.mkdir(dir);
    let mut entries = vec![(Vec::new(), dir_entry())];
    for (path, content) in files {
        let ins = store.insert_bytes(content).unwrap();
        // Parent directories.
        let mut prefix = Vec::new();
        for comp in path
            .split(|&b| b == b'/')
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(comp);
            entries.push((prefix.clone(), dir_entry()));
        }
        entries.push((
            path.to_vec(),
            Entry {
                kind: EntryKind::File,
                hash: ins.hash,
                size: ins.size,
                mode: 0o644,
                mtime_ns: T0,
                target: Vec::new(),
                meta: Default::default(),
            },
        ));
    }
    entries.push((
        b"link".to_vec(),
        Entry {
            kind: EntryKind::Symlink,
            hash: Hash([0; 32]),
            size: 6,
            mode: 0o777,
            mtime_ns: T0,
            target: b"target".to_vec(),
            meta: Default::default(),
        },
    ));
    let manifest = root.join("vrift.manifest");
    Manifest::from_entries(entries)
        .save_atomic(&manifest)
        .unwrap();
    store.register_root(&manifest).unwrap();
    manifest
}

fn open_store(env: &Env) -> Store {
    Store::open(&env.home()).unwrap()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Two projects sharing `shared` (1000 bytes), each with its own file, and one orphan blob.
fn two_projects(env: &Env, store: &Store) -> (PathBuf, PathBuf, Hash) {
    let shared = [b's'; 1000];
    let a = project(
        env,
        store,
        "a",
        &[(b"lib/shared.txt", &shared), (b"a.txt", &[b'a'; 300])],
    );
    let b = project(
        env,
        store,
        "b",
        &[(b"vendor/shared.txt", &shared), (b"b.txt", &[b'b'; 20])],
    );
    let orphan = store.insert_bytes(b"nobody uses me").unwrap().hash;
    (a, b, orphan)
}

#[test]
fn status_reports_exact_numbers() {
    let env = Env::new();
    let store = open_store(&env);
    let cwd = env.mkdir("cwd");
    let empty = json(&stdout_ok(&mut env.vrift(&cwd, &["status", "--json"])));
    assert_eq!(empty["manifests"], 0);
    assert_eq!(empty["blobs"], 0);

    let (a, b, _) = two_projects(&env, &store);
    // Each root keeps a copy of its manifest in the store.
    let pins = fs::metadata(&a).unwrap().len() + fs::metadata(&b).unwrap().len();
    let v = json(&stdout_ok(&mut env.vrift(&cwd, &["status", "--json"])));
    assert_eq!(v["manifests"], 2);
    assert_eq!(v["logical_bytes"], 1000 + 300 + 1000 + 20);
    assert_eq!(v["blobs"], 4 + 2);
    assert_eq!(v["stored_bytes"], 1000 + 300 + 20 + 14 + pins);
    assert_eq!(v["pinned_bytes"], pins);
    // What sharing saves; the orphan (garbage) and the manifest copies are not counted.
    assert_eq!(v["saved_bytes"], 2320 - 1320);
    let pct = v["saved_percent"].as_f64().unwrap();
    assert!((pct - 1000.0 * 100.0 / 2320.0).abs() < 1e-9, "{pct}");
    assert_eq!(v["unreferenced_blobs"], 1);
    assert_eq!(v["unreferenced_bytes"], 14);
    assert_eq!(
        Path::new(v["store"].as_str().unwrap()),
        env.home().as_path()
    );

    let text = stdout_ok(&mut env.vrift(&cwd, &["status"]));
    assert!(text.contains("manifests:     2"), "{text}");
    assert!(text.contains("(1000 bytes, 43.1% of logical"), "{text}");
    assert!(text.contains(&env.home().display().to_string()), "{text}");
}

#[test]
fn gc_dry_run_lists_exactly_the_orphan_and_deletes_nothing() {
    let env = Env::new();
    let store = open_store(&env);
    let cwd = env.mkdir("cwd");
    let (_, _, orphan) = two_projects(&env, &store);
    let before = store_snapshot(&env.home());

    let v = json(&stdout_ok(&mut env.vrift(&cwd, &["gc", "--json"])));
    assert_eq!(v["deleted"], false);
    assert_eq!(v["unreferenced_blobs"], 1);
    assert_eq!(v["unreferenced_bytes"], 14);
    assert_eq!(v["unreferenced"][0]["hash"], orphan.to_hex());
    assert_eq!(v["referenced_blobs"], 3 + 2);

    let text = stdout_ok(&mut env.vrift(&cwd, &["gc"]));
    assert!(text.contains("unreferenced: 1 blobs"), "{text}");
    assert!(text.contains(&orphan.to_hex()), "{text}");
    assert!(text.contains("dry run"), "{text}");
    assert_eq!(store_snapshot(&env.home()), before);
}

#[test]
fn gc_delete_deletes_exactly_the_orphan() {
    let env = Env::new();
    let store = open_store(&env);
    let cwd = env.mkdir("cwd");
    let (a, b, orphan) = two_projects(&env, &store);
    let before = store_snapshot(&env.home());
    let out = stdout_ok(&mut env.vrift(&cwd, &["gc", "--delete"]));
    assert!(out.contains("deleted: 1 blobs"), "{out}");
    assert!(out.contains(&orphan.to_hex()), "{out}");

    let orphan_path = store.blob_path(&orphan);
    let expected: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| *p != orphan_path)
        .collect();
    assert_eq!(store_snapshot(&env.home()), expected);
    // Both manifests still verify.
    for m in [a, b] {
        stdout_ok(&mut env.vrift(&cwd, &["manifest", "verify", m.to_str().unwrap()]));
    }
    // Nothing more to collect.
    let v = json(&stdout_ok(&mut env.vrift(&cwd, &["gc", "--json"])));
    assert_eq!(v["unreferenced_blobs"], 0);
}

#[test]
fn deleting_a_manifest_keeps_its_blobs_until_forgotten() {
    let env = Env::new();
    let store = open_store(&env);
    let cwd = env.mkdir("cwd");
    let (a, _b, orphan) = two_projects(&env, &store);
    let a_pin = Hash::of(&fs::read(&a).unwrap());
    let a_canon = fs::canonicalize(&a).unwrap();
    fs::remove_file(&a).unwrap();
    let v = json(&stdout_ok(&mut env.vrift(&cwd, &["gc", "--json"])));
    let listed: Vec<&str> = v["unreferenced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["hash"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![orphan.to_hex()]);
    assert_eq!(v["moved_roots"].as_array().unwrap().len(), 1);
    assert_eq!(v["moved_roots"][0]["blobs_kept"], 2);
    let text = stdout_ok(&mut env.vrift(&cwd, &["gc", "--delete"]));
    let hint = format!(
        "manifest moved or deleted: {}: 2 blobs kept; `vrift gc --forget {}` to release them",
        a_canon.display(),
        a_canon.display()
    );
    assert!(text.contains(&hint), "{text}");
    assert!(store.contains(&Hash::of(&[b'a'; 300])));

    let v = json(&stdout_ok(&mut env.vrift(
        &cwd,
        &["gc", "--forget", a.to_str().unwrap(), "--delete", "--json"],
    )));
    // a.txt's blob and a's pinned manifest copy; the shared blob is still b's.
    assert_eq!(v["unreferenced_blobs"], 2);
    assert!(!store.contains(&Hash::of(&[b'a'; 300])));
    assert!(!store.contains(&a_pin));
    assert!(store.contains(&Hash::of(&[b's'; 1000])));
    assert_eq!(store.roots().unwrap().len(), 1, "forgotten root removed");
    let v = json(&stdout_ok(&mut env.vrift(&cwd, &["status", "--json"])));
    assert_eq!(v["manifests"], 1);
    assert_eq!(v["moved_roots"], 0);
    // Forgetting it again names the path and fails.
    let out = run_expect(
        &mut env.vrift(&cwd, &["gc", "--forget", a.to_str().unwrap()]),
        false,
    );
    assert!(
        stderr_of(&out).contains("a/vrift.manifest: not a gc root"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn gc_refuses_when_a_root_manifest_is_corrupt() {
    let env = Env::new();
    let store = open_store(&env);
    let cwd = env.mkdir("cwd");
    let (a, _, _) = two_projects(&env, &store);
    let bytes = fs::read(&a).unwrap();
    fs::write(&a, &bytes[..bytes.len() / 2]).unwrap();
    let before = store_snapshot(&env.home());
    for args in [&["gc"][..], &["gc", "--delete"]] {
        let out = run_expect(&mut env.vrift(&cwd, args), false);
        let err = stderr_of(&out);
        assert!(err.contains(&a.display().to_string()), "{err}");
        assert!(err.contains("refusing"), "{err}");
    }
    assert_eq!(store_snapshot(&env.home()), before);
    // status still works and says which manifest is broken.
    let out = run_expect(&mut env.vrift(&cwd, &["status", "--json"]), true);
    assert!(stderr_of(&out).contains(&a.display().to_string()));
    assert_eq!(
        json(&String::from_utf8(out.stdout).unwrap())["manifests"],
        1
    );
}

#[test]
fn gc_delete_waits_for_running_commands() {
    let env = Env::new();
    let store = open_store(&env);
    let cwd = env.mkdir("cwd");
    let (_, _, orphan) = two_projects(&env, &store);
    // This test plays a running ingest: it holds the shared lock.
    let held = store.lock_shared().unwrap();
    let mut child = env
        .vrift(&cwd, &["gc", "--delete"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting for running vrift commands to finish"),
        "{line}"
    );
    // It is blocked on our lock, so it cannot have deleted anything.
    assert!(child.try_wait().unwrap().is_none());
    assert!(store.contains(&orphan));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!store.contains(&orphan));
}

#[test]
fn verify_passes_on_an_intact_store() {
    let env = Env::new();
    let store = open_store(&env);
    let (a, _, _) = two_projects(&env, &store);
    let dir = a.parent().unwrap();
    // Default path: ./vrift.manifest
    let out = stdout_ok(&mut env.vrift(dir, &["manifest", "verify"]));
    assert!(out.contains("ok: 2 files, 2 blobs"), "{out}");
}

#[test]
fn verify_names_a_missing_blob() {
    let env = Env::new();
    let store = open_store(&env);
    let (a, _, _) = two_projects(&env, &store);
    let gone = Hash::of(&[b'a'; 300]);
    fs::remove_file(store.blob_path(&gone)).unwrap();
    let out = run_expect(
        &mut env.vrift(a.parent().unwrap(), &["manifest", "verify"]),
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("missing blob: {gone} for a.txt")),
        "{text}"
    );
    assert!(
        !text.contains("shared.txt"),
        "only the broken one is listed: {text}"
    );
    assert!(stderr_of(&out).contains("1 of 2 blobs"));
}

#[test]
fn verify_names_a_corrupted_blob() {
    let env = Env::new();
    let store = open_store(&env);
    let (a, _, _) = two_projects(&env, &store);
    let hash = Hash::of(&[b's'; 1000]);
    let blob = store.blob_path(&hash);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    bytes[500] = b'X'; // same size, different content
    fs::write(&blob, &bytes).unwrap();
    let out = run_expect(
        &mut env.vrift(
            &env.mkdir("cwd"),
            &["manifest", "verify", a.to_str().unwrap()],
        ),
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("corrupt blob"), "{text}");
    assert!(
        text.contains(&format!("{hash} for lib/shared.txt")),
        "{text}"
    );
    // A truncated blob is reported too.
    fs::write(&blob, &bytes[..10]).unwrap();
    let out = run_expect(
        &mut env.vrift(
            &env.mkdir("cwd"),
            &["manifest", "verify", a.to_str().unwrap()],
        ),
        false,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("stored size 10, manifest says 1000"),
        "{text}"
    );
}

#[test]
fn show_prints_header_and_entries() {
    let env = Env::new();
    let store = open_store(&env);
    let odd_name: &[u8] = b"we\xffird\nname";
    let m = project(
        &env,
        &store,
        "p",
        &[(b"src/main.c", b"int main;"), (odd_name, b"odd")],
    );
    let manifest = Manifest::load(&m).unwrap();
    let out = stdout_ok(&mut env.vrift(m.parent().unwrap(), &["manifest", "show"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with("vrift.manifest"), "{out}");
    assert_eq!(lines[1], format!("hash:     {}", manifest.hash()));
    assert_eq!(lines[2], "format:   1");
    assert_eq!(lines[3], "entries:  5 (2 files, 2 dirs, 1 symlinks)");
    assert_eq!(lines[4], "bytes:    12 (file contents)");
    let entry_lines = &lines[6..];
    assert_eq!(
        entry_lines.len(),
        5,
        "one line per entry, odd names never split: {out}"
    );
    let main_hash = Hash::of(b"int main;").to_hex();
    assert!(
        entry_lines.iter().any(
            |l| l.starts_with("file    0644            9 2023-11-14 22:13:20 ")
                && l.contains(&main_hash[..12])
                && l.ends_with(" src/main.c")
        ),
        "{out}"
    );
    assert!(
        entry_lines
            .iter()
            .any(|l| l.starts_with("symlink 0777") && l.ends_with("link -> target")),
        "{out}"
    );
    assert!(
        entry_lines.iter().any(|l| l.ends_with(r"we\xffird\nname")),
        "{out}"
    );
    assert!(
        entry_lines[0].starts_with("dir ") && entry_lines[0].ends_with(" ."),
        "{out}"
    );

    let v = json(&stdout_ok(&mut env.vrift(
        &env.mkdir("cwd"),
        &["manifest", "show", "--json", m.to_str().unwrap()],
    )));
    assert_eq!(v["hash"], manifest.hash().to_hex());
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["entries"], 5);
    assert_eq!(v["total_file_bytes"], 12);
    let items = v["items"].as_array().unwrap();
    let main = items.iter().find(|i| i["path"] == "src/main.c").unwrap();
    assert_eq!(main["hash"], main_hash);
    assert_eq!(main["mode"], "0644");
    assert_eq!(main["mtime_ns"], T0);
    let link = items.iter().find(|i| i["path"] == "link").unwrap();
    assert_eq!(link["target"], "target");
    assert!(link["hash"].is_null());
}

#[test]
fn show_names_a_truncated_or_garbage_manifest() {
    let env = Env::new();
    let store = open_store(&env);
    let m = project(&env, &store, "p", &[(b"f", b"x")]);
    let bytes = fs::read(&m).unwrap();
    fs::write(&m, &bytes[..bytes.len() - 1]).unwrap();
    let out = run_expect(
        &mut env.vrift(m.parent().unwrap(), &["manifest", "show"]),
        false,
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("vrift.manifest") && err.contains("corrupt"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let junk = env.dir.path().join("junk.manifest");
    fs::write(&junk, b"#!/bin/sh\necho not a manifest\n").unwrap();
    let out = run_expect(
        &mut env.vrift(env.dir.path(), &["manifest", "show", "junk.manifest"]),
        false,
    );
    assert!(stderr_of(&out).contains("junk.manifest"));

    let out = run_expect(
        &mut env.vrift(env.dir.path(), &["manifest", "show", "absent.manifest"]),
        false,
    );
    assert!(stderr_of(&out).contains("absent.manifest"));
}

#[test]
fn diff_exit_codes_follow_diff1() {
    let env = Env::new();
    let store = open_store(&env);
    let a = project(
        &env,
        &store,
        "a",
        &[(b"same", b"1"), (b"gone", b"2"), (b"edit", b"old")],
    );
    let a2 = env.dir.path().join("a-copy.manifest");
    fs::copy(&a, &a2).unwrap();
    let b = project(
        &env,
        &store,
        "b",
        &[(b"same", b"1"), (b"edit", b"newer"), (b"new", b"3")],
    );
    let cwd = env.mkdir("cwd");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    let out = env
        .vrift(&cwd, &["manifest", "diff", &s(&a), &s(&a2)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());

    let out = env
        .vrift(&cwd, &["manifest", "diff", &s(&a), &s(&b)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("changed  edit: content "), "{text}");
    assert!(lines[0].contains("size 3 -> 5"), "{text}");
    assert_eq!(lines[1], "removed  file    gone");
    assert_eq!(lines[2], "added    file    new");

    let v = json(
        &String::from_utf8(
            env.vrift(&cwd, &["manifest", "diff", "--json", &s(&a), &s(&b)])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    );
    assert_eq!(v["identical"], false);
    assert_eq!(
        v["changes"][0]["fields"],
        serde_json::json!(["content", "size"])
    );

    let out = env
        .vrift(&cwd, &["manifest", "diff", &s(&a), "missing.manifest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("missing.manifest"));
}
