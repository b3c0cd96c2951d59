//! The differential test, in the manner of fsx and SibylFS: random sequences of file
//! operations run once in a plain directory on disk and once inside a view (`vrift run` in a
//! project), by the same executor (tests/programs/fsops.c), which prints one result line per
//! operation. Every line must agree (return value, errno, bytes written and read, content
//! hashes, the stat fields the view promises), then the final trees as the program saw them,
//! then the project on disk after the run with the native directory (the write-back).
//!
//! Sequences come from proptest with fixed seeds ([`SEEDS`]); a failing one is shrunk to a
//! minimal sequence and printed with its seed. `VRIFT_DIFF_CASES=N` (sequences per seed,
//! default [`DEFAULT_CASES`]), `VRIFT_DIFF_OPS=N` (operations per sequence) and
//! `VRIFT_DIFF_SEED=N` (one seed instead of the list) run more, e.g.
//! `VRIFT_DIFF_SEED=7 VRIFT_DIFF_CASES=200 cargo test --release -p vrift-tests --test differential`.
//! Each runs as root and as `nobody`, under every projection (`matrix!`).
//!
//! What a view is known to do differently is left out of the generator, each with the
//! documented difference it stands for: see [`Exclusions`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use vrift_tests::*;

/// The seeds CI runs (each with [`DEFAULT_CASES`] sequences).
const SEEDS: &[u64] = &[1, 2];
/// Sequences per seed in CI.
const DEFAULT_CASES: u32 = 12;
/// Operations per sequence in CI.
const DEFAULT_OPS: usize = 80;

/// Sequences that once failed (shrunk), run first every time. One op per line, as the
/// executor reads them.
const REGRESSIONS: &[&str] = &[
    // Write-back took a symlink to a directory for the directory that replaced it, and
    // gave the symlink's target the new directory's mode.
    "unlink lnd\nmkdir lnd 644",
    // The supervisor put a file's old mtime back on its private copy at a chmod while it
    // was being written.
    "open ro w 644 1 0\nchmod ro 644",
    // Write-back of an append to a file that was read-only on disk (the run made it
    // writable first) failed with EACCES as an ordinary user.
    "chmod ro 644\ntruncate ro 11",
    // Write-back of an append to a file with xattrs that the run made 0000 failed with
    // EACCES as an ordinary user: its mode was set before its xattrs were read.
    "pwrite ln 11 1 0\nchmod f1 000",
];

/// Stat fields a projection does not promise, each with why; [`OTHERS`] keeps a minimal
/// sequence for each, which must still differ there.
const NOT_PROMISED: &[(&[&str], &str, &str)] = &[
    (
        &["overlay"],
        "dnlink=",
        "overlayfs reports st_nlink 1 for a merged directory (one with entries in the upper \
         and a lower layer), as it does on any overlay mount (docs/ARCHITECTURE.md, overlay \
         semantics)",
    ),
    (
        &["overlay"],
        "list",
        "overlayfs answers listxattr's size query (listlen=, and so listsmall=) with the size of the upper or lower file's \
         whole list, its own hidden overlay.* xattrs counted (ovl_listxattr), as on any \
         overlay mount",
    ),
];

/// Differences that belong to work on other branches (or to the kernel), each as a minimal
/// sequence this test found: (projections, as an ordinary user, whose, what differs, the
/// ops). The
/// `known_differences` tests check each still differs, so a fix shows up as an entry to
/// take off (with its exclusion in [`Exclusions`] or its field in [`NOT_PROMISED`]).
const OTHERS: &[(&[&str], bool, &str, &str, &str)] = &[
    (
        &["overlay"],
        false,
        "overlayfs (kernel)",
        "listxattr's size query counts overlayfs's own hidden xattrs",
        "listxattr f1",
    ),
    (
        &["overlay"],
        false,
        "overlayfs (kernel)",
        "a merged directory has st_nlink 1",
        "open d/g w 644 0 0\nstat d",
    ),
    (
        &["shim"],
        true,
        "pjd (the supervisor's POSIX behaviour)",
        "a write by a caller without CAP_FSETID does not clear S_ISUID/S_ISGID (the kernel \
         clears them on write and truncate)",
        "open dang rw,creat,trunc 4755 1 0",
    ),
    (
        &["supervisor", "shim+supervisor", "shim"],
        false,
        "vfs (rename across the view's edge)",
        "rename from a path a view symlink leads out of the view (missing there) into the \
         view: EXDEV, where the kernel answers ENOENT for the missing source",
        "symlink ../d d/sub/n4\nrename lnd d/sub/n4 exchange\nrename lnd/g f1 0",
    ),
    (
        &["overlay"],
        true,
        "overlay harvest (not fixed yet)",
        "as an ordinary user, a file written below a directory the run left without its \
         search bit cannot be moved from the upper directory into the store: the run fails \
         saving its changes (EACCES), and its upper directory is kept for the next run",
        "open d/sub/h rw,creat,trunc 644 0 0\nchmod lnd 644",
    ),
    (
        &["supervisor", "shim+supervisor"],
        true,
        "supervisor (readlink is the kernel's, over the farm)",
        "readlink below a directory the run made unsearchable: the kernel reads the farm's \
         directory, which keeps its search bit, and answers EINVAL where the disk says EACCES \
         (found with VRIFT_DIFF_SEED=11 VRIFT_DIFF_CASES=40)",
        "chmod d/ 644\nreadlink lnd/g",
    ),
];

