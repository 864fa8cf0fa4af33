//! `wanllmdb logs RUN`: print or follow a run's output.

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use wanllmdb_api_types::logs::LogLine;
use wanllmdb_api_types::runs::{Run, RunState};

use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::Printer;
use crate::output::{out, outln};

/// Options of `wanllmdb logs`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  wanllmdb logs ab12cd34
  wanllmdb logs ab12cd34 --follow                  # until the run ends (Ctrl-C to stop)
  wanllmdb logs ab12cd34 --level warning --source stderr --grep nan
  wanllmdb logs ab12cd34 --format csv > logs.csv")]
pub struct LogsArgs {
    /// Run id
    pub run: String,
    /// Keep printing new lines until the run ends
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Minimum level: debug, info, warning, error
    #[arg(long)]
    pub level: Option<String>,
    /// Only lines from stdout, stderr, sdk or user
    #[arg(long)]
    pub source: Option<String>,
    /// Only lines containing this text (case-insensitive)
    #[arg(long)]
    pub grep: Option<String>,
    /// txt (time, level, source, message), json or csv
    #[arg(long, value_enum, default_value_t = LogFormat::Txt, conflicts_with = "json")]
    pub format: LogFormat,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Output format of `wanllmdb logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per log line: time, level, source, message
    Txt,
    /// JSON (an array; one object per line with --follow)
    Json,
    /// Comma-separated values
    Csv,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Txt => "txt",
            LogFormat::Json => "json",
            LogFormat::Csv => "csv",
        }
    }
}

/// `wanllmdb logs`.
pub async fn logs(mut args: LogsArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    super::valid_run_id(&args.run)?;
    if args.json.json {
        args.format = LogFormat::Json;
    }
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    let mut filter: Vec<(&str, String)> = Vec::new();
    if let Some(l) = &args.level {
        filter.push(("level", l.clone()));
    }
    if let Some(s) = &args.source {
        filter.push(("source", s.clone()));
    }
    if let Some(g) = &args.grep {
        filter.push(("q", g.clone()));
    }
    let path = format!("/api/v1/runs/{}/logs", seg(&args.run));
    let run: Option<Run> = if args.follow {
        // Check the run exists (and the filter is valid) before opening the stream.
        Some(
            api.get(&format!("/api/v1/runs/{}", seg(&args.run)), &[])
                .await?,
        )
    } else {
        None
    };
    let run = match run {
        // A run that has ended has nothing more to follow: print what it has and stop.
        Some(r) if r.state != RunState::Running => {
            printer.info(format!(
                "run {} {}: its lines so far",
                r.id,
                r.state.as_str()
            ));
            None
        }
        other => other,
    };
    let Some(run) = run else {
        let mut q = filter.clone();
        q.push(("format", args.format.as_str().to_string()));
        let text = api.get_text(&path, &q).await?;
        return out!("{text}");
    };
    if args.format == LogFormat::Csv {
        outln!("seq,timestamp,level,source,line_number,message")?;
    }
    let mut q = filter;
    q.push(("limit", "1".into()));
    let _: serde_json::Value = api.get(&path, &q).await?;
    q.pop();
    follow(&api, &args, &run, q, printer).await
}

async fn follow(
    api: &Api,
    args: &LogsArgs,
    run: &Run,
    query: Vec<(&str, String)>,
    printer: Printer,
) -> CliResult {
    let qs = serde_urlencoded::to_string(&query).unwrap_or_default();
    let base = api.base();
    let Some(ws_url) = stream_url(base, &run.id, &qs) else {
        return poll(api, args, query, printer).await;
    };
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .map_err(|e| CliError::unexpected(format!("bad stream URL: {e}")))?;
    if let Some(k) = api.key() {
        let v = format!("Bearer {k}")
            .parse()
            .map_err(|_| user_err!("the API key contains characters that cannot be sent"))?;
        req.headers_mut().insert("authorization", v);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| user_err!("cannot open the log stream at {base}: {e}"))?;
    let mut check = tokio::time::interval(std::time::Duration::from_secs(2));
    check.tick().await;
    let mut ended_at: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    match serde_json::from_str::<LogLine>(t.as_str()) {
                        Ok(line) => print_line(&line, args.format)?,
                        Err(e) => printer.debug(format!("unreadable stream message: {e}")),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(user_err!("the log stream broke: {e}")),
                None => return Ok(()),
            },
            _ = check.tick() => {
                if let Some(t) = ended_at {
                    if t.elapsed() >= std::time::Duration::from_secs(2) {
                        return Ok(());
                    }
                    continue;
                }
                let r: Result<Run, _> = api.get(&format!("/api/v1/runs/{}", seg(&run.id)), &[]).await;
                if let Ok(r) = r && r.state != RunState::Running {
                    printer.info(format!("run {} {}", r.id, r.state.as_str()));
                    // Let the last lines arrive, then stop.
                    ended_at = Some(std::time::Instant::now());
                }
            }
        }
    }
}

/// The WebSocket URL of a run's log stream on the server at `base`: `ws://` for http,
/// `wss://` (TLS through rustls) for https; None for anything else.
fn stream_url(base: &str, run: &str, query: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = base.strip_prefix("http://") {
        ("ws", rest)
    } else {
        ("wss", base.strip_prefix("https://")?)
    };
    Some(format!(
        "{scheme}://{rest}/api/v1/runs/{}/logs/stream?{query}",
        seg(run)
    ))
}

/// Following without a WebSocket (a server that cannot upgrade): poll the list endpoint.
async fn poll(
    api: &Api,
    args: &LogsArgs,
    query: Vec<(&str, String)>,
    printer: Printer,
) -> CliResult {
    let path = format!("/api/v1/runs/{}/logs", seg(&args.run));
    let mut cursor: Option<String> = None;
    let mut ended = false;
    loop {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page: wanllmdb_api_types::Page<LogLine> = api.get(&path, &q).await?;
        for l in &page.items {
            print_line(l, args.format)?;
        }
        if let Some(last) = page.items.last() {
            cursor = Some(last.seq.to_string());
        }
        if page.next_cursor.is_some() {
            continue;
        }
        if ended {
            return Ok(());
        }
        let r: Run = api
            .get(&format!("/api/v1/runs/{}", seg(&args.run)), &[])
            .await?;
        if r.state != RunState::Running {
            printer.info(format!("run {} {}", r.id, r.state.as_str()));
            ended = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn print_line(l: &LogLine, format: LogFormat) -> CliResult {
    match format {
        LogFormat::Txt => outln!(
            "{} {:<7} [{}] {}",
            format_time(l.timestamp),
            l.level.as_str(),
            l.source.as_str(),
            l.message
        ),
        LogFormat::Json => outln!("{}", serde_json::to_string(l).unwrap_or_default()),
        LogFormat::Csv => {
            outln!(
                "{},{},{},{},{},{}",
                l.seq,
                l.timestamp,
                l.level.as_str(),
                l.source.as_str(),
                l.line_number.map(|n| n.to_string()).unwrap_or_default(),
                super::csv_field(&l.message)
            )
        }
    }
}

fn format_time(ts: f64) -> String {
    let nanos = (ts * 1e9) as i128;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
                .ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_servers_stream_over_tls() {
        assert_eq!(
            stream_url("http://127.0.0.1:8000", "ab12cd34", "level=info").as_deref(),
            Some("ws://127.0.0.1:8000/api/v1/runs/ab12cd34/logs/stream?level=info")
        );
        assert_eq!(
            stream_url("https://ml.example.com/tracker", "ab12cd34", "").as_deref(),
            Some("wss://ml.example.com/tracker/api/v1/runs/ab12cd34/logs/stream?")
        );
        assert_eq!(stream_url("ftp://x", "ab12cd34", ""), None);
    }
}
