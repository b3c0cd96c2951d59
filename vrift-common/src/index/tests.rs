use std::path::Path;

use super::layout::{CHECKSUM_AT, HEADER_LEN, RECORD_LEN};
use super::*;
use crate::manifest::{EntryOwner, RelPath, Xattr};
use crate::vfs::{Caller, Cred, Owner, Routed, View};

/// xorshift64*: deterministic pseudo-random numbers, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn entry(kind: EntryKind, rng: &mut Rng) -> Entry {
    let target = if kind == EntryKind::Symlink {
        let n = 1 + rng.below(20) as usize;
        (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
    } else {
        Vec::new()
    };
    Entry {
        kind,
        hash: if kind == EntryKind::File {
            Hash::of(&rng.next().to_le_bytes())
        } else {
            Hash([0; 32])
        },
        size: if kind == EntryKind::Symlink {
            target.len() as u64
        } else {
            rng.below(1 << 20)
        },
        mode: [0o644, 0o755, 0o600, 0o4755, 0o1777][rng.below(5) as usize],
        mtime_ns: rng.next() as i64,
        target,
        meta: Default::default(),
    }
}

/// A random tree: a root, directories nested a few deep, files and symlinks, names with
/// odd bytes (including '/'+1 = '0' and bytes above 0x7f, which sort around '/').
fn random_manifest(seed: u64, n: usize) -> Manifest {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut dirs: Vec<RelPath> = vec![Vec::new()];
    let mut out = vec![(Vec::new(), entry(EntryKind::Dir, &mut rng))];
    let alphabet: &[u8] = b"ab0.-_\xff\xc3z";
    for _ in 0..n {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let len = 1 + rng.below(4) as usize;
        let mut name: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        if name == b"." || name == b".." {
            name.push(b'x');
        }
        let mut path = parent.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        if dirs.contains(&path) || out.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let kind = match rng.below(10) {
            0..=2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            _ => EntryKind::File,
        };
        if kind == EntryKind::Dir {
            dirs.push(path.clone());
        }
        out.push((path, entry(kind, &mut rng)));
    }
    Manifest::from_entries(out)
}

/// [`random_manifest`] with what format version 2 adds: owners on some entries, xattrs
/// (`user.*` and ACL names, empty and long values, odd bytes) on some, and hard-link groups
/// of two to four files (each member a copy of its group's first, as on disk), some of
/// them in different directories.
fn random_manifest_with_meta(seed: u64, n: usize) -> Manifest {
    let base = random_manifest(seed, n);
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 3);
    let mut entries: Vec<(RelPath, Entry)> =
        base.iter().map(|(p, e)| (p.to_vec(), e.clone())).collect();
    for (_, e) in entries.iter_mut() {
        if rng.below(3) == 0 {
            e.meta.owner = Some(EntryOwner {
                uid: [0, 1000, 65534, u32::MAX - 1][rng.below(4) as usize],
                gid: rng.below(70_000) as u32,
            });
        }
        if rng.below(3) == 0 {
            for _ in 0..1 + rng.below(4) {
                let name = match rng.below(5) {
                    0 => b"system.posix_acl_access".to_vec(),
                    1 => b"system.posix_acl_default".to_vec(),
                    _ => {
                        let mut n = format!("user.k{}", rng.below(10)).into_bytes();
                        n.push(0xff);
                        n
                    }
                };
                let value = match rng.below(4) {
                    0 => Vec::new(),
                    1 => vec![0u8, 1, 0xff, b'\n'],
                    2 => vec![b'v'; 1 + rng.below(5000) as usize],
                    _ => rng.next().to_le_bytes().to_vec(),
                };
                e.meta.xattrs.push(Xattr { name, value });
            }
        }
    }
    // Link groups: members take their group's first file's fields.
    let files: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].1.kind == EntryKind::File)
        .collect();
    let mut group = 1;
    let mut k = 0;
    while k + 1 < files.len() {
        let size = 2 + rng.below(3) as usize;
        let members: Vec<usize> = files[k..(k + size).min(files.len())].to_vec();
        k += size + rng.below(3) as usize;
        if members.len() < 2 {
            break;
        }
        let mut lead = entries[members[0]].1.clone();
        lead.meta.link = 100 + group; // renumbered by from_entries
        for &m in &members {
            entries[m].1 = lead.clone();
        }
        group += 1;
    }
    let m = Manifest::from_entries(entries);
    assert!(m.has_owners() && m.has_xattrs() && !m.link_groups().is_empty());
    m
}

