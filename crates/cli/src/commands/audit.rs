//! `wanllmdb audit …`: read the server's audit log (server administrators only).

use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use wanllmdb_api_types::audit::{AUDIT_CSV_HEADER, AuditLogEntry, AuditStats, FailedLogin};

use crate::client::{Api, ApiError, seg};
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, kv_table, table};

/// Where the events are read: one user's, or everyone's.
fn logs_path(args: &LogsArgs) -> String {
    match &args.user {
        Some(u) => format!("/api/v1/audit/logs/user/{}", seg(u)),
        None => "/api/v1/audit/logs".into(),
    }
}

/// Seconds between polls of `audit logs --follow`.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// Most events read per poll of `--follow`.
const FOLLOW_BATCH: usize = 10_000;

/// `wanllmdb audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first; filters combine
    #[command(after_help = "\
Times are RFC 3339 (2024-05-01T12:00:00Z), Unix seconds, or an age: 30m, 24h, 7d, 2w.
--user matches what the user did and failed logins to their account. csv without --limit
exports every matching event; table and json show the newest 100 unless --limit says more.

Examples:
  wanllmdb audit logs --since 24h
  wanllmdb audit logs --category auth --severity warning
  wanllmdb audit logs --type login_failure --since 7d --format json
  wanllmdb audit logs --user alice --resource project:mnist
  wanllmdb audit logs --since 30d --format csv > audit.csv
  wanllmdb audit logs --follow                      # new events as they happen (Ctrl-C to stop)")]
    Logs(LogsArgs),
    /// Event counts of the last hours: by category and severity, logins and failure rate
    #[command(after_help = "\
Examples:
  wanllmdb audit stats
  wanllmdb audit stats --hours 168 --json")]
    Stats {
        /// The window: the last this many hours
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Failed (and rate-limited) logins of the last hours, newest first
    #[command(after_help = "\
Examples:
  wanllmdb audit failed-logins
  wanllmdb audit failed-logins --hours 72 --json")]
    FailedLogins {
        /// The window: the last this many hours
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// At most this many attempts (1–1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Options of `wanllmdb audit logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only this category: auth, authorization, data_access, data_modification, registry, sweeps, admin
    #[arg(long)]
    category: Option<String>,
    /// Only this event type, e.g. login_failure, api_key_created, access_denied
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only this severity: info, warning, critical
    #[arg(long)]
    severity: Option<String>,
    /// Only events of this username
    #[arg(long)]
    user: Option<String>,
    /// Only this resource, e.g. project:mnist or user:alice
    #[arg(long)]
    resource: Option<String>,
    /// Only this HTTP status
    #[arg(long)]
    status: Option<u16>,
    /// From this time on (RFC 3339, Unix seconds, or an age such as 24h)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Up to this time
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many events [default: 100; csv: all]
    #[arg(long)]
    limit: Option<usize>,
    /// After the matching events, print new ones as they happen until Ctrl-C
    #[arg(long, short = 'f')]
    follow: bool,
    /// table, json (an array; one object per line with --follow) or csv
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    format: AuditFormat,
}

/// Output format of `wanllmdb audit logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// A table for people
    Table,
    /// The API's JSON objects
    Json,
    /// Comma-separated values with a header row
    Csv,
}

/// Runs an `audit` subcommand.
pub async fn run(cmd: AuditCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    match cmd {
        AuditCommand::Logs(args) => logs(&api, args, printer).await,
        AuditCommand::Stats { hours, json } => {
            let s: AuditStats = api
                .get(
                    "/api/v1/audit/stats/summary",
                    &[("hours", hours.to_string())],
                )
                .await
                .map_err(admin_only)?;
            printer.with_json(json).data(&s, || stats_text(&s))
        }
        AuditCommand::FailedLogins { hours, limit, json } => {
            let q = [("hours", hours.to_string()), ("limit", limit.to_string())];
            let f: Vec<FailedLogin> = api
                .get("/api/v1/audit/logs/security/failed-logins", &q)
                .await
                .map_err(admin_only)?;
            if f.is_empty() && !json {
                printer.info(format!("no failed logins in the last {hours} hour(s)"));
                return Ok(());
            }
            printer.with_json(json).data(&f, || failed_table(&f))
        }
    }
}

/// A 403 says who may read the audit log.
fn admin_only(e: ApiError) -> CliError {
    let forbidden = e.status() == Some(reqwest::StatusCode::FORBIDDEN);
    let err = CliError::from(e);
    if forbidden {
        err.hint("the audit log is for server administrators: use an administrator's API key (--api-key or WANLLMDB_API_KEY)")
    } else {
        err
    }
}

