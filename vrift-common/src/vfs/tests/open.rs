//! open (RFC-0047's open rows), exec, truncate, commit.

use super::fixture::*;
use crate::vfs::*;

fn write_id(o: Opened) -> (DeltaId, Seed) {
    match o {
        Opened::Write { id, seed, .. } => (id, seed),
        o => panic!("expected a write, got {o:?}"),
    }
}

// ---- open(O_RDONLY): R bit ----

#[test]
fn open_read_on_0644_as_user_returns_the_blob() {
    let mut v = view();
    let u = user();
    assert_eq!(
        ok(v.open(&at(&u), b"src/main.rs", OpenFlags::read_only(), 0)),
        Opened::Read {
            rel: rel("src/main.rs"),
            content: Content::Blob(blob("main"))
        }
    );
    assert!(v.delta().is_empty(), "reading changes nothing");
}

#[test]
fn open_read_on_0600_of_another_owner_is_eacces() {
    let mut v = foreign_view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"secret", OpenFlags::read_only(), 0)),
        Errno::EACCES
    );
}

#[test]
fn open_read_on_0600_of_another_owner_as_root_succeeds() {
    let mut v = foreign_view();
    let r = root();
    assert!(matches!(
        ok(v.open(&at(&r), b"secret", OpenFlags::read_only(), 0)),
        Opened::Read { .. }
    ));
}

#[test]
fn open_read_uses_group_bits_for_a_group_member() {
    let mut v = foreign_view();
    let g = group_member();
    // grp_rw is 0464: group may read and write, owner and other may only read.
    assert!(v
        .open(&at(&g), b"grp_rw", OpenFlags::read_write(), 0)
        .is_ok());
    let mut v = foreign_view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"grp_rw", OpenFlags::read_write(), 0)),
        Errno::EACCES
    );
}

#[test]
fn open_uses_other_bits_for_a_stranger() {
    let mut v = foreign_view();
    let u = user();
    // other_only is 0606: other may read and write.
    assert!(v
        .open(&at(&u), b"other_only", OpenFlags::read_write(), 0)
        .is_ok());
}

#[test]
fn owner_class_denies_even_when_other_bits_allow() {
    let mut v = view();
    let u = user();
    // 0066: the owner class (---) applies to uid 1000 even though group and other may
    // read and write.
    ok(v.chmod(&at(&u), b"other_only", 0o066, true));
    assert_eq!(
        errno(v.open(&at(&u), b"other_only", OpenFlags::read_only(), 0)),
        Errno::EACCES
    );
}

// ---- open for write: W bit, CoW ----

#[test]
fn open_write_on_0644_as_user_makes_a_cow_copy_and_the_entry_pending() {
    let mut v = view();
    let u = user();
    let (id, seed) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    assert_eq!(seed, Seed::CopyOf(blob("main")));
    let e = v.lookup(b"src/main.rs").unwrap();
    assert_eq!(e.content(), Some(Content::Pending(id)));
    assert_eq!(e.mode, 0o644);
}

#[test]
fn open_write_on_0444_as_user_is_eacces() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"ro.so", OpenFlags::write_only(), 0)),
        Errno::EACCES
    );
    assert!(v.delta().is_empty(), "nothing changes");
}

#[test]
fn open_write_on_0444_as_root_succeeds() {
    let mut v = view();
    let r = root();
    let (_, seed) = write_id(ok(v.open(&at(&r), b"ro.so", OpenFlags::write_only(), 0)));
    assert_eq!(seed, Seed::CopyOf(blob("ro")));
}

#[test]
fn open_rdwr_on_0444_as_user_is_eacces() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"ro.so", OpenFlags::read_write(), 0)),
        Errno::EACCES
    );
}

#[test]
fn open_write_on_0644_of_another_owner_is_eacces() {
    let mut v = foreign_view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"src/main.rs", OpenFlags::write_only(), 0)),
        Errno::EACCES
    );
}

#[test]
fn open_write_on_a_directory_is_eisdir() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"src", OpenFlags::write_only(), 0)),
        Errno::EISDIR
    );
    assert_eq!(
        errno(v.open(&at(&u), b"src", OpenFlags::read_write(), 0)),
        Errno::EISDIR
    );
    let r = root();
    assert_eq!(
        errno(v.open(&at(&r), b"src", OpenFlags::write_only(), 0)),
        Errno::EISDIR
    );
}

