//! The interposition shim projection (`vrift shim-run`, LD_PRELOAD): real dynamic programs
//! run over a view with no mounts, namespaces or seccomp, and what they read, wrote and saw.
//! The view is mounted at a path that does not exist on disk, and the disk is changed after
//! the ingest, so every right answer comes from the view.

use std::path::{Path, PathBuf};

use vrift_common::manifest::{EntryKind, Manifest};
use vrift_tests::shim::*;
use vrift_tests::*;

const T: std::time::Duration = RUN_TIMEOUT;

struct Fx {
    env: Env,
    m: PathBuf,
    view: PathBuf,
    work: PathBuf,
}

/// proj/{a.txt, sub/b.txt, link -> a.txt, mymod.py, hello.c, inc/greet.h, Makefile}, ingested,
/// then changed on disk.
fn fixture() -> Fx {
    let env = Env::new();
    let proj = env.mkdir("proj");
    write(&proj.join("a.txt"), "hello from the view\n");
    write(&proj.join("sub/b.txt"), "bee\n");
    std::os::unix::fs::symlink("a.txt", proj.join("link")).unwrap();
    write(&proj.join("mymod.py"), "X = 'imported from the view'\n");
    write(
        &proj.join("hello.c"),
        "#include <stdio.h>\n#include \"inc/greet.h\"\nint main(void) { puts(GREETING); return 0; }\n",
    );
    write(
        &proj.join("inc/greet.h"),
        "#define GREETING \"built in the view\"\n",
    );
    write(
        &proj.join("Makefile"),
        "hello: hello.c inc/greet.h\n\tgcc -o hello hello.c\n",
    );
    let m = env.dir.path().join("proj.manifest");
    manifest_of_dir(&env, &proj, &m);
    // The disk moves on; the view does not.
    write(&proj.join("a.txt"), "the disk's bytes\n");
    std::fs::remove_dir_all(proj.join("sub")).unwrap();
    let view = env.dir.path().join("view-not-on-disk");
    let work = env.mkdir("work");
    Fx { env, m, view, work }
}

fn run(fx: &Fx, cmd: &[&str]) -> String {
    let out = ok_within(&mut shim_run(&fx.env, &fx.work, &fx.m, &fx.view, cmd), T);
    String::from_utf8(out.stdout).unwrap()
}

fn sh(fx: &Fx, script: &str) -> String {
    run(fx, &["/bin/sh", "-c", script])
}

fn manifest(fx: &Fx) -> Manifest {
    Manifest::load(&fx.m).unwrap()
}

#[test]
fn shim_coreutils_see_the_view() {
    let fx = fixture();
    let ls = run(&fx, &["/bin/ls", "-1a"]);
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        [".", "..", "Makefile", "a.txt", "hello.c", "inc", "link", "mymod.py", "sub"],
        "{ls}"
    );
    let ll = run(&fx, &["/bin/ls", "-l", "link"]);
    assert!(
        ll.starts_with('l') && ll.trim_end().ends_with("link -> a.txt"),
        "{ll}"
    );
    assert_eq!(
        run(&fx, &["/bin/cat", "a.txt", "sub/b.txt", "link"]),
        "hello from the view\nbee\nhello from the view\n"
    );
    assert_eq!(
        run(
            &fx,
            &["/usr/bin/stat", "-c", "%s %F", "a.txt", "sub", "link"]
        ),
        "20 regular file\n4096 directory\n5 symbolic link\n"
    );
    let find = run(&fx, &["/usr/bin/find", ".", "-name", "*.txt"]);
    let mut found: Vec<&str> = find.lines().collect();
    found.sort();
    assert_eq!(found, ["./a.txt", "./sub/b.txt"]);
    assert_eq!(run(&fx, &["/bin/pwd"]).trim(), fx.view.to_str().unwrap());
    assert_eq!(
        run(&fx, &["/usr/bin/realpath", "link"]).trim(),
        fx.view.join("a.txt").to_str().unwrap()
    );
    // Zero footprint: the view's root was never made on disk.
    assert!(!fx.view.exists());
}

