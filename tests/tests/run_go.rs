//! Go over a view: a CGO_ENABLED=0 program walks, reads and hashes a few thousand view files
//! with goroutines (while the runtime preempts a spinning goroutine with signals) and gets
//! the digest of the manifest's content; `go build` compiles and links a module whose
//! sources exist only in the view, writing the binary outside it.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use vrift_tests::*;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree of `n` files in 30 dirs plus a few symlinks; returns the digest lines walkhash.go
/// prints for it (see its header).
fn big_tree(root: &Path, n: usize) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut bytes = 0;
    let mut seed: u64 = 0x1234_5678;
    for d in 0..30 {
        let dir = format!("d{d:02}");
        std::fs::create_dir_all(root.join(&dir)).unwrap();
        let mode = if d % 3 == 0 { 0o750 } else { 0o755 };
        chmod(&root.join(&dir), mode);
        lines.push(format!("d {dir} {mode:o}\n"));
    }
    std::fs::create_dir_all(root.join("d00/nested/deeper")).unwrap();
    lines.push("d d00/nested 755\n".into());
    lines.push("d d00/nested/deeper 755\n".into());
    for i in 0..n {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = (seed >> 33) as usize % 12_000;
        let content: Vec<u8> = (0..size)
            .map(|k| ((k as u64 * 7 + seed) >> 3) as u8)
            .collect();
        let rel = if i % 97 == 0 {
            format!("d00/nested/deeper/f{i}.bin")
        } else {
            format!("d{:02}/f{i}.bin", i % 30)
        };
        write(&root.join(&rel), &content);
        let mode = [0o644, 0o600, 0o755][i % 3];
        chmod(&root.join(&rel), mode);
        lines.push(format!(
            "f {rel} {mode:o} {size} {:016x}\n",
            fnv1a64(&content)
        ));
        bytes += size;
    }
    for (l, t) in [
        ("d01/ln", "f1.bin"),
        ("d02/up", "../d03"),
        ("dangling", "nowhere"),
    ] {
        symlink(t, root.join(l)).unwrap();
        lines.push(format!("l {l} -> {t}\n"));
    }
    lines.sort();
    (lines, bytes)
}

fn walk(as_user: bool) {
    let env = Env::new();
    let proj = env.mkdir("proj");
    let n = 3000;
    let (lines, bytes) = big_tree(&proj, n);
    let m = env.dir.path().join("proj.manifest");
    manifest_of_dir(&env, &proj, &m);
    // The disk moves on: every third file rewritten, every fifth deleted, a dir removed.
    for (i, l) in lines.iter().filter(|l| l.starts_with("f ")).enumerate() {
        let rel = l.split(' ').nth(1).unwrap();
        match i % 15 {
            0 | 3 | 6 | 9 | 12 => write(&proj.join(rel), "rewritten"),
            5 | 10 => std::fs::remove_file(proj.join(rel)).unwrap(),
            _ => {}
        }
    }
    std::fs::remove_dir_all(proj.join("d29")).unwrap();
    let digest = fnv1a64(lines.concat().as_bytes());
    let links = 3;
    let dirs = 32;
    let want = format!("files={n} links={links} dirs={dirs} bytes={bytes} digest={digest:016x}\n");

    let bin = build_go("walkhash.go");
    let cmd = [bin.to_str().unwrap(), ".", "3"];
    if as_user {
        env.give_to_nobody();
    }
    let got = if as_user {
        stdout_ok(&mut vrift_run_as_user(&env, &proj, &m, &cmd))
    } else {
        stdout_ok(&mut vrift_run(&env, &proj, &m, &cmd))
    };
    assert_eq!(got, want);
}

matrix!(go_walks_reads_and_hashes_thousands_of_view_files => walk, not_shim = "Go programs built with CGO_ENABLED=0 are statically linked");

fn module(env: &Env) -> (PathBuf, PathBuf) {
    let proj = env.mkdir("mod");
    write(
        &proj.join("go.mod"),
        "module example.com/hello\n\ngo 1.19\n",
    );
    write(
        &proj.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\n\t\"example.com/hello/greet\"\n)\n\nfunc main() {\n\tb, _ := os.ReadFile(\"data/words.txt\")\n\tfmt.Println(greet.Message(), len(b))\n}\n",
    );
    write(
        &proj.join("greet/greet.go"),
        "package greet\n\n// Message is what the binary prints.\nfunc Message() string { return \"built from the view\" }\n",
    );
    write(&proj.join("data/words.txt"), "alpha beta gamma\n");
    let m = env.dir.path().join("mod.manifest");
    manifest_of_dir(env, &proj, &m);
    // On disk the module no longer builds, or builds something else.
    std::fs::remove_file(proj.join("main.go")).unwrap();
    write(
        &proj.join("greet/greet.go"),
        "package greet\n\nfunc Message() string { return \"built from the disk\" }\n",
    );
    write(
        &proj.join("greet/broken.go"),
        "package greet\n\nthis does not compile\n",
    );
    (proj, m)
}

fn go_build(as_user: bool) {
    require_tool("go");
    let env = Env::new();
    let (proj, m) = module(&env);
    let out = env.mkdir("out");
    let gohome = env.mkdir("gohome");
    if as_user {
        env.give_to_nobody();
    }
    let exe = out.join("hello");
    let cmd = ["go", "build", "-o", exe.to_str().unwrap(), "."];
    let mut c = if as_user {
        vrift_run_as_user(&env, &proj, &m, &cmd)
    } else {
        vrift_run(&env, &proj, &m, &cmd)
    };
    go_env(&mut c, &gohome);
    c.env("TMPDIR", &out);
    run_expect(&mut c, true);
    // Run the binary natively from inside the view, where data/words.txt exists.
    let mut run = vrift_run(&env, &proj, &m, &[exe.to_str().unwrap()]);
    assert_eq!(stdout_ok(&mut run), "built from the view 17\n");
    // Natively, outside any view, it still prints the message compiled in.
    let mut native = Command::new(&exe);
    native.current_dir(&out);
    assert_eq!(stdout_ok(&mut native), "built from the view 0\n");
    assert!(!proj.join("hello").exists());
}

matrix!(go_build_compiles_a_module_that_exists_only_in_the_view => go_build, not_shim = "Go programs built with CGO_ENABLED=0 are statically linked");
