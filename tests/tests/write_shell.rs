//! Writes inside the view with busybox-static applets and everyday tools (`vrift run` in a
//! project directory): what the program sees while it runs, and what the real project holds
//! after the run's changes are written back. Each case runs as root and as an ordinary user;
//! the store keeps every blob it had, intact.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vrift_tests::*;

fn file(mode: u32, content: &str) -> RealNode {
    RealNode::File {
        mode,
        content: content.as_bytes().to_vec(),
    }
}

fn dir(mode: u32) -> RealNode {
    RealNode::Dir { mode }
}

fn tree(entries: &[(&str, RealNode)]) -> BTreeMap<String, RealNode> {
    entries
        .iter()
        .map(|(p, n)| (p.to_string(), n.clone()))
        .collect()
}

fn assert_tree(p: &Project, want: &[(&str, RealNode)]) {
    let got = p.tree();
    let want = tree(want);
    if got != want {
        let show = |t: &BTreeMap<String, RealNode>| {
            t.iter()
                .map(|(k, v)| format!("  {k}: {}", short(v)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "the project on disk after the run:\n{}\nwanted:\n{}",
            show(&got),
            show(&want)
        );
    }
}

fn short(n: &RealNode) -> String {
    match n {
        RealNode::File { mode, content } => {
            format!("file {mode:o} {:?}", String::from_utf8_lossy(content))
        }
        RealNode::Dir { mode } => format!("dir {mode:o}"),
        RealNode::Symlink(t) => format!("symlink -> {}", t.display()),
        RealNode::Other(t) => format!("special {t:o}"),
    }
}

// ---- echo > new.txt, >> appends ----

fn echo_creates_and_appends(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("old.txt", "old\n", 0o644);
    p.ready();
    let got = p.sh(
        "umask 022; echo hi > new.txt && echo more >> old.txt && cat new.txt old.txt && \
         $BB stat -c '%n %s %a' new.txt old.txt",
    );
    assert_eq!(got, "hi\nold\nmore\nnew.txt 3 644\nold.txt 9 644\n");
    assert_tree(
        &p,
        &[
            ("new.txt", file(0o644, "hi\n")),
            ("old.txt", file(0o644, "old\nmore\n")),
        ],
    );
    // The next run sees the written-back files.
    assert_eq!(p.sh("cat new.txt old.txt"), "hi\nold\nmore\n");
    p.check_store();
}

matrix!(echo_into_a_new_file_lands_on_disk => echo_creates_and_appends);

// ---- mkdir -p, rm -rf, mv of a directory ----

fn directories(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("dir1/x.txt", "x\n", 0o644);
    p.file("dir1/sub/y.txt", "y\n", 0o600);
    p.file("rmme/f", "f\n", 0o644);
    p.file("rmme/deep/er/g", "g\n", 0o644);
    p.file("keep.txt", "keep\n", 0o644);
    p.ready();
    let got = p.sh(
        "umask 022; $BB mkdir -p a/b/c && $BB rm -rf rmme && $BB mv dir1 dir2 && \
         $BB find . | $BB sort && cat dir2/sub/y.txt",
    );
    assert_eq!(
        got,
        ".\n./a\n./a/b\n./a/b/c\n./dir2\n./dir2/sub\n./dir2/sub/y.txt\n./dir2/x.txt\n./keep.txt\ny\n"
    );
    assert_tree(
        &p,
        &[
            ("a", dir(0o755)),
            ("a/b", dir(0o755)),
            ("a/b/c", dir(0o755)),
            ("dir2", dir(0o755)),
            ("dir2/sub", dir(0o755)),
            ("dir2/sub/y.txt", file(0o600, "y\n")),
            ("dir2/x.txt", file(0o644, "x\n")),
            ("keep.txt", file(0o644, "keep\n")),
        ],
    );
    p.check_store();
}

matrix!(mkdir_rm_rf_and_a_directory_rename_are_written_back => directories);

// ---- cp -r, ln -s, ln ----

fn copies_and_links(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("old.txt", "old\n", 0o644);
    p.file("src/a.c", "int a;\n", 0o644);
    p.file("src/inner/b.h", "#define B\n", 0o600);
    p.file("src/run.sh", "#!/bin/sh\necho run\n", 0o755);
    p.ready();
    let got = p.sh(
        "umask 022; $BB cp -r src dst && $BB ln -s old.txt sym && $BB ln old.txt hard && \
         cat sym hard dst/inner/b.h && $BB readlink sym && \
         $BB stat -c '%n %a' dst/run.sh dst/inner/b.h hard && ./dst/run.sh",
    );
    assert_eq!(
        got,
        "old\nold\n#define B\nold.txt\ndst/run.sh 755\ndst/inner/b.h 600\nhard 644\nrun\n"
    );
    assert_tree(
        &p,
        &[
            ("dst", dir(0o755)),
            ("dst/a.c", file(0o644, "int a;\n")),
            ("dst/inner", dir(0o755)),
            ("dst/inner/b.h", file(0o600, "#define B\n")),
            ("dst/run.sh", file(0o755, "#!/bin/sh\necho run\n")),
            ("hard", file(0o644, "old\n")),
            ("old.txt", file(0o644, "old\n")),
            ("src", dir(0o755)),
            ("src/a.c", file(0o644, "int a;\n")),
            ("src/inner", dir(0o755)),
            ("src/inner/b.h", file(0o600, "#define B\n")),
            ("src/run.sh", file(0o755, "#!/bin/sh\necho run\n")),
            ("sym", RealNode::Symlink(PathBuf::from("old.txt"))),
        ],
    );
    p.check_store();
}

matrix!(cp_r_ln_s_and_ln_are_written_back => copies_and_links);

// ---- mkfifo ----

fn fifo(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.ready();
    let got = p.sh(
        "$BB mkfifo pipe && { echo through-the-fifo > pipe & } && read line < pipe && wait && \
         echo \"got $line\" && $BB stat -c '%F' pipe && echo after > after.txt",
    );
    assert_eq!(got, "got through-the-fifo\nfifo\n");
    let t = p.tree();
    assert_eq!(t.get("after.txt"), Some(&file(0o644, "after\n")), "{t:?}");
    // A FIFO has no content for the store; if it reaches the disk it is still a FIFO.
    if let Some(n) = t.get("pipe") {
        assert_eq!(n, &RealNode::Other(0o010000), "pipe on disk");
    }
    p.check_store();
}

matrix!(a_fifo_made_in_the_view_carries_data_between_processes => fifo, not_shim = "the shim serves no FIFOs in the view (mkfifo and mknod there are not served)");

// ---- chmod, touch -d, truncate -s ----

/// 2001-02-03 04:05:06 UTC.
const STAMP: i64 = 981_173_106;
/// When the fixture's files were last changed (before the ingest).
const OLD: u64 = 1_500_000_000;

fn metadata(as_user: bool) {
    let mut p = Project::new(as_user);
    let perm = p.file("perm.txt", "perm\n", 0o644);
    let stamp = p.file("stamp.txt", "stamp\n", 0o644);
    let big: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let trunc = p.file("trunc.txt", &big, 0o640);
    for f in [&perm, &stamp, &trunc] {
        set_mtime(f, OLD);
    }
    p.ready();
    let got = p.sh(
        "$BB chmod 600 perm.txt && $BB touch -d '2001-02-03 04:05:06' stamp.txt && \
         $BB truncate -s 10 trunc.txt && $BB stat -c '%n %s %a %Y' perm.txt stamp.txt && \
         $BB stat -c '%n %s %a' trunc.txt && cat trunc.txt",
    );
    assert_eq!(
        got,
        format!("perm.txt 5 600 {OLD}\nstamp.txt 6 644 {STAMP}\ntrunc.txt 10 640\nabcdefghij")
    );
    assert_tree(
        &p,
        &[
            ("perm.txt", file(0o600, "perm\n")),
            ("stamp.txt", file(0o644, "stamp\n")),
            ("trunc.txt", file(0o640, "abcdefghij")),
        ],
    );
    assert_eq!(mtime_ns(&stamp), STAMP * 1_000_000_000, "stamp.txt mtime");
    assert_eq!(
        mtime_ns(&perm),
        OLD as i64 * 1_000_000_000,
        "chmod kept the mtime"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = mtime_ns(&trunc) / 1_000_000_000;
    assert!(
        (now - 300..=now + 5).contains(&t),
        "truncate should set trunc.txt's mtime to the time of the run, got {t} (now {now})"
    );
    p.check_store();
}

matrix!(chmod_touch_and_truncate_are_written_back => metadata);

// ---- sed -i ----

fn sed_in_place(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("bb.txt", "one old two\nold again\n", 0o640);
    p.file("gnu.txt", "three old four\n", 0o600);
    p.ready();
    let sed = require_tool("sed");
    let got = p.sh(&format!(
        "$BB sed -i s/old/new/ bb.txt && {} -i s/old/new/g gnu.txt && cat bb.txt gnu.txt && \
         $BB stat -c '%n %a' bb.txt gnu.txt && $BB ls",
        sed.display()
    ));
    assert_eq!(
        got,
        "one new two\nnew again\nthree new four\nbb.txt 640\ngnu.txt 600\nbb.txt\ngnu.txt\n"
    );
    assert_tree(
        &p,
        &[
            ("bb.txt", file(0o640, "one new two\nnew again\n")),
            ("gnu.txt", file(0o600, "three new four\n")),
        ],
    );
    p.check_store();
}

matrix!(sed_i_replaces_files_by_rename => sed_in_place);

// ---- tar x into the view, tar c of the view ----

/// Files, dirs and a symlink with assorted modes and fixed mtimes.
fn payload(root: &Path) {
    let files: &[(&str, &str, u32)] = &[
        ("top.txt", "top\n", 0o644),
        ("bin/tool", "#!/bin/sh\necho tool\n", 0o755),
        ("lib/deep/er/data.bin", "\u{1}\u{2}binary-ish\n", 0o600),
        ("lib/readonly.txt", "ro\n", 0o444),
        ("empty", "", 0o644),
    ];
    for (rel, content, mode) in files {
        let p = root.join(rel);
        write(&p, content);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&p, OLD + rel.len() as u64);
    }
    std::os::unix::fs::symlink("lib/deep/er/data.bin", root.join("link")).unwrap();
    std::fs::set_permissions(root.join("lib"), std::fs::Permissions::from_mode(0o750)).unwrap();
}

fn file_mtimes(root: &Path) -> BTreeMap<String, i64> {
    real_tree(root, &[])
        .into_iter()
        .filter(|(_, n)| matches!(n, RealNode::File { .. }))
        .map(|(rel, _)| {
            let t = mtime_ns(&root.join(&rel)) / 1_000_000_000;
            (rel, t)
        })
        .collect()
}

fn tar_round_trip(as_user: bool) {
    let tar = require_tool("tar");
    let mut p = Project::new(as_user);
    p.file("README", "readme\n", 0o644);
    let src = p.env.mkdir("payload");
    payload(&src);
    let archive = p.out.join("payload.tar");
    let mut c = Command::new(&tar);
    c.arg("-cf").arg(&archive).arg("-C").arg(&src).arg(".");
    run_expect(&mut c, true);
    p.ready();
    let script = format!(
        "umask 022; mkdir unpacked && {tar} -xf $OUT/payload.tar -C unpacked && \
         {tar} -cf $OUT/view.tar -C unpacked . && cat unpacked/lib/readonly.txt && \
         $BB stat -c '%n %a %Y' unpacked/bin/tool && ./unpacked/bin/tool",
        tar = tar.display()
    );
    let got = p.sh(&script);
    assert_eq!(
        got,
        format!(
            "ro\nunpacked/bin/tool 755 {}\ntool\n",
            OLD + "bin/tool".len() as u64
        )
    );
    // What tar unpacked in the view is on disk, modes and mtimes as in the archive.
    let unpacked = p.dir.join("unpacked");
    let want = real_tree(&src, &[]);
    assert_eq!(real_tree(&unpacked, &[]), want, "unpacked in the view");
    assert_eq!(file_mtimes(&unpacked), file_mtimes(&src));
    // And the archive tar made from the view holds the same tree.
    let back = p.env.mkdir("back");
    let mut c = Command::new(&tar);
    c.arg("-xf")
        .arg(p.out.join("view.tar"))
        .arg("-C")
        .arg(&back);
    run_expect(&mut c, true);
    assert_eq!(real_tree(&back, &[]), want, "archived from the view");
    assert_eq!(file_mtimes(&back), file_mtimes(&src));
    p.check_store();
}

matrix!(tar_unpacks_into_the_view_and_archives_it_again => tar_round_trip);

// ---- excluded paths pass through to the disk at once ----

fn passthrough(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file(
        "Cargo.toml",
        "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
        0o644,
    );
    p.file("src/main.rs", "fn main() {}\n", 0o644);
    p.file("target/debug/.keep", "", 0o644);
    let ready = p.out.join("ready");
    let go = p.out.join("go");
    mkfifo(&go);
    p.ready();
    let bb = busybox();
    let mut child = p
        .cmd(&[
            bb.to_str().unwrap(),
            "sh",
            "-c",
            "echo built > target/debug/out && echo new > src/new.rs && echo ready > $OUT/ready \
             && read x < $OUT/go && echo released",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_until(Duration::from_secs(60), || ready.exists()) {
        let _ = child.kill();
        panic!("the program never wrote {}", ready.display());
    }
    let during = p.tree();
    release(&go);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "released\n");
    // target/ is excluded for a Cargo project: the write went straight to the disk...
    assert_eq!(
        during.get("target/debug/out"),
        Some(&file(0o644, "built\n")),
        "during the run"
    );
    // ...while a view write waits for the end of the run.
    assert_eq!(during.get("src/new.rs"), None, "during the run");
    let after = p.tree();
    assert_eq!(after.get("target/debug/out"), Some(&file(0o644, "built\n")));
    assert_eq!(after.get("src/new.rs"), Some(&file(0o644, "new\n")));
    p.check_store();
}

matrix!(excluded_paths_are_written_straight_to_the_disk => passthrough);

// ---- writes through symlinks, kinds that change, a large file ----

fn symlinks_and_kinds(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("sub/existing.txt", "existing\n", 0o644);
    p.file("was-file", "file\n", 0o644);
    p.file("was-dir/x", "x\n", 0o644);
    std::os::unix::fs::symlink("sub", p.dir.join("link")).unwrap();
    std::os::unix::fs::symlink("sub/existing.txt", p.dir.join("flink")).unwrap();
    p.ready();
    let got = p.sh(
        "umask 022; echo through > link/new.txt && echo appended >> flink && \
         $BB rm was-file && $BB mkdir was-file && echo inside > was-file/f && \
         $BB rm -r was-dir && echo now-a-file > was-dir && \
         $BB rm link && $BB ln -s was-file link && cat link/f sub/new.txt flink",
    );
    assert_eq!(got, "inside\nthrough\nexisting\nappended\n");
    assert_tree(
        &p,
        &[
            (
                "flink",
                RealNode::Symlink(PathBuf::from("sub/existing.txt")),
            ),
            ("link", RealNode::Symlink(PathBuf::from("was-file"))),
            ("sub", dir(0o755)),
            ("sub/existing.txt", file(0o644, "existing\nappended\n")),
            ("sub/new.txt", file(0o644, "through\n")),
            ("was-dir", file(0o644, "now-a-file\n")),
            ("was-file", dir(0o755)),
            ("was-file/f", file(0o644, "inside\n")),
        ],
    );
    p.check_store();
}

matrix!(writes_through_symlinks_and_entries_that_change_kind => symlinks_and_kinds);

fn large_file(as_user: bool) {
    let mut p = Project::new(as_user);
    let seed: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    p.file("seed.bin", &seed, 0o644);
    p.ready();
    // 24 MB written through pipes and appends; the view's copy and the disk's agree.
    let got = p.sh(
        "for i in 1 2 3 4 5 6 7 8; do cat seed.bin >> big.bin; done && \
         $BB dd if=seed.bin of=seed.bin bs=1000 seek=1000 count=10 conv=notrunc 2>/dev/null && \
         $BB stat -c %s big.bin seed.bin && $BB md5sum big.bin seed.bin",
    );
    let big = std::fs::read(p.dir.join("big.bin")).unwrap();
    assert_eq!(big.len(), 8 * seed.len());
    assert!(big.chunks(seed.len()).all(|c| c == seed.as_slice()));
    // dd copied the file's own bytes 0..10000 over 1_000_000..1_010_000.
    let mut seed2 = seed.clone();
    seed2.copy_within(0..10_000, 1_000_000);
    assert_eq!(std::fs::read(p.dir.join("seed.bin")).unwrap(), seed2);
    let md5 = |p: &Path| {
        let mut c = Command::new("md5sum");
        c.arg(p);
        stdout_ok(&mut c)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let want = format!(
        "{}\n{}\n{}  big.bin\n{}  seed.bin\n",
        big.len(),
        seed.len(),
        md5(&p.dir.join("big.bin")),
        md5(&p.dir.join("seed.bin"))
    );
    assert_eq!(got, want);
    p.check_store();
}

matrix!(a_large_file_is_written_and_changed_in_place => large_file);

// ---- a file removed while still open ----

fn unlinked_while_open(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.file("old.txt", "old\n", 0o644);
    p.ready();
    // The shell holds each file open while it is removed and written on.
    let got = p.sh("{ echo data; $BB rm gone.txt; echo more; } > gone.txt && \
         { echo new; $BB rm old.txt; echo more; } > old.txt && $BB ls");
    assert_eq!(got, "keep.txt\n");
    assert_tree(&p, &[("keep.txt", file(0o644, "keep\n"))]);
    p.check_store();
}

matrix!(a_file_removed_while_open_does_not_come_back => unlinked_while_open);
