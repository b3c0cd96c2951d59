//! POSIX conformance, measured by pjdfstest (the file-system conformance suite, version
//! 0.2.2), as root: run once natively in a plain directory and once inside `vrift run` in a
//! project per projection, and compared case by case.
//!
//! Every case that passes natively must pass in the view, except the cases listed in
//! `tests/conformance/pjdfstest-<projection>.txt`, each with its reason (see "Known
//! differences" in docs/ARCHITECTURE.md). A listed case that now passes fails the test too,
//! so the list stays true. The run must also end with its changes saved: no `vrift:` error,
//! and the project holds what pjdfstest leaves natively (nothing: it cleans up after itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use vrift_tests::*;

const VERSION: &str = "0.2.2";

/// How long one whole pjdfstest run may take (its ctime cases sleep: ~90 s natively).
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);

/// The outcome of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// pjdfstest 0.2.2: the one on PATH or in ~/.cargo/bin, installed there if missing (as
/// scripts/setup.sh does).
fn pjdfstest() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let candidates = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .map(|d| Path::new(d).join("pjdfstest"))
            .chain([home.join(".cargo/bin/pjdfstest")])
            .collect::<Vec<_>>();
        let right_version = |p: &Path| {
            Command::new(p)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().ends_with(VERSION))
                .unwrap_or(false)
        };
        if let Some(p) = candidates.iter().find(|p| right_version(p)) {
            return p.clone();
        }
        eprintln!("installing pjdfstest {VERSION} (cargo install)");
        let ok = Command::new("cargo")
            .args(["install", "--locked", &format!("pjdfstest@{VERSION}")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let p = home.join(".cargo/bin/pjdfstest");
        assert!(
            ok && right_version(&p),
            "could not install pjdfstest {VERSION}"
        );
        p
    })
    .clone()
}

/// `name  ok|FAILED|skipped` lines of pjdfstest's output; the indented lines under a case
/// (its reason) are left out.
fn parse(stdout: &str) -> BTreeMap<String, Outcome> {
    let mut cases = BTreeMap::new();
    for line in stdout.lines() {
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(status)) = (words.next(), words.next_back()) else {
            continue;
        };
        if !name.contains("::") {
            continue;
        }
        let outcome = match status {
            "ok" => Outcome::Passed,
            "skipped" => Outcome::Skipped,
            _ => Outcome::Failed,
        };
        cases.insert(name.to_string(), outcome);
    }
    cases
}

fn count(cases: &BTreeMap<String, Outcome>, o: Outcome) -> usize {
    cases.values().filter(|&&c| c == o).count()
}

/// pjdfstest over `dir` (its cwd), through `cmd` if given (`vrift run -- ...`).
fn suite_command(dir: &Path) -> Vec<String> {
    vec![
        pjdfstest().display().to_string(),
        "-c".into(),
        conformance_dir()
            .join("pjdfstest.toml")
            .display()
            .to_string(),
        "-p".into(),
        dir.display().to_string(),
    ]
}

/// The native outcome, measured once per test process in a plain directory.
fn native() -> &'static BTreeMap<String, Outcome> {
    static NATIVE: OnceLock<BTreeMap<String, Outcome>> = OnceLock::new();
    NATIVE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("vrift-pjdfstest-native")
            .tempdir()
            .unwrap();
        let args = suite_command(dir.path());
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]).current_dir(dir.path());
        let out = output_within(&mut cmd, SUITE_TIMEOUT);
        let cases = parse(&String::from_utf8_lossy(&out.stdout));
        assert!(
            count(&cases, Outcome::Passed) > 300,
            "pjdfstest natively passed only {} cases:\n{}",
            count(&cases, Outcome::Passed),
            String::from_utf8_lossy(&out.stdout)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "pjdfstest left {left:?} natively");
        eprintln!(
            "pjdfstest natively: {} passed, {} failed, {} skipped",
            count(&cases, Outcome::Passed),
            count(&cases, Outcome::Failed),
            count(&cases, Outcome::Skipped)
        );
        cases
    })
}

/// One allowed difference: a case name (`*` matches any run of characters) and why.
struct Allowed {
    pattern: String,
    reason: String,
}

