//! `wanllmdb runs …`: list, inspect, compare and change runs.

use std::collections::BTreeMap;

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::Value;
use wanllmdb_api_types::metrics::{HistoryResponse, MetricSummary, MetricValue};
use wanllmdb_api_types::runs::{Run, UpdateRunRequest};

use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, confirm, kv_table, table};
use crate::output::{out, outln, when};

/// `wanllmdb runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs of a project, newest first
    #[command(
        alias = "ls",
        after_help = "\
Filters combine with `and`; comparisons: = != < <= > >= and ~ (contains).
Examples:
  wanllmdb runs list --state running
  wanllmdb runs list --filter 'config.lr < 0.01' --filter 'summary.val_acc >= 0.9' --sort -summary.val_acc
  wanllmdb runs list --columns id,name,state,config.lr,summary.loss --limit 20"
    )]
    List {
        /// Only runs in this state: running, finished, crashed, killed
        #[arg(long)]
        state: Option<String>,
        /// Only runs with this tag (repeatable: all must match)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Only runs whose name or id contains this text
        #[arg(long)]
        search: Option<String>,
        /// Filter expression, e.g. 'summary.acc >= 0.9' (repeatable)
        #[arg(long = "filter", value_name = "EXPR")]
        filters: Vec<String>,
        /// Sort key, `-` for descending: created_at, name, state, config.X, summary.X
        #[arg(long, allow_hyphen_values = true)]
        sort: Option<String>,
        /// At most this many runs
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Columns: id, name, state, user, created, finished, tags, group, job_type, host, exit_code, notes, project, config.X, summary.X
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show one run: state, config, git, host and metric summary
    Show {
        /// Run id
        run: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Compare runs side by side: config differences and summary metrics
    Compare {
        /// Run ids (two or more)
        #[arg(num_args = 2.., required = true)]
        runs: Vec<String>,
        /// Only these summary metrics
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// Also show config values that are equal in every run
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Print a run's metric history
    History {
        /// Run id
        run: String,
        /// Only these metrics (comma-separated) [default: all]
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// csv (one row per step, one column per metric) or json (the API's columnar answer)
        #[arg(long, value_enum, default_value_t = HistoryFormat::Csv, conflicts_with = "json")]
        format: HistoryFormat,
        #[command(flatten)]
        json: JsonFlag,
        /// Downsample each metric to at most this many buckets (each bucket's last value; json adds min and max)
        #[arg(long)]
        max_points: Option<usize>,
        /// From this step
        #[arg(long)]
        min_step: Option<i64>,
        /// Up to this step
        #[arg(long)]
        max_step: Option<i64>,
    },
    /// Draw runs' metrics in the terminal (Braille characters at the terminal's width)
    Plot {
        /// Run ids (one or more; their curves share each chart)
        #[arg(required = true)]
        runs: Vec<String>,
        /// Metrics to plot (comma-separated), one chart each
        #[arg(long, value_delimiter = ',', required = true)]
        keys: Vec<String>,
        /// Width in characters [default: the terminal's]
        #[arg(long)]
        width: Option<usize>,
        /// Height of each chart in lines
        #[arg(long, default_value_t = 12)]
        height: usize,
    },
    /// Add or remove tags
    Tag {
        /// Run id
        run: String,
        /// Tag to add (repeatable)
        #[arg(long, value_name = "TAG")]
        add: Vec<String>,
        /// Tag to remove (repeatable)
        #[arg(long, value_name = "TAG")]
        remove: Vec<String>,
    },
    /// Replace a run's notes
    Notes {
        /// Run id
        run: String,
        /// The new notes
        text: String,
    },
    /// Ask a running run to stop (its wrapper stops the program at the next heartbeat)
    Stop {
        /// Run id
        run: String,
    },
    /// Delete a run with its metrics and logs
    Delete {
        /// Run id
        run: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Output of `runs history`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HistoryFormat {
    /// Comma-separated values
    Csv,
    /// JSON
    Json,
}

/// Why a filter that matched nothing may not mean what was typed: a text field compared with
/// something the filter language reads as a number (`name ~ 1e-3` is the number 0.001).
fn misparsed_filter(filter: &str) -> Option<String> {
    const TEXT_FIELDS: [&str; 9] = [
        "id", "name", "state", "tag", "group", "job_type", "notes", "host", "user",
    ];
    let op = ["!=", "~", "="]
        .into_iter()
        .find(|op| filter.contains(op))?;
    let (field, value) = filter.split_once(op)?;
    let (field, value) = (field.trim(), value.trim());
    let numeric = value.parse::<f64>().is_ok() && !value.starts_with(['"', '\'']);
    (TEXT_FIELDS.contains(&field) && numeric).then(|| {
        format!(
            "{value} is read as the number {}; to match the text, quote it: {field} {op} '{value}'",
            value.parse::<f64>().unwrap_or_default()
        )
    })
}

/// A `--keys` metric the run does not have is an error that lists the ones it has (rather
/// than an empty answer).
async fn check_history_keys(
    api: &Api,
    run: &str,
    keys: &[String],
    h: &HistoryResponse,
) -> CliResult {
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !h.series.iter().any(|s| &s.key == *k))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let summary: Vec<MetricSummary> = api
        .get(&format!("/api/v1/runs/{}/summary", seg(run)), &[])
        .await?;
    let missing: Vec<&str> = missing
        .into_iter()
        .filter(|k| !summary.iter().any(|s| &s.key == *k))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        // The metrics exist, just not in the steps asked for.
        return Ok(());
    }
    let have: Vec<&str> = summary.iter().map(|s| s.key.as_str()).collect();
    let err = user_err!(
        "run {run} has no metric {}",
        missing
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Err(if have.is_empty() {
        err.hint("it has logged no metrics yet")
    } else {
        err.hint(format!("its metrics: {}", have.join(", ")))
    })
}

/// `runs compare --json`.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// The runs, in the order given.
    pub runs: Vec<Run>,
    /// Config keys (dotted) whose values differ, with one value per run.
    pub config: BTreeMap<String, Vec<Value>>,
    /// Summary metrics, one value per run (null where a run lacks it).
    pub summary: BTreeMap<String, Vec<Option<MetricValue>>>,
}

/// Runs a `runs` subcommand.
pub async fn run(cmd: RunsCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    match cmd {
        RunsCommand::List {
            state,
            tags,
            search,
            filters,
            sort,
            limit,
            columns,
            json,
        } => {
            let project = settings.require_project()?;
            let mut q = vec![("project", project.to_string())];
            if let Some(s) = state {
                q.push(("state", s));
            }
            for t in tags {
                q.push(("tag", t));
            }
            if let Some(s) = search {
                q.push(("q", s));
            }
            let hint = filters.iter().find_map(|f| misparsed_filter(f));
            for f in filters {
                q.push(("filter", f));
            }
            if let Some(s) = sort {
                q.push(("sort", s));
            }
            let runs: Vec<Run> = api.get_all("/api/v1/runs", &q, limit).await?;
            if runs.is_empty() && q.len() > 1 {
                printer.info("no runs match");
                if let Some(h) = hint {
                    printer.info(format!("hint: {h}"));
                }
            }
            let columns = if columns.is_empty() {
                ["id", "name", "state", "user", "created", "tags"]
                    .map(String::from)
                    .to_vec()
            } else {
                columns
            };
            printer.with_json(json).data(&runs, || {
                let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
                let mut t = table(&header.iter().map(String::as_str).collect::<Vec<_>>());
                for r in &runs {
                    t.add_row(columns.iter().map(|c| cell(r, c)).collect::<Vec<_>>());
                }
                t
            })
        }
        RunsCommand::Show { run, json } => {
            let r = get_run(&api, &run).await?;
            if json.json {
                return printer.print_json(&r);
            }
            let summary: Vec<MetricSummary> = api
                .get(&format!("/api/v1/runs/{}/summary", seg(&run)), &[])
                .await?;
            outln!("{}", show_table(&r))?;
            if !flatten(&r.config).is_empty() {
                outln!("\nconfig")?;
                let mut t = table(&["KEY", "VALUE"]);
                for (k, v) in flatten(&r.config) {
                    t.add_row(vec![k, value_text(&v)]);
                }
                outln!("{t}")?;
            }
            if !summary.is_empty() {
                outln!("\nmetrics")?;
                let mut t = table(&["KEY", "LAST", "MIN", "MAX", "COUNT", "LAST STEP"]);
                for s in &summary {
                    t.add_row(vec![
                        s.key.clone(),
                        num(s.last),
                        num(s.min),
                        num(s.max),
                        s.count.to_string(),
                        s.last_step.map(|v| v.to_string()).unwrap_or_default(),
                    ]);
                }
                outln!("{t}")?;
            }
            Ok(())
        }
        RunsCommand::Compare {
            runs,
            keys,
            all,
            json,
        } => {
            let mut fetched = Vec::new();
            for id in &runs {
                fetched.push(get_run(&api, id).await?);
            }
            let cmp = compare(fetched, &keys, all);
            printer.with_json(json).data(&cmp, || {
                let mut header = vec!["".to_string()];
                header.extend(cmp.runs.iter().map(|r| format!("{} ({})", r.id, r.name)));
                let mut t = table(&header.iter().map(String::as_str).collect::<Vec<_>>());
                t.add_row(
                    std::iter::once("state".to_string())
                        .chain(cmp.runs.iter().map(|r| r.state.as_str().to_string()))
                        .collect::<Vec<_>>(),
                );
                for (k, vals) in &cmp.config {
                    t.add_row(
                        std::iter::once(format!("config.{k}"))
                            .chain(vals.iter().map(value_text))
                            .collect::<Vec<_>>(),
                    );
                }
                for (k, vals) in &cmp.summary {
                    t.add_row(
                        std::iter::once(format!("summary.{k}"))
                            .chain(vals.iter().map(|v| num(*v)))
                            .collect::<Vec<_>>(),
                    );
                }
                t
            })
        }
        RunsCommand::History {
            run,
            keys,
            format,
            json,
            max_points,
            min_step,
            max_step,
        } => {
            let format = if json.json {
                HistoryFormat::Json
            } else {
                format
            };
            let mut q = Vec::new();
            if !keys.is_empty() {
                q.push(("keys", keys.join(",")));
            }
            if let Some(m) = max_points {
                q.push(("max_points", m.to_string()));
            }
            if let Some(m) = min_step {
                q.push(("min_step", m.to_string()));
            }
            if let Some(m) = max_step {
                q.push(("max_step", m.to_string()));
            }
            let h: HistoryResponse = api
                .get(
                    &format!("/api/v1/runs/{}/history", seg(&super::valid_run_id(&run)?)),
                    &q,
                )
                .await?;
            check_history_keys(&api, &run, &keys, &h).await?;
            if h.series.is_empty() {
                printer.info(format!("run {run} has no metrics yet"));
            }
            match format {
                HistoryFormat::Json => printer.print_json(&h),
                HistoryFormat::Csv => {
                    out!("{}", history_csv(&h))?;
                    Ok(())
                }
            }
        }
        RunsCommand::Plot {
            runs,
            keys,
            width,
            height,
        } => super::plot::plot(&api, runs, keys, width, height).await,
        RunsCommand::Tag { run, add, remove } => {
            if add.is_empty() && remove.is_empty() {
                return Err(
                    CliError::user("nothing to change").hint("pass --add TAG and/or --remove TAG")
                );
            }
            if let Some(t) = add.iter().find(|t| remove.contains(t)) {
                return Err(user_err!("tag {t:?} is both added and removed"));
            }
            let r = get_run(&api, &run).await?;
            let mut tags: Vec<String> =
                r.tags.into_iter().filter(|t| !remove.contains(t)).collect();
            for t in add {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            let updated: Run = api
                .patch(
                    &format!("/api/v1/runs/{}", seg(&run)),
                    &UpdateRunRequest {
                        tags: Some(tags),
                        ..Default::default()
                    },
                )
                .await?;
            printer.success(format!("Run {run} tags: {}", updated.tags.join(", ")));
            Ok(())
        }
        RunsCommand::Notes { run, text } => {
            let _: Run = api
                .patch(
                    &format!("/api/v1/runs/{}", seg(&super::valid_run_id(&run)?)),
                    &UpdateRunRequest {
                        notes: Some(text),
                        ..Default::default()
                    },
                )
                .await?;
            printer.success(format!("Notes of run {run} updated"));
            Ok(())
        }
        RunsCommand::Stop { run } => {
            let r: Run = api
                .post(
                    &format!("/api/v1/runs/{}/stop", seg(&super::valid_run_id(&run)?)),
                    &serde_json::json!({}),
                )
                .await?;
            printer.success(format!(
                "Stop requested for run {run} ({}); its wrapper stops the program at its next heartbeat",
                r.state.as_str()
            ));
            Ok(())
        }
        RunsCommand::Delete { run, yes } => {
            let id = super::valid_run_id(&run)?;
            if !yes && !confirm(&format!("Delete run {id} with its metrics and logs?"))? {
                return Err(user_err!("not deleted"));
            }
            api.delete(&format!("/api/v1/runs/{}", seg(&id))).await?;
            printer.success(format!("Deleted run {id}"));
            Ok(())
        }
    }
}

async fn get_run(api: &Api, run: &str) -> CliResult<Run> {
    let id = super::valid_run_id(run)?;
    Ok(api.get(&format!("/api/v1/runs/{}", seg(&id)), &[]).await?)
}

fn cell(r: &Run, col: &str) -> String {
    if let Some(k) = col.strip_prefix("config.") {
        return lookup(&r.config, k)
            .map(|v| value_text(&v))
            .unwrap_or_default();
    }
    if let Some(k) = col.strip_prefix("summary.") {
        return r.summary.get(k).map(|v| num(Some(*v))).unwrap_or_default();
    }
    match col {
        "id" => r.id.to_string(),
        "name" => r.name.clone(),
        "state" => r.state.as_str().to_string(),
        "user" | "created_by" => r.created_by.clone(),
        "created" | "created_at" => when(&r.created_at),
        "finished" | "finished_at" => r.finished_at.as_deref().map(when).unwrap_or_default(),
        "tags" => r.tags.join(","),
        "group" => r.group.clone().unwrap_or_default(),
        "job_type" => r.job_type.clone().unwrap_or_default(),
        "host" => r.host.clone().unwrap_or_default(),
        "exit_code" => r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        "notes" => r.notes.clone(),
        "project" => r.project.to_string(),
        _ => String::from("?"),
    }
}

fn lookup(v: &Value, dotted: &str) -> Option<Value> {
    let mut cur = v;
    for part in dotted.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur.clone())
}

/// `{"a": {"b": 1}}` → `[("a.b", 1)]`.
fn flatten(v: &Value) -> BTreeMap<String, Value> {
    fn go(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    go(&key, v, out);
                }
            }
            Value::Object(_) if prefix.is_empty() => {}
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    go("", v, &mut out);
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn num(v: Option<MetricValue>) -> String {
    match v {
        Some(MetricValue(f)) if f.is_nan() => "NaN".into(),
        Some(MetricValue(f)) if f.is_infinite() => {
            if f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }
        }
        Some(MetricValue(f)) => format!("{f}"),
        None => String::new(),
    }
}

fn show_table(r: &Run) -> comfy_table::Table {
    let git = match (&r.git.commit, &r.git.branch) {
        (Some(c), b) => format!(
            "{}{}{}",
            &c[..c.len().min(12)],
            b.as_ref().map(|b| format!(" ({b})")).unwrap_or_default(),
            if r.git.dirty == Some(true) {
                ", dirty"
            } else {
                ""
            }
        ),
        _ => "-".into(),
    };
    kv_table(&[
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("project", r.project.to_string()),
        ("state", r.state.as_str().to_string()),
        (
            "exit code",
            r.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        ("user", r.created_by.clone()),
        ("started", when(&r.started_at)),
        (
            "finished",
            r.finished_at.as_deref().map_or_else(|| "-".into(), when),
        ),
        ("tags", r.tags.join(", ")),
        (
            "tag values",
            if r.tag_values.is_empty() {
                "-".into()
            } else {
                r.tag_values
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("group", r.group.clone().unwrap_or_else(|| "-".into())),
        ("job type", r.job_type.clone().unwrap_or_else(|| "-".into())),
        ("notes", r.notes.clone()),
        ("program", r.program.clone().unwrap_or_else(|| "-".into())),
        ("git", git),
        ("host", r.host.clone().unwrap_or_else(|| "-".into())),
        ("os", r.os.clone().unwrap_or_else(|| "-".into())),
        (
            "runtime",
            r.runtime
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ])
}

fn compare(runs: Vec<Run>, keys: &[String], all: bool) -> Comparison {
    let flat: Vec<BTreeMap<String, Value>> = runs.iter().map(|r| flatten(&r.config)).collect();
    let mut config_keys: Vec<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    config_keys.sort();
    config_keys.dedup();
    let mut config = BTreeMap::new();
    for k in config_keys {
        let vals: Vec<Value> = flat
            .iter()
            .map(|m| m.get(k).cloned().unwrap_or(Value::Null))
            .collect();
        if all || vals.windows(2).any(|w| w[0] != w[1]) {
            config.insert(k.clone(), vals);
        }
    }
    let mut summary_keys: Vec<&String> = runs.iter().flat_map(|r| r.summary.keys()).collect();
    summary_keys.sort();
    summary_keys.dedup();
    let mut summary = BTreeMap::new();
    for k in summary_keys {
        if keys.is_empty() || keys.contains(k) {
            summary.insert(
                k.clone(),
                runs.iter().map(|r| r.summary.get(k).copied()).collect(),
            );
        }
    }
    Comparison {
        runs,
        config,
        summary,
    }
}

/// One row per step, one column per metric (empty where a metric has no value at a step).
fn history_csv(h: &HistoryResponse) -> String {
    let mut rows: BTreeMap<i64, Vec<Option<MetricValue>>> = BTreeMap::new();
    let n = h.series.len();
    for (i, s) in h.series.iter().enumerate() {
        for (step, v) in s.steps.iter().zip(&s.values) {
            rows.entry(*step).or_insert_with(|| vec![None; n])[i] = Some(*v);
        }
    }
    let mut out = String::from("step");
    for s in &h.series {
        out.push(',');
        out.push_str(&super::csv_field(&s.key));
    }
    out.push('\n');
    for (step, vals) in rows {
        out.push_str(&step.to_string());
        for v in vals {
            out.push(',');
            out.push_str(&num(v));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compared_with_text_fields_get_a_hint() {
        let h = misparsed_filter("name ~ 1e-3").unwrap();
        assert!(h.contains("0.001") && h.contains("name ~ '1e-3'"), "{h}");
        assert!(misparsed_filter("name ~ '1e-3'").is_none());
        assert!(misparsed_filter("config.lr < 1e-3").is_none());
        assert!(misparsed_filter("name ~ resnet").is_none());
    }
    use wanllmdb_api_types::metrics::Series;

    #[test]
    fn history_csv_aligns_steps() {
        let h = HistoryResponse {
            run: wanllmdb_api_types::RunId::parse("abcdefgh").unwrap(),
            series: vec![
                Series {
                    key: "loss".into(),
                    steps: vec![0, 1, 2],
                    values: vec![MetricValue(1.0), MetricValue(0.5), MetricValue(f64::NAN)],
                    timestamps: vec![0.0; 3],
                    total_points: 3,
                    downsampled: false,
                    min: None,
                    max: None,
                    last: None,
                },
                Series {
                    key: "val,acc".into(),
                    steps: vec![2],
                    values: vec![MetricValue(0.9)],
                    timestamps: vec![0.0],
                    total_points: 1,
                    downsampled: false,
                    min: None,
                    max: None,
                    last: None,
                },
            ],
        };
        assert_eq!(
            history_csv(&h),
            "step,loss,\"val,acc\"\n0,1,\n1,0.5,\n2,NaN,0.9\n"
        );
    }

    #[test]
    fn flatten_nests_with_dots() {
        let v = serde_json::json!({"a": {"b": 1, "c": {"d": "x"}}, "e": [1], "f": {}});
        let f = flatten(&v);
        assert_eq!(f["a.b"], 1);
        assert_eq!(f["a.c.d"], "x");
        assert_eq!(f["e"], serde_json::json!([1]));
        assert_eq!(f["f"], serde_json::json!({}));
    }
}
