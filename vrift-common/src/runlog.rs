//! The change log of a run whose view lives inside the program's own processes (the
//! interposition shim): every change any process made, in one total order, so that every
//! process (and vrift, when the run ends) reaches the same view by replaying it through the
//! state machine.
//!
//! The file is a sequence of records, each `u32 length` + body, appended with one `write`
//! by a process holding an exclusive `flock` on the file. Readers need no lock: a writer
//! publishes the log's new length (the run's generation) only after its record is written,
//! and readers read up to the length they were shown.
//!
//! Replay is exact because the state machine is pure: a record carries everything the
//! operation used (caller, umask, clock, absolute paths).

use crate::hash::Hash;
use crate::manifest::RelPath;
use crate::vfs::{
    Caller, Cred, Errno, LayerSource, OpenFlags, Opened, RenameMode, Routed, TimeSpec, Truncate,
    View,
};

/// One change, with absolute paths (the caller's cwd already applied). The supervisor's
/// journal keeps the same changes as JSON lines (serde's form of this enum).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    Open {
        path: Vec<u8>,
        flags: i32,
        mode: u32,
    },
    Mkdir {
        path: Vec<u8>,
        mode: u32,
    },
    Rmdir {
        path: Vec<u8>,
    },
    Unlink {
        path: Vec<u8>,
    },
    Rename {
        old: Vec<u8>,
        new: Vec<u8>,
        flags: u32,
    },
    Link {
        old: Vec<u8>,
        new: Vec<u8>,
        follow: bool,
    },
    Symlink {
        target: Vec<u8>,
        path: Vec<u8>,
    },
    /// A FIFO, socket or device node (the supervisor's; the shim serves none).
    Mknod {
        path: Vec<u8>,
        mode: u32,
        /// The device number of a character or block device (0 otherwise).
        rdev: u64,
    },
    Chmod {
        path: Vec<u8>,
        mode: u32,
        follow: bool,
    },
    Utimens {
        path: Vec<u8>,
        atime: TimeSpec,
        mtime: TimeSpec,
        follow: bool,
    },
    /// chown family: `uid`/`gid` as the call passed them (`u32::MAX`, -1: unchanged).
    Chown {
        path: Vec<u8>,
        uid: u32,
        gid: u32,
        follow: bool,
    },
    Truncate {
        path: Vec<u8>,
        len: i64,
    },
    /// setxattr family: `flags` as the call passed them (XATTR_CREATE, XATTR_REPLACE).
    SetXattr {
        path: Vec<u8>,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
        follow: bool,
    },
    /// removexattr family.
    RemoveXattr {
        path: Vec<u8>,
        name: Vec<u8>,
        follow: bool,
    },
    /// A write finished and was hashed (used by a final commit; processes never log it,
    /// nor does the journal).
    #[serde(skip)]
    Commit {
        id: u64,
        hash: Hash,
        size: u64,
        mtime_ns: i64,
    },
}

/// A change and who made it when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub cred: Cred,
    pub umask: u32,
    pub now_ns: i64,
    pub op: Op,
}

/// What the state machine did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Opened(Opened),
    Rel(RelPath),
    Pair(RelPath, RelPath),
    Unit,
    Truncate(Truncate),
}

/// A log that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("change log damaged at byte {offset}: {reason}")]
pub struct LogError {
    pub offset: u64,
    pub reason: &'static str,
}

/// Run `r` through the state machine. The live process and every replay share this, so all
/// reach the same state.
pub fn apply<L: LayerSource>(view: &mut View<L>, r: &Record) -> Result<Routed<Done>, Errno> {
    let root = view.root().to_vec();
    let c = Caller {
        cred: &r.cred,
        cwd: &root,
        umask: r.umask,
        now_ns: r.now_ns,
    };
    apply_op(view, &c, &r.op)
}