/// Plain trees and trees with owners, xattrs and link groups.
fn manifests(seed: u64, n: usize) -> [Manifest; 2] {
    [random_manifest(seed, n), random_manifest_with_meta(seed, n)]
}

fn index_of(m: &Manifest) -> Index {
    Index::from_bytes(encode(m, &m.hash()).unwrap(), Path::new("test.vidx")).unwrap()
}

#[test]
fn every_path_is_found_with_its_entry_and_missing_paths_are_not() {
    for (seed, m) in (0..40).flat_map(|s| manifests(s, 200).map(|m| (s, m))) {
        let _ = seed;
        let ix = index_of(&m);
        assert_eq!(ix.len(), m.len());
        assert_eq!(ix.manifest_hash(), m.hash());
        ix.verify().unwrap();
        for (path, e) in m.iter() {
            let i = ix.find(path).unwrap_or_else(|| panic!("{path:?} missing"));
            assert_eq!(ix.entry(i).unwrap().path, path);
            assert_eq!(LayerSource::get(&ix, path), Some(e), "{path:?}");
            let mut longer = path.to_vec();
            longer.extend_from_slice(b"/nope");
            assert_eq!(ix.find(&longer), None);
            let mut near = path.to_vec();
            near.push(b'~');
            assert_eq!(ix.find(&near).is_some(), m.get(&near).is_some());
        }
    }
}

#[test]
fn children_ranges_match_the_manifest() {
    for m in (0..40).flat_map(|s| manifests(s, 150)) {
        let ix = index_of(&m);
        for (path, e) in m.iter() {
            let want = m.children(path);
            let got = LayerSource::children(&ix, path);
            if e.kind == EntryKind::Dir {
                assert_eq!(got, want, "children of {path:?}");
            } else {
                assert!(got.is_empty());
            }
        }
        assert!(LayerSource::children(&ix, b"not/there").is_empty());
    }
}

#[test]
fn decoding_the_index_gives_back_the_manifest() {
    for m in (0..20).flat_map(|s| manifests(s, 100)) {
        let back = index_of(&m).to_manifest().unwrap();
        assert_eq!(back, m);
        assert_eq!(back.hash(), m.hash());
    }
}

#[test]
fn owners_xattrs_and_link_groups_round_trip_exactly() {
    for seed in 0..30 {
        let m = random_manifest_with_meta(seed, 150);
        let ix = index_of(&m);
        ix.verify().unwrap();
        // Every owned entry is the manifest's, meta included.
        for (path, e) in m.iter() {
            let i = ix.find(path).unwrap();
            assert_eq!(&ix.owned_entry(i).unwrap(), e, "{path:?}");
            assert_eq!(ix.entry(i).unwrap().meta().unwrap(), e.meta, "{path:?}");
        }
        // The link groups section gives the manifest's groups, in order.
        assert_eq!(ix.link_group_paths().unwrap(), m.link_groups());
        let back = ix.to_manifest().unwrap();
        assert_eq!(back, m);
        assert_eq!(back.encode(), m.encode());
        assert_eq!(back.hash(), m.hash());
    }
    // A plain tree has no meta and no groups.
    let plain = random_manifest(3, 100);
    let ix = index_of(&plain);
    assert!(ix.link_groups().unwrap().is_empty());
    for i in 0..ix.len() as u32 {
        assert!(ix.entry(i).unwrap().meta.is_empty());
    }
}

