//! The metadata layer: a directory tree mirroring a manifest, where each non-empty file is
//! an empty sparse file with the entry's size, mode and mtime and two xattrs that make
//! overlayfs serve its data from the blob (`overlay.metacopy`, and `overlay.redirect` naming
//! the blob inside the store's blobs directory, the data-only lower layer).
//!
//! A layer is built once per manifest (and xattr flavour and user) into a temporary
//! directory, renamed into place under `layers/` in the store, and then only ever read:
//! every run of that manifest mounts the same one.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vrift_common::longpath::Short;
use vrift_common::manifest::{display_path, Entry, EntryKind, Manifest, RelPath};
use vrift_common::store::Store;

use crate::progress::Progress;
use crate::sys::{fsops, xattr};

/// The directory of the store that holds metadata layers.
pub const LAYERS_DIR: &str = "layers";

/// Which xattrs overlayfs reads: `trusted.overlay.*` for root, `user.overlay.*` (mounted
/// with `userxattr`) in an ordinary user's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Trusted,
    User,
}

impl Flavor {
    pub fn for_uid(uid: u32) -> Flavor {
        if uid == 0 {
            Flavor::Trusted
        } else {
            Flavor::User
        }
    }
    fn name(self) -> &'static str {
        match self {
            Flavor::Trusted => "trusted",
            Flavor::User => "user",
        }
    }
    pub fn metacopy(self) -> &'static CStr {
        match self {
            Flavor::Trusted => c"trusted.overlay.metacopy",
            Flavor::User => c"user.overlay.metacopy",
        }
    }
    pub fn redirect(self) -> &'static CStr {
        match self {
            Flavor::Trusted => c"trusted.overlay.redirect",
            Flavor::User => c"user.overlay.redirect",
        }
    }
    pub fn opaque(self) -> &'static CStr {
        match self {
            Flavor::Trusted => c"trusted.overlay.opaque",
            Flavor::User => c"user.overlay.opaque",
        }
    }
}

/// Where the layer of `manifest` lives (built or not).
pub fn path_of(store: &Store, manifest: &Manifest, flavor: Flavor, uid: u32) -> PathBuf {
    store.root().join(LAYERS_DIR).join(format!(
        "{}-{}-{uid}",
        manifest.hash().to_hex(),
        flavor.name()
    ))
}

/// The layers that show a manifest, upper-most first: its own full layer, or a small delta
/// layer over the full layer of an earlier manifest of the same project.
pub struct Stack {
    pub layers: Vec<PathBuf>,
    /// How it was had, for `-v`: "cached", "built now", "delta of N entries built now"...
    pub how: String,
}

/// The most entries a delta layer holds; beyond that a full layer is built.
fn delta_limit(entries: usize) -> usize {
    (entries / 10).max(256)
}

/// The most file bytes a delta layer copies.
const DELTA_BYTES: u64 = 64 << 20;

/// The layer stack of `manifest` for the project (or manifest file) `key`.
pub fn ensure_stack(
    store: &Store,
    manifest: &Manifest,
    flavor: Flavor,
    uid: u32,
    key: &Path,
) -> Result<Stack> {
    let full = path_of(store, manifest, flavor, uid);
    let pointer = pointer_of(store, flavor, uid, key);
    if full.is_dir() {
        return Ok(Stack {
            layers: vec![full],
            how: "cached".into(),
        });
    }
    if let Some((base_full, base)) = read_pointer(store, &pointer, flavor, uid) {
        let delta = PathBuf::from(format!(
            "{}.on-{}",
            full.display(),
            &base.hash().to_hex()[..16]
        ));
        if delta.is_dir() {
            return Ok(Stack {
                layers: vec![delta, base_full],
                how: "cached delta".into(),
            });
        }
        if let Some(changed) = changes(&base, manifest) {
            let n = changed.len();
            build_atomic(store, &delta, |tmp| {
                let entries = changed.iter().map(|(p, e)| (p.as_slice(), *e));
                let progress = Progress::new("building the view's layer", n as u64);
                write_entries(store, entries, tmp, Data::Copy, &progress)
            })?;
            return Ok(Stack {
                layers: vec![delta, base_full],
                how: format!("delta of {n} entries built now"),
            });
        }
    }
    build_atomic(store, &full, |tmp| build(store, manifest, tmp, flavor))?;
    manifest.save_atomic(&sidecar_of(&full))?;
    crate::rundir::write_atomic(&pointer, manifest.hash().to_hex().as_bytes())?;
    Ok(Stack {
        layers: vec![full],
        how: "built now".into(),
    })
}

