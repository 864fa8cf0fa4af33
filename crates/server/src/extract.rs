//! Request extractors that turn every bad input into a clear JSON 4xx.

use std::io::Read;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

/// Reads a request body up to the configured limit, inflating gzip (the limit counts the
/// inflated bytes, and inflation stops as soon as it is passed).
pub async fn read_body(req: Request, limit: usize) -> Result<(Parts, Vec<u8>), ApiError> {
    let (parts, body) = req.into_parts();
    let gzip = match parts.headers.get(header::CONTENT_ENCODING) {
        None => false,
        Some(v) => match v
            .to_str()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "gzip" | "x-gzip" => true,
            "identity" | "" => false,
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "unsupported Content-Encoding {other:?} (use gzip or none)"
                )));
            }
        },
    };
    let raw: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))?;
    if !gzip {
        return Ok((parts, raw.to_vec()));
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ApiError::invalid(format!("request body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok((parts, out))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "request body is larger than the server's limit of {limit} bytes"
    ))
}

/// Parses JSON with a message that says where it went wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid("request body is empty; expected JSON"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

fn check_json_content_type(parts: &Parts) -> Result<(), ApiError> {
    match parts.headers.get(header::CONTENT_TYPE) {
        None => Ok(()),
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            let mime = v.split(';').next().unwrap_or("").trim();
            if mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json") {
                Ok(())
            } else {
                Err(ApiError::UnsupportedMediaType(format!(
                    "expected Content-Type application/json, got {v:?}"
                )))
            }
        }
    }
}

/// A JSON request body (gzip allowed), limited in size.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, bytes) = read_body(req, state.config.max_body_bytes).await?;
        check_json_content_type(&parts)?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// Query-string parameters with JSON errors instead of axum's plain-text ones.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))
    }
}

/// All query pairs, in order (for repeatable parameters such as `filter`).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(QueryPairs)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))
    }
}

/// Who is calling from where, for audit rows and rate limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Peer address.
    pub ip: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
}

impl ClientInfo {
    /// Reads it off a request.
    pub fn from_parts(parts: &Parts) -> ClientInfo {
        ClientInfo {
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
            method: parts.method.to_string(),
            // Nested routers see a stripped URI; audit rows want the one the client sent.
            path: parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_string(), |o| o.0.path().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientInfo::from_parts(parts))
    }
}
