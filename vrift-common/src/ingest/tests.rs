use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, SystemTime};

use super::*;
use crate::filters::FilterOptions;
use crate::hash::Hash;

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    root: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let root = dir.path().join("proj");
    fs::create_dir(&root).unwrap();
    World {
        _dir: dir,
        store,
        root,
    }
}

fn write(path: &Path, content: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Set every file's mtime well into the past, as in a tree that was checked out a while ago
/// (fresh files are "racy" and re-hashed once more; see the stat cache).
fn age(root: &Path) {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                fs::File::options()
                    .write(true)
                    .open(e.path())
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
    }
}

fn opts(w: &World) -> IngestOptions {
    IngestOptions::new(Filter::new(&w.root, &FilterOptions::default()).unwrap())
}

fn run(w: &World) -> IngestReport {
    ingest(&w.store, &w.root, &opts(w), &|_| {}).unwrap()
}

fn paths(m: &Manifest) -> Vec<String> {
    m.iter()
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

#[test]
fn ingests_files_dirs_symlinks_with_root_entry() {
    let w = world();
    write(&w.root.join("a.txt"), b"hello");
    write(&w.root.join("sub/b.bin"), &[0u8; 3000]);
    fs::set_permissions(w.root.join("sub/b.bin"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("../a.txt", w.root.join("sub/link")).unwrap();
    let r = run(&w);
    assert_eq!(
        paths(&r.manifest),
        ["", "a.txt", "sub", "sub/b.bin", "sub/link"]
    );
    assert_eq!((r.files, r.dirs, r.symlinks), (2, 2, 1));
    assert_eq!(r.bytes, 3005);
    assert_eq!(r.bytes_new, 3005);
    assert_eq!(r.bytes_present, 0);
    assert_eq!(r.files_hashed, 2);
    let a = r.manifest.get(b"a.txt").unwrap();
    assert_eq!(a.kind, EntryKind::File);
    assert_eq!(a.hash, Hash::of(b"hello"));
    assert_eq!(fs::read(w.store.blob_path(&a.hash)).unwrap(), b"hello");
    let b = r.manifest.get(b"sub/b.bin").unwrap();
    assert_eq!(b.mode, 0o750);
    let link = r.manifest.get(b"sub/link").unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.target, b"../a.txt");
    assert_eq!(link.size, 8);
    let root = r.manifest.get(b"").unwrap();
    assert_eq!(root.kind, EntryKind::Dir);
    // ingest itself writes nothing into the project
    assert!(!w.root.join(MANIFEST_FILE).exists());
}

#[test]
fn duplicate_content_is_stored_once() {
    let w = world();
    write(&w.root.join("x"), b"same");
    write(&w.root.join("y"), b"same");
    let r = run(&w);
    assert_eq!(r.bytes, 8);
    assert_eq!(r.bytes_new, 4);
    assert_eq!(r.bytes_present, 4);
}

#[test]
fn symlink_loops_are_harmless() {
    let w = world();
    write(&w.root.join("d/f"), b"x");
    symlink("..", w.root.join("d/up")).unwrap();
    symlink("self", w.root.join("self")).unwrap();
    symlink("b", w.root.join("a")).unwrap();
    symlink("a", w.root.join("b")).unwrap();
    let r = run(&w);
    assert_eq!(r.symlinks, 4);
    assert_eq!(r.files, 1);
    assert_eq!(r.manifest.get(b"d/up").unwrap().target, b"..");
}

#[test]
fn non_utf8_names() {
    let w = world();
    let name = OsStr::from_bytes(b"caf\xe9-\xff.txt");
    write(&w.root.join("d\u{e9}j\u{e0}").join(name), b"bytes");
    let r = run(&w);
    let entry = r
        .manifest
        .get(b"d\xc3\xa9j\xc3\xa0/caf\xe9-\xff.txt")
        .expect("raw-byte path in manifest");
    assert_eq!(entry.hash, Hash::of(b"bytes"));
}

#[test]
fn own_files_are_left_out_and_fifos_kept() {
    let w = world();
    write(&w.root.join("keep"), b"k");
    write(&w.root.join(MANIFEST_FILE), b"old manifest");
    write(&w.root.join(".vrift/state"), b"s");
    write(&w.root.join("sub/.vrift/state"), b"s");
    let fifo = w.root.join("pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let r = run(&w);
    assert_eq!(paths(&r.manifest), ["", "keep", "pipe", "sub"]);
    let pipe = r.manifest.get(b"pipe").unwrap();
    assert_eq!(
        (pipe.kind, pipe.mode & 0o777),
        (EntryKind::Fifo, 0o644 & !umask())
    );
    assert_eq!(r.manifest.format_version(), 2);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let ex: Vec<_> = r.excluded.iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        ex,
        vec![
            b".vrift".to_vec(),
            b"sub/.vrift".to_vec(),
            b"vrift.manifest".to_vec()
        ]
    );
}

#[test]
fn excluded_paths_are_reported_and_pruned() {
    let w = world();
    write(&w.root.join("Cargo.toml"), b"[package]");
    write(&w.root.join("src/main.rs"), b"fn main(){}");
    write(&w.root.join("target/debug/big"), b"bin");
    write(&w.root.join(".git/HEAD"), b"ref");
    write(&w.root.join(".gitignore"), b"*.log\n");
    write(&w.root.join("x.log"), b"log");
    let r = run(&w);
    assert_eq!(
        paths(&r.manifest),
        ["", ".gitignore", "Cargo.toml", "src", "src/main.rs"]
    );
    let ex: Vec<_> = r
        .excluded
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(&e.path).into_owned(),
                e.is_dir,
                e.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        ex,
        vec![
            (".git".to_string(), true, ExcludeReason::Vcs),
            (
                "target".to_string(),
                true,
                ExcludeReason::BuildOutput(Some(crate::filters::ProjectType::Cargo))
            ),
            (
                "x.log".to_string(),
                false,
                ExcludeReason::Gitignore(PathBuf::from(".gitignore"))
            ),
        ]
    );
}

#[test]
fn unchanged_reingest_reads_nothing_and_gives_same_manifest() {
    let w = world();
    for i in 0..50 {
        write(
            &w.root.join(format!("d{}/f{i}", i % 5)),
            format!("content {i}").as_bytes(),
        );
    }
    age(&w.root);
    let first = run(&w);
    assert_eq!(first.files_hashed, 50);
    assert_eq!(first.files_unchanged, 0);
    // Nothing hashed means no file was opened: only the store's insert reads content.
    let second = run(&w);
    assert_eq!(second.files_hashed, 0);
    assert_eq!(second.files_unchanged, 50);
    assert_eq!(second.bytes_new, 0);
    assert_eq!(second.bytes_present, first.bytes);
    assert_eq!(second.manifest.hash(), first.manifest.hash());
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
}

#[test]
fn writing_the_manifest_does_not_change_the_next_manifest() {
    let w = world();
    write(&w.root.join("f"), b"x");
    age(&w.root);
    let first = run(&w);
    let path = write_project_manifest(&w.root, &first.manifest, &w.store).unwrap();
    assert_eq!(path, w.root.canonicalize().unwrap().join(MANIFEST_FILE));
    assert_eq!(Manifest::load(&path).unwrap(), first.manifest);
    let roots = w.store.roots().unwrap();
    assert!(roots.iter().any(|r| r.manifest == path), "{roots:?}");
    let second = run(&w);
    assert_eq!(second.manifest.hash(), first.manifest.hash());
}

#[test]
fn same_size_edit_is_picked_up() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    let first = run(&w);
    write(&w.root.join("f"), b"bbbb");
    let second = run(&w);
    assert_eq!(second.files_hashed, 1);
    assert_eq!(second.manifest.get(b"f").unwrap().hash, Hash::of(b"bbbb"));
    assert_ne!(second.manifest.hash(), first.manifest.hash());
}

