//! `vrift completions SHELL` (clap_complete) and `vrift man DIR` (clap_mangen): generated
//! from the command line's own definition, so they never fall behind it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

#[derive(clap::Args)]
#[command(after_help = "Examples:
  vrift completions bash > ~/.local/share/bash-completion/completions/vrift
  vrift completions zsh > ~/.zfunc/_vrift
  vrift completions fish > ~/.config/fish/completions/vrift.fish")]
pub struct Args {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:
  vrift man /usr/local/share/man/man1   # vrift.1, vrift-run.1, ...
  man -l vrift-run.1")]
pub struct ManArgs {
    /// Directory to write the pages into (made if missing).
    dir: PathBuf,
}

pub fn completions(args: Args, mut cmd: clap::Command) -> Result<ExitCode> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "vrift", &mut script);
    match std::io::stdout().write_all(&script) {
        // `vrift completions bash | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn man(args: ManArgs, cmd: clap::Command, quiet: bool) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    clap_mangen::generate_to(cmd, &args.dir)
        .with_context(|| format!("writing man pages into {}", args.dir.display()))?;
    if !quiet {
        println!("man pages written to {}", args.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
