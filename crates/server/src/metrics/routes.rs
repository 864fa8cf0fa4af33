//! HTTP handlers for metric history and summaries.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
use wanllmdb_api_types::history_binary::MEDIA_TYPE as BINARY;
use wanllmdb_api_types::metrics::{
    AppendHistoryRequest, AppendHistoryResponse, HistoryQueryRequest, HistoryQueryResponse,
    HistoryResponse, MetricSummary, SetSummaryRequest,
};

use super::Metrics;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, Query};
use crate::state::AppState;
use wanllmdb_api_types::RunId;

/// The metric routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(append_history, get_history))
        .routes(routes!(query_history))
        .routes(routes!(get_summary, set_summary))
}

/// Append metric points (gzip bodies accepted). Retrying a batch stores nothing twice.
#[utoipa::path(post, path = "/runs/{id}/history", tag = "metrics", params(("id" = String, Path)),
    request_body = AppendHistoryRequest,
    responses((status = 200, body = AppendHistoryResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn append_history(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<AppendHistoryRequest>,
) -> ApiResult<Json<AppendHistoryResponse>> {
    let stored = Metrics { state: &state }
        .append(&actor, &id, req.points)
        .await?;
    state.telemetry.points_ingested(stored.accepted);
    Ok(Json(stored))
}

/// Query of a history read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Comma-separated metric names; all when absent.
    keys: Option<String>,
    /// First step (inclusive).
    min_step: Option<i64>,
    /// Last step (inclusive).
    max_step: Option<i64>,
    /// Cap on points per series (each bucket's min and max are kept).
    max_points: Option<usize>,
}

fn split_keys(keys: Option<&str>) -> Vec<String> {
    keys.map(|k| {
        k.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// Read the history of one run's metrics, optionally downsampled.
#[utoipa::path(get, path = "/runs/{id}/history", tag = "metrics", params(("id" = String, Path), HistoryQuery),
    responses((status = 200, description = "JSON by default; the binary columnar form (docs/api.md) when `Accept` prefers it",
            content((HistoryResponse = "application/json"), (Vec<u8> = "application/vnd.wanllmdb.history+binary"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 406, body = ErrorBody)))]
async fn get_history(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Response> {
    let form = HistoryForm::of(&headers)?;
    let keys = split_keys(q.keys.as_deref());
    let h = Metrics { state: &state }
        .history(&actor, &id, &keys, q.min_step, q.max_step, q.max_points)
        .await?;
    match form {
        HistoryForm::Json => send_pieces(form, move || super::json::history(&h)).await,
        HistoryForm::Binary => {
            send_pieces(form, move || super::binary::runs(std::slice::from_ref(&h))).await
        }
    }
}

/// Read many runs × keys in one request (what a comparison chart needs). A read: anonymous
/// callers may query runs of public projects.
#[utoipa::path(post, path = "/history/query", tag = "metrics", request_body = HistoryQueryRequest,
    responses((status = 200, description = "JSON by default; the binary columnar form (docs/api.md) when `Accept` prefers it",
            content((HistoryQueryResponse = "application/json"), (Vec<u8> = "application/vnd.wanllmdb.history+binary"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 406, body = ErrorBody)),
    security((), ("bearer" = [])))]
async fn query_history(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    JsonBody(req): JsonBody<HistoryQueryRequest>,
) -> ApiResult<Response> {
    let form = HistoryForm::of(&headers)?;
    let results = Metrics { state: &state }
        .query(
            &actor,
            &req.runs,
            &req.keys,
            req.min_step,
            req.max_step,
            req.max_points,
        )
        .await?;
    match form {
        HistoryForm::Json => send_pieces(form, move || super::json::query(&results)).await,
        HistoryForm::Binary => send_pieces(form, move || super::binary::runs(&results)).await,
    }
}

/// The forms a history read answers in, chosen by the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HistoryForm {
    Json,
    Binary,
}

impl HistoryForm {
    fn media_type(self) -> &'static str {
        match self {
            HistoryForm::Json => "application/json",
            HistoryForm::Binary => BINARY,
        }
    }

    /// The form `Accept` prefers: the higher quality wins, then the more specific range
    /// (`*/*` counts less than a named type), then JSON. No `Accept` at all means JSON; an
    /// `Accept` that rules out both is a 406 (RFC 9110 §12.5.1 lets a server answer 406 or
    /// ignore the header; a client that asked only for something else learns it plainly).
    fn of(headers: &HeaderMap) -> ApiResult<HistoryForm> {
        let mut ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .flat_map(|v| v.split(','))
            .filter(|r| !r.trim().is_empty())
            .peekable();
        if ranges.peek().is_none() {
            return Ok(HistoryForm::Json);
        }
        let (mut json, mut binary) = ((0.0, -1), (0.0, -1));
        for range in ranges {
            let (kind, q) = media_range(range);
            for (form, best) in [
                (HistoryForm::Json, &mut json),
                (HistoryForm::Binary, &mut binary),
            ] {
                if let Some(spec) = matches(&kind, form.media_type())
                    && spec > best.1
                {
                    *best = (q, spec);
                }
            }
        }
        let (jq, bq) = (json.0, binary.0);
        if jq <= 0.0 && bq <= 0.0 {
            return Err(ApiError::NotAcceptable(format!(
                "history reads answer in application/json or {BINARY}; the Accept header \
                 allows neither"
            )));
        }
        Ok(if bq > jq || (bq == jq && binary.1 > json.1) {
            HistoryForm::Binary
        } else {
            HistoryForm::Json
        })
    }
}

/// A media range's type (lower case, without parameters) and its quality (1 when absent, 0
/// when unreadable).
fn media_range(range: &str) -> (String, f32) {
    let mut parts = range.split(';');
    let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut q = 1.0;
    for p in parts {
        if let Some((name, value)) = p.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            q = value.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
        }
    }
    (kind, q)
}

/// How specifically a media range names `media_type`: 2 exactly, 1 as `type/*`, 0 as `*/*`.
fn matches(range: &str, media_type: &str) -> Option<i32> {
    if range == media_type {
        return Some(2);
    }
    let top = media_type.split('/').next().unwrap_or("");
    match range.split_once('/') {
        Some((t, "*")) if t == top => Some(1),
        Some(("*", "*")) => Some(0),
        _ => None,
    }
}

/// Formats a history body off the async threads (it is CPU work) and sends its pieces.
async fn send_pieces(
    form: HistoryForm,
    format: impl FnOnce() -> Vec<axum::body::Bytes> + Send + 'static,
) -> ApiResult<Response> {
    let pieces = tokio::task::spawn_blocking(format)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let length: usize = pieces.iter().map(|p| p.len()).sum();
    let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    Ok((
        [
            (header::CONTENT_TYPE, form.media_type().to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::VARY, "accept".to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Summary of every metric of a run (last, min, max, count, last step).
#[utoipa::path(get, path = "/runs/{id}/summary", tag = "metrics", params(("id" = String, Path)),
    responses((status = 200, body = Vec<MetricSummary>), (status = 404, body = ErrorBody)))]
async fn get_summary(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
) -> ApiResult<Json<Vec<MetricSummary>>> {
    Ok(Json(Metrics { state: &state }.summary(&actor, &id).await?))
}

/// Set summary values explicitly (they take precedence over logged values).
#[utoipa::path(post, path = "/runs/{id}/summary", tag = "metrics", params(("id" = String, Path)), request_body = SetSummaryRequest,
    responses((status = 200, body = Vec<MetricSummary>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_summary(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<SetSummaryRequest>,
) -> ApiResult<Json<Vec<MetricSummary>>> {
    if req.values.0.is_empty() {
        return Err(ApiError::invalid("values must name at least one metric"));
    }
    Ok(Json(
        Metrics { state: &state }
            .set_summary(&actor, &id, req.values.0)
            .await?,
    ))
}