#[test]
fn shim_changes_come_back_as_the_runs_manifest_and_the_store_is_untouched() {
    let fx = fixture();
    let before = store_snapshot(&fx.env.home());
    let out = sh(
        &fx,
        "set -e; echo new > c.txt; mkdir -p d/e; mv a.txt d/; rm sub/b.txt; rmdir sub; \
         chmod 600 c.txt; ln -s c.txt l2; echo more >> d/a.txt; truncate -s 3 hello.c; \
         touch -d @1000000000 Makefile; ls; cat d/a.txt",
    );
    assert_eq!(
        out,
        "Makefile\nc.txt\nd\nhello.c\ninc\nl2\nlink\nmymod.py\nhello from the view\nmore\n"
    );
    let m = manifest(&fx);
    let get = |p: &str| m.get(p.as_bytes()).unwrap_or_else(|| panic!("{p} missing"));
    assert!(m.get(b"a.txt").is_none() && m.get(b"sub").is_none());
    assert_eq!(get("c.txt").size, 4);
    assert_eq!(get("c.txt").mode, 0o600);
    assert_eq!(get("d/e").kind, EntryKind::Dir);
    assert_eq!(get("l2").target, b"c.txt");
    assert_eq!(get("hello.c").size, 3);
    assert_eq!(get("Makefile").mtime_ns, 1_000_000_000_000_000_000);
    let store = vrift_common::store::Store::open(&fx.env.home()).unwrap();
    let blob = std::fs::read(store.blob_path(&get("d/a.txt").hash)).unwrap();
    assert_eq!(blob, b"hello from the view\nmore\n");
    // The blobs the run started from are as they were; new ones were only added.
    assert_store_intact(&fx.env.home(), &before);
    assert!(!fx.view.exists());
}

#[test]
fn shim_serves_python_gcc_make_and_programs_of_the_view() {
    let fx = fixture();
    let py = run(
        &fx,
        &[
            "/usr/bin/python3",
            "-c",
            "import sys, os; sys.path.insert(0, '.'); import mymod; print(mymod.X); \
             print(sorted(os.listdir('sub'))); open('out.txt', 'w').write('py'); \
             print(os.path.getsize('out.txt'), os.getcwd())",
        ],
    );
    assert_eq!(
        py,
        format!(
            "imported from the view\n['b.txt']\n2 {}\n",
            fx.view.display()
        )
    );
    assert_eq!(sh(&fx, "make -s && ./hello"), "built in the view\n");
    let m = manifest(&fx);
    assert_eq!(m.get(b"out.txt").unwrap().size, 2);
    assert_eq!(m.get(b"hello").unwrap().mode & 0o111, 0o111);
    // Made in the view, so up to date there: make has nothing to do.
    assert_eq!(sh(&fx, "make"), "make: 'hello' is up to date.\n");
}

#[test]
fn shim_git_works_in_a_repository_of_the_view() {
    let env = Env::new();
    let proj = env.mkdir("repo");
    write(&proj.join("tracked.txt"), "one\n");
    let git = |dir: &Path, args: &[&str]| {
        let mut c = std::process::Command::new("git");
        c.current_dir(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args);
        run_expect(&mut c, true);
    };
    git(&proj, &["init", "-q"]);
    git(&proj, &["add", "."]);
    git(&proj, &["commit", "-qm", "first"]);
    let m = env.dir.path().join("repo.manifest");
    manifest_of_dir(&env, &proj, &m);
    let view = env.dir.path().join("repo-view");
    let out = ok_within(
        &mut shim_run(
            &env,
            env.dir.path(),
            &m,
            &view,
            &[
                "/bin/sh",
                "-c",
                "echo two >> tracked.txt; echo new > untracked.txt; git status --porcelain; \
                 git -c user.name=t -c user.email=t@t commit -qam second && git log --format=%s",
            ],
        ),
        T,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        " M tracked.txt\n?? untracked.txt\nsecond\nfirst\n"
    );
}

