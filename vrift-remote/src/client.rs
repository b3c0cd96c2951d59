//! The connection to one remote: credentials, the S3 client, the key layout and what its
//! errors mean.
//!
//! Layout under the remote's prefix:
//!
//! - `blobs/<64 hex>`: one object per blob, named by the BLAKE3 of its content. A manifest's
//!   encoded bytes are a blob like any other.
//! - `manifests/<64 hex>`: an empty marker saying the manifest of that hash was pushed
//!   completely (written after every blob it names). It is what remote gc keeps.
//! - `refs/<name>`: the hex hash of a manifest, a name for it (`vrift push --ref NAME`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use vrift_common::hash::Hash;

use crate::config::RemoteDef;
use crate::RemoteError;

/// AWS credentials, from the environment or the shared credentials file. Its `Debug` never
/// shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// Where they came from, for messages ("AWS_ACCESS_KEY_ID", "~/.aws/credentials [p]").
    pub source: String,
}

impl Credentials {
    /// Credentials given directly (tests and tools; the CLI only reads [`credentials`]).
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Credentials {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            session_token: None,
            source: "given credentials".into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn aws_dir_file(env_name: &str, file: &str) -> Option<PathBuf> {
    env(env_name)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws").join(file)))
}

/// `key = value` lines of section `[section]` of an INI file (the AWS shared files' format).
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

fn profile() -> String {
    env("AWS_PROFILE").unwrap_or_else(|| "default".into())
}

/// Credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`),
/// else from the profile `$AWS_PROFILE` (default `default`) of `~/.aws/credentials`
/// (`$AWS_SHARED_CREDENTIALS_FILE`), else of `~/.aws/config` (`$AWS_CONFIG_FILE`).
pub fn credentials() -> Result<Credentials, RemoteError> {
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
            source: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into(),
        });
    }
    let profile = profile();
    let files = [
        (
            aws_dir_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile.clone(),
        ),
        (
            aws_dir_file("AWS_CONFIG_FILE", "config"),
            if profile == "default" {
                profile.clone()
            } else {
                format!("profile {profile}")
            },
        ),
    ];
    for (file, section) in files {
        let Some(file) = file else { continue };
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let kv = ini_section(&text, &section);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
            return Ok(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: get("aws_session_token"),
                source: format!("{} [{section}]", file.display()),
            });
        }
    }
    Err(RemoteError::NoCredentials)
}

/// The region: the remote's own, else `$AWS_REGION`, `$AWS_DEFAULT_REGION`, the profile's
/// `region` in `~/.aws/config`, else `us-east-1`.
fn region(def: &RemoteDef) -> String {
    if let Some(r) = def
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
    {
        return r;
    }
    let profile = profile();
    let section = if profile == "default" {
        profile
    } else {
        format!("profile {profile}")
    };
    aws_dir_file("AWS_CONFIG_FILE", "config")
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| {
            ini_section(&t, &section)
                .into_iter()
                .find(|(k, _)| k == "region")
                .map(|(_, v)| v)
        })
        .unwrap_or_else(|| "us-east-1".into())
}

/// Tuning knobs, from the environment (for measurements and tests).
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Transfers at once (`VRIFT_REMOTE_JOBS`, default 16).
    pub jobs: usize,
    /// Existence checks at once (`VRIFT_REMOTE_CHECKS`, default 64).
    pub checks: usize,
    /// Retries of a failed request (`VRIFT_REMOTE_RETRIES`, default 3).
    pub retries: usize,
    /// Per-request time limit (`VRIFT_REMOTE_TIMEOUT` seconds, default 120).
    pub timeout: Duration,
}

impl Tuning {
    pub fn from_env() -> Tuning {
        let num = |name: &str, default: u64| {
            env(name)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n > 0 || name == "VRIFT_REMOTE_RETRIES")
                .unwrap_or(default)
        };
        Tuning {
            jobs: num("VRIFT_REMOTE_JOBS", 16) as usize,
            checks: num("VRIFT_REMOTE_CHECKS", 64) as usize,
            retries: num("VRIFT_REMOTE_RETRIES", 3) as usize,
            timeout: Duration::from_secs(num("VRIFT_REMOTE_TIMEOUT", 120)),
        }
    }
}

