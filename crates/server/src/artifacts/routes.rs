//! HTTP handlers for /api/v1/projects/{name}/artifacts and /api/v1/runs/{id}/artifacts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::artifacts::{
    Artifact, ArtifactAlias, ArtifactFile, ArtifactVersion, CreateArtifactRequest,
    CreateVersionRequest, CreateVersionResponse, Lineage, RunArtifacts, SetAliasRequest,
    UpdateArtifactRequest, UpdateVersionRequest, UseVersionRequest,
};
use wanllmdb_api_types::files::TransferUrl;
use wanllmdb_api_types::{ErrorBody, Page};

use super::Artifacts;
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::extract::{ClientInfo, JsonBody, Path, PublicBase, Query};
use crate::files::download_transfer_url;
use crate::state::AppState;
use wanllmdb_api_types::{ProjectName, RunId};

/// The artifact routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_artifacts, create_artifact))
        .routes(routes!(get_artifact, update_artifact, delete_artifact))
        .routes(routes!(list_versions, create_version))
        .routes(routes!(commit_draft))
        .routes(routes!(get_version, update_version, delete_version))
        .routes(routes!(version_files))
        .routes(routes!(version_file_download_url))
        .routes(routes!(use_version))
        .routes(routes!(version_lineage))
        .routes(routes!(list_aliases))
        .routes(routes!(set_alias, remove_alias))
        .routes(routes!(run_artifacts))
}

/// Query of the artifact list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only artifacts of this type.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Only artifacts carrying this tag.
    tag: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Artifacts of a project, by name.
#[utoipa::path(get, path = "/projects/{name}/artifacts", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ListQuery),
    responses((status = 200, body = Page<Artifact>), (status = 404, body = ErrorBody)))]
async fn list_artifacts(
    State(state): State<AppState>,
    actor: Actor,
    Path(project): Path<ProjectName>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<Artifact>>> {
    Ok(Json(
        Artifacts { state: &state }
            .list(
                &actor,
                &project,
                q.kind.as_deref(),
                q.tag.as_deref(),
                q.limit.unwrap_or(100),
                q.cursor.as_deref(),
            )
            .await?,
    ))
}

/// Create an artifact (versions can also create it on the fly).
#[utoipa::path(post, path = "/projects/{name}/artifacts", tag = "artifacts",
    params(("name" = String, Path, description = "project")), request_body = CreateArtifactRequest,
    responses((status = 201, body = Artifact), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_artifact(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(project): Path<ProjectName>,
    JsonBody(req): JsonBody<CreateArtifactRequest>,
) -> ApiResult<(StatusCode, Json<Artifact>)> {
    let a = Artifacts { state: &state }
        .create(&actor, &project, req, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// One artifact.
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path)),
    responses((status = 200, body = Artifact), (status = 404, body = ErrorBody)))]
async fn get_artifact(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name)): Path<(ProjectName, String)>,
) -> ApiResult<Json<Artifact>> {
    Ok(Json(
        Artifacts { state: &state }
            .get(&actor, &project, &name)
            .await?,
    ))
}

/// Change an artifact's description, metadata or tags.
#[utoipa::path(patch, path = "/projects/{name}/artifacts/{artifact}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path)),
    request_body = UpdateArtifactRequest,
    responses((status = 200, body = Artifact), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_artifact(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name)): Path<(ProjectName, String)>,
    JsonBody(req): JsonBody<UpdateArtifactRequest>,
) -> ApiResult<Json<Artifact>> {
    Ok(Json(
        Artifacts { state: &state }
            .update(&actor, &project, &name, req, &client)
            .await?,
    ))
}

