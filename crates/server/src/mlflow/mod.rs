//! The MLflow REST API, a second front door onto the same services and storage: MLflow clients
//! work unchanged with `MLFLOW_TRACKING_URI` pointing here (docs/mlflow.md has the mapping).
//!
//! Served under `/api/2.0/mlflow`, `/ajax-api/2.0/mlflow` and `/api/2.0/mlflow-artifacts`.
//! Every handler goes through the native services (runs, metrics, files, projects), so
//! authorization, audit and limits are the same as the native API's; failures are answered in
//! MLflow's form (`error_code`, `message`) by [`translate_errors`].

mod artifacts;
mod experiments;
mod models;
mod registry;
mod runs;
pub mod search;
mod store;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Where the MLflow API is served.
const PREFIXES: [&str; 4] = [
    "/api/2.0/mlflow/",
    "/ajax-api/2.0/mlflow/",
    "/api/2.0/mlflow-artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/",
];

/// Whether a request path belongs to the MLflow API.
pub fn is_mlflow_path(path: &str) -> bool {
    PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The MLflow routes.
pub fn router() -> Router<AppState> {
    let tracking = Router::new()
        .route("/experiments/create", post(experiments::create))
        .route(
            "/experiments/get",
            get(experiments::get).post(experiments::get),
        )
        .route(
            "/experiments/get-by-name",
            get(experiments::get_by_name).post(experiments::get_by_name),
        )
        .route(
            "/experiments/search",
            get(experiments::search).post(experiments::search),
        )
        .route(
            "/experiments/list",
            get(experiments::search).post(experiments::search),
        )
        .route("/experiments/update", post(experiments::update))
        .route("/experiments/delete", post(experiments::delete))
        .route("/experiments/restore", post(experiments::restore))
        .route(
            "/experiments/set-experiment-tag",
            post(experiments::set_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(experiments::delete_tag),
        )
        .route("/runs/create", post(runs::create))
        .route("/runs/get", get(runs::get).post(runs::get))
        .route("/runs/update", post(runs::update))
        .route("/runs/delete", post(runs::delete))
        .route("/runs/restore", post(runs::restore))
        .route("/runs/search", get(runs::search).post(runs::search))
        .route("/runs/log-metric", post(runs::log_metric))
        .route("/runs/log-parameter", post(runs::log_param))
        .route("/runs/log-batch", post(runs::log_batch))
        .route("/runs/log-inputs", post(runs::log_inputs))
        .route("/runs/set-tag", post(runs::set_tag))
        .route("/runs/delete-tag", post(runs::delete_tag))
        .route(
            "/metrics/get-history",
            get(runs::get_history).post(runs::get_history),
        )
        .route(
            "/metrics/get-history-bulk-interval",
            get(runs::get_history_bulk_interval).post(runs::get_history_bulk_interval),
        )
        .route(
            "/artifacts/list",
            get(artifacts::list).post(artifacts::list),
        )
        .route(
            "/logged-models/search",
            post(models::search).get(models::search),
        )
        .route("/logged-models", post(models::create))
        .route(
            "/logged-models/{model_id}",
            get(models::get)
                .patch(models::finalize)
                .delete(models::delete),
        )
        .route("/logged-models/{model_id}/tags", patch(models::set_tags))
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            delete(models::delete_tag),
        )
        .route("/logged-models/{model_id}/params", post(models::log_params))
        .route("/runs/outputs", post(models::log_outputs))
        .route("/registered-models/create", post(registry::create_model))
        .route(
            "/registered-models/get",
            get(registry::get_model).post(registry::get_model),
        )
        .route(
            "/registered-models/update",
            patch(registry::update_model).post(registry::update_model),
        )
        .route("/registered-models/rename", post(registry::rename_model))
        .route(
            "/registered-models/delete",
            delete(registry::delete_model).post(registry::delete_model),
        )
        .route(
            "/registered-models/search",
            get(registry::search_models).post(registry::search_models),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(registry::latest_versions).get(registry::latest_versions),
        )
        .route("/registered-models/set-tag", post(registry::set_model_tag))
        .route(
            "/registered-models/delete-tag",
            delete(registry::delete_model_tag).post(registry::delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(registry::set_alias)
                .delete(registry::delete_alias)
                .get(registry::get_by_alias),
        )
        .route("/model-versions/create", post(registry::create_version))
        .route(
            "/model-versions/get",
            get(registry::get_version).post(registry::get_version),
        )
        .route(
            "/model-versions/update",
            patch(registry::update_version).post(registry::update_version),
        )
        .route(
            "/model-versions/delete",
            delete(registry::delete_version).post(registry::delete_version),
        )
        .route(
            "/model-versions/search",
            get(registry::search_versions).post(registry::search_versions),
        )
        .route(
            "/model-versions/get-download-uri",
            get(registry::download_uri).post(registry::download_uri),
        )
        .route(
            "/model-versions/transition-stage",
            post(registry::transition),
        )
        .route("/model-versions/set-tag", post(registry::set_version_tag))
        .route(
            "/model-versions/delete-tag",
            delete(registry::delete_version_tag).post(registry::delete_version_tag),
        );
    let proxy = artifacts::proxy_router();
    Router::new()
        .nest("/api/2.0/mlflow", tracking.clone())
        .nest("/ajax-api/2.0/mlflow", tracking)
        .nest("/api/2.0/mlflow-artifacts", proxy.clone())
        .nest("/ajax-api/2.0/mlflow-artifacts", proxy)
}

/// MLflow's error codes, and the HTTP status MLflow answers each with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400.
    InvalidParameterValue,
    /// 400.
    ResourceAlreadyExists,
    /// 404.
    ResourceDoesNotExist,
    /// 404: no such route.
    EndpointNotFound,
    /// 401.
    Unauthenticated,
    /// 403.
    PermissionDenied,
    /// 429.
    RequestLimitExceeded,
    /// 503.
    TemporarilyUnavailable,
    /// 400.
    BadRequest,
    /// 409.
    ResourceConflict,
    /// 400: the resource's state forbids the change (e.g. a promotion without approval).
    InvalidState,
    /// 500.
    InternalError,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Code::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Code::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Code::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            Code::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Code::BadRequest => "BAD_REQUEST",
            Code::ResourceConflict => "RESOURCE_CONFLICT",
            Code::InvalidState => "INVALID_STATE",
            Code::InternalError => "INTERNAL_ERROR",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::InvalidParameterValue
            | Code::ResourceAlreadyExists
            | Code::BadRequest
            | Code::InvalidState => StatusCode::BAD_REQUEST,
            Code::ResourceDoesNotExist | Code::EndpointNotFound => StatusCode::NOT_FOUND,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::RequestLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Code::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::ResourceConflict => StatusCode::CONFLICT,
            Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The MLflow code of a native error (its status and code).
    fn of_native(status: StatusCode, code: &str, message: &str) -> Code {
        match (status.as_u16(), code) {
            (404, _) if message.starts_with("no such endpoint") => Code::EndpointNotFound,
            (405, _) => Code::EndpointNotFound,
            (404, _) => Code::ResourceDoesNotExist,
            (409, _) => Code::ResourceAlreadyExists,
            (401, _) => Code::Unauthenticated,
            (403, _) => Code::PermissionDenied,
            (429, _) => Code::RequestLimitExceeded,
            (503, _) => Code::TemporarilyUnavailable,
            (400 | 406 | 408 | 411 | 413 | 415 | 422, _) => Code::InvalidParameterValue,
            _ => Code::InternalError,
        }
    }
}

/// Middleware (outside authentication, so its refusals are translated too): on the MLflow
/// API's paths, a native JSON error (`{"error": {"code", "message"}}`) is answered in MLflow's
/// form, `{"error_code", "message"}`, with the status MLflow gives that code. Headers such as
/// `Retry-After` are kept.
pub async fn translate_errors(req: Request, next: Next) -> Response {
    if !is_mlflow_path(req.uri().path()) {
        return next.run(req).await;
    }
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (status, "").into_response();
    };
    let native: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(err) = native.get("error") else {
        // Already in MLflow's form (or not JSON): unchanged.
        return Response::from_parts(parts, Body::from(bytes));
    };
    let code = err.get("code").and_then(Value::as_str).unwrap_or("");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("request failed");
    let mapped = Code::of_native(status, code, message);
    let body = json!({ "error_code": mapped.as_str(), "message": message }).to_string();
    parts.status = mapped.status();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// An error answered in MLflow's form with a code the native errors do not carry (e.g.
/// `RESOURCE_ALREADY_EXISTS` for an experiment name, which is not a conflict of ours).
#[derive(Debug)]
pub struct MlflowError {
    code: Code,
    message: String,
}

impl MlflowError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> MlflowError {
        MlflowError {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.code.as_str(), "message": self.message });
        (self.code.status(), axum::Json(body)).into_response()
    }
}

