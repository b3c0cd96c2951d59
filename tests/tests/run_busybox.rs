//! busybox-static applets over a view of an ingested tree whose disk copy has changed since:
//! every applet sees the manifest's bytes, modes, sizes, listing and symlinks, and real
//! writes outside the view (cp, tar) work.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use vrift_tests::*;

fn busybox() -> String {
    vrift_tests::busybox().display().to_string()
}

/// What the view should hold: path -> (kind, mode, content or symlink target).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    File(u32, Vec<u8>),
    Dir(u32),
    Link(String),
}

struct Fixture {
    env: Env,
    proj: PathBuf,
    manifest: PathBuf,
    out: PathBuf,
    outside: PathBuf,
    tree: BTreeMap<String, Want>,
    as_user: bool,
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Fixture {
    /// Ingest a small tree, then change every part of it on disk.
    fn new(as_user: bool) -> Fixture {
        let env = Env::new();
        let proj = env.mkdir("proj");
        let out = env.mkdir("out");
        let outside = env.dir.path().join("outside.txt");
        write(&outside, "real file outside\n");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut tree = BTreeMap::new();
        let files: Vec<(&str, Vec<u8>, u32)> = vec![
            ("README.md", b"readme from the manifest\n".to_vec(), 0o644),
            (
                "src/main.c",
                b"int main(void) { return 0; }\n".to_vec(),
                0o640,
            ),
            ("src/lib/util.h", b"#define UTIL 1\n".to_vec(), 0o600),
            (
                "bin/run.sh",
                b"#!/bin/sh\necho run.sh says hi\n".to_vec(),
                0o755,
            ),
            ("empty", Vec::new(), 0o444),
            ("data/big.bin", big, 0o644),
        ];
        for (rel, content, mode) in &files {
            write(&proj.join(rel), content);
            chmod(&proj.join(rel), *mode);
            tree.insert(rel.to_string(), Want::File(*mode, content.clone()));
        }
        for (d, mode) in [
            ("src", 0o755),
            ("src/lib", 0o750),
            ("bin", 0o755),
            ("data", 0o700),
        ] {
            chmod(&proj.join(d), mode);
            tree.insert(d.to_string(), Want::Dir(mode));
        }
        let outside_s = outside.to_str().unwrap().to_string();
        for (l, t) in [
            ("link", "src/main.c"),
            ("dirlink", "src/lib"),
            ("outlink", outside_s.as_str()),
        ] {
            symlink(t, proj.join(l)).unwrap();
            tree.insert(l.to_string(), Want::Link(t.to_string()));
        }
        let manifest = env.dir.path().join("proj.manifest");
        manifest_of_dir(&env, &proj, &manifest);

        write(
            &proj.join("README.md"),
            "changed on disk after the ingest\n",
        );
        std::fs::remove_file(proj.join("src/main.c")).unwrap();
        std::fs::remove_dir_all(proj.join("data")).unwrap();
        write(&proj.join("only-on-disk.txt"), "not in the manifest");
        chmod(&proj.join("bin/run.sh"), 0o600);
        std::fs::remove_file(proj.join("link")).unwrap();
        write(&proj.join("link"), "a file now");
        if as_user {
            env.give_to_nobody();
        }
        Fixture {
            env,
            proj,
            manifest,
            out,
            outside,
            tree,
            as_user,
        }
    }

    /// `vrift run -- CMD` in the project; returns stdout (and panics on failure).
    fn run(&self, cmd: &[&str]) -> String {
        stdout_ok(&mut self.cmd(cmd))
    }

    fn cmd(&self, cmd: &[&str]) -> Command {
        if self.as_user {
            vrift_run_as_user(&self.env, &self.proj, &self.manifest, cmd)
        } else {
            vrift_run(&self.env, &self.proj, &self.manifest, cmd)
        }
    }

    fn sh(&self, script: &str) -> String {
        let bb = busybox();
        self.run(&[&bb, "sh", "-c", script])
    }

    fn uid(&self) -> u32 {
        if self.as_user && is_root() {
            65534
        } else {
            std::fs::metadata("/proc/self").unwrap().uid()
        }
    }

    fn files(&self) -> Vec<(&String, &Vec<u8>)> {
        self.tree
            .iter()
            .filter_map(|(p, w)| match w {
                Want::File(_, c) => Some((p, c)),
                _ => None,
            })
            .collect()
    }
}

fn mode_string(w: &Want) -> String {
    let (c, mode) = match w {
        Want::File(m, _) => ('-', *m),
        Want::Dir(m) => ('d', *m),
        Want::Link(_) => ('l', 0o777),
    };
    let mut s = String::from(c);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn size_of(w: &Want) -> usize {
    match w {
        Want::File(_, c) => c.len(),
        Want::Dir(_) => 4096,
        Want::Link(t) => t.len(),
    }
}

/// `ls -lan` lines parsed into name -> (mode string, uid, size, link target).
fn parse_ls(out: &str) -> BTreeMap<String, (String, u32, usize, Option<String>)> {
    let mut m = BTreeMap::new();
    for line in out.lines().filter(|l| !l.starts_with("total")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 9, "odd ls line {line:?}");
        let rest = f[8..].join(" ");
        let (name, target) = match rest.split_once(" -> ") {
            Some((n, t)) => (n.to_string(), Some(t.to_string())),
            None => (rest, None),
        };
        m.insert(
            name,
            (
                f[0].to_string(),
                f[2].parse().unwrap(),
                f[4].parse().unwrap(),
                target,
            ),
        );
    }
    m
}

fn ls_la(as_user: bool) {
    let fx = Fixture::new(as_user);
    let bb = busybox();
    let got = parse_ls(&fx.run(&[&bb, "ls", "-lan"]));
    let mut want = BTreeMap::new();
    want.insert(
        ".".to_string(),
        ("drwxr-xr-x".to_string(), fx.uid(), 4096, None),
    );
    for (p, w) in fx.tree.iter().filter(|(p, _)| !p.contains('/')) {
        let target = match w {
            Want::Link(t) => Some(t.clone()),
            _ => None,
        };
        want.insert(p.clone(), (mode_string(w), fx.uid(), size_of(w), target));
    }
    let parent = got.get("..").cloned();
    let mut got = got;
    got.remove("..");
    assert!(parent.is_some(), "ls -la shows ..");
    assert_eq!(got, want);

    let got = fx.run(&[&bb, "ls", "-lan", "src/lib", "data"]);
    assert!(got.contains("-rw-------"), "{got}");
    let lib = parse_ls(&fx.run(&[&bb, "ls", "-lan", "src/lib/"]));
    assert_eq!(
        lib.get("util.h"),
        Some(&("-rw-------".to_string(), fx.uid(), 15, None))
    );
    let data = parse_ls(&fx.run(&[&bb, "ls", "-lan", "data"]));
    assert_eq!(data.get("big.bin").map(|e| e.2), Some(200_000));
}

matrix!(ls_la_shows_manifest_modes_sizes_and_links => ls_la);

projections! {
    fn find_lists_exactly_the_manifest() {
    let fx = Fixture::new(false);
    let bb = busybox();
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let files = sorted(fx.run(&[&bb, "find", ".", "-type", "f"]));
    let want: Vec<String> = fx.files().iter().map(|(p, _)| format!("./{p}")).collect();
    assert_eq!(files, want);
    let links = sorted(fx.run(&[&bb, "find", ".", "-type", "l"]));
    assert_eq!(links, vec!["./dirlink", "./link", "./outlink"]);
    let all = sorted(fx.run(&[&bb, "find", "."]));
    let mut want: Vec<String> = fx.tree.keys().map(|p| format!("./{p}")).collect();
    want.push(".".into());
    want.sort();
    assert_eq!(all, want);
    // find follows the directory symlink with -L.
    let via = sorted(fx.run(&[&bb, "find", "-L", "dirlink", "-type", "f"]));
    assert_eq!(via, vec!["dirlink/util.h"]);
}
}

projections! {
    fn cat_stat_and_readlink() {
    let fx = Fixture::new(false);
    let bb = busybox();
    assert_eq!(
        fx.run(&[&bb, "cat", "README.md", "link", "dirlink/util.h", "outlink"]),
        "readme from the manifest\nint main(void) { return 0; }\n#define UTIL 1\nreal file outside\n"
    );
    let got = run_expect(&mut fx.cmd(&[&bb, "cat", "data/big.bin"]), true).stdout;
    let Some(Want::File(_, big)) = fx.tree.get("data/big.bin") else {
        unreachable!()
    };
    assert!(
        got == *big,
        "cat data/big.bin: {} bytes, not the manifest's",
        got.len()
    );
    let got = fx.run(&[
        &bb,
        "stat",
        "-c",
        "%n %a %s %F %u",
        "README.md",
        "src",
        "src/lib/util.h",
        "empty",
        "link",
        "bin/run.sh",
    ]);
    let u = fx.uid();
    assert_eq!(
        got,
        format!(
            "README.md 644 25 regular file {u}\nsrc 755 4096 directory {u}\nsrc/lib/util.h 600 15 regular file {u}\n\
             empty 444 0 regular empty file {u}\nlink 777 10 symbolic link {u}\nbin/run.sh 755 30 regular file {u}\n"
        )
    );
    // -L follows the link to the manifest's file.
    assert_eq!(
        fx.run(&[&bb, "stat", "-L", "-c", "%a %s", "link"]),
        "640 29\n"
    );
    assert_eq!(
        fx.sh("for l in link dirlink outlink; do readlink $l; done"),
        format!("src/main.c\nsrc/lib\n{}\n", fx.outside.display())
    );
    assert_eq!(
        fx.run(&[&bb, "readlink", "-f", "link"]),
        format!("{}/src/main.c\n", fx.proj.display())
    );
    assert!(!fx
        .cmd(&[&bb, "cat", "only-on-disk.txt"])
        .output()
        .unwrap()
        .status
        .success());
}
}

projections! {
    fn sh_scripts_see_the_view() {
    let fx = Fixture::new(false);
    let got = fx.sh("for f in *; do echo \"$f\"; done
         read line < README.md; echo \"read: $line\"
         [ -x bin/run.sh ] && echo run.sh is executable
         [ -d dirlink ] && echo dirlink is a dir
         [ -L link ] && echo link is a symlink
         [ -e src/main.c ] && echo main.c exists
         [ -e only-on-disk.txt ] || echo only-on-disk.txt is absent
         [ -s empty ] || echo empty is empty
         cd src/lib && pwd && cat util.h");
    assert_eq!(
        got,
        format!(
            "README.md\nbin\ndata\ndirlink\nempty\nlink\noutlink\nsrc\n\
             read: readme from the manifest\nrun.sh is executable\ndirlink is a dir\n\
             link is a symlink\nmain.c exists\nonly-on-disk.txt is absent\nempty is empty\n\
             {}/src/lib\n#define UTIL 1\n",
            fx.proj.display()
        )
    );
    // Pipelines whose writers die of SIGPIPE while readers still read from the view.
    assert_eq!(
        fx.sh("yes | head -n 1000 | wc -l; cat data/big.bin | head -c 1000 | wc -c; find . | sort | head -n 2"),
        "1000\n1000\n.\n./README.md\n"
    );
    // A script that exists only in the view, run by the shell and directly (the kernel
    // reads its #! line from the view).
    let bb = busybox();
    assert_eq!(fx.run(&[&bb, "sh", "bin/run.sh"]), "run.sh says hi\n");
    assert_eq!(fx.run(&["./bin/run.sh"]), "run.sh says hi\n");
}
}

/// sha256 of the manifest's bytes, computed natively on copies outside any view.
fn native_sha256(fx: &Fixture, rels: &[&str]) -> String {
    let dir = fx.env.mkdir("expect");
    for r in rels {
        let Some(Want::File(_, c)) = fx.tree.get(*r) else {
            panic!("{r}")
        };
        write(&dir.join(r), c);
    }
    let mut c = Command::new(busybox());
    c.arg("sha256sum").args(rels).current_dir(&dir);
    stdout_ok(&mut c)
}

fn sha256(as_user: bool) {
    let fx = Fixture::new(as_user);
    let rels = [
        "README.md",
        "src/main.c",
        "src/lib/util.h",
        "empty",
        "data/big.bin",
    ];
    let want = native_sha256(&fx, &rels);
    let bb = busybox();
    let mut cmd = vec![bb.as_str(), "sha256sum"];
    cmd.extend(rels);
    assert_eq!(fx.run(&cmd), want);
}

matrix!(sha256sum_hashes_view_content_not_disk => sha256);

/// Check that the real tree at `dir` holds exactly the fixture's tree (modes too).
fn assert_tree(fx: &Fixture, dir: &Path, check_mtime_of: Option<&Path>) {
    let mut seen = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((p, rel)) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let w = if meta.file_type().is_symlink() {
                Want::Link(
                    std::fs::read_link(e.path())
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .into(),
                )
            } else if meta.is_dir() {
                stack.push((e.path(), r.clone()));
                Want::Dir(meta.mode() & 0o7777)
            } else {
                Want::File(meta.mode() & 0o7777, std::fs::read(e.path()).unwrap())
            };
            seen.insert(r, w);
        }
    }
    assert_eq!(
        seen.len(),
        fx.tree.len(),
        "names: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
    for (k, w) in &fx.tree {
        assert_eq!(seen.get(k), Some(w), "{k}");
    }
    if let Some(m) = check_mtime_of {
        let manifest = vrift_common::manifest::Manifest::load(m).unwrap();
        let e = manifest.get(b"README.md").unwrap();
        let got = std::fs::metadata(dir.join("README.md")).unwrap();
        assert_eq!(
            got.mtime(),
            e.mtime_ns / 1_000_000_000,
            "README.md mtime kept by cp -a"
        );
    }
}

fn cp_out(as_user: bool) {
    let fx = Fixture::new(as_user);
    let bb = busybox();
    let out = fx.out.to_str().unwrap();
    let tree = format!("{out}/tree");
    fx.run(&[&bb, "cp", "README.md", "src/lib/util.h", out]);
    assert_eq!(
        std::fs::read_to_string(fx.out.join("README.md")).unwrap(),
        "readme from the manifest\n"
    );
    assert_eq!(
        std::fs::read_to_string(fx.out.join("util.h")).unwrap(),
        "#define UTIL 1\n"
    );
    fx.run(&[&bb, "cp", "-a", ".", &tree]);
    assert_tree(&fx, Path::new(&tree), Some(&fx.manifest));
    // Nothing was written into the project on disk.
    assert_eq!(
        std::fs::read_to_string(fx.proj.join("README.md")).unwrap(),
        "changed on disk after the ingest\n"
    );
}

matrix!(cp_from_the_view_to_a_real_dir_outside_it => cp_out);

projections! {
    fn tar_of_the_view_written_outside_it() {
    let fx = Fixture::new(false);
    let bb = busybox();
    let tar = fx.out.join("view.tar");
    fx.run(&[&bb, "tar", "cf", tar.to_str().unwrap(), "."]);
    // List natively (outside vrift).
    let mut c = Command::new(&bb);
    c.args(["tar", "tvf"]).arg(&tar);
    let listing = stdout_ok(&mut c);
    let mut got = BTreeMap::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f[5]
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if name.is_empty() {
            continue;
        }
        got.insert(name, (f[0].to_string(), f[2].parse::<usize>().unwrap()));
    }
    let want: BTreeMap<String, (String, usize)> = fx
        .tree
        .iter()
        .map(|(p, w)| {
            let size = match w {
                Want::File(_, c) => c.len(),
                _ => 0,
            };
            (p.clone(), (mode_string(w), size))
        })
        .collect();
    assert_eq!(got, want);
    // Extract natively and compare bytes, modes and link targets.
    let x = fx.env.mkdir("extracted");
    let mut c = Command::new(&bb);
    c.args(["tar", "xf"]).arg(&tar).arg("-C").arg(&x);
    stdout_ok(&mut c);
    assert_tree(&fx, &x, None);
}
}
