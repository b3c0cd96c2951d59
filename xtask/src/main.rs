//! `cargo xtask <task>`: developer tasks.

mod bench_run;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("run") => bench_run::main(&args[2..]),
            other => anyhow::bail!("unknown bench task {other:?}; bench tasks: run"),
        },
        other => anyhow::bail!("unknown task {other:?}; tasks: bench run"),
    }
}
