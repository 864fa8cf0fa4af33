//! The audit log: security-relevant events, written by the services and read by server
//! administrators (`query`, `routes`).

pub mod query;
pub mod routes;

use crate::auth::Actor;
use crate::extract::ClientInfo;
use crate::on_backend;
use crate::store::{Store, now_us};

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    event_type: &'static str,
    category: &'static str,
    severity: &'static str,
    user_id: Option<i64>,
    username: Option<String>,
    client: ClientInfo,
    resource: Option<String>,
    status: Option<i64>,
    metadata: serde_json::Value,
}

impl AuditEvent {
    /// An event of a type (`login_failure`), category (`auth`) and severity (`info`,
    /// `warning`, `critical`).
    pub fn new(event_type: &'static str, category: &'static str, severity: &'static str) -> Self {
        AuditEvent {
            event_type,
            category,
            severity,
            user_id: None,
            username: None,
            client: ClientInfo::default(),
            resource: None,
            status: None,
            metadata: serde_json::json!({}),
        }
    }

    /// Where the request came from.
    pub fn client(mut self, c: &ClientInfo) -> Self {
        self.client = c.clone();
        self
    }

    /// Who acted.
    pub fn user(mut self, id: i64, name: &str) -> Self {
        self.user_id = Some(id);
        self.username = Some(name.to_string());
        self
    }

    /// Who acted: the caller of the request, when signed in.
    pub fn actor(self, actor: &Actor) -> Self {
        match &actor.user {
            Some(u) => self.user(u.id, &u.username),
            None => self,
        }
    }

    /// Who acted, by id only.
    pub fn user_id(mut self, id: i64) -> Self {
        self.user_id = Some(id);
        self
    }

    /// What was acted on, e.g. `project:mnist`.
    pub fn resource(mut self, r: impl Into<String>) -> Self {
        self.resource = Some(r.into());
        self
    }

    /// The HTTP status of the outcome.
    pub fn status(mut self, s: i64) -> Self {
        self.status = Some(s);
        self
    }

    /// Extra structured data.
    pub fn metadata(mut self, m: serde_json::Value) -> Self {
        self.metadata = m;
        self
    }
}

/// Writes an event. Failures are logged, not returned: auditing never breaks a request.
pub async fn record(store: &Store, e: AuditEvent) {
    let res: Result<_, sqlx::Error> = on_backend!(store, write pool => {
        sqlx::query(
            "INSERT INTO audit_events (at, event_type, category, severity, user_id, username, ip, user_agent, method, path, resource, status, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(now_us())
        .bind(e.event_type)
        .bind(e.category)
        .bind(e.severity)
        .bind(e.user_id)
        .bind(&e.username)
        .bind(&e.client.ip)
        .bind(&e.client.user_agent)
        .bind(&e.client.method)
        .bind(&e.client.path)
        .bind(&e.resource)
        .bind(e.status)
        .bind(e.metadata.to_string())
        .execute(pool)
        .await
        .map(|_| ())
    });
    if let Err(err) = res {
        tracing::error!(error = %err, event = e.event_type, "could not write audit event");
    }
}
