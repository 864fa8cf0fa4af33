//! `wanllmdb import tensorboard DIR --project P`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wanllmdb_api_types::RunId;
use wanllmdb_api_types::metrics::{HistoryPoint, MetricValue, MetricValues};
use wanllmdb_api_types::runs::{CreateRunRequest, FinishRunRequest, Run, RunState};

use super::events::{self, Events, Scalar};
use crate::client::Api;
use crate::commands::{JsonFlag, valid_project_name};
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliResult, user_err};
use crate::output::{Printer, table};

/// Options of `wanllmdb import tensorboard`.
#[derive(Debug, Args)]
#[command(after_help = "\
Every directory under DIR that holds TensorBoard event files (events.out.tfevents.*) becomes
one run of the project, named by its path under DIR; every scalar tag becomes a metric key,
with its steps and wall times. Other summaries (histograms, images, audio, text, graphs, …)
are counted and reported as skipped. A run's id is derived from the project and its path, so
importing again adds nothing twice: it resumes the same runs, and a step already stored keeps
one value.

Examples:
  wanllmdb import tensorboard runs/ --project mnist
  wanllmdb import tensorboard logs/exp3 --project mnist --dry-run")]
pub struct TensorboardArgs {
    /// The log directory (as given to TensorBoard's --logdir)
    pub dir: PathBuf,
    /// The project to import into (created if missing) [default: from .wanllmdb.toml]
    #[arg(long, short = 'p')]
    pub project: Option<String>,
    /// Only read the files and print what would be imported
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// One directory of event files, as imported.
#[derive(Debug, Serialize)]
pub struct ImportedRun {
    /// Its path under DIR (`.` for DIR itself).
    pub path: String,
    /// The run it became.
    pub run: String,
    /// Scalar points read.
    pub points: u64,
    /// Scalar tags.
    pub keys: u64,
    /// Other summaries, by kind.
    pub skipped: BTreeMap<String, u64>,
    /// Problems with the files (a torn last record, a bad checksum).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Points sent a request.
const POINTS_PER_REQUEST: usize = 10_000;

/// `wanllmdb import tensorboard`.
pub async fn import(args: TensorboardArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let printer = printer.with_json(args.json);
    let settings = Settings::resolve(flags).await?;
    let project = match &args.project {
        Some(p) => valid_project_name(p)?,
        None => settings.require_project()?,
    };
    if !args.dir.is_dir() {
        return Err(user_err!("{} is not a directory", args.dir.display())
            .hint("give the directory TensorBoard reads (its --logdir)"));
    }
    let mut dirs = BTreeMap::new();
    find_event_files(&args.dir, &mut dirs)?;
    if dirs.is_empty() {
        return Err(user_err!(
            "no TensorBoard event files (events.out.tfevents.*) under {}",
            args.dir.display()
        ));
    }
    let api = (!args.dry_run).then(|| Api::new(&settings)).transpose()?;
    if let Some(api) = &api {
        api.ensure_project(&project).await?;
    }
    let mut report = Vec::new();
    for (dir, files) in dirs {
        let rel = dir
            .strip_prefix(&args.dir)
            .ok()
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        let mut ev = Events::default();
        let mut warnings = Vec::new();
        for f in &files {
            let bytes =
                std::fs::read(f).map_err(|e| user_err!("cannot read {}: {e}", f.display()))?;
            let (records, problem) = events::records(&bytes);
            if let Some(p) = problem {
                warnings.push(format!("{}: {p}", f.display()));
            }
            events::events(&records, &mut ev);
        }
        let name = if rel == "." {
            args.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "tensorboard".into())
        } else {
            rel.clone()
        };
        let id = run_id(project.as_str(), &rel);
        let keys = ev
            .scalars
            .iter()
            .map(|s| s.tag.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        if let Some(api) = &api {
            upload(api, &project, &id, &name, &ev.scalars).await?;
        }
        for w in &warnings {
            printer.warn(w);
        }
        report.push(ImportedRun {
            path: rel,
            run: id.to_string(),
            points: ev.scalars.len() as u64,
            keys,
            skipped: ev.skipped,
            warnings,
        });
    }
    printer.data(&report, || {
        let mut t = table(&["PATH", "RUN", "METRICS", "POINTS", "SKIPPED"]);
        for r in &report {
            let skipped = if r.skipped.is_empty() {
                "-".to_string()
            } else {
                r.skipped
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            t.add_row(vec![
                r.path.clone(),
                r.run.clone(),
                r.keys.to_string(),
                r.points.to_string(),
                skipped,
            ]);
        }
        t
    })?;
    if !args.dry_run && !printer.json {
        let points: u64 = report.iter().map(|r| r.points).sum();
        printer.success(format!(
            "imported {} run(s), {points} point(s) into project {project}",
            report.len()
        ));
    }
    Ok(())
}

/// The directories under `dir` (itself included) holding event files, each with its files
/// in name order (a run restarted writes a second file, named by the time it began).
fn find_event_files(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<PathBuf>>) -> CliResult {
    let entries =
        std::fs::read_dir(dir).map_err(|e| user_err!("cannot read {}: {e}", dir.display()))?;
    let mut subdirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| user_err!("cannot read {}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| user_err!("cannot read {}: {e}", path.display()))?;
        if kind.is_dir() {
            subdirs.push(path);
        } else if kind.is_file() && entry.file_name().to_string_lossy().contains("tfevents") {
            out.entry(dir.to_path_buf()).or_default().push(path);
        }
    }
    if let Some(files) = out.get_mut(dir) {
        files.sort();
    }
    subdirs.sort();
    for d in subdirs {
        find_event_files(&d, out)?;
    }
    Ok(())
}

/// The run a directory becomes: the same project and path always give the same id.
fn run_id(project: &str, path: &str) -> RunId {
    let digest = Sha256::digest(format!("tensorboard\0{project}\0{path}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    RunId::from_number(u64::from_le_bytes(first))
}

/// Creates (or resumes) the run, sends its points in wall-time order (the latest value of a
/// step wins, as TensorBoard shows it), and ends it at its last wall time.
async fn upload(
    api: &Api,
    project: &wanllmdb_api_types::ProjectName,
    id: &RunId,
    name: &str,
    scalars: &[Scalar],
) -> CliResult {
    let first = scalars
        .iter()
        .map(|s| s.wall_time)
        .fold(f64::INFINITY, f64::min);
    let last = scalars.iter().map(|s| s.wall_time).fold(0.0, f64::max);
    let req = CreateRunRequest {
        id: Some(id.clone()),
        name: Some(name.to_string()),
        tags: vec!["tensorboard".into()],
        started_at: first.is_finite().then_some(first),
        ..CreateRunRequest::new(project.clone())
    };
    let _: Run = api.post("/api/v1/runs", &req).await?;
    let mut sorted: Vec<&Scalar> = scalars.iter().collect();
    sorted.sort_by(|a, b| a.wall_time.total_cmp(&b.wall_time));
    for part in sorted.chunks(POINTS_PER_REQUEST) {
        let points: Vec<HistoryPoint> = part
            .iter()
            .map(|s| HistoryPoint {
                step: s.step,
                timestamp: Some(s.wall_time),
                values: MetricValues(vec![(s.tag.clone(), MetricValue(s.value))]),
            })
            .collect();
        let _: serde_json::Value = api
            .post(
                &format!("/api/v1/runs/{id}/history"),
                &serde_json::json!({ "points": points }),
            )
            .await?;
    }
    let finish = FinishRunRequest {
        state: RunState::Finished,
        exit_code: None,
        reason: None,
        finished_at: (last > 0.0).then_some(last),
    };
    let _: Run = api
        .post(&format!("/api/v1/runs/{id}/finish"), &finish)
        .await?;
    Ok(())
}