/// Run `op` through the state machine as `c`: the one dispatch from a change to the state
/// machine, for the shim's log and the supervisor's journal alike.
pub fn apply_op<L: LayerSource>(
    view: &mut View<L>,
    c: &Caller,
    op: &Op,
) -> Result<Routed<Done>, Errno> {
    fn map<T>(
        res: Result<Routed<T>, Errno>,
        f: impl FnOnce(T) -> Done,
    ) -> Result<Routed<Done>, Errno> {
        res.map(|routed| match routed {
            Routed::View(t) => Routed::View(f(t)),
            Routed::Outside(p) => Routed::Outside(p),
            Routed::OutsideBoth(a, b) => Routed::OutsideBoth(a, b),
        })
    }
    match op {
        Op::Open { path, flags, mode } => map(
            view.open(c, path, OpenFlags::from_raw(*flags), *mode),
            Done::Opened,
        ),
        Op::Mkdir { path, mode } => map(view.mkdir(c, path, *mode), Done::Rel),
        Op::Rmdir { path } => map(view.rmdir(c, path), Done::Rel),
        Op::Unlink { path } => map(view.unlink(c, path), Done::Rel),
        Op::Rename { old, new, flags } => {
            let mode = RenameMode::from_linux_flags(*flags)?;
            map(view.rename(c, old, new, mode), |(a, b)| Done::Pair(a, b))
        }
        Op::Link { old, new, follow } => map(view.link(c, old, new, *follow), Done::Rel),
        Op::Symlink { target, path } => map(view.symlink(c, target, path), Done::Rel),
        Op::Mknod { path, mode, rdev } => map(view.mknod_dev(c, path, *mode, *rdev), Done::Rel),
        Op::Chmod { path, mode, follow } => {
            map(view.chmod(c, path, *mode, *follow), |()| Done::Unit)
        }
        Op::Utimens {
            path,
            atime,
            mtime,
            follow,
        } => map(view.utimens(c, path, *atime, *mtime, *follow), |()| {
            Done::Unit
        }),
        Op::Chown {
            path,
            uid,
            gid,
            follow,
        } => {
            let given = |id: u32| (id != u32::MAX).then_some(id);
            map(
                view.chown(c, path, given(*uid), given(*gid), *follow),
                |()| Done::Unit,
            )
        }
        Op::Truncate { path, len } => map(view.truncate(c, path, *len), Done::Truncate),
        Op::SetXattr {
            path,
            name,
            value,
            flags,
            follow,
        } => map(view.setxattr(c, path, name, value, *flags, *follow), |()| {
            Done::Unit
        }),
        Op::RemoveXattr { path, name, follow } => {
            map(view.removexattr(c, path, name, *follow), |()| Done::Unit)
        }
        Op::Commit {
            id,
            hash,
            size,
            mtime_ns,
        } => {
            view.commit(crate::vfs::DeltaId(*id), *hash, *size, *mtime_ns);
            Ok(Routed::View(Done::Unit))
        }
    }
}

// ---- encoding -----------------------------------------------------------------------------

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn time(&mut self, t: TimeSpec) {
        match t {
            TimeSpec::Now => self.u8(0),
            TimeSpec::Omit => self.u8(1),
            TimeSpec::Set(n) => {
                self.u8(2);
                self.u64(n as u64);
            }
        }
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl R<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(|s| s.to_vec())
    }
    fn bool(&mut self) -> Option<bool> {
        self.u8().map(|v| v != 0)
    }
    fn time(&mut self) -> Option<TimeSpec> {
        Some(match self.u8()? {
            0 => TimeSpec::Now,
            1 => TimeSpec::Omit,
            2 => TimeSpec::Set(self.u64()? as i64),
            _ => return None,
        })
    }
}

