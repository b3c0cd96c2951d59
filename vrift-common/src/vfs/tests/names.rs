//! mkdir, rmdir, unlink, link, symlink, mknod.

use super::fixture::*;
use crate::vfs::*;

// ---- mkdir ----

#[test]
fn mkdir_adds_an_empty_directory_with_mode_after_umask() {
    let mut v = view();
    let u = user();
    assert_eq!(ok(v.mkdir(&at(&u), b"target", 0o777)), rel("target"));
    let e = v.lookup(b"target").unwrap();
    assert!(e.is_dir());
    assert_eq!(e.mode, 0o755);
    assert!(names(&v, "target").is_empty());
}

#[test]
fn mkdir_of_an_existing_entry_is_eexist() {
    let mut v = view();
    let u = user();
    assert_eq!(errno(v.mkdir(&at(&u), b"src", 0o755)), Errno::EEXIST);
    assert_eq!(
        errno(v.mkdir(&at(&u), b"src/main.rs", 0o755)),
        Errno::EEXIST
    );
    assert_eq!(errno(v.mkdir(&at(&u), b"dangling", 0o755)), Errno::EEXIST);
    assert_eq!(errno(v.mkdir(&at(&u), b"src/.", 0o755)), Errno::EEXIST);
    assert_eq!(errno(v.mkdir(&at(&u), ROOT, 0o755)), Errno::EEXIST);
}

#[test]
fn mkdir_in_a_missing_directory_is_enoent() {
    let mut v = view();
    assert_eq!(errno(v.mkdir(&at(&user()), b"a/b", 0o755)), Errno::ENOENT);
}

#[test]
fn mkdir_with_a_trailing_slash_works() {
    let mut v = view();
    assert_eq!(ok(v.mkdir(&at(&user()), b"newdir/", 0o755)), rel("newdir"));
}

#[test]
fn mkdir_in_a_read_only_directory_is_eacces_for_user_and_works_for_root() {
    let mut v = view();
    assert_eq!(
        errno(v.mkdir(&at(&user()), b"rodir/d", 0o755)),
        Errno::EACCES
    );
    assert!(v.mkdir(&at(&root()), b"rodir/d", 0o755).is_ok());
}

#[test]
fn mkdir_needs_search_permission_on_the_parent() {
    let mut v = foreign_view();
    // noread is 0311: write+search for other... and closed 0700 gives other nothing.
    assert_eq!(
        errno(v.mkdir(&at(&user()), b"closed/d", 0o755)),
        Errno::EACCES
    );
}

#[test]
fn mkdir_in_a_setgid_directory_inherits_setgid() {
    let mut v = view();
    let u = user();
    ok(v.chmod(&at(&u), b"src", 0o2755, true));
    ok(v.mkdir(&at(&u), b"src/sub", 0o755));
    assert_eq!(v.lookup(b"src/sub").unwrap().mode, 0o2755);
}

#[test]
fn mkdir_updates_the_parent_mtime_and_nlink() {
    let mut v = view();
    let before = v.stat_rel(b"src").unwrap().nlink;
    ok(v.mkdir(&at(&user()), b"src/sub", 0o755));
    let st = v.stat_rel(b"src").unwrap();
    assert_eq!(st.nlink, before + 1);
    assert_eq!(st.mtime_ns, NOW);
}

// ---- rmdir ----

#[test]
fn rmdir_removes_an_empty_directory() {
    let mut v = view();
    ok(v.rmdir(&at(&user()), b"empty"));
    assert_eq!(v.lookup(b"empty"), None);
}

#[test]
fn rmdir_of_a_non_empty_directory_is_enotempty() {
    let mut v = view();
    assert_eq!(errno(v.rmdir(&at(&user()), b"src")), Errno::ENOTEMPTY);
    assert_eq!(errno(v.rmdir(&at(&root()), b"src")), Errno::ENOTEMPTY);
}

#[test]
fn rmdir_of_a_file_or_symlink_is_enotdir() {
    let mut v = view();
    assert_eq!(errno(v.rmdir(&at(&user()), b"src/main.rs")), Errno::ENOTDIR);
    assert_eq!(errno(v.rmdir(&at(&user()), b"link_src")), Errno::ENOTDIR);
}

#[test]
fn rmdir_of_a_missing_entry_is_enoent() {
    let mut v = view();
    assert_eq!(errno(v.rmdir(&at(&user()), b"none")), Errno::ENOENT);
}

#[test]
fn rmdir_of_dot_is_einval_and_of_dotdot_is_enotempty() {
    let mut v = view();
    assert_eq!(errno(v.rmdir(&at(&user()), b"empty/.")), Errno::EINVAL);
    assert_eq!(errno(v.rmdir(&at(&user()), b"empty/..")), Errno::ENOTEMPTY);
}

