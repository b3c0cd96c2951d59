//! Process trees inside a view: exec of binaries and scripts that exist only in the view
//! (by path and via PATH), fork/vfork/clone/posix_spawn/threads, and a shell script running
//! make (real, outside the view) that runs gcc on view sources, objects written outside.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

const MAKEFILE: &str = r#"OUT ?= /nonexistent
CC ?= gcc
SRCS := $(sort $(wildcard src/*.c))
OBJS := $(patsubst src/%.c,$(OUT)/%.o,$(SRCS))

$(OUT)/prog: $(OBJS)
	$(CC) -o $@ $(OBJS)

$(OUT)/%.o: src/%.c include/common.h | $(OUT)
	$(CC) -Iinclude -O1 -c -o $@ $<

$(OUT):
	mkdir -p $(OUT)
"#;

const BUILD_SH: &str = "#!/bin/sh\nset -e\nmake OUT=\"$1\" $2\necho build done\n";

const PARTS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// The project: view-only binaries in bin/, a data file, and a small C code base with a
/// Makefile. After the ingest the disk copy loses bin/ and its sources change.
struct Project {
    env: Env,
    proj: PathBuf,
    m: PathBuf,
    data: Vec<u8>,
}

fn project() -> Project {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let tool = build_c("musl-gcc", "probe.c", &[]);
    let spawner = build_c("gcc", "spawner.c", &["-pthread"]);
    std::fs::create_dir_all(proj.join("bin")).unwrap();
    std::fs::copy(&tool, proj.join("bin/tool")).unwrap();
    std::fs::copy(&spawner, proj.join("bin/spawner")).unwrap();
    write(
        &proj.join("bin/hello.sh"),
        "#!/bin/sh\necho hello from a view script \"$@\"\n",
    );
    for f in ["bin/tool", "bin/spawner", "bin/hello.sh"] {
        chmod(&proj.join(f), 0o755);
    }
    let data = b"view data\n".to_vec();
    write(&proj.join("data.txt"), &data);
    write(&proj.join("Makefile"), MAKEFILE);
    write(&proj.join("build.sh"), BUILD_SH);
    chmod(&proj.join("build.sh"), 0o755);
    write(&proj.join("include/common.h"), "#define GREETING \"from the view\"\nconst char *part_a(void); const char *part_b(void); const char *part_c(void); const char *part_d(void); const char *part_e(void);\n");
    let mut main = String::from("#include <stdio.h>\n#include \"common.h\"\nint main(void) {\n  printf(\"%s\\n\", GREETING);\n");
    for p in PARTS {
        write(
            &proj.join(format!("src/{p}.c")),
            format!("#include \"common.h\"\nconst char *part_{p}(void) {{ return \"{p} from the view\"; }}\n"),
        );
        main += &format!("  printf(\"%s\\n\", part_{p}());\n");
    }
    main += "  return 0;\n}\n";
    write(&proj.join("src/main.c"), main);
    let m = env.dir.path().join("proj.manifest");
    manifest_of_dir(&env, &proj, &m);

    std::fs::remove_dir_all(proj.join("bin")).unwrap();
    write(&proj.join("data.txt"), "disk data, changed\n");
    write(
        &proj.join("include/common.h"),
        "#define GREETING \"from the disk\"\n",
    );
    write(&proj.join("src/broken.c"), "this is not C\n");
    std::fs::remove_file(proj.join("src/c.c")).unwrap();
    write(
        &proj.join("Makefile"),
        "all:\n\t@echo the disk Makefile ran; exit 1\n",
    );
    Project { env, proj, m, data }
}

impl Project {
    fn tool_line(&self) -> String {
        format!(
            "data.txt f 644 {} {:016x}\n",
            self.data.len(),
            fnv1a64(&self.data)
        )
    }
    fn path_with_bin(&self) -> String {
        format!(
            "{}/bin:{}",
            self.proj.display(),
            std::env::var("PATH").unwrap()
        )
    }
}

projections! {
    not_without_namespaces = "a static program execs a view binary by its absolute path, which the kernel cannot reach without the view mounted (refused with a message)";
    fn exec_a_binary_that_exists_only_in_the_view() {
    let p = project();
    assert_eq!(
        stdout_ok(&mut vrift_run(
            &p.env,
            &p.proj,
            &p.m,
            &["./bin/tool", "data.txt"]
        )),
        p.tool_line()
    );
    let abs = p.proj.join("bin/tool");
    assert_eq!(
        stdout_ok(&mut vrift_run(
            &p.env,
            &p.proj,
            &p.m,
            &[abs.to_str().unwrap(), "data.txt"]
        )),
        p.tool_line()
    );
    // A script in the view: the kernel reads its #! line through the view.
    assert_eq!(
        stdout_ok(&mut vrift_run(
            &p.env,
            &p.proj,
            &p.m,
            &["./bin/hello.sh", "x"]
        )),
        "hello from a view script x\n"
    );
    // From a shell, by relative path after cd.
    let bb = busybox();
    assert_eq!(
        stdout_ok(&mut vrift_run(
            &p.env,
            &p.proj,
            &p.m,
            &[&bb, "sh", "-c", "cd bin && ./tool ../data.txt"]
        )),
        p.tool_line().replacen("data.txt", "../data.txt", 1)
    );
}
}

fn via_path(as_user: bool) {
    let p = project();
    if as_user {
        p.env.give_to_nobody();
    }
    let bb = busybox();
    let script = "PATH=\"$PWD/bin:$PATH\"; tool data.txt; hello.sh via PATH; command -v tool";
    let cmd = [bb.as_str(), "sh", "-c", script];
    let got = if as_user {
        stdout_ok(&mut vrift_run_as_user(&p.env, &p.proj, &p.m, &cmd))
    } else {
        stdout_ok(&mut vrift_run(&p.env, &p.proj, &p.m, &cmd))
    };
    assert_eq!(
        got,
        format!(
            "{}hello from a view script via PATH\n{}/bin/tool\n",
            p.tool_line(),
            p.proj.display()
        )
    );
    // vrift itself finds the program on a PATH that points into the view.
    let mut c = if as_user {
        vrift_run_as_user(&p.env, &p.proj, &p.m, &["tool", "data.txt"])
    } else {
        vrift_run(&p.env, &p.proj, &p.m, &["tool", "data.txt"])
    };
    c.env("PATH", p.path_with_bin());
    assert_eq!(stdout_ok(&mut c), p.tool_line());
}

matrix!(exec_via_path_pointing_into_the_view => via_path, not_without_namespaces = "a static program execs a view binary by its absolute path, which the kernel cannot reach without the view mounted (refused with a message)");

projections! {
    not_without_namespaces = "a static program execs a view binary by its absolute path, which the kernel cannot reach without the view mounted (refused with a message)";
    fn fork_vfork_clone_spawn_and_threads_exec_a_view_binary() {
    let p = project();
    let mut c = vrift_run(
        &p.env,
        &p.proj,
        &p.m,
        &["./bin/spawner", "./bin/tool", "data.txt"],
    );
    c.env("PATH", p.path_with_bin());
    let got = stdout_ok(&mut c);
    let t = p.tool_line();
    let mut want = String::new();
    for route in [
        "fork+execv",
        "vfork+execv",
        "clone(CLONE_VM|CLONE_VFORK)+execv",
        "posix_spawn",
        "posix_spawnp via PATH",
        "thread fork+execv",
    ] {
        want += &format!("{t}{route}: exit 0\n");
    }
    assert_eq!(got, want);
}
}

fn make_build(jobs: Option<&str>) {
    let p = project();
    let out = p.env.dir.path().join("build-out");
    let bb = busybox();
    let outs = out.to_str().unwrap();
    let mut cmd = vec![bb.as_str(), "sh", "build.sh", outs];
    if let Some(j) = jobs {
        cmd.push(j);
    }
    let got = stdout_ok(&mut vrift_run(&p.env, &p.proj, &p.m, &cmd));
    assert!(got.ends_with("build done\n"), "{got}");
    for part in PARTS.iter().chain(["main"].iter()) {
        assert!(
            out.join(format!("{part}.o")).exists(),
            "{part}.o not built: {got}"
        );
    }
    assert!(
        !out.join("broken.o").exists(),
        "make saw a source that is only on disk"
    );
    // The program was built from the view's sources.
    let mut run = std::process::Command::new(out.join("prog"));
    let mut want = String::from("from the view\n");
    for part in PARTS {
        want += &format!("{part} from the view\n");
    }
    assert_eq!(stdout_ok(&mut run), want);
    // Up to date: a second run over the same view rebuilds nothing.
    let again = stdout_ok(&mut vrift_run(&p.env, &p.proj, &p.m, &cmd));
    assert!(
        !again.contains("gcc"),
        "make rebuilt on an unchanged view:\n{again}"
    );
    // Nothing was written into the project on disk.
    assert!(!p.proj.join("main.o").exists() && !p.proj.join("src/main.o").exists());
}

projections! {
    fn a_script_runs_make_which_compiles_view_sources() {
    make_build(None);
}
}

projections! {
    fn parallel_make_compiles_view_sources() {
    make_build(Some("-j2"));
}
}

// vrift inside vrift (a second seccomp listener in the same filter chain): it must either
// work or end with a clear message, never hang.
projections! {
    fn vrift_inside_vrift_answers_and_does_not_hang() {
    let p = project();
    let inner_m = p.env.dir.path().join("proj.manifest");
    let vrift = vrift_bin();
    let inner = [
        vrift.to_str().unwrap(),
        "run",
        "--manifest",
        inner_m.to_str().unwrap(),
        "--",
        "./bin/tool",
        "data.txt",
    ];
    let mut c = vrift_run(&p.env, &p.proj, &p.m, &inner);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut status = None;
    let ended = wait_until(std::time::Duration::from_secs(30), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("vrift inside vrift hung for 30 s");
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert_eq!(stdout, p.tool_line());
    } else {
        // EBUSY from the kernel is not enough: say why (another seccomp supervisor).
        let lower = stderr.to_lowercase();
        assert!(
            stderr.starts_with("vrift:")
                && ["seccomp", "nested", "already", "inside"]
                    .iter()
                    .any(|w| lower.contains(w)),
            "nested vrift failed without a clear message: {stderr:?}"
        );
    }
}
}

/// A working directory set in the child between fork and exec by a call no libc wrapper
/// sees (the chdir system call itself, as Go's StartProcess does, or posix_spawn's chdir
/// action, as Rust's Command::current_dir does): the program started there reports that
/// directory, one outside the view and one of the project.
fn cwd_set_between_fork_and_exec(as_user: bool) {
    let mut p = vrift_tests::Project::new(as_user);
    p.file("sub/keep.txt", "kept\n", 0o644);
    let startin = p.out.join("startin");
    std::fs::copy(build_c("gcc", "startin.c", &[]), &startin).unwrap();
    p.ready();
    for dir in [p.out.clone(), p.dir.join("sub")] {
        let out = p.run(&[
            startin.to_str().unwrap(),
            dir.to_str().unwrap(),
            "/bin/pwd",
            "-P",
        ]);
        let d = dir.display();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{d}\nraw: exit 0\n{d}\nspawn: exit 0\n"),
            "started in {d}"
        );
    }
    p.check_store();
}

matrix!(a_cwd_set_between_fork_and_exec_is_the_programs => cwd_set_between_fork_and_exec);

/// vrift starts a program that is a symlink in the view: to a script of the view (by path,
/// and found on a PATH pointing into the view), and out of the view to a system program
/// (as a venv's `bin/python` is).
fn symlinked_program(as_user: bool) {
    let mut p = vrift_tests::Project::new(as_user);
    p.file(
        "bin/hello.sh",
        "#!/bin/sh\necho hello from the view\n",
        0o755,
    );
    std::os::unix::fs::symlink("hello.sh", p.dir.join("bin/hi")).unwrap();
    std::os::unix::fs::symlink("/bin/pwd", p.dir.join("bin/where")).unwrap();
    std::os::unix::fs::symlink("bin/hi", p.dir.join("hi")).unwrap();
    p.ready();
    for cmd in ["./bin/hi", "./hi"] {
        let out = p.run(&[cmd]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from the view\n",
            "{cmd}"
        );
    }
    let out = p.run(&["./bin/where", "-P"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", p.dir.display())
    );
    let mut c = p.cmd(&["hi"]);
    c.env(
        "PATH",
        format!("{}/bin:{}", p.dir.display(), std::env::var("PATH").unwrap()),
    );
    let out = ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the view\n"
    );
    // A symlink to nothing is not found, as a shell says it.
    std::os::unix::fs::symlink("missing", p.dir.join("bin/dangling")).unwrap();
    let out = output_within(&mut p.cmd(&["./bin/dangling"]), RUN_TIMEOUT);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.check_store();
}

matrix!(a_program_that_is_a_symlink_in_the_view_starts => symlinked_program);
