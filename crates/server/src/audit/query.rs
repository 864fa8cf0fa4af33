//! Reading the audit log: filters, pages, exports, statistics, and the retention limit. The SQL
//! that reads and prunes the log is in the audit store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wanllmdb_api_types::Page;
use wanllmdb_api_types::audit::{
    AuditLogEntry, AuditStats, CATEGORIES, LOGIN_FAILED, LOGIN_SUCCESS, LoginStats, SEVERITIES,
    STATUSES,
};

use super::describe::describe;
pub use super::store::prune;
use super::store::{self, AuditRow, CountBy, counts_by};
use crate::auth::store as auth_store;
use crate::error::{ApiError, ApiResult};
use crate::paging;
use crate::store::{Store, format_time, now_us};

/// One condition an event must meet.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The column holds one of these words (`category`, `severity`, `status`).
    OneOf(&'static str, Vec<String>),
    /// The event has one of these types: published (`auth.login.failed`) or recorded
    /// (`login_rate_limited`) names.
    EventType(Vec<String>),
    /// The integer column equals this (`user_id`, `http_status`).
    Int(&'static str, i64),
    /// The text column equals this (`resource_type`, `resource_id`, `resource`).
    Text(&'static str, String),
    /// What a user did (by id, when known, or name), and failed logins to that account name.
    Subject {
        /// The user's id.
        user_id: Option<i64>,
        /// The user's name, or the name a failed login tried.
        username: String,
    },
    /// At or after this time (µs).
    Since(i64),
    /// At or before this time (µs).
    Until(i64),
}

/// Which events to read: all conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The conditions.
    pub conds: Vec<Cond>,
    /// Keyset position: only events before `(at, id)`.
    pub before: Option<(i64, i64)>,
}

/// An event as the API shows it.
fn entry(row: AuditRow) -> AuditLogEntry {
    let metadata = serde_json::from_str(&row.metadata)
        .ok()
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    let created_at = format_time(row.at);
    let mut e = AuditLogEntry {
        id: row.id,
        event_type: row.event_type,
        event_category: row.category.clone(),
        severity: row.severity,
        user_id: row.user_id,
        username: row.username,
        ip_address: row.ip.clone(),
        user_agent: row.user_agent,
        request_method: row.method.clone(),
        request_path: row.path.clone(),
        description: String::new(),
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        metadata,
        status: row.status,
        http_status: row.http_status,
        created_at: created_at.clone(),
        action: row.action,
        at: created_at,
        category: row.category,
        ip: row.ip,
        method: row.method,
        path: row.path,
        resource: row.resource,
    };
    e.description = describe(&e);
    e
}

/// Checks a comma-separated list of words against the allowed ones, translating old words
/// with `old`; the message names the parameter.
pub fn parse_words(
    param: &str,
    value: &str,
    allowed: &[&str],
    old: impl Fn(&str) -> Option<&'static [&'static str]>,
) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let lower = word.to_ascii_lowercase();
        if let Some(w) = allowed.iter().find(|a| **a == lower) {
            out.push((*w).to_string());
        } else if let Some(ws) = old(&lower) {
            out.extend(ws.iter().map(|w| (*w).to_string()));
        } else {
            return Err(ApiError::invalid(format!(
                "unknown {param} {word:?}: use {}",
                allowed.join(", ")
            )));
        }
    }
    if out.is_empty() {
        return Err(ApiError::invalid(format!(
            "{param} is empty: use {}",
            allowed.join(", ")
        )));
    }
    Ok(out)
}

/// Severities, one or several (`high,critical`); the old `warning` means medium or high.
pub fn parse_severity(param: &str, value: &str) -> ApiResult<Vec<String>> {
    parse_words(param, value, &SEVERITIES, |w| match w {
        "warning" => Some(&["medium", "high"]),
        _ => None,
    })
}

/// Categories, one or several; the old `auth`, `registry`, `sweeps` and `admin` map onto
/// the five categories.
pub fn parse_category(param: &str, value: &str) -> ApiResult<Vec<String>> {
    parse_words(param, value, &CATEGORIES, |w| match w {
        "auth" => Some(&["authentication"]),
        "registry" | "sweeps" => Some(&["data_modification"]),
        "admin" => Some(&["security"]),
        _ => None,
    })
}

