//! Which remotes a user has, and which one is the default.
//!
//! The user's remotes live beside their store, in `$VRIFT_HOME/remotes.json` (the store is
//! per user; two stores, standing for two machines, each have their own list). A project can
//! name its default remote in `.vrift/remote` (one line, the remote's name) at its root.
//! Credentials are never stored here: they come from the usual AWS environment variables and
//! files (see [`crate::client`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RemoteError;

/// File name of the user's remotes, in the store directory.
pub const REMOTES_FILE: &str = "remotes.json";
/// A project's default remote: `<project>/.vrift/remote`.
pub const PROJECT_REMOTE_FILE: &str = ".vrift/remote";

/// One remote: where its objects live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteDef {
    /// `s3://BUCKET[/PREFIX]`.
    pub url: String,
    /// An S3-compatible endpoint other than AWS's (Garage, Ceph RGW, R2, MinIO...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl RemoteDef {
    /// The bucket and the key prefix (without slashes at either end; empty for none).
    pub fn bucket_and_prefix(&self) -> Result<(String, String), RemoteError> {
        parse_url(&self.url)
    }
}

/// `s3://BUCKET[/PREFIX]` split into bucket and prefix.
pub fn parse_url(url: &str) -> Result<(String, String), RemoteError> {
    let bad = || RemoteError::BadUrl {
        url: url.to_string(),
    };
    let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (rest, ""),
    };
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let prefix_ok = prefix
        .split('/')
        .all(|c| c != "." && c != ".." && (prefix.is_empty() || !c.is_empty()));
    if !bucket_ok || !prefix_ok {
        return Err(bad());
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// The contents of `remotes.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remotes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub remotes: BTreeMap<String, RemoteDef>,
}

impl Remotes {
    /// Read the user's remotes from the store directory (none when the file is absent).
    pub fn load(store_root: &Path) -> Result<Remotes, RemoteError> {
        let path = store_root.join(REMOTES_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RemoteError::ConfigParse {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Remotes::default()),
            Err(source) => Err(RemoteError::Config { path, source }),
        }
    }

    /// Write them back atomically (temp file and rename).
    pub fn save(&self, store_root: &Path) -> Result<(), RemoteError> {
        let path = store_root.join(REMOTES_FILE);
        let tmp = store_root.join(format!(".{REMOTES_FILE}.{}", std::process::id()));
        let mut text = serde_json::to_string_pretty(self).expect("remotes serialize");
        text.push('\n');
        let io_err = |source| RemoteError::Config {
            path: path.clone(),
            source,
        };
        fs::write(&tmp, text).map_err(io_err)?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(e)
        })
    }

    /// Add a remote; the first one added becomes the default.
    pub fn add(&mut self, name: &str, def: RemoteDef) -> Result<(), RemoteError> {
        check_name(name)?;
        def.bucket_and_prefix()?;
        if let Some(ep) = &def.endpoint {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(RemoteError::BadEndpoint {
                    endpoint: ep.clone(),
                });
            }
        }
        if self.remotes.contains_key(name) {
            return Err(RemoteError::Exists(name.to_string()));
        }
        self.remotes.insert(name.to_string(), def);
        if self.default.is_none() {
            self.default = Some(name.to_string());
        }
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<RemoteDef, RemoteError> {
        let def = self
            .remotes
            .remove(name)
            .ok_or_else(|| RemoteError::UnknownRemote(name.to_string()))?;
        if self.default.as_deref() == Some(name) {
            self.default = None;
        }
        Ok(def)
    }

    pub fn get(&self, name: &str) -> Result<&RemoteDef, RemoteError> {
        self.remotes
            .get(name)
            .ok_or_else(|| RemoteError::UnknownRemote(name.to_string()))
    }

    /// Which remote a command uses: the one named (`--remote`), else `$VRIFT_REMOTE`, else
    /// the project's `.vrift/remote` (nearest at or above `cwd`), else the user's default,
    /// else the only remote there is.
    pub fn resolve(
        &self,
        named: Option<&str>,
        cwd: &Path,
    ) -> Result<(String, RemoteDef), RemoteError> {
        let env = std::env::var("VRIFT_REMOTE").ok().filter(|v| !v.is_empty());
        let name = match named.map(str::to_string).or(env) {
            Some(n) => n,
            None => match project_default(cwd)? {
                Some(n) => n,
                None => match (&self.default, self.remotes.len()) {
                    (Some(d), _) => d.clone(),
                    (None, 1) => self.remotes.keys().next().expect("one remote").clone(),
                    _ => return Err(RemoteError::NoRemote),
                },
            },
        };
        let def = self.get(&name)?.clone();
        Ok((name, def))
    }
}

