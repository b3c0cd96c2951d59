//! `vrift status`: what the store holds and how much sharing saves, over every manifest the
//! roots registry knows.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use vrift_common::gc;
use vrift_common::store::Store;

use super::display::{finish_output, human_bytes, print_json, stdout};

#[derive(clap::Args)]
pub struct Args {
    /// Print the numbers as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    let u = gc::usage(&store)?;
    for (manifest, err) in &u.broken_roots {
        eprintln!(
            "vrift: warning: cannot read registered manifest {}: {err}",
            manifest.display()
        );
    }
    if args.json {
        print_json(&json!({
            "store": store.root().display().to_string(),
            "manifests": u.manifests,
            "moved_roots": u.moved_roots,
            "broken_roots": u.broken_roots.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
            "blobs": u.blobs,
            "logical_bytes": u.logical_bytes,
            "stored_bytes": u.stored_bytes,
            "saved_bytes": u.saved_bytes(),
            "saved_percent": u.saved_percent(),
            "unreferenced_blobs": u.unreferenced_blobs,
            "unreferenced_bytes": u.unreferenced_bytes,
            "pinned_bytes": u.pinned_bytes,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = stdout();
    let r = (|| -> std::io::Result<()> {
        writeln!(out, "store:         {}", store.root().display())?;
        write!(out, "manifests:     {}", u.manifests)?;
        if u.moved_roots > 0 {
            write!(
                out,
                " (and {} moved or deleted, still kept: `vrift gc` lists them)",
                u.moved_roots
            )?;
        }
        writeln!(out)?;
        writeln!(out, "blobs:         {}", u.blobs)?;
        writeln!(
            out,
            "logical bytes: {} ({} bytes, all manifests' files)",
            human_bytes(u.logical_bytes),
            u.logical_bytes
        )?;
        writeln!(
            out,
            "stored bytes:  {} ({} bytes)",
            human_bytes(u.stored_bytes),
            u.stored_bytes
        )?;
        writeln!(
            out,
            "saved:         {} ({} bytes, {:.1}% of logical, by storing shared content once)",
            human_bytes(u.saved_bytes()),
            u.saved_bytes(),
            u.saved_percent()
        )?;
        if u.unreferenced_blobs > 0 {
            writeln!(
                out,
                "unreferenced:  {} blobs, {} (`vrift gc --delete` frees them)",
                u.unreferenced_blobs,
                human_bytes(u.unreferenced_bytes)
            )?;
        }
        out.flush()
    })();
    finish_output(r)?;
    Ok(ExitCode::SUCCESS)
}
