use std::path::Path;
use std::time::Instant;

use super::*;

fn file(content: &[u8], mode: u32, mtime_ns: i64) -> Entry {
    Entry {
        kind: EntryKind::File,
        hash: Hash::of(content),
        size: content.len() as u64,
        mode,
        mtime_ns,
        target: Vec::new(),
        meta: Default::default(),
    }
}

fn dir() -> Entry {
    Entry {
        kind: EntryKind::Dir,
        hash: Hash([0; 32]),
        size: 0,
        mode: 0o755,
        mtime_ns: 1_700_000_000_000_000_000,
        target: Vec::new(),
        meta: Default::default(),
    }
}

fn symlink(target: &[u8]) -> Entry {
    Entry {
        kind: EntryKind::Symlink,
        hash: Hash([0; 32]),
        size: target.len() as u64,
        mode: 0o777,
        mtime_ns: -5, // before the epoch: mtimes are signed
        target: target.to_vec(),
        meta: Default::default(),
    }
}

fn sample_entries() -> Vec<(RelPath, Entry)> {
    vec![
        (b"".to_vec(), dir()),
        (b"src".to_vec(), dir()),
        (b"src/main.rs".to_vec(), file(b"fn main() {}", 0o644, 1)),
        (b"src/lib.rs".to_vec(), file(b"", 0o600, 2)),
        (b"bin".to_vec(), dir()),
        (b"bin/tool".to_vec(), file(b"#!/bin/sh\n", 0o4755, 3)),
        (b"link".to_vec(), symlink(b"src/main.rs")),
        (b"odd\xff\nname".to_vec(), file(b"x", 0o444, i64::MAX)),
        (b"src.bak".to_vec(), file(b"old", 0o644, 4)),
    ]
}

fn sample() -> Manifest {
    Manifest::from_entries(sample_entries())
}

/// A deterministic shuffle (no randomness crate needed).
fn shuffled<T>(mut v: Vec<T>, seed: u64) -> Vec<T> {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn p() -> &'static Path {
    Path::new("/some/where/vrift.manifest")
}

/// Re-seal a hand-edited encoding with a correct checksum.
fn reseal(mut body: Vec<u8>) -> Vec<u8> {
    body.truncate(body.len() - 32);
    let sum = blake3::hash(&body);
    body.extend_from_slice(sum.as_bytes());
    body
}

#[test]
fn encode_decode_round_trip() {
    let m = sample();
    let bytes = m.encode();
    assert_eq!(&bytes[..8], MAGIC);
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    let back = Manifest::decode(&bytes, p()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.hash(), m.hash());
    assert_eq!(m.hash(), Hash::of(&bytes));
    let empty = Manifest::default();
    assert_eq!(Manifest::decode(&empty.encode(), p()).unwrap(), empty);
}

#[test]
fn a_canonical_version_1_encoding_is_made_into_entries_only_when_asked() {
    let m = sample();
    let bytes = m.encode();
    let hash = Hash::of(&bytes);
    let later = Manifest::decode_canonical(bytes.clone(), hash, p()).unwrap();
    assert!(later.tree.get().is_none(), "built at once");
    // What the run of a watched project asks for needs no entries.
    assert_eq!(later.len(), m.len());
    assert!(!later.is_empty());
    assert_eq!(later.hash(), hash);
    assert_eq!(later.encoding(), &bytes[..]);
    assert!(
        later.tree.get().is_none(),
        "built for its length, hash or encoding"
    );
    // Anything else builds them, once, from the same bytes.
    assert_eq!(later.get(b"src/main.rs"), m.get(b"src/main.rs"));
    assert!(later.tree.get().is_some());
    assert_eq!(later, m);
    assert_eq!(later.children(b"src"), m.children(b"src"));
    assert_eq!(later.iter().count(), m.len());
    // Whiteouts added to a manifest not yet built.
    let lazy = Manifest::decode_canonical(bytes, hash, p()).unwrap();
    let w = lazy.with_whiteouts([b"gone".to_vec()]);
    assert_eq!(w, m.clone().with_whiteouts([b"gone".to_vec()]));
    assert_ne!(w.hash(), hash);
    assert_eq!(
        Manifest::decode(w.encoding(), p()).unwrap().whiteouts(),
        [b"gone".to_vec()]
    );
}