#[test]
fn encoding_is_deterministic() {
    for m in manifests(7, 300) {
        assert_eq!(encode(&m, &m.hash()), encode(&m, &m.hash()));
    }
}

#[test]
fn empty_manifest_gives_an_empty_index() {
    let m = Manifest::from_entries(Vec::new());
    let ix = index_of(&m);
    assert!(ix.is_empty());
    assert_eq!(ix.find(b""), None);
    assert!(LayerSource::children(&ix, b"").is_empty());
    ix.verify().unwrap();
}

#[test]
fn a_view_over_the_index_answers_as_a_view_over_the_manifest() {
    let owner = Owner {
        uid: 1000,
        gid: 1000,
    };
    let cred = Cred::user(1000, 1000);
    let root = b"/r/proj";
    let c = Caller {
        cred: &cred,
        cwd: root,
        umask: 0o022,
        now_ns: 5,
    };
    for m in (0..20).flat_map(|s| manifests(s, 120)) {
        let ix = index_of(&m);
        let mut a = View::new(root, owner, vec![&m]).unwrap();
        let mut b = View::new(root, owner, vec![&ix]).unwrap();
        // Names of a link group are one inode in both (as the supervisor and the shim
        // make their views).
        for g in m.link_groups() {
            a.share_link_group(&g);
        }
        for g in ix.link_group_paths().unwrap() {
            b.share_link_group(&g);
        }
        for (path, e) in m.iter() {
            let mut abs = root.to_vec();
            abs.push(b'/');
            abs.extend_from_slice(path);
            for follow in [false, true] {
                assert_eq!(
                    a.stat(&c, &abs, follow),
                    b.stat(&c, &abs, follow),
                    "{abs:?}"
                );
            }
            assert_eq!(a.read_dir(&c, &abs), b.read_dir(&c, &abs));
            assert_eq!(a.readlink(&c, &abs), b.readlink(&c, &abs));
            for follow in [false, true] {
                assert_eq!(a.listxattr(&c, &abs, follow), b.listxattr(&c, &abs, follow));
                for x in &e.meta.xattrs {
                    assert_eq!(
                        a.getxattr(&c, &abs, &x.name, follow),
                        b.getxattr(&c, &abs, &x.name, follow)
                    );
                }
            }
            if let Ok(Routed::View(st)) = b.stat(&c, &abs, false) {
                let want = e
                    .meta
                    .owner
                    .map_or((owner.uid, owner.gid), |o| (o.uid, o.gid));
                assert_eq!((st.uid, st.gid), want, "{abs:?}: owner");
                if e.meta.link != 0 {
                    let names = m.link_groups()[e.meta.link as usize - 1].len();
                    assert_eq!(st.nlink, names as u64, "{abs:?}: link count");
                }
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    for m in manifests(3, 40) {
        let bytes = encode(&m, &m.hash()).unwrap();
        for len in 0..bytes.len() {
            let err =
                Index::from_bytes(bytes[..len].to_vec(), Path::new("/x/cut.vidx")).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("/x/cut.vidx: "), "{text}");
        }
    }
}

/// Every accessor on a damaged index: results may be wrong, but nothing panics or loops.
fn poke_everything(ix: &Index) {
    let n = ix.len() as u32;
    for i in 0..n.min(500) + 2 {
        let _ = ix.entry(i);
        let _ = ix.children_of(i);
        let _ = ix.owned_entry(i);
        if let Ok(e) = ix.entry(i) {
            let _ = e.meta();
            let p = e.path.to_vec();
            let _ = LayerSource::get(ix, &p);
            let _ = LayerSource::children(ix, &p);
        }
    }
    let _ = ix.link_groups();
    let _ = ix.link_group_paths();
    for p in [&b""[..], b"a", b"a/b", b"zzz"] {
        let _ = ix.find(p);
        let _ = LayerSource::get(ix, p);
        let _ = LayerSource::children(ix, p);
    }
    let _ = ix.to_manifest();
    let _ = ix.verify();
}

#[test]
fn a_flipped_byte_fails_verification_and_never_panics() {
    for m in manifests(11, 60) {
        flipped_bytes(&m);
    }
}

fn flipped_bytes(m: &Manifest) {
    let bytes = encode(m, &m.hash()).unwrap();
    let mut rng = Rng(99);
    for at in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[at] ^= 1 << rng.below(8);
        match Index::from_bytes(b, Path::new("flip.vidx")) {
            Err(e) => assert!(e.to_string().starts_with("flip.vidx: "), "{e}"),
            Ok(ix) => {
                // Only the magic, version, counts and offsets are checked at open; the
                // checksum catches the rest, and the manifest hash is not covered by it.
                if !(24..56).contains(&at) {
                    assert!(ix.verify().is_err(), "flip at {at} not detected");
                }
                poke_everything(&ix);
            }
        }
    }
}

#[test]
fn garbage_with_a_valid_checksum_gives_errors_not_panics() {
    // An attacker (or a bug) that rewrites the body and fixes the checksum: structural
    // checks still hold.
    for m in manifests(5, 80) {
        garbage(&m);
    }
}

fn garbage(m: &Manifest) {
    let good = encode(m, &m.hash()).unwrap();
    let mut rng = Rng(1234);
    for round in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + round % 16 {
            let at = HEADER_LEN + rng.below((b.len() - HEADER_LEN) as u64) as usize;
            b[at] = rng.next() as u8;
        }
        let sum: [u8; 16] = blake3::hash(&b[HEADER_LEN..]).as_bytes()[..16]
            .try_into()
            .unwrap();
        b[CHECKSUM_AT..CHECKSUM_AT + 16].copy_from_slice(&sum);
        let ix = Index::from_bytes(b, Path::new("g.vidx")).unwrap();
        poke_everything(&ix);
    }
}

