//! The `vrift` command: parses the command line and hands each subcommand to its module.

mod commands;
mod farm;
mod filter;
mod launch;
mod mountplan;
mod project;
mod recovery;
mod session;
mod supervisor;
mod sys;
mod trace;
mod writeback;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vrift",
    version,
    about = "Run programs inside a content-addressed view of a tree"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest the current project into the store and write vrift.manifest.
    Init(commands::init::Args),
    /// Show what the store holds and how much deduplication saves.
    Status(commands::status::Args),
    /// List (and with --delete, remove) blobs no known manifest references.
    Gc(commands::gc::Args),
    /// Run a program inside the view of a manifest (of the current directory by default).
    Run(commands::run::Args),
    /// Run a program as `vrift run` does and report its syscalls: view hits, misses,
    /// pass-through and denials, and what each cost (eBPF).
    Trace(commands::trace::Args),
    /// Inspect, compare and verify manifests.
    #[command(subcommand)]
    Manifest(commands::manifest::Command),
    /// Add, list and remove remote stores (S3-compatible object stores shared by a team or CI).
    #[command(subcommand)]
    Remote(commands::remote::Command),
    /// Upload manifests and the blobs they name that the remote lacks.
    Push(commands::remote::PushArgs),
    /// Fetch a manifest (by hash or ref) and the blobs the store lacks, each verified.
    Pull(commands::remote::PullArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("VRIFT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(args) => commands::init::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Gc(args) => commands::gc::run(args),
        Command::Manifest(cmd) => commands::manifest::run(cmd),
        Command::Run(args) => commands::run::run(args),
        Command::Trace(args) => commands::trace::run(args),
        Command::Remote(cmd) => commands::remote::run(cmd),
        Command::Push(args) => commands::remote::push(args),
        Command::Pull(args) => commands::remote::pull(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vrift: {}", describe_error(&err));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text the message before it
/// already contains (library errors such as "PATH: No such file" embed their source).
pub(crate) fn describe_error(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    let mut prev = msg.clone();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !prev.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        prev = text;
    }
    msg
}
