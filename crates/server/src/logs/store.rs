//! Storage of run logs: the `log_lines` table. This is the only place the logs feature's SQL
//! lives; the service calls these functions and sees typed lines.

use sqlx::Row;
use wanllmdb_api_types::logs::{LogLevel, LogLine, LogSource};

use super::LogFilter;
use crate::error::{ApiResult, known};
use crate::store::{Store, us_to_seconds};
use crate::{on_backend, with_tx};

/// Lines per INSERT statement.
const ROWS_PER_INSERT: usize = 100;

/// A checked line, ready to store.
pub(super) struct NewLine {
    /// Severity.
    pub level: LogLevel,
    /// Where it came from.
    pub source: LogSource,
    /// Its number within its source, when the client numbered it.
    pub line_number: Option<i64>,
    /// When (microseconds).
    pub ts: i64,
    /// The text.
    pub message: String,
}

/// Stores `lines` of a run in one transaction, skipping any whose (source, line number) is
/// already stored. Returns how many were stored.
pub(super) async fn insert_lines(store: &Store, run_pk: i64, lines: &[NewLine]) -> ApiResult<u64> {
    let mut accepted = 0u64;
    with_tx!(store, |tx| {
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 6;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO log_lines (run_pk, level, source, line_number, ts, message) VALUES {} ON CONFLICT DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for line in chunk {
                q = q
                    .bind(run_pk)
                    .bind(line.level.as_str())
                    .bind(line.source.as_str())
                    .bind(line.line_number)
                    .bind(line.ts)
                    .bind(&line.message);
            }
            accepted += q.execute(&mut *tx).await?.rows_affected();
        }
    });
    Ok(accepted)
}

/// The stored names of the levels at `min` or above.
fn levels_at_or_above(min: LogLevel) -> Vec<&'static str> {
    [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
    ]
    .into_iter()
    .filter(|l| *l >= min)
    .map(LogLevel::as_str)
    .collect()
}

/// At most `limit` lines of a run that pass `f`, oldest first or `newest_first`.
pub(super) async fn select_lines(
    store: &Store,
    run_pk: i64,
    f: &LogFilter,
    limit: i64,
    newest_first: bool,
) -> ApiResult<Vec<LogLine>> {
    let mut wheres = vec!["run_pk = $1".to_string(), "id > $2".to_string()];
    let mut texts: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    let mut n = 3;
    if let Some(level) = f.level {
        let list: Vec<String> = levels_at_or_above(level)
            .into_iter()
            .map(|l| {
                texts.push(l.to_string());
                let p = format!("${n}");
                n += 1;
                p
            })
            .collect();
        wheres.push(format!("level IN ({})", list.join(", ")));
    }
    if let Some(s) = f.source {
        texts.push(s.as_str().to_string());
        wheres.push(format!("source = ${n}"));
        n += 1;
    }
    if let Some(t) = f.text.as_deref().filter(|t| !t.is_empty()) {
        let esc = t
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        texts.push(format!("%{esc}%"));
        wheres.push(format!("LOWER(message) LIKE ${n} ESCAPE '\\'"));
        n += 1;
    }
    // Text parameters are numbered before integer ones.
    if let Some(s) = f.since_us {
        ints.push(s);
        wheres.push(format!("ts >= ${}", n));
        n += 1;
    }
    if let Some(u) = f.until_us {
        ints.push(u);
        wheres.push(format!("ts <= ${}", n));
        n += 1;
    }
    let sql = format!(
        "SELECT id, level, source, line_number, ts, message FROM log_lines WHERE {} ORDER BY id {} LIMIT ${n}",
        wheres.join(" AND "),
        if newest_first { "DESC" } else { "ASC" }
    );
    let after = f.after_seq.unwrap_or(0);
    let lines = on_backend!(store, read, |pool| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_pk)
            .bind(after);
        for t in &texts {
            q = q.bind(t.clone());
        }
        for i in &ints {
            q = q.bind(*i);
        }
        let mut out = Vec::new();
        for r in q.bind(limit).fetch_all(pool).await? {
            let level: String = r.try_get("level")?;
            let source: String = r.try_get("source")?;
            let seq: i64 = r.try_get("id")?;
            out.push(LogLine {
                seq,
                level: known(LogLevel::parse(&level), "log line", seq, "level", &level)?,
                message: r.try_get("message")?,
                timestamp: us_to_seconds(r.try_get("ts")?),
                source: known(
                    LogSource::parse(&source),
                    "log line",
                    seq,
                    "source",
                    &source,
                )?,
                line_number: r.try_get("line_number")?,
            });
        }
        out
    });
    Ok(lines)
}
