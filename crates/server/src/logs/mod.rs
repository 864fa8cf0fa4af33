//! Log lines of runs: batch append (idempotent by source and line number), filtered listing,
//! export, and live streaming.

pub mod routes;

use sqlx::Row;
use wanllmdb_api_types::logs::{AppendLogsResponse, LogLevel, LogLine, LogSource, NewLogLine};

use crate::app::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, known};
use crate::runs::Runs;
use crate::store::{Store, now_us, seconds_to_us, us_to_seconds};
use crate::{on_backend, with_tx};

const MAX_LINES_PER_BATCH: usize = 100_000;
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
const ROWS_PER_INSERT: usize = 100;

/// Filters of a log listing.
#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    /// Lines at this level or above.
    pub level: Option<LogLevel>,
    /// Only this source.
    pub source: Option<LogSource>,
    /// Message substring (case-insensitive).
    pub text: Option<String>,
    /// From this time (Unix microseconds, inclusive).
    pub since_us: Option<i64>,
    /// Until this time (Unix microseconds, inclusive).
    pub until_us: Option<i64>,
    /// Lines after this sequence number.
    pub after_seq: Option<i64>,
}

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

/// The log service.
pub struct Logs<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Logs<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// Appends lines; a line whose (source, line_number) is already stored is skipped.
    pub async fn append(
        &self,
        actor: &Actor,
        run_id: &str,
        lines: Vec<NewLogLine>,
    ) -> ApiResult<AppendLogsResponse> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        if lines.len() > MAX_LINES_PER_BATCH {
            return Err(ApiError::invalid(format!(
                "at most {MAX_LINES_PER_BATCH} lines per request; split the batch"
            )));
        }
        let now = now_us();
        let mut rows = Vec::with_capacity(lines.len());
        for (i, l) in lines.into_iter().enumerate() {
            if l.message.len() > MAX_MESSAGE_BYTES {
                return Err(ApiError::invalid(format!(
                    "lines[{i}].message is longer than {MAX_MESSAGE_BYTES} bytes"
                )));
            }
            let ts = match l.timestamp {
                None => now,
                Some(t) => seconds_to_us(t).ok_or_else(|| {
                    ApiError::invalid(format!("lines[{i}].timestamp is not a valid Unix time"))
                })?,
            };
            rows.push((
                l.level.unwrap_or(LogLevel::Info).as_str(),
                l.source.unwrap_or(LogSource::User).as_str(),
                l.line_number,
                ts,
                l.message,
            ));
        }
        let total = rows.len() as u64;
        let mut accepted = 0u64;
        with_tx!(self.store(), |tx| {
            for chunk in rows.chunks(ROWS_PER_INSERT) {
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
                for (level, source, line, ts, msg) in chunk {
                    q = q
                        .bind(run.pk)
                        .bind(*level)
                        .bind(*source)
                        .bind(*line)
                        .bind(*ts)
                        .bind(msg);
                }
                accepted += q.execute(&mut *tx).await?.rows_affected();
            }
        });
        let _ = self.state.log_events.send(run.pk);
        Ok(AppendLogsResponse {
            accepted,
            duplicates: total - accepted,
        })
    }

    /// Lines of a run in order, filtered, at most `limit`.
    pub async fn page(&self, run_pk: i64, f: &LogFilter, limit: i64) -> ApiResult<Vec<LogLine>> {
        self.select(run_pk, f, limit, false).await
    }

    /// The last `limit` lines of a run that pass the filter, in order (a log tail).
    pub async fn tail(&self, run_pk: i64, f: &LogFilter, limit: i64) -> ApiResult<Vec<LogLine>> {
        let mut lines = self.select(run_pk, f, limit, true).await?;
        lines.reverse();
        Ok(lines)
    }

    async fn select(
        &self,
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
        let lines = on_backend!(self.store(), read, |pool| {
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
}
