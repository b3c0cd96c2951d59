//! rename / renameat2.

use super::fixture::*;
use crate::vfs::*;

fn mv(
    v: &mut View<Layer>,
    cred: &Cred,
    a: &str,
    b: &str,
    mode: RenameMode,
) -> Result<Routed<(RelPath, RelPath)>, Errno> {
    v.rename(&at(cred), a.as_bytes(), b.as_bytes(), mode)
}
use crate::manifest::RelPath;

#[test]
fn rename_moves_a_file_and_keeps_its_inode() {
    let mut v = view();
    let ino = v.lookup(b"src/main.rs").unwrap().ino;
    ok(mv(
        &mut v,
        &user(),
        "src/main.rs",
        "main.rs",
        RenameMode::Replace,
    ));
    assert_eq!(v.lookup(b"src/main.rs"), None);
    let e = v.lookup(b"main.rs").unwrap();
    assert_eq!(e.ino, ino);
    assert_eq!(e.content(), Some(Content::Blob(blob("main"))));
}

#[test]
fn rename_replaces_an_existing_file_atomically() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "src/main.rs",
        "src/lib.rs",
        RenameMode::Replace,
    ));
    assert_eq!(
        v.lookup(b"src/lib.rs").unwrap().content(),
        Some(Content::Blob(blob("main")))
    );
    assert_eq!(v.lookup(b"src/main.rs"), None);
}

#[test]
fn rename_moves_a_directory_with_its_subtree() {
    let mut v = view();
    let ino = v.lookup(b"src/deep/x.rs").unwrap().ino;
    ok(mv(&mut v, &user(), "src", "lib", RenameMode::Replace));
    assert_eq!(names(&v, "lib"), ["deep", "lib.rs", "main.rs"]);
    assert_eq!(v.lookup(b"lib/deep/x.rs").unwrap().ino, ino);
    assert_eq!(v.lookup(b"src"), None);
    // Links inside the view that pointed into src are now dangling, as on a real disk.
    assert_eq!(
        v.resolve(b"link_main", ROOT, true).unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn rename_of_a_directory_onto_an_empty_directory_replaces_it() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "src/deep",
        "empty",
        RenameMode::Replace,
    ));
    assert_eq!(names(&v, "empty"), ["x.rs"]);
}

#[test]
fn rename_of_a_directory_onto_a_non_empty_directory_is_enotempty() {
    let mut v = view();
    assert_eq!(
        errno(mv(&mut v, &user(), "empty", "src", RenameMode::Replace)),
        Errno::ENOTEMPTY
    );
    assert_eq!(
        errno(mv(&mut v, &root(), "empty", "src", RenameMode::Replace)),
        Errno::ENOTEMPTY
    );
}

#[test]
fn rename_of_a_directory_onto_a_file_is_enotdir() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "empty",
            "src/main.rs",
            RenameMode::Replace
        )),
        Errno::ENOTDIR
    );
}

#[test]
fn rename_of_a_file_onto_a_directory_is_eisdir() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "empty",
            RenameMode::Replace
        )),
        Errno::EISDIR
    );
}

#[test]
fn rename_of_a_directory_into_its_own_subtree_is_einval() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src",
            "src/deep/src",
            RenameMode::Replace
        )),
        Errno::EINVAL
    );
}

#[test]
fn rename_onto_an_ancestor_is_enotempty() {
    let mut v = view();
    assert_eq!(
        errno(mv(&mut v, &user(), "src/deep", "src", RenameMode::Replace)),
        Errno::ENOTEMPTY
    );
}

#[test]
fn rename_of_a_missing_entry_is_enoent() {
    let mut v = view();
    assert_eq!(
        errno(mv(&mut v, &user(), "none", "x", RenameMode::Replace)),
        Errno::ENOENT
    );
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "nodir/x",
            RenameMode::Replace
        )),
        Errno::ENOENT
    );
}

#[test]
fn rename_onto_itself_does_nothing() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "src/main.rs",
        "src/main.rs",
        RenameMode::Replace,
    ));
    assert!(v.delta().is_empty());
}

#[test]
fn rename_noreplace_onto_an_existing_entry_is_eexist() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "src/lib.rs",
            RenameMode::NoReplace
        )),
        Errno::EEXIST
    );
    assert!(v.lookup(b"src/main.rs").is_some());
}