#[test]
fn a_canonical_version_2_encoding_is_made_into_entries_at_once() {
    let mut entries = sample_entries();
    entries[2].1.meta.owner = Some(EntryOwner { uid: 7, gid: 8 });
    let m = Manifest::from_entries(entries);
    let bytes = m.encode();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let hash = Hash::of(&bytes);
    let back = Manifest::decode_canonical(bytes, hash, p()).unwrap();
    assert!(back.tree.get().is_some());
    assert_eq!(back, m);
    assert_eq!(back.hash(), m.hash());
}

#[test]
fn entries_are_sorted_by_raw_bytes() {
    let m = sample();
    let paths: Vec<&[u8]> = m.iter().map(|(p, _)| p).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(paths[0], b"");
    // '.' (0x2e) sorts before '/' (0x2f): "src.bak" comes before "src/..."
    let pos = |x: &[u8]| paths.iter().position(|p| *p == x).unwrap();
    assert!(pos(b"src") < pos(b"src.bak") && pos(b"src.bak") < pos(b"src/lib.rs"));
}

#[test]
fn same_tree_same_bytes_whatever_the_insertion_order() {
    let reference = sample().encode();
    for seed in 1..50 {
        let m = Manifest::from_entries(shuffled(sample_entries(), seed));
        assert_eq!(m.encode(), reference, "seed {seed}");
    }
    // Any field change changes the hash.
    let mut entries = sample_entries();
    entries[2].1.mtime_ns += 1;
    assert_ne!(Manifest::from_entries(entries).hash(), sample().hash());
}

#[test]
fn later_duplicates_replace_earlier_ones_and_unused_fields_are_normalized() {
    let mut entries = sample_entries();
    entries.push((b"src/lib.rs".to_vec(), file(b"new", 0o644, 9)));
    let m = Manifest::from_entries(entries);
    assert_eq!(m.len(), sample().len());
    assert_eq!(m.get(b"src/lib.rs").unwrap().hash, Hash::of(b"new"));

    let mut odd_dir = dir();
    odd_dir.hash = Hash::of(b"junk");
    odd_dir.target = b"junk".to_vec();
    let a = Manifest::from_entries([(b"".to_vec(), odd_dir)]);
    let b = Manifest::from_entries([(b"".to_vec(), dir())]);
    assert_eq!(a.encode(), b.encode());
}

#[test]
fn save_atomic_and_load() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("vrift.manifest");
    sample().save_atomic(&path).unwrap();
    assert_eq!(Manifest::load(&path).unwrap(), sample());
    // Replacing keeps no temp file behind.
    let other = Manifest::from_entries([(b"".to_vec(), dir())]);
    other.save_atomic(&path).unwrap();
    assert_eq!(Manifest::load(&path).unwrap(), other);
    let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert_eq!(names.len(), 1);

    let missing = d.path().join("nope.manifest");
    let err = Manifest::load(&missing).unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("nope.manifest"));
    let err = sample()
        .save_atomic(&d.path().join("no/such/dir/m"))
        .unwrap_err();
    assert!(err.to_string().contains("no/such/dir/m"), "{err}");
}

/// Why `bytes` are refused, by [`Manifest::decode`] and alike by the checks of
/// [`Manifest::decode_canonical`] (which builds the entries later, and leaves the checksum
/// to its caller's hash).
fn corrupt_reason(bytes: &[u8]) -> String {
    let later = Manifest::decode_canonical(bytes.to_vec(), Hash::of(bytes), p());
    match Manifest::decode(bytes, p()) {
        Err(e @ ManifestError::Corrupt { .. }) => {
            assert!(e.to_string().contains("/some/where/vrift.manifest"), "{e}");
            if !e.to_string().contains("checksum") {
                assert_eq!(later.err().map(|l| l.to_string()), Some(e.to_string()));
            }
            e.to_string()
        }
        other => panic!("wanted Corrupt, got {other:?}"),
    }
}

#[test]
fn every_truncation_is_detected() {
    let bytes = sample().encode();
    for len in 0..bytes.len() {
        corrupt_reason(&bytes[..len]);
    }
}

