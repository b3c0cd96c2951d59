//! Harness for end-to-end tests: a private store per test, the `vrift` binary, and helpers to
//! make trees and check what a command printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod garage;
pub mod shim;

/// The `vrift` binary built beside this test executable (target/<profile>/vrift).
pub fn vrift_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("vrift");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build --workspace` (the test command does)",
        bin.display()
    );
    bin
}

/// The projections the end-to-end suites run under, each test once per projection (see
/// [`matrix!`]). `VRIFT_TEST_PROJECTIONS=supervisor` (a comma-separated list) narrows a run
/// to some of them; by default every one runs.
///
/// `shim` (the interposition shim alone) serves dynamic programs only: a scenario that runs
/// a static program (or needs what only namespaces give) says so where it is declared,
/// `matrix!(name => scenario, not_shim = "why")`, and gets no shim tests. Under the shim the
/// scenarios' `busybox` is a dynamically linked build of it ([`busybox`]).
/// `shim+supervisor` (the shim in front of the supervisor) serves every program, static
/// ones included, and runs every scenario. [`NO_NAMESPACES`] is `auto` on a system that
/// refuses namespaces: vrift then serves the view without mounts (shim+supervisor).
pub const PROJECTIONS: &[&str] = &[
    "supervisor",
    "overlay",
    "shim",
    "shim+supervisor",
    NO_NAMESPACES,
];

/// The axis of the suites where vrift runs under a seccomp filter that refuses namespaces,
/// as a container's default profile does (`tests/programs/confine.c`), with `--projection
/// auto`: it must fall back to the shim in front of a supervisor that mounts nothing.
pub const NO_NAMESPACES: &str = "no-namespaces";

