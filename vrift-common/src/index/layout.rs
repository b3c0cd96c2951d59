//! The byte layout of an index file (see the parent module's comment).

use crate::hash::Hash;

pub(super) const MAGIC: &[u8; 8] = b"VRIFTIX1";
/// Version 2 added the optional origins section (flag [`HAS_ORIGINS`]); version 3 the meta
/// section (owners, xattrs, link groups: each record's `meta_off`, `meta_len`) and the link
/// groups section.
pub(super) const VERSION: u32 = 3;
/// Header flag: an origins section follows the strings.
pub(super) const HAS_ORIGINS: u32 = 1;
/// Bytes per entry of the origins section: inode number, ctime (ns).
pub(super) const ORIGIN_LEN: usize = 16;
pub(super) const HEADER_LEN: usize = 160;
pub(super) const RECORD_LEN: usize = 88;
/// Where the header's checksum lies.
pub(super) const CHECKSUM_AT: usize = 144;
/// Bytes per member of the link groups section: group number, entry number.
pub(super) const LINK_LEN: usize = 8;
/// Entries per chunk of the decoded-entry cache.
pub(super) const CHUNK: usize = 256;

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// FNV-1a, 64 bits: cheap, and the same on every machine.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub count: u32,
    pub slots: u32,
    pub flags: u32,
    pub manifest: Hash,
    pub entries_off: u64,
    pub table_off: u64,
    pub children_off: u64,
    pub children_len: u64,
    pub strings_off: u64,
    pub strings_len: u64,
    pub total_len: u64,
    pub meta_off: u64,
    pub meta_len: u64,
    pub links_off: u64,
    /// Members (pairs) in the link groups section.
    pub links_len: u64,
    pub checksum: [u8; 16],
}

impl Header {
    /// Parse and check the header against the length of the file: every section must lie
    /// inside it, in order, and not overlap.
    pub fn parse(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than the header", b.len()));
        }
        if &b[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let version = u32_at(b, 8).unwrap_or(0);
        if version != VERSION {
            return Err(format!(
                "index version {version} (this vrift reads {VERSION})"
            ));
        }
        let flags = u32_at(b, 20).unwrap_or(u32::MAX);
        if flags & !HAS_ORIGINS != 0 {
            return Err(format!("unknown header flags {flags:#x}"));
        }
        let g = |at| u64_at(b, at).unwrap_or(u64::MAX);
        let h = Header {
            count: u32_at(b, 12).unwrap_or(0),
            slots: u32_at(b, 16).unwrap_or(0),
            flags,
            manifest: Hash(b[24..56].try_into().expect("32 bytes")),
            entries_off: g(56),
            table_off: g(64),
            children_off: g(72),
            children_len: g(80),
            strings_off: g(88),
            strings_len: g(96),
            total_len: g(104),
            meta_off: g(112),
            meta_len: g(120),
            links_off: g(128),
            links_len: g(136),
            checksum: b[CHECKSUM_AT..CHECKSUM_AT + 16]
                .try_into()
                .expect("16 bytes"),
        };
        if h.total_len != b.len() as u64 {
            return Err(format!(
                "{} bytes where the header says {} (truncated?)",
                b.len(),
                h.total_len
            ));
        }
        if h.slots != 0 && !h.slots.is_power_of_two() {
            return Err(format!("{} hash slots is not a power of two", h.slots));
        }
        if h.count > 0 && h.slots < h.count {
            return Err("fewer hash slots than entries".into());
        }
        let sections = [
            (h.entries_off, u64::from(h.count) * RECORD_LEN as u64),
            (h.table_off, u64::from(h.slots) * 4),
            (h.children_off, h.children_len.saturating_mul(4)),
            (h.strings_off, h.strings_len),
            (h.meta_off, h.meta_len),
            (h.links_off, h.links_len.saturating_mul(LINK_LEN as u64)),
            (h.origins_off(), h.origins_len()),
        ];
        let mut at = HEADER_LEN as u64;
        for (off, len) in sections {
            let end = off.checked_add(len).ok_or("section length overflows")?;
            if off < at || end > h.total_len {
                return Err("sections out of order or outside the file".into());
            }
            at = end;
        }
        Ok(h)
    }

    /// Where the origins section starts: right after the link groups.
    pub fn origins_off(&self) -> u64 {
        self.links_off
            .saturating_add(self.links_len.saturating_mul(LINK_LEN as u64))
    }

    /// The origins section's length (0 without one).
    pub fn origins_len(&self) -> u64 {
        if self.flags & HAS_ORIGINS != 0 {
            u64::from(self.count) * ORIGIN_LEN as u64
        } else {
            0
        }
    }

    pub fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.count.to_le_bytes());
        out[16..20].copy_from_slice(&self.slots.to_le_bytes());
        out[20..24].copy_from_slice(&self.flags.to_le_bytes());
        out[24..56].copy_from_slice(&self.manifest.0);
        for (at, v) in [
            (56, self.entries_off),
            (64, self.table_off),
            (72, self.children_off),
            (80, self.children_len),
            (88, self.strings_off),
            (96, self.strings_len),
            (104, self.total_len),
            (112, self.meta_off),
            (120, self.meta_len),
            (128, self.links_off),
            (136, self.links_len),
        ] {
            out[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        out[CHECKSUM_AT..CHECKSUM_AT + 16].copy_from_slice(&self.checksum);
    }
}

/// Where a record's kind byte lies in it.
pub(super) const KIND_AT: usize = 16;

/// One entry's fixed-size record.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Record {
    pub path_off: u32,
    pub path_len: u32,
    pub target_off: u32,
    pub target_len: u32,
    pub kind: u8,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: [u8; 32],
    pub children_start: u32,
    pub children_count: u32,
    /// The entry's owner, xattrs and link group in the meta section (the manifest's own
    /// encoding of them); `meta_len` 0: none.
    pub meta_off: u32,
    pub meta_len: u32,
}

impl Record {
    pub fn parse(b: &[u8], at: usize) -> Option<Record> {
        let r = b.get(at..at.checked_add(RECORD_LEN)?)?;
        let u = |o| u32_at(r, o).expect("inside the record");
        let q = |o| u64_at(r, o).expect("inside the record");
        Some(Record {
            path_off: u(0),
            path_len: u(4),
            target_off: u(8),
            target_len: u(12),
            kind: r[KIND_AT],
            mode: u(20),
            size: q(24),
            mtime_ns: q(32) as i64,
            hash: r[40..72].try_into().expect("32 bytes"),
            children_start: u(72),
            children_count: u(76),
            meta_off: u(80),
            meta_len: u(84),
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        for v in [
            self.path_off,
            self.path_len,
            self.target_off,
            self.target_len,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[self.kind, 0, 0, 0]);
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.children_start.to_le_bytes());
        out.extend_from_slice(&self.children_count.to_le_bytes());
        out.extend_from_slice(&self.meta_off.to_le_bytes());
        out.extend_from_slice(&self.meta_len.to_le_bytes());
        debug_assert_eq!(out.len() - start, RECORD_LEN);
    }
}
