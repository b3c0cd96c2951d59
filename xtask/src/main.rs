//! `cargo xtask <task>`: developer tasks.
//!
//! - `bench ingest [--runs N] [--files N] [--vrift PATH] [--keep DIR] [--no-doc]`: first
//!   ingest, unchanged re-ingest, `cp -r`, `cp -al` and a 100,000-entry manifest load, side by
//!   side; medians go to docs/BENCHMARKS.md.
//! - `bench run [--runs N] [--quick] [--only syscalls,tree,build]`: the supervisor's
//!   workloads under native, `vrift run`, proot and bwrap, side by side.
//! - `bench remote [--runs N] [--files N] [--large N] [--large-mib N] [--jobs N]`: push,
//!   unchanged push, pull and `vrift run --manifest HASH` against a local Garage, side by side
//!   with `rclone copy`.
//! - `bench isolate [--runs N]`: start-up of `vrift run --isolate` against bwrap.
//! - `bench sessions [--files N] [--sessions N] [--runs N]`: create and enter sessions over a
//!   git repository and read every file in each, beside `git worktree add`.

mod bench_ingest;
mod bench_isolate;
mod bench_remote;
mod bench_sessions;
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
            Some("remote") => bench_remote::run(&args[2..]),
            Some("isolate") => bench_isolate::run(&args[2..]),
            Some("sessions") => bench_sessions::run(&args[2..]),
            other => {
                anyhow::bail!(
                    "unknown benchmark {other:?}; benchmarks: ingest, run, shim, remote, \
                     isolate, sessions"
                )
            }
        },
        other => {
            anyhow::bail!(
                "unknown task {other:?}; tasks: bench ingest, bench run, bench shim, bench remote, \
                 bench isolate, bench sessions"
            )
        }
    }
}
