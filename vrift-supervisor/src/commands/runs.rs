//! `vrift runs`: the runs whose result is not where it belongs yet: results kept aside
//! (write-back failed, or paths changed on disk meanwhile) and interrupted runs. `vrift runs
//! apply ID` applies a kept result again; `vrift runs discard ID` drops a kept result or an
//! interrupted run's directory.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vrift_common::store::Store;

use super::display::print_json;
use crate::run::destination::Destination;
use crate::run::recover::UNRECOVERABLE;
use crate::run::{project, unapplied, writeback};
use crate::rundir::{RunDir, RunRecord, RECORD};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Print the list as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Apply a kept result to where it belongs (the project, or the --manifest file).
    Apply { id: String },
    /// Drop a kept result, or an interrupted run that cannot be recovered.
    Discard { id: String },
}

pub fn run(args: Args) -> Result<ExitCode> {
    let store = Store::open_default()?;
    match args.command {
        None => list(&store, args.json),
        Some(Command::Apply { id }) => apply(&store, &id),
        Some(Command::Discard { id }) => discard(&store, &id),
    }
}

/// One line of the list.
struct Row {
    id: String,
    state: String,
    destination: String,
    detail: String,
}

fn rows(store: &Store) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for e in unapplied::list(store)? {
        let (destination, detail) = match &e.kept {
            Ok(k) => (k.destination.describe(), k.reason.clone()),
            Err(err) => ("?".into(), format!("unreadable record: {err}")),
        };
        out.push(Row {
            id: e.id,
            state: "kept".into(),
            destination,
            detail,
        });
    }
    let runs = store.root().join(vrift_common::gc::RUNS_DIR);
    if let Ok(listing) = std::fs::read_dir(&runs) {
        let mut dirs: Vec<_> = listing.flatten().map(|d| d.path()).collect();
        dirs.sort();
        for path in dirs {
            if !path.join(RECORD).exists() {
                continue;
            }
            let id = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let destination = RunRecord::read(&path)
                .map(|r| r.destination.describe())
                .unwrap_or_else(|e| format!("? ({e:#})"));
            let (state, detail) = if let Ok(err) = std::fs::read_to_string(path.join(UNRECOVERABLE))
            {
                ("unrecoverable", err.trim().to_string())
            } else {
                match RunDir::claim(&path) {
                    Ok(None) => ("running", String::new()),
                    Ok(Some(_)) => (
                        "interrupted",
                        "the next `vrift run` recovers it".to_string(),
                    ),
                    Err(e) => ("unrecoverable", format!("{e:#}")),
                }
            };
            out.push(Row {
                id,
                state: state.into(),
                destination,
                detail,
            });
        }
    }
    Ok(out)
}

fn list(store: &Store, as_json: bool) -> Result<ExitCode> {
    let rows = rows(store)?;
    if as_json {
        print_json(&json!(rows
            .iter()
            .map(|r| json!({
                "id": r.id,
                "state": r.state,
                "destination": r.destination,
                "detail": r.detail,
            }))
            .collect::<Vec<_>>()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no kept or interrupted runs");
        return Ok(ExitCode::SUCCESS);
    }
    for r in &rows {
        println!("{}  {:<13} {}", r.id, r.state, r.destination);
        if !r.detail.is_empty() {
            println!("    {}", r.detail);
        }
    }
    println!("`vrift runs apply ID` applies a kept result; `vrift runs discard ID` drops one");
    Ok(ExitCode::SUCCESS)
}

fn apply(store: &Store, id: &str) -> Result<ExitCode> {
    // As a run does: gc waits while the result is applied.
    let _lock = store.lock_shared()?;
    let Some(entry) = unapplied::find(store, id)? else {
        bail!("{id}: no kept result with this id (`vrift runs` lists them)");
    };
    let (kept, base, result) = unapplied::load(&entry)?;
    match &kept.destination {
        Destination::ManifestFile(path) => {
            result.save_atomic(path)?;
            store.register_root(path)?;
        }
        Destination::Project { dir, has_manifest } => {
            let report = writeback::apply(store, dir, &base, &result)
                .with_context(|| format!("applying run {id} to {}", dir.display()))?;
            if !report.conflicts.is_empty() {
                eprintln!(
                    "vrift: {} path(s) differ on disk from both the run's start and its result, \
                     left as they are: {}; the rest is applied and run {id} is kept (`vrift \
                     runs discard {id}` drops it)",
                    report.conflicts.len(),
                    unapplied::conflict_list(&report.conflicts)
                );
                return Ok(ExitCode::from(1));
            }
            if *has_manifest {
                project::refresh(store, dir, report.files)?;
            }
        }
    }
    unapplied::discard(store, &entry)?;
    eprintln!("vrift: run {id} applied to {}", kept.destination.describe());
    Ok(ExitCode::SUCCESS)
}

fn discard(store: &Store, id: &str) -> Result<ExitCode> {
    if let Some(entry) = unapplied::find(store, id)? {
        unapplied::discard(store, &entry)?;
        eprintln!("vrift: run {id} discarded; `vrift gc --delete` frees what only it used");
        return Ok(ExitCode::SUCCESS);
    }
    let path = store.root().join(vrift_common::gc::RUNS_DIR).join(id);
    if id.contains('/') || !path.join(RECORD).exists() {
        bail!("{id}: no kept result or interrupted run with this id (`vrift runs` lists them)");
    }
    match RunDir::claim(&path)? {
        None => bail!("{id}: the run is still going; it cannot be discarded"),
        Some(dir) => {
            // Opens up what the run left shut (an overlay's work directory) as it goes.
            dir.remove();
            if path.exists() {
                bail!("{}: could not be removed", path.display());
            }
        }
    }
    eprintln!("vrift: interrupted run {id} discarded");
    Ok(ExitCode::SUCCESS)
}
