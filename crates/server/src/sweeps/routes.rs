//! HTTP handlers for /api/v1/projects/{name}/sweeps and /api/v1/sweeps.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
use wanllmdb_api_types::sweeps::{
    AgentHeartbeat, AgentHeartbeatResponse, AgentRegistered, CreateSweepRequest, DeletedSweep,
    RegisterAgentRequest, RetryFailed, Suggestion, Sweep, SweepAnalysis, Trial,
};

use super::Sweeps;
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::extract::{ClientInfo, JsonBody, Path};
use crate::state::AppState;
use wanllmdb_api_types::ProjectName;

/// The sweep routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sweeps, create_sweep))
        .routes(routes!(get_sweep, delete_sweep))
        .routes(routes!(list_trials))
        .routes(routes!(analysis))
        .routes(routes!(change_state))
        .routes(routes!(retry_failed))
        .routes(routes!(suggest))
        .routes(routes!(register_agent))
        .routes(routes!(agent_heartbeat))
        .routes(routes!(agent_exit))
}

/// Sweeps of a project, newest first.
#[utoipa::path(get, path = "/projects/{name}/sweeps", tag = "sweeps",
    params(("name" = String, Path, description = "project")),
    responses((status = 200, body = Vec<Sweep>), (status = 404, body = ErrorBody)))]
async fn list_sweeps(
    State(state): State<AppState>,
    actor: Actor,
    Path(project): Path<ProjectName>,
) -> ApiResult<Json<Vec<Sweep>>> {
    Ok(Json(Sweeps { state: &state }.list(&actor, &project).await?))
}

/// Create a sweep from a configuration in W&B's format. Every problem of an invalid
/// configuration is listed in `error.details.problems` as `{path, message}`; what a valid one
/// probably did not mean (the value range `log_uniform` bounds really sample) is in
/// `warnings`.
#[utoipa::path(post, path = "/projects/{name}/sweeps", tag = "sweeps",
    params(("name" = String, Path, description = "project")), request_body = CreateSweepRequest,
    responses((status = 201, body = Sweep), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_sweep(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(project): Path<ProjectName>,
    JsonBody(req): JsonBody<CreateSweepRequest>,
) -> ApiResult<(StatusCode, Json<Sweep>)> {
    let sweep = Sweeps { state: &state }
        .create(&actor, &client, &project, req)
        .await?;
    Ok((StatusCode::CREATED, Json(sweep)))
}

/// A sweep: state, trial counts, best trial, agents.
#[utoipa::path(get, path = "/sweeps/{id}", tag = "sweeps", params(("id" = String, Path)),
    responses((status = 200, body = Sweep), (status = 404, body = ErrorBody)))]
async fn get_sweep(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Sweep>> {
    Ok(Json(Sweeps { state: &state }.get(&actor, &id).await?))
}

/// Delete a sweep with its trials and agents. Its runs stay as ordinary runs; each run's
/// notes say which sweep it came from, and the answer lists them.
#[utoipa::path(delete, path = "/sweeps/{id}", tag = "sweeps", params(("id" = String, Path)),
    responses((status = 200, body = DeletedSweep), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_sweep(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<DeletedSweep>> {
    Ok(Json(
        Sweeps { state: &state }
            .delete(&actor, &client, &id)
            .await?,
    ))
}

/// Every trial of a sweep, in the order handed out.
#[utoipa::path(get, path = "/sweeps/{id}/trials", tag = "sweeps", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Trial>), (status = 404, body = ErrorBody)))]
async fn list_trials(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Trial>>> {
    Ok(Json(
        Sweeps { state: &state }.list_trials(&actor, &id).await?,
    ))
}

/// Trials ranked by the metric, parameter importance and parallel-coordinates data.
#[utoipa::path(get, path = "/sweeps/{id}/analysis", tag = "sweeps", params(("id" = String, Path)),
    responses((status = 200, body = SweepAnalysis), (status = 404, body = ErrorBody)))]
async fn analysis(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<SweepAnalysis>> {
    Ok(Json(Sweeps { state: &state }.analysis(&actor, &id).await?))
}

/// Pause, resume, finish or cancel a sweep (`action` is one of those words). Finishing lets
/// running trials end; canceling stops them.
#[utoipa::path(post, path = "/sweeps/{id}/{action}", tag = "sweeps",
    params(("id" = String, Path), ("action" = String, Path, description = "pause, resume, finish or cancel")),
    responses((status = 200, body = Sweep), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn change_state(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<Sweep>> {
    Ok(Json(
        Sweeps { state: &state }
            .transition(&actor, &client, &id, &action)
            .await?,
    ))
}

/// Queue every crashed trial to run again with the same parameters.
#[utoipa::path(post, path = "/sweeps/{id}/retry-failed", tag = "sweeps", params(("id" = String, Path)),
    responses((status = 200, body = RetryFailed), (status = 409, body = ErrorBody)))]
async fn retry_failed(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<RetryFailed>> {
    Ok(Json(
        Sweeps { state: &state }
            .retry_failed(&actor, &client, &id)
            .await?,
    ))
}

/// Manual mode: reserve the next trial. Start the run with the returned `run_id` and `config`.
#[utoipa::path(post, path = "/sweeps/{id}/suggest", tag = "sweeps", params(("id" = String, Path)),
    responses((status = 200, body = Suggestion), (status = 409, body = ErrorBody)))]
async fn suggest(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Suggestion>> {
    Ok(Json(Sweeps { state: &state }.suggest(&actor, &id).await?))
}

/// An agent joins the sweep.
#[utoipa::path(post, path = "/sweeps/{id}/agents", tag = "sweeps", params(("id" = String, Path)),
    request_body = RegisterAgentRequest,
    responses((status = 201, body = AgentRegistered), (status = 409, body = ErrorBody)))]
async fn register_agent(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RegisterAgentRequest>,
) -> ApiResult<(StatusCode, Json<AgentRegistered>)> {
    let reg = Sweeps { state: &state }
        .register_agent(&actor, &id, req)
        .await?;
    Ok((StatusCode::CREATED, Json(reg)))
}

/// An agent's heartbeat; the answer says what to do: run, stop, exit, or nothing.
#[utoipa::path(post, path = "/sweeps/{id}/agents/{agent}/heartbeat", tag = "sweeps",
    params(("id" = String, Path), ("agent" = String, Path)), request_body = AgentHeartbeat,
    responses((status = 200, body = AgentHeartbeatResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn agent_heartbeat(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, agent)): Path<(String, String)>,
    JsonBody(hb): JsonBody<AgentHeartbeat>,
) -> ApiResult<Json<AgentHeartbeatResponse>> {
    Ok(Json(
        Sweeps { state: &state }
            .agent_heartbeat(&actor, &id, &agent, hb)
            .await?,
    ))
}

/// An agent leaves.
#[utoipa::path(delete, path = "/sweeps/{id}/agents/{agent}", tag = "sweeps",
    params(("id" = String, Path), ("agent" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn agent_exit(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    Sweeps { state: &state }
        .agent_exit(&actor, &id, &agent)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
