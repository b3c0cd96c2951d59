//! What happens to a run's writes around the run itself: a vrift killed with SIGKILL after
//! the program wrote and closed files leaves the project (and its vrift.manifest, or the
//! --manifest file) old or new, never torn, and the next run recovers the writes and says
//! so; a file changed on disk during the run keeps the disk's version, is named on stderr,
//! and the run's version is kept in the store's unapplied/<id>/ (see `vrift runs`); with --manifest the writes
//! land in the manifest file only. Root and an ordinary user; the store keeps every blob.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

/// Wait (bounded) for the program to write `marker`; kill the run and panic if it never does.
fn wait_for_marker(child: &mut Child, marker: &Path) {
    if !wait_until(Duration::from_secs(60), || marker.exists()) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the program never wrote {}", marker.display());
    }
}

/// Start `cmd` (a run), wait until its program has written `marker`, and SIGKILL it: to
/// vrift itself (setpriv execs it, so the child's pid is vrift's as well).
fn kill_once_marked(cmd: &mut Command, marker: &Path) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_marker(&mut child, marker);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn entry_hash(m: &Manifest, rel: &str) -> Option<Hash> {
    m.get(rel.as_bytes())
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.hash)
}

fn runs_left(p: &Project) -> Vec<String> {
    match std::fs::read_dir(p.env.home().join("runs")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

// ---- SIGKILL, then recovery ----

/// Where the crashed run's result goes.
#[derive(Clone, Copy, PartialEq)]
enum Dest {
    /// A project without vrift.manifest: written back to disk.
    Plain,
    /// A project with vrift.manifest: written back and the manifest refreshed.
    WithManifest,
    /// `--manifest M`: M replaced, nothing on disk.
    ManifestFile,
}

fn crash(as_user: bool, dest: Dest) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.file("old.txt", "old\n", 0o644);
    let m = p.out.join("view.manifest");
    match dest {
        Dest::Plain => {}
        Dest::WithManifest => {
            run_expect(&mut p.env.vrift(&p.dir, &["init"]), true);
            assert!(p.dir.join("vrift.manifest").is_file());
        }
        Dest::ManifestFile => manifest_of_dir(&p.env, &p.dir, &m),
    }
    let marker = p.out.join("written");
    p.ready();
    let tree_before = p.tree();
    let bb = busybox();
    let script = "echo new > out.txt && echo changed > old.txt && $BB rm keep.txt && \
                  echo closed > $OUT/written && exec $BB sleep 600";
    let args = [bb.as_str(), "sh", "-c", script];
    let mut cmd = if dest == Dest::ManifestFile {
        let mut c = vrift_run_manifest(&p.env, &p.dir, &m, as_user, &args);
        c.env("BB", &bb).env("OUT", &p.out);
        c
    } else {
        p.cmd(&args)
    };
    kill_once_marked(&mut cmd, &marker);

    // Old or new, never torn.
    let during = p.tree();
    for (rel, old, new) in [
        ("out.txt", None, Some("new\n")),
        ("old.txt", Some("old\n"), Some("changed\n")),
        ("keep.txt", Some("keep\n"), None),
    ] {
        let got = during.get(rel).map(|n| match n {
            RealNode::File { content, .. } => String::from_utf8_lossy(content).into_owned(),
            other => panic!("{rel}: {other:?}"),
        });
        assert!(
            got.as_deref() == old || got.as_deref() == new,
            "{rel} after the crash: {got:?}"
        );
    }
    if dest == Dest::WithManifest {
        Manifest::load(&p.dir.join("vrift.manifest")).expect("vrift.manifest after the crash");
    }
    if dest == Dest::ManifestFile {
        Manifest::load(&m).expect("the manifest after the crash");
        assert_eq!(during, tree_before, "--manifest: nothing on disk");
    }

    // The next run recovers the closed writes and says so.
    let out = if dest == Dest::ManifestFile {
        ok_within(
            &mut vrift_run_manifest(&p.env, &p.dir, &m, as_user, &["true"]),
            RUN_TIMEOUT,
        )
    } else {
        p.run(&["true"])
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recovered the changes of an interrupted run"),
        "stderr of the next run: {stderr}"
    );
    assert_eq!(runs_left(&p), Vec::<String>::new(), "run directories left");
    let tree = p.tree();
    match dest {
        Dest::ManifestFile => {
            assert_eq!(tree, tree_before, "--manifest: nothing on disk");
            let got = Manifest::load(&m).unwrap();
            assert_eq!(entry_hash(&got, "out.txt"), Some(Hash::of(b"new\n")));
            assert_eq!(entry_hash(&got, "old.txt"), Some(Hash::of(b"changed\n")));
            assert!(got.get(b"keep.txt").is_none());
        }
        _ => {
            let text = |rel: &str| match tree.get(rel) {
                Some(RealNode::File { content, .. }) => {
                    Some(String::from_utf8_lossy(content).into_owned())
                }
                _ => None,
            };
            assert_eq!(text("out.txt").as_deref(), Some("new\n"));
            assert_eq!(text("old.txt").as_deref(), Some("changed\n"));
            assert_eq!(text("keep.txt"), None);
            if dest == Dest::WithManifest {
                let got = Manifest::load(&p.dir.join("vrift.manifest")).unwrap();
                assert_eq!(entry_hash(&got, "out.txt"), Some(Hash::of(b"new\n")));
                assert!(got.get(b"keep.txt").is_none());
            }
        }
    }
    p.check_store();
}

projections! {
    fn a_killed_run_is_recovered_into_the_project() {
    crash(false, Dest::Plain);
}
}

projections! {
    fn a_killed_run_is_recovered_into_the_project_as_an_ordinary_user() {
    crash(true, Dest::Plain);
}
}

projections! {
    fn a_killed_run_is_recovered_into_a_project_with_vrift_manifest() {
    crash(false, Dest::WithManifest);
}
}

projections! {
    fn a_killed_run_is_recovered_into_a_project_with_vrift_manifest_as_an_ordinary_user() {
    crash(true, Dest::WithManifest);
}
}

projections! {
    fn a_killed_run_is_recovered_into_its_manifest_file() {
    crash(false, Dest::ManifestFile);
}
}

projections! {
    fn a_killed_run_is_recovered_into_its_manifest_file_as_an_ordinary_user() {
    crash(true, Dest::ManifestFile);
}
}

// ---- xattrs set and removed before the crash are recovered ----

fn crash_after_xattrs(as_user: bool) {
    let mut p = Project::new(as_user);
    let doc = p.file("doc.txt", "text\n", 0o644);
    setfattr(&doc, "user.keep", "kept");
    setfattr(&doc, "user.gone", "old");
    let marker = p.out.join("written");
    p.ready();
    let bb = busybox();
    let script = "setfattr -n user.new -v made doc.txt && setfattr -x user.gone doc.txt && \
                  echo closed > $OUT/written && exec $BB sleep 600";
    kill_once_marked(&mut p.cmd(&[bb.as_str(), "sh", "-c", script]), &marker);
    let out = p.run(&["true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recovered the changes of an interrupted run"),
        "stderr of the next run: {stderr}"
    );
    assert_eq!(
        user_xattrs_of(&doc),
        ["user.keep=\"kept\"", "user.new=\"made\""],
        "doc.txt after the recovery"
    );
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "text\n");
    p.check_store();
}

