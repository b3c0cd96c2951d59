//! The canonical binary encoding of a manifest, all integers little-endian:
//!
//! ```text
//! magic    8 bytes  "VRIFTMF\0"
//! version  u32      1 or 2
//! count    u64      number of entries
//! entries  count x  path_len u32, path bytes, kind u8 (0 file, 1 dir, 2 symlink, 3 fifo,
//!                   4 whiteout), mode u32, size u64, mtime_ns i64, then for a file its 32-byte BLAKE3
//!                   hash, for a symlink target_len u32 and the target bytes;
//!                   version 2 only: flags u8 (1 owner, 2 link group, 4 xattrs), then as
//!                   flagged uid u32 gid u32; link group u64; xattr count u32 and per xattr
//!                   name_len u32, name, value_len u32, value
//! checksum 32 bytes BLAKE3 of everything before it
//! ```
//!
//! Entries are in strictly increasing raw-byte order of their paths, xattrs in strictly
//! increasing order of their names, link groups numbered in order of first appearance (see
//! `meta`), so one tree has exactly one encoding. A manifest with nothing version 2 adds
//! (no FIFO, whiteout, owner, xattr or link group) is written as version 1: plain trees keep
//! the bytes, and so the hash, they always had.
//!
//! A whiteout (kind 4, version 2 only: the path is removed from the layers below, see
//! `--base`) is a record of its own among the entries, in path order: its mode, size and
//! mtime are zero, its flags byte is 0, and it is never the root. It is kept apart from the
//! entries in memory (`Manifest::whiteouts`).

use std::path::Path;

use super::meta::{self, EntryMeta, EntryOwner, Xattr};
use super::{is_valid_rel_path, Entry, EntryKind, ManifestError, RelPath};
use crate::hash::Hash;

pub const MAGIC: &[u8; 8] = b"VRIFTMF\0";
/// The newest version this vrift reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// The version of manifests with nothing version 2 adds.
pub const FORMAT_VERSION_1: u32 = 1;
const KIND_WHITEOUT: u8 = 4;
const FLAG_OWNER: u8 = 1;
const FLAG_LINK: u8 = 2;
const FLAG_XATTRS: u8 = 4;
const HEADER_LEN: usize = 8 + 4 + 8;
const CHECKSUM_LEN: usize = 32;
/// The smallest encoded entry (the root dir, empty path), to bound allocations.
const MIN_ENTRY_LEN: usize = 4 + 1 + 4 + 8 + 8;

/// 2 if an entry carries anything version 1 cannot say, or there are whiteouts; else 1.
pub(super) fn version_needed(entries: &[(RelPath, Entry)], whiteouts: &[RelPath]) -> u32 {
    if !whiteouts.is_empty()
        || entries
            .iter()
            .any(|(_, e)| e.kind == EntryKind::Fifo || !e.meta.is_empty())
    {
        FORMAT_VERSION
    } else {
        FORMAT_VERSION_1
    }
}

/// A manifest without whiteouts (the tests' hand-made encodings).
#[cfg(test)]
pub(super) fn encode(entries: &[(RelPath, Entry)]) -> Vec<u8> {
    encode_with_whiteouts(entries, &[])
}

/// Both lists sorted by path, with no path in both.
pub(super) fn encode_with_whiteouts(
    entries: &[(RelPath, Entry)],
    whiteouts: &[RelPath],
) -> Vec<u8> {
    encode_as(entries, whiteouts, version_needed(entries, whiteouts))
}

