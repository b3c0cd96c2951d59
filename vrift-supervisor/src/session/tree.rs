//! The session's view as git sees it: the paths `git add -A` would record (everything the
//! base commit tracks, plus what `.gitignore` does not ignore), written as blobs and trees
//! into an object database, and the tree's difference from the base.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use gix::objs::tree::EntryKind;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use vrift_common::manifest::{display_path, EntryKind as Kind, Manifest, RelPath};
use vrift_common::store::Store;

use super::base::{is_under, tree_files};
use super::gitmap::GitMap;

/// A tree written for a session's view.
pub struct Written {
    pub tree: gix::ObjectId,
    /// Directories of the view with nothing git can record in them.
    pub empty_dirs: Vec<RelPath>,
}

/// `.gitignore` rules as the view holds them (plus the repository's info/exclude).
struct Ignores {
    by_dir: BTreeMap<RelPath, Gitignore>,
}

const ROOT: &str = "/view";

fn abs(rel: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(ROOT);
    if rel.is_empty() {
        p.to_path_buf()
    } else {
        p.join(std::ffi::OsStr::from_bytes(rel))
    }
}

impl Ignores {
    fn new(store: &Store, view: &Manifest, git_dir: &Path) -> Result<Ignores> {
        let mut by_dir = BTreeMap::new();
        for (p, e) in view.iter() {
            let (dir, name) = match p.iter().rposition(|&b| b == b'/') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (&p[..0], p),
            };
            if name != b".gitignore" || e.kind != Kind::File {
                continue;
            }
            let text = std::fs::read(store.blob_path(&e.hash))?;
            let mut b = GitignoreBuilder::new(abs(dir));
            for line in String::from_utf8_lossy(&text).lines() {
                let _ = b.add_line(None, line);
            }
            by_dir.insert(dir.to_vec(), b.build()?);
        }
        let exclude = git_dir.join("info").join("exclude");
        if let Ok(text) = std::fs::read(&exclude) {
            let mut b = GitignoreBuilder::new(abs(b""));
            for line in String::from_utf8_lossy(&text).lines() {
                let _ = b.add_line(None, line);
            }
            // Weaker than any .gitignore: kept under a key no directory has.
            by_dir.insert(b"\0exclude".to_vec(), b.build()?);
        }
        Ok(Ignores { by_dir })
    }

    /// Whether `path` itself matches: the deepest .gitignore with an opinion decides.
    fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        let mut dir = path;
        loop {
            dir = match dir.iter().rposition(|&b| b == b'/') {
                Some(i) => &dir[..i],
                None if dir.is_empty() => break,
                None => b"",
            };
            if let Some(g) = self.by_dir.get(dir) {
                let m = g.matched(abs(path), is_dir);
                if m.is_ignore() {
                    return true;
                }
                if m.is_whitelist() {
                    return false;
                }
            }
            if dir.is_empty() {
                break;
            }
        }
        self.by_dir
            .get(b"\0exclude".as_slice())
            .is_some_and(|g| g.matched(abs(path), is_dir).is_ignore())
    }

    /// Whether git would leave `path` out: it, or a directory above it, is ignored.
    fn ignored(&self, path: &[u8], is_dir: bool) -> bool {
        let mut i = 0;
        while let Some(j) = path[i..].iter().position(|&b| b == b'/') {
            if self.matches(&path[..i + j], true) {
                return true;
            }
            i += j + 1;
        }
        self.matches(path, is_dir)
    }
}

/// Write the view's git tree into `repo`'s object database (which may keep it in memory).
pub fn write(
    store: &Store,
    repo: &gix::Repository,
    view: &Manifest,
    base_tree: gix::ObjectId,
) -> Result<Written> {
    let base = tree_files(repo, base_tree)?;
    let ignores = Ignores::new(store, view, repo.git_dir())?;
    let mut map = GitMap::load(store)?;
    let mut editor = repo.edit_tree(base_tree)?;
    let mut kept: BTreeSet<RelPath> = BTreeSet::new();
    let mut dirs = Vec::new();
    for (p, e) in view.iter() {
        if p.is_empty() {
            continue;
        }
        if p.split(|&b| b == b'/').any(|c| c == b".git") {
            bail!(
                "{}: a path component named .git cannot be stored in git",
                display_path(p)
            );
        }
        if e.kind == Kind::Dir {
            dirs.push(p.to_vec());
            continue;
        }
        // git has no FIFO kind: a FIFO stays in the manifest, not in the commit.
        if e.kind == Kind::Fifo {
            continue;
        }
        let tracked = base.get(p);
        if tracked.is_none() && ignores.ignored(p, false) {
            continue;
        }
        let (kind, oid) = match e.kind {
            Kind::Symlink => (EntryKind::Link, repo.write_blob(&e.target)?.detach()),
            _ => {
                let kind = if e.mode & 0o111 != 0 {
                    EntryKind::BlobExecutable
                } else {
                    EntryKind::Blob
                };
                let known = map.git(&e.hash).filter(|o| repo.has_object(o));
                let oid = match known {
                    Some(o) => o,
                    None => {
                        let path = store.blob_path(&e.hash);
                        let f = std::fs::File::open(&path)
                            .with_context(|| format!("{}", path.display()))?;
                        let oid = repo.write_blob_stream(f)?.detach();
                        map.insert(&oid, e.hash, e.size);
                        oid
                    }
                };
                (kind, oid)
            }
        };
        kept.insert(p.to_vec());
        if tracked.is_some_and(|t| t.kind == kind && t.oid == oid) {
            continue;
        }
        editor.upsert(gix::bstr::BStr::new(p), kind, oid)?;
    }
    map.flush()?;
    for (p, t) in &base {
        // A submodule shows as a directory in the view; it stays as the base has it.
        if t.kind != EntryKind::Commit && !kept.contains(p) {
            editor.remove(gix::bstr::BStr::new(p))?;
        }
    }
    let tree = editor.write()?.detach();
    // Directories with anything at all below them (recorded or not) are not empty.
    let mut full: BTreeSet<&[u8]> = BTreeSet::new();
    for (p, e) in view.iter() {
        if e.kind == Kind::Dir {
            continue;
        }
        let mut r = p;
        while let Some(i) = r.iter().rposition(|&b| b == b'/') {
            r = &r[..i];
            if !full.insert(r) {
                break;
            }
        }
    }
    let empty_dirs = dirs
        .into_iter()
        .filter(|d| !full.contains(d.as_slice()) && !ignores.ignored(d, true))
        .filter(|d| !view.iter().any(|(p, _)| is_under(p, d)))
        .collect();
    Ok(Written { tree, empty_dirs })
}
