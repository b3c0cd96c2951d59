//! What a session starts as: the tracked files of a revision's tree, read from the object
//! database (so no checkout is needed, and a bare repository works), plus the working tree's
//! untracked and ignored files; or, with `--from worktree`, the working tree as it is.
//! Directories a plain run passes through (`.git`, `target/`, `node_modules/`...) are not
//! copied: they are stacked copy-on-write over the real ones when the session is entered.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};
use gix::objs::tree::EntryKind;
use vrift_common::manifest::{Entry, Manifest, RelPath};
use vrift_common::store::Store;

use super::gitmap::GitMap;
use super::CowDir;
use crate::run::project;
use crate::view::spec::PassthroughKind;

pub struct Base {
    pub manifest: Manifest,
    pub commit: gix::ObjectId,
    pub cow: Vec<CowDir>,
}

/// One entry of a git tree, files and links only (directories are implied by paths).
pub struct TreeFile {
    pub kind: EntryKind,
    pub oid: gix::ObjectId,
}

/// Every non-tree entry of `tree`, by path (submodules included, as `EntryKind::Commit`).
pub fn tree_files(
    repo: &gix::Repository,
    tree: gix::ObjectId,
) -> Result<BTreeMap<RelPath, TreeFile>> {
    let tree = repo.find_tree(tree)?;
    let mut rec = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut rec)
        .context("reading the tree")?;
    let mut out = BTreeMap::new();
    for e in rec.records {
        let kind = e.mode.kind();
        if kind == EntryKind::Tree {
            continue;
        }
        out.insert(e.filepath.to_vec(), TreeFile { kind, oid: e.oid });
    }
    Ok(out)
}

/// The commit `rev` names.
pub fn resolve_commit(repo: &gix::Repository, rev: &str) -> Result<gix::ObjectId> {
    let id = repo
        .rev_parse_single(rev)
        .with_context(|| format!("{rev}: no such revision in {}", repo.git_dir().display()))?;
    let commit = id
        .object()?
        .peel_to_commit()
        .with_context(|| format!("{rev}: not a commit"))?;
    Ok(commit.id)
}