#[test]
fn rename_noreplace_onto_a_free_name_moves() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "src/main.rs",
        "src/m.rs",
        RenameMode::NoReplace,
    ));
    assert!(v.lookup(b"src/m.rs").is_some());
}

#[test]
fn rename_exchange_swaps_two_entries() {
    let mut v = view();
    let a = v.lookup(b"src/main.rs").unwrap();
    let b = v.lookup(b"src/lib.rs").unwrap();
    ok(mv(
        &mut v,
        &user(),
        "src/main.rs",
        "src/lib.rs",
        RenameMode::Exchange,
    ));
    // The same entries, each with its status changed (ctime) by the rename.
    let (mut a2, mut b2) = (
        v.lookup(b"src/lib.rs").unwrap(),
        v.lookup(b"src/main.rs").unwrap(),
    );
    assert!(a2.ctime() > a.ctime() && b2.ctime() > b.ctime());
    (a2.ctime_ns, b2.ctime_ns) = (a.ctime_ns, b.ctime_ns);
    assert_eq!(a2, a);
    assert_eq!(b2, b);
}

#[test]
fn rename_exchange_swaps_a_directory_and_a_file() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "src/deep",
        "src/main.rs",
        RenameMode::Exchange,
    ));
    assert!(v.lookup(b"src/main.rs").unwrap().is_dir());
    assert!(v.lookup(b"src/main.rs/x.rs").is_some());
    assert!(v.lookup(b"src/deep").unwrap().is_file());
}

#[test]
fn rename_exchange_with_a_missing_target_is_enoent() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "src/none",
            RenameMode::Exchange
        )),
        Errno::ENOENT
    );
}

#[test]
fn rename_exchange_with_an_ancestor_is_einval() {
    let mut v = view();
    assert_eq!(
        errno(mv(&mut v, &user(), "src/deep", "src", RenameMode::Exchange)),
        Errno::EINVAL
    );
}

#[test]
fn rename_flags_decode_like_renameat2() {
    assert_eq!(RenameMode::from_linux_flags(0), Ok(RenameMode::Replace));
    assert_eq!(RenameMode::from_linux_flags(1), Ok(RenameMode::NoReplace));
    assert_eq!(RenameMode::from_linux_flags(2), Ok(RenameMode::Exchange));
    assert_eq!(RenameMode::from_linux_flags(3), Err(Errno::EINVAL));
    assert_eq!(RenameMode::from_linux_flags(4), Err(Errno::EINVAL));
}

#[test]
fn rename_needs_write_on_the_source_parent() {
    let mut v = view();
    assert_eq!(
        errno(mv(&mut v, &user(), "rodir/f", "f", RenameMode::Replace)),
        Errno::EACCES
    );
    assert!(mv(&mut v, &root(), "rodir/f", "f", RenameMode::Replace).is_ok());
}

#[test]
fn rename_needs_write_on_the_target_parent() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "rodir/m",
            RenameMode::Replace
        )),
        Errno::EACCES
    );
}

#[test]
fn rename_of_a_read_only_directory_to_another_parent_is_eacces() {
    // Its ".." entry would change, which needs write permission on it.
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "rodir",
            "src/rodir",
            RenameMode::Replace
        )),
        Errno::EACCES
    );
    // Within the same parent it is allowed.
    assert!(mv(&mut v, &user(), "rodir", "rodir2", RenameMode::Replace).is_ok());
}

#[test]
fn rename_in_a_sticky_dir_of_someone_elses_file_is_eperm() {
    let mut v = foreign_view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "tmp/theirs",
            "tmp/mine",
            RenameMode::Replace
        )),
        Errno::EPERM
    );
    assert!(mv(
        &mut v,
        &root(),
        "tmp/theirs",
        "tmp/mine",
        RenameMode::Replace
    )
    .is_ok());
}

#[test]
fn rename_across_the_view_boundary_is_exdev() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "/tmp/main.rs",
            RenameMode::Replace
        )),
        Errno::EXDEV
    );
    assert_eq!(
        errno(mv(&mut v, &user(), "/tmp/x", "x", RenameMode::Replace)),
        Errno::EXDEV
    );
}