#[test]
fn shim_fortify_probe_reaches_the_hooks() {
    let fx = fixture();
    let bin = build_dynamic_c("shimfortify.c", &["-O2", "-D_FORTIFY_SOURCE=2"]);
    let needs = undefined_symbols(&bin);
    for s in [
        "__open_2",
        "__readlink_chk",
        "__realpath_chk",
        "__getcwd_chk",
    ] {
        assert!(
            needs.iter().any(|n| n == s),
            "the probe does not call {s}: {needs:?}"
        );
    }
    let view = fx.view.to_str().unwrap();
    let out = run(&fx, &[bin.to_str().unwrap(), view, "0"]);
    assert_eq!(
        out,
        format!(
            "size 20 read hello from the view\nlink a.txt\nrealpath {view}/a.txt\ncwd {view}/sub\n"
        )
    );
}

#[test]
fn shim_answers_old_binaries_calling_xstat() {
    let fx = fixture();
    let bin = build_dynamic_c("shimxstat.c", &["-ldl"]);
    let out = run(&fx, &[bin.to_str().unwrap(), "sub/b.txt"]);
    assert_eq!(out, "4 644\n");
}

#[test]
fn shim_a_running_process_sees_another_processes_changes_at_once() {
    let fx = fixture();
    let watch = build_dynamic_c("shimwatch.c", &[]);
    let ready = fx.env.dir.path().join("ready");
    let go = fx.env.dir.path().join("go");
    let done = fx.env.dir.path().join("done");
    for f in [&ready, &go, &done] {
        fifo(f);
    }
    // The watcher lists sub/, then waits; a second process (started after it, so it cannot
    // have inherited anything) writes into sub/ and releases it; the watcher lists again.
    let script = format!(
        "{w} sub {ready} {go} {done} & cat {ready} > /dev/null; \
         /bin/sh -c 'printf 12345 > sub/new.txt; mkdir sub/dir; rm sub/b.txt; echo > {go}'; \
         cat {done} > /dev/null; wait",
        w = watch.display(),
        ready = ready.display(),
        go = go.display(),
        done = done.display(),
    );
    assert_eq!(sh(&fx, &script), "list b.txt\nlist dir new.txt\nsize 5\n");
}

#[test]
fn shim_concurrent_writers_lose_no_change() {
    let fx = fixture();
    // Four processes create 50 files each at the same time; every process of the run and the
    // saved manifest see all 200.
    let out = sh(
        &fx,
        "mkdir many; for w in 1 2 3 4; do \
           ( i=0; while [ $i -lt 50 ]; do echo $w > many/$w-$i; i=$((i+1)); done ) & \
         done; wait; ls many | wc -l",
    );
    assert_eq!(out.trim(), "200");
    let m = manifest(&fx);
    let n = m.iter().filter(|(p, _)| p.starts_with(b"many/")).count();
    assert_eq!(n, 200);
    assert_eq!(m.get(b"many/3-49").unwrap().size, 2);
}

#[test]
fn shim_children_keep_the_shim_even_with_a_cleared_environment() {
    let fx = fixture();
    assert_eq!(
        run(&fx, &["/usr/bin/env", "-i", "/bin/cat", "sub/b.txt"]),
        "bee\n"
    );
    assert_eq!(sh(&fx, "LD_PRELOAD= /bin/sh -c 'cat sub/b.txt'"), "bee\n");
}

#[test]
fn shim_refuses_a_static_binary_by_name() {
    let fx = fixture();
    let busybox = require_tool("busybox");
    let out = output_within(
        &mut shim_run(
            &fx.env,
            &fx.work,
            &fx.m,
            &fx.view,
            &[busybox.to_str().unwrap(), "ls"],
        ),
        T,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("busybox") && err.contains("statically linked"),
        "{err}"
    );
}

