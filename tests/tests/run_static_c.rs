//! Static C programs (glibc `gcc -static` and `musl-gcc -static`) over a view: what they
//! stat, open and read is the manifest's, whatever happened to the disk since the ingest;
//! the `*at` family, statx, faccessat2, getdents64, chdir/getcwd and readlinkat agree with
//! the manifest; io_uring is refused.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use vrift_tests::*;

/// A deterministic blob of `n` bytes.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The layout atcalls.c expects, ingested from disk; returns (project dir, manifest,
/// outside file). Afterwards the disk copy is changed in every way it can be.
fn ingested_layout(env: &Env) -> (PathBuf, PathBuf, PathBuf) {
    let proj = env.mkdir("proj");
    let outside = env.dir.path().join("outside.txt");
    write(&outside, "outside the view\n");
    let d = proj.join("data");
    write(&d.join("a.txt"), "alpha\n");
    write(&d.join("b.bin"), bytes(300, 7));
    write(&d.join("sub/c.txt"), "gamma\n");
    symlink("a.txt", d.join("link")).unwrap();
    symlink("../top.txt", d.join("uplink")).unwrap();
    write(&proj.join("top.txt"), "top\n");
    write(&proj.join("tool"), "#!/bin/sh\necho tool\n");
    symlink(&outside, proj.join("out")).unwrap();
    symlink("../outside.txt", proj.join("outrel")).unwrap();
    chmod(&d.join("a.txt"), 0o644);
    chmod(&d.join("b.bin"), 0o600);
    chmod(&d.join("sub/c.txt"), 0o640);
    chmod(&d.join("sub"), 0o750);
    chmod(&d, 0o755);
    chmod(&proj, 0o755);
    chmod(&proj.join("tool"), 0o755);
    set_mtime(&d.join("b.bin"), 1_500_000_000);
    set_mtime(&proj.join("top.txt"), 1_500_000_100);
    set_mtime(&d.join("sub/c.txt"), 1_500_000_200);
    let m = env.dir.path().join("proj.manifest");
    manifest_of_dir(env, &proj, &m);

    // The disk moves on; the view must not.
    write(&d.join("a.txt"), "ALPHA CHANGED ON DISK, LONGER\n");
    std::fs::remove_file(d.join("b.bin")).unwrap();
    std::fs::remove_file(d.join("link")).unwrap();
    write(&d.join("link"), "now a regular file\n");
    write(&d.join("new-on-disk.txt"), "x");
    chmod(&d.join("sub"), 0o700);
    std::fs::remove_file(proj.join("top.txt")).unwrap();
    chmod(&proj.join("tool"), 0o644);
    (proj, m, outside)
}

fn expected_atcalls(root: &Path, outside: &Path, link_mtime: i64) -> String {
    let r = root.display();
    let o = outside.display();
    let olen = o.to_string().len();
    format!(
        "start cwd: {r}
openat a.txt: alpha
openat ../top.txt: top
openat sub/../a.txt: alpha
openat sub/c.txt: gamma
openat link: alpha
openat uplink: top
openat link nofollow: ELOOP
openat missing: ENOENT
openat a.txt/x: ENOTDIR
openat a.txt directory: ENOTDIR
openat abs top.txt: top
fstatat link nofollow: l 777 5
fstatat link: f 644 6
fstatat sub: d 750 4096
fstatat b.bin: f 600 300
fstatat ..: d 755 4096
fstatat missing: ENOENT
statx empty_path fd b.bin: f 600 300 mtime=1500000000
fstat fd b.bin: f 600 300
fstatat empty_path fd b.bin: f 600 300
statx link nofollow: l 777 5 mtime={link_mtime}
statx uplink: f 644 4 mtime=1500000100
statx empty_path dirfd: d 755 4096 mtime={dmtime}
statx empty_path O_PATH sub/c.txt: f 640 6 mtime=1500000200
faccessat a.txt R_OK: OK
faccessat a.txt X_OK: EACCES
faccessat ../tool X_OK: OK
faccessat missing F_OK: ENOENT
faccessat2 sub/c.txt R_OK EACCESS: OK
faccessat2 link F_OK NOFOLLOW: OK
faccessat2 tool X_OK: OK
faccessat2 a.txt X_OK: EACCES
access top.txt R_OK: OK
getdents64 data: . .. a.txt b.bin link sub uplink
getdents64 root: . .. data out outrel tool top.txt
chdir data/sub: OK
getcwd after chdir: {r}/data/sub
read c.txt relative: gamma
fchdir data: OK
getcwd after fchdir: {r}/data
read a.txt relative: alpha
chdir ..: OK
getcwd after chdir ..: {r}
chdir absolute data/sub: OK
getcwd after absolute chdir: {r}/data/sub
chdir root: OK
readlinkat link: a.txt
readlinkat out: {o}
readlinkat a.txt: EINVAL
open out (symlink leaving the view): outside the view
open outrel (relative symlink leaving the view): outside the view
open ../outside.txt: outside the view
open ../<root>/top.txt (leaves and re-enters): top
open <root>/../<root>/data/./sub//c.txt: gamma
stat ../<root>/top.txt: f 644 4
stat out: f 644 17
lstat out: l 777 {olen}
openat2 RESOLVE_IN_ROOT: OK
openat2 RESOLVE_BENEATH ..: EXDEV
openat2 link + fstat: f 644 6
io_uring_setup: ENOSYS
",
        dmtime = "DMTIME"
    )
}

