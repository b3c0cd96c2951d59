//! One module per subcommand.

mod display;
pub mod gc;
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
pub mod trace;
