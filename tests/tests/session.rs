//! Sessions end to end, with real git: `vrift run --session`, `vrift session`, `vrift
//! promote`. Sessions run under the overlay projection only, so each scenario runs as root
//! and as an ordinary user (`nobody`) under it; the supervisor's refusal is tested once.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use vrift_tests::*;

const T: Duration = Duration::from_secs(120);

/// `name::root_overlay` and `name::user_overlay` for `fn scenario(as_user: bool)`.
macro_rules! roles {
    ($name:ident => $scenario:ident) => {
        mod $name {
            #[test]
            fn root_overlay() {
                vrift_tests::with_projection("overlay", || super::$scenario(false));
            }
            #[test]
            fn user_overlay() {
                vrift_tests::with_projection("overlay", || super::$scenario(true));
            }
        }
    };
}

/// A git repository in a test's scratch area, and how to run git and vrift there.
struct Repo {
    env: Env,
    dir: PathBuf,
    as_user: bool,
}

impl Repo {
    /// A repository with a first commit of `files` (path, content, mode).
    fn new(as_user: bool, files: &[(&str, &[u8], u32)]) -> Repo {
        let env = Env::new();
        let dir = env.mkdir("repo");
        // Made by root, then handed to the scenario's user.
        let mut r = Repo {
            env,
            dir,
            as_user: false,
        };
        r.git_ok(&["init", "-q", "-b", "main"]);
        for (p, content, mode) in files {
            let path = r.dir.join(p);
            write(&path, content);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        r.git_ok(&["add", "-A"]);
        r.git_ok(&["commit", "-q", "-m", "first"]);
        r.as_user = as_user;
        if as_user {
            r.env.give_to_nobody();
        }
        r
    }

    fn git_env(&self, c: &mut Command) {
        c.env("HOME", self.env.dir.path())
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1");
    }

    /// git as the scenario's user, in `cwd`.
    fn git_in(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = if self.as_user && is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                "git",
            ]);
            c
        } else {
            Command::new("git")
        };
        c.args(args).current_dir(cwd);
        self.git_env(&mut c);
        c
    }

    fn git_ok(&self, args: &[&str]) -> String {
        stdout_ok(&mut self.git_in(&self.dir, args))
    }

    /// vrift as the scenario's user, in `cwd`.
    fn vrift_in(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = if self.as_user {
            self.env.vrift_as_user(cwd, args)
        } else {
            self.env.vrift(cwd, args)
        };
        self.git_env(&mut c);
        c
    }

    fn vrift(&self, args: &[&str]) -> Command {
        self.vrift_in(&self.dir, args)
    }

    /// `vrift run --session NAME -- sh -c SCRIPT`, which must succeed; its stdout.
    fn session_sh(&self, name: &str, script: &str) -> String {
        let out = ok_within(
            &mut self.vrift(&["run", "--session", name, "--", "sh", "-c", script]),
            T,
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn vrift_ok(&self, args: &[&str]) -> String {
        String::from_utf8(ok_within(&mut self.vrift(args), T).stdout).unwrap()
    }
}

/// Every file under `dir` (`.git` included): kind, mode, and content or target, hashed.
fn hash_all(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.is_dir() {
                walk(root, &p, out);
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else {
                blake3::hash(&std::fs::read(&p).unwrap())
                    .to_hex()
                    .to_string()
            };
            out.insert(rel, format!("{:o} {what}", m.mode()));
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// What git would record of the view in `dir`, listed by a script that works the same on the
/// session's view (through `git ls-files`) and on an extracted archive (through `find`).
const LIST_PATHS: &str = r#"while IFS= read -r -d '' p; do
  [ -e "$p" ] || [ -L "$p" ] || continue
  if [ -L "$p" ]; then printf '%s\tlink\t%s\n' "$p" "$(readlink "$p")";
  elif [ -x "$p" ]; then printf '%s\tx\t%s\n' "$p" "$(sha256sum < "$p" | cut -c1-64)";
  else printf '%s\t-\t%s\n' "$p" "$(sha256sum < "$p" | cut -c1-64)"; fi
done"#;

fn view_listing(r: &Repo, name: &str) -> String {
    let script = format!("git ls-files -z -co --exclude-standard | sort -z | {LIST_PATHS}");
    let mut c = r.vrift(&["run", "--session", name, "--", "bash", "-c", &script]);
    String::from_utf8(ok_within(&mut c, T).stdout).unwrap()
}

fn dir_listing(dir: &Path) -> String {
    let script = format!(
        "cd '{}' && find . \\( -type f -o -type l \\) -printf '%P\\0' | sort -z | {LIST_PATHS}",
        dir.display()
    );
    stdout_ok(Command::new("bash").args(["-c", &script]))
}

fn base_files() -> Vec<(&'static str, &'static [u8], u32)> {
    vec![
        ("shared.txt", b"shared\n", 0o644),
        ("keep.txt", b"keep\n", 0o644),
        ("run.sh", b"#!/bin/sh\necho run\n", 0o755),
        ("src/lib.txt", b"lib\n", 0o644),
        (".gitignore", b"target/\n.env\n*.log\n", 0o644),
    ]
}

// 8 sessions at once: each sees only its own changes, and afterwards the working tree and
// .git are byte-identical and `git status --porcelain` is empty.
fn eight_sessions(as_user: bool) {
    let mut files = base_files();
    let dels: Vec<String> = (0..8).map(|i| format!("del{i}.txt")).collect();
    for d in &dels {
        files.push((Box::leak(d.clone().into_boxed_str()), b"delete me\n", 0o644));
    }
    let r = Repo::new(as_user, &files);
    write(&r.dir.join(".env"), "SECRET=1\n");
    write(&r.dir.join("target/out.bin"), "built\n");
    write(&r.dir.join("notes.txt"), "untracked\n");
    if as_user {
        r.env.give_to_nobody();
    }
    // (git status refreshes the index: before hashing .git)
    let status = r.git_ok(&["status", "--porcelain"]);
    let before = hash_all(&r.dir);
    let mut children = Vec::new();
    for i in 0..8 {
        let script = format!(
            "set -e; echo mine{i} > own{i}.txt; echo edit{i} >> shared.txt; rm del{i}.txt; \
             cat .env target/out.bin notes.txt >/dev/null; echo t{i} > target/out.bin"
        );
        let mut c = r.vrift(&[
            "run",
            "--session",
            &format!("s{i}"),
            "--",
            "sh",
            "-c",
            &script,
        ]);
        children.push(c.spawn().unwrap());
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    for i in 0..8 {
        let seen = r.session_sh(
            &format!("s{i}"),
            "ls own*.txt del*.txt | tr '\\n' ' '; echo; cat shared.txt target/out.bin",
        );
        let dels: Vec<String> = (0..8)
            .filter(|j| *j != i)
            .map(|j| format!("del{j}.txt"))
            .collect();
        let want = format!("{} own{i}.txt \nshared\nedit{i}\nt{i}\n", dels.join(" "));
        assert_eq!(seen, want, "session s{i}");
    }
    assert_eq!(hash_all(&r.dir), before, "the working tree or .git changed");
    assert_eq!(r.git_ok(&["status", "--porcelain"]), status);
    assert_eq!(status, "?? notes.txt\n");
    let list = r.vrift_ok(&["session", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 8);
    for s in arr {
        assert_eq!(s["added"], 1, "{s}");
        assert_eq!(s["changed"], 1, "{s}");
        assert_eq!(s["deleted"], 1, "{s}");
        assert!(s["running"].as_array().unwrap().is_empty());
    }
}
roles!(eight_sessions_each_see_only_their_own => eight_sessions);

// Promote: fsck clean, parent is the base, git's diff equals the session's, and the archive
// of the ref is exactly the view (modes, symlinks, odd names, a 100 MB file).
fn promote_matches_view(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    let base = r.git_ok(&["rev-parse", "HEAD"]);
    r.session_sh(
        "work",
        "set -e; echo more >> shared.txt; rm keep.txt; chmod +x src/lib.txt; chmod -x run.sh; \
         ln -s src/lib.txt link; printf 'odd\\n' > 'sp ace.txt'; printf 'tab\\n' > \"$(printf 'ta\\tb')\"; \
         printf 'u\\n' > 'ünï.txt'; mkdir -p deep/er && echo d > deep/er/f; mkdir empty; \
         echo log > x.log; head -c 100000000 /dev/urandom > big.bin",
    );
    let git_before = hash_all(&r.dir.join(".git"));
    let diff = r.vrift_ok(&["session", "diff", "work", "--name-status"]);
    let stat = r.vrift_ok(&["session", "diff", "work", "--stat"]);
    assert!(
        stat.contains("shared.txt") && stat.contains("files changed"),
        "{stat}"
    );
    let patch = r.vrift_ok(&["session", "diff", "work"]);
    assert!(
        patch.contains("+more") && patch.contains("deleted file mode"),
        "{patch}"
    );
    assert_eq!(
        hash_all(&r.dir.join(".git")),
        git_before,
        "session diff wrote to .git"
    );
    let out = r.vrift_ok(&["promote", "work", "-m", "from the session"]);
    let commit = out.trim();
    assert_eq!(r.git_ok(&["rev-parse", "refs/vibes/work"]).trim(), commit);
    assert_eq!(r.git_ok(&["rev-parse", "refs/vibes/work^"]), base);
    assert_eq!(r.git_ok(&["rev-parse", "HEAD"]), base, "HEAD moved");
    ok_within(&mut r.git_in(&r.dir, &["fsck", "--strict"]), T);
    let git_diff = r.git_ok(&["diff", "--name-status", base.trim(), "refs/vibes/work"]);
    assert_eq!(diff, git_diff);
    assert!(
        git_diff.contains("A\tbig.bin") && git_diff.contains("D\tkeep.txt"),
        "{git_diff}"
    );
    assert!(
        !git_diff.contains("x.log"),
        "an ignored file was promoted: {git_diff}"
    );
    let x = r.env.mkdir("extracted");
    if as_user {
        r.env.give_to_nobody();
    }
    let tar = x.join("a.tar");
    r.git_ok(&["archive", "-o", tar.to_str().unwrap(), "refs/vibes/work"]);
    stdout_ok(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&x));
    std::fs::remove_file(&tar).unwrap();
    assert_eq!(dir_listing(&x), view_listing(&r, "work"));
    let mode = r.git_ok(&[
        "ls-tree",
        "refs/vibes/work",
        "link",
        "src/lib.txt",
        "run.sh",
    ]);
    assert!(
        mode.contains("120000 blob")
            && mode.contains("100755 blob")
            && mode.contains("100644 blob"),
        "{mode}"
    );
}
roles!(promote_is_git_clean_and_equals_the_view => promote_matches_view);

// Git inside a session: status, add, commit, stash, checkout -b; the real .git is untouched.
fn agent_script(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    let before = hash_all(&r.dir);
    let out = r.session_sh(
        "agent",
        "set -e; git status --short; echo x >> shared.txt; git status --short; \
         git checkout -q -b feature; git add shared.txt; git commit -q -m 'agent commit'; \
         echo y >> keep.txt; git stash -q; cat keep.txt; git stash pop -q; cat keep.txt; \
         git log --format=%s -1; git branch --show-current",
    );
    assert_eq!(out, " M shared.txt\nkeep\nkeep\ny\nagent commit\nfeature\n");
    // The session remembers its git state from run to run.
    let again = r.session_sh("agent", "git branch --show-current; git status --short");
    assert_eq!(again, "feature\n M keep.txt\n");
    assert_eq!(hash_all(&r.dir), before, "the real .git or tree changed");
    assert_eq!(r.git_ok(&["status", "--porcelain"]), "");
}
roles!(git_works_inside_a_session => agent_script);

// Two promotes of one session at once: exactly one wins, and the ref is the winner's commit
// (or, when the two did not overlap in time, the later one chains on the earlier: no
// promotion is ever lost).
fn concurrent_promotes(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    r.session_sh("race", "echo raced > race.txt");
    let a = r
        .vrift(&["promote", "race", "-m", "a"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = r
        .vrift(&["promote", "race", "-m", "b"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let outs: Vec<Output> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    let ids: Vec<String> = winners
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .collect();
    let head = r
        .git_ok(&["rev-parse", "refs/vibes/race"])
        .trim()
        .to_string();
    let id = match winners.len() {
        // They raced: the loser's compare-and-swap failed and it names the ref.
        1 => {
            assert_eq!(head, ids[0]);
            let loser = outs.iter().find(|o| !o.status.success()).unwrap();
            assert!(
                String::from_utf8_lossy(&loser.stderr).contains("refs/vibes/race"),
                "{loser:?}"
            );
            ids[0].clone()
        }
        // The machine ran them one after the other: the later one chained on the earlier,
        // and neither promotion was lost.
        2 => {
            assert!(ids.contains(&head), "{outs:?}");
            let earlier = ids.iter().find(|i| **i != head).unwrap();
            assert_eq!(
                r.git_ok(&["rev-parse", "refs/vibes/race^"]).trim(),
                earlier.as_str(),
                "{outs:?}"
            );
            head.clone()
        }
        _ => panic!("no promote won: {outs:?}"),
    };
    // The next promote chains on the winner.
    let next = r.vrift_ok(&["promote", "race", "-m", "c"]);
    assert_eq!(r.git_ok(&["rev-parse", "refs/vibes/race^"]).trim(), id);
    assert_eq!(
        r.git_ok(&["rev-parse", "refs/vibes/race"]).trim(),
        next.trim()
    );
    ok_within(&mut r.git_in(&r.dir, &["fsck", "--strict"]), T);
}
roles!(two_concurrent_promotes_exactly_one_wins => concurrent_promotes);

// --onto a base that moved: a clean 3-way merge, or exit 1 naming the conflicting paths.
fn onto(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    r.session_sh("clean", "echo session >> shared.txt");
    r.session_sh("clash", "echo session > keep.txt");
    write(&r.dir.join("keep.txt"), "main\n");
    write(&r.dir.join("src/lib.txt"), "lib on main\n");
    if as_user {
        r.env.give_to_nobody();
    }
    r.git_ok(&["commit", "-q", "-am", "main moves"]);
    let main = r.git_ok(&["rev-parse", "main"]);
    r.vrift_ok(&["promote", "clean", "--onto", "main"]);
    assert_eq!(r.git_ok(&["rev-parse", "refs/vibes/clean^"]), main);
    assert_eq!(
        r.git_ok(&["show", "refs/vibes/clean:shared.txt"]),
        "shared\nsession\n"
    );
    assert_eq!(
        r.git_ok(&["show", "refs/vibes/clean:src/lib.txt"]),
        "lib on main\n"
    );
    let out = output_within(&mut r.vrift(&["promote", "clash", "--onto", "main"]), T);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "keep.txt\n");
    let refs = r.git_ok(&["for-each-ref", "refs/vibes/clash"]);
    assert_eq!(refs, "", "the ref moved on conflict");
    ok_within(&mut r.git_in(&r.dir, &["fsck", "--strict"]), T);
}
roles!(promote_onto_merges_or_names_conflicts => onto);

// A bare clone: the session's tracked files come from the object database.
fn bare(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    write(&r.dir.join("shared.txt"), "second\n");
    if as_user {
        r.env.give_to_nobody();
    }
    r.git_ok(&["commit", "-q", "-am", "second"]);
    let bare = r.env.dir.path().join("bare.git");
    stdout_ok(&mut r.git_in(
        r.env.dir.path(),
        &["clone", "-q", "--bare", "repo", "bare.git"],
    ));
    let before = hash_all(&bare);
    let out = ok_within(
        &mut r.vrift_in(
            &bare,
            &[
                "run",
                "--session",
                "old",
                "--from",
                "HEAD~1",
                "--",
                "sh",
                "-c",
                "cat shared.txt; git log --format=%s -1; echo b >> keep.txt",
            ],
        ),
        T,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "shared\nsecond\n");
    let id = String::from_utf8(ok_within(&mut r.vrift_in(&bare, &["promote", "old"]), T).stdout)
        .unwrap();
    let after = hash_all(&bare);
    for (p, h) in &before {
        assert_eq!(
            after.get(p),
            Some(h),
            "{p} changed: promote only adds objects and its ref"
        );
    }
    let show = stdout_ok(&mut r.git_in(&bare, &["show", &format!("{}:keep.txt", id.trim())]));
    assert_eq!(show, "keep\nb\n");
    ok_within(&mut r.git_in(&bare, &["fsck", "--strict"]), T);
}
roles!(from_works_in_a_bare_clone => bare);

// Two runs of one session at the same time share it: each sees the other's writes.
fn shared(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    let m = r.env.mkdir("markers");
    let fifo = m.join("go");
    mkfifo(&fifo);
    if as_user {
        r.env.give_to_nobody();
    }
    let first_script = format!(
        "echo one > one.txt; touch {0}/first-ready; read x < {1}; cat two.txt",
        m.display(),
        fifo.display()
    );
    let mut first = r.vrift(&["run", "--session", "team", "--", "sh", "-c", &first_script]);
    let first = first.stdout(std::process::Stdio::piped()).spawn().unwrap();
    assert!(wait_until(T, || m.join("first-ready").exists()));
    let second = r.session_sh("team", "cat one.txt; echo two > two.txt");
    assert_eq!(second, "one\n");
    release(&fifo);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two\n");
    assert!(!r.dir.join("one.txt").exists() && !r.dir.join("two.txt").exists());
}
roles!(two_runs_of_one_session_share_it => shared);

// SIGKILL to vrift during a session run loses no closed write; discard refuses meanwhile.
fn sigkill(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    let m = r.env.mkdir("markers");
    let fifo = m.join("hold");
    mkfifo(&fifo);
    if as_user {
        r.env.give_to_nobody();
    }
    let script = format!(
        "echo kept > kept.txt; echo more >> shared.txt; touch {0}/written; read x < {1}",
        m.display(),
        fifo.display()
    );
    let mut child = r
        .vrift(&["run", "--session", "k", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    assert!(wait_until(T, || m.join("written").exists()));
    let refused = output_within(&mut r.vrift(&["session", "discard", "k"]), T);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("running"),
        "{refused:?}"
    );
    // vrift itself, by its pid (setpriv execs it, so the pid is vrift's).
    unsafe_kill(child.id());
    child.wait().unwrap();
    let seen = r.session_sh("k", "cat kept.txt shared.txt");
    assert_eq!(seen, "kept\nshared\nmore\n");
    r.vrift_ok(&["session", "discard", "k"]);
    let list = r.vrift_ok(&["session", "list", "--json"]);
    assert_eq!(list.trim(), "[]");
}
roles!(sigkill_loses_no_closed_write => sigkill);

fn unsafe_kill(pid: u32) {
    stdout_ok(Command::new("kill").args(["-KILL", &pid.to_string()]));
}

// `cargo build` in two sessions at once: each has its own target/, the real one is untouched.
fn cargo_two() {
    let cargo = require_tool("cargo");
    let r = Repo::new(
        false,
        &[
            (
                "Cargo.toml",
                b"[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
                0o644,
            ),
            ("src/main.rs", b"fn main() { println!(\"base\"); }\n", 0o644),
            (".gitignore", b"target/\n", 0o644),
        ],
    );
    let home = r.env.dir.path().join("cargo-home");
    let build = |cwd: &Path| {
        let mut c = Command::new(&cargo);
        c.args(["build", "-q", "--offline"])
            .current_dir(cwd)
            .env("CARGO_HOME", &home);
        c
    };
    ok_within(&mut build(&r.dir), T);
    let before = hash_all(&r.dir);
    let cargo_s = cargo.display().to_string();
    let spawn = |name: &str| {
        let script = format!(
            "set -e; sed -i 's/base/{name}/' src/main.rs; CARGO_HOME={} {cargo_s} build -q --offline; ./target/debug/hello",
            home.display()
        );
        r.vrift(&["run", "--session", name, "--", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("alpha");
    let b = spawn("beta");
    for (c, name) in [(a, "alpha"), (b, "beta")] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{name}\n"));
    }
    assert_eq!(r.session_sh("alpha", "./target/debug/hello"), "alpha\n");
    assert_eq!(r.session_sh("beta", "./target/debug/hello"), "beta\n");
    assert_eq!(hash_all(&r.dir), before, "the real target/ or tree changed");
}
// As root only: the toolchain lives under /root, which an ordinary user cannot read.
#[test]
fn cargo_build_in_two_sessions() {
    with_projection("overlay", cargo_two);
}

// Names are ref names; a `.git` path component cannot be promoted; the supervisor refuses.
#[test]
fn bad_names_git_components_and_the_supervisor() {
    with_projection("overlay", || {
        let r = Repo::new(false, &base_files());
        let bad = output_within(&mut r.vrift(&["run", "--session", "a..b", "--", "true"]), T);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid session name"));
        r.session_sh("nested", "mkdir -p sub/.git && echo x > sub/.git/config");
        let out = output_within(&mut r.vrift(&["promote", "nested"]), T);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sub/.git: a path component named .git"),
            "{out:?}"
        );
        let mut c = r.vrift(&[
            "run",
            "--session",
            "s",
            "--projection",
            "supervisor",
            "--",
            "true",
        ]);
        let out = output_within(&mut c, T);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("overlay projection only"));
        let mut c = r.vrift(&[
            "run",
            "--session",
            "s",
            "--mount",
            "/elsewhere",
            "--",
            "true",
        ]);
        let out = output_within(&mut c, T);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be combined"));
    });
}

// A session from an older revision in a working tree: its files and git's state are that
// revision's (an index of its tree, HEAD detached at it), so `git status` inside is clean.
fn from_rev(as_user: bool) {
    let r = Repo::new(as_user, &base_files());
    let first = r.git_ok(&["rev-parse", "HEAD"]);
    write(&r.dir.join("shared.txt"), "second\n");
    if as_user {
        r.env.give_to_nobody();
    }
    r.git_ok(&["commit", "-q", "-am", "second"]);
    let before = hash_all(&r.dir);
    let out = ok_within(
        &mut r.vrift(&[
            "run",
            "--session",
            "old",
            "--from",
            "HEAD~1",
            "--",
            "sh",
            "-c",
            "cat shared.txt; git rev-parse HEAD; git status --porcelain",
        ]),
        T,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("shared\n{first}")
    );
    assert_eq!(hash_all(&r.dir), before);
}
roles!(from_an_older_revision_with_its_git_state => from_rev);