thread_local! {
    static PROJECTION: std::cell::RefCell<Option<&'static str>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with every [`Env`] it makes using `projection`; returns without running it when
/// `VRIFT_TEST_PROJECTIONS` leaves that projection out (saying so).
pub fn with_projection(projection: &'static str, f: impl FnOnce()) {
    if let Ok(list) = std::env::var("VRIFT_TEST_PROJECTIONS") {
        if !list.split(',').any(|p| p.trim() == projection) {
            eprintln!("not run: VRIFT_TEST_PROJECTIONS={list} leaves out {projection}");
            return;
        }
    }
    PROJECTION.with(|p| *p.borrow_mut() = Some(projection));
    f();
    PROJECTION.with(|p| *p.borrow_mut() = None);
}

/// The projection of the test running on this thread: the one [`with_projection`] set, else
/// `VRIFT_TEST_PROJECTION`, else vrift's own choice (`auto`).
pub fn current_projection() -> String {
    PROJECTION
        .with(|p| *p.borrow())
        .map(str::to_string)
        .or_else(|| std::env::var("VRIFT_TEST_PROJECTION").ok())
        .unwrap_or_else(|| "auto".to_string())
}

/// Does the test on this thread run under the shim alone (no supervisor behind it)?
pub fn shim_alone() -> bool {
    current_projection() == "shim"
}

/// The busybox the scenarios run: the static one the set-up installs, except under the
/// shim alone, which serves dynamic programs only, and where namespaces are refused (the
/// shim serves dynamic programs there, the supervisor without mounts cannot enter a
/// directory made in the run for a static one, see `run_parts`): there, a dynamically
/// linked build of the same version (`scripts/setup.sh` puts it in
/// /usr/local/libexec/vrift-tests).
pub fn busybox() -> PathBuf {
    if shim_alone() || current_projection() == NO_NAMESPACES {
        let p = PathBuf::from(DYNAMIC_BUSYBOX);
        assert!(
            p.exists(),
            "{DYNAMIC_BUSYBOX} is not installed: run scripts/setup.sh"
        );
        return p;
    }
    require_tool("busybox")
}

/// Where the set-up puts the dynamically linked busybox.
pub const DYNAMIC_BUSYBOX: &str = "/usr/local/libexec/vrift-tests/busybox";

/// One test per user (root, and an ordinary user) and per projection for a scenario
/// `fn(as_user: bool)`: `matrix!(name => scenario);` makes `name::root_supervisor`,
/// `name::user_supervisor`, and so on for every projection in [`PROJECTIONS`].
/// `matrix!(name => scenario, not_shim = "why")` leaves the shim alone out, for a scenario
/// it cannot serve (a static program), and says why in the module's documentation;
/// `matrix!(name => scenario, needs_namespaces = "why")` leaves out the shim alone and the
/// [`NO_NAMESPACES`] axis too (`--isolate`, `vrift trace`), and `not_without_namespaces =
/// "why"` that axis alone (what the supervisor without mounts refuses, see ARCHITECTURE).
#[macro_export]
macro_rules! matrix {
    ($name:ident => $scenario:ident) => {
        mod $name {
            $crate::matrix!(@kernel $scenario);
            $crate::matrix!(@unmounted $scenario);
            $crate::matrix!(@shim $scenario);
        }
    };
    ($name:ident => $scenario:ident, not_shim = $why:literal) => {
        #[doc = concat!("Not under the shim alone: ", $why, ".")]
        mod $name {
            $crate::matrix!(@kernel $scenario);
            $crate::matrix!(@unmounted $scenario);
        }
    };
    ($name:ident => $scenario:ident, not_without_namespaces = $why:literal) => {
        #[doc = concat!("Not where namespaces are refused: ", $why, ".")]
        mod $name {
            $crate::matrix!(@kernel $scenario);
            $crate::matrix!(@shim $scenario);
        }
    };
    ($name:ident => $scenario:ident, needs_namespaces = $why:literal) => {
        #[doc = concat!("Not under the shim alone, nor without namespaces: ", $why, ".")]
        mod $name {
            $crate::matrix!(@kernel $scenario);
        }
    };
    (@shim $scenario:ident) => {
        #[test]
        fn root_shim() {
            $crate::with_projection("shim", || super::$scenario(false));
        }
        #[test]
        fn user_shim() {
            $crate::with_projection("shim", || super::$scenario(true));
        }
    };
    (@unmounted $scenario:ident) => {
        #[test]
        fn root_no_namespaces() {
            $crate::with_projection($crate::NO_NAMESPACES, || super::$scenario(false));
        }
        #[test]
        fn user_no_namespaces() {
            $crate::with_projection($crate::NO_NAMESPACES, || super::$scenario(true));
        }
    };
    (@kernel $scenario:ident) => {
        #[test]
        fn root_shim_supervisor() {
            $crate::with_projection("shim+supervisor", || super::$scenario(false));
        }
        #[test]
        fn user_shim_supervisor() {
            $crate::with_projection("shim+supervisor", || super::$scenario(true));
        }
        #[test]
        fn root_supervisor() {
            $crate::with_projection("supervisor", || super::$scenario(false));
        }
        #[test]
        fn user_supervisor() {
            $crate::with_projection("supervisor", || super::$scenario(true));
        }
        #[test]
        fn root_overlay() {
            $crate::with_projection("overlay", || super::$scenario(false));
        }
        #[test]
        fn user_overlay() {
            $crate::with_projection("overlay", || super::$scenario(true));
        }
    };
}

/// One test per projection for a test that picks its own users: `projections! { fn name()
/// { ... } }` makes `name::supervisor`, `name::overlay` and `name::shim`;
/// `projections! { not_shim = "why"; fn name() { ... } }` leaves the shim alone out, and
/// `needs_namespaces = "why"` the [`NO_NAMESPACES`] axis too (see [`matrix!`]).
#[macro_export]
macro_rules! projections {
    (fn $name:ident() $body:block) => {
        mod $name {
            $crate::projections!(@kernel $body);
            $crate::projections!(@unmounted);
            $crate::projections!(@shim);
        }
    };
    (not_shim = $why:literal; fn $name:ident() $body:block) => {
        #[doc = concat!("Not under the shim alone: ", $why, ".")]
        mod $name {
            $crate::projections!(@kernel $body);
            $crate::projections!(@unmounted);
        }
    };
    (not_without_namespaces = $why:literal; fn $name:ident() $body:block) => {
        #[doc = concat!("Not where namespaces are refused: ", $why, ".")]
        mod $name {
            $crate::projections!(@kernel $body);
            $crate::projections!(@shim);
        }
    };
    (needs_namespaces = $why:literal; fn $name:ident() $body:block) => {
        #[doc = concat!("Not under the shim alone, nor without namespaces: ", $why, ".")]
        mod $name {
            $crate::projections!(@kernel $body);
        }
    };
    (@shim) => {
        #[test]
        fn shim() {
            $crate::with_projection("shim", scenario);
        }
    };
    (@unmounted) => {
        #[test]
        fn no_namespaces() {
            $crate::with_projection($crate::NO_NAMESPACES, scenario);
        }
    };
    (@kernel $body:block) => {
        #[allow(unused_imports)]
        use super::*;
        fn scenario() $body
        #[test]
        fn shim_supervisor() {
            $crate::with_projection("shim+supervisor", scenario);
        }
        #[test]
        fn supervisor() {
            $crate::with_projection("supervisor", scenario);
        }
        #[test]
        fn overlay() {
            $crate::with_projection("overlay", scenario);
        }
    };
}

/// A test's private world: a store (`VRIFT_HOME`), a scratch directory, and the projection
/// its runs use.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub projection: String,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("vrift-e2e")
                .tempdir()
                .unwrap(),
            projection: current_projection(),
        }
    }
    /// An env whose scratch directory (store and projects in it) has a long path, a name
    /// of 200 bytes: for paths near PATH_MAX in a view, whose store-side paths are longer.
    pub fn with_long_path() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix(&format!("vrift-e2e-{}", "l".repeat(190)))
                .tempdir()
                .unwrap(),
            projection: current_projection(),
        }
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    /// A directory inside the scratch area, created.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    /// Hand the whole scratch area (store included) to `nobody`, so [`Env::vrift_as_user`]
    /// can run vrift as an ordinary user. A no-op when the tests do not run as root.
    pub fn give_to_nobody(&self) {
        if !is_root() {
            return;
        }
        let ok = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown failed");
    }

    /// `vrift ARGS` as an ordinary user: `nobody` when the tests run as root (after
    /// [`Env::give_to_nobody`]), else the current user.
    pub fn vrift_as_user(&self, cwd: &Path, args: &[&str]) -> Command {
        if !is_root() {
            return self.vrift(cwd, args);
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        if self.projection == NO_NAMESPACES {
            c.arg(confine()).arg("ns");
        }
        c.arg(vrift_bin())
            .args(args)
            .current_dir(cwd)
            .env("VRIFT_HOME", self.home())
            .env("VRIFT_PROJECTION", self.vrift_projection())
            .env("HOME", self.dir.path());
        c
    }

    /// `vrift ARGS` as an ordinary user when `as_user` ([`Env::vrift_as_user`]), else as the
    /// one running the tests ([`Env::vrift`]): the two sides of a [`matrix!`] scenario.
    pub fn vrift_as(&self, as_user: bool, cwd: &Path, args: &[&str]) -> Command {
        if as_user {
            self.vrift_as_user(cwd, args)
        } else {
            self.vrift(cwd, args)
        }
    }

    /// `vrift ARGS` in `cwd` with this env's store.
    pub fn vrift(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = if self.projection == NO_NAMESPACES {
            let mut c = Command::new(confine());
            c.arg("ns").arg(vrift_bin());
            c
        } else {
            Command::new(vrift_bin())
        };
        c.current_dir(cwd)
            .env("VRIFT_HOME", self.home())
            .env("VRIFT_PROJECTION", self.vrift_projection())
            .args(args);
        c
    }

    /// What `--projection` vrift is given: the axis's name, but `auto` on the axis where
    /// namespaces are refused.
    pub fn vrift_projection(&self) -> &str {
        if self.projection == NO_NAMESPACES {
            "auto"
        } else {
            &self.projection
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// Run and return output, panicking with both streams if the exit status is not `expect_ok`.
pub fn run_expect(cmd: &mut Command, expect_ok: bool) -> Output {
    let out = cmd.output().expect("spawn");
    if out.status.success() != expect_ok {
        panic!(
            "{:?}: status {:?} (wanted success={expect_ok})\nstdout:\n{}\nstderr:\n{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Run, expect success, return stdout as a String.
pub fn stdout_ok(cmd: &mut Command) -> String {
    String::from_utf8(run_expect(cmd, true).stdout).unwrap()
}

/// Write a file, creating parents.
pub fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// BLAKE3 of every blob file under a store, for before/after comparisons.
pub fn store_snapshot(home: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let blobs = home.join("blobs");
    if !blobs.exists() {
        return out;
    }
    let mut stack = vec![blobs];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, blake3::hash(&bytes).to_hex().to_string()));
            }
        }
    }
    out.sort();
    out
}

/// Check a program is installed; tests that need it fail loudly (set-up installs them all).
pub fn require_tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/setup.sh");
}

