//! `vrift run` serves the manifest's view to static binaries: content, metadata, listings and
//! symlinks come from the manifest, not from the disk.

use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

matrix!(static_busybox_reads_the_view_not_the_disk => reads_the_view, not_shim = "it runs the static busybox");

fn reads_the_view(as_user: bool) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    // What is on disk differs from the manifest in every way.
    write(&proj.join("hello.txt"), "disk content\n");
    write(&proj.join("only-on-disk"), "x");
    let m = env.dir.path().join("view.manifest");
    make_manifest(
        &env,
        &m,
        &[
            Node::File("hello.txt", b"view content\n", 0o640),
            Node::Dir("sub", 0o750),
            Node::File("sub/deep.txt", b"deep\n", 0o600),
            Node::Symlink("link", "sub/deep.txt"),
        ],
    );
    if as_user {
        env.give_to_nobody();
    }
    let m = m.to_str().unwrap();
    let bb = busybox();
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--manifest", m, "--", &bb];
        a.extend_from_slice(args);
        stdout_ok(&mut env.vrift_as(as_user, &proj, &a))
    };
    assert_eq!(run(&["cat", "hello.txt", "link"]), "view content\ndeep\n");
    let out = run(&["ls", "-a"]);
    let names: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(names, vec![".", "..", "hello.txt", "link", "sub"]);
    assert_eq!(
        run(&["stat", "-c", "%a %s %Y %F", "hello.txt", "sub", "link"]),
        "640 13 1600000000 regular file\n750 4096 1600000000 directory\n777 12 1600000000 symbolic link\n"
    );
    assert_eq!(run(&["readlink", "link"]), "sub/deep.txt\n");
    // The disk is unchanged.
    assert_eq!(
        std::fs::read_to_string(proj.join("hello.txt")).unwrap(),
        "disk content\n"
    );
}

matrix!(a_listing_shows_the_files_the_filters_pass_through => passthrough_listed);

/// Paths the filters leave out (`*.log`, `build/`) are served by the disk and listed in the
/// view's directories as the disk has them, beside the view's own entries; one removed
/// from the disk is listed no more. Dynamic `ls` (the shim answers it where it is in front)
/// and a listing read through `find` agree.
fn passthrough_listed(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file(".vriftignore", "*.log\nbuild/\n", 0o644);
    p.file("a.txt", "a\n", 0o644);
    p.file("x.log", "x\n", 0o644);
    p.file("sub/b.txt", "b\n", 0o644);
    p.file("sub/y.log", "y\n", 0o644);
    p.file("build/out.o", "o\n", 0o644);
    p.ready();
    let out = p.run(&[
        "/bin/sh",
        "-c",
        "ls -a . sub build; find . -name '*.log' | sort; cat sub/y.log",
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ".:\n.\n..\n.vriftignore\na.txt\nbuild\nsub\nx.log\n\nbuild:\n.\n..\nout.o\n\nsub:\n.\n..\nb.txt\ny.log\n\
         ./sub/y.log\n./x.log\ny\n"
    );
    std::fs::remove_file(p.dir.join("sub/y.log")).unwrap();
    let out = p.run(&["/bin/sh", "-c", "ls -a sub"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ".\n..\nb.txt\n");
    p.check_store();
}
