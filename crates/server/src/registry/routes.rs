//! HTTP handlers for /api/v1/models and /api/v1/projects/{name}/registry-policy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
use wanllmdb_api_types::registry::{
    ApprovalRequest, CreateModelVersionRequest, ModelEvent, ModelVersion, RegisterModelRequest,
    RegisteredModel, RegistryPolicy, SetModelAliasRequest, TransitionRequest, UpdateModelRequest,
};

use super::{Approval, Registry};
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::extract::{ClientInfo, JsonBody, Path, Query};
use crate::state::AppState;
use wanllmdb_api_types::ProjectName;

/// The registry routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models, register_model))
        .routes(routes!(get_model, update_model, delete_model))
        .routes(routes!(list_versions, create_version))
        .routes(routes!(get_version, delete_version))
        .routes(routes!(transition))
        .routes(routes!(approve))
        .routes(routes!(revoke_approval))
        .routes(routes!(set_alias, remove_alias))
        .routes(routes!(history))
        .routes(routes!(get_policy, set_policy))
}

/// Query of the model list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only models of this project.
    project: Option<ProjectName>,
    /// Name or description contains this text.
    search: Option<String>,
}

/// Models the caller can read.
#[utoipa::path(get, path = "/models", tag = "registry", params(ListQuery),
    responses((status = 200, body = Vec<RegisteredModel>), (status = 404, body = ErrorBody)))]
async fn list_models(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<RegisteredModel>>> {
    let r = Registry { state: &state };
    Ok(Json(
        r.list(&actor, q.project.as_ref(), q.search.as_deref())
            .await?,
    ))
}

/// Register a model in a project (member).
#[utoipa::path(post, path = "/models", tag = "registry", request_body = RegisterModelRequest,
    responses((status = 201, body = RegisteredModel), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register_model(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<RegisterModelRequest>,
) -> ApiResult<(StatusCode, Json<RegisteredModel>)> {
    let m = Registry { state: &state }
        .register(&actor, &client, req)
        .await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// A model.
#[utoipa::path(get, path = "/models/{name}", tag = "registry", params(("name" = String, Path)),
    responses((status = 200, body = RegisteredModel), (status = 404, body = ErrorBody)))]
async fn get_model(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> ApiResult<Json<RegisteredModel>> {
    Ok(Json(Registry { state: &state }.get(&actor, &name).await?))
}

/// Change a model's description or tags (member) or its approval setting (admin).
#[utoipa::path(patch, path = "/models/{name}", tag = "registry", params(("name" = String, Path)),
    request_body = UpdateModelRequest,
    responses((status = 200, body = RegisteredModel), (status = 403, body = ErrorBody)))]
async fn update_model(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<UpdateModelRequest>,
) -> ApiResult<Json<RegisteredModel>> {
    Ok(Json(
        Registry { state: &state }
            .update(&actor, &client, &name, req)
            .await?,
    ))
}

/// Delete a model with its versions and history (admin; the audit log keeps the trail).
#[utoipa::path(delete, path = "/models/{name}", tag = "registry", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_model(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    Registry { state: &state }
        .delete(&actor, &client, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the version list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct VersionsQuery {
    /// Only versions in this stage.
    stage: Option<String>,
}

/// Versions of a model, newest first.
#[utoipa::path(get, path = "/models/{name}/versions", tag = "registry",
    params(("name" = String, Path), VersionsQuery),
    responses((status = 200, body = Vec<ModelVersion>), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    Query(q): Query<VersionsQuery>,
) -> ApiResult<Json<Vec<ModelVersion>>> {
    Ok(Json(
        Registry { state: &state }
            .versions(&actor, &name, q.stage.as_deref())
            .await?,
    ))
}

/// Create the next version from an artifact version the caller can read (member).
#[utoipa::path(post, path = "/models/{name}/versions", tag = "registry",
    params(("name" = String, Path)), request_body = CreateModelVersionRequest,
    responses((status = 201, body = ModelVersion), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<CreateModelVersionRequest>,
) -> ApiResult<(StatusCode, Json<ModelVersion>)> {
    let v = Registry { state: &state }
        .create_version(&actor, &client, &name, req)
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Which stage `versions/latest` looks in.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    /// With `latest`: the newest version in this stage (None, Staging, Production, Archived).
    stage: Option<String>,
}

/// One version: `v3` (or `3`), `latest` (with `?stage=`, the newest in that stage), `@ALIAS`,
/// or a stage name for the newest version in it.
#[utoipa::path(get, path = "/models/{name}/versions/{selector}", tag = "registry",
    params(("name" = String, Path), ("selector" = String, Path, description = "v3, latest, @alias, or Production/Staging/Archived/None"),
        VersionQuery),
    responses((status = 200, body = ModelVersion), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((name, selector)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<ModelVersion>> {
    Ok(Json(
        Registry { state: &state }
            .version_in(&actor, &name, &selector, q.stage.as_deref())
            .await?,
    ))
}

/// Delete a version (admin).
#[utoipa::path(delete, path = "/models/{name}/versions/{selector}", tag = "registry",
    params(("name" = String, Path), ("selector" = String, Path, description = "v3")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, selector)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    Registry { state: &state }
        .delete_version(&actor, &client, &name, &selector)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a version to another stage (member). Into Production it needs an approval when the
/// policy requires one (409 naming who can approve).
#[utoipa::path(post, path = "/models/{name}/versions/{version}/transition", tag = "registry",
    params(("name" = String, Path), ("version" = String, Path)), request_body = TransitionRequest,
    responses((status = 200, body = ModelVersion), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn transition(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, version)): Path<(String, String)>,
    JsonBody(req): JsonBody<TransitionRequest>,
) -> ApiResult<Json<ModelVersion>> {
    Ok(Json(
        Registry { state: &state }
            .transition(&actor, &client, &name, &version, req)
            .await?,
    ))
}

/// Approve a version for Production (owner or admin, not its creator unless allowed).
#[utoipa::path(post, path = "/models/{name}/versions/{version}/approval", tag = "registry",
    params(("name" = String, Path), ("version" = String, Path)), request_body = ApprovalRequest,
    responses((status = 200, body = ModelVersion), (status = 403, body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, version)): Path<(String, String)>,
    JsonBody(req): JsonBody<ApprovalRequest>,
) -> ApiResult<Json<ModelVersion>> {
    Ok(Json(
        Registry { state: &state }
            .approve(&actor, &client, &name, &version, &req, Approval::Grant)
            .await?,
    ))
}

/// Revoke a version's approval (owner or admin).
#[utoipa::path(post, path = "/models/{name}/versions/{version}/approval/revoke", tag = "registry",
    params(("name" = String, Path), ("version" = String, Path)), request_body = ApprovalRequest,
    responses((status = 200, body = ModelVersion), (status = 409, body = ErrorBody)))]