/// What a handler fails with: a native error (translated by [`translate_errors`]) or an
/// MLflow one.
#[derive(Debug)]
pub enum Failure {
    /// A native error.
    Api(ApiError),
    /// An MLflow error.
    Mlflow(MlflowError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::Api(e)
    }
}

impl From<MlflowError> for Failure {
    fn from(e: MlflowError) -> Failure {
        Failure::Mlflow(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Mlflow(e) => e.into_response(),
        }
    }
}

/// A handler's result.
pub type MlResult<T> = Result<T, Failure>;

/// `INVALID_PARAMETER_VALUE` with `message`.
pub fn invalid(message: impl Into<String>) -> Failure {
    Failure::Mlflow(MlflowError::new(Code::InvalidParameterValue, message))
}

/// `RESOURCE_DOES_NOT_EXIST` with `message`.
pub fn missing(message: impl Into<String>) -> Failure {
    Failure::Mlflow(MlflowError::new(Code::ResourceDoesNotExist, message))
}

/// A request's parameters: the query string and, for a JSON body, its fields (MLflow clients
/// send GET requests with a query string and POST requests with JSON; both are accepted on
/// every route). A repeated query parameter is a list.
#[derive(Debug, Default)]
pub struct Params(pub Map<String, Value>);

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let mut map = Map::new();
        let query = req.uri().query().unwrap_or("").to_string();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&query)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))?;
        for (k, v) in pairs {
            match map.get_mut(&k) {
                None => {
                    map.insert(k, Value::String(v));
                }
                Some(Value::Array(a)) => a.push(Value::String(v)),
                Some(prev) => {
                    let first = prev.take();
                    *prev = Value::Array(vec![first, Value::String(v)]);
                }
            }
        }
        let (_, body) = crate::extract::read_body(req, state.config.max_body_bytes).await?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::invalid(format!("the request body is not valid JSON: {e}"))
            })?;
            let Value::Object(fields) = parsed else {
                return Err(ApiError::invalid("the request body must be a JSON object"));
            };
            map.extend(fields);
        }
        Ok(Params(map))
    }
}

