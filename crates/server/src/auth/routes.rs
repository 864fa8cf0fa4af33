//! HTTP handlers for /api/v1/auth.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
use wanllmdb_api_types::auth::{
    ApiKey, ChangePasswordRequest, CreateApiKeyRequest, CreatedApiKey, LoginRequest, LogoutRequest,
    RefreshRequest, RegisterRequest, TokenPair, User,
};

use super::{Accounts, Actor};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientInfo, FormOrJson, JsonBody, Path, parse_json, read_body};
use crate::state::AppState;

/// The auth routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
        .layer(axum::middleware::map_response(no_store))
}

/// Answers carrying tokens, keys or account details are kept out of every cache (browsers,
/// proxies): `Cache-Control: no-store`.
pub async fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Create an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security((), ("bearer" = [])))]
async fn register(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = Accounts { state: &state }
        .register(&client, &actor, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Log in with a username (or email) and password, as JSON or as the OAuth2 password-flow form.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body(content(
        (LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(()))]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    FormOrJson(req): FormOrJson<LoginRequest>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let accounts = Accounts { state: &state };
    match accounts.login(&client, &req.username, &req.password).await {
        Ok(pair) => Json(pair).into_response(),
        // The login records its own refusals, a disabled account's 403 included.
        Err(e) => crate::audit::already_recorded(e.into_response()),
    }
}

/// Exchange a refresh token for a new token pair. The body is JSON or the form
/// `refresh_token=…`.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body(content(
        (RefreshRequest = "application/json"), (RefreshRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)),
    security(()))]
async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    FormOrJson(req): FormOrJson<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    Ok(Json(
        Accounts { state: &state }
            .refresh(&client, &req.refresh_token)
            .await?,
    ))
}

/// End the current session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    req: Request,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let (_, bytes) = read_body(req, state.config.max_body_bytes).await?;
    let body: LogoutRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        parse_json(&bytes)?
    };
    Accounts { state: &state }
        .logout(&client, user, body.refresh_token.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling user.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = User), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn me(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<User>> {
    let user = actor.require_user()?;
    Ok(Json(super::me(&state, user).await?))
}

/// Change the caller's own password. The caller's other sessions end; API keys stay valid.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    Accounts { state: &state }
        .change_password(&client, user, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an API key (shown once).
#[utoipa::path(post, path = "/auth/api-keys", tag = "auth", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 401, body = ErrorBody)))]
async fn create_api_key(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    JsonBody(req): JsonBody<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let user = actor.require_user()?;
    let key = Accounts { state: &state }
        .create_api_key(&client, user, req.name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// List the caller's API keys.
#[utoipa::path(get, path = "/auth/api-keys", tag = "auth",
    responses((status = 200, body = Vec<ApiKey>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_api_keys(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let user = actor.require_user()?;
    Ok(Json(Accounts { state: &state }.list_api_keys(user).await?))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/auth/api-keys/{id}", tag = "auth",
    params(("id" = i64, Path, description = "API key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("API key id must be a number, got {id:?}")))?;
    Accounts { state: &state }
        .revoke_api_key(&client, user, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
