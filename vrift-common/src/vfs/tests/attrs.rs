//! stat, readlink, getdents, access, chdir, chmod, utimensat.

use super::fixture::*;
use crate::vfs::*;

// ---- stat ----

#[test]
fn stat_reports_mode_size_mtime_and_kind_from_the_manifest() {
    let v = view();
    let st = ok(v.stat(&at(&user()), b"ro.so", true));
    assert_eq!(st.mode, S_IFREG | 0o444);
    assert_eq!(st.size, 2);
    assert_eq!(st.mtime_ns, OLD);
    assert_eq!(st.nlink, 1);
    assert_eq!(st.blocks, 8, "one 4 KiB block");
    assert_eq!(st.pending, None);
}

#[test]
fn stat_of_a_directory_reports_one_block_like_a_disk_file_system() {
    let v = view();
    let st = ok(v.stat(&at(&user()), b"src", true));
    assert_eq!((st.size, st.blocks), (4096, 8));
}

#[test]
fn stat_reports_the_view_owner_for_every_entry() {
    let v = foreign_view();
    let st = ok(v.stat(&at(&user()), b"src/main.rs", true));
    assert_eq!((st.uid, st.gid), (2000, 3000));
}

#[test]
fn stat_reports_the_views_dev() {
    let v = view().with_dev(42);
    assert_eq!(ok(v.stat(&at(&user()), b"src", true)).dev, 42);
}

#[test]
fn stat_follows_symlinks_and_lstat_does_not() {
    let v = view();
    let st = ok(v.stat(&at(&user()), b"link_main", true));
    assert_eq!(st.mode & S_IFMT, S_IFREG);
    let lst = ok(v.stat(&at(&user()), b"link_main", false));
    assert_eq!(lst.mode, S_IFLNK | 0o777);
    assert_eq!(lst.size, "src/main.rs".len() as u64);
}

#[test]
fn stat_of_a_directory_counts_subdirectories_in_nlink() {
    let v = view();
    let st = ok(v.stat(&at(&user()), b"src", true));
    assert_eq!(st.mode, S_IFDIR | 0o755);
    assert_eq!(st.nlink, 3, "2 + deep");
    assert_eq!(ok(v.stat(&at(&user()), b"empty", true)).nlink, 2);
}

#[test]
fn stat_of_a_missing_entry_is_enoent() {
    let v = view();
    assert_eq!(errno(v.stat(&at(&user()), b"none", true)), Errno::ENOENT);
    assert_eq!(
        errno(v.stat(&at(&user()), b"dangling", true)),
        Errno::ENOENT
    );
}

#[test]
fn stat_under_a_directory_without_search_permission_is_eacces() {
    let v = foreign_view();
    assert_eq!(
        errno(v.stat(&at(&user()), b"closed/f", true)),
        Errno::EACCES
    );
    assert!(v.stat(&at(&root()), b"closed/f", true).is_ok());
}

#[test]
fn inode_numbers_are_stable_and_distinct() {
    let v = view();
    let a = ok(v.stat(&at(&user()), b"src/main.rs", true)).ino;
    let b = ok(v.stat(&at(&user()), b"src/lib.rs", true)).ino;
    assert_ne!(a, b);
    let v2 = view();
    assert_eq!(
        ok(v2.stat(&at(&user()), b"src/main.rs", true)).ino,
        a,
        "same path, same ino in every run"
    );
    assert_eq!(a, path_ino(b"src/main.rs"));
}

#[test]
fn inode_of_a_new_file_differs_from_a_renamed_one_at_its_old_path() {
    let mut v = view();
    let u = user();
    let old = v.lookup(b"src/main.rs").unwrap().ino;
    ok(v.rename(&at(&u), b"src/main.rs", b"moved.rs", RenameMode::Replace));
    ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only().creat(),
        0o644,
    ));
    let new = v.lookup(b"src/main.rs").unwrap().ino;
    assert_ne!(new, old);
    assert_eq!(v.lookup(b"moved.rs").unwrap().ino, old);
}

