//! A small project tree and callers for the tests.

use std::collections::BTreeMap;

use crate::hash::Hash;
use crate::manifest::{Entry, EntryKind, RelPath};
use crate::vfs::*;

pub type Layer = BTreeMap<RelPath, Entry>;

pub const ROOT: &[u8] = b"/home/u/proj";
pub const NOW: i64 = 1_700_000_000_000_000_000;
pub const OLD: i64 = 1_600_000_000_000_000_000;

pub fn blob(name: &str) -> Hash {
    Hash::of(name.as_bytes())
}

pub fn file(content: &str, mode: u32) -> Entry {
    Entry {
        kind: EntryKind::File,
        hash: blob(content),
        size: content.len() as u64,
        mode,
        mtime_ns: OLD,
        target: Vec::new(),
        meta: Default::default(),
    }
}

pub fn dir(mode: u32) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        hash: Hash([0; 32]),
        size: 0,
        mode,
        mtime_ns: OLD,
        target: Vec::new(),
        meta: Default::default(),
    }
}

pub fn symlink(target: &str) -> Entry {
    Entry {
        kind: EntryKind::Symlink,
        hash: Hash([0; 32]),
        size: target.len() as u64,
        mode: 0o777,
        mtime_ns: OLD,
        target: target.as_bytes().to_vec(),
        meta: Default::default(),
    }
}

pub fn layer(entries: &[(&str, Entry)]) -> Layer {
    entries
        .iter()
        .map(|(p, e)| (p.as_bytes().to_vec(), e.clone()))
        .collect()
}

/// The project every test starts from (one base layer).
pub fn base() -> Layer {
    layer(&[
        ("", dir(0o755)),
        ("src", dir(0o755)),
        ("src/main.rs", file("main", 0o644)),
        ("src/lib.rs", file("lib", 0o644)),
        ("src/deep", dir(0o755)),
        ("src/deep/x.rs", file("x", 0o644)),
        ("ro.so", file("ro", 0o444)),
        ("secret", file("secret", 0o600)),
        ("grp_rw", file("grp", 0o464)),
        ("other_only", file("oth", 0o606)),
        ("bin", dir(0o755)),
        ("bin/tool", file("tool", 0o755)),
        ("bin/noexec", file("noexec", 0o644)),
        ("bin/userx", file("userx", 0o744)),
        ("bin/execonly", file("execonly", 0o111)),
        ("rodir", dir(0o555)),
        ("rodir/f", file("f", 0o644)),
        ("closed", dir(0o700)),
        ("closed/f", file("cf", 0o644)),
        ("noread", dir(0o311)),
        ("empty", dir(0o755)),
        ("tmp", dir(0o1777)),
        ("tmp/theirs", file("t", 0o666)),
        ("link_main", symlink("src/main.rs")),
        ("link_src", symlink("src")),
        ("abs_src", symlink("/home/u/proj/src")),
        ("out_etc", symlink("/etc")),
        ("up_link", symlink("../other")),
        ("dangling", symlink("nothing")),
        ("loop", symlink("loop")),
    ])
}

pub const OWNER: Owner = Owner {
    uid: 1000,
    gid: 1000,
};

/// A view of [`base`] owned by uid/gid 1000.
pub fn view() -> View<Layer> {
    View::new(ROOT, OWNER, vec![base()]).unwrap()
}

/// The same tree owned by someone else (uid 2000, gid 3000), to exercise group and other bits.
pub fn foreign_view() -> View<Layer> {
    View::new(
        ROOT,
        Owner {
            uid: 2000,
            gid: 3000,
        },
        vec![base()],
    )
    .unwrap()
}

/// uid 1000, the view owner.
pub fn user() -> Cred {
    Cred::user(1000, 1000)
}
/// A member of the foreign view's group 3000.
pub fn group_member() -> Cred {
    Cred {
        uid: 1000,
        gid: 1000,
        groups: vec![3000],
        privileged: false,
    }
}
pub fn root() -> Cred {
    Cred::root()
}

pub fn at(cred: &Cred) -> Caller<'_> {
    Caller {
        cred,
        cwd: ROOT,
        umask: 0o022,
        now_ns: NOW,
    }
}

pub fn at_cwd<'a>(cred: &'a Cred, cwd: &'a [u8]) -> Caller<'a> {
    Caller { cwd, ..at(cred) }
}

/// The errno of a failed operation.
pub fn errno<T: std::fmt::Debug>(r: Result<Routed<T>, Errno>) -> Errno {
    r.expect_err("operation should fail")
}

/// The view result of a successful operation.
pub fn ok<T: std::fmt::Debug>(r: Result<Routed<T>, Errno>) -> T {
    r.expect("operation should succeed").unwrap_view()
}

pub fn names<L: LayerSource>(v: &View<L>, rel: &str) -> Vec<String> {
    v.children(rel.as_bytes())
        .expect("a directory")
        .into_iter()
        .map(|(n, _)| String::from_utf8(n).unwrap())
        .collect()
}

pub fn rel(s: &str) -> RelPath {
    s.as_bytes().to_vec()
}
