//! HTTP handlers for /api/v1/runs/{id}/logs.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::logs::{
    AppendLogsRequest, AppendLogsResponse, LogLevel, LogLine, LogSource, NewLogLine,
};
use wanllmdb_api_types::{ErrorBody, Page, csv_field};

use super::{LogFilter, Logs};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query, json_bytes, parse_json};
use crate::runs::Runs;
use crate::state::AppState;
use wanllmdb_api_types::RunId;

const EXPORT_PAGE: i64 = 5_000;

/// The log routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(append_logs, list_logs))
        .routes(routes!(stream_logs))
}

/// The body of a log append: `{"lines": [...]}`, or the bare array of lines.
struct LogLines(Vec<NewLogLine>);

impl FromRequest<AppState> for LogLines {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        if bytes.trim_ascii_start().starts_with(b"[") {
            parse_json(&bytes).map(LogLines)
        } else {
            parse_json::<AppendLogsRequest>(&bytes).map(|r| LogLines(r.lines))
        }
    }
}

/// Append log lines (retries are safe when lines carry source and line_number). The body is
/// `{"lines": [...]}` or the bare array of lines.
#[utoipa::path(post, path = "/runs/{id}/logs", tag = "logs", params(("id" = String, Path)),
    request_body(content = AppendLogsRequest, description = "`{\"lines\": [...]}`, or the array of lines alone"),
    responses((status = 200, body = AppendLogsResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn append_logs(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    LogLines(lines): LogLines,
) -> ApiResult<Json<AppendLogsResponse>> {
    let stored = Logs { state: &state }.append(&actor, &id, lines).await?;
    state.telemetry.log_lines_ingested(stored.accepted);
    Ok(Json(stored))
}

/// Query of the log listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// `txt`, `json` or `csv` to download every matching line; a page of JSON when absent.
    format: Option<String>,
    /// Minimum level: DEBUG, INFO, WARNING or ERROR.
    level: Option<String>,
    /// stdout, stderr, sdk or user.
    source: Option<String>,
    /// Message substring (case-insensitive).
    q: Option<String>,
    /// From this time: Unix seconds or RFC 3339.
    since: Option<String>,
    /// Until this time: Unix seconds or RFC 3339.
    until: Option<String>,
    /// `next_cursor` of the previous page (or a seq to start after).
    cursor: Option<String>,
    /// Page size (1–10,000, default 1,000).
    limit: Option<i64>,
}

fn parse_time(name: &str, v: &str) -> ApiResult<i64> {
    if let Ok(s) = v.parse::<f64>() {
        return crate::store::seconds_to_us(s)
            .ok_or_else(|| ApiError::invalid(format!("{name} is out of range")));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|d| (d.unix_timestamp_nanos() / 1000) as i64)
        .map_err(|_| {
            ApiError::invalid(format!(
                "{name}={v:?} is not a time: use Unix seconds or RFC 3339"
            ))
        })
}

impl LogQuery {
    fn filter(&self) -> ApiResult<LogFilter> {
        Ok(LogFilter {
            level: self
                .level
                .as_deref()
                .map(|l| {
                    LogLevel::parse(l).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "unknown level {l:?}: use DEBUG, INFO, WARNING or ERROR"
                        ))
                    })
                })
                .transpose()?,
            source: self
                .source
                .as_deref()
                .map(|s| {
                    LogSource::parse(s).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "unknown source {s:?}: use stdout, stderr, sdk or user"
                        ))
                    })
                })
                .transpose()?,
            text: self.q.clone(),
            since_us: self
                .since
                .as_deref()
                .map(|v| parse_time("since", v))
                .transpose()?,
            until_us: self
                .until
                .as_deref()
                .map(|v| parse_time("until", v))
                .transpose()?,
            after_seq: self
                .cursor
                .as_deref()
                .map(|c| {
                    c.parse::<i64>()
                        .map_err(|_| ApiError::invalid(format!("invalid cursor {c:?}")))
                })
                .transpose()?,
        })
    }
}

/// List log lines (a page), or export all matching lines with `format=txt|json|csv`.
#[utoipa::path(get, path = "/runs/{id}/logs", tag = "logs", params(("id" = String, Path), LogQuery),
    responses((status = 200, body = Page<LogLine>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_logs(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let (run, _) = Runs { state: &state }.load(&actor, &id).await?;
    let filter = q.filter()?;
    if let Some(fmt) = q.format.as_deref() {
        let format = match fmt {
            "txt" | "text" => ExportFormat::Txt,
            "json" => ExportFormat::Json,
            "csv" => ExportFormat::Csv,
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown format {other:?}: use txt, json or csv"
                )));
            }
        };
        return Ok(export(state, run.pk, &id, filter, format));
    }
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 10000"));
    }
    let mut items = Logs { state: &state }
        .page(run.pk, &filter, limit + 1)
        .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|l| l.seq.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }).into_response())
}

