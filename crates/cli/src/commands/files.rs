//! `wanllmdb files …`: files attached to a run.

use std::path::PathBuf;

use clap::Subcommand;
use wanllmdb_api_types::files::RunFile;

use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliResult, user_err};
use crate::output::when;
use crate::output::{Printer, table};
use crate::transfer;

/// `wanllmdb files` subcommands.
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Attach files or directories to a run (only bytes the server lacks are sent)
    #[command(after_help = "\
Examples:
  wanllmdb files put ab12cd34 config.yaml                  # stored as config.yaml
  wanllmdb files put ab12cd34 checkpoints/                 # checkpoints/<every file inside>
  wanllmdb files put ab12cd34 out/model.pt --prefix final  # stored as final/model.pt")]
    Put {
        /// Run id
        run: String,
        /// Files and directories
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Store under this directory on the server
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Download a run's files (all, or the paths given), checking every SHA-256
    #[command(after_help = "\
Files already present in the target directory with the same content are not downloaded again.

Examples:
  wanllmdb files get ab12cd34                     # everything, into the current directory
  wanllmdb files get ab12cd34 model.pt --dir out")]
    Get {
        /// Run id
        run: String,
        /// Paths on the server [default: all files]
        paths: Vec<String>,
        /// Directory to write into
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// List a run's files
    #[command(alias = "ls")]
    List {
        /// Run id
        run: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Detach files from a run
    #[command(alias = "rm")]
    Delete {
        /// Run id
        run: String,
        /// Paths on the server
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

/// Runs a `files` subcommand.
pub async fn run(cmd: FilesCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    match cmd {
        FilesCommand::Put {
            run,
            paths,
            prefix,
            json,
        } => {
            let run = super::valid_run_id(&run)?;
            let files = transfer::collect(&paths, prefix.as_deref())?;
            if files.is_empty() {
                return Err(user_err!("no files found in the paths given"));
            }
            let report = transfer::put_files(&api, &run, files, &printer).await?;
            if json.json {
                printer.print_json(&report)?;
            }
            printer.success(format!(
                "Attached {} file(s) to run {run}; {} needed their bytes sent ({} bytes)",
                report.files, report.uploaded, report.bytes_uploaded
            ));
            Ok(())
        }
        FilesCommand::Get { run, paths, dir } => {
            let run = super::valid_run_id(&run)?;
            let all: Vec<RunFile> = api
                .get(
                    &format!("/api/v1/runs/{}/files", seg(&run)),
                    &[("download_urls", "true".to_string())],
                )
                .await?;
            let wanted: Vec<RunFile> = if paths.is_empty() {
                all
            } else {
                let mut out = Vec::new();
                for p in &paths {
                    let norm = wanllmdb_api_types::files::normalize_path(p)
                        .map_err(|e| user_err!("{e}"))?;
                    match all.iter().find(|f| f.path == norm) {
                        Some(f) => out.push(f.clone()),
                        None => {
                            return Err(user_err!("run {run} has no file {norm}")
                                .hint(format!("see `wanllmdb files list {run}`")));
                        }
                    }
                }
                out
            };
            let n = wanted.len();
            let fetched = transfer::get_files(&api, &run, wanted, &dir, &printer).await?;
            printer.success(format!(
                "{n} file(s) in {} ({fetched} downloaded, {} already there)",
                dir.display(),
                n - fetched
            ));
            Ok(())
        }
        FilesCommand::List { run, json } => {
            let run = super::valid_run_id(&run)?;
            let files = list(&api, &run).await?;
            printer.with_json(json).data(&files, || {
                let mut t = table(&["PATH", "SIZE", "SHA256", "ADDED", "BY"]);
                for f in &files {
                    t.add_row(vec![
                        f.path.clone(),
                        f.size.to_string(),
                        f.sha256[..12].to_string(),
                        when(&f.created_at),
                        f.created_by.clone().unwrap_or_default(),
                    ]);
                }
                t
            })
        }
        FilesCommand::Delete { run, paths } => {
            let run = super::valid_run_id(&run)?;
            for p in paths {
                api.delete(&format!("/api/v1/runs/{}/file?path={}", seg(&run), seg(&p)))
                    .await?;
                printer.success(format!("Removed {p} from run {run}"));
            }
            Ok(())
        }
    }
}

async fn list(api: &Api, run: &str) -> CliResult<Vec<RunFile>> {
    Ok(api
        .get(&format!("/api/v1/runs/{}/files", seg(run)), &[])
        .await?)
}
