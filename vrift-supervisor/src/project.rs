//! Finding or making the manifest a plain `vrift run` uses: the project's vrift.manifest,
//! refreshed from disk by a stat check, or a transient ingest of the current directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;

use crate::farm::PlaceholderKind;

pub const MANIFEST_NAME: &str = "vrift.manifest";

pub struct Prepared {
    pub manifest: Manifest,
    pub root: PathBuf,
    /// Paths the filters excluded that exist on disk: they pass through to the real tree.
    pub passthrough: Vec<(RelPath, PlaceholderKind)>,
}

/// The nearest directory at or above `dir` holding a vrift.manifest.
pub fn find_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(MANIFEST_NAME).is_file())
        .map(Path::to_path_buf)
}

pub fn prepare(store: &Store, cwd: &Path) -> Result<Prepared> {
    let (root, persistent) = match find_root(cwd) {
        Some(root) => (root, true),
        None => (cwd.to_path_buf(), false),
    };
    let report =
        ingest_stub(store, &root).with_context(|| format!("ingesting {}", root.display()))?;
    if persistent {
        let path = root.join(MANIFEST_NAME);
        let old = Manifest::load(&path).ok();
        if old.as_ref().map(Manifest::hash) != Some(report.manifest.hash()) {
            ingest::write_project_manifest(&root, &report.manifest, store)?;
            tracing::info!("{}: refreshed from disk", path.display());
        }
    }
    let mut passthrough = Vec::new();
    for ex in &report.excluded {
        let p = root.join(std::ffi::OsStr::from_bytes_compat(&ex.rel));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => passthrough.push((ex.rel.clone(), PlaceholderKind::Dir)),
            Ok(m) if m.is_file() => passthrough.push((ex.rel.clone(), PlaceholderKind::File)),
            // Symlinks and special files cannot be mount points; they stay hidden.
            _ => {}
        }
    }
    Ok(Prepared {
        manifest: report.manifest,
        root,
        passthrough,
    })
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &Self;
}
impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &Self {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

struct StubReport {
    manifest: Manifest,
    excluded: Vec<StubEx>,
}
struct StubEx {
    rel: RelPath,
}
fn ingest_stub(_: &Store, _: &Path) -> Result<StubReport> {
    let _ = StubEx { rel: Vec::new() }.rel;
    anyhow::bail!("transient ingest is not wired yet")
}
mod ingest {
    pub fn write_project_manifest(
        _: &std::path::Path,
        _: &vrift_common::manifest::Manifest,
        _: &vrift_common::store::Store,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}
