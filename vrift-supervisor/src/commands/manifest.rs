//! `vrift manifest show|diff|verify`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use vrift_common::hash::Hash;
use vrift_common::manifest::{
    display_path, escape_bytes, Change, Entry, EntryKind, Field, Manifest,
};
use vrift_common::store::Store;

use super::display::{entry_json, finish_output, fmt_mtime, print_json, short_hash, stdout};

const DEFAULT_MANIFEST: &str = "vrift.manifest";

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a manifest's header and one line per entry.
    Show {
        /// The manifest file (default ./vrift.manifest).
        path: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two manifests: exit 0 when identical, 1 when different, 2 on trouble.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that every blob the manifest references is in the store and intact.
    Verify {
        /// The manifest file (default ./vrift.manifest).
        path: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Show { path, json } => show(&path.unwrap_or_else(default_path), json),
        Command::Diff { a, b, json } => match diff(&a, &b, json) {
            Ok(code) => Ok(code),
            // Like diff(1): 2 means trouble, so 1 keeps meaning "different".
            Err(err) => {
                eprintln!("vrift: {}", crate::describe_error(&err));
                Ok(ExitCode::from(2))
            }
        },
        Command::Verify { path } => verify(&path.unwrap_or_else(default_path)),
    }
}

fn default_path() -> PathBuf {
    PathBuf::from(DEFAULT_MANIFEST)
}

fn kind_counts(m: &Manifest) -> (usize, usize, usize, usize) {
    m.iter()
        .fold((0, 0, 0, 0), |(f, d, s, p), (_, e)| match e.kind {
            EntryKind::File => (f + 1, d, s, p),
            EntryKind::Dir => (f, d + 1, s, p),
            EntryKind::Symlink => (f, d, s + 1, p),
            EntryKind::Fifo => (f, d, s, p + 1),
        })
}

