use std::collections::HashSet;
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
                meta: Default::default(),
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
        meta: Default::default(),
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
    // Three file blobs and the two manifests' pinned copies.
    assert_eq!(plan.referenced_blobs, 5);
    assert_eq!(plan.live_roots.len(), 2);
    assert!(plan.moved_roots.is_empty() && plan.missing_blobs.is_empty());
    // Planning deletes nothing.
    assert!(w.store.contains(&h(b"orphan!")));
}

#[test]
fn execute_deletes_exactly_the_garbage() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"keep me"), ("d/y", b"and me")]);
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
    let mut want = vec![h(b"keep me"), h(b"and me"), h(&fs::read(&a).unwrap())];
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

/// Every blob `gc --delete` leaves, as a set.
fn blobs_left(store: &Store) -> HashSet<Hash> {
    store
        .list_blobs()
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

#[test]
fn a_deleted_manifest_keeps_its_blobs_until_forgotten() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"shared"), ("y", b"only a")]);
    w.project("b.manifest", &[("x", b"shared")]);
    w.store.insert_bytes(b"orphan").unwrap();
    fs::remove_file(&a).unwrap();
    let p = plan(&w.store).unwrap();
    assert_eq!(p.unreferenced, vec![(h(b"orphan"), 6)]);
    assert_eq!(p.moved_roots.len(), 1);
    assert_eq!(p.moved_roots[0].root.manifest.file_name(), a.file_name());
    assert_eq!(p.moved_roots[0].blobs, 2);
    let lock = excl(&w.store);
    execute(&w.store, &lock).unwrap();
    assert_eq!(w.store.roots().unwrap().len(), 2, "the moved root stays");
    assert!(w.store.contains(&h(b"only a")));
    assert!(!w.store.contains(&h(b"orphan")));
    drop(lock);

    // Forgetting it releases exactly what nothing else needs.
    let gone = forget(&w.store, &a).unwrap();
    assert_eq!(gone.len(), 1);
    let lock = excl(&w.store);
    let done = execute(&w.store, &lock).unwrap();
    let released: HashSet<Hash> = done.unreferenced.iter().map(|(h, _)| *h).collect();
    assert!(released.contains(&h(b"only a")));
    assert!(!released.contains(&h(b"shared")));
    assert!(w.store.contains(&h(b"shared")));
    assert!(!w.store.contains(&h(b"only a")));
    assert_eq!(w.store.roots().unwrap().len(), 1);
}

#[test]
fn a_moved_manifest_still_protects_and_runs_again_where_it_was() {
    let w = World::new();
    let a = w.project("a.manifest", &[("f", b"made only in a run")]);
    let moved = w.dir.path().join("elsewhere.manifest");
    fs::rename(&a, &moved).unwrap();
    let lock = excl(&w.store);
    let done = execute(&w.store, &lock).unwrap();
    assert!(done.unreferenced.is_empty());
    assert_eq!(done.moved_roots.len(), 1);
    // Nothing registered the new place yet, so no "same as" hint.
    assert!(done.moved_roots[0].same_as.is_empty());
    drop(lock);
    // Moved back: the manifest's every blob is still there.
    fs::rename(&moved, &a).unwrap();
    let m = Manifest::load(&a).unwrap();
    for (_, e) in m.iter().filter(|(_, e)| e.kind == EntryKind::File) {
        assert!(w.store.verify_blob(&e.hash).unwrap());
    }
    assert!(plan(&w.store).unwrap().moved_roots.is_empty());
}

#[test]
fn a_renamed_folder_keeps_its_manifests_blobs_and_names_the_new_place() {
    let w = World::new();
    let dir = w.dir.path().join("proj");
    fs::create_dir(&dir).unwrap();
    let m = w.project("proj/vrift.manifest", &[("f", b"in the project")]);
    let renamed = w.dir.path().join("proj2");
    fs::rename(&dir, &renamed).unwrap();
    // The manifest at its new place is registered (as the next run there would).
    w.store
        .register_root(&renamed.join("vrift.manifest"))
        .unwrap();
    let p = plan(&w.store).unwrap();
    assert_eq!(p.moved_roots.len(), 1);
    assert!(p.moved_roots[0]
        .root
        .manifest
        .ends_with("proj/vrift.manifest"));
    assert_eq!(p.moved_roots[0].same_as.len(), 1);
    assert!(p.moved_roots[0].same_as[0].ends_with("proj2/vrift.manifest"));
    assert!(p.unreferenced.is_empty());
    // Forgetting the old name by the path it had (its folder no longer exists).
    assert_eq!(forget(&w.store, &m).unwrap().len(), 1);
    let lock = excl(&w.store);
    execute(&w.store, &lock).unwrap();
    assert!(
        w.store.contains(&h(b"in the project")),
        "the new root keeps it"
    );
}

#[test]
fn two_roots_sharing_blobs_release_them_only_when_both_are_forgotten() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"shared by both")]);
    let b = w.project("b.manifest", &[("x", b"shared by both"), ("y", b"b")]);
    fs::remove_file(&a).unwrap();
    fs::remove_file(&b).unwrap();
    forget(&w.store, &a).unwrap();
    let lock = excl(&w.store);
    execute(&w.store, &lock).unwrap();
    assert!(w.store.contains(&h(b"shared by both")));
    drop(lock);
    forget(&w.store, &b).unwrap();
    let lock = excl(&w.store);
    execute(&w.store, &lock).unwrap();
    assert!(blobs_left(&w.store).is_empty());
}

