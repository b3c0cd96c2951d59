//! The overlay projection: the kernel serves the view. overlayfs stacks the manifest's
//! metadata layer (built once per manifest and cached in the store, see [`layer`]) over the
//! store's blobs directory as a data-only layer, so every read, stat, listing, exec and mmap
//! of every program, static or not, is the kernel's own; writes copy up into the run's
//! upper directory, and the blobs never change. When the program ends, the upper directory
//! is harvested into the run's result ([`harvest`]).

pub mod harvest;
pub mod layer;

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use vrift_common::manifest::{Manifest, RelPath};
use vrift_common::store::Store;

use super::supervisor::served::ServedStats;
use super::{Context, Kind, Projection};
use crate::mounts::{self, cstring, Mount};
use crate::rundir::{RunDir, RunRecord, MNT, RESULT, UPPER, WORK};
use crate::view::spec::PassthroughKind;
use layer::Flavor;

pub struct OverlayProjection {
    store: Store,
    base: Manifest,
    flavor: Flavor,
    /// The metadata layers, upper-most first.
    layers: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
    mnt: PathBuf,
    root: PathBuf,
    real_dir: PathBuf,
    passthrough: Vec<RelPath>,
}

/// Why the overlay cannot be used here, before trying (None: worth a try).
pub fn unavailable(store: &Store) -> Option<String> {
    if std::env::var_os("VRIFT_NO_OVERLAY").is_some() {
        return Some("VRIFT_NO_OVERLAY is set".into());
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Some("this kernel has no overlayfs".into());
    }
    // overlayfs splits its options on ',' and its layers on ':' (escaped with '\', which
    // vrift does not try); such a store path cannot be named in the mount options.
    let root = store.root().as_os_str().as_bytes();
    if root.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
        return Some(format!(
            "the store's path {} holds ',', ':' or '\\', which overlayfs options cannot name",
            store.root().display()
        ));
    }
    None
}

impl OverlayProjection {
    pub fn prepare(cx: &Context) -> Result<OverlayProjection> {
        let spec = cx.spec;
        let flavor = Flavor::for_uid(cx.owner.uid);
        let key = match &spec.destination {
            crate::view::spec::Destination::Project { dir, .. } => dir.clone(),
            crate::view::spec::Destination::ManifestFile(p) => p.clone(),
        };
        let stack = layer::ensure_stack(cx.store, &spec.manifest, flavor, cx.owner.uid, &key)?;
        tracing::info!(
            "metadata layer {} ({})",
            stack.layers[0].display(),
            stack.how
        );
        let upper = cx.run_dir.join(UPPER);
        let work = cx.run_dir.join(WORK);
        let mnt = cx.run_dir.join(MNT);
        for d in [&upper, &work, &mnt] {
            std::fs::create_dir(d).with_context(|| format!("{}", d.display()))?;
        }
        make_placeholders(&upper, &spec.manifest, &spec.passthrough)?;
        Ok(OverlayProjection {
            store: cx.store.clone(),
            base: spec.manifest.clone(),
            flavor,
            layers: stack.layers,
            upper,
            work,
            mnt,
            root: spec.root.clone(),
            real_dir: spec.real_dir().to_path_buf(),
            passthrough: spec.passthrough.iter().map(|(p, _)| p.clone()).collect(),
        })
    }

    fn options(&self) -> Result<CString> {
        let blobs = self.store.root().join("blobs");
        options(
            &self.layers,
            Some(&blobs),
            &self.upper,
            &self.work,
            self.flavor,
        )
    }
}

