//! The core without the C layer: two `Shim`s over one run directory stand for two
//! processes of a run.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::Path;

use vrift_common::hash::Hash;
use vrift_common::index;
use vrift_common::manifest::{Entry, EntryKind, EntryMeta, EntryOwner, Manifest, Xattr};
use vrift_common::runlog::Op;
use vrift_common::store::Store;
use vrift_common::vfs::{Errno, XATTR_CREATE};

use super::{Act, Shim, XattrTarget};
use crate::env::{self, Config};

struct Run {
    _dir: tempfile::TempDir,
    cfg: Config,
}

fn entry(kind: EntryKind, hash: Hash, size: u64, mode: u32, target: &[u8]) -> Entry {
    Entry {
        kind,
        hash,
        size,
        mode,
        mtime_ns: 1_600_000_000_000_000_000,
        target: target.to_vec(),
        meta: Default::default(),
    }
}

/// A view at /v of {a.txt "hello", run.sh (0755), sub/b.txt "bee\n", link -> a.txt}.
fn run() -> Run {
    run_of(|put| {
        let z = Hash([0; 32]);
        vec![
            (b"".to_vec(), entry(EntryKind::Dir, z, 0, 0o755, b"")),
            (
                b"a.txt".to_vec(),
                entry(EntryKind::File, put("a", b"hello"), 5, 0o644, b""),
            ),
            (
                b"run.sh".to_vec(),
                entry(EntryKind::File, put("r", b"#!/bin/sh\n"), 10, 0o755, b""),
            ),
            (b"sub".to_vec(), entry(EntryKind::Dir, z, 0, 0o755, b"")),
            (
                b"sub/b.txt".to_vec(),
                entry(EntryKind::File, put("b", b"bee\n"), 4, 0o644, b""),
            ),
            (
                b"link".to_vec(),
                entry(EntryKind::Symlink, z, 5, 0o777, b"a.txt"),
            ),
        ]
    })
}

/// A view at /v of the entries `make` gives (`put` stores a blob and gives its hash).
fn run_of(make: impl FnOnce(&dyn Fn(&str, &[u8]) -> Hash) -> Vec<(Vec<u8>, Entry)>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let put = |name: &str, content: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        store.insert_file(&p).unwrap().hash
    };
    let m = Manifest::from_entries(make(&put));
    let ix = index::cached(&store, &m).unwrap();
    let run = dir.path().join("run");
    for d in [&run, &run.join(env::WRITES), &run.join(env::EMPTY)] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(run.join(env::LOG), b"").unwrap();
    std::fs::write(run.join(env::GENERATION), [0u8; 8]).unwrap();
    let (uid, gid, _) = crate::sys::ids();
    let cfg = Config {
        root: b"/v".to_vec(),
        index: ix.path().to_path_buf(),
        run,
        store: store.root().to_path_buf(),
        owner: (uid, gid),
        dev: 7,
        cwd: Some(b"/v".to_vec()),
        passthrough: vec![b"/v/through".to_vec()],
        fds: Vec::new(),
        child_env: vec![(env::LIB.as_bytes().to_vec(), b"/lib/shim.so".to_vec())],
        net: false,
        served: None,
        farm: None,
    };
    Run { _dir: dir, cfg }
}

fn size(a: Act<vrift_common::vfs::Stat>) -> Result<u64, Errno> {
    match a {
        Act::Done(r) => r.map(|s| s.size),
        Act::Real(p) => panic!("went to the kernel: {p:?}"),
        Act::RealBoth(a, b) => panic!("went to the kernel: {a:?} {b:?}"),
    }
}

#[test]
fn stat_answers_view_paths_and_leaves_the_rest_to_the_kernel() {
    let r = run();
    let mut s = Shim::new(&r.cfg).unwrap();
    assert_eq!(size(s.stat(None, b"a.txt", true)), Ok(5));
    assert_eq!(size(s.stat(None, b"/v/link", true)), Ok(5));
    assert_eq!(size(s.stat(None, b"/v/link", false)), Ok(5));
    assert_eq!(size(s.stat(None, b"missing", true)), Err(Errno::ENOENT));
    assert_eq!(size(s.stat(None, b"a.txt/x", true)), Err(Errno::ENOTDIR));
    assert_eq!(s.stat(None, b"/elsewhere/x", true), Act::Real(None));
    assert_eq!(s.stat(None, b"/v/through/x", true), Act::Real(None));
    // "." components do not hide a pass-through path.
    assert_eq!(s.stat(None, b"/v/./through//x", true), Act::Real(None));
    assert_eq!(
        s.stat(None, b"./through/x", true),
        Act::Real(Some(b"/v/./through/x".to_vec()))
    );
    assert_eq!(s.stat(None, b"/vv", true), Act::Real(None));
    // Relative, outside the view: the kernel gets it absolute (its cwd is not the program's).
    assert_eq!(s.chdir(b"/v/sub"), Act::Done(Ok(())));
    assert_eq!(
        s.stat(None, b"../../etc/x", true),
        Act::Real(Some(b"/etc/x".to_vec()))
    );
    assert_eq!(s.chdir(b"/v"), Act::Done(Ok(())));
    // A relative path to a real directory fd cannot be told: the kernel answers.
    assert_eq!(s.stat(Some(12345), b"x", true), Act::Real(None));
    // ".." out of the view: the resolver hands back the real path.
    assert_eq!(
        s.stat(None, b"/v/../etc", true),
        Act::Real(Some(b"/etc".to_vec()))
    );
}

