//! HTTP handlers for /api/v1/audit: the audit log, for server administrators.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::audit::{AUDIT_CSV_HEADER, AuditLogEntry, AuditStats};
use wanllmdb_api_types::{ErrorBody, Page};

use super::query::{self, AuditFilter, Bound, Cond};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::store::now_us;

/// Events read per database round trip of an export.
const EXPORT_BATCH: i64 = 1_000;
/// Longest window of the summary endpoints: ten years.
const MAX_HOURS: u32 = 24 * 366 * 10;

/// The audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_logs))
        .routes(routes!(list_user_audit_logs))
        .routes(routes!(failed_logins))
        .routes(routes!(audit_stats))
}

/// 401 for anonymous callers, 403 for everyone but server administrators.
fn require_admin(actor: &Actor) -> ApiResult<()> {
    if actor.require_user()?.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the audit log is only readable by server administrators".into(),
        ))
    }
}

/// Filters of the audit log; all given ones must match. Lists of words may be comma-separated
/// (`severity=high,critical`). The old names (`category`, `type`, `user`, `resource`, `since`,
/// `until`, a numeric `status`) keep working.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// `authentication`, `authorization`, `data_modification`, `data_access` or `security`.
    event_category: Option<String>,
    /// Old name of `event_category`; also takes the old values `auth` (authentication),
    /// `registry` and `sweeps` (data_modification) and `admin` (security).
    category: Option<String>,
    /// Event type, e.g. `auth.login.failed`, or the server's short name, e.g. `login_failure`.
    event_type: Option<String>,
    /// Old name of `event_type`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    legacy_type: Option<String>,
    /// `critical`, `high`, `medium`, `low` or `info`; the old `warning` means medium or high.
    severity: Option<String>,
    /// `success`, `failure` or `error`; a number is the HTTP status.
    status: Option<String>,
    /// HTTP status of the outcome.
    http_status: Option<String>,
    /// Id of the user who acted.
    user_id: Option<String>,
    /// Username of the user who acted, or the account a failed login tried.
    username: Option<String>,
    /// Old name of `username`.
    user: Option<String>,
    /// Kind of object, e.g. `project`, `run`, `user`, `model_version`.
    resource_type: Option<String>,
    /// Which object, e.g. `mnist`.
    resource_id: Option<String>,
    /// Kind and object together, e.g. `project:mnist`.
    resource: Option<String>,
    /// From this time: a date (2025-01-01), RFC 3339, Unix seconds, or an age such as `24h`.
    start_date: Option<String>,
    /// Old name of `start_date`.
    since: Option<String>,
    /// Up to this time, inclusive (a date: its whole day), in the same forms.
    end_date: Option<String>,
    /// Old name of `end_date`.
    until: Option<String>,
    /// The last this many hours (1–87840).
    hours: Option<String>,
    /// Page size (1–1000, default 100); with `format`, the most events to export.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `jsonl` or `csv`: every matching event, newest first, instead of a page.
    format: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    Jsonl,
    Csv,
}

/// The value of a parameter, unless it is missing or empty.
fn nonempty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// A whole number, or a 400 naming the parameter.
fn number(param: &str, v: &str) -> ApiResult<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::invalid(format!("{param}={v:?} is not a whole number")))
}

/// `hours`: 1 to ten years.
fn parse_hours(h: &str) -> ApiResult<u32> {
    h.parse::<u32>()
        .ok()
        .filter(|h| (1..=MAX_HOURS).contains(h))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "hours={h:?} must be a whole number from 1 to {MAX_HOURS}"
            ))
        })
}

impl AuditQuery {
    /// The conditions and the page position the parameters ask for (the web UI's audit page
    /// reads the same parameters).
    pub(crate) fn filter(&self) -> ApiResult<AuditFilter> {
        let mut conds = Vec::new();
        self.what(&mut conds)?;
        self.who(&mut conds)?;
        self.when(now_us(), &mut conds)?;
        Ok(AuditFilter {
            conds,
            before: self
                .cursor
                .as_deref()
                .map(query::parse_cursor)
                .transpose()?,
        })
    }

