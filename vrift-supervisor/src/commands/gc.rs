//! `vrift gc [--delete] [--forget PATH]`: list (and delete) blobs no registered manifest
//! references; release the roots of manifests that were moved or deleted on purpose.

use std::io::Write;
use std::path::PathBuf;
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
    /// Stop protecting the blobs of the manifest registered as PATH (one that was moved or
    /// deleted, as `vrift gc` lists them); repeatable. With --delete, what nothing else
    /// needs is deleted at once.
    #[arg(long, value_name = "PATH")]
    pub forget: Vec<PathBuf>,
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
    for path in &args.forget {
        for root in gc::forget(&store, path)? {
            eprintln!(
                "vrift gc: forgot {}: its blobs are kept only if another manifest needs them",
                root.manifest.display()
            );
        }
    }
    // Held to the end: no run starts (and mounts a layer) while layers are removed.
    let mut exclusive = None;
    let plan = if args.delete {
        let lock = match store.try_lock_exclusive()? {
            Some(lock) => lock,
            None => {
                eprintln!("vrift gc: waiting for running vrift commands to finish");
                store.lock_exclusive()?
            }
        };
        let lock = exclusive.insert(lock);
        let progress = crate::progress::Progress::new("deleting unreferenced blobs", 0);
        gc::execute_with_progress(&store, lock, &|done, total| {
            if done == 1 {
                progress.set_length(total);
            }
            progress.set_position(done);
        })?
    } else {
        gc::plan(&store)?
    };
    // Metadata layers of the overlay projection that no live manifest needs.
    let keep: std::collections::HashSet<String> = plan
        .live_roots
        .iter()
        .filter_map(|r| vrift_common::manifest::Manifest::load(&r.manifest).ok())
        .map(|m| m.hash().to_hex())
        .collect();
    #[cfg(target_os = "linux")]
    let layers = crate::projection::overlay::layer::collect_garbage(&store, &keep, args.delete)?;
    // Only Linux's overlay projection makes them.
    #[cfg(not(target_os = "linux"))]
    let layers: Vec<std::path::PathBuf> = Vec::new();
    // The shim's cached manifest indexes, likewise.
    let indexes = vrift_common::index::collect_garbage(&store, &keep, args.delete)?;
    drop(exclusive);
    if args.json {
        let mut v = plan_json(&plan, args.delete);
        v["unused_layers"] = json!(layers.len());
        v["unused_indexes"] = json!(indexes.len());
        print_json(&v)?;
    } else {
        finish_output(print_text(&plan, args.delete).and_then(|()| {
            let verb = if args.delete { "deleted" } else { "unused" };
            writeln!(stdout(), "{verb} metadata layers: {}", layers.len())?;
            writeln!(stdout(), "{verb} manifest indexes: {}", indexes.len())
        }))?;
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
        "moved_roots": plan.moved_roots.iter().map(|m| json!({
            "manifest": m.root.manifest.display().to_string(),
            "blobs_kept": m.blobs,
            "same_as": m.same_as.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
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
    for m in &plan.moved_roots {
        let path = m.root.manifest.display();
        write!(
            out,
            "manifest moved or deleted: {path}: {} blobs kept; `vrift gc --forget {path}` to release them",
            m.blobs
        )?;
        if !m.same_as.is_empty() {
            let same: Vec<String> = m.same_as.iter().map(|p| p.display().to_string()).collect();
            write!(out, " (same content as {})", same.join(", "))?;
        }
        writeln!(out)?;
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