#[test]
fn stat_of_a_pending_file_names_its_private_copy() {
    let mut v = view();
    let u = user();
    let Opened::Write { id, .. } = ok(v.open(&at(&u), b"src/main.rs", OpenFlags::write_only(), 0))
    else {
        panic!()
    };
    assert_eq!(ok(v.stat(&at(&u), b"src/main.rs", true)).pending, Some(id));
}

#[test]
fn stat_outside_the_view_goes_to_the_kernel() {
    let v = view();
    assert_eq!(
        v.stat(&at(&user()), b"/usr/bin/env", true).unwrap(),
        Routed::Outside(b"/usr/bin/env".to_vec())
    );
}

// ---- readlink ----

#[test]
fn readlink_returns_the_manifest_target() {
    let v = view();
    assert_eq!(ok(v.readlink(&at(&user()), b"out_etc")), b"/etc");
}

#[test]
fn readlink_of_a_file_is_einval() {
    let v = view();
    assert_eq!(
        errno(v.readlink(&at(&user()), b"src/main.rs")),
        Errno::EINVAL
    );
    assert_eq!(errno(v.readlink(&at(&user()), b"none")), Errno::ENOENT);
}

// ---- getdents ----

#[test]
fn read_dir_lists_dot_dotdot_and_the_children_with_kinds_and_inodes() {
    let v = view();
    let list = ok(v.read_dir(&at(&user()), b"src"));
    let shown: Vec<(String, FileType)> = list
        .iter()
        .map(|d| (String::from_utf8(d.name.clone()).unwrap(), d.kind))
        .collect();
    assert_eq!(
        shown,
        [
            (".".to_string(), FileType::Dir),
            ("..".to_string(), FileType::Dir),
            ("deep".to_string(), FileType::Dir),
            ("lib.rs".to_string(), FileType::File),
            ("main.rs".to_string(), FileType::File),
        ]
    );
    assert_eq!(list[0].ino, path_ino(b"src"));
    assert_eq!(list[1].ino, path_ino(b""));
    assert_eq!(list[4].ino, path_ino(b"src/main.rs"));
    assert_eq!(FileType::Symlink.d_type(), 10);
}

#[test]
fn read_dir_of_the_root_gives_dotdot_the_roots_inode() {
    let v = view();
    let list = ok(v.read_dir(&at(&user()), b"."));
    assert_eq!(list[1].ino, list[0].ino);
}

#[test]
fn read_dir_hides_whiteouts_and_shows_new_entries() {
    let mut v = view();
    let u = user();
    ok(v.unlink(&at(&u), b"src/lib.rs"));
    ok(v.symlink(&at(&u), b"main.rs", b"src/alias"));
    let list = ok(v.read_dir(&at(&u), b"src"));
    let names: Vec<&[u8]> = list.iter().map(|d| d.name.as_slice()).collect();
    assert_eq!(names, [&b"."[..], b"..", b"alias", b"deep", b"main.rs"]);
}

#[test]
fn read_dir_without_read_permission_is_eacces() {
    let v = foreign_view();
    // noread is 0311.
    assert_eq!(errno(v.read_dir(&at(&user()), b"noread")), Errno::EACCES);
    assert!(v.read_dir(&at(&root()), b"noread").is_ok());
}

#[test]
fn read_dir_of_a_file_is_enotdir() {
    let v = view();
    assert_eq!(
        errno(v.read_dir(&at(&user()), b"src/main.rs")),
        Errno::ENOTDIR
    );
}

// ---- access ----

#[test]
fn access_f_ok_checks_existence() {
    let v = view();
    assert!(v.access(&at(&user()), b"src/main.rs", 0, true).is_ok());
    assert_eq!(
        errno(v.access(&at(&user()), b"none", 0, true)),
        Errno::ENOENT
    );
}

