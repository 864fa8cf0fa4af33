//! HTTP handlers for /api/v1/admin/users and /api/v1/admin/api-keys (server administrators).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::admin::{
    AdminApiKey, AdminUser, CreateUserRequest, CreatedUser, DisabledUser, PasswordReset,
    ResetPasswordRequest,
};
use wanllmdb_api_types::{ErrorBody, Page};

use super::Actor;
use super::admin::AccountAdmin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientInfo, JsonBody, Path, Query, parse_json, read_body};
use crate::state::AppState;

/// The administration routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(show_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(promote_user))
        .routes(routes!(demote_user))
        .routes(routes!(reset_password))
        .routes(routes!(list_api_keys))
        .routes(routes!(revoke_api_key))
        // Created accounts and reset passwords come back in the answer.
        .layer(axum::middleware::map_response(super::routes::no_store))
}

/// A page size or nothing, with a message that says what a page size is.
fn parse_limit(limit: Option<&str>) -> ApiResult<Option<i64>> {
    limit
        .map(|l| {
            l.parse::<i64>().map_err(|_| {
                ApiError::invalid(format!("limit={l:?} must be a number from 1 to 1000"))
            })
        })
        .transpose()
}

/// Filters and page of the account list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    /// Only accounts whose username or email contains this (case-insensitive).
    q: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Filters and page of the API key list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ApiKeysQuery {
    /// Only this account's keys (username).
    user: Option<String>,
    /// Page size (1–1000, default 100).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Every account, by username (server administrators).
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(UsersQuery),
    responses((status = 200, body = Page<AdminUser>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Json<Page<AdminUser>>> {
    let limit = parse_limit(q.limit.as_deref())?;
    Ok(Json(
        AccountAdmin { state: &state }
            .list_users(&actor, q.q.as_deref(), limit, q.cursor.as_deref())
            .await?,
    ))
}

/// Create an account; without a password, a generated one is returned once.
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let created = AccountAdmin { state: &state }
        .create_user(&actor, &client, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One account.
#[utoipa::path(get, path = "/admin/users/{username}", tag = "admin",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, body = AdminUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn show_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(username): Path<String>,
) -> ApiResult<Json<AdminUser>> {
    Ok(Json(
        AccountAdmin { state: &state }
            .user(&actor, &username)
            .await?,
    ))
}

/// Disable an account: it cannot log in, and its API keys, sessions and access tokens are
/// revoked at once.
#[utoipa::path(post, path = "/admin/users/{username}/disable", tag = "admin",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, body = DisabledUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already disabled, your own account, or the last enabled administrator", body = ErrorBody)))]
async fn disable_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(username): Path<String>,
) -> ApiResult<Json<DisabledUser>> {
    Ok(Json(
        AccountAdmin { state: &state }
            .disable(&actor, &client, &username)
            .await?,
    ))
}

/// Enable a disabled account (keys revoked when it was disabled stay revoked).
#[utoipa::path(post, path = "/admin/users/{username}/enable", tag = "admin",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, body = AdminUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not disabled", body = ErrorBody)))]
async fn enable_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(username): Path<String>,
) -> ApiResult<Json<AdminUser>> {
    Ok(Json(
        AccountAdmin { state: &state }
            .enable(&actor, &client, &username)
            .await?,
    ))
}

/// Make an account a server administrator.
#[utoipa::path(post, path = "/admin/users/{username}/promote", tag = "admin",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, body = AdminUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already an administrator", body = ErrorBody)))]
async fn promote_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(username): Path<String>,
) -> ApiResult<Json<AdminUser>> {
    Ok(Json(
        AccountAdmin { state: &state }
            .promote(&actor, &client, &username)
            .await?,
    ))
}

/// Make a server administrator an ordinary account.
#[utoipa::path(post, path = "/admin/users/{username}/demote", tag = "admin",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, body = AdminUser), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not an administrator, your own account, or the last enabled administrator", body = ErrorBody)))]
async fn demote_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(username): Path<String>,
) -> ApiResult<Json<AdminUser>> {
    Ok(Json(
        AccountAdmin { state: &state }
            .demote(&actor, &client, &username)
            .await?,
    ))
}

/// Set a new password (given, or generated and returned once) and end the account's sessions.
#[utoipa::path(post, path = "/admin/users/{username}/reset-password", tag = "admin",
    params(("username" = String, Path, description = "username")),
    request_body(content = ResetPasswordRequest, description = "optional: an empty body generates a password"),
    responses((status = 200, body = PasswordReset), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(username): Path<String>,
    req: Request,
) -> ApiResult<Json<PasswordReset>> {
    let (_, bytes) = read_body(req, state.config.max_body_bytes).await?;
    let body: ResetPasswordRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ResetPasswordRequest::default()
    } else {
        parse_json(&bytes)?
    };
    Ok(Json(
        AccountAdmin { state: &state }
            .reset_password(&actor, &client, &username, body.password.as_deref())
            .await?,
    ))
}

/// Active API keys of every account, or of one (never the secrets).
#[utoipa::path(get, path = "/admin/api-keys", tag = "admin", params(ApiKeysQuery),
    responses((status = 200, body = Page<AdminApiKey>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_api_keys(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ApiKeysQuery>,
) -> ApiResult<Json<Page<AdminApiKey>>> {
    let limit = parse_limit(q.limit.as_deref())?;
    Ok(Json(
        AccountAdmin { state: &state }
            .list_api_keys(&actor, q.user.as_deref(), limit, q.cursor.as_deref())
            .await?,
    ))
}

/// Revoke any account's API key.
#[utoipa::path(delete, path = "/admin/api-keys/{id}", tag = "admin",
    params(("id" = i64, Path, description = "API key id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("API key id must be a number, got {id:?}")))?;
    AccountAdmin { state: &state }
        .revoke_api_key(&actor, &client, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
