//! HTTP handlers for metric history and summaries.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
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
    responses((status = 200, body = HistoryResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_history(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Response> {
    let keys = split_keys(q.keys.as_deref());
    let h = Metrics { state: &state }
        .history(&actor, &id, &keys, q.min_step, q.max_step, q.max_points)
        .await?;
    json_pieces(move || super::json::history(&h)).await
}

/// Read many runs × keys in one request (what a comparison chart needs). A read: anonymous
/// callers may query runs of public projects.
#[utoipa::path(post, path = "/history/query", tag = "metrics", request_body = HistoryQueryRequest,
    responses((status = 200, body = HistoryQueryResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
async fn query_history(
    State(state): State<AppState>,
    actor: Actor,
    JsonBody(req): JsonBody<HistoryQueryRequest>,
) -> ApiResult<Response> {
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
    json_pieces(move || super::json::query(&results)).await
}

/// Formats a history body off the async threads (it is CPU work) and sends its pieces.
async fn json_pieces(
    format: impl FnOnce() -> Vec<axum::body::Bytes> + Send + 'static,
) -> ApiResult<Response> {
    let pieces = tokio::task::spawn_blocking(format)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let length: usize = pieces.iter().map(|p| p.len()).sum();
    let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
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