#[test]
fn access_r_w_x_follow_the_mode_bits_for_a_user() {
    let v = view();
    let u = user();
    let a = |p: &[u8], m: i32| v.access(&at(&u), p, m as u32, true).err();
    assert_eq!(a(b"ro.so", libc::R_OK), None);
    assert_eq!(a(b"ro.so", libc::W_OK), Some(Errno::EACCES));
    assert_eq!(a(b"bin/tool", libc::X_OK), None);
    assert_eq!(a(b"bin/noexec", libc::X_OK), Some(Errno::EACCES));
    assert_eq!(a(b"src/main.rs", libc::R_OK | libc::W_OK), None);
}

#[test]
fn access_as_root_grants_read_write_and_x_only_with_some_x_bit() {
    let v = foreign_view();
    let r = root();
    let a = |p: &[u8], m: i32| v.access(&at(&r), p, m as u32, true).err();
    assert_eq!(a(b"secret", libc::R_OK | libc::W_OK), None);
    assert_eq!(a(b"ro.so", libc::W_OK), None);
    assert_eq!(a(b"bin/noexec", libc::X_OK), Some(Errno::EACCES));
    assert_eq!(a(b"bin/userx", libc::X_OK), None);
    assert_eq!(a(b"rodir", libc::X_OK | libc::W_OK), None);
}

#[test]
fn access_for_a_group_member_uses_the_group_bits() {
    let v = foreign_view();
    let g = group_member();
    assert!(v
        .access(&at(&g), b"grp_rw", libc::W_OK as u32, true)
        .is_ok());
    assert_eq!(
        errno(v.access(&at(&user()), b"grp_rw", libc::W_OK as u32, true)),
        Errno::EACCES
    );
}

#[test]
fn access_with_bad_mode_bits_is_einval() {
    let v = view();
    assert_eq!(
        errno(v.access(&at(&user()), b"src", 8, true)),
        Errno::EINVAL
    );
}

#[test]
fn access_nofollow_on_a_symlink_checks_the_link() {
    let v = view();
    assert!(v
        .access(&at(&user()), b"dangling", libc::W_OK as u32, false)
        .is_ok());
    assert_eq!(
        errno(v.access(&at(&user()), b"dangling", libc::W_OK as u32, true)),
        Errno::ENOENT
    );
}

// ---- chdir / getcwd ----

#[test]
fn chdir_into_a_view_directory_and_getcwd_reports_the_view_path() {
    let v = view();
    let rel = ok(v.chdir(&at(&user()), b"link_src/deep"));
    assert_eq!(rel, b"src/deep");
    assert_eq!(v.abs_path(&rel), b"/home/u/proj/src/deep");
}

#[test]
fn chdir_into_a_file_is_enotdir_and_into_a_closed_dir_eacces() {
    let v = foreign_view();
    assert_eq!(errno(v.chdir(&at(&user()), b"src/main.rs")), Errno::ENOTDIR);
    assert_eq!(errno(v.chdir(&at(&user()), b"closed")), Errno::EACCES);
}

// ---- chmod ----

#[test]
fn chmod_by_the_owner_updates_the_mode() {
    let mut v = view();
    ok(v.chmod(&at(&user()), b"ro.so", 0o644, true));
    assert_eq!(
        ok(v.stat(&at(&user()), b"ro.so", true)).mode,
        S_IFREG | 0o644
    );
    // ...and the new mode governs writes.
    assert!(v
        .open(&at(&user()), b"ro.so", OpenFlags::write_only(), 0)
        .is_ok());
}

#[test]
fn chmod_by_a_non_owner_is_eperm() {
    let mut v = foreign_view();
    assert_eq!(
        errno(v.chmod(&at(&user()), b"other_only", 0o777, true)),
        Errno::EPERM
    );
}

#[test]
fn chmod_by_root_of_someone_elses_file_succeeds() {
    let mut v = foreign_view();
    ok(v.chmod(&at(&root()), b"secret", 0o640, true));
    assert_eq!(v.lookup(b"secret").unwrap().mode, 0o640);
}