/// Delete an artifact with all its versions and aliases (content stays until garbage collection).
#[utoipa::path(delete, path = "/projects/{name}/artifacts/{artifact}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_artifact(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name)): Path<(ProjectName, String)>,
) -> ApiResult<StatusCode> {
    Artifacts { state: &state }
        .delete(&actor, &project, &name, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Finalized versions, newest first.
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}/versions", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path)),
    responses((status = 200, body = Vec<ArtifactVersion>), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name)): Path<(ProjectName, String)>,
) -> ApiResult<Json<Vec<ArtifactVersion>>> {
    Ok(Json(
        Artifacts { state: &state }
            .versions(&actor, &project, &name)
            .await?,
    ))
}

/// Create a version from a manifest. Committed at once when the project already holds every
/// content digest; otherwise a pending draft whose `uploads` must be sent before
/// `POST …/drafts/{id}/commit`. A manifest equal to the latest version's returns that version
/// (`created: false`).
#[utoipa::path(post, path = "/projects/{name}/artifacts/{artifact}/versions", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path)),
    request_body = CreateVersionRequest,
    responses((status = 200, body = CreateVersionResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name)): Path<(ProjectName, String)>,
    JsonBody(req): JsonBody<CreateVersionRequest>,
) -> ApiResult<Json<CreateVersionResponse>> {
    Ok(Json(
        Artifacts { state: &state }
            .create_version(&actor, &project, &name, req, &client)
            .await?,
    ))
}

/// Finalize a draft once all its content has been uploaded; it gets the next version number
/// and never changes again.
#[utoipa::path(post, path = "/projects/{name}/artifacts/{artifact}/drafts/{draft}/commit", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("draft" = i64, Path)),
    responses((status = 200, body = ArtifactVersion), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "content still missing")))]
async fn commit_draft(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name, draft)): Path<(ProjectName, String, i64)>,
) -> ApiResult<Json<ArtifactVersion>> {
    Ok(Json(
        Artifacts { state: &state }
            .commit(&actor, &project, &name, draft, &client)
            .await?,
    ))
}

/// One version: `v3`, `3`, `latest` or a custom alias.
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}/versions/{version}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = ArtifactVersion), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
) -> ApiResult<Json<ArtifactVersion>> {
    Ok(Json(
        Artifacts { state: &state }
            .version(&actor, &project, &name, &version)
            .await?,
    ))
}

/// Options of the file list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct FilesQuery {
    /// Give uploaded content download URLs valid for five minutes (recorded in the audit log).
    #[serde(default)]
    download_urls: bool,
}

/// Change a version's description, or merge keys into its metadata (RFC 7396: `null`
/// removes a key). Its files never change.
#[utoipa::path(patch, path = "/projects/{name}/artifacts/{artifact}/versions/{version}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path)),
    request_body = UpdateVersionRequest,
    responses((status = 200, body = ArtifactVersion), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
    JsonBody(req): JsonBody<UpdateVersionRequest>,
) -> ApiResult<Json<ArtifactVersion>> {
    Ok(Json(
        Artifacts { state: &state }
            .update_version(&actor, &project, &name, &version, req, &client)
            .await?,
    ))
}

/// Delete one version (409 naming the aliases or model versions that still hold it). Its
/// number is not reused.
#[utoipa::path(delete, path = "/projects/{name}/artifacts/{artifact}/versions/{version}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
) -> ApiResult<StatusCode> {
    Artifacts { state: &state }
        .delete_version(&actor, &project, &name, &version, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which file of a version.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    /// The file's path in the version.
    path: String,
}

/// An absolute URL that downloads one file of a version with a plain `GET` (no other
/// credentials, for five minutes); recorded in the audit log.
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}/versions/{version}/files/download-url", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path), FileQuery),
    responses((status = 200, body = TransferUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn version_file_download_url(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    base: PublicBase,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
    Query(q): Query<FileQuery>,
) -> ApiResult<Json<TransferUrl>> {
    let f = Artifacts { state: &state }
        .file(&actor, &project, &name, &version, &q.path, &client)
        .await?;
    let url = base.absolute(f.download_url.as_deref().unwrap_or_default());
    Ok(Json(download_transfer_url(
        f.path, url, f.size, f.sha256, f.md5,
    )))
}

/// The manifest of a version, by path.
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}/versions/{version}/files", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path), FilesQuery),
    responses((status = 200, body = Vec<ArtifactFile>), (status = 404, body = ErrorBody)))]
