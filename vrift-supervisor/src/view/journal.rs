//! The run's journal: every change the view accepted, in order, with the caller's identity
//! and the time it used, so the state machine can replay it exactly.
//!
//! The supervisor appends one JSON line per change (no fsync: a killed vrift loses nothing
//! the kernel already has; only a machine crash could). If vrift dies, the next `vrift run`
//! replays the journal over the run's starting manifest, commits the private copies left in
//! the run's farm, and saves the result: every write that was closed is recovered.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use vrift_common::runlog::Op;
use vrift_common::vfs::Cred;

/// A time argument, as the view takes it.
/// What a journal line holds: a change, as the state machine and the shim's change log
/// take it, or the undoing of an earlier one. A change is written as serde writes
/// `runlog::Op` (`{"Mkdir":{"path":[..],"mode":493}}`), which is what journals have always
/// held, so a journal left by an older vrift is still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The open with this sequence number could not be delivered and was undone.
    Undo { seq: u64 },
    #[serde(untagged)]
    Change(Op),
}

/// Who made a change, and when (the view reads no clock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub privileged: bool,
    pub umask: u32,
    pub now_ns: i64,
    pub op: Entry,
}

impl Record {
    /// The change as the shim's change log records it (`vrift_common::runlog::Record`), so
    /// a replay of either goes through one function, `runlog::replay`; None for an undo.
    pub fn change(&self) -> Option<vrift_common::runlog::Record> {
        Some(vrift_common::runlog::Record {
            cred: self.cred(),
            umask: self.umask,
            now_ns: self.now_ns,
            op: match &self.op {
                Entry::Change(op) => op.clone(),
                Entry::Undo { .. } => return None,
            },
        })
    }

    pub fn cred(&self) -> Cred {
        Cred {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
            privileged: self.privileged,
        }
    }
}

impl From<Op> for Entry {
    fn from(op: Op) -> Entry {
        Entry::Change(op)
    }
}

/// The append end of a journal file.
pub struct Journal {
    file: std::fs::File,
    next_seq: u64,
    /// Where the number of records is published (8 bytes, little-endian) for the shim in
    /// the run's processes (`shim+supervisor`): a change is recorded here before it is
    /// carried out and answered, so no process can see its effect and not the count.
    published: Option<std::fs::File>,
}

impl Journal {
    pub fn create(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            file,
            next_seq: 1,
            published: None,
        })
    }

    /// Publish the number of records into `file` from now on (see [`Journal`]).
    pub fn publish_count_to(mut self, file: std::fs::File) -> Journal {
        self.published = Some(file);
        self
    }

    /// Append a record; returns its sequence number. An error means the record is not
    /// (wholly) in the journal, so the change must not be accepted.
    pub fn append(
        &mut self,
        cred: &Cred,
        umask: u32,
        now_ns: i64,
        op: impl Into<Entry>,
    ) -> std::io::Result<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let rec = Record {
            seq,
            uid: cred.uid,
            gid: cred.gid,
            groups: cred.groups.clone(),
            privileged: cred.privileged,
            umask,
            now_ns,
            op: op.into(),
        };
        let mut line = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per record: a record is either whole in the file or absent.
        self.file.write_all(&line)?;
        if let Some(f) = &self.published {
            std::os::unix::fs::FileExt::write_all_at(f, &seq.to_le_bytes(), 0)?;
        }
        Ok(seq)
    }
}

/// Read a journal; a torn last line (vrift killed mid-write: no newline after it) is
/// dropped, and records undone later are left out. Any other unreadable line is an error:
/// the journal was damaged, and replaying around the hole would give a wrong view.
pub fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut recs: Vec<Record> = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if f.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let whole = line.last() == Some(&b'\n');
        match serde_json::from_slice::<Record>(&line) {
            Ok(r) => recs.push(r),
            Err(_) if !whole => break,
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: line {number} is damaged: {e}", path.display()),
                ))
            }
        }
    }
    let undone: std::collections::HashSet<u64> = recs
        .iter()
        .filter_map(|r| match r.op {
            Entry::Undo { seq } => Some(seq),
            _ => None,
        })
        .collect();
    recs.retain(|r| !matches!(r.op, Entry::Undo { .. }) && !undone.contains(&r.seq));
    Ok(recs)
}

