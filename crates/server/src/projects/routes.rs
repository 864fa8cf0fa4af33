//! HTTP handlers for /api/v1/projects.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::projects::{
    AddMemberRequest, CreateProjectRequest, Member, Project, UpdateMemberRequest,
    UpdateProjectRequest, Visibility,
};
use wanllmdb_api_types::{ErrorBody, Page};

use super::Projects;
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::extract::{ClientInfo, JsonBody, Path, Query};
use crate::state::AppState;
use wanllmdb_api_types::ProjectName;

/// The project routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(list_members, add_member))
        .routes(routes!(update_member, remove_member))
}

/// Create a project; the caller becomes its owner.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProjectRequest,
    responses((status = 201, body = Project), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_project(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<CreateProjectRequest>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let p = Projects { state: &state }
        .create(&actor, &req, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Query of the project list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListProjectsQuery {
    /// Name substring (case-insensitive).
    q: Option<String>,
    /// public or private.
    visibility: Option<Visibility>,
    /// Page size (1–500, default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List the projects the caller can see.
#[utoipa::path(get, path = "/projects", tag = "projects", params(ListProjectsQuery),
    responses((status = 200, body = Page<Project>), (status = 400, body = ErrorBody)))]
async fn list_projects(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ListProjectsQuery>,
) -> ApiResult<Json<Page<Project>>> {
    Ok(Json(
        Projects { state: &state }
            .list(
                &actor,
                q.q.as_deref(),
                q.visibility,
                q.limit,
                q.cursor.as_deref(),
            )
            .await?,
    ))
}

/// One project with its stats.
#[utoipa::path(get, path = "/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
async fn get_project(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<ProjectName>,
) -> ApiResult<Json<Project>> {
    Ok(Json(Projects { state: &state }.get(&actor, &name).await?))
}

/// Change a project's description or visibility (owner/admin).
#[utoipa::path(patch, path = "/projects/{name}", tag = "projects", params(("name" = String, Path)),
    request_body = UpdateProjectRequest,
    responses((status = 200, body = Project), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_project(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(name): Path<ProjectName>,
    JsonBody(req): JsonBody<UpdateProjectRequest>,
) -> ApiResult<Json<Project>> {
    Ok(Json(
        Projects { state: &state }
            .update(&actor, &name, &req, &client)
            .await?,
    ))
}

/// Delete a project with all its runs, metrics and logs (owner).
#[utoipa::path(delete, path = "/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_project(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(name): Path<ProjectName>,
) -> ApiResult<StatusCode> {
    Projects { state: &state }
        .delete(&actor, &name, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List members.
#[utoipa::path(get, path = "/projects/{name}/members", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<ProjectName>,
) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(
        Projects { state: &state }.members(&actor, &name).await?,
    ))
}

/// Add a member (owner/admin).
#[utoipa::path(post, path = "/projects/{name}/members", tag = "projects", params(("name" = String, Path)),
    request_body = AddMemberRequest,
    responses((status = 201, body = Member), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(name): Path<ProjectName>,
    JsonBody(req): JsonBody<AddMemberRequest>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let m = Projects { state: &state }
        .add_member(&actor, &name, &req.username, req.role, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Change a member's role (owner/admin).
#[utoipa::path(patch, path = "/projects/{name}/members/{user}", tag = "projects",
    params(("name" = String, Path), ("user" = String, Path)), request_body = UpdateMemberRequest,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_member(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, user)): Path<(ProjectName, String)>,
    JsonBody(req): JsonBody<UpdateMemberRequest>,
) -> ApiResult<Json<Member>> {
    Ok(Json(
        Projects { state: &state }
            .update_member(&actor, &name, &user, req.role, &client)
            .await?,
    ))
}

/// Remove a member (owner/admin, or oneself).
#[utoipa::path(delete, path = "/projects/{name}/members/{user}", tag = "projects",
    params(("name" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((name, user)): Path<(ProjectName, String)>,
) -> ApiResult<StatusCode> {
    Projects { state: &state }
        .remove_member(&actor, &name, &user, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
