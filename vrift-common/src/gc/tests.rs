use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::manifest::{Entry, EntryKind, Manifest};

struct World {
    dir: tempfile::TempDir,
    store: Store,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        World { dir, store }
    }

    /// Store `files`, save a manifest of them at `name`, register it; returns its path.
    fn project(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let mut entries = vec![(
            Vec::new(),
            Entry {
                kind: EntryKind::Dir,
                hash: Hash([0; 32]),
                size: 0,
                mode: 0o755,
                mtime_ns: 0,
                target: Vec::new(),
            },
        )];
        for (p, content) in files {
            let ins = self.store.insert_bytes(content).unwrap();
            entries.push((p.as_bytes().to_vec(), file_entry(ins.hash, ins.size)));
        }
        let path = self.dir.path().join(name);
        Manifest::from_entries(entries).save_atomic(&path).unwrap();
        self.store.register_root(&path).unwrap();
        path
    }
}

fn file_entry(hash: Hash, size: u64) -> Entry {
    Entry {
        kind: EntryKind::File,
        hash,
        size,
        mode: 0o644,
        mtime_ns: 0,
        target: Vec::new(),
    }
}

fn h(content: &[u8]) -> Hash {
    Hash::of(content)
}

fn excl(store: &Store) -> StoreLock {
    store.try_lock_exclusive().unwrap().expect("lock is free")
}

#[test]
fn plan_finds_exactly_the_unreferenced_blobs() {
    let w = World::new();
    w.project("a.manifest", &[("x", b"shared"), ("y", b"only a")]);
    w.project("b.manifest", &[("x", b"shared"), ("z", b"only b")]);
    w.store.insert_bytes(b"orphan!").unwrap();
    let plan = plan(&w.store).unwrap();
    assert_eq!(plan.unreferenced, vec![(h(b"orphan!"), 7)]);
    assert_eq!(plan.unreferenced_bytes(), 7);
    assert_eq!(plan.referenced_blobs, 3);
    assert_eq!(plan.live_roots.len(), 2);
    assert!(plan.stale_roots.is_empty() && plan.missing_blobs.is_empty());
    // Planning deletes nothing.
    assert!(w.store.contains(&h(b"orphan!")));
}

#[test]
fn execute_deletes_exactly_the_garbage() {
    let w = World::new();
    w.project("a.manifest", &[("x", b"keep me"), ("d/y", b"and me")]);
    for junk in [&b"junk 1"[..], b"junk 2", b""] {
        w.store.insert_bytes(junk).unwrap();
    }
    fs::write(w.store.root().join("tmp/123-0-0.blob"), b"half").unwrap();
    let before = plan(&w.store).unwrap();
    assert_eq!(before.unreferenced.len(), 3);
    assert_eq!(before.tmp_leftovers.len(), 1);

    let lock = excl(&w.store);
    let done = execute(&w.store, &lock).unwrap();
    assert_eq!(done.unreferenced, before.unreferenced);
    let left: Vec<Hash> = w
        .store
        .list_blobs()
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    let mut want = vec![h(b"keep me"), h(b"and me")];
    want.sort();
    assert_eq!(left, want);
    assert!(w.store.verify_blob(&h(b"keep me")).unwrap());
    assert!(w.store.tmp_leftovers().unwrap().is_empty());
    // A second run finds nothing.
    assert!(execute(&w.store, &lock).unwrap().unreferenced.is_empty());
}

#[test]
fn execute_needs_the_exclusive_lock() {
    let w = World::new();
    w.store.insert_bytes(b"orphan").unwrap();
    let shared = w.store.lock_shared().unwrap();
    assert!(matches!(
        execute(&w.store, &shared),
        Err(GcError::NotExclusive)
    ));
    assert!(w.store.contains(&h(b"orphan")));
}

#[test]
fn a_deleted_manifest_no_longer_protects_its_blobs() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"shared"), ("y", b"only a")]);
    w.project("b.manifest", &[("x", b"shared")]);
    fs::remove_file(&a).unwrap();
    let p = plan(&w.store).unwrap();
    assert_eq!(p.unreferenced, vec![(h(b"only a"), 6)]);
    assert_eq!(p.stale_roots.len(), 1);
    assert_eq!(p.stale_roots[0].manifest.file_name(), a.file_name());
    let lock = excl(&w.store);
    execute(&w.store, &lock).unwrap();
    assert_eq!(w.store.roots().unwrap().len(), 1, "stale root file removed");
    assert!(w.store.contains(&h(b"shared")));
    assert!(!w.store.contains(&h(b"only a")));
}

#[test]
fn a_corrupt_root_makes_gc_refuse() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"precious")]);
    w.store.insert_bytes(b"orphan").unwrap();
    let bytes = fs::read(&a).unwrap();
    fs::write(&a, &bytes[..bytes.len() - 5]).unwrap();
    let err = plan(&w.store).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GcError::BrokenRoot { .. }));
    assert!(msg.contains("a.manifest"), "{msg}");
    assert!(msg.contains("roots/"), "{msg}");
    let lock = excl(&w.store);
    assert!(execute(&w.store, &lock).is_err());
    assert!(w.store.contains(&h(b"precious")));
    assert!(w.store.contains(&h(b"orphan")));
    assert_eq!(w.store.roots().unwrap().len(), 1);
}

