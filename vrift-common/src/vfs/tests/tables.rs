//! One test per row of RFC-0047's syscall table and of DESIGN.md section 3's table, for a
//! normal user and for a privileged caller. (Errno details are in the per-operation files.)

use super::fixture::*;
use crate::vfs::*;

// ---- RFC-0047 "Syscall Behavior" ----

#[test]
fn rfc_open_rdonly_existing_checks_r_bit_and_returns_cas_content() {
    for (cred, secret_ok) in [(user(), false), (root(), true)] {
        let mut v = foreign_view();
        let got = ok(v.open(&at(&cred), b"src/main.rs", OpenFlags::read_only(), 0));
        assert_eq!(
            got,
            Opened::Read {
                rel: rel("src/main.rs"),
                content: Content::Blob(blob("main"))
            }
        );
        assert_eq!(
            v.open(&at(&cred), b"secret", OpenFlags::read_only(), 0)
                .is_ok(),
            secret_ok
        );
    }
}

#[test]
fn rfc_open_wronly_existing_checks_w_bit_then_cow() {
    for (cred, ro_ok) in [(user(), false), (root(), true)] {
        let mut v = view();
        let w = ok(v.open(&at(&cred), b"src/main.rs", OpenFlags::write_only(), 0));
        assert!(matches!(w, Opened::Write { seed: Seed::CopyOf(h), .. } if h == blob("main")));
        assert_eq!(
            v.open(&at(&cred), b"ro.so", OpenFlags::write_only(), 0)
                .is_ok(),
            ro_ok
        );
    }
}

#[test]
fn rfc_open_wronly_missing_creates_an_entry_with_o_creat_and_is_enoent_without() {
    for cred in [user(), root()] {
        let mut v = view();
        assert_eq!(
            errno(v.open(&at(&cred), b"target/main.o", OpenFlags::write_only(), 0o644)),
            Errno::ENOENT
        );
        ok(v.mkdir(&at(&cred), b"target", 0o755));
        let w = ok(v.open(
            &at(&cred),
            b"target/main.o",
            OpenFlags::write_only().creat(),
            0o644,
        ));
        assert!(matches!(w, Opened::Write { created: true, .. }));
        assert_eq!(v.lookup(b"target/main.o").unwrap().mode, 0o644);
    }
}

#[test]
fn rfc_stat_existing_returns_manifest_mode() {
    for cred in [user(), root()] {
        let v = view();
        assert_eq!(ok(v.stat(&at(&cred), b"ro.so", true)).mode, S_IFREG | 0o444);
    }
}

#[test]
fn rfc_unlink_existing_checks_w_on_parent_and_removes_the_entry() {
    for (cred, rodir_ok) in [(user(), false), (root(), true)] {
        let mut v = view();
        ok(v.unlink(&at(&cred), b"ro.so"));
        assert_eq!(v.lookup(b"ro.so"), None);
        assert_eq!(v.unlink(&at(&cred), b"rodir/f").is_ok(), rodir_ok);
    }
}

#[test]
fn rfc_rename_existing_checks_w_and_updates_the_path() {
    for (cred, rodir_ok) in [(user(), false), (root(), true)] {
        let mut v = view();
        ok(v.rename(&at(&cred), b"src/main.rs", b"main.rs", RenameMode::Replace));
        assert!(v.lookup(b"main.rs").is_some() && v.lookup(b"src/main.rs").is_none());
        assert_eq!(
            v.rename(&at(&cred), b"rodir/f", b"f", RenameMode::Replace)
                .is_ok(),
            rodir_ok
        );
    }
}

#[test]
fn rfc_mkdir_missing_adds_a_dir_entry() {
    for cred in [user(), root()] {
        let mut v = view();
        ok(v.mkdir(&at(&cred), b"target", 0o755));
        assert!(v.lookup(b"target").unwrap().is_dir());
    }
}

#[test]
fn rfc_chmod_existing_needs_the_owner() {
    let mut v = foreign_view();
    assert_eq!(
        errno(v.chmod(&at(&user()), b"ro.so", 0o644, true)),
        Errno::EPERM
    );
    ok(v.chmod(&at(&root()), b"ro.so", 0o644, true));
    let mut v = view();
    ok(v.chmod(&at(&user()), b"ro.so", 0o644, true));
    assert_eq!(v.lookup(b"ro.so").unwrap().mode, 0o644);
}

#[test]
fn rfc_write_path_close_hashes_and_preserves_the_original_mode() {
    let mut v = view();
    let Opened::Write { id, .. } =
        ok(v.open(&at(&user()), b"bin/tool", OpenFlags::write_only(), 0))
    else {
        panic!()
    };
    v.commit(id, blob("tool2"), 5, NOW);
    let e = v.lookup(b"bin/tool").unwrap();
    assert_eq!(
        (e.content(), e.mode),
        (Some(Content::Blob(blob("tool2"))), 0o755)
    );
}

// ---- DESIGN.md section 3 ----

#[test]
fn design_open_for_write_when_caller_may_not_write_is_eacces_and_nothing_changes() {
    let mut v = foreign_view();
    assert_eq!(
        errno(v.open(&at(&user()), b"src/main.rs", OpenFlags::read_write(), 0)),
        Errno::EACCES
    );
    assert!(v.delta().is_empty());
}

