//! Layer merging, whiteouts, opaque directories, flatten.

use super::fixture::*;
use crate::vfs::*;

fn two_layers() -> View<Layer> {
    let lower = layer(&[
        ("", dir(0o755)),
        ("a", dir(0o755)),
        ("a/old", file("old", 0o644)),
        ("a/both", file("lower", 0o644)),
        ("f", file("f-lower", 0o644)),
        ("d_becomes_file", dir(0o755)),
        ("d_becomes_file/x", file("x", 0o644)),
    ]);
    let upper = layer(&[
        ("", dir(0o700)),
        ("a", dir(0o750)),
        ("a/both", file("upper", 0o600)),
        ("a/new", file("new", 0o644)),
        ("d_becomes_file", file("now a file", 0o644)),
    ]);
    View::new(ROOT, OWNER, vec![lower, upper]).unwrap()
}

#[test]
fn upper_layer_entry_wins_over_base() {
    let v = two_layers();
    let e = v.lookup(b"a/both").unwrap();
    assert_eq!(e.content(), Some(Content::Blob(blob("upper"))));
    assert_eq!(e.mode, 0o600);
}

#[test]
fn upper_dir_metadata_wins_and_children_merge() {
    let v = two_layers();
    assert_eq!(v.lookup(b"a").unwrap().mode, 0o750);
    assert_eq!(names(&v, "a"), ["both", "new", "old"]);
    assert_eq!(v.lookup(b"").unwrap().mode, 0o700);
}

#[test]
fn base_only_entries_show_through() {
    let v = two_layers();
    assert_eq!(
        v.lookup(b"f").unwrap().content(),
        Some(Content::Blob(blob("f-lower")))
    );
}

#[test]
fn upper_file_hides_base_directory_and_its_children() {
    let v = two_layers();
    assert!(v.lookup(b"d_becomes_file").unwrap().is_file());
    assert_eq!(v.lookup(b"d_becomes_file/x"), None);
}

#[test]
fn missing_root_entry_gives_a_0755_directory() {
    let v = View::new(ROOT, OWNER, vec![layer(&[("a", file("a", 0o644))])]).unwrap();
    let r = v.lookup(b"").unwrap();
    assert!(r.is_dir());
    assert_eq!(r.mode, 0o755);
    assert_eq!(names(&v, ""), ["a"]);
}

#[test]
fn unlink_of_base_file_leaves_a_whiteout_that_hides_it() {
    let mut v = two_layers();
    let u = user();
    ok(v.unlink(&at(&u), b"f"));
    assert_eq!(v.lookup(b"f"), None);
    assert_eq!(v.delta().get(b"f"), Some(&DeltaNode::Whiteout));
    assert!(!names(&v, "").contains(&"f".to_string()));
}

#[test]
fn whiteout_hides_the_file_in_every_lower_layer() {
    let mut v = two_layers();
    let u = user();
    ok(v.unlink(&at(&u), b"a/both"));
    assert_eq!(v.lookup(b"a/both"), None);
    assert_eq!(names(&v, "a"), ["new", "old"]);
}

#[test]
fn deleted_directory_is_one_whiteout_hiding_its_subtree() {
    let mut v = view();
    let u = user();
    // Empty it (rmdir needs an empty dir), then remove it: one whiteout remains.
    ok(v.unlink(&at(&u), b"src/deep/x.rs"));
    ok(v.rmdir(&at(&u), b"src/deep"));
    assert_eq!(v.delta().get(b"src/deep"), Some(&DeltaNode::Whiteout));
    assert_eq!(
        v.delta().get(b"src/deep/x.rs"),
        None,
        "folded into the dir whiteout"
    );
    assert_eq!(v.lookup(b"src/deep/x.rs"), None);
}

#[test]
fn renamed_away_directory_hides_its_whole_lower_subtree_with_one_whiteout() {
    let mut v = view();
    let u = user();
    ok(v.rename(&at(&u), b"src", b"moved", RenameMode::Replace));
    assert_eq!(v.delta().get(b"src"), Some(&DeltaNode::Whiteout));
    assert_eq!(v.lookup(b"src/main.rs"), None);
    assert_eq!(v.lookup(b"src/deep/x.rs"), None);
    let whiteouts = v
        .delta()
        .iter()
        .filter(|(_, n)| **n == DeltaNode::Whiteout)
        .count();
    assert_eq!(whiteouts, 1);
}

#[test]
fn mkdir_over_deleted_lower_dir_is_opaque_and_hides_old_children() {
    let mut v = view();
    let u = user();
    ok(v.unlink(&at(&u), b"src/deep/x.rs"));
    ok(v.rmdir(&at(&u), b"src/deep"));
    ok(v.mkdir(&at(&u), b"src/deep", 0o755));
    assert!(v.lookup(b"src/deep").unwrap().is_dir());
    assert_eq!(v.lookup(b"src/deep/x.rs"), None);
    assert!(names(&v, "src/deep").is_empty());
}

