//! The first steps of every run, on every platform: the store, held shared for the whole
//! run, the caller's directory, and the recovery of runs whose vrift was killed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vrift_common::store::{Store, StoreError, StoreLock};

use super::recover;

pub struct Begun {
    pub store: Store,
    /// gc --delete waits while it is held, so no blob the run relies on disappears.
    pub lock: StoreLock,
    pub cwd: PathBuf,
}

pub fn begin() -> Result<Begun> {
    let store = Store::open_default()?;
    let lock = store.lock_shared().map_err(|e| {
        let read_only = matches!(&e, StoreError::Io { source, .. }
            if source.raw_os_error() == Some(libc::EROFS));
        if read_only {
            anyhow::anyhow!(
                "{e}: the store is read-only here, as it is inside a vrift run (vrift inside \
                 vrift cannot serve a view: the outer run keeps the store and its mounts \
                 read-only)"
            )
        } else {
            e.into()
        }
    })?;
    let cwd = std::env::current_dir().context("current directory")?;
    recover::recover_interrupted(&store);
    Ok(Begun { store, lock, cwd })
}
