//! vrift's remote stores: the blobs and manifests of a local store shared through an
//! S3-compatible object store (AWS S3, R2, Ceph RGW, Garage...).
//!
//! One object per blob, keyed by its BLAKE3 hash; a manifest's bytes are a blob too, and a
//! marker object says a manifest was pushed completely (see [`client`] for the layout).
//! Every object read from a remote is hashed before it enters the local store and refused
//! when it is not what its name says: the remote is never trusted.
//!
//! The API is blocking: each call runs its own small async runtime and ends it before it
//! returns, so a caller that forks afterwards (`vrift run`) is single-threaded again.

pub mod client;
pub mod config;
// The signing provider of macOS builds (see crypto.rs); its tests run everywhere.
#[cfg(any(target_os = "macos", test))]
mod crypto;
mod gc;
mod progress;
mod pull;
mod push;
// TCP_QUICKACK is Linux's: elsewhere plain-http endpoints use object_store's own client.
#[cfg(target_os = "linux")]
mod quickack;

use std::path::PathBuf;

use vrift_common::hash::Hash;
use vrift_common::manifest::ManifestError;
use vrift_common::store::StoreError;

pub use client::{Credentials, Remote, Tuning};
pub use config::{RemoteDef, Remotes};
pub use gc::{gc, RemoteGcOptions, RemoteGcReport};
pub use pull::{ensure_manifest, pull, pulled_manifest_path, PullReport, PullTarget};
pub use push::{push, PushOptions, PushReport};

/// Everything that can go wrong talking to a remote. Each message names the remote and the
/// object (or file) it concerns, and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    ConfigParse { path: PathBuf, reason: String },
    #[error("{url:?}: not a remote URL (want s3://BUCKET or s3://BUCKET/PREFIX)")]
    BadUrl { url: String },
    #[error("{endpoint:?}: an endpoint is an http:// or https:// URL")]
    BadEndpoint { endpoint: String },
    #[error("{0:?}: not a remote name (letters, digits, '-', '_', '.')")]
    BadName(String),
    #[error("no remote named {0:?} (`vrift remote list` shows them)")]
    UnknownRemote(String),
    #[error("a remote named {0:?} exists already (`vrift remote remove` it first)")]
    Exists(String),
    #[error(
        "no remote given and no default one: add one with `vrift remote add NAME s3://BUCKET[/PREFIX] --endpoint URL`, or pass --remote NAME"
    )]
    NoRemote,
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give a profile in ~/.aws/credentials (AWS_PROFILE picks one)"
    )]
    NoCredentials,
    #[error("remote {remote}: cannot set up the client: {detail}")]
    Client { remote: String, detail: String },
    #[error("remote {remote}: cannot reach {endpoint}: {detail}")]
    Unreachable {
        remote: String,
        endpoint: String,
        detail: String,
    },
    #[error("remote {remote}: access denied with the credentials from {creds} (wrong key or secret, or no permission on the bucket): {detail}")]
    Denied {
        remote: String,
        creds: String,
        detail: String,
    },
    #[error("remote {remote}: bucket {bucket:?} does not exist at {endpoint}")]
    NoBucket {
        remote: String,
        bucket: String,
        endpoint: String,
    },
    #[error("remote {remote}: {key}: not found")]
    NotFound { remote: String, key: String },
    #[error("remote {remote}: {key}: {detail}")]
    Transfer {
        remote: String,
        key: String,
        detail: String,
    },
    #[error(
        "remote {remote}: {key}: content does not match its name (it hashes to {actual}, {size} bytes); refused, nothing was stored"
    )]
    Corrupt {
        remote: String,
        key: String,
        actual: Hash,
        size: u64,
    },
    #[error("remote {remote}: {key}: not a manifest: {reason}")]
    BadManifest {
        remote: String,
        key: String,
        reason: String,
    },
    #[error("remote {remote}: {key}: not a ref (want the 64 hex digits of a manifest hash)")]
    BadRef { remote: String, key: String },
    #[error(
        "{manifest}: blob {hash} is not in the local store (`vrift manifest verify` names the paths)"
    )]
    MissingLocal { manifest: PathBuf, hash: Hash },
    #[error(
        "{path}: local blob does not match its name; the store is damaged (`vrift manifest verify`), nothing of it was uploaded"
    )]
    DamagedLocal { path: PathBuf },
    #[error("{0:?}: not a manifest hash (64 hex digits) or ref name")]
    BadTarget(String),
    #[error("--ref takes one manifest, {0} were given")]
    RefNeedsOneManifest(usize),
    #[error(
        "remote {remote}: refusing to collect garbage: {key}, which a marker or ref names, cannot be read ({reason}); repair or remove it first"
    )]
    BrokenRoot {
        remote: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// A small multi-threaded runtime for one call; dropped (threads joined) before returning.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, RemoteError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)?;
    let out = rt.block_on(fut);
    drop(rt);
    Ok(out)
}
