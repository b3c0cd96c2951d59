//! Paths up to PATH_MAX (4096 bytes with the NUL) and names up to NAME_MAX (255) work in a
//! view as on disk, whatever the length of the store's own path: a tree made in a run is
//! read back in the run, written back to the project, and the next runs of the project
//! start and see it (they build their view of it: a link farm, an overlay layer).
//!
//! The store here has a long path (a 200-byte name in it), so every path vrift itself uses
//! for the tree (in the farm, a layer, the upper directory, the project) is longer than
//! PATH_MAX.

use std::path::Path;
use std::process::{Command, Output};

use vrift_tests::*;

/// `(DIR, FILE, NAME)`: DIR is 15 levels of 255-byte names (3,839 bytes), FILE a 250-byte
/// name, so that `DIR/FILE` is 4,090 bytes; NAME a 255-byte name at the project's top.
fn names() -> (String, String, String) {
    let dir = vec!["d".repeat(255); 15].join("/");
    let file = "f".repeat(250);
    let name = "n".repeat(255);
    (dir, file, name)
}

fn with_names(mut c: Command) -> Command {
    let (dir, file, name) = names();
    c.env("D", dir).env("F", file).env("N", name);
    c
}

/// The run ended cleanly: what it printed, with no `vrift:` message.
fn clean(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.lines().any(|l| l.starts_with("vrift:")),
        "the run did not end cleanly:\n{err}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(p: &Project, script: &str) -> String {
    let bb = busybox();
    let mut c = with_names(p.cmd(&[bb.to_str().unwrap(), "sh", "-c", script]));
    clean(&ok_within(&mut c, RUN_TIMEOUT))
}

fn long_paths(as_user: bool) {
    let mut p = Project::in_env(Env::with_long_path(), as_user);
    p.file("keep.txt", "kept\n", 0o644);
    p.ready();
    let (dir, file, name) = names();
    let deep = format!("{dir}/{file}");
    assert_eq!(deep.len(), 4090);
    let longer = |root: &Path| root.as_os_str().len() + 1 + deep.len() >= 4096;
    assert!(longer(&p.env.home()) && longer(&p.dir));

    // Made, written and read back in one run.
    let got = sh(
        &p,
        r#"mkdir -p "$D" && echo deep > "$D/$F" && cat "$D/$F" && echo top > "$N" && cat "$N" &&
           cd "$D" && cat "$F" && ls"#,
    );
    assert_eq!(got, format!("deep\ntop\ndeep\n{file}\n"));

    // Written back.
    let tree = p.tree();
    let content = |rel: &str| match tree.get(rel) {
        Some(RealNode::File { content, .. }) => String::from_utf8_lossy(content).into_owned(),
        other => panic!("{}...: {other:?}", &rel[..40.min(rel.len())]),
    };
    assert_eq!(content(&deep), "deep\n");
    assert_eq!(content(&name), "top\n");
    assert_eq!(content("keep.txt"), "kept\n");
    assert_eq!(tree.len(), 15 + 3, "{:?}", tree.keys().collect::<Vec<_>>());

    // The project still runs, and its view holds the tree; it is changed and removed there.
    let got = sh(
        &p,
        r#"cat "$D/$F" "$N" && echo more >> "$D/$F" && cat "$D/$F""#,
    );
    assert_eq!(got, "deep\ntop\ndeep\nmore\n");
    assert!(
        matches!(p.tree().get(&deep), Some(RealNode::File { content, .. }) if content == b"deep\nmore\n")
    );
    let top = &dir[..255];
    let got = sh(&p, &format!(r#"rm -r {top} "$N" && ls"#));
    assert_eq!(got, "keep.txt\n");
    let left: Vec<String> = p.tree().into_keys().collect();
    assert_eq!(left, ["keep.txt"]);
    p.check_store();
}
matrix!(paths_up_to_path_max_work_in_the_view_and_after => long_paths);

/// The limit is the argument's, as natively: a path of 4,095 bytes resolves, one of 4,096
/// (relative or absolute) is ENAMETOOLONG, in the view as on disk.
fn the_argument_limit(as_user: bool) {
    require_tool("python3");
    let mut p = Project::new(as_user);
    p.file("keep.txt", "kept\n", 0o644);
    p.ready();
    let script = r#"
import errno, os
print(os.path.isdir("./" * 2047 + "."), len("./" * 2047 + "."))
for path in ["a/" * 2048, "/" + "a/" * 2047 + "a"]:
    try:
        os.stat(path)
        print("found", len(path))
    except OSError as e:
        print(errno.errorcode[e.errno], len(path))
    try:
        os.mkdir(path)
        print("made", len(path))
    except OSError as e:
        print(errno.errorcode[e.errno], len(path))
"#;
    let want = "True 4095\nENAMETOOLONG 4096\nENAMETOOLONG 4096\nENAMETOOLONG 4096\n\
                ENAMETOOLONG 4096\n";
    let native = Command::new("python3")
        .args(["-c", script])
        .current_dir(&p.out)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&native.stdout), want);
    let mut c = p.cmd(&["python3", "-c", script]);
    assert_eq!(clean(&ok_within(&mut c, RUN_TIMEOUT)), want);
    let left: Vec<String> = p.tree().into_keys().collect();
    assert_eq!(left, ["keep.txt"]);
}
matrix!(a_path_argument_of_path_max_bytes_is_enametoolong => the_argument_limit);

/// A run killed after writing at the end of a 4,090-byte path: the next run recovers the
/// write from the killed run's farm or upper directory (both under the store's long path)
/// into the project.
fn killed_run(as_user: bool) {
    let mut p = Project::in_env(Env::with_long_path(), as_user);
    p.file("keep.txt", "kept\n", 0o644);
    p.ready();
    let (dir, file, _) = names();
    let marker = p.out.join("written");
    let bb = busybox();
    let script = r#"mkdir -p "$D" && echo deep > "$D/$F" && echo closed > $OUT/written &&
                    exec $BB sleep 600"#;
    let mut child = with_names(p.cmd(&[bb.to_str().unwrap(), "sh", "-c", script]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let written = wait_until(std::time::Duration::from_secs(60), || marker.exists());
    // SIGKILL to vrift itself (setpriv execs it).
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(written, "the program never wrote its marker");

    let out = ok_within(&mut p.cmd(&["true"]), RUN_TIMEOUT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("recovered the changes of an interrupted run"),
        "stderr of the next run: {err}"
    );
    let deep = format!("{dir}/{file}");
    assert!(
        matches!(p.tree().get(&deep), Some(RealNode::File { content, .. }) if content == b"deep\n"),
        "the killed run's write is not in the project"
    );
    p.check_store();
}
matrix!(a_killed_run_at_a_long_path_is_recovered => killed_run);
