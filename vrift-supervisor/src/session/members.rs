//! Who is using a session. Each `vrift run --session` registers as a member
//! (`members/<pid>`, flocked by that vrift for its whole run, so a killed vrift is never
//! mistaken for a live one) and starting is serialized by the session's lock file: the first
//! run mounts the session's view in its own mount namespace, and every run that starts while
//! a member lives joins that member's mount namespace instead, so they all see one overlay
//! (the same upper directory, the kernel's own coherence) and each other's changes at once.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Session;

/// The session's start lock, held while a run decides whether to mount or join, until its
/// program is started (so a second run started at the same moment joins the first).
pub struct StartLock(#[allow(dead_code)] File);

pub fn lock_start(lock_path: &Path) -> Result<StartLock> {
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .with_context(|| format!("{}", lock_path.display()))?;
    f.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    Ok(StartLock(f))
}

/// This vrift, registered as a member of a session for as long as it lives.
pub struct Member {
    path: PathBuf,
    _file: File,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn register(session: &Session) -> Result<Member> {
    let dir = session.join("members");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let path = dir.join(std::process::id().to_string());
    let file = File::create(&path).with_context(|| format!("{}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(Member { path, _file: file })
}

/// The vrift pids using the session now; with `tidy` (only under the start lock, so no
/// member is half registered) stale member files are removed.
pub fn live(session: &Session, tidy: bool) -> Vec<u32> {
    let dir = session.join("members");
    let mut out = Vec::new();
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in listing.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(f) = File::open(e.path()) else {
            continue;
        };
        match f.try_lock_shared() {
            Err(TryLockError::WouldBlock) => out.push(pid),
            Ok(()) if tidy => {
                let _ = std::fs::remove_file(e.path());
            }
            Ok(()) => {}
            Err(_) => {}
        }
    }
    out.sort_unstable();
    out
}
