//! What a projection is given: the view a run projects, where its result goes, and which
//! projection serves it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::vfs::Owner;

use super::state::ViewOf;

/// The projections vrift has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Overlay,
    Supervisor,
    /// The interposition shim alone (`crate::projection_shim`), started outside the
    /// `Projection` seam: it has no mounts and no listener.
    Shim,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Overlay => "overlay",
            Kind::Supervisor => "supervisor",
            Kind::Shim => "shim",
        }
    }
}

/// Where a run's changes go when it ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Destination {
    /// A project directory: changes are written back to the real tree, and its
    /// vrift.manifest (if it has one) refreshed.
    Project { dir: PathBuf, has_manifest: bool },
    /// A manifest file given with --manifest: it is replaced atomically by the new one.
    ManifestFile(PathBuf),
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Project { dir, .. } => dir.display().to_string(),
            Destination::ManifestFile(p) => p.display().to_string(),
        }
    }
}

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
    /// `--base`: the manifests stacked under the view's own (`manifest` is then the merged
    /// tree).
    pub stacked: Option<Stacked>,
    /// Where each entry of `manifest` came from on disk, when the run just ingested it from
    /// the project (see `vrift_common::origin`): the shim reports those inode numbers and
    /// ctimes for the entries the run leaves unchanged. As the shim's index holds them:
    /// `vrift_common::index::origins_section`, 16 bytes per entry in entry order.
    pub origins: Option<Arc<Vec<u8>>>,
}

/// A view over `--base` layers.
pub struct Stacked {
    /// The base manifests merged (lowest first, as the layers of a view merge).
    pub base: Manifest,
    /// The view's own manifest (the top layer), as the run started.
    pub top: Manifest,
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

/// The state machine's view of `manifest` at `root`, owned by `owner`, reporting `dev`. The
/// names of each of the manifest's hard-link groups are one inode in it (one link count,
/// and a write through one name seen through the others), as on disk.
pub fn make(root: &Path, owner: Owner, manifest: Manifest, dev: u64) -> Result<ViewOf> {
    let manifest = Arc::new(manifest);
    let mut view = ViewOf::new(root.as_os_str().as_bytes(), owner, vec![manifest.clone()])
        .with_context(|| format!("{}: cannot make a view", root.display()))?
        .with_dev(dev);
    for group in manifest.link_groups() {
        view.share_link_group(&group);
    }
    Ok(view)
}