async fn version_files(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
    Query(q): Query<FilesQuery>,
) -> ApiResult<Json<Vec<ArtifactFile>>> {
    Ok(Json(
        Artifacts { state: &state }
            .files(&actor, &project, &name, &version, q.download_urls, &client)
            .await?,
    ))
}

/// Record that a run used this version as an input (lineage).
#[utoipa::path(post, path = "/projects/{name}/artifacts/{artifact}/versions/{version}/use", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path)),
    request_body = UseVersionRequest,
    responses((status = 200, body = ArtifactVersion), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn use_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
    JsonBody(req): JsonBody<UseVersionRequest>,
) -> ApiResult<Json<ArtifactVersion>> {
    Ok(Json(
        Artifacts { state: &state }
            .use_version(&actor, &project, &name, &version, &req.run)
            .await?,
    ))
}

/// How far a lineage query goes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct LineageQuery {
    /// Hops each way, upstream and downstream (1–20, default 4).
    depth: Option<u32>,
}

/// The run that produced a version, the runs that used it, and the graph around it.
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}/versions/{version}/lineage", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("version" = String, Path), LineageQuery),
    responses((status = 200, body = Lineage), (status = 404, body = ErrorBody)))]
async fn version_lineage(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name, version)): Path<(ProjectName, String, String)>,
    Query(q): Query<LineageQuery>,
) -> ApiResult<Json<Lineage>> {
    Ok(Json(
        Artifacts { state: &state }
            .lineage(&actor, &project, &name, &version, q.depth.unwrap_or(4))
            .await?,
    ))
}

/// Aliases of an artifact (`latest` first).
#[utoipa::path(get, path = "/projects/{name}/artifacts/{artifact}/aliases", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path)),
    responses((status = 200, body = Vec<ArtifactAlias>), (status = 404, body = ErrorBody)))]
async fn list_aliases(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name)): Path<(ProjectName, String)>,
) -> ApiResult<Json<Vec<ArtifactAlias>>> {
    Ok(Json(
        Artifacts { state: &state }
            .aliases(&actor, &project, &name)
            .await?,
    ))
}

/// Point a custom alias at a version, moving it if it pointed elsewhere.
#[utoipa::path(put, path = "/projects/{name}/artifacts/{artifact}/aliases/{alias}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("alias" = String, Path)),
    request_body = SetAliasRequest,
    responses((status = 200, body = ArtifactVersion), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_alias(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name, alias)): Path<(ProjectName, String, String)>,
    JsonBody(req): JsonBody<SetAliasRequest>,
) -> ApiResult<Json<ArtifactVersion>> {
    Ok(Json(
        Artifacts { state: &state }
            .set_alias(&actor, &project, &name, &alias, req, &client)
            .await?,
    ))
}

/// Remove a custom alias.
#[utoipa::path(delete, path = "/projects/{name}/artifacts/{artifact}/aliases/{alias}", tag = "artifacts",
    params(("name" = String, Path, description = "project"), ("artifact" = String, Path), ("alias" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_alias(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path((project, name, alias)): Path<(ProjectName, String, String)>,
) -> ApiResult<StatusCode> {
    Artifacts { state: &state }
        .remove_alias(&actor, &project, &name, &alias, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Artifact versions a run used and produced.
#[utoipa::path(get, path = "/runs/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)),
    responses((status = 200, body = RunArtifacts), (status = 404, body = ErrorBody)))]
async fn run_artifacts(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<RunId>,
) -> ApiResult<Json<RunArtifacts>> {
    Ok(Json(Artifacts { state: &state }.of_run(&actor, &id).await?))
}