async fn revoke_approval(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, version)): Path<(String, String)>,
    JsonBody(req): JsonBody<ApprovalRequest>,
) -> ApiResult<Json<ModelVersion>> {
    Ok(Json(
        Registry { state: &state }
            .approve(
                &actor,
                &client,
                &name,
                &version,
                &ApprovalRequest {
                    comment: req.comment,
                    approved_by: None,
                },
                Approval::Revoke,
            )
            .await?,
    ))
}

/// Point an alias at a version, moving it (member).
#[utoipa::path(put, path = "/models/{name}/aliases/{alias}", tag = "registry",
    params(("name" = String, Path), ("alias" = String, Path)), request_body = SetModelAliasRequest,
    responses((status = 200, body = ModelVersion), (status = 400, body = ErrorBody)))]
async fn set_alias(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, alias)): Path<(String, String)>,
    JsonBody(req): JsonBody<SetModelAliasRequest>,
) -> ApiResult<Json<ModelVersion>> {
    Ok(Json(
        Registry { state: &state }
            .set_alias(&actor, &client, &name, &alias, req)
            .await?,
    ))
}

/// Remove an alias (member).
#[utoipa::path(delete, path = "/models/{name}/aliases/{alias}", tag = "registry",
    params(("name" = String, Path), ("alias" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_alias(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    Registry { state: &state }
        .remove_alias(&actor, &client, &name, &alias)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Only entries about this version.
    version: Option<String>,
}

/// Every change to a model, oldest first: who, when, from, to, and the comment.
#[utoipa::path(get, path = "/models/{name}/history", tag = "registry",
    params(("name" = String, Path), HistoryQuery),
    responses((status = 200, body = Vec<ModelEvent>), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<ModelEvent>>> {
    Ok(Json(
        Registry { state: &state }
            .history(&actor, &name, q.version.as_deref())
            .await?,
    ))
}

/// A project's registry policy.
#[utoipa::path(get, path = "/projects/{name}/registry-policy", tag = "registry",
    params(("name" = String, Path)),
    responses((status = 200, body = RegistryPolicy), (status = 404, body = ErrorBody)))]
async fn get_policy(
    State(state): State<AppState>,
    actor: Actor,
    Path(project): Path<ProjectName>,
) -> ApiResult<Json<RegistryPolicy>> {
    Ok(Json(
        Registry { state: &state }.policy(&actor, &project).await?,
    ))
}

/// Set a project's registry policy (owner or admin).
#[utoipa::path(put, path = "/projects/{name}/registry-policy", tag = "registry",
    params(("name" = String, Path)), request_body = RegistryPolicy,
    responses((status = 200, body = RegistryPolicy), (status = 403, body = ErrorBody)))]
async fn set_policy(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(project): Path<ProjectName>,
    JsonBody(policy): JsonBody<RegistryPolicy>,
) -> ApiResult<Json<RegistryPolicy>> {
    Ok(Json(
        Registry { state: &state }
            .set_policy(&actor, &client, &project, policy)
            .await?,
    ))
}
