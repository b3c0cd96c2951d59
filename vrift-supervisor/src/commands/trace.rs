//! `vrift trace -- CMD`: run CMD as `vrift run` would and report its syscalls. Linux's
//! (eBPF, and the supervisor's classes); elsewhere it says so.

use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(target_os = "linux")]
use anyhow::Context;
use anyhow::Result;

use super::run::ViewArgs;
#[cfg(target_os = "linux")]
use crate::run as life;
#[cfg(target_os = "linux")]
use crate::trace::report::{chrome_trace, Report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a timeline per process and thread in Chrome's trace-event format (open it in
    /// Perfetto or chrome://tracing).
    #[arg(long, value_name = "FILE")]
    pub chrome_trace: Option<PathBuf>,
    #[command(flatten)]
    pub view: ViewArgs,
}

#[cfg(not(target_os = "linux"))]
pub fn run(args: Args) -> Result<ExitCode> {
    let _ = (args.json, args.chrome_trace, args.view);
    anyhow::bail!(
        "vrift trace needs Linux (eBPF and seccomp user notification); this is {}",
        std::env::consts::OS
    )
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> Result<ExitCode> {
    let command: Vec<String> = args
        .view
        .cmd
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let finished = life::run(args.view.into_options(true))?;
    let traced = finished.traced.context("the run was not traced")?;
    let report = Report::build(
        command,
        finished.status,
        traced.wall.as_nanos() as u64,
        traced.projection.name(),
        &traced.ebpf,
        traced.served.as_deref(),
    );
    eprint!("{}", report.to_text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("{}", path.display()))?;
    }
    if let Some(path) = &args.chrome_trace {
        let data = traced
            .ebpf
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{}: no timeline without eBPF ({e})", path.display()))?;
        std::fs::write(path, serde_json::to_vec(&chrome_trace(data))?)
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(ExitCode::from(finished.status))
}