#[test]
fn rename_of_the_view_root_is_exdev() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "/home/u/proj",
            "/home/u/proj/x",
            RenameMode::Replace
        )),
        Errno::EXDEV
    );
}

#[test]
fn rename_with_both_paths_outside_goes_to_the_kernel() {
    let mut v = view();
    assert_eq!(
        mv(&mut v, &user(), "/tmp/a", "/tmp/b", RenameMode::Replace).unwrap(),
        Routed::OutsideBoth(b"/tmp/a".to_vec(), b"/tmp/b".to_vec())
    );
}

#[test]
fn rename_of_dot_is_ebusy() {
    let mut v = view();
    assert_eq!(
        errno(mv(&mut v, &user(), "src/.", "x", RenameMode::Replace)),
        Errno::EBUSY
    );
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "src/..",
            RenameMode::Replace
        )),
        Errno::EBUSY
    );
}

#[test]
fn rename_of_a_file_with_a_trailing_slash_is_enotdir() {
    let mut v = view();
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs/",
            "x",
            RenameMode::Replace
        )),
        Errno::ENOTDIR
    );
    assert_eq!(
        errno(mv(
            &mut v,
            &user(),
            "src/main.rs",
            "x/",
            RenameMode::Replace
        )),
        Errno::ENOTDIR
    );
}

#[test]
fn rename_of_a_directory_with_a_trailing_slash_works() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "empty/",
        "empty2/",
        RenameMode::Replace,
    ));
    assert!(v.lookup(b"empty2").unwrap().is_dir());
}

#[test]
fn rename_moves_the_symlink_not_its_target() {
    let mut v = view();
    ok(mv(&mut v, &user(), "link_src", "l", RenameMode::Replace));
    assert!(v.lookup(b"l").unwrap().is_symlink());
    assert!(v.lookup(b"src").unwrap().is_dir());
}

#[test]
fn rename_updates_both_parents_mtime() {
    let mut v = view();
    ok(mv(
        &mut v,
        &user(),
        "src/main.rs",
        "bin/main.rs",
        RenameMode::Replace,
    ));
    assert_eq!(v.lookup(b"src").unwrap().mtime_ns, NOW);
    assert_eq!(v.lookup(b"bin").unwrap().mtime_ns, NOW);
    assert_eq!(
        v.lookup(b"bin/main.rs").unwrap().mtime_ns,
        OLD,
        "the file's own mtime is kept"
    );
}

#[test]
fn rename_back_and_forth_restores_the_same_view() {
    let mut v = view();
    let before = v.flatten().unwrap();
    ok(mv(&mut v, &user(), "src", "tmp_src", RenameMode::Replace));
    ok(mv(&mut v, &user(), "tmp_src", "src", RenameMode::Replace));
    let after: Vec<_> = v.flatten().unwrap();
    // Everything but the mtimes of the root (touched by the renames) is the same.
    let strip = |l: Vec<(RelPath, crate::manifest::Entry)>| {
        l.into_iter()
            .filter(|(p, _)| !p.is_empty())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(before), strip(after));
}

#[test]
fn rename_between_two_names_of_one_inode_does_nothing() {
    let mut v = view();
    ok(v.link(&at(&user()), b"link_main", b"twin", false));
    ok(v.link(&at(&user()), b"src/main.rs", b"main2", false));
    let before = (v.lookup(b"twin"), v.lookup(b"main2"));
    // A hard-linked symlink and a hard-linked file, as the kernel leaves them.
    ok(mv(
        &mut v,
        &user(),
        "twin",
        "link_main",
        RenameMode::Replace,
    ));
    ok(mv(
        &mut v,
        &user(),
        "main2",
        "src/main.rs",
        RenameMode::Replace,
    ));
    assert_eq!((v.lookup(b"twin"), v.lookup(b"main2")), before);
    assert_eq!(v.stat_rel(b"main2").unwrap().nlink, 2);
    assert!(v.lookup(b"link_main").is_some() && v.lookup(b"src/main.rs").is_some());
    // Before any permission check: a caller who may not delete in the directory too.
    ok(mv(
        &mut v,
        &Cred::user(4000, 4000),
        "main2",
        "src/main.rs",
        RenameMode::Replace,
    ));
}
