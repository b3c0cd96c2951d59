//! One module per subcommand.

pub mod gc;
pub mod init;
pub mod manifest;
pub mod run;
pub mod status;