    /// Category, type, severity, outcome.
    fn what(&self, conds: &mut Vec<Cond>) -> ApiResult<()> {
        for (param, v) in [
            ("event_category", &self.event_category),
            ("category", &self.category),
        ] {
            if let Some(v) = nonempty(v) {
                conds.push(Cond::OneOf("category", query::parse_category(param, &v)?));
            }
        }
        for v in [&self.event_type, &self.legacy_type]
            .into_iter()
            .filter_map(nonempty)
        {
            conds.push(Cond::EventType(
                v.split(',').map(|t| t.trim().to_string()).collect(),
            ));
        }
        if let Some(v) = nonempty(&self.severity) {
            conds.push(Cond::OneOf(
                "severity",
                query::parse_severity("severity", &v)?,
            ));
        }
        if let Some(v) = nonempty(&self.status) {
            conds.push(match v.trim().parse::<i64>() {
                Ok(code) => Cond::Int("http_status", code),
                Err(_) => Cond::OneOf("status", query::parse_status("status", &v)?),
            });
        }
        if let Some(v) = nonempty(&self.http_status) {
            conds.push(Cond::Int("http_status", number("http_status", &v)?));
        }
        Ok(())
    }

    /// The user and the object acted on.
    fn who(&self, conds: &mut Vec<Cond>) -> ApiResult<()> {
        if let Some(v) = nonempty(&self.user_id) {
            conds.push(Cond::Int("user_id", number("user_id", &v)?));
        }
        for v in [&self.username, &self.user]
            .into_iter()
            .filter_map(nonempty)
        {
            conds.push(Cond::Subject {
                user_id: None,
                username: v,
            });
        }
        for (col, v) in [
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("resource", &self.resource),
        ] {
            if let Some(v) = nonempty(v) {
                conds.push(Cond::Text(col, v));
            }
        }
        Ok(())
    }

    /// The time range.
    fn when(&self, now: i64, conds: &mut Vec<Cond>) -> ApiResult<()> {
        let time = |name: &str, v: &Option<String>, bound: Bound| {
            nonempty(v)
                .map(|v| query::parse_time_bound(name, &v, now, bound))
                .transpose()
        };
        for (name, v) in [("start_date", &self.start_date), ("since", &self.since)] {
            if let Some(us) = time(name, v, Bound::Start)? {
                conds.push(Cond::Since(us));
            }
        }
        for (name, v) in [("end_date", &self.end_date), ("until", &self.until)] {
            if let Some(us) = time(name, v, Bound::End)? {
                conds.push(Cond::Until(us));
            }
        }
        if let Some(h) = nonempty(&self.hours) {
            conds.push(Cond::Since(
                now - i64::from(parse_hours(&h)?) * 3_600_000_000,
            ));
        }
        Ok(())
    }

    fn limit(&self) -> ApiResult<Option<i64>> {
        self.limit
            .as_deref()
            .map(|l| {
                l.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::invalid(format!("limit={l:?} must be a number from 1 to 1000"))
                })
            })
            .transpose()
    }

    fn format(&self) -> ApiResult<Option<ExportFormat>> {
        match self.format.as_deref() {
            None | Some("") | Some("json") => Ok(None),
            Some("jsonl" | "ndjson") => Ok(Some(ExportFormat::Jsonl)),
            Some("csv") => Ok(Some(ExportFormat::Csv)),
            Some(other) => Err(ApiError::invalid(format!(
                "unknown format {other:?}: use jsonl or csv (or leave it out for a JSON page)"
            ))),
        }
    }
}

/// A page, or with `format` an export, of the events matching `q` (and `extra`).
async fn answer(state: AppState, q: &AuditQuery, extra: Option<Cond>) -> ApiResult<Response> {
    let mut filter = q.filter()?;
    filter.conds.extend(extra);
    let limit = q.limit()?;
    if let Some(format) = q.format()? {
        return Ok(export(state, filter, format, limit));
    }
    let limit = limit.unwrap_or(100);
    if limit > 1000 {
        return Err(ApiError::invalid(format!(
            "limit={limit} must be a number from 1 to 1000"
        )));
    }
    Ok(Json(query::page(&state.store, &filter, limit).await?).into_response())
}

/// Audit events, newest first (server administrators). Filters combine with AND.
#[utoipa::path(get, path = "/audit/logs", tag = "audit", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page; with format=jsonl or csv, every matching event", body = Page<AuditLogEntry>),
        (status = 400, description = "a parameter is unknown or malformed", body = ErrorBody),
        (status = 401, description = "no valid credentials", body = ErrorBody),
        (status = 403, description = "not a server administrator", body = ErrorBody)))]
async fn list_audit_logs(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    require_admin(&actor)?;
    answer(state, &q, None).await
}

