//! `vrift run -- CMD`: run a program inside the view of a manifest.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::projection::Choice;
use crate::run::{self as life, RunOptions};

/// Which view a program runs in (shared by `vrift run` and `vrift trace`).
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// Manifest to run over (default: the project's vrift.manifest, refreshed from disk, or
    /// a transient ingest of the current directory when there is none).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Put the view at this absolute path (which need not exist) and start CMD there.
    #[arg(long)]
    pub mount: Option<PathBuf>,
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
            session: None,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub session: crate::session::enter::Args,
    #[command(flatten)]
    pub view: ViewArgs,
}

pub fn run(mut args: Args) -> Result<ExitCode> {
    // A manifest hash that is not a file is pulled from the default remote when needed.
    args.view.manifest = super::remote::resolve_manifest_arg(args.view.manifest.take())?;
    let mut opts = args.view.into_options(false);
    opts.session = args.session.into_options()?;
    let finished = life::run(opts)?;
    Ok(ExitCode::from(finished.status))
}
