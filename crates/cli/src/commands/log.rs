//! `wanllmdb log`: metrics or a message, from a shell.
//!
//! Inside a wrapped run (`$WANLLMDB_METRICS` is set) metrics are appended to the run's
//! metrics file, which never waits on the network; outside, they go to the server directly.

use std::io::{BufRead, Write};

use clap::Args;
use serde_json::{Map, Value};
use wanllmdb_api_types::logs::{
    AppendLogsRequest, AppendLogsResponse, LogLevel, LogSource, NewLogLine,
};
use wanllmdb_api_types::metrics::{
    AppendHistoryRequest, AppendHistoryResponse, HistoryPoint, MetricSummary,
};

use crate::client::{Api, seg};
use crate::config::{GlobalFlags, Settings};
use crate::env;
use crate::error::{CliError, CliResult, user_err};
use crate::metrics_line::{ParsedLine, parse_line};
use crate::output::Printer;
use crate::spool::BATCH_VALUES;

/// Options of `wanllmdb log`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  wanllmdb log loss=0.25 acc=0.91                 # inside `wanllmdb run`: the current run
  wanllmdb log --step 100 val/loss=0.3
  wanllmdb log --run ab12cd34 --step 5 loss=0.2   # outside a wrapper: straight to the server
  python make_metrics.py | wanllmdb log --run ab12cd34 -     # JSON lines on stdin
  wanllmdb log --message 'checkpoint saved' --level info

Without --step: inside a wrapped run the line gets the previous line's step + 1; outside, the
step is one past the last step logged on the server for these keys.")]
pub struct LogArgs {
    /// Run id [default: the wrapped run, $WANLLMDB_RUN_ID]
    #[arg(long, env = env::RUN_ID, value_name = "ID", hide_env_values = true)]
    pub run: Option<String>,
    /// Step of these values
    #[arg(long)]
    pub step: Option<i64>,
    /// Log this text as a log line instead of metrics
    #[arg(long, short = 'm', conflicts_with_all = ["step", "values"])]
    pub message: Option<String>,
    /// Level of --message: debug, info, warning or error
    #[arg(long, default_value = "info", requires = "message")]
    pub level: String,
    /// KEY=VALUE pairs (numbers, nan, inf), or `-` to read JSON lines from stdin
    #[arg(value_name = "KEY=VALUE|-")]
    pub values: Vec<String>,
}

/// `wanllmdb log`.
pub async fn log(args: LogArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let wrapped_file = std::env::var_os(env::METRICS).filter(|p| !p.is_empty());
    let wrapped_run = std::env::var(env::RUN_ID).ok();
    let inside = wrapped_file.is_some() && (args.run.is_none() || args.run == wrapped_run);

    if let Some(msg) = &args.message {
        let level = LogLevel::parse(&args.level).ok_or_else(|| {
            user_err!("--level {:?} is not a level", args.level)
                .hint("use debug, info, warning or error")
        })?;
        if inside {
            // The wrapper records this stderr line, with its level, as part of the run's log.
            eprintln!("[{}] {msg}", level.as_str());
            return Ok(());
        }
        let run = require_run(&args.run)?;
        let api = Api::new(&Settings::resolve(flags).await?)?;
        let req = AppendLogsRequest {
            lines: vec![NewLogLine {
                level: Some(level),
                message: msg.clone(),
                timestamp: None,
                source: Some(LogSource::User),
                line_number: None,
            }],
        };
        let _: AppendLogsResponse = api
            .post(&format!("/api/v1/runs/{}/logs", seg(&run)), &req)
            .await?;
        return Ok(());
    }

    if args.values.is_empty() {
        return Err(CliError::user("nothing to log")
            .hint("pass KEY=VALUE pairs, `-` for JSON lines on stdin, or --message TEXT"));
    }
    let lines = if args.values == ["-"] {
        read_stdin_lines()?
    } else {
        if args.values.iter().any(|v| v == "-") {
            return Err(user_err!(
                "`-` (read stdin) cannot be mixed with KEY=VALUE pairs"
            ));
        }
        vec![pairs_line(&args.values, args.step)?]
    };

    if inside {
        let path = wrapped_file.unwrap_or_default();
        let mut buf = Vec::new();
        for (_, raw) in &lines {
            buf.extend_from_slice(raw.as_bytes());
            buf.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| {
                user_err!(
                    "cannot append to {}: {e}",
                    std::path::Path::new(&path).display()
                )
            })?;
        f.write_all(&buf)
            .map_err(|e| user_err!("cannot append to the metrics file: {e}"))?;
        printer.debug(format!(
            "appended {} line(s) to the run's metrics file",
            lines.len()
        ));
        return Ok(());
    }

    let run = require_run(&args.run)?;
    let api = Api::new(&Settings::resolve(flags).await?)?;
    let needs_step = lines.iter().any(|(p, _)| p.step.is_none());
    let mut next_step = if needs_step {
        next_step_for(&api, &run, &lines).await?
    } else {
        0
    };
    let mut batch: Vec<HistoryPoint> = Vec::new();
    let mut weight = 0;
    let mut sent = 0usize;
    for (parsed, _) in lines {
        weight += parsed.values.len();
        batch.push(parsed.into_point(&mut next_step));
        if weight >= BATCH_VALUES {
            sent += send(&api, &run, std::mem::take(&mut batch)).await?;
            weight = 0;
        }
    }
    sent += send(&api, &run, batch).await?;
    printer.debug(format!("sent {sent} value(s) to run {run}"));
    Ok(())
}