/// `b` with its checksum made right again.
fn resum(b: &mut [u8]) {
    let sum: [u8; 16] = blake3::hash(&b[HEADER_LEN..]).as_bytes()[..16]
        .try_into()
        .unwrap();
    b[CHECKSUM_AT..CHECKSUM_AT + 16].copy_from_slice(&sum);
}

#[test]
fn a_link_groups_section_that_disagrees_with_the_entries_fails_verification() {
    let m = random_manifest_with_meta(21, 120);
    let good = encode(&m, &m.hash()).unwrap();
    let h = layout::Header::parse(&good).unwrap();
    assert!(h.links_len >= 2);
    let at = h.links_off as usize;
    let cases: Vec<(usize, u32)> = vec![
        (at, 7),           // the first member in another group
        (at + 4, h.count), // an entry number out of range
        (at + 4, 0),       // the root, which is in no group
        (at + 12, 0),      // members out of order
    ];
    for (off, v) in cases {
        let mut b = good.clone();
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        resum(&mut b);
        let ix = Index::from_bytes(b, Path::new("l.vidx")).unwrap();
        assert!(ix.verify().is_err(), "{off}: {v}");
        poke_everything(&ix);
    }
    // A record whose meta says another link group than the section.
    let mut b = good.clone();
    let (g, i) = (
        layout::u32_at(&good, at).unwrap(),
        layout::u32_at(&good, at + 4).unwrap(),
    );
    assert_eq!(g, 1);
    let r = layout::Record::parse(&good, h.entries_off as usize + i as usize * RECORD_LEN).unwrap();
    // Meta bytes are flags, [uid gid], link u64: set the link to 2.
    let mut mo = h.meta_off as usize + r.meta_off as usize + 1;
    if good[mo - 1] & 1 != 0 {
        mo += 8;
    }
    b[mo..mo + 8].copy_from_slice(&2u64.to_le_bytes());
    resum(&mut b);
    let ix = Index::from_bytes(b, Path::new("l.vidx")).unwrap();
    assert!(ix.verify().is_err());
    poke_everything(&ix);
}

