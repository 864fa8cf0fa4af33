//! The audit log: security-relevant events (logins, key changes, denied access, changes and
//! downloads of data), readable by server administrators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The event type of a successful password login.
pub const LOGIN_SUCCESS: &str = "auth.login.success";
/// The event type of a refused login (wrong password, unknown user, disabled account, or too
/// many recent failures; `metadata.reason` says which).
pub const LOGIN_FAILED: &str = "auth.login.failed";

/// Category of logins, logouts, password changes, registrations and API keys.
pub const AUTHENTICATION: &str = "authentication";
/// Category of refused requests.
pub const AUTHORIZATION: &str = "authorization";
/// Category of changes to projects, runs, files, artifacts, models and sweeps.
pub const DATA_MODIFICATION: &str = "data_modification";
/// Category of downloads.
pub const DATA_ACCESS: &str = "data_access";
/// Category of suspicious activity and changes of who may do what.
pub const SECURITY: &str = "security";
/// The categories an event may have.
pub const CATEGORIES: [&str; 5] = [
    AUTHENTICATION,
    AUTHORIZATION,
    DATA_MODIFICATION,
    DATA_ACCESS,
    SECURITY,
];

/// Routine, changes nobody's access.
pub const INFO: &str = "info";
/// Creating, changing or reading data.
pub const LOW: &str = "low";
/// Deletions, changes of access, failures that may be an attack.
pub const MEDIUM: &str = "medium";
/// Brute force, new administrator power, data opened to everyone.
pub const HIGH: &str = "high";
/// A stolen credential.
pub const CRITICAL: &str = "critical";
/// The severities an event may have, least to most serious.
pub const SEVERITIES: [&str; 5] = [INFO, LOW, MEDIUM, HIGH, CRITICAL];

/// The outcomes an event may have: done, refused (a 4xx), or broken (a 5xx).
pub const STATUSES: [&str; 3] = ["success", "failure", "error"];

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditLogEntry {
    /// Increasing id.
    pub id: i64,
    /// What happened, e.g. `auth.login.failed`, `project.create`, `authz.access_denied`.
    pub event_type: String,
    /// `authentication`, `authorization`, `data_modification`, `data_access` or `security`.
    pub event_category: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Id of the user who acted, when known.
    pub user_id: Option<i64>,
    /// Name of the user who acted; for a failed login, the name that was tried.
    pub username: Option<String>,
    /// Client address (IPv4 or IPv6).
    pub ip_address: Option<String>,
    /// Client User-Agent.
    pub user_agent: Option<String>,
    /// HTTP method of the request.
    pub request_method: Option<String>,
    /// Request path, e.g. `/api/v1/projects`.
    pub request_path: Option<String>,
    /// What happened as a sentence, e.g. `User 'john' logged in successfully`.
    pub description: String,
    /// The kind of object acted on, e.g. `project`.
    pub resource_type: Option<String>,
    /// Which object, e.g. `mnist`.
    pub resource_id: Option<String>,
    /// Extra structured data (an object; empty when there is none).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// `success`, `failure` (refused) or `error` (the server failed).
    pub status: String,
    /// HTTP status of the outcome.
    pub http_status: Option<i64>,
    /// When it happened (RFC 3339, microseconds).
    pub created_at: String,
    /// The server's own short name of the event, e.g. `login_rate_limited`.
    pub action: String,
    /// Same as `created_at` (the old name; kept for one release).
    #[schema(deprecated)]
    pub at: String,
    /// Same as `event_category` (the old name; kept for one release).
    #[schema(deprecated)]
    pub category: String,
    /// Same as `ip_address` (the old name; kept for one release).
    #[schema(deprecated)]
    pub ip: Option<String>,
    /// Same as `request_method` (the old name; kept for one release).
    #[schema(deprecated)]
    pub method: Option<String>,
    /// Same as `request_path` (the old name; kept for one release).
    #[schema(deprecated)]
    pub path: Option<String>,
    /// `resource_type:resource_id` as recorded, e.g. `project:mnist` (kept for one release).
    #[schema(deprecated)]
    pub resource: Option<String>,
}

/// Logins of a time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoginStats {
    /// Successful password logins.
    pub successful_logins: u64,
    /// Refused logins, whatever the reason (rate-limited ones included).
    pub failed_logins: u64,
    /// `failed_logins / (successful_logins + failed_logins)`; 0 when there were no logins.
    pub failure_rate: f64,
    /// Of the failed logins, those refused by the failed-login limit.
    pub rate_limited_logins: u64,
    /// Failed logins per `metadata.reason` (`unknown` for events recorded without one).
    pub failures_by_reason: BTreeMap<String, u64>,
}

/// Counts of the events of a time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditStats {
    /// The window: the last this many hours.
    pub hours: u32,
    /// Events in the window.
    pub total_events: u64,
    /// Events per category (every category, 0 when none).
    pub by_category: BTreeMap<String, u64>,
    /// Events per severity (every severity, 0 when none).
    pub by_severity: BTreeMap<String, u64>,
    /// Events per outcome (`success`, `failure`, `error`).
    pub by_status: BTreeMap<String, u64>,
    /// Events per event type.
    pub by_event_type: BTreeMap<String, u64>,
    /// Logins and their failure rate.
    pub authentication: LoginStats,
    /// Same as `total_events` (kept for one release).
    #[schema(deprecated)]
    pub total: u64,
    /// Same as `authentication.successful_logins` (kept for one release).
    #[schema(deprecated)]
    pub login_successes: u64,
    /// Failed logins that were not rate-limited (kept for one release).
    #[schema(deprecated)]
    pub login_failures: u64,
    /// Same as `authentication.rate_limited_logins` (kept for one release).
    #[schema(deprecated)]
    pub login_rate_limited: u64,
    /// `login_failures / (login_successes + login_failures)` (kept for one release).
    #[schema(deprecated)]
    pub failure_rate: f64,
}

/// The header of an audit export as CSV: the columns of [`AuditLogEntry::csv_row`].
pub const AUDIT_CSV_HEADER: &str = "id,created_at,event_type,event_category,severity,status,http_status,user_id,username,ip_address,user_agent,request_method,request_path,resource_type,resource_id,description,metadata,action";

impl AuditLogEntry {
    /// The event as one CSV row (without a line break); metadata as JSON.
    pub fn csv_row(&self) -> String {
        let field = crate::csv_field;
        let opt = |v: &Option<String>| field(v.as_deref().unwrap_or(""));
        let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        [
            self.id.to_string(),
            field(&self.created_at),
            field(&self.event_type),
            field(&self.event_category),
            field(&self.severity),
            field(&self.status),
            num(self.http_status),
            num(self.user_id),
            opt(&self.username),
            opt(&self.ip_address),
            opt(&self.user_agent),
            opt(&self.request_method),
            opt(&self.request_path),
            opt(&self.resource_type),
            opt(&self.resource_id),
            field(&self.description),
            field(&self.metadata.to_string()),
            field(&self.action),
        ]
        .join(",")
    }
}
