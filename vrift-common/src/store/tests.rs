use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Barrier;

use super::*;

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

fn tmp_is_empty(store: &Store) -> bool {
    store.tmp_leftovers().unwrap().is_empty()
}

/// Content bigger than the in-memory threshold, so the streaming path runs.
fn big_content() -> Vec<u8> {
    (0..(3 << 20) + 17).map(|i: u32| (i % 251) as u8).collect()
}

#[test]
fn open_creates_private_layout() {
    let (_d, store) = new_store();
    let mode = fs::metadata(store.root()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    for sub in ["blobs", "tmp", "roots"] {
        assert!(store.root().join(sub).is_dir(), "{sub} missing");
    }
    // Opening again is fine and keeps everything.
    let again = Store::open(store.root()).unwrap();
    assert_eq!(again.root(), store.root());
}

#[test]
fn default_root_follows_vrift_home_then_xdg_then_home() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let all = [
        ("VRIFT_HOME", "/s/vh"),
        ("XDG_DATA_HOME", "/x"),
        ("HOME", "/h"),
    ];
    let all: &'static [_] = Box::leak(Box::new(all));
    assert_eq!(default_root_from(env(all)).unwrap(), Path::new("/s/vh"));
    assert_eq!(
        default_root_from(env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")])).unwrap(),
        Path::new("/x/vrift")
    );
    // A relative XDG_DATA_HOME is invalid per the spec and ignored; empty values are unset.
    assert_eq!(
        default_root_from(env(&[
            ("XDG_DATA_HOME", "rel"),
            ("VRIFT_HOME", ""),
            ("HOME", "/h")
        ]))
        .unwrap(),
        Path::new("/h/.local/share/vrift")
    );
    assert!(matches!(
        default_root_from(env(&[])),
        Err(StoreError::NoHome)
    ));
    let rel = default_root_from(env(&[("VRIFT_HOME", "relstore")])).unwrap();
    assert!(rel.is_absolute() && rel.ends_with("relstore"));
}

#[test]
fn insert_bytes_writes_sharded_read_only_blob() {
    let (_d, store) = new_store();
    let ins = store.insert_bytes(b"hello world").unwrap();
    assert_eq!(ins.hash, Hash::of(b"hello world"));
    assert_eq!(ins.size, 11);
    assert!(ins.newly_stored);
    let hex = ins.hash.to_hex();
    let path = store.blob_path(&ins.hash);
    assert_eq!(
        path,
        store.root().join("blobs").join(&hex[..2]).join(&hex[2..])
    );
    assert_eq!(fs::read(&path).unwrap(), b"hello world");
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, BLOB_MODE);
    assert!(store.contains(&ins.hash));
    assert_eq!(store.blob_size(&ins.hash).unwrap(), 11);
    assert!(tmp_is_empty(&store));
}

#[test]
fn reinserting_never_rewrites_the_blob() {
    let (d, store) = new_store();
    let first = store.insert_bytes(b"same").unwrap();
    let path = store.blob_path(&first.hash);
    let before = fs::metadata(&path).unwrap();
    let again = store.insert_bytes(b"same").unwrap();
    assert!(!again.newly_stored);
    assert_eq!(again.hash, first.hash);
    // Same content from a file, both the small and the streaming path.
    let f = d.path().join("f");
    fs::write(&f, b"same").unwrap();
    assert!(!store.insert_file(&f).unwrap().newly_stored);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(before.ino(), after.ino());
    assert_eq!(before.mtime_nsec(), after.mtime_nsec());
    assert_eq!(before.ctime_nsec(), after.ctime_nsec());

    let big = d.path().join("big");
    fs::write(&big, big_content()).unwrap();
    let b1 = store.insert_file(&big).unwrap();
    let ino = fs::metadata(store.blob_path(&b1.hash)).unwrap().ino();
    let b2 = store.insert_file(&big).unwrap();
    assert!(b1.newly_stored && !b2.newly_stored);
    assert_eq!(fs::metadata(store.blob_path(&b1.hash)).unwrap().ino(), ino);
    assert!(tmp_is_empty(&store));
}

#[test]
fn insert_file_matches_insert_bytes_for_small_and_large_files() {
    let (d, store) = new_store();
    for content in [Vec::new(), b"x".to_vec(), big_content()] {
        let f = d.path().join("f");
        fs::write(&f, &content).unwrap();
        let ins = store.insert_file(&f).unwrap();
        assert_eq!(ins.hash, Hash::of(&content));
        assert_eq!(ins.size, content.len() as u64);
        assert_eq!(fs::read(store.blob_path(&ins.hash)).unwrap(), content);
        let mode = fs::metadata(store.blob_path(&ins.hash))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, BLOB_MODE);
        assert!(store.verify_blob(&ins.hash).unwrap());
    }
    assert!(tmp_is_empty(&store));
}

