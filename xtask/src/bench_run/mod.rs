//! `cargo xtask bench run`: vrift run side by side with native, proot and bwrap.
//!
//! Workloads (each run `--runs` times per runner, interleaved so that load on a shared
//! machine hits every runner alike; medians are reported):
//! - `syscalls`: a static C program doing stat and open/read/close on view paths and on
//!   pass-through paths, plus the kernel's floor for one notification round trip;
//! - `tree`: busybox `find | xargs sha256sum` over a generated 20,000-file view;
//! - `build`: `make -jN` + gcc over a real C code base whose sources exist only in the view.

mod build;
pub(crate) mod fixtures;
mod harness;
mod project;
mod stats;
mod syscalls;
mod table;
mod tree;
mod writes;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use harness::{Runner, Wrappers};
use table::Table;

const USAGE: &str =
    "usage: cargo xtask bench run [--runs N] [--quick] [--only syscalls,tree,build,writes,project] \
     [--without vrift-overlay,vrift-supervisor,vrift-trace,proot,bwrap]";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Syscalls,
    Tree,
    Build,
    Writes,
    Project,
}

const ALL: [Workload; 5] = [
    Workload::Syscalls,
    Workload::Tree,
    Workload::Build,
    Workload::Writes,
    Workload::Project,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Syscalls => "syscalls",
            Workload::Tree => "tree",
            Workload::Build => "build",
            Workload::Writes => "writes",
            Workload::Project => "project",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub runs: usize,
    pub quick: bool,
    pub only: Vec<Workload>,
    /// Runners to leave out (by name: vrift-trace, proot, bwrap), to shorten a run.
    pub without: Vec<String>,
}

