//! `vrift init [DIR]`: detect the project type, apply the filters, ingest the tree into the
//! store and write `DIR/vrift.manifest`.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{HumanBytes, ProgressStyle};

use crate::progress::Progress;
use serde_json::json;
use vrift_common::filters::{ExcludeReason, Filter, FilterOptions, VRIFTIGNORE};
use vrift_common::ingest::{
    self, IngestOptions, IngestPhase, IngestProgress, IngestReport, Owners,
};
use vrift_common::manifest::display_path;
use vrift_common::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// Project directory (default: the current directory).
    dir: Option<PathBuf>,
    /// Leave out paths matching PATTERN (gitignore syntax, relative to DIR; `!PATTERN`
    /// re-includes). Repeatable; applied after `.vriftignore`.
    #[arg(long = "exclude", value_name = "PATTERN", allow_hyphen_values = true)]
    exclude: Vec<String>,
    /// Do not read `.gitignore` files or `.git/info/exclude`.
    #[arg(long)]
    no_gitignore: bool,
    /// Do not apply the default filters (VCS metadata, the project type's build outputs).
    #[arg(long)]
    no_default_filters: bool,
    /// Record each entry's owner and group in the manifest (done anyway when run as root
    /// over a tree with more than one owner).
    #[arg(long)]
    owners: bool,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Threads storing files (0: chosen from the number of cores). For benchmarking.
    #[arg(long, default_value_t = 0, hide = true)]
    threads: usize,
}

/// How many excluded paths the text output lists.
const SHOW_EXCLUDED: usize = 20;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Every error below already says which path and why in its own message; printing the
    // whole cause chain would repeat the cause.
    match init(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("vrift: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn init(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let root = dir
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let store = Store::open_default()?;
    let filter = Filter::new(
        &root,
        &FilterOptions {
            gitignore: !args.no_gitignore,
            default_filters: !args.no_default_filters,
            vriftignore: true,
            exclude: args.exclude.clone(),
        },
    )?;

    // `vrift run` refreshes vrift.manifest with the filters a project keeps in its
    // .vriftignore: --exclude patterns are written there (before the walk, so the manifest
    // records the file as it will be), or the next run would bring the paths back.
    let remembered = remember_excludes(&root, &args.exclude)?;
    if args.no_gitignore || args.no_default_filters {
        eprintln!(
            "vrift: note: --no-gitignore and --no-default-filters apply to this init only: the              next `vrift run` refreshes vrift.manifest with the default filters; to keep a path              in, add a `!PATTERN` line to {}",
            root.join(VRIFTIGNORE).display()
        );
    }

    // Held until the manifest is registered, so gc cannot take the new blobs in between.
    let _lock = store.lock_shared()?;
    let bar = progress_bar();
    let mut opts = IngestOptions::new(filter.clone());
    if args.owners {
        opts.owners = Owners::Always;
    }
    let report = ingest::ingest(&store, &root, &opts, &|p| show_progress(&bar, p));
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            remembered.undo();
            return Err(e.into());
        }
    };
    if let Some(path) = &remembered.path {
        eprintln!(
            "vrift: --exclude patterns saved in {}, so `vrift run` leaves them out too",
            path.display()
        );
    }
    let manifest_path = ingest::write_project_manifest(&root, &report.manifest, &store)?;

    for w in &report.warnings {
        eprintln!("vrift: warning: {w}");
    }
    if args.json {
        println!("{}", to_json(&filter, &report, &manifest_path));
    } else {
        print_text(&filter, &report, &manifest_path);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `remember_excludes` changed, to put back if the init fails.
struct Remembered {
    /// The .vriftignore written (None: nothing to remember).
    path: Option<PathBuf>,
    /// Its content before (None: it did not exist).
    before: Option<Vec<u8>>,
}

impl Remembered {
    fn undo(&self) {
        let Some(path) = &self.path else { return };
        let _ = match &self.before {
            Some(b) => std::fs::write(path, b),
            None => std::fs::remove_file(path),
        };
    }
}

/// Append the `--exclude` patterns that are not yet lines of `root/.vriftignore` to it.
fn remember_excludes(root: &Path, patterns: &[String]) -> anyhow::Result<Remembered> {
    let path = root.join(VRIFTIGNORE);
    let before = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    };
    let text = String::from_utf8_lossy(before.as_deref().unwrap_or_default()).into_owned();
    let have: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut add = String::new();
    for p in patterns {
        if !have.contains(&p.as_str()) && !add.lines().any(|l| l == p) {
            add.push_str(p);
            add.push('\n');
        }
    }
    if add.is_empty() {
        return Ok(Remembered { path: None, before });
    }
    let mut content = before.clone().unwrap_or_default();
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    content.extend_from_slice(b"# added by `vrift init --exclude`\n");
    content.extend_from_slice(add.as_bytes());
    std::fs::write(&path, &content).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Remembered {
        path: Some(path),
        before,
    })
}

