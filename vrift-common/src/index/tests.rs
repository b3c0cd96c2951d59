use std::path::Path;

use super::layout::{HEADER_LEN, RECORD_LEN};
use super::*;
use crate::manifest::RelPath;
use crate::vfs::{Caller, Cred, Owner, View};

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

fn index_of(m: &Manifest) -> Index {
    Index::from_bytes(encode(m, &m.hash()).unwrap(), Path::new("test.vidx")).unwrap()
}

#[test]
fn every_path_is_found_with_its_entry_and_missing_paths_are_not() {
    for seed in 0..40 {
        let m = random_manifest(seed, 200);
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
    for seed in 0..40 {
        let m = random_manifest(seed, 150);
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
    for seed in 0..20 {
        let m = random_manifest(seed, 100);
        assert_eq!(index_of(&m).to_manifest().unwrap(), m);
    }
}

#[test]
fn encoding_is_deterministic() {
    let m = random_manifest(7, 300);
    assert_eq!(encode(&m, &m.hash()), encode(&m, &m.hash()));
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
    for seed in 0..20 {
        let m = random_manifest(seed, 120);
        let ix = index_of(&m);
        let a = View::new(root, owner, vec![&m]).unwrap();
        let b = View::new(root, owner, vec![&ix]).unwrap();
        for (path, _) in m.iter() {
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
        }
    }
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    let m = random_manifest(3, 40);
    let bytes = encode(&m, &m.hash()).unwrap();
    for len in 0..bytes.len() {
        let err = Index::from_bytes(bytes[..len].to_vec(), Path::new("/x/cut.vidx")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/x/cut.vidx: "), "{text}");
    }
}

/// Every accessor on a damaged index: results may be wrong, but nothing panics or loops.
fn poke_everything(ix: &Index) {
    let n = ix.len() as u32;
    for i in 0..n.min(500) + 2 {
        let _ = ix.entry(i);
        let _ = ix.children_of(i);
        if let Ok(e) = ix.entry(i) {
            let p = e.path.to_vec();
            let _ = LayerSource::get(ix, &p);
            let _ = LayerSource::children(ix, &p);
        }
    }
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
    let m = random_manifest(11, 60);
    let bytes = encode(&m, &m.hash()).unwrap();
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
    let m = random_manifest(5, 80);
    let good = encode(&m, &m.hash()).unwrap();
    let mut rng = Rng(1234);
    for round in 0..200 {
        let mut b = good.clone();
        for _ in 0..1 + round % 16 {
            let at = HEADER_LEN + rng.below((b.len() - HEADER_LEN) as u64) as usize;
            b[at] = rng.next() as u8;
        }
        let sum: [u8; 16] = blake3::hash(&b[HEADER_LEN..]).as_bytes()[..16]
            .try_into()
            .unwrap();
        b[112..128].copy_from_slice(&sum);
        let ix = Index::from_bytes(b, Path::new("g.vidx")).unwrap();
        poke_everything(&ix);
    }
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
        (8, 3u32.to_le_bytes().to_vec(), "version 3"),
        (20, 4u32.to_le_bytes().to_vec(), "unknown header flags"),
        // Said to have origins, but the file ends with the strings.
        (20, 1u32.to_le_bytes().to_vec(), "outside the file"),
        (12, u32::MAX.to_le_bytes().to_vec(), "fewer hash slots"),
        (16, 3u32.to_le_bytes().to_vec(), "power of two"),
        (56, 0u64.to_le_bytes().to_vec(), "out of order"),
        (80, (u64::MAX / 2).to_le_bytes().to_vec(), "overflows"),
        (80, 1_000_000u64.to_le_bytes().to_vec(), "outside"),
        (104, 1u64.to_le_bytes().to_vec(), "truncated"),
    ];
    for (at, bytes, want) in cases {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(&bytes);
        let err = Index::from_bytes(b, Path::new("h.vidx")).unwrap_err();
        assert!(err.to_string().contains(want), "{at}: {err}");
    }
    assert_eq!(RECORD_LEN, 80);
}

#[test]
fn the_store_caches_one_index_per_manifest_and_rebuilds_a_damaged_one() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    let m = random_manifest(8, 50);
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
    // No temp file left beside it.
    let names: Vec<_> = std::fs::read_dir(home.path().join(INDEX_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
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
    assert_eq!(gone.len(), 2, "{gone:?}");
}
