//! The audit log: security-relevant events, written by the services and read by server
//! administrators (`query`, `routes`). Services record an [`AuditAction`] each;
//! [`catalog`] publishes it under the event types, categories and severities of the API, and
//! [`describe`] says what happened in a sentence.

pub mod catalog;
pub mod describe;
pub mod query;
pub mod routes;
mod store;

use axum::response::Response;

pub use catalog::AuditAction;

use crate::auth::Actor;
use crate::extract::ClientInfo;
use crate::store::Store;

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    action: AuditAction,
    user_id: Option<i64>,
    username: Option<String>,
    client: ClientInfo,
    resource: Option<String>,
    status: Option<i64>,
    metadata: serde_json::Value,
}

impl AuditEvent {
    /// An event of `action`; [`catalog::classify`] publishes it.
    pub fn new(action: AuditAction) -> Self {
        AuditEvent {
            action,
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

    /// Who acted, or for a failed login the account name that was tried, by name only.
    pub fn username(mut self, name: &str) -> Self {
        self.username = Some(name.to_string());
        self
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
    let c = catalog::classify(e.action, e.resource.as_deref());
    if let Err(err) = store::insert_event(store, &e, &c).await {
        tracing::error!(error = %err, event = e.action.name(), "could not write audit event");
    }
}

/// The event of a refused password login: the account name tried, why (`invalid_password`,
/// `unknown_user`, `account_disabled`, `rate_limited`) and how many failed logins that account
/// has in the current failed-login window, this one included.
pub fn failed_login(
    client: &ClientInfo,
    username: &str,
    reason: &str,
    attempts: i64,
    http_status: i64,
) -> AuditEvent {
    let action = if reason == "rate_limited" {
        AuditAction::LoginRateLimited
    } else {
        AuditAction::LoginFailure
    };
    AuditEvent::new(action)
        .client(client)
        .username(username)
        .resource(format!("user:{username}"))
        .status(http_status)
        .metadata(serde_json::json!({ "reason": reason, "attempts": attempts }))
}

/// Marks a response whose refusal the handler already recorded, so the central recorder of
/// `403` answers does not record it a second time.
#[derive(Debug, Clone, Copy)]
pub struct AlreadyRecorded;

/// Marks `resp` as [`AlreadyRecorded`].
pub fn already_recorded(mut resp: Response) -> Response {
    resp.extensions_mut().insert(AlreadyRecorded);
    resp
}