/// `tests/conformance/pjdfstest-<projection>.txt`: `PATTERN  # REASON` lines; blank lines
/// and lines starting with `#` are comments.
fn allowed(projection: &str) -> Vec<Allowed> {
    let name = format!("pjdfstest-{projection}.txt");
    let path = conformance_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (pattern, reason) = line
            .split_once('#')
            .unwrap_or_else(|| panic!("{}: `{line}` gives no reason", path.display()));
        assert!(
            !reason.trim().is_empty(),
            "{}: `{line}` gives no reason",
            path.display()
        );
        out.push(Allowed {
            pattern: pattern.trim().to_string(),
            reason: reason.trim().to_string(),
        });
    }
    assert!(
        out.len() <= 10,
        "{}: at most 10 allowed differences, found {}",
        path.display(),
        out.len()
    );
    out
}

/// Does `name` match `pattern`, where `*` matches any run of characters?
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn conformance() {
    assert!(
        is_root(),
        "pjdfstest's cases need root (CI runs the suite as root)"
    );
    let native = native();
    let mut p = Project::new(false);
    p.ready();
    let args = suite_command(&p.dir);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = output_within(&mut p.cmd(&argv), SUITE_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let view = parse(&stdout);
    let projection = p.env.projection.clone();
    eprintln!(
        "pjdfstest under {projection}: {} passed, {} failed, {} skipped",
        count(&view, Outcome::Passed),
        count(&view, Outcome::Failed),
        count(&view, Outcome::Skipped)
    );

    // The run ended with its changes saved.
    let vrift_errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("vrift:")).collect();
    assert!(
        vrift_errors.is_empty(),
        "the run under {projection} did not end cleanly:\n{}",
        vrift_errors.join("\n")
    );
    let left: Vec<String> = p.tree().into_keys().collect();
    assert!(
        left.is_empty(),
        "pjdfstest cleans up after itself natively, but the project holds {left:?} after the run"
    );

    let allowed = allowed(&projection);
    let is_allowed = |name: &str| allowed.iter().any(|a| glob(&a.pattern, name));
    let mut unexpected = Vec::new();
    for (name, native_outcome) in native {
        if *native_outcome != Outcome::Passed {
            continue;
        }
        let got = view.get(name).copied();
        if got != Some(Outcome::Passed) && !is_allowed(name) {
            unexpected.push(format!("{name}: {got:?}"));
        }
    }
    let mut stale = Vec::new();
    for a in &allowed {
        let still_fails = native.iter().any(|(name, o)| {
            *o == Outcome::Passed
                && glob(&a.pattern, name)
                && view.get(name) != Some(&Outcome::Passed)
        });
        if !still_fails {
            stale.push(format!("{} ({})", a.pattern, a.reason));
        }
    }
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "under {projection}:\ncases that pass natively but not in the view, and are not \
         listed:\n  {}\nlisted differences that no longer happen (remove them from the \
         list):\n  {}\n\npjdfstest's output:\n{stdout}",
        unexpected.join("\n  "),
        stale.join("\n  ")
    );
}

/// Under the overlay, the supervisor, and the shim in front of the supervisor. Not under the
/// shim alone, which cannot make FIFOs, sockets or device nodes in the view (a third of the
/// cases make them).
mod pjdfstest_as_root {
    #[test]
    fn supervisor() {
        vrift_tests::with_projection("supervisor", super::conformance);
    }
    #[test]
    fn overlay() {
        vrift_tests::with_projection("overlay", super::conformance);
    }
    #[test]
    fn shim_supervisor() {
        vrift_tests::with_projection("shim+supervisor", super::conformance);
    }
}

#[test]
fn glob_matches_runs_of_characters() {
    assert!(glob("a::b", "a::b"));
    assert!(!glob("a::b", "a::bc"));
    assert!(glob("*::char", "mknod::x::char"));
    assert!(!glob("*::char", "mknod::x::block"));
    assert!(glob("link::*::socket", "link::share_metadata::socket"));
    assert!(glob("*", "anything"));
}

// ---- focused cases, at the level a user sees ----