#[test]
fn open_read_of_a_directory_gives_the_directory() {
    let mut v = view();
    let u = user();
    assert_eq!(
        ok(v.open(&at(&u), b"src", OpenFlags::read_only().directory(), 0)),
        Opened::Dir { rel: rel("src") }
    );
}

#[test]
fn second_open_for_write_reuses_the_private_copy() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    let (id2, seed2) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::read_write(),
        0,
    )));
    assert_eq!(id, id2);
    assert_eq!(seed2, Seed::Existing { truncate: false });
}

#[test]
fn open_read_of_a_pending_file_reads_the_private_copy() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    assert_eq!(
        ok(v.open(&at(&u), b"src/main.rs", OpenFlags::read_only(), 0)),
        Opened::Read {
            rel: rel("src/main.rs"),
            content: Content::Pending(id)
        }
    );
}

// ---- O_TRUNC, O_APPEND ----

#[test]
fn o_trunc_starts_empty_and_sets_size_zero_and_mtime_now() {
    let mut v = view();
    let u = user();
    let (_, seed) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only().trunc(),
        0,
    )));
    assert_eq!(seed, Seed::Empty);
    let st = v.stat_rel(b"src/main.rs").unwrap();
    assert_eq!((st.size, st.mtime_ns), (0, NOW));
}

#[test]
fn o_trunc_with_o_rdonly_needs_write_permission() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"ro.so", OpenFlags::read_only().trunc(), 0)),
        Errno::EACCES
    );
}

#[test]
fn o_trunc_on_a_pending_file_truncates_the_existing_copy() {
    let mut v = view();
    let u = user();
    write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    let (_, seed) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only().trunc(),
        0,
    )));
    assert_eq!(seed, Seed::Existing { truncate: true });
}

#[test]
fn o_append_copies_the_old_content() {
    let mut v = view();
    let u = user();
    let (_, seed) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only().append(),
        0,
    )));
    assert_eq!(seed, Seed::CopyOf(blob("main")));
}

#[test]
fn o_append_on_0444_is_eacces() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"ro.so", OpenFlags::write_only().append(), 0)),
        Errno::EACCES
    );
}

// ---- O_CREAT, O_EXCL ----

#[test]
fn o_creat_makes_a_new_entry_with_mode_after_umask() {
    let mut v = view();
    let u = user();
    let o = ok(v.open(
        &at(&u),
        b"src/new.rs",
        OpenFlags::write_only().creat(),
        0o666,
    ));
    let Opened::Write {
        id, seed, created, ..
    } = o
    else {
        panic!()
    };
    assert_eq!((seed, created), (Seed::Empty, true));
    let e = v.lookup(b"src/new.rs").unwrap();
    assert_eq!(e.mode, 0o644);
    assert_eq!(e.content(), Some(Content::Pending(id)));
    assert_eq!(e.mtime_ns, NOW);
    assert_eq!(
        v.lookup(b"src").unwrap().mtime_ns,
        NOW,
        "parent mtime updated"
    );
}

#[test]
fn o_creat_with_mode_0444_still_returns_a_writable_handle() {
    let mut v = view();
    let u = user();
    let o = ok(v.open(&at(&u), b"new", OpenFlags::write_only().creat(), 0o444));
    assert!(matches!(o, Opened::Write { created: true, .. }));
    assert_eq!(v.lookup(b"new").unwrap().mode, 0o444);
}

#[test]
fn o_creat_in_a_missing_directory_is_enoent() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"nodir/new",
            OpenFlags::write_only().creat(),
            0o644
        )),
        Errno::ENOENT
    );
}

#[test]
fn o_creat_in_a_read_only_directory_is_eacces() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"rodir/new",
            OpenFlags::write_only().creat(),
            0o644
        )),
        Errno::EACCES
    );
}

#[test]
fn o_creat_in_a_read_only_directory_as_root_succeeds() {
    let mut v = view();
    let r = root();
    assert!(v
        .open(
            &at(&r),
            b"rodir/new",
            OpenFlags::write_only().creat(),
            0o644
        )
        .is_ok());
}

#[test]
fn o_creat_in_a_directory_of_another_owner_needs_other_write_bit() {
    let mut v = foreign_view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"src/new", OpenFlags::write_only().creat(), 0o644)),
        Errno::EACCES
    );
    // tmp is 1777: anyone may create.
    assert!(v
        .open(&at(&u), b"tmp/new", OpenFlags::write_only().creat(), 0o644)
        .is_ok());
}

