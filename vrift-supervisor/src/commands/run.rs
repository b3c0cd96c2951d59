//! `vrift run -- CMD`: run a program inside the view of a manifest.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::projection::Choice;
use crate::run::{self as life, RunOptions};

/// Which view a program runs in (shared by `vrift run` and `vrift trace`).
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// Manifest to run over (default: the project's vrift.manifest, refreshed from disk, or
    /// a transient ingest of the current directory when there is none).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Put the view at this absolute path (which need not exist). CMD starts in the current
    /// directory (at the mount when that lies inside it but not in the view); see -C.
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// Stack manifest M under the view (repeatable, lowest first): the program sees the
    /// merged tree, writes land in the top layer only. With --isolate, the bases are the
    /// program's root file system instead.
    #[arg(long = "base", value_name = "M")]
    pub bases: Vec<PathBuf>,
    /// Start CMD in DIR (a path as the program sees it; relative to the current directory).
    #[arg(short = 'C', long = "cwd", value_name = "DIR")]
    pub start: Option<PathBuf>,
    #[command(flatten)]
    pub isolate: crate::run::isolate::IsolateArgs,
    /// How the view reaches the program (`auto`: the best one that works here; `-v`, or
    /// VRIFT_LOG=info, says which ran and why).
    #[arg(long, value_enum, default_value = "auto", env = "VRIFT_PROJECTION")]
    pub projection: Choice,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<OsString>,
}

impl ViewArgs {
    pub fn into_options(self, trace: bool) -> RunOptions {
        RunOptions {
            manifest: self.manifest,
            mount: self.mount,
            projection: self.projection,
            cmd: self.cmd,
            trace,
            bases: self.bases,
            isolate: self.isolate,
            start: self.start,
            session: None,
        }
    }
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  vrift run -- make
  vrift run --manifest env.manifest --mount /opt/env -- ./build.sh
  vrift run --manifest go.manifest --mount /opt/go -C src -- go build
  vrift run --isolate -- python3 untrusted.py
  vrift run --isolate --base busybox.manifest --manifest app.manifest -- /bin/sh
  vrift run --isolate --net --memory 512M --pids 64 -- ./server

Exit status: the program's (128+N when killed by signal N; 127 not found, 126 not
runnable); 1 when vrift itself fails or the result could not be saved.")]
pub struct Args {
    #[command(flatten)]
    pub session: crate::session::enter::Args,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Write a JSON summary of the run to FILE (`-` for stderr; stdout stays the
    /// program's): its exit status, wall time, view and options.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(mut args: Args) -> Result<ExitCode> {
    // A manifest hash that is not a file is pulled from the default remote when needed.
    args.view.manifest = super::remote::resolve_manifest_arg(args.view.manifest.take())?;
    let summary = args.json.as_ref().map(|_| {
        serde_json::json!({
            "command": args.view.cmd.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "manifest": args.view.manifest.as_ref().map(|p| p.display().to_string()),
            "mount": args.view.mount.as_ref().map(|p| p.display().to_string()),
            "bases": args.view.bases.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "isolate": args.view.isolate.isolate,
            "projection_asked": format!("{:?}", args.view.projection).to_lowercase(),
        })
    });
    let started = std::time::Instant::now();
    let mut opts = args.view.into_options(false);
    opts.session = args.session.into_options()?;
    let finished = life::run(opts)?;
    if let (Some(path), Some(mut summary)) = (&args.json, summary) {
        summary["status"] = finished.status.into();
        summary["wall_ms"] = (started.elapsed().as_secs_f64() * 1000.0).into();
        let text = summary.to_string() + "\n";
        if path.as_os_str() == "-" {
            eprint!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("--json {}", path.display()))?;
        }
    }
    Ok(ExitCode::from(finished.status))
}
