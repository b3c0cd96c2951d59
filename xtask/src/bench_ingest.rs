//! `cargo xtask bench ingest`: how fast `vrift init` is next to copying the same tree.
//!
//! One run measures, interleaved so that drift hits all alike: first ingest into an empty
//! store, `cp -r`, `cp -al`; then unchanged re-ingests; then loading a 100,000-entry
//! manifest through the library. Page cache warm for all (the tree was just written);
//! `sync` before every timed step so none pays for another's writeback.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vrift_common::manifest::Manifest;

use crate::gen;
use crate::timing::{median, secs, sync, timed};

struct Opts {
    runs: usize,
    files: u64,
    dirs: u64,
    large: u64,
    large_mib: usize,
    manifest_entries: usize,
    vrift: Option<PathBuf>,
    keep: Option<PathBuf>,
    write_doc: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts {
        runs: 5,
        files: 50_000,
        dirs: 500,
        large: 4,
        large_mib: 64,
        manifest_entries: 100_000,
        vrift: None,
        keep: None,
        write_doc: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--runs" => o.runs = val()?.parse()?,
            "--files" => o.files = val()?.parse()?,
            "--dirs" => o.dirs = val()?.parse()?,
            "--large" => o.large = val()?.parse()?,
            "--large-mib" => o.large_mib = val()?.parse()?,
            "--manifest-entries" => o.manifest_entries = val()?.parse()?,
            "--vrift" => o.vrift = Some(val()?.into()),
            "--keep" => o.keep = Some(val()?.into()),
            "--no-doc" => o.write_doc = false,
            other => bail!(
                "unknown option {other:?}; options: --runs N --files N --dirs N --large N \
                 --large-mib N --manifest-entries N --vrift PATH --keep DIR --no-doc"
            ),
        }
    }
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(o)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// The release `vrift`, built now unless `--vrift` names one.
fn vrift_binary(o: &Opts) -> anyhow::Result<PathBuf> {
    if let Some(p) = &o.vrift {
        return Ok(p.clone());
    }
    let root = workspace_root();
    eprintln!("building the release vrift ...");
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "vrift-supervisor"])
        .current_dir(&root)
        .status()?;
    if !st.success() {
        bail!("cargo build --release -p vrift-supervisor failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/vrift"))
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// `vrift init --json` of `src` into the store `home`: wall time and the report.
fn ingest(vrift: &Path, home: &Path, src: &Path) -> anyhow::Result<(Duration, serde_json::Value)> {
    sync()?;
    let (t, out) = timed(
        Command::new(vrift)
            .args(["init", "--json"])
            .arg(src)
            .env("VRIFT_HOME", home),
    )?;
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "vrift init output: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok((t, report))
}

fn copy(flag: &str, src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    remove(dst)?;
    sync()?;
    let (t, _) = timed(Command::new("cp").arg(flag).arg(src).arg(dst))?;
    remove(dst)?;
    Ok(t)
}

struct Results {
    first: Vec<Duration>,
    reingest: Vec<Duration>,
    cp_r: Vec<Duration>,
    cp_al: Vec<Duration>,
    load: Vec<Duration>,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    let vrift = vrift_binary(&o)?;
    if !vrift.is_file() {
        bail!("{}: no vrift binary there", vrift.display());
    }
    let _temp;
    let work = match &o.keep {
        Some(dir) => {
            fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            _temp = tempfile::Builder::new().prefix("vrift-bench").tempdir()?;
            _temp.path().to_path_buf()
        }
    };
    let src = work.join("tree");
    let home = work.join("store");
    let dst = work.join("copy");
    let manifest_file = work.join("big.manifest");

    remove(&src)?;
    eprintln!(
        "generating {} small files in {} dirs + {} x {} MiB in {} ...",
        o.files,
        o.dirs,
        o.large,
        o.large_mib,
        src.display()
    );
    let stats = gen::tree(&src, o.files, o.dirs, o.large, o.large_mib << 20)?;
    let big = gen::manifest(o.manifest_entries);
    big.save_atomic(&manifest_file)?;

    let mut r = Results {
        first: vec![],
        reingest: vec![],
        cp_r: vec![],
        cp_al: vec![],
        load: vec![],
    };
    let mut first_report = serde_json::Value::Null;
    for i in 0..o.runs {
        eprintln!("run {}/{} ...", i + 1, o.runs);
        r.cp_r.push(copy("-r", &src, &dst)?);
        r.cp_al.push(copy("-al", &src, &dst)?);
        remove(&home)?;
        let (t, report) = ingest(&vrift, &home, &src)?;
        if report["files"] != stats.files {
            bail!(
                "vrift ingested {} files, the tree has {}",
                report["files"],
                stats.files
            );
        }
        r.first.push(t);
        first_report = report;
    }
    for _ in 0..o.runs {
        let (t, report) = ingest(&vrift, &home, &src)?;
        if report["files_hashed"] != 0 {
            bail!("unchanged re-ingest read {} files", report["files_hashed"]);
        }
        r.reingest.push(t);
    }
    // A load is short and CPU-bound, so noise from other work on the machine weighs more:
    // take more samples.
    for _ in 0..(o.runs * 3).max(15) {
        let start = Instant::now();
        let m = Manifest::load(&manifest_file)?;
        r.load.push(start.elapsed());
        if m.len() != o.manifest_entries {
            bail!("loaded {} entries, wrote {}", m.len(), o.manifest_entries);
        }
    }
    remove(&home)?;

