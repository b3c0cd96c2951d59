//! The shim projection's launcher: no mounts, no namespaces, no seccomp. The program runs
//! with the interposition shim (`vrift-shim`, loaded through LD_PRELOAD) serving the view
//! inside its own processes.
//!
//! On macOS the library is `libvrift_shim.dylib`, loaded through DYLD_INSERT_LIBRARIES; a
//! program dyld would strip that variable from (System Integrity Protection) is refused
//! instead of a statically linked one (there are none on macOS), and the program is
//! started directly: macOS has no subreaper, so what the program leaves running is not
//! ended with it. The parts that serve a supervisor behind the shim are Linux's.
//!
//! [`run`] is a whole run, in three steps, each a plain function:
//! 1. [`prepare`]: the manifest's index (cached in the store), the run's state in its run
//!    directory (`crate::rundir`: change log, generation counter, private copies, an empty
//!    directory) and the environment;
//! 2. [`command`]: the program to start, refused with a clear message when it is statically
//!    linked (the shim would see none of its calls); it is started without namespaces, its
//!    process tree kept by a subreaper (`crate::sys::init::split_keeper_for_tree`);
//! 3. [`harvest`]: replay the run's change log, hash the private copies into the store, and
//!    return the run's new manifest for the usual write-back. A run whose vrift was killed
//!    is harvested the same way by the next run ([`recover`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use vrift_common::index;
use vrift_common::manifest::Manifest;
use vrift_common::runlog;
use vrift_common::store::Store;
use vrift_common::vfs::{Caller, Content, Cred, DeltaId, Exec, Owner, Routed, View};

use crate::run::launch;
use crate::rundir::{self, RunDir, RunRecord, RECORD_VERSION};
use crate::sys::signals;
use crate::view::spec::{Kind, ViewSpec};

/// The library's file name, looked for beside the `vrift` executable.
#[cfg(not(target_os = "macos"))]
pub const LIBRARY: &str = "libvrift_shim.so";
#[cfg(target_os = "macos")]
pub const LIBRARY: &str = "libvrift_shim.dylib";
/// The variable the loader reads (`vrift_shim::env::PRELOAD`).
#[cfg(not(target_os = "macos"))]
const PRELOAD: &str = "LD_PRELOAD";
#[cfg(target_os = "macos")]
const PRELOAD: &str = "DYLD_INSERT_LIBRARIES";
/// Overrides where the library is.
pub const LIBRARY_VAR: &str = "VRIFT_SHIM_LIBRARY";

// The names the shim reads (macos-shim/src/env.rs).
const ENV_ROOT: &str = "VRIFT_SHIM_ROOT";
const ENV_INDEX: &str = "VRIFT_SHIM_INDEX";
const ENV_RUN: &str = "VRIFT_SHIM_RUN";
const ENV_STORE: &str = "VRIFT_SHIM_STORE";
const ENV_OWNER: &str = "VRIFT_SHIM_OWNER";
const ENV_DEV: &str = "VRIFT_SHIM_DEV";
const ENV_CWD: &str = "VRIFT_SHIM_CWD";
const ENV_LIB: &str = "VRIFT_SHIM_LIB";
const ENV_PASSTHROUGH: &str = "VRIFT_SHIM_PASSTHROUGH";
#[cfg(target_os = "linux")]
const ENV_NET: &str = "VRIFT_SHIM_NET";
#[cfg(target_os = "linux")]
const ENV_FARM: &str = "VRIFT_SHIM_FARM";
const LOG: &str = "changes.log";
/// The run's generation: the change log's length, or with a supervisor behind the shim the
/// number of changes it made (`vrift_shim::env`).
pub const GENERATION: &str = "generation";
#[cfg(target_os = "linux")]
const ENV_SERVED: &str = "VRIFT_SHIM_SERVED";
/// What the shim puts in the sixth argument register of its own system calls, so the
/// supervisor's filter lets them through (the same value as `vrift_shim::env::MARKER`).
#[cfg(target_os = "linux")]
pub const MARKER: u64 = 0x7672_6966_745f_7368;
const WRITES: &str = "w";
const EMPTY: &str = "empty";