/// A remote name: letters, digits, `-`, `_`, `.`; not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), RemoteError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(RemoteError::BadName(name.to_string()))
    }
}

/// The project default named by the nearest `.vrift/remote` at or above `cwd`.
pub fn project_default(cwd: &Path) -> Result<Option<String>, RemoteError> {
    for dir in cwd.ancestors() {
        let path = dir.join(PROJECT_REMOTE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let name = text.trim().to_string();
                check_name(&name).map_err(|_| RemoteError::ConfigParse {
                    path: path.clone(),
                    reason: format!("not a remote name: {name:?}"),
                })?;
                return Ok(Some(name));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
            Err(source) => return Err(RemoteError::Config { path, source }),
        }
    }
    Ok(None)
}

/// Make `name` the default remote of the project at `project_root`.
pub fn set_project_default(project_root: &Path, name: &str) -> Result<PathBuf, RemoteError> {
    check_name(name)?;
    let path = project_root.join(PROJECT_REMOTE_FILE);
    let dir = path.parent().expect("has a parent");
    fs::create_dir_all(dir).map_err(|source| RemoteError::Config {
        path: dir.to_path_buf(),
        source,
    })?;
    fs::write(&path, format!("{name}\n")).map_err(|source| RemoteError::Config {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(url: &str) -> RemoteDef {
        RemoteDef {
            url: url.into(),
            endpoint: None,
            region: None,
        }
    }

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://team-cache").unwrap(),
            ("team-cache".into(), "".into())
        );
        assert_eq!(
            parse_url("s3://team-cache/ci/vrift/").unwrap(),
            ("team-cache".into(), "ci/vrift".into())
        );
        for bad in [
            "team-cache",
            "http://b/x",
            "s3://",
            "s3://B",
            "s3://b/../x",
            "s3://bk/a//b",
        ] {
            assert!(
                matches!(parse_url(bad), Err(RemoteError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn add_remove_default_and_resolution() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Remotes::default();
        r.add("one", def("s3://bucket-a")).unwrap();
        r.add("two", def("s3://bucket-b/p")).unwrap();
        assert!(matches!(
            r.add("one", def("s3://bucket-c")),
            Err(RemoteError::Exists(_))
        ));
        assert!(matches!(
            r.add("../x", def("s3://bucket-c")),
            Err(RemoteError::BadName(_))
        ));
        assert_eq!(r.default.as_deref(), Some("one"));
        r.save(d.path()).unwrap();
        let back = Remotes::load(d.path()).unwrap();
        assert_eq!(back, r);
        let proj = d.path().join("proj/sub");
        fs::create_dir_all(&proj).unwrap();
        assert_eq!(r.resolve(None, &proj).unwrap().0, "one");
        assert_eq!(r.resolve(Some("two"), &proj).unwrap().0, "two");
        set_project_default(&d.path().join("proj"), "two").unwrap();
        assert_eq!(r.resolve(None, &proj).unwrap().0, "two");
        assert!(matches!(
            r.resolve(Some("nope"), &proj),
            Err(RemoteError::UnknownRemote(_))
        ));
        r.remove("one").unwrap();
        assert_eq!(r.default, None);
        assert!(matches!(
            Remotes::default().resolve(None, d.path()),
            Err(RemoteError::NoRemote)
        ));
        fs::write(d.path().join(REMOTES_FILE), b"{not json").unwrap();
        let err = Remotes::load(d.path()).unwrap_err();
        assert!(err.to_string().contains(REMOTES_FILE), "{err}");
    }
}
