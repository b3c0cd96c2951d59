//! Building an index from a manifest, and saving it atomically.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::layout::{
    fnv1a, Header, Record, HAS_ORIGINS, HEADER_LEN, LINK_LEN, ORIGIN_LEN, RECORD_LEN,
};
use super::IndexError;
use crate::hash::Hash;
use crate::manifest::{encode_entry_meta, EntryKind, Manifest};
use crate::origin::Origins;

fn len32(n: usize, what: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{what}: {n} does not fit in 32 bits"))
}

/// The index bytes of `manifest` (whose hash is `hash`). Fails only for a manifest beyond
/// the format's 32-bit limits (4 Gi entries or 4 GiB of names).
pub fn encode(manifest: &Manifest, hash: &Hash) -> Result<Vec<u8>, String> {
    encode_inner(manifest, hash, None)
}

/// [`encode`] with an origins section: each entry's inode number and ctime on disk, from
/// `origins` (0 for a path it lacks, or whose number is not [`crate::origin::Origin::usable`]).
pub fn encode_with_origins(
    manifest: &Manifest,
    hash: &Hash,
    origins: &Origins,
) -> Result<Vec<u8>, String> {
    encode_inner(manifest, hash, Some(origins_section(manifest, origins)))
}

/// [`encode_with_origins`] from the section itself ([`origins_section`]'s bytes), which
/// must hold one record per entry.
pub fn encode_with_origins_section(
    manifest: &Manifest,
    hash: &Hash,
    section: &[u8],
) -> Result<Vec<u8>, String> {
    if section.len() != manifest.len() * ORIGIN_LEN {
        return Err(format!(
            "an origins section of {} bytes for {} entries",
            section.len(),
            manifest.len()
        ));
    }
    encode_inner(manifest, hash, Some(section.to_vec()))
}

/// The origins section of `manifest`'s index (see [`encode_with_origins`]): each entry's
/// inode number and ctime, 16 bytes in entry order.
pub fn origins_section(manifest: &Manifest, origins: &Origins) -> Vec<u8> {
    let mut out = Vec::with_capacity(manifest.len() * ORIGIN_LEN);
    for (path, _) in manifest.iter() {
        let (ino, ctime) = match origins.get(path) {
            Some(o) if o.usable() => (o.ino, o.ctime_ns),
            _ => (0, 0),
        };
        out.extend_from_slice(&ino.to_le_bytes());
        out.extend_from_slice(&ctime.to_le_bytes());
    }
    out
}

