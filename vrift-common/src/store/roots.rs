//! The gc-roots registry: `roots/<BLAKE3 of the manifest path, hex>` holds the manifest path
//! (raw bytes and a newline). Every manifest listed there protects its blobs from gc.

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
}

impl Store {
    /// Record `manifest_path` (absolute) in the roots registry so gc keeps its blobs.
    ///
    /// A relative path is taken against the current directory; when the manifest's directory
    /// exists its symlinks are resolved, so one manifest reached two ways is one root.
    /// Registering the same path again changes nothing.
    pub fn register_root(&self, manifest_path: &Path) -> Result<(), StoreError> {
        let manifest = canonical_manifest_path(manifest_path)?;
        let file = self.root_file(&manifest);
        let mut content = manifest.as_os_str().as_bytes().to_vec();
        content.push(b'\n');
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
            let mut bytes = fs::read(&file).map_err(|e| StoreError::io(&file, e))?;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            out.push(Root {
                manifest: PathBuf::from(OsString::from_vec(bytes)),
                file,
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