/// What a delta layer over `base` must hold to show `new`: the entries that are new or
/// differ, with every directory above them. None when `new` lacks entries `base` has
/// (a removal needs a whiteout, which only a full layer avoids) or the delta is large.
fn changes<'a>(base: &Manifest, new: &'a Manifest) -> Option<Vec<(RelPath, &'a Entry)>> {
    if base.iter().any(|(p, _)| new.get(p).is_none()) {
        return None;
    }
    let limit = delta_limit(new.len());
    let mut bytes = 0;
    let mut wanted: std::collections::BTreeSet<RelPath> = Default::default();
    for (p, e) in new.iter() {
        if base.get(p) != Some(e) {
            bytes += e.size;
            if bytes > DELTA_BYTES {
                return None;
            }
            wanted.insert(p.to_vec());
            let mut r = p;
            while let Some(i) = r.iter().rposition(|&b| b == b'/') {
                r = &r[..i];
                wanted.insert(r.to_vec());
            }
            wanted.insert(Vec::new());
            if wanted.len() > limit {
                return None;
            }
        }
    }
    // BTreeSet order is not the manifest's canonical order ("a/b" sorts after "a-b"), so
    // take the entries in the manifest's own order, which puts parents first.
    Some(
        new.iter()
            .filter(|(p, _)| wanted.contains(*p))
            .map(|(p, e)| (p.to_vec(), e))
            .collect(),
    )
}

/// Build a layer into a temporary directory and rename it to `dest` (a layer another run
/// built meanwhile is used as it is).
fn build_atomic(store: &Store, dest: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let layers = store.root().join(LAYERS_DIR);
    std::fs::create_dir_all(&layers).with_context(|| format!("{}", layers.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = layers.join(format!(".build-{}-{stamp}", std::process::id()));
    if let Err(e) = f(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dest.is_dir() {
            return Err(e).with_context(|| format!("{}", dest.display()));
        }
    }
    Ok(())
}

/// The manifest a full layer was built from, kept beside it (not in it: the layer is the
/// view).
fn sidecar_of(full: &Path) -> PathBuf {
    PathBuf::from(format!("{}.manifest", full.display()))
}

/// The file naming the full layer a project (or manifest file) `key` last built.
fn pointer_of(store: &Store, flavor: Flavor, uid: u32, key: &Path) -> PathBuf {
    let id = blake3::hash(key.as_os_str().as_bytes()).to_hex();
    store
        .root()
        .join(LAYERS_DIR)
        .join(format!("project-{}-{uid}-{}", flavor.name(), &id[..32]))
}

fn read_pointer(
    store: &Store,
    pointer: &Path,
    flavor: Flavor,
    uid: u32,
) -> Option<(PathBuf, Manifest)> {
    let hex = std::fs::read_to_string(pointer).ok()?;
    let full =
        store
            .root()
            .join(LAYERS_DIR)
            .join(format!("{}-{}-{uid}", hex.trim(), flavor.name()));
    let base = Manifest::load(&sidecar_of(&full)).ok()?;
    full.is_dir().then_some((full, base))
}

/// Remove the layers no manifest in `keep` (the hashes of every live root) needs: a full
/// layer stays while it is a kept manifest's or a project's latest; a delta while its
/// manifest is kept and its full layer stays. Returns what was (or, without `delete`,
/// would be) removed. The caller holds the store's exclusive lock, so no run uses a layer.
pub fn collect_garbage(
    store: &Store,
    keep: &std::collections::HashSet<String>,
    delete: bool,
) -> Result<Vec<PathBuf>> {
    let dir = store.root().join(LAYERS_DIR);
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = listing
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let pointed: std::collections::HashSet<String> = names
        .iter()
        .filter(|n| n.starts_with("project-"))
        .filter_map(|n| std::fs::read_to_string(dir.join(n)).ok())
        .map(|h| h.trim().to_string())
        .collect();
    let hash_of = |n: &str| n.split('-').next().unwrap_or("").to_string();
    let full_kept = |n: &str| {
        let h = hash_of(n);
        keep.contains(&h) || pointed.contains(&h)
    };
    let remove = |p: &Path| -> Result<()> {
        if !delete {
            return Ok(());
        }
        let r = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
        match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("{}", p.display()))
            }
            _ => Ok(()),
        }
    };
    let mut gone = Vec::new();
    for n in &names {
        let p = dir.join(n);
        if n.starts_with(".build-") {
            remove(&p)?; // left by an interrupted build
        } else if n.starts_with("project-") || n.ends_with(".manifest") {
            // Pointers and sidecars go with their layers, below.
        } else if let Some((layer, base16)) = n.split_once(".on-") {
            let base_kept = names
                .iter()
                .any(|m| m.starts_with(base16) && !m.contains('.') && full_kept(m));
            if !(keep.contains(&hash_of(layer)) && base_kept) {
                remove(&p)?;
                gone.push(p);
            }
        } else if !full_kept(n) {
            remove(&p)?;
            remove(&sidecar_of(&p))?;
            gone.push(p);
        }
    }
    // A pointer to a layer that is gone points at nothing.
    for n in names.iter().filter(|n| n.starts_with("project-")) {
        let h = std::fs::read_to_string(dir.join(n)).unwrap_or_default();
        let target_kept = names
            .iter()
            .any(|m| m.starts_with(h.trim()) && !m.contains('.') && full_kept(m));
        if !target_kept {
            remove(&dir.join(n))?;
        }
    }
    Ok(gone)
}

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    }
}

