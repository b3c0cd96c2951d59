//! Sessions: named, persistent, copy-on-write workspaces over one git repository.
//!
//! A session is a directory in the store (`sessions/<repo key>/<name>/`) holding what it
//! started from and what it changed since:
//!
//! - `session.json`: the repository, the base commit, how the session started, the last
//!   promoted commit ([`Record`]);
//! - `base.manifest`: the view it started as (REV's tree read from the object database, plus
//!   the working tree's untracked and ignored files), a gc root;
//! - `upper/`, `work/`: the overlay's upper and work directories over the base's shared
//!   metadata layer, kept from run to run (the upper directory *is* the session's state);
//! - `cow/<n>/upper|work`: the same for each directory that a plain run passes through
//!   (`.git`, `target/`, `node_modules/`...), stacked over the real one;
//! - `lock`, `members/<pid>`: who is using the session (see [`members`]).
//!
//! Modules: [`base`] makes the base manifest, [`gitmap`] remembers which BLAKE3 blob holds
//! which git blob, [`enter`] runs a program in the session, [`members`] lets several runs
//! share it, [`tree`] turns the session's view into git trees (for diff and promote).

pub mod base;
pub mod enter;
pub mod gitmap;
pub mod members;
pub mod tree;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vrift_common::store::Store;

pub const RECORD: &str = "session.json";
pub const BASE: &str = "base.manifest";
pub const UPPER: &str = "upper";
pub const WORK: &str = "work";
pub const MNT: &str = "mnt";
pub const COW: &str = "cow";
const RECORD_VERSION: u32 = 1;

/// What a session started from and where it stands (`session.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub name: String,
    /// The repository's working tree (its git directory for a bare repository): where the
    /// session's view appears.
    pub root: PathBuf,
    /// The repository's git directory.
    pub git_dir: PathBuf,
    /// The commit the session started from (hex).
    pub base_commit: String,
    /// How it started: the revision given to `--from` (`HEAD` by default), or `worktree`.
    pub from: String,
    /// Directories under `root` stacked copy-on-write over the real ones, in mount order
    /// (`cow/<index>/` holds each one's upper directory).
    pub cow: Vec<CowDir>,
    /// The last commit promoted to `refs/vibes/<name>` (hex), if any.
    pub promoted: Option<String>,
    /// When the session was made, seconds since 1970.
    pub created: u64,
}

/// A directory stacked copy-on-write over a real one (`.git`, `target/`...).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CowDir {
    /// Its path in the view, relative to the root.
    pub path: String,
    /// The real directory below it.
    pub source: PathBuf,
}

/// One session's directory in the store.
#[derive(Clone, Debug)]
pub struct Session {
    pub dir: PathBuf,
    pub record: Record,
}

/// A session name must be usable as `refs/vibes/NAME`.
pub fn validate_name(name: &str) -> Result<()> {
    let full = format!("refs/vibes/{name}");
    if name.is_empty() || gix::refs::FullName::try_from(full.as_str()).is_err() {
        bail!(
            "{name:?}: not a valid session name (it must be a valid git ref name, as in \
             refs/vibes/NAME: no spaces, '..', '~', '^', ':', '?', '*', '[', '\\', no leading \
             '-' or trailing '.lock')"
        );
    }
    Ok(())
}

/// The directory name of a session: its name with '/' and '%' escaped (ref names may hold
/// '/', which a directory name may not).
pub(crate) fn dir_name(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// Where the sessions of the repository whose git directory is `git_dir` live.
pub fn repo_dir(store: &Store, git_dir: &Path) -> PathBuf {
    let canon = git_dir
        .canonicalize()
        .unwrap_or_else(|_| git_dir.to_path_buf());
    let key = blake3::hash(canon.as_os_str().as_encoded_bytes());
    store
        .root()
        .join("sessions")
        .join(&key.to_hex().as_str()[..16])
}

/// The git repository around `cwd`.
pub fn discover(cwd: &Path) -> Result<gix::Repository> {
    let repo = gix::discover(cwd).with_context(|| {
        format!(
            "{}: not in a git repository (sessions work over one)",
            cwd.display()
        )
    })?;
    Ok(repo)
}

/// The view root of `repo`: its working tree, or its git directory when it is bare.
pub fn view_root(repo: &gix::Repository) -> PathBuf {
    repo.workdir()
        .unwrap_or_else(|| repo.git_dir())
        .to_path_buf()
}

impl Session {
    pub fn dir_of(store: &Store, git_dir: &Path, name: &str) -> PathBuf {
        repo_dir(store, git_dir).join(dir_name(name))
    }

    /// Open an existing session, None if it does not exist.
    pub fn open(store: &Store, git_dir: &Path, name: &str) -> Result<Option<Session>> {
        validate_name(name)?;
        let dir = Session::dir_of(store, git_dir, name);
        Session::open_dir(&dir)
    }

    pub fn open_dir(dir: &Path) -> Result<Option<Session>> {
        let path = dir.join(RECORD);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        };
        let record: Record = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a session record", path.display()))?;
        Ok(Some(Session {
            dir: dir.to_path_buf(),
            record,
        }))
    }

    /// Every session of the repository at `git_dir`, by name.
    pub fn list(store: &Store, git_dir: &Path) -> Result<Vec<Session>> {
        let dir = repo_dir(store, git_dir);
        let mut out = Vec::new();
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in listing.flatten() {
            // Lock files, shared bases, sessions half made or half discarded are not
            // sessions (their names hold a '.' no session's directory name ends with).
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !e.file_type().is_ok_and(|t| t.is_dir())
                || name.starts_with('.')
                || name.contains(".new-")
                || name.contains(".discarding-")
            {
                continue;
            }
            if let Some(s) = Session::open_dir(&e.path())? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        Ok(out)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The upper directory of copy-on-write directory number `i`.
    pub fn cow_dir(&self, i: usize) -> PathBuf {
        self.dir.join(COW).join(i.to_string())
    }

    /// Save the record (temp file, fsync, rename).
    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.record)?;
        crate::rundir::write_atomic(&self.join(RECORD), &bytes)
    }

    /// The base manifest.
    pub fn base(&self) -> Result<vrift_common::manifest::Manifest> {
        Ok(vrift_common::manifest::Manifest::load(&self.join(BASE))?)
    }

    /// Remove the session's directory (its upper directories included).
    pub fn remove(&self, store: &Store) -> Result<()> {
        let _ = store.unregister_root(&self.join(BASE));
        let tmp = aside(&self.dir, "discarding");
        std::fs::rename(&self.dir, &tmp).with_context(|| format!("{}", self.dir.display()))?;
        crate::rundir::remove_tree(&tmp);
        Ok(())
    }
}

/// `dir` with `.WHAT-PID` appended: a name beside it that no session has.
pub(crate) fn aside(dir: &Path, what: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{what}-{}", std::process::id()));
    PathBuf::from(name)
}

impl Record {
    pub fn new(
        name: &str,
        root: PathBuf,
        git_dir: PathBuf,
        base_commit: String,
        from: String,
    ) -> Record {
        Record {
            version: RECORD_VERSION,
            name: name.to_string(),
            root,
            git_dir,
            base_commit,
            from,
            cow: Vec::new(),
            promoted: None,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}