#[test]
fn damaged_meta_is_an_error_naming_the_entry_not_a_panic() {
    let m = random_manifest_with_meta(22, 80);
    let good = encode(&m, &m.hash()).unwrap();
    let h = layout::Header::parse(&good).unwrap();
    let (i, r) = (0..h.count)
        .map(|i| {
            let at = h.entries_off as usize + i as usize * RECORD_LEN;
            (i, layout::Record::parse(&good, at).unwrap())
        })
        .find(|(_, r)| r.meta_len > 0)
        .unwrap();
    let mo = h.meta_off as usize + r.meta_off as usize;
    for (byte, v) in [(0usize, 0x80u8), (0, 0)] {
        let mut b = good.clone();
        b[mo + byte] = v;
        resum(&mut b);
        let ix = Index::from_bytes(b, Path::new("/x/m.vidx")).unwrap();
        let e = ix.owned_entry(i).unwrap_err().to_string();
        assert!(
            e.starts_with("/x/m.vidx: ") && e.contains(&format!("entry {i}")),
            "{e}"
        );
        assert!(ix.verify().is_err());
        let path = ix.entry(i).unwrap().path.to_vec();
        assert_eq!(LayerSource::get(&ix, &path), None, "damaged: not there");
        poke_everything(&ix);
    }
    // A record naming meta bytes beyond the section.
    let mut b = good.clone();
    let at = h.entries_off as usize + i as usize * RECORD_LEN + 84;
    b[at..at + 4].copy_from_slice(&(h.meta_len as u32 + 1).to_le_bytes());
    resum(&mut b);
    let ix = Index::from_bytes(b, Path::new("m.vidx")).unwrap();
    assert!(ix.entry(i).is_err());
    assert!(ix.verify().is_err());
    poke_everything(&ix);
}