/// The st_dev every view entry reports: an anonymous device number no disk uses.
pub const VIEW_DEV: u64 = 0x7672;

/// A run made ready: where its state is, and what the program's environment needs.
pub struct Prepared {
    pub run_dir: PathBuf,
    pub root: PathBuf,
    pub library: PathBuf,
    pub owner: Owner,
    /// Where the program starts (in the view or not).
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
}

/// The shim library to load: `$VRIFT_SHIM_LIBRARY`, else beside this executable.
pub fn find_library() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(LIBRARY_VAR) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{}: {LIBRARY_VAR} names no file", p.display());
        }
        return Ok(std::path::absolute(&p)?);
    }
    let exe = std::env::current_exe().context("finding the vrift executable")?;
    let p = exe.with_file_name(LIBRARY);
    if !p.is_file() {
        bail!(
            "{}: the shim library is missing (build it with `cargo build -p vrift-shim`, or \
             set {LIBRARY_VAR})",
            p.display()
        );
    }
    Ok(p)
}

/// Make the run's state in `run_dir` (a fresh run directory), the index, and the
/// program's environment. With `origins` (the manifest was just ingested from disk), the
/// index records each entry's inode number and ctime there, which the shim reports for
/// entries the run leaves unchanged.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    store: &Store,
    manifest: &Manifest,
    origins: Option<&[u8]>,
    root: &Path,
    cwd: &Path,
    owner: Owner,
    library: &Path,
    passthrough: &[PathBuf],
    run_dir: &Path,
) -> Result<Prepared> {
    if !root.is_absolute() {
        bail!(
            "{}: the view's root must be an absolute path",
            root.display()
        );
    }
    let ix = match origins {
        Some(o) => index::cached_with_origins_section(store, manifest, o)?,
        None => index::cached(store, manifest)?,
    };
    let run_dir = run_dir.to_path_buf();
    for d in [run_dir.join(WRITES), run_dir.join(EMPTY)] {
        std::fs::create_dir(&d).with_context(|| format!("{}", d.display()))?;
    }
    for (name, len) in [(LOG, 0u64), (GENERATION, 8)] {
        let p = run_dir.join(name);
        let f = std::fs::File::create(&p).with_context(|| format!("{}", p.display()))?;
        f.set_len(len).with_context(|| format!("{}", p.display()))?;
    }
    let os = |s: &str| OsString::from(s);
    let mut through = Vec::new();
    for p in passthrough {
        if p.as_os_str().as_bytes().contains(&b'\n') {
            bail!(
                "{}: a pass-through path with a newline cannot be given to the shim",
                p.display()
            );
        }
        if !through.is_empty() {
            through.push(b'\n');
        }
        through.extend_from_slice(p.as_os_str().as_bytes());
    }
    let env = vec![
        (os(ENV_PASSTHROUGH), OsStr::from_bytes(&through).to_owned()),
        (os(ENV_ROOT), root.as_os_str().to_owned()),
        (os(ENV_INDEX), ix.path().as_os_str().to_owned()),
        (os(ENV_RUN), run_dir.as_os_str().to_owned()),
        (os(ENV_STORE), store.root().as_os_str().to_owned()),
        (os(ENV_OWNER), os(&format!("{}:{}", owner.uid, owner.gid))),
        (os(ENV_DEV), os(&VIEW_DEV.to_string())),
        (os(ENV_CWD), cwd.as_os_str().to_owned()),
        (os(ENV_LIB), library.as_os_str().to_owned()),
    ];
    Ok(Prepared {
        run_dir,
        root: root.to_path_buf(),
        library: library.to_path_buf(),
        owner,
        cwd: cwd.to_path_buf(),
        env,
    })
}

