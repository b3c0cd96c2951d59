//! RFC-0047's rows, as a program sees them through the kernel's interface: the errors Linux
//! gives (EACCES for a read-only file unless root, EEXIST, ENOTEMPTY, EXDEV across the view's
//! boundary, with `mv` falling back to copy and delete), what stat and reads show right
//! after a write, in the writing process and in another one, and concurrent writers of one
//! file. Every case runs as root and as an ordinary user; the project on disk is checked
//! after the write-back, and the store keeps every blob intact.

use std::collections::BTreeMap;

use vrift_tests::*;

fn writeops() -> String {
    build_c("gcc", "writeops.c", &[]).display().to_string()
}

/// `busybox sh -c SCRIPT` with `$W` the writeops program.
fn sh(p: &Project, script: &str) -> String {
    p.sh(&format!("W={}; {script}", writeops()))
}

fn file(mode: u32, content: &str) -> RealNode {
    RealNode::File {
        mode,
        content: content.as_bytes().to_vec(),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const OLD: u64 = 1_500_000_000;

// ---- errors ----

fn error_rows(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("ro.txt", "ro\n", 0o444);
    p.file("exist.txt", "exists\n", 0o644);
    p.file("full/x", "x\n", 0o644);
    p.file("srcdir/y", "y\n", 0o644);
    p.ready();
    let before = p.tree();
    let got = sh(
        &p,
        "$W open-w ro.txt; $W excl exist.txt; $W rename srcdir full; $W rmdir full; \
         $W rename exist.txt $OUT/moved.txt; cat ro.txt",
    );
    let root = !as_user && is_root();
    let (open_w, content) = if root {
        ("OK", "rewritten\n")
    } else {
        ("EACCES", "ro\n")
    };
    // overlayfs refuses to rename a directory of the lower layer (EXDEV, before it looks
    // at the target); see "Overlay semantics" in ARCHITECTURE.md.
    let dir_rename = if p.env.projection == "overlay" {
        "EXDEV"
    } else {
        "ENOTEMPTY"
    };
    assert_eq!(
        got,
        format!(
            "open-w: {open_w}\nexcl: EEXIST\nrename: {dir_rename}\nrmdir: ENOTEMPTY\n\
             rename: EXDEV\n{content}"
        )
    );
    // Only root's write reached the disk, mode kept; nothing left the project.
    let mut want = before.clone();
    want.insert("ro.txt".into(), file(0o444, content));
    assert_eq!(p.tree(), want);
    assert!(!p.out.join("moved.txt").exists());
    p.check_store();
}

matrix!(eacces_eexist_enotempty_exdev_as_root => error_rows);

// ---- mv across the view's boundary ----

fn mv_across(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("leave.txt", "leaving\n", 0o640);
    p.file("leavedir/a", "a\n", 0o644);
    p.file("leavedir/b/c", "c\n", 0o600);
    p.file("stay.txt", "stay\n", 0o644);
    write(&p.out.join("come.txt"), "coming in\n");
    p.ready();
    let mv = require_tool("mv");
    let got = sh(
        &p,
        &format!(
            "$W rename leave.txt $OUT/x; $BB mv leave.txt $OUT/ && {} leavedir $OUT/ && \
             $BB mv $OUT/come.txt . && $BB ls . && $BB ls $OUT && cat come.txt $OUT/leavedir/b/c",
            mv.display()
        ),
    );
    assert_eq!(
        got,
        "rename: EXDEV\ncome.txt\nstay.txt\nleave.txt\nleavedir\ncoming in\nc\n"
    );
    // Outside: moved at once, by copy and delete.
    let out = real_tree(&p.out, &[]);
    let want_out: BTreeMap<String, RealNode> = [
        ("leave.txt", file(0o640, "leaving\n")),
        ("leavedir", RealNode::Dir { mode: 0o755 }),
        ("leavedir/a", file(0o644, "a\n")),
        ("leavedir/b", RealNode::Dir { mode: 0o755 }),
        ("leavedir/b/c", file(0o600, "c\n")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(out, want_out);
    // Inside: the view's removals and the new file were written back.
    let want_in: BTreeMap<String, RealNode> = [
        ("come.txt", file(0o644, "coming in\n")),
        ("stay.txt", file(0o644, "stay\n")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(p.tree(), want_in);
    p.check_store();
}

matrix!(mv_across_the_view_boundary_copies_and_deletes => mv_across);

// ---- stat and reads right after a write ----

fn parse_stat(line: &str) -> (u64, String, i64) {
    // "fstat: size=13 mode=640 mtime=1700000000"
    let mut size = 0;
    let mut mode = String::new();
    let mut mtime = 0;
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "size" => size = v.parse().unwrap(),
            "mode" => mode = v.to_string(),
            "mtime" => mtime = v.parse().unwrap(),
            _ => panic!("{line}"),
        }
    }
    (size, mode, mtime)
}

fn write_then_read(as_user: bool) {
    let mut p = Project::new(as_user);
    let data = p.file("data.txt", "old content, longer than the new one\n", 0o640);
    set_mtime(&data, OLD);
    p.ready();
    let start = now_secs();
    let got = sh(
        &p,
        "$W write-read data.txt 'fresh content' && cat data.txt && echo && \
         $W write-read brand-new.txt 'new file' && $BB stat -c '%s %a %Y' data.txt brand-new.txt",
    );
    let end = now_secs();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 11, "{got}");
    for (i, (name, size, mode, text)) in [
        ("data.txt", 13, "640", "fresh content"),
        ("brand-new.txt", 8, "644", "new file"),
    ]
    .into_iter()
    .enumerate()
    {
        let l = &lines[i * 5..];
        for (j, what) in ["fstat:", "stat:"].iter().enumerate() {
            assert!(l[j].starts_with(what), "{got}");
            let (s, m, t) = parse_stat(l[j]);
            assert_eq!((s, m.as_str()), (size, mode), "{name}: {}", l[j]);
            assert!(
                (start - 1..=end + 1).contains(&t),
                "{name}: mtime {t} is not the time of the write ({start}..{end}): {}",
                l[j]
            );
        }
        assert_eq!(l[2], format!("same process: {text}"), "{name}");
        assert_eq!(l[3], format!("child process: {text}"), "{name}");
        if i == 0 {
            assert_eq!(l[4], "fresh content", "another process after close");
        }
    }
    let (s1, s2) = (lines[9], lines[10]);
    assert!(
        s1.starts_with("13 640 ") && s2.starts_with("8 644 "),
        "{got}"
    );
    let t: i64 = s1.rsplit(' ').next().unwrap().parse().unwrap();
    // On disk: the new content, the entry's mode, the mtime the program saw.
    let tree = p.tree();
    assert_eq!(tree.get("data.txt"), Some(&file(0o640, "fresh content")));
    assert_eq!(tree.get("brand-new.txt"), Some(&file(0o644, "new file")));
    assert_eq!(mtime_ns(&data) / 1_000_000_000, t, "data.txt mtime on disk");
    p.check_store();
}

matrix!(stat_and_reads_see_a_write_at_once => write_then_read);

// ---- a new file created read-only ----

fn create_read_only(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.ready();
    // Linux lets the creator write through the fd that created the file, whatever its mode
    // (git writes its objects this way, 0444).
    let got = sh(
        &p,
        "$W create new-ro 444; $W create new-wo 200; cat new-ro; $BB stat -c '%n %a' new-ro new-wo",
    );
    assert_eq!(
        got,
        "create: OK\ncreate: OK\ncreated\nnew-ro 444\nnew-wo 200\n"
    );
    let tree = p.tree();
    assert_eq!(tree.get("new-ro"), Some(&file(0o444, "created\n")));
    assert_eq!(tree.get("new-wo"), Some(&file(0o200, "created\n")));
    p.check_store();
}

matrix!(creating_a_read_only_file_gives_a_writable_fd => create_read_only);

// ---- chmod without following symlinks, fstat of an O_PATH fd ----

fn nofollow(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("a", "a\n", 0o644);
    p.file("d/f", "f\n", 0o644);
    std::os::unix::fs::symlink("nowhere", p.dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink("a", p.dir.join("good")).unwrap();
    p.ready();
    // glibc's fchmodat(AT_SYMLINK_NOFOLLOW) opens the path O_PATH|O_NOFOLLOW, fstats the fd
    // (AT_EMPTY_PATH) and, for anything but a symlink, chmods /proc/self/fd/N; tar and
    // `cp -a` use it.
    let got = sh(
        &p,
        "$W pathstat dangling; $W pathstat good; $BB ln -s a newlink; $W pathstat newlink; \
         $W pathstat a; $W chmod-nofollow a 600; $W chmod-nofollow good 600; \
         $W fchmod d 700; $BB stat -c '%n %a' a d",
    );
    assert_eq!(
        got,
        "pathstat: symlink\npathstat: symlink\npathstat: symlink\npathstat: file\n\
         chmod-nofollow: OK\nchmod-nofollow: ENOTSUP\nfchmod: OK\na 600\nd 700\n"
    );
    let tree = p.tree();
    assert_eq!(tree.get("a"), Some(&file(0o600, "a\n")));
    assert_eq!(tree.get("d"), Some(&RealNode::Dir { mode: 0o700 }));
    p.check_store();
}

matrix!(chmod_nofollow_and_fstat_of_an_o_path_fd => nofollow, not_without_namespaces = "an O_PATH|O_NOFOLLOW descriptor of a view symlink cannot be handed over without the view mounted (refused with a message)");

// ---- concurrent writers of one file ----

/// `n` lines "TAG nnnnnn" for each tag, each tag's lines in order, nothing else but `head`.
fn assert_interleaved(content: &str, head: &[&str], tags: &[&str], n: usize) {
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(
        lines.len(),
        head.len() + tags.len() * n,
        "line count (content {} bytes)",
        content.len()
    );
    assert_eq!(&lines[..head.len()], head);
    for tag in tags {
        let mine: Vec<&str> = lines[head.len()..]
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("{tag} ")))
            .collect();
        let want: Vec<String> = (0..n).map(|i| format!("{tag} {i:06}")).collect();
        assert_eq!(mine, want, "lines of {tag}");
    }
}

fn two_appenders(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("log", "start\n", 0o644);
    p.ready();
    let n = 3000;
    let got = sh(
        &p,
        &format!("$W append log A {n} & $W append log B {n} & wait; $BB wc -l < log"),
    );
    assert!(got.ends_with(&format!("{}\n", 2 * n + 1)), "{got}");
    let content = std::fs::read_to_string(p.dir.join("log")).unwrap();
    assert_interleaved(&content, &["start"], &["A", "B"], n);
    p.check_store();
}

matrix!(two_processes_append_to_one_file => two_appenders);

fn shell_appenders(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.ready();
    // Each line is a new open, write and close: the file is committed and reopened
    // over and over while the other loop writes.
    let n = 150;
    let lp = |tag: &str| {
        format!(
            "i=0; while [ $i -lt {n} ]; do echo \"{tag} $($BB printf %06d $i)\" >> log; \
             i=$((i+1)); done"
        )
    };
    let got = p.sh(&format!(
        "{{ {}; }} & {{ {}; }} & wait; $BB wc -l < log",
        lp("A"),
        lp("B")
    ));
    assert_eq!(got.trim(), format!("{}", 2 * n));
    let content = std::fs::read_to_string(p.dir.join("log")).unwrap();
    assert_interleaved(&content, &[], &["A", "B"], n);
    p.check_store();
}

matrix!(two_shell_loops_append_line_by_line => shell_appenders);

// ---- renameat2: RENAME_NOREPLACE, RENAME_EXCHANGE ----

fn rename_flags(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("a.txt", "a\n", 0o644);
    p.file("b.txt", "b\n", 0o600);
    p.file("dir/inner.txt", "inner\n", 0o644);
    p.file("plain", "plain\n", 0o644);
    p.ready();
    let got = sh(
        &p,
        "$W rename2 a.txt b.txt noreplace; $W rename2 a.txt c.txt noreplace; \
         $W rename2 c.txt b.txt exchange; $W rename2 dir plain exchange; \
         $W rename2 b.txt nothing exchange; \
         cat b.txt c.txt plain/inner.txt dir; $BB stat -c '%n %a' b.txt c.txt",
    );
    if p.env.projection == "overlay" {
        // overlayfs refuses to move a directory of the lower layer (EXDEV); the exchange of
        // `dir` and `plain` does not happen, and the tree keeps both as they were.
        assert_eq!(
            got,
            "rename2: EEXIST\nrename2: OK\nrename2: OK\nrename2: EXDEV\nrename2: ENOENT\n\
             a\nb\nb.txt 644\nc.txt 600\n"
        );
        let want: BTreeMap<String, RealNode> = [
            ("b.txt", file(0o644, "a\n")),
            ("c.txt", file(0o600, "b\n")),
            ("dir", RealNode::Dir { mode: 0o755 }),
            ("dir/inner.txt", file(0o644, "inner\n")),
            ("plain", file(0o644, "plain\n")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(p.tree(), want);
        p.check_store();
        return;
    }
    assert_eq!(
        got,
        "rename2: EEXIST\nrename2: OK\nrename2: OK\nrename2: OK\nrename2: ENOENT\n\
         a\nb\ninner\nplain\nb.txt 644\nc.txt 600\n"
    );
    let want: BTreeMap<String, RealNode> = [
        ("b.txt", file(0o644, "a\n")),
        ("c.txt", file(0o600, "b\n")),
        ("dir", file(0o644, "plain\n")),
        ("plain", RealNode::Dir { mode: 0o755 }),
        ("plain/inner.txt", file(0o644, "inner\n")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(p.tree(), want);
    p.check_store();
}

matrix!(renameat2_noreplace_and_exchange => rename_flags);

// ---- read-only directories ----

fn read_only_dirs(as_user: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Project::new(as_user);
    p.file("ro-dir/f", "f\n", 0o644);
    p.file("opened/f", "f\n", 0o644);
    for d in ["ro-dir", "opened"] {
        std::fs::set_permissions(p.dir.join(d), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    p.ready();
    let root = !as_user && is_root();
    // Creating or removing in a 0555 directory is for root only; a directory the run makes
    // writable takes new files; one the run makes read-only keeps what it got before.
    let got = sh(
        &p,
        "umask 022; $W excl ro-dir/new; $BB rm ro-dir/f 2>/dev/null; echo rm=$?; \
         $BB chmod 755 opened && echo in > opened/new && \
         $BB mkdir closing && echo in > closing/f && $BB chmod 555 closing && \
         $BB ls ro-dir opened closing",
    );
    let (excl, rm, ro_listing) = if root {
        ("OK", 0, "new\n")
    } else {
        ("EACCES", 1, "f\n")
    };
    assert_eq!(
        got,
        format!("excl: {excl}\nrm={rm}\nclosing:\nf\n\nopened:\nf\nnew\n\nro-dir:\n{ro_listing}")
    );
    let mut want: BTreeMap<String, RealNode> = [
        ("closing", RealNode::Dir { mode: 0o555 }),
        ("closing/f", file(0o644, "in\n")),
        ("opened", RealNode::Dir { mode: 0o755 }),
        ("opened/f", file(0o644, "f\n")),
        ("opened/new", file(0o644, "in\n")),
        ("ro-dir", RealNode::Dir { mode: 0o555 }),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if root {
        want.insert("ro-dir/new".into(), file(0o644, ""));
    } else {
        want.insert("ro-dir/f".into(), file(0o644, "f\n"));
    }
    assert_eq!(p.tree(), want);
    p.check_store();
    // Let the scratch area be removed.
    for d in ["ro-dir", "closing"] {
        std::fs::set_permissions(p.dir.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

matrix!(read_only_directories_as_root => read_only_dirs);

// ---- modes that keep the owner from reading or writing ----

fn owner_locked_out(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.file("locked.txt", "locked\n", 0o644);
    p.ready();
    // chmod works for the owner whatever the mode; the written file must still be saved.
    let got = p.sh(
        "echo secret > wo.txt && $BB chmod 200 wo.txt && $BB chmod 000 locked.txt && \
         $BB stat -c '%n %a %s' wo.txt locked.txt",
    );
    assert_eq!(got, "wo.txt 200 7\nlocked.txt 0 7\n");
    let tree = p.tree();
    assert_eq!(tree.get("wo.txt"), Some(&file(0o200, "secret\n")));
    assert_eq!(tree.get("locked.txt"), Some(&file(0o000, "locked\n")));
    assert_eq!(tree.get("keep.txt"), Some(&file(0o644, "keep\n")));
    p.check_store();
}

matrix!(files_the_owner_cannot_read_are_saved => owner_locked_out);

// ---- signals while the view changes ----

/// A change the view made must not be made again when a signal arrives while the program
/// waits for the answer: the kernel restarts an interrupted call (SA_RESTART), and a mkdir
/// already made would then say EEXIST, an unlink already done ENOENT.
fn signal_storm(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep.txt", "keep\n", 0o644);
    p.ready();
    let bin = build_c("gcc", "signalstorm.c", &["-pthread"]);
    let out = p.run(&[bin.to_str().unwrap(), "400", "."]);
    let out = String::from_utf8(out.stdout).unwrap();
    let last = out.lines().last().unwrap_or_default();
    let signals: u64 = last
        .strip_prefix("signals=")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no signal count in {out:?}"));
    assert!(signals > 0, "no signal was sent: {out}");
    assert!(
        last.ends_with("calls=2000 failures=0"),
        "calls failed under a storm of signals:\n{out}"
    );
    let tree = p.tree();
    assert_eq!(tree.len(), 1, "only keep.txt is left: {tree:?}");
    p.check_store();
}

matrix!(changes_are_made_once_under_a_storm_of_signals => signal_storm);
