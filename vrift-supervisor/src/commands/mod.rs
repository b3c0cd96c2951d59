//! One module per subcommand.

mod display;
pub mod gc;
pub mod init;
pub mod manifest;
pub mod remote;
pub mod run;
pub mod status;
pub mod trace;