#[test]
fn chmod_keeps_only_permission_and_special_bits() {
    let mut v = view();
    ok(v.chmod(&at(&user()), b"bin/tool", 0o104755, true));
    assert_eq!(v.lookup(b"bin/tool").unwrap().mode, 0o4755);
}

#[test]
fn chmod_by_an_owner_outside_the_group_drops_setgid() {
    let mut v = View::new(
        ROOT,
        Owner {
            uid: 1000,
            gid: 3000,
        },
        vec![base()],
    )
    .unwrap();
    ok(v.chmod(&at(&user()), b"bin/tool", 0o2755, true));
    assert_eq!(v.lookup(b"bin/tool").unwrap().mode, 0o755);
}

#[test]
fn chmod_follows_symlinks_and_nofollow_on_a_symlink_is_eopnotsupp() {
    let mut v = view();
    ok(v.chmod(&at(&user()), b"link_main", 0o600, true));
    assert_eq!(v.lookup(b"src/main.rs").unwrap().mode, 0o600);
    assert_eq!(
        errno(v.chmod(&at(&user()), b"link_main", 0o600, false)),
        Errno::EOPNOTSUPP
    );
}

#[test]
fn chmod_of_a_directory_keeps_its_children_visible() {
    let mut v = view();
    ok(v.chmod(&at(&user()), b"src", 0o700, true));
    assert_eq!(names(&v, "src"), ["deep", "lib.rs", "main.rs"]);
}

#[test]
fn chmod_of_a_file_being_written_keeps_it_pending() {
    let mut v = view();
    let u = user();
    let Opened::Write { id, .. } = ok(v.open(&at(&u), b"src/main.rs", OpenFlags::write_only(), 0))
    else {
        panic!()
    };
    ok(v.chmod(&at(&u), b"src/main.rs", 0o755, true));
    v.commit(id, blob("new"), 3, NOW);
    let e = v.lookup(b"src/main.rs").unwrap();
    assert_eq!(
        (e.mode, e.content()),
        (0o755, Some(Content::Blob(blob("new"))))
    );
}

// ---- utimensat ----

#[test]
fn utimens_by_the_owner_sets_the_mtime() {
    let mut v = view();
    ok(v.utimens(
        &at(&user()),
        b"src/main.rs",
        TimeSpec::Omit,
        TimeSpec::Set(123),
        true,
    ));
    assert_eq!(v.lookup(b"src/main.rs").unwrap().mtime_ns, 123);
}

#[test]
fn utimens_now_uses_the_callers_time() {
    let mut v = view();
    ok(v.utimens(
        &at(&user()),
        b"src/main.rs",
        TimeSpec::Now,
        TimeSpec::Now,
        true,
    ));
    assert_eq!(v.lookup(b"src/main.rs").unwrap().mtime_ns, NOW);
}

#[test]
fn utimens_explicit_time_by_a_non_owner_is_eperm() {
    let mut v = foreign_view();
    assert_eq!(
        errno(v.utimens(
            &at(&user()),
            b"other_only",
            TimeSpec::Set(1),
            TimeSpec::Set(1),
            true
        )),
        Errno::EPERM
    );
}

#[test]
fn utimens_now_by_a_non_owner_with_write_access_succeeds() {
    let mut v = foreign_view();
    assert!(v
        .utimens(
            &at(&user()),
            b"other_only",
            TimeSpec::Now,
            TimeSpec::Now,
            true
        )
        .is_ok());
}

#[test]
fn utimens_now_by_a_non_owner_without_write_access_is_eacces() {
    let mut v = foreign_view();
    assert_eq!(
        errno(v.utimens(
            &at(&user()),
            b"src/main.rs",
            TimeSpec::Now,
            TimeSpec::Now,
            true
        )),
        Errno::EACCES
    );
}