#[test]
fn a_full_hash_table_of_strangers_ends_the_probe() {
    let m = random_manifest(2, 10);
    let mut b = encode(&m, &m.hash()).unwrap();
    let h = layout::Header::parse(&b).unwrap();
    // Every slot names entry 1: a lookup of anything else probes each slot once and stops.
    for s in 0..h.slots as usize {
        let at = h.table_off as usize + s * 4;
        b[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
    }
    let ix = Index::from_bytes(b, Path::new("t.vidx")).unwrap();
    assert_eq!(ix.find(b"certainly/not/here"), None);
}

#[test]
fn inconsistent_headers_are_refused() {
    let m = random_manifest(4, 30);
    let good = encode(&m, &m.hash()).unwrap();
    let cases: Vec<(usize, Vec<u8>, &str)> = vec![
        (0, b"NOTANIDX".to_vec(), "bad magic"),
        // An index of an older vrift (version 2: no owners, xattrs or link groups) is
        // refused by its version, and `cached` builds it again.
        (
            8,
            2u32.to_le_bytes().to_vec(),
            "index version 2 (this vrift reads 3)",
        ),
        (8, 4u32.to_le_bytes().to_vec(), "version 4"),
        (20, 4u32.to_le_bytes().to_vec(), "unknown header flags"),
        // Said to have origins, but the file ends with the strings.
        (20, 1u32.to_le_bytes().to_vec(), "outside the file"),
        (12, u32::MAX.to_le_bytes().to_vec(), "fewer hash slots"),
        (16, 3u32.to_le_bytes().to_vec(), "power of two"),
        (56, 0u64.to_le_bytes().to_vec(), "out of order"),
        (80, (u64::MAX / 2).to_le_bytes().to_vec(), "overflows"),
        (80, 1_000_000u64.to_le_bytes().to_vec(), "outside"),
        (104, 1u64.to_le_bytes().to_vec(), "truncated"),
        // The meta and link groups sections, out of their places or the file.
        (112, 0u64.to_le_bytes().to_vec(), "out of order"),
        (120, 1_000_000u64.to_le_bytes().to_vec(), "outside"),
        (136, 1_000_000u64.to_le_bytes().to_vec(), "outside"),
    ];
    for (at, bytes, want) in cases {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(&bytes);
        let err = Index::from_bytes(b, Path::new("h.vidx")).unwrap_err();
        assert!(err.to_string().contains(want), "{at}: {err}");
    }
    assert_eq!(RECORD_LEN, 88);
}

#[test]
fn the_store_caches_one_index_per_manifest_and_rebuilds_a_damaged_one() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    let m = random_manifest_with_meta(8, 50);
    let ix = cached(&store, &m).unwrap();
    let path = cache_path(&store, &m.hash());
    assert_eq!(ix.path(), path);
    assert!(path.starts_with(home.path().join(INDEX_DIR)));
    assert_eq!(ix.to_manifest().unwrap(), m);
    // Reused: the same file (same inode) when nothing is wrong with it.
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(&path).unwrap().ino();
    cached(&store, &m).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino);
    // Damaged: replaced by a good one.
    let mut b = std::fs::read(&path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    std::fs::write(&path, &b).unwrap();
    assert!(Index::open(&path).unwrap().verify().is_err());
    let again = cached(&store, &m).unwrap();
    again.verify().unwrap();
    assert_eq!(again.to_manifest().unwrap(), m);
    // An older vrift's index (version 2) is refused by its header and built again.
    let mut b = std::fs::read(&path).unwrap();
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&path, &b).unwrap();
    let e = Index::open(&path).unwrap_err().to_string();
    assert!(e.contains("index version 2 (this vrift reads 3)"), "{e}");
    let rebuilt = cached(&store, &m).unwrap();
    rebuilt.verify().unwrap();
    assert_eq!(rebuilt.to_manifest().unwrap(), m);
    // No temp file left beside it: the index and the mark that it was checked.
    let mut names: Vec<_> = std::fs::read_dir(home.path().join(INDEX_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[1], format!("{}.checked", names[0]));
}

#[test]
fn open_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.vidx");
    let e = Index::open(&missing).unwrap_err();
    assert!(matches!(e, IndexError::Io { .. }));
    assert!(e.to_string().contains("none.vidx"), "{e}");
    let junk = dir.path().join("junk.vidx");
    std::fs::write(&junk, b"hello").unwrap();
    let e = Index::open(&junk).unwrap_err();
    assert!(
        e.to_string().contains("junk.vidx") && e.to_string().contains("corrupt"),
        "{e}"
    );
}

/// Origins for every path of `m` but every fifth, with made-up numbers.
fn origins_of(m: &Manifest) -> crate::origin::Origins {
    m.iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 4)
        .map(|(i, (p, _))| {
            (
                p.to_vec(),
                crate::origin::Origin {
                    ino: 1000 + i as u64,
                    ctime_ns: 7_000_000_000 + i as i64,
                },
            )
        })
        .collect()
}