#[test]
fn edit_with_mtime_put_back_is_caught_by_ctime() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    run(&w);
    write(&w.root.join("f"), b"bbbb");
    age(&w.root); // same mtime as before; ctime moved
    let r = run(&w);
    assert_eq!(r.manifest.get(b"f").unwrap().hash, Hash::of(b"bbbb"));
}

#[test]
fn racy_files_are_rehashed() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    // An mtime in the future is never older than the cache: always racy.
    let future = SystemTime::now() + Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(w.root.join("f"))
        .unwrap()
        .set_modified(future)
        .unwrap();
    run(&w);
    let r = run(&w);
    assert_eq!(r.files_hashed, 1);
    assert_eq!(r.files_unchanged, 0);
}

#[test]
fn corrupt_stat_cache_is_ignored_with_a_warning() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    let first = run(&w);
    let cache = statcache::cache_path(w.store.root(), &w.root.canonicalize().unwrap());
    let mut bytes = fs::read(&cache).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&cache, &bytes).unwrap();
    let second = run(&w);
    assert_eq!(second.files_hashed, 1);
    assert_eq!(second.manifest.hash(), first.manifest.hash());
    assert!(matches!(
        second.warnings.as_slice(),
        [IngestWarning::StatCacheIgnored { reason }] if reason.contains("corrupt")
    ));
    // rebuilt: the next run trusts it again
    assert_eq!(run(&w).files_hashed, 0);
}

