//! HTTP handlers for /api/v1/audit: the audit log, for server administrators.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::audit::{AUDIT_CSV_HEADER, AuditLogEntry, AuditStats, FailedLogin};
use wanllmdb_api_types::{ErrorBody, Page};

use super::query::{self, AuditFilter};
use crate::app::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
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

/// Filters of the audit log; all given ones must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Category, e.g. `auth`, `authorization`, `data_access`, `data_modification`, `registry`.
    category: Option<String>,
    /// Event type, e.g. `login_failure`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// `info`, `warning` or `critical`.
    severity: Option<String>,
    /// Username of the actor (or the account a failed login tried).
    user: Option<String>,
    /// Resource, exactly, e.g. `project:mnist`.
    resource: Option<String>,
    /// HTTP status of the outcome.
    status: Option<String>,
    /// From this time: RFC 3339, Unix seconds, or an age such as `30m`, `24h`, `7d`.
    since: Option<String>,
    /// Until this time (inclusive), in the same forms.
    until: Option<String>,
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

impl AuditQuery {
    fn filter(&self) -> ApiResult<AuditFilter> {
        let now = now_us();
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|v| query::parse_time_bound(name, v, now))
                .transpose()
        };
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(AuditFilter {
            category: nonempty(&self.category),
            event_type: nonempty(&self.event_type),
            severity: self
                .severity
                .as_deref()
                .map(query::parse_severity)
                .transpose()?,
            user: nonempty(&self.user),
            resource: nonempty(&self.resource),
            status: self
                .status
                .as_deref()
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        ApiError::invalid(format!("status={s:?} is not an HTTP status code"))
                    })
                })
                .transpose()?,
            since_us: time("since", &self.since)?,
            until_us: time("until", &self.until)?,
            before: self
                .cursor
                .as_deref()
                .map(query::parse_cursor)
                .transpose()?,
        })
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

/// A page, or with `format` an export, of the events matching `q`.
async fn answer(state: AppState, q: &AuditQuery) -> ApiResult<Response> {
    let filter = q.filter()?;
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
    responses((status = 200, description = "a page; with format=jsonl or csv, every matching event", body = Page<AuditLogEntry>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_audit_logs(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    require_admin(&actor)?;
    answer(state, &q).await
}

/// Audit events of one user: what they did, and failed logins to their account.
#[utoipa::path(get, path = "/audit/logs/user/{user}", tag = "audit",
    params(("user" = String, Path, description = "username"), AuditQuery),
    responses((status = 200, body = Page<AuditLogEntry>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_user_audit_logs(
    State(state): State<AppState>,
    actor: Actor,
    Path(user): Path<String>,
    Query(mut q): Query<AuditQuery>,
) -> ApiResult<Response> {
    require_admin(&actor)?;
    q.user = Some(user);
    answer(state, &q).await
}

/// The window of the summary endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    /// The last this many hours (1–87840, default 24).
    hours: Option<String>,
    /// At most this many events (1–1000, default 100; failed logins only).
    limit: Option<String>,
}

impl WindowQuery {
    fn hours(&self) -> ApiResult<u32> {
        match self.hours.as_deref() {
            None => Ok(24),
            Some(h) => h
                .parse::<u32>()
                .ok()
                .filter(|h| (1..=MAX_HOURS).contains(h))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "hours={h:?} must be a whole number from 1 to {MAX_HOURS}"
                    ))
                }),
        }
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

/// Failed and rate-limited logins of the last `hours`, newest first.
#[utoipa::path(get, path = "/audit/logs/security/failed-logins", tag = "audit", params(WindowQuery),
    responses((status = 200, body = Vec<FailedLogin>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn failed_logins(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<WindowQuery>,
) -> ApiResult<Json<Vec<FailedLogin>>> {
    require_admin(&actor)?;
    let (hours, limit) = (q.hours()?, q.limit()?);
    Ok(Json(
        query::failed_logins(&state.store, hours, limit).await?,
    ))
}

/// Event counts of the last `hours`: per category and severity, logins and their failure rate.
#[utoipa::path(get, path = "/audit/stats/summary", tag = "audit", params(WindowQuery),
    responses((status = 200, body = AuditStats), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_stats(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<WindowQuery>,
) -> ApiResult<Json<AuditStats>> {
    require_admin(&actor)?;
    if q.limit.is_some() {
        return Err(ApiError::invalid("limit does not apply to the summary"));
    }
    Ok(Json(query::stats(&state.store, q.hours()?).await?))
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
