//! Run results that could not be applied in full, kept in the store until the user applies
//! or discards them: `<store>/unapplied/<id>/` holds `result.manifest` (the run's result),
//! `base.manifest` (what the run started from) and `kept.json` (where the result goes and
//! why it was kept). Both manifests are gc roots, so nothing they need is collected. Each
//! result has its own id: a later one never replaces an earlier one.
//!
//! Kept are: a run whose write-back met paths changed on disk meanwhile (conflicts), and a
//! run (or a recovered one) whose write-back failed (unwritable destination, full disk,
//! vanished path, a name too long). `vrift runs` lists them, `vrift runs apply ID` applies
//! one again, `vrift runs discard ID` drops it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vrift_common::manifest::{display_path, Manifest, RelPath};
use vrift_common::store::Store;

use super::destination::Destination;
use crate::rundir::write_atomic;

/// The store directory of kept results.
pub const DIR: &str = "unapplied";
pub const RESULT: &str = "result.manifest";
pub const BASE: &str = "base.manifest";
pub const INFO: &str = "kept.json";

/// `kept.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Kept {
    pub destination: Destination,
    /// Why it was kept, for `vrift runs`.
    pub reason: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// One kept result, found on disk.
pub struct Entry {
    pub id: String,
    pub dir: PathBuf,
    pub kept: Result<Kept, String>,
}

/// Keep `new` (a run that started from `before`) with `reason`; returns its id.
pub fn keep(
    store: &Store,
    destination: &Destination,
    before: &Manifest,
    new: &Manifest,
    reason: String,
) -> Result<String> {
    let root = store.root().join(DIR);
    std::fs::create_dir_all(&root).with_context(|| format!("{}", root.display()))?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let hash = new.hash().to_hex();
    let mut n = 0u32;
    let (id, dir) = loop {
        let id = if n == 0 {
            format!("{created}-{}", &hash[..12])
        } else {
            format!("{created}-{}-{n}", &hash[..12])
        };
        let dir = root.join(&id);
        // Claims the name: an earlier result under it is never replaced.
        match std::fs::create_dir(&dir) {
            Ok(()) => break (id, dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
        }
    };
    let base = dir.join(BASE);
    before.save_atomic(&base)?;
    store.register_root(&base)?;
    let result = dir.join(RESULT);
    new.save_atomic(&result)?;
    store.register_root(&result)?;
    let kept = Kept {
        destination: destination.clone(),
        reason,
        created,
    };
    write_atomic(&dir.join(INFO), &serde_json::to_vec_pretty(&kept)?)?;
    Ok(id)
}

/// Keep a run whose write-back met paths changed on disk, and say so.
pub fn keep_conflicts(
    store: &Store,
    destination: &Destination,
    before: &Manifest,
    new: &Manifest,
    conflicts: &[RelPath],
) -> Result<String> {
    let list = conflict_list(conflicts);
    let id = keep(
        store,
        destination,
        before,
        new,
        format!("changed on disk during the run: {list}"),
    )?;
    eprintln!(
        "vrift: {} path(s) changed on disk during the run were left as they are: {list}",
        conflicts.len()
    );
    tell_kept(store, &id);
    Ok(id)
}

/// The lines that tell the user where a kept result is and what to do with it.
pub fn tell_kept(store: &Store, id: &str) {
    let dir = store.root().join(DIR).join(id);
    eprintln!(
        "vrift: the run's full result is kept as run {id} (see what it changed with `vrift manifest diff {} {}`); \
         `vrift runs apply {id}` applies it, `vrift runs discard {id}` drops it",
        dir.join(BASE).display(),
        dir.join(RESULT).display()
    );
}

/// Paths for a message, escaped as `vrift manifest show` escapes them (a newline or an odd
/// byte in a name never breaks the line).
pub fn conflict_list(paths: &[RelPath]) -> String {
    paths
        .iter()
        .map(|p| display_path(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every kept result, sorted by id.
pub fn list(store: &Store) -> Result<Vec<Entry>> {
    let root = store.root().join(DIR);
    let listing = match std::fs::read_dir(&root) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}", root.display())),
    };
    let mut out = Vec::new();
    for e in listing {
        let e = e.with_context(|| format!("{}", root.display()))?;
        let dir = e.path();
        if !dir.is_dir() {
            continue;
        }
        let kept = std::fs::read(dir.join(INFO))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Kept>(&b).map_err(|e| e.to_string()));
        out.push(Entry {
            id: e.file_name().to_string_lossy().into_owned(),
            dir,
            kept,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The kept result `id`, if there is one.
pub fn find(store: &Store, id: &str) -> Result<Option<Entry>> {
    Ok(list(store)?.into_iter().find(|e| e.id == id))
}

/// Drop a kept result: its roots released, its directory removed.
pub fn discard(store: &Store, entry: &Entry) -> Result<()> {
    for name in [RESULT, BASE] {
        store.unregister_root(&entry.dir.join(name))?;
    }
    std::fs::remove_dir_all(&entry.dir).with_context(|| format!("{}", entry.dir.display()))
}

/// Load a kept result's manifests and record.
pub fn load(entry: &Entry) -> Result<(Kept, Manifest, Manifest)> {
    let kept = match &entry.kept {
        Ok(k) => k.clone(),
        Err(e) => bail!("{}: {e}", entry.dir.join(INFO).display()),
    };
    let base = Manifest::load(&entry.dir.join(BASE))?;
    let result = Manifest::load(&entry.dir.join(RESULT))?;
    Ok((kept, base, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrift_common::hash::Hash;
    use vrift_common::manifest::{Entry, EntryKind};

    fn manifest(store: &Store, content: &[u8]) -> Manifest {
        let ins = store.insert_bytes(content).unwrap();
        Manifest::from_entries([(
            b"f".to_vec(),
            Entry {
                kind: EntryKind::File,
                hash: ins.hash,
                size: ins.size,
                mode: 0o644,
                mtime_ns: 0,
                target: Vec::new(),
                meta: Default::default(),
            },
        )])
    }

    #[test]
    fn each_result_is_kept_under_its_own_id_and_discarded_alone() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let before = manifest(&store, b"before");
        let new = manifest(&store, b"after");
        let dest = Destination::Project {
            dir: d.path().join("proj"),
            has_manifest: false,
        };
        // The same result twice in the same second: two ids, neither replaced.
        let a = keep(&store, &dest, &before, &new, "one".into()).unwrap();
        let b = keep(&store, &dest, &before, &new, "two".into()).unwrap();
        assert_ne!(a, b);
        let all = list(&store).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kept.as_ref().unwrap().reason, "one");
        // Both manifests of each are gc roots.
        assert_eq!(store.roots().unwrap().len(), 4);
        let entry = find(&store, &a).unwrap().unwrap();
        let (kept, base, result) = load(&entry).unwrap();
        assert_eq!(kept.reason, "one");
        assert_eq!((base.hash(), result.hash()), (before.hash(), new.hash()));
        discard(&store, &entry).unwrap();
        assert!(find(&store, &a).unwrap().is_none());
        assert!(find(&store, &b).unwrap().is_some());
        assert_eq!(store.roots().unwrap().len(), 2);
        assert!(store.contains(&Hash::of(b"after")));
    }

    #[test]
    fn conflict_lists_escape_odd_bytes() {
        assert_eq!(
            conflict_list(&[b"a\nb".to_vec(), b"c".to_vec()]),
            "a\\nb, c"
        );
    }
}
