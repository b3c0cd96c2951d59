//! `vrift store verify [--repair]`: re-hash every blob in the store, report the damaged
//! ones, and with --repair move them aside and put them back from files on disk.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use vrift_common::manifest::display_path;
use vrift_common::store::Store;
use vrift_common::verify::{self, BadBlob, VerifyOptions, VerifyReport};

use super::display::{finish_output, print_json, stdout};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Re-hash every blob (like `git fsck`) and report damaged or missing ones.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Move damaged blobs aside (to the store's quarantine/) so that nothing serves them,
    /// and store them again from any file whose content hashes to their name: the files of
    /// registered projects, then the --from directories. Missing blobs are looked for too.
    #[arg(long)]
    repair: bool,
    /// Also look in DIR (recursively) for the content of damaged or missing blobs;
    /// repeatable; implies nothing without --repair.
    #[arg(long, value_name = "DIR")]
    from: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Verify(args) => verify_cmd(args),
    }
}

fn verify_cmd(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    for d in &args.from {
        if !d.is_dir() {
            anyhow::bail!("--from {}: not a directory", d.display());
        }
    }
    let store = Store::open_default()?;
    let report = verify::verify(
        &store,
        &VerifyOptions {
            repair: args.repair,
            from: args.from.clone(),
            threads: 0,
        },
    )?;
    if args.json {
        print_json(&to_json(&store, &report))?;
    } else {
        finish_output(print_text(&report, args.repair))?;
    }
    for (m, e) in &report.unreadable_roots {
        eprintln!(
            "vrift: warning: registered manifest {} not searched: {e}",
            m.display()
        );
    }
    let left = report.unrepaired();
    if left == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if args.repair {
        eprintln!(
            "vrift: {left} blob(s) in {} could not be repaired: no file with their content was found; \
             put such a file back (or name a directory holding one with --from DIR) and run \
             `vrift store verify --repair` again",
            store.root().display()
        );
    } else {
        eprintln!(
            "vrift: {left} blob(s) in {} are damaged or missing; `vrift store verify --repair` \
             moves damaged ones aside and restores them from your files",
            store.root().display()
        );
    }
    Ok(ExitCode::from(1))
}

fn what(b: &BadBlob) -> String {
    match &b.damage {
        Some(d) => format!("{d}"),
        None => "missing".to_string(),
    }
}

fn users(b: &BadBlob) -> String {
    b.used_by
        .iter()
        .map(|(m, p)| format!("{} in {}", display_path(p), m.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_text(r: &VerifyReport, repair: bool) -> std::io::Result<()> {
    let mut out = stdout();
    for b in &r.bad {
        write!(out, "{} blob {}", what(b), b.hash)?;
        if !b.used_by.is_empty() {
            write!(out, " (used by {})", users(b))?;
        }
        writeln!(out)?;
        if let Some(q) = &b.quarantined_to {
            writeln!(out, "  moved aside to {}", q.display())?;
        }
        match &b.repaired_from {
            Some(src) => writeln!(out, "  repaired from {}", src.display())?,
            None if repair => writeln!(out, "  not repaired: no file with this content found")?,
            None => {}
        }
    }
    writeln!(
        out,
        "checked: {} blobs; damaged or missing: {}; repaired: {}",
        r.checked,
        r.bad.len(),
        r.bad.len() - r.unrepaired()
    )?;
    out.flush()
}

fn to_json(store: &Store, r: &VerifyReport) -> serde_json::Value {
    json!({
        "store": store.root().display().to_string(),
        "checked": r.checked,
        "bad": r.bad.iter().map(|b| json!({
            "hash": b.hash.to_hex(),
            "problem": what(b),
            "quarantined_to": b.quarantined_to.as_ref().map(|p| p.display().to_string()),
            "repaired_from": b.repaired_from.as_ref().map(|p| p.display().to_string()),
            "used_by": b.used_by.iter().map(|(m, p)| json!({
                "manifest": m.display().to_string(),
                "path": display_path(p),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "unrepaired": r.unrepaired(),
    })
}