/// The blob's path inside the blobs directory, as overlayfs wants it (`/ab/cdef...`).
fn redirect_of(hex: &str) -> String {
    format!("/{}/{}", &hex[..2], &hex[2..])
}

/// Build the layer of `manifest` at `dest` (which must not exist). A layer is always the
/// whole view (or a delta over one), never stacked over another manifest's layer, so a
/// manifest's whiteouts have nothing to hide here: stacked manifests are merged first
/// (`run::base::merge`).
pub fn build(store: &Store, manifest: &Manifest, dest: &Path, flavor: Flavor) -> Result<()> {
    let progress = Progress::new("building the view's layer", manifest.len() as u64);
    write_entries(
        store,
        manifest.iter(),
        dest,
        Data::Redirect(flavor),
        &progress,
    )
}

/// How a layer's files get their content.
#[derive(Clone, Copy)]
enum Data {
    /// Empty sparse files redirected to the blobs (the lowest metadata layer: overlayfs
    /// follows a metacopy redirect only from there unless mounted with `metacopy=on`,
    /// which an ordinary user cannot ask for).
    Redirect(Flavor),
    /// Copies of the blobs (a delta layer, which holds few and small files).
    Copy,
}

/// Write `entries` (in canonical order: every directory before its contents) into a new
/// layer at `dest`, then give directories their modes and mtimes.
fn write_entries<'a>(
    store: &Store,
    entries: impl Iterator<Item = (&'a [u8], &'a Entry)>,
    dest: &Path,
    data: Data,
    progress: &Progress,
) -> Result<()> {
    std::fs::create_dir(dest).with_context(|| format!("{}", dest.display()))?;
    let ctx = |p: &Path| format!("{}", p.display());
    let mut dirs = Vec::new();
    // Link group -> the layer path of its first name: later names are hard links to it, so
    // overlayfs reports one inode and the group's link count.
    let mut linked: std::collections::HashMap<u64, PathBuf> = Default::default();
    for (rel, e) in entries {
        progress.inc(1);
        // `p` names the entry in messages; the calls reach it through `a`, a path the
        // kernel takes however deep the tree and long the store's path (see `Short`).
        let p = join(dest, rel);
        let a = Short::of(&p).with_context(|| ctx(&p))?;
        if e.meta.link != 0 {
            if let Some(first) = linked.get(&e.meta.link) {
                let first = Short::of(first).with_context(|| ctx(first))?;
                std::fs::hard_link(&first, &a).with_context(|| ctx(&p))?;
                continue;
            }
            linked.insert(e.meta.link, p.clone());
        }
        match e.kind {
            EntryKind::Dir => {
                if !rel.is_empty() {
                    std::fs::create_dir(&a).with_context(|| ctx(&p))?;
                }
                set_meta(&a, e).with_context(|| ctx(&p))?;
                dirs.push((p, e.mode, e.mtime_ns));
            }
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&e.target), &a)
                    .with_context(|| ctx(&p))?;
                set_meta(&a, e).with_context(|| ctx(&p))?;
                fsops::set_mtime(&a, e.mtime_ns).with_context(|| ctx(&p))?;
            }
            EntryKind::Fifo => {
                fsops::mkfifo(&a, 0o600).with_context(|| ctx(&p))?;
                set_meta(&a, e).with_context(|| ctx(&p))?;
                std::fs::set_permissions(&a, std::fs::Permissions::from_mode(e.mode & 0o7777))
                    .with_context(|| ctx(&p))?;
                fsops::set_mtime(&a, e.mtime_ns).with_context(|| ctx(&p))?;
            }
            EntryKind::File => {
                let mut f = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&a)
                    .with_context(|| ctx(&p))?;
                if e.size > 0 {
                    if !store.contains(&e.hash) {
                        bail!(
                            "{}: blob {} is missing from the store (run `vrift manifest verify`)",
                            display_path(rel),
                            e.hash
                        );
                    }
                    match data {
                        Data::Redirect(flavor) => {
                            f.set_len(e.size).with_context(|| ctx(&p))?;
                            xattr::fset(f.as_fd(), flavor.metacopy(), b"")
                                .with_context(|| ctx(&p))?;
                            let redirect = redirect_of(&e.hash.to_hex());
                            xattr::fset(f.as_fd(), flavor.redirect(), redirect.as_bytes())
                                .with_context(|| ctx(&p))?;
                        }
                        Data::Copy => {
                            let blob = store.blob_path(&e.hash);
                            let mut src = File::open(&blob).with_context(|| ctx(&blob))?;
                            std::io::copy(&mut src, &mut f).with_context(|| ctx(&p))?;
                        }
                    }
                }
                set_meta(&a, e).with_context(|| ctx(&p))?;
                f.set_permissions(std::fs::Permissions::from_mode(e.mode & 0o7777))
                    .with_context(|| ctx(&p))?;
                f.set_modified(system_time(e.mtime_ns))
                    .with_context(|| ctx(&p))?;
            }
        }
    }
    // Directories last, deepest first: making their children changed their mtimes, and a
    // read-only mode would have kept the children out.
    for (p, mode, mtime) in dirs.iter().rev() {
        let a = Short::of(p).with_context(|| ctx(p))?;
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(mode & 0o7777))
            .with_context(|| ctx(p))?;
        fsops::set_mtime(&a, *mtime).with_context(|| ctx(p))?;
    }
    Ok(())
}

/// The manifest's owner (where the layer's builder may give it: root) and kept xattrs on a
/// layer path, before its mode (chown clears set-id bits; an ACL sets group bits).
fn set_meta(p: &Path, e: &Entry) -> std::io::Result<()> {
    if let Some(o) = e.meta.owner {
        match std::os::unix::fs::lchown(p, Some(o.uid), Some(o.gid)) {
            // An ordinary user's layer: every entry is the user's, as in their own checkout.
            Err(err) if err.raw_os_error() == Some(libc::EPERM) => {}
            r => r?,
        }
    }
    if e.kind != EntryKind::Symlink {
        for x in &e.meta.xattrs {
            vrift_common::sys::xattr::lset(p, &x.name, &x.value)?;
        }
    }
    Ok(())
}

pub fn system_time(ns: i64) -> std::time::SystemTime {
    if ns >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_nanos(ns.unsigned_abs())
    }
}