#[test]
fn utimens_by_root_of_someone_elses_file_succeeds() {
    let mut v = foreign_view();
    ok(v.utimens(
        &at(&root()),
        b"secret",
        TimeSpec::Omit,
        TimeSpec::Set(5),
        true,
    ));
    assert_eq!(v.lookup(b"secret").unwrap().mtime_ns, 5);
}

#[test]
fn utimens_omit_omit_changes_nothing() {
    let mut v = foreign_view();
    ok(v.utimens(
        &at(&user()),
        b"src/main.rs",
        TimeSpec::Omit,
        TimeSpec::Omit,
        true,
    ));
    assert!(v.delta().is_empty());
}

#[test]
fn utimens_nofollow_sets_the_symlinks_own_time() {
    let mut v = view();
    ok(v.utimens(
        &at(&user()),
        b"link_main",
        TimeSpec::Omit,
        TimeSpec::Set(9),
        false,
    ));
    assert_eq!(v.lookup(b"link_main").unwrap().mtime_ns, 9);
    assert_eq!(v.lookup(b"src/main.rs").unwrap().mtime_ns, OLD);
}

#[test]
fn errno_names_itself() {
    assert_eq!(format!("{:?}", Errno::ENOTEMPTY), "ENOTEMPTY");
    assert!(Errno::EACCES.to_string().starts_with("EACCES"));
    assert_eq!(Errno::ENOENT.raw(), libc::ENOENT);
}

// ---- access and status-change times (kept for the run) ----

#[test]
fn utimens_sets_the_atime_and_every_change_the_ctime() {
    let mut v = view();
    ok(v.utimens(
        &at(&user()),
        b"src/main.rs",
        TimeSpec::Set(55),
        TimeSpec::Omit,
        true,
    ));
    let st = ok(v.stat(&at(&user()), b"src/main.rs", true));
    assert_eq!((st.atime_ns, st.mtime_ns, st.ctime_ns), (55, OLD, NOW));
    // An mtime set alone keeps the atime set before.
    ok(v.utimens(
        &at(&user()),
        b"src/main.rs",
        TimeSpec::Omit,
        TimeSpec::Set(77),
        true,
    ));
    let st = ok(v.stat(&at(&user()), b"src/main.rs", true));
    assert_eq!((st.atime_ns, st.mtime_ns), (55, 77));
}

#[test]
fn chmod_link_and_rename_change_the_ctime_and_nothing_else() {
    let mut v = view();
    let before = ok(v.stat(&at(&user()), b"src/main.rs", true));
    assert_eq!(before.ctime_ns, OLD, "a manifest's entry shows its mtime");
    ok(v.chmod(&at(&user()), b"src/main.rs", 0o600, true));
    let st = ok(v.stat(&at(&user()), b"src/main.rs", true));
    assert_eq!((st.mtime_ns, st.atime_ns, st.ctime_ns), (OLD, OLD, NOW));

    let mut v = view();
    ok(v.link(&at(&user()), b"src/main.rs", b"src/again.rs", false));
    assert_eq!(ok(v.stat(&at(&user()), b"src/main.rs", true)).ctime_ns, NOW);

    let mut v = view();
    ok(v.rename(
        &at(&user()),
        b"src/main.rs",
        b"src/moved.rs",
        RenameMode::Replace,
    ));
    let st = ok(v.stat(&at(&user()), b"src/moved.rs", true));
    assert_eq!((st.mtime_ns, st.ctime_ns), (OLD, NOW));

    // A rename over one name of a hard-linked file changes the status of its other name.
    let mut v = view();
    ok(v.link(&at(&user()), b"src/lib.rs", b"src/lib2.rs", false));
    let u = user();
    let mut later = at(&u);
    later.now_ns = NOW + 9;
    ok(v.rename(&later, b"src/main.rs", b"src/lib.rs", RenameMode::Replace));
    let st = ok(v.stat(&at(&user()), b"src/lib2.rs", true));
    assert_eq!((st.nlink, st.ctime_ns), (1, NOW + 9));
}