#[test]
fn a_directory_fd_anchors_relative_paths_and_chdir_is_the_processs_own() {
    let r = run();
    let mut s = Shim::new(&r.cfg).unwrap();
    let Act::Done(Ok(fd)) = s.open(None, b"sub", libc::O_RDONLY | libc::O_DIRECTORY, 0) else {
        panic!("open sub");
    };
    assert!(s.fd_info(fd).is_some_and(|i| i.dir && i.rel == b"sub"));
    assert_eq!(size(s.stat(Some(fd), b"b.txt", true)), Ok(4));
    let Act::Done(Ok(st)) = s.fstat(fd) else {
        panic!("fstat")
    };
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFDIR);
    let names: Vec<Vec<u8>> = s
        .fdopendir(fd)
        .unwrap()
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b".".to_vec(), b"..".to_vec(), b"b.txt".to_vec()]);
    assert_eq!(s.fchdir(fd), Act::Done(Ok(())));
    assert_eq!(s.getcwd(), b"/v/sub");
    assert_eq!(size(s.stat(None, b"b.txt", true)), Ok(4));
    assert_eq!(s.chdir(b".."), Act::Done(Ok(())));
    assert_eq!(s.getcwd(), b"/v");
    assert_eq!(s.chdir(b"a.txt"), Act::Done(Err(Errno::ENOTDIR)));
    let env = s.child_environment(vec![b"PATH=/bin".to_vec()]);
    assert!(env.contains(&b"VRIFT_SHIM_CWD=/v".to_vec()), "{env:?}");
    s.closed(fd);
    assert!(s.fd_info(fd).is_none());
    crate::sys::close(fd);
}

#[test]
fn exec_checks_the_x_bit_and_runs_the_blob() {
    let r = run();
    let mut s = Shim::new(&r.cfg).unwrap();
    assert_eq!(s.exec(b"a.txt"), Act::Done(Err(Errno::EACCES)));
    let Act::Done(Ok(p)) = s.exec(b"run.sh") else {
        panic!("exec")
    };
    assert!(Path::new(std::str::from_utf8(&p).unwrap()).starts_with(r.cfg.store.join("blobs")));
    assert_eq!(
        std::fs::read(std::str::from_utf8(&p).unwrap()).unwrap(),
        b"#!/bin/sh\n"
    );
}