/// A tree described in a test: (relative path, content or symlink target, mode).
pub enum Node<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
}

/// Store `nodes` in the env's store and write their manifest to `manifest_path` (with the
/// root dir 0755). Independent of `vrift init`, so run tests need no real source tree.
pub fn make_manifest(env: &Env, manifest_path: &Path, nodes: &[Node]) {
    use vrift_common::hash::Hash;
    use vrift_common::manifest::{Entry, EntryKind, Manifest};
    let store = vrift_common::store::Store::open(&env.home()).unwrap();
    let mtime = 1_600_000_000_000_000_000i64;
    let mut entries = vec![(
        Vec::new(),
        Entry {
            kind: EntryKind::Dir,
            hash: Hash([0; 32]),
            size: 0,
            mode: 0o755,
            mtime_ns: mtime,
            target: Vec::new(),
            meta: Default::default(),
        },
    )];
    for n in nodes {
        let (p, e) = match *n {
            Node::File(p, content, mode) => {
                let ins = store.insert_bytes(content).unwrap();
                (
                    p,
                    Entry {
                        kind: EntryKind::File,
                        hash: ins.hash,
                        size: ins.size,
                        mode,
                        mtime_ns: mtime,
                        target: Vec::new(),
                        meta: Default::default(),
                    },
                )
            }
            Node::Dir(p, mode) => (
                p,
                Entry {
                    kind: EntryKind::Dir,
                    hash: Hash([0; 32]),
                    size: 0,
                    mode,
                    mtime_ns: mtime,
                    target: Vec::new(),
                    meta: Default::default(),
                },
            ),
            Node::Symlink(p, t) => (
                p,
                Entry {
                    kind: EntryKind::Symlink,
                    hash: Hash([0; 32]),
                    size: t.len() as u64,
                    mode: 0o777,
                    mtime_ns: mtime,
                    target: t.as_bytes().to_vec(),
                    meta: Default::default(),
                },
            ),
        };
        entries.push((p.as_bytes().to_vec(), e));
    }
    Manifest::from_entries(entries)
        .save_atomic(manifest_path)
        .unwrap();
}