matrix!(xattrs_changed_before_a_crash_are_recovered => crash_after_xattrs);

// ---- a file changed on disk during the run ----

fn conflict(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("f.txt", "orig\n", 0o644);
    p.file("other.txt", "other\n", 0o644);
    let ready = p.out.join("ready");
    let go = p.out.join("go");
    mkfifo(&go);
    p.ready();
    let bb = busybox();
    let script = "echo run-version > f.txt && echo run-new > new.txt && \
                  echo run-other > other.txt && echo ready > $OUT/ready && read x < $OUT/go && \
                  cat f.txt new.txt";
    let mut child = p
        .cmd(&[bb.as_str(), "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_marker(&mut child, &ready);
    // Meanwhile, on disk: f.txt edited, new.txt made.
    write(&p.dir.join("f.txt"), "test-version, longer\n");
    write(&p.dir.join("new.txt"), "test-new\n");
    release(&go);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The program saw its own view throughout.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "run-version\nrun-new\n"
    );
    // The disk's changes stay; the run's other change is applied.
    let text = |rel: &str| std::fs::read_to_string(p.dir.join(rel)).unwrap();
    assert_eq!(text("f.txt"), "test-version, longer\n");
    assert_eq!(text("new.txt"), "test-new\n");
    assert_eq!(text("other.txt"), "run-other\n");
    for name in ["f.txt", "new.txt"] {
        assert!(
            stderr.contains(name),
            "stderr does not name {name}: {stderr}"
        );
    }
    assert!(!stderr.contains("other.txt"), "{stderr}");
    // The run's whole result is kept.
    // In the store, under an id of its own, beside the manifest it started from.
    let kept: Vec<_> = std::fs::read_dir(p.env.home().join("unapplied"))
        .unwrap()
        .map(|e| e.unwrap().path().join("result.manifest"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(stderr.contains("vrift runs apply "), "{stderr}");
    let kept = Manifest::load(&kept[0]).expect("unapplied");
    assert_eq!(entry_hash(&kept, "f.txt"), Some(Hash::of(b"run-version\n")));
    assert_eq!(entry_hash(&kept, "new.txt"), Some(Hash::of(b"run-new\n")));
    assert_eq!(
        entry_hash(&kept, "other.txt"),
        Some(Hash::of(b"run-other\n"))
    );
    let store = vrift_common::store::Store::open(&p.env.home()).unwrap();
    assert!(store.contains(&Hash::of(b"run-version\n")));
    p.check_store();
}

matrix!(a_file_changed_on_disk_during_the_run_is_left_alone_and_reported => conflict);

// ---- --manifest: writes go to the manifest file ----

fn manifest_mode(as_user: bool) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let m = env.dir.path().join("view.manifest");
    make_manifest(
        &env,
        &m,
        &[
            Node::File("a.txt", b"a\n", 0o644),
            Node::File("b.txt", b"b\n", 0o644),
            Node::Dir("d", 0o755),
            Node::File("d/c.txt", b"c\n", 0o644),
        ],
    );
    if as_user {
        env.give_to_nobody();
    }
    let before = store_snapshot(&env.home());
    let bb = busybox();
    let script = "umask 022; echo hi > new.txt && echo x >> a.txt && rm b.txt && \
                  mkdir -p d/e && ln -s a.txt l && chmod 600 a.txt && mv d/c.txt d/e/c.txt";
    let mut c = vrift_run_manifest(&env, &proj, &m, as_user, &[&bb, "sh", "-c", script]);
    ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(
        std::fs::read_dir(&proj).unwrap().count(),
        0,
        "--manifest wrote to the disk"
    );
    let got = Manifest::load(&m).unwrap();
    assert_eq!(entry_hash(&got, "new.txt"), Some(Hash::of(b"hi\n")));
    assert_eq!(entry_hash(&got, "a.txt"), Some(Hash::of(b"a\nx\n")));
    assert_eq!(got.get(b"a.txt").unwrap().mode & 0o7777, 0o600);
    assert_eq!(got.get(b"new.txt").unwrap().mode & 0o7777, 0o644);
    assert!(got.get(b"b.txt").is_none());
    assert!(got.get(b"d/c.txt").is_none());
    assert_eq!(entry_hash(&got, "d/e/c.txt"), Some(Hash::of(b"c\n")));
    assert_eq!(got.get(b"d/e").map(|e| e.kind), Some(EntryKind::Dir));
    let l = got.get(b"l").unwrap();
    assert_eq!(
        (l.kind, l.target.as_slice()),
        (EntryKind::Symlink, &b"a.txt"[..])
    );
    // The next run sees them.
    let mut c = vrift_run_manifest(
        &env,
        &proj,
        &m,
        as_user,
        &[
            &bb,
            "sh",
            "-c",
            "cat new.txt a.txt l && $BB ls -R && $BB stat -c %a a.txt",
        ],
    );
    c.env("BB", &bb);
    let out = ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\na\nx\na\nx\n.:\na.txt\nd\nl\nnew.txt\n\n./d:\ne\n\n./d/e:\nc.txt\n600\n"
    );
    assert_eq!(std::fs::read_dir(&proj).unwrap().count(), 0);
    assert_store_intact(&env.home(), &before);
}

matrix!(with_manifest_the_writes_land_in_the_manifest_only => manifest_mode);

// ---- a project with vrift.manifest, a run started in a subdirectory ----

fn refreshed(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("top.txt", "top\n", 0o644);
    p.file("sub/a.txt", "a\n", 0o644);
    run_expect(&mut p.env.vrift(&p.dir, &["init"]), true);
    p.ready();
    let bb = busybox();
    let sub = p.dir.join("sub");
    let mut c = p.cmd_in(
        &sub,
        &[
            &bb,
            "sh",
            "-c",
            "echo here > here.txt && echo up >> ../top.txt && $BB rm a.txt && pwd",
        ],
    );
    let out = ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", sub.display())
    );
    let text = |rel: &str| std::fs::read_to_string(p.dir.join(rel)).ok();
    assert_eq!(text("sub/here.txt").as_deref(), Some("here\n"));
    assert_eq!(text("top.txt").as_deref(), Some("top\nup\n"));
    assert_eq!(text("sub/a.txt"), None);
    let m = Manifest::load(&p.dir.join("vrift.manifest")).unwrap();
    assert_eq!(entry_hash(&m, "sub/here.txt"), Some(Hash::of(b"here\n")));
    assert_eq!(entry_hash(&m, "top.txt"), Some(Hash::of(b"top\nup\n")));
    assert!(m.get(b"sub/a.txt").is_none());
    p.check_store();
}