#[test]
fn shim_as_an_ordinary_user() {
    let fx = fixture();
    fx.env.give_to_nobody();
    let out = ok_within(
        &mut shim_run_as_user(
            &fx.env,
            &fx.work,
            &fx.m,
            &fx.view,
            &[
                "/bin/sh",
                "-c",
                "id -u; cat a.txt; echo x > mine.txt; stat -c %U mine.txt",
            ],
        ),
        T,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let uid = text.lines().next().unwrap().to_string();
    if is_root() {
        assert_ne!(uid, "0");
    }
    assert!(text.contains("hello from the view\n"), "{text}");
    assert!(manifest(&fx).get(b"mine.txt").is_some());
}

/// Every hook the shim is meant to export, by name; a missing one fails here.
const HOOKS: &[&str] = &[
    "open",
    "open64",
    "__open_2",
    "__open64_2",
    "openat",
    "openat64",
    "__openat_2",
    "__openat64_2",
    "creat",
    "creat64",
    "fopen",
    "fopen64",
    "freopen",
    "freopen64",
    "stat",
    "stat64",
    "lstat",
    "lstat64",
    "fstat",
    "fstat64",
    "fstatat",
    "fstatat64",
    "__xstat",
    "__xstat64",
    "__lxstat",
    "__lxstat64",
    "__fxstat",
    "__fxstat64",
    "__fxstatat",
    "__fxstatat64",
    "statx",
    "access",
    "faccessat",
    "eaccess",
    "euidaccess",
    "readlink",
    "readlinkat",
    "__readlink_chk",
    "__readlinkat_chk",
    "realpath",
    "__realpath_chk",
    "canonicalize_file_name",
    "opendir",
    "fdopendir",
    "readdir",
    "readdir64",
    "closedir",
    "dirfd",
    "rewinddir",
    "scandir",
    "scandir64",
    "chdir",
    "fchdir",
    "getcwd",
    "__getcwd_chk",
    "get_current_dir_name",
    "umask",
    "close",
    "fclose",
    "close_range",
    "closefrom",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "fcntl64",
    "execve",
    "execv",
    "execvp",
    "execvpe",
    "posix_spawn",
    "posix_spawnp",
    "mkdir",
    "mkdirat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "utimensat",
    "futimens",
    "utimes",
    "truncate",
    "chown",
    "lchown",
    "fchown",
    "fchownat",
    "truncate64",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "mknod",
    "mknodat",
    "__xmknod",
    "__xmknodat",
];

#[test]
fn shim_exports_every_hook() {
    let syms = defined_symbols(&shim_lib());
    let missing: Vec<&&str> = HOOKS
        .iter()
        .filter(|h| !syms.iter().any(|s| s == *h))
        .collect();
    assert!(
        missing.is_empty(),
        "hooks missing from the library: {missing:?}"
    );
}

/// `vrift run --projection shim -- /bin/sh -c SCRIPT` in the project `proj`, to success.
fn shim_sh_in_project(env: &Env, proj: &Path, script: &str) -> std::process::Output {
    ok_within(
        &mut env.vrift(
            proj,
            &["run", "--projection", "shim", "--", "/bin/sh", "-c", script],
        ),
        T,
    )
}

#[test]
fn shim_projection_of_vrift_run_writes_the_changes_back_to_the_project() {
    let env = Env::new();
    let proj = env.mkdir("proj");
    write(&proj.join("a.txt"), "in the project\n");
    write(&proj.join("old.txt"), "to be removed\n");
    ok_within(&mut env.vrift(&proj, &["init"]), T);
    let out = shim_sh_in_project(
        &env,
        &proj,
        "cat a.txt; echo made > new.txt; rm old.txt; pwd",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("in the project\n{}\n", proj.display())
    );
    assert_eq!(
        std::fs::read_to_string(proj.join("new.txt")).unwrap(),
        "made\n"
    );
    assert!(!proj.join("old.txt").exists());
    // A static program is refused by name before anything runs.
    let busybox = require_tool("busybox");
    let out = output_within(
        &mut env.vrift(
            &proj,
            &[
                "run",
                "--projection",
                "shim",
                "--",
                busybox.to_str().unwrap(),
                "true",
            ],
        ),
        T,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("statically linked"));
}

#[test]
fn shim_that_cannot_read_its_index_stops_the_program_naming_the_file() {
    let fx = fixture();
    let junk = fx.env.dir.path().join("junk.vidx");
    write(&junk, "not an index");
    let run_dir = fx.env.mkdir("run");
    // The library loaded by hand with a damaged index: the program must not run on the
    // real tree.
    let out = output_within(
        std::process::Command::new("/bin/cat")
            .arg(fx.env.dir.path().join("proj/a.txt"))
            .env("LD_PRELOAD", shim_lib())
            .env("VRIFT_SHIM_ROOT", &fx.view)
            .env("VRIFT_SHIM_INDEX", &junk)
            .env("VRIFT_SHIM_RUN", &run_dir)
            .env("VRIFT_SHIM_STORE", fx.env.home())
            .env("VRIFT_SHIM_OWNER", "0:0"),
        T,
    );
    assert_eq!(out.status.code(), Some(126));
    assert!(out.stdout.is_empty(), "the program ran");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.vidx") && err.contains("corrupt"),
        "{err}"
    );
    // Loaded outside a run (no VRIFT_SHIM_ROOT), it stays out of the way.
    let out = ok_within(
        std::process::Command::new("/bin/cat")
            .arg(fx.env.dir.path().join("proj/a.txt"))
            .env("LD_PRELOAD", shim_lib()),
        T,
    );
    assert_eq!(out.stdout, b"the disk's bytes\n");
}