#[test]
fn blobs_are_read_only_for_their_owner() {
    let (_d, store) = new_store();
    let ins = store.insert_bytes(b"immutable").unwrap();
    let path = store.blob_path(&ins.hash);
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "no write bit at all");
    assert_eq!(mode & 0o111, 0o111, "exec bits for the link farm");
    // root ignores permission bits, so only a normal user sees the refusal.
    if fs::OpenOptions::new().write(true).open(&path).is_ok() {
        eprintln!("running as root: write-permission refusal not observable");
    }
}

#[test]
fn concurrent_inserts_of_the_same_content_are_safe() {
    let (d, store) = new_store();
    let big = d.path().join("big");
    fs::write(&big, big_content()).unwrap();
    const N: usize = 8;
    for source in ["bytes", "file"] {
        let barrier = Barrier::new(N);
        let results: Vec<Inserted> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..N)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        if source == "bytes" {
                            store.insert_bytes(b"raced content").unwrap()
                        } else {
                            store.insert_file(&big).unwrap()
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let newly = results.iter().filter(|r| r.newly_stored).count();
        assert_eq!(newly, 1, "{source}: exactly one insert writes the blob");
        assert!(results.iter().all(|r| r.hash == results[0].hash));
        assert!(store.verify_blob(&results[0].hash).unwrap());
    }
    assert_eq!(store.list_blobs().unwrap().len(), 2);
    assert!(tmp_is_empty(&store));
}

#[test]
fn a_file_that_changes_while_read_is_refused() {
    let (d, store) = new_store();
    for content in [b"short".to_vec(), big_content()] {
        let f = d.path().join("changing");
        fs::write(&f, &content).unwrap();
        let mut append = || {
            let mut h = fs::OpenOptions::new().append(true).open(&f).unwrap();
            h.write_all(b"more").unwrap();
        };
        let err = store.insert_file_observed(&f, &mut append).unwrap_err();
        match &err {
            StoreError::ChangedDuringIngest { path } => assert_eq!(path, &f),
            other => panic!("wanted ChangedDuringIngest, got {other:?}"),
        }
        assert!(err.to_string().contains("changing"));
        // Nothing was stored, nothing left behind.
        assert!(!store.contains(&Hash::of(&content)));
        assert!(store.list_blobs().unwrap().is_empty());
        assert!(tmp_is_empty(&store));
    }
}

#[test]
fn insert_file_refuses_what_is_not_a_regular_file() {
    let (d, store) = new_store();
    let target = d.path().join("t");
    fs::write(&target, b"t").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for p in [d.path().to_path_buf(), link, d.path().join("missing")] {
        let err = store.insert_file(&p).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { path, .. } if *path == p),
            "{err}"
        );
    }
    assert!(store.list_blobs().unwrap().is_empty());
}

#[test]
fn a_torn_blob_is_detected_and_repaired_by_reinserting() {
    let (_d, store) = new_store();
    let ins = store.insert_bytes(b"precious data").unwrap();
    let path = store.blob_path(&ins.hash);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"").unwrap(); // what a crash before writeback leaves
    assert!(!store.verify_blob(&ins.hash).unwrap());
    let again = store.insert_bytes(b"precious data").unwrap();
    assert!(again.newly_stored);
    assert!(store.verify_blob(&ins.hash).unwrap());
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        BLOB_MODE
    );
}

#[test]
fn verify_blob_reports_missing_and_corrupt() {
    let (_d, store) = new_store();
    let missing = Hash::of(b"never stored");
    assert!(store.verify_blob(&missing).unwrap_err().is_not_found());
    let ins = store.insert_bytes(b"abc").unwrap();
    assert!(store.verify_blob(&ins.hash).unwrap());
    let path = store.blob_path(&ins.hash);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"abd").unwrap();
    assert!(!store.verify_blob(&ins.hash).unwrap());
}

#[test]
fn list_blobs_lists_exactly_the_blobs() {
    let (_d, store) = new_store();
    let a = store.insert_bytes(b"a").unwrap();
    let b = store.insert_bytes(b"bb").unwrap();
    // Strays are ignored, never reported as blobs.
    fs::write(store.root().join("blobs/README"), b"x").unwrap();
    fs::create_dir_all(store.root().join("blobs/zz")).unwrap();
    fs::write(store.root().join("blobs/zz/short"), b"x").unwrap();
    let mut want = vec![(a.hash, 1), (b.hash, 2)];
    want.sort();
    assert_eq!(store.list_blobs().unwrap(), want);
}

