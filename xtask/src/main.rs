//! `cargo xtask <task>`: developer tasks.
//!
//! - `bench ingest [--runs N] [--files N] [--vrift PATH] [--keep DIR] [--no-doc]`: first
//!   ingest, unchanged re-ingest, `cp -r`, `cp -al` and a 100,000-entry manifest load, side by
//!   side; medians go to docs/BENCHMARKS.md.

mod bench_ingest;
mod gen;
mod timing;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("ingest") => bench_ingest::run(&args[2..]),
            other => anyhow::bail!("unknown benchmark {other:?}; benchmarks: ingest"),
        },
        other => anyhow::bail!("unknown task {other:?}; tasks: bench"),
    }
}