/// Are the tests running as root?
/// True if a cgroup v1 hierarchy with `controller` is mounted (as on hybrid systems).
pub fn cgroup_v1_has(controller: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" - ").map(|(_, r)| r))
        .any(|r| {
            let f: Vec<&str> = r.split(' ').collect();
            f.first() == Some(&"cgroup")
                && f.get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == controller))
        })
}

/// True if the cgroup v2 of this process can hand `controller` to a child (delegated).
pub fn cgroup_v2_delegates(controller: &str) -> bool {
    let Some(rel) = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
    else {
        return false;
    };
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .any(|m| {
            let dir = Path::new(m).join(rel.trim_start_matches('/'));
            std::fs::read_to_string(dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == controller)
        })
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Put the real tree at `dir` into the env's store and write its manifest to `manifest_path`:
/// files, dirs and symlinks (never followed) with their modes and mtimes. A stand-in for
/// `vrift init` that lets run tests ingest a real tree and then change it on disk.
pub fn manifest_of_dir(env: &Env, dir: &Path, manifest_path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use vrift_common::hash::Hash;
    use vrift_common::manifest::{Entry, EntryKind, Manifest};
    let store = vrift_common::store::Store::open(&env.home()).unwrap();
    let mut entries = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), Vec::<u8>::new())];
    while let Some((real, rel)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&real).unwrap();
        let mut e = Entry {
            kind: EntryKind::Dir,
            hash: Hash([0; 32]),
            size: 0,
            mode: meta.mode() & 0o7777,
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            target: Vec::new(),
            meta: Default::default(),
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            for child in std::fs::read_dir(&real).unwrap() {
                let child = child.unwrap();
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(child.file_name().as_bytes());
                stack.push((child.path(), r));
            }
        } else if ft.is_symlink() {
            e.kind = EntryKind::Symlink;
            e.target = std::fs::read_link(&real)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            e.size = e.target.len() as u64;
        } else if ft.is_file() {
            let ins = store.insert_file(&real).unwrap();
            e.kind = EntryKind::File;
            e.hash = ins.hash;
            e.size = ins.size;
        } else {
            panic!("{}: not a file, dir or symlink", real.display());
        }
        entries.push((rel, e));
    }
    Manifest::from_entries(entries)
        .save_atomic(manifest_path)
        .unwrap();
}

