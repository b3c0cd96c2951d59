//! The `vrift` command.

use clap::Parser;

#[derive(Parser)]
#[command(name = "vrift", version, about = "Run programs inside a content-addressed view of a tree")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