#[test]
fn o_creat_o_excl_on_an_existing_file_is_eexist() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"src/main.rs",
            OpenFlags::write_only().creat().excl(),
            0o644
        )),
        Errno::EEXIST
    );
}

#[test]
fn o_creat_o_excl_on_a_dangling_symlink_is_eexist() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"dangling",
            OpenFlags::write_only().creat().excl(),
            0o644
        )),
        Errno::EEXIST
    );
}

#[test]
fn o_creat_on_an_existing_file_is_a_plain_open() {
    let mut v = view();
    let u = user();
    let o = ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only().creat(),
        0o600,
    ));
    assert!(matches!(
        o,
        Opened::Write {
            created: false,
            seed: Seed::CopyOf(_),
            ..
        }
    ));
    assert_eq!(
        v.lookup(b"src/main.rs").unwrap().mode,
        0o644,
        "mode argument ignored"
    );
    let mut v = view();
    assert_eq!(
        errno(v.open(&at(&u), b"ro.so", OpenFlags::write_only().creat(), 0o644)),
        Errno::EACCES
    );
}

#[test]
fn o_creat_on_a_directory_is_eisdir() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"src", OpenFlags::read_only().creat(), 0o644)),
        Errno::EISDIR
    );
    assert_eq!(
        errno(v.open(&at(&u), b"src/.", OpenFlags::read_only().creat(), 0o644)),
        Errno::EISDIR
    );
}

#[test]
fn o_creat_o_excl_on_a_directory_is_eexist() {
    let mut v = view();
    let u = user();
    let f = OpenFlags::read_only().creat().excl();
    assert_eq!(errno(v.open(&at(&u), b"src", f, 0o644)), Errno::EEXIST);
    assert_eq!(errno(v.open(&at(&u), b"src/.", f, 0o644)), Errno::EEXIST);
}

#[test]
fn o_creat_with_a_trailing_slash_is_eisdir() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"newdir/", OpenFlags::write_only().creat(), 0o644)),
        Errno::EISDIR
    );
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"src/main.rs/",
            OpenFlags::write_only().creat(),
            0o644
        )),
        Errno::EISDIR
    );
}

#[test]
fn o_creat_through_a_dangling_symlink_creates_its_target() {
    let mut v = view();
    let u = user();
    let o = ok(v.open(&at(&u), b"dangling", OpenFlags::write_only().creat(), 0o644));
    assert!(matches!(o, Opened::Write { ref rel, created: true, .. } if rel == b"nothing"));
    assert!(v.lookup(b"nothing").is_some());
}

#[test]
fn o_creat_with_o_directory_is_einval() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"x",
            OpenFlags::read_only().creat().directory(),
            0o755
        )),
        Errno::EINVAL
    );
}

#[test]
fn open_of_a_missing_file_without_o_creat_is_enoent() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"src/none", OpenFlags::read_only(), 0)),
        Errno::ENOENT
    );
}

// ---- O_DIRECTORY, O_NOFOLLOW, O_PATH, O_NOATIME ----

#[test]
fn o_directory_on_a_file_is_enotdir() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(
            &at(&u),
            b"src/main.rs",
            OpenFlags::read_only().directory(),
            0
        )),
        Errno::ENOTDIR
    );
}

#[test]
fn o_directory_follows_a_symlink_to_a_directory() {
    let mut v = view();
    let u = user();
    assert_eq!(
        ok(v.open(&at(&u), b"link_src", OpenFlags::read_only().directory(), 0)),
        Opened::Dir { rel: rel("src") }
    );
}

#[test]
fn o_nofollow_on_a_symlink_is_eloop() {
    let mut v = view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"link_main", OpenFlags::read_only().nofollow(), 0)),
        Errno::ELOOP
    );
}

#[test]
fn o_nofollow_only_concerns_the_last_component() {
    let mut v = view();
    let u = user();
    assert!(v
        .open(
            &at(&u),
            b"link_src/main.rs",
            OpenFlags::read_only().nofollow(),
            0
        )
        .is_ok());
}

#[test]
fn o_path_o_nofollow_on_a_symlink_gives_the_symlink() {
    let mut v = view();
    let u = user();
    let o = ok(v.open(
        &at(&u),
        b"link_main",
        OpenFlags::read_only().o_path().nofollow(),
        0,
    ));
    assert!(matches!(o, Opened::Path { ref entry, .. } if entry.is_symlink()));
}