/// Outcomes (`success`, `failure`, `error`), one or several.
pub fn parse_status(param: &str, value: &str) -> ApiResult<Vec<String>> {
    parse_words(param, value, &STATUSES, |_| None)
}

/// Which end of a range a time bound is: a plain date covers its whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// From the start of the day.
    Start,
    /// To the end of the day.
    End,
}

/// Parses a time bound: RFC 3339, a date (`2025-01-31`, UTC; as an end, inclusive of the whole
/// day), Unix seconds, or an age such as `30m`, `24h`, `7d`, `2w`.
pub fn parse_time_bound(name: &str, v: &str, now: i64, bound: Bound) -> ApiResult<i64> {
    let bad = || {
        ApiError::invalid(format!(
            "{name}={v:?} is not a time: use a date (2025-01-31), RFC 3339 (2025-01-31T12:00:00Z), Unix seconds, or an age such as 30m, 24h, 7d"
        ))
    };
    let v = v.trim();
    if let Some(day_start) = date(v) {
        return Ok(match bound {
            Bound::Start => day_start,
            Bound::End => day_start + 86_400_000_000 - 1,
        });
    }
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

/// The start (µs, UTC) of a `YYYY-MM-DD` day.
fn date(v: &str) -> Option<i64> {
    let mut parts = v.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let day = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(day.midnight().assume_utc().unix_timestamp() * 1_000_000)
}

fn rfc3339(v: &str) -> Option<i64> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| (d.unix_timestamp_nanos() / 1000) as i64)
}

/// Encodes the keyset position after an entry.
fn cursor_of(at_us: i64, id: i64) -> String {
    paging::cursor(&format!("{at_us}:{id}"))
}

/// Decodes a `next_cursor`.
pub fn parse_cursor(c: &str) -> ApiResult<(i64, i64)> {
    paging::position_pair(c)
}

/// The user a `/audit/logs/user/{user}` path names: a number is a user id when such a user
/// exists, anything else (or a number that is no id) a username, known or not.
pub async fn subject(store: &Store, user: &str) -> ApiResult<Cond> {
    let by_id = match user.parse::<i64>() {
        Ok(id) => auth_store::id_and_name_by_id(store, id).await?,
        Err(_) => None,
    };
    let found = match by_id {
        Some(found) => Some(found),
        None => auth_store::id_and_name_by_username(store, user).await?,
    };
    Ok(match found {
        Some((id, username)) => Cond::Subject {
            user_id: Some(id),
            username,
        },
        None => Cond::Subject {
            user_id: None,
            username: user.to_string(),
        },
    })
}

/// One page of matching events, newest first.
pub async fn page(store: &Store, f: &AuditFilter, limit: i64) -> ApiResult<Page<AuditLogEntry>> {
    let mut rows = store::events(store, f, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| cursor_of(r.at, r.id))
    } else {
        None
    };
    Ok(Page {
        items: rows.into_iter().map(entry).collect(),
        next_cursor,
    })
}

/// The next batch of an export; moves `f.before` past it. Empty when done.
pub async fn next_batch(
    store: &Store,
    f: &mut AuditFilter,
    limit: i64,
) -> ApiResult<Vec<AuditLogEntry>> {
    let rows = store::events(store, f, limit).await?;
    if let Some(last) = rows.last() {
        f.before = Some((last.at, last.id));
    }
    Ok(rows.into_iter().map(entry).collect())
}

fn window_start(hours: u32) -> i64 {
    now_us() - i64::from(hours) * 3_600_000_000
}

/// Failed logins of the last `hours`, newest first.
pub async fn failed_logins(store: &Store, hours: u32, limit: i64) -> ApiResult<Vec<AuditLogEntry>> {
    let f = AuditFilter {
        conds: vec![
            Cond::EventType(vec![LOGIN_FAILED.to_string()]),
            Cond::Since(window_start(hours)),
        ],
        before: None,
    };
    Ok(store::events(store, &f, limit)
        .await?
        .into_iter()
        .map(entry)
        .collect())
}

