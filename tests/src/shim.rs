//! Helpers for the interposition shim's end-to-end tests (tests/tests/shim.rs): the built
//! library, `vrift shim-run`, and C programs built as ordinary dynamic executables.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{require_tool, run_expect, vrift_bin, Env};

/// The shim library built beside the `vrift` binary.
pub fn shim_lib() -> PathBuf {
    let lib = vrift_bin().with_file_name("libvrift_shim.so");
    assert!(
        lib.exists(),
        "{} not built: run `cargo build --workspace --release`",
        lib.display()
    );
    lib
}

/// `vrift shim-run --manifest M --mount MOUNT -- CMD...`, started in `cwd`.
pub fn shim_run(env: &Env, cwd: &Path, manifest: &Path, mount: &Path, cmd: &[&str]) -> Command {
    env.vrift(cwd, &shim_args(manifest, mount, cmd))
}

/// [`shim_run`] as an ordinary user (see [`Env::vrift_as_user`]).
pub fn shim_run_as_user(
    env: &Env,
    cwd: &Path,
    manifest: &Path,
    mount: &Path,
    cmd: &[&str],
) -> Command {
    env.vrift_as_user(cwd, &shim_args(manifest, mount, cmd))
}

fn shim_args<'a>(manifest: &'a Path, mount: &'a Path, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "shim-run",
        "--manifest",
        manifest.to_str().unwrap(),
        "--mount",
        mount.to_str().unwrap(),
        "--",
    ];
    a.extend_from_slice(cmd);
    a
}

/// The names of the dynamic symbols `lib` defines (`nm -D --defined-only`).
pub fn defined_symbols(lib: &Path) -> Vec<String> {
    require_tool("nm");
    let out = run_expect(
        Command::new("nm").args(["-D", "--defined-only"]).arg(lib),
        true,
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect()
}

/// The symbols `bin` needs from elsewhere (`nm -D --undefined-only`).
pub fn undefined_symbols(bin: &Path) -> Vec<String> {
    require_tool("nm");
    let out = run_expect(
        Command::new("nm").args(["-D", "--undefined-only"]).arg(bin),
        true,
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect()
}

/// A FIFO at `p`.
pub fn fifo(p: &Path) {
    crate::mkfifo(p);
}
