//! What a disk keeps besides content, through a run: modes set through a POSIX ACL (`sed -i`,
//! `cp -p`), owners, extended attributes, hard links and FIFOs (manifest format version 2).
//! Each case is one of the reproductions the faithfulness issue lists, or a real tool that
//! copies metadata (`cp -a`, `rsync -aHX`, `tar -p --xattrs`). Root and an ordinary user.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use vrift_tests::*;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

/// A shell line run in the view by the system's sh (GNU tools on PATH), its stdout.
fn sh(p: &Project, script: &str) -> String {
    let out = p.run(&["/bin/sh", "-c", script]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("changed on disk during the run"),
        "the run reported a conflict: {err}"
    );
    String::from_utf8(out.stdout).unwrap()
}

// ---- sed -i and cp -p keep 0755 (the mode goes through fsetxattr(system.posix_acl_access))

fn acl_modes(as_user: bool) {
    require_tool("sed");
    let mut p = Project::new(as_user);
    p.file("run.sh", "#!/bin/sh\necho old\n", 0o755);
    p.ready();
    let out = sh(
        &p,
        "sed -i s/old/new/ run.sh && cp -p run.sh copy.sh && cp -a run.sh all.sh && \
         stat -c %a run.sh copy.sh all.sh",
    );
    assert_eq!(out, "755\n755\n755\n", "modes in the view");
    for f in ["run.sh", "copy.sh", "all.sh"] {
        let path = p.dir.join(f);
        assert_eq!(mode(&path), 0o755, "{f} on disk");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "#!/bin/sh\necho new\n"
        );
    }
    p.check_store();
}

matrix!(sed_i_and_cp_p_keep_a_0755_mode => acl_modes);

// ---- a user.* xattr survives an append and a rewrite

fn xattr_survives(as_user: bool) {
    require_tool("setfattr");
    let mut p = Project::new(as_user);
    let f = p.file("notes.txt", "one\n", 0o644);
    let g = p.file("data.txt", "old\n", 0o644);
    setfattr(&f, "user.mime", "text/plain");
    setfattr(&g, "user.mime", "text/csv");
    p.ready();
    sh(&p, "echo two >> notes.txt && echo new > data.txt");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\ntwo\n");
    assert_eq!(std::fs::read_to_string(&g).unwrap(), "new\n");
    assert_eq!(xattr_of(&f, "user.mime").as_deref(), Some("text/plain"));
    assert_eq!(xattr_of(&g, "user.mime").as_deref(), Some("text/csv"));
    // The manifest of the project records them (format version 2).
    p.check_store();
}

matrix!(user_xattr_survives_an_append_and_a_rewrite => xattr_survives);

// ---- as root, a file owned by nobody stays nobody's

projections! {
    fn root_append_keeps_the_files_owner() {
        if !is_root() {
            eprintln!("skipped: needs root to give a file to nobody");
            return;
        }
        let mut p = Project::new(false);
        let f = p.file("log", "one\n", 0o644);
        let g = p.file("conf", "old\n", 0o644);
        std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(&g, Some(65534), Some(65534)).unwrap();
        p.ready();
        sh(&p, "echo more >> log && echo new > conf");
        for path in [&f, &g] {
            let m = std::fs::metadata(path).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", path.display());
        }
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\nmore\n");
        assert_eq!(std::fs::read_to_string(&g).unwrap(), "new\n");
        p.check_store();
    }
}

// ---- a hard-linked pair stays one file

fn linked_pair(as_user: bool) {
    let mut p = Project::new(as_user);
    let a = p.file("a", "x\n", 0o644);
    let b = p.dir.join("b");
    std::fs::hard_link(&a, &b).unwrap();
    p.ready();
    sh(&p, "echo add >> a");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "x\nadd\n");
    assert_eq!(ino(&a), ino(&b), "still one inode after an append");
    sh(&p, "echo new > a");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "new\n");
    assert_eq!(ino(&a), ino(&b), "still one inode after a rewrite");
    p.check_store();
}

matrix!(a_hard_linked_pair_stays_one_file_after_writes => linked_pair);

/// Under the supervisor, one inode and link count for names linked during a run come from
/// the view's in-run link tracking (the supervisor's POSIX work); the run's result then keeps
/// them one link group (`View::flatten` groups names of one inode), and so does the disk.
fn link_in_view(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep", "k\n", 0o644);
    p.ready();
    let out = sh(&p, "echo x > n1 && ln n1 n2 && stat -c '%i %h' n1 n2");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0], lines[1],
        "one inode and link count in the view: {out}"
    );
    let (n1, n2) = (p.dir.join("n1"), p.dir.join("n2"));
    assert_eq!(std::fs::read_to_string(&n2).unwrap(), "x\n");
    assert_eq!(ino(&n1), ino(&n2), "one inode on disk");
    assert_eq!(std::fs::metadata(&n1).unwrap().nlink(), 2);
    p.check_store();
}

