//! Reading the audit log: filters, pages, exports, statistics, and the retention limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wanllmdb_api_types::Page;
use wanllmdb_api_types::audit::{
    AuditLogEntry, AuditStats, FailedLogin, LOGIN_FAILURE, LOGIN_RATE_LIMITED, LOGIN_SUCCESS,
    SEVERITIES,
};

use crate::error::{ApiError, ApiResult};
use crate::on_backend;
use crate::projects::{decode_cursor, make_cursor};
use crate::store::{Store, format_time, now_us};

/// Which events to read; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Category, exactly.
    pub category: Option<String>,
    /// Event type, exactly.
    pub event_type: Option<String>,
    /// Severity (validated).
    pub severity: Option<String>,
    /// Username of the actor, or the account a failed login tried.
    pub user: Option<String>,
    /// Resource, exactly.
    pub resource: Option<String>,
    /// HTTP status.
    pub status: Option<i64>,
    /// From this time on (µs, inclusive).
    pub since_us: Option<i64>,
    /// Up to this time (µs, inclusive).
    pub until_us: Option<i64>,
    /// Keyset position: only events before `(at, id)`.
    pub before: Option<(i64, i64)>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    event_type: String,
    category: String,
    severity: String,
    user_id: Option<i64>,
    username: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    method: Option<String>,
    path: Option<String>,
    resource: Option<String>,
    status: Option<i64>,
    metadata: String,
}

impl AuditRow {
    fn into_entry(self) -> AuditLogEntry {
        let metadata = serde_json::from_str(&self.metadata)
            .ok()
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        AuditLogEntry {
            id: self.id,
            at: format_time(self.at),
            event_type: self.event_type,
            category: self.category,
            severity: self.severity,
            user_id: self.user_id,
            username: self.username,
            ip: self.ip,
            user_agent: self.user_agent,
            method: self.method,
            path: self.path,
            resource: self.resource,
            status: self.status,
            metadata,
        }
    }
}

const SELECT_FILTERED: &str = "SELECT id, at, event_type, category, severity, user_id, username, ip, user_agent, method, path, resource, status, metadata
    FROM audit_events
    WHERE ($1 IS NULL OR category = $1)
      AND ($2 IS NULL OR event_type = $2)
      AND ($3 IS NULL OR severity = $3)
      AND ($4 IS NULL OR username = $4 OR (username IS NULL AND resource = $5))
      AND ($6 IS NULL OR resource = $6)
      AND ($7 IS NULL OR status = $7)
      AND ($8 IS NULL OR at >= $8)
      AND ($9 IS NULL OR at <= $9)
      AND ($10 IS NULL OR at < $10 OR (at = $10 AND id < $11))
    ORDER BY at DESC, id DESC
    LIMIT $12";

/// Checks a severity name.
pub fn parse_severity(s: &str) -> ApiResult<String> {
    let lower = s.to_ascii_lowercase();
    if SEVERITIES.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(ApiError::invalid(format!(
            "unknown severity {s:?}: use info, warning or critical"
        )))
    }
}

/// Parses a time bound: RFC 3339, Unix seconds, or an age such as `30m`, `24h`, `7d`, `2w`.
pub fn parse_time_bound(name: &str, v: &str, now: i64) -> ApiResult<i64> {
    let bad = || {
        ApiError::invalid(format!(
            "{name}={v:?} is not a time: use RFC 3339 (2024-05-01T12:00:00Z), Unix seconds, or an age such as 30m, 24h, 7d"
        ))
    };
    let v = v.trim();
    if let Some(unit) = v.chars().last().filter(char::is_ascii_alphabetic) {
        let secs_per = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return rfc3339(v).ok_or_else(bad),
        };
        if let Ok(n) = v[..v.len() - 1].parse::<i64>() {
            return n
                .checked_mul(secs_per * 1_000_000)
                .filter(|us| *us >= 0)
                .map(|us| now - us)
                .ok_or_else(bad);
        }
        return rfc3339(v).ok_or_else(bad);
    }
    if let Ok(s) = v.parse::<f64>() {
        return crate::store::seconds_to_us(s).ok_or_else(bad);
    }
    rfc3339(v).ok_or_else(bad)
}

fn rfc3339(v: &str) -> Option<i64> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| (d.unix_timestamp_nanos() / 1000) as i64)
}

/// Encodes the keyset position after an entry.
fn cursor_of(at_us: i64, id: i64) -> String {
    make_cursor(&format!("{at_us}:{id}"))
}

/// Decodes a `next_cursor`.
pub fn parse_cursor(c: &str) -> ApiResult<(i64, i64)> {
    let s = decode_cursor(c)?;
    s.split_once(':')
        .and_then(|(a, i)| Some((a.parse().ok()?, i.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid cursor {c:?}: pass back a next_cursor value unchanged"
            ))
        })
}

