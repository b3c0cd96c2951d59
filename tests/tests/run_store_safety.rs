//! The store is never modified through a view: a program that tries every write route it
//! knows on view files (as root, and as an ordinary user who owns the store) changes only
//! its private copies, never a blob, and cannot reach the blobs through their own paths or
//! by remounting; every blob's hash is the same before and after.

use std::path::Path;

use vrift_tests::*;

/// What an attempt may end with. Writes into the view are copy-on-write (RFC-0047), so
/// opening for write, truncating, chmod and the like may succeed (on a private copy) or be
/// refused as the kernel would; calls on an fd opened read-only fail as the kernel says for
/// such an fd; moving or linking across the view's boundary is EXDEV.
fn allowed(route: &str) -> &'static [&'static str] {
    let r = route.trim_start_matches("after remount: ");
    match r {
        "ftruncate of O_RDONLY fd" => &["EINVAL", "EBADF"],
        "write to O_RDONLY fd" | "pwrite to O_RDONLY fd" | "fallocate on O_RDONLY fd" => &["EBADF"],
        "mmap PROT_WRITE MAP_SHARED" => &["EACCES"],
        // In an ordinary user's namespace (the overlay projection) only the user's own id
        // is mapped: the kernel answers a chown to any other id with EINVAL.
        "chown" | "lchown symlink" | "fchown on O_RDONLY fd" => &["SUCCEEDED", "EPERM", "EINVAL"],
        // The supervisor answers setxattr on a view path ENOTSUP, as a file system without
        // xattrs would (docs/ARCHITECTURE.md, known differences); an earlier attempt may have
        // removed the name (ENOENT).
        "setxattr" => &["SUCCEEDED", "EROFS", "EACCES", "EPERM", "ENOTSUP", "ENOENT"],
        "rename out of the view"
        | "link to outside"
        | "linkat /proc/self/fd to outside"
        | "linkat AT_EMPTY_PATH to outside" => &["EXDEV", "EROFS", "EPERM", "EACCES", "ENOENT"],
        _ => &[
            "SUCCEEDED",
            "SUCCEEDED (write went through)",
            "SUCCEEDED (write EBADF)",
            "EROFS",
            "EACCES",
            "EPERM",
            // Earlier attempts really happened in the view (a rename, a create), so later
            // ones may find the name gone, taken, or a directory not empty.
            "ENOENT",
            "EEXIST",
            "ENOTEMPTY",
        ],
    }
}

fn write_attempts(as_user: bool) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let out = env.mkdir("outside");
    let m = env.dir.path().join("view.manifest");
    let precious = b"precious bytes shared by every project\n".repeat(200);
    make_manifest(
        &env,
        &m,
        &[
            Node::Dir("src", 0o755),
            Node::File("src/shared.txt", &precious, 0o644),
            Node::File("src/mine.txt", b"owner-writable\n", 0o600),
            Node::Symlink("src/link", "shared.txt"),
        ],
    );
    if as_user {
        env.give_to_nobody();
    }
    let before = store_snapshot(&env.home());
    assert!(!before.is_empty());
    let bin = build_c("gcc", "writeattempts.c", &[]);
    let outs = out.to_str().unwrap();
    let mut all = String::new();
    for file in ["src/shared.txt", "src/mine.txt"] {
        let args = [bin.to_str().unwrap(), file, "src/link", "src", outs];
        let got = if as_user {
            stdout_ok(&mut vrift_run_as_user(&env, &proj, &m, &args))
        } else {
            stdout_ok(&mut vrift_run(&env, &proj, &m, &args))
        };
        all += &format!("--- {file}\n{got}");
    }
    let after = store_snapshot(&env.home());

    let mut bad = Vec::new();
    let mut attempts = 0;
    for line in all.lines().filter(|l| !l.starts_with("---")) {
        let (route, result) = line.rsplit_once(": ").unwrap();
        if route == "content" || route == "remount the view read-write" {
            continue;
        }
        attempts += 1;
        if !allowed(route).contains(&result) {
            bad.push(format!(
                "{route}: {result} (want one of {:?})",
                allowed(route)
            ));
        }
    }
    // Remounting the view read-write must fail too: it would open every route again. (Under
    // the shim alone the view is no mount at all: root's remount gets EINVAL, there is
    // nothing to remount.)
    for line in all
        .lines()
        .filter(|l| l.starts_with("remount the view read-write"))
    {
        let no_mount = shim_alone() && line.ends_with("EINVAL");
        if !no_mount
            && !line.ends_with("EPERM")
            && !line.ends_with("EACCES")
            && !line.ends_with("EROFS")
        {
            bad.push(line.to_string());
        }
    }
    assert!(attempts >= 2 * 36, "too few attempts ran:\n{all}");
    // New content becomes new blobs; every blob that was there is still there, unchanged.
    let changed: Vec<_> = before
        .iter()
        .filter(|b| !after.contains(b))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        bad.is_empty() && changed.is_empty(),
        "write routes that did not fail as they should:\n  {}\nblobs changed: {changed:?} ({} before, {} after)\n--- full output:\n{all}",
        bad.join("\n  "),
        before.len(),
        after.len()
    );
    let _ = fnv1a64(&precious);
    // Nothing leaked out of the view either.
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "files appeared in {}",
        out.display()
    );
    assert_no_entries(&proj);
}

fn assert_no_entries(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "the project on disk changed: {names:?}");
}

matrix!(root_cannot_write_the_store_through_the_view => write_attempts);

/// A program that finds the store (VRIFT_HOME is in its environment) cannot write, chmod,
/// truncate or remove a blob at its own path.
fn store_paths_are_read_only(as_user: bool) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let m = env.dir.path().join("view.manifest");
    make_manifest(&env, &m, &[Node::File("a.txt", b"precious\n", 0o644)]);
    if as_user {
        env.give_to_nobody();
    }
    let before = store_snapshot(&env.home());
    let bb = busybox().display().to_string();
    let script = "for f in $(find \"$VRIFT_HOME/blobs\" -type f); do \
        echo x >> \"$f\" && echo WROTE; chmod 666 \"$f\" && echo CHMOD; \
        truncate -s 0 \"$f\" && echo TRUNCATED; rm -f \"$f\" && echo REMOVED; \
        mv \"$f\" \"$f.x\" && echo MOVED; done; echo done";
    let args = [bb.as_str(), "sh", "-c", script];
    let out = if as_user {
        vrift_run_as_user(&env, &proj, &m, &args).output().unwrap()
    } else {
        vrift_run(&env, &proj, &m, &args).output().unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in ["WROTE", "CHMOD", "TRUNCATED", "REMOVED", "MOVED"] {
        assert!(
            !stdout.contains(bad),
            "a blob was changed through its path: {stdout}"
        );
    }
    assert_eq!(before, store_snapshot(&env.home()));
}

matrix!(root_cannot_write_blobs_at_their_store_paths => store_paths_are_read_only);
