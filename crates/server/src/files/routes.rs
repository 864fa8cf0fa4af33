//! HTTP handlers for run files (/api/v1/runs/{id}/files, /file) and signed blob transfers
//! (/api/v1/blobs/{token}).

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
use wanllmdb_api_types::files::{
    BatchUploadResult, BundleRequest, CompleteUploadRequest, GcReport, PutFilesRequest,
    PutFilesResponse, RegisterFileRequest, RunFile, StagedFile, TransferUrl, UploadUrlRequest,
};

use super::{Files, UploadReceipt};
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::extract::{ClientInfo, JsonBody, Path, PublicBase, Query};
use crate::state::AppState;
use wanllmdb_api_types::RunId;

/// The run-file and blob routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_files, list_files))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(download_blob, upload_blob))
        .routes(routes!(complete_upload))
        .routes(routes!(upload_batch))
        .routes(routes!(download_bundle))
        .routes(routes!(collect_garbage))
        .routes(routes!(upload_url))
        .routes(routes!(upload_staged))
        .routes(routes!(register_file))
        .routes(routes!(download_url))
        // Uploads are limited by the size their URL was signed for, not the JSON body limit.
        .layer(DefaultBodyLimit::disable())
}

/// Attach files to a run: what the project already holds is attached at once, the rest
/// gets signed upload URLs.
#[utoipa::path(post, path = "/runs/{id}/files", tag = "files", params(("id" = String, Path)),
    request_body = PutFilesRequest,
    responses((status = 200, body = PutFilesResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_files(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<PutFilesRequest>,
) -> ApiResult<Json<PutFilesResponse>> {
    Ok(Json(
        Files { state: &state }
            .put(&actor, &id, req, &client)
            .await?,
    ))
}

/// Options of the file list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Also give each file a download URL valid for five minutes (recorded in the audit log).
    #[serde(default)]
    download_urls: bool,
}

/// Files of a run, by path.
#[utoipa::path(get, path = "/runs/{id}/files", tag = "files", params(("id" = String, Path), ListQuery),
    responses((status = 200, body = Vec<RunFile>), (status = 404, body = ErrorBody)))]
async fn list_files(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<RunFile>>> {
    Ok(Json(
        Files { state: &state }
            .list(&actor, &id, q.download_urls, &client)
            .await?,
    ))
}

/// Which file.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    /// The file's path, e.g. `checkpoints/last.pt`.
    path: String,
}

/// One file, with a download URL valid for five minutes (recorded in the audit log).
#[utoipa::path(get, path = "/runs/{id}/file", tag = "files", params(("id" = String, Path), FileQuery),
    responses((status = 200, body = RunFile), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_file(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    Query(q): Query<FileQuery>,
) -> ApiResult<Json<RunFile>> {
    Ok(Json(
        Files { state: &state }
            .get(&actor, &id, &q.path, &client)
            .await?,
    ))
}

/// Detach a file from a run.
#[utoipa::path(delete, path = "/runs/{id}/file", tag = "files", params(("id" = String, Path), FileQuery),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_file(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    Query(q): Query<FileQuery>,
) -> ApiResult<StatusCode> {
    Files { state: &state }
        .delete(&actor, &id, &q.path, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Download bytes with a signed URL (from `GET /runs/{id}/file`). No other credentials.
#[utoipa::path(get, path = "/blobs/{token}", tag = "files", params(("token" = String, Path)),
    responses((status = 200, description = "the bytes", content_type = "application/octet-stream"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(()))]
async fn download_blob(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    Files { state: &state }.send(&token).await
}

/// Upload bytes with a signed URL (from `POST /runs/{id}/files` or an artifact version draft). They must be exactly the
/// announced size and hash to the announced SHA-256, or nothing is stored.
#[utoipa::path(put, path = "/blobs/{token}", tag = "files", params(("token" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = UploadReceipt, description = "the run file, or for an artifact draft the content received"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(()))]
async fn upload_blob(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> ApiResult<Json<UploadReceipt>> {
    Ok(Json(Files { state: &state }.receive(&token, body).await?))
}

/// After putting bytes to a presigned object-storage URL: the server reads them back, checks
/// size and SHA-256, moves them into place and records the file (or the draft's content).
/// Uploads sent in parts name every part with its ETag; others send an empty body.
#[utoipa::path(post, path = "/blobs/{token}/complete", tag = "files", params(("token" = String, Path)),
    request_body(content = CompleteUploadRequest, description = "only for uploads sent in parts"),
    responses((status = 200, body = UploadReceipt), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(()))]
async fn complete_upload(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<UploadReceipt>> {
    let req: CompleteUploadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CompleteUploadRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| crate::error::ApiError::invalid(format!("invalid completion: {e}")))?
    };
    Ok(Json(Files { state: &state }.complete(&token, req).await?))
}

/// Upload many small files in one request (local storage): the body is a sequence of frames,
/// each a 2-byte big-endian length, an upload URL's token, then exactly the bytes it was signed
/// for (at most 4 MiB per item, 1,000 items, 64 MiB in all). Each item is checked against its
/// digest on its own; the answer says which were stored.
#[utoipa::path(post, path = "/blobs/batch", tag = "files",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = BatchUploadResult), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(()))]
async fn upload_batch(
    State(state): State<AppState>,
    body: Body,
) -> ApiResult<Json<BatchUploadResult>> {
    Ok(Json(Files { state: &state }.receive_batch(body).await?))
}

/// Download many small files in one answer (local storage). The body is, per token in the
/// order given: one status byte (0: the bytes follow; 1: missing), the size as 8 bytes
/// big-endian, then the bytes. Every token must be a valid download token.
#[utoipa::path(post, path = "/blobs/bundle", tag = "files", request_body = BundleRequest,
    responses((status = 200, description = "the framed bytes", content_type = "application/octet-stream"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(()))]
async fn download_bundle(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<BundleRequest>,
) -> ApiResult<Response> {
    Files { state: &state }.send_bundle(req).await
}

/// Options of garbage collection.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct GcQuery {
    /// Only report what would be deleted.
    #[serde(default)]
    dry_run: bool,
}

