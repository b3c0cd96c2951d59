//! A tracee's credentials, read from /proc/TID/status when a permission decision needs them.

use std::io;

/// The identity the kernel checks file permissions against (fsuid/fsgid and groups), and
/// whether the caller holds CAP_DAC_OVERRIDE (as root does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub privileged: bool,
}

/// Parse the Uid/Gid/Groups/CapEff lines of a /proc status file.
pub fn parse_status(text: &str) -> Option<Cred> {
    let mut uid = None;
    let mut gid = None;
    let mut groups = Vec::new();
    let mut cap_eff = 0u64;
    for line in text.lines() {
        let (key, val) = line.split_once(':')?;
        let fields: Vec<&str> = val.split_whitespace().collect();
        match key {
            // real, effective, saved, filesystem: the kernel checks files against fs ids.
            "Uid" => uid = fields.get(3).and_then(|s| s.parse().ok()),
            "Gid" => gid = fields.get(3).and_then(|s| s.parse().ok()),
            "Groups" => groups = fields.iter().filter_map(|s| s.parse().ok()).collect(),
            "CapEff" => cap_eff = u64::from_str_radix(fields.first()?, 16).ok()?,
            _ => {}
        }
    }
    const CAP_DAC_OVERRIDE: u64 = 1;
    Some(Cred {
        uid: uid?,
        gid: gid?,
        groups,
        privileged: cap_eff & (1 << CAP_DAC_OVERRIDE) != 0,
    })
}

pub fn of_thread(tid: u32) -> io::Result<Cred> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    parse_status(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let t = "Name:\tx\nUid:\t1000\t1000\t1000\t1001\nGid:\t100\t100\t100\t100\nGroups:\t4 24 \nCapEff:\t0000000000000002\n";
        let c = parse_status(t).unwrap();
        assert_eq!(c.uid, 1001);
        assert_eq!(c.gid, 100);
        assert_eq!(c.groups, vec![4, 24]);
        assert!(c.privileged);
    }

    #[test]
    fn reads_own() {
        let c = of_thread(std::process::id()).unwrap();
        // SAFETY(test): getuid has no preconditions.
        assert_eq!(c.uid, unsafe { libc::geteuid() });
    }
}