/// An open remote.
#[derive(Clone)]
pub struct Remote {
    pub name: String,
    pub def: RemoteDef,
    pub bucket: String,
    prefix: String,
    /// Where requests go (for messages): the endpoint, or AWS's for the region.
    pub endpoint: String,
    pub(crate) s3: Arc<AmazonS3>,
    pub tuning: Tuning,
    pub(crate) creds_source: String,
}

impl Remote {
    /// Build the client (no request is made yet).
    pub fn open(name: &str, def: &RemoteDef) -> Result<Remote, RemoteError> {
        Remote::open_with(name, def, credentials()?)
    }

    /// [`Remote::open`] with the credentials given.
    pub fn open_with(
        name: &str,
        def: &RemoteDef,
        creds: Credentials,
    ) -> Result<Remote, RemoteError> {
        let (bucket, prefix) = def.bucket_and_prefix()?;
        let region = region(def);
        let tuning = Tuning::from_env();
        let endpoint = def
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let options = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(tuning.timeout)
            .with_pool_max_idle_per_host(tuning.jobs.max(tuning.checks));
        let retry = RetryConfig {
            max_retries: tuning.retries,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_access_key_id(&creds.access_key_id)
            .with_secret_access_key(&creds.secret_access_key)
            .with_endpoint(&endpoint)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .with_retry(retry);
        // Plain-http endpoints (a store on the same host or network, such as Garage) get the
        // quick-ACK client; `VRIFT_REMOTE_QUICKACK=0` keeps object_store's own.
        #[cfg(target_os = "linux")]
        if endpoint.starts_with("http://") && env("VRIFT_REMOTE_QUICKACK").as_deref() != Some("0") {
            b = b.with_http_connector(crate::quickack::QuickAckHttp {
                connect_timeout: Duration::from_secs(5),
                timeout: tuning.timeout,
                pool: tuning.jobs.max(tuning.checks),
            });
        }
        // Signing without aws-lc-rs (see crypto.rs).
        #[cfg(target_os = "macos")]
        {
            b = b.with_crypto_provider(Arc::new(crate::crypto::RustCrypto));
        }
        if let Some(t) = &creds.session_token {
            b = b.with_token(t);
        }
        let s3 = b.build().map_err(|e| RemoteError::Client {
            remote: name.to_string(),
            detail: chain(&e),
        })?;
        Ok(Remote {
            name: name.to_string(),
            def: def.clone(),
            bucket,
            prefix,
            endpoint,
            s3: Arc::new(s3),
            tuning,
            creds_source: creds.source,
        })
    }

    fn key(&self, rel: String) -> Key {
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    pub fn blob_key(&self, hash: &Hash) -> Key {
        self.key(format!("blobs/{}", hash.to_hex()))
    }
    pub fn marker_key(&self, hash: &Hash) -> Key {
        self.key(format!("manifests/{}", hash.to_hex()))
    }
    pub fn ref_key(&self, name: &str) -> Key {
        self.key(format!("refs/{name}"))
    }
    /// The folder of each kind of object (`blobs`, `manifests`, `refs`).
    pub fn dir_key(&self, dir: &str) -> Key {
        self.key(dir.to_string())
    }

    /// `s3://bucket/key` for messages.
    pub fn describe(&self, key: &Key) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    /// Turn a client error on `key` into one that says what went wrong in words a user can
    /// act on. No secret is in any of them (the client's errors carry none either).
    pub fn classify(&self, key: &Key, e: object_store::Error) -> RemoteError {
        let detail = chain(&e);
        let remote = self.name.clone();
        let lower = detail.to_ascii_lowercase();
        if lower.contains("nosuchbucket") || lower.contains("bucket not found") {
            return RemoteError::NoBucket {
                remote,
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => RemoteError::NotFound {
                remote,
                key: self.describe(key),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => RemoteError::Denied {
                remote,
                creds: self.creds_source.clone(),
                detail,
            },
            _ if [
                "error sending request",
                "connection refused",
                "connect",
                "dns error",
                "timed out",
                "timeout",
                "connection reset",
                "broken pipe",
                "incomplete message",
            ]
            .iter()
            .any(|w| lower.contains(w)) =>
            {
                RemoteError::Unreachable {
                    remote,
                    endpoint: self.endpoint.clone(),
                    detail,
                }
            }
            // Words only: the detail names the key, and a blob's hex name may hold "403".
            _ if [
                "invalidaccesskeyid",
                "signaturedoesnotmatch",
                "accessdenied",
                "forbidden",
            ]
            .iter()
            .any(|w| lower.contains(w)) =>
            {
                RemoteError::Denied {
                    remote,
                    creds: self.creds_source.clone(),
                    detail,
                }
            }
            _ => RemoteError::Transfer {
                remote,
                key: self.describe(key),
                detail,
            },
        }
    }

    /// One cheap request that tells whether the remote can be used at all: the endpoint
    /// answers, the credentials are accepted and the bucket exists.
    pub async fn check(&self) -> Result<(), RemoteError> {
        let key = self.dir_key("refs");
        self.s3
            .list_with_delimiter(Some(&key))
            .await
            .map(|_| ())
            .map_err(|e| self.classify(&key, e))
    }

    /// Whether an object exists (`Ok(None)` when it does not), with its size.
    pub async fn size_of(&self, key: &Key) -> Result<Option<u64>, RemoteError> {
        match self.s3.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.classify(key, e)),
        }
    }
}

/// Blocking access to single objects by their key under the remote's prefix (such as
/// `blobs/<hex>`), for tests and tools that look at a remote from outside.
impl Remote {
    pub fn check_blocking(&self) -> Result<(), RemoteError> {
        crate::block_on(self.check())?
    }

    pub fn put_raw(&self, rel: &str, data: Vec<u8>) -> Result<(), RemoteError> {
        let key = self.key(rel.to_string());
        crate::block_on(async {
            self.s3
                .put(&key, bytes::Bytes::from(data).into())
                .await
                .map(|_| ())
                .map_err(|e| self.classify(&key, e))
        })?
    }

    pub fn get_raw(&self, rel: &str) -> Result<Vec<u8>, RemoteError> {
        let key = self.key(rel.to_string());
        crate::block_on(async {
            let got = self
                .s3
                .get(&key)
                .await
                .map_err(|e| self.classify(&key, e))?;
            got.bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| self.classify(&key, e))
        })?
    }

    pub fn delete_raw(&self, rel: &str) -> Result<(), RemoteError> {
        let key = self.key(rel.to_string());
        crate::block_on(async {
            self.s3
                .delete(&key)
                .await
                .map_err(|e| self.classify(&key, e))
        })?
    }

    /// The objects under `dir` (`blobs`, `manifests`, `refs`): names relative to the
    /// prefix, with sizes, sorted.
    pub fn list_raw(&self, dir: &str) -> Result<Vec<(String, u64)>, RemoteError> {
        use futures::TryStreamExt;
        let key = self.dir_key(dir);
        let skip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<(String, u64)> = crate::block_on(async {
            self.s3
                .list(Some(&key))
                .map_ok(|m| (m.location.as_ref()[skip..].to_string(), m.size))
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| self.classify(&key, e))
        })??;
        out.sort();
        Ok(out)
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cur = c.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_are_read_and_secrets_not_shown() {
        let text = "[default]\naws_access_key_id = AK\n aws_secret_access_key=SEKRET\n\n[profile x]\nregion = eu-west-1\n";
        let kv = ini_section(text, "default");
        assert_eq!(kv.len(), 2);
        assert_eq!(kv[1], ("aws_secret_access_key".into(), "SEKRET".into()));
        assert_eq!(
            ini_section(text, "profile x"),
            vec![("region".into(), "eu-west-1".into())]
        );
        let c = Credentials {
            access_key_id: "AK".into(),
            secret_access_key: "SEKRET".into(),
            session_token: Some("TOKEN".into()),
            source: "test".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("SEKRET") && !shown.contains("TOKEN"),
            "{shown}"
        );
    }

    #[test]
    fn a_refused_connection_is_unreachable_even_when_the_key_holds_403() {
        let def = RemoteDef {
            url: "s3://bucket/prefix".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: None,
        };
        let r = Remote::open_with("team", &def, Credentials::new("AK", "SK")).unwrap();
        let key = Key::from("p/blobs/07a4c4b3158f58403adbab52");
        let refused = object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT http://127.0.0.1:1/b/p/blobs/07a4c4b3158f58403adbab52 \
                     - HTTP error: client error (Connect): tcp connect error: Connection refused"
                .into(),
        };
        assert!(
            matches!(r.classify(&key, refused), RemoteError::Unreachable { .. }),
            "a hash holding 403 is not a 403 answer"
        );
        let denied = object_store::Error::Generic {
            store: "S3",
            source: "Received 403 Forbidden: AccessDenied".into(),
        };
        assert!(matches!(
            r.classify(&key, denied),
            RemoteError::Denied { .. }
        ));
    }
}