impl Params {
    /// A string parameter (a number is taken as its text).
    pub fn str(&self, key: &str) -> MlResult<Option<String>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(invalid(format!(
                "Invalid value {other} for parameter '{key}' supplied: it must be a string"
            ))),
        }
    }

    /// A required string parameter.
    pub fn required(&self, key: &str) -> MlResult<String> {
        self.str(key)?.ok_or_else(|| missing_param(key))
    }

    /// The run id, as `run_id` or the older `run_uuid`.
    pub fn run_id(&self) -> MlResult<wanllmdb_api_types::RunId> {
        let raw = match self.str("run_id")? {
            Some(s) if !s.is_empty() => s,
            _ => self
                .str("run_uuid")?
                .ok_or_else(|| missing_param("run_id"))?,
        };
        wanllmdb_api_types::RunId::parse(&raw)
            .map_err(|_| missing(format!("Run with id={raw} not found")))
    }

    /// An integer parameter (a number, or a string holding one).
    pub fn i64(&self, key: &str) -> MlResult<Option<i64>> {
        let bad = |v: &Value| {
            invalid(format!(
                "Invalid value {v} for parameter '{key}' supplied: it must be an integer"
            ))
        };
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| bad(v)),
            Some(v @ Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(v)),
            Some(v) => Err(bad(v)),
        }
    }

    /// A list of strings (a JSON list, a repeated query parameter, or one value).
    pub fn strings(&self, key: &str) -> MlResult<Vec<String>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(invalid(format!(
                        "Invalid value {other} in parameter '{key}': it must be a list of strings"
                    ))),
                })
                .collect(),
            Some(other) => Err(invalid(format!(
                "Invalid value {other} for parameter '{key}': it must be a list of strings"
            ))),
        }
    }

    /// A list of objects (e.g. `metrics` of log-batch).
    pub fn objects(&self, key: &str) -> MlResult<Vec<Params>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Params(m.clone())),
                    other => Err(invalid(format!(
                        "Invalid value {other} for {key}[{i}]: it must be an object"
                    ))),
                })
                .collect(),
            Some(other) => Err(invalid(format!(
                "Invalid value {other} for parameter '{key}': it must be a list"
            ))),
        }
    }
}