fn filter_query(args: &LogsArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    let fields = [
        ("category", &args.category),
        ("type", &args.event_type),
        ("severity", &args.severity),
        ("resource", &args.resource),
        ("since", &args.since),
        ("until", &args.until),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if let Some(s) = args.status {
        q.push(("status", s.to_string()));
    }
    q
}

async fn logs(api: &Api, args: LogsArgs, printer: Printer) -> CliResult {
    let path = logs_path(&args);
    if args.limit == Some(0) {
        return Err(user_err!("--limit must be at least 1"));
    }
    let query = filter_query(&args);
    if args.format == AuditFormat::Csv && !args.follow {
        let mut q = query;
        q.push(("format", "csv".into()));
        if let Some(n) = args.limit {
            q.push(("limit", n.to_string()));
        }
        let text = api.get_text(&path, &q).await.map_err(admin_only)?;
        print!("{text}");
        return Ok(());
    }
    let limit = args.limit.unwrap_or(100);
    let events: Vec<AuditLogEntry> = api
        .get_all(&path, &query, limit)
        .await
        .map_err(admin_only)?;
    if !args.follow {
        if args.format == AuditFormat::Json {
            return printer.print_json(&events);
        }
        if events.is_empty() {
            printer.info("no audit events match");
            return Ok(());
        }
        println!("{}", events_table(&events));
        return Ok(());
    }
    follow(api, &args, query, events, printer).await
}

/// Prints what there is, oldest first, then polls for newer events until interrupted.
async fn follow(
    api: &Api,
    args: &LogsArgs,
    query: Vec<(&'static str, String)>,
    events: Vec<AuditLogEntry>,
    printer: Printer,
) -> CliResult {
    if args.format == AuditFormat::Csv {
        println!("{AUDIT_CSV_HEADER}");
    } else if args.format == AuditFormat::Table {
        println!("{}", follow_line_header());
    }
    let mut last = events.first().map(|e| (e.id, e.at.clone()));
    for e in events.iter().rev() {
        print_event(e, args.format);
    }
    printer.info("waiting for new events (Ctrl-C to stop)…");
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let mut q: Vec<_> = query
            .iter()
            .filter(|(k, _)| *k != "since")
            .cloned()
            .collect();
        if let Some((_, at)) = &last {
            q.push(("since", at.clone()));
        } else if let Some(s) = &args.since {
            q.push(("since", s.clone()));
        }
        let new: Vec<AuditLogEntry> = match api.get_all(&logs_path(args), &q, FOLLOW_BATCH).await {
            Ok(v) => v,
            Err(e) if e.transient() => {
                printer.debug(format!("poll failed, trying again: {e}"));
                continue;
            }
            Err(e) => return Err(admin_only(e)),
        };
        let seen = last.as_ref().map_or(i64::MIN, |(id, _)| *id);
        for e in new.iter().rev().filter(|e| e.id > seen) {
            print_event(e, args.format);
        }
        if let Some(newest) = new.iter().max_by_key(|e| e.id).filter(|e| e.id > seen) {
            last = Some((newest.id, newest.at.clone()));
        }
    }
}

fn print_event(e: &AuditLogEntry, format: AuditFormat) {
    match format {
        AuditFormat::Table => println!("{}", follow_line(e)),
        AuditFormat::Json => println!("{}", serde_json::to_string(e).unwrap_or_default()),
        AuditFormat::Csv => println!("{}", e.csv_row()),
    }
}

/// `2024-05-01T12:00:00.123456Z` → `2024-05-01 12:00:00`.
fn short_time(at: &str) -> String {
    match (at.get(..10), at.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t}"),
        _ => at.to_string(),
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn status_cell(s: Option<i64>) -> String {
    s.map_or_else(|| "-".into(), |s| s.to_string())
}

fn events_table(events: &[AuditLogEntry]) -> comfy_table::Table {
    let mut t = table(&[
        "time", "severity", "type", "user", "ip", "resource", "status",
    ]);
    for e in events {
        t.add_row(vec![
            short_time(&e.at),
            e.severity.clone(),
            e.event_type.clone(),
            or_dash(&e.username),
            or_dash(&e.ip),
            or_dash(&e.resource),
            status_cell(e.status),
        ]);
    }
    t
}

fn follow_line_header() -> String {
    format!(
        "{:<19}  {:<8}  {:<24}  {:<16}  {:<15}  {:<24}  status",
        "time", "severity", "type", "user", "ip", "resource"
    )
}

fn follow_line(e: &AuditLogEntry) -> String {
    format!(
        "{:<19}  {:<8}  {:<24}  {:<16}  {:<15}  {:<24}  {}",
        short_time(&e.at),
        e.severity,
        e.event_type,
        or_dash(&e.username),
        or_dash(&e.ip),
        or_dash(&e.resource),
        status_cell(e.status)
    )
}

fn stats_text(s: &AuditStats) -> String {
    let mut rows = vec![
        ("window", format!("last {} hour(s)", s.hours)),
        ("events", s.total.to_string()),
        ("logins", s.login_successes.to_string()),
        ("failed logins", s.login_failures.to_string()),
        ("rate-limited logins", s.login_rate_limited.to_string()),
        (
            "login failure rate",
            format!("{:.1}%", s.failure_rate * 100.0),
        ),
    ];
    let sev: Vec<String> = s
        .by_severity
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    rows.push((
        "by severity",
        if sev.is_empty() {
            "-".into()
        } else {
            sev.join(", ")
        },
    ));
    let mut out = kv_table(&rows).to_string();
    if !s.by_category.is_empty() {
        let mut t = table(&["category", "events"]);
        for (k, n) in &s.by_category {
            t.add_row(vec![k.clone(), n.to_string()]);
        }
        out.push_str("\n\n");
        out.push_str(&t.to_string());
    }
    out
}

fn failed_table(f: &[FailedLogin]) -> comfy_table::Table {
    let mut t = table(&["time", "username", "ip", "type", "user agent"]);
    for l in f {
        t.add_row(vec![
            short_time(&l.at),
            or_dash(&l.username),
            or_dash(&l.ip),
            l.event_type.clone(),
            or_dash(&l.user_agent),
        ]);
    }
    t
}
