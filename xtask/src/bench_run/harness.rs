//! The pieces every workload shares: required tools, the release build of vrift, the ways
//! of running a program (natively, under vrift, proot or bwrap) and timing one run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Fail with a pointer to the set-up script unless every program in `tools` is on PATH.
pub fn require_tools(tools: &[&str]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing {} (needed by the benchmarks): run scripts/setup.sh",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The full path of `tool` on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Build vrift in release mode and return the binary's path.
pub fn build_vrift(workspace: &Path) -> Result<PathBuf> {
    eprintln!("bench: building vrift (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--quiet", "--release", "-p", "vrift-supervisor"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p vrift-supervisor failed");
    }
    let bin = target_dir(workspace).join("release/vrift");
    if !bin.is_file() {
        bail!("{}: not found after the build", bin.display());
    }
    Ok(bin)
}

/// The workspace's target directory (CARGO_TARGET_DIR wins).
pub fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

/// How a program is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Native,
    /// `vrift run --projection overlay`: the kernel serves the view.
    VriftOverlay,
    /// `vrift run --projection supervisor`: the seccomp supervisor over a link farm.
    Vrift,
    /// `vrift trace`: the same run with eBPF tracing and the supervisor's counts.
    VriftTrace,
    Proot,
    Bwrap,
}

impl Runner {
    /// The name `--without` takes.
    pub fn cli_name(self) -> &'static str {
        match self {
            Runner::VriftTrace => "vrift-trace",
            Runner::VriftOverlay => "vrift-overlay",
            Runner::Vrift => "vrift-supervisor",
            r => r.name(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runner::Native => "native",
            Runner::VriftOverlay => "vrift overlay",
            Runner::Vrift => "vrift supervisor",
            Runner::VriftTrace => "vrift trace",
            Runner::Proot => "proot",
            Runner::Bwrap => "bwrap",
        }
    }
}

/// Where a program sees its tree.
#[derive(Clone, Debug)]
pub enum Place {
    /// At its real directory: vrift ingests it (`vrift run` there), proot binds it onto
    /// itself (`proot -b DIR`), so every runner uses the same paths.
    InPlace(PathBuf),
    /// At `mount`, a path that does not exist on disk: vrift serves `manifest` there
    /// (`--manifest --mount`), proot binds `real` there; native and bwrap use `real`.
    Mounted {
        real: PathBuf,
        manifest: PathBuf,
        mount: PathBuf,
    },
}

impl Place {
    /// The directory the program starts in (and names its files under) for `runner`.
    pub fn dir(&self, runner: Runner) -> &Path {
        match self {
            Place::InPlace(d) => d,
            Place::Mounted { real, mount, .. } => match runner {
                Runner::Vrift | Runner::VriftOverlay | Runner::VriftTrace | Runner::Proot => mount,
                Runner::Native | Runner::Bwrap => real,
            },
        }
    }
}

/// Everything needed to wrap a program for each runner.
pub struct Wrappers {
    pub vrift: PathBuf,
    pub vrift_home: PathBuf,
}

impl Wrappers {
    /// The command running `argv` in `place` under `runner`.
    pub fn command(&self, runner: Runner, place: &Place, argv: &[OsString]) -> Command {
        let dir = place.dir(runner);
        let mut cmd = match runner {
            Runner::Native => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]).current_dir(dir);
                c
            }
            Runner::Vrift | Runner::VriftOverlay | Runner::VriftTrace => {
                let mut c = Command::new(&self.vrift);
                c.arg(if runner == Runner::VriftTrace {
                    "trace"
                } else {
                    "run"
                });
                c.arg("--projection")
                    .arg(if runner == Runner::VriftOverlay {
                        "overlay"
                    } else {
                        "supervisor"
                    });
                match place {
                    Place::InPlace(d) => {
                        c.current_dir(d);
                    }
                    Place::Mounted {
                        manifest, mount, ..
                    } => {
                        c.arg("--manifest").arg(manifest).arg("--mount").arg(mount);
                    }
                }
                c.arg("--").args(argv);
                c
            }
            Runner::Proot => {
                let mut c = Command::new("proot");
                match place {
                    Place::InPlace(d) => c.arg("-b").arg(d),
                    Place::Mounted { real, mount, .. } => {
                        let mut spec = real.as_os_str().to_owned();
                        spec.push(":");
                        spec.push(mount);
                        c.arg("-b").arg(spec)
                    }
                };
                c.arg("-w").arg(dir).args(argv);
                c
            }
            Runner::Bwrap => {
                let mut c = Command::new("bwrap");
                c.args(["--bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                    .arg("--chdir")
                    .arg(dir)
                    .args(argv);
                c
            }
        };
        cmd.env("VRIFT_HOME", &self.vrift_home);
        cmd
    }
}

/// `vrift init` in `dir` unless it already has a vrift.manifest, so each run refreshes it by
/// a stat check as a user's would.
pub fn ensure_init(w: &Wrappers, dir: &Path) -> Result<()> {
    if dir.join("vrift.manifest").is_file() {
        return Ok(());
    }
    run_step(
        Command::new(&w.vrift)
            .arg("init")
            .current_dir(dir)
            .env("VRIFT_HOME", &w.vrift_home),
    )
    .with_context(|| format!("vrift init in {}", dir.display()))
    .map(drop)
}

/// One finished run: its wall time and what it printed.
pub struct Timed {
    pub wall: Duration,
    pub stdout: String,
}

/// Run `cmd` to completion, timing it; a failure is an error carrying the command line
/// and the end of its stderr.
pub fn run_timed(cmd: &mut Command) -> Result<Timed> {
    let line = format!("{cmd:?}");
    cmd.stdin(Stdio::null());
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {line}"))?;
    let wall = start.elapsed();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{line} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(Timed {
        wall,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// Run a set-up step (not timed) and fail with its output if it fails.
pub fn run_step(cmd: &mut Command) -> Result<String> {
    Ok(run_timed(cmd)?.stdout)
}
