//! `wanllmdb sync`: upload spooled runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use indicatif::HumanBytes;
use serde::Serialize;
use tokio::sync::Semaphore;
use wanllmdb_api_types::runs::{FinishRunRequest, RunState};

use crate::client::Api;
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, table};
use crate::spool::{Drain, Shipper, Spool, spool_root};

/// Options of `wanllmdb sync`.
#[derive(Debug, Args)]
#[command(after_help = "\
Uploads what `wanllmdb run` left in its spool: runs started with --offline, and whatever an
unreachable server kept the wrapper from sending. Sending twice stores everything once, so
it is always safe to run again.

Examples:
  wanllmdb sync                         # every run under ./.wanllmdb
  wanllmdb sync .wanllmdb/runs/ab12cd34
  wanllmdb sync --dry-run --json")]
pub struct SyncArgs {
    /// Run spools (.wanllmdb/runs/<id>) or directories holding them [default: $WANLLMDB_DIR, else the .wanllmdb next to .wanllmdb.toml, else ./.wanllmdb]
    pub paths: Vec<PathBuf>,
    /// Only list what would be uploaded
    #[arg(long)]
    pub dry_run: bool,
    /// Runs uploaded at the same time
    #[arg(long, short = 'j', default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// One spool, as `--dry-run` and the summary report it.
#[derive(Debug, Serialize)]
pub struct SpoolReport {
    /// Run id.
    pub run: String,
    /// Project.
    pub project: String,
    /// Server the run is uploaded to.
    pub host: String,
    /// The spool directory.
    pub path: PathBuf,
    /// How the program ended, if it has.
    pub state: Option<RunState>,
    /// Bytes not yet uploaded.
    pub pending_bytes: u64,
    /// pending, synced, in-use (a wrapper is still running) or failed.
    pub status: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `wanllmdb sync`.
pub async fn sync(args: SyncArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let paths = if args.paths.is_empty() {
        vec![spool_root(&settings)]
    } else {
        args.paths.clone()
    };
    let mut spools = Vec::new();
    for p in &paths {
        find_spools(p, &mut spools, args.paths.is_empty())?;
    }
    let mut reports = Vec::new();
    let mut todo = Vec::new();
    for spool in spools {
        let meta = spool.meta()?;
        let state = spool.state()?;
        let host = if flags.host.is_some() {
            settings.host.clone()
        } else {
            meta.host.clone()
        };
        let status = if state.finished {
            "synced"
        } else if spool.live_wrapper().is_some() {
            "in-use"
        } else {
            "pending"
        };
        let report = SpoolReport {
            run: meta.run.id.as_deref().unwrap_or_default().to_string(),
            project: meta.run.project.to_string(),
            host,
            path: spool.dir.clone(),
            state: spool.exit()?.map(|e| e.state),
            pending_bytes: spool.pending_bytes(&state),
            status: status.to_string(),
            error: None,
        };
        if status == "pending" {
            todo.push((reports.len(), spool));
        }
        reports.push(report);
    }
    if args.dry_run {
        return print_reports(&reports, printer.with_json(args.json));
    }

    let mut apis: HashMap<String, Api> = HashMap::new();
    for (i, _) in &todo {
        let host = reports[*i].host.clone();
        if let std::collections::hash_map::Entry::Vacant(slot) = apis.entry(host.clone()) {
            let s = Settings::resolve(&GlobalFlags {
                host: Some(host),
                ..flags.clone()
            })
            .await?;
            slot.insert(Api::new(&s)?);
        }
    }
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    if printer.progress() {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} syncing runs {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let limit = Arc::new(Semaphore::new(args.jobs as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, spool) in todo {
        let api = apis[&reports[i].host].clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, upload(spool, api, printer).await)
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, result) =
            done.map_err(|e| CliError::unexpected(format!("sync task failed: {e}")))?;
        match result {
            Ok(()) => {
                reports[i].status = "synced".into();
                reports[i].pending_bytes = 0;
            }
            Err(e) => {
                failed += 1;
                reports[i].status = "failed".into();
                reports[i].error = Some(e.message.clone());
                bar.println(format!("run {}: {}", reports[i].run, e.message));
            }
        }
        bar.set_message(reports[i].run.clone());
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.json.json {
        printer.print_json(&reports)?;
    }
    let synced = reports.iter().filter(|r| r.status == "synced").count();
    let in_use = reports.iter().filter(|r| r.status == "in-use").count();
    printer.info(format!(
        "{synced} run(s) synced, {failed} failed{}",
        if in_use > 0 {
            format!(", {in_use} still being written by a running wrapper (they ship themselves)")
        } else {
            String::new()
        }
    ));
    if failed > 0 {
        return Err(user_err!("{failed} run(s) could not be uploaded")
            .hint("fix the cause above and run `wanllmdb sync` again; nothing is sent twice"));
    }
    Ok(())
}

async fn upload(spool: Spool, api: Api, printer: Printer) -> CliResult {
    let exit = spool.exit()?;
    let quiet = Printer {
        quiet: true,
        ..printer
    };
    let mut shipper = Shipper::new(spool.clone(), api.clone(), quiet)?;
    shipper.ship(Drain::Final).await?;
    let run = shipper.run_id().to_string();
    spool.upload_saved_files(&api, &run, &quiet).await?;
    // No exit record and no wrapper: the wrapper itself died, so the outcome is unknown.
    let exit = exit.unwrap_or(FinishRunRequest {
        state: RunState::Crashed,
        exit_code: None,
        reason: None,
        finished_at: None,
    });
    shipper.finish(&exit).await?;
    Ok(())
}

fn find_spools(path: &Path, out: &mut Vec<Spool>, defaulted: bool) -> CliResult {
    if !path.exists() {
        if defaulted {
            return Ok(());
        }
        return Err(user_err!("{} does not exist", path.display())
            .hint("pass a run spool such as .wanllmdb/runs/<id>, or a .wanllmdb directory"));
    }
    if path.join("run.json").is_file() {
        out.push(Spool::open(path)?);
        return Ok(());
    }
    let dir = if path.join("runs").is_dir() {
        path.join("runs")
    } else {
        path.to_path_buf()
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| user_err!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("run.json").is_file())
        .collect();
    found.sort();
    if found.is_empty() && !defaulted {
        return Err(user_err!("{} holds no run spools", path.display())
            .hint("spools live in .wanllmdb/runs/<id>/"));
    }
    for p in found {
        out.push(Spool::open(&p)?);
    }
    Ok(())
}

fn print_reports(reports: &[SpoolReport], printer: Printer) -> CliResult {
    printer.data(reports, || {
        let mut t = table(&["RUN", "PROJECT", "ENDED AS", "PENDING", "STATUS", "PATH"]);
        for r in reports {
            t.add_row(vec![
                r.run.clone(),
                r.project.clone(),
                r.state
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                HumanBytes(r.pending_bytes).to_string(),
                r.status.clone(),
                r.path.display().to_string(),
            ]);
        }
        t
    })
}
