//! Dynamic binaries over a view: python3 imports a module that exists only in the view
//! (and its standard library from the real disk), gcc compiles a view-only source with a
//! view-only header, output written outside the view.

use std::path::PathBuf;
use std::process::Command;

use vrift_tests::*;

const PYTHON: &str = "/usr/bin/python3";

struct Fixture {
    env: Env,
    proj: PathBuf,
    m: PathBuf,
    out: PathBuf,
}

fn fixture() -> Fixture {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let out = env.mkdir("out");
    write(&proj.join("mymod.py"), "X = 'from the view module'\n");
    write(&proj.join("pkg/__init__.py"), "from .inner import Y\n");
    write(
        &proj.join("pkg/inner.py"),
        "import json\nY = json.dumps({'inner': 'view'})\n",
    );
    write(&proj.join("data.json"), "{\"k\": [1, 2, 3]}\n");
    write(&proj.join("hello.c"), "#include <stdio.h>\n#include \"inc/greet.h\"\nint main(void) { puts(GREETING); return 0; }\n");
    write(
        &proj.join("inc/greet.h"),
        "#define GREETING \"compiled from the view\"\n",
    );
    let m = env.dir.path().join("proj.manifest");
    manifest_of_dir(&env, &proj, &m);
    // Change the disk: the view keeps the ingested bytes.
    write(&proj.join("mymod.py"), "X = 'from the disk'\n");
    std::fs::remove_dir_all(proj.join("pkg")).unwrap();
    write(
        &proj.join("inc/greet.h"),
        "#error the disk header was used\n",
    );
    std::fs::remove_file(proj.join("hello.c")).unwrap();
    Fixture { env, proj, m, out }
}

fn python_env(c: &mut Command, f: &Fixture) {
    c.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONPYCACHEPREFIX", f.out.join("pycache"))
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME");
}

fn python_imports(as_user: bool) {
    require_tool("python3");
    let f = fixture();
    if as_user {
        f.env.give_to_nobody();
    }
    let script = "import mymod, pkg, json, os, sys\n\
                  print(mymod.X)\n\
                  print(pkg.Y)\n\
                  print(json.load(open('data.json'))['k'])\n\
                  print(sorted(os.listdir('.')))\n\
                  print(os.path.realpath(mymod.__file__))\n\
                  print(os.stat('mymod.py').st_size)";
    let cmd = [PYTHON, "-c", script];
    let mut c = if as_user {
        vrift_run_as_user(&f.env, &f.proj, &f.m, &cmd)
    } else {
        vrift_run(&f.env, &f.proj, &f.m, &cmd)
    };
    python_env(&mut c, &f);
    let got = stdout_ok(&mut c);
    assert_eq!(
        got,
        format!(
            "from the view module\n{{\"inner\": \"view\"}}\n[1, 2, 3]\n\
             ['data.json', 'hello.c', 'inc', 'mymod.py', 'pkg']\n{}/mymod.py\n{}\n",
            f.proj.display(),
            "X = 'from the view module'\n".len()
        )
    );
    // No bytecode landed in the view or on the disk.
    assert!(!f.proj.join("__pycache__").exists());
}

matrix!(python_imports_a_module_that_exists_only_in_the_view => python_imports);

fn gcc_compiles(as_user: bool) {
    require_tool("gcc");
    let f = fixture();
    if as_user {
        f.env.give_to_nobody();
    }
    let exe = f.out.join("hello");
    let cmd = ["gcc", "-O1", "-o", exe.to_str().unwrap(), "hello.c"];
    let mut c = if as_user {
        vrift_run_as_user(&f.env, &f.proj, &f.m, &cmd)
    } else {
        vrift_run(&f.env, &f.proj, &f.m, &cmd)
    };
    // gcc's temporary files go outside the view.
    c.env("TMPDIR", &f.out);
    run_expect(&mut c, true);
    assert_eq!(
        stdout_ok(&mut Command::new(&exe)),
        "compiled from the view\n"
    );
    // Preprocessing the view's source by its absolute path.
    let abs = f.proj.join("hello.c");
    let cmd = ["gcc", "-E", "-P", abs.to_str().unwrap()];
    let mut c = if as_user {
        vrift_run_as_user(&f.env, &f.proj, &f.m, &cmd)
    } else {
        vrift_run(&f.env, &f.proj, &f.m, &cmd)
    };
    c.env("TMPDIR", &f.out);
    assert!(stdout_ok(&mut c).contains("puts(\"compiled from the view\")"));
}

matrix!(gcc_compiles_a_source_that_exists_only_in_the_view => gcc_compiles);
