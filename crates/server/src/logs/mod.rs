//! Log lines of runs: batch append (idempotent by source and line number), filtered listing,
//! export, and live streaming.

pub mod routes;
mod store;

use wanllmdb_api_types::logs::{AppendLogsResponse, LogLevel, LogLine, LogSource, NewLogLine};

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::{Store, now_us, seconds_to_us};
use wanllmdb_api_types::RunId;

const MAX_LINES_PER_BATCH: usize = 100_000;
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

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
        run_id: &RunId,
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
            rows.push(store::NewLine {
                level: l.level.unwrap_or(LogLevel::Info),
                source: l.source.unwrap_or(LogSource::User),
                line_number: l.line_number,
                ts,
                message: l.message,
            });
        }
        let total = rows.len() as u64;
        let accepted = store::insert_lines(self.store(), run.pk, &rows).await?;
        let _ = self.state.log_events.send(run.pk);
        Ok(AppendLogsResponse {
            accepted,
            duplicates: total - accepted,
        })
    }

    /// Lines of a run in order, filtered, at most `limit`.
    pub async fn page(&self, run_pk: i64, f: &LogFilter, limit: i64) -> ApiResult<Vec<LogLine>> {
        store::select_lines(self.store(), run_pk, f, limit, false).await
    }

    /// The last `limit` lines of a run that pass the filter, in order (a log tail).
    pub async fn tail(&self, run_pk: i64, f: &LogFilter, limit: i64) -> ApiResult<Vec<LogLine>> {
        let mut lines = store::select_lines(self.store(), run_pk, f, limit, true).await?;
        lines.reverse();
        Ok(lines)
    }
}