#[test]
fn exclusive_lock_waits_for_shared_holders() {
    let (_d, store) = new_store();
    let shared = store.lock_shared().unwrap();
    assert!(!shared.is_exclusive());
    // A second shared holder is fine, an exclusive one is not.
    let shared2 = store
        .try_lock_shared()
        .unwrap()
        .expect("shared locks coexist");
    assert!(store.try_lock_exclusive().unwrap().is_none());
    drop(shared);
    assert!(store.try_lock_exclusive().unwrap().is_none());
    drop(shared2);
    let excl = store.try_lock_exclusive().unwrap().expect("free now");
    assert!(excl.is_exclusive());
    assert!(store.try_lock_shared().unwrap().is_none());
    assert!(store.try_lock_exclusive().unwrap().is_none());
    drop(excl);
    assert!(store.try_lock_shared().unwrap().is_some());
}

#[test]
fn roots_registry_round_trip() {
    let (d, store) = new_store();
    let m = d.path().join("proj/vrift.manifest");
    fs::create_dir_all(m.parent().unwrap()).unwrap();
    store.register_root(&m).unwrap();
    store.register_root(&m).unwrap(); // idempotent
    let roots = store.roots().unwrap();
    assert_eq!(roots.len(), 1);
    let canon = fs::canonicalize(d.path())
        .unwrap()
        .join("proj/vrift.manifest");
    assert_eq!(roots[0].manifest, canon);
    assert_eq!(
        roots[0].file.file_name().unwrap().to_str().unwrap(),
        Hash::of(canon.as_os_str().as_encoded_bytes()).to_hex()
    );
    // A path reached through a symlinked directory is the same root.
    let alias = d.path().join("alias");
    std::os::unix::fs::symlink(d.path().join("proj"), &alias).unwrap();
    store.register_root(&alias.join("vrift.manifest")).unwrap();
    assert_eq!(store.roots().unwrap().len(), 1);

    // Odd bytes in a path survive.
    use std::os::unix::ffi::OsStrExt;
    let odd = d
        .path()
        .join(std::ffi::OsStr::from_bytes(b"we\xffird\nname.manifest"));
    store.register_root(&odd).unwrap();
    let roots = store.roots().unwrap();
    assert_eq!(roots.len(), 2);
    assert!(roots
        .iter()
        .any(|r| r.manifest.file_name() == odd.file_name()));

    store.unregister_root(&m).unwrap();
    assert_eq!(store.roots().unwrap().len(), 1);
    store.remove_root(&store.roots().unwrap()[0]).unwrap();
    assert!(store.roots().unwrap().is_empty());
}

/// Not a check but a measurement: `cargo test --release -p vrift-common bench_insert -- --ignored
/// --nocapture`. Stores 20,000 (`BENCH_FILES`) small files and compares with `cp -r` of the tree; rounds
/// alternate so machine noise hits both, and the best of each is reported.
#[test]
#[ignore]
fn bench_insert_vs_cp() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let mut files = Vec::new();
    let n: u32 = std::env::var("BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for i in 0..n {
        let dir = src.join(format!("d{}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        let f = dir.join(format!("f{i}.js"));
        let len = 200 + (i as usize * 37) % 8000;
        fs::write(&f, format!("{i}").repeat(len / 5 + 1)).unwrap();
        files.push(f);
    }
    let best =
        |acc: &mut std::time::Duration, t: std::time::Instant| *acc = (*acc).min(t.elapsed());
    let (mut cp, mut one, mut two, mut again) = [std::time::Duration::MAX; 4].into();
    for round in 0..3 {
        let t = std::time::Instant::now();
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(d.path().join(format!("copy{round}")))
            .status()
            .unwrap();
        assert!(status.success());
        best(&mut cp, t);

        let store = Store::open(&d.path().join(format!("one{round}"))).unwrap();
        let t = std::time::Instant::now();
        for f in &files {
            store.insert_file(f).unwrap();
        }
        best(&mut one, t);

        let store = Store::open(&d.path().join(format!("two{round}"))).unwrap();
        let t = std::time::Instant::now();
        std::thread::scope(|s| {
            for part in files.chunks(files.len() / 2) {
                let store = &store;
                s.spawn(move || {
                    for f in part {
                        store.insert_file(f).unwrap();
                    }
                });
            }
        });
        best(&mut two, t);

        let t = std::time::Instant::now();
        for f in &files {
            assert!(!store.insert_file(f).unwrap().newly_stored);
        }
        best(&mut again, t);
    }
    eprintln!(
        "{n} files, best of 3: cp -r {cp:?}; first insert 1 thread {one:?}, 2 threads {two:?}; re-insert {again:?}"
    );
}

/// Overwrite a blob's bytes in place (as a bad disk or a stray `cp` over it would).
fn damage(store: &Store, hash: &Hash, bytes: &[u8]) {
    let path = store.blob_path(hash);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(BLOB_MODE)).unwrap();
}