/// Parse the arguments after `bench run`.
pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        runs: 5,
        quick: false,
        only: ALL.to_vec(),
        without: Vec::new(),
    };
    let mut runs_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                let v = it
                    .next()
                    .with_context(|| format!("--runs needs a value\n{USAGE}"))?;
                opts.runs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("--runs {v}: not a positive number"))?;
                runs_given = true;
            }
            "--quick" => opts.quick = true,
            "--only" => {
                let v = it
                    .next()
                    .with_context(|| format!("--only needs a value\n{USAGE}"))?;
                opts.only = v
                    .split(',')
                    .map(|w| {
                        ALL.into_iter()
                            .find(|x| x.name() == w)
                            .with_context(|| format!("--only: unknown workload {w:?}\n{USAGE}"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--without" => {
                let v = it
                    .next()
                    .with_context(|| format!("--without needs a value\n{USAGE}"))?;
                opts.without = v.split(',').map(str::to_string).collect();
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if opts.quick && !runs_given {
        opts.runs = 1;
    }
    Ok(opts)
}

/// What every workload needs.
pub struct Bench {
    pub opts: Options,
    pub runners: Vec<Runner>,
    pub wrappers: Wrappers,
    pub cache: PathBuf,
    pub programs: PathBuf,
}

impl Bench {
    /// Run `one` for every runner, `runs` times, interleaved (after one untimed warm-up
    /// round when `warm_up`). `one` returns the metrics of a run; the result holds, per
    /// runner, one vector of samples per metric.
    pub fn interleaved(
        &self,
        what: &str,
        warm_up: bool,
        one: impl FnMut(Runner) -> Result<Vec<f64>>,
    ) -> Result<Samples> {
        self.interleaved_on(&self.runners, what, warm_up, one)
    }

    /// A table of one wall-time metric: each runner's median in seconds and its ratio to
    /// native.
    pub fn seconds_table(&self, title: String, s: &Samples) -> Table {
        let mut t = Table::new(title, &["runner", "median s", "ratio to native"]);
        let native = s.median(Runner::Native, 0);
        for &r in &self.runners {
            let v = s.median(r, 0);
            t.row(vec![
                r.name().into(),
                v.map_or("-".into(), |v| format!("{v:.2}")),
                stats::fmt_ratio(v.zip(native).and_then(|(v, n)| stats::ratio(v, n))),
            ]);
        }
        t
    }

    /// [`Bench::interleaved`] over the given runners only.
    pub fn interleaved_on(
        &self,
        runners: &[Runner],
        what: &str,
        warm_up: bool,
        mut one: impl FnMut(Runner) -> Result<Vec<f64>>,
    ) -> Result<Samples> {
        let mut samples: Vec<(Runner, Vec<Vec<f64>>)> =
            runners.iter().map(|&r| (r, Vec::new())).collect();
        if warm_up {
            for &r in runners {
                eprintln!("bench: {what}: warm-up, {}", r.name());
                one(r)?;
            }
        }
        for i in 0..self.opts.runs {
            for (r, per_metric) in samples.iter_mut() {
                eprintln!(
                    "bench: {what}: run {}/{}, {}",
                    i + 1,
                    self.opts.runs,
                    r.name()
                );
                let metrics = one(*r)?;
                per_metric.resize(metrics.len(), Vec::new());
                for (m, v) in metrics.into_iter().enumerate() {
                    per_metric[m].push(v);
                }
            }
        }
        Ok(Samples(samples))
    }
}

pub struct Samples(Vec<(Runner, Vec<Vec<f64>>)>);

impl Samples {
    /// The median of `metric` for `runner`, if it ran.
    pub fn median(&self, runner: Runner, metric: usize) -> Option<f64> {
        let (_, per_metric) = self.0.iter().find(|(r, _)| *r == runner)?;
        stats::median(per_metric.get(metric)?)
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let opts = parse_args(args)?;
    harness::require_tools(&["gcc", "make", "ar", "proot", "busybox", "python3", "tar"])?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let vrift = harness::build_vrift(&workspace)?;
    let cache = harness::target_dir(&workspace).join("bench-cache");
    std::fs::create_dir_all(&cache).with_context(|| format!("{}", cache.display()))?;
    let mut runners = vec![
        Runner::Native,
        Runner::VriftOverlay,
        Runner::Vrift,
        Runner::VriftTrace,
        Runner::Proot,
    ];
    if harness::which("bwrap").is_some() {
        runners.push(Runner::Bwrap);
    } else {
        eprintln!("bench: bwrap not found, leaving it out (scripts/setup.sh installs it)");
    }
    runners.retain(|&r| {
        matches!(r, Runner::Native) || !opts.without.iter().any(|w| w == r.cli_name())
    });
    let bench = Bench {
        runners,
        wrappers: Wrappers {
            vrift,
            vrift_home: cache.join("vrift-home"),
        },
        programs: workspace.join("xtask/bench-programs"),
        cache,
        opts,
    };

    let mut tables: Vec<Table> = Vec::new();
    for w in bench.opts.only.clone() {
        let new = match w {
            Workload::Syscalls => syscalls::run(&bench)?,
            Workload::Tree => vec![tree::run(&bench)?],
            Workload::Build => vec![build::run(&bench)?],
            Workload::Writes => writes::run(&bench)?,
            Workload::Project => project::run(&bench)?,
        };
        for t in new {
            println!("{}", t.render());
            tables.push(t);
        }
    }
    let report = report(&bench, &tables);
    let path = bench.cache.join("last-run.md");
    std::fs::write(&path, &report).with_context(|| format!("{}", path.display()))?;
    eprintln!("bench: tables written to {}", path.display());
    Ok(())
}

/// The whole run as markdown: when, where, how, then every table.
fn report(bench: &Bench, tables: &[Table]) -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = format!(
        "Run {date}; {cores} cores ({cpu}), Linux {}; load average at the end: {}; \
         {} runs per runner{}, medians.\n\n",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        bench.opts.runs,
        if bench.opts.quick { " (--quick)" } else { "" },
    );
    for t in tables {
        out.push_str(&t.render());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_are_five_runs_of_everything() {
        let o = parse_args(&[]).unwrap();
        assert_eq!(o.runs, 5);
        assert!(!o.quick);
        assert_eq!(o.only, ALL.to_vec());
    }

    #[test]
    fn without_names_runners_to_leave_out() {
        let o = parse_args(&args("--without proot,bwrap --only writes")).unwrap();
        assert_eq!(o.without, vec!["proot".to_string(), "bwrap".to_string()]);
        assert_eq!(o.only, vec![Workload::Writes]);
        assert!(parse_args(&args("--without")).is_err());
    }

    #[test]
    fn quick_means_one_run_unless_runs_is_given() {
        assert_eq!(parse_args(&args("--quick")).unwrap().runs, 1);
        assert_eq!(parse_args(&args("--quick --runs 3")).unwrap().runs, 3);
        assert_eq!(parse_args(&args("--runs 3 --quick")).unwrap().runs, 3);
    }

    #[test]
    fn only_selects_workloads_by_name() {
        let o = parse_args(&args("--only build,syscalls")).unwrap();
        assert_eq!(o.only, vec![Workload::Build, Workload::Syscalls]);
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = parse_args(&args("--runs 0")).unwrap_err().to_string();
        assert!(e.contains("--runs 0"), "{e}");
        let e = parse_args(&args("--only nope")).unwrap_err().to_string();
        assert!(e.contains("\"nope\""), "{e}");
        let e = parse_args(&args("--fast")).unwrap_err().to_string();
        assert!(e.contains("--fast"), "{e}");
        assert!(parse_args(&args("--runs")).is_err());
    }

    #[test]
    fn medians_are_per_runner_and_metric() {
        let s = Samples(vec![
            (Runner::Native, vec![vec![1.0, 3.0, 2.0], vec![10.0]]),
            (Runner::Vrift, vec![vec![5.0]]),
        ]);
        assert_eq!(s.median(Runner::Native, 0), Some(2.0));
        assert_eq!(s.median(Runner::Native, 1), Some(10.0));
        assert_eq!(s.median(Runner::Vrift, 1), None);
        assert_eq!(s.median(Runner::Proot, 0), None);
    }
}
