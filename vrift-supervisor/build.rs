//! Builds the eBPF programs (../vrift-ebpf) for `bpfel-unknown-none` with aya-build, so the
//! `vrift` binary embeds them (see src/trace/ebpf.rs). That needs the nightly toolchain with
//! rust-src and bpf-linker; scripts/setup.sh installs both. When one is missing the build
//! stops with one message saying so, instead of a page of linker errors.
//!
//! `VRIFT_SKIP_EBPF=1` builds without the programs (then `vrift trace` reports that its
//! eBPF columns are unavailable because of it).
//!
//! For a target other than Linux it does nothing: `vrift trace` is Linux's, and the binary
//! embeds no programs there. aya-build is a build dependency on Linux hosts only (Cargo.toml).

use std::{env, process::ExitCode};
#[cfg(target_os = "linux")]
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

#[cfg(target_os = "linux")]
const SKIP_VAR: &str = "VRIFT_SKIP_EBPF";

fn main() -> ExitCode {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        println!("cargo:rerun-if-changed=build.rs");
        return ExitCode::SUCCESS;
    }
    build_ebpf()
}

/// A Linux target built on another host: aya-build is not there (see Cargo.toml).
#[cfg(not(target_os = "linux"))]
fn build_ebpf() -> ExitCode {
    eprintln!("\nerror: vrift's eBPF programs (vrift-ebpf) are built on a Linux host\n");
    ExitCode::FAILURE
}

#[cfg(target_os = "linux")]
fn build_ebpf() -> ExitCode {
    println!("cargo:rerun-if-env-changed={SKIP_VAR}");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("crate lives in the workspace");
    let ebpf_dir = workspace.join("vrift-ebpf");
    let common_dir = workspace.join("vrift-ebpf-common");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let object = out_dir.join("vrift-ebpf");
    for path in [
        ebpf_dir.join("src"),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join("Cargo.lock"),
        common_dir.join("src"),
        common_dir.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    if env::var_os(SKIP_VAR).is_some_and(|v| v == "1") {
        println!("cargo:warning={SKIP_VAR}=1: building vrift without its eBPF programs");
        fs::write(&object, b"").expect("write empty eBPF object");
        return ExitCode::SUCCESS;
    }
    if let Err(problem) = check_prerequisites() {
        eprintln!(
            "\nerror: cannot build vrift's eBPF programs (vrift-ebpf): {problem}.\n\
             Run `bash scripts/setup.sh` once (it installs the nightly toolchain with rust-src \
             and bpf-linker), then build again.\n\
             (Or build without `vrift trace`'s eBPF columns: {SKIP_VAR}=1 cargo build.)\n"
        );
        return ExitCode::FAILURE;
    }

    // aya-build runs `cargo build --package vrift-ebpf` in the current directory, and
    // vrift-ebpf is its own workspace (excluded from this one).
    env::set_current_dir(&ebpf_dir).expect("enter vrift-ebpf");
    // aya-build turns every line the inner cargo prints into a build warning; keep it quiet
    // unless something fails (errors are still printed).
    env::set_var("CARGO_TERM_QUIET", "true");
    let package = aya_build::Package {
        name: "vrift-ebpf",
        root_dir: ebpf_dir.to_str().expect("UTF-8 workspace path"),
        ..Default::default()
    };
    if let Err(err) = aya_build::build_ebpf([package], aya_build::Toolchain::Nightly) {
        eprintln!("\nerror: building vrift's eBPF programs failed: {err:#}\n");
        return ExitCode::FAILURE;
    }
    if !object.is_file() {
        eprintln!(
            "\nerror: the eBPF build finished but {} is missing\n",
            object.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Checks what aya-build needs, so a missing piece is named rather than shown as a wall of
/// compiler or linker errors.
#[cfg(target_os = "linux")]
fn check_prerequisites() -> Result<(), String> {
    let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    if !ok(Command::new("rustup").arg("--version")) {
        return Err("rustup is not on PATH".into());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .ok_or("the nightly toolchain is not installed")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    let core_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !core_src.is_dir() {
        return Err("the nightly toolchain lacks the rust-src component".into());
    }
    if !ok(Command::new("bpf-linker").arg("--version")) {
        return Err("bpf-linker is not on PATH (or does not run)".into());
    }
    Ok(())
}