#[test]
fn inserting_content_over_a_same_size_corrupt_blob_repairs_it() {
    let (d, store) = new_store();
    // Small files (compared in memory), from bytes and from a file.
    let ins = store.insert_bytes(b"the right bytes").unwrap();
    damage(&store, &ins.hash, b"the wrong bytes");
    assert_eq!(
        store.check_blob(&ins.hash).unwrap(),
        Some(BlobDamage::Corrupt)
    );
    let again = store.insert_bytes(b"the right bytes").unwrap();
    assert!(
        again.newly_stored,
        "a corrupt blob is not 'already present'"
    );
    assert_eq!(store.check_blob(&ins.hash).unwrap(), None);
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, ins.hash);
    assert_eq!(fs::read(&q[0].1).unwrap(), b"the wrong bytes");

    let f = d.path().join("f");
    fs::write(&f, b"the right bytes").unwrap();
    damage(&store, &ins.hash, b"THE RIGHT BYTES");
    assert!(store.insert_file(&f).unwrap().newly_stored);
    assert!(store.verify_blob(&ins.hash).unwrap());
    assert_eq!(
        store.quarantined().unwrap().len(),
        2,
        "each damaged copy kept"
    );

    // A large file (streamed, then re-hashed against the existing blob).
    let big = d.path().join("big");
    let content = big_content();
    fs::write(&big, &content).unwrap();
    let b = store.insert_file(&big).unwrap();
    let mut wrong = content.clone();
    wrong[12345] ^= 1;
    damage(&store, &b.hash, &wrong);
    assert!(store.insert_file(&big).unwrap().newly_stored);
    assert!(store.verify_blob(&b.hash).unwrap());
    assert!(tmp_is_empty(&store));
    // Whole blobs are still never rewritten.
    let ino = fs::metadata(store.blob_path(&b.hash)).unwrap().ino();
    assert!(!store.insert_file(&big).unwrap().newly_stored);
    assert_eq!(fs::metadata(store.blob_path(&b.hash)).unwrap().ino(), ino);
}

#[test]
fn quarantine_moves_a_blob_aside_and_repair_from_puts_it_back() {
    let (d, store) = new_store();
    let ins = store.insert_bytes(b"content").unwrap();
    damage(&store, &ins.hash, b"garbage");
    let to = store.quarantine_blob(&ins.hash).unwrap().expect("moved");
    assert!(to.starts_with(store.root().join(QUARANTINE_DIR)));
    assert!(
        !store.contains(&ins.hash),
        "a quarantined blob is served by nobody"
    );
    assert_eq!(store.quarantine_blob(&ins.hash).unwrap(), None);
    // A file with other content is no source; the right one is.
    let wrong = d.path().join("wrong");
    fs::write(&wrong, b"other").unwrap();
    assert!(!store.repair_from(&ins.hash, &wrong).unwrap());
    assert!(!store
        .repair_from(&ins.hash, &d.path().join("absent"))
        .unwrap());
    assert!(!store.contains(&ins.hash));
    let right = d.path().join("right");
    fs::write(&right, b"content").unwrap();
    assert!(store.repair_from(&ins.hash, &right).unwrap());
    assert!(store.verify_blob(&ins.hash).unwrap());
    assert_eq!(store.quarantined().unwrap().len(), 1);
}

#[test]
fn roots_pin_a_copy_of_their_manifest() {
    use crate::manifest::Manifest;
    let (d, store) = new_store();
    let m = d.path().join("m.manifest");
    Manifest::from_entries([]).save_atomic(&m).unwrap();
    store.register_root(&m).unwrap();
    let bytes = fs::read(&m).unwrap();
    let root = store.roots().unwrap().remove(0);
    assert_eq!(root.pinned, Some(Hash::of(&bytes)));
    assert!(store.verify_blob(&Hash::of(&bytes)).unwrap());
    // Not a manifest: registered, unpinned.
    let junk = d.path().join("junk.manifest");
    fs::write(&junk, b"junk").unwrap();
    store.register_root(&junk).unwrap();
    let roots = store.roots().unwrap();
    let j = roots
        .iter()
        .find(|r| r.manifest.ends_with("junk.manifest"))
        .unwrap();
    assert_eq!(j.pinned, None);
    // find_roots: by the registered path even after its directory is gone.
    let sub = d.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let s = sub.join("vrift.manifest");
    Manifest::from_entries([]).save_atomic(&s).unwrap();
    store.register_root(&s).unwrap();
    let registered = fs::canonicalize(&sub).unwrap().join("vrift.manifest");
    fs::remove_dir_all(&sub).unwrap();
    assert_eq!(store.find_roots(&registered).unwrap().len(), 1);
    assert!(store
        .find_roots(&d.path().join("other"))
        .unwrap()
        .is_empty());
}