/// `vrift run --manifest MANIFEST -- CMD...` in `cwd` (as root when the tests are root).
pub fn vrift_run(env: &Env, cwd: &Path, manifest: &Path, cmd: &[&str]) -> Command {
    env.vrift(cwd, &run_args(manifest, None, cmd))
}

/// [`vrift_run`] as an ordinary user (see [`Env::vrift_as_user`]).
pub fn vrift_run_as_user(env: &Env, cwd: &Path, manifest: &Path, cmd: &[&str]) -> Command {
    env.vrift_as_user(cwd, &run_args(manifest, None, cmd))
}

/// The arguments of `vrift run --manifest M [--mount DIR -C DIR] -- CMD...` (CMD starts at
/// the mount).
pub fn run_args<'a>(manifest: &'a Path, mount: Option<&'a Path>, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "--manifest", manifest.to_str().unwrap()];
    if let Some(m) = mount {
        a.extend(["--mount", m.to_str().unwrap(), "-C", m.to_str().unwrap()]);
    }
    a.push("--");
    a.extend_from_slice(cmd);
    a
}

/// FNV-1a, 64 bits: the content hash the C and Go test programs print (tests/programs).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Poll `cond` every few milliseconds until it holds or `timeout` passes; returns whether
/// it held. For waiting on something another process does (a marker file, a pid gone).
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Where built test programs are cached: target/<profile>/vrift-test-programs, keyed by a
/// hash of their source and build command, so each is compiled once per change.
fn programs_cache() -> PathBuf {
    let d = vrift_bin().parent().unwrap().join("vrift-test-programs");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The source of a test program in tests/programs.
pub fn program_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("programs")
        .join(name)
}

static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Build with `build(out_path)` unless a build for `key` is cached; returns the binary.
fn cached_build(name: &str, key: &[u8], build: impl FnOnce(&Path)) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let hash = blake3::hash(key).to_hex();
    let out = programs_cache().join(format!("{name}-{}", &hash[..16]));
    if out.exists() {
        return out;
    }
    let tmp = programs_cache().join(format!("{name}.tmp{}", std::process::id()));
    build(&tmp);
    assert!(tmp.exists(), "building {name} produced nothing");
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Compile tests/programs/`src` (C) statically with `cc` (gcc or musl-gcc) and `extra`
/// flags; returns the (cached) binary.
pub fn build_static_c(cc: &str, src: &str, extra: &[&str]) -> PathBuf {
    require_tool(cc);
    let path = program_source(src);
    let mut key = std::fs::read(&path).unwrap();
    key.extend(std::fs::read(program_source("errname.h")).unwrap());
    key.extend(format!("\0{cc}\0{extra:?}").bytes());
    let name = format!("{}-{cc}", src.trim_end_matches(".c"));
    cached_build(&name, &key, |out| {
        let mut c = Command::new(cc);
        c.args(["-static", "-O1", "-Wall", "-o"])
            .arg(out)
            .arg(&path)
            .args(extra);
        run_expect(&mut c, true);
    })
}

/// `tests/programs/confine.c`: runs a command under a seccomp filter that refuses
/// namespaces (and mounts), as a container's default profile does.
pub fn confine() -> PathBuf {
    build_static_c("gcc", "confine.c", &[])
}

/// A test program for a scenario that only needs it to be a native program: built
/// statically with `cc` ([`build_static_c`]), except under the shim alone, which serves
/// dynamic programs only: there, an ordinary dynamic executable built with gcc.
pub fn build_c(cc: &str, src: &str, extra: &[&str]) -> PathBuf {
    if !shim_alone() {
        return build_static_c(cc, src, extra);
    }
    build_dynamic_c(src, extra)
}

