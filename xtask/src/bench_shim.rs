//! `cargo xtask bench shim [--runs N] [--calls N] [--files N] [--only W]`: the stat and
//! open loops of `bench-programs/syscalls.c`, built as an ordinary dynamic executable, run
//! natively and under `vrift run --projection P` for P in shim, shim+supervisor, supervisor
//! and overlay, interleaved; prints the median nanoseconds per call of each and the ratio to
//! native. Then, whole runs timed the same way: `git status` in a repository of `--files`
//! files (default 20,000, as issue 12 asks), walked before each run and then watched
//! (`vrift watch`, with bubblewrap and proot beside it), a Python script importing a
//! package from a venv inside the view, and the C build of `cargo xtask bench run` (its
//! fixture). `--only loops|git|python|c` runs one of them.

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
    /// `--only W`: one workload (loops, git, python, c); all by default.
    only: Option<String>,
}

impl Opts {
    fn wants(&self, workload: &str) -> bool {
        self.only.as_deref().is_none_or(|w| w == workload)
    }
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        runs: 5,
        calls: 100_000,
        files: 20_000,
        only: None,
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
            "--only" => {
                let w = it.next().context("--only needs a workload")?;
                if !["loops", "git", "python", "c"].contains(&w.as_str()) {
                    bail!("--only {w:?}: the workloads are loops, git, python, c");
                }
                o.only = Some(w.clone());
            }
            "--quick" => {
                o.runs = 3;
                o.calls = 20_000;
                o.files = 1_000;
            }
            other => {
                bail!(
                    "unknown option {other:?} (options: --runs N, --calls N, --files N, \
                     --only loops|git|python|c, --quick)"
                )
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

    if o.wants("loops") {
        loops(&o, &vrift, &bin, &dir, &home)?;
    }
    if o.wants("git") {
        git_status(&o, &vrift, &cache)?;
    }
    if o.wants("python") {
        python_imports(&o, &vrift, &cache)?;
    }
    if o.wants("c") {
        c_build(&o, &vrift, &cache, &target.join("bench-cache"))?;
    }
    Ok(())
}

/// The stat and open+read+close loops of `syscalls.c` over the files of `dir`.
fn loops(o: &Opts, vrift: &Path, bin: &Path, dir: &Path, home: &Path) -> Result<()> {
    let runners = PROJECTIONS;
    let mut stat: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    let mut open: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    let calls = o.calls.to_string();
    let files = FILES.to_string();
    for run in 0..o.runs {
        for (k, r) in runners.iter().enumerate() {
            eprintln!("bench shim: run {}/{}, {r}", run + 1, o.runs);
            let mut c = if *r == "native" {
                Command::new(bin)
            } else {
                let mut c = Command::new(vrift);
                c.args(["run", "--projection", r, "--"]).arg(bin);
                c
            };
            c.arg(dir)
                .args([&files, &calls])
                .current_dir(dir)
                .env("VRIFT_HOME", home);
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

/// The C build of `cargo xtask bench run` (its fixture: a real C code base and a Makefile),
/// in the project's view, objects written outside it.
fn c_build(o: &Opts, vrift: &Path, cache: &Path, fixtures: &Path) -> Result<()> {
    // The fixture stays between runs (`cache` does not): it is downloaded once.
    let src = fixtures.join("shim-c-build");
    let units = crate::bench_run::fixtures::c_code_base(fixtures, &src)?;
    let home = cache.join("store-c");
    step(
        Command::new(vrift)
            .arg("init")
            .current_dir(&src)
            .env("VRIFT_HOME", &home),
    )?;
    let obj = cache.join("c-obj");
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (jobs, objs) = (format!("-j{jobs}"), format!("OBJ={}", obj.display()));
    let title = format!(
        "make {jobs} ({units} C sources in the view, -O2, objects outside it), whole runs, \
         median of {}",
        o.runs
    );
    whole_runs(
        o,
        vrift,
        &src,
        &home,
        &title,
        &["make", "-s", "-B", &jobs, &objs, "CFLAGS=-O2"],
        &[],
        &[],
        |_| {
            let lib = obj.join("libbench.a");
            if !lib.is_file() {
                bail!("{}: not built", lib.display());
            }
            Ok(())
        },
    )
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
    let argv = ["git", "--no-optional-locks", "status", "--porcelain"];
    // Only vrift's own manifest is untracked; anything else means a wrong view.
    let check = |out: &str| {
        if out.lines().any(|l| l != "?? vrift.manifest") {
            bail!("git status saw changes: {out}");
        }
        Ok(())
    };
    let title = format!(
        "git status --porcelain, {} files committed, whole runs (each walks the project \
         first), median of {}",
        o.files, o.runs
    );
    whole_runs(o, vrift, &repo, &home, &title, &argv, &[], &[], check)?;
    // The same project watched (`vrift watch`): a run of the unchanged project takes the
    // last walk's result instead of walking. The first run walks and records it.
    let watch = |args: &[&str]| {
        step(
            Command::new(vrift)
                .arg("watch")
                .args(args)
                .current_dir(&repo)
                .env("VRIFT_HOME", &home),
        )
    };
    watch(&[])?;
    let warm = step(
        Command::new(vrift)
            .args(["run", "--projection", "shim", "--", "true"])
            .current_dir(&repo)
            .env("VRIFT_HOME", &home),
    );
    let title = format!(
        "git status --porcelain, {} files committed, the project watched (`vrift watch`), \
         whole runs, median of {}; bubblewrap and proot beside it",
        o.files, o.runs
    );
    let measured = warm.and_then(|_| {
        whole_runs(
            o,
            vrift,
            &repo,
            &home,
            &title,
            &argv,
            &[],
            &peers(&repo),
            check,
        )
    });
    watch(&["--stop"])?;
    measured
}

/// A peer run beside the projections: `wrapper` then the program's argv.
struct Peer {
    name: &'static str,
    wrapper: Vec<String>,
}

/// bubblewrap (which builds no view: the host's tree bound as it is) and proot (a ptrace
/// path translator, here translating nothing), each around the program in `dir`.
fn peers(dir: &Path) -> Vec<Peer> {
    let d = dir.display().to_string();
    vec![
        Peer {
            name: "bubblewrap",
            wrapper: ["bwrap", "--dev-bind", "/", "/", "--chdir", &d, "--"]
                .map(String::from)
                .to_vec(),
        },
        Peer {
            name: "proot",
            wrapper: ["proot", "-w", &d].map(String::from).to_vec(),
        },
    ]
}

/// Run `argv` in `dir` natively and under `vrift run --projection P` for each projection,
/// interleaved, `o.runs` times, and print the median wall time of each, its ratio to
/// native, and the program's own part: the run minus a run of `/bin/true` under the same
/// projection (what vrift costs around any program: refreshing the project's manifest,
/// the index, starting, harvesting). `check` looks at each run's stdout.
#[allow(clippy::too_many_arguments)]
fn whole_runs(
    o: &Opts,
    vrift: &Path,
    dir: &Path,
    home: &Path,
    title: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    peers: &[Peer],
    check: impl Fn(&str) -> Result<()>,
) -> Result<()> {
    let mut runners: Vec<String> = PROJECTIONS.iter().map(|r| r.to_string()).collect();
    runners.extend(PROJECTIONS[1..].iter().map(|r| format!("{r}: true")));
    runners.extend(peers.iter().map(|p| p.name.to_string()));
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    // A runner whose program fails is reported as failed (why, in short) and not run again;
    // the others go on.
    let mut failed: Vec<Option<String>> = vec![None; runners.len()];
    for run in 0..o.runs {
        for (k, r) in runners.iter().enumerate() {
            if failed[k].is_some() {
                continue;
            }
            eprintln!("bench shim: {}, run {}/{}, {r}", argv[0], run + 1, o.runs);
            let (projection, program): (&str, &[&str]) = match r.split_once(": ") {
                Some((p, _)) => (p, &["/bin/true"]),
                None => (r.as_str(), argv),
            };
            let peer = peers.iter().find(|p| p.name == r.as_str());
            let mut c = if let Some(peer) = peer {
                let mut c = Command::new(&peer.wrapper[0]);
                c.args(&peer.wrapper[1..]).arg(program[0]);
                c
            } else if projection == "native" {
                Command::new(program[0])
            } else {
                let mut c = Command::new(vrift);
                c.args(["run", "--projection", projection, "--", program[0]]);
                c
            };
            c.args(&program[1..])
                .current_dir(dir)
                .env("VRIFT_HOME", home)
                .envs(env.iter().copied());
            let t = std::time::Instant::now();
            let result = step(&mut c).and_then(|out| {
                let took = t.elapsed().as_secs_f64();
                if program.len() > 1 || program[0] != "/bin/true" {
                    check(&out)?;
                }
                Ok(took)
            });
            match result {
                Ok(took) => secs[k].push(took),
                Err(e) => {
                    let why = format!("{e:#}");
                    eprintln!("bench shim: {r} failed: {why}");
                    let last = why.lines().rev().find(|l| !l.trim().is_empty());
                    failed[k] = Some(last.unwrap_or("failed").trim().to_string());
                }
            }
        }
    }
    if failed[0].is_some() {
        bail!("{title}: the native run failed");
    }
    let med: Vec<f64> = secs
        .into_iter()
        .map(|v| if v.is_empty() { f64::NAN } else { median(v) })
        .collect();
    println!();
    println!("{title}");
    println!();
    println!(
        "| runner | ms | vs native | the program's part (run minus the run of /bin/true), ms |"
    );
    println!("| --- | --- | --- | --- |");
    for (k, r) in runners.iter().enumerate() {
        if let Some(why) = &failed[k] {
            println!("| {r} | failed: {} | - | - |", why.replace('|', "/"));
            continue;
        }
        let projections = PROJECTIONS.len() - 1;
        let part = if (1..=projections).contains(&k) && failed[k + projections].is_none() {
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

/// Modules of the generated package the Python workload imports.
const PY_MODULES: usize = 300;

/// A Python script importing a package of [`PY_MODULES`] modules installed in a venv inside
/// the project, and a set of heavy standard-library modules: the venv, its package and
/// their compiled bytecode are in the view (compiled natively first, so no run writes).
fn python_imports(o: &Opts, vrift: &Path, cache: &Path) -> Result<()> {
    let proj = cache.join("py");
    step(
        Command::new("python3")
            .args(["-m", "venv", "--without-pip", "venv"])
            .current_dir(std::fs::create_dir_all(&proj).map(|_| &proj)?),
    )
    .context("python3 -m venv (needs python3-venv)")?;
    let site = step(Command::new(proj.join("venv/bin/python")).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]))?;
    let pkg = PathBuf::from(site.trim()).join("benchpkg");
    std::fs::create_dir_all(&pkg).with_context(|| format!("{}", pkg.display()))?;
    let mut all = String::new();
    for i in 0..PY_MODULES {
        std::fs::write(
            pkg.join(format!("m{i:03}.py")),
            format!(
                "import os, re, json\n\nPATTERN = re.compile(r'm{i}-(\\d+)')\n\n\
                 def f{i}(x):\n    return json.dumps({{'m': {i}, 'x': x}})\n\n\
                 class C{i}:\n    def __init__(self):\n        self.v = os.sep * {i}\n"
            ),
        )?;
        all.push_str(&format!("from benchpkg import m{i:03}\n"));
    }
    std::fs::write(pkg.join("__init__.py"), "")?;
    std::fs::write(pkg.join("all.py"), all)?;
    std::fs::write(
        proj.join("imports.py"),
        "import argparse, asyncio, decimal, email.parser, http.client, json, logging\n\
         import unittest, xml.etree.ElementTree, urllib.request, dataclasses, typing\n\
         import benchpkg.all\n\
         print('imported', len([m for m in __import__('sys').modules if m.startswith('benchpkg.')]))\n",
    )?;
    step(
        Command::new(proj.join("venv/bin/python"))
            .args(["-m", "compileall", "-q"])
            .arg(&pkg),
    )?;
    let home = cache.join("store-py");
    step(
        Command::new(vrift)
            .arg("init")
            .current_dir(&proj)
            .env("VRIFT_HOME", &home),
    )?;
    let title = format!(
        "python imports: venv/bin/python imports.py ({PY_MODULES} modules of a package in a \
         venv inside the view, and 12 standard-library packages), whole runs, median of {}",
        o.runs
    );
    let want = format!("imported {}", PY_MODULES + 1);
    whole_runs(
        o,
        vrift,
        &proj,
        &home,
        &title,
        // Through a shell: the venv's python is a symlink, which the shim's launcher does
        // not start by itself.
        &["/bin/sh", "-c", "exec venv/bin/python imports.py"],
        &[("PYTHONDONTWRITEBYTECODE", "1")],
        &[],
        |out| {
            if out.trim() != want {
                bail!("the script printed {out:?}, not {want:?}");
            }
            Ok(())
        },
    )
}