/// The environment of a program run with the shim in front of the supervisor: the shim's
/// variables (its view reporting the supervisor's device `dev`), the net flag, the counter
/// of calls the shim answers (`served`, see [`ServedCounter`]), and the library preloaded.
#[cfg(target_os = "linux")]
pub fn env_with_supervisor(
    prep: &Prepared,
    dev: u64,
    served: Option<&ServedCounter>,
    farm: Option<&Path>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = prep
        .env
        .iter()
        .filter(|(k, _)| k != ENV_DEV)
        .cloned()
        .collect();
    env.push((ENV_DEV.into(), dev.to_string().into()));
    env.push((ENV_NET.into(), "1".into()));
    if let Some(farm) = farm {
        // No mounts: the view's directories are the farm's (`vrift_shim::env::FARM`).
        env.push((ENV_FARM.into(), farm.as_os_str().to_owned()));
    }
    if let Some(c) = served {
        env.push((ENV_SERVED.into(), c.path.clone().into_os_string()));
    }
    let mut preload = prep.library.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    env.push(("LD_PRELOAD".into(), preload));
    env
}

/// The 8-byte file the shim counts the calls it answered in (shim+supervisor). It lives in
/// /dev/shm, since the store (and the run directory in it) is read-only to the program;
/// removed when dropped (or by the recovery of a killed run). Only for the run's summary: where /dev/shm is missing, nothing
/// is counted.
#[cfg(target_os = "linux")]
pub struct ServedCounter {
    path: PathBuf,
}

#[cfg(target_os = "linux")]
impl ServedCounter {
    /// The counter of the run whose directory is `run_dir` (named after it, so that the
    /// recovery of a killed run can remove it: [`ServedCounter::remove_left`]).
    pub fn create(run_dir: &Path) -> Option<ServedCounter> {
        let path = Self::path_for(run_dir)?;
        let f = std::fs::File::create_new(&path).ok()?;
        f.set_len(8).ok()?;
        Some(ServedCounter { path })
    }

    fn path_for(run_dir: &Path) -> Option<PathBuf> {
        let id = run_dir.file_name()?.to_str()?;
        Some(PathBuf::from(format!("/dev/shm/vrift-shim-served-{id}")))
    }

    /// Remove the counter a killed run left behind, if any.
    pub fn remove_left(run_dir: &Path) {
        if let Some(p) = Self::path_for(run_dir) {
            let _ = std::fs::remove_file(p);
        }
    }

    pub fn count(&self) -> u64 {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| {
                b.get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            })
            .unwrap_or(0)
    }
}