/// MLflow's message for a required parameter that is missing.
fn missing_param(key: &str) -> Failure {
    invalid(format!(
        "Missing value for required parameter '{key}'. See the API docs for more information about request parameters."
    ))
}

/// A float as MLflow's JSON writes it: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub fn float_json(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v.is_infinite() {
        Value::String(if v > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        json!(v)
    }
}

/// A float parameter as MLflow clients send one (numbers, or the strings of [`float_json`]).
pub fn parse_float(v: &Value, what: &str) -> MlResult<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| invalid(format!("{what} is not a number"))),
        Value::String(s) => match s.trim() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            t => t
                .parse()
                .map_err(|_| invalid(format!("Invalid value {v} for {what}: it must be a number"))),
        },
        Value::Null => Err(invalid(format!(
            "Missing value for required parameter '{what}'. See the API docs for more information about request parameters."
        ))),
        other => Err(invalid(format!(
            "Invalid value {other} for {what}: it must be a number"
        ))),
    }
}

/// An empty JSON object, MLflow's answer to most writes.
pub fn empty() -> axum::Json<Value> {
    axum::Json(json!({}))
}

/// Microseconds (ours) to milliseconds (MLflow's).
pub fn ms(us: i64) -> i64 {
    us.div_euclid(1000)
}

/// An offset page token (the native API's opaque cursor, `o:<offset>`).
pub fn page_token(offset: usize) -> String {
    crate::paging::cursor(&format!("o:{offset}"))
}

/// The offset a page token holds.
pub fn parse_page_token(token: Option<&str>) -> MlResult<usize> {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    crate::paging::position(t)
        .ok()
        .and_then(|p| p.strip_prefix("o:")?.parse().ok())
        .ok_or_else(|| invalid(format!("Invalid page token {t:?}")))
}

/// A page size: `max_results` or `default`, at most `max`.
pub fn max_results(p: &Params, default: i64, max: i64) -> MlResult<usize> {
    let n = p.i64("max_results")?.unwrap_or(default);
    if n <= 0 || n > max {
        return Err(invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {max} and greater than 0."
        )));
    }
    Ok(n as usize)
}

/// Checks a value against MLflow's limits, with MLflow's wording.
pub fn check_len(what: &str, value: &str, max: usize) -> MlResult<()> {
    if value.len() > max {
        return Err(invalid(format!(
            "'{what}' exceeds the maximum length of {max} characters"
        )));
    }
    ApiError::check_text(what, value).map_err(Failure::Api)
}

/// Records a change made through the MLflow API that no native service recorded (the native
/// services audit what they do themselves).
pub async fn audit(
    state: &AppState,
    actor: &crate::auth::Actor,
    client: &crate::extract::ClientInfo,
    action: crate::audit::AuditAction,
    resource: String,
    metadata: Value,
) {
    let ev = crate::audit::AuditEvent::new(action)
        .resource(resource)
        .status(200)
        .metadata(metadata)
        .client(client)
        .actor(actor);
    crate::audit::record(&state.store, ev).await;
}

/// `Ok` unless the caller is anonymous: the MLflow API writes only for signed-in callers.
pub fn require_user(actor: &crate::auth::Actor) -> ApiResult<()> {
    actor.require_user().map(drop)
}