#[test]
fn one_processs_changes_reach_another_through_the_log() {
    let r = run();
    let mut a = Shim::new(&r.cfg).unwrap();
    let mut b = Shim::new(&r.cfg).unwrap();
    let Act::Done(Ok(fd)) = a.open(None, b"new.txt", libc::O_WRONLY | libc::O_CREAT, 0o644) else {
        panic!("create");
    };
    // SAFETY: `fd` was just opened for this test and is owned by nobody else.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(b"123456").unwrap();
    // The other process sees the new file, its size as written so far, in its listing.
    assert_eq!(size(b.stat(None, b"new.txt", true)), Ok(6));
    let Act::Done(Ok(listing)) = b.opendir(b"/v") else {
        panic!("opendir")
    };
    assert!(listing.entries.iter().any(|e| e.name == b"new.txt"));
    crate::sys::close(listing.fd);
    // And reads it.
    let Act::Done(Ok(rfd)) = b.open(None, b"new.txt", libc::O_RDONLY, 0) else {
        panic!("read")
    };
    // SAFETY: as above.
    let got = std::io::read_to_string(unsafe { std::fs::File::from_raw_fd(rfd) }).unwrap();
    assert_eq!(got, "123456");
    // Changes made by b reach a.
    assert_eq!(
        b.change_path(None, b"sub/b.txt", |path| Op::Unlink { path }),
        Act::Done(Ok(()))
    );
    assert_eq!(
        b.change_path(None, b"d", |path| Op::Mkdir { path, mode: 0o755 }),
        Act::Done(Ok(()))
    );
    assert_eq!(size(a.stat(None, b"sub/b.txt", true)), Err(Errno::ENOENT));
    assert_eq!(size(a.stat(None, b"d", true)), Ok(4096));
    // A refused change is not logged: a third process replaying the log agrees.
    assert_eq!(
        a.change_path(None, b"d", |path| Op::Mkdir { path, mode: 0o755 }),
        Act::Done(Err(Errno::EEXIST))
    );
    let mut c = Shim::new(&r.cfg).unwrap();
    assert_eq!(size(c.stat(None, b"d", true)), Ok(4096));
    assert_eq!(size(c.stat(None, b"new.txt", true)), Ok(6));
    // The store was never written: the new file lives in the run's private copy.
    assert_eq!(
        std::fs::read_dir(r.cfg.run.join(env::WRITES))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn writing_an_existing_file_copies_it_first_and_leaves_the_blob_alone() {
    let r = run();
    let mut a = Shim::new(&r.cfg).unwrap();
    let Act::Done(Ok(fd)) = a.open(None, b"a.txt", libc::O_WRONLY | libc::O_APPEND, 0) else {
        panic!("open for append");
    };
    // SAFETY: `fd` was just opened for this test and is owned by nobody else.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(b" world").unwrap();
    drop(f);
    let Act::Done(Ok(rfd)) = a.open(None, b"a.txt", libc::O_RDONLY, 0) else {
        panic!("read")
    };
    // SAFETY: as above.
    let got = std::io::read_to_string(unsafe { std::fs::File::from_raw_fd(rfd) }).unwrap();
    assert_eq!(got, "hello world");
    let blob = r
        .cfg
        .store
        .join("blobs")
        .join(&Hash::of(b"hello").to_hex()[..2])
        .join(&Hash::of(b"hello").to_hex()[2..]);
    assert_eq!(std::fs::read(blob).unwrap(), b"hello");
}

#[test]
fn a_kept_stat_answer_never_outlives_a_change_of_the_view() {
    let r = run();
    let mut a = Shim::new(&r.cfg).unwrap();
    let mut b = Shim::new(&r.cfg).unwrap();
    // An answer is kept at the second ask (a walk of a tree asks each path once).
    assert_eq!(size(a.stat(None, b"x.txt", true)), Err(Errno::ENOENT));
    assert_eq!(a.stat_cache.len(), 0, "kept at the first ask");
    assert_eq!(size(a.stat(None, b"x.txt", true)), Err(Errno::ENOENT));
    assert_eq!(a.stat_cache.len(), 1, "not kept at the second ask");
    for _ in 0..2 {
        assert_eq!(size(b.stat(None, b"a.txt", true)), Ok(5));
        assert_eq!(size(b.stat(None, b"x.txt", true)), Err(Errno::ENOENT));
    }
    assert_eq!(b.stat_cache.len(), 2);
    // A change in b: b's own answers and a's (through the log) follow.
    assert_eq!(
        b.change_path(None, b"x.txt", |path| Op::Symlink {
            target: b"a.txt".to_vec(),
            path
        }),
        Act::Done(Ok(()))
    );
    assert_eq!(
        b.change_path(None, b"a.txt", |path| Op::Truncate { path, len: 2 }),
        Act::Done(Ok(()))
    );
    assert_eq!(size(b.stat(None, b"x.txt", false)), Ok(5));
    assert_eq!(size(a.stat(None, b"x.txt", true)), Ok(2));
    assert_eq!(size(a.stat(None, b"a.txt", true)), Ok(2));
    assert_eq!(
        b.change_path(None, b"x.txt", |path| Op::Unlink { path }),
        Act::Done(Ok(()))
    );
    assert_eq!(size(a.stat(None, b"x.txt", true)), Err(Errno::ENOENT));
}

#[test]
fn a_kept_open_answer_never_outlives_a_change_of_the_view() {
    let r = run();
    let mut a = Shim::new(&r.cfg).unwrap();
    let mut b = Shim::new(&r.cfg).unwrap();
    let read = |s: &mut Shim| match s.open(None, b"a.txt", libc::O_RDONLY, 0) {
        Act::Done(Ok(fd)) => {
            // SAFETY: `fd` was just opened for this test and is owned by nobody else.
            let f = unsafe { std::fs::File::from_raw_fd(fd) };
            s.closed(fd);
            Ok(std::io::read_to_string(f).unwrap())
        }
        Act::Done(Err(e)) => Err(e),
        _ => panic!("went to the kernel"),
    };
    assert_eq!(read(&mut a), Ok("hello".to_string()));
    assert_eq!(read(&mut a), Ok("hello".to_string()));
    assert_eq!(
        b.change_path(None, b"a.txt", |path| Op::Unlink { path }),
        Act::Done(Ok(()))
    );
    assert_eq!(read(&mut a), Err(Errno::ENOENT));
    assert_eq!(
        b.change_path(None, b"a.txt", |path| Op::Symlink {
            target: b"sub/b.txt".to_vec(),
            path
        }),
        Act::Done(Ok(()))
    );
    assert_eq!(read(&mut a), Ok("bee\n".to_string()));
}

#[test]
fn pointers_outside_user_memory_are_not_read() {
    assert!(!super::may_be_mapped(0));
    assert!(!super::may_be_mapped(8));
    assert!(!super::may_be_mapped(usize::MAX));
    assert!(super::may_be_mapped(0x5555_5555_0000));
    let s = b"x\0";
    assert!(super::may_be_mapped(s.as_ptr() as usize));
}

#[test]
fn a_blobs_short_name_is_its_path_under_the_blob_directory() {
    let h = Hash([0xa7; 32]);
    let hex = h.to_hex();
    let want = format!("{}/{}\0", &hex[..2], &hex[2..]);
    assert_eq!(&super::blob_name(&h)[..], want.as_bytes());
    let store = tempfile::tempdir().unwrap();
    let s = Store::open(store.path()).unwrap();
    assert!(s
        .blob_path(&h)
        .ends_with(std::str::from_utf8(&super::blob_name(&h)[..65]).unwrap()));
}

#[cfg(target_os = "linux")]
#[test]
fn a_path_longer_than_path_max_is_opened_in_pieces() {
    use std::os::unix::ffi::OsStrExt;
    use vrift_common::longpath::Short;
    let root = tempfile::tempdir().unwrap();
    let mut dir = root.path().to_path_buf();
    for _ in 0..20 {
        dir.push("d".repeat(250));
        std::fs::create_dir(&*Short::of(&dir).unwrap()).unwrap();
    }
    let file = dir.join("f");
    std::fs::write(&*Short::of(&file).unwrap(), "deep\n").unwrap();
    let bytes = file.as_os_str().as_bytes();
    assert!(bytes.len() > 5000);
    let fd = super::open_long(bytes, libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
    // SAFETY: a descriptor open_long just opened, owned here.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    assert_eq!(std::io::read_to_string(f).unwrap(), "deep\n");
    let missing = dir.join("nothing");
    assert_eq!(
        super::open_long(missing.as_os_str().as_bytes(), libc::O_RDONLY),
        Err(libc::ENOENT)
    );
}

/// A view whose manifest records an owner, xattrs and a hard-link group: {a (owner
/// 4321:8765, user.k=v), h1 and sub/h2 (one inode), sub/}.
fn run_with_meta() -> Run {
    run_of(|put| {
        let z = Hash([0; 32]);
        let h = put("h", b"linked\n");
        let linked = entry(EntryKind::File, h, 7, 0o644, b"").with_meta(EntryMeta {
            link: 1,
            ..Default::default()
        });
        vec![
            (b"".to_vec(), entry(EntryKind::Dir, z, 0, 0o755, b"")),
            (
                b"a".to_vec(),
                entry(EntryKind::File, put("a", b"a"), 1, 0o644, b"").with_meta(EntryMeta {
                    owner: Some(EntryOwner {
                        uid: 4321,
                        gid: 8765,
                    }),
                    xattrs: vec![Xattr {
                        name: b"user.k".to_vec(),
                        value: b"v".to_vec(),
                    }],
                    link: 0,
                }),
            ),
            (b"h1".to_vec(), linked.clone()),
            (b"sub".to_vec(), entry(EntryKind::Dir, z, 0, 0o755, b"")),
            (b"sub/h2".to_vec(), linked),
        ]
    })
}

fn done<T: std::fmt::Debug>(a: Act<T>) -> Result<T, Errno> {
    match a {
        Act::Done(r) => r,
        other => panic!("went to the kernel: {other:?}"),
    }
}

#[test]
fn owners_xattrs_and_link_groups_of_the_index_are_served_and_shared() {
    let r = run_with_meta();
    let mut a = Shim::new(&r.cfg).unwrap();
    let mut b = Shim::new(&r.cfg).unwrap();
    // The recorded owner; the link group's names are one inode.
    let st = done(a.stat(None, b"/v/a", false)).unwrap();
    assert_eq!((st.uid, st.gid), (4321, 8765));
    let h1 = done(a.stat(None, b"h1", false)).unwrap();
    let h2 = done(a.stat(None, b"sub/h2", false)).unwrap();
    assert_eq!((h1.ino, h1.nlink), (h2.ino, 2));
    // xattr reads, by path, through a view directory's /proc/self/fd name and by descriptor.
    assert_eq!(
        done(a.getxattr(XattrTarget::Path(b"a", true), b"user.k")),
        Ok(b"v".to_vec())
    );
    assert_eq!(
        done(a.listxattr(XattrTarget::Path(b"/v/a", false))),
        Ok(b"user.k\0".to_vec())
    );
    assert_eq!(
        done(a.getxattr(XattrTarget::Path(b"a", true), b"user.none")),
        Err(Errno::ENODATA)
    );
    let dir = done(a.open(None, b"/v", libc::O_RDONLY | libc::O_DIRECTORY, 0)).unwrap();
    let via = format!("/proc/self/fd/{dir}/a").into_bytes();
    assert_eq!(
        done(a.getxattr(XattrTarget::Path(&via, true), b"user.k")),
        Ok(b"v".to_vec())
    );
    let fd = done(a.open(None, b"a", libc::O_RDONLY, 0)).unwrap();
    assert_eq!(
        done(a.getxattr(XattrTarget::Fd(fd), b"user.k")),
        Ok(b"v".to_vec())
    );
    // Outside the view the kernel answers.
    assert!(matches!(
        a.getxattr(XattrTarget::Path(b"/etc/passwd", true), b"user.k"),
        Act::Real(_)
    ));
    // A set through one name of the group is seen through the other, by another process.
    assert_eq!(
        done(b.setxattr(XattrTarget::Path(b"h1", true), b"user.n", b"1", 0)),
        Ok(())
    );
    assert_eq!(
        done(a.getxattr(XattrTarget::Path(b"sub/h2", true), b"user.n")),
        Ok(b"1".to_vec())
    );
    assert_eq!(
        done(b.setxattr(
            XattrTarget::Path(b"h1", true),
            b"user.n",
            b"2",
            XATTR_CREATE
        )),
        Err(Errno::EEXIST)
    );
    assert_eq!(done(a.removexattr(XattrTarget::Fd(fd), b"user.k")), Ok(()));
    assert_eq!(
        done(b.getxattr(XattrTarget::Path(b"a", true), b"user.k")),
        Err(Errno::ENODATA)
    );
    // A mode-equivalent access ACL is a chmod (as root: the file is another user's).
    let root = crate::sys::ids().0 == 0;
    let acl: &[u8] = b"\x02\0\0\0\x01\0\x07\0\xff\xff\xff\xff\x04\0\x05\0\xff\xff\xff\xff\x20\0\x05\0\xff\xff\xff\xff";
    let set = done(a.setxattr(
        XattrTarget::Path(b"h1", true),
        b"system.posix_acl_access",
        acl,
        0,
    ));
    assert_eq!(set, Ok(()));
    assert_eq!(
        done(b.stat(None, b"sub/h2", true)).unwrap().mode & 0o7777,
        0o755
    );
    // chown: root gives a file away; anyone else may not.
    let chown = done(b.chown(None, b"h1", 77, 88, true));
    if root {
        assert_eq!(chown, Ok(()));
        let st = done(a.stat(None, b"sub/h2", true)).unwrap();
        assert_eq!((st.uid, st.gid), (77, 88));
    } else {
        assert_eq!(chown, Err(Errno::EPERM));
    }
    // A link made in the run is one more name of the inode.
    let Act::Done(Ok(())) = a.change_pair((None, b"h1"), (None, b"h3"), |old, new| Op::Link {
        old,
        new,
        follow: false,
    }) else {
        panic!("link")
    };
    assert_eq!(done(b.stat(None, b"h3", true)).unwrap().nlink, 3);
    // A process started after all of it replays the log to the same view.
    let mut c = Shim::new(&r.cfg).unwrap();
    assert_eq!(
        done(c.stat(None, b"h3", true)),
        done(a.stat(None, b"h3", true))
    );
    assert_eq!(
        done(c.listxattr(XattrTarget::Path(b"sub/h2", true))),
        Ok(b"user.n\0".to_vec())
    );
    crate::sys::close(fd);
    crate::sys::close(dir);
}
