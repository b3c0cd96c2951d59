//! `--mount DIR` puts the view at a path that does not exist on disk: the program starts
//! there, `pwd` prints it, files are read from the manifest, and nothing is left behind on
//! the real file system.

use std::path::Path;

use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

fn runs_at(env: &Env, mount: &Path, as_user: bool) {
    let m = env.dir.path().join("view.manifest");
    make_manifest(
        env,
        &m,
        &[
            Node::File("a.txt", b"mounted view\n", 0o644),
            Node::Dir("sub", 0o755),
            Node::File("sub/b.txt", b"deeper\n", 0o600),
            Node::Symlink("ln", "sub/b.txt"),
        ],
    );
    if as_user {
        env.give_to_nobody();
    }
    let cwd = env.mkdir("elsewhere");
    let bb = busybox();
    let script = format!(
        "pwd; cat a.txt ln; ls; cd sub && pwd && cat b.txt; cat {}/a.txt; readlink {}/ln",
        mount.display(),
        mount.display()
    );
    let args = run_args(&m, Some(mount), &[&bb, "sh", "-c", &script]);
    let got = stdout_ok(&mut env.vrift_as(as_user, &cwd, &args));
    let p = mount.display();
    assert_eq!(
        got,
        format!(
            "{p}\nmounted view\ndeeper\na.txt\nln\nsub\n{p}/sub\ndeeper\nmounted view\nsub/b.txt\n"
        )
    );
    assert!(
        !mount.exists(),
        "{} was left on the real file system",
        mount.display()
    );
}

projections! {
    fn view_at_a_path_that_does_not_exist_under_the_temp_dir() {
    let env = Env::new();
    let mount = env.dir.path().join("does/not/exist");
    runs_at(&env, &mount, false);
    assert!(
        !env.dir.path().join("does").exists(),
        "parents were created on disk"
    );
}
}

projections! {
    fn view_at_a_path_that_does_not_exist_at_the_root() {
    let env = Env::new();
    let top = format!("/vrift-test-{}", std::process::id());
    let top = Path::new(&top);
    assert!(!top.exists());
    let mount = top.join("project");
    runs_at(&env, &mount, false);
    assert!(!top.exists(), "{} was created on disk", top.display());
}
}

projections! {
    fn view_at_a_path_that_does_not_exist_for_an_ordinary_user() {
    let env = Env::new();
    let mount = env.dir.path().join("not/here/project");
    runs_at(&env, &mount, true);
}
}

projections! {
    fn view_mounted_over_an_existing_directory_hides_it() {
    let env = Env::new();
    let mount = env.mkdir("existing");
    write(&mount.join("a.txt"), "on disk\n");
    write(&mount.join("disk-only"), "x");
    let m = env.dir.path().join("view.manifest");
    make_manifest(&env, &m, &[Node::File("a.txt", b"from the view\n", 0o644)]);
    let cwd = env.mkdir("elsewhere");
    let bb = busybox();
    let args = run_args(&m, Some(&mount), &[&bb, "sh", "-c", "pwd; cat a.txt; ls"]);
    assert_eq!(
        stdout_ok(&mut env.vrift(&cwd, &args)),
        format!("{}\nfrom the view\na.txt\n", mount.display())
    );
    assert_eq!(
        std::fs::read_to_string(mount.join("a.txt")).unwrap(),
        "on disk\n"
    );
}
}
