//! Choosing the view a run projects (the `--manifest` file, or the project refreshed or
//! ingested on the fly), and making the state machine's [`View`] of it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;
use vrift_common::vfs::Owner;

use super::destination::Destination;
use super::project;
use super::state::ViewOf;

/// What a pass-through path is on disk: a directory or a file to mount over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthroughKind {
    Dir,
    File,
}

/// The view a run projects.
pub struct ViewSpec {
    pub manifest: Manifest,
    pub root: PathBuf,
    /// Real paths excluded by the filters, which pass through to the real tree.
    pub passthrough: Vec<(RelPath, PassthroughKind)>,
    pub destination: Destination,
}

impl ViewSpec {
    /// The real directory pass-through paths come from.
    pub fn real_dir(&self) -> &Path {
        match &self.destination {
            Destination::Project { dir, .. } => dir,
            Destination::ManifestFile(_) => &self.root,
        }
    }
}

pub fn choose(
    store: &Store,
    manifest: Option<&Path>,
    mount: Option<&Path>,
    cwd: &Path,
) -> Result<ViewSpec> {
    if let Some(mount) = mount {
        if !mount.is_absolute() {
            bail!("--mount {}: must be an absolute path", mount.display());
        }
    }
    if let Some(path) = manifest {
        let manifest = Manifest::load(path)?;
        let path = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
        return Ok(ViewSpec {
            manifest,
            root: mount.map_or_else(|| cwd.to_path_buf(), Path::to_path_buf),
            passthrough: Vec::new(),
            destination: Destination::ManifestFile(path),
        });
    }
    let prepared = project::prepare(store, cwd)?;
    Ok(ViewSpec {
        manifest: prepared.manifest,
        root: mount.map_or_else(|| prepared.root.clone(), Path::to_path_buf),
        passthrough: prepared.passthrough,
        destination: Destination::Project {
            dir: prepared.root,
            has_manifest: prepared.persistent,
        },
    })
}

/// The state machine's view of `manifest` at `root`, owned by `owner`, reporting `dev`.
pub fn make(root: &Path, owner: Owner, manifest: Manifest, dev: u64) -> Result<ViewOf> {
    Ok(
        ViewOf::new(root.as_os_str().as_bytes(), owner, vec![Arc::new(manifest)])
            .with_context(|| format!("{}: cannot make a view", root.display()))?
            .with_dev(dev),
    )
}
