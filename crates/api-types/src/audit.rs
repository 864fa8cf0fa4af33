//! The audit log: security-relevant events (logins, key changes, denied access, deletions),
//! readable by server administrators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The event type of a successful password login.
pub const LOGIN_SUCCESS: &str = "login_success";
/// The event type of a login refused for a wrong username or password.
pub const LOGIN_FAILURE: &str = "login_failure";
/// A login refused because of too many recent failures.
pub const LOGIN_RATE_LIMITED: &str = "login_rate_limited";

/// The severities an event may have, least to most serious.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditLogEntry {
    /// Increasing id.
    pub id: i64,
    /// When it happened (RFC 3339, microseconds).
    pub at: String,
    /// What happened, e.g. `login_failure`, `api_key_created`, `access_denied`.
    pub event_type: String,
    /// Area: `auth`, `authorization`, `data_access`, `data_modification`, `registry`, `sweeps`, `admin`.
    pub category: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// Id of the user who acted, when known.
    pub user_id: Option<i64>,
    /// Name of the user who acted, when known.
    pub username: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client User-Agent.
    pub user_agent: Option<String>,
    /// HTTP method of the request.
    pub method: Option<String>,
    /// Request path.
    pub path: Option<String>,
    /// What was acted on, e.g. `project:mnist` or `user:alice`.
    pub resource: Option<String>,
    /// HTTP status of the outcome.
    pub status: Option<i64>,
    /// Extra structured data (an object; empty when there is none).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

/// A failed login attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FailedLogin {
    /// Id of the audit event.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The username or email that was tried.
    pub username: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client User-Agent.
    pub user_agent: Option<String>,
    /// `login_failure` (wrong credentials) or `login_rate_limited` (refused after too many).
    pub event_type: String,
}

/// Counts of the events of a time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditStats {
    /// The window: the last this many hours.
    pub hours: u32,
    /// Events in the window.
    pub total: u64,
    /// Events per category.
    pub by_category: BTreeMap<String, u64>,
    /// Events per severity.
    pub by_severity: BTreeMap<String, u64>,
    /// Successful password logins.
    pub login_successes: u64,
    /// Logins refused for a wrong username or password.
    pub login_failures: u64,
    /// Logins refused because of too many recent failures (not counted in `login_failures`).
    pub login_rate_limited: u64,
    /// `login_failures / (login_successes + login_failures)`; 0 when there were no logins.
    pub failure_rate: f64,
}

/// The header of an audit export as CSV: the columns of [`AuditLogEntry::csv_row`].
pub const AUDIT_CSV_HEADER: &str = "id,at,event_type,category,severity,user_id,username,ip,user_agent,method,path,resource,status,metadata";

impl AuditLogEntry {
    /// The event as one CSV row (without a line break); metadata as JSON.
    pub fn csv_row(&self) -> String {
        let field = crate::csv_field;
        let opt = |v: &Option<String>| field(v.as_deref().unwrap_or(""));
        let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        [
            self.id.to_string(),
            field(&self.at),
            field(&self.event_type),
            field(&self.category),
            field(&self.severity),
            num(self.user_id),
            opt(&self.username),
            opt(&self.ip),
            opt(&self.user_agent),
            opt(&self.method),
            opt(&self.path),
            opt(&self.resource),
            num(self.status),
            field(&self.metadata.to_string()),
        ]
        .join(",")
    }
}
