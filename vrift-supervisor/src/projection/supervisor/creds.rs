//! A tracee's credentials and umask, read from /proc/TID/status.
//!
//! Reading the status file costs microseconds, so credentials are cached per thread; the
//! calls that change them (setuid and friends) are notified and drop the thread's entry.
//! The umask is read fresh by the calls that create something, the only ones that use it.

use std::collections::HashMap;
use std::io;
use std::sync::RwLock;

use vrift_common::vfs::Cred;

/// What /proc/TID/status says about permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub cred: Cred,
    pub umask: u32,
}

/// Parse the Uid/Gid/Groups/CapEff/Umask lines of a /proc status file.
pub fn parse_status(text: &str) -> Option<Status> {
    let mut uid = None;
    let mut gid = None;
    let mut groups = Vec::new();
    let mut cap_eff = 0u64;
    let mut umask = 0o022;
    for line in text.lines() {
        let Some((key, val)) = line.split_once(':') else {
            continue;
        };
        let fields: Vec<&str> = val.split_whitespace().collect();
        match key {
            // real, effective, saved, filesystem: the kernel checks files against fs ids.
            "Uid" => uid = fields.get(3).and_then(|s| s.parse().ok()),
            "Gid" => gid = fields.get(3).and_then(|s| s.parse().ok()),
            "Groups" => groups = fields.iter().filter_map(|s| s.parse().ok()).collect(),
            "CapEff" => cap_eff = u64::from_str_radix(fields.first()?, 16).ok()?,
            "Umask" => umask = u32::from_str_radix(fields.first()?, 8).ok()?,
            _ => {}
        }
    }
    const CAP_DAC_OVERRIDE: u64 = 1;
    Some(Status {
        cred: Cred {
            uid: uid?,
            gid: gid?,
            groups,
            privileged: cap_eff & (1 << CAP_DAC_OVERRIDE) != 0,
        },
        umask,
    })
}

pub fn status_of(tid: u32) -> io::Result<Status> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    parse_status(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status"))
}

/// Credentials per thread id.
#[derive(Default)]
pub struct CredCache {
    by_tid: RwLock<HashMap<u32, Cred>>,
}

impl CredCache {
    pub fn get(&self, tid: u32) -> io::Result<Cred> {
        if let Some(c) = self.by_tid.read().unwrap().get(&tid) {
            return Ok(c.clone());
        }
        let s = status_of(tid)?;
        self.by_tid.write().unwrap().insert(tid, s.cred.clone());
        Ok(s.cred)
    }

    /// Fresh credentials and umask (for calls that create), refreshing the cache.
    pub fn fresh(&self, tid: u32) -> io::Result<Status> {
        let s = status_of(tid)?;
        self.by_tid.write().unwrap().insert(tid, s.cred.clone());
        Ok(s)
    }

    /// The thread is changing its credentials: forget them.
    pub fn forget(&self, tid: u32) {
        self.by_tid.write().unwrap().remove(&tid);
    }

    /// A program is being executed: exec can drop capabilities (a non-root user's process
    /// leaves the user namespace set-up with all of them, and loses them on exec), and the
    /// executing thread may take over the process's leader id. Forget everything; each
    /// process reads its status again once.
    pub fn forget_all(&self) {
        self.by_tid.write().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let t = "Name:\tx\nUmask:\t0027\nUid:\t1000\t1000\t1000\t1001\nGid:\t100\t100\t100\t100\nGroups:\t4 24 \nCapEff:\t0000000000000002\n";
        let s = parse_status(t).unwrap();
        assert_eq!(s.cred.uid, 1001);
        assert_eq!(s.cred.gid, 100);
        assert_eq!(s.cred.groups, vec![4, 24]);
        assert!(s.cred.privileged);
        assert_eq!(s.umask, 0o027);
    }

    #[test]
    fn reads_own_and_caches() {
        let me = std::process::id();
        let cache = CredCache::default();
        let c = cache.get(me).unwrap();
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(cache.get(me).unwrap(), c);
        cache.forget(me);
        assert_eq!(cache.get(me).unwrap(), c);
    }
}