#[test]
fn cache_is_not_trusted_when_gc_removed_the_blob() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    run(&w);
    // What gc --delete does: say so, then remove.
    let blob = w.store.blob_path(&Hash::of(b"aaaa"));
    w.store.note_blobs_removed().unwrap();
    w.store.remove_blob(&Hash::of(b"aaaa")).unwrap();
    let r = run(&w);
    assert_eq!(r.files_hashed, 1);
    assert!(blob.exists());
}

#[test]
fn cache_is_not_trusted_when_a_blob_was_moved_aside_as_damaged() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    run(&w);
    let blob = w.store.blob_path(&Hash::of(b"aaaa"));
    w.store.quarantine_blob(&Hash::of(b"aaaa")).unwrap();
    assert!(!blob.exists());
    let r = run(&w);
    assert_eq!(r.files_hashed, 1);
    assert!(blob.exists());
}

#[test]
fn while_no_blob_was_removed_the_blobs_are_not_looked_at() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    run(&w);
    let generation = w.store.blob_generation();
    // A blob removed behind vrift's back (not through gc) is not noticed by a re-ingest:
    // `vrift store verify` finds it (and `--repair` puts it back from this file).
    fs::remove_file(w.store.blob_path(&Hash::of(b"aaaa"))).unwrap();
    let r = run(&w);
    assert_eq!(r.files_unchanged, 1);
    assert_eq!(w.store.blob_generation(), generation);
}

#[test]
fn an_unchanged_tree_leaves_its_stat_cache_unwritten() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    write(&w.root.join("g"), b"bbbb");
    age(&w.root);
    run(&w);
    let cache = statcache::cache_path(w.store.root(), &w.root.canonicalize().unwrap());
    let written = fs::read(&cache).unwrap();
    // The cache is saved by renaming a new file over it: a new inode each time.
    let ino = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&cache).unwrap());
    let before = ino();
    let r = run(&w);
    assert_eq!((r.files_unchanged, r.files_hashed), (2, 0));
    assert_eq!(ino(), before);
    // A change is recorded, and a removed file too.
    write(&w.root.join("g"), b"cccc");
    age(&w.root);
    assert!(run(&w).files_hashed >= 1);
    assert_ne!(fs::read(&cache).unwrap(), written);
    fs::remove_file(w.root.join("f")).unwrap();
    let before = fs::read(&cache).unwrap();
    run(&w);
    assert_ne!(
        fs::read(&cache).unwrap(),
        before,
        "a removed file leaves the cache"
    );
    assert_eq!(run(&w).files_unchanged, 1);
}