#[test]
fn dir_renamed_over_lower_empty_dir_does_not_show_lower_children() {
    let lower = layer(&[
        ("", dir(0o755)),
        ("t", dir(0o755)),
        ("t/hidden", file("h", 0o644)),
        ("s", dir(0o755)),
        ("s/kept", file("k", 0o644)),
    ]);
    let mut v = View::new(ROOT, OWNER, vec![lower]).unwrap();
    let u = user();
    ok(v.unlink(&at(&u), b"t/hidden"));
    ok(v.rename(&at(&u), b"s", b"t", RenameMode::Replace));
    assert_eq!(names(&v, "t"), ["kept"]);
}

#[test]
fn changed_lower_dir_still_merges_lower_children() {
    let mut v = view();
    let u = user();
    ok(v.chmod(&at(&u), b"src", 0o750, true));
    assert_eq!(v.lookup(b"src").unwrap().mode, 0o750);
    assert_eq!(names(&v, "src"), ["deep", "lib.rs", "main.rs"]);
}

#[test]
fn new_file_in_lower_dir_is_listed_with_lower_children() {
    let mut v = view();
    let u = user();
    ok(v.open(
        &at(&u),
        b"src/new.rs",
        OpenFlags::write_only().creat(),
        0o644,
    ));
    assert_eq!(names(&v, "src"), ["deep", "lib.rs", "main.rs", "new.rs"]);
}

#[test]
fn flatten_without_changes_is_the_base_manifest() {
    let v = view();
    let flat = v.flatten().unwrap();
    let expected: Vec<_> = base().into_iter().collect();
    assert_eq!(flat, expected);
}

#[test]
fn flatten_merges_layers_and_drops_whiteouts() {
    let mut v = two_layers();
    let u = user();
    ok(v.unlink(&at(&u), b"a/old"));
    let flat = v.flatten().unwrap();
    let paths: Vec<String> = flat
        .iter()
        .map(|(p, _)| String::from_utf8(p.clone()).unwrap())
        .collect();
    assert_eq!(paths, ["", "a", "a/both", "a/new", "d_becomes_file", "f"]);
    let both = &flat.iter().find(|(p, _)| p == b"a/both").unwrap().1;
    assert_eq!(both.hash, blob("upper"));
}

#[test]
fn flatten_refuses_pending_files_and_names_them() {
    let mut v = view();
    let u = user();
    ok(v.open(&at(&u), b"src/main.rs", OpenFlags::write_only(), 0));
    let err = v.flatten().unwrap_err();
    assert_eq!(
        err,
        FlattenError::Pending {
            paths: vec![rel("src/main.rs")]
        }
    );
    assert!(err.to_string().contains("src/main.rs"));
}

#[test]
fn pending_lists_files_being_written() {
    let mut v = view();
    let u = user();
    let Opened::Write { id, .. } = ok(v.open(&at(&u), b"src/main.rs", OpenFlags::write_only(), 0))
    else {
        panic!("write expected")
    };
    assert_eq!(v.pending(), vec![(id, rel("src/main.rs"))]);
}

#[test]
fn flatten_after_commit_points_at_the_new_blob_with_the_mode_kept() {
    let mut v = view();
    let u = user();
    let Opened::Write { id, seed, .. } =
        ok(v.open(&at(&u), b"src/main.rs", OpenFlags::write_only(), 0))
    else {
        panic!("write expected")
    };
    assert_eq!(seed, Seed::CopyOf(blob("main")));
    let paths = v.commit(id, blob("main v2"), 7, NOW + 5);
    assert_eq!(paths, vec![rel("src/main.rs")]);
    let flat = v.flatten().unwrap();
    let e = &flat.iter().find(|(p, _)| p == b"src/main.rs").unwrap().1;
    assert_eq!(
        (e.hash, e.size, e.mode, e.mtime_ns),
        (blob("main v2"), 7, 0o644, NOW + 5)
    );
}

#[test]
fn flatten_keeps_fifos() {
    let mut v = view();
    let u = user();
    ok(v.mknod(&at(&u), b"pipe", S_IFIFO | 0o644));
    assert!(v.lookup(b"pipe").is_some());
    let flat = v.flatten().unwrap();
    let e = &flat.iter().find(|(p, _)| p == b"pipe").unwrap().1;
    assert_eq!(e.kind, crate::manifest::EntryKind::Fifo);
}

#[test]
fn flatten_records_new_dirs_symlinks_and_deletions() {
    let mut v = view();
    let u = user();
    ok(v.mkdir(&at(&u), b"target", 0o777));
    ok(v.symlink(&at(&u), b"../src", b"target/s"));
    ok(v.unlink(&at(&u), b"ro.so"));
    let flat = v.flatten().unwrap();
    let get = |p: &str| {
        flat.iter()
            .find(|(q, _)| q == p.as_bytes())
            .map(|(_, e)| e.clone())
    };
    assert_eq!(get("target").unwrap().mode, 0o755, "umask 022 applied");
    assert_eq!(get("target/s").unwrap().target, b"../src");
    assert_eq!(get("ro.so"), None);
}