fn require_run(run: &Option<String>) -> CliResult<wanllmdb_api_types::RunId> {
    let run = run.clone().ok_or_else(|| {
        CliError::user("no run given").hint("pass --run ID, or call this inside `wanllmdb run`")
    })?;
    super::valid_run_id(&run)
}

/// `a=1 b=2` as a metrics line.
fn pairs_line(pairs: &[String], step: Option<i64>) -> CliResult<(ParsedLine, String)> {
    let mut obj = Map::new();
    if let Some(s) = step {
        obj.insert("step".into(), Value::from(s));
    }
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(user_err!("{p:?} is not KEY=VALUE").hint("write e.g. loss=0.25"));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(user_err!("{p:?} has an empty key").hint("write e.g. loss=0.25"));
        }
        if k == "step" || k == "_step" {
            return Err(user_err!("{p:?}: give the step with --step"));
        }
        let value = match v.trim().to_ascii_lowercase().as_str() {
            "nan" => Value::from("NaN"),
            "inf" | "+inf" | "infinity" => Value::from("Infinity"),
            "-inf" | "-infinity" => Value::from("-Infinity"),
            t => match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Value::from(f),
                _ => {
                    return Err(user_err!("{p:?}: the value {v:?} is not a number")
                        .hint("metrics are numbers, e.g. loss=0.25, acc=9.1e-1, nan, inf"));
                }
            },
        };
        obj.insert(k.to_string(), value);
    }
    let raw = Value::Object(obj).to_string();
    let parsed = parse_line(raw.as_bytes()).map_err(CliError::user)?;
    Ok((parsed, raw))
}

/// Reads and checks every stdin line before anything is logged.
fn read_stdin_lines() -> CliResult<Vec<(ParsedLine, String)>> {
    let mut out = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| user_err!("cannot read stdin: {e}"))?;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let parsed = parse_line(t.as_bytes()).map_err(|e| {
            user_err!("stdin line {}: {e}", i + 1)
                .hint("write one JSON object per line, like {\"step\": 3, \"loss\": 0.25}")
        })?;
        if let Some((k, why)) = parsed.skipped.first() {
            return Err(user_err!("stdin line {}: {k:?} {why}", i + 1));
        }
        out.push((parsed, t.to_string()));
    }
    Ok(out)
}

/// One past the last step logged for any of the keys about to be logged.
async fn next_step_for(api: &Api, run: &str, lines: &[(ParsedLine, String)]) -> CliResult<i64> {
    let summary: Vec<MetricSummary> = api
        .get(&format!("/api/v1/runs/{}/summary", seg(run)), &[])
        .await?;
    let keys: std::collections::HashSet<&str> = lines
        .iter()
        .flat_map(|(p, _)| p.values.iter().map(|(k, _)| k.as_str()))
        .collect();
    Ok(summary
        .iter()
        .filter(|s| keys.contains(s.key.as_str()))
        .filter_map(|s| s.last_step)
        .max()
        .map_or(0, |s| s + 1))
}

async fn send(api: &Api, run: &str, points: Vec<HistoryPoint>) -> CliResult<usize> {
    if points.is_empty() {
        return Ok(0);
    }
    let n = points.iter().map(|p| p.values.0.len()).sum();
    let _: AppendHistoryResponse = api
        .post(
            &format!("/api/v1/runs/{}/history", seg(run)),
            &AppendHistoryRequest { points },
        )
        .await?;
    Ok(n)
}
