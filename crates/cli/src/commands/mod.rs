//! One module per command group.

pub mod admin;
pub mod artifact;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod completions;
pub mod files;
pub mod import;
pub mod init;
pub mod lineage;
pub mod log;
pub mod logs;
pub mod model;
pub mod open;
pub mod plot;
pub mod project;
pub mod runs;
pub mod server;
pub mod status;
pub mod sweep;
pub mod sync;

use clap::Args;

/// `--json`, defined once and flattened into every command that prints data.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table: the API's own objects, stable and documented
    #[arg(long)]
    pub json: bool,
}

impl From<JsonFlag> for bool {
    fn from(f: JsonFlag) -> bool {
        f.json
    }
}

pub use wanllmdb_api_types::csv_field;
use wanllmdb_api_types::{ProjectName, RunId};

/// The project name as given, or an error that says what a project name looks like.
pub fn valid_project_name(name: &str) -> crate::error::CliResult<ProjectName> {
    ProjectName::parse(name).map_err(|_| {
        crate::error::user_err!(
            "project name {name:?} is not valid: use 1 to 128 of A-Z a-z 0-9 . _ -"
        )
    })
}

/// The run id as given, or an error that says what a run id looks like.
pub fn valid_run_id(run: &str) -> crate::error::CliResult<RunId> {
    RunId::parse(run).map_err(|_| {
        crate::error::user_err!("run id {run:?} is not valid")
            .hint("a run id is 8 characters of a-z and 0-9 (see `wanllmdb runs list`)")
    })
}