#[test]
fn no_stat_cache_option_reads_everything() {
    let w = world();
    write(&w.root.join("f"), b"aaaa");
    age(&w.root);
    run(&w);
    let mut o = opts(&w);
    o.use_stat_cache = false;
    let r = ingest(&w.store, &w.root, &o, &|_| {}).unwrap();
    assert_eq!(r.files_hashed, 1);
}

#[test]
fn thread_count_does_not_change_the_result() {
    let w = world();
    for i in 0..200 {
        write(
            &w.root.join(format!("d{}/f{i}", i % 7)),
            &vec![i as u8; i * 13],
        );
    }
    let mut hashes = Vec::new();
    for threads in [1, 2, 5] {
        let mut o = opts(&w);
        o.threads = threads;
        o.use_stat_cache = false;
        hashes.push(
            ingest(&w.store, &w.root, &o, &|_| {})
                .unwrap()
                .manifest
                .hash(),
        );
    }
    assert!(hashes.windows(2).all(|p| p[0] == p[1]));
}

#[test]
fn progress_reaches_the_total() {
    let w = world();
    for i in 0..300 {
        write(&w.root.join(format!("f{i}")), format!("{i}").as_bytes());
    }
    let last = std::cell::Cell::new(None);
    ingest(&w.store, &w.root, &opts(&w), &|p| last.set(Some(p))).unwrap();
    let p = last.get().unwrap();
    assert_eq!(p.phase, IngestPhase::Storing);
    assert_eq!(p.files_done, 300);
    assert_eq!(p.files_total, 300);
}

