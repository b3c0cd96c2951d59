//! `vrift gc --remote NAME`: blobs on a remote that no pushed manifest or ref references.
//!
//! The roots are the markers (`manifests/<hash>`, one per completely pushed manifest) and the
//! refs. Every root's manifest is fetched and verified; if one cannot be read, gc refuses,
//! as the local gc does, rather than delete on partial knowledge. Blobs younger than
//! `min_age` are kept even when unreferenced: they may belong to a push still under way,
//! whose marker is not written yet (S3 has no locks to wait for).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest};

use crate::client::Remote;
use crate::{block_on, RemoteError};

#[derive(Clone, Debug)]
pub struct RemoteGcOptions {
    /// Delete the garbage (without it, only list it).
    pub delete: bool,
    /// Keep unreferenced blobs younger than this.
    pub min_age: Duration,
}

/// What remote gc found (and, with `delete`, deleted).
#[derive(Clone, Debug, Default)]
pub struct RemoteGcReport {
    pub deleted: bool,
    /// Pushed manifests (markers) and refs.
    pub manifests: usize,
    pub refs: usize,
    /// Blob objects on the remote, and how many of them some root references.
    pub blobs: usize,
    pub referenced: usize,
    /// Unreferenced blobs old enough to go: (key, size).
    pub garbage: Vec<(String, u64)>,
    /// Unreferenced blobs kept because they are younger than `min_age`.
    pub young: usize,
}

impl RemoteGcReport {
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage.iter().map(|(_, s)| s).sum()
    }
}

pub fn gc(remote: &Remote, opts: &RemoteGcOptions) -> Result<RemoteGcReport, RemoteError> {
    block_on(gc_async(remote, opts))?
}

async fn list(remote: &Remote, dir: &str) -> Result<Vec<ObjectMeta>, RemoteError> {
    let key = remote.dir_key(dir);
    remote
        .s3
        .list(Some(&key))
        .try_collect()
        .await
        .map_err(|e| remote.classify(&key, e))
}

fn hash_of(meta: &ObjectMeta) -> Option<Hash> {
    meta.location.filename()?.parse().ok()
}

async fn gc_async(remote: &Remote, opts: &RemoteGcOptions) -> Result<RemoteGcReport, RemoteError> {
    remote.check().await?;
    let mut report = RemoteGcReport {
        deleted: opts.delete,
        ..RemoteGcReport::default()
    };
    let mut roots: BTreeSet<Hash> = BTreeSet::new();
    for meta in list(remote, "manifests").await? {
        if let Some(h) = hash_of(&meta) {
            roots.insert(h);
            report.manifests += 1;
        }
    }
    for meta in list(remote, "refs").await? {
        let key = meta.location.clone();
        let broken = |reason: String| RemoteError::BrokenRoot {
            remote: remote.name.clone(),
            key: remote.describe(&key),
            reason,
        };
        let bytes = remote
            .s3
            .get(&key)
            .await
            .map_err(|e| broken(remote.classify(&key, e).to_string()))?
            .bytes()
            .await
            .map_err(|e| broken(remote.classify(&key, e).to_string()))?;
        let hash = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse::<Hash>().ok())
            .ok_or_else(|| broken("not a manifest hash".into()))?;
        roots.insert(hash);
        report.refs += 1;
    }

    // Every root's manifest, verified; its own blob and its files' blobs are referenced.
    let mut referenced: BTreeSet<Hash> = roots.clone();
    let manifests: Vec<(Hash, Manifest)> = stream::iter(roots.iter().map(|h| async move {
        let key = remote.blob_key(h);
        let m = crate::pull::fetch_verified_manifest(remote, h)
            .await
            .map_err(|e| RemoteError::BrokenRoot {
                remote: remote.name.clone(),
                key: remote.describe(&key),
                reason: e.to_string(),
            })?;
        Ok::<_, RemoteError>((*h, m.0))
    }))
    .buffer_unordered(remote.tuning.jobs)
    .try_collect()
    .await?;
    for (_, m) in &manifests {
        referenced.extend(
            m.iter()
                .filter(|(_, e)| e.kind == EntryKind::File)
                .map(|(_, e)| e.hash),
        );
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut doomed = Vec::new();
    for meta in list(remote, "blobs").await? {
        // Objects whose names are not hashes are not vrift's: never touched.
        let Some(h) = hash_of(&meta) else { continue };
        report.blobs += 1;
        if referenced.contains(&h) {
            report.referenced += 1;
            continue;
        }
        let age = now - meta.last_modified.timestamp();
        if age < opts.min_age.as_secs() as i64 {
            report.young += 1;
            continue;
        }
        report
            .garbage
            .push((remote.describe(&meta.location), meta.size));
        doomed.push(meta.location);
    }
    if opts.delete {
        stream::iter(doomed.into_iter().map(|key| async move {
            remote
                .s3
                .delete(&key)
                .await
                .map_err(|e| remote.classify(&key, e))
        }))
        .buffer_unordered(remote.tuning.jobs)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    }
    Ok(report)
}