matrix!(ln_in_the_view_makes_one_inode => link_in_view);

/// Names of a hard-link group of the project are one inode in the view too: one link count
/// and inode number, and a write or a chmod through one name is seen through the other, in
/// the run and on disk afterwards.
fn link_group_in_view(as_user: bool) {
    let mut p = Project::new(as_user);
    let a = p.file("a", "x\n", 0o644);
    let b = p.dir.join("b");
    std::fs::hard_link(&a, &b).unwrap();
    p.ready();
    let out = sh(
        &p,
        "stat -c %h:%i a b && echo x >> a && cat b && chmod 600 b && stat -c %a:%h a",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "{out}");
    assert!(lines[0].starts_with("2:"), "two links: {out}");
    assert_eq!(lines[0], lines[1], "one inode and link count: {out}");
    // overlayfs without `index=on` copies a name up alone at its first write, so under the
    // overlay the names part for the rest of the run (ARCHITECTURE.md, the overlay's
    // differences); its result joins them again.
    if p.env.projection != "overlay" {
        assert_eq!(&lines[2..], ["x", "x", "600:2"], "{out}");
        assert_eq!(mode(&b), 0o600);
    }
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "x\nx\n");
    assert_eq!(ino(&a), ino(&b), "one inode on disk");
    p.check_store();
}

matrix!(a_hard_linked_pair_is_one_inode_in_the_view => link_group_in_view);

// ---- owners: a file made by another user is theirs, chown takes effect

fn owners_in_view(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("f", "f\n", 0o644);
    p.file("s", "#!/bin/sh\n", 0o755);
    p.ready();
    let owner = |rel: &str| {
        let m = std::fs::symlink_metadata(p.dir.join(rel)).unwrap();
        (m.uid(), m.gid())
    };
    if as_user || !is_root() {
        // An ordinary user may not give a file away (EPERM, or EINVAL for an id its user
        // namespace does not map); keeping its own uid is allowed.
        let out = sh(
            &p,
            "chown 0 f 2>/dev/null && echo gave || echo refused; chown $(id -u) f && stat -c %u f",
        );
        assert_eq!(out, format!("refused\n{}\n", p.uid()));
        assert_eq!(owner("f").0, p.uid());
        p.check_store();
        return;
    }
    if p.env.projection == "shim" {
        // Under the shim alone a process of another user (setpriv) is stopped: the shim
        // cannot set up there (that user may not read the store's index) and nothing else
        // would serve the view (docs/ARCHITECTURE.md, the shim). Root's chown is served.
        let out = sh(
            &p,
            "chown 123:456 f && stat -c %u:%g f && chmod 4755 s && chown 5 s && stat -c %u:%a s \
             && chown -h 7:8 f && stat -c %u:%g f && chown 123:456 f && stat -c %u:%g f",
        );
        assert_eq!(out, "123:456\n5:755\n7:8\n123:456\n", "owners in the view");
        assert_eq!(owner("f"), (123, 456));
        assert_eq!(owner("s").0, 5);
        assert_eq!(mode(&p.dir.join("s")), 0o755, "chown cleared S_ISUID");
        let again = sh(&p, "stat -c %u:%g f s");
        assert_eq!(again, "123:456\n5:0\n");
        p.check_store();
        return;
    }
    let setpriv = require_tool("setpriv");
    // Under the shim in front of the supervisor, the shim cannot set up in a process of
    // another user (who may not read the store's index): the supervisor serves it alone.
    let out = sh(
        &p,
        &format!(
            "mkdir -m 1777 shared && {} --reuid=65534 --regid=65534 --clear-groups \
             sh -c 'echo n > shared/n && mkdir shared/d' && \
             stat -c %u:%g shared/n shared/d && \
             chown 123:456 f && stat -c %u:%g f && chmod 4755 s && chown 5 s && stat -c %u:%a s",
            setpriv.display()
        ),
    );
    assert_eq!(
        out, "65534:65534\n65534:65534\n123:456\n5:755\n",
        "owners in the view"
    );
    assert_eq!(owner("shared/n"), (65534, 65534));
    assert_eq!(owner("shared/d"), (65534, 65534));
    assert_eq!(owner("f"), (123, 456));
    assert_eq!(owner("s").0, 5);
    assert_eq!(mode(&p.dir.join("s")), 0o755, "chown cleared S_ISUID");
    // A later run sees them as the disk has them.
    let again = sh(&p, "stat -c %u:%g shared/n f");
    assert_eq!(again, "65534:65534\n123:456\n");
    p.check_store();
}