#[test]
fn root_that_is_not_a_directory() {
    let w = world();
    write(&w.root.join("f"), b"x");
    let err = ingest(&w.store, &w.root.join("f"), &opts(&w), &|_| {}).unwrap_err();
    assert!(matches!(err, IngestError::NotADirectory { .. }), "{err}");
    let err = ingest(&w.store, &w.root.join("missing"), &opts(&w), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn store_one_reports_vanished_files() {
    let w = world();
    let item = walk::FileItem {
        rel: b"gone".to_vec(),
        abs: w.root.join("gone"),
        stat: FileStat {
            size: 1,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
            dev: 0,
            mode: 0o100644,
        },
    };
    assert!(matches!(
        store_files::store_one(&w.store, &item).unwrap(),
        Stored::Vanished
    ));
}

#[test]
fn store_one_retries_when_the_walk_stat_is_stale() {
    let w = world();
    write(&w.root.join("f"), b"new content");
    let real = FileStat::from_metadata(&fs::symlink_metadata(w.root.join("f")).unwrap());
    let item = walk::FileItem {
        rel: b"f".to_vec(),
        abs: w.root.join("f"),
        stat: FileStat { size: 3, ..real },
    };
    match store_files::store_one(&w.store, &item).unwrap() {
        Stored::Done { stat, inserted } => {
            assert_eq!(stat, real);
            assert_eq!(inserted.hash, Hash::of(b"new content"));
        }
        Stored::Vanished | Stored::Unreadable => panic!("not stored"),
    }
}

#[test]
fn a_file_that_keeps_changing_is_retried_then_reported() {
    let w = world();
    write(&w.root.join("busy"), b"data");
    let item = walk::FileItem {
        rel: b"busy".to_vec(),
        abs: w.root.join("busy"),
        stat: FileStat::from_metadata(&fs::symlink_metadata(w.root.join("busy")).unwrap()),
    };
    let calls = std::cell::Cell::new(0);
    let always_changing = |p: &Path| {
        calls.set(calls.get() + 1);
        Err(StoreError::ChangedDuringIngest {
            path: p.to_path_buf(),
        })
    };
    let err = match store_files::store_one_with(&item, &always_changing) {
        Err(e) => e,
        Ok(_) => panic!("stored a file that never held still"),
    };
    assert_eq!(calls.get(), store_files::ATTEMPTS);
    assert!(matches!(err, IngestError::KeptChanging { .. }));
    assert!(
        err.to_string().contains(&item.abs.display().to_string()),
        "{err}"
    );

    // changing once, then quiet: stored on the second attempt
    calls.set(0);
    let once = |p: &Path| {
        calls.set(calls.get() + 1);
        if calls.get() == 1 {
            Err(StoreError::ChangedDuringIngest {
                path: p.to_path_buf(),
            })
        } else {
            w.store.insert_file(p)
        }
    };
    match store_files::store_one_with(&item, &once).unwrap() {
        Stored::Done { inserted, .. } => assert_eq!(inserted.hash, Hash::of(b"data")),
        Stored::Vanished | Stored::Unreadable => panic!("not stored"),
    }
    assert_eq!(calls.get(), 2);
}

#[test]
fn unreadable_file_error_names_the_file() {
    let w = world();
    write(&w.root.join("f"), b"x");
    let item = walk::FileItem {
        rel: b"f".to_vec(),
        abs: w.root.join("f"),
        stat: FileStat::from_metadata(&fs::symlink_metadata(w.root.join("f")).unwrap()),
    };
    // (Permission denied is no error: the file is recorded as unreadable, see below.)
    let failing = |p: &std::path::Path| {
        Err(StoreError::Io {
            path: p.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        })
    };
    let err = match store_files::store_one_with(&item, &failing) {
        Err(e) => e,
        Ok(_) => panic!("no error"),
    };
    assert_eq!(
        err.to_string(),
        format!("{}: Input/output error (os error 5)", item.abs.display())
    );
}

#[test]
fn a_file_denied_to_the_reader_is_reported_unreadable_not_an_error() {
    let w = world();
    fs::write(w.root.join("f"), b"x").unwrap();
    let real = FileStat::from_metadata(&fs::symlink_metadata(w.root.join("f")).unwrap());
    let item = walk::FileItem {
        rel: b"f".to_vec(),
        abs: w.root.join("f"),
        stat: real,
    };
    let denied = |p: &std::path::Path| {
        Err(crate::store::StoreError::Io {
            path: p.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        })
    };
    assert!(matches!(
        store_files::store_one_with(&item, &denied).unwrap(),
        Stored::Unreadable
    ));
}

fn umask() -> u32 {
    let probe = tempfile::tempdir().unwrap();
    let f = probe.path().join("f");
    fs::write(&f, b"").unwrap();
    !fs::metadata(&f).unwrap().permissions().mode() & 0o666
}

#[test]
fn hard_links_inside_the_tree_become_a_group_and_outside_ones_do_not() {
    let w = world();
    write(&w.root.join("a"), b"shared");
    fs::create_dir(w.root.join("sub")).unwrap();
    fs::hard_link(w.root.join("a"), w.root.join("sub/b")).unwrap();
    write(&w.root.join("lonely"), b"one name inside");
    fs::hard_link(w.root.join("lonely"), w._dir.path().join("outside")).unwrap();
    let r = run(&w);
    let m = &r.manifest;
    assert_eq!(m.link_groups(), vec![vec![&b"a"[..], b"sub/b"]]);
    assert_eq!(m.get(b"lonely").unwrap().meta.link, 0);
    assert_eq!(m.format_version(), 2);
}

#[test]
fn user_xattrs_are_recorded_and_machine_ones_are_not() {
    let w = world();
    let f = w.root.join("tagged");
    write(&f, b"t");
    match crate::sys::xattr::lset(&f, b"user.mime", b"text/plain") {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
            eprintln!("skipped: this file system has no user xattrs");
            return;
        }
        r => r.unwrap(),
    }
    let r = run(&w);
    let e = r.manifest.get(b"tagged").unwrap();
    assert_eq!(e.meta.xattr(b"user.mime"), Some(&b"text/plain"[..]));
    assert!(e
        .meta
        .xattrs
        .iter()
        .all(|x| crate::manifest::is_kept_xattr(&x.name)));
}

#[test]
fn owners_are_recorded_when_asked_and_a_one_owner_tree_stays_portable() {
    let w = world();
    write(&w.root.join("f"), b"f");
    let r = run(&w);
    // One owner (whoever runs the test): nothing recorded unless asked.
    assert!(!r.manifest.has_owners());
    assert_eq!(r.manifest.format_version(), 1);
    let mut o = opts(&w);
    o.owners = Owners::Always;
    let r = ingest(&w.store, &w.root, &o, &|_| {}).unwrap();
    let e = r.manifest.get(b"f").unwrap();
    let m = fs::metadata(w.root.join("f")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        e.meta.owner,
        Some(crate::manifest::EntryOwner {
            uid: m.uid(),
            gid: m.gid()
        })
    );
    // Root over a tree with two owners records them on its own.
    if crate::sys::euid() == 0 {
        std::os::unix::fs::chown(w.root.join("f"), Some(65534), Some(65534)).unwrap();
        let r = run(&w);
        assert_eq!(r.manifest.get(b"f").unwrap().meta.owner.unwrap().uid, 65534);
        assert_eq!(r.manifest.get(b"").unwrap().meta.owner.unwrap().uid, 0);
    }
}

/// A re-ingest does not list the xattrs of a file the stat cache vouches has none; one set
/// since changes the file's ctime, so the cache no longer vouches and it is recorded.
#[test]
fn an_xattr_set_after_an_ingest_is_recorded_by_the_next() {
    let w = world();
    let f = w.root.join("plain");
    write(&f, b"p");
    age(&w.root);
    let first = run(&w);
    assert!(first.manifest.get(b"plain").unwrap().meta.xattrs.is_empty());
    match crate::sys::xattr::lset(&f, b"user.mime", b"text/plain") {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
            eprintln!("skipped: this file system has no user xattrs");
            return;
        }
        r => r.unwrap(),
    }
    let second = run(&w);
    let e = second.manifest.get(b"plain").unwrap();
    assert_eq!(e.meta.xattr(b"user.mime"), Some(&b"text/plain"[..]));
}