/// Compile tests/programs/`src` with gcc as an ordinary dynamic executable (which the shim
/// serves); returns the (cached) binary.
pub fn build_dynamic_c(src: &str, extra: &[&str]) -> PathBuf {
    require_tool("gcc");
    let path = program_source(src);
    let mut key = std::fs::read(&path).unwrap();
    key.extend(std::fs::read(program_source("errname.h")).unwrap());
    key.extend(format!("\0dynamic\0{extra:?}").bytes());
    let name = format!("{}-dynamic", src.trim_end_matches(".c"));
    cached_build(&name, &key, |out| {
        let mut c = Command::new("gcc");
        c.args(["-O1", "-Wall", "-o"])
            .arg(out)
            .arg(&path)
            .args(extra);
        run_expect(&mut c, true);
    })
}

/// Build tests/programs/`src` (a one-file Go main package) with CGO_ENABLED=0; returns the
/// (cached, static) binary.
pub fn build_go(src: &str) -> PathBuf {
    require_tool("go");
    let path = program_source(src);
    let key = std::fs::read(&path).unwrap();
    let name = src.trim_end_matches(".go").to_string();
    cached_build(&name, &key, |out| {
        let work = tempfile::tempdir().unwrap();
        let mut c = Command::new("go");
        c.arg("build")
            .arg("-o")
            .arg(out)
            .arg(&path)
            .current_dir(work.path());
        go_env(&mut c, work.path());
        run_expect(&mut c, true);
    })
}

/// The test binary of a package of Go's standard library (`go test -c PKG`, static, without
/// cgo), cached per Go version; run it in `GOROOT/src/PKG` (see [`go_root`]).
pub fn build_go_std_test(pkg: &str) -> PathBuf {
    require_tool("go");
    let version = stdout_ok(Command::new("go").arg("version"));
    let key = format!("{version}\0{pkg}");
    let name = format!("gostd-{}", pkg.replace('/', "_"));
    cached_build(&name, key.as_bytes(), |out| {
        let work = tempfile::tempdir().unwrap();
        let mut c = Command::new("go");
        c.args(["test", "-c", "-o"])
            .arg(out)
            .arg(pkg)
            .current_dir(work.path());
        go_env(&mut c, work.path());
        run_expect(&mut c, true);
    })
}

/// Go's GOROOT (`go env GOROOT`).
pub fn go_root() -> PathBuf {
    require_tool("go");
    PathBuf::from(stdout_ok(Command::new("go").args(["env", "GOROOT"])).trim())
}

/// Point Go's caches and home into `dir` (and build statically, without cgo).
pub fn go_env(c: &mut Command, dir: &Path) {
    c.env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("HOME", dir)
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on");
}

// ---- Helpers for the write tests (tests/tests/write_*.rs) ----

/// `vrift run -- CMD` in the project directory `cwd`, with no `--manifest`: the run ingests
/// the directory and writes its changes back there when it ends. As `nobody` when
/// `as_user` (see [`Env::vrift_as_user`]), else as the test's own user.
pub fn vrift_run_project(env: &Env, cwd: &Path, as_user: bool, cmd: &[&str]) -> Command {
    let mut args = vec!["run", "--"];
    args.extend_from_slice(cmd);
    env.vrift_as(as_user, cwd, &args)
}

/// [`run_args`]-style `vrift run --manifest M -- CMD` as root or as `nobody`.
pub fn vrift_run_manifest(
    env: &Env,
    cwd: &Path,
    manifest: &Path,
    as_user: bool,
    cmd: &[&str],
) -> Command {
    if as_user {
        vrift_run_as_user(env, cwd, manifest, cmd)
    } else {
        vrift_run(env, cwd, manifest, cmd)
    }
}

