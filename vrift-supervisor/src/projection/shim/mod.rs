//! The shim projection's launcher: no mounts, no namespaces, no seccomp. The program runs
//! with the interposition shim (`vrift-shim`, loaded through LD_PRELOAD) serving the view
//! inside its own processes.
//!
//! Three steps, each a plain function so any front end (the `Projection` seam, the hidden
//! `vrift shim-run` entry the tests use) can drive them:
//! 1. [`prepare`]: the manifest's index (cached in the store), the run directory (change log,
//!    generation counter, private copies, an empty directory) and the environment;
//! 2. [`command`]: the program to start, refused with a clear message when it is statically
//!    linked (the shim would see none of its calls);
//! 3. [`harvest`]: replay the run's change log, hash the private copies into the store, and
//!    return the run's new manifest for the usual write-back.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use vrift_common::index;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_common::runlog;
use vrift_common::store::Store;
use vrift_common::vfs::{DeltaId, Owner, View};

/// Where shim runs keep their state, under the store's root.
pub const RUNS: &str = "shim-runs";
/// The library's file name, looked for beside the `vrift` executable.
pub const LIBRARY: &str = "libvrift_shim.so";
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
const LOG: &str = "changes.log";
const GENERATION: &str = "generation";
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

/// Make the run's directory and index, and the program's environment.
pub fn prepare(
    store: &Store,
    manifest: &Manifest,
    root: &Path,
    cwd: &Path,
    owner: Owner,
    library: &Path,
    passthrough: &[PathBuf],
) -> Result<Prepared> {
    if !root.is_absolute() {
        bail!(
            "{}: the view's root must be an absolute path",
            root.display()
        );
    }
    let ix = index::cached(store, manifest)?;
    let runs = store.root().join(RUNS);
    std::fs::create_dir_all(&runs).with_context(|| format!("{}", runs.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_dir = runs.join(format!("{}-{stamp}", std::process::id()));
    for d in [run_dir.clone(), run_dir.join(WRITES), run_dir.join(EMPTY)] {
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

/// Is the ELF file at `path` dynamically linked (has a PT_INTERP program header)?
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

/// Where `program` is: in the view (its blob), or on the real PATH.
fn locate(store: &Store, manifest: &Manifest, prep: &Prepared, program: &OsStr) -> Result<PathBuf> {
    let shown = Path::new(program).display().to_string();
    let candidates: Vec<PathBuf> = if program.as_bytes().contains(&b'/') {
        vec![lexical(&prep.cwd.join(program))]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    for c in candidates {
        if let Ok(rel) = c.strip_prefix(&prep.root) {
            let rel = rel.as_os_str().as_bytes();
            match manifest.get(rel) {
                Some(e) if e.kind == EntryKind::File => return Ok(store.blob_path(&e.hash)),
                Some(_) => bail!("{}: not a regular file in the view", c.display()),
                None => continue,
            }
        }
        if c.metadata()
            .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        {
            return Ok(c);
        }
    }
    bail!("{shown}: program not found")
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
    if !is_dynamic(&exe)? {
        bail!(
            "{}: statically linked, so the shim projection cannot serve its file calls \
             (run it with the supervisor projection instead)",
            Path::new(program).display()
        );
    }
    // By its absolute path: the program may start in the run's empty directory.
    let mut c = Command::new(&exe);
    std::os::unix::process::CommandExt::arg0(&mut c, program);
    c.args(&cmd[1..]);
    let mut preload = prep.library.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    c.env("LD_PRELOAD", preload);
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
/// hashed into the store. The run directory is left for [`finish`].
pub fn harvest(store: &Store, manifest: &Manifest, prep: &Prepared) -> Result<Manifest> {
    let log_path = prep.run_dir.join(LOG);
    let bytes = std::fs::read(&log_path).with_context(|| format!("{}", log_path.display()))?;
    let records =
        runlog::decode_all(&bytes, 0).with_context(|| format!("{}", log_path.display()))?;
    let mut view = View::new(prep.root.as_os_str().as_bytes(), prep.owner, vec![manifest])
        .with_context(|| format!("{}: cannot make a view", prep.root.display()))?;
    runlog::replay(&mut view, &records);
    let mut done = std::collections::HashSet::new();
    for (DeltaId(id), _) in view.pending() {
        if !done.insert(id) {
            continue;
        }
        let p = prep.run_dir.join(WRITES).join(id.to_string());
        let meta = std::fs::metadata(&p).with_context(|| format!("{}", p.display()))?;
        let ins = store.insert_file(&p)?;
        view.commit(
            DeltaId(id),
            ins.hash,
            ins.size,
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        );
    }
    Ok(Manifest::from_entries(view.flatten()?))
}

/// A whole run of `vrift run --projection shim`: prepare, start the program in `start`,
/// wait, harvest, save the result where the view's destination says. Returns the exit
/// status to give (128+N when killed by signal N).
pub fn run(
    store: &Store,
    spec: &crate::view::spec::ViewSpec,
    start: &Path,
    cmd: &[OsString],
) -> Result<u8> {
    use std::os::unix::process::ExitStatusExt;
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
    let prep = prepare(
        store,
        &spec.manifest,
        &spec.root,
        start,
        owner,
        &library,
        &through,
    )?;
    let result = (|| {
        let mut c = command(store, &spec.manifest, &prep, cmd)?;
        let status = c
            .status()
            .with_context(|| format!("{}", Path::new(&cmd[0]).display()))?;
        let new = harvest(store, &spec.manifest, &prep).context("saving the run's changes")?;
        crate::run::destination::save(store, &spec.manifest, &spec.destination, &new)?;
        Ok(match (status.code(), status.signal()) {
            (Some(c), _) => c as u8,
            (None, Some(s)) => 128u8.wrapping_add(s as u8),
            _ => 1,
        })
    })();
    finish(&prep);
    result
}

/// Remove the run's directory.
pub fn finish(prep: &Prepared) {
    if let Err(e) = std::fs::remove_dir_all(&prep.run_dir) {
        tracing::warn!("{}: {e}", prep.run_dir.display());
    }
}

#[cfg(test)]
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