/// The bytes to append for `r`: length prefix included.
pub fn encode(r: &Record) -> Vec<u8> {
    let mut w = W(vec![0; 4]);
    w.u32(r.cred.uid);
    w.u32(r.cred.gid);
    w.u32(r.cred.groups.len() as u32);
    for g in &r.cred.groups {
        w.u32(*g);
    }
    w.u8(r.cred.privileged as u8);
    w.u32(r.umask);
    w.u64(r.now_ns as u64);
    match &r.op {
        Op::Open { path, flags, mode } => {
            w.u8(0);
            w.bytes(path);
            w.u32(*flags as u32);
            w.u32(*mode);
        }
        Op::Mkdir { path, mode } => {
            w.u8(1);
            w.bytes(path);
            w.u32(*mode);
        }
        Op::Rmdir { path } => {
            w.u8(2);
            w.bytes(path);
        }
        Op::Unlink { path } => {
            w.u8(3);
            w.bytes(path);
        }
        Op::Rename { old, new, flags } => {
            w.u8(4);
            w.bytes(old);
            w.bytes(new);
            w.u32(*flags);
        }
        Op::Link { old, new, follow } => {
            w.u8(5);
            w.bytes(old);
            w.bytes(new);
            w.u8(*follow as u8);
        }
        Op::Symlink { target, path } => {
            w.u8(6);
            w.bytes(target);
            w.bytes(path);
        }
        Op::Chmod { path, mode, follow } => {
            w.u8(7);
            w.bytes(path);
            w.u32(*mode);
            w.u8(*follow as u8);
        }
        Op::Utimens {
            path,
            atime,
            mtime,
            follow,
        } => {
            w.u8(8);
            w.bytes(path);
            w.time(*atime);
            w.time(*mtime);
            w.u8(*follow as u8);
        }
        Op::Truncate { path, len } => {
            w.u8(9);
            w.bytes(path);
            w.u64(*len as u64);
        }
        Op::Mknod { path, mode, rdev } => {
            w.u8(11);
            w.bytes(path);
            w.u32(*mode);
            w.u64(*rdev);
        }
        Op::Chown {
            path,
            uid,
            gid,
            follow,
        } => {
            w.u8(12);
            w.bytes(path);
            w.u32(*uid);
            w.u32(*gid);
            w.u8(*follow as u8);
        }
        Op::SetXattr {
            path,
            name,
            value,
            flags,
            follow,
        } => {
            w.u8(13);
            w.bytes(path);
            w.bytes(name);
            w.bytes(value);
            w.u32(*flags);
            w.u8(*follow as u8);
        }
        Op::RemoveXattr { path, name, follow } => {
            w.u8(14);
            w.bytes(path);
            w.bytes(name);
            w.u8(*follow as u8);
        }
        Op::Commit {
            id,
            hash,
            size,
            mtime_ns,
        } => {
            w.u8(10);
            w.u64(*id);
            w.0.extend_from_slice(&hash.0);
            w.u64(*size);
            w.u64(*mtime_ns as u64);
        }
    }
    let len = (w.0.len() - 4) as u32;
    w.0[..4].copy_from_slice(&len.to_le_bytes());
    w.0
}

fn decode_body(b: &[u8]) -> Option<Record> {
    let mut r = R { b, at: 0 };
    let uid = r.u32()?;
    let gid = r.u32()?;
    let n = r.u32()? as usize;
    if n > 65536 {
        return None;
    }
    let groups = (0..n).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
    let privileged = r.bool()?;
    let umask = r.u32()?;
    let now_ns = r.u64()? as i64;
    let op = match r.u8()? {
        0 => Op::Open {
            path: r.bytes()?,
            flags: r.u32()? as i32,
            mode: r.u32()?,
        },
        1 => Op::Mkdir {
            path: r.bytes()?,
            mode: r.u32()?,
        },
        2 => Op::Rmdir { path: r.bytes()? },
        3 => Op::Unlink { path: r.bytes()? },
        4 => Op::Rename {
            old: r.bytes()?,
            new: r.bytes()?,
            flags: r.u32()?,
        },
        5 => Op::Link {
            old: r.bytes()?,
            new: r.bytes()?,
            follow: r.bool()?,
        },
        6 => Op::Symlink {
            target: r.bytes()?,
            path: r.bytes()?,
        },
        7 => Op::Chmod {
            path: r.bytes()?,
            mode: r.u32()?,
            follow: r.bool()?,
        },
        8 => Op::Utimens {
            path: r.bytes()?,
            atime: r.time()?,
            mtime: r.time()?,
            follow: r.bool()?,
        },
        9 => Op::Truncate {
            path: r.bytes()?,
            len: r.u64()? as i64,
        },
        10 => Op::Commit {
            id: r.u64()?,
            hash: Hash(r.take(32)?.try_into().ok()?),
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
        },
        11 => Op::Mknod {
            path: r.bytes()?,
            mode: r.u32()?,
            rdev: r.u64()?,
        },
        12 => Op::Chown {
            path: r.bytes()?,
            uid: r.u32()?,
            gid: r.u32()?,
            follow: r.bool()?,
        },
        13 => Op::SetXattr {
            path: r.bytes()?,
            name: r.bytes()?,
            value: r.bytes()?,
            flags: r.u32()?,
            follow: r.bool()?,
        },
        14 => Op::RemoveXattr {
            path: r.bytes()?,
            name: r.bytes()?,
            follow: r.bool()?,
        },
        _ => return None,
    };
    (r.at == b.len()).then_some(Record {
        cred: Cred {
            uid,
            gid,
            groups,
            privileged,
        },
        umask,
        now_ns,
        op,
    })
}

