//! `wanllmdb audit …`: read the server's audit log (server administrators only).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use wanllmdb_api_types::audit::{
    AUDIT_CSV_HEADER, AuditLogEntry, AuditStats, SEVERITIES, STATUSES,
};

use crate::client::{Api, ApiError, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, kv_table, table};
use crate::output::{out, outln};

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
Times are a date (2025-01-31; as an end, its whole day), RFC 3339 (2025-01-31T12:00:00Z), Unix
seconds, or an age: 30m, 24h, 7d, 2w. --event-type takes published types (auth.login.failed)
or the server's short names (login_failure); --severity, --event-category and --status take
comma-separated lists. --user (or --username) matches what the user did and failed logins to
their account; --user also takes a user id. csv without --limit exports every matching event;
table and json show the newest 100 unless --limit says more.

Examples:
  wanllmdb audit logs --hours 24
  wanllmdb audit logs --event-category authentication --severity medium,high
  wanllmdb audit logs --event-type auth.login.failed --since 7d --format json
  wanllmdb audit logs --event-category data_modification --severity high --start-date 2025-01-01 --end-date 2025-01-31
  wanllmdb audit logs --user alice --resource-type project --resource-id mnist
  wanllmdb audit logs --status failure
  wanllmdb audit logs --since 30d --format csv > audit.csv
  wanllmdb audit logs --follow                      # new events as they happen (Ctrl-C to stop)")]
    Logs(Box<LogsArgs>),
    /// Event counts of the last hours: by category, severity and outcome, logins and failure rate
    #[command(after_help = "\
Examples:
  wanllmdb audit stats
  wanllmdb audit stats --hours 168 --json")]
    Stats {
        /// The window: the last this many hours
        #[arg(long, default_value_t = 24)]
        hours: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts
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
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// Options of `wanllmdb audit logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only these categories: authentication, authorization, data_modification, data_access, security
    #[arg(
        long = "event-category",
        visible_alias = "category",
        value_name = "CATEGORY"
    )]
    event_category: Option<String>,
    /// Only this event type, e.g. auth.login.failed, project.delete, or a short name such as login_failure
    #[arg(long = "event-type", visible_alias = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only these severities: critical, high, medium, low, info
    #[arg(long)]
    severity: Option<String>,
    /// Only events of this user (a user id or a username)
    #[arg(long)]
    user: Option<String>,
    /// Only events of the user with this id
    #[arg(long = "user-id", value_name = "ID")]
    user_id: Option<i64>,
    /// Only events of this username, and failed logins that tried it
    #[arg(long)]
    username: Option<String>,
    /// Only this kind of object, e.g. project, run, user, model_version
    #[arg(long = "resource-type", value_name = "TYPE")]
    resource_type: Option<String>,
    /// Only this object, e.g. mnist
    #[arg(long = "resource-id", value_name = "ID")]
    resource_id: Option<String>,
    /// Only this object as kind:id, e.g. project:mnist
    #[arg(long)]
    resource: Option<String>,
    /// Only this outcome: success, failure or error; a number is the HTTP status
    #[arg(long)]
    status: Option<String>,
    /// From this time on (a date, RFC 3339, Unix seconds, or an age such as 24h)
    #[arg(long = "start-date", visible_alias = "since", value_name = "TIME")]
    since: Option<String>,
    /// Up to this time (a date includes its whole day)
    #[arg(long = "end-date", visible_alias = "until", value_name = "TIME")]
    until: Option<String>,
    /// Only the last this many hours
    #[arg(long)]
    hours: Option<u32>,
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
        AuditCommand::Logs(args) => logs(&api, *args, printer).await,
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
            let f: Vec<AuditLogEntry> = api
                .get("/api/v1/audit/logs/security/failed-logins", &q)
                .await
                .map_err(admin_only)?;
            if f.is_empty() && !json.json {
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
        ("event_category", &args.event_category),
        ("event_type", &args.event_type),
        ("severity", &args.severity),
        ("username", &args.username),
        ("resource_type", &args.resource_type),
        ("resource_id", &args.resource_id),
        ("resource", &args.resource),
        ("status", &args.status),
        ("start_date", &args.since),
        ("end_date", &args.until),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if let Some(id) = args.user_id {
        q.push(("user_id", id.to_string()));
    }
    if let Some(h) = args.hours {
        q.push(("hours", h.to_string()));
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
        out!("{text}")?;
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
        outln!("{}", events_table(&events))?;
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
        outln!("{AUDIT_CSV_HEADER}")?;
    } else if args.format == AuditFormat::Table {
        outln!("{}", follow_line_header())?;
    }
    let mut last = events.first().map(|e| (e.id, e.created_at.clone()));
    for e in events.iter().rev() {
        print_event(e, args.format)?;
    }
    printer.info("waiting for new events (Ctrl-C to stop)…");
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let mut q: Vec<_> = query
            .iter()
            .filter(|(k, _)| *k != "start_date")
            .cloned()
            .collect();
        if let Some((_, at)) = &last {
            q.push(("start_date", at.clone()));
        } else if let Some(s) = &args.since {
            q.push(("start_date", s.clone()));
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
            print_event(e, args.format)?;
        }
        if let Some(newest) = new.iter().max_by_key(|e| e.id).filter(|e| e.id > seen) {
            last = Some((newest.id, newest.created_at.clone()));
        }
    }
}