#[test]
fn shim_descriptors_opened_in_the_view_keep_their_view_across_exec() {
    let fx = fixture();
    // The shell opens a.txt (mode 0644 in the view; its blob in the store is 0555) and
    // execs python with it as fd 3 and as stdin: fstat answers from the view in the child.
    let out = sh(
        &fx,
        "exec 3< a.txt; /usr/bin/python3 -c \
         'import os; print(oct(os.fstat(3).st_mode), os.fstat(0).st_size)' < sub/b.txt",
    );
    assert_eq!(out, "0o100644 4\n");
}

#[test]
fn shim_a_fork_while_another_thread_is_in_the_shim_does_not_hang_the_child() {
    let fx = fixture();
    // Threads stat view paths without pause while the main thread forks children that stat
    // a view path too: a child that inherited the shim's lock held would hang here.
    let out = run(
        &fx,
        &[
            "/usr/bin/python3",
            "-c",
            "import os, threading\n\
             stop = False\n\
             def spin():\n\
             \x20   while not stop: os.stat('a.txt')\n\
             ts = [threading.Thread(target=spin) for _ in range(3)]\n\
             [t.start() for t in ts]\n\
             n = 0\n\
             for _ in range(200):\n\
             \x20   pid = os.fork()\n\
             \x20   if pid == 0:\n\
             \x20       os._exit(0 if os.stat('sub/b.txt').st_size == 4 else 1)\n\
             \x20   n += os.waitpid(pid, 0)[1] == 0\n\
             stop = True\n\
             [t.join() for t in ts]\n\
             print(n)",
        ],
    );
    assert_eq!(out.trim(), "200");
}

/// A vrift project that is a git repository with `f1` and `sub/f2` committed.
fn git_project() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let proj = env.mkdir("repo");
    write(&proj.join("f1"), "one\n");
    write(&proj.join("sub/f2"), "two\n");
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &["commit", "-qm", "first"],
    ] {
        let mut c = std::process::Command::new("git");
        c.current_dir(&proj)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args);
        run_expect(&mut c, true);
    }
    ok_within(&mut env.vrift(&proj, &["init"]), T);
    (env, proj)
}

#[test]
fn shim_projection_passes_the_filtered_git_directory_through_from_any_cwd() {
    let (env, proj) = git_project();
    // .git is left out of the manifest and passes through to the real tree; the program's
    // cwd (in the view) is not the kernel's, so relative paths into .git must still work.
    let out = shim_sh_in_project(
        &env,
        &proj,
        "echo more >> f1; git --no-optional-locks status --porcelain; \
         cd sub && git --no-optional-locks status --porcelain .",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), " M f1\n");
    assert_eq!(
        std::fs::read_to_string(proj.join("f1")).unwrap(),
        "one\nmore\n"
    );
}

