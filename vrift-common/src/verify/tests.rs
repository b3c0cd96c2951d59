use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::filters::{Filter, FilterOptions};
use crate::ingest::{self, IngestOptions};
use crate::store::BLOB_MODE;

fn damage(store: &Store, hash: &Hash, bytes: &[u8]) {
    let path = store.blob_path(hash);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(BLOB_MODE)).unwrap();
}

/// A project with `vrift init`'s result: files on disk, vrift.manifest registered.
fn project(store: &Store, dir: &Path, files: &[(&str, &[u8])]) -> Manifest {
    fs::create_dir_all(dir).unwrap();
    for (p, c) in files {
        fs::write(dir.join(p), c).unwrap();
    }
    let filter = Filter::new(dir, &FilterOptions::default()).unwrap();
    let r = ingest::ingest(store, dir, &IngestOptions::new(filter), &|_| {}).unwrap();
    ingest::write_project_manifest(dir, &r.manifest, store).unwrap();
    r.manifest
}

fn hash_of(m: &Manifest, path: &str) -> Hash {
    m.get(path.as_bytes()).unwrap().hash
}

fn repair() -> VerifyOptions {
    VerifyOptions {
        repair: true,
        ..VerifyOptions::default()
    }
}

#[test]
fn a_whole_store_verifies_clean() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    project(&store, &d.path().join("p"), &[("a", b"a"), ("b", b"bb")]);
    let r = verify(&store, &repair()).unwrap();
    assert!(r.bad.is_empty());
    // a, b and the manifest's pinned copy.
    assert_eq!(r.checked, 3);
    assert!(store.quarantined().unwrap().is_empty());
}

#[test]
fn a_corrupt_blob_is_reported_then_repaired_from_the_project() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    let m = project(
        &store,
        &d.path().join("p"),
        &[("f1.txt", b"one\n"), ("f2", b"two")],
    );
    let h = hash_of(&m, "f1.txt");
    damage(&store, &h, b"BAD\n");

    // Without repair: reported, nothing touched.
    let r = verify(&store, &VerifyOptions::default()).unwrap();
    assert_eq!(r.bad.len(), 1);
    assert_eq!(r.bad[0].hash, h);
    assert_eq!(r.bad[0].damage, Some(BlobDamage::Corrupt));
    assert!(r.bad[0].used_by[0].1 == b"f1.txt");
    assert!(r.bad[0].quarantined_to.is_none() && r.bad[0].repaired_from.is_none());
    assert_eq!(fs::read(store.blob_path(&h)).unwrap(), b"BAD\n");

    let r = verify(&store, &repair()).unwrap();
    assert_eq!(r.unrepaired(), 0);
    let q = r.bad[0].quarantined_to.as_ref().unwrap();
    assert_eq!(fs::read(q).unwrap(), b"BAD\n");
    assert!(r.bad[0]
        .repaired_from
        .as_ref()
        .unwrap()
        .ends_with("p/f1.txt"));
    assert_eq!(fs::read(store.blob_path(&h)).unwrap(), b"one\n");
    assert!(verify(&store, &repair()).unwrap().bad.is_empty());
}

#[test]
fn a_corrupt_blob_with_no_source_is_moved_aside_and_found_with_from() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    let m = project(&store, &d.path().join("p"), &[("f", b"only copy")]);
    let h = hash_of(&m, "f");
    // The project file changed since: it is no source for the old content.
    fs::write(d.path().join("p/f"), b"edited!!!").unwrap();
    damage(&store, &h, b"xxxx copy");
    let r = verify(&store, &repair()).unwrap();
    assert_eq!(r.unrepaired(), 1);
    assert!(r.bad[0].quarantined_to.is_some());
    assert!(
        !store.contains(&h),
        "known-corrupt content is served by nobody"
    );
    // The next verify reports it as missing, and a backup directory repairs it.
    let backup = d.path().join("backup/deep");
    fs::create_dir_all(&backup).unwrap();
    fs::write(backup.join("same size"), b"not it!!!").unwrap();
    fs::write(backup.join("copy"), b"only copy").unwrap();
    let r = verify(
        &store,
        &VerifyOptions {
            repair: true,
            from: vec![d.path().join("backup")],
            threads: 1,
        },
    )
    .unwrap();
    assert_eq!(r.bad.len(), 1);
    assert_eq!(r.bad[0].damage, None, "missing now");
    assert!(r.bad[0].repaired_from.as_ref().unwrap().ends_with("copy"));
    assert!(store.verify_blob(&h).unwrap());
}

#[test]
fn a_missing_blob_is_restored_from_the_project() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    let m = project(&store, &d.path().join("p"), &[("f", b"restore me")]);
    let h = hash_of(&m, "f");
    fs::remove_file(store.blob_path(&h)).unwrap();
    let r = verify(&store, &VerifyOptions::default()).unwrap();
    assert_eq!(r.bad.len(), 1);
    assert!(r.bad[0].damage.is_none() && r.bad[0].repaired_from.is_none());
    let r = verify(&store, &repair()).unwrap();
    assert_eq!(r.unrepaired(), 0);
    assert!(store.verify_blob(&h).unwrap());
}

#[test]
fn reingesting_a_touched_file_repairs_its_corrupt_blob() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    let dir = d.path().join("p");
    let m = project(&store, &dir, &[("f1.txt", b"hello\n")]);
    let h = hash_of(&m, "f1.txt");
    damage(&store, &h, b"HELLO\n");
    // The stat cache vouches for an untouched file; a touched one is read again, and the
    // blob it meets is checked.
    let f = fs::File::options()
        .write(true)
        .open(dir.join("f1.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let filter = Filter::new(&dir, &FilterOptions::default()).unwrap();
    let r = ingest::ingest(&store, &dir, &IngestOptions::new(filter), &|_| {}).unwrap();
    assert_eq!(
        r.bytes_new, 6,
        "the blob was stored again, not 'already present'"
    );
    assert_eq!(fs::read(store.blob_path(&h)).unwrap(), b"hello\n");
}
