//! HTTP client for the wanLLMDB API: one place that adds the key, decodes the JSON error
//! body, and turns failures into messages with a next step.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wanllmdb_api_types::{ErrorBody, ErrorCode};

use crate::config::Settings;
use crate::error::CliError;

/// A failed API call.
#[derive(Debug)]
pub enum ApiError {
    /// The server could not be reached (or the connection broke).
    Unreachable(String),
    /// The server answered with an error status.
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code from the error body.
        code: ErrorCode,
        /// Human-readable message from the error body.
        message: String,
    },
    /// The answer could not be decoded.
    Decode(String),
}

impl ApiError {
    /// Whether this is the server saying a project does not exist.
    pub fn is_missing_project(&self) -> bool {
        matches!(self, ApiError::Status { status, code, message }
            if *status == reqwest::StatusCode::NOT_FOUND && *code == ErrorCode::NotFound && message.contains("project"))
    }

    /// Worth retrying later: the network, a busy or restarting server.
    pub fn transient(&self) -> bool {
        match self {
            ApiError::Unreachable(_) => true,
            ApiError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Decode(_) => false,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(m) => write!(f, "{m}"),
            ApiError::Status {
                status, message, ..
            } => write!(f, "{message} ({})", status.as_u16()),
            ApiError::Decode(m) => write!(f, "unexpected answer from the server: {m}"),
        }
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> CliError {
        match &e {
            ApiError::Unreachable(m) => CliError::user(m.clone()).hint(
                "is `wanllmdb server` running there? pass --host URL or set WANLLMDB_BASE_URL",
            ),
            ApiError::Status {
                status, message, ..
            } => match *status {
                StatusCode::UNAUTHORIZED => CliError::user(format!(
                    "the server did not accept the credentials: {message}"
                ))
                .hint("run `wanllmdb login`, or set WANLLMDB_API_KEY"),
                s if s.is_client_error() => CliError::user(message.clone()),
                _ => CliError::unexpected(format!("server error: {message}")),
            },
            ApiError::Decode(_) => CliError::unexpected(e.to_string()),
        }
    }
}

/// The API at one server, with one key.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Api {
    /// A client for the server and key in `settings`.
    pub fn new(settings: &Settings) -> Result<Api, CliError> {
        Api::with(&settings.host, settings.api_key.clone())
    }

    /// A client for `base` with an optional key.
    pub fn with(base: &str, key: Option<String>) -> Result<Api, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("wanllmdb-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::unexpected(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The API key, for the WebSocket handshake.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error.code, b.error.message),
            // Not one of ours (a proxy's page, say): the status and the text are all there is.
            Err(_) => (
                ErrorCode::Unknown,
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text
                },
            ),
        };
        Err(ApiError::Status {
            status,
            code,
            message,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ApiError {
        let mut msg = format!("cannot reach the server at {}", self.base);
        if e.is_timeout() {
            msg.push_str(": the request timed out");
        } else if e.is_connect() {
            msg.push_str(": connection refused or host unknown");
        } else {
            let mut src: Option<&dyn std::error::Error> = Some(e);
            let mut last = String::new();
            while let Some(s) = src {
                last = s.to_string();
                src = s.source();
            }
            msg.push_str(": ");
            msg.push_str(&last);
        }
        ApiError::Unreachable(msg)
    }

    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = self.send(req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Unreachable(format!("connection broke while reading: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// `GET path` with query pairs.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        self.json(self.request(Method::GET, path).query(query))
            .await
    }

    /// Follows `next_cursor` through a paged list until `limit` items are read.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: usize,
    ) -> Result<Vec<T>, ApiError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", limit.clamp(1, 500).to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: wanllmdb_api_types::Page<T> = self.get(path, &q).await?;
            items.extend(page.items);
            cursor = page.next_cursor;
            if cursor.is_none() || items.len() >= limit {
                items.truncate(limit);
                return Ok(items);
            }
        }
    }

    /// `GET path`, returning the body as text.
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> Result<String, ApiError> {
        let resp = self
            .send(self.request(Method::GET, path).query(query))
            .await?;
        resp.text()
            .await
            .map_err(|e| ApiError::Unreachable(format!("connection broke while reading: {e}")))
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// `POST path` with a body already in bytes (`application/json` already serialised, or
    /// `application/octet-stream`).
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<T, ApiError> {
        self.json(
            self.request(Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// `POST path` with a JSON body, for reading the answer as a stream.
    pub async fn post_for_stream<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, ApiError> {
        self.send(
            self.request(Method::POST, path)
                .timeout(Duration::from_secs(3600))
                .json(body),
        )
        .await
    }

    /// `PUT` a streamed body to a transfer URL (absolute, or relative to the server); the
    /// answer's body is not needed (object stores send none), its `ETag` is returned.
    pub async fn put_stream(
        &self,
        url: &str,
        body: reqwest::Body,
        size: u64,
    ) -> Result<Option<String>, ApiError> {
        let url = self.absolute(url);
        // Transfer URLs carry their own authorisation; the API key is not sent along.
        let req = self
            .http
            .put(url)
            .timeout(Duration::from_secs(24 * 3600))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body);
        let resp = self.send(req).await?;
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        resp.bytes()
            .await
            .map_err(|e| ApiError::Unreachable(format!("connection broke while reading: {e}")))?;
        Ok(etag)
    }

    /// `GET` a transfer URL, for streaming the body.
    pub async fn get_stream(&self, url: &str) -> Result<reqwest::Response, ApiError> {
        let url = self.absolute(url);
        self.send(self.http.get(url).timeout(Duration::from_secs(24 * 3600)))
            .await
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            self.url(url)
        }
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.json(self.request(Method::PATCH, path).json(body))
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.json(self.request(Method::PUT, path).json(body)).await
    }

    /// Creates a project unless it exists (someone may create it at the same moment); true
    /// when this call created it.
    pub async fn ensure_project(
        &self,
        name: &wanllmdb_api_types::ProjectName,
    ) -> Result<bool, ApiError> {
        let req = wanllmdb_api_types::projects::CreateProjectRequest {
            name: name.clone(),
            description: None,
            visibility: None,
        };
        match self
            .post::<_, wanllmdb_api_types::projects::Project>("/api/v1/projects", &req)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.send(self.request(Method::DELETE, path))
            .await
            .map(|_| ())
    }

    /// `DELETE path`, reading the JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.json(self.request(Method::DELETE, path)).await
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    /// RFC 3986's unreserved characters; everything else is escaped.
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}