/// Delete blobs nothing refers to (and abandoned partial uploads). Server administrators only.
/// Blobs an upload touched within the last hour are kept, so uploads in progress are safe.
#[utoipa::path(post, path = "/admin/blobs/gc", tag = "files", params(GcQuery),
    responses((status = 200, body = GcReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn collect_garbage(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Query(q): Query<GcQuery>,
) -> ApiResult<Json<GcReport>> {
    Ok(Json(
        Files { state: &state }
            .collect_garbage(&actor, q.dry_run, &client)
            .await?,
    ))
}

/// An absolute URL to upload one file by name: `PUT` the raw bytes to it (no other
/// credentials, for an hour), then register the file. For clients that know a file's name
/// before its content.
#[utoipa::path(post, path = "/runs/{id}/files/upload-url", tag = "files", params(("id" = String, Path)),
    request_body = UploadUrlRequest,
    responses((status = 200, body = TransferUrl), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn upload_url(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    base: PublicBase,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<UploadUrlRequest>,
) -> ApiResult<Json<TransferUrl>> {
    Ok(Json(
        Files { state: &state }
            .upload_url(&actor, &id, &req.path, &base, &client)
            .await?,
    ))
}

/// Upload the bytes of a file to the URL `upload-url` gave (local storage). The body is the
/// file as it is; the answer says what arrived. The file is attached when it is registered.
#[utoipa::path(put, path = "/uploads/{token}", tag = "files", params(("token" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = StagedFile), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(()))]
async fn upload_staged(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> ApiResult<Json<StagedFile>> {
    Ok(Json(
        Files { state: &state }.receive_staged(&token, body).await?,
    ))
}

/// Attach a file uploaded to a name-first upload URL. What arrived must be exactly `size`
/// bytes (and match `md5` / `sha256` when given); otherwise nothing is attached and the
/// answer says what differs.
#[utoipa::path(post, path = "/runs/{id}/files/register", tag = "files", params(("id" = String, Path)),
    request_body = RegisterFileRequest,
    responses((status = 201, body = RunFile), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn register_file(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<RunId>,
    JsonBody(req): JsonBody<RegisterFileRequest>,
) -> ApiResult<(StatusCode, Json<RunFile>)> {
    let f = Files { state: &state }
        .register(&actor, &id, req, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// An absolute URL that downloads one file of a run with a plain `GET` (no other
/// credentials, for five minutes); recorded in the audit log.
#[utoipa::path(get, path = "/runs/{id}/files/download-url", tag = "files", params(("id" = String, Path), FileQuery),
    responses((status = 200, body = TransferUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn download_url(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    base: PublicBase,
    Path(id): Path<RunId>,
    Query(q): Query<FileQuery>,
) -> ApiResult<Json<TransferUrl>> {
    Ok(Json(
        Files { state: &state }
            .download_url_for(&actor, &id, &q.path, &base, &client)
            .await?,
    ))
}
