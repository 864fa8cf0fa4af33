//! Storage of the audit log: the `audit_events` table. The only place the audit log's SQL
//! lives: writing events, the filter and keyset builder that reads them, the counts behind
//! the statistics, and the retention limit.

use std::collections::BTreeMap;

use super::AuditEvent;
use super::catalog::{self, Classified};
use super::query::{AuditFilter, Cond};
use crate::error::ApiResult;
use crate::on_backend;
use crate::store::{BackendKind, Store, now_us};

/// Inserts one event as `c` classifies it. Returns the database's own error, so the log line
/// of a failed write names the cause.
pub(super) async fn insert_event(
    store: &Store,
    e: &AuditEvent,
    c: &Classified,
) -> Result<(), sqlx::Error> {
    const INSERT_AUDIT_EVENTS: &str = "INSERT INTO audit_events (at, event_type, category, severity, action, user_id, username, ip, user_agent, method, path, resource, resource_type, resource_id, http_status, status, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_AUDIT_EVENTS)
            .bind(now_us())
            .bind(c.event_type)
            .bind(c.category)
            .bind(c.severity)
            .bind(e.action.name())
            .bind(e.user_id)
            .bind(&e.username)
            .bind(&e.client.ip)
            .bind(&e.client.user_agent)
            .bind(&e.client.method)
            .bind(&e.client.path)
            .bind(&e.resource)
            .bind(&c.resource_type)
            .bind(&c.resource_id)
            .bind(e.status)
            .bind(catalog::outcome(e.status))
            .bind(e.metadata.to_string())
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// One stored event.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    pub(super) id: i64,
    pub(super) at: i64,
    pub(super) event_type: String,
    pub(super) category: String,
    pub(super) severity: String,
    pub(super) action: String,
    pub(super) user_id: Option<i64>,
    pub(super) username: Option<String>,
    pub(super) ip: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) method: Option<String>,
    pub(super) path: Option<String>,
    pub(super) resource: Option<String>,
    pub(super) resource_type: Option<String>,
    pub(super) resource_id: Option<String>,
    pub(super) http_status: Option<i64>,
    pub(super) status: String,
    pub(super) metadata: String,
}

const COLUMNS: &str = "id, at, event_type, category, severity, action, user_id, username, ip, user_agent, method, path, resource, resource_type, resource_id, http_status, status, metadata";

enum Bind {
    Int(i64),
    Text(String),
}

/// SQL text and the values of its `$n` placeholders.
#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    fn list(&mut self, values: &[String]) -> String {
        let marks: Vec<String> = values
            .iter()
            .map(|v| self.bind(Bind::Text(v.clone())))
            .collect();
        marks.join(", ")
    }

    /// Appends `AND (cond)`; column names come from our own constants, never input.
    fn cond(&mut self, c: &Cond) {
        let frag = match c {
            Cond::OneOf(col, values) => format!("{col} IN ({})", self.list(values)),
            Cond::EventType(names) => {
                let (published, recorded): (Vec<String>, Vec<String>) =
                    names.iter().cloned().partition(|n| n.contains('.'));
                let mut parts = Vec::new();
                if !published.is_empty() {
                    parts.push(format!("event_type IN ({})", self.list(&published)));
                }
                if !recorded.is_empty() {
                    parts.push(format!("action IN ({})", self.list(&recorded)));
                }
                parts.join(" OR ")
            }
            Cond::Int(col, v) => format!("{col} = {}", self.bind(Bind::Int(*v))),
            Cond::Text(col, v) => format!("{col} = {}", self.bind(Bind::Text(v.clone()))),
            Cond::Subject { user_id, username } => {
                let name = self.bind(Bind::Text(username.clone()));
                let by_id = match user_id {
                    Some(id) => format!("user_id = {} OR ", self.bind(Bind::Int(*id))),
                    None => String::new(),
                };
                format!(
                    "{by_id}username = {name} OR (username IS NULL AND resource_type = 'user' AND resource_id = {name})"
                )
            }
            Cond::Since(us) => format!("at >= {}", self.bind(Bind::Int(*us))),
            Cond::Until(us) => format!("at <= {}", self.bind(Bind::Int(*us))),
        };
        self.text.push_str(" AND (");
        self.text.push_str(&frag);
        self.text.push(')');
    }
}

/// Up to `limit` events matching `f`, newest first.
pub(super) async fn events(store: &Store, f: &AuditFilter, limit: i64) -> ApiResult<Vec<AuditRow>> {
    let mut sql = Sql {
        text: format!("SELECT {COLUMNS} FROM audit_events WHERE TRUE"),
        binds: Vec::new(),
    };
    for c in &f.conds {
        sql.cond(c);
    }
    if let Some((at, id)) = f.before {
        let (a, i) = (sql.bind(Bind::Int(at)), sql.bind(Bind::Int(id)));
        sql.text
            .push_str(&format!(" AND (at < {a} OR (at = {a} AND id < {i}))"));
    }
    let lim = sql.bind(Bind::Int(limit));
    sql.text
        .push_str(&format!(" ORDER BY at DESC, id DESC LIMIT {lim}"));
    let Sql { text, binds } = sql;
    Ok(on_backend!(store, read, |pool| {
        let mut q = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(text));
        for b in binds {
            q = match b {
                Bind::Int(v) => q.bind(v),
                Bind::Text(v) => q.bind(v),
            };
        }
        q.fetch_all(pool).await?
    }))
}

/// What the statistics count events by.
#[derive(Debug, Clone, Copy)]
pub(super) enum CountBy {
    /// The published event type.
    EventType,
    /// The name the service recorded.
    Action,
    /// The category.
    Category,
    /// The severity.
    Severity,
    /// The outcome.
    Status,
    /// The `reason` a refused login gives in its metadata.
    Reason,
}

impl CountBy {
    /// The column or expression counted by, in the store's dialect.
    fn expr(self, kind: BackendKind) -> &'static str {
        match (self, kind) {
            (CountBy::EventType, _) => "event_type",
            (CountBy::Action, _) => "action",
            (CountBy::Category, _) => "category",
            (CountBy::Severity, _) => "severity",
            (CountBy::Status, _) => "status",
            (CountBy::Reason, BackendKind::Sqlite) => "json_extract(metadata, '$.reason')",
            (CountBy::Reason, BackendKind::Postgres) => "(metadata::jsonb ->> 'reason')",
        }
    }
}

/// Event counts per value of `by` since `since` (`unknown` for events without one), of every
/// event type or only of `only_type`.
pub(super) async fn counts_by(
    store: &Store,
    by: CountBy,
    since: i64,
    only_type: Option<&str>,
) -> ApiResult<BTreeMap<String, u64>> {
    let expr = by.expr(store.kind());
    let sql = format!(
        "SELECT COALESCE({expr}, 'unknown'), COUNT(*) FROM audit_events WHERE at >= $1 AND ($2 IS NULL OR event_type = $2) GROUP BY 1"
    );
    let rows: Vec<(String, i64)> = on_backend!(store, read, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .bind(only_type)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(|(k, n)| (k, n as u64)).collect())
}

/// Deletes events older than `retention_days` (0 keeps everything); returns how many.
pub async fn prune(store: &Store, retention_days: u32) -> Result<u64, sqlx::Error> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = now_us() - i64::from(retention_days) * 86_400_000_000;
    on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}
