//! `vrift pull` and `vrift run --manifest HASH`: a manifest and the blobs the local store
//! lacks, each verified against its name before it enters the store.
//!
//! A pulled manifest is kept twice: its bytes as a blob (so a later run of the same hash
//! needs no network), and as a working copy at `$VRIFT_HOME/pulled/<hash>.manifest`,
//! registered as a gc root, which `vrift run --manifest` runs over (and updates).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_common::store::{Store, Verified};

use crate::client::Remote;
use crate::config::Remotes;
use crate::progress::bytes_bar;
use crate::{block_on, RemoteError};

/// What to pull: a manifest by hash, or the manifest a ref on the remote names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullTarget {
    Hash(Hash),
    Ref(String),
}

impl PullTarget {
    pub fn parse(s: &str) -> Result<PullTarget, RemoteError> {
        if let Ok(h) = s.parse::<Hash>() {
            return Ok(PullTarget::Hash(h));
        }
        let name = s.strip_prefix("refs/").unwrap_or(s);
        crate::config::check_name(name).map_err(|_| RemoteError::BadTarget(s.to_string()))?;
        Ok(PullTarget::Ref(name.to_string()))
    }
}

/// What a pull did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullReport {
    pub manifest: Hash,
    /// Where the manifest was written (and registered as a gc root).
    pub path: PathBuf,
    /// Distinct blobs the manifest names.
    pub blobs: usize,
    /// Blobs fetched, and their bytes; the rest were in the local store already.
    pub fetched: usize,
    pub fetched_bytes: u64,
}

/// Where a pulled manifest's working copy lives.
pub fn pulled_manifest_path(store: &Store, hash: &Hash) -> PathBuf {
    store
        .root()
        .join("pulled")
        .join(format!("{}.manifest", hash.to_hex()))
}

/// Pull `target` from `remote` into `store`; write the manifest to `output` (default
/// [`pulled_manifest_path`]) and register it as a gc root.
pub fn pull(
    store: &Store,
    remote: &Remote,
    target: &PullTarget,
    output: Option<&Path>,
    quiet: bool,
) -> Result<PullReport, RemoteError> {
    let _lock = store.lock_shared()?;
    block_on(async {
        remote.check().await?;
        let hash = match target {
            PullTarget::Hash(h) => *h,
            PullTarget::Ref(name) => read_ref(remote, name).await?,
        };
        let manifest = match local_manifest(store, &hash) {
            Some(m) => m,
            None => fetch_manifest(store, remote, &hash).await?,
        };
        let (fetched, fetched_bytes, blobs) = fetch_blobs(store, remote, &manifest, quiet).await?;
        let path = output
            .map(Path::to_path_buf)
            .unwrap_or_else(|| pulled_manifest_path(store, &hash));
        save(store, &manifest, &path)?;
        Ok(PullReport {
            manifest: hash,
            path,
            blobs,
            fetched,
            fetched_bytes,
        })
    })?
}

/// For `vrift run --manifest HASH`: make the manifest `hash` and all its blobs local (from the
/// default remote of `cwd`'s project or user, only when something is missing), and return
/// the path of a fresh working copy of it to run over.
pub fn ensure_manifest(store: &Store, hash: &Hash, cwd: &Path) -> Result<PathBuf, RemoteError> {
    let path = pulled_manifest_path(store, hash);
    let _lock = store.lock_shared()?;
    if let Some(m) = local_manifest(store, hash) {
        if missing_blobs(store, &m).is_empty() {
            save(store, &m, &path)?;
            return Ok(path);
        }
    }
    let remotes = Remotes::load(store.root())?;
    let (name, def) = remotes.resolve(None, cwd)?;
    let remote = Remote::open(&name, &def)?;
    drop(_lock);
    pull(store, &remote, &PullTarget::Hash(*hash), Some(&path), false)?;
    Ok(path)
}

fn save(store: &Store, m: &Manifest, path: &Path) -> Result<(), RemoteError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::push::store_io(dir, e))?;
    }
    m.save_atomic(path)?;
    store.register_root(path)?;
    Ok(())
}

/// The manifest `hash` from the local store's blob of it, when that is there and sound.
fn local_manifest(store: &Store, hash: &Hash) -> Option<Manifest> {
    let path = store.blob_path(hash);
    let bytes = std::fs::read(&path).ok()?;
    if Hash::of(&bytes) != *hash {
        return None;
    }
    Manifest::decode(&bytes, &path).ok()
}

