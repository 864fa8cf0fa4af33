//! The wanLLMDB wire contract (v1): serde types for every request and response.
//!
//! Fields may be added; none is ever renamed or removed. Timestamps are RFC 3339 strings in
//! UTC unless a field says "Unix seconds".

pub mod admin;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod files;
pub mod logs;
pub mod metrics;
pub mod projects;
pub mod registry;
pub mod runs;
pub mod sweeps;
pub mod system;

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
    pub code: String,
    /// A sentence that says what is wrong.
    pub message: String,
    /// Extra structured information (may be empty).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
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

/// Ids of runs: 8 characters of `[a-z0-9]`.
pub fn is_valid_run_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Project names: 1 to 128 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_project_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
    fn run_ids() {
        assert!(is_valid_run_id("ab12cd34"));
        assert!(!is_valid_run_id("AB12cd34"));
        assert!(!is_valid_run_id("ab12cd3"));
        assert!(!is_valid_run_id("ab12cd3_"));
    }

    #[test]
    fn project_names() {
        assert!(is_valid_project_name("mnist-v2.1_x"));
        assert!(!is_valid_project_name(""));
        assert!(!is_valid_project_name("a/b"));
        assert!(!is_valid_project_name(&"x".repeat(129)));
    }
}