/// Run `cmd` to its end, but for at most `timeout`: past that, kill it (by its own pid) and
/// panic with what it printed, so a hang fails the test instead of stalling the suite.
pub fn output_within(cmd: &mut Command, timeout: std::time::Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let mut status = None;
    let done = wait_until(timeout, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = t_out.join().unwrap();
        let stderr = t_err.join().unwrap();
        panic!(
            "{cmd:?}: still running after {timeout:?}, killed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    Output {
        status: status.unwrap(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// [`output_within`] that panics (with both streams) unless the command succeeded; returns
/// the output.
pub fn ok_within(cmd: &mut Command, timeout: std::time::Duration) -> Output {
    let out = output_within(cmd, timeout);
    if !out.status.success() {
        panic!(
            "{cmd:?}: status {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// After a run: every blob in the store still holds the content its name (its BLAKE3)
/// says, and every blob of `before` (a [`store_snapshot`]) is still there, unchanged.
pub fn assert_store_intact(home: &Path, before: &[(PathBuf, String)]) {
    let after = store_snapshot(home);
    let mut bad = Vec::new();
    for (p, h) in &after {
        let shard = p
            .parent()
            .and_then(Path::file_name)
            .unwrap()
            .to_string_lossy();
        let name = format!("{shard}{}", p.file_name().unwrap().to_string_lossy());
        if &name != h {
            bad.push(format!("{}: content hashes to {h}", p.display()));
        }
    }
    for b in before {
        if !after.contains(b) {
            bad.push(format!(
                "{}: changed or gone since before the run",
                b.0.display()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "the store was damaged:\n  {}",
        bad.join("\n  ")
    );
}

/// One entry of a real tree as the kernel shows it (see [`real_tree`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RealNode {
    File {
        mode: u32,
        content: Vec<u8>,
    },
    Dir {
        mode: u32,
    },
    Symlink(PathBuf),
    /// A FIFO, socket or device: its `st_mode` file-type bits.
    Other(u32),
}

/// Every entry under `dir` (not `dir` itself), by path relative to it, never following
/// symlinks; entries whose relative path starts with one of `skip` are left out. Paths
/// longer than PATH_MAX are read through their directory's descriptor.
pub fn real_tree(dir: &Path, skip: &[&str]) -> std::collections::BTreeMap<String, RealNode> {
    use std::os::unix::fs::MetadataExt;
    use vrift_common::longpath::Short;
    let short = |p: &Path| Short::of(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(short(&d)).unwrap() {
            let p = d.join(e.unwrap().file_name());
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let a = short(&p);
            let m = std::fs::symlink_metadata(&a).unwrap();
            let ft = m.file_type();
            let node = if ft.is_symlink() {
                RealNode::Symlink(std::fs::read_link(&a).unwrap())
            } else if ft.is_dir() {
                stack.push(p.clone());
                RealNode::Dir {
                    mode: m.mode() & 0o7777,
                }
            } else if ft.is_file() {
                RealNode::File {
                    mode: m.mode() & 0o7777,
                    content: std::fs::read(&a).unwrap(),
                }
            } else {
                RealNode::Other(m.mode() & 0o170000)
            };
            out.insert(rel, node);
        }
    }
    out
}

/// A path's modification time in nanoseconds since the epoch (of the path itself, not
/// following a symlink).
pub fn mtime_ns(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// Set a path's modification (and access) time to `secs` since the epoch.
pub fn set_mtime(p: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    std::fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| std::fs::File::open(p))
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

/// A project directory for the write tests: files are added, then [`Project::ready`] hands
/// it (and the store) to `nobody` when the test is for an ordinary user, ingests it once (so
/// the store holds its blobs) and snapshots the store; runs are `vrift run -- CMD` in it.
pub struct Project {
    pub env: Env,
    /// The project directory.
    pub dir: PathBuf,
    /// A real directory outside the project, for markers, FIFOs and archives.
    pub out: PathBuf,
    pub as_user: bool,
    /// The store as it was after the first ingest ([`store_snapshot`]).
    pub before: Vec<(PathBuf, String)>,
}

/// How long a single write-test run may take before it counts as hung.
pub const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Project {
    pub fn new(as_user: bool) -> Project {
        Project::in_env(Env::new(), as_user)
    }

    /// A project in `env` (see [`Env::with_long_path`]).
    pub fn in_env(env: Env, as_user: bool) -> Project {
        let dir = env.mkdir("proj");
        let out = env.mkdir("out");
        Project {
            env,
            dir,
            out,
            as_user,
            before: Vec::new(),
        }
    }

    /// Write a file in the project (parents made) with `mode`.
    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join(rel);
        write(&p, content);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// Done setting up: hand everything to `nobody` if needed, run `vrift run -- true` once
    /// (which must change nothing on disk), snapshot the store.
    pub fn ready(&mut self) {
        if self.as_user {
            self.env.give_to_nobody();
        }
        let tree = self.tree();
        self.run(&["true"]);
        assert_eq!(
            tree,
            self.tree(),
            "a run that changed nothing changed the project"
        );
        self.before = store_snapshot(&self.env.home());
        assert!(!self.before.is_empty() || tree.is_empty());
    }

    /// `vrift run -- CMD` in the project, as root or `nobody`; with `BB` (busybox), `OUT`
    /// (the outside directory), `TZ=UTC` and `LC_ALL=C` in its environment.
    pub fn cmd(&self, cmd: &[&str]) -> Command {
        self.cmd_in(&self.dir, cmd)
    }

    /// [`Project::cmd`] started in `cwd` (the project or a directory under it).
    pub fn cmd_in(&self, cwd: &Path, cmd: &[&str]) -> Command {
        let mut c = vrift_run_project(&self.env, cwd, self.as_user, cmd);
        c.env("BB", busybox())
            .env("OUT", &self.out)
            .env("TZ", "UTC")
            .env("LC_ALL", "C");
        c
    }

    /// Run CMD to success (within [`RUN_TIMEOUT`]); returns its output.
    pub fn run(&self, cmd: &[&str]) -> Output {
        ok_within(&mut self.cmd(cmd), RUN_TIMEOUT)
    }

    /// `busybox sh -c SCRIPT` in the view, to success; returns what it printed.
    pub fn sh(&self, script: &str) -> String {
        let bb = busybox();
        let out = self.run(&[bb.to_str().unwrap(), "sh", "-c", script]);
        String::from_utf8(out.stdout).unwrap()
    }

    /// The real project tree now (vrift's own `.vrift` left out).
    pub fn tree(&self) -> std::collections::BTreeMap<String, RealNode> {
        real_tree(&self.dir, &[".vrift"])
    }

    /// The store still holds every blob it had after the first ingest, each intact.
    pub fn check_store(&self) {
        assert_store_intact(&self.env.home(), &self.before);
    }

    /// The uid the runs' programs have (`nobody` for an ordinary user when the tests are
    /// root).
    pub fn uid(&self) -> u32 {
        use std::os::unix::fs::MetadataExt;
        if self.as_user && is_root() {
            65534
        } else {
            std::fs::metadata("/proc/self").unwrap().uid()
        }
    }
}

/// `getfattr -n NAME --only-values P` natively; None when it has no such attribute.
pub fn xattr_of(p: &Path, name: &str) -> Option<String> {
    let out = Command::new(require_tool("getfattr"))
        .args(["-n", name, "--only-values", "--absolute-names"])
        .arg(p)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `setfattr -n NAME -v VALUE P` natively.
pub fn setfattr(p: &Path, name: &str, value: &str) {
    let mut c = Command::new(require_tool("setfattr"));
    c.args(["-n", name, "-v", value]).arg(p);
    run_expect(&mut c, true);
}

/// The `user.*` xattrs of `p` on disk, as `getfattr -d` dumps them (`name="value"` lines).
pub fn user_xattrs_of(p: &Path) -> Vec<String> {
    let out = Command::new(require_tool("getfattr"))
        .args(["-d", "-m", "^user\\.", "--absolute-names"])
        .arg(p)
        .output()
        .unwrap();
    assert!(out.status.success(), "getfattr -d {}", p.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("user."))
        .map(str::to_string)
        .collect()
}

/// Make a FIFO at `p` (the `mkfifo` program).
pub fn mkfifo(p: &Path) {
    let mut c = Command::new("mkfifo");
    c.arg(p);
    run_expect(&mut c, true);
}

/// Open `fifo` for writing without blocking on a reader that never comes, then write a line:
/// releases a program paused reading it.
pub fn release(fifo: &Path) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = None;
    let opened = wait_until(std::time::Duration::from_secs(30), || {
        f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .ok();
        f.is_some()
    });
    assert!(opened, "the program never opened {}", fifo.display());
    f.unwrap().write_all(b"go\n").unwrap();
}