#[cfg(target_os = "linux")]
impl Drop for ServedCounter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Is the ELF file at `path` dynamically linked (has a PT_INTERP program header)?
#[cfg(not(target_os = "macos"))]
pub fn is_dynamic(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let bad = || anyhow::anyhow!("{}: not an ELF executable", path.display());
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        // A script: its interpreter decides, and the kernel runs that with the shim loaded.
        return Ok(bytes.starts_with(b"#!"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        bail!(
            "{}: only 64-bit little-endian ELF is supported",
            path.display()
        );
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
    };
    let phoff = u64_at(32).ok_or_else(bad)? as usize;
    let phentsize = u16_at(54).ok_or_else(bad)? as usize;
    let phnum = u16_at(56).ok_or_else(bad)? as usize;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = bytes
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
            .ok_or_else(bad)?;
        if p_type == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Will dyld load the shim into the program at `path`? Every macOS program is dynamically
/// linked, but dyld strips DYLD_INSERT_LIBRARIES from one under System Integrity Protection
/// (the system's own directories), and a script run by such an interpreter loses it too.
#[cfg(target_os = "macos")]
pub fn is_dynamic(path: &Path) -> Result<bool> {
    const PROTECTED: [&str; 6] = [
        "/bin/",
        "/sbin/",
        "/usr/bin/",
        "/usr/sbin/",
        "/usr/libexec/",
        "/System/",
    ];
    let protected = |p: &Path| {
        let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        PROTECTED.iter().any(|d| p.starts_with(d))
    };
    if protected(path) {
        return Ok(false);
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let interpreter = bytes
        .strip_prefix(b"#!")
        .and_then(|rest| rest.split(|&b| b == b'\n').next())
        .and_then(|line| {
            line.split(|b| b.is_ascii_whitespace())
                .find(|w| !w.is_empty())
        });
    Ok(match interpreter {
        Some(i) => !protected(Path::new(OsStr::from_bytes(i))),
        None => true,
    })
}

/// `p` with "." and ".." applied lexically (the view's root and cwd are canonical).
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where `program` is: in the view (its blob, symlinks of the view followed as the kernel
/// would, also out of the view), or on the real PATH.
fn locate(store: &Store, manifest: &Manifest, prep: &Prepared, program: &OsStr) -> Result<PathBuf> {
    let shown = Path::new(program).display().to_string();
    let failed = |errno: i32| -> anyhow::Error {
        launch::ExecFailed {
            program: shown.clone(),
            error: std::io::Error::from_raw_os_error(errno),
        }
        .into()
    };
    let by_path = program.as_bytes().contains(&b'/');
    let candidates: Vec<PathBuf> = if by_path {
        vec![lexical(&prep.cwd.join(program))]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    let view = View::new(prep.root.as_os_str().as_bytes(), prep.owner, vec![manifest])
        .map_err(|e| anyhow::anyhow!("{}: {e}", prep.root.display()))?;
    let cred = launcher_cred();
    let caller = Caller {
        cred: &cred,
        cwd: prep.cwd.as_os_str().as_bytes(),
        umask: 0,
        now_ns: 0,
    };
    for c in candidates {
        let real = if c.starts_with(&prep.root) {
            match view.exec(&caller, c.as_os_str().as_bytes()) {
                Ok(Routed::View(Exec {
                    content: Content::Blob(h),
                    ..
                })) => return Ok(store.blob_path(&h)),
                Ok(Routed::View(_)) => return Err(failed(libc::EACCES)),
                // A symlink of the view pointing out of it (a venv's python).
                Ok(Routed::Outside(p)) => PathBuf::from(OsString::from_vec(p)),
                Ok(Routed::OutsideBoth(..)) => c,
                Err(e) if e.0 == libc::ENOENT && !by_path => continue,
                Err(e) => return Err(failed(e.0)),
            }
        } else {
            c
        };
        match real.metadata() {
            Ok(m) if m.is_file() && m.mode() & 0o111 != 0 => return Ok(real),
            // Named by path and there, but not runnable: as a shell says it (126).
            Ok(_) if by_path => return Err(failed(libc::EACCES)),
            Err(e) if by_path && e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(failed(e.raw_os_error().unwrap_or(libc::EACCES)))
            }
            _ => {}
        }
    }
    // As a shell says it: "command not found", 127.
    Err(failed(libc::ENOENT))
}

/// The launcher's own identity, which the program will have: who may run what in the view.
fn launcher_cred() -> Cred {
    let uid = nix::unistd::geteuid().as_raw();
    Cred {
        uid,
        gid: nix::unistd::getegid().as_raw(),
        groups: supplementary_groups(),
        privileged: uid == 0,
    }
}

#[cfg(target_os = "linux")]
fn supplementary_groups() -> Vec<u32> {
    nix::unistd::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

/// macOS's group membership is the directory service's (nix offers no getgroups there):
/// the view's entries are the runner's own, so its primary group decides.
#[cfg(not(target_os = "linux"))]
fn supplementary_groups() -> Vec<u32> {
    Vec::new()
}

/// The program's command: the shim preloaded, the shim's variables set, started in the
/// view's directory (the kernel's cwd is the run's empty directory when the start directory
/// is in the view). A statically linked program is refused: the shim cannot see its calls.
pub fn command(
    store: &Store,
    manifest: &Manifest,
    prep: &Prepared,
    cmd: &[OsString],
) -> Result<Command> {
    let Some(program) = cmd.first() else {
        bail!("no program to run");
    };
    let exe = locate(store, manifest, prep, program)?;
    #[cfg(not(target_os = "macos"))]
    if !is_dynamic(&exe)? {
        bail!(
            "{}: statically linked, so the shim projection cannot serve its file calls \
             (run it with the supervisor projection instead)",
            Path::new(program).display()
        );
    }
    #[cfg(target_os = "macos")]
    if !is_dynamic(&exe)? {
        bail!(
            "{}: protected by System Integrity Protection (or run by an interpreter that \
             is), so dyld strips DYLD_INSERT_LIBRARIES and the shim cannot serve its file \
             calls (use a copy outside /bin, /usr/bin and /System, such as Homebrew's)",
            Path::new(program).display()
        );
    }
    // By its absolute path: the program may start in the run's empty directory.
    let mut c = Command::new(&exe);
    std::os::unix::process::CommandExt::arg0(&mut c, program);
    c.args(&cmd[1..]);
    let mut preload = prep.library.as_os_str().to_owned();
    if let Some(old) = std::env::var_os(PRELOAD).filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    c.env(PRELOAD, preload);
    for (k, v) in &prep.env {
        c.env(k, v);
    }
    if prep.cwd.starts_with(&prep.root) {
        c.current_dir(prep.run_dir.join(EMPTY));
    } else {
        c.current_dir(&prep.cwd);
    }
    Ok(c)
}

/// The run's new manifest: its change log replayed over `manifest`, every private copy
/// hashed into the store. `None` when the run changed nothing (its change log is empty):
/// the view is `manifest` as it was, and there is nothing to save.
pub fn harvest(store: &Store, manifest: &Manifest, prep: &Prepared) -> Result<Option<Manifest>> {
    let log_path = prep.run_dir.join(LOG);
    let len = std::fs::metadata(&log_path)
        .with_context(|| format!("{}", log_path.display()))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    replay_run(store, manifest, &prep.run_dir, &prep.root, prep.owner).map(Some)
}

/// The result of the shim run whose state is in `run_dir` (see [`harvest`]).
fn replay_run(
    store: &Store,
    manifest: &Manifest,
    run_dir: &Path,
    root: &Path,
    owner: Owner,
) -> Result<Manifest> {
    let log_path = run_dir.join(LOG);
    let bytes = std::fs::read(&log_path).with_context(|| format!("{}", log_path.display()))?;
    let records =
        runlog::decode_all(&bytes, 0).with_context(|| format!("{}", log_path.display()))?;
    let mut view = View::new(root.as_os_str().as_bytes(), owner, vec![manifest])
        .with_context(|| format!("{}: cannot make a view", root.display()))?;
    // As every process of the run made its view (the shim's `Shim::new`): each link
    // group's names one inode, so the records replay to the same view.
    for group in manifest.link_groups() {
        view.share_link_group(&group);
    }
    runlog::replay(&mut view, &records);
    // A regular file made by mknod in the view (`tar --xattrs` makes each file so before it
    // writes it) is the empty blob, which the result then names: the store must hold it
    // (the shim served it without, see its `open_content`).
    if records
        .iter()
        .any(|r| matches!(r.op, runlog::Op::Mknod { .. }))
    {
        store.insert_bytes(b"")?;
    }
    let mut done = std::collections::HashSet::new();
    for (DeltaId(id), _) in view.pending() {
        if !done.insert(id) {
            continue;
        }
        let p = run_dir.join(WRITES).join(id.to_string());
        let meta = std::fs::metadata(&p).with_context(|| format!("{}", p.display()))?;
        let ins = store.insert_file(&p)?;
        view.commit(
            DeltaId(id),
            ins.hash,
            ins.size,
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        );
    }
    let mut entries = view.flatten()?;
    if let Some(base) = view.layers().last() {
        base.follow_link_writes(&mut entries);
    }
    Ok(Manifest::from_entries(entries))
}

/// Rebuild the result of a shim run whose vrift was killed: its change log and private
/// copies are in its run directory, as they are at the end of every run.
pub fn recover(store: &Store, dir: &RunDir, rec: &RunRecord, base: Manifest) -> Result<Manifest> {
    let owner = Owner {
        uid: rec.owner_uid,
        gid: rec.owner_gid,
    };
    replay_run(store, &base, dir.path(), &rec.root, owner)
}

/// A whole run of `vrift run --projection shim`: prepare, start the program in `start`,
/// wait (passing termination signals on), harvest, save the result where the view's
/// destination says. Returns the exit status to give (128+N when killed by signal N). The
/// run has a run directory like every projection's (`crate::rundir`), so a run whose vrift
/// is killed is recovered by the next one.
pub fn run(store: &Store, spec: &ViewSpec, start: &Path, cmd: &[OsString]) -> Result<u8> {
    let library = find_library()?;
    let owner = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let through: Vec<PathBuf> = spec
        .passthrough
        .iter()
        .map(|(rel, _)| spec.root.join(OsStr::from_bytes(rel)))
        .collect();
    let run_dir = RunDir::create(store)?;
    let prepared = prepare(
        store,
        &spec.manifest,
        spec.origins.as_deref().map(Vec::as_slice),
        &spec.root,
        start,
        owner,
        &library,
        &through,
        run_dir.path(),
    )
    .and_then(|prep| Ok((command(store, &spec.manifest, &prep, cmd)?, prep)));
    let (command, prep) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // Nothing ran: the run leaves nothing behind.
            run_dir.remove();
            return Err(e);
        }
    };
    // What recovery needs if this vrift is killed: written before the program starts.
    // Linked or unsynced, like the other projections' (see `rundir::write_base`).
    rundir::write_base(store, run_dir.path(), &spec.manifest)?;
    RunRecord {
        version: RECORD_VERSION,
        projection: Kind::Shim,
        pid: std::process::id(),
        start_ticks: rundir::start_ticks(std::process::id()).unwrap_or(0),
        root: spec.root.clone(),
        owner_uid: owner.uid,
        owner_gid: owner.gid,
        dev: VIEW_DEV,
        passthrough: spec.passthrough.iter().map(|(p, _)| p.clone()).collect(),
        destination: spec.destination.clone(),
    }
    .write(run_dir.path())?;
    let status = match start_and_wait(command) {
        Ok(s) => s,
        Err(e) => {
            #[cfg(target_os = "linux")]
            let nothing_ran = e.is::<launch::ExecFailed>() || e.is::<launch::SetupFailed>();
            #[cfg(not(target_os = "linux"))]
            let nothing_ran = e.is::<launch::ExecFailed>();
            if nothing_ran {
                run_dir.remove();
            }
            return Err(e);
        }
    };
    let new = harvest(store, &spec.manifest, &prep).context("saving the run's changes")?;
    let saved = match new {
        Some(new) => crate::run::destination::save(store, &spec.manifest, &spec.destination, &new)?,
        None => crate::run::destination::Saved::Done,
    };
    run_dir.remove();
    if saved != crate::run::destination::Saved::Done && status == 0 {
        return Ok(1);
    }
    Ok(status)
}

/// Start `command` with no namespaces (its tree kept by a subreaper that ends with vrift),
/// pass termination signals on to it, and wait for it.
fn start_and_wait(command: Command) -> Result<u8> {
    signals::block_forwarded().context("blocking signals")?;
    #[cfg(target_os = "linux")]
    let mut child = {
        let plan = launch::LaunchPlan {
            ns: None,
            mounts: Vec::new(),
            filter: None,
        };
        launch::spawn(command, plan, |_| {})?
    };
    // No subreaper off Linux: the program is started as it is.
    #[cfg(not(target_os = "linux"))]
    let mut child = {
        let mut command = command;
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .spawn()
            .map_err(|error| launch::ExecFailed { program, error })?
    };
    let pid = child.id() as i32;
    std::thread::Builder::new()
        .name("vrift-signals".into())
        .spawn(move || {
            while let Ok((sig, from_process)) = signals::wait_forwarded() {
                if from_process {
                    signals::kill(pid, sig);
                }
            }
        })
        .context("starting the signal thread")?;
    let status = child.wait().context("waiting for the program")?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128u8.wrapping_add(s as u8),
        _ => 1,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_programs_are_told_apart() {
        assert!(is_dynamic(Path::new("/bin/ls")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(is_dynamic(&script).unwrap());
        let junk = dir.path().join("j");
        std::fs::write(&junk, "hello").unwrap();
        assert!(!is_dynamic(&junk).unwrap());
        let e = is_dynamic(&dir.path().join("none")).unwrap_err();
        assert!(e.to_string().contains("none"));
        if Path::new("/bin/busybox").exists() {
            assert!(!is_dynamic(Path::new("/bin/busybox")).unwrap());
        }
    }
}
