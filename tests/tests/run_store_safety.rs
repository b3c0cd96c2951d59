//! The store is never modified through a view: a program that tries every write route it
//! knows on view files (as root, and as an ordinary user who owns the store) fails on each,
//! and every blob's hash is the same before and after.

use std::path::Path;

use vrift_tests::*;

/// The errors an attempt may end with. Opening, truncating, chmod and the like on a
/// read-only view fail with EROFS (or EACCES/EPERM); calls on an fd opened read-only fail
/// as the kernel says for such an fd; moving or linking across the view's boundary is EXDEV.
fn allowed(route: &str) -> &'static [&'static str] {
    let r = route.trim_start_matches("after remount: ");
    match r {
        "ftruncate of O_RDONLY fd" => &["EINVAL", "EBADF"],
        "write to O_RDONLY fd" | "pwrite to O_RDONLY fd" | "fallocate on O_RDONLY fd" => &["EBADF"],
        "mmap PROT_WRITE MAP_SHARED" => &["EACCES"],
        "rename out of the view"
        | "link to outside"
        | "linkat /proc/self/fd to outside"
        | "linkat AT_EMPTY_PATH to outside" => &["EXDEV", "EROFS", "EPERM", "EACCES"],
        _ => &["EROFS", "EACCES", "EPERM"],
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
    let bin = build_static_c("gcc", "writeattempts.c", &[]);
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
    // Remounting the view read-write must fail too: it would open every route again.
    for line in all
        .lines()
        .filter(|l| l.starts_with("remount the view read-write"))
    {
        if !line.ends_with("EPERM") && !line.ends_with("EACCES") && !line.ends_with("EROFS") {
            bad.push(line.to_string());
        }
    }
    assert!(attempts >= 2 * 36, "too few attempts ran:\n{all}");
    let changed: Vec<_> = before
        .iter()
        .zip(after.iter())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0.display().to_string())
        .collect();
    assert!(
        bad.is_empty() && before == after,
        "write routes that did not fail as they should:\n  {}\nblobs changed: {changed:?} ({} before, {} after)\n--- full output:\n{all}",
        bad.join("\n  "),
        before.len(),
        after.len()
    );
    let want_content = format!("content: {:016x}", fnv1a64(&precious));
    assert!(all.contains(&want_content), "{all}");
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

#[test]
fn root_cannot_write_the_store_through_the_view() {
    write_attempts(false);
}

#[test]
fn an_ordinary_user_cannot_write_the_store_through_the_view() {
    write_attempts(true);
}
