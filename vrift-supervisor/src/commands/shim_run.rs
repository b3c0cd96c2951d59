//! `vrift shim-run` (hidden): run a program under the interposition shim projection over a
//! manifest file, and save the run's result into that file. A test and measurement entry
//! until `vrift run --projection shim` takes its place.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;
use vrift_common::vfs::Owner;

use crate::projection_shim as shim;

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
    let manifest = Manifest::load(&args.manifest)?;
    let library = shim::find_library()?;
    let owner = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let prep = shim::prepare(
        &store,
        &manifest,
        &args.mount,
        &args.mount,
        owner,
        &library,
        &[],
    )?;
    let result = (|| {
        let mut cmd = shim::command(&store, &manifest, &prep, &args.cmd)?;
        let status = cmd
            .status()
            .with_context(|| format!("{}", PathBuf::from(&args.cmd[0]).display()))?;
        let new = shim::harvest(&store, &manifest, &prep).context("saving the run's changes")?;
        if new.hash() != manifest.hash() {
            new.save_atomic(&args.manifest)?;
            store.register_root(&args.manifest)?;
        }
        Ok::<_, anyhow::Error>(match (status.code(), status.signal()) {
            (Some(c), _) => c as u8,
            (None, Some(s)) => 128u8.wrapping_add(s as u8),
            _ => 1,
        })
    })();
    shim::finish(&prep);
    Ok(ExitCode::from(result?))
}