/// In a view of a project, a file the run has not changed is the disk's file: stat shows
/// its inode number and ctime, so git's index (which recorded them) matches without git
/// reading the file again: `git diff-files`, which compares only what stat says, lists
/// nothing. A file made in the run gets a number of its own; a file written in the run
/// keeps its number, as on a disk, and shows the write's ctime.
#[test]
fn shim_unchanged_files_of_a_project_show_their_disk_identity_and_git_status_is_clean() {
    use std::os::unix::fs::MetadataExt;
    let (env, proj) = git_project();
    let disk = |rel: &str| std::fs::symlink_metadata(proj.join(rel)).unwrap();
    let (f1, f2) = (disk("f1"), disk("sub/f2"));
    let out = shim_sh_in_project(
        &env,
        &proj,
        "git diff-files --name-only; echo status; git --no-optional-locks status \
         --porcelain; stat -c '%i %Z %z' f1; stat -c '%i %z' sub/f2; echo more >> sub/f2; \
         stat -c '%i %z' sub/f2; echo new > made.txt; stat -c %i made.txt",
    );
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    // Nothing from `git diff-files` before "status", nothing from `git status` after it.
    assert_eq!(lines[0], "status", "git saw changes: {out}");
    let f1_line: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(f1_line[0], f1.ino().to_string(), "{out}");
    assert_eq!(f1_line[1], f1.ctime().to_string(), "{out}");
    assert!(
        lines[1].contains(&format!(".{:09} ", f1.ctime_nsec())),
        "the disk's ctime to the nanosecond: {out}"
    );
    let (before, after) = lines[2]
        .split_once(' ')
        .zip(lines[3].split_once(' '))
        .unwrap();
    assert_eq!(before.0, f2.ino().to_string(), "{out}");
    assert_eq!(after.0, before.0, "a written file keeps its number: {out}");
    assert_ne!(after.1, before.1, "and shows the write's ctime: {out}");
    let made: u64 = lines[4].parse().unwrap();
    assert_ne!(made, disk("made.txt").ino(), "{out}");
    assert!(
        ![f1.ino(), f2.ino()].contains(&made),
        "a new file has a number no file of the disk had: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(proj.join("sub/f2")).unwrap(),
        "two\nmore\n"
    );
}

#[test]
fn shim_directory_streams_rewind_seek_and_read_reentrantly() {
    let fx = fixture();
    // Python's os.scandir uses readdir; this C-level check goes through ctypes on libc:
    // telldir after two entries, seekdir back there, readdir_r from it, rewinddir.
    let out = run(
        &fx,
        &[
            "/usr/bin/python3",
            "-c",
            "import ctypes, ctypes.util\n\
             c = ctypes.CDLL(None)\n\
             c.opendir.restype = ctypes.c_void_p\n\
             c.readdir.restype = ctypes.c_void_p\n\
             c.readdir.argtypes = [ctypes.c_void_p]\n\
             c.telldir.argtypes = [ctypes.c_void_p]\n\
             c.telldir.restype = ctypes.c_long\n\
             c.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]\n\
             c.rewinddir.argtypes = [ctypes.c_void_p]\n\
             c.closedir.argtypes = [ctypes.c_void_p]\n\
             def name(p): return ctypes.string_at(p + 19).decode()\n\
             d = c.opendir(b'sub')\n\
             a = [name(c.readdir(d)) for _ in range(2)]\n\
             at = c.telldir(d)\n\
             rest = name(c.readdir(d))\n\
             c.seekdir(d, at)\n\
             again = name(c.readdir(d))\n\
             c.rewinddir(d)\n\
             first = name(c.readdir(d))\n\
             print(sorted(a), rest, again, first, c.closedir(d))",
        ],
    );
    assert_eq!(out, "['.', '..'] b.txt b.txt . 0\n");
}

#[test]
fn shim_temporary_files_of_the_view_are_made_in_the_view() {
    let fx = fixture();
    // sed -i writes a temporary file beside its input (mkostemp) and renames it over it.
    let out = sh(&fx, "sed -i s/hello/bye/ a.txt && cat a.txt && ls");
    assert_eq!(
        out,
        "bye from the view\nMakefile\na.txt\nhello.c\ninc\nlink\nmymod.py\nsub\n"
    );
    let m = manifest(&fx);
    assert_eq!(m.get(b"a.txt").unwrap().size, 18);
    // Outside the view, the real function runs.
    let tmp = fx.env.mkdir("tmp");
    let script = format!("mktemp {}/x.XXXXXX", tmp.display());
    let made = sh(&fx, &script);
    assert!(Path::new(made.trim()).is_file(), "{made}");
}