fn show(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let m = Manifest::load(path)?;
    let hash = m.hash();
    if as_json {
        print_json(&json!({
            "manifest": path.display().to_string(),
            "hash": hash.to_hex(),
            "format_version": m.format_version(),
            "entries": m.len(),
            "total_file_bytes": m.total_file_bytes(),
            "items": m.iter().map(|(p, e)| entry_json(p, e)).collect::<Vec<_>>(),
            "whiteouts": m.whiteouts().iter().map(|p| display_path(p)).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let (files, dirs, symlinks, fifos) = kind_counts(&m);
    let mut out = stdout();
    let r = (|| -> io::Result<()> {
        writeln!(out, "manifest: {}", path.display())?;
        writeln!(out, "hash:     {hash}")?;
        writeln!(out, "format:   {}", m.format_version())?;
        let fifos = if fifos > 0 {
            format!(", {fifos} fifos")
        } else {
            String::new()
        };
        writeln!(
            out,
            "entries:  {} ({files} files, {dirs} dirs, {symlinks} symlinks{fifos})",
            m.len()
        )?;
        writeln!(out, "bytes:    {} (file contents)", m.total_file_bytes())?;
        writeln!(out)?;
        for (p, e) in m.iter() {
            write_entry_line(&mut out, p, e)?;
        }
        // Removals from the layers below (`vrift run --base`), after the entries.
        for p in m.whiteouts() {
            writeln!(out, "{:<7} {}", "whiteout", display_path(p))?;
        }
        out.flush()
    })();
    finish_output(r)?;
    Ok(ExitCode::SUCCESS)
}

fn write_entry_line(out: &mut impl Write, p: &[u8], e: &Entry) -> io::Result<()> {
    let hash = match e.kind {
        EntryKind::File => short_hash(&e.hash),
        _ => "-".to_string(),
    };
    write!(
        out,
        "{:<7} {:04o} {:>12} {} {:<12} {}",
        e.kind.name(),
        e.mode,
        e.size,
        fmt_mtime(e.mtime_ns),
        hash,
        display_path(p)
    )?;
    if e.kind == EntryKind::Symlink {
        write!(out, " -> {}", escape_bytes(&e.target))?;
    }
    let meta = meta_text(e);
    if !meta.is_empty() {
        write!(out, "  [{meta}]")?;
    }
    writeln!(out)
}

/// The version 2 fields of an entry, as `owner=UID:GID link=G xattrs=NAME,NAME`.
fn meta_text(e: &Entry) -> String {
    let mut parts = Vec::new();
    if let Some(o) = e.meta.owner {
        parts.push(format!("owner={}:{}", o.uid, o.gid));
    }
    if e.meta.link != 0 {
        parts.push(format!("link={}", e.meta.link));
    }
    if !e.meta.xattrs.is_empty() {
        let names: Vec<String> = e
            .meta
            .xattrs
            .iter()
            .map(|x| escape_bytes(&x.name))
            .collect();
        parts.push(format!("xattrs={}", names.join(",")));
    }
    parts.join(" ")
}

fn diff(a_path: &Path, b_path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let a = Manifest::load(a_path)?;
    let b = Manifest::load(b_path)?;
    let changes = a.diff(&b);
    if as_json {
        let items: Vec<_> = changes
            .iter()
            .map(|c| match c {
                Change::Added { path, entry } => {
                    json!({"change": "added", "entry": entry_json(path, entry)})
                }
                Change::Removed { path, entry } => {
                    json!({"change": "removed", "entry": entry_json(path, entry)})
                }
                Change::Changed {
                    path,
                    old,
                    new,
                    fields,
                } => json!({
                    "change": "changed",
                    "path": display_path(path),
                    "fields": fields.iter().map(|f| f.name()).collect::<Vec<_>>(),
                    "old": entry_json(path, old),
                    "new": entry_json(path, new),
                }),
            })
            .collect();
        print_json(&json!({"identical": changes.is_empty(), "changes": items}))?;
    } else {
        let mut out = stdout();
        let r = (|| -> io::Result<()> {
            for c in &changes {
                match c {
                    Change::Added { path, entry } => writeln!(
                        out,
                        "added    {:<7} {}",
                        entry.kind.name(),
                        display_path(path)
                    )?,
                    Change::Removed { path, entry } => writeln!(
                        out,
                        "removed  {:<7} {}",
                        entry.kind.name(),
                        display_path(path)
                    )?,
                    Change::Changed {
                        path,
                        old,
                        new,
                        fields,
                    } => {
                        let what: Vec<String> =
                            fields.iter().map(|f| describe(*f, old, new)).collect();
                        writeln!(out, "changed  {}: {}", display_path(path), what.join(", "))?
                    }
                }
            }
            out.flush()
        })();
        finish_output(r)?;
    }
    Ok(if changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// "size 12 -> 21" and the like.
fn describe(f: Field, old: &Entry, new: &Entry) -> String {
    let (o, n) = match f {
        Field::Kind => (old.kind.name().to_string(), new.kind.name().to_string()),
        Field::Content => (short_hash(&old.hash), short_hash(&new.hash)),
        Field::Size => (old.size.to_string(), new.size.to_string()),
        Field::Mode => (format!("{:04o}", old.mode), format!("{:04o}", new.mode)),
        Field::Mtime => (fmt_mtime(old.mtime_ns), fmt_mtime(new.mtime_ns)),
        Field::Target => (escape_bytes(&old.target), escape_bytes(&new.target)),
        Field::Owner => (owner_text(old), owner_text(new)),
        Field::Xattrs => (xattrs_text(old), xattrs_text(new)),
        Field::Links => (link_text(old), link_text(new)),
    };
    format!("{f} {o} -> {n}")
}

/// What is wrong with one blob.
enum Problem {
    Missing,
    Corrupt,
    WrongSize { stored: u64 },
    Unreadable(String),
}

fn verify(path: &Path) -> anyhow::Result<ExitCode> {
    let m = Manifest::load(path)?;
    let store = Store::open_default()?;
    // Each distinct blob once, with every path that uses it.
    let mut blobs: BTreeMap<Hash, (u64, Vec<&[u8]>)> = BTreeMap::new();
    for (p, e) in m.iter().filter(|(_, e)| e.kind == EntryKind::File) {
        blobs
            .entry(e.hash)
            .or_insert((e.size, Vec::new()))
            .1
            .push(p);
    }
    let work: Vec<(Hash, u64)> = blobs.iter().map(|(h, (s, _))| (*h, *s)).collect();
    let problems = check_blobs(&store, &work);

    let mut out = stdout();
    let r = (|| -> io::Result<()> {
        for (hash, problem) in &problems {
            let (size, paths) = &blobs[hash];
            let what = match problem {
                Problem::Missing => "missing blob".to_string(),
                Problem::Corrupt => "corrupt blob (content does not match its hash)".to_string(),
                Problem::WrongSize { stored } => {
                    format!("corrupt blob (stored size {stored}, manifest says {size})")
                }
                Problem::Unreadable(e) => format!("unreadable blob ({e})"),
            };
            for p in paths {
                writeln!(out, "{what}: {hash} for {}", display_path(p))?;
            }
        }
        if problems.is_empty() {
            writeln!(
                out,
                "ok: {} files, {} blobs verified in {}",
                blobs.values().map(|(_, p)| p.len()).sum::<usize>(),
                blobs.len(),
                store.root().display()
            )?;
        }
        out.flush()
    })();
    finish_output(r)?;
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "vrift: {}: {} of {} blobs missing or damaged in store {}; `vrift store verify \
             --repair` moves damaged blobs aside and restores them from your files",
            path.display(),
            problems.len(),
            blobs.len(),
            store.root().display()
        );
        Ok(ExitCode::from(1))
    }
}

/// Re-hash every blob, on a few scoped threads (no pool outlives the call).
fn check_blobs(store: &Store, work: &[(Hash, u64)]) -> Vec<(Hash, Problem)> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = work.len().div_ceil(threads).max(1);
    let mut problems: Vec<(Hash, Problem)> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|&(h, size)| check_blob(store, h, size).map(|p| (h, p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("verify thread panicked"))
            .collect()
    });
    problems.sort_by_key(|(h, _)| *h);
    problems
}

fn check_blob(store: &Store, hash: Hash, size: u64) -> Option<Problem> {
    match store.blob_size(&hash) {
        Err(e) if e.is_not_found() => return Some(Problem::Missing),
        Err(e) => return Some(Problem::Unreadable(e.to_string())),
        Ok(stored) if stored != size => return Some(Problem::WrongSize { stored }),
        Ok(_) => {}
    }
    match store.verify_blob(&hash) {
        Ok(true) => None,
        Ok(false) => Some(Problem::Corrupt),
        Err(e) => Some(Problem::Unreadable(e.to_string())),
    }
}

fn owner_text(e: &Entry) -> String {
    e.meta
        .owner
        .map_or("-".to_string(), |o| format!("{}:{}", o.uid, o.gid))
}

fn xattrs_text(e: &Entry) -> String {
    if e.meta.xattrs.is_empty() {
        return "-".to_string();
    }
    let parts: Vec<String> = e
        .meta
        .xattrs
        .iter()
        .map(|x| format!("{}={}", escape_bytes(&x.name), escape_bytes(&x.value)))
        .collect();
    parts.join(",")
}

fn link_text(e: &Entry) -> String {
    if e.meta.link == 0 {
        "-".to_string()
    } else {
        format!("group {}", e.meta.link)
    }
}
