//! Log lines of a run.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Debugging detail.
    #[serde(alias = "debug")]
    Debug,
    /// Normal output.
    #[serde(alias = "info")]
    Info,
    /// Something looks wrong.
    #[serde(alias = "warning", alias = "WARN", alias = "warn")]
    Warning,
    /// Something failed.
    #[serde(alias = "error")]
    Error,
}

impl LogLevel {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }

    /// Parses the wire spelling (case-insensitive; `WARN` accepted).
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(LogLevel::Debug),
            "INFO" => Some(LogLevel::Info),
            "WARNING" | "WARN" => Some(LogLevel::Warning),
            "ERROR" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The program's standard output.
    Stdout,
    /// The program's standard error.
    Stderr,
    /// An SDK call.
    Sdk,
    /// `wanllmdb log --message` or the API.
    User,
}

impl LogSource {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::Sdk => "sdk",
            LogSource::User => "user",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<LogSource> {
        match s {
            "stdout" => Some(LogSource::Stdout),
            "stderr" => Some(LogSource::Stderr),
            "sdk" => Some(LogSource::Sdk),
            "user" => Some(LogSource::User),
            _ => None,
        }
    }
}

/// One line to append.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLogLine {
    /// Defaults to INFO.
    #[serde(default)]
    pub level: Option<LogLevel>,
    /// The text (one line).
    pub message: String,
    /// Unix seconds or an RFC 3339 string; receive time when absent.
    #[serde(default, deserialize_with = "crate::deserialize_timestamp")]
    #[schema(value_type = Option<f64>)]
    pub timestamp: Option<f64>,
    /// Defaults to `user`.
    #[serde(default)]
    pub source: Option<LogSource>,
    /// Line number within its source; a line already stored under the same
    /// (source, line_number) is not stored twice, so retries are safe.
    #[serde(default)]
    pub line_number: Option<i64>,
}

/// `POST /api/v1/runs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendLogsRequest {
    /// Lines to append.
    pub lines: Vec<NewLogLine>,
}

/// Answer to a log append.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppendLogsResponse {
    /// Lines stored.
    pub accepted: u64,
    /// Lines skipped because the same (source, line_number) was already stored.
    pub duplicates: u64,
}

/// A stored log line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Position in the run's log (increasing).
    pub seq: i64,
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
    /// Unix seconds.
    pub timestamp: f64,
    /// Origin.
    pub source: LogSource,
    /// Line number within its source.
    pub line_number: Option<i64>,
}