fn print_event(e: &AuditLogEntry, format: AuditFormat) -> CliResult {
    match format {
        AuditFormat::Table => outln!("{}", follow_line(e)),
        AuditFormat::Json => outln!("{}", serde_json::to_string(e).unwrap_or_default()),
        AuditFormat::Csv => outln!("{}", e.csv_row()),
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// `success`, or `failure 403`.
fn status_cell(e: &AuditLogEntry) -> String {
    match e.http_status {
        Some(code) if e.status != "success" => format!("{} {code}", e.status),
        _ => e.status.clone(),
    }
}

fn events_table(events: &[AuditLogEntry]) -> comfy_table::Table {
    let mut t = table(&[
        "time",
        "severity",
        "event",
        "user",
        "ip",
        "status",
        "description",
    ]);
    for e in events {
        t.add_row(vec![
            crate::output::when(&e.created_at),
            e.severity.clone(),
            e.event_type.clone(),
            or_dash(&e.username),
            or_dash(&e.ip_address),
            status_cell(e),
            e.description.clone(),
        ]);
    }
    t
}

fn follow_line_header() -> String {
    format!(
        "{:<19}  {:<8}  {:<26}  {:<16}  {:<15}  {:<12}  description",
        "time", "severity", "event", "user", "ip", "status"
    )
}

fn follow_line(e: &AuditLogEntry) -> String {
    format!(
        "{:<19}  {:<8}  {:<26}  {:<16}  {:<15}  {:<12}  {}",
        crate::output::when(&e.created_at),
        e.severity,
        e.event_type,
        or_dash(&e.username),
        or_dash(&e.ip_address),
        status_cell(e),
        e.description
    )
}

/// `critical 0, high 2, …` in the order of `keys`, then any others.
fn counts_line(counts: &BTreeMap<String, u64>, keys: &[&str]) -> String {
    let mut parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{k} {}", counts.get(*k).copied().unwrap_or(0)))
        .collect();
    parts.extend(
        counts
            .iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .map(|(k, n)| format!("{k} {n}")),
    );
    parts.join(", ")
}

fn stats_text(s: &AuditStats) -> String {
    let a = &s.authentication;
    let severities: Vec<&str> = SEVERITIES.iter().rev().copied().collect();
    let rows = vec![
        ("window", format!("last {} hour(s)", s.hours)),
        ("events", s.total_events.to_string()),
        ("successful logins", a.successful_logins.to_string()),
        ("failed logins", a.failed_logins.to_string()),
        ("of which rate-limited", a.rate_limited_logins.to_string()),
        (
            "login failure rate",
            format!("{:.1}%", a.failure_rate * 100.0),
        ),
        ("by severity", counts_line(&s.by_severity, &severities)),
        ("by status", counts_line(&s.by_status, &STATUSES)),
    ];
    let mut out = kv_table(&rows).to_string();
    let mut t = table(&["category", "events"]);
    for (k, n) in &s.by_category {
        t.add_row(vec![k.clone(), n.to_string()]);
    }
    out.push_str("\n\n");
    out.push_str(&t.to_string());
    out
}

fn failed_table(f: &[AuditLogEntry]) -> comfy_table::Table {
    let mut t = table(&["time", "username", "ip", "reason", "attempts", "user agent"]);
    for l in f {
        let attempts = l.metadata["attempts"]
            .as_i64()
            .map_or_else(|| "-".into(), |n| n.to_string());
        t.add_row(vec![
            crate::output::when(&l.created_at),
            or_dash(&l.username),
            or_dash(&l.ip_address),
            l.metadata["reason"].as_str().unwrap_or("-").to_string(),
            attempts,
            or_dash(&l.user_agent),
        ]);
    }
    t
}