fn missing_blobs(store: &Store, m: &Manifest) -> BTreeMap<Hash, u64> {
    m.iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .filter(|(_, e)| store.blob_size(&e.hash).ok() != Some(e.size))
        .map(|(_, e)| (e.hash, e.size))
        .collect()
}

async fn read_ref(remote: &Remote, name: &str) -> Result<Hash, RemoteError> {
    let key = remote.ref_key(name);
    let bytes = remote
        .s3
        .get(&key)
        .await
        .map_err(|e| remote.classify(&key, e))?
        .bytes()
        .await
        .map_err(|e| remote.classify(&key, e))?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.trim().parse::<Hash>().ok())
        .ok_or_else(|| RemoteError::BadRef {
            remote: remote.name.clone(),
            key: remote.describe(&key),
        })
}

/// Fetch, verify and decode the manifest `hash`, keeping its bytes as a local blob.
pub(crate) async fn fetch_manifest(
    store: &Store,
    remote: &Remote,
    hash: &Hash,
) -> Result<Manifest, RemoteError> {
    let (m, bytes) = fetch_verified_manifest(remote, hash).await?;
    store.insert_bytes(&bytes)?;
    Ok(m)
}

/// The manifest `hash` from the remote, checked against its name and decoded, with its
/// bytes (nothing is stored).
pub(crate) async fn fetch_verified_manifest(
    remote: &Remote,
    hash: &Hash,
) -> Result<(Manifest, bytes::Bytes), RemoteError> {
    let key = remote.blob_key(hash);
    let bytes = remote
        .s3
        .get(&key)
        .await
        .map_err(|e| remote.classify(&key, e))?
        .bytes()
        .await
        .map_err(|e| remote.classify(&key, e))?;
    let actual = Hash::of(&bytes);
    if actual != *hash {
        return Err(RemoteError::Corrupt {
            remote: remote.name.clone(),
            key: remote.describe(&key),
            actual,
            size: bytes.len() as u64,
        });
    }
    let m = Manifest::decode(&bytes, Path::new(&remote.describe(&key))).map_err(|e| {
        RemoteError::BadManifest {
            remote: remote.name.clone(),
            key: remote.describe(&key),
            reason: e.to_string(),
        }
    })?;
    Ok((m, bytes))
}

/// Fetch the blobs of `m` that the store lacks; returns (fetched, bytes, distinct blobs).
async fn fetch_blobs(
    store: &Store,
    remote: &Remote,
    m: &Manifest,
    quiet: bool,
) -> Result<(usize, u64, usize), RemoteError> {
    let distinct = m
        .iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .map(|(_, e)| e.hash)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let missing = missing_blobs(store, m);
    let total: u64 = missing.values().sum();
    let bar = bytes_bar("pull", total, quiet);
    let fetched = AtomicUsize::new(0);
    let fetched_bytes = AtomicU64::new(0);
    let result = stream::iter(missing.keys().map(|h| {
        let (bar, fetched, fetched_bytes) = (&bar, &fetched, &fetched_bytes);
        async move {
            let n = fetch_blob(store, remote, h, bar).await?;
            fetched.fetch_add(1, Ordering::Relaxed);
            fetched_bytes.fetch_add(n, Ordering::Relaxed);
            Ok::<_, RemoteError>(())
        }
    }))
    .buffer_unordered(remote.tuning.jobs)
    .try_for_each(|()| async { Ok(()) })
    .await;
    bar.finish_and_clear();
    result?;
    Ok((
        fetched.load(Ordering::Relaxed),
        fetched_bytes.load(Ordering::Relaxed),
        distinct,
    ))
}

/// Stream one blob into a store temp file while hashing it; it enters the store only when
/// it is what its name says.
async fn fetch_blob(
    store: &Store,
    remote: &Remote,
    hash: &Hash,
    bar: &indicatif::ProgressBar,
) -> Result<u64, RemoteError> {
    let key = remote.blob_key(hash);
    let got = remote
        .s3
        .get(&key)
        .await
        .map_err(|e| remote.classify(&key, e))?;
    let mut body = got.into_stream();
    let mut writer = store.blob_writer(*hash)?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| remote.classify(&key, e))?;
        writer.write(&chunk)?;
        bar.inc(chunk.len() as u64);
    }
    match writer.commit()? {
        Verified::Stored(ins) => Ok(ins.size),
        Verified::Mismatch { actual, size } => Err(RemoteError::Corrupt {
            remote: remote.name.clone(),
            key: remote.describe(&key),
            actual,
            size,
        }),
    }
}
