//! `vrift remote add|list|remove|default`, `vrift push`, `vrift pull` and
//! `vrift gc --remote`: sharing the store through an S3-compatible object store
//! (library: vrift-remote).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use vrift_common::hash::Hash;
use vrift_common::store::Store;
use vrift_remote::{PullTarget, PushOptions, Remote, RemoteDef, RemoteGcOptions, Remotes};

use super::display::{finish_output, human_bytes, print_json, stdout};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a remote: `s3://BUCKET[/PREFIX]`. Credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY or ~/.aws/credentials, never from the command line.
    Add {
        name: String,
        url: String,
        /// The S3 endpoint of a store other than AWS (Garage, Ceph RGW, R2, MinIO...).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Make it the default remote (the first remote added is the default anyway).
        #[arg(long)]
        default: bool,
    },
    /// List the remotes.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Forget a remote (nothing on it is touched).
    Remove { name: String },
    /// Make NAME the default remote: the user's, or with --project the project's
    /// (`.vrift/remote` at the project root).
    Default {
        name: String,
        #[arg(long)]
        project: bool,
    },
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The remote (default: the project's, else the user's default remote).
    #[arg(long)]
    pub remote: Option<String>,
    /// Also name the pushed manifest `refs/NAME` on the remote (one manifest only).
    #[arg(long = "ref", value_name = "NAME")]
    pub reference: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Manifests to push (default: the project's vrift.manifest).
    pub manifests: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// The remote (default: the project's, else the user's default remote).
    #[arg(long)]
    pub remote: Option<String>,
    /// Where to write the manifest (default: $VRIFT_HOME/pulled/HASH.manifest).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// A manifest hash, or the name of a ref on the remote.
    pub target: String,
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir().context("current directory")
}

