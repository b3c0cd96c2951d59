//! Owners of entries: who makes an entry owns it, chown changes it where the kernel allows,
//! and permission checks judge each entry by its own owner. Names of a manifest's hard-link
//! group are one inode.

use super::fixture::*;
use crate::manifest::{EntryOwner, Manifest};
use crate::vfs::*;

fn nobody() -> Cred {
    Cred::user(65534, 65534)
}

fn owner_of(v: &View<Layer>, rel: &str) -> (u32, u32) {
    let st = v.stat_rel(rel.as_bytes()).unwrap();
    (st.uid, st.gid)
}

fn mode_of(v: &View<Layer>, rel: &str) -> u32 {
    v.stat_rel(rel.as_bytes()).unwrap().mode & 0o7777
}

fn create(v: &mut View<Layer>, cred: &Cred, rel: &str, mode: u32) {
    let flags = OpenFlags::from_raw(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL);
    ok(v.open(&at(cred), rel.as_bytes(), flags, mode));
}

fn chown(
    v: &mut View<Layer>,
    cred: &Cred,
    rel: &str,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Routed<()>, Errno> {
    v.chown(&at(cred), rel.as_bytes(), uid, gid, true)
}

// ---- new entries ----

#[test]
fn an_entry_made_by_another_user_is_that_users() {
    let mut v = view();
    ok(v.chmod(&at(&root()), b"tmp", 0o1777, true));
    create(&mut v, &nobody(), "tmp/theirs2", 0o644);
    ok(v.mkdir(&at(&nobody()), b"tmp/d", 0o755));
    ok(v.symlink(&at(&nobody()), b"x", b"tmp/l"));
    ok(v.mknod(&at(&nobody()), b"tmp/p", S_IFIFO | 0o644));
    for rel in ["tmp/theirs2", "tmp/d", "tmp/l", "tmp/p"] {
        assert_eq!(owner_of(&v, rel), (65534, 65534), "{rel}");
    }
    // The view's own user makes entries that record no owner: a tree made by the user who
    // runs the view stays portable (manifest format 1).
    create(&mut v, &user(), "mine", 0o644);
    assert_eq!(owner_of(&v, "mine"), (1000, 1000));
    assert_eq!(v.lookup(b"mine").unwrap().meta.owner, None);
    assert_eq!(
        v.lookup(b"tmp/theirs2").unwrap().meta.owner,
        Some(EntryOwner {
            uid: 65534,
            gid: 65534
        })
    );
}

#[test]
fn a_set_gid_directory_gives_new_entries_its_group() {
    let mut v = view();
    ok(v.chown(&at(&root()), b"tmp", None, Some(4242), true));
    ok(v.chmod(&at(&root()), b"tmp", 0o3777, true));
    create(&mut v, &nobody(), "tmp/f", 0o644);
    ok(v.mkdir(&at(&nobody()), b"tmp/d", 0o755));
    assert_eq!(owner_of(&v, "tmp/f"), (65534, 4242));
    assert_eq!(owner_of(&v, "tmp/d"), (65534, 4242));
    assert_eq!(mode_of(&v, "tmp/d"), 0o2755, "a directory inherits S_ISGID");
    // A set-gid executable made there by a caller outside the group loses the bit.
    create(&mut v, &nobody(), "tmp/x", 0o2755);
    assert_eq!(mode_of(&v, "tmp/x"), 0o755);
    create(&mut v, &root(), "tmp/y", 0o2755);
    assert_eq!(mode_of(&v, "tmp/y"), 0o2755, "root keeps it");
}

// ---- permission checks by the entry's owner ----

#[test]
fn a_directory_given_away_is_its_new_owners_to_write() {
    let mut v = view();
    ok(chown(&mut v, &root(), "empty", Some(65534), Some(65534)));
    create(&mut v, &nobody(), "empty/f", 0o644);
    assert_eq!(
        errno(v.open(
            &at(&user()),
            b"empty/g",
            OpenFlags::from_raw(libc::O_WRONLY | libc::O_CREAT),
            0o644
        )),
        Errno::EACCES,
        "the view's owner is only 'other' there now"
    );
    // And the file nobody made there is nobody's to chmod, not the view owner's.
    ok(v.chmod(&at(&nobody()), b"empty/f", 0o600, true));
    assert_eq!(
        errno(v.chmod(&at(&user()), b"empty/f", 0o644, true)),
        Errno::EPERM
    );
}

#[test]
fn a_sticky_directory_lets_an_entrys_owner_remove_it() {
    let mut v = view();
    create(&mut v, &nobody(), "tmp/n", 0o644);
    let other = Cred::user(4000, 4000);
    assert_eq!(errno(v.unlink(&at(&other), b"tmp/n")), Errno::EPERM);
    // The directory's owner (the view's) may, and so may the entry's.
    create(&mut v, &nobody(), "tmp/m", 0o644);
    ok(v.unlink(&at(&user()), b"tmp/m"));
    ok(v.unlink(&at(&nobody()), b"tmp/n"));
}

// ---- chown ----

#[test]
fn root_may_give_an_entry_to_anyone() {
    let mut v = view();
    ok(chown(
        &mut v,
        &root(),
        "src/main.rs",
        Some(65534),
        Some(100),
    ));
    assert_eq!(owner_of(&v, "src/main.rs"), (65534, 100));
    ok(chown(&mut v, &root(), "src/main.rs", None, Some(7)));
    assert_eq!(owner_of(&v, "src/main.rs"), (65534, 7), "-1 keeps the uid");
    // Back to the view's owner: nothing left to record.
    let mut w = view();
    ok(chown(&mut w, &root(), "src/lib.rs", Some(5), Some(5)));
    ok(chown(&mut w, &root(), "src/lib.rs", Some(1000), Some(1000)));
    assert_eq!(owner_of(&w, "src/lib.rs"), (1000, 1000));
}

#[test]
fn the_owner_may_change_the_group_to_one_of_its_own() {
    let mut v = view();
    let member = Cred {
        groups: vec![3000],
        ..user()
    };
    ok(chown(&mut v, &member, "src/main.rs", None, Some(3000)));
    assert_eq!(owner_of(&v, "src/main.rs"), (1000, 3000));
    ok(chown(
        &mut v,
        &member,
        "src/main.rs",
        Some(1000),
        Some(1000),
    ));
    assert_eq!(owner_of(&v, "src/main.rs"), (1000, 1000));
    assert_eq!(
        errno(chown(&mut v, &member, "src/main.rs", None, Some(4000))),
        Errno::EPERM,
        "not one of its groups"
    );
    assert_eq!(
        errno(chown(&mut v, &member, "src/main.rs", Some(65534), None)),
        Errno::EPERM,
        "giving a file away"
    );
    assert_eq!(
        owner_of(&v, "src/main.rs"),
        (1000, 1000),
        "refusals change nothing"
    );
}

#[test]
fn a_non_owner_may_change_nothing_but_minus_one_is_allowed() {
    let mut v = view();
    assert_eq!(
        errno(chown(&mut v, &nobody(), "src/main.rs", None, Some(65534))),
        Errno::EPERM
    );
    assert_eq!(
        errno(chown(&mut v, &nobody(), "src/main.rs", Some(1000), None)),
        Errno::EPERM
    );
    ok(chown(&mut v, &nobody(), "src/main.rs", None, None));
    assert_eq!(
        errno(chown(&mut v, &user(), "missing", None, None)),
        Errno::ENOENT
    );
}

#[test]
fn chown_clears_set_id_bits_of_a_file_as_linux_does() {
    let mut v = view();
    ok(v.chmod(&at(&root()), b"bin/tool", 0o6755, true));
    ok(chown(&mut v, &root(), "bin/tool", Some(5), None));
    assert_eq!(
        mode_of(&v, "bin/tool"),
        0o755,
        "even root's chown clears both"
    );
    // S_ISGID without group execute (mandatory locking) stays for root...
    ok(v.chmod(&at(&root()), b"src/main.rs", 0o6644, true));
    ok(chown(&mut v, &root(), "src/main.rs", None, Some(9)));
    assert_eq!(mode_of(&v, "src/main.rs"), 0o2644);
    // ...and goes for an owner outside the file's group.
    let mut w = view();
    ok(w.chmod(&at(&user()), b"src/lib.rs", 0o2644, true));
    ok(chown(&mut w, &root(), "src/lib.rs", None, Some(9)));
    ok(chown(&mut w, &user(), "src/lib.rs", None, Some(1000)));
    assert_eq!(mode_of(&w, "src/lib.rs"), 0o644);
    // A directory keeps them.
    ok(v.chmod(&at(&root()), b"src", 0o2755, true));
    ok(chown(&mut v, &root(), "src", Some(5), Some(5)));
    assert_eq!(mode_of(&v, "src"), 0o2755);
}

#[test]
fn chown_changes_the_ctime_and_every_name_of_the_inode() {
    let mut v = view();
    ok(v.link(&at(&user()), b"src/main.rs", b"main2", false));
    let r = root();
    let mut later = at(&r);
    later.now_ns = NOW + 7;
    ok(v.chown(&later, b"main2", Some(42), Some(43), true));
    for rel in ["src/main.rs", "main2"] {
        let st = v.stat_rel(rel.as_bytes()).unwrap();
        assert_eq!((st.uid, st.gid, st.ctime_ns), (42, 43, NOW + 7), "{rel}");
    }
}

#[test]
fn chown_without_follow_changes_the_symlink() {
    let mut v = view();
    ok(v.chown(&at(&root()), b"link_main", Some(42), None, false));
    assert_eq!(owner_of(&v, "link_main").0, 42);
    assert_eq!(owner_of(&v, "src/main.rs").0, 1000);
}

#[test]
fn the_flattened_tree_records_only_owners_that_differ_from_the_views() {
    let mut v = view();
    create(&mut v, &nobody(), "tmp/n", 0o644);
    create(&mut v, &user(), "mine", 0o644);
    let id = |v: &View<Layer>, rel: &str| match v.lookup(rel.as_bytes()).unwrap().content() {
        Some(Content::Pending(id)) => id,
        other => panic!("{rel}: {other:?}"),
    };
    let (a, b) = (id(&v, "tmp/n"), id(&v, "mine"));
    v.commit(a, blob("n"), 1, NOW);
    v.commit(b, blob("m"), 1, NOW);
    ok(chown(&mut v, &root(), "src/lib.rs", None, Some(7)));
    let m = Manifest::from_entries(v.flatten().unwrap());
    let owner = |rel: &str| m.get(rel.as_bytes()).unwrap().meta.owner;
    assert_eq!(
        owner("tmp/n"),
        Some(EntryOwner {
            uid: 65534,
            gid: 65534
        })
    );
    assert_eq!(owner("src/lib.rs"), Some(EntryOwner { uid: 1000, gid: 7 }));
    assert_eq!(owner("mine"), None);
    assert_eq!(owner("src/main.rs"), None);
}

// ---- a manifest's hard-link groups ----

fn linked_view() -> View<Layer> {
    let mut a = file("shared", 0o644);
    a.meta.link = 1;
    let mut v = View::new(
        ROOT,
        OWNER,
        vec![layer(&[
            ("", dir(0o755)),
            ("a", a.clone()),
            ("d", dir(0o755)),
            ("d/b", a),
            ("c", file("shared", 0o644)),
        ])],
    )
    .unwrap();
    v.share_link_group(&[b"a", b"d/b"]);
    v
}

#[test]
fn names_of_a_manifest_link_group_are_one_inode() {
    let mut v = linked_view();
    let (a, b, c) = (
        v.stat_rel(b"a").unwrap(),
        v.stat_rel(b"d/b").unwrap(),
        v.stat_rel(b"c").unwrap(),
    );
    assert_eq!((a.nlink, b.nlink, c.nlink), (2, 2, 1));
    assert_eq!(a.ino, b.ino);
    assert_ne!(a.ino, c.ino, "same content, another inode");
    // A write through one name is the other's, and so are chmod and chown.
    ok(v.open(
        &at(&user()),
        b"a",
        OpenFlags::from_raw(libc::O_WRONLY | libc::O_APPEND),
        0,
    ));
    let pending = |rel: &[u8]| v.lookup(rel).unwrap().content();
    assert!(matches!(pending(b"d/b"), Some(Content::Pending(_))));
    assert_eq!(pending(b"a"), pending(b"d/b"));
    ok(v.chmod(&at(&user()), b"d/b", 0o600, true));
    ok(v.chown(&at(&root()), b"a", Some(3), Some(4), true));
    let b = v.stat_rel(b"d/b").unwrap();
    let a = v.stat_rel(b"a").unwrap();
    assert_eq!((a.mode & 0o7777, a.uid, a.gid), (0o600, 3, 4));
    assert_eq!((b.mode & 0o7777, b.uid, b.gid), (0o600, 3, 4));
    // One name goes: the other counts one link.
    ok(v.unlink(&at(&user()), b"a"));
    assert_eq!(v.stat_rel(b"d/b").unwrap().nlink, 1);
}

#[test]
fn a_link_group_left_alone_flattens_as_it_came() {
    let v = linked_view();
    let m = Manifest::from_entries(v.flatten().unwrap());
    assert_eq!(m.get(b"a").unwrap().meta.link, 1);
    assert_eq!(m.get(b"d/b").unwrap().meta.link, 1);
    assert_eq!(m.get(b"c").unwrap().meta.link, 0);
}