#[test]
fn o_path_needs_no_read_permission() {
    let mut v = foreign_view();
    let u = user();
    assert!(matches!(
        ok(v.open(&at(&u), b"secret", OpenFlags::read_only().o_path(), 0)),
        Opened::Path { .. }
    ));
}

#[test]
fn o_noatime_by_a_non_owner_is_eperm() {
    let mut v = foreign_view();
    let u = user();
    assert_eq!(
        errno(v.open(&at(&u), b"other_only", OpenFlags::read_only().noatime(), 0)),
        Errno::EPERM
    );
    let mut v = view();
    assert!(v
        .open(&at(&u), b"src/main.rs", OpenFlags::read_only().noatime(), 0)
        .is_ok());
}

#[test]
fn from_raw_decodes_linux_flags() {
    let f = OpenFlags::from_raw(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
    assert!(f.write && !f.read && f.creat && f.excl && f.trunc && !f.append);
    let f =
        OpenFlags::from_raw(libc::O_RDWR | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_DIRECTORY);
    assert!(f.read && f.write && f.append && f.nofollow && f.directory);
    #[cfg(target_os = "linux")]
    {
        let f = OpenFlags::from_raw(libc::O_TMPFILE | libc::O_WRONLY);
        assert!(f.tmpfile && !f.directory);
        assert!(OpenFlags::from_raw(libc::O_PATH).path);
    }
}

#[test]
fn o_tmpfile_in_a_view_directory_is_eopnotsupp() {
    let mut v = view();
    let u = user();
    let f = OpenFlags {
        tmpfile: true,
        ..OpenFlags::write_only()
    };
    assert_eq!(errno(v.open(&at(&u), b"src", f, 0o600)), Errno::EOPNOTSUPP);
}

#[test]
fn open_outside_the_view_is_routed_to_the_kernel() {
    let mut v = view();
    let u = user();
    assert_eq!(
        v.open(&at(&u), b"/etc/passwd", OpenFlags::read_only(), 0)
            .unwrap(),
        Routed::Outside(b"/etc/passwd".to_vec())
    );
    assert_eq!(
        v.open(
            &at(&u),
            b"out_etc/hosts",
            OpenFlags::write_only().creat(),
            0o644
        )
        .unwrap(),
        Routed::Outside(b"/etc/hosts".to_vec())
    );
    assert!(v.delta().is_empty());
}

#[test]
fn fifo_opens_as_a_fifo() {
    let mut v = view();
    let u = user();
    ok(v.mknod(&at(&u), b"pipe", S_IFIFO | 0o600));
    assert_eq!(
        ok(v.open(&at(&u), b"pipe", OpenFlags::read_only(), 0)),
        Opened::Fifo { rel: rel("pipe") }
    );
}

// ---- commit ----

#[test]
fn commit_points_the_entry_at_the_new_blob_and_keeps_the_mode() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(&at(&u), b"bin/tool", OpenFlags::write_only(), 0)));
    v.commit(id, blob("tool v2"), 7, NOW);
    let e = v.lookup(b"bin/tool").unwrap();
    assert_eq!(e.content(), Some(Content::Blob(blob("tool v2"))));
    assert_eq!((e.size, e.mode, e.mtime_ns), (7, 0o755, NOW));
    assert!(v.pending().is_empty());
}

#[test]
fn commit_follows_a_rename_of_the_file_while_it_was_written() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(
        &at(&u),
        b"src/tmp",
        OpenFlags::write_only().creat(),
        0o644,
    )));
    ok(v.rename(&at(&u), b"src/tmp", b"src/final", RenameMode::Replace));
    assert_eq!(v.commit(id, blob("done"), 4, NOW), vec![rel("src/final")]);
    assert_eq!(
        v.lookup(b"src/final").unwrap().content(),
        Some(Content::Blob(blob("done")))
    );
}

#[test]
fn commit_follows_a_rename_of_the_parent_directory() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(
        &at(&u),
        b"src/deep/x.rs",
        OpenFlags::write_only(),
        0,
    )));
    ok(v.rename(&at(&u), b"src", b"moved", RenameMode::Replace));
    assert_eq!(
        v.commit(id, blob("x2"), 2, NOW),
        vec![rel("moved/deep/x.rs")]
    );
}

#[test]
fn commit_of_a_file_unlinked_while_open_updates_nothing() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    ok(v.unlink(&at(&u), b"src/main.rs"));
    assert!(v.commit(id, blob("gone"), 4, NOW).is_empty());
    assert_eq!(v.lookup(b"src/main.rs"), None);
}

