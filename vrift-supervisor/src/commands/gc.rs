//! `vrift gc [--delete]`: list (and delete) blobs no registered manifest references.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use vrift_common::gc::{self, GcPlan};
use vrift_common::store::Store;

use super::display::{finish_output, human_bytes, print_json, stdout};

#[derive(clap::Args)]
pub struct Args {
    /// Delete the unreferenced blobs (without it, only list them).
    #[arg(long)]
    pub delete: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Collect garbage on this remote instead of the local store.
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// With --remote: keep unreferenced blobs younger than this many seconds (a push may
    /// still be under way).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        requires = "remote"
    )]
    pub min_age: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.remote {
        return super::remote::gc(name, args.delete, args.min_age, args.json);
    }
    let store = Store::open_default()?;
    let plan = if args.delete {
        let lock = match store.try_lock_exclusive()? {
            Some(lock) => lock,
            None => {
                eprintln!("vrift gc: waiting for running vrift commands to finish");
                store.lock_exclusive()?
            }
        };
        gc::execute(&store, &lock)?
    } else {
        gc::plan(&store)?
    };
    if args.json {
        print_json(&plan_json(&plan, args.delete))?;
    } else {
        finish_output(print_text(&plan, args.delete))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn plan_json(plan: &GcPlan, deleted: bool) -> serde_json::Value {
    json!({
        "deleted": deleted,
        "unreferenced_blobs": plan.unreferenced.len(),
        "unreferenced_bytes": plan.unreferenced_bytes(),
        "unreferenced": plan.unreferenced.iter()
            .map(|(h, size)| json!({"hash": h.to_hex(), "size": size}))
            .collect::<Vec<_>>(),
        "referenced_blobs": plan.referenced_blobs,
        "live_roots": plan.live_roots.iter().map(|r| r.manifest.display().to_string()).collect::<Vec<_>>(),
        "stale_roots": plan.stale_roots.iter().map(|r| r.manifest.display().to_string()).collect::<Vec<_>>(),
        "missing_blobs": plan.missing_blobs.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "tmp_leftovers": plan.tmp_leftovers.len(),
    })
}

fn print_text(plan: &GcPlan, deleted: bool) -> std::io::Result<()> {
    let mut out = stdout();
    let verb = if deleted { "deleted" } else { "unreferenced" };
    writeln!(
        out,
        "{verb}: {} blobs, {} ({} bytes)",
        plan.unreferenced.len(),
        human_bytes(plan.unreferenced_bytes()),
        plan.unreferenced_bytes()
    )?;
    for (hash, size) in &plan.unreferenced {
        writeln!(out, "  {hash}  {size} bytes")?;
    }
    if !plan.stale_roots.is_empty() {
        let verb = if deleted { "removed" } else { "stale" };
        writeln!(
            out,
            "{verb} roots (manifest gone): {}",
            plan.stale_roots.len()
        )?;
        for r in &plan.stale_roots {
            writeln!(out, "  {}", r.manifest.display())?;
        }
    }
    if !plan.tmp_leftovers.is_empty() {
        let verb = if deleted { "removed" } else { "left over" };
        writeln!(
            out,
            "{verb} temp files from interrupted writes: {}",
            plan.tmp_leftovers.len()
        )?;
    }
    if !plan.missing_blobs.is_empty() {
        writeln!(
            out,
            "warning: {} referenced blobs are missing from the store (`vrift manifest verify` names the paths)",
            plan.missing_blobs.len()
        )?;
    }
    writeln!(
        out,
        "kept: {} referenced blobs of {} manifests",
        plan.referenced_blobs,
        plan.live_roots.len()
    )?;
    if !deleted {
        writeln!(
            out,
            "dry run: nothing deleted; `vrift gc --delete` deletes the unreferenced blobs"
        )?;
    }
    out.flush()
}