/// mtimes in this range were set explicitly (the initial tree, `utime`); others are "now"
/// of one side or the other and are not compared.
const EXPLICIT_MTIMES: std::ops::Range<i64> = 1_000_000_000..1_300_000_000;
const TREE_MTIME: u64 = 1_200_000_000;

/// Paths the operations name: the initial tree's entries, names that start missing, paths
/// through symlinks, trailing slashes and dots.
const PATHS: &[&str] = &[
    "f1", "f2", "ro", "d", "d/g", "d/sub", "d/sub/h", "ln", "lnd", "dang", "n1", "n2", "d/n3",
    "nd", "nd/x", "nd/y", "lnd/g", "lnd/n5", "d/sub/n4", "f1/", "d/", "nd/", "d/.", "n1/x",
];
/// Targets of new symlinks. None leads out of the project: a rename between a path that a
/// view symlink leads out of the view and one inside answers EXDEV where the kernel finds
/// the outside path missing first (ENOENT); see [`OTHERS`].
const TARGETS: &[&str] = &["f1", "d", "nd", "n1", "d/g", "missing", "sub", "."];
const MODES: &[&str] = &[
    "644", "600", "755", "444", "000", "700", "711", "4755", "1777",
];
const OPEN_FLAGS: &[&str] = &[
    "r",
    "w",
    "rw",
    "w,creat",
    "w,creat,excl",
    "rw,creat,trunc",
    "w,trunc",
    "w,append",
    "rw,creat,append",
    "r,dir",
    "r,nofollow",
    "w,creat,nofollow",
    "rw,creat,excl,nofollow",
    "r,trunc",
    "w,creat,dir",
];