#[test]
fn an_index_with_origins_answers_them_and_a_view_over_it_reports_them() {
    let m = random_manifest(11, 150);
    let origins = origins_of(&m);
    let bytes = encode_with_origins(&m, &m.hash(), &origins).unwrap();
    let ix = Index::from_bytes(bytes, Path::new("/x/o.vidx")).unwrap();
    ix.verify().unwrap();
    assert!(ix.has_origins());
    assert_eq!(ix.to_manifest().unwrap(), m);
    let owner = Owner { uid: 1, gid: 1 };
    let view = View::new(b"/r", owner, vec![&ix]).unwrap();
    let plain = View::new(b"/r", owner, vec![&m]).unwrap();
    for (path, _) in m.iter() {
        let want = origins.get(path).copied();
        assert_eq!(LayerSource::origin(&ix, path), want, "{path:?}");
        let st = view.stat_rel(path).unwrap();
        let st_plain = plain.stat_rel(path).unwrap();
        match want {
            Some(o) => {
                assert_eq!(st.ino, o.ino);
                assert_eq!(st.ctime_ns, o.ctime_ns);
            }
            None => assert_eq!(st, st_plain, "no origin: the view's own identity"),
        }
        assert_eq!((st.mtime_ns, st.size, st.mode), {
            (st_plain.mtime_ns, st_plain.size, st_plain.mode)
        });
    }
    // An index without the section has none; one in the top-bit range is not used.
    assert!(!index_of(&m).has_origins());
    let mut odd = origins.clone();
    let (first, _) = m.iter().next().unwrap();
    odd.insert(
        first.to_vec(),
        crate::origin::Origin {
            ino: 1 << 63,
            ctime_ns: 1,
        },
    );
    let ix = Index::from_bytes(
        encode_with_origins(&m, &m.hash(), &odd).unwrap(),
        Path::new("/x/o.vidx"),
    )
    .unwrap();
    assert_eq!(LayerSource::origin(&ix, first), None);
}

#[test]
fn every_truncation_of_an_index_with_origins_is_an_error() {
    let m = random_manifest(12, 30);
    let bytes = encode_with_origins(&m, &m.hash(), &origins_of(&m)).unwrap();
    for len in 0..bytes.len() {
        assert!(Index::from_bytes(bytes[..len].to_vec(), Path::new("/x/c.vidx")).is_err());
    }
}

#[test]
fn the_store_caches_an_index_per_manifest_and_origins() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    let m = random_manifest(13, 40);
    let a = origins_of(&m);
    let ix = cached_with_origins(&store, &m, &a).unwrap();
    let name = ix
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("{}-", m.hash().to_hex())),
        "{name}"
    );
    assert_eq!(
        cached_with_origins(&store, &m, &a).unwrap().path(),
        ix.path()
    );
    let mut b = a.clone();
    b.values_mut().next().unwrap().ctime_ns += 1;
    let other = cached_with_origins(&store, &m, &b).unwrap();
    assert_ne!(other.path(), ix.path(), "other origins, another file");
    // gc keeps both while the manifest is needed, and removes both once it is not.
    let keep = std::collections::HashSet::from([m.hash().to_hex()]);
    assert!(collect_garbage(&store, &keep, false).unwrap().is_empty());
    let gone = collect_garbage(&store, &Default::default(), true).unwrap();
    assert_eq!(
        gone.len(),
        2,
        "the two indexes (their marks go too): {gone:?}"
    );
    let left = std::fs::read_dir(store.root().join(INDEX_DIR))
        .unwrap()
        .count();
    assert_eq!(left, 0, "marks removed with their indexes");
}

#[test]
fn a_checked_index_is_not_read_whole_again_until_its_file_changes() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    let m = random_manifest(7, 50);
    let path = cached(&store, &m).unwrap().path().to_path_buf();
    let mark = mark_path(&path);
    assert!(mark.is_file(), "a built index is marked");
    let ix = Index::open(&path).unwrap();
    assert!(checked(&path, &ix));
    // The same bytes as another file (renamed over it): checked whole, marked again.
    let before = std::fs::read(&mark).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(checked(&path, &Index::open(&path).unwrap()));
    assert_ne!(std::fs::read(&mark).unwrap(), before);
    // Damaged in place: the mark no longer matches, the check fails.
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    std::fs::write(&path, &b).unwrap();
    assert!(!checked(&path, &Index::open(&path).unwrap()));
    // A mark of another file does not vouch.
    std::fs::write(&mark, [0u8; 40]).unwrap();
    assert!(!checked(&path, &Index::open(&path).unwrap()));
}