/// Compare line by line so a failure names the probes that differ.
fn assert_lines(got: &str, want: &str) {
    let g: Vec<&str> = got.lines().collect();
    let w: Vec<&str> = want.lines().collect();
    let mut diffs = Vec::new();
    for i in 0..g.len().max(w.len()) {
        let (a, b) = (g.get(i).copied(), w.get(i).copied());
        if a != b {
            diffs.push(format!("  want {b:?}\n   got {a:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} lines differ:\n{}\n--- full output:\n{got}",
        diffs.len(),
        diffs.join("\n")
    );
}

fn atcalls(as_user: bool) {
    let env = Env::new();
    let (proj, m, outside) = ingested_layout(&env);
    let manifest = vrift_common::manifest::Manifest::load(&m).unwrap();
    let link_mtime = manifest.get(b"data/link").unwrap().mtime_ns / 1_000_000_000;
    let data_mtime = manifest.get(b"data").unwrap().mtime_ns / 1_000_000_000;
    let bin = build_static_c("gcc", "atcalls.c", &[]);
    let root = proj.to_str().unwrap();
    let bin = bin.to_str().unwrap();
    let out = if as_user {
        env.give_to_nobody();
        run_expect(&mut vrift_run_as_user(&env, &proj, &m, &[bin, root]), true)
    } else {
        run_expect(&mut vrift_run(&env, &proj, &m, &[bin, root]), true)
    };
    let got = String::from_utf8(out.stdout).unwrap();
    let mut want =
        expected_atcalls(&proj, &outside, link_mtime).replace("DMTIME", &data_mtime.to_string());
    if env.projection == "overlay" {
        // The kernel serves the overlay view, io_uring included (nothing to bypass): the
        // probe's deliberately bad parameters get the kernel's own EFAULT.
        want = want.replace("io_uring_setup: ENOSYS", "io_uring_setup: EFAULT");
    }
    assert_lines(&got, &want);
}

matrix!(at_calls_statx_getdents_getcwd_and_symlinks_follow_the_manifest => atcalls, needs_namespaces = "it runs statically linked C programs, which chdir into view directories and open symlinks themselves with O_PATH, what the supervisor without mounts refuses");

/// A file of a test tree: relative path, content, mode.
type FileSpec = (String, Vec<u8>, u32);

/// The files probe.c and threads.c read, with the manifest's bytes.
fn probe_tree(env: &Env) -> (PathBuf, PathBuf, Vec<FileSpec>) {
    let proj = env.mkdir("proj");
    let mut files = Vec::new();
    for i in 0..24 {
        let content = bytes(i * 997 + (i % 3) * 70_000, i as u8);
        let mode = [0o644, 0o600, 0o755, 0o444][i % 4];
        let rel = format!("d{}/f{i}.dat", i % 5);
        write(&proj.join(&rel), &content);
        chmod(&proj.join(&rel), mode);
        files.push((rel, content, mode));
    }
    symlink("d0/f0.dat", proj.join("ln")).unwrap();
    let m = env.dir.path().join("proj.manifest");
    manifest_of_dir(env, &proj, &m);
    // Replace, truncate, chmod and delete on disk after the ingest.
    for (i, (rel, _, _)) in files.iter().enumerate() {
        let p = proj.join(rel);
        match i % 4 {
            0 => write(&p, "replaced"),
            1 => std::fs::remove_file(&p).unwrap(),
            2 => chmod(&p, 0o600),
            _ => std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(1)
                .unwrap(),
        }
    }
    std::fs::remove_file(proj.join("ln")).unwrap();
    (proj, m, files)
}

fn probe_with(cc: &str, as_user: bool) {
    let env = Env::new();
    let (proj, m, files) = probe_tree(&env);
    let bin = build_static_c(cc, "probe.c", &[]);
    let mut args: Vec<&str> = vec![bin.to_str().unwrap()];
    args.extend(files.iter().map(|(r, _, _)| r.as_str()));
    args.extend(["ln", "d3", "missing"]);
    let out = if as_user {
        env.give_to_nobody();
        stdout_ok(&mut vrift_run_as_user(&env, &proj, &m, &args))
    } else {
        stdout_ok(&mut vrift_run(&env, &proj, &m, &args))
    };
    let mut want = String::new();
    for (rel, content, mode) in &files {
        // 0o444 and 0o600 files stay readable: as root always, as the user because the
        // user owns the view's files.
        want += &format!(
            "{rel} f {mode:o} {} {:016x}\n",
            content.len(),
            fnv1a64(content)
        );
    }
    let (_, c0, _) = &files[0];
    want += &format!("ln l 644 {} {:016x}\n", c0.len(), fnv1a64(c0));
    want += "d3 d 755 4096 -\n";
    want += "missing error ENOENT\n";
    assert_lines(&out, &want);
}

projections! {
    not_shim = "it runs statically linked C programs";
    fn gcc_static_program_reads_manifest_content_and_metadata() {
    probe_with("gcc", false);
}
}

projections! {
    not_shim = "it runs statically linked C programs";
    fn musl_static_program_reads_manifest_content_and_metadata() {
    probe_with("musl-gcc", false);
}
}

projections! {
    not_shim = "it runs statically linked C programs";
    fn musl_static_program_as_an_ordinary_user() {
    probe_with("musl-gcc", true);
}
}

fn threads_with(cc: &str, extra: &[&str]) {
    let env = Env::new();
    let (proj, m, files) = probe_tree(&env);
    let bin = build_static_c(cc, "threads.c", extra);
    let mut args: Vec<&str> = vec![bin.to_str().unwrap(), "40"];
    args.extend(files.iter().map(|(r, _, _)| r.as_str()));
    let out = stdout_ok(&mut vrift_run(&env, &proj, &m, &args));
    let mut want = String::new();
    for (rel, content, _) in &files {
        want += &format!("{rel} {} {:016x}\n", content.len(), fnv1a64(content));
    }
    want += &format!("threads=8 reads={} mismatches=0\n", 8 * 40 * files.len());
    assert_lines(&out, &want);
}

projections! {
    not_shim = "it runs statically linked C programs";
    fn musl_static_eight_threads_read_the_view_concurrently() {
    threads_with("musl-gcc", &[]);
}
}

projections! {
    not_shim = "it runs statically linked C programs";
    fn glibc_static_eight_threads_read_the_view_concurrently() {
    threads_with("gcc", &["-pthread"]);
}
}

/// Modes in the manifest are judged as the kernel would for the caller: an ordinary user
/// (who owns the view) cannot read a 0o000 file, search a 0o000 dir or exec a 0o644 file;
/// root can read and search, but exec still needs an x bit.
fn modes_enforced(as_user: bool) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let m = env.dir.path().join("view.manifest");
    let tool = std::fs::read(build_static_c("musl-gcc", "probe.c", &[])).unwrap();
    make_manifest(
        &env,
        &m,
        &[
            Node::File("secret", b"secret\n", 0o000),
            Node::File("writeonly", b"w\n", 0o200),
            Node::Dir("locked", 0o000),
            Node::File("locked/inner.txt", b"inner\n", 0o644),
            Node::File("open.txt", b"open\n", 0o644),
            Node::File("tool", &tool, 0o755),
            Node::File("notexec", &tool, 0o644),
        ],
    );
    if as_user {
        env.give_to_nobody();
    }
    let args = [
        "./tool",
        "secret",
        "writeonly",
        "locked/inner.txt",
        "open.txt",
        "../proj/secret",
    ];
    // probe exits 1 when stat and fstat disagree; the lines say what differs.
    let out = if as_user {
        vrift_run_as_user(&env, &proj, &m, &args).output().unwrap()
    } else {
        vrift_run(&env, &proj, &m, &args).output().unwrap()
    };
    let got = String::from_utf8(out.stdout).unwrap();
    let line =
        |p: &str, mode: u32, c: &[u8]| format!("{p} f {mode:o} {} {:016x}\n", c.len(), fnv1a64(c));
    let want = if as_user {
        format!(
            "secret error EACCES\nwriteonly error EACCES\nlocked/inner.txt error EACCES\n{}\
             ../proj/secret error EACCES\n",
            line("open.txt", 0o644, b"open\n")
        )
    } else {
        format!(
            "{}{}{}{}{}",
            line("secret", 0, b"secret\n"),
            line("writeonly", 0o200, b"w\n"),
            line("locked/inner.txt", 0o644, b"inner\n"),
            line("open.txt", 0o644, b"open\n"),
            line("../proj/secret", 0, b"secret\n")
        )
    };
    assert_lines(&got, &want);
    assert!(out.status.success(), "probe: {:?}", out.status);
    // exec needs an x bit, for root too.
    let st = if as_user {
        vrift_run_as_user(&env, &proj, &m, &["./notexec"])
            .output()
            .unwrap()
    } else {
        vrift_run(&env, &proj, &m, &["./notexec"]).output().unwrap()
    };
    assert!(!st.status.success(), "a 0644 view file was executed");
    let err = String::from_utf8_lossy(&st.stderr).to_lowercase();
    assert!(err.contains("permission denied"), "stderr: {err}");
}

matrix!(manifest_modes_for_root => modes_enforced, not_shim = "it runs statically linked C programs");
