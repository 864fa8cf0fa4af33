//! HTTP handlers for /api/v1/runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::runs::{
    AddTagRequest, CreateRunRequest, FinishRunRequest, HeartbeatResponse, Run, UpdateRunRequest,
};
use wanllmdb_api_types::{ErrorBody, Page};

use super::{RunQuery, Runs};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientInfo, JsonBody, Path, QueryPairs};
use crate::state::AppState;
use wanllmdb_api_types::{ProjectName, RunId};

/// The run routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_run, list_runs))
        .routes(routes!(get_run, update_run, delete_run))
        .routes(routes!(heartbeat))
        .routes(routes!(finish))
        .routes(routes!(stop))
        .routes(routes!(add_tag))
        .routes(routes!(remove_tag))
}

/// Create a run, or resume it when the id already exists in the project (idempotent).
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = CreateRunRequest,
    responses((status = 201, description = "created", body = Run), (status = 200, description = "resumed", body = Run),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_run(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<CreateRunRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let (run, created) = Runs { state: &state }.create(&actor, req, &client).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(run)))
}

/// Search the runs of a project. `filter` and `tag` may repeat; filters look like
/// `config.lr < 0.01`, `summary.val_acc >= 0.9`, `state = finished`, joined with `and`;
/// `sort` is a field with `-` for descending (`-summary.val_acc`).
#[utoipa::path(get, path = "/runs", tag = "runs",
    params(("project" = String, Query), ("state" = Option<String>, Query), ("tag" = Option<String>, Query),
        ("q" = Option<String>, Query, description = "name or id substring"),
        ("filter" = Option<String>, Query), ("sort" = Option<String>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Run>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_runs(
    State(state): State<AppState>,
    actor: Actor,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<Page<Run>>> {
    let mut q = RunQuery::default();
    for (k, v) in pairs {
        match k.as_str() {
            "project" => q.project = Some(ProjectName::parse(&v)?),
            "state" => q.state = Some(v),
            "tag" => q.tags.push(v),
            "q" => q.q = Some(v),
            "filter" => q.filters.push(v),
            "sort" => q.sort = Some(v),
            "limit" => {
                q.limit =
                    Some(v.parse().map_err(|_| {
                        ApiError::invalid(format!("limit must be a number, got {v:?}"))
                    })?)
            }
            "cursor" => q.cursor = Some(v),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}: use project, state, tag, q, filter, sort, limit, cursor"
                )));
            }
        }
    }
    Ok(Json(Runs { state: &state }.list(&actor, &q).await?))
}

/// One run with its summary.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
) -> ApiResult<Json<Run>> {
    Ok(Json(Runs { state: &state }.get(&actor, &id).await?))
}

/// Change a run's name, tags or notes, or merge keys into its config (`null` removes a key).
#[utoipa::path(patch, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)), request_body = UpdateRunRequest,
    responses((status = 200, body = Run), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_run(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<UpdateRunRequest>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        Runs { state: &state }
            .update(&actor, &id, req, &client)
            .await?,
    ))
}

/// Delete a run with its metrics and logs.
#[utoipa::path(delete, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_run(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
) -> ApiResult<StatusCode> {
    Runs { state: &state }.delete(&actor, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Heartbeat; the answer says whether a stop was requested.
#[utoipa::path(post, path = "/runs/{id}/heartbeat", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = HeartbeatResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn heartbeat(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
) -> ApiResult<Json<HeartbeatResponse>> {
    Ok(Json(Runs { state: &state }.heartbeat(&actor, &id).await?))
}

/// Mark a run finished, crashed or killed.
#[utoipa::path(post, path = "/runs/{id}/finish", tag = "runs", params(("id" = String, Path)), request_body = FinishRunRequest,
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn finish(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<FinishRunRequest>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        Runs { state: &state }
            .finish(&actor, &id, req, &client)
            .await?,
    ))
}

/// Ask a run to stop (its wrapper sees it on the next heartbeat).
#[utoipa::path(post, path = "/runs/{id}/stop", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Run), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stop(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        Runs { state: &state }
            .request_stop(&actor, &id, &client)
            .await?,
    ))
}

/// Add one tag to a run (atomically; adding a tag it has already changes nothing).
#[utoipa::path(post, path = "/runs/{id}/tags", tag = "runs", params(("id" = String, Path)), request_body = AddTagRequest,
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<AddTagRequest>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        Runs { state: &state }
            .change_tag(&actor, &id, &req.tag, true, &client)
            .await?,
    ))
}

/// Remove one tag from a run (atomically; 404 when the run does not carry it).
#[utoipa::path(delete, path = "/runs/{id}/tags/{tag}", tag = "runs", params(("id" = String, Path), ("tag" = String, Path)),
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((id, tag)): Path<(RunId, String)>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        Runs { state: &state }
            .change_tag(&actor, &id, &tag, false, &client)
            .await?,
    ))
}
