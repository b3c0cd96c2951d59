//! One module per subcommand.

pub mod completions;
mod display;
pub mod doctor;
pub mod gc;
pub mod ingest;
pub mod init;
pub mod manifest;
pub mod promote;
pub mod remote;
pub mod run;
pub mod runs;
pub mod session;
pub mod shim_run;
pub mod status;
pub mod store;
pub mod style;
pub mod trace;
pub mod watch;