#[test]
fn design_stat_family_reports_kind_stable_inode_and_dev() {
    let v = view().with_dev(7);
    let a = ok(v.stat(&at(&user()), b"src", true));
    let b = ok(v.stat(&at(&root()), b"src", false));
    assert_eq!(a, b);
    assert_eq!(
        (a.mode & S_IFMT, a.dev, a.ino),
        (S_IFDIR, 7, path_ino(b"src"))
    );
}

#[test]
fn design_readlink_gives_the_target_and_symlinks_resolve_inside_the_view() {
    let v = view();
    assert_eq!(
        ok(v.readlink(&at(&user()), b"abs_src")),
        b"/home/u/proj/src"
    );
    assert_eq!(
        ok(v.stat(&at(&user()), b"abs_src/main.rs", true)).ino,
        path_ino(b"src/main.rs")
    );
}

#[test]
fn design_getdents_lists_exactly_the_layered_children() {
    let lower = layer(&[
        ("", dir(0o755)),
        ("d", dir(0o755)),
        ("d/a", file("a", 0o644)),
        ("d/b", file("b", 0o644)),
    ]);
    let upper = layer(&[("d", dir(0o755)), ("d/c", file("c", 0o644))]);
    let mut v = View::new(ROOT, OWNER, vec![lower, upper]).unwrap();
    ok(v.unlink(&at(&user()), b"d/a"));
    let list = ok(v.read_dir(&at(&user()), b"d"));
    let names: Vec<&[u8]> = list.iter().map(|d| d.name.as_slice()).collect();
    assert_eq!(names, [&b"."[..], b"..", b"b", b"c"]);
}

#[test]
fn design_mkdir_rmdir_give_eexist_and_enotempty_like_the_kernel() {
    for cred in [user(), root()] {
        let mut v = view();
        assert_eq!(errno(v.mkdir(&at(&cred), b"src", 0o755)), Errno::EEXIST);
        assert_eq!(errno(v.rmdir(&at(&cred), b"src")), Errno::ENOTEMPTY);
        ok(v.rmdir(&at(&cred), b"empty"));
    }
}

#[test]
fn design_unlink_over_a_base_layer_is_a_whiteout() {
    let mut v = view();
    ok(v.unlink(&at(&user()), b"src/main.rs"));
    assert_eq!(v.delta().get(b"src/main.rs"), Some(&DeltaNode::Whiteout));
}

#[test]
fn design_rename_moves_a_directory_with_its_subtree_atomically_replacing() {
    for cred in [user(), root()] {
        let mut v = view();
        ok(v.rename(&at(&cred), b"src/deep", b"empty", RenameMode::Replace));
        assert!(v.lookup(b"empty/x.rs").is_some());
        assert!(v.lookup(b"src/deep").is_none());
    }
}

#[test]
fn design_chmod_utimensat_truncate_update_the_entry() {
    let mut v = view();
    let u = user();
    ok(v.chmod(&at(&u), b"src/main.rs", 0o600, true));
    ok(v.utimens(
        &at(&u),
        b"src/main.rs",
        TimeSpec::Omit,
        TimeSpec::Set(11),
        true,
    ));
    let e = v.lookup(b"src/main.rs").unwrap();
    assert_eq!((e.mode, e.mtime_ns), (0o600, 11));
    let t = ok(v.truncate(&at(&u), b"src/main.rs", 0));
    assert_eq!(
        v.lookup(b"src/main.rs").unwrap().content(),
        Some(Content::Pending(t.id))
    );
}

#[test]
fn design_exec_needs_the_x_bit_and_runs_cas_content() {
    for cred in [user(), root()] {
        let v = view();
        assert_eq!(
            ok(v.exec(&at(&cred), b"bin/tool")).content,
            Content::Blob(blob("tool"))
        );
        assert_eq!(errno(v.exec(&at(&cred), b"bin/noexec")), Errno::EACCES);
    }
}

#[test]
fn design_chdir_then_relative_paths_and_getcwd_use_the_view_path() {
    let v = view();
    let u = user();
    let cwd = v.abs_path(&ok(v.chdir(&at(&u), b"src")));
    assert_eq!(cwd, b"/home/u/proj/src");
    let st = ok(v.stat(&at_cwd(&u, &cwd), b"main.rs", true));
    assert_eq!(st.ino, path_ino(b"src/main.rs"));
}

#[test]
fn design_paths_outside_the_view_are_untouched() {
    let mut v = view();
    let u = user();
    assert!(matches!(
        v.open(&at(&u), b"/tmp/x", OpenFlags::write_only().creat(), 0o644)
            .unwrap(),
        Routed::Outside(_)
    ));
    assert!(matches!(
        v.mkdir(&at(&u), b"/tmp/d", 0o755).unwrap(),
        Routed::Outside(_)
    ));
    assert!(matches!(
        v.unlink(&at(&u), b"../sibling").unwrap(),
        Routed::Outside(_)
    ));
    assert!(v.delta().is_empty());
}

#[test]
fn design_rename_across_the_view_boundary_is_exdev() {
    let mut v = view();
    assert_eq!(
        errno(v.rename(&at(&user()), b"src/main.rs", b"/tmp/m", RenameMode::Replace)),
        Errno::EXDEV
    );
}

#[test]
fn design_two_sessions_never_see_each_others_writes() {
    let mut a = view();
    let mut b = view();
    let u = user();
    ok(a.mkdir(&at(&u), b"only_a", 0o755));
    ok(b.unlink(&at(&u), b"src/main.rs"));
    assert!(b.lookup(b"only_a").is_none());
    assert!(a.lookup(b"src/main.rs").is_some());
}