#[derive(Clone, Debug)]
enum Op {
    Open(&'static str, &'static str, &'static str, u16, u8),
    Pwrite(&'static str, u16, u16, u8),
    Truncate(&'static str, u16),
    Read(&'static str),
    Rename(&'static str, &'static str, &'static str),
    Link(&'static str, &'static str),
    Symlink(&'static str, &'static str),
    Unlink(&'static str),
    Rmdir(&'static str),
    Mkdir(&'static str, &'static str),
    Chmod(&'static str, &'static str),
    Utime(&'static str, u32, bool),
    Stat(&'static str, bool),
    Readlink(&'static str),
    Ls(&'static str),
    /// (path, name, value, flag, not following a final symlink)
    SetXattr(&'static str, &'static str, &'static str, &'static str, bool),
    RemoveXattr(&'static str, &'static str, bool),
    GetXattr(&'static str, &'static str, bool),
    ListXattr(&'static str, bool),
}

/// `l` for the call that does not follow a final symlink.
fn l(nofollow: bool) -> &'static str {
    if nofollow {
        "l"
    } else {
        ""
    }
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Open(p, f, m, n, s) => format!("open {p} {f} {m} {n} {s}"),
            Op::Pwrite(p, off, n, s) => format!("pwrite {p} {off} {n} {s}"),
            Op::Truncate(p, n) => format!("truncate {p} {n}"),
            Op::Read(p) => format!("read {p}"),
            Op::Rename(a, b, f) => format!("rename {a} {b} {f}"),
            Op::Link(a, b) => format!("link {a} {b}"),
            Op::Symlink(t, b) => format!("symlink {t} {b}"),
            Op::Unlink(p) => format!("unlink {p}"),
            Op::Rmdir(p) => format!("rmdir {p}"),
            Op::Mkdir(p, m) => format!("mkdir {p} {m}"),
            Op::Chmod(p, m) => format!("chmod {p} {m}"),
            Op::Utime(p, s, nofollow) => format!(
                "{} {p} {}",
                if *nofollow { "lutime" } else { "utime" },
                1_000_000_000 + *s as u64
            ),
            Op::Stat(p, true) => format!("stat {p}"),
            Op::Stat(p, false) => format!("lstat {p}"),
            Op::Readlink(p) => format!("readlink {p}"),
            Op::Ls(p) => format!("ls {p}"),
            Op::SetXattr(p, n, v, f, nf) => format!("{}setxattr {p} {n} {v} {f}", l(*nf)),
            Op::RemoveXattr(p, n, nf) => format!("{}removexattr {p} {n}", l(*nf)),
            Op::GetXattr(p, n, nf) => format!("{}getxattr {p} {n}", l(*nf)),
            Op::ListXattr(p, nf) => format!("{}listxattr {p}", l(*nf)),
        }
    }
}

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(list)
}

fn op() -> impl Strategy<Value = Op> {
    let p = || pick(PATHS);
    prop_oneof![
        6 => (p(), pick(OPEN_FLAGS), pick(MODES), 0u16..300, any::<u8>())
            .prop_map(|(p, f, m, n, s)| Op::Open(p, f, m, n, s)),
        3 => (p(), 0u16..400, 1u16..200, any::<u8>()).prop_map(|(p, o, n, s)| Op::Pwrite(p, o, n, s)),
        2 => (p(), 0u16..500).prop_map(|(p, n)| Op::Truncate(p, n)),
        3 => p().prop_map(Op::Read),
        4 => (p(), p(), pick(&["0", "noreplace", "exchange"])).prop_map(|(a, b, f)| Op::Rename(a, b, f)),
        2 => (p(), p()).prop_map(|(a, b)| Op::Link(a, b)),
        2 => (pick(TARGETS), p()).prop_map(|(t, b)| Op::Symlink(t, b)),
        3 => p().prop_map(Op::Unlink),
        2 => p().prop_map(Op::Rmdir),
        3 => (p(), pick(MODES)).prop_map(|(p, m)| Op::Mkdir(p, m)),
        2 => (p(), pick(MODES)).prop_map(|(p, m)| Op::Chmod(p, m)),
        2 => (p(), 0u32..1000, any::<bool>()).prop_map(|(p, s, n)| Op::Utime(p, s, n)),
        4 => (p(), any::<bool>()).prop_map(|(p, f)| Op::Stat(p, f)),
        1 => p().prop_map(Op::Readlink),
        2 => p().prop_map(Op::Ls),
    ]
}

/// Sequences about xattrs: the xattr calls, mixed with the changes that move, link,
/// replace, write and open up or close the files that carry them.
fn xattr_op() -> impl Strategy<Value = Op> {
    let p = || pick(PATHS);
    let flag = || pick(&["0", "create", "replace"]);
    prop_oneof![
        4 => (p(), pick(XATTR_NAMES), pick(XATTR_VALUES), flag(), any::<bool>())
            .prop_map(|(p, n, v, f, nf)| Op::SetXattr(p, n, v, f, nf)),
        2 => (p(), pick(XATTR_NAMES), any::<bool>()).prop_map(|(p, n, nf)| Op::RemoveXattr(p, n, nf)),
        4 => (p(), pick(XATTR_NAMES), any::<bool>()).prop_map(|(p, n, nf)| Op::GetXattr(p, n, nf)),
        2 => (p(), any::<bool>()).prop_map(|(p, nf)| Op::ListXattr(p, nf)),
        2 => (p(), pick(OPEN_FLAGS), pick(MODES), 0u16..300, any::<u8>())
            .prop_map(|(p, f, m, n, s)| Op::Open(p, f, m, n, s)),
        2 => (p(), p(), pick(&["0", "noreplace", "exchange"])).prop_map(|(a, b, f)| Op::Rename(a, b, f)),
        1 => (p(), p()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (pick(TARGETS), p()).prop_map(|(t, b)| Op::Symlink(t, b)),
        1 => p().prop_map(Op::Unlink),
        1 => (p(), pick(MODES)).prop_map(|(p, m)| Op::Mkdir(p, m)),
        2 => (p(), pick(MODES)).prop_map(|(p, m)| Op::Chmod(p, m)),
    ]
}

/// Names of xattr operations: the initial tree's (`user.a` on `f1`, `user.b` on `d`), and
/// one in no namespace (EOPNOTSUPP).
const XATTR_NAMES: &[&str] = &["user.a", "user.b", "user.c", "nons"];
/// Values to set ("-": empty).
const XATTR_VALUES: &[&str] = &["v1", "-", "a-longer-value"];

/// What the generator leaves out, per projection, each for a documented difference.
#[derive(Clone, Copy)]
struct Exclusions {
    /// Overlay: rename(2) of a directory that came with the view gives EXDEV
    /// (docs/ARCHITECTURE.md, "Overlay semantics that differ from a disk"). The initial
    /// tree's directories are `d` and `d/sub` (`lnd` leads to `d`): no rename names them.
    lower_dir_rename: bool,
    /// Supervisor and shim, as an ordinary user: no set-uid mode on a regular file. A write
    /// by a caller without CAP_FSETID leaves S_ISUID/S_ISGID set in the view, where the
    /// kernel clears them (the supervisor's POSIX behaviour, `pjd` branch; see [`OTHERS`]).
    no_setid_files: bool,
    /// Overlay, as an ordinary user: chmod only to modes that keep the owner's search bit,
    /// for the harvest's failure in [`OTHERS`].
    keep_search_bit: bool,
}

impl Exclusions {
    fn for_projection(projection: &str, as_user: bool) -> Exclusions {
        Exclusions {
            lower_dir_rename: projection == "overlay",
            no_setid_files: as_user && projection != "overlay",
            keep_search_bit: as_user && projection == "overlay",
        }
    }

    fn allows(&self, op: &Op) -> bool {
        match op {
            Op::Rename(a, b, f) if self.lower_dir_rename => {
                let lower = |p: &str| {
                    let last = p
                        .split('/')
                        .rfind(|c| !c.is_empty() && *c != ".")
                        .unwrap_or("");
                    matches!(last, "d" | "sub" | "lnd")
                };
                !(lower(a) || (*f == "exchange" && lower(b)))
            }
            Op::Chmod(_, m) if self.keep_search_bit => {
                u32::from_str_radix(m, 8).is_ok_and(|m| m & 0o100 != 0)
            }
            Op::Open(_, _, m, _, _) | Op::Chmod(_, m) if self.no_setid_files => !m.starts_with('4'),
            _ => true,
        }
    }
}

/// The tree every sequence starts from, on both sides.
fn make_tree(dir: &Path, as_user: bool) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let file = |rel: &str, content: &str, mode: u32| {
        let p = dir.join(rel);
        write(&p, content);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    file("f1", "first file\n", 0o644);
    file("f2", "#!/bin/sh\necho two\n", 0o755);
    file("ro", "read only\n", 0o444);
    file("d/g", "in d\n", 0o644);
    file("d/sub/h", "deeper\n", 0o600);
    symlink("f1", dir.join("ln")).unwrap();
    symlink("d", dir.join("lnd")).unwrap();
    symlink("nothing", dir.join("dang")).unwrap();
    for (rel, name, value) in [("f1", "user.a", "base"), ("d", "user.b", "dir")] {
        let mut c = Command::new(require_tool("setfattr"));
        c.args(["-n", name, "-v", value]).arg(dir.join(rel));
        run_expect(&mut c, true);
    }
    for rel in ["f1", "f2", "ro", "d/g", "d/sub/h", "d/sub", "d", ""] {
        set_mtime(&dir.join(rel), TREE_MTIME);
    }
    if as_user && is_root() {
        let mut c = Command::new("chown");
        c.args(["-R", "-h", "nobody:nogroup"]).arg(dir);
        run_expect(&mut c, true);
    }
}

/// Empty `dir` but for vrift's own `.vrift`.
fn clear(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == ".vrift" {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            // A directory left 0000 or 0555 by the sequence: open it up first.
            let mut c = Command::new("chmod");
            c.args(["-R", "u+rwx"]).arg(&p);
            run_expect(&mut c, true);
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// An executor output line with "now" mtimes blanked, and with what the view does not
/// promise yet under `projection` left out (see [`NOT_PROMISED`]; none when `None`).
fn normalize(line: &str, projection: Option<&str>) -> String {
    line.split(' ')
        .filter(|w| {
            !NOT_PROMISED.iter().any(|(ps, field, _)| {
                projection.is_some_and(|p| ps.contains(&p)) && w.starts_with(field)
            })
        })
        .map(|w| {
            let (pre, rest) = match w.find("mtime=") {
                Some(i) => w.split_at(i + 6),
                None => return w.to_string(),
            };
            let secs: i64 = rest
                .split('.')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            if EXPLICIT_MTIMES.contains(&secs) {
                w.to_string()
            } else {
                let tail = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
                format!("{pre}*{tail}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Harness {
    project: Project,
    native: PathBuf,
    ops_file: PathBuf,
    fsops: PathBuf,
    exclusions: Exclusions,
}

impl Harness {
    fn new(as_user: bool) -> Harness {
        let mut project = Project::new(as_user);
        let native = project.env.mkdir("native");
        let ops_file = project.out.join("ops");
        make_tree(&project.dir, as_user);
        project.ready();
        let exclusions = Exclusions::for_projection(&project.env.projection, as_user);
        Harness {
            fsops: build_c("gcc", "fsops.c", &[]),
            project,
            native,
            ops_file,
            exclusions,
        }
    }

    fn native_cmd(&self) -> Command {
        self.native_cmd_in(&self.ops_file, &self.native)
    }

    /// The executor run natively (as the view's user) on `ops` in `dir`.
    fn native_cmd_in(&self, ops: &Path, dir: &Path) -> Command {
        let mut c = if self.project.as_user && is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
            c.arg(&self.fsops);
            c
        } else {
            Command::new(&self.fsops)
        };
        c.arg(ops).current_dir(dir);
        c
    }

    /// The user.* xattrs the write-back left on the project's files, as the executor's
    /// tree lists them natively.
    fn project_xattrs(&self) -> Vec<(String, String)> {
        let ops = self.project.out.join("tree-ops");
        std::fs::write(&ops, "tree\n").unwrap();
        let out = ok_within(
            &mut self.native_cmd_in(&ops, &self.project.dir),
            RUN_TIMEOUT,
        );
        xattrs_in_tree(String::from_utf8_lossy(&out.stdout).lines().skip(1))
    }

    /// Run `ops` on both sides from the initial tree; `Err` names the first difference.
    fn check(&self, ops: &[String]) -> Result<(), String> {
        self.compare(ops, Some(&self.project.env.projection))
    }

    /// [`Harness::check`] with the fields of [`NOT_PROMISED`] compared for `mask_for: None`.
    fn compare(&self, ops: &[String], mask_for: Option<&str>) -> Result<(), String> {
        let mut script = ops.join("\n");
        script.push_str("\ntree\n");
        std::fs::write(&self.ops_file, script).unwrap();
        clear(&self.native);
        make_tree(&self.native, self.project.as_user);
        clear(&self.project.dir);
        make_tree(&self.project.dir, self.project.as_user);

        let native = ok_within(&mut self.native_cmd(), RUN_TIMEOUT);
        let fsops = self.fsops.to_str().unwrap();
        let ops_file = self.ops_file.to_str().unwrap();
        let view = output_within(&mut self.project.cmd(&[fsops, ops_file]), RUN_TIMEOUT);
        let native_out = String::from_utf8_lossy(&native.stdout).into_owned();
        let view_out = String::from_utf8_lossy(&view.stdout).into_owned();
        if !view.status.success() {
            return Err(format!(
                "the run failed: {:?}\nstderr:\n{}\nstdout:\n{view_out}",
                view.status,
                String::from_utf8_lossy(&view.stderr)
            ));
        }
        let (n_lines, v_lines): (Vec<_>, Vec<_>) = (
            native_out.lines().map(|l| normalize(l, mask_for)).collect(),
            view_out.lines().map(|l| normalize(l, mask_for)).collect(),
        );
        for (i, op) in ops.iter().enumerate() {
            let (n, v) = (n_lines.get(i), v_lines.get(i));
            if n != v {
                return Err(format!(
                    "op {} `{op}`:\n  native: {}\n  view:   {}",
                    i + 1,
                    n.map_or("(nothing)", |s| s),
                    v.map_or("(nothing)", |s| s)
                ));
            }
        }
        let n_tree = &n_lines[ops.len().min(n_lines.len())..];
        let v_tree = &v_lines[ops.len().min(v_lines.len())..];
        if n_tree != v_tree {
            return Err(format!(
                "the final trees differ:\n{}",
                diff_lines(n_tree, v_tree)
            ));
        }
        let native_xattrs = xattrs_in_tree(native_out.lines().skip(ops.len() + 1));
        let project_xattrs = self.project_xattrs();
        if native_xattrs != project_xattrs {
            return Err(format!(
                "after the write-back the project's xattrs differ from native:\n  \
                 native:  {native_xattrs:?}\n  project: {project_xattrs:?}"
            ));
        }
        let on_disk = self.project.tree();
        let native_tree = real_tree(&self.native, &[]);
        if on_disk != native_tree {
            let mut msg = String::from("after the write-back the project differs from native:");
            for (k, v) in &native_tree {
                if on_disk.get(k) != Some(v) {
                    let _ = write!(msg, "\n  {k}: native {v:?}, project {:?}", on_disk.get(k));
                }
            }
            for (k, v) in &on_disk {
                if !native_tree.contains_key(k) {
                    let _ = write!(msg, "\n  {k}: not native, project {v:?}");
                }
            }
            return Err(msg);
        }
        Ok(())
    }
}

/// (path, its `x=...` field) of each entry with xattrs in an executor's tree lines.
fn xattrs_in_tree<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| {
            let path = l.split(' ').next()?;
            let x = l.split(' ').find(|w| w.starts_with("x="))?;
            Some((path.to_string(), x.to_string()))
        })
        .collect()
}

fn diff_lines(a: &[String], b: &[String]) -> String {
    let mut out = String::new();
    for l in a.iter().filter(|l| !b.contains(l)) {
        let _ = writeln!(out, "  native only: {l}");
    }
    for l in b.iter().filter(|l| !a.contains(l)) {
        let _ = writeln!(out, "  view only:   {l}");
    }
    out
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn differential(as_user: bool) {
    run_sequences(as_user, op());
}

matrix!(sequences => differential);

fn xattr_differential(as_user: bool) {
    run_sequences(as_user, xattr_op());
}

matrix!(xattr_sequences => xattr_differential);

/// The regressions, then random sequences of `ops` from every seed, each agreeing with the
/// disk.
fn run_sequences(as_user: bool, ops: impl Strategy<Value = Op>) {
    let h = Harness::new(as_user);
    for (i, r) in REGRESSIONS.iter().enumerate() {
        let ops: Vec<String> = r.lines().map(str::to_string).collect();
        if let Err(e) = h.check(&ops) {
            panic!("regression {i} fails again:\n{r}\n{e}");
        }
    }
    let cases = env_num("VRIFT_DIFF_CASES", DEFAULT_CASES);
    let len = env_num("VRIFT_DIFF_OPS", DEFAULT_OPS);
    let seeds: Vec<u64> = match std::env::var("VRIFT_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("VRIFT_DIFF_SEED is a number")],
        Err(_) => SEEDS.to_vec(),
    };
    let ex = h.exclusions;
    let strategy = proptest::collection::vec(
        ops.prop_filter("a documented difference", move |o| ex.allows(o)),
        1..len,
    );
    let ran = std::cell::Cell::new(0usize);
    for seed in seeds {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: env_num("VRIFT_DIFF_SHRINK", 300),
            max_global_rejects: 100_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
        let result = runner.run(&strategy, |ops| {
            ran.set(ran.get() + ops.len());
            let lines: Vec<String> = ops.iter().map(Op::line).collect();
            h.check(&lines).map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            let (why, ops) = match e {
                proptest::test_runner::TestError::Fail(why, ops) => (why.to_string(), ops),
                other => panic!("seed {seed}: {other}"),
            };
            let lines: Vec<String> = ops.iter().map(Op::line).collect();
            panic!(
                "seed {seed} ({}, as_user={as_user}): the view differs from the disk.\n\
                 Minimal sequence:\n{}\n{why}",
                h.project.env.projection,
                lines.join("\n")
            );
        }
    }
    eprintln!(
        "differential: {} operations agreed ({})",
        ran.get(),
        h.project.env.projection
    );
}

fn known(as_user: bool) {
    let projection = current_projection();
    let h = Harness::new(as_user);
    for (ps, user, whose, what, ops) in OTHERS {
        if !ps.contains(&projection.as_str()) || *user != as_user {
            continue;
        }
        let lines: Vec<String> = ops.lines().map(str::to_string).collect();
        let r = h.compare(&lines, None);
        assert!(
            r.is_err(),
            "now agrees under {projection} (take it off OTHERS, and its exclusion or its \
             field off NOT_PROMISED): {whose}: {what}\n{ops}"
        );
        eprintln!("still differs ({whose}: {what}): {}", r.unwrap_err());
    }
}

matrix!(known_differences => known);