matrix!(files_made_by_another_user_and_chown_keep_their_owners => owners_in_view);

// ---- a FIFO in the project is kept

fn fifo_kept(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("keep", "k\n", 0o644);
    mkfifo(&p.dir.join("pipe"));
    p.ready();
    let out = sh(
        &p,
        "test -p pipe && echo fifo; cat pipe > \"$OUT/got\" & echo through > pipe; wait; cat \"$OUT/got\"",
    );
    assert_eq!(out, "fifo\nthrough\n");
    let m = std::fs::symlink_metadata(p.dir.join("pipe")).unwrap();
    assert!(m.file_type().is_fifo(), "still a FIFO on disk");
    // A FIFO made in the run is kept too.
    sh(&p, "mkfifo made");
    assert!(std::fs::symlink_metadata(p.dir.join("made"))
        .unwrap()
        .file_type()
        .is_fifo());
    p.check_store();
}

matrix!(a_fifo_in_the_project_is_kept => fifo_kept, not_shim = "the shim alone serves no FIFOs in the view");

// ---- cp -a, rsync -aHX and tar -p --xattrs keep modes, owners, xattrs and hard links

fn copy_tools(as_user: bool) {
    require_tool("rsync");
    require_tool("setfattr");
    let mut p = Project::new(as_user);
    let tool = p.file("src/bin/tool", "#!/bin/sh\n", 0o755);
    let data = p.file("src/data", "d\n", 0o640);
    std::fs::hard_link(&data, p.dir.join("src/data.link")).unwrap();
    setfattr(&data, "user.k", "v");
    let root_owned = is_root() && !as_user;
    if root_owned {
        std::os::unix::fs::chown(&tool, Some(65534), Some(65534)).unwrap();
    }
    p.ready();
    sh(
        &p,
        "cp -a src cpa && rsync -aHX src/ rsync/ && mkdir tar && \
         tar -cpf - --xattrs -C src . | tar -xpf - --xattrs --xattrs-include='user.*' -C tar",
    );
    // Every projection here serves the view's xattrs (the overlay's kernel, the supervisor
    // from the view's entries), so the copies keep them, as they keep hard links and owners.
    for d in ["cpa", "rsync", "tar"] {
        let dir = p.dir.join(d);
        assert_eq!(mode(&dir.join("bin/tool")), 0o755, "{d}: mode");
        assert_eq!(mode(&dir.join("data")), 0o640, "{d}: mode");
        assert_eq!(
            std::fs::read_to_string(dir.join("data.link")).unwrap(),
            "d\n",
            "{d}: content"
        );
        assert_eq!(
            ino(&dir.join("data")),
            ino(&dir.join("data.link")),
            "{d}: hard link"
        );
        if root_owned {
            let m = std::fs::metadata(dir.join("bin/tool")).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{d}: owner");
        }
        assert_eq!(
            xattr_of(&dir.join("data"), "user.k").as_deref(),
            Some("v"),
            "{d}: xattr"
        );
    }
    p.check_store();
}

matrix!(cp_a_rsync_and_tar_keep_modes_owners_xattrs_and_links => copy_tools);

// ---- getfattr, setfattr and setfattr -x in the view, and what the project keeps

