//! `cargo xtask <task>`: developer tasks.
//!
//! - `bench ingest [--runs N] [--files N] [--vrift PATH] [--keep DIR] [--no-doc]`: first
//!   ingest, unchanged re-ingest, `cp -r`, `cp -al` and a 100,000-entry manifest load, side by
//!   side; medians go to docs/BENCHMARKS.md.
//! - `bench run [--runs N] [--quick] [--only syscalls,tree,build]`: the supervisor's
//!   workloads under native, `vrift run`, proot and bwrap, side by side.

mod bench_ingest;
mod gen;
mod timing;

mod bench_run;
mod bench_shim;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("ingest") => bench_ingest::run(&args[2..]),
            Some("run") => bench_run::main(&args[2..]),
            Some("shim") => bench_shim::run(&args[2..]),
            other => anyhow::bail!("unknown benchmark {other:?}; benchmarks: ingest, run, shim"),
        },
        other => {
            anyhow::bail!("unknown task {other:?}; tasks: bench ingest, bench run, bench shim")
        }
    }
}
