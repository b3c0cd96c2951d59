//! `vrift shim-run` (hidden): run a program under the interposition shim projection over a
//! manifest file, and save the run's result into that file. A test and measurement entry
//! until `vrift run --projection shim` takes its place.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use crate::projection_shim as shim;
use crate::view::spec::{Destination, ViewSpec};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The manifest to run over; the run's changes are saved back into it.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Put the view at this absolute path (which need not exist) and start there.
    #[arg(long)]
    pub mount: PathBuf,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<OsString>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if !args.mount.is_absolute() {
        bail!("--mount {}: must be an absolute path", args.mount.display());
    }
    let store = Store::open_default()?;
    let _lock = store.lock_shared()?;
    let spec = ViewSpec {
        manifest: Manifest::load(&args.manifest)?,
        root: args.mount.clone(),
        passthrough: Vec::new(),
        destination: Destination::ManifestFile(args.manifest.clone()),
        stacked: None,
        origins: None,
    };
    let status = shim::run(&store, &spec, &args.mount, &args.cmd)?;
    Ok(ExitCode::from(status))
}
