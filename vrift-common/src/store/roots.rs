//! The gc-roots registry: `roots/<BLAKE3 of the manifest path, hex>` names a manifest that
//! protects its blobs from gc.
//!
//! A root file is `vrift-root 2 <hex>\n<manifest path bytes>\n`, where `<hex>` names a blob
//! holding the manifest's own bytes as they were when it was registered (its *pin*), or is
//! `-` when the manifest could not be read then. The pin is what lets a root survive its
//! manifest being moved or deleted: gc reads the pinned copy and keeps its blobs until the
//! user says `vrift gc --forget PATH`. Root files of older vrifts (the path and a newline)
//! are read as unpinned roots.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{absolute, Store, StoreError};
use crate::hash::Hash;

/// One entry of the roots registry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Root {
    /// The manifest it protects (absolute).
    pub manifest: PathBuf,
    /// The registry file itself, `<store>/roots/<hex>`.
    pub file: PathBuf,
    /// The blob holding the manifest's bytes as registered (None: an unpinned root).
    pub pinned: Option<Hash>,
}

/// The first bytes of a root file that records its pin.
const ROOT_HEADER: &[u8] = b"vrift-root 2 ";

impl Store {
    /// Record `manifest_path` (absolute) in the roots registry so gc keeps its blobs, and
    /// keep a copy of the manifest's bytes in the store (the root's pin), so that the blobs
    /// stay protected if the manifest file is later moved or deleted.
    ///
    /// A relative path is taken against the current directory; when the manifest's directory
    /// exists its symlinks are resolved, so one manifest reached two ways is one root.
    /// Registering the same path again with the same content changes nothing; with new
    /// content it moves the pin to the new content. A path that cannot be read as a manifest
    /// is registered unpinned.
    pub fn register_root(&self, manifest_path: &Path) -> Result<(), StoreError> {
        let manifest = canonical_manifest_path(manifest_path)?;
        let pinned = match fs::read(&manifest) {
            Ok(bytes) if crate::manifest::Manifest::decode(&bytes, &manifest).is_ok() => {
                Some(self.insert_bytes(&bytes)?.hash)
            }
            _ => None,
        };
        let file = self.root_file(&manifest);
        let content = encode_root(&manifest, pinned);
        if fs::read(&file).ok().as_deref() == Some(&content[..]) {
            return Ok(());
        }
        // Write beside and rename, so a reader never sees half a path.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = file.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            f.write_all(&content)?;
            f.sync_all()?;
            fs::rename(&temp, &file)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            StoreError::io(&file, e)
        })
    }

    /// Remove `manifest_path` from the registry (no error when it was not registered).
    pub fn unregister_root(&self, manifest_path: &Path) -> Result<(), StoreError> {
        let manifest = canonical_manifest_path(manifest_path)?;
        remove_if_present(&self.root_file(&manifest))
    }

    /// The registered roots that `path` names: the root registered under `path` made
    /// absolute, or under `path` with its directory's symlinks resolved (a moved or deleted
    /// manifest can only be named the way it was registered).
    pub fn find_roots(&self, path: &Path) -> Result<Vec<Root>, StoreError> {
        let literal = absolute(path)?;
        let canonical = canonical_manifest_path(path)?;
        Ok(self
            .roots()?
            .into_iter()
            .filter(|r| r.manifest == literal || r.manifest == canonical)
            .collect())
    }

    /// Remove one registry file (gc does this for roots whose manifest is gone).
    pub fn remove_root(&self, root: &Root) -> Result<(), StoreError> {
        remove_if_present(&root.file)
    }

    /// Every registered root, sorted by manifest path. Leftover temp files are skipped.
    pub fn roots(&self) -> Result<Vec<Root>, StoreError> {
        let dir = self.roots_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let e = e.map_err(|e| StoreError::io(&dir, e))?;
            let name = e.file_name();
            let is_root_name =
                name.len() == 64 && name.to_str().is_some_and(|n| n.parse::<Hash>().is_ok());
            if !is_root_name {
                continue;
            }
            let file = e.path();
            let bytes = fs::read(&file).map_err(|e| StoreError::io(&file, e))?;
            let (manifest, pinned) = decode_root(bytes);
            out.push(Root {
                manifest,
                file,
                pinned,
            });
        }
        out.sort();
        Ok(out)
    }

    fn root_file(&self, manifest: &Path) -> PathBuf {
        let name = Hash::of(manifest.as_os_str().as_bytes()).to_hex();
        self.roots_dir().join(name)
    }
}

fn encode_root(manifest: &Path, pinned: Option<Hash>) -> Vec<u8> {
    let mut content = ROOT_HEADER.to_vec();
    match pinned {
        Some(h) => content.extend_from_slice(h.to_hex().as_bytes()),
        None => content.push(b'-'),
    }
    content.push(b'\n');
    content.extend_from_slice(manifest.as_os_str().as_bytes());
    content.push(b'\n');
    content
}

/// A root file's manifest path and pin; the old format (path and newline) has no pin.
fn decode_root(mut bytes: Vec<u8>) -> (PathBuf, Option<Hash>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    let mut pinned = None;
    if let Some(rest) = bytes.strip_prefix(ROOT_HEADER) {
        if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            pinned = std::str::from_utf8(&rest[..nl])
                .ok()
                .and_then(|t| t.parse::<Hash>().ok());
            bytes = rest[nl + 1..].to_vec();
        }
    }
    (PathBuf::from(OsString::from_vec(bytes)), pinned)
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Absolute, with the parent directory canonicalized when it exists.
fn canonical_manifest_path(path: &Path) -> Result<PathBuf, StoreError> {
    let abs = absolute(path)?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => match fs::canonicalize(parent) {
            Ok(p) => Ok(p.join(name)),
            Err(_) => Ok(abs),
        },
        _ => Ok(abs),
    }
}
