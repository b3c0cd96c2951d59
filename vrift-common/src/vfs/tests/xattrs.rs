//! Extended attributes: read from the entry, changed in the delta, judged as the kernel
//! judges them, and carried into the flattened manifest.

use super::fixture::*;
use crate::manifest::Xattr;
use crate::vfs::*;

fn x(name: &str, value: &str) -> Xattr {
    Xattr {
        name: name.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

/// [`base`] with xattrs on `src/main.rs` (user.a, user.b) and `src` (user.d).
fn view_with_xattrs() -> View<Layer> {
    let mut l = base();
    l.get_mut(&rel("src/main.rs")).unwrap().meta.xattrs = vec![x("user.a", "1"), x("user.b", "2")];
    l.get_mut(&rel("src")).unwrap().meta.xattrs = vec![x("user.d", "dir")];
    View::new(ROOT, OWNER, vec![l]).unwrap()
}

fn get(v: &View<Layer>, cred: &Cred, path: &str, name: &str) -> Result<Routed<Vec<u8>>, Errno> {
    v.getxattr(&at(cred), path.as_bytes(), name.as_bytes(), true)
}

fn set(
    v: &mut View<Layer>,
    cred: &Cred,
    path: &str,
    name: &str,
    value: &str,
    flags: u32,
) -> Result<Routed<()>, Errno> {
    v.setxattr(
        &at(cred),
        path.as_bytes(),
        name.as_bytes(),
        value.as_bytes(),
        flags,
        true,
    )
}

fn list(v: &View<Layer>, path: &str, follow: bool) -> Vec<u8> {
    ok(v.listxattr(&at(&user()), path.as_bytes(), follow))
}

#[test]
fn a_manifests_xattrs_are_read_and_listed() {
    let v = view_with_xattrs();
    assert_eq!(ok(get(&v, &user(), "src/main.rs", "user.a")), b"1");
    assert_eq!(ok(get(&v, &user(), "src", "user.d")), b"dir");
    assert_eq!(list(&v, "src/main.rs", true), b"user.a\0user.b\0");
    assert_eq!(list(&v, "src/lib.rs", true), b"");
    // Through a symlink, or of the symlink itself (which has none).
    assert_eq!(ok(get(&v, &user(), "link_main", "user.b")), b"2");
    assert_eq!(list(&v, "link_main", true), b"user.a\0user.b\0");
    assert_eq!(list(&v, "link_main", false), b"");
}

#[test]
fn a_missing_name_is_enodata_and_a_bad_name_is_erange_or_eopnotsupp() {
    let v = view_with_xattrs();
    assert_eq!(
        errno(get(&v, &user(), "src/main.rs", "user.zz")),
        Errno::ENODATA
    );
    assert_eq!(
        errno(get(&v, &user(), "src/main.rs", "security.selinux")),
        Errno::ENODATA
    );
    assert_eq!(errno(get(&v, &user(), "src/main.rs", "")), Errno::ERANGE);
    let long = format!("user.{}", "n".repeat(300));
    assert_eq!(errno(get(&v, &user(), "src/main.rs", &long)), Errno::ERANGE);
    assert_eq!(
        errno(get(&v, &user(), "src/main.rs", "nonamespace")),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        errno(get(&v, &user(), "src/nothing", "user.a")),
        Errno::ENOENT
    );
}

#[test]
fn user_xattrs_need_read_permission_and_are_not_on_symlinks() {
    let v = view_with_xattrs();
    let l = v.getxattr(&at(&user()), b"link_main", b"user.a", false);
    assert_eq!(errno(l), Errno::ENODATA, "lgetxattr of a symlink");
    let mut v = view_with_xattrs();
    ok(v.chmod(&at(&user()), b"src/main.rs", 0o200, true));
    assert_eq!(
        errno(get(&v, &user(), "src/main.rs", "user.a")),
        Errno::EACCES
    );
    // Listing needs no permission on the file.
    assert_eq!(list(&v, "src/main.rs", true), b"user.a\0user.b\0");
}

#[test]
fn setxattr_and_removexattr_change_the_entry_in_the_delta() {
    let mut v = view_with_xattrs();
    ok(set(&mut v, &user(), "src/main.rs", "user.c", "3", 0));
    ok(set(&mut v, &user(), "src/main.rs", "user.a", "one", 0));
    ok(v.removexattr(&at(&user()), b"src/main.rs", b"user.b", true));
    let e = v.lookup(b"src/main.rs").unwrap();
    assert_eq!(e.meta.xattrs, vec![x("user.a", "one"), x("user.c", "3")]);
    assert_eq!(e.ctime_ns, NOW, "the status changed");
    assert!(v.delta().get(b"src/main.rs").is_some(), "copied up");
    assert_eq!(list(&v, "src/main.rs", true), b"user.a\0user.c\0");
    // The flattened manifest has them.
    let m = v.flatten().unwrap();
    let (_, f) = m.iter().find(|(p, _)| p == b"src/main.rs").unwrap();
    assert_eq!(f.meta.xattrs, vec![x("user.a", "one"), x("user.c", "3")]);
    // A removed name is gone.
    let again = v.removexattr(&at(&user()), b"src/main.rs", b"user.b", true);
    assert_eq!(errno(again), Errno::ENODATA);
}

#[test]
fn create_and_replace_flags_are_honoured() {
    let mut v = view_with_xattrs();
    let exists = set(&mut v, &user(), "src/main.rs", "user.a", "x", XATTR_CREATE);
    assert_eq!(errno(exists), Errno::EEXIST);
    let missing = set(
        &mut v,
        &user(),
        "src/main.rs",
        "user.new",
        "x",
        XATTR_REPLACE,
    );
    assert_eq!(errno(missing), Errno::ENODATA);
    assert_eq!(
        errno(set(&mut v, &user(), "src/main.rs", "user.a", "x", 4)),
        Errno::EINVAL
    );
    ok(set(
        &mut v,
        &user(),
        "src/main.rs",
        "user.new",
        "x",
        XATTR_CREATE,
    ));
    ok(set(
        &mut v,
        &user(),
        "src/main.rs",
        "user.a",
        "y",
        XATTR_REPLACE,
    ));
    assert_eq!(ok(get(&v, &user(), "src/main.rs", "user.a")), b"y");
    let big = "v".repeat(65537);
    assert_eq!(
        errno(set(&mut v, &user(), "src/main.rs", "user.big", &big, 0)),
        Errno::E2BIG
    );
}

#[test]
fn setting_needs_write_permission_and_a_file_or_directory() {
    let mut v = foreign_view();
    // other_only is 0606: others may write; ro.so (0444) no one but root.
    ok(set(&mut v, &user(), "other_only", "user.k", "v", 0));
    assert_eq!(
        errno(set(&mut v, &user(), "ro.so", "user.k", "v", 0)),
        Errno::EACCES
    );
    ok(set(&mut v, &root(), "ro.so", "user.k", "v", 0));
    let on_link = v.setxattr(&at(&root()), b"link_main", b"user.k", b"v", 0, false);
    assert_eq!(errno(on_link), Errno::EPERM, "user.* on a symlink");
    ok(v.mknod(&at(&root()), b"fifo", S_IFIFO | 0o666));
    assert_eq!(
        errno(set(&mut v, &user(), "fifo", "user.k", "v", 0)),
        Errno::EPERM
    );
    // In a sticky directory only the owner may: tmp is 01777 and the view's (uid 2000).
    assert_eq!(
        errno(set(&mut v, &user(), "tmp", "user.k", "v", 0)),
        Errno::EPERM
    );
    ok(set(
        &mut v,
        &Cred::user(2000, 3000),
        "tmp",
        "user.k",
        "v",
        0,
    ));
    let rm = v.removexattr(&at(&user()), b"ro.so", b"user.k", true);
    assert_eq!(errno(rm), Errno::EACCES);
}

#[test]
fn names_a_manifest_does_not_keep_cannot_be_set() {
    let mut v = view();
    for name in [
        "security.selinux",
        "user.overlay.redirect",
        "system.posix_acl_access",
        "other.x",
    ] {
        let r = set(&mut v, &root(), "src/main.rs", name, "v", 0);
        assert_eq!(errno(r), Errno::EOPNOTSUPP, "{name}");
    }
    assert_eq!(
        errno(set(&mut v, &user(), "src/main.rs", "trusted.k", "v", 0)),
        Errno::EPERM
    );
    // Only the owner may change ACLs; removing one there is not is no error.
    let rm = |v: &mut View<Layer>, c: &Cred| {
        v.removexattr(&at(c), b"src/main.rs", b"system.posix_acl_access", true)
    };
    assert_eq!(errno(rm(&mut v, &Cred::user(2000, 2000))), Errno::EPERM);
    ok(rm(&mut v, &user()));
    assert!(v.delta().get(b"src/main.rs").is_none(), "nothing changed");
}

#[test]
fn a_new_file_takes_xattrs_and_hard_links_share_them() {
    let mut v = view();
    let flags = OpenFlags::from_raw(libc::O_WRONLY | libc::O_CREAT);
    ok(v.open(&at(&user()), b"new", flags, 0o644));
    ok(v.link(&at(&user()), b"new", b"other", false));
    ok(set(&mut v, &user(), "new", "user.k", "v", 0));
    assert_eq!(ok(get(&v, &user(), "other", "user.k")), b"v");
}

#[test]
fn a_rolled_back_setxattr_leaves_the_entry_as_it_was() {
    let mut v = view_with_xattrs();
    v.begin_change();
    ok(set(&mut v, &user(), "src/main.rs", "user.a", "changed", 0));
    v.roll_back();
    assert_eq!(ok(get(&v, &user(), "src/main.rs", "user.a")), b"1");
    assert!(v.delta().get(b"src/main.rs").is_none());
}
