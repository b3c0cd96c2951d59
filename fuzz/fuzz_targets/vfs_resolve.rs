//! The view's path resolver and the operations built on it, on fuzzed trees, paths and
//! calls: every call returns a result or an errno, never panics, and afterwards the view is
//! still consistent (every entry resolves, the tree flattens once the writes are committed).
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use vrift_common::hash::Hash;
use vrift_common::vfs::{Caller, OpenFlags, Opened, RenameMode, Routed, TimeSpec, View};
use vrift_fuzz::{caller, cred, exercise_view, layer, Node, TokenPath, OWNER, ROOT};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Lowest first; up to three are used.
    layers: Vec<Vec<Node>>,
    cwd: TokenPath,
    ops: Vec<(u8, Op)>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Resolve(TokenPath, bool),
    Stat(TokenPath, bool),
    ReadDir(TokenPath),
    Readlink(TokenPath),
    Access(TokenPath, u8),
    Chdir(TokenPath),
    Open(TokenPath, i32, u16),
    Mkdir(TokenPath, u16),
    Rmdir(TokenPath),
    Unlink(TokenPath),
    Symlink(TokenPath, TokenPath),
    Link(TokenPath, TokenPath, bool),
    Rename(TokenPath, TokenPath, u8),
    Chmod(TokenPath, u16, bool),
    Utimens(TokenPath, i64, bool),
    Truncate(TokenPath, i64),
    Mknod(TokenPath, u32),
    /// Commit the oldest write still open.
    Commit(u8),
}

fuzz_target!(|input: Input| {
    let layers: Vec<_> = input.layers.iter().take(3).map(|l| layer(l)).collect();
    let mut view = View::new(ROOT, OWNER, layers.iter().collect()).expect("a valid root");
    let mut cwd = input.cwd.bytes();
    if !cwd.starts_with(b"/") {
        cwd = ROOT.to_vec();
    }
    let mut writes = Vec::new();
    for (who, op) in input.ops.iter().take(64) {
        let cr = cred(*who);
        let here = cwd.clone();
        let c = caller(&cr, &here);
        match op {
            Op::Resolve(p, follow) => {
                let _ = view.resolve_as(&cr, &p.bytes(), &cwd, *follow);
            }
            Op::Stat(p, follow) => {
                let _ = view.stat(&c, &p.bytes(), *follow);
            }
            Op::ReadDir(p) => {
                let _ = view.read_dir(&c, &p.bytes());
            }
            Op::Readlink(p) => {
                let _ = view.readlink(&c, &p.bytes());
            }
            Op::Access(p, mode) => {
                let _ = view.access(&c, &p.bytes(), (*mode % 8) as u32, false);
            }
            Op::Chdir(p) => {
                if let Ok(Routed::View(rel)) = view.chdir(&c, &p.bytes()) {
                    cwd = view.abs_path(&rel);
                }
            }
            Op::Open(p, flags, mode) => {
                let flags = OpenFlags::from_raw(*flags);
                if let Ok(Routed::View(Opened::Write { id, .. })) =
                    view.open(&c, &p.bytes(), flags, *mode as u32)
                {
                    writes.push(id);
                }
            }
            Op::Mkdir(p, mode) => {
                let _ = view.mkdir(&c, &p.bytes(), *mode as u32);
            }
            Op::Rmdir(p) => {
                let _ = view.rmdir(&c, &p.bytes());
            }
            Op::Unlink(p) => {
                let _ = view.unlink(&c, &p.bytes());
            }
            Op::Symlink(t, p) => {
                let _ = view.symlink(&c, &t.bytes(), &p.bytes());
            }
            Op::Link(a, b, follow) => {
                let _ = view.link(&c, &a.bytes(), &b.bytes(), *follow);
            }
            Op::Rename(a, b, flags) => {
                if let Ok(mode) = RenameMode::from_linux_flags((*flags % 4) as u32) {
                    let _ = view.rename(&c, &a.bytes(), &b.bytes(), mode);
                }
            }
            Op::Chmod(p, mode, follow) => {
                let _ = view.chmod(&c, &p.bytes(), *mode as u32, *follow);
            }
            Op::Utimens(p, t, follow) => {
                let _ = view.utimens(&c, &p.bytes(), TimeSpec::Omit, TimeSpec::Set(*t), *follow);
            }
            Op::Truncate(p, len) => {
                if let Ok(Routed::View(t)) = view.truncate(&c, &p.bytes(), *len) {
                    writes.push(t.id);
                }
            }
            Op::Mknod(p, mode) => {
                let _ = view.mknod(&c, &p.bytes(), *mode);
            }
            Op::Commit(n) => {
                if !writes.is_empty() {
                    let id = writes.remove(*n as usize % writes.len());
                    view.commit(id, Hash::of(b"written"), 7, 1);
                }
            }
        }
        check_consistent(&view, &c);
    }
    for id in writes {
        view.commit(id, Hash::of(b"written"), 7, 1);
    }
    let flat = view.flatten().expect("every write was committed");
    exercise_view(&vrift_common::manifest::Manifest::from_entries(flat));
});

/// Every path of the merged tree resolves to itself.
fn check_consistent<L: vrift_common::vfs::LayerSource>(view: &View<L>, c: &Caller) {
    let mut stack = vec![Vec::new()];
    while let Some(dir) = stack.pop() {
        let Some(kids) = view.children(&dir) else {
            continue;
        };
        for (name, e) in kids {
            let mut rel = dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            let _ = view.stat(c, &view.abs_path(&rel), false);
            assert!(view.lookup(&rel).is_some(), "a listed entry looks up");
            if e.is_dir() {
                stack.push(rel);
            }
        }
    }
}
