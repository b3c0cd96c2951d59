//! Real toolchains writing inside the view of a project: git makes a repository, `go build`
//! writes a binary, python writes its bytecode caches, make and gcc write objects next to
//! their sources (in parallel with -j2). After the write-back each result works natively
//! from the real tree, and a second run finds nothing to redo (the times it recorded
//! survive the write-back). Root and an ordinary user; the store keeps every blob intact.

use std::path::Path;
use std::process::Command;

use vrift_tests::*;

const PYTHON: &str = "/usr/bin/python3";

/// Native `git -C DIR ARGS` (any owner accepted), its stdout.
fn git_native(dir: &Path, args: &[&str]) -> String {
    let mut c = Command::new(require_tool("git"));
    c.arg("-c")
        .arg("safe.directory=*")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    stdout_ok(&mut c)
}

/// git configured by environment only: no global or system config, a fixed identity.
fn git_env(c: &mut Command) {
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
}

fn git_in_the_view(as_user: bool) {
    let git = require_tool("git").display().to_string();
    let mut p = Project::new(as_user);
    p.file("README", "readme\n", 0o644);
    p.file("src/main.c", "int main(void) { return 0; }\n", 0o644);
    p.file("tools/run.sh", "#!/bin/sh\necho run\n", 0o755);
    p.ready();
    let script = format!(
        "{git} init -q -b main && {git} add -A && {git} commit -qm x && {git} log --format=%s"
    );
    let bb = busybox().display().to_string();
    let mut c = p.cmd(&[&bb, "sh", "-c", &script]);
    git_env(&mut c);
    let out = ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\n");
    // The repository is on disk, valid, and agrees with the work tree.
    assert!(p.dir.join(".git/HEAD").is_file());
    assert_eq!(git_native(&p.dir, &["log", "--format=%s"]), "x\n");
    git_native(&p.dir, &["fsck", "--strict"]);
    assert_eq!(git_native(&p.dir, &["status", "--porcelain"]), "");
    assert_eq!(
        git_native(&p.dir, &["ls-files", "-s"]),
        git_native(&p.dir, &["ls-files", "-s", "--", "README", "src", "tools"])
    );
    assert!(git_native(&p.dir, &["ls-files", "-s", "tools/run.sh"]).starts_with("100755 "));

    // Now .git exists at the ingest, so it passes through to the disk; a change to a view
    // file is committed in it.
    let script = format!(
        "echo more >> README && {git} commit -qam y && {git} log --format=%s && {git} status --porcelain"
    );
    let mut c = p.cmd(&[&bb, "sh", "-c", &script]);
    git_env(&mut c);
    let out = ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\nx\n");
    assert_eq!(git_native(&p.dir, &["log", "--format=%s"]), "y\nx\n");
    assert_eq!(git_native(&p.dir, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(p.dir.join("README")).unwrap(),
        "readme\nmore\n"
    );
    git_native(&p.dir, &["fsck", "--strict"]);
    p.check_store();
}

matrix!(git_init_add_commit_in_the_view => git_in_the_view);

// ---- go build -o ./bin/app ----

fn go_build(as_user: bool) {
    require_tool("go");
    let mut p = Project::new(as_user);
    p.file("go.mod", "module example.com/hello\n\ngo 1.19\n", 0o644);
    p.file(
        "main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\n\t\"example.com/hello/greet\"\n)\n\n\
         func main() {\n\tb, err := os.ReadFile(\"data/words.txt\")\n\tfmt.Println(greet.Message(), len(b), err == nil)\n}\n",
        0o644,
    );
    p.file(
        "greet/greet.go",
        "package greet\n\n// Message is what the binary prints.\nfunc Message() string { return \"built in the view\" }\n",
        0o644,
    );
    p.file("data/words.txt", "alpha beta gamma\n", 0o644);
    let gohome = p.env.mkdir("gohome");
    p.ready();
    let bb = busybox().display().to_string();
    let mut c = p.cmd(&[&bb, "sh", "-c", "go build -o ./bin/app . && ./bin/app"]);
    go_env(&mut c, &gohome);
    c.env("TMPDIR", &p.out);
    let out = ok_within(&mut c, RUN_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "built in the view 17 true\n"
    );
    // Natively from the real tree.
    let app = p.dir.join("bin/app");
    let mut native = Command::new(&app);
    native.current_dir(&p.dir);
    assert_eq!(stdout_ok(&mut native), "built in the view 17 true\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&app).unwrap().permissions().mode() & 0o777,
        0o755
    );
    p.check_store();
}

matrix!(go_build_writes_a_binary_into_the_view => go_build, not_shim = "Go programs make their system calls directly, never through libc, so the shim sees none of them");

// ---- python -m compileall ----

fn compileall(p: &Project, in_view: bool) -> String {
    let args = [PYTHON, "-m", "compileall", "."];
    let mut c = if in_view {
        p.cmd(&args)
    } else {
        let mut c = Command::new(PYTHON);
        c.args(&args[1..]).current_dir(&p.dir);
        c
    };
    c.env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPYCACHEPREFIX")
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME");
    String::from_utf8(ok_within(&mut c, RUN_TIMEOUT).stdout).unwrap()
}

fn python_bytecode(as_user: bool) {
    let mut p = Project::new(as_user);
    p.file("pyproject.toml", "[project]\nname = \"x\"\n", 0o644);
    p.file("main.py", "import pkg.mod\nprint(pkg.mod.f())\n", 0o644);
    p.file("pkg/__init__.py", "", 0o644);
    p.file("pkg/mod.py", "def f():\n    return 42\n", 0o644);
    p.ready();
    let first = compileall(&p, true);
    for f in ["./main.py", "./pkg/__init__.py", "./pkg/mod.py"] {
        assert!(first.contains(&format!("Compiling '{f}'")), "{first}");
    }
    let cached: Vec<String> = std::fs::read_dir(p.dir.join("pkg/__pycache__"))
        .unwrap_or_else(|e| panic!("pkg/__pycache__ on disk: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached
            .iter()
            .any(|n| n.starts_with("mod.") && n.ends_with(".pyc")),
        "{cached:?}"
    );
    assert!(p.dir.join("__pycache__").is_dir());
    // The caches are valid for the sources as they are on disk: nothing to recompile, in
    // a second run (where __pycache__ now passes through) or natively.
    let second = compileall(&p, true);
    assert!(!second.contains("Compiling"), "second run:\n{second}");
    let native = compileall(&p, false);
    assert!(!native.contains("Compiling"), "natively:\n{native}");
    p.check_store();
}

matrix!(python_compileall_writes_pycache_into_the_view => python_bytecode);

// ---- make -j2 with gcc ----

const UNITS: usize = 24;

fn c_project(p: &Project) {
    let mut decls = String::new();
    let mut calls = String::new();
    for i in 0..UNITS {
        p.file(
            &format!("src/u{i:02}.c"),
            format!("#include \"fns.h\"\nint f{i:02}(void) {{ return {i} * FACTOR; }}\n"),
            0o644,
        );
        decls += &format!("int f{i:02}(void);\n");
        calls += &format!(" + f{i:02}()");
    }
    p.file("include/fns.h", format!("#define FACTOR 3\n{decls}"), 0o644);
    p.file(
        "src/main.c",
        format!(
            "#include <stdio.h>\n#include \"fns.h\"\nint main(void) {{ printf(\"sum %d\\n\", 0{calls}); return 0; }}\n"
        ),
        0o644,
    );
    p.file(
        "Makefile",
        "CC = gcc\nSRCS = $(wildcard src/*.c)\nOBJS = $(SRCS:.c=.o)\n\napp: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n\
         src/%.o: src/%.c include/fns.h\n\t$(CC) -Iinclude -c -o $@ $<\n",
        0o644,
    );
}

fn compiles(out: &str) -> usize {
    out.lines().filter(|l| l.contains(" -c -o ")).count()
}

fn make_build(as_user: bool) {
    require_tool("make");
    require_tool("gcc");
    let mut p = Project::new(as_user);
    c_project(&p);
    p.ready();
    let sum: usize = (0..UNITS).map(|i| i * 3).sum();
    let first = String::from_utf8(p.run(&["sh", "-c", "make -j2 && ./app"]).stdout).unwrap();
    assert_eq!(compiles(&first), UNITS + 1, "{first}");
    assert!(first.ends_with(&format!("sum {sum}\n")), "{first}");
    // Objects next to their sources, on disk; the binary runs natively.
    for i in 0..UNITS {
        assert!(p.dir.join(format!("src/u{i:02}.o")).is_file(), "u{i:02}.o");
    }
    let mut native = Command::new(p.dir.join("app"));
    assert_eq!(stdout_ok(&mut native), format!("sum {sum}\n"));
    // Up to date, in the view and natively.
    let second = String::from_utf8(p.run(&["make", "-j2"]).stdout).unwrap();
    assert_eq!(compiles(&second), 0, "second run rebuilt:\n{second}");
    assert!(second.contains("up to date"), "{second}");
    let mut q = Command::new("make");
    q.arg("-q").current_dir(&p.dir);
    assert!(
        q.status().unwrap().success(),
        "make -q natively: not up to date"
    );
    // One source changed on disk: exactly that object and the link are redone.
    let u07 = p.dir.join("src/u07.c");
    write(&u07, "#include \"fns.h\"\nint f07(void) { return 1000; }\n");
    let third = String::from_utf8(p.run(&["sh", "-c", "make -j2 && ./app"]).stdout).unwrap();
    assert_eq!(compiles(&third), 1, "{third}");
    assert!(third.contains("src/u07.o"), "{third}");
    assert!(
        third.ends_with(&format!("sum {}\n", sum - 7 * 3 + 1000)),
        "{third}"
    );
    p.check_store();
}

matrix!(make_j2_builds_objects_next_to_sources_and_then_nothing => make_build);

// ---- a C library: make -j2, gcc, ar rcs, link ----

/// Functions per unit of the library, with long names: the archive's symbol table is then
/// larger than any small file of the view (ar checks the table against the archive's size).
const FNS_PER_UNIT: usize = 12;

/// A library project: `lib/*.c` archived with `ar rcs` into `$(O)/libx.a`, `main.c` linked
/// against it into `$(O)/app`; `O` is `build` in the view unless given.
fn c_library(p: &Project) {
    let mut main = String::from("#include <stdio.h>\n");
    let mut sum = String::from("0");
    for u in 0..8 {
        let mut src = String::new();
        for f in 0..FNS_PER_UNIT {
            let name = format!("library_function_with_a_rather_long_name_u{u}_f{f:02}");
            src += &format!("int {name}(void) {{ return {}; }}\n", u * 100 + f);
            main += &format!("int {name}(void);\n");
            sum += &format!(" + {name}()");
        }
        p.file(&format!("lib/u{u}.c"), src, 0o644);
    }
    main += &format!("int main(void) {{ printf(\"total %d\\n\", {sum}); return 0; }}\n");
    p.file("main.c", main, 0o644);
    p.file(
        "Makefile",
        "O ?= build\nLIBOBJS = $(patsubst lib/%.c,$(O)/%.o,$(sort $(wildcard lib/*.c)))\n\n\
         $(O)/app: $(O)/main.o $(O)/libx.a\n\tgcc -o $@ $^\n\n\
         $(O)/libx.a: $(LIBOBJS)\n\tar rcs $@ $^\n\n\
         $(O)/%.o: lib/%.c | $(O)\n\tgcc -O1 -c -o $@ $<\n\n\
         $(O)/main.o: main.c | $(O)\n\tgcc -O1 -c -o $@ $<\n\n\
         $(O):\n\tmkdir -p $@\n",
        0o644,
    );
}

/// The sum `main.c` prints.
fn c_library_total() -> usize {
    (0..8)
        .flat_map(|u| (0..FNS_PER_UNIT).map(move |f| u * 100 + f))
        .sum()
}

/// The names `nm` lists as defined in the archive at `lib`.
fn archived_symbols(lib: &Path) -> usize {
    let out = stdout_ok(Command::new("nm").arg("--defined-only").arg(lib));
    out.lines()
        .filter(|l| l.contains("library_function_with_a_rather_long_name"))
        .count()
}

fn make_archive(as_user: bool) {
    require_tool("make");
    require_tool("gcc");
    require_tool("ar");
    require_tool("nm");
    let mut p = Project::new(as_user);
    c_library(&p);
    p.ready();
    let total = format!("total {}\n", c_library_total());
    let symbols = 8 * FNS_PER_UNIT;
    // In the view, next to the sources; then again with the archive there (ar reads and
    // rewrites an existing archive).
    for args in ["make -j2", "make -B -j2"] {
        let out = p.sh(&format!("{args} >&2 && ./build/app"));
        assert_eq!(out, total, "{args}");
        assert_eq!(
            archived_symbols(&p.dir.join("build/libx.a")),
            symbols,
            "{args}"
        );
    }
    let mut native = Command::new(p.dir.join("build/app"));
    assert_eq!(stdout_ok(&mut native), total);
    // Objects and archive outside the view, as a build directory elsewhere.
    let obj = p.out.join("obj");
    for args in ["make -j2", "make -B -j2"] {
        let out = p.sh(&format!("{args} O=\"$OUT/obj\" >&2 && \"$OUT/obj/app\""));
        assert_eq!(out, total, "{args} O=$OUT/obj");
        assert_eq!(
            archived_symbols(&obj.join("libx.a")),
            symbols,
            "{args} O=$OUT/obj"
        );
    }
    let mut native = Command::new(obj.join("app"));
    assert_eq!(stdout_ok(&mut native), total);
    p.check_store();
}

matrix!(make_gcc_and_ar_build_a_library_in_and_outside_the_view => make_archive);