/// Every one of `keys` (0 when absent), plus whatever else was counted.
fn with_zeros(keys: &[&str], mut counts: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    for k in keys {
        counts.entry((*k).to_string()).or_insert(0);
    }
    counts
}

fn rate(part: u64, other: u64) -> f64 {
    if part + other == 0 {
        0.0
    } else {
        part as f64 / (part + other) as f64
    }
}

/// Counts of the last `hours`.
pub async fn stats(store: &Store, hours: u32) -> ApiResult<AuditStats> {
    let since = window_start(hours);
    let by_type = counts_by(store, CountBy::EventType, since, None).await?;
    let by_action = counts_by(store, CountBy::Action, since, Some(LOGIN_FAILED)).await?;
    let failures_by_reason = counts_by(store, CountBy::Reason, since, Some(LOGIN_FAILED)).await?;
    let count = |t: &str| by_type.get(t).copied().unwrap_or(0);
    let (ok, failed) = (count(LOGIN_SUCCESS), count(LOGIN_FAILED));
    let rate_limited = by_action.get("login_rate_limited").copied().unwrap_or(0);
    let total = by_type.values().sum();
    Ok(AuditStats {
        hours,
        total_events: total,
        by_category: with_zeros(
            &CATEGORIES,
            counts_by(store, CountBy::Category, since, None).await?,
        ),
        by_severity: with_zeros(
            &SEVERITIES,
            counts_by(store, CountBy::Severity, since, None).await?,
        ),
        by_status: with_zeros(
            &STATUSES,
            counts_by(store, CountBy::Status, since, None).await?,
        ),
        authentication: LoginStats {
            successful_logins: ok,
            failed_logins: failed,
            failure_rate: rate(failed, ok),
            rate_limited_logins: rate_limited,
            failures_by_reason,
        },
        total,
        login_successes: ok,
        login_failures: failed - rate_limited,
        login_rate_limited: rate_limited,
        failure_rate: rate(failed - rate_limited, ok),
        by_event_type: by_type,
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
        let start = |v| parse_time_bound("since", v, now, Bound::Start);
        assert_eq!(start("30m").unwrap(), now - 1_800_000_000);
        assert_eq!(start("24h").unwrap(), now - 86_400_000_000);
        assert_eq!(start("7d").unwrap(), now - 7 * 86_400_000_000);
        assert_eq!(start("1.5").unwrap(), 1_500_000);
        assert_eq!(start("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        let err = start("yesterday").unwrap_err().to_string();
        assert!(err.contains("since") && err.contains("24h"), "{err}");
        assert!(parse_time_bound("until", "5x", now, Bound::End).is_err());
        assert!(parse_time_bound("until", "-5h", now, Bound::End).is_err());
    }

    #[test]
    fn dates_cover_their_whole_day() {
        let jan31 = 1_738_281_600_000_000; // 2025-01-31T00:00:00Z
        assert_eq!(
            parse_time_bound("start_date", "2025-01-31", 0, Bound::Start).unwrap(),
            jan31
        );
        assert_eq!(
            parse_time_bound("end_date", "2025-01-31", 0, Bound::End).unwrap(),
            jan31 + 86_400_000_000 - 1
        );
        for bad in ["2025-02-30", "2025-13-01", "2025-1-31", "25-01-31"] {
            let err = parse_time_bound("end_date", bad, 0, Bound::End).unwrap_err();
            assert!(err.to_string().contains("end_date"), "{bad}: {err}");
        }
    }

    #[test]
    fn words_and_their_old_names() {
        assert_eq!(
            parse_severity("severity", "WARNING").unwrap(),
            ["medium", "high"]
        );
        assert_eq!(
            parse_severity("severity", "high,critical").unwrap(),
            ["high", "critical"]
        );
        assert_eq!(
            parse_category("category", "auth").unwrap(),
            ["authentication"]
        );
        assert_eq!(parse_category("category", "admin").unwrap(), ["security"]);
        let err = parse_severity("severity", "loud").unwrap_err().to_string();
        assert!(
            err.contains("severity") && err.contains("critical"),
            "{err}"
        );
        assert!(parse_status("status", ",").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor(&cursor_of(123, 45)).unwrap(), (123, 45));
        assert!(parse_cursor("nonsense!").is_err());
    }
}