#[test]
fn blob_writer_stores_only_the_named_content() {
    let (_d, store) = new_store();
    let good = big_content();
    let want = Hash::of(&good);
    let mut w = store.blob_writer(want).unwrap();
    for chunk in good.chunks(100_000) {
        w.write(chunk).unwrap();
    }
    assert_eq!(w.size(), good.len() as u64);
    match w.commit().unwrap() {
        Verified::Stored(ins) => assert!(ins.newly_stored && ins.hash == want),
        other => panic!("{other:?}"),
    }
    assert!(store.verify_blob(&want).unwrap());
    // Content that is not what its name says is refused and leaves nothing behind.
    let name = Hash::of(b"expected");
    let mut w = store.blob_writer(name).unwrap();
    w.write(b"something else").unwrap();
    match w.commit().unwrap() {
        Verified::Mismatch { actual, size } => {
            assert_eq!(actual, Hash::of(b"something else"));
            assert_eq!(size, 14);
        }
        other => panic!("{other:?}"),
    }
    assert!(!store.contains(&name));
    assert!(!store.contains(&Hash::of(b"something else")));
    // A writer dropped half-way leaves nothing either.
    let mut w = store.blob_writer(name).unwrap();
    w.write(b"exp").unwrap();
    drop(w);
    assert!(tmp_is_empty(&store));
    assert_eq!(store.list_blobs().unwrap().len(), 1);
}

#[test]
fn hashing_in_place_stores_nothing_and_adopting_moves_the_file_in() {
    let (dir, store) = new_store();
    let data = big_content();
    let path = dir.path().join("upper-file");
    fs::write(&path, &data).unwrap();
    let (hash, size) = Store::hash_in_place(&path, None).unwrap();
    assert_eq!((hash, size), (Hash::of(&data), data.len() as u64));
    assert!(!store.has_blob(&hash, size));
    let ino = fs::metadata(&path).unwrap().ino();
    let ins = store.adopt_file(&path, hash, size).unwrap();
    assert!(ins.newly_stored);
    assert!(!path.exists());
    let blob = fs::metadata(store.blob_path(&hash)).unwrap();
    assert_eq!(blob.ino(), ino, "moved, not copied");
    assert_eq!(blob.permissions().mode() & 0o7777, BLOB_MODE);
    assert!(store.verify_blob(&hash).unwrap());
    assert!(tmp_is_empty(&store));
    // Content the store has already: the file is left where it is.
    fs::write(&path, &data).unwrap();
    assert!(!store.adopt_file(&path, hash, size).unwrap().newly_stored);
    assert!(path.exists());
}

#[test]
fn a_file_that_is_not_what_was_hashed_is_not_adopted() {
    let (dir, store) = new_store();
    let path = dir.path().join("f");
    fs::write(&path, b"short").unwrap();
    let claimed = Hash::of(b"something longer");
    assert!(store.adopt_file(&path, claimed, 16).is_err());
    assert!(path.exists(), "put back");
    assert!(!store.contains(&claimed));
    assert!(tmp_is_empty(&store));
}

#[test]
fn a_grown_file_tells_the_hash_of_its_old_length() {
    let (dir, store) = new_store();
    let old = big_content();
    let mut new = old.clone();
    new.extend_from_slice(b"appended");
    let path = dir.path().join("grown");
    fs::write(&path, &new).unwrap();
    let (hash, _) = Store::hash_in_place(&path, Some(old.len() as u64)).unwrap();
    // Known without the blob being there at all.
    assert!(store
        .blob_starts_with(&hash, old.len() as u64, &Hash::of(&old))
        .unwrap());
    assert!(!store
        .blob_starts_with(&hash, old.len() as u64, &Hash::of(b"other"))
        .unwrap());
    // And from the blob itself, for a length nobody remembered.
    store.adopt_file(&path, hash, new.len() as u64).unwrap();
    assert!(store
        .blob_starts_with(&hash, 10, &Hash::of(&old[..10]))
        .unwrap());
    assert!(!store
        .blob_starts_with(&hash, new.len() as u64 + 1, &Hash::of(&new))
        .unwrap());
}
