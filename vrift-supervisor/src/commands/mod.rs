//! One module per subcommand.

mod display;
pub mod gc;
pub mod init;
pub mod manifest;
pub mod run;
pub mod runs;
pub mod status;
pub mod store;
pub mod trace;