#[test]
fn rmdir_of_the_view_root_is_ebusy() {
    let mut v = View::new(ROOT, OWNER, vec![layer(&[("", dir(0o755))])]).unwrap();
    assert_eq!(errno(v.rmdir(&at(&user()), ROOT)), Errno::EBUSY);
    let mut at_slash = View::new(b"/", OWNER, vec![layer(&[("", dir(0o755))])]).unwrap();
    assert_eq!(
        errno(at_slash.rmdir(&at_cwd(&user(), b"/"), b"/")),
        Errno::EBUSY
    );
}

#[test]
fn rmdir_in_a_read_only_parent_is_eacces() {
    let mut v = view();
    ok(v.mkdir(&at(&root()), b"rodir/d", 0o755));
    assert_eq!(errno(v.rmdir(&at(&user()), b"rodir/d")), Errno::EACCES);
}

#[test]
fn rmdir_of_a_directory_emptied_in_the_delta_works() {
    let mut v = view();
    // rodir is 0555: only root may remove its file; then the user may remove rodir itself.
    ok(v.unlink(&at(&root()), b"rodir/f"));
    ok(v.rmdir(&at(&user()), b"rodir"));
    assert_eq!(v.lookup(b"rodir"), None);
}

// ---- unlink ----

#[test]
fn unlink_removes_a_file() {
    let mut v = view();
    assert_eq!(
        ok(v.unlink(&at(&user()), b"src/main.rs")),
        rel("src/main.rs")
    );
    assert_eq!(v.lookup(b"src/main.rs"), None);
    assert_eq!(v.lookup(b"src").unwrap().mtime_ns, NOW);
}

#[test]
fn unlink_of_a_0444_file_in_a_writable_dir_succeeds() {
    let mut v = view();
    assert!(v.unlink(&at(&user()), b"ro.so").is_ok());
}

#[test]
fn unlink_removes_the_symlink_not_its_target() {
    let mut v = view();
    ok(v.unlink(&at(&user()), b"link_main"));
    assert_eq!(v.lookup(b"link_main"), None);
    assert!(v.lookup(b"src/main.rs").is_some());
}

#[test]
fn unlink_of_a_directory_is_eisdir() {
    let mut v = view();
    assert_eq!(errno(v.unlink(&at(&user()), b"empty")), Errno::EISDIR);
    assert_eq!(errno(v.unlink(&at(&root()), b"empty")), Errno::EISDIR);
    assert_eq!(errno(v.unlink(&at(&user()), b"src/.")), Errno::EISDIR);
}

#[test]
fn unlink_with_a_trailing_slash_is_enotdir_on_a_file() {
    let mut v = view();
    assert_eq!(
        errno(v.unlink(&at(&user()), b"src/main.rs/")),
        Errno::ENOTDIR
    );
    assert_eq!(errno(v.unlink(&at(&user()), b"empty/")), Errno::EISDIR);
    assert_eq!(errno(v.unlink(&at(&user()), b"none/")), Errno::ENOENT);
}

#[test]
fn unlink_of_a_missing_file_is_enoent() {
    let mut v = view();
    assert_eq!(errno(v.unlink(&at(&user()), b"src/none")), Errno::ENOENT);
}

#[test]
fn unlink_in_a_read_only_dir_is_eacces_for_user_and_works_for_root() {
    let mut v = view();
    assert_eq!(errno(v.unlink(&at(&user()), b"rodir/f")), Errno::EACCES);
    assert!(v.unlink(&at(&root()), b"rodir/f").is_ok());
}

#[test]
fn unlink_in_a_dir_of_another_owner_without_other_write_is_eacces() {
    let mut v = foreign_view();
    assert_eq!(errno(v.unlink(&at(&user()), b"src/main.rs")), Errno::EACCES);
}

#[test]
fn unlink_in_a_sticky_dir_of_someone_elses_file_is_eperm() {
    let mut v = foreign_view();
    assert_eq!(errno(v.unlink(&at(&user()), b"tmp/theirs")), Errno::EPERM);
}

#[test]
fn unlink_in_a_sticky_dir_by_the_owner_or_root_succeeds() {
    let mut v = view();
    assert!(v.unlink(&at(&user()), b"tmp/theirs").is_ok());
    let mut v = foreign_view();
    assert!(v.unlink(&at(&root()), b"tmp/theirs").is_ok());
}

#[test]
fn unlink_of_a_file_created_in_this_run_leaves_no_trace() {
    let mut v = view();
    let u = user();
    ok(v.open(&at(&u), b"scratch", OpenFlags::write_only().creat(), 0o644));
    ok(v.unlink(&at(&u), b"scratch"));
    assert!(v.delta().get(b"scratch").is_none(), "no whiteout needed");
    assert!(v.pending().is_empty());
}

// ---- link ----