    let (first, re, cp_r, cp_al, load) = (
        median(&r.first),
        median(&r.reingest),
        median(&r.cp_r),
        median(&r.cp_al),
        median(&r.load),
    );
    let mib = stats.bytes as f64 / (1 << 20) as f64;
    let checks = [
        (
            "first ingest no slower than cp -r",
            first <= cp_r,
            format!("{:.2}x cp -r", ratio(first, cp_r)),
        ),
        (
            "re-ingest >= 10x faster than first ingest",
            ratio(first, re) >= 10.0,
            format!("{:.1}x", ratio(first, re)),
        ),
        (
            "100k-entry manifest load < 100 ms",
            load < Duration::from_millis(100),
            secs(load),
        ),
    ];
    let mut table = String::new();
    table.push_str(&format!(
        "Tree: {} files ({} small of 100 B-8 KiB in {} dirs, {} of them duplicates; {} x {} MiB), \
         {mib:.0} MiB. Medians of {} runs (manifest load: {} samples), page cache warm, `sync` \
         before each step.\n\n",
        stats.files,
        o.files,
        stats.dirs,
        stats.duplicate_files,
        o.large,
        o.large_mib,
        o.runs,
        r.load.len()
    ));
    table.push_str("| step | median | min | samples |\n| --- | ---: | ---: | --- |\n");
    for (name, m, all) in [
        ("`vrift init`, empty store (first ingest)", first, &r.first),
        ("`vrift init`, unchanged tree (re-ingest)", re, &r.reingest),
        ("`cp -r` of the tree", cp_r, &r.cp_r),
        ("`cp -al` of the tree", cp_al, &r.cp_al),
        (
            &*format!("load a {}-entry manifest", o.manifest_entries),
            load,
            &r.load,
        ),
    ] {
        let min = all.iter().min().copied().unwrap_or_default();
        let all: Vec<_> = all.iter().map(|d| secs(*d)).collect();
        table.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            secs(m),
            secs(min),
            all.join(", ")
        ));
    }
    table.push_str(&format!(
        "\nRatios: first ingest / cp -r = {:.2}; first ingest / re-ingest = {:.1}; \
         first ingest / cp -al = {:.1}. First ingest stored {} new of {} bytes.\n\n",
        ratio(first, cp_r),
        ratio(first, re),
        ratio(first, cp_al),
        first_report["bytes_new"],
        first_report["bytes"],
    ));
    let (min_first, min_cp) = (min(&r.first), min(&r.cp_r));
    if min_first > min_cp {
        // Medians hide it when the machine is busy: say so.
        table.push_str(&format!(
            "Note: the fastest `cp -r` ({}) beat the fastest first ingest ({}); the spread of \
             the samples shows how much other work on the machine weighed on each step.\n\n",
            secs(min_cp),
            secs(min_first)
        ));
    }
    table.push_str("| target | met | measured |\n| --- | --- | --- |\n");
    for (name, ok, got) in &checks {
        table.push_str(&format!(
            "| {name} | {} | {got} |\n",
            if *ok { "yes" } else { "NO" }
        ));
    }
    println!("{table}");

    if o.write_doc {
        let doc = workspace_root().join("docs/BENCHMARKS.md");
        let section = format!(
            "## Ingest\n\nMeasured {} on {} by `cargo xtask bench ingest --runs {}`.\n\n{table}",
            today(),
            machine(&work),
            o.runs
        );
        write_section(&doc, "## Ingest", &section)?;
        eprintln!("wrote {}", doc.display());
    }
    if checks.iter().any(|(_, ok, _)| !ok) {
        bail!("a target was missed (see the table)");
    }
    Ok(())
}

fn min(samples: &[Duration]) -> Duration {
    samples.iter().min().copied().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn today() -> String {
    sh("date -u +%Y-%m-%d")
}

fn machine(work: &Path) -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo");
    let kernel = sh("uname -r");
    let fs = sh(&format!(
        "findmnt -n -o FSTYPE -T '{}' 2>/dev/null || stat -f -c %T '{}'",
        work.display(),
        work.display()
    ));
    format!(
        "{cores} cores ({}), {mem} RAM, Linux {kernel}, {fs} file system",
        cpu.trim()
    )
}

/// Replace the section that starts with `heading` (up to the next `## `) in `doc`, or append
/// it; create the file if needed.
fn write_section(doc: &Path, heading: &str, section: &str) -> anyhow::Result<()> {
    let old = fs::read_to_string(doc).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let new = replace_section(&old, heading, section);
    fs::create_dir_all(doc.parent().unwrap())?;
    fs::write(doc, new)?;
    Ok(())
}

fn replace_section(old: &str, heading: &str, section: &str) -> String {
    let section = section.trim_end();
    let start = old
        .match_indices(heading)
        .find(|(i, _)| *i == 0 || old.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i);
    match start {
        Some(s) => {
            let after = s + heading.len();
            let end = old[after..]
                .find("\n## ")
                .map(|e| after + e + 1)
                .unwrap_or(old.len());
            let rest = &old[end..];
            let sep = if rest.is_empty() { "\n" } else { "\n\n" };
            format!("{}{section}{sep}{rest}", &old[..s])
        }
        None => format!("{}\n\n{section}\n", old.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn section_replaced_or_appended() {
        let doc = "# Benchmarks\n\n## Run\n\nx\n\n## Ingest\n\nold\n\n## Trace\n\ny\n";
        let new = replace_section(doc, "## Ingest", "## Ingest\n\nnew\n");
        assert_eq!(
            new,
            "# Benchmarks\n\n## Run\n\nx\n\n## Ingest\n\nnew\n\n## Trace\n\ny\n"
        );
        let new = replace_section("# Benchmarks\n", "## Ingest", "## Ingest\n\nnew");
        assert_eq!(new, "# Benchmarks\n\n## Ingest\n\nnew\n");
        let new = replace_section("# B\n\n## Ingest\n\nold\n", "## Ingest", "## Ingest\n\nnew");
        assert_eq!(new, "# B\n\n## Ingest\n\nnew\n");
    }
}
