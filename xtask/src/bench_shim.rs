//! `cargo xtask bench shim [--runs N] [--calls N]`: the stat and open loops of
//! `bench-programs/syscalls.c`, built as an ordinary dynamic executable, run natively, under
//! `vrift run --projection shim` and under `vrift run --projection supervisor`, interleaved;
//! prints the median nanoseconds per call of each and the ratio to native.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const FILES: usize = 100;

struct Opts {
    runs: usize,
    calls: u64,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        runs: 5,
        calls: 100_000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64> {
            it.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--runs" => o.runs = num("--runs")?.max(1) as usize,
            "--calls" => o.calls = num("--calls")?.max(1),
            "--quick" => {
                o.runs = 3;
                o.calls = 20_000;
            }
            other => bail!("unknown option {other:?} (options: --runs N, --calls N, --quick)"),
        }
    }
    Ok(o)
}

fn step(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn value(out: &str, key: &str) -> Result<f64> {
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .with_context(|| format!("no {key}= in {out:?}"))?
        .parse()
        .with_context(|| format!("{key} in {out:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    eprintln!("bench shim: building vrift and the shim (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    step(Command::new(cargo).current_dir(&workspace).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "vrift-supervisor",
        "-p",
        "vrift-shim",
    ]))?;
    let vrift = target.join("release/vrift");
    let cache = target.join("bench-cache/shim");
    let _ = std::fs::remove_dir_all(&cache);
    let dir = cache.join("view");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    for i in 0..FILES {
        let p = dir.join(format!("f{i:04}"));
        std::fs::write(&p, vec![b'x'; 4096]).with_context(|| format!("{}", p.display()))?;
    }
    let bin = cache.join("syscalls-dynamic");
    step(
        Command::new("gcc")
            .args(["-O2", "-o"])
            .arg(&bin)
            .arg(workspace.join("xtask/bench-programs/syscalls.c")),
    )?;
    let home = cache.join("store");
    step(
        Command::new(&vrift)
            .arg("init")
            .current_dir(&dir)
            .env("VRIFT_HOME", &home),
    )?;

    let runners = ["native", "shim", "supervisor"];
    let mut stat: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    let mut open: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    let calls = o.calls.to_string();
    let files = FILES.to_string();
    for run in 0..o.runs {
        for (k, r) in runners.iter().enumerate() {
            eprintln!("bench shim: run {}/{}, {r}", run + 1, o.runs);
            let mut c = if *r == "native" {
                Command::new(&bin)
            } else {
                let mut c = Command::new(&vrift);
                c.args(["run", "--projection", r, "--"]).arg(&bin);
                c
            };
            c.arg(&dir)
                .args([&files, &calls])
                .current_dir(&dir)
                .env("VRIFT_HOME", &home);
            let out = step(&mut c)?;
            stat[k].push(value(&out, "stat_ns")? / o.calls as f64);
            open[k].push(value(&out, "open_ns")? / o.calls as f64);
        }
    }
    let ms: Vec<(f64, f64)> = (0..runners.len())
        .map(|k| (median(stat[k].clone()), median(open[k].clone())))
        .collect();
    println!(
        "shim: dynamic C program, {} calls per loop, {FILES} files of 4 KiB by absolute path, \
         median of {} runs",
        o.calls, o.runs
    );
    println!();
    println!(
        "| runner | stat ns/call | stat vs native | open+read+close ns/call | open vs native |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (k, r) in runners.iter().enumerate() {
        println!(
            "| {r} | {:.0} | {:.2}x | {:.0} | {:.2}x |",
            ms[k].0,
            ms[k].0 / ms[0].0,
            ms[k].1,
            ms[k].1 / ms[0].1
        );
    }
    Ok(())
}
