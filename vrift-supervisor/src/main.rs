//! The `vrift` command: parses the command line and hands each subcommand to its module.
//!
//! Off Linux (macOS) the Linux-only modules are left out (`#[cfg(target_os = "linux")]`:
//! the supervisor and overlay projections, namespaces and mounts, `vrift trace`) and what
//! needs them is refused by name; the shared modules keep parts that only those use (the
//! RFC-0047 view state, stacked bases, session making), hence no dead-code lint there.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod commands;
#[cfg(target_os = "linux")]
mod mounts;
mod progress;
mod projection;
#[path = "projection/shim/mod.rs"]
mod projection_shim;
mod run;
mod rundir;
mod session;
mod sys;
#[cfg(target_os = "linux")]
mod trace;
mod view;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vrift",
    version,
    about = "Run programs inside a content-addressed view of a tree",
    after_help = "Examples:
  vrift run -- make                          run in a view of this directory
  vrift run --isolate -- python3 script.py   isolated: its own root, /tmp, /proc, no network
  vrift ingest rootfs -o busybox.manifest    a manifest of any directory
  vrift doctor                               what this system lets each projection do

Exit status: the program's own for `vrift run` and `vrift trace` (128+N when signal N
killed it; 127 when it is not found, 126 when it cannot be run); 0 on success and 1 on
an error for the other commands; 2 for a bad command line."
)]
struct Cli {
    /// Say more about what vrift does (which projection runs and why, layers, timings);
    /// VRIFT_LOG=debug says everything.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Print only errors and what was asked for (no summaries, notes or progress).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest the current project into the store and write vrift.manifest.
    #[command(after_help = "Examples:
  vrift init
  vrift init ../other --exclude 'data/*.bin'
  vrift init --json")]
    Init(commands::init::Args),
    /// Store any directory and write its manifest to FILE, without writing into it.
    Ingest(commands::ingest::Args),
    /// Show what the store holds and how much deduplication saves.
    #[command(after_help = "Examples:
  vrift status
  vrift status --json")]
    Status(commands::status::Args),
    /// List (and with --delete, remove) blobs no known manifest references.
    #[command(after_help = "Examples:
  vrift gc                       # list what could go
  vrift gc --delete
  vrift gc --forget old.manifest")]
    Gc(commands::gc::Args),
    /// Run a program inside the view of a manifest (of the current directory by default).
    Run(commands::run::Args),
    /// Run a program as `vrift run` does and report its syscalls: view hits, misses,
    /// pass-through and denials, and what each cost (eBPF).
    #[command(after_help = "Examples:
  vrift trace -- make
  vrift trace --json report.json --chrome-trace timeline.json -- python3 main.py")]
    Trace(commands::trace::Args),
    /// Inspect, compare and verify manifests.
    #[command(subcommand)]
    #[command(after_help = "Examples:
  vrift manifest show vrift.manifest
  vrift manifest diff old.manifest new.manifest
  vrift manifest verify vrift.manifest")]
    Manifest(commands::manifest::Command),
    /// Run a program under the interposition shim (no mounts, namespaces or seccomp) over a
    /// manifest file, saving the run's changes into it.
    #[command(hide = true)]
    ShimRun(commands::shim_run::Args),
    /// List runs whose result is not applied yet (kept aside, or interrupted); apply or
    /// discard one.
    #[command(after_help = "Examples:
  vrift runs
  vrift runs apply ID
  vrift runs discard ID")]
    Runs(commands::runs::Args),
    /// Check the store itself: re-hash its blobs, move damaged ones aside, repair them.
    #[command(subcommand)]
    #[command(after_help = "Examples:
  vrift store verify
  vrift store verify --repair")]
    Store(commands::store::Command),
    /// Add, list and remove remote stores (S3-compatible object stores shared by a team or CI).
    #[command(subcommand)]
    #[command(after_help = "Examples:
  vrift remote add team s3://bucket/prefix --endpoint URL
  vrift remote list")]
    Remote(commands::remote::Command),
    /// Upload manifests and the blobs they name that the remote lacks.
    #[command(after_help = "Examples:
  vrift push --ref main")]
    Push(commands::remote::PushArgs),
    /// Fetch a manifest (by hash or ref) and the blobs the store lacks, each verified.
    #[command(after_help = "Examples:
  vrift pull main
  vrift pull HASH")]
    Pull(commands::remote::PullArgs),
    /// Check what each projection needs from this system: what works, what is missing, and
    /// what to do about it.
    Doctor(commands::doctor::Args),
    /// Keep the project's manifest current between runs (a background watcher), so that a
    /// run of an unchanged project does not walk it first.
    #[command(after_help = "Examples:
  vrift watch              start watching the project of the current directory
  vrift watch --status
  vrift watch --stop")]
    Watch(commands::watch::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::completions::Args),
    /// Write man pages for vrift and each of its commands into a directory.
    Man(commands::completions::ManArgs),
    /// List, diff and discard the sessions of the current git repository (`vrift run
    /// --session NAME` makes and enters them).
    #[command(subcommand)]
    Session(commands::session::Command),
    /// Turn a session into a commit at refs/vibes/NAME.
    Promote(commands::promote::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    let filter = match std::env::var("VRIFT_LOG") {
        Ok(f) => tracing_subscriber::EnvFilter::new(f),
        Err(_) if cli.verbose => tracing_subscriber::EnvFilter::new("info"),
        Err(_) if cli.quiet => tracing_subscriber::EnvFilter::new("error"),
        Err(_) => tracing_subscriber::EnvFilter::new("warn"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Init(args) => commands::init::run(args),
        Command::Ingest(args) => commands::ingest::run(args, cli.quiet),
        Command::Status(args) => commands::status::run(args),
        Command::Gc(args) => commands::gc::run(args),
        Command::Manifest(cmd) => commands::manifest::run(cmd),
        Command::Store(cmd) => commands::store::run(cmd),
        Command::Runs(args) => commands::runs::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Trace(args) => commands::trace::run(args),
        Command::ShimRun(args) => commands::shim_run::run(args),
        Command::Remote(cmd) => commands::remote::run(cmd),
        Command::Push(args) => commands::remote::push(args),
        Command::Pull(args) => commands::remote::pull(args),
        Command::Doctor(args) => commands::doctor::run(args, cli.quiet),
        Command::Watch(args) => commands::watch::run(args),
        Command::Completions(args) => commands::completions::completions(args, Cli::command()),
        Command::Man(args) => commands::completions::man(args, Cli::command(), cli.quiet),
        Command::Session(cmd) => commands::session::run(cmd),
        Command::Promote(args) => commands::promote::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vrift: {}", describe_error(&err));
            // A program that could not be started exits as a shell's would.
            match err.downcast_ref::<run::launch::ExecFailed>() {
                Some(e) => ExitCode::from(e.exit_code()),
                None => ExitCode::from(1),
            }
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