#[test]
fn forgetting_a_path_that_is_no_root_is_an_error_naming_it() {
    let w = World::new();
    w.project("a.manifest", &[("x", b"x")]);
    let nope = w.dir.path().join("nope.manifest");
    let err = forget(&w.store, &nope).unwrap_err();
    assert!(matches!(err, GcError::NotARoot { .. }));
    assert!(err.to_string().contains("nope.manifest"), "{err}");
    assert_eq!(w.store.roots().unwrap().len(), 1);
}

#[test]
fn a_replaced_manifest_protects_both_versions_until_registered_again() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"version one")]);
    // Another tool replaces the file without telling the registry.
    let ins = w.store.insert_bytes(b"version two").unwrap();
    Manifest::from_entries([(b"x".to_vec(), file_entry(ins.hash, ins.size))])
        .save_atomic(&a)
        .unwrap();
    assert!(plan(&w.store).unwrap().unreferenced.is_empty());
    // Registered again (as vrift does after it saves): the old version is released.
    w.store.register_root(&a).unwrap();
    let unref: Vec<Hash> = plan(&w.store)
        .unwrap()
        .unreferenced
        .iter()
        .map(|(h, _)| *h)
        .collect();
    assert!(unref.contains(&h(b"version one")));
    assert!(!unref.contains(&h(b"version two")));
}

#[test]
fn a_gone_manifest_with_a_lost_pin_or_no_pin_makes_gc_refuse() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"precious")]);
    let pin = w.store.roots().unwrap()[0].pinned.expect("pinned");
    assert_eq!(pin, h(&fs::read(&a).unwrap()));
    fs::remove_file(&a).unwrap();
    w.store.remove_blob(&pin).unwrap();
    let err = plan(&w.store).unwrap_err();
    assert!(matches!(
        err,
        GcError::BrokenRoot {
            problem: RootProblem::PinLost { .. },
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("a.manifest") && msg.contains("gc --forget"),
        "{msg}"
    );
    let lock = excl(&w.store);
    assert!(execute(&w.store, &lock).is_err());
    assert!(w.store.contains(&h(b"precious")));
    drop(lock);

    // A root in the older format (no pin) whose manifest is gone: refused the same way.
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"precious")]);
    let root = w.store.roots().unwrap().remove(0);
    let mut old = a
        .canonicalize()
        .unwrap()
        .into_os_string()
        .into_encoded_bytes();
    old.push(b'\n');
    fs::write(&root.file, &old).unwrap();
    assert_eq!(w.store.roots().unwrap()[0].pinned, None);
    fs::remove_file(&a).unwrap();
    assert!(matches!(
        plan(&w.store),
        Err(GcError::BrokenRoot {
            problem: RootProblem::Unpinned,
            ..
        })
    ));
    assert!(forget(&w.store, &a).is_ok());
    assert!(plan(&w.store).is_ok());
}

#[test]
fn execute_pins_roots_of_an_older_vrift() {
    let w = World::new();
    let a = w.project("a.manifest", &[("x", b"old root")]);
    let root = w.store.roots().unwrap().remove(0);
    let mut old = a
        .canonicalize()
        .unwrap()
        .into_os_string()
        .into_encoded_bytes();
    old.push(b'\n');
    fs::write(&root.file, &old).unwrap();
    let lock = excl(&w.store);
    execute(&w.store, &lock).unwrap();
    drop(lock);
    let pinned = w.store.roots().unwrap()[0].pinned;
    assert_eq!(pinned, Some(h(&fs::read(&a).unwrap())));
    fs::remove_file(&a).unwrap();
    let lock = excl(&w.store);
    assert!(execute(&w.store, &lock).unwrap().unreferenced.is_empty());
    assert!(w.store.contains(&h(b"old root")));
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
    assert!(matches!(
        err,
        GcError::BrokenRoot {
            problem: RootProblem::Unreadable(_),
            ..
        }
    ));
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
            moved_roots: 0,
            broken_roots: vec![],
            logical_bytes: 0,
            blobs: 0,
            stored_bytes: 0,
            unreferenced_blobs: 0,
            unreferenced_bytes: 0,
            pinned_bytes: 0,
        }
    );
    // 100 + 100 + 10 logical in a, 100 + 50 in b; stored: 100 + 10 + 50 + orphan 3.
    let hundred = [b'h'; 100];
    let a = w.project(
        "a.manifest",
        &[("x", &hundred), ("y", &hundred), ("z", &[b'z'; 10])],
    );
    let b = w.project("b.manifest", &[("x", &hundred), ("w", &[b'w'; 50])]);
    // The manifests' pinned copies are blobs too.
    let pins = fs::metadata(&a).unwrap().len() + fs::metadata(&b).unwrap().len();
    w.store.insert_bytes(b"abc").unwrap();
    let u = usage(&w.store).unwrap();
    assert_eq!(u.manifests, 2);
    assert_eq!(u.logical_bytes, 360);
    assert_eq!(u.blobs, 6);
    assert_eq!(u.stored_bytes, 163 + pins);
    assert_eq!(u.pinned_bytes, pins);
    assert_eq!(u.saved_bytes(), 200);
    assert!((u.saved_percent() - 200.0 * 100.0 / 360.0).abs() < 1e-9);
    assert_eq!((u.unreferenced_blobs, u.unreferenced_bytes), (1, 3));

    // Garbage far bigger than the trees: the saving is what sharing saves, never negative.
    w.store.insert_bytes(&[b'g'; 10_000]).unwrap();
    let u = usage(&w.store).unwrap();
    assert_eq!(u.saved_bytes(), 200);
    assert_eq!(u.unreferenced_bytes, 10_003);

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
            meta: Default::default(),
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