#[test]
fn link_makes_a_second_name_of_the_same_inode() {
    let mut v = view();
    ok(v.link(&at(&user()), b"src/main.rs", b"main2", false));
    let a = v.lookup(b"src/main.rs").unwrap();
    let b = v.lookup(b"main2").unwrap();
    assert_eq!(a.content(), b.content());
    assert_eq!(a.mode, b.mode);
    assert_eq!(a.ino, b.ino);
    assert_eq!(v.stat_rel(b"src/main.rs").unwrap().nlink, 2);
    assert_eq!(v.stat_rel(b"main2").unwrap().nlink, 2);
    // A write through one name is the write of both.
    let o = ok(v.open(
        &at(&user()),
        b"main2",
        OpenFlags::from_raw(libc::O_WRONLY),
        0,
    ));
    assert!(matches!(o, Opened::Write { .. }));
    let (a, b) = (
        v.lookup(b"src/main.rs").unwrap(),
        v.lookup(b"main2").unwrap(),
    );
    assert!(matches!(a.content(), Some(Content::Pending(_))));
    assert_eq!(a.content(), b.content());
    // Removing one name: the other counts one link, and its status changed.
    let u = user();
    let mut later = at(&u);
    later.now_ns = NOW + 5;
    ok(v.unlink(&later, b"main2"));
    let st = v.stat_rel(b"src/main.rs").unwrap();
    assert_eq!((st.nlink, st.ctime_ns), (1, NOW + 5));
}

#[test]
fn link_onto_an_existing_name_is_eexist() {
    let mut v = view();
    assert_eq!(
        errno(v.link(&at(&user()), b"src/main.rs", b"src/lib.rs", false)),
        Errno::EEXIST
    );
}

#[test]
fn link_of_a_directory_is_eperm() {
    let mut v = view();
    assert_eq!(
        errno(v.link(&at(&user()), b"src", b"src2", false)),
        Errno::EPERM
    );
    assert_eq!(
        errno(v.link(&at(&root()), b"src", b"src2", false)),
        Errno::EPERM
    );
}

#[test]
fn link_of_a_missing_file_is_enoent() {
    let mut v = view();
    assert_eq!(
        errno(v.link(&at(&user()), b"none", b"x", false)),
        Errno::ENOENT
    );
}

#[test]
fn link_without_follow_links_the_symlink_itself() {
    let mut v = view();
    ok(v.link(&at(&user()), b"link_main", b"l2", false));
    assert!(v.lookup(b"l2").unwrap().is_symlink());
    ok(v.link(&at(&user()), b"link_main", b"l3", true));
    assert!(v.lookup(b"l3").unwrap().is_file());
}

#[test]
fn link_into_a_read_only_dir_is_eacces() {
    let mut v = view();
    assert_eq!(
        errno(v.link(&at(&user()), b"src/main.rs", b"rodir/m", false)),
        Errno::EACCES
    );
}

#[test]
fn link_across_the_view_boundary_is_exdev() {
    let mut v = view();
    assert_eq!(
        errno(v.link(&at(&user()), b"src/main.rs", b"/tmp/m", false)),
        Errno::EXDEV
    );
    assert_eq!(
        errno(v.link(&at(&user()), b"/etc/hosts", b"hosts", false)),
        Errno::EXDEV
    );
}

#[test]
fn link_with_both_paths_outside_goes_to_the_kernel() {
    let mut v = view();
    assert_eq!(
        v.link(&at(&user()), b"/tmp/a", b"/tmp/b", false).unwrap(),
        Routed::OutsideBoth(b"/tmp/a".to_vec(), b"/tmp/b".to_vec())
    );
}

#[test]
fn link_of_a_0666_file_of_another_owner_succeeds() {
    // protected_hardlinks: a non-owner may link what they can read and write.
    let mut v = foreign_view();
    assert!(v
        .link(&at(&user()), b"tmp/theirs", b"tmp/mine", false)
        .is_ok());
}

#[test]
fn link_of_a_0600_file_of_another_owner_is_eperm() {
    let mut v = foreign_view();
    let u = user();
    ok(v.chmod(&at(&root()), b"tmp/theirs", 0o600, true));
    assert_eq!(
        errno(v.link(&at(&u), b"tmp/theirs", b"tmp/mine", false)),
        Errno::EPERM
    );
}

#[test]
fn link_of_a_pending_file_shares_the_pending_copy_until_commit() {
    let mut v = view();
    let u = user();
    let Opened::Write { id, .. } =
        ok(v.open(&at(&u), b"a.tmp", OpenFlags::write_only().creat(), 0o644))
    else {
        panic!()
    };
    ok(v.link(&at(&u), b"a.tmp", b"a", false));
    ok(v.unlink(&at(&u), b"a.tmp"));
    assert_eq!(v.commit(id, blob("A"), 1, NOW), vec![rel("a")]);
    assert_eq!(
        v.lookup(b"a").unwrap().content(),
        Some(Content::Blob(blob("A")))
    );
}

