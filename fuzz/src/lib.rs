//! What the fuzz targets share: turning fuzz bytes into paths and trees, and exercising a
//! view over a manifest.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use vrift_common::hash::Hash;
use vrift_common::manifest::{is_valid_rel_path, Entry, Manifest};
use vrift_common::vfs::{Caller, Cred, Owner, View};

/// The file name the decoder is told it reads (for its error messages only).
pub const FUZZ_PATH: &str = "fuzz.manifest";

/// Where the fuzzed views are projected.
pub const ROOT: &[u8] = b"/home/u/proj";

/// The view's owner.
pub const OWNER: Owner = Owner {
    uid: 1000,
    gid: 1000,
};

/// A path spelled with tokens, so that mutations make paths that mean something: each byte
/// picks a name, a separator, ".", "..", the view root or a raw byte.
#[derive(Arbitrary, Debug, Clone)]
pub struct TokenPath(pub Vec<u8>);

impl TokenPath {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in &self.0 {
            match b % 16 {
                0 => out.extend_from_slice(b"a"),
                1 => out.extend_from_slice(b"b"),
                2 => out.extend_from_slice(b"c"),
                3..=5 => out.push(b'/'),
                6 => out.push(b'.'),
                7 => out.extend_from_slice(b".."),
                8 => out.extend_from_slice(ROOT),
                9 => out.extend_from_slice(b"/home"),
                10 => out.extend_from_slice(&[b'x'; 255]),
                11 => out.extend_from_slice(&[b'y'; 256]),
                12 => out.extend_from_slice(&[b'z'; 1000]),
                _ => out.push(b),
            }
        }
        out
    }
}

/// One entry of a fuzzed layer.
#[derive(Arbitrary, Debug, Clone)]
pub struct Node {
    pub path: TokenPath,
    pub kind: u8,
    pub mode: u32,
    pub size: u8,
    pub target: TokenPath,
    pub mtime_ns: i64,
}

impl Node {
    /// The manifest entry, or `None` for a path a manifest cannot hold (the decoder refuses
    /// those, so no view ever sees one).
    pub fn entry(&self) -> Option<(Vec<u8>, Entry)> {
        let path = self.path.bytes();
        if !is_valid_rel_path(&path) {
            return None;
        }
        let e = match self.kind % 3 {
            0 => Entry::file(
                Hash::of(&[self.size]),
                self.size as u64,
                self.mode,
                self.mtime_ns,
            ),
            1 => Entry::dir(self.mode, self.mtime_ns),
            _ => Entry::symlink(self.target.bytes(), self.mtime_ns),
        };
        Some((path, e))
    }
}

/// A manifest made of fuzzed nodes (invalid paths dropped).
pub fn layer(nodes: &[Node]) -> Manifest {
    Manifest::from_entries(nodes.iter().filter_map(Node::entry))
}

/// A caller: root, the owner, or a stranger.
pub fn cred(who: u8) -> Cred {
    match who % 3 {
        0 => Cred::root(),
        1 => Cred::user(OWNER.uid, OWNER.gid),
        _ => Cred::user(2000, 2000),
    }
}

pub fn caller<'a>(cred: &'a Cred, cwd: &'a [u8]) -> Caller<'a> {
    Caller {
        cred,
        cwd,
        umask: 0o022,
        now_ns: 1_700_000_000_000_000_000,
    }
}

/// Everything a read-only user of a manifest does with it: a view over it resolves, stats
/// and lists every path (as root and as a stranger), reads every symlink, and flattens back
/// to the same tree's entries.
pub fn exercise_view(m: &Manifest) {
    let view = View::new(ROOT, OWNER, vec![m]).expect("a valid root");
    let root = Cred::root();
    let stranger = Cred::user(2000, 2000);
    for (path, _) in m.iter() {
        let abs = view.abs_path(path);
        for cred in [&root, &stranger] {
            let c = caller(cred, ROOT);
            let _ = view.resolve_as(cred, &abs, ROOT, true);
            let _ = view.resolve(path, ROOT, false);
            let _ = view.stat(&c, &abs, false);
            let _ = view.stat(&c, &abs, true);
            let _ = view.read_dir(&c, &abs);
            let _ = view.readlink(&c, &abs);
        }
        let _ = view.children(path);
    }
    let flat = view.flatten().expect("nothing is pending in a fresh view");
    let _ = Manifest::from_entries(flat).encode();
}