/// Reads up to `limit` events matching `f`, newest first, with their raw times.
async fn fetch(store: &Store, f: &AuditFilter, limit: i64) -> ApiResult<Vec<AuditRow>> {
    let user_resource = f.user.as_ref().map(|u| format!("user:{u}"));
    let (before_at, before_id) = match f.before {
        Some((a, i)) => (Some(a), Some(i)),
        None => (None, None),
    };
    Ok(on_backend!(store, read pool => {
        sqlx::query_as::<_, AuditRow>(SELECT_FILTERED)
            .bind(&f.category)
            .bind(&f.event_type)
            .bind(&f.severity)
            .bind(&f.user)
            .bind(&user_resource)
            .bind(&f.resource)
            .bind(f.status)
            .bind(f.since_us)
            .bind(f.until_us)
            .bind(before_at)
            .bind(before_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
    }))
}

/// One page of matching events, newest first.
pub async fn page(store: &Store, f: &AuditFilter, limit: i64) -> ApiResult<Page<AuditLogEntry>> {
    let mut rows = fetch(store, f, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| cursor_of(r.at, r.id))
    } else {
        None
    };
    Ok(Page {
        items: rows.into_iter().map(AuditRow::into_entry).collect(),
        next_cursor,
    })
}

/// The next batch of an export; moves `f.before` past it. Empty when done.
pub async fn next_batch(
    store: &Store,
    f: &mut AuditFilter,
    limit: i64,
) -> ApiResult<Vec<AuditLogEntry>> {
    let rows = fetch(store, f, limit).await?;
    if let Some(last) = rows.last() {
        f.before = Some((last.at, last.id));
    }
    Ok(rows.into_iter().map(AuditRow::into_entry).collect())
}

/// Failed logins of the last `hours`, newest first.
pub async fn failed_logins(store: &Store, hours: u32, limit: i64) -> ApiResult<Vec<FailedLogin>> {
    let since = now_us() - i64::from(hours) * 3_600_000_000;
    let rows = on_backend!(store, read pool => {
        sqlx::query_as::<_, AuditRow>(
            "SELECT id, at, event_type, category, severity, user_id, username, ip, user_agent, method, path, resource, status, metadata
             FROM audit_events WHERE at >= $1 AND event_type IN ($2, $3)
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(since)
        .bind(LOGIN_FAILURE)
        .bind(LOGIN_RATE_LIMITED)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| FailedLogin {
            id: r.id,
            at: format_time(r.at),
            username: r
                .resource
                .as_deref()
                .and_then(|s| s.strip_prefix("user:"))
                .map(str::to_string)
                .or(r.username),
            ip: r.ip,
            user_agent: r.user_agent,
            event_type: r.event_type,
        })
        .collect())
}

async fn counts_by(store: &Store, column: &str, since: i64) -> ApiResult<BTreeMap<String, u64>> {
    // `column` is one of our own constants, never input.
    let sql =
        format!("SELECT {column}, COUNT(*) FROM audit_events WHERE at >= $1 GROUP BY {column}");
    let rows: Vec<(String, i64)> = on_backend!(store, read pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(|(k, n)| (k, n as u64)).collect())
}

/// Counts of the last `hours`.
pub async fn stats(store: &Store, hours: u32) -> ApiResult<AuditStats> {
    let since = now_us() - i64::from(hours) * 3_600_000_000;
    let by_category = counts_by(store, "category", since).await?;
    let by_severity = counts_by(store, "severity", since).await?;
    let by_type = counts_by(store, "event_type", since).await?;
    let count = |t: &str| by_type.get(t).copied().unwrap_or(0);
    let (ok, failed) = (count(LOGIN_SUCCESS), count(LOGIN_FAILURE));
    Ok(AuditStats {
        hours,
        total: by_category.values().sum(),
        by_category,
        by_severity,
        login_successes: ok,
        login_failures: failed,
        login_rate_limited: count(LOGIN_RATE_LIMITED),
        failure_rate: if ok + failed == 0 {
            0.0
        } else {
            failed as f64 / (ok + failed) as f64
        },
    })
}

/// Deletes events older than `retention_days` (0 keeps everything); returns how many.
pub async fn prune(store: &Store, retention_days: u32) -> Result<u64, sqlx::Error> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = now_us() - i64::from(retention_days) * 86_400_000_000;
    on_backend!(store, write pool => {
        sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

/// Runs [`prune`] from the reaper loop, at most once an hour.
#[derive(Debug, Default)]
pub struct RetentionSchedule {
    last: Option<Instant>,
}

impl RetentionSchedule {
    const EVERY: Duration = Duration::from_secs(3600);

    /// Prunes when an hour has passed since the last time (or on the first call).
    pub async fn tick(&mut self, store: &Store, retention_days: u32) {
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        match prune(store, retention_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, retention_days, "deleted old audit events"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds() {
        let now = 10_000_000_000_000;
        assert_eq!(
            parse_time_bound("since", "30m", now).unwrap(),
            now - 1_800_000_000
        );
        assert_eq!(
            parse_time_bound("since", "24h", now).unwrap(),
            now - 86_400_000_000
        );
        assert_eq!(
            parse_time_bound("since", "7d", now).unwrap(),
            now - 7 * 86_400_000_000
        );
        assert_eq!(parse_time_bound("since", "1.5", now).unwrap(), 1_500_000);
        assert_eq!(
            parse_time_bound("since", "1970-01-01T00:00:01Z", now).unwrap(),
            1_000_000
        );
        let err = parse_time_bound("since", "yesterday", now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("since") && err.contains("24h"), "{err}");
        assert!(parse_time_bound("until", "5x", now).is_err());
        assert!(parse_time_bound("until", "-5h", now).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor(&cursor_of(123, 45)).unwrap(), (123, 45));
        assert!(parse_cursor("nonsense!").is_err());
    }
}