#[test]
fn write_after_commit_makes_a_new_copy_of_the_committed_blob() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    v.commit(id, blob("v2"), 2, NOW);
    let (id2, seed) = write_id(ok(v.open(
        &at(&u),
        b"src/main.rs",
        OpenFlags::write_only(),
        0,
    )));
    assert_ne!(id, id2);
    assert_eq!(seed, Seed::CopyOf(blob("v2")));
}

// ---- exec ----

#[test]
fn exec_of_0755_file_runs_its_blob() {
    let v = view();
    let u = user();
    assert_eq!(
        ok(v.exec(&at(&u), b"bin/tool")),
        Exec {
            rel: rel("bin/tool"),
            content: Content::Blob(blob("tool"))
        }
    );
}

#[test]
fn exec_of_0644_file_is_eacces_for_user_and_root() {
    let v = view();
    assert_eq!(errno(v.exec(&at(&user()), b"bin/noexec")), Errno::EACCES);
    assert_eq!(errno(v.exec(&at(&root()), b"bin/noexec")), Errno::EACCES);
}

#[test]
fn exec_of_0744_file_by_a_stranger_is_eacces_and_by_root_succeeds() {
    let v = foreign_view();
    assert_eq!(errno(v.exec(&at(&user()), b"bin/userx")), Errno::EACCES);
    assert!(v.exec(&at(&root()), b"bin/userx").is_ok());
}

#[test]
fn exec_of_an_execute_only_file_succeeds() {
    let v = foreign_view();
    assert!(v.exec(&at(&user()), b"bin/execonly").is_ok());
}

#[test]
fn exec_of_a_directory_is_eacces() {
    let v = view();
    assert_eq!(errno(v.exec(&at(&user()), b"bin")), Errno::EACCES);
    assert_eq!(errno(v.exec(&at(&root()), b"bin")), Errno::EACCES);
}

#[test]
fn exec_of_a_missing_file_is_enoent() {
    let v = view();
    assert_eq!(errno(v.exec(&at(&user()), b"bin/none")), Errno::ENOENT);
}

#[test]
fn exec_of_a_file_being_written_runs_the_private_copy() {
    let mut v = view();
    let u = user();
    let (id, _) = write_id(ok(v.open(&at(&u), b"bin/tool", OpenFlags::write_only(), 0)));
    assert_eq!(
        ok(v.exec(&at(&u), b"bin/tool")).content,
        Content::Pending(id)
    );
}

// ---- truncate ----

#[test]
fn truncate_to_zero_starts_empty() {
    let mut v = view();
    let u = user();
    let t = ok(v.truncate(&at(&u), b"src/main.rs", 0));
    assert_eq!((t.seed, t.len), (Seed::Empty, 0));
    assert_eq!(v.stat_rel(b"src/main.rs").unwrap().size, 0);
}

#[test]
fn truncate_to_a_length_copies_the_blob_and_records_the_size() {
    let mut v = view();
    let u = user();
    let t = ok(v.truncate(&at(&u), b"src/main.rs", 100));
    assert_eq!((t.seed, t.len), (Seed::CopyOf(blob("main")), 100));
    let st = v.stat_rel(b"src/main.rs").unwrap();
    assert_eq!((st.size, st.mtime_ns, st.pending), (100, NOW, Some(t.id)));
}

#[test]
fn truncate_of_0444_as_user_is_eacces_and_as_root_succeeds() {
    let mut v = view();
    assert_eq!(errno(v.truncate(&at(&user()), b"ro.so", 0)), Errno::EACCES);
    assert!(v.truncate(&at(&root()), b"ro.so", 0).is_ok());
}

#[test]
fn truncate_of_a_directory_is_eisdir() {
    let mut v = view();
    assert_eq!(errno(v.truncate(&at(&user()), b"src", 0)), Errno::EISDIR);
}

#[test]
fn truncate_to_a_negative_length_is_einval() {
    let mut v = view();
    assert_eq!(
        errno(v.truncate(&at(&user()), b"src/main.rs", -1)),
        Errno::EINVAL
    );
}

#[test]
fn truncate_follows_symlinks() {
    let mut v = view();
    let t = ok(v.truncate(&at(&user()), b"link_main", 0));
    assert_eq!(t.rel, rel("src/main.rs"));
}
