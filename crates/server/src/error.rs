//! The server's error type and its one mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wanllmdb_api_types::{ErrorBody, ErrorCode, ErrorDetail};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input is wrong; the message says how.
    #[error("{0}")]
    InvalidInput(String),
    /// 400 with structured details.
    #[error("{message}")]
    InvalidInputDetails {
        /// Summary.
        message: String,
        /// Details (e.g. the offending field).
        details: serde_json::Value,
    },
    /// 401: no or bad credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 with the seconds to wait.
    #[error("{message}")]
    TooManyRequests {
        /// What was limited.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// 503.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with the seconds to wait: the server is busy, not broken.
    #[error("{message}")]
    Busy {
        /// What is busy.
        message: String,
        /// Seconds after which a retry is likely to succeed.
        retry_after: u64,
    },
    /// 408: the client stopped sending its request.
    #[error("{0}")]
    RequestTimeout(String),
    /// 500: a bug or an unexpected database failure. Details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand.
pub type ApiResult<T> = Result<T, ApiError>;

/// A stored value this server does not know (written by hand, or by a newer version): an
/// error that names the row, never a default that would quietly change what the row says.
#[derive(Debug, thiserror::Error)]
#[error("{table} {row}: the stored {column} {value:?} is not one this server knows")]
pub struct UnknownStoredValue {
    table: &'static str,
    row: String,
    column: &'static str,
    value: String,
}

/// `parsed`, or the error naming `table`'s row `row` whose `column` held `value`.
pub fn known<T>(
    parsed: Option<T>,
    table: &'static str,
    row: impl std::fmt::Display,
    column: &'static str,
    value: &str,
) -> Result<T, UnknownStoredValue> {
    parsed.ok_or_else(|| UnknownStoredValue {
        table,
        row: row.to_string(),
        column,
        value: value.to_string(),
    })
}

impl From<wanllmdb_api_types::InvalidId> for ApiError {
    fn from(e: wanllmdb_api_types::InvalidId) -> ApiError {
        ApiError::InvalidInput(e.to_string())
    }
}

impl From<UnknownStoredValue> for ApiError {
    fn from(e: UnknownStoredValue) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<UnknownStoredValue> for sqlx::Error {
    fn from(e: UnknownStoredValue) -> sqlx::Error {
        sqlx::Error::Decode(Box::new(e))
    }
}

impl ApiError {
    /// Builds a 404 for a thing.
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// Builds a 400.
    pub fn invalid(msg: impl Into<String>) -> ApiError {
        ApiError::InvalidInput(msg.into())
    }

    /// A 400 when `value` holds a control or bidirectional-override character (`what` names
    /// the field: "tag", "metric name", …).
    pub fn check_text(what: &str, value: &str) -> ApiResult<()> {
        match wanllmdb_api_types::forbidden_char(value) {
            None => Ok(()),
            Some(c) => Err(ApiError::InvalidInputDetails {
                message: format!(
                    "{what} {value:?} holds the character U+{:04X}; names, keys and tags must not \
                     hold control or bidirectional-override characters",
                    c as u32
                ),
                details: serde_json::json!({ "field": what }),
            }),
        }
    }

    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::InvalidInput(_) | ApiError::InvalidInputDetails { .. } => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput)
            }
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
            }
            ApiError::Unavailable(_) | ApiError::Busy { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
            }
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return ApiError::Conflict("already exists".into());
            }
            if db.is_foreign_key_violation() {
                return ApiError::invalid("refers to something that does not exist");
            }
        }
        if matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) {
            return ApiError::Unavailable(format!("database unavailable: {e}"));
        }
        ApiError::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, details) = match &self {
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ("internal server error".to_string(), serde_json::json!({}))
            }
            ApiError::InvalidInputDetails { message, details } => {
                (message.clone(), details.clone())
            }
            other => (other.to_string(), serde_json::json!({})),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                details,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after, .. } | ApiError::Busy { retry_after, .. } =
            self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stored_value_names_its_row() {
        let e = known(None::<u8>, "run", "ab12cd34", "state", "runing").unwrap_err();
        assert_eq!(
            e.to_string(),
            "run ab12cd34: the stored state \"runing\" is not one this server knows"
        );
        assert!(matches!(ApiError::from(e), ApiError::Internal(m) if m.contains("ab12cd34")));
        assert_eq!(known(Some(3), "run", "x", "state", "3").unwrap(), 3);
    }
}