/// The layout of `version` whatever the entries need (the tests build non-canonical files).
pub(super) fn encode_as(
    entries: &[(RelPath, Entry)],
    whiteouts: &[RelPath],
    version: u32,
) -> Vec<u8> {
    let body: usize = entries
        .iter()
        .map(|(p, e)| 4 + p.len() + 1 + 4 + 8 + 8 + 32 + 4 + e.target.len())
        .sum::<usize>()
        + whiteouts
            .iter()
            .map(|p| MIN_ENTRY_LEN + 1 + p.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(HEADER_LEN + body + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&((entries.len() + whiteouts.len()) as u64).to_le_bytes());
    let mut w = whiteouts.iter().peekable();
    for (path, e) in entries {
        while let Some(wp) = w.next_if(|wp| wp.as_slice() < path.as_slice()) {
            encode_whiteout(&mut out, wp);
        }
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.push(kind_byte(e.kind));
        out.extend_from_slice(&e.mode.to_le_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.mtime_ns.to_le_bytes());
        match e.kind {
            EntryKind::File => out.extend_from_slice(&e.hash.0),
            EntryKind::Symlink => {
                out.extend_from_slice(&(e.target.len() as u32).to_le_bytes());
                out.extend_from_slice(&e.target);
            }
            EntryKind::Dir | EntryKind::Fifo => {}
        }
        if version >= 2 {
            encode_meta(&mut out, &e.meta);
        }
    }
    for wp in w {
        encode_whiteout(&mut out, wp);
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

fn encode_whiteout(out: &mut Vec<u8>, path: &[u8]) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.push(KIND_WHITEOUT);
    out.extend_from_slice(&[0; 4 + 8 + 8]);
    out.push(0); // no flags
}

/// A decoded record: an entry, or a whiteout.
enum Record<'a> {
    Entry(Fields<'a>),
    Whiteout,
}

/// An entry as read, its symlink target still in the bytes (a check that builds nothing
/// copies nothing).
struct Fields<'a> {
    kind: EntryKind,
    hash: Hash,
    size: u64,
    mode: u32,
    mtime_ns: i64,
    target: &'a [u8],
    meta: EntryMeta,
}

impl Fields<'_> {
    fn into_entry(self) -> Entry {
        Entry {
            kind: self.kind,
            hash: self.hash,
            size: self.size,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            target: self.target.to_vec(),
            meta: self.meta,
        }
    }
}

/// The decoded entries and whiteouts, each sorted by path.
type Decoded = (Vec<(RelPath, Entry)>, Vec<RelPath>);

fn encode_meta(out: &mut Vec<u8>, m: &EntryMeta) {
    let mut flags = 0;
    if m.owner.is_some() {
        flags |= FLAG_OWNER;
    }
    if m.link != 0 {
        flags |= FLAG_LINK;
    }
    if !m.xattrs.is_empty() {
        flags |= FLAG_XATTRS;
    }
    out.push(flags);
    if let Some(o) = m.owner {
        out.extend_from_slice(&o.uid.to_le_bytes());
        out.extend_from_slice(&o.gid.to_le_bytes());
    }
    if m.link != 0 {
        out.extend_from_slice(&m.link.to_le_bytes());
    }
    if !m.xattrs.is_empty() {
        out.extend_from_slice(&(m.xattrs.len() as u32).to_le_bytes());
        for x in &m.xattrs {
            out.extend_from_slice(&(x.name.len() as u32).to_le_bytes());
            out.extend_from_slice(&x.name);
            out.extend_from_slice(&(x.value.len() as u32).to_le_bytes());
            out.extend_from_slice(&x.value);
        }
    }
}

/// One entry's version 2 fields in this encoding (flags, then as flagged), for the manifest
/// index, which keeps them so: one encoding, one decoder and its checks.
pub(crate) fn encode_entry_meta(m: &EntryMeta) -> Vec<u8> {
    let mut out = Vec::new();
    encode_meta(&mut out, m);
    out
}

/// The version 2 fields [`encode_entry_meta`] made, checked as the decoder checks a
/// manifest's (flags, a link group not 0, xattr names valid, sorted and unique, values not
/// too large), with nothing left over.
pub(crate) fn decode_entry_meta(bytes: &[u8]) -> Result<EntryMeta, String> {
    let mut r = Reader { bytes, pos: 0 };
    match read_meta(&mut r) {
        None => Err("owner, xattrs or link group truncated".to_string()),
        Some(Err(e)) => Err(e),
        Some(Ok(_)) if r.remaining() != 0 => {
            Err("trailing bytes after the owner, xattrs and link group".to_string())
        }
        Some(Ok(m)) => Ok(m),
    }
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
        EntryKind::Fifo => 3,
    }
}