/// `python3 -c SCRIPT` in the project as root; returns what it printed.
fn python(p: &Project, script: &str) -> String {
    let out = ok_within(&mut p.cmd(&["python3", "-c", script]), RUN_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.lines().any(|l| l.starts_with("vrift:")),
        "the run did not end cleanly:\n{stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Device nodes (as root), Unix sockets bound on view paths, and hard links that are one
/// inode: what pjdfstest's `::char`, `::block`, `::socket` and `link::` cases need.
fn special_files_and_hard_links() {
    require_tool("python3");
    let mut p = Project::new(false);
    p.file("keep.txt", "kept\n", 0o644);
    p.ready();
    let got = python(
        &p,
        r#"
import os, socket, stat
os.mknod("blk", stat.S_IFBLK | 0o600, os.makedev(8, 1))
st = os.lstat("blk")
print("blk", stat.S_ISBLK(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), oct(st.st_mode & 0o777))
s = socket.socket(socket.AF_UNIX); s.bind("sock"); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect("sock")
a, _ = s.accept(); c.sendall(b"hi")
print("sock", stat.S_ISSOCK(os.lstat("sock").st_mode), a.recv(2).decode())
try:
    socket.socket(socket.AF_UNIX).bind("sock")
except OSError as e:
    print("again", e.errno == 98)
open("f", "w").write("one")
os.link("f", "g")
sf, sg = os.stat("f"), os.stat("g")
print("link", sf.st_nlink, sg.st_nlink, sf.st_ino == sg.st_ino)
with open("g", "a") as w:
    w.write("two")
print("through", open("f").read())
os.chmod("g", 0o600)
print("mode", oct(os.stat("f").st_mode & 0o777))
os.remove("g")
print("left", os.stat("f").st_nlink)
os.remove("sock"); os.remove("blk")
"#,
    );
    assert_eq!(
        got,
        "blk True 8 1 0o600\nsock True hi\nagain True\nlink 2 2 True\nthrough onetwo\n\
         mode 0o600\nleft 1\n"
    );
    // The changes were saved: the file written through its second name, nothing else new.
    let tree: Vec<String> = p.tree().into_keys().collect();
    assert_eq!(tree, ["f", "keep.txt"]);
    assert_eq!(std::fs::read_to_string(p.dir.join("f")).unwrap(), "onetwo");
    p.check_store();
}

/// A change the backing tree refuses must leave the view as it was: here a rename of a file
/// being written to a path that fits in PATH_MAX in the view but not in its absolute form
/// behind it (the supervisor's farm is under a longer path). Natively the rename succeeds,
/// and so it does in the views now that the farm is reached through directory descriptors;
/// refused or not, the run must end with its changes saved, the file at exactly one of its
/// two names.
fn refused_change_loses_nothing() {
    require_tool("python3");
    let mut p = Project::new(false);
    p.ready();
    let got = python(
        &p,
        r#"
import os, shutil
root = os.getcwd()
f = open("f", "w"); f.write("data"); f.flush()
d = "d"
os.mkdir(d)
while len(root) + 1 + len(d) < 3850:
    d += "/" + "x" * 100
    os.mkdir(d)
name = "y" * (4090 - len(root) - 1 - len(d) - 1)
try:
    os.rename("f", d + "/" + name)
    os.rename(d + "/" + name, "moved")
    print("renamed")
except OSError as e:
    print("refused", e.errno == 36)
f.close()
shutil.rmtree("d")
"#,
    );
    assert!(got == "renamed\n" || got == "refused True\n", "{got}");
    let tree: Vec<String> = p.tree().into_keys().collect();
    let name = if got == "renamed\n" { "moved" } else { "f" };
    assert_eq!(tree, [name]);
    assert_eq!(std::fs::read_to_string(p.dir.join(name)).unwrap(), "data");
}

/// Under the projections that make device nodes and sockets (the shim's projections are
/// left out with pjdfstest, above).
mod special_files_and_hard_links_as_root {
    #[test]
    fn supervisor() {
        vrift_tests::with_projection("supervisor", super::special_files_and_hard_links);
    }
    #[test]
    fn overlay() {
        vrift_tests::with_projection("overlay", super::special_files_and_hard_links);
    }
}

mod a_refused_change_loses_nothing {
    #[test]
    fn supervisor() {
        vrift_tests::with_projection("supervisor", super::refused_change_loses_nothing);
    }
    #[test]
    fn overlay() {
        vrift_tests::with_projection("overlay", super::refused_change_loses_nothing);
    }
}
