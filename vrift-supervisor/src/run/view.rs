//! Choosing the view a run projects: the `--manifest` file, or the project refreshed or
//! ingested on the fly.

use std::path::Path;

use anyhow::{bail, Context, Result};
use vrift_common::manifest::Manifest;
use vrift_common::store::Store;

use super::project;
use crate::view::spec::{Destination, ViewSpec};

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
            stacked: None,
            origins: None,
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
        stacked: None,
        origins: Some(std::sync::Arc::new(prepared.origins)),
    })
}