/// Audit events of one user: what they did, and failed logins to their account.
#[utoipa::path(get, path = "/audit/logs/user/{user}", tag = "audit",
    params(("user" = String, Path, description = "a user id (when such a user exists) or a username"), AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<AuditLogEntry>),
        (status = 400, description = "a parameter is unknown or malformed", body = ErrorBody),
        (status = 401, description = "no valid credentials", body = ErrorBody),
        (status = 403, description = "not a server administrator", body = ErrorBody)))]
async fn list_user_audit_logs(
    State(state): State<AppState>,
    actor: Actor,
    Path(user): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    require_admin(&actor)?;
    let subject = query::subject(&state.store, &user).await?;
    answer(state, &q, Some(subject)).await
}

/// The window and size of the failed-login list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    /// The last this many hours (1–87840, default 24).
    hours: Option<String>,
    /// At most this many events (1–1000, default 100).
    limit: Option<String>,
}

/// The window of the summary.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    /// The last this many hours (1–87840, default 24).
    hours: Option<String>,
}

impl WindowQuery {
    fn hours(&self) -> ApiResult<u32> {
        self.hours.as_deref().map_or(Ok(24), parse_hours)
    }

    fn limit(&self) -> ApiResult<i64> {
        match self.limit.as_deref() {
            None => Ok(100),
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!("limit={l:?} must be a number from 1 to 1000"))
                }),
        }
    }
}

/// Failed logins (`auth.login.failed`, rate-limited ones included) of the last `hours`,
/// newest first; `metadata` says the `reason` and the `attempts` of that account.
#[utoipa::path(get, path = "/audit/logs/security/failed-logins", tag = "audit", params(WindowQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditLogEntry>),
        (status = 400, description = "hours or limit out of range, or an unknown parameter", body = ErrorBody),
        (status = 401, description = "no valid credentials", body = ErrorBody),
        (status = 403, description = "not a server administrator", body = ErrorBody)))]
async fn failed_logins(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<WindowQuery>,
) -> ApiResult<Json<Vec<AuditLogEntry>>> {
    require_admin(&actor)?;
    let (hours, limit) = (q.hours()?, q.limit()?);
    Ok(Json(
        query::failed_logins(&state.store, hours, limit).await?,
    ))
}

/// Event counts of the last `hours`: per category, severity, status and event type, logins
/// and their failure rate.
#[utoipa::path(get, path = "/audit/stats/summary", tag = "audit", params(SummaryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditStats),
        (status = 400, description = "hours out of range, or an unknown parameter", body = ErrorBody),
        (status = 401, description = "no valid credentials", body = ErrorBody),
        (status = 403, description = "not a server administrator", body = ErrorBody)))]
async fn audit_stats(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<Json<AuditStats>> {
    require_admin(&actor)?;
    let hours = q.hours.as_deref().map_or(Ok(24), parse_hours)?;
    Ok(Json(query::stats(&state.store, hours).await?))
}

fn render(e: &AuditLogEntry, format: ExportFormat) -> String {
    match format {
        ExportFormat::Jsonl => {
            let mut s = serde_json::to_string(e).unwrap_or_default();
            s.push('\n');
            s
        }
        ExportFormat::Csv => format!("{}\n", e.csv_row()),
    }
}

/// Streams every matching event batch by batch, so exports of any size use little memory.
fn export(
    state: AppState,
    filter: AuditFilter,
    format: ExportFormat,
    limit: Option<i64>,
) -> Response {
    let (ctype, ext, head) = match format {
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl", None),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv", Some(AUDIT_CSV_HEADER)),
    };
    struct Export {
        state: AppState,
        filter: AuditFilter,
        left: i64,
        started: bool,
        done: bool,
    }
    let init = Export {
        state,
        filter,
        left: limit.unwrap_or(i64::MAX),
        started: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(init, move |mut x| async move {
        if x.done {
            return None;
        }
        let mut out = String::new();
        if !x.started {
            x.started = true;
            if let Some(h) = head {
                out.push_str(h);
                out.push('\n');
            }
        }
        let want = x.left.min(EXPORT_BATCH);
        match query::next_batch(&x.state.store, &mut x.filter, want).await {
            Ok(batch) => {
                for e in &batch {
                    out.push_str(&render(e, format));
                }
                x.left -= batch.len() as i64;
                x.done = (batch.len() as i64) < want || x.left <= 0;
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(out)), x))
            }
            Err(e) => {
                x.done = true;
                Some((Err(std::io::Error::other(e.to_string())), x))
            }
        }
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit-log.{ext}\""),
            ),
        ],
        // Fused: the body may be polled once more after the end.
        Body::from_stream(futures_util::StreamExt::fuse(stream)),
    )
        .into_response()
}