/// Decode every record of `bytes` (a whole log, or the part of one from a record boundary);
/// `base` is the offset of `bytes` in the log, for error messages.
pub fn decode_all(bytes: &[u8], base: u64) -> Result<Vec<Record>, LogError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let err = |reason| LogError {
            offset: base + at as u64,
            reason,
        };
        let len = bytes
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()) as usize)
            .ok_or_else(|| err("truncated length"))?;
        let body = bytes
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| err("truncated record"))?;
        out.push(decode_body(body).ok_or_else(|| err("malformed record"))?);
        at += 4 + len;
    }
    Ok(out)
}

/// Replay `records` over `view`; records the state machine refuses change nothing.
pub fn replay<L: LayerSource>(view: &mut View<L>, records: &[Record]) {
    for r in records {
        let _ = apply(view, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Manifest};
    use crate::vfs::Owner;

    fn rec(op: Op) -> Record {
        Record {
            cred: Cred {
                uid: 1000,
                gid: 100,
                groups: vec![4, 27],
                privileged: false,
            },
            umask: 0o022,
            now_ns: 1_700_000_000_000_000_001,
            op,
        }
    }

    fn all_ops() -> Vec<Op> {
        vec![
            Op::Open {
                path: b"/r/a".to_vec(),
                flags: libc::O_WRONLY | libc::O_CREAT,
                mode: 0o644,
            },
            Op::Mkdir {
                path: b"/r/d".to_vec(),
                mode: 0o755,
            },
            Op::Rmdir {
                path: b"/r/d".to_vec(),
            },
            Op::Unlink {
                path: b"/r/\xffodd".to_vec(),
            },
            Op::Rename {
                old: b"/r/a".to_vec(),
                new: b"/r/b".to_vec(),
                flags: 1,
            },
            Op::Link {
                old: b"/r/b".to_vec(),
                new: b"/r/c".to_vec(),
                follow: true,
            },
            Op::Symlink {
                target: b"b".to_vec(),
                path: b"/r/l".to_vec(),
            },
            Op::Mknod {
                path: b"/r/fifo".to_vec(),
                mode: 0o10644,
                rdev: 0,
            },
            Op::Chmod {
                path: b"/r/b".to_vec(),
                mode: 0o600,
                follow: false,
            },
            Op::Utimens {
                path: b"/r/b".to_vec(),
                atime: TimeSpec::Omit,
                mtime: TimeSpec::Set(-3),
                follow: true,
            },
            Op::Truncate {
                path: b"/r/b".to_vec(),
                len: 7,
            },
            Op::Chown {
                path: b"/r/b".to_vec(),
                uid: u32::MAX,
                gid: 27,
                follow: false,
            },
            Op::SetXattr {
                path: b"/r/b".to_vec(),
                name: b"user.k".to_vec(),
                value: b"\0v".to_vec(),
                flags: 1,
                follow: true,
            },
            Op::RemoveXattr {
                path: b"/r/b".to_vec(),
                name: b"user.k".to_vec(),
                follow: false,
            },
            Op::Commit {
                id: 3,
                hash: Hash::of(b"x"),
                size: 1,
                mtime_ns: 9,
            },
        ]
    }

    #[test]
    fn records_round_trip() {
        let recs: Vec<Record> = all_ops().into_iter().map(rec).collect();
        let mut log = Vec::new();
        for r in &recs {
            log.extend(encode(r));
        }
        assert_eq!(decode_all(&log, 0).unwrap(), recs);
    }

    #[test]
    fn damage_is_an_error_with_its_offset() {
        let mut log = encode(&rec(all_ops().remove(0)));
        let first = log.len();
        log.extend(encode(&rec(all_ops().remove(1))));
        for cut in 1..log.len() {
            if cut == first {
                continue;
            }
            let e = decode_all(&log[..cut], 100).unwrap_err();
            let want = if cut < first { 100 } else { 100 + first as u64 };
            assert_eq!(e.offset, want, "cut at {cut}");
        }
        let mut bad = log.clone();
        bad[4 + 4 + 4 + 4 + 8 + 1 + 4 + 8] = 99; // the first record's op tag
        assert_eq!(decode_all(&bad, 0).unwrap_err().reason, "malformed record");
    }

    #[test]
    fn two_replays_of_one_log_reach_the_same_view() {
        let dir = Entry::dir(0o755, 1);
        let m = Manifest::from_entries(vec![(b"".to_vec(), dir.clone())]);
        let owner = Owner {
            uid: 1000,
            gid: 100,
        };
        let recs: Vec<Record> = all_ops().into_iter().take(10).map(rec).collect();
        let mut a = View::new(b"/r", owner, vec![&m]).unwrap();
        let mut b = View::new(b"/r", owner, vec![&m]).unwrap();
        replay(&mut a, &recs);
        for r in &recs {
            let _ = apply(&mut b, r);
        }
        assert_eq!(a.delta().len(), b.delta().len());
        assert!(a.lookup(b"b").is_some(), "the rename happened");
        assert_eq!(a.lookup(b"b"), b.lookup(b"b"));
        assert_eq!(a.lookup(b"l"), b.lookup(b"l"));
        assert_eq!(a.lookup(b"d"), None);
    }

    #[test]
    fn a_replayed_setxattr_and_removexattr_reach_the_runs_xattrs() {
        use crate::manifest::Xattr;
        let x = |n: &[u8], v: &[u8]| Xattr {
            name: n.to_vec(),
            value: v.to_vec(),
        };
        let mut f = Entry::file(Hash::of(b"f"), 1, 0o644, 1);
        f.meta.xattrs = vec![x(b"user.a", b"1"), x(b"user.b", b"2")];
        let dir = Entry::dir(0o755, 1);
        let m = Manifest::from_entries(vec![(b"".to_vec(), dir), (b"f".to_vec(), f)]);
        let owner = Owner {
            uid: 1000,
            gid: 100,
        };
        let ops = [
            Op::SetXattr {
                path: b"/r/f".to_vec(),
                name: b"user.c".to_vec(),
                value: b"3".to_vec(),
                flags: 0,
                follow: true,
            },
            Op::RemoveXattr {
                path: b"/r/f".to_vec(),
                name: b"user.a".to_vec(),
                follow: true,
            },
            // Refused (XATTR_CREATE of a name there is): the replay refuses it too.
            Op::SetXattr {
                path: b"/r/f".to_vec(),
                name: b"user.b".to_vec(),
                value: b"no".to_vec(),
                flags: crate::vfs::XATTR_CREATE,
                follow: true,
            },
        ];
        let mut log = Vec::new();
        for op in ops {
            log.extend(encode(&rec(op)));
        }
        let mut v = View::new(b"/r", owner, vec![&m]).unwrap();
        replay(&mut v, &decode_all(&log, 0).unwrap());
        let e = v.lookup(b"f").unwrap();
        assert_eq!(e.meta.xattrs, vec![x(b"user.b", b"2"), x(b"user.c", b"3")]);
        assert_eq!(e.ctime_ns, 1_700_000_000_000_000_001);
    }
}