/// The changes a journal holds, in order, as the shim's change log holds its own ([`read`]
/// and [`Record::change`]): what a recovery replays with `runlog::replay`.
pub fn read_changes(path: &Path) -> std::io::Result<Vec<vrift_common::runlog::Record>> {
    Ok(read(path)?.iter().filter_map(Record::change).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changes_read_back_are_the_logs_records() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal");
        let mut j = Journal::create(&p).unwrap();
        let cred = Cred::user(1000, 1000);
        j.append(&cred, 0o027, 5, mkdir(b"/p/d")).unwrap();
        let b = j.append(&cred, 0o022, 6, mkdir(b"/p/e")).unwrap();
        j.append(&cred, 0o022, 7, Entry::Undo { seq: b }).unwrap();
        let changes = read_changes(&p).unwrap();
        assert_eq!(
            changes,
            vec![vrift_common::runlog::Record {
                cred,
                umask: 0o027,
                now_ns: 5,
                op: vrift_common::runlog::Op::Mkdir {
                    path: b"/p/d".to_vec(),
                    mode: 0o755
                },
            }]
        );
    }

    /// Lines as journals were written when the journal had an enum of its own: a run
    /// killed by an older vrift is still recovered.
    #[test]
    fn a_journal_written_before_it_shared_the_logs_changes_is_read_the_same() {
        let old = concat!(
            r#"{"seq":1,"uid":0,"gid":0,"groups":[],"privileged":true,"umask":18,"now_ns":5,"op":{"Mkdir":{"path":[47,112,47,100],"mode":493}}}"#,
            "\n",
            r#"{"seq":2,"uid":0,"gid":0,"groups":[],"privileged":true,"umask":18,"now_ns":6,"op":{"Utimens":{"path":[47,112,47,100],"atime":"Now","mtime":{"Set":7},"follow":true}}}"#,
            "\n",
            r#"{"seq":3,"uid":0,"gid":0,"groups":[],"privileged":true,"umask":18,"now_ns":7,"op":{"SetXattr":{"path":[47,112],"name":[117,46,97],"value":[1],"flags":1,"follow":false}}}"#,
            "\n",
            r#"{"seq":4,"uid":0,"gid":0,"groups":[],"privileged":true,"umask":18,"now_ns":8,"op":{"Open":{"path":[47,112,47,102],"flags":65,"mode":420}}}"#,
            "\n",
            r#"{"seq":5,"uid":0,"gid":0,"groups":[],"privileged":true,"umask":18,"now_ns":9,"op":{"Undo":{"seq":4}}}"#,
            "\n",
        );
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal");
        std::fs::write(&p, old).unwrap();
        let ops: Vec<Op> = read_changes(&p)
            .unwrap()
            .into_iter()
            .map(|r| r.op)
            .collect();
        let expected = vec![
            Op::Mkdir {
                path: b"/p/d".to_vec(),
                mode: 0o755,
            },
            Op::Utimens {
                path: b"/p/d".to_vec(),
                atime: vrift_common::vfs::TimeSpec::Now,
                mtime: vrift_common::vfs::TimeSpec::Set(7),
                follow: true,
            },
            Op::SetXattr {
                path: b"/p".to_vec(),
                name: b"u.a".to_vec(),
                value: vec![1],
                flags: 1,
                follow: false,
            },
        ];
        assert_eq!(ops, expected);
        // And what is written now is those same lines.
        let q = t.path().join("again");
        let mut j = Journal::create(&q).unwrap();
        for (i, op) in expected.into_iter().enumerate() {
            j.append(&Cred::root(), 0o022, 5 + i as i64, op).unwrap();
        }
        let written = std::fs::read_to_string(&q).unwrap();
        let old_lines: Vec<&str> = old.lines().take(3).collect();
        assert_eq!(written.lines().collect::<Vec<_>>(), old_lines);
    }

    #[test]
    fn a_chown_is_read_back_for_the_replay() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal");
        let mut j = Journal::create(&p).unwrap();
        let chown = Op::Chown {
            path: b"/p/f".to_vec(),
            uid: 65534,
            gid: u32::MAX,
            follow: false,
        };
        j.append(&Cred::root(), 0o022, 5, chown).unwrap();
        let changes = read_changes(&p).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].op,
            vrift_common::runlog::Op::Chown {
                path: b"/p/f".to_vec(),
                uid: 65534,
                gid: u32::MAX,
                follow: false,
            }
        );
    }

    #[test]
    fn setxattr_and_removexattr_are_read_back_for_the_replay() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal");
        let mut j = Journal::create(&p).unwrap();
        let set = Op::SetXattr {
            path: b"/p/f".to_vec(),
            name: b"user.k".to_vec(),
            value: b"\0\xffv".to_vec(),
            flags: 2,
            follow: true,
        };
        let remove = Op::RemoveXattr {
            path: b"/p/f".to_vec(),
            name: b"user.gone".to_vec(),
            follow: false,
        };
        j.append(&Cred::root(), 0o022, 5, set).unwrap();
        j.append(&Cred::root(), 0o022, 6, remove).unwrap();
        let ops: Vec<_> = read_changes(&p)
            .unwrap()
            .into_iter()
            .map(|r| r.op)
            .collect();
        assert_eq!(
            ops,
            vec![
                vrift_common::runlog::Op::SetXattr {
                    path: b"/p/f".to_vec(),
                    name: b"user.k".to_vec(),
                    value: b"\0\xffv".to_vec(),
                    flags: 2,
                    follow: true,
                },
                vrift_common::runlog::Op::RemoveXattr {
                    path: b"/p/f".to_vec(),
                    name: b"user.gone".to_vec(),
                    follow: false,
                },
            ]
        );
    }

    fn mkdir(path: &[u8]) -> Op {
        Op::Mkdir {
            path: path.to_vec(),
            mode: 0o755,
        }
    }

    #[test]
    fn round_trip_drops_torn_tail_and_undone_records() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal");
        let mut j = Journal::create(&p).unwrap();
        let cred = Cred::user(1000, 1000);
        let a = j.append(&cred, 0o022, 5, mkdir(b"/p/d")).unwrap();
        let open = Op::Open {
            path: b"/p/f".to_vec(),
            flags: 0o101,
            mode: 0o644,
        };
        let b = j.append(&cred, 0o022, 6, open).unwrap();
        j.append(&cred, 0o022, 7, Entry::Undo { seq: b }).unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":9,\"uid\":10").unwrap();
        let recs = read(&p).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].seq, a);
        assert_eq!(recs[0].op, Entry::Change(mkdir(b"/p/d")));
        assert_eq!(recs[0].cred(), cred);
    }

    #[test]
    fn a_damaged_line_before_the_end_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal");
        let mut j = Journal::create(&p).unwrap();
        let cred = Cred::user(1000, 1000);
        j.append(&cred, 0o022, 5, mkdir(b"/p/a")).unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":2,\"garbage\n").unwrap();
        drop(f);
        let mut j = Journal {
            file: std::fs::OpenOptions::new().append(true).open(&p).unwrap(),
            next_seq: 3,
            published: None,
        };
        j.append(&cred, 0o022, 6, mkdir(b"/p/b")).unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn the_count_is_published_before_the_change_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("generation");
        std::fs::write(&count, [0u8; 8]).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&count)
            .unwrap();
        let mut j = Journal::create(&dir.path().join("journal"))
            .unwrap()
            .publish_count_to(f);
        let published =
            || u64::from_le_bytes(std::fs::read(&count).unwrap()[..8].try_into().unwrap());
        assert_eq!(published(), 0);
        j.append(&Cred::user(1, 1), 0, 0, mkdir(b"/p/x")).unwrap();
        assert_eq!(published(), 1);
        j.append(&Cred::user(1, 1), 0, 0, mkdir(b"/p/y")).unwrap();
        assert_eq!(published(), 2);
    }

    #[test]
    fn a_failed_write_is_reported() {
        // /dev/full takes no byte: every append fails.
        let mut j = Journal {
            file: std::fs::OpenOptions::new()
                .append(true)
                .open("/dev/full")
                .unwrap(),
            next_seq: 1,
            published: None,
        };
        let e = j
            .append(&Cred::user(1, 1), 0, 0, mkdir(b"/p/x"))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }
}
