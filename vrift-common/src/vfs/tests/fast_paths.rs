//! The lookups that skip the general walk give the general walk's answers: every path a
//! test tree has (and its near misses), for every kind of caller, before and after changes,
//! over a plain layer and over the manifest index.

use std::path::Path;

use super::fixture::*;
use crate::index::{encode, encode_with_origins, Index};
use crate::manifest::{EntryKind, Manifest};
use crate::vfs::resolve::Follow;
use crate::vfs::*;

/// Every path the tests look up: each entry's, under the root, with the names around it.
fn paths(entries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for rel in entries {
        let mut abs = ROOT.to_vec();
        if !rel.is_empty() {
            abs.push(b'/');
            abs.extend_from_slice(rel);
        }
        for tail in [
            &b""[..],
            b"/",
            b"/x",
            b"/.",
            b"/..",
            b"//x",
            b"/main.rs",
            b"/f",
        ] {
            let mut p = abs.clone();
            p.extend_from_slice(tail);
            out.push(p);
        }
        let mut missing = abs.clone();
        missing.extend_from_slice(b"-missing");
        out.push(missing);
    }
    out.push(b"/home/u/proj/link_src/deep/x.rs".to_vec());
    out.push(b"/home/u/proj/abs_src/main.rs".to_vec());
    out.push(b"/home/u/proj/out_etc/passwd".to_vec());
    out.push(b"/home/u/other".to_vec());
    out.push(b"/".to_vec());
    out
}

fn creds() -> Vec<Cred> {
    vec![root(), user(), group_member(), Cred::user(3000, 3000)]
}

/// Compare the walk (with its hot paths) with the general walk, and a directory's quick
/// link count with the merged one, for every path, caller and way of following.
fn same_answers<L: LayerSource>(v: &View<L>) {
    let mut rels: Vec<Vec<u8>> = v.subtree(b"").into_iter().map(|(p, _)| p).collect();
    rels.extend(base().into_keys());
    rels.sort();
    rels.dedup();
    for path in paths(&rels) {
        for cred in creds() {
            for follow in [Follow::Yes, Follow::No, Follow::Parent] {
                let quick = v.walk(Some(&cred), &path, ROOT, follow);
                let general = v.walk_general(Some(&cred), &path, ROOT, follow);
                assert_eq!(
                    quick,
                    general,
                    "{} as uid {} ({follow:?})",
                    String::from_utf8_lossy(&path),
                    cred.uid
                );
            }
        }
    }
    for rel in &rels {
        let Some((e, mask)) = v.locate(rel) else {
            continue;
        };
        if !e.is_dir() {
            continue;
        }
        // A listing's numbers are the ones a lookup of each name gives.
        for (name, c, _) in v.merged_children(rel, mask) {
            let path = crate::vfs::layers::join(rel, &name);
            let (looked_up, _) = v.locate(&path).expect("a listed name is there");
            assert_eq!(c.ino, looked_up.ino, "{}", String::from_utf8_lossy(&path));
            assert_eq!(c.ctime_ns, looked_up.ctime_ns);
        }
        if let Some(n) = v.layer_dir_nlink(rel) {
            let merged = v.merged_children(rel, mask);
            let dirs = merged.iter().filter(|(_, e, _)| e.is_dir()).count() as u64;
            assert_eq!(n, 2 + dirs, "nlink of {}", String::from_utf8_lossy(rel));
        }
    }
}

/// The same changes made to a view: a new directory and file, a removal, a rename, a
/// chmod that closes a directory (made by root, so they can be made in either view).
fn change<L: LayerSource>(v: &mut View<L>) {
    let me = root();
    let c = at(&me);
    v.mkdir(&c, b"/home/u/proj/src/new", 0o755).unwrap();
    v.mkdir(&c, b"/home/u/proj/src/new/sub", 0o700).unwrap();
    v.unlink(&c, b"/home/u/proj/src/lib.rs").unwrap();
    v.rename(
        &c,
        b"/home/u/proj/bin",
        b"/home/u/proj/tools",
        RenameMode::Replace,
    )
    .unwrap();
    v.chmod(&c, b"/home/u/proj/src/deep", 0o700, true).unwrap();
}

#[test]
fn the_quick_lookups_answer_as_the_general_walk_over_a_layer() {
    for mut v in [view(), foreign_view()] {
        same_answers(&v);
        change(&mut v);
        same_answers(&v);
    }
}

#[test]
fn the_quick_lookups_answer_as_the_general_walk_over_the_index() {
    let m = Manifest::from_entries(base());
    // Without origins, and with origins for every path but every third.
    let origins: crate::origin::Origins = m
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(i, (p, _))| {
            let o = crate::origin::Origin {
                ino: 5000 + i as u64,
                ctime_ns: 9_000_000_000 + i as i64,
            };
            (p.to_vec(), o)
        })
        .collect();
    for bytes in [
        encode(&m, &m.hash()).unwrap(),
        encode_with_origins(&m, &m.hash(), &origins).unwrap(),
    ] {
        let ix = Index::from_bytes(bytes, Path::new("t.vidx")).unwrap();
        let mut v = View::new(ROOT, OWNER, vec![&ix]).unwrap();
        same_answers(&v);
        change(&mut v);
        same_answers(&v);
    }
}

#[test]
fn a_directory_counts_its_subdirectories_in_the_index_as_in_the_manifest() {
    let m = Manifest::from_entries(base());
    let ix = Index::from_bytes(encode(&m, &m.hash()).unwrap(), Path::new("t.vidx")).unwrap();
    for (path, e) in m.iter() {
        if e.kind == EntryKind::Dir {
            assert_eq!(ix.subdir_count(path), m.subdir_count(path), "{path:?}");
        }
    }
    assert_eq!(ix.subdir_count(b""), 7);
    assert_eq!(ix.subdir_count(b"src"), 1);
    assert_eq!(ix.subdir_count(b"missing"), 0);
}

#[test]
fn the_delta_tells_which_paths_it_holds_something_of() {
    let mut v = view();
    let empty = v.delta();
    assert!(!empty.holds_path_or_above(b"src/main.rs"));
    assert!(!empty.holds_below(b""));
    let me = root();
    v.mkdir(&at(&me), b"/home/u/proj/src/deep/new", 0o755)
        .unwrap();
    let d = v.delta();
    // The new directory, and its parent (whose mtime changed).
    assert!(d.holds_path_or_above(b"src/deep/new"));
    assert!(d.holds_path_or_above(b"src/deep/new/below"));
    assert!(d.holds_path_or_above(b"src/deep/x.rs"));
    assert!(!d.holds_path_or_above(b"src/main.rs"));
    assert!(!d.holds_path_or_above(b"src/deepest"));
    assert!(!d.holds_path_or_above(b"bin/tool"));
    assert!(d.holds_below(b""));
    assert!(d.holds_below(b"src"));
    assert!(d.holds_below(b"src/deep"));
    assert!(!d.holds_below(b"src/deep/new"));
    assert!(!d.holds_below(b"bin"));
    // "src/deep" is a prefix of "src/deepest" only as bytes, not as a directory.
    assert!(!d.holds_below(b"src/dee"));
}