#[derive(Clone, Copy, PartialEq)]
enum ExportFormat {
    Txt,
    Json,
    Csv,
}

fn render(line: &LogLine, format: ExportFormat, first: bool) -> String {
    match format {
        ExportFormat::Txt => {
            let t = crate::store::format_time((line.timestamp * 1e6) as i64);
            format!(
                "{t} {:<7} [{}] {}\n",
                line.level.as_str(),
                line.source.as_str(),
                line.message
            )
        }
        ExportFormat::Json => {
            let sep = if first { "" } else { ",\n" };
            format!("{sep}{}", serde_json::to_string(line).unwrap_or_default())
        }
        ExportFormat::Csv => format!(
            "{},{},{},{},{},{}\n",
            line.seq,
            line.timestamp,
            line.level.as_str(),
            line.source.as_str(),
            line.line_number.map(|n| n.to_string()).unwrap_or_default(),
            csv_field(&line.message)
        ),
    }
}

/// Streams every matching line page by page, so exports of any size use little memory.
fn export(
    state: AppState,
    run_pk: i64,
    run_id: &RunId,
    filter: LogFilter,
    format: ExportFormat,
) -> Response {
    let (ctype, ext, head, tail) = match format {
        ExportFormat::Txt => ("text/plain; charset=utf-8", "txt", "", ""),
        ExportFormat::Json => ("application/json", "json", "[\n", "\n]\n"),
        ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            "csv",
            "seq,timestamp,level,source,line_number,message\n",
            "",
        ),
    };
    struct Cursor {
        state: AppState,
        filter: LogFilter,
        first: bool,
        done: bool,
        started: bool,
    }
    let init = Cursor {
        state,
        filter,
        first: true,
        done: false,
        started: false,
    };
    let stream = futures_util::stream::unfold(init, move |mut c| async move {
        if c.done {
            return None;
        }
        let mut out = String::new();
        if !c.started {
            c.started = true;
            out.push_str(head);
        }
        match (Logs { state: &c.state })
            .page(run_pk, &c.filter, EXPORT_PAGE)
            .await
        {
            Ok(lines) => {
                for l in &lines {
                    out.push_str(&render(l, format, c.first));
                    c.first = false;
                }
                if let Some(last) = lines.last() {
                    c.filter.after_seq = Some(last.seq);
                }
                if (lines.len() as i64) < EXPORT_PAGE {
                    c.done = true;
                    out.push_str(tail);
                }
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(out)), c))
            }
            Err(e) => {
                c.done = true;
                Some((Err(std::io::Error::other(e.to_string())), c))
            }
        }
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{run_id}-logs.{ext}\""),
            ),
        ],
        // Fused: the body may be polled once more after the end.
        Body::from_stream(futures_util::StreamExt::fuse(stream)),
    )
        .into_response()
}

/// Live log stream over WebSocket: sends the backlog (after `cursor`), then new lines as they
/// arrive, one JSON `LogLine` per text message.
#[utoipa::path(get, path = "/runs/{id}/logs/stream", tag = "logs", params(("id" = String, Path), LogQuery),
    responses((status = 101, description = "switching to WebSocket"), (status = 404, body = ErrorBody)))]
async fn stream_logs(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    Query(q): Query<LogQuery>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let (run, _) = Runs { state: &state }.load(&actor, &id).await?;
    let filter = q.filter()?;
    Ok(ws.on_upgrade(move |socket| follow(socket, state, run.pk, filter)))
}

async fn follow(mut socket: WebSocket, state: AppState, run_pk: i64, mut filter: LogFilter) {
    let mut events = state.log_events.subscribe();
    loop {
        // Drain everything new, page by page.
        loop {
            let lines = match (Logs { state: &state })
                .page(run_pk, &filter, EXPORT_PAGE)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    let _ = socket.send(Message::Close(None)).await;
                    tracing::warn!(error = %e, "log stream query failed");
                    return;
                }
            };
            for l in &lines {
                let text = serde_json::to_string(l).unwrap_or_default();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            match lines.last() {
                Some(last) => filter.after_seq = Some(last.seq),
                None => break,
            }
            if (lines.len() as i64) < EXPORT_PAGE {
                break;
            }
        }
        // Wait for lines on this replica, a poll tick (lines written by another replica),
        // or the client going away.
        let wake = async {
            loop {
                match events.recv().await {
                    Ok(pk) if pk == run_pk => return,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