// ---- symlink ----

#[test]
fn symlink_makes_a_link_with_the_given_target() {
    let mut v = view();
    ok(v.symlink(&at(&user()), b"src/main.rs", b"m"));
    let e = v.lookup(b"m").unwrap();
    assert_eq!(e.node, Node::Symlink(b"src/main.rs".to_vec()));
    assert_eq!(e.size, 11);
    assert_eq!(ok(v.readlink(&at(&user()), b"m")), b"src/main.rs");
}

#[test]
fn symlink_onto_an_existing_name_is_eexist() {
    let mut v = view();
    assert_eq!(errno(v.symlink(&at(&user()), b"x", b"src")), Errno::EEXIST);
    assert_eq!(
        errno(v.symlink(&at(&user()), b"x", b"dangling")),
        Errno::EEXIST
    );
}

#[test]
fn symlink_with_an_empty_target_is_enoent() {
    let mut v = view();
    assert_eq!(errno(v.symlink(&at(&user()), b"", b"e")), Errno::ENOENT);
}

#[test]
fn symlink_with_a_trailing_slash_on_a_new_name_is_enoent() {
    let mut v = view();
    assert_eq!(
        errno(v.symlink(&at(&user()), b"x", b"newlink/")),
        Errno::ENOENT
    );
}

#[test]
fn symlink_in_a_read_only_dir_is_eacces() {
    let mut v = view();
    assert_eq!(
        errno(v.symlink(&at(&user()), b"x", b"rodir/l")),
        Errno::EACCES
    );
}

// ---- mknod ----

#[test]
fn mknod_fifo_adds_a_fifo_entry() {
    let mut v = view();
    ok(v.mknod(&at(&user()), b"pipe", S_IFIFO | 0o666));
    let st = v.stat_rel(b"pipe").unwrap();
    assert_eq!(st.mode, S_IFIFO | 0o644);
    assert_eq!(
        v.list_dir(b"")
            .unwrap()
            .iter()
            .find(|d| d.name == b"pipe")
            .unwrap()
            .kind,
        FileType::Fifo
    );
}

#[test]
fn mknod_regular_makes_an_empty_file() {
    let mut v = view();
    ok(v.mknod(&at(&user()), b"f", S_IFREG | 0o644));
    let e = v.lookup(b"f").unwrap();
    assert_eq!(e.content(), Some(Content::Blob(crate::hash::Hash::of(b""))));
    assert_eq!(e.size, 0);
}

#[test]
fn mknod_of_a_device_is_for_root_and_lives_for_the_run_only() {
    let mut v = view();
    assert_eq!(
        errno(v.mknod_dev(&at(&user()), b"dev", 0o020000 | 0o644, 0x0103)),
        Errno::EPERM
    );
    ok(v.mknod_dev(&at(&root()), b"blk", 0o060000 | 0o644, 0x0801));
    ok(v.mknod_dev(&at(&root()), b"chr", 0o020000 | 0o600, 0));
    // A socket needs no privilege, as on a disk.
    ok(v.mknod_dev(&at(&user()), b"sock", 0o140000 | 0o644, 0));
    let blk = v.stat_rel(b"blk").unwrap();
    assert_eq!((blk.mode, blk.rdev), (0o060000 | 0o644, 0x0801));
    let chr = v.stat_rel(b"chr").unwrap();
    assert_eq!((chr.mode, chr.rdev), (0o020000 | 0o600, 0));
    assert_eq!(v.stat_rel(b"sock").unwrap().mode, 0o140000 | 0o644);
    let kinds: Vec<_> = v
        .list_dir(b"")
        .unwrap()
        .into_iter()
        .filter(|d| [&b"blk"[..], b"chr", b"sock"].contains(&d.name.as_slice()))
        .map(|d| d.kind)
        .collect();
    assert_eq!(kinds, [FileType::Block, FileType::Char, FileType::Socket]);
    // A manifest keeps none of them.
    let flat = v.flatten().unwrap();
    assert!(flat
        .iter()
        .all(|(p, _)| !p.starts_with(b"blk") && !p.starts_with(b"chr") && !p.starts_with(b"sock")));
}

#[test]
fn mknod_of_an_existing_name_is_eexist() {
    let mut v = view();
    assert_eq!(
        errno(v.mknod(&at(&user()), b"src", S_IFIFO | 0o644)),
        Errno::EEXIST
    );
}

#[test]
fn mknod_with_a_bad_type_is_einval() {
    let mut v = view();
    assert_eq!(errno(v.mknod(&at(&user()), b"x", 0o170000)), Errno::EINVAL);
}