fn open_remote(store: &Store, named: Option<&str>) -> Result<Remote> {
    let remotes = Remotes::load(store.root())?;
    let (name, def) = remotes.resolve(named, &cwd()?)?;
    Ok(Remote::open(&name, &def)?)
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    let store = Store::open_default()?;
    let mut remotes = Remotes::load(store.root())?;
    match cmd {
        Command::Add {
            name,
            url,
            endpoint,
            region,
            default,
        } => {
            remotes.add(
                &name,
                RemoteDef {
                    url,
                    endpoint,
                    region,
                },
            )?;
            if default {
                remotes.default = Some(name.clone());
            }
            remotes.save(store.root())?;
            eprintln!("vrift: added remote {name}");
        }
        Command::List { json } => {
            if json {
                print_json(&json!({
                    "default": remotes.default,
                    "remotes": remotes.remotes,
                }))?;
            } else {
                finish_output(print_list(&remotes))?;
            }
        }
        Command::Remove { name } => {
            remotes.remove(&name)?;
            remotes.save(store.root())?;
            eprintln!("vrift: removed remote {name} (its objects are untouched)");
        }
        Command::Default { name, project } => {
            remotes.get(&name)?;
            if project {
                let cwd = cwd()?;
                let root = crate::run::project::find_root(&cwd).unwrap_or(cwd);
                let path = vrift_remote::config::set_project_default(&root, &name)?;
                eprintln!("vrift: {name} is the default remote of {}", path.display());
            } else {
                remotes.default = Some(name.clone());
                remotes.save(store.root())?;
                eprintln!("vrift: {name} is the default remote");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(remotes: &Remotes) -> std::io::Result<()> {
    let mut out = stdout();
    for (name, def) in &remotes.remotes {
        let mark = if remotes.default.as_deref() == Some(name) {
            "*"
        } else {
            " "
        };
        write!(out, "{mark} {name}\t{}", def.url)?;
        if let Some(e) = &def.endpoint {
            write!(out, "\tendpoint {e}")?;
        }
        if let Some(r) = &def.region {
            write!(out, "\tregion {r}")?;
        }
        writeln!(out)?;
    }
    out.flush()
}

pub fn push(args: PushArgs) -> Result<ExitCode> {
    let store = Store::open_default()?;
    let remote = open_remote(&store, args.remote.as_deref())?;
    let manifests = if args.manifests.is_empty() {
        let cwd = cwd()?;
        let root = crate::run::project::find_root(&cwd).with_context(|| {
            format!(
                "{}: no vrift.manifest here or above (run `vrift init`, or name manifests to push)",
                cwd.display()
            )
        })?;
        vec![root.join("vrift.manifest")]
    } else {
        args.manifests
    };
    let opts = PushOptions {
        reference: args.reference.clone(),
        quiet: args.json,
    };
    let report = vrift_remote::push(&store, &remote, &manifests, &opts)?;
    if args.json {
        print_json(&json!({
            "remote": remote.name,
            "manifests": report.manifests.iter().map(Hash::to_hex).collect::<Vec<_>>(),
            "already_complete": report.already_complete,
            "blobs": report.blobs,
            "checked": report.checked,
            "uploaded": report.uploaded,
            "uploaded_bytes": report.uploaded_bytes,
            "ref": args.reference,
        }))?;
    } else {
        let mut out = stdout();
        for h in &report.manifests {
            writeln!(out, "{h}")?;
        }
        out.flush()?;
        eprintln!(
            "vrift: pushed {} manifest(s) to {}: {} blobs sent ({}), {} of {} already there{}",
            report.manifests.len(),
            remote.name,
            report.uploaded,
            human_bytes(report.uploaded_bytes),
            report.blobs - report.uploaded,
            report.blobs,
            if report.already_complete > 0 {
                format!(
                    "; {} manifest(s) were complete on the remote",
                    report.already_complete
                )
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pull(args: PullArgs) -> Result<ExitCode> {
    let store = Store::open_default()?;
    let target = PullTarget::parse(&args.target)?;
    let remote = open_remote(&store, args.remote.as_deref())?;
    let report = vrift_remote::pull(&store, &remote, &target, args.output.as_deref(), args.json)?;
    if args.json {
        print_json(&json!({
            "remote": remote.name,
            "manifest": report.manifest.to_hex(),
            "path": report.path.display().to_string(),
            "blobs": report.blobs,
            "fetched": report.fetched,
            "fetched_bytes": report.fetched_bytes,
        }))?;
    } else {
        let mut out = stdout();
        writeln!(out, "{}", report.path.display())?;
        out.flush()?;
        eprintln!(
            "vrift: pulled {} from {}: {} blobs fetched ({}), {} of {} were here already",
            report.manifest,
            remote.name,
            report.fetched,
            human_bytes(report.fetched_bytes),
            report.blobs - report.fetched,
            report.blobs
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vrift gc --remote NAME [--delete] [--min-age SECONDS]`.
pub fn gc(name: &str, delete: bool, min_age: u64, json_out: bool) -> Result<ExitCode> {
    let store = Store::open_default()?;
    let remote = open_remote(&store, Some(name))?;
    let report = vrift_remote::gc(
        &remote,
        &RemoteGcOptions {
            delete,
            min_age: Duration::from_secs(min_age),
        },
    )?;
    if json_out {
        print_json(&json!({
            "remote": remote.name,
            "deleted": delete,
            "manifests": report.manifests,
            "refs": report.refs,
            "blobs": report.blobs,
            "referenced": report.referenced,
            "unreferenced_blobs": report.garbage.len(),
            "unreferenced_bytes": report.garbage_bytes(),
            "unreferenced": report.garbage.iter().map(|(k, s)| json!({"key": k, "size": s})).collect::<Vec<_>>(),
            "young": report.young,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = stdout();
    let verb = if delete { "deleted" } else { "unreferenced" };
    writeln!(
        out,
        "{verb} on {}: {} blobs, {} ({} bytes)",
        remote.name,
        report.garbage.len(),
        human_bytes(report.garbage_bytes()),
        report.garbage_bytes()
    )?;
    for (key, size) in &report.garbage {
        writeln!(out, "  {key}  {size} bytes")?;
    }
    if report.young > 0 {
        writeln!(
            out,
            "kept {} unreferenced blobs younger than {min_age} s (a push may be under way)",
            report.young
        )?;
    }
    writeln!(
        out,
        "kept: {} referenced blobs of {} pushed manifests and {} refs",
        report.referenced, report.manifests, report.refs
    )?;
    if !delete {
        writeln!(
            out,
            "dry run: nothing deleted; `vrift gc --remote {} --delete` deletes the unreferenced blobs",
            remote.name
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// For `vrift run --manifest X`: X itself when it is a file (or not a hash); when it is a
/// manifest hash, a local copy of that manifest, pulled with its blobs from the default
/// remote first if the store lacks any of them.
pub fn resolve_manifest_arg(arg: Option<PathBuf>) -> Result<Option<PathBuf>> {
    let Some(arg) = arg else { return Ok(None) };
    let hash = match arg.to_str().map(str::parse::<Hash>) {
        Some(Ok(h)) if !arg.exists() => h,
        _ => return Ok(Some(arg)),
    };
    let store = Store::open_default()?;
    let path = vrift_remote::ensure_manifest(&store, &hash, &cwd()?)?;
    Ok(Some(path))
}
