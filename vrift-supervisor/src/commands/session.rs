//! `vrift session list|diff|discard`: what the sessions of the current repository hold.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command as Process, ExitCode};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use vrift_common::manifest::{EntryKind, Manifest};
use vrift_common::store::Store;

use crate::session::{self, enter, members, tree, Session, UPPER};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// The sessions of this repository: base, changes, disk used, who runs in them, the last
    /// promoted commit.
    List {
        #[arg(long)]
        json: bool,
    },
    /// What the session changed since its base, as `git diff BASE SESSION` shows it (tracked
    /// and unignored paths). Writes nothing to .git.
    Diff {
        name: String,
        #[arg(long, group = "format")]
        stat: bool,
        #[arg(long, group = "format")]
        name_status: bool,
        /// The patch (the default).
        #[arg(long, group = "format")]
        patch: bool,
    },
    /// Delete a session and what it changed (refused while a program runs in it).
    /// refs/vibes/NAME, if promoted, stays.
    Discard { name: String },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    let store = Store::open_default()?;
    let _lock = store.lock_shared()?;
    let cwd = std::env::current_dir().context("current directory")?;
    let repo = session::discover(&cwd)?;
    let git_dir = repo.git_dir().canonicalize()?;
    match cmd {
        Command::List { json } => list(&store, &git_dir, json),
        Command::Diff {
            name,
            stat,
            name_status,
            patch: _,
        } => {
            let format = if stat {
                "--stat"
            } else if name_status {
                "--name-status"
            } else {
                "--patch"
            };
            diff(&store, repo, &git_dir, &name, format)
        }
        Command::Discard { name } => discard(&store, &git_dir, &name),
    }
}

fn open(store: &Store, git_dir: &Path, name: &str) -> Result<Session> {
    match Session::open(store, git_dir, name)? {
        Some(s) => Ok(s),
        None => bail!("no session named {name} in {}", git_dir.display()),
    }
}

#[derive(Serialize)]
struct Listed {
    name: String,
    from: String,
    base: String,
    added: usize,
    changed: usize,
    deleted: usize,
    bytes: u64,
    running: Vec<u32>,
    promoted: Option<String>,
}

fn list(store: &Store, git_dir: &Path, json: bool) -> Result<ExitCode> {
    let mut out = Vec::new();
    for s in Session::list(store, git_dir)? {
        let base = s.base()?;
        let now = enter::current_view(store, &s)?;
        let (added, changed, deleted) = counts(&base, &now);
        let mut bytes = disk_use(&s.join(UPPER));
        for i in 0..s.record.cow.len() {
            bytes += disk_use(&s.cow_dir(i).join(UPPER));
        }
        out.push(Listed {
            name: s.record.name.clone(),
            from: s.record.from.clone(),
            base: s.record.base_commit.clone(),
            added,
            changed,
            deleted,
            bytes,
            running: members::live(&s, false),
            promoted: s.record.promoted.clone(),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        eprintln!("vrift: no sessions in {}", git_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<12} {:>6} {:>7} {:>7} {:>10}  {:<12} running",
        "NAME", "BASE", "ADDED", "CHANGED", "DELETED", "BYTES", "PROMOTED"
    );
    for l in out {
        let running: Vec<String> = l.running.iter().map(u32::to_string).collect();
        println!(
            "{:<20} {:<12} {:>6} {:>7} {:>7} {:>10}  {:<12} {}",
            l.name,
            &l.base[..12.min(l.base.len())],
            l.added,
            l.changed,
            l.deleted,
            l.bytes,
            l.promoted.as_deref().map_or("-", |p| &p[..12.min(p.len())]),
            if running.is_empty() {
                "-".to_string()
            } else {
                running.join(",")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Files and symlinks added, changed and deleted from `base` to `now`.
fn counts(base: &Manifest, now: &Manifest) -> (usize, usize, usize) {
    let (mut a, mut c, mut d) = (0, 0, 0);
    for (p, e) in now.iter() {
        if e.kind == EntryKind::Dir {
            continue;
        }
        match base.get(p) {
            None => a += 1,
            Some(b) if b != e => c += 1,
            Some(_) => {}
        }
    }
    for (p, e) in base.iter() {
        if e.kind != EntryKind::Dir && now.get(p).is_none_or(|n| n.kind == EntryKind::Dir) {
            d += 1;
        }
    }
    (a, c, d)
}

/// Bytes of disk the tree at `dir` uses (allocated blocks).
fn disk_use(dir: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = m.blocks() * 512;
    if m.is_dir() {
        if let Ok(listing) = std::fs::read_dir(dir) {
            for e in listing.flatten() {
                total += disk_use(&e.path());
            }
        }
    }
    total
}

fn diff(
    store: &Store,
    repo: gix::Repository,
    git_dir: &Path,
    name: &str,
    format: &str,
) -> Result<ExitCode> {
    let s = open(store, git_dir, name)?;
    let view = enter::current_view(store, &s)?;
    // Objects are written to memory, then to a temporary object directory that git reads
    // beside the repository's own (as an alternate): nothing is written to .git.
    let mut repo = repo.with_object_memory();
    let base_commit = gix::ObjectId::from_hex(s.record.base_commit.as_bytes())?;
    let base_tree = repo.find_commit(base_commit)?.tree_id()?.detach();
    let written = tree::write(store, &repo, &view, base_tree)?;
    let tmp = tempfile::Builder::new()
        .prefix("session-diff-")
        .tempdir_in(store.root().join("tmp"))?;
    let loose = gix::odb::loose::Store::at(tmp.path(), gix::hash::Kind::Sha1);
    if let Some(objects) = repo.objects.take_object_memory() {
        for (_, (kind, data)) in objects.iter() {
            gix::objs::Write::write_buf(&loose, *kind, data)?;
        }
    }
    let status = Process::new("git")
        .arg("--no-pager")
        .arg(format!("--git-dir={}", git_dir.display()))
        .args(["diff", format])
        .arg(base_commit.to_hex().to_string())
        .arg(written.tree.to_hex().to_string())
        .env("GIT_OBJECT_DIRECTORY", tmp.path())
        .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", git_dir.join("objects"))
        .status()
        .context("running git diff")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn discard(store: &Store, git_dir: &Path, name: &str) -> Result<ExitCode> {
    let s = open(store, git_dir, name)?;
    let lock_path =
        session::repo_dir(store, git_dir).join(format!("{}.lock", session::dir_name(name)));
    let _start = members::lock_start(&lock_path)?;
    let live = members::live(&s, true);
    if !live.is_empty() {
        let pids: Vec<String> = live.iter().map(u32::to_string).collect();
        bail!(
            "session {name} is running (vrift pid {}); it can be discarded once they end",
            pids.join(", ")
        );
    }
    s.remove(store)?;
    eprintln!("vrift: session {name} discarded");
    Ok(ExitCode::SUCCESS)
}
