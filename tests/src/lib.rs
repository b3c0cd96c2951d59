//! Harness for end-to-end tests: a private store per test, the `vrift` binary, and helpers to
//! make trees and check what a command printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A test's private world: a store (`VRIFT_HOME`) and a scratch directory.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("vrift-e2e")
                .tempdir()
                .unwrap(),
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
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(vrift_bin())
            .args(args)
            .current_dir(cwd)
            .env("VRIFT_HOME", self.home())
            .env("HOME", self.dir.path());
        c
    }

    /// `vrift ARGS` in `cwd` with this env's store.
    pub fn vrift(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(vrift_bin());
        c.current_dir(cwd).env("VRIFT_HOME", self.home()).args(args);
        c
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
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