fn encode_inner(
    manifest: &Manifest,
    hash: &Hash,
    origins: Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let entries: Vec<(&[u8], &crate::manifest::Entry)> = manifest.iter().collect();
    let count = len32(entries.len(), "entries")?;
    // Strings: every path, then every symlink target.
    let mut strings = Vec::new();
    // Owners, xattrs and link groups, each entry's in the manifest's own encoding.
    let mut meta = Vec::new();
    // Link groups: (group, entry number) of every member, by group then path.
    let mut links: Vec<(u32, u32)> = Vec::new();
    let mut records = Vec::with_capacity(entries.len());
    for (i, (path, e)) in entries.iter().enumerate() {
        let path_off = len32(strings.len(), "names")?;
        strings.extend_from_slice(path);
        let target_off = len32(strings.len(), "names")?;
        strings.extend_from_slice(&e.target);
        let (meta_off, meta_len) = if e.meta.is_empty() {
            (0, 0)
        } else {
            let m = encode_entry_meta(&e.meta);
            let at = len32(meta.len(), "owners and xattrs")?;
            meta.extend_from_slice(&m);
            (at, len32(m.len(), "owners and xattrs")?)
        };
        if e.meta.link != 0 {
            links.push((len32(e.meta.link as usize, "link group")?, i as u32));
        }
        records.push(Record {
            path_off,
            path_len: len32(path.len(), "path")?,
            target_off,
            target_len: len32(e.target.len(), "target")?,
            kind: match e.kind {
                EntryKind::File => 0,
                EntryKind::Dir => 1,
                EntryKind::Symlink => 2,
                EntryKind::Fifo => 3,
            },
            mode: e.mode,
            size: e.size,
            mtime_ns: e.mtime_ns,
            hash: e.hash.0,
            meta_off,
            meta_len,
            ..Record::default()
        });
    }
    len32(strings.len(), "names")?;
    len32(meta.len(), "owners and xattrs")?;
    // Entries are in path order already: a stable sort by group keeps it within each.
    links.sort_by_key(|&(g, _)| g);
    // Children groups: entries are sorted by path, so each directory's children, found by
    // the parent's entry number, come out sorted by full path, hence by name.
    let index_of = |p: &[u8]| entries.binary_search_by(|(q, _)| (*q).cmp(p)).ok();
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); entries.len()];
    for (i, (path, _)) in entries.iter().enumerate() {
        if path.is_empty() {
            continue;
        }
        let parent = match path.iter().rposition(|&b| b == b'/') {
            Some(k) => &path[..k],
            None => &[][..],
        };
        if let Some(pi) = index_of(parent) {
            if entries[pi].1.kind == EntryKind::Dir {
                groups[pi].push(i as u32);
            }
        }
    }
    let mut children = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        records[i].children_start = len32(children.len(), "children")?;
        records[i].children_count = len32(g.len(), "children")?;
        children.extend_from_slice(g);
    }
    // The hash table: at most half full.
    let slots = (entries.len().max(1) * 2).next_power_of_two();
    let slots32 = len32(slots, "hash slots")?;
    let mut table = vec![0u32; slots];
    for (i, (path, _)) in entries.iter().enumerate() {
        let mut s = (fnv1a(path) as usize) & (slots - 1);
        while table[s] != 0 {
            s = (s + 1) & (slots - 1);
        }
        table[s] = i as u32 + 1;
    }

    let entries_off = HEADER_LEN as u64;
    let table_off = entries_off + (entries.len() * RECORD_LEN) as u64;
    let children_off = table_off + slots as u64 * 4;
    let strings_off = children_off + children.len() as u64 * 4;
    let meta_off = strings_off + strings.len() as u64;
    let links_off = meta_off + meta.len() as u64;
    let total_len = links_off
        + (links.len() * LINK_LEN) as u64
        + origins.as_ref().map_or(0, |o| o.len() as u64);
    let mut out = vec![0u8; HEADER_LEN];
    out.reserve(total_len as usize - HEADER_LEN);
    for r in &records {
        r.write(&mut out);
    }
    for s in &table {
        out.extend_from_slice(&s.to_le_bytes());
    }
    for c in &children {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(&strings);
    out.extend_from_slice(&meta);
    for (g, i) in &links {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&i.to_le_bytes());
    }
    if let Some(o) = &origins {
        out.extend_from_slice(o);
    }
    debug_assert_eq!(out.len() as u64, total_len);
    let checksum: [u8; 16] = blake3::hash(&out[HEADER_LEN..]).as_bytes()[..16]
        .try_into()
        .expect("16 bytes");
    let header = Header {
        count,
        slots: slots32,
        flags: if origins.is_some() { HAS_ORIGINS } else { 0 },
        manifest: *hash,
        entries_off,
        table_off,
        children_off,
        children_len: children.len() as u64,
        strings_off,
        strings_len: strings.len() as u64,
        total_len,
        meta_off,
        meta_len: meta.len() as u64,
        links_off,
        links_len: links.len() as u64,
        checksum,
    };
    header.write(&mut out[..HEADER_LEN]);
    Ok(out)
}

/// Write `bytes` to a temp file beside `path` and rename it over `path`: readers see the old
/// file or the whole new one, never a part. No fsync: an index is a cache, checked whole
/// (its checksum) before any run uses it, so one torn by a power cut is built again.
pub(super) fn save_atomic(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let temp = dir.join(format!(
        ".tmp{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&temp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io(e)
    })
}