#[test]
fn every_entry_has_its_origin_on_disk() {
    use std::os::unix::fs::MetadataExt;
    let w = world();
    write(&w.root.join("a"), b"a");
    write(&w.root.join("sub/b"), b"b");
    symlink("a", w.root.join("l")).unwrap();
    let r = run(&w);
    for (path, _) in r.manifest.iter() {
        let disk = fs::symlink_metadata(w.root.join(std::ffi::OsStr::from_bytes(path))).unwrap();
        let o = r.origins.get(path).unwrap_or_else(|| panic!("{path:?}"));
        assert_eq!(o.ino, disk.ino(), "{path:?}");
        assert_eq!(o.ctime_ns, disk.ctime() * 1_000_000_000 + disk.ctime_nsec());
    }
    assert_eq!(r.origins.len(), r.manifest.len());
}

#[test]
fn a_walk_shared_by_threads_gives_the_same_result_every_time_in_path_order() {
    let w = world();
    // Many directories, so that the walk's threads share them, each with files, a
    // symlink and a socket (skipped with a warning).
    let mut sockets = Vec::new();
    for d in 0..40 {
        for f in 0..15 {
            write(
                &w.root.join(format!("d{d}/s{}/f{f}", d % 3)),
                format!("{d}/{f}").as_bytes(),
            );
        }
        symlink("s0", w.root.join(format!("d{d}/link"))).unwrap();
        let sock = w.root.join(format!("d{d}/sock"));
        sockets.push(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    }
    let first = run(&w);
    let warned: Vec<PathBuf> = first
        .warnings
        .iter()
        .filter_map(|x| x.path().map(Path::to_path_buf))
        .collect();
    let mut sorted = warned.clone();
    sorted.sort();
    assert_eq!(warned.len(), 40, "{:?}", first.warnings);
    assert_eq!(warned, sorted, "warnings come in path order");
    assert_eq!((first.files, first.dirs, first.symlinks), (600, 81, 40));
    for _ in 0..5 {
        let again = run(&w);
        assert_eq!(again.manifest, first.manifest);
        assert_eq!(again.warnings, first.warnings);
        assert_eq!(again.excluded, first.excluded);
        assert_eq!(again.origins, first.origins);
    }
}
