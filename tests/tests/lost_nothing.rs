//! Nothing a user made is ever lost (issue 11): gc roots that survive their manifest being
//! moved, renamed or deleted; a store that heals a damaged blob instead of serving it; setup
//! that records what it cannot read instead of stopping; messages that say what to do.
//! Root and an ordinary user where the scenario differs between them.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_common::store::Store;
use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `vrift ARGS` in `cwd`, as `nobody` when `as_user`.
fn vrift(env: &Env, cwd: &Path, as_user: bool, args: &[&str]) -> Command {
    env.vrift_as(as_user, cwd, args)
}

/// Overwrite a blob's bytes in place, as a bad disk or a stray write would.
fn damage_blob(home: &Path, hash: &Hash, bytes: &[u8]) {
    let store = Store::open(home).unwrap();
    let p = store.blob_path(hash);
    let mode = std::fs::metadata(&p).unwrap().permissions().mode();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn file_hash(m: &Path, rel: &str) -> Hash {
    let m = Manifest::load(m).unwrap();
    let e = m.get(rel.as_bytes()).expect("entry");
    assert_eq!(e.kind, EntryKind::File);
    e.hash
}

// ---- 1. gc roots that survive a move ----

/// A run writes a file that exists only in the store and in M; M's folder is renamed; gc
/// --delete keeps the blob and says why; M's folder moved back runs again. `gc --forget`
/// releases it.
fn renamed_manifest_folder(as_user: bool) {
    let env = Env::new();
    let folder = env.mkdir("envs");
    let m = folder.join("env.manifest");
    make_manifest(&env, &m, &[Node::File("h", b"hello\n", 0o644)]);
    let cwd = env.mkdir("cwd");
    if as_user {
        env.give_to_nobody();
    }
    let mount = env.dir.path().join("view");
    let bb = busybox();
    let args = run_args(
        &m,
        Some(&mount),
        &[&bb, "sh", "-c", "echo only-in-the-store > virtual.txt"],
    );
    ok_within(&mut vrift(&env, &cwd, as_user, &args), RUN_TIMEOUT);
    let only = file_hash(&m, "virtual.txt");
    assert_eq!(only, Hash::of(b"only-in-the-store\n"));

    let moved = env.dir.path().join("envs-renamed");
    std::fs::rename(&folder, &moved).unwrap();
    let out = run_expect(&mut vrift(&env, &cwd, as_user, &["gc", "--delete"]), true);
    let text = stdout_of(&out);
    // Before: "removed roots (manifest gone): 1" and the blob deleted.
    assert!(text.contains("manifest moved or deleted: "), "{text}");
    assert!(text.contains("env.manifest: 2 blobs kept"), "{text}");
    assert!(text.contains("`vrift gc --forget "), "{text}");
    let store = Store::open(&env.home()).unwrap();
    assert!(
        store.verify_blob(&only).unwrap(),
        "the run's only copy was deleted"
    );

    // Back where it was: runs again, and sees what the first run wrote.
    std::fs::rename(&moved, &folder).unwrap();
    let args = run_args(&m, Some(&mount), &[&bb, "cat", "virtual.txt"]);
    let out = ok_within(&mut vrift(&env, &cwd, as_user, &args), RUN_TIMEOUT);
    assert_eq!(stdout_of(&out), "only-in-the-store\n");

    // Deleted on purpose and forgotten: released.
    std::fs::remove_file(&m).unwrap();
    let out = run_expect(
        &mut vrift(
            &env,
            &cwd,
            as_user,
            &["gc", "--forget", m.to_str().unwrap(), "--delete"],
        ),
        true,
    );
    assert!(stderr_of(&out).contains("forgot "), "{}", stderr_of(&out));
    assert!(!store.contains(&only));
}
matrix!(gc_keeps_a_runs_only_copy_when_its_manifest_folder_is_renamed => renamed_manifest_folder);

/// Two projects share a blob; one project folder is renamed and re-initialized there, the
/// other's manifest deleted. Nothing either needs is lost until both old names are forgotten.
#[test]
fn two_roots_sharing_blobs_survive_a_move_and_a_delete() {
    let env = Env::new();
    let a = env.mkdir("a");
    let b = env.mkdir("b");
    write(&a.join("shared.txt"), "shared\n");
    write(&b.join("shared.txt"), "shared\n");
    write(&b.join("own.txt"), "b only\n");
    stdout_ok(&mut env.vrift(&a, &["init"]));
    stdout_ok(&mut env.vrift(&b, &["init"]));
    let b_manifest = std::fs::canonicalize(b.join("vrift.manifest")).unwrap();
    let a_old = std::fs::canonicalize(a.join("vrift.manifest")).unwrap();
    let a2 = env.dir.path().join("a2");
    std::fs::rename(&a, &a2).unwrap();
    stdout_ok(&mut env.vrift(&a2, &["init"]));
    std::fs::remove_file(&b_manifest).unwrap();
    std::fs::remove_dir_all(&b).unwrap();

    let v: serde_json::Value = serde_json::from_str(&stdout_ok(
        &mut env.vrift(&a2, &["gc", "--delete", "--json"]),
    ))
    .unwrap();
    let moved = v["moved_roots"].as_array().unwrap();
    assert_eq!(moved.len(), 2, "{v}");
    // The renamed project is recognized at its new place.
    let a_entry = moved
        .iter()
        .find(|m| m["manifest"] == a_old.display().to_string())
        .unwrap();
    assert!(a_entry["same_as"][0]
        .as_str()
        .unwrap()
        .ends_with("a2/vrift.manifest"));
    let store = Store::open(&env.home()).unwrap();
    assert!(store.contains(&Hash::of(b"b only\n")));
    stdout_ok(&mut env.vrift(
        &a2,
        &[
            "gc",
            "--forget",
            b_manifest.to_str().unwrap(),
            "--forget",
            a_old.to_str().unwrap(),
            "--delete",
        ],
    ));
    assert!(!store.contains(&Hash::of(b"b only\n")));
    assert!(store.contains(&Hash::of(b"shared\n")), "a2 still needs it");
}

/// gc --delete started while a run is going waits for it, then keeps what the run made.
fn gc_racing_a_run(as_user: bool) {
    let env = Env::new();
    let m = env.dir.path().join("m.manifest");
    make_manifest(&env, &m, &[Node::File("a", b"a\n", 0o644)]);
    let cwd = env.mkdir("cwd");
    let out = env.mkdir("out");
    let go = out.join("go");
    mkfifo(&go);
    if as_user {
        env.give_to_nobody();
    }
    let bb = busybox();
    let script = format!(
        "echo made-during-gc > new.txt && echo ready > {0}/ready && read x < {0}/go",
        out.display()
    );
    let mount = env.dir.path().join("view");
    let args = run_args(&m, Some(&mount), &[&bb, "sh", "-c", &script]);
    let mut run = vrift(&env, &cwd, as_user, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_until(Duration::from_secs(60), || out.join("ready").exists()) {
        let _ = run.kill();
        panic!("the run never got ready");
    }
    let mut gc = vrift(&env, &cwd, as_user, &["gc", "--delete"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // gc says it waits (a line on its stderr) before the run is let go.
    let mut err = BufReader::new(gc.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting for running vrift commands"),
        "{line}"
    );
    release(&go);
    let run_out = run.wait_with_output().unwrap();
    assert!(run_out.status.success(), "{}", stderr_of(&run_out));
    assert!(gc.wait().unwrap().success());
    let made = file_hash(&m, "new.txt");
    let store = Store::open(&env.home()).unwrap();
    assert!(
        store.verify_blob(&made).unwrap(),
        "gc deleted what the run made"
    );
}
matrix!(gc_waits_for_a_run_and_keeps_what_it_made => gc_racing_a_run);

// ---- 4. the store heals ----

fn corrupt_project_blob(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("f1.txt", "right\n", 0o644);
    p.ready();
    stdout_ok(&mut vrift(&p.env, &p.dir, as_user, &["init"]));
    let h = file_hash(&p.dir.join("vrift.manifest"), "f1.txt");
    damage_blob(&p.env.home(), &h, b"WRONG\n");

    // Reported, with the path that uses it and what to do.
    let out = run_expect(
        &mut vrift(&p.env, &p.dir, as_user, &["store", "verify"]),
        false,
    );
    assert!(
        stdout_of(&out).contains(&format!(
            "corrupt (content does not match its hash) blob {h}"
        )),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stdout_of(&out).contains("f1.txt in "),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stderr_of(&out).contains("vrift store verify --repair"),
        "{}",
        stderr_of(&out)
    );

    // `vrift init` after touching the file stores it again instead of "already present".
    let f = std::fs::File::options()
        .write(true)
        .open(p.dir.join("f1.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(3))
        .unwrap();
    drop(f);
    let out = stdout_ok(&mut vrift(&p.env, &p.dir, as_user, &["init", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["bytes_new"], 6, "{v}");
    assert_eq!(
        std::fs::read(Store::open(&p.env.home()).unwrap().blob_path(&h)).unwrap(),
        b"right\n"
    );
    assert_eq!(p.sh("cat f1.txt"), "right\n");

    // Damaged again: `store verify --repair` moves it aside and repairs it from the project.
    damage_blob(&p.env.home(), &h, b"WRONG\n");
    let out = run_expect(
        &mut vrift(&p.env, &p.dir, as_user, &["store", "verify", "--repair"]),
        true,
    );
    let text = stdout_of(&out);
    assert!(text.contains("moved aside to "), "{text}");
    assert!(
        text.contains(&format!(
            "repaired from {}",
            p.dir.join("f1.txt").canonicalize().unwrap().display()
        )),
        "{text}"
    );
    assert_eq!(p.sh("cat f1.txt"), "right\n");
    let q = Store::open(&p.env.home()).unwrap().quarantined().unwrap();
    assert_eq!(q.len(), 2);
    stdout_ok(&mut vrift(&p.env, &p.dir, as_user, &["store", "verify"]));
}
matrix!(a_corrupt_blob_is_repaired_and_not_served => corrupt_project_blob);

/// No file on disk has the content: --repair moves the blob aside, and a run then refuses
/// (naming the blob) rather than print the damaged bytes.
#[test]
fn a_corrupt_blob_with_no_source_is_never_served() {
    let env = Env::new();
    let m = env.dir.path().join("m.manifest");
    make_manifest(&env, &m, &[Node::File("f", b"only in the store\n", 0o644)]);
    Store::open(&env.home()).unwrap().register_root(&m).unwrap();
    let h = file_hash(&m, "f");
    damage_blob(&env.home(), &h, b"XXXX in the store\n");
    let cwd = env.mkdir("cwd");
    let out = run_expect(
        &mut env.vrift(&cwd, &["store", "verify", "--repair"]),
        false,
    );
    assert!(
        stdout_of(&out).contains("not repaired: no file with this content found"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stderr_of(&out).contains("--from DIR"),
        "{}",
        stderr_of(&out)
    );
    let bb = busybox();
    let mount = env.dir.path().join("view");
    let out = run_expect(
        &mut env.vrift(&cwd, &run_args(&m, Some(&mount), &[&bb, "cat", "f"])),
        false,
    );
    assert!(
        !stdout_of(&out).contains("XXXX"),
        "served the damaged bytes"
    );
    assert!(stderr_of(&out).contains(&h.to_hex()), "{}", stderr_of(&out));
    // A backup with the content repairs it.
    let backup = env.mkdir("backup");
    write(&backup.join("copy"), "only in the store\n");
    let out = run_expect(
        &mut env.vrift(
            &cwd,
            &[
                "store",
                "verify",
                "--repair",
                "--from",
                backup.to_str().unwrap(),
            ],
        ),
        true,
    );
    assert!(
        stdout_of(&out).contains("repaired from "),
        "{}",
        stdout_of(&out)
    );
    let out = ok_within(
        &mut env.vrift(&cwd, &run_args(&m, Some(&mount), &[&bb, "cat", "f"])),
        RUN_TIMEOUT,
    );
    assert_eq!(stdout_of(&out), "only in the store\n");
}

// ---- 5. setup that names what it cannot do, and goes on ----

/// `init --exclude` is remembered: the next run leaves the same paths out.
#[test]
fn init_exclude_is_remembered_by_the_next_run() {
    let mut p = Project::new(false);
    p.file("src/main.c", "int main;\n", 0o644);
    p.file("scratch/big.bin", "scratch\n", 0o644);
    p.ready();
    let out = run_expect(
        &mut p.env.vrift(&p.dir, &["init", "--exclude", "scratch/"]),
        true,
    );
    assert!(
        stderr_of(&out).contains(".vriftignore"),
        "{}",
        stderr_of(&out)
    );
    let has_scratch = |p: &Project| {
        Manifest::load(&p.dir.join("vrift.manifest"))
            .unwrap()
            .iter()
            .any(|(path, _)| path.starts_with(b"scratch"))
    };
    assert!(!has_scratch(&p));
    // Before: the run's refresh brought scratch/ back into vrift.manifest.
    p.sh("echo x > src/new.c");
    assert!(!has_scratch(&p), "the run forgot --exclude");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("scratch/big.bin")).unwrap(),
        "scratch\n"
    );
    // Passed through: the real file, seen and written in the view.
    assert_eq!(p.sh("cat scratch/big.bin"), "scratch\n");
}

/// An unreadable directory in the project does not stop a run by an ordinary user; in the
/// view it is exactly as unreadable as on disk.
#[test]
fn an_unreadable_directory_stays_unreadable_and_does_not_stop_the_run() {
    let mut p = Project::new(true);
    p.file("a.txt", "a\n", 0o644);
    p.file("locked/inner.txt", "secret\n", 0o644);
    p.ready();
    std::fs::set_permissions(p.dir.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = ok_within(
        &mut p.cmd(&[
            &busybox(),
            "sh",
            "-c",
            "cat a.txt; ls locked 2>&1; echo rc=$?",
        ]),
        RUN_TIMEOUT,
    );
    let text = stdout_of(&out);
    assert!(text.starts_with("a\n"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("rc=1"), "{text}");
    std::fs::set_permissions(p.dir.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        std::fs::read_to_string(p.dir.join("locked/inner.txt")).unwrap(),
        "secret\n"
    );
}

// ---- 7. messages that say what happened ----

/// Garbage bigger than every tree: the saving is never negative.
#[test]
fn status_never_reports_a_negative_saving() {
    let env = Env::new();
    let p = env.mkdir("p");
    write(&p.join("small.txt"), "small\n");
    stdout_ok(&mut env.vrift(&p, &["init"]));
    Store::open(&env.home())
        .unwrap()
        .insert_bytes(&vec![b'g'; 100_000])
        .unwrap();
    let text = stdout_ok(&mut env.vrift(&p, &["status"]));
    let saved = text.lines().find(|l| l.starts_with("saved:")).unwrap();
    assert!(!saved.contains('-'), "{saved}");
    assert!(text.contains("unreferenced:  1 blobs"), "{text}");
}

/// A conflict on a path with a newline in its name: the message escapes it, and with no
/// vrift.manifest the hint names two files that exist; a second conflict keeps the first.
#[test]
fn conflict_messages_escape_paths_and_each_result_is_kept() {
    let mut p = Project::new(false);
    p.file("odd\nname.txt", "disk\n", 0o644);
    p.ready();
    let mut kept_all = Vec::new();
    for round in 0..2 {
        let ready = p.out.join(format!("ready{round}"));
        let go = p.out.join(format!("go{round}"));
        mkfifo(&go);
        let script = format!(
            "echo run{round} > 'odd\nname.txt' && echo ready > {} && read x < {}",
            ready.display(),
            go.display()
        );
        let child = p
            .cmd(&[&busybox(), "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(wait_until(Duration::from_secs(60), || ready.exists()));
        write(
            &p.dir.join("odd\nname.txt"),
            format!("disk changed {round}\n"),
        );
        release(&go);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        let first = err
            .lines()
            .find(|l| l.contains("left as they are"))
            .unwrap();
        assert!(first.contains("odd\\nname.txt"), "{err}");
        let hint = err
            .lines()
            .find(|l| l.contains("full result is kept as run "))
            .unwrap();
        let paths: Vec<PathBuf> = hint
            .split('`')
            .nth(1)
            .unwrap()
            .split(' ')
            .skip(3)
            .map(PathBuf::from)
            .collect();
        assert_eq!(paths.len(), 2, "{hint}");
        for f in &paths {
            assert!(f.is_file(), "{hint}: {} does not exist", f.display());
        }
        kept_all.push(paths[1].clone());
    }
    // Both results kept, both protected from gc.
    assert_ne!(kept_all[0], kept_all[1]);
    for (round, k) in kept_all.iter().enumerate() {
        let h = file_hash(k, "odd\nname.txt");
        assert_eq!(h, Hash::of(format!("run{round}\n").as_bytes()));
    }
    stdout_ok(&mut p.env.vrift(&p.dir, &["gc", "--delete"]));
    let store = Store::open(&p.env.home()).unwrap();
    assert!(store.contains(&Hash::of(b"run0\n")) && store.contains(&Hash::of(b"run1\n")));
}

// ---- 2, 3. write-back that fails keeps the result, with a command that applies it ----

/// The id in "`vrift runs apply ID`" on stderr.
fn kept_id(stderr: &str) -> String {
    let i = stderr
        .find("`vrift runs apply ")
        .unwrap_or_else(|| panic!("no `vrift runs apply ID` in: {stderr}"));
    stderr[i + "`vrift runs apply ".len()..]
        .split('`')
        .next()
        .unwrap()
        .to_string()
}

/// Run `script` in the project; when it has written its files (a marker), call `meddle`,
/// then let it end. Returns the run's output.
fn run_and_meddle(p: &Project, script: &str, meddle: impl FnOnce()) -> std::process::Output {
    let ready = p.out.join("ready");
    let go = p.out.join("go");
    mkfifo(&go);
    if p.as_user {
        run_expect(Command::new("chown").arg("nobody").arg(&go), true);
    }
    let script = format!(
        "{script} && echo ready > {} && read x < {}",
        ready.display(),
        go.display()
    );
    let mut child = p
        .cmd(&[&busybox(), "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_until(Duration::from_secs(60), || ready.exists()) {
        let _ = child.kill();
        panic!("{}", stderr_of(&child.wait_with_output().unwrap()));
    }
    meddle();
    release(&go);
    child.wait_with_output().unwrap()
}

/// The run failed to save, said so, kept its result, and gave an id; `vrift runs` lists
/// it. Returns the id.
fn assert_kept(p: &Project, out: &std::process::Output, why: &str) -> String {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("saving the run's result to "), "{err}");
    assert!(err.contains(why), "{err}");
    let id = kept_id(&err);
    let list = stdout_of(&run_expect(
        &mut vrift(&p.env, &p.out, p.as_user, &["runs"]),
        true,
    ));
    assert!(list.contains(&id) && list.contains("kept"), "{list}");
    // The same as JSON: the run by its id, kept, for its destination.
    let listed = stdout_of(&run_expect(
        &mut vrift(&p.env, &p.out, p.as_user, &["runs", "--json"]),
        true,
    ));
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {listed}"));
    assert_eq!(row["state"], "kept", "{listed}");
    assert!(!row["destination"].as_str().unwrap().is_empty(), "{listed}");
    // Nothing is left for recovery to trip over: another run says nothing about it.
    let other = p.env.mkdir("other");
    if p.as_user {
        run_expect(Command::new("chown").arg("nobody").arg(&other), true);
    }
    let o = ok_within(
        &mut vrift(
            &p.env,
            &other,
            p.as_user,
            &["run", "--", &busybox(), "true"],
        ),
        RUN_TIMEOUT,
    );
    assert!(!stderr_of(&o).contains("recover"), "{}", stderr_of(&o));
    id
}

/// Apply the kept run `id`, then it is gone from the list.
fn apply_kept(p: &Project, id: &str) {
    let out = run_expect(
        &mut vrift(&p.env, &p.out, p.as_user, &["runs", "apply", id]),
        true,
    );
    assert!(stderr_of(&out).contains("applied"), "{}", stderr_of(&out));
    let list = stdout_of(&run_expect(
        &mut vrift(&p.env, &p.out, p.as_user, &["runs"]),
        true,
    ));
    assert!(!list.contains(id), "{list}");
}

/// The destination became unwritable during the run: as root, a read-only bind mount over
/// the project; as an ordinary user, the project handed to root.
fn unwritable_destination(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("a.txt", "a\n", 0o644);
    p.ready();
    let dir = p.dir.clone();
    let out = run_and_meddle(&p, "echo w > new.txt && echo more >> a.txt", || {
        if as_user {
            run_expect(Command::new("chown").args(["root:root"]).arg(&dir), true);
        } else {
            run_expect(
                Command::new("mount").args(["--bind"]).arg(&dir).arg(&dir),
                true,
            );
            run_expect(
                Command::new("mount")
                    .args(["-o", "remount,ro,bind"])
                    .arg(&dir),
                true,
            );
        }
    });
    let why = if as_user {
        "Permission denied"
    } else {
        "Read-only file system"
    };
    let id = assert_kept(&p, &out, why);
    assert!(!p.dir.join("new.txt").exists());
    // The cause fixed, the kept result applies.
    if as_user {
        run_expect(
            Command::new("chown").args(["nobody:nogroup"]).arg(&dir),
            true,
        );
    } else {
        run_expect(Command::new("umount").arg(&dir), true);
    }
    apply_kept(&p, &id);
    assert_eq!(
        std::fs::read_to_string(p.dir.join("new.txt")).unwrap(),
        "w\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.dir.join("a.txt")).unwrap(),
        "a\nmore\n"
    );
    p.check_store();
}
matrix!(an_unwritable_destination_keeps_the_result => unwritable_destination);

/// A path the result goes into vanished during the run.
fn vanished_path(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("sub/a.txt", "a\n", 0o644);
    p.ready();
    let sub = p.dir.join("sub");
    let out = run_and_meddle(&p, "echo made > sub/new.txt", || {
        std::fs::remove_dir_all(&sub).unwrap();
    });
    let id = assert_kept(&p, &out, "sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("a.txt"), "a\n").unwrap();
    if as_user {
        run_expect(
            Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&sub),
            true,
        );
    }
    // a.txt differs (its mtime) from the run's start: the rest applies, a.txt stays.
    let out = vrift(&p.env, &p.out, as_user, &["runs", "apply", &id])
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(sub.join("new.txt")).unwrap(),
        "made\n",
        "{}",
        stderr_of(&out)
    );
    p.check_store();
}
matrix!(a_vanished_path_keeps_the_result => vanished_path);

/// Unmounts a tmpfs when the test ends, however it ends.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The destination's disk is full (a small tmpfs); grown, the kept result applies.
#[test]
fn a_full_disk_keeps_the_result() {
    if !is_root() {
        eprintln!("not run: mounting a tmpfs needs root");
        return;
    }
    let mut p = Project::new(false);
    run_expect(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&p.dir),
        true,
    );
    let _guard = Tmpfs(p.dir.clone());
    p.file("a.txt", "a\n", 0o644);
    p.ready();
    let out = run_and_meddle(
        &p,
        "$BB dd if=/dev/zero of=big bs=1024 count=1024 2>/dev/null",
        || {},
    );
    let id = assert_kept(&p, &out, "No space left on device");
    assert!(!p.dir.join("big").exists(), "a torn file was left");
    run_expect(
        Command::new("mount")
            .args(["-o", "remount,size=4m"])
            .arg(&p.dir),
        true,
    );
    apply_kept(&p, &id);
    assert_eq!(std::fs::metadata(p.dir.join("big")).unwrap().len(), 1 << 20);
    p.check_store();
}

/// `vrift runs discard` drops a kept result and releases its blobs to gc.
#[test]
fn a_kept_result_can_be_discarded() {
    let mut p = Project::new(false);
    p.file("sub/a.txt", "a\n", 0o644);
    p.ready();
    let sub = p.dir.join("sub");
    let out = run_and_meddle(&p, "echo discard-me > sub/new.txt", || {
        std::fs::remove_dir_all(&sub).unwrap();
    });
    let id = assert_kept(&p, &out, "sub");
    let store = Store::open(&p.env.home()).unwrap();
    stdout_ok(&mut p.env.vrift(&p.out, &["gc", "--delete"]));
    assert!(
        store.contains(&Hash::of(b"discard-me\n")),
        "gc took a kept result"
    );
    run_expect(&mut p.env.vrift(&p.out, &["runs", "discard", &id]), true);
    stdout_ok(&mut p.env.vrift(&p.out, &["gc", "--delete"]));
    assert!(!store.contains(&Hash::of(b"discard-me\n")));
    let out = run_expect(&mut p.env.vrift(&p.out, &["runs", "discard", &id]), false);
    assert!(stderr_of(&out).contains(&id), "{}", stderr_of(&out));
}

// ---- 5. setup failures that name the program, the store inside the current directory ----

/// A missing program: "vrift: CMD: command not found" and 127; one that cannot be run: 126.
/// Nothing is left behind for recovery.
fn exec_failures(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("notexec", "just text\n", 0o644);
    p.ready();
    let out = output_within(&mut p.cmd(&["no-such-program-here"]), RUN_TIMEOUT);
    assert_eq!(out.status.code(), Some(127), "{}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out).trim_end(),
        "vrift: no-such-program-here: command not found"
    );
    let out = output_within(&mut p.cmd(&["./notexec"]), RUN_TIMEOUT);
    assert_eq!(out.status.code(), Some(126), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("./notexec: Permission denied"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        std::fs::read_dir(p.env.home().join("runs"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "a run directory was left behind"
    );
}
matrix!(a_missing_program_exits_127_and_an_unrunnable_one_126 => exec_failures);

/// Running from the directory that holds the store (a home directory with the default
/// store): with --manifest, and as a plain run of that directory.
fn store_inside_the_current_directory(as_user: bool) {
    let env = Env::new();
    let home = env.mkdir("home");
    let store = home.join(".local/share/vrift");
    let m = home.join("env.manifest");
    write(&home.join("p.txt"), "plain\n");
    let c = |args: &[&str]| {
        let mut c = vrift(&env, &home, as_user, args);
        c.env("VRIFT_HOME", &store);
        c
    };
    {
        let lib = vrift_common::store::Store::open(&store).unwrap();
        let ins = lib.insert_bytes(b"hi\n").unwrap();
        use vrift_common::manifest::Entry;
        Manifest::from_entries([
            (
                Vec::new(),
                Entry {
                    kind: EntryKind::Dir,
                    hash: Hash([0; 32]),
                    size: 0,
                    mode: 0o755,
                    mtime_ns: 0,
                    target: Vec::new(),
                    meta: Default::default(),
                },
            ),
            (
                b"h".to_vec(),
                Entry {
                    kind: EntryKind::File,
                    hash: ins.hash,
                    size: ins.size,
                    mode: 0o644,
                    mtime_ns: 0,
                    target: Vec::new(),
                    meta: Default::default(),
                },
            ),
        ])
        .save_atomic(&m)
        .unwrap();
    }
    if as_user {
        env.give_to_nobody();
    }
    let bb = busybox();
    // Before: "setting up the view and starting the program: No such file or directory".
    let out = ok_within(
        &mut c(&[
            "run",
            "--manifest",
            m.to_str().unwrap(),
            "--",
            &bb,
            "cat",
            "h",
        ]),
        RUN_TIMEOUT,
    );
    assert_eq!(stdout_of(&out), "hi\n");
    let out = ok_within(
        &mut c(&[
            "run",
            "--",
            &bb,
            "sh",
            "-c",
            "cat p.txt && echo new > new.txt",
        ]),
        RUN_TIMEOUT,
    );
    assert_eq!(stdout_of(&out), "plain\n");
    assert_eq!(
        std::fs::read_to_string(home.join("new.txt")).unwrap(),
        "new\n"
    );
    // The store was not ingested into the transient view's manifest nor changed by it.
    assert!(store.join("blobs").is_dir());
}
matrix!(the_store_inside_the_current_directory_works => store_inside_the_current_directory);

// ---- 6. vrift.manifest does not break tools ----

/// `git clean -fdx` in the view of a project with vrift.manifest works as it does natively
/// (before: "failed to remove vrift.manifest: Read-only file system", exit 1); vrift's own
/// files are not part of the view, and vrift.manifest stays valid on disk.
fn git_clean_in_the_view(as_user: bool) {
    let git = require_tool("git");
    let mut p = Project::new(as_user);
    p.file("a.c", "int a;\n", 0o644);
    let g = |args: &[&str]| {
        run_expect(
            Command::new(&git)
                .args(["-c", "user.email=t@t", "-c", "user.name=t"])
                .args(args)
                .current_dir(&p.dir),
            true,
        );
    };
    g(&["init", "-q", "."]);
    g(&["add", "a.c"]);
    g(&["commit", "-qm", "a"]);
    p.file("junk.o", "junk\n", 0o644);
    p.file("build/out.o", "out\n", 0o644);
    stdout_ok(&mut p.env.vrift(&p.dir, &["init"]));
    p.ready();
    let git_s = git.to_str().unwrap();
    let out = ok_within(
        &mut p.cmd(&[git_s, "-c", "safe.directory=*", "clean", "-fdx"]),
        RUN_TIMEOUT,
    );
    assert!(!stderr_of(&out).contains("failed"), "{}", stderr_of(&out));
    assert!(!p.dir.join("junk.o").exists());
    assert!(!p.dir.join("build").exists());
    assert_eq!(
        std::fs::read_to_string(p.dir.join("a.c")).unwrap(),
        "int a;\n"
    );
    let m = Manifest::load(&p.dir.join("vrift.manifest")).expect("vrift.manifest kept, valid");
    assert!(m.get(b"junk.o").is_none() && m.get(b"a.c").is_some());
    // Not in the view at all.
    assert_eq!(p.sh("ls -a | grep -c vrift.manifest || true"), "0\n");
}
matrix!(git_clean_works_in_the_view => git_clean_in_the_view);

/// `rm -rf .` in the view does what it does natively: the same status, the same files left.
#[test]
fn rm_rf_dot_in_the_view_is_as_native() {
    let mut p = Project::new(false);
    p.file("a/b.txt", "b\n", 0o644);
    p.file("c.txt", "c\n", 0o644);
    stdout_ok(&mut p.env.vrift(&p.dir, &["init"]));
    p.ready();
    let native_dir = p.env.mkdir("native");
    write(&native_dir.join("a/b.txt"), "b\n");
    write(&native_dir.join("c.txt"), "c\n");
    let bb = busybox();
    let native = Command::new(&bb)
        .args(["sh", "-c", "rm -rf . ; echo rc=$?"])
        .current_dir(&native_dir)
        .output()
        .unwrap();
    let viewed = ok_within(
        &mut p.cmd(&[&bb, "sh", "-c", "rm -rf . ; echo rc=$?"]),
        RUN_TIMEOUT,
    );
    assert_eq!(stdout_of(&viewed), stdout_of(&native));
    let left = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "vrift.manifest" && n != ".vrift")
            .collect();
        v.sort();
        v
    };
    assert_eq!(left(&p.dir), left(&native_dir));
}

// ---- 2. permissions judged when the write is made ----

/// An ordinary user in a project owned by root: writes get "Permission denied" at once, as
/// on disk (before: they succeeded in the view and the run failed at write-back, and every
/// later run complained it could not recover it).
#[test]
fn writes_the_disk_would_refuse_are_refused_at_once() {
    if !is_root() {
        eprintln!("not run: needs a project owned by another user (root)");
        return;
    }
    let env = Env::new();
    let proj = env.mkdir("proj");
    write(&proj.join("a.txt"), "a\n");
    let store = env.home();
    std::fs::create_dir_all(&store).unwrap();
    run_expect(
        Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(&store),
        true,
    );
    let bb = busybox();
    let script = "echo w > new.txt; echo new=$?; echo more >> a.txt; echo a=$?; cat a.txt";
    let native = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args([&bb, "sh", "-c", script])
        .current_dir(&proj)
        .output()
        .unwrap();
    let out = ok_within(
        &mut env.vrift_as_user(&proj, &["run", "--", &bb, "sh", "-c", script]),
        RUN_TIMEOUT,
    );
    assert_eq!(stdout_of(&out), stdout_of(&native));
    assert!(
        stdout_of(&out).contains("new=1") && stdout_of(&out).contains("a=1"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stderr_of(&out).contains("Permission denied"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !stderr_of(&out).contains("saving the run's result"),
        "{}",
        stderr_of(&out)
    );
    assert!(!proj.join("new.txt").exists());
    assert_eq!(std::fs::read_to_string(proj.join("a.txt")).unwrap(), "a\n");
    let list = stdout_ok(&mut env.vrift_as_user(&proj, &["runs"]));
    assert!(list.contains("no kept or interrupted runs"), "{list}");
}

/// A name whose full path is longer than PATH_MAX (a relative create below a deep
/// directory, as natively allowed): made in the view, and written back to the project,
/// which reaches it through its directory's descriptor; nothing is kept, nothing is taken
/// for "changed on disk".
fn name_past_path_max(as_user: bool) {
    let mut p = Project::new(as_user);
    let deep: PathBuf = std::iter::repeat_n("d".repeat(200), 20).collect();
    p.file(&deep.join("a.txt").to_string_lossy(), "a\n", 0o644);
    p.ready();
    let cwd = p.dir.join(&deep);
    let long = "n".repeat(250);
    assert!(cwd.join(&long).as_os_str().len() >= 4096);
    let out = output_within(
        &mut p.cmd_in(
            &cwd,
            &[
                &busybox(),
                "sh",
                "-c",
                &format!("echo x > {long}; echo rc=$?; cat {long}"),
            ],
        ),
        RUN_TIMEOUT,
    );
    let err = stderr_of(&out);
    assert!(!err.contains("changed on disk"), "{err}");
    assert!(!err.contains("saving the run's result"), "{err}");
    let rel = deep.join(&long).to_string_lossy().into_owned();
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout_of(&out), "rc=0\nx\n", "{err}");
    assert!(
        matches!(p.tree().get(&rel), Some(RealNode::File { content, .. }) if content == b"x\n"),
        "not written back"
    );
    let list = stdout_ok(&mut vrift(&p.env, &p.out, as_user, &["runs"]));
    assert!(list.contains("no kept or interrupted runs"), "{list}");
    p.check_store();
}
matrix!(a_name_past_path_max_is_made_and_written_back => name_past_path_max);

/// A killed run whose record is damaged cannot be recovered: the next run says so once,
/// later runs say nothing and work, `vrift runs` lists it and `vrift runs discard` drops it.
fn unrecoverable_run(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("a.txt", "a\n", 0o644);
    p.ready();
    let ready = p.out.join("ready");
    let go = p.out.join("go");
    mkfifo(&go);
    if as_user {
        run_expect(Command::new("chown").arg("nobody").arg(&go), true);
    }
    let script = format!(
        "echo x > b.txt && echo ready > {} && read x < {}",
        ready.display(),
        go.display()
    );
    let mut child = p
        .cmd(&[&busybox(), "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(60), || ready.exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    let runs: Vec<PathBuf> = std::fs::read_dir(p.env.home().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let id = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(runs[0].join("run.json"), "{ damaged").unwrap();

    let first = ok_within(&mut p.cmd(&[&busybox(), "true"]), RUN_TIMEOUT);
    let err = stderr_of(&first);
    assert!(
        err.contains("could not recover the interrupted run"),
        "{err}"
    );
    assert!(err.contains(&format!("vrift runs discard {id}")), "{err}");
    // Said once: the next runs are quiet, and work.
    for _ in 0..2 {
        let again = ok_within(
            &mut p.cmd(&[&busybox(), "sh", "-c", "echo y > c.txt"]),
            RUN_TIMEOUT,
        );
        assert!(
            !stderr_of(&again).contains("recover"),
            "{}",
            stderr_of(&again)
        );
    }
    assert_eq!(std::fs::read_to_string(p.dir.join("c.txt")).unwrap(), "y\n");
    let list = stdout_of(&run_expect(
        &mut vrift(&p.env, &p.out, as_user, &["runs"]),
        true,
    ));
    assert!(
        list.contains(&id) && list.contains("unrecoverable"),
        "{list}"
    );
    run_expect(
        &mut vrift(&p.env, &p.out, as_user, &["runs", "discard", &id]),
        true,
    );
    assert!(!runs[0].exists());
}
matrix!(an_unrecoverable_run_is_named_once_and_never_blocks_later_runs => unrecoverable_run);

// ---- 7. vrift trace: one unit, and listings are file calls ----

/// `vrift trace -- ls` (eBPF as root): every duration in ms, and getdents64 in the file
/// syscall table, not among "other syscalls" (before: `3200.0us`, and getdents64 and
/// fsetxattr listed as other syscalls).
#[test]
fn trace_reports_ms_and_counts_listings_as_file_calls() {
    if !is_root() {
        eprintln!("not run: eBPF tracing needs root");
        return;
    }
    let env = Env::new();
    let m = env.dir.path().join("m.manifest");
    make_manifest(
        &env,
        &m,
        &[Node::Dir("d", 0o755), Node::File("d/f", b"f\n", 0o644)],
    );
    let cwd = env.mkdir("cwd");
    let json = env.dir.path().join("report.json");
    let mount = env.dir.path().join("view");
    let bb = busybox();
    let out = run_expect(
        &mut env.vrift(
            &cwd,
            &[
                "trace",
                "--json",
                json.to_str().unwrap(),
                "--manifest",
                m.to_str().unwrap(),
                "--mount",
                mount.to_str().unwrap(),
                "-C",
                mount.to_str().unwrap(),
                "--",
                &bb,
                "ls",
                "-R",
            ],
        ),
        true,
    );
    let text = stderr_of(&out);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    if report["ebpf_missing"].is_string() {
        eprintln!("not run: eBPF unavailable here: {}", report["ebpf_missing"]);
        return;
    }
    for word in text.split_whitespace() {
        assert!(
            !(word.ends_with("us") && word.starts_with(|c: char| c.is_ascii_digit())),
            "a duration not in ms: {word}\n{text}"
        );
    }
    let names = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names("file_syscalls").contains(&"getdents64".to_string()),
        "{report:#}"
    );
    assert!(
        !names("other_syscalls")
            .iter()
            .any(|n| n.starts_with("getdents") || n.contains("xattr")),
        "{report:#}"
    );
}