fn xattrs_in_view(as_user: bool) {
    require_tool("getfattr");
    require_tool("setfattr");
    let mut p = Project::new(as_user);
    let doc = p.file("doc.txt", "text\n", 0o644);
    std::os::unix::fs::symlink("doc.txt", p.dir.join("link.txt")).unwrap();
    setfattr(&doc, "user.keep", "kept");
    setfattr(&doc, "user.gone", "old");
    p.ready();
    let out = sh(
        &p,
        "getfattr -n user.keep --only-values doc.txt && echo && \
         getfattr -n user.keep --only-values link.txt && echo && \
         setfattr -n user.new -v made doc.txt && setfattr -x user.gone doc.txt && \
         getfattr -d doc.txt | grep '^user\\.' && \
         { getfattr -n user.gone doc.txt 2>&1 && echo still there; \
           setfattr -x user.gone doc.txt 2>&1 && echo removed twice; \
           setfattr -h -n user.l -v x link.txt 2>&1 && echo set on a symlink; true; } && \
         echo new > new.txt && setfattr -n user.fresh -v yes new.txt && \
         getfattr -d new.txt | grep '^user\\.'",
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("kept"),
        "getfattr of the project's xattr: {out}"
    );
    assert_eq!(lines.next(), Some("kept"), "through the symlink: {out}");
    assert_eq!(lines.next(), Some("user.keep=\"kept\""), "{out}");
    assert_eq!(lines.next(), Some("user.new=\"made\""), "{out}");
    let rest: Vec<&str> = lines.collect();
    assert!(
        rest.iter().any(|l| l.contains("No such attribute")),
        "a removed xattr is gone (ENODATA): {out}"
    );
    assert!(
        !out.contains("still there") && !out.contains("removed twice"),
        "{out}"
    );
    assert!(
        !out.contains("set on a symlink") && out.contains("Operation not permitted"),
        "user.* on a symlink is EPERM: {out}"
    );
    assert_eq!(rest.last(), Some(&"user.fresh=\"yes\""), "{out}");
    // The project on disk has exactly what the run left.
    assert_eq!(
        user_xattrs_of(&doc),
        ["user.keep=\"kept\"", "user.new=\"made\""],
        "doc.txt on disk"
    );
    assert_eq!(
        user_xattrs_of(&p.dir.join("new.txt")),
        ["user.fresh=\"yes\""],
        "new.txt on disk"
    );
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "text\n");
    p.check_store();
}

matrix!(getfattr_setfattr_and_removal_in_the_view_reach_the_project => xattrs_in_view);

// ---- shim+supervisor: the shim's answers are the supervisor's, owners, xattrs and links too

/// One run of shim+supervisor over a project with owners (as root), xattrs, a hard-linked
/// pair, a symlink and directories: the same probe (`statlist.c`: lstat, xattrs, fstat of
/// an open descriptor) built statically, which the supervisor answers, and dynamically,
/// which the shim answers, prints the same lines; and the shim did answer.
#[test]
fn shim_and_supervisor_answer_alike_for_owners_xattrs_and_links() {
    with_projection("shim+supervisor", || {
        require_tool("setfattr");
        let mut p = Project::new(false);
        let a = p.file("d/a", "aaa\n", 0o640);
        std::fs::hard_link(&a, p.dir.join("d/a2")).unwrap();
        let s = p.file("s", "#!/bin/sh\n", 0o755);
        p.file("plain", "p\n", 0o644);
        std::os::unix::fs::symlink("d/a", p.dir.join("l")).unwrap();
        setfattr(&a, "user.k", "v");
        setfattr(&p.dir.join("d"), "user.dir", "yes");
        if is_root() {
            std::os::unix::fs::chown(&s, Some(123), Some(456)).unwrap();
        }
        p.ready();
        let fixed = build_static_c("gcc", "statlist.c", &[]);
        let dynamic = build_dynamic_c("statlist.c", &[]);
        let paths = ". d d/a d/a2 s plain l missing";
        let script = format!(
            "{} {paths} > \"$OUT/supervisor\" && {} {paths} > \"$OUT/shim\"",
            fixed.display(),
            dynamic.display()
        );
        let mut c = p.cmd(&["/bin/sh", "-c", &script]);
        c.env("VRIFT_LOG", "info");
        let out = ok_within(&mut c, RUN_TIMEOUT);
        let log = String::from_utf8_lossy(&out.stderr);
        let by_supervisor = std::fs::read_to_string(p.out.join("supervisor")).unwrap();
        let by_shim = std::fs::read_to_string(p.out.join("shim")).unwrap();
        assert_eq!(
            by_shim, by_supervisor,
            "the shim and the supervisor disagree"
        );
        assert!(
            by_shim.contains("user.k=v") && by_shim.contains("user.dir=yes"),
            "{by_shim}"
        );
        assert!(
            by_shim.contains("d/a ") && by_shim.contains(" nlink=2 "),
            "{by_shim}"
        );
        if is_root() {
            assert!(
                by_shim.contains("s ino=") && by_shim.contains("uid=123 gid=456"),
                "{by_shim}"
            );
        }
        let served: u64 = log
            .split("calls served: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count of calls served in {log}"));
        // The dynamic probe alone makes an lstat of each path and an llistxattr of each
        // that exists: all the shim's while the view is unchanged.
        let probe_calls = 2 * paths.split(' ').count() - 1;
        assert!(
            served >= probe_calls as u64,
            "the shim answered {served} calls, fewer than the probe made: {log}"
        );
        p.check_store();
    });
}
