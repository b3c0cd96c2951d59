//! `cargo xtask bench sessions [--files N] [--sessions N] [--runs N]`: create and enter N
//! sessions (default 8) over a git repository of `--files` files (default 20,000), then read
//! every file in each; beside N × `git worktree add` and the same read. Prints time and disk
//! of each, medians over `--runs` (default 3), as a Markdown table.
//!
//! The first session over a new base imports its blobs and builds its metadata layer once;
//! that is timed apart ("first base"), since every later session of that base shares it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::timing::{median, secs, timed};

struct Opts {
    files: u64,
    sessions: usize,
    runs: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        files: 20_000,
        sessions: 8,
        runs: 3,
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
            "--files" => o.files = num("--files")?.max(1),
            "--sessions" => o.sessions = num("--sessions")?.max(1) as usize,
            "--runs" => o.runs = num("--runs")?.max(1) as usize,
            other => bail!("unknown option {other:?} (options: --files N, --sessions N, --runs N)"),
        }
    }
    Ok(o)
}

const READ_ALL: &str = "find . -path ./.git -prune -o -type f -print0 | xargs -0 cat > /dev/null";

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    timed(
        Command::new("git")
            .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
            .args(args)
            .current_dir(dir),
    )
    .map(|_| ())
}

/// Disk used under `paths` together (allocated blocks, as du counts them: a file hard-linked
/// into several counts once), in bytes.
fn du(paths: &[PathBuf]) -> Result<u64> {
    let out = Command::new("du").arg("-scB1").args(paths).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    timed(Command::new(cargo).current_dir(&workspace).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "vrift-supervisor",
    ]))?;
    let vrift = workspace.join("target/release/vrift");
    let work = tempfile::Builder::new()
        .prefix("bench-sessions")
        .tempdir()?;
    let repo = work.path().join("repo");
    eprintln!("bench sessions: a repository of {} files", o.files);
    crate::gen::tree(&repo, o.files, (o.files / 100).max(1), 0, 0)?;
    git(&repo, &["init", "-q"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "bench"])?;
    let native_read = timed(Command::new("sh").args(["-c", READ_ALL]).current_dir(&repo))?.0;

    let (mut first, mut create, mut read, mut disk) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let (mut wt_add, mut wt_read, mut wt_disk) = (Vec::new(), Vec::new(), 0);
    let mut layer = 0;
    for run in 0..o.runs {
        let home: PathBuf = work.path().join(format!("store{run}"));
        let vr = |args: &[&str]| {
            let mut c = Command::new(&vrift);
            c.args(args).current_dir(&repo).env("VRIFT_HOME", &home);
            c
        };
        // The base: blobs imported, layer built, once per base.
        first.push(timed(&mut vr(&["run", "--session", "first", "--", "true"]))?.0);
        let start = Instant::now();
        for i in 0..o.sessions {
            timed(&mut vr(&[
                "run",
                "--session",
                &format!("s{i}"),
                "--",
                "true",
            ]))?;
        }
        create.push(start.elapsed());
        let start = Instant::now();
        for i in 0..o.sessions {
            timed(&mut vr(&[
                "run",
                "--session",
                &format!("s{i}"),
                "--",
                "sh",
                "-c",
                READ_ALL,
            ]))?;
        }
        read.push(start.elapsed());
        let sessions_dir = std::fs::read_dir(home.join("sessions"))?
            .flatten()
            .next()
            .context("no sessions")?
            .path();
        let dirs: Vec<PathBuf> = (0..o.sessions)
            .map(|i| sessions_dir.join(format!("s{i}")))
            .collect();
        disk = du(&dirs)?;
        layer = du(&[home.join("layers")])?;

        let start = Instant::now();
        for i in 0..o.sessions {
            let wt = work.path().join(format!("wt{run}-{i}"));
            git(
                &repo,
                &["worktree", "add", "-q", "--detach", wt.to_str().unwrap()],
            )?;
        }
        wt_add.push(start.elapsed());
        let start = Instant::now();
        for i in 0..o.sessions {
            let wt = work.path().join(format!("wt{run}-{i}"));
            timed(Command::new("sh").args(["-c", READ_ALL]).current_dir(&wt))?;
        }
        wt_read.push(start.elapsed());
        let dirs: Vec<PathBuf> = (0..o.sessions)
            .map(|i| work.path().join(format!("wt{run}-{i}")))
            .collect();
        wt_disk = du(&dirs)?;
        for i in 0..o.sessions {
            let wt = work.path().join(format!("wt{run}-{i}"));
            git(
                &repo,
                &["worktree", "remove", "--force", wt.to_str().unwrap()],
            )?;
        }
        let _ = std::fs::remove_dir_all(&home);
    }
    let n = o.sessions;
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
    println!("| {n} workspaces over {} files | time | disk |", o.files);
    println!("| --- | --- | --- |");
    println!(
        "| first session over a new base (blobs imported, metadata layer built; once per base) | {} | {} layer, shared |",
        secs(median(&first)),
        mib(layer)
    );
    println!(
        "| {n} × `vrift run --session sN -- true` (create and enter) | {} | {} |",
        secs(median(&create)),
        mib(disk)
    );
    println!(
        "| {n} × `git worktree add` | {} | {} |",
        secs(median(&wt_add)),
        mib(wt_disk)
    );
    println!(
        "| ratio (worktrees / sessions) | {:.1}x | {:.0}x |",
        ratio(median(&create), median(&wt_add)),
        wt_disk as f64 / disk.max(1) as f64
    );
    println!(
        "| read every file: {n} sessions (runs entered again) | {} | |",
        secs(median(&read))
    );
    println!(
        "| read every file: {n} worktrees | {} | |",
        secs(median(&wt_read))
    );
    println!(
        "| read every file once, natively | {} | |",
        secs(native_read)
    );
    Ok(())
}