matrix!(a_run_in_a_subdirectory_writes_back_and_refreshes_vrift_manifest => refreshed);

// ---- a file the run only appended to ----

/// Appending to a project file writes the new bytes at its end, in place: the file keeps
/// its inode, so a hard link to it outside the view sees the appended bytes too, and the
/// next run reads none of it again.
fn appended(as_user: bool) {
    use std::os::unix::fs::MetadataExt;
    let mut p = Project::new(as_user);
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    p.file("log.txt", &big, 0o644);
    p.file("other.txt", "other\n", 0o644);
    run_expect(&mut p.env.vrift(&p.dir, &["init"]), true);
    p.ready();
    let link = p.out.join("log-link");
    std::fs::hard_link(p.dir.join("log.txt"), &link).unwrap();
    let ino = std::fs::metadata(p.dir.join("log.txt")).unwrap().ino();
    p.sh("echo one more >> log.txt && echo replaced > other.txt");
    let want = format!("{big}one more\n");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("log.txt")).unwrap(),
        want
    );
    assert_eq!(std::fs::metadata(p.dir.join("log.txt")).unwrap().ino(), ino);
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        want,
        "the hard link sees it"
    );
    assert_eq!(
        std::fs::read_to_string(p.dir.join("other.txt")).unwrap(),
        "replaced\n"
    );
    let m = Manifest::load(&p.dir.join("vrift.manifest")).unwrap();
    assert_eq!(entry_hash(&m, "log.txt"), Some(Hash::of(want.as_bytes())));
    // Not an append (the old bytes changed): the whole file is replaced.
    p.sh("$BB sed -i s/line/LINE/ log.txt");
    let text = std::fs::read_to_string(p.dir.join("log.txt")).unwrap();
    assert!(text.starts_with("LINE 0\n") && text.ends_with("one more\n"));
    p.check_store();
}

matrix!(an_append_is_written_back_in_place => appended);