/// The mount options of an overlay of `lower` (upper-most first) over the data-only layer
/// `data` (the store's blobs), writing into `upper`.
pub fn options(
    lower: &[PathBuf],
    data: Option<&Path>,
    upper: &Path,
    work: &Path,
    flavor: Flavor,
) -> Result<CString> {
    let mut lower: Vec<String> = lower.iter().map(|l| l.display().to_string()).collect();
    if let Some(data) = data {
        lower.push(format!(":{}", data.display()));
    }
    let mut o = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    // Renaming a directory from the lower layer then gives EXDEV instead of a redirect
    // xattr, and chmod copies data up: the upper directory holds plain files and
    // directories only, which the harvest reads the same way for root and for users.
    match flavor {
        Flavor::Trusted => o.push_str(",redirect_dir=off,metacopy=off,index=off"),
        Flavor::User => o.push_str(",userxattr"),
    }
    if o.len() >= 4096 {
        bail!("the overlay's mount options are longer than a page: {o}");
    }
    Ok(CString::new(o)?)
}

/// Mount points for the paths that pass through to the real tree, made in the upper
/// directory (their parents keep the manifest's modes and mtimes).
pub fn make_placeholders(
    upper: &Path,
    manifest: &Manifest,
    passthrough: &[(RelPath, PassthroughKind)],
) -> Result<()> {
    let mut parents = Vec::new();
    for (rel, kind) in passthrough {
        let p = upper.join(OsStr::from_bytes(rel));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        match kind {
            PassthroughKind::Dir => std::fs::create_dir_all(&p),
            PassthroughKind::File => std::fs::File::create(&p).map(drop),
        }
        .with_context(|| format!("{}", p.display()))?;
        let mut r = rel.as_slice();
        while let Some(i) = r.iter().rposition(|&b| b == b'/') {
            r = &r[..i];
            parents.push(r.to_vec());
        }
    }
    parents.sort();
    parents.dedup();
    for rel in parents.iter().rev() {
        if let Some(e) = manifest.get(rel) {
            let p = upper.join(OsStr::from_bytes(rel));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))?;
            crate::sys::fsops::set_mtime(&p, e.mtime_ns)?;
        }
    }
    Ok(())
}

impl Projection for OverlayProjection {
    fn kind(&self) -> Kind {
        Kind::Overlay
    }

    fn dev(&self) -> u64 {
        0 // an anonymous device of the mount, known only inside the run
    }

    fn mounts(&self) -> Result<Vec<Mount>> {
        // The overlay is mounted in the run's directory first, the pass-through paths bound
        // onto their placeholders in it (their sources still resolve to the real tree), and
        // the whole of it then bound at the view's root.
        let mut steps = vec![Mount::Overlay {
            dst: cstring(&self.mnt)?,
            options: self.options()?,
        }];
        let passthrough = self
            .passthrough
            .iter()
            .map(|rel| Path::new(OsStr::from_bytes(rel)));
        steps.extend(mounts::stage_at_root(
            &self.real_dir,
            passthrough,
            &self.mnt,
            &self.root,
            false,
        )?);
        Ok(steps)
    }

    fn filter(&self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn serve(&self, _listener: OwnedFd, _served: Option<Arc<ServedStats>>) -> Result<()> {
        bail!("the overlay projection has no seccomp listener to serve")
    }

    fn harvest(&self) -> Result<Manifest> {
        let passthrough: HashSet<RelPath> = self.passthrough.iter().cloned().collect();
        harvest::harvest(
            &self.store,
            &self.base,
            &self.upper,
            self.flavor,
            &passthrough,
            harvest::Take::Move {
                result: &self.upper.with_file_name(RESULT),
            },
        )
    }
}

/// Rebuild a killed run's result from its upper directory.
pub fn recover(store: &Store, dir: &RunDir, rec: &RunRecord, base: Manifest) -> Result<Manifest> {
    let passthrough: HashSet<RelPath> = rec.passthrough.iter().cloned().collect();
    harvest::harvest(
        store,
        &base,
        &dir.join(UPPER),
        Flavor::for_uid(rec.owner_uid),
        &passthrough,
        harvest::Take::Move {
            result: &dir.join(RESULT),
        },
    )
}
