//! `cargo xtask bench isolate [--runs N] [--vrift PATH]`: start-up of an isolated run.
//! `vrift run --isolate --base busybox.manifest -- /bin/true` against `bwrap` over the same
//! busybox root file system, and an isolated `python3 script.py` (vrift's minimal set)
//! against bwrap with the same outside isolation (the host's /usr read-only, its own /proc,
//! /dev and /tmp, the project bound, every namespace unshared); both projections, runs
//! interleaved; medians and ratios to bwrap.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::timing::{median, secs, timed};

pub fn run(args: &[String]) -> Result<()> {
    let mut runs = 21usize;
    let mut vrift = PathBuf::from("target/release/vrift");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            "--vrift" => vrift = PathBuf::from(it.next().context("--vrift PATH")?),
            other => bail!("unknown option {other:?} (options: --runs N, --vrift PATH)"),
        }
    }
    let vrift = std::path::absolute(&vrift)?;
    let t = tempfile::tempdir()?;
    let home = t.path().join("store");
    let rootfs = t.path().join("rootfs");
    let proj = t.path().join("proj");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    // Mount points bwrap needs in a read-only root.
    for d in ["proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::create_dir_all(&proj)?;
    let busybox = which("busybox")?;
    std::fs::copy(&busybox, rootfs.join("bin/busybox"))?;
    let list = Command::new(&busybox).arg("--list").output()?;
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        if app != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app))?;
        }
    }
    std::fs::write(
        proj.join("script.py"),
        "import json, os\nprint(json.dumps(sorted(os.listdir('.'))))\n",
    )?;
    let manifest = t.path().join("busybox.manifest");
    let v = |args: &[&str]| {
        let mut c = Command::new(&vrift);
        c.args(args).env("VRIFT_HOME", &home).current_dir(&proj);
        c
    };
    timed(&mut v(&[
        "-q",
        "ingest",
        rootfs.to_str().unwrap(),
        "-o",
        manifest.to_str().unwrap(),
    ]))?;
    let bwrap = which("bwrap")?;
    let p = proj.to_str().unwrap();
    let bw_base = |cmd: &[&str]| {
        let mut c = Command::new(&bwrap);
        c.args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            rootfs.to_str().unwrap(),
            "/",
        ]);
        c.args([
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", p, p, "--chdir", p,
        ]);
        c.args(cmd).current_dir(&proj);
        c
    };
    let bw_min = |cmd: &[&str]| {
        let mut c = Command::new(&bwrap);
        c.args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
        ]);
        for l in ["bin", "sbin", "lib", "lib64"] {
            if let Ok(t) = std::fs::read_link(Path::new("/").join(l)) {
                c.args(["--symlink", t.to_str().unwrap(), &format!("/{l}")]);
            }
        }
        c.args([
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", p, p, "--chdir", p,
        ]);
        c.args(cmd).current_dir(&proj);
        c
    };
    let m = manifest.to_str().unwrap();
    type Make<'a> = Box<dyn Fn() -> Command + 'a>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "bwrap, busybox root: /bin/true",
            Box::new(|| bw_base(&["/bin/true"])),
        ),
        (
            "vrift --isolate --base (overlay): /bin/true",
            Box::new(|| {
                v(&[
                    "run",
                    "--projection",
                    "overlay",
                    "--isolate",
                    "--base",
                    m,
                    "--",
                    "/bin/true",
                ])
            }),
        ),
        (
            "vrift --isolate --base (supervisor): /bin/true",
            Box::new(|| {
                v(&[
                    "run",
                    "--projection",
                    "supervisor",
                    "--isolate",
                    "--base",
                    m,
                    "--",
                    "/bin/true",
                ])
            }),
        ),
        (
            "bwrap, host /usr: python3 script.py",
            Box::new(|| bw_min(&["python3", "script.py"])),
        ),
        (
            "vrift --isolate (overlay): python3 script.py",
            Box::new(|| {
                v(&[
                    "run",
                    "--projection",
                    "overlay",
                    "--isolate",
                    "--",
                    "python3",
                    "script.py",
                ])
            }),
        ),
        (
            "vrift --isolate (supervisor): python3 script.py",
            Box::new(|| {
                v(&[
                    "run",
                    "--projection",
                    "supervisor",
                    "--isolate",
                    "--",
                    "python3",
                    "script.py",
                ])
            }),
        ),
    ];
    // Warm up: layers built, caches filled.
    for (_, make) in &cases {
        timed(&mut make())?;
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (_, make)) in cases.iter().enumerate() {
            samples[i].push(timed(&mut make())?.0);
        }
    }
    println!("| command | median | vs bwrap |");
    println!("| --- | --- | --- |");
    for (i, (name, _)) in cases.iter().enumerate() {
        let med = median(&samples[i]);
        let peer = median(&samples[if i < 3 { 0 } else { 3 }]);
        println!(
            "| {name} | {} | {:.2}x |",
            secs(med),
            med.as_secs_f64() / peer.as_secs_f64()
        );
    }
    println!("({runs} interleaved runs each, medians)");
    Ok(())
}

fn which(name: &str) -> Result<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .with_context(|| format!("{name} is not installed: run scripts/setup.sh"))
}
