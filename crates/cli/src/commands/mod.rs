//! One module per command group.

pub mod auth;
pub mod completions;
pub mod init;
pub mod log;
pub mod logs;
pub mod project;
pub mod runs;
pub mod server;
pub mod sync;

use clap::Args;

/// `--json` for commands whose only option it is.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON (the API's own objects) instead of a table
    #[arg(long)]
    pub json: bool,
}
