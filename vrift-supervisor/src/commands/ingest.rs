//! `vrift ingest DIR -o FILE`: store any directory and write its manifest elsewhere, without
//! writing into the directory (a root file system, a toolchain, a data set).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;
use serde_json::json;
use vrift_common::filters::{Filter, FilterOptions};
use vrift_common::ingest::{self, IngestOptions, Owners};
use vrift_common::store::Store;

use super::init::{progress_bar, show_progress};

#[derive(clap::Args)]
#[command(after_help = "Examples:
  mkdir rootfs && busybox --install -s rootfs/bin && cp \"$(command -v busybox)\" rootfs/bin/
  vrift ingest rootfs -o busybox.manifest
  vrift run --isolate --base busybox.manifest -- /bin/sh -c 'ls /'
  vrift ingest /opt/go -o go.manifest --exclude '*.log'")]
pub struct Args {
    /// The directory to ingest; nothing is written into it.
    dir: PathBuf,
    /// Where to write the manifest (registered with the store, so gc keeps its blobs).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Leave out paths matching PATTERN (gitignore syntax, relative to DIR). Repeatable.
    /// Nothing else is left out: no default filters, no .gitignore.
    #[arg(long = "exclude", value_name = "PATTERN", allow_hyphen_values = true)]
    exclude: Vec<String>,
    /// Record each entry's owner and group in the manifest (done anyway when run as root
    /// over a tree with more than one owner).
    #[arg(long)]
    owners: bool,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let root = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}", args.dir.display()))?;
    if !root.is_dir() {
        bail!("{}: not a directory", root.display());
    }
    let output =
        std::path::absolute(&args.output).with_context(|| format!("{}", args.output.display()))?;
    if output.starts_with(&root) {
        bail!(
            "{}: inside the directory being ingested ({}); write the manifest elsewhere",
            output.display(),
            root.display()
        );
    }
    let store = Store::open_default()?;
    let filter = Filter::new(
        &root,
        &FilterOptions {
            gitignore: false,
            default_filters: false,
            vriftignore: false,
            exclude: args.exclude.clone(),
        },
    )?;
    // Held until the manifest is registered, so gc cannot take the new blobs in between.
    let _lock = store.lock_shared()?;
    let bar = progress_bar();
    let mut opts = IngestOptions::new(filter);
    if args.owners {
        opts.owners = Owners::Always;
    }
    let report = ingest::ingest(&store, &root, &opts, &|p| show_progress(&bar, p));
    bar.finish_and_clear();
    let report = report?;
    report.manifest.save_atomic(&output)?;
    store
        .register_root(&output)
        .with_context(|| format!("{}: registering it with the store", output.display()))?;
    for w in &report.warnings {
        eprintln!("vrift: warning: {w}");
    }
    if args.json {
        println!(
            "{}",
            json!({
                "root": root.display().to_string(),
                "manifest": output.display().to_string(),
                "manifest_hash": report.manifest.hash().to_hex(),
                "files": report.files,
                "dirs": report.dirs,
                "symlinks": report.symlinks,
                "bytes": report.bytes,
                "bytes_new": report.bytes_new,
                "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
            })
        );
    } else if !quiet {
        println!(
            "ingested {}: {} files, {} dirs, {} symlinks, {} ({} new)",
            root.display(),
            report.files,
            report.dirs,
            report.symlinks,
            HumanBytes(report.bytes),
            HumanBytes(report.bytes_new)
        );
        println!("manifest: {}", output.display());
    }
    Ok(ExitCode::SUCCESS)
}