/// Whether [`scan`] checks the checksum, or its caller vouches for the bytes as a whole.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Checksum {
    Check,
    /// The caller knows the bytes' BLAKE3 to be that of an encoding vrift made, which is
    /// stronger than the checksum (see [`super::Manifest::decode_canonical`]).
    Vouched,
}

pub(super) fn decode(bytes: &[u8], path: &Path) -> Result<Decoded, ManifestError> {
    decode_with(bytes, path, Checksum::Check)
}

pub(super) fn decode_with(
    bytes: &[u8],
    path: &Path,
    checksum: Checksum,
) -> Result<Decoded, ManifestError> {
    let mut entries: Vec<(RelPath, Entry)> = Vec::new();
    let mut whiteouts: Vec<RelPath> = Vec::new();
    let version = scan(bytes, path, checksum, |count, rel, rec| match rec {
        Record::Entry(e) => {
            if entries.capacity() == 0 {
                entries.reserve_exact(count);
            }
            entries.push((rel.to_vec(), e.into_entry()))
        }
        Record::Whiteout => whiteouts.push(rel.to_vec()),
    })?;
    if version >= 2 {
        let corrupt = |reason: String| ManifestError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        meta::check_links(&entries)
            .map_err(|(i, reason)| corrupt(format!("entry {i}: {reason}")))?;
        if version_needed(&entries, &whiteouts) != version {
            return Err(corrupt(
                "version 2 manifest with nothing version 2 adds (it is written as version 1)"
                    .to_string(),
            ));
        }
    }
    Ok((entries, whiteouts))
}

/// A check of `bytes` as whole as [`decode_with`]'s that builds nothing. True for a
/// version 1 encoding that passed it, which [`decode_with`] then cannot refuse (it repeats
/// the same checks over the same bytes), so it may be decoded later; false for a version 2
/// encoding, whose link groups and version are checked over the decoded entries: decode it
/// at once.
pub(super) fn check_version_1(
    bytes: &[u8],
    path: &Path,
    checksum: Checksum,
) -> Result<bool, ManifestError> {
    if bytes.get(8..12) != Some(&FORMAT_VERSION_1.to_le_bytes()[..]) {
        return Ok(false);
    }
    scan(bytes, path, checksum, |_, _, _| {})?;
    Ok(true)
}