#[test]
fn an_unreadable_root_path_makes_gc_refuse() {
    let w = World::new();
    // The manifest path is a directory: it exists but is no manifest.
    let d = w.dir.path().join("dir.manifest");
    fs::create_dir(&d).unwrap();
    w.store.register_root(&d).unwrap();
    assert!(matches!(
        plan(&w.store),
        Err(GcError::BrokenRoot { manifest, .. }) if manifest.ends_with("dir.manifest")
    ));
}

#[test]
fn referenced_but_missing_blobs_are_reported() {
    let w = World::new();
    let path = w.dir.path().join("m.manifest");
    Manifest::from_entries([(b"ghost".to_vec(), file_entry(h(b"ghost"), 5))])
        .save_atomic(&path)
        .unwrap();
    w.store.register_root(&path).unwrap();
    assert_eq!(plan(&w.store).unwrap().missing_blobs, vec![h(b"ghost")]);
}

#[test]
fn gc_cannot_delete_blobs_of_an_ingest_in_progress() {
    let w = World::new();
    // An ingest holds the shared lock and has stored a blob no manifest names yet.
    let ingest = w.store.lock_shared().unwrap();
    w.store.insert_bytes(b"fresh").unwrap();
    // gc sees it as garbage, but cannot get the lock to delete it.
    assert_eq!(plan(&w.store).unwrap().unreferenced.len(), 1);
    assert!(w.store.try_lock_exclusive().unwrap().is_none());
    // The ingest finishes: manifest saved and registered, then the lock released.
    let path = w.dir.path().join("p.manifest");
    Manifest::from_entries([(b"f".to_vec(), file_entry(h(b"fresh"), 5))])
        .save_atomic(&path)
        .unwrap();
    w.store.register_root(&path).unwrap();
    drop(ingest);
    let lock = excl(&w.store);
    assert!(execute(&w.store, &lock).unwrap().unreferenced.is_empty());
    assert!(w.store.contains(&h(b"fresh")));
}

#[test]
fn usage_counts_logical_and_stored_bytes() {
    let w = World::new();
    assert_eq!(
        usage(&w.store).unwrap(),
        Usage {
            manifests: 0,
            stale_roots: 0,
            broken_roots: vec![],
            logical_bytes: 0,
            blobs: 0,
            stored_bytes: 0,
            unreferenced_blobs: 0,
            unreferenced_bytes: 0,
        }
    );
    // 100 + 100 + 10 logical in a, 100 + 50 in b; stored: 100 + 10 + 50 + orphan 3.
    let hundred = [b'h'; 100];
    w.project(
        "a.manifest",
        &[("x", &hundred), ("y", &hundred), ("z", &[b'z'; 10])],
    );
    w.project("b.manifest", &[("x", &hundred), ("w", &[b'w'; 50])]);
    w.store.insert_bytes(b"abc").unwrap();
    let u = usage(&w.store).unwrap();
    assert_eq!(u.manifests, 2);
    assert_eq!(u.logical_bytes, 360);
    assert_eq!(u.blobs, 4);
    assert_eq!(u.stored_bytes, 163);
    assert_eq!(u.saved_bytes(), 197);
    assert!((u.saved_percent() - 197.0 * 100.0 / 360.0).abs() < 1e-9);
    assert_eq!((u.unreferenced_blobs, u.unreferenced_bytes), (1, 3));

    // A broken root is reported, not fatal, and its bytes are not counted.
    let c = w.dir.path().join("c.manifest");
    fs::write(&c, b"garbage").unwrap();
    w.store.register_root(Path::new(&c)).unwrap();
    let u = usage(&w.store).unwrap();
    assert_eq!(u.manifests, 2);
    assert_eq!(u.broken_roots.len(), 1);
    assert!(u.broken_roots[0].1.contains("c.manifest"));
}

#[test]
fn an_interrupted_runs_base_manifest_protects_its_blobs() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path()).unwrap();
    let kept = store
        .insert_bytes(b"only an interrupted run knows me")
        .unwrap();
    let m = Manifest::from_entries([(
        b"f".to_vec(),
        crate::manifest::Entry {
            kind: EntryKind::File,
            hash: kept.hash,
            size: kept.size,
            mode: 0o644,
            mtime_ns: 0,
            target: Vec::new(),
        },
    )]);
    let run = t.path().join(RUNS_DIR).join("123-456");
    std::fs::create_dir_all(&run).unwrap();
    m.save_atomic(&run.join(RUN_BASE_MANIFEST)).unwrap();
    let p = plan(&store).unwrap();
    assert!(p.unreferenced.iter().all(|(h, _)| *h != kept.hash));
    std::fs::remove_dir_all(&run).unwrap();
    let p = plan(&store).unwrap();
    assert!(p.unreferenced.iter().any(|(h, _)| *h == kept.hash));
}
