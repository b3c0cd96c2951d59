//! `cargo xtask bench shim [--runs N] [--calls N]`: the stat and open loops of
//! `bench-programs/syscalls.c`, built as an ordinary dynamic executable, run natively and
//! under `vrift run --projection P` for P in shim, shim+supervisor, supervisor and overlay,
//! interleaved;
//! prints the median nanoseconds per call of each and the ratio to native. Then
//! `git status` in a repository of `--files` files (default 5,000), whole runs timed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const FILES: usize = 100;

/// The runners, natively first, then each projection.
const PROJECTIONS: [&str; 5] = ["native", "shim", "shim+supervisor", "supervisor", "overlay"];

struct Opts {
    runs: usize,
    calls: u64,
    files: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        runs: 5,
        calls: 100_000,
        files: 5_000,
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
            "--files" => o.files = num("--files")?.max(1) as usize,
            "--quick" => {
                o.runs = 3;
                o.calls = 20_000;
                o.files = 1_000;
            }
            other => {
                bail!("unknown option {other:?} (options: --runs N, --calls N, --files N, --quick)")
            }
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

    let runners = PROJECTIONS;
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
    git_status(&o, &vrift, &cache)?;
    Ok(())
}

/// `git status` in a committed repository: native, and `vrift run` with each projection in
/// it (the project's manifest refreshed first, .git passed through), whole runs timed.
fn git_status(o: &Opts, vrift: &Path, cache: &Path) -> Result<()> {
    let repo = cache.join("repo");
    for i in 0..o.files {
        let d = repo.join(format!("d{:03}", i / 100));
        std::fs::create_dir_all(&d).with_context(|| format!("{}", d.display()))?;
        std::fs::write(d.join(format!("f{i:05}.txt")), format!("file {i}\n"))
            .with_context(|| format!("{}", d.display()))?;
    }
    let git = |args: &[&str]| -> Result<String> {
        step(
            Command::new("git")
                .current_dir(&repo)
                .args(["-c", "user.name=b", "-c", "user.email=b@b"])
                .args(args),
        )
    };
    git(&["init", "-q"])?;
    git(&["add", "."])?;
    git(&["commit", "-qm", "bench"])?;
    let home = cache.join("store-git");
    step(
        Command::new(vrift)
            .arg("init")
            .current_dir(&repo)
            .env("VRIFT_HOME", &home),
    )?;
    // The same runs of /bin/true: what vrift costs around any program (refreshing the
    // project's manifest, the index, starting, harvesting).
    let mut runners: Vec<String> = PROJECTIONS.iter().map(|r| r.to_string()).collect();
    runners.extend(PROJECTIONS[1..].iter().map(|r| format!("{r}: true")));
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    for run in 0..o.runs {
        for (k, r) in runners.iter().enumerate() {
            eprintln!("bench shim: git status, run {}/{}, {r}", run + 1, o.runs);
            let (projection, program) = match r.split_once(": ") {
                Some((p, _)) => (p, "/bin/true"),
                None => (r.as_str(), "git"),
            };
            let mut c = if projection == "native" {
                Command::new("git")
            } else {
                let mut c = Command::new(vrift);
                c.args(["run", "--projection", projection, "--", program]);
                c
            };
            if program == "git" {
                c.args(["--no-optional-locks", "status", "--porcelain"]);
            }
            c.current_dir(&repo).env("VRIFT_HOME", &home);
            let t = std::time::Instant::now();
            let out = step(&mut c)?;
            secs[k].push(t.elapsed().as_secs_f64());
            // Only vrift's own manifest is untracked; anything else means a wrong view.
            if out.lines().any(|l| l != "?? vrift.manifest") {
                bail!("{r}: git status saw changes: {out}");
            }
        }
    }
    let med: Vec<f64> = secs.into_iter().map(median).collect();
    println!();
    println!(
        "git status --porcelain, {} files committed, whole runs, median of {}",
        o.files, o.runs
    );
    println!();
    println!("| runner | ms | vs native | git's part (run minus the run of /bin/true), ms |");
    println!("| --- | --- | --- | --- |");
    for (k, r) in runners.iter().enumerate() {
        let projections = PROJECTIONS.len() - 1;
        let part = if (1..=projections).contains(&k) {
            format!("{:.0}", (med[k] - med[k + projections]) * 1e3)
        } else {
            "-".into()
        };
        println!(
            "| {r} | {:.0} | {:.2}x | {part} |",
            med[k] * 1e3,
            med[k] / med[0]
        );
    }
    Ok(())
}