/// `vrift gc` removes the cached indexes under the store's `index/` that no root's manifest
/// needs (a dry run only counts them), keeps the one of the project's current manifest, and
/// a later run works (building what it needs again).
#[test]
fn shim_gc_prunes_the_indexes_no_root_needs() {
    let mut env = Env::new();
    env.projection = "shim".into();
    let proj = env.mkdir("proj");
    write(&proj.join("a.txt"), "first\n");
    stdout_ok(&mut env.vrift(&proj, &["init"]));
    let cat = |env: &Env| stdout_ok(&mut env.vrift(&proj, &["run", "--", "/bin/cat", "a.txt"]));
    assert_eq!(cat(&env), "first\n");
    write(&proj.join("a.txt"), "second\n");
    assert_eq!(cat(&env), "second\n");
    let indexes = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.home().join("index"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        // Each index has its mark of having been checked beside it, kept and removed with it.
        let (marks, ixs): (Vec<String>, Vec<String>) =
            v.into_iter().partition(|n| n.ends_with(".checked"));
        let expected: Vec<String> = ixs.iter().map(|n| format!("{n}.checked")).collect();
        assert_eq!(marks, expected, "one mark per index");
        ixs
    };
    let before = indexes();
    assert_eq!(before.len(), 2, "one index per manifest run: {before:?}");
    let current = Manifest::load(&proj.join("vrift.manifest"))
        .unwrap()
        .hash()
        .to_hex();
    let dry = stdout_ok(&mut env.vrift(&proj, &["gc"]));
    assert!(dry.contains("unused manifest indexes: 1"), "{dry}");
    assert_eq!(indexes(), before, "a dry run removes nothing");
    let done = stdout_ok(&mut env.vrift(&proj, &["gc", "--delete"]));
    assert!(done.contains("deleted manifest indexes: 1"), "{done}");
    // Named by the manifest and the origins of its entries on disk.
    let left = indexes();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&format!("{current}-")), "{left:?}");
    assert_eq!(cat(&env), "second\n");
}

/// A shim run whose vrift is killed with SIGKILL: its program tree ends with it, and the
/// next run recovers the changes it had made (from the run's change log and private
/// copies) into the manifest file, and says so.
#[test]
fn shim_a_killed_run_is_recovered_by_the_next() {
    let fx = fixture();
    let marker = fx.work.join("written");
    let script = format!(
        "echo killed-run > new.txt && echo changed > a.txt && rm sub/b.txt && : > {} && exec sleep 600",
        marker.display()
    );
    let mut child = shim_run(
        &fx.env,
        &fx.work,
        &fx.m,
        &fx.view,
        &["/bin/sh", "-c", &script],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    assert!(
        wait_until(T, || marker.exists()),
        "the program never wrote its marker"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing was saved: the manifest is as it was.
    assert!(manifest(&fx).get(b"new.txt").is_none());
    let runs = fx.env.home().join("runs");
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count(),
        1,
        "the run's directory stays"
    );
    // The next run (any run of the store) recovers it.
    let mut next = fx.env.vrift(
        &fx.work,
        &[
            "run",
            "--projection",
            "shim",
            "--manifest",
            fx.m.to_str().unwrap(),
            "--",
            "/bin/true",
        ],
    );
    let out = ok_within(&mut next, T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recovered the changes of an interrupted run"),
        "{stderr}"
    );
    let m = manifest(&fx);
    let hash = |rel: &[u8]| m.get(rel).map(|e| e.hash);
    use vrift_common::hash::Hash;
    assert_eq!(hash(b"new.txt"), Some(Hash::of(b"killed-run\n")));
    assert_eq!(hash(b"a.txt"), Some(Hash::of(b"changed\n")));
    assert!(m.get(b"sub/b.txt").is_none());
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count(),
        0,
        "run directories left"
    );
}