/// Check the header, the checksum and each record in turn (its fields, its path, the
/// order), giving `record` each record with the header's count of records and the
/// record's path. The version read.
fn scan<'a>(
    bytes: &'a [u8],
    path: &Path,
    checksum_check: Checksum,
    mut record: impl FnMut(usize, &'a [u8], Record<'a>),
) -> Result<u32, ManifestError> {
    let corrupt = |reason: String| ManifestError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < MAGIC.len() {
        return Err(corrupt(if MAGIC.starts_with(bytes) {
            format!("truncated ({} bytes)", bytes.len())
        } else {
            "bad magic bytes".to_string()
        }));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("bad magic bytes".to_string()));
    }
    if bytes.len() < MAGIC.len() + 4 {
        return Err(corrupt(format!("truncated ({} bytes)", bytes.len())));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
        return Err(ManifestError::Version {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(corrupt(format!("truncated ({} bytes)", bytes.len())));
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if checksum_check == Checksum::Check && blake3::hash(body).as_bytes() != checksum {
        return Err(corrupt(
            "checksum mismatch (the file is truncated or damaged)".to_string(),
        ));
    }

    let mut r = Reader {
        bytes: body,
        pos: HEADER_LEN,
    };
    let count = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let max_count = (body.len() - HEADER_LEN) / MIN_ENTRY_LEN + 1;
    if count > max_count as u64 {
        return Err(corrupt(format!(
            "entry count {count} does not fit in the file"
        )));
    }
    let mut prev: Option<&[u8]> = None;
    for i in 0..count {
        let entry = read_entry(&mut r, version)
            .ok_or_else(|| corrupt(format!("entry {i} is truncated")))?;
        let (rel, e) = entry.map_err(|reason| corrupt(format!("entry {i}: {reason}")))?;
        if !is_valid_rel_path(rel) {
            return Err(corrupt(format!(
                "entry {i}: invalid path {:?}",
                super::display_path(rel)
            )));
        }
        if prev.is_some_and(|p| p >= rel) {
            return Err(corrupt(format!(
                "entry {i}: path {:?} is out of order or duplicated",
                super::display_path(rel)
            )));
        }
        prev = Some(rel);
        if matches!(e, Record::Whiteout) && rel.is_empty() {
            return Err(corrupt(format!("entry {i}: a whiteout of the root")));
        }
        record(count as usize, rel, e);
    }
    if r.pos != body.len() {
        return Err(corrupt(format!(
            "{} unexpected bytes after the last entry",
            body.len() - r.pos
        )));
    }
    Ok(version)
}

/// `None`: ran out of bytes; `Some(Err)`: a field with an impossible value.
fn read_entry<'a>(
    r: &mut Reader<'a>,
    version: u32,
) -> Option<Result<(&'a [u8], Record<'a>), String>> {
    let path_len = r.u32()? as usize;
    let path = r.take(path_len)?;
    let kind = match r.take(1)?[0] {
        0 => EntryKind::File,
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        3 if version >= 2 => EntryKind::Fifo,
        KIND_WHITEOUT if version >= 2 => {
            let rest = r.take(4 + 8 + 8 + 1)?;
            if rest.iter().any(|&b| b != 0) {
                return Some(Err(
                    "a whiteout with a mode, size, mtime or flags".to_string()
                ));
            }
            return Some(Ok((path, Record::Whiteout)));
        }
        k => return Some(Err(format!("bad kind {k}"))),
    };
    let mode = r.u32()?;
    let size = r.u64()?;
    let mtime_ns = r.u64()? as i64;
    let mut hash = Hash([0; 32]);
    let mut target: &[u8] = &[];
    match kind {
        EntryKind::File => hash.0.copy_from_slice(r.take(32)?),
        EntryKind::Symlink => {
            let len = r.u32()? as usize;
            target = r.take(len)?;
        }
        EntryKind::Dir | EntryKind::Fifo => {}
    }
    if kind == EntryKind::Fifo && size != 0 {
        return Some(Err(format!("fifo with size {size}")));
    }
    let meta = if version >= 2 {
        match read_meta(r)? {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        }
    } else {
        EntryMeta::default()
    };
    Some(Ok((
        path,
        Record::Entry(Fields {
            kind,
            hash,
            size,
            mode,
            mtime_ns,
            target,
            meta,
        }),
    )))
}

/// The version 2 fields of one entry (same `None`/`Some(Err)` convention as `read_entry`).
fn read_meta(r: &mut Reader<'_>) -> Option<Result<EntryMeta, String>> {
    let flags = r.take(1)?[0];
    if flags & !(FLAG_OWNER | FLAG_LINK | FLAG_XATTRS) != 0 {
        return Some(Err(format!("unknown flags {flags:#04x}")));
    }
    let mut m = EntryMeta::default();
    if flags & FLAG_OWNER != 0 {
        let uid = r.u32()?;
        let gid = r.u32()?;
        m.owner = Some(EntryOwner { uid, gid });
    }
    if flags & FLAG_LINK != 0 {
        m.link = r.u64()?;
        if m.link == 0 {
            return Some(Err("link group 0".to_string()));
        }
    }
    if flags & FLAG_XATTRS != 0 {
        let count = r.u32()? as usize;
        if count == 0 {
            return Some(Err("xattrs flagged but none listed".to_string()));
        }
        // Each xattr takes at least 9 bytes: bound the allocation by what is left.
        m.xattrs = Vec::with_capacity(count.min(r.remaining() / 9 + 1));
        for _ in 0..count {
            let len = r.u32()? as usize;
            let name = r.take(len)?.to_vec();
            let len = r.u32()? as usize;
            let value = r.take(len)?.to_vec();
            let x = Xattr { name, value };
            if let Err(e) = meta::valid_xattr(&x) {
                return Some(Err(e));
            }
            if m.xattrs.last().is_some_and(|prev| prev.name >= x.name) {
                return Some(Err(format!(
                    "xattr {:?} is out of order or duplicated",
                    super::escape_bytes(&x.name)
                )));
            }
            m.xattrs.push(x);
        }
    }
    Some(Ok(m))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}