/// Make the base of a new session of `repo` starting `from` (a revision, or `worktree`).
pub fn make(store: &Store, repo: &gix::Repository, from: &str) -> Result<Base> {
    let root = super::view_root(repo);
    let bare = repo.workdir().is_none();
    let head = if from == "worktree" { "HEAD" } else { from };
    let commit_id = resolve_commit(repo, head)?;
    let commit = repo.find_commit(commit_id)?;
    let time_ns = commit.time().map_or(0, |t| t.seconds) * 1_000_000_000;

    let mut entries: BTreeMap<RelPath, Entry> = BTreeMap::new();
    let mut cow = Vec::new();
    // Blobs known from the map, not looked at in the store (see `restore_missing`).
    let mut map_blobs: Vec<(vrift_common::hash::Hash, gix::ObjectId)> = Vec::new();
    let root_mode = std::fs::metadata(&root).map_or(0o755, |m| m.mode() & 0o7777);
    entries.insert(Vec::new(), Entry::dir(root_mode, time_ns));

    if bare {
        if from == "worktree" {
            bail!(
                "{}: a bare repository has no working tree to start from",
                root.display()
            );
        }
        // The repository itself is the session's `.git`, copy-on-write.
        cow.push(CowDir {
            path: ".git".into(),
            source: repo.git_dir().to_path_buf(),
        });
    }
    let worktree = if bare {
        None
    } else {
        let report = project::ingest(store, &root)?;
        let passthrough = project::passthrough_of(&root, &report);
        Some((report.manifest, passthrough))
    };

    if from == "worktree" {
        let (w, _) = worktree.as_ref().expect("not bare");
        for (p, e) in w.iter() {
            entries.insert(p.to_vec(), e.clone());
        }
    } else {
        let tree = commit.tree_id()?.detach();
        let files = tree_files(repo, tree)?;
        let mut map = GitMap::load(store)?;
        for (path, f) in &files {
            let e = match f.kind {
                EntryKind::Link => {
                    let blob = repo.find_blob(f.oid)?;
                    Entry::symlink(blob.data.clone(), time_ns)
                }
                EntryKind::Commit => Entry::dir(0o755, time_ns),
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let (hash, size) = match map.blake(&f.oid) {
                        Some(k) => {
                            map_blobs.push((k.0, f.oid));
                            k
                        }
                        None => {
                            let blob = repo.find_blob(f.oid)?;
                            let ins = store.insert_bytes(&blob.data)?;
                            map.insert(&f.oid, ins.hash, ins.size);
                            (ins.hash, ins.size)
                        }
                    };
                    let mode = if f.kind == EntryKind::BlobExecutable {
                        0o755
                    } else {
                        0o644
                    };
                    Entry::file(hash, size, mode, time_ns)
                }
                EntryKind::Tree => continue,
            };
            entries.insert(path.clone(), e);
        }
        map.flush()?;
        // The tree's directories first, so the working tree's copies of them are known.
        add_parents(&mut entries, time_ns);
        if let Some((w, _)) = &worktree {
            // A file whose content is the working tree's keeps the working tree's mtime,
            // so build tools see it as they last saw it.
            for (p, e) in entries.iter_mut() {
                if let Some(we) = w.get(p) {
                    if we.kind == e.kind && we.hash == e.hash && we.target == e.target {
                        e.mtime_ns = we.mtime_ns;
                    }
                }
            }
            // Untracked files: in the working tree, not in the index, not in the tree.
            let index: HashSet<Vec<u8>> = match repo.open_index() {
                Ok(i) => i.entries().iter().map(|e| e.path(&i).to_vec()).collect(),
                Err(_) => HashSet::new(),
            };
            for (p, e) in w.iter() {
                if p.is_empty() || entries.contains_key(p) || index.contains(p) {
                    continue;
                }
                entries.insert(p.to_vec(), e.clone());
            }
        }
    }

    if let Some((_, passthrough)) = &worktree {
        for (rel, kind) in passthrough {
            let real = root.join(std::ffi::OsStr::from_bytes(rel));
            if rel.as_slice() == b".git" && *kind == PassthroughKind::File {
                bail!(
                    "{}: is a file (a linked worktree or a submodule); sessions need the \
                     repository's own .git directory",
                    real.display()
                );
            }
            match kind {
                // An ignored file (`.env`) is small enough to copy into the store.
                PassthroughKind::File => {
                    let m = std::fs::symlink_metadata(&real)
                        .with_context(|| format!("{}", real.display()))?;
                    let ins = store.insert_file(&real)?;
                    entries.insert(
                        rel.clone(),
                        Entry::file(ins.hash, ins.size, m.mode() & 0o7777, mtime_ns(&m)),
                    );
                }
                PassthroughKind::Dir => {
                    if entries.keys().any(|p| p == rel || is_under(p, rel)) {
                        tracing::warn!(
                            "{}: ignored, but git tracks paths in it; the session shows the \
                             tracked ones only",
                            real.display()
                        );
                        continue;
                    }
                    cow.push(CowDir {
                        path: String::from_utf8_lossy(rel).into_owned(),
                        source: real,
                    });
                }
            }
        }
    }
    add_parents(&mut entries, time_ns);
    let manifest = Manifest::from_entries(entries);
    restore_missing(store, repo, &manifest, &map_blobs)?;
    Ok(Base {
        manifest,
        commit: commit_id,
        cow,
    })
}

/// Blobs the map named are in the store: certainly when the base's metadata layer exists
/// (a layer is kept only while a gc root needs its manifest, and roots keep their blobs),
/// else each is checked and one gc removed is imported from git again.
fn restore_missing(
    store: &Store,
    repo: &gix::Repository,
    manifest: &Manifest,
    blobs: &[(vrift_common::hash::Hash, gix::ObjectId)],
) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use crate::projection::overlay::layer::{self, Flavor};
        let uid = nix::unistd::geteuid().as_raw();
        if layer::path_of(store, manifest, Flavor::for_uid(uid), uid).is_dir() {
            return Ok(());
        }
    }
    // (Off Linux there are no metadata layers: each blob is checked.)
    #[cfg(not(target_os = "linux"))]
    let _ = manifest;
    for (hash, oid) in blobs {
        if !store.contains(hash) {
            let blob = repo.find_blob(*oid)?;
            store.insert_bytes(&blob.data)?;
        }
    }
    Ok(())
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// `path` lies strictly below directory `dir`.
pub fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() && !path.is_empty()
        || path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Every entry's parent directories exist.
fn add_parents(entries: &mut BTreeMap<RelPath, Entry>, time_ns: i64) {
    let mut missing = Vec::new();
    for p in entries.keys() {
        let mut r = p.as_slice();
        while let Some(i) = r.iter().rposition(|&b| b == b'/') {
            r = &r[..i];
            if !entries.contains_key(r) {
                missing.push(r.to_vec());
            }
        }
    }
    for m in missing {
        entries
            .entry(m)
            .or_insert_with(|| Entry::dir(0o755, time_ns));
    }
}
