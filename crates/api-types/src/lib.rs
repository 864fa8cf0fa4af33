//! The wanLLMDB wire contract (v1): serde types for every request and response.
//!
//! Fields may be added; none is ever renamed or removed. Timestamps are RFC 3339 strings in
//! UTC unless a field says "Unix seconds".

pub mod admin;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod files;
pub mod ids;
pub mod logs;
pub mod metrics;
pub mod projects;
pub mod registry;
pub mod runs;
pub mod sweeps;
pub mod system;

pub use ids::{InvalidId, ProjectName, RunId, is_valid_project_name, is_valid_run_id};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// What went wrong, for people (`message`) and programs (`code`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code such as `not_found` or `invalid_input`.
    pub code: ErrorCode,
    /// A sentence that says what is wrong.
    pub message: String,
    /// Extra structured information (may be empty).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The machine-readable kind of an error; each goes with one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the input is wrong; the message says how.
    InvalidInput,
    /// 401: no credentials, or credentials the server does not accept.
    Unauthenticated,
    /// 403: signed in, but not allowed.
    Forbidden,
    /// 404: no such thing (or one the caller may not see).
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 408: the client stopped sending its request.
    RequestTimeout,
    /// 409: the change conflicts with what is stored.
    Conflict,
    /// 413: the body is over the route's limit.
    PayloadTooLarge,
    /// 415: a body type the route does not take.
    UnsupportedMediaType,
    /// 429: too many attempts; `Retry-After` says when to try again.
    RateLimited,
    /// 503: the server or its database is busy or unreachable.
    Unavailable,
    /// 500: a fault on the server.
    Internal,
    /// A code this version does not know (a newer server's).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// A page of a list: `next_cursor` is passed back as `cursor` to get the next page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Opaque cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Health check answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Server version.
    pub version: String,
    /// Per-dependency results (`database` → `ok` or the error), on readiness checks.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<String, String>,
}

/// The first character of `s` that names, keys and tags must not hold: NUL and the other
/// control characters, and the bidirectional overrides and isolates (U+202A to U+202E,
/// U+2066 to U+2069) that make text show in another order than it is stored.
pub fn forbidden_char(s: &str) -> Option<char> {
    s.chars()
        .find(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// Parses an RFC 3339 time (`2025-01-31T12:00:00Z`, `…+08:00`) to Unix seconds.
pub fn rfc3339_to_unix_seconds(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

/// Deserializes an optional timestamp given as Unix seconds (a number) or as an RFC 3339
/// string; every timestamp field of a request accepts both.
pub fn deserialize_timestamp<'de, D>(d: D) -> Result<Option<f64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{self, Visitor};
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("Unix seconds (a number) or an RFC 3339 time string")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
            Ok(Some(v as f64))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<f64>, E> {
            rfc3339_to_unix_seconds(v).map(Some).ok_or_else(|| {
                E::custom(format!(
                    "timestamp {v:?} is neither Unix seconds nor an RFC 3339 time such as 2025-01-31T12:00:00Z"
                ))
            })
        }
    }
    d.deserialize_any(V)
}

/// Deserializes an optional user reference given as a name (string) or a numeric id.
pub fn deserialize_name_or_id<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a username or a user id, not {other}"
        ))),
    }
}

/// A CSV field, quoted (with doubled quotes) when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_keep_their_wire_spelling_and_tolerate_new_ones() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error": {"code": "payload_too_large", "message": "too big", "details": {}}}"#,
        )
        .unwrap();
        assert_eq!(body.error.code, ErrorCode::PayloadTooLarge);
        for code in [
            ErrorCode::InvalidInput,
            ErrorCode::RateLimited,
            ErrorCode::NotFound,
        ] {
            let text = serde_json::to_string(&code).unwrap();
            assert_eq!(text, format!("\"{}\"", code.as_str()));
        }
        let newer: ErrorDetail =
            serde_json::from_str(r#"{"code": "quota_exceeded", "message": "m"}"#).unwrap();
        assert_eq!(newer.code, ErrorCode::Unknown);
    }

    #[test]
    fn timestamps_take_seconds_or_rfc3339() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "deserialize_timestamp")]
            at: Option<f64>,
        }
        let at = |j: &str| serde_json::from_str::<T>(j).map(|t| t.at);
        assert_eq!(at(r#"{"at": 1764250000.5}"#).unwrap(), Some(1764250000.5));
        assert_eq!(at(r#"{"at": 1764250000}"#).unwrap(), Some(1764250000.0));
        assert_eq!(
            at(r#"{"at": "2025-11-27T13:26:40.5Z"}"#).unwrap(),
            Some(1764250000.5)
        );
        assert_eq!(
            at(r#"{"at": "2025-11-27T21:26:40+08:00"}"#).unwrap(),
            Some(1764250000.0)
        );
        assert_eq!(at(r#"{"at": null}"#).unwrap(), None);
        assert_eq!(at(r#"{}"#).unwrap(), None);
        let err = at(r#"{"at": "yesterday"}"#).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn project_names() {
        assert!(is_valid_project_name("mnist-v2.1_x"));
        assert!(!is_valid_project_name(""));
        assert!(!is_valid_project_name("a/b"));
        assert!(!is_valid_project_name(&"x".repeat(129)));
    }
}