pub(super) struct Bar {
    progress: Progress,
    storing: Cell<bool>,
}

/// The ingest's progress: a count of the paths scanned, then a bar of the files stored.
pub(super) fn progress_bar() -> Bar {
    Bar {
        progress: Progress::with_style("scanning", None, "{spinner} scanning: {pos} paths"),
        storing: Cell::new(false),
    }
}

impl Bar {
    pub(super) fn finish_and_clear(&self) {
        self.progress.finish();
    }
}

pub(super) fn show_progress(b: &Bar, p: IngestProgress) {
    match p.phase {
        IngestPhase::Walking => b.progress.set_position(p.entries_seen),
        IngestPhase::Storing => {
            if !b.storing.replace(true) {
                if let Some(bar) = b.progress.bar() {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "storing {bar:30} {pos}/{len} files {msg} ({elapsed})",
                        )
                        .expect("valid template"),
                    );
                }
                b.progress.set_length(p.files_total);
            }
            if let Some(bar) = b.progress.bar() {
                bar.set_message(format!(
                    "{} / {}",
                    HumanBytes(p.bytes_done),
                    HumanBytes(p.bytes_total)
                ));
            }
            b.progress.set_position(p.files_done);
        }
    }
}

fn project_types(filter: &Filter) -> String {
    if filter.detected().is_empty() {
        return "none detected".to_string();
    }
    filter
        .detected()
        .iter()
        .map(|d| format!("{} ({})", d.kind, d.marker))
        .collect::<Vec<_>>()
        .join(", ")
}

fn excluded_path(path: &[u8], is_dir: bool) -> String {
    let mut s = display_path(path);
    if is_dir {
        s.push('/');
    }
    s
}

fn print_text(filter: &Filter, r: &IngestReport, manifest_path: &std::path::Path) {
    println!("project: {}", r.root.display());
    println!("type: {}", project_types(filter));
    println!("filters:");
    for line in filter.describe() {
        println!("  {line}");
    }
    if r.excluded
        .iter()
        .any(|e| e.reason != ExcludeReason::Internal)
    {
        // vrift's own files are always left out; listing them is noise.
        let shown: Vec<_> = r
            .excluded
            .iter()
            .filter(|e| e.reason != ExcludeReason::Internal)
            .take(SHOW_EXCLUDED)
            .map(|e| excluded_path(&e.path, e.is_dir))
            .collect();
        let listable = r
            .excluded
            .iter()
            .filter(|e| e.reason != ExcludeReason::Internal)
            .count();
        let more = listable.saturating_sub(SHOW_EXCLUDED);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        println!("excluded (passed through): {}{tail}", shown.join(" "));
    }
    println!(
        "ingested: {} files, {} dirs, {} symlinks, {}",
        r.files,
        r.dirs,
        r.symlinks,
        HumanBytes(r.bytes)
    );
    println!(
        "stored: {} new, {} already present",
        HumanBytes(r.bytes_new),
        HumanBytes(r.bytes_present)
    );
    println!(
        "hashed: {} files read, {} unchanged (stat cache)",
        r.files_hashed, r.files_unchanged
    );
    println!("manifest: {}", manifest_path.display());
    println!("manifest hash: {}", r.manifest.hash());
    println!("time: {:.3} s", r.elapsed.as_secs_f64());
}

fn to_json(filter: &Filter, r: &IngestReport, manifest_path: &std::path::Path) -> String {
    let types: Vec<_> = filter
        .detected()
        .iter()
        .map(|d| json!({"type": d.kind.name(), "marker": d.marker}))
        .collect();
    let excluded: Vec<_> = r
        .excluded
        .iter()
        .map(|e| {
            json!({
                "path": display_path(&e.path),
                "dir": e.is_dir,
                "reason": e.reason.to_string(),
            })
        })
        .collect();
    let warnings: Vec<_> = r.warnings.iter().map(|w| w.to_string()).collect();
    json!({
        "root": r.root.display().to_string(),
        "manifest": manifest_path.display().to_string(),
        "manifest_hash": r.manifest.hash().to_hex(),
        "project_types": types,
        "filters": filter.describe(),
        "files": r.files,
        "dirs": r.dirs,
        "symlinks": r.symlinks,
        "bytes": r.bytes,
        "bytes_new": r.bytes_new,
        "bytes_present": r.bytes_present,
        "files_hashed": r.files_hashed,
        "files_unchanged": r.files_unchanged,
        "excluded": excluded,
        "warnings": warnings,
        "elapsed_ms": r.elapsed.as_secs_f64() * 1000.0,
    })
    .to_string()
}
