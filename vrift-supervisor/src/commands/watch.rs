//! `vrift watch`: start, ask about or stop the watcher that keeps a project's manifest
//! current between runs (`crate::watch`).

#[cfg(target_os = "linux")]
use std::io::{BufRead, BufReader, Write};
#[cfg(target_os = "linux")]
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(target_os = "linux")]
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
#[cfg(target_os = "linux")]
use vrift_common::store::Store;

use crate::run::project;
#[cfg(target_os = "linux")]
use crate::watch::{self, Paths};

#[derive(clap::Args)]
pub struct Args {
    /// Stop the project's watcher.
    #[arg(long, conflicts_with_all = ["status", "foreground"])]
    pub stop: bool,
    /// Say whether the project is watched, and how much.
    #[arg(long, conflicts_with = "foreground")]
    pub status: bool,
    /// Watch in this process instead of a background one (for a service manager).
    #[arg(long)]
    pub foreground: bool,
    /// The project (a directory at or under one with a vrift.manifest); the current
    /// directory by default.
    pub dir: Option<PathBuf>,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn project_root(dir: Option<PathBuf>) -> Result<PathBuf> {
    let start = match dir {
        Some(d) => d,
        None => std::env::current_dir().context("the current directory")?,
    };
    let start = start
        .canonicalize()
        .with_context(|| format!("{}", start.display()))?;
    let Some(root) = project::find_root(&start) else {
        bail!(
            "{}: no {} here or above (`vrift init` makes one)",
            start.display(),
            project::MANIFEST_NAME
        );
    };
    Ok(root)
}

#[cfg(not(target_os = "linux"))]
pub fn run(_args: Args) -> Result<ExitCode> {
    bail!("vrift watch needs Linux (inotify): on this system every run walks the project")
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> Result<ExitCode> {
    let store = Store::open_default()?;
    let root = project_root(args.dir)?;
    let paths = Paths::of(&store, &root);
    if args.foreground {
        watch::daemon::serve(&store, &root, |dirs| {
            // The line `vrift watch` waits for; nothing else is written to stdout.
            println!("ready {dirs}");
            let _ = std::io::stdout().flush();
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let asked = watch::ask(&paths, if args.stop { "stop" } else { "status" });
    if args.stop {
        match asked {
            Ok(a) => println!("stopped watching {} (pid {})", root.display(), a.pid),
            Err(_) => println!("{} is not watched", root.display()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.status {
        match asked {
            Ok(a) => {
                println!(
                    "watching {}: pid {}, {} directories, {} changes seen",
                    root.display(),
                    a.pid,
                    a.watched,
                    a.mark.events
                );
                if let Err(why) = a.trusted {
                    println!("not vouching for it ({why}): runs walk the project");
                }
            }
            Err(_) => println!("{} is not watched", root.display()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Ok(a) = asked {
        println!("{} is already watched (pid {})", root.display(), a.pid);
        return Ok(ExitCode::SUCCESS);
    }
    let pid = start_background(&paths, &root)?;
    println!(
        "watching {} (pid {pid}; `vrift watch --stop` stops it)",
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Start `vrift watch --foreground` in its own process group, its stderr in the watcher's
/// log, and wait until it says it is ready (or has failed, then say why from its log).
#[cfg(target_os = "linux")]
fn start_background(paths: &Paths, root: &Path) -> Result<u32> {
    std::fs::create_dir_all(paths.dir()).with_context(|| format!("{}", paths.dir().display()))?;
    let log =
        std::fs::File::create(paths.log()).with_context(|| format!("{}", paths.log().display()))?;
    let exe = std::env::current_exe().context("finding the vrift binary")?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .args(["watch", "--foreground"])
        .arg(root)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // Its own group: a ^C meant for the shell that started it does not reach it.
        .process_group(0)
        .spawn()
        .context("starting the watcher")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if !line.starts_with("ready") {
        let _ = child.wait();
        let why = std::fs::read_to_string(paths.log()).unwrap_or_default();
        bail!(
            "the watcher of {} did not start: {}",
            root.display(),
            why.trim().trim_start_matches("vrift: ")
        );
    }
    Ok(child.id())
}
