//! `wanllmdb admin …`: server administration.

use clap::Subcommand;
use wanllmdb_api_types::files::GcReport;

use crate::client::Api;
use crate::config::{GlobalFlags, Settings};
use crate::error::CliResult;
use crate::output::{Printer, kv_table};

/// `wanllmdb admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Delete stored file contents nothing refers to any more (server administrators only)
    #[command(after_help = "\
Bytes uploaded or re-uploaded within the last hour are kept, so transfers in progress are
never affected; partial uploads abandoned for an hour are removed too.

Examples:
  wanllmdb admin gc --dry-run     # what would be deleted
  wanllmdb admin gc")]
    Gc {
        /// Only report what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `admin` subcommand.
pub async fn run(cmd: AdminCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    match cmd {
        AdminCommand::Gc { dry_run, json } => gc(dry_run, json, flags, printer).await,
    }
}

/// `admin gc`: asks the server to delete unreferenced blobs.
async fn gc(dry_run: bool, json: bool, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    let path = if dry_run {
        "/api/v1/admin/blobs/gc?dry_run=true"
    } else {
        "/api/v1/admin/blobs/gc"
    };
    let r: GcReport = api.post(path, &serde_json::json!({})).await?;
    printer.with_json(json).data(&r, || {
        kv_table(&[
            (
                if r.dry_run { "would delete" } else { "deleted" },
                format!("{} blob(s), {} bytes", r.blobs, r.bytes),
            ),
            (
                "partial uploads removed",
                format!("{} bytes", r.partial_bytes),
            ),
        ])
    })
}