#[test]
fn every_flipped_byte_is_detected() {
    let bytes = sample().encode();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(Manifest::decode(&b, p()).is_err(), "byte {i}");
        // Given as vrift's own bytes (a caller mistaken about them): refused, or taken as
        // they read, entries and all, without a panic.
        let hash = Hash::of(&b);
        if let Ok(m) = Manifest::decode_canonical(b, hash, p()) {
            assert_eq!(m.iter().count(), m.len(), "byte {i}");
        }
    }
}

#[test]
fn garbage_and_other_files_are_not_manifests() {
    assert!(corrupt_reason(b"").contains("truncated"));
    assert!(corrupt_reason(b"hello, this is a text file\n").contains("magic"));
    assert!(corrupt_reason(&[0u8; 4096]).contains("magic"));
    assert!(corrupt_reason(b"VRIFTMF\0\x01").contains("truncated"));
}

#[test]
fn a_future_version_is_a_version_error() {
    let mut bytes = sample().encode();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    // Even without a valid checksum: a newer format may seal differently.
    match Manifest::decode(&bytes, p()) {
        Err(
            e @ ManifestError::Version {
                found: 3,
                supported: 2,
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(msg.contains("/some/where/vrift.manifest") && msg.contains("version 3"));
        }
        other => panic!("wanted Version, got {other:?}"),
    }
}

#[test]
fn unsorted_duplicate_invalid_and_bad_kind_entries_are_corrupt() {
    let e = file(b"x", 0o644, 0);
    let unsorted = codec::encode(&[(b"b".to_vec(), e.clone()), (b"a".to_vec(), e.clone())]);
    assert!(corrupt_reason(&unsorted).contains("out of order"));
    let dup = codec::encode(&[(b"a".to_vec(), e.clone()), (b"a".to_vec(), e.clone())]);
    assert!(corrupt_reason(&dup).contains("out of order or duplicated"));
    for bad in [
        &b"../etc/passwd"[..],
        b"/abs",
        b"a//b",
        b"a/./b",
        b"trail/",
        b"nul\0",
    ] {
        let enc = codec::encode(&[(bad.to_vec(), e.clone())]);
        assert!(corrupt_reason(&enc).contains("invalid path"), "{bad:?}");
    }
    // Kind byte of the only entry: header 20 + path_len 4 + path 1.
    let mut enc = codec::encode(&[(b"a".to_vec(), e.clone())]);
    enc[25] = 7;
    assert!(corrupt_reason(&reseal(enc)).contains("bad kind 7"));
    // An entry count larger than the file.
    let mut enc = codec::encode(&[(b"a".to_vec(), e)]);
    enc[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(corrupt_reason(&reseal(enc)).contains("entry count"));
}

#[test]
fn lookup_by_path() {
    let m = sample();
    assert_eq!(m.get(b"").unwrap().kind, EntryKind::Dir);
    assert_eq!(m.get(b"link").unwrap().target, b"src/main.rs");
    assert_eq!(m.get(b"bin/tool").unwrap().mode, 0o4755);
    assert_eq!(m.get(b"odd\xff\nname").unwrap().mtime_ns, i64::MAX);
    assert!(m.get(b"src/").is_none());
    assert!(m.get(b"missing").is_none());
    assert!(m.get(b"sr").is_none());
}

#[test]
fn children_lists_direct_children_only() {
    let names = |m: &Manifest, d: &[u8]| -> Vec<Vec<u8>> {
        m.children(d).into_iter().map(|(n, _)| n.to_vec()).collect()
    };
    let m = Manifest::from_entries(
        [
            &b""[..],
            b"a",
            b"a.b",
            b"a/b",
            b"a/b/c",
            b"a/b.c",
            b"a/b/d/e",
            b"a/x/y/z", // no entry for a/x: not listed
            b"a0",
            b"b",
        ]
        .map(|p| (p.to_vec(), dir())),
    );
    let v = |xs: &[&[u8]]| xs.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
    assert_eq!(names(&m, b""), v(&[b"a", b"a.b", b"a0", b"b"]));
    assert_eq!(names(&m, b"a"), v(&[b"b", b"b.c"]));
    assert_eq!(names(&m, b"a/b"), vec![b"c".to_vec()]); // a/b/d has no entry
    assert!(names(&m, b"a/b/c").is_empty());
    assert!(names(&m, b"nope").is_empty());
    assert_eq!(names(&m, b"a/x/y"), v(&[b"z"]));
}

#[test]
fn children_agree_with_a_brute_force_scan() {
    // A tree with many siblings whose names straddle '/' in byte order.
    let mut entries = vec![(Vec::new(), dir())];
    let parts: [&[u8]; 6] = [b"a", b"a.x", b"a-1", b"a0", b"b", b"a/"];
    for x in parts {
        for y in parts {
            for z in parts {
                let mut path = x.to_vec();
                path.push(b'/');
                path.extend_from_slice(y);
                path.push(b'/');
                path.extend_from_slice(z);
                let path: Vec<u8> = path
                    .split(|&c| c == b'/')
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
                    .join(&b'/');
                for i in 1..=path.split(|&c| c == b'/').count() {
                    let prefix: Vec<u8> = path
                        .split(|&c| c == b'/')
                        .take(i)
                        .collect::<Vec<_>>()
                        .join(&b'/');
                    entries.push((prefix, dir()));
                }
            }
        }
    }
    let m = Manifest::from_entries(entries);
    for (d, _) in m.iter() {
        let brute: Vec<&[u8]> = m
            .iter()
            .filter_map(|(p, _)| {
                let rest = if d.is_empty() {
                    Some(p)
                } else {
                    p.strip_prefix(d).and_then(|r| r.strip_prefix(b"/"))
                }?;
                (!rest.is_empty() && !rest.contains(&b'/')).then_some(rest)
            })
            .collect();
        let fast: Vec<&[u8]> = m.children(d).into_iter().map(|(n, _)| n).collect();
        assert_eq!(fast, brute, "children of {:?}", display_path(d));
    }
}

#[test]
fn diff_reports_added_removed_and_changed_fields() {
    let a = sample();
    assert!(a.diff(&a).is_empty());
    let mut entries = sample_entries();
    entries.retain(|(p, _)| p != b"src.bak");
    entries.push((b"new".to_vec(), file(b"n", 0o644, 0)));
    for (p, e) in entries.iter_mut() {
        if p == b"src/main.rs" {
            *e = file(b"fn main() { changed }", 0o755, 1);
        }
        if p == b"link" {
            *e = symlink(b"elsewhere");
        }
        if p == b"bin/tool" {
            e.mtime_ns = 99;
        }
    }
    let b = Manifest::from_entries(entries);
    let changes = a.diff(&b);
    let summary: Vec<(String, Vec<Field>)> = changes
        .iter()
        .map(|c| match c {
            Change::Added { path, .. } => (format!("+{}", display_path(path)), vec![]),
            Change::Removed { path, .. } => (format!("-{}", display_path(path)), vec![]),
            Change::Changed { path, fields, .. } => {
                (format!("~{}", display_path(path)), fields.clone())
            }
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("~bin/tool".to_string(), vec![Field::Mtime]),
            ("~link".to_string(), vec![Field::Size, Field::Target]),
            ("+new".to_string(), vec![]),
            ("-src.bak".to_string(), vec![]),
            (
                "~src/main.rs".to_string(),
                vec![Field::Content, Field::Size, Field::Mode]
            ),
        ]
    );
    // The reverse diff swaps added and removed.
    let back = b.diff(&a);
    assert!(back
        .iter()
        .any(|c| matches!(c, Change::Removed { path, .. } if path == b"new")));
    // A kind change.
    let c = Manifest::from_entries([(b"x".to_vec(), dir())]);
    let d = Manifest::from_entries([(b"x".to_vec(), file(b"", 0o755, 1_700_000_000_000_000_000))]);
    match &c.diff(&d)[..] {
        [Change::Changed { fields, .. }] => assert_eq!(fields, &[Field::Kind, Field::Content]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn total_file_bytes_counts_files_only() {
    // 12 + 0 + 10 + 1 + 3; the symlink's 11 bytes are not file bytes.
    assert_eq!(sample().total_file_bytes(), 26);
}

#[test]
fn display_escapes_odd_bytes() {
    assert_eq!(display_path(b""), ".");
    assert_eq!(display_path("héllo/wörld".as_bytes()), "héllo/wörld");
    assert_eq!(display_path(b"a\xffb\nc\\d\te"), "a\\xffb\\nc\\\\d\\te");
    assert_eq!(display_path(b"bell\x07"), "bell\\u{7}");
}

/// Just over 100,000 entries in a realistic shape: ~50-byte paths, 1,000 packages.
fn big_manifest() -> Manifest {
    let mut entries = vec![(Vec::new(), dir()), (b"node_modules".to_vec(), dir())];
    for d in 0..1000 {
        entries.push((format!("node_modules/package-{d:04}").into_bytes(), dir()));
        let dpath = format!("node_modules/package-{d:04}/lib").into_bytes();
        entries.push((dpath.clone(), dir()));
        for f in 0..98 {
            let mut p = dpath.clone();
            p.extend_from_slice(format!("/module-file-{f:03}.js").as_bytes());
            let content = format!("{d}/{f}");
            entries.push((
                p,
                file(content.as_bytes(), 0o644, 1_700_000_000_123_456_789),
            ));
        }
    }
    let m = Manifest::from_entries(entries);
    assert_eq!(m.len(), 100_002);
    m
}

#[test]
fn loading_100k_entries_is_fast() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("big.manifest");
    let m = big_manifest();
    m.save_atomic(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    // Warm the page cache, then time the best of a few loads.
    let _ = Manifest::load(&path).unwrap();
    let mut best = std::time::Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let loaded = Manifest::load(&path).unwrap();
        best = best.min(t.elapsed());
        assert_eq!(loaded.len(), m.len());
    }
    eprintln!("load of 100,002 entries ({size} bytes): {best:?}");
    #[cfg(not(debug_assertions))]
    assert!(
        best < std::time::Duration::from_millis(100),
        "load took {best:?}"
    );
    let loaded = Manifest::load(&path).unwrap();
    let t = Instant::now();
    let kids = loaded.children(b"node_modules/package-0500/lib");
    let one = loaded.get(b"node_modules/package-0999/lib/module-file-097.js");
    eprintln!("children (98) + get: {:?}", t.elapsed());
    assert_eq!(kids.len(), 98);
    assert!(one.is_some());
    assert_eq!(loaded.children(b"node_modules").len(), 1000);
}

// ---- Format version 2: owners, xattrs, link groups, FIFOs ----

fn owner(uid: u32, gid: u32) -> Option<EntryOwner> {
    Some(EntryOwner { uid, gid })
}

fn xattr(name: &[u8], value: &[u8]) -> Xattr {
    Xattr {
        name: name.to_vec(),
        value: value.to_vec(),
    }
}

fn linked(e: Entry, link: u64) -> Entry {
    let mut meta = e.meta.clone();
    meta.link = link;
    e.with_meta(meta)
}

fn v2_entries() -> Vec<(RelPath, Entry)> {
    let mut entries = sample_entries();
    let owned = file(b"nobody's", 0o644, 7).with_meta(EntryMeta {
        owner: owner(65534, 65534),
        xattrs: vec![
            xattr(b"user.mime", b"text/plain"),
            xattr(b"system.posix_acl_access", &[2, 0, 0, 0]),
        ],
        link: 0,
    });
    entries.push((b"owned".to_vec(), owned));
    entries.push((b"pipe".to_vec(), Entry::fifo(0o600, 8)));
    let pair = file(b"shared", 0o755, 9);
    entries.push((b"n1".to_vec(), linked(pair.clone(), 42)));
    entries.push((b"src/n2".to_vec(), linked(pair, 42)));
    entries
}

#[test]
fn a_plain_tree_stays_version_1_with_the_bytes_it_always_had() {
    let m = sample();
    assert_eq!(m.format_version(), 1);
    let bytes = m.encode();
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
    // The version 1 layout, by hand, for the first entry (the root dir).
    let mut want = Vec::new();
    want.extend_from_slice(MAGIC);
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&(m.len() as u64).to_le_bytes());
    want.extend_from_slice(&0u32.to_le_bytes());
    want.push(1);
    want.extend_from_slice(&0o755u32.to_le_bytes());
    assert_eq!(&bytes[..want.len()], want.as_slice());
}

#[test]
fn version_2_round_trips_owners_xattrs_links_and_fifos() {
    let m = Manifest::from_entries(v2_entries());
    assert_eq!(m.format_version(), 2);
    let bytes = m.encode();
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
    let back = Manifest::decode(&bytes, p()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.encode(), bytes);
    let owned = back.get(b"owned").unwrap();
    assert_eq!(owned.meta.owner, owner(65534, 65534));
    // Xattrs come back sorted by name.
    let names: Vec<&[u8]> = owned
        .meta
        .xattrs
        .iter()
        .map(|x| x.name.as_slice())
        .collect();
    assert_eq!(names, [&b"system.posix_acl_access"[..], b"user.mime"]);
    assert_eq!(owned.meta.xattr(b"user.mime"), Some(&b"text/plain"[..]));
    assert_eq!(back.get(b"pipe").unwrap().kind, EntryKind::Fifo);
    // The group is renumbered 1, and lists both names in path order.
    assert_eq!(back.get(b"n1").unwrap().meta.link, 1);
    assert_eq!(back.link_groups(), vec![vec![&b"n1"[..], b"src/n2"]]);
    assert!(back.has_owners());
}

#[test]
fn version_2_is_deterministic_whatever_the_order_and_group_numbers() {
    let want = Manifest::from_entries(v2_entries()).encode();
    for seed in 1..20 {
        let mut entries = shuffled(v2_entries(), seed);
        // Any caller numbering of the same groups gives the same bytes.
        for (_, e) in entries.iter_mut() {
            if e.meta.link != 0 {
                e.meta.link = 1000 + seed;
            }
            e.meta.xattrs.reverse();
        }
        assert_eq!(
            Manifest::from_entries(entries).encode(),
            want,
            "seed {seed}"
        );
    }
}

#[test]
fn link_groups_of_one_or_of_disagreeing_names_are_dropped() {
    let a = file(b"a", 0o644, 1);
    let m = Manifest::from_entries([
        (b"alone".to_vec(), linked(a.clone(), 5)),
        (b"dir".to_vec(), linked(dir(), 6)),
        (b"dir2".to_vec(), linked(dir(), 6)),
        (b"x".to_vec(), linked(a.clone(), 7)),
        (b"y".to_vec(), linked(file(b"other", 0o644, 1), 7)),
    ]);
    assert!(m.link_groups().is_empty());
    assert!(m.iter().all(|(_, e)| e.meta.link == 0));
    // Nothing left that needs version 2.
    assert_eq!(m.format_version(), 1);
    // Three names, one differing: the other two stay a group.
    let m = Manifest::from_entries([
        (b"x".to_vec(), linked(a.clone(), 7)),
        (b"y".to_vec(), linked(file(b"other", 0o644, 1), 7)),
        (b"z".to_vec(), linked(a, 7)),
    ]);
    assert_eq!(m.link_groups(), vec![vec![&b"x"[..], b"z"]]);
    assert_eq!(m.get(b"y").unwrap().meta.link, 0);
}

#[test]
fn xattrs_are_sorted_deduplicated_and_invalid_names_dropped() {
    let e = file(b"a", 0o644, 1).with_meta(EntryMeta {
        xattrs: vec![
            xattr(b"user.b", b"1"),
            xattr(b"user.a", b"old"),
            xattr(b"", b"empty name"),
            xattr(b"user.nul\0", b"x"),
            xattr(b"user.a", b"new"),
        ],
        ..EntryMeta::default()
    });
    let m = Manifest::from_entries([(b"f".to_vec(), e)]);
    let x = &m.get(b"f").unwrap().meta.xattrs;
    assert_eq!(x, &vec![xattr(b"user.a", b"new"), xattr(b"user.b", b"1")]);
    assert!(is_kept_xattr(b"user.a") && is_kept_xattr(b"system.posix_acl_default"));
    assert!(!is_kept_xattr(b"trusted.overlay.redirect") && !is_kept_xattr(b"security.selinux"));
}

#[test]
fn a_version_1_reader_path_still_reads_version_1_files() {
    // A version 1 file written by hand (as an older vrift wrote it) loads, with empty meta.
    let m = sample();
    let bytes = m.encode();
    let back = Manifest::decode(&bytes, p()).unwrap();
    assert!(back.iter().all(|(_, e)| e.meta.is_empty()));
    assert_eq!(back.hash(), m.hash());
}

#[test]
fn version_2_every_truncation_and_flipped_byte_is_an_error() {
    let bytes = Manifest::from_entries(v2_entries()).encode();
    for len in 0..bytes.len() {
        corrupt_reason(&bytes[..len]);
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(Manifest::decode(&b, p()).is_err(), "byte {i}");
        // Given as vrift's own bytes (a caller mistaken about them): refused, or taken as
        // they read, entries and all, without a panic.
        let hash = Hash::of(&b);
        if let Ok(m) = Manifest::decode_canonical(b, hash, p()) {
            assert_eq!(m.iter().count(), m.len(), "byte {i}");
        }
    }
}

/// Encode entries exactly as given (no normalization), as version 2.
fn raw_v2(entries: &[(RelPath, Entry)]) -> Vec<u8> {
    codec::encode_as(entries, &[], 2)
}

#[test]
fn bad_version_2_fields_are_corrupt_with_a_reason() {
    let a = file(b"a", 0o644, 1);
    // A group of one member.
    let one = [(b"x".to_vec(), linked(a.clone(), 1))];
    assert!(corrupt_reason(&raw_v2(&one)).contains("one member"));
    // Groups numbered out of order.
    let gap = [
        (b"x".to_vec(), linked(a.clone(), 2)),
        (b"y".to_vec(), linked(a.clone(), 2)),
    ];
    assert!(corrupt_reason(&raw_v2(&gap)).contains("out of order"));
    // Names of one group that disagree.
    let split = [
        (b"x".to_vec(), linked(a.clone(), 1)),
        (b"y".to_vec(), linked(file(b"b", 0o644, 1), 1)),
    ];
    assert!(corrupt_reason(&raw_v2(&split)).contains("differs"));
    // A directory in a group.
    let d = [
        (b"x".to_vec(), linked(dir(), 1)),
        (b"y".to_vec(), linked(dir(), 1)),
    ];
    assert!(corrupt_reason(&raw_v2(&d)).contains("cannot be in a link group"));
    // Unsorted and duplicated xattrs.
    let unsorted = a.clone().with_meta(EntryMeta {
        xattrs: vec![xattr(b"user.b", b""), xattr(b"user.a", b"")],
        ..EntryMeta::default()
    });
    let enc = raw_v2(&[(b"f".to_vec(), unsorted)]);
    assert!(corrupt_reason(&enc).contains("out of order or duplicated"));
    // An xattr with an empty name.
    let empty = a.clone().with_meta(EntryMeta {
        xattrs: vec![xattr(b"", b"v")],
        ..EntryMeta::default()
    });
    assert!(corrupt_reason(&raw_v2(&[(b"f".to_vec(), empty)])).contains("bad xattr name"));
    // A version 2 header over entries that need nothing of it is not canonical.
    assert!(corrupt_reason(&raw_v2(&[(b"f".to_vec(), a.clone())])).contains("version 1"));
    // Unknown flags: header 20 + path_len 4 + path 1 + kind 1 + mode 4 + size 8 + mtime 8 +
    // hash 32 = the flags byte at 78.
    let owned = a.clone().with_meta(EntryMeta {
        owner: owner(1, 1),
        ..EntryMeta::default()
    });
    let mut enc = codec::encode(&[(b"f".to_vec(), owned)]);
    assert_eq!(enc[78], 1);
    enc[78] = 0x81;
    assert!(corrupt_reason(&reseal(enc)).contains("unknown flags"));
    // A FIFO kind in a version 1 file, and a FIFO with a size.
    let mut enc = codec::encode(&[(b"f".to_vec(), a.clone())]);
    enc[25] = 3;
    assert!(corrupt_reason(&reseal(enc)).contains("bad kind 3"));
    let mut fifo = Entry::fifo(0o644, 0);
    fifo.size = 9;
    assert!(corrupt_reason(&raw_v2(&[(b"p".to_vec(), fifo)])).contains("fifo with size"));
    // A huge xattr count in a small file: an error, not an allocation of that size.
    let x = a.with_meta(EntryMeta {
        xattrs: vec![xattr(b"user.a", b"")],
        ..EntryMeta::default()
    });
    let mut enc = codec::encode(&[(b"f".to_vec(), x)]);
    assert_eq!(enc[78], 4);
    enc[79..83].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(corrupt_reason(&reseal(enc)).contains("truncated"));
}

#[test]
fn diff_reports_owner_xattr_and_link_changes() {
    let a = file(b"a", 0o644, 1);
    let old = Manifest::from_entries([(b"f".to_vec(), a.clone()), (b"g".to_vec(), a.clone())]);
    let new = Manifest::from_entries([
        (
            b"f".to_vec(),
            linked(
                a.clone().with_meta(EntryMeta {
                    owner: owner(0, 0),
                    xattrs: vec![xattr(b"user.k", b"v")],
                    link: 0,
                }),
                1,
            ),
        ),
        (
            b"g".to_vec(),
            linked(
                a.with_meta(EntryMeta {
                    owner: owner(0, 0),
                    xattrs: vec![xattr(b"user.k", b"v")],
                    link: 0,
                }),
                1,
            ),
        ),
    ]);
    let changes = old.diff(&new);
    assert_eq!(changes.len(), 2);
    match &changes[0] {
        Change::Changed { fields, .. } => {
            assert_eq!(fields, &vec![Field::Owner, Field::Xattrs, Field::Links])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn whiteouts_round_trip_between_entries_and_stay_out_of_lookups() {
    let m = sample().with_whiteouts([
        b"gone".to_vec(),
        b"src/old.rs".to_vec(),
        b"zz/last".to_vec(),
        b"src/main.rs".to_vec(), // an entry: dropped
        Vec::new(),              // the root: dropped
    ]);
    assert_eq!(
        m.whiteouts(),
        [
            b"gone".to_vec(),
            b"src/old.rs".to_vec(),
            b"zz/last".to_vec()
        ]
    );
    assert!(m.is_whiteout(b"src/old.rs") && !m.is_whiteout(b"src/main.rs"));
    assert_eq!(m.len(), sample().len(), "whiteouts are not entries");
    assert!(m.get(b"gone").is_none());
    assert!(m.iter().all(|(p, _)| !m.is_whiteout(p)));
    let back = Manifest::decode(&m.encode(), p()).unwrap();
    assert_eq!(back, m);
    assert_ne!(
        m.hash(),
        sample().hash(),
        "whiteouts are part of the identity"
    );
    assert_eq!(m.format_version(), 2, "whiteouts need version 2");
    // Without whiteouts the bytes are those of the format before whiteouts.
    assert_eq!(sample().encode(), codec::encode(&sample_entries_sorted()));
}

fn sample_entries_sorted() -> Vec<(RelPath, Entry)> {
    sample()
        .iter()
        .map(|(p, e)| (p.to_vec(), e.clone()))
        .collect()
}

#[test]
fn a_whiteout_of_the_root_or_with_fields_is_corrupt() {
    let root = codec::encode_with_whiteouts(&[], &[Vec::new()]);
    assert!(corrupt_reason(&root).contains("whiteout of the root"));
    // mode of the only record: header 20 + path_len 4 + path 1 + kind 1.
    let mut enc = codec::encode_with_whiteouts(&[], &[b"a".to_vec()]);
    enc[26] = 1;
    assert!(corrupt_reason(&reseal(enc)).contains("whiteout with a mode"));
    let dup = codec::encode_with_whiteouts(&[(b"a".to_vec(), dir())], &[b"a".to_vec()]);
    assert!(corrupt_reason(&dup).contains("duplicated"));
}

#[test]
fn valid_rel_paths_are_those_of_the_definition() {
    // The definition: empty, or '/'-separated components that are non-empty, not "." or
    // "..", and hold no NUL. Every path of up to 7 bytes from an alphabet that makes each
    // case is judged alike.
    let defined = |p: &[u8]| {
        p.is_empty()
            || p.split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b".." && !c.contains(&0))
    };
    let alphabet = [b'a', b'.', b'/', 0];
    let mut paths: Vec<Vec<u8>> = vec![Vec::new()];
    let mut checked = 0;
    for _ in 0..7 {
        let mut longer = Vec::new();
        for p in &paths {
            for &b in &alphabet {
                let mut q = p.clone();
                q.push(b);
                assert_eq!(is_valid_rel_path(&q), defined(&q), "{q:?}");
                checked += 1;
                longer.push(q);
            }
        }
        paths = longer;
    }
    assert!(checked > 20_000);
    assert!(is_valid_rel_path(b"") && is_valid_rel_path(b"...") && is_valid_rel_path(b"a/.b"));
    assert!(!is_valid_rel_path(b"a/..") && !is_valid_rel_path(b"./a"));
}