#[test]
fn too_many_layers_is_an_error_naming_the_root() {
    let layers: Vec<Layer> = (0..65).map(|_| Layer::new()).collect();
    let err = View::new(ROOT, OWNER, layers).unwrap_err();
    assert!(err.to_string().contains("/home/u/proj"));
}

#[test]
fn relative_or_dotted_root_is_refused() {
    assert!(View::<Layer>::new(b"proj", OWNER, vec![]).is_err());
    assert!(View::<Layer>::new(b"/home/../proj", OWNER, vec![]).is_err());
}

#[test]
fn root_is_normalized() {
    let v = View::<Layer>::new(b"//home/u/proj/", OWNER, vec![]).unwrap();
    assert_eq!(v.root(), ROOT);
}

#[test]
fn btreemap_children_skips_grandchildren_and_lists_names_in_order() {
    let l = layer(&[
        ("a", dir(0o755)),
        ("a/b", dir(0o755)),
        ("a/b/c", file("c", 0o644)),
        ("a-z", file("z", 0o644)),
        ("a/d", file("d", 0o644)),
        ("b", file("b", 0o644)),
    ]);
    let top: Vec<&[u8]> = LayerSource::children(&l, b"")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(top, [&b"a"[..], b"a-z", b"b"]);
    let a: Vec<&[u8]> = LayerSource::children(&l, b"a")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(a, [&b"b"[..], b"d"]);
}

#[test]
fn delta_survives_into_a_new_view_of_the_same_layers() {
    let mut v = view();
    let u = user();
    ok(v.unlink(&at(&u), b"ro.so"));
    let delta = v.into_delta();
    let v2 = View::new(ROOT, OWNER, vec![base()])
        .unwrap()
        .with_delta(delta);
    assert_eq!(v2.lookup(b"ro.so"), None);
}

#[test]
fn dir_made_again_over_a_whiteout_hides_children_of_every_lower_layer() {
    let lower = layer(&[
        ("", dir(0o755)),
        ("d", dir(0o755)),
        ("d/from_base", file("b", 0o644)),
    ]);
    let upper = layer(&[("d", dir(0o755)), ("d/from_upper", file("u", 0o644))]);
    let mut v = View::new(ROOT, OWNER, vec![lower, upper]).unwrap();
    let u = user();
    ok(v.unlink(&at(&u), b"d/from_base"));
    ok(v.unlink(&at(&u), b"d/from_upper"));
    ok(v.rmdir(&at(&u), b"d"));
    ok(v.mkdir(&at(&u), b"d", 0o700));
    assert!(names(&v, "d").is_empty());
    assert_eq!(v.lookup(b"d/from_base"), None);
    assert_eq!(v.lookup(b"d").unwrap().mode, 0o700);
    let flat = v.flatten().unwrap();
    assert!(flat.iter().all(|(p, _)| !p.starts_with(b"d/")));
}

#[test]
fn lower_layer_non_directory_ends_the_merge_below_a_directory() {
    // base has a file "d", the middle layer a dir "d": base's entry cannot add children.
    let base_l = layer(&[("", dir(0o755)), ("d", file("f", 0o644))]);
    let mid = layer(&[("d", dir(0o755)), ("d/x", file("x", 0o644))]);
    let v = View::new(ROOT, OWNER, vec![base_l, mid]).unwrap();
    assert!(v.lookup(b"d").unwrap().is_dir());
    assert_eq!(names(&v, "d"), ["x"]);
}

/// A manifest layer's whiteouts hide the path (and a directory's subtree) in every layer
/// below it; a directory made again above a whited-out one shows only its own children.
#[test]
fn a_manifest_layers_whiteouts_hide_what_is_below() {
    use crate::manifest::Manifest;
    use std::sync::Arc;
    let m = |l: Layer| Manifest::from_entries(l);
    let lowest = m(layer(&[
        ("", dir(0o755)),
        ("etc", dir(0o755)),
        ("etc/a.conf", file("a", 0o644)),
        ("etc/b.conf", file("b", 0o644)),
        ("share", dir(0o755)),
        ("share/old", file("old", 0o644)),
    ]));
    let middle = m(layer(&[("", dir(0o755)), ("etc", dir(0o755))]))
        .with_whiteouts([rel("etc/a.conf"), rel("share")]);
    let top = m(layer(&[
        ("", dir(0o755)),
        ("share", dir(0o755)),
        ("share/new", file("new", 0o644)),
    ]));
    let v = View::new(
        ROOT,
        OWNER,
        vec![Arc::new(lowest), Arc::new(middle), Arc::new(top)],
    )
    .unwrap();
    assert_eq!(v.lookup(b"etc/a.conf"), None);
    assert_eq!(names(&v, "etc"), ["b.conf"]);
    assert_eq!(names(&v, "share"), ["new"]);
    assert_eq!(v.lookup(b"share/old"), None);
    let flat: Vec<String> = v
        .flatten()
        .unwrap()
        .into_iter()
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .collect();
    assert_eq!(flat, ["", "etc", "etc/b.conf", "share", "share/new"]);
}
