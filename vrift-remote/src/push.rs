//! `vrift push`: a manifest and every blob it names that the remote lacks.
//!
//! Order, so that a remote never claims more than it has: the blobs, then the manifest's own
//! bytes, then its marker (`manifests/<hash>`), then the ref if one was asked for. A push
//! that stops half-way leaves blobs without a marker; the next push of the same manifest
//! checks which are there and sends only the rest. A manifest whose marker exists was pushed
//! completely before, so pushing it again costs one existence check.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use vrift_common::hash::Hash;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_common::store::{Store, StoreError};

use crate::client::Remote;
use crate::progress::bytes_bar;
use crate::{block_on, RemoteError};

/// Blobs larger than this go up in parts.
pub const MULTIPART_THRESHOLD: u64 = 32 << 20;
/// Size of one part of a multipart upload (S3 wants at least 5 MiB but the last).
const PART_SIZE: usize = 16 << 20;
/// Parts of one blob in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Also point `refs/<name>` at the (single) manifest.
    pub reference: Option<String>,
    /// No progress bar.
    pub quiet: bool,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The manifests pushed, in the order given.
    pub manifests: Vec<Hash>,
    /// Manifests the remote already had completely (their marker was there).
    pub already_complete: usize,
    /// Distinct blobs the pushed manifests name (of those not already complete).
    pub blobs: usize,
    /// Existence checks made for them.
    pub checked: usize,
    /// Blobs sent, and their bytes.
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}

pub fn push(
    store: &Store,
    remote: &Remote,
    manifest_paths: &[PathBuf],
    opts: &PushOptions,
) -> Result<PushReport, RemoteError> {
    if opts.reference.is_some() && manifest_paths.len() != 1 {
        return Err(RemoteError::RefNeedsOneManifest(manifest_paths.len()));
    }
    if let Some(r) = &opts.reference {
        crate::config::check_name(r)?;
    }
    let mut manifests = Vec::new();
    for path in manifest_paths {
        let m = Manifest::load(path)?;
        let bytes = m.encode();
        manifests.push((path.clone(), Hash::of(&bytes), bytes, m));
    }
    // Reading the blobs relies on them staying: hold the store's shared lock throughout.
    let _lock = store.lock_shared()?;
    block_on(push_async(store, remote, manifests, opts))?
}

type Loaded = (PathBuf, Hash, Vec<u8>, Manifest);

async fn push_async(
    store: &Store,
    remote: &Remote,
    manifests: Vec<Loaded>,
    opts: &PushOptions,
) -> Result<PushReport, RemoteError> {
    remote.check().await?;
    let mut report = PushReport {
        manifests: manifests.iter().map(|(_, h, _, _)| *h).collect(),
        ..PushReport::default()
    };
    // Which manifests need their blobs checked at all.
    let mut todo = Vec::new();
    for loaded in manifests {
        if remote
            .size_of(&remote.marker_key(&loaded.1))
            .await?
            .is_some()
        {
            report.already_complete += 1;
        } else {
            todo.push(loaded);
        }
    }
    let mut blobs: BTreeMap<Hash, u64> = BTreeMap::new();
    for (path, _, _, m) in &todo {
        for (_, e) in m.iter().filter(|(_, e)| e.kind == EntryKind::File) {
            if blobs.insert(e.hash, e.size).is_none() && !store.contains(&e.hash) {
                return Err(RemoteError::MissingLocal {
                    manifest: path.clone(),
                    hash: e.hash,
                });
            }
        }
    }
    report.blobs = blobs.len();
    report.checked = blobs.len();

    // Existence checks, many at once.
    let missing: Vec<(Hash, u64)> = stream::iter(blobs.iter().map(|(h, s)| async move {
        let found = remote.size_of(&remote.blob_key(h)).await?;
        // An object of the wrong size is not that blob (a torn upload by another tool):
        // send it again, which replaces it with the right content.
        Ok::<_, RemoteError>((found != Some(*s)).then_some((*h, *s)))
    }))
    .buffer_unordered(remote.tuning.checks)
    .try_filter_map(|x| async move { Ok(x) })
    .try_collect()
    .await?;

    let total: u64 = missing.iter().map(|(_, s)| s).sum();
    let bar = bytes_bar("push", total, opts.quiet);
    let uploaded = AtomicUsize::new(0);
    let uploaded_bytes = AtomicU64::new(0);
    let result = stream::iter(missing.iter().map(|&(h, size)| {
        let bar = &bar;
        let (uploaded, uploaded_bytes) = (&uploaded, &uploaded_bytes);
        async move {
            upload_blob(store, remote, &h, size, bar).await?;
            uploaded.fetch_add(1, Ordering::Relaxed);
            uploaded_bytes.fetch_add(size, Ordering::Relaxed);
            Ok::<_, RemoteError>(())
        }
    }))
    .buffer_unordered(remote.tuning.jobs)
    .try_for_each(|()| async { Ok(()) })
    .await;
    bar.finish_and_clear();
    report.uploaded = uploaded.load(Ordering::Relaxed);
    report.uploaded_bytes = uploaded_bytes.load(Ordering::Relaxed);
    result?;

    // Every blob is there: now the manifests themselves, then their markers.
    for (_, hash, bytes, _) in &todo {
        let key = remote.blob_key(hash);
        remote
            .s3
            .put(&key, PutPayload::from(Bytes::from(bytes.clone())))
            .await
            .map_err(|e| remote.classify(&key, e))?;
        let marker = remote.marker_key(hash);
        remote
            .s3
            .put(&marker, PutPayload::default())
            .await
            .map_err(|e| remote.classify(&marker, e))?;
    }
    if let (Some(name), Some(hash)) = (&opts.reference, report.manifests.first()) {
        let key = remote.ref_key(name);
        remote
            .s3
            .put(&key, PutPayload::from(format!("{}\n", hash.to_hex())))
            .await
            .map_err(|e| remote.classify(&key, e))?;
    }
    Ok(report)
}

/// Send one local blob, checking on the way that it still is the content its name says (a
/// torn local blob must not poison the remote).
async fn upload_blob(
    store: &Store,
    remote: &Remote,
    hash: &Hash,
    size: u64,
    bar: &indicatif::ProgressBar,
) -> Result<(), RemoteError> {
    let path = store.blob_path(hash);
    let key = remote.blob_key(hash);
    let io_err = |e| RemoteError::Store(store_io(&path, e));
    if size <= MULTIPART_THRESHOLD {
        let data = tokio::fs::read(&path).await.map_err(io_err)?;
        if Hash::of(&data) != *hash {
            return Err(RemoteError::DamagedLocal { path });
        }
        remote
            .s3
            .put(&key, PutPayload::from(Bytes::from(data)))
            .await
            .map_err(|e| remote.classify(&key, e))?;
        bar.inc(size);
        return Ok(());
    }
    let upload = remote
        .s3
        .put_multipart(&key)
        .await
        .map_err(|e| remote.classify(&key, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut file = std::fs::File::open(&path).map_err(io_err)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(io_err(e));
            }
        };
        hasher.update(&buf[..n]);
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            return Err(remote.classify(&key, e));
        }
        writer.write(&buf[..n]);
        bar.inc(n as u64);
    }
    if Hash::from(hasher.finalize()) != *hash {
        let _ = writer.abort().await;
        return Err(RemoteError::DamagedLocal { path });
    }
    writer
        .finish()
        .await
        .map_err(|e| remote.classify(&key, e))?;
    Ok(())
}

pub(crate) fn store_io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
