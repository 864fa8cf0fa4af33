//! Storage of sweeps: the `sweeps`, `sweep_agents` and `sweep_trials` tables. This is the
//! only place the sweep controller's SQL lives.
//!
//! A trial's outcome is its run's state and the summary of the sweep's metric, so some
//! queries here also read (and, to stop runs, write) `runs` and `metric_series`; those
//! statements are marked with the feature that owns the table.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use wanllmdb_api_types::sweeps::SweepState;
use wanllmdb_api_types::{ProjectName, RunId};

use super::cache::{FINGERPRINT_SELECT, Fingerprint, Lookup, TrialCache, Trials};
use super::{Draw, Locked, NoTrial};
use crate::error::{ApiResult, known};
use crate::store::Store;
use crate::{on_backend, with_tx};

const SWEEP_SELECT: &str = "SELECT s.pk, s.id, s.project_id, p.name AS project, s.name, s.description, \
     s.method, s.config, s.state, s.seed, s.grid_cursor, s.trial_count, s.finish_reason, \
     u.username AS created_by, s.created_at, s.updated_at \
     FROM sweeps s JOIN projects p ON p.id = s.project_id LEFT JOIN users u ON u.id = s.created_by";

/// Trials with their run's state and the metric's summary ($1 sweep, $2 metric name), without
/// an order. Reads `runs` (owned by runs) and `metric_series` (owned by metrics).
macro_rules! trial_select {
    () => {
        "SELECT t.pk, t.number, t.run_id, t.params, t.stop_reason, \
         t.retry_requested, t.retry_of, t.created_at, a.id AS agent_id, r.pk AS run_pk, r.state AS run_state, \
         r.updated_at AS run_updated_at, \
         m.count AS iterations, m.last_value, m.last_nan, m.set_value, m.set_nan, m.is_set \
         FROM sweep_trials t LEFT JOIN sweep_agents a ON a.pk = t.agent_pk \
         LEFT JOIN runs r ON r.id = t.run_id \
         LEFT JOIN metric_series m ON m.run_pk = r.pk AND m.key = $2 \
         WHERE t.sweep_pk = $1"
    };
}

/// Every trial, in number order.
const TRIAL_SELECT: &str = concat!(trial_select!(), " ORDER BY t.number");

/// Trials numbered above $3 or whose run changed at or after $4, in number order.
const TRIALS_CHANGED: &str = concat!(
    trial_select!(),
    " AND (t.number > $3 OR r.updated_at >= $4) ORDER BY t.number"
);

/// Reads a sweep's trials through the trial cache on `$conn` (a pool, or `&mut *tx` inside
/// `with_tx!`): a one-row fingerprint when nothing changed, the changed rows when that
/// explains every change, all of them otherwise.
macro_rules! read_trials {
    ($conn:expr, $cache:expr, $sweep_pk:expr, $metric:expr) => {{
        let (cache, sweep_pk, metric): (&TrialCache, i64, &str) = ($cache, $sweep_pk, $metric);
        let now: Fingerprint = sqlx::query_as(FINGERPRINT_SELECT)
            .bind(sweep_pk)
            .fetch_one($conn)
            .await?;
        let merged = match cache.lookup(sweep_pk, metric, &now) {
            Lookup::Fresh(rows) => Some(rows),
            Lookup::Missing => None,
            Lookup::Stale(old) => {
                let changed: Vec<TrialRow> = sqlx::query_as(TRIALS_CHANGED)
                    .bind(sweep_pk)
                    .bind(metric)
                    .bind(old.last_number())
                    .bind(old.changed_since())
                    .fetch_all($conn)
                    .await?;
                cache.merge(sweep_pk, &old, changed, &now)
            }
        };
        match merged {
            Some(rows) => rows,
            None => {
                let all: Vec<TrialRow> = sqlx::query_as(TRIAL_SELECT)
                    .bind(sweep_pk)
                    .bind(metric)
                    .fetch_all($conn)
                    .await?;
                cache.keep(sweep_pk, metric, all.into_iter().map(Arc::new).collect())
            }
        }
    }};
}

/// A sweep as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct SweepRow {
    pub(super) pk: i64,
    pub(super) id: String,
    pub(super) project_id: i64,
    #[sqlx(try_from = "String")]
    pub(super) project: ProjectName,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) method: String,
    pub(super) config: String,
    pub(super) state: String,
    pub(super) seed: i64,
    pub(super) grid_cursor: i64,
    pub(super) trial_count: i64,
    pub(super) finish_reason: Option<String>,
    pub(super) created_by: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

/// A trial with its run's state and summary.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct TrialRow {
    pub(super) pk: i64,
    pub(super) number: i64,
    #[sqlx(try_from = "String")]
    pub(super) run_id: RunId,
    pub(super) params: String,
    pub(super) stop_reason: Option<String>,
    pub(super) retry_requested: bool,
    pub(super) retry_of: Option<i64>,
    pub(super) created_at: i64,
    pub(super) agent_id: Option<String>,
    pub(super) run_pk: Option<i64>,
    pub(super) run_state: Option<String>,
    pub(super) iterations: Option<i64>,
    pub(super) last_value: Option<f64>,
    pub(super) last_nan: Option<bool>,
    pub(super) set_value: Option<f64>,
    pub(super) set_nan: Option<bool>,
    pub(super) is_set: Option<bool>,
    /// When the run last changed (state, metrics, anything): what the trial cache watches.
    pub(super) run_updated_at: Option<i64>,
    /// `params` decoded, on first use.
    #[sqlx(skip)]
    pub(super) decoded: OnceLock<Map<String, Value>>,
}

/// An agent as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct AgentRow {
    pub(super) id: String,
    pub(super) host: String,
    pub(super) pid: Option<i64>,
    pub(super) heartbeat_at: i64,
    pub(super) exited_at: Option<i64>,
}

/// A sweep to create; it starts pending.
pub(super) struct NewSweep<'a> {
    pub(super) id: &'a str,
    pub(super) project_id: i64,
    pub(super) name: &'a str,
    pub(super) description: String,
    pub(super) method: &'a str,
    pub(super) config: String,
    pub(super) seed: i64,
    pub(super) created_by: i64,
    pub(super) now: i64,
}

/// An agent joining a sweep.
pub(super) struct NewAgent<'a> {
    pub(super) id: &'a str,
    pub(super) sweep_pk: i64,
    pub(super) host: &'a str,
    pub(super) pid: Option<i64>,
    pub(super) created_by: i64,
    pub(super) now: i64,
}

/// Who a trial being reserved is for, and whether the sampler needs every trial so far.
pub(super) struct Reservation<'a> {
    pub(super) run_id: &'a str,
    pub(super) agent_pk: Option<i64>,
    /// The metric whose summaries the history carries.
    pub(super) metric: &'a str,
    /// Read the history when no retry is queued (the TPE sampler learns from it).
    pub(super) wants_history: bool,
    pub(super) now: i64,
}

/// The sweep with the id `id`.
pub(super) async fn sweep_by_id(store: &Store, id: &str) -> ApiResult<Option<SweepRow>> {
    let sql = format!("{SWEEP_SELECT} WHERE s.id = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, SweepRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// The newest 1,000 sweeps of a project, newest first.
pub(super) async fn sweeps_of_project(store: &Store, project_id: i64) -> ApiResult<Vec<SweepRow>> {
    let sql = format!(
        "{SWEEP_SELECT} WHERE s.project_id = $1 ORDER BY s.created_at DESC, s.pk DESC LIMIT 1000"
    );
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, SweepRow>(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .fetch_all(pool)
            .await?
    }))
}

/// Every running or paused sweep.
pub(super) async fn active_sweeps(store: &Store) -> ApiResult<Vec<SweepRow>> {
    let sql = format!("{SWEEP_SELECT} WHERE s.state IN ('running', 'paused')");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, SweepRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?
    }))
}

/// Every trial of a sweep in number order, with its run's state and `metric`'s summary.
pub(super) async fn trials(
    store: &Store,
    cache: &TrialCache,
    sweep_pk: i64,
    metric: &str,
) -> ApiResult<Trials> {
    Ok(on_backend!(store, read, |pool| {
        read_trials!(pool, cache, sweep_pk, metric)
    }))
}

/// Creates a sweep.
pub(super) async fn insert_sweep(store: &Store, sweep: NewSweep<'_>) -> ApiResult<()> {
    const INSERT_SWEEPS: &str = "INSERT INTO sweeps (id, project_id, name, description, method, config, state, seed, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9)";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_SWEEPS)
            .bind(sweep.id)
            .bind(sweep.project_id)
            .bind(sweep.name)
            .bind(&sweep.description)
            .bind(sweep.method)
            .bind(&sweep.config)
            .bind(sweep.seed)
            .bind(sweep.created_by)
            .bind(sweep.now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The agents of a sweep, in the order they joined.
pub(super) async fn agents(store: &Store, sweep_pk: i64) -> ApiResult<Vec<AgentRow>> {
    const SELECT_SWEEP_AGENTS: &str = "SELECT id, host, pid, heartbeat_at, exited_at FROM sweep_agents WHERE sweep_pk = $1 ORDER BY pk";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_SWEEP_AGENTS)
            .bind(sweep_pk)
            .fetch_all(pool)
            .await?
    }))
}

/// Sets a sweep's state; `reason` and `finished_at` replace the stored ones only when given.
pub(super) async fn set_state(
    store: &Store,
    pk: i64,
    to: SweepState,
    reason: Option<&str>,
    finished_at: Option<i64>,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_SWEEPS: &str = "UPDATE sweeps SET state = $1, finish_reason = COALESCE($2, finish_reason), finished_at = COALESCE($3, finished_at), updated_at = $4 WHERE pk = $5";
    on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_SWEEPS)
            .bind(to.as_str())
            .bind(reason)
            .bind(finished_at)
            .bind(now)
            .bind(pk)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Marks every trial whose run is running or not yet started as stopped for `reason`, and
/// asks the running runs to stop, in one transaction. Reads and writes `runs` (owned by runs).
pub(super) async fn stop_unfinished(
    store: &Store,
    sweep_pk: i64,
    reason: &str,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_SWEEP_TRIALS: &str = "UPDATE sweep_trials SET stop_reason = $1 WHERE sweep_pk = $2 AND stop_reason IS NULL AND run_id NOT IN (SELECT id FROM runs WHERE state <> 'running')";
    const UPDATE_RUNS: &str = "UPDATE runs SET stop_requested = $1, updated_at = $2 WHERE state = 'running' AND id IN (SELECT run_id FROM sweep_trials WHERE sweep_pk = $3)";
    with_tx!(store, |tx| {
        sqlx::query(UPDATE_SWEEP_TRIALS)
            .bind(reason)
            .bind(sweep_pk)
            .execute(&mut *tx)
            .await?;
        sqlx::query(UPDATE_RUNS)
            .bind(true)
            .bind(now)
            .bind(sweep_pk)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// Deletes a sweep (its trials and agents go with it) after appending `note` to the notes of
/// its runs, in one transaction; returns the ids of those runs in trial order. Reads and
/// writes `runs` (owned by runs).
pub(super) async fn delete_sweep_detaching_runs(
    store: &Store,
    sweep_pk: i64,
    note: &str,
    now: i64,
) -> ApiResult<Vec<String>> {
    const SELECT_RUNS: &str = "SELECT r.id FROM runs r JOIN sweep_trials t ON t.run_id = r.id WHERE t.sweep_pk = $1 ORDER BY t.number";
    const UPDATE_RUNS: &str = "UPDATE runs SET notes = CASE WHEN notes = '' THEN $1 ELSE notes || $2 || $1 END, updated_at = $3
                 WHERE id IN (SELECT run_id FROM sweep_trials WHERE sweep_pk = $4)";
    Ok(with_tx!(store, |tx| {
        let ids: Vec<String> = sqlx::query_scalar(SELECT_RUNS)
            .bind(sweep_pk)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(UPDATE_RUNS)
            .bind(note)
            .bind("\n")
            .bind(now)
            .bind(sweep_pk)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sweeps WHERE pk = $1")
            .bind(sweep_pk)
            .execute(&mut *tx)
            .await?;
        ids
    }))
}

/// Queues the trials `trial_pks` for a retry and reopens the sweep if it had finished, in
/// one transaction.
pub(super) async fn queue_retries(
    store: &Store,
    sweep_pk: i64,
    trial_pks: &[i64],
    now: i64,
) -> ApiResult<()> {
    const UPDATE_SWEEPS: &str = "UPDATE sweeps SET state = 'running', finish_reason = NULL, finished_at = NULL, updated_at = $1 WHERE pk = $2 AND state = 'finished'";
    with_tx!(store, |tx| {
        for pk in trial_pks {
            sqlx::query("UPDATE sweep_trials SET retry_requested = $1 WHERE pk = $2")
                .bind(true)
                .bind(pk)
                .execute(&mut *tx)
                .await?;
        }
        // A sweep that ran out of points has work again.
        sqlx::query(UPDATE_SWEEPS)
            .bind(now)
            .bind(sweep_pk)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// Reserves the next trial of `sweep` in one transaction: locks the sweep's row, reads its
/// counters, the first queued retry and (when wanted) every trial, lets `decide` pick what to
/// hand out, then records the trial and advances the counters. Returns the trial's number
/// and parameters, or why `decide` handed out nothing.
pub(super) async fn reserve_trial(
    store: &Store,
    cache: &TrialCache,
    sweep: &SweepRow,
    r: Reservation<'_>,
    decide: impl FnOnce(Locked<'_>) -> Result<Draw, NoTrial>,
) -> ApiResult<Result<(i64, Map<String, Value>), NoTrial>> {
    const UPDATE_SWEEPS: &str =
        "UPDATE sweeps SET updated_at = $1 WHERE pk = $2 RETURNING state, grid_cursor, trial_count";
    const SELECT_SWEEP_TRIALS: &str = "SELECT number, params, grid_index FROM sweep_trials WHERE sweep_pk = $1 AND retry_requested = $2 ORDER BY number LIMIT 1";
    const INSERT_SWEEP_TRIALS: &str = "INSERT INTO sweep_trials (sweep_pk, number, run_id, params, grid_index, agent_pk, retry_of, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    const UPDATE_SWEEP_TRIALS: &str =
        "UPDATE sweep_trials SET retry_requested = $1 WHERE sweep_pk = $2 AND number = $3";
    const ADVANCE_GRID_CURSOR: &str = "UPDATE sweeps SET grid_cursor = $1, trial_count = $2, state = CASE WHEN state = 'pending' THEN 'running' ELSE state END WHERE pk = $3";
    Ok(with_tx!(store, |tx| {
        // Touching the row first takes the lock that serialises controllers.
        let (state, cursor, drawn): (String, i64, i64) = sqlx::query_as(UPDATE_SWEEPS)
            .bind(r.now)
            .bind(sweep.pk)
            .fetch_one(&mut *tx)
            .await?;
        let retry: Option<(i64, String, Option<i64>)> = sqlx::query_as(SELECT_SWEEP_TRIALS)
            .bind(sweep.pk)
            .bind(true)
            .fetch_optional(&mut *tx)
            .await?;
        let history: Trials = if r.wants_history && retry.is_none() {
            read_trials!(&mut *tx, cache, sweep.pk, r.metric)
        } else {
            Trials::default()
        };
        let state = known(
            SweepState::parse(&state),
            "sweep",
            &sweep.id,
            "state",
            &state,
        )?;
        let locked = Locked {
            state,
            cursor,
            drawn,
            retry,
            history: &history,
        };
        match decide(locked) {
            Err(e) => Err(e),
            Ok(d) => {
                let number: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM sweep_trials WHERE sweep_pk = $1",
                )
                .bind(sweep.pk)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(INSERT_SWEEP_TRIALS)
                    .bind(sweep.pk)
                    .bind(number)
                    .bind(r.run_id)
                    .bind(Value::Object(d.params.clone()).to_string())
                    .bind(d.grid_index)
                    .bind(r.agent_pk)
                    .bind(d.retry_of)
                    .bind(r.now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(of) = d.retry_of {
                    sqlx::query(UPDATE_SWEEP_TRIALS)
                        .bind(false)
                        .bind(sweep.pk)
                        .bind(of)
                        .execute(&mut *tx)
                        .await?;
                }
                let (cursor, drawn) = d.counters_after(cursor, drawn);
                sqlx::query(ADVANCE_GRID_CURSOR)
                    .bind(cursor)
                    .bind(drawn)
                    .bind(sweep.pk)
                    .execute(&mut *tx)
                    .await?;
                Ok((number, d.params))
            }
        }
    }))
}

/// Records why a trial stops and asks its run to stop if it is running, in one transaction.
/// Writes `runs` (owned by runs).
pub(super) async fn request_stop(
    store: &Store,
    trial_pk: i64,
    run_id: &str,
    reason: &str,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_RUNS: &str =
        "UPDATE runs SET stop_requested = $1, updated_at = $2 WHERE id = $3 AND state = 'running'";
    with_tx!(store, |tx| {
        sqlx::query(
            "UPDATE sweep_trials SET stop_reason = $1 WHERE pk = $2 AND stop_reason IS NULL",
        )
        .bind(reason)
        .bind(trial_pk)
        .execute(&mut *tx)
        .await?;
        sqlx::query(UPDATE_RUNS)
            .bind(true)
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// Adds an agent to a sweep.
pub(super) async fn insert_agent(store: &Store, agent: NewAgent<'_>) -> ApiResult<()> {
    const INSERT_SWEEP_AGENTS: &str = "INSERT INTO sweep_agents (id, sweep_pk, host, pid, created_by, created_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $6)";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_SWEEP_AGENTS)
            .bind(agent.id)
            .bind(agent.sweep_pk)
            .bind(agent.host)
            .bind(agent.pid)
            .bind(agent.created_by)
            .bind(agent.now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Records an agent's heartbeat; returns its pk and when it exited, or None when the sweep
/// has no such agent.
pub(super) async fn touch_agent(
    store: &Store,
    sweep_pk: i64,
    agent_id: &str,
    now: i64,
) -> ApiResult<Option<(i64, Option<i64>)>> {
    const UPDATE_SWEEP_AGENTS: &str = "UPDATE sweep_agents SET heartbeat_at = $1 WHERE sweep_pk = $2 AND id = $3 RETURNING pk, exited_at";
    Ok(on_backend!(store, write, |pool| {
        sqlx::query_as(UPDATE_SWEEP_AGENTS)
            .bind(now)
            .bind(sweep_pk)
            .bind(agent_id)
            .fetch_optional(pool)
            .await?
    }))
}

/// Marks a running agent as exited; false when the sweep has no such running agent.
pub(super) async fn mark_agent_exited(
    store: &Store,
    sweep_pk: i64,
    agent_id: &str,
    now: i64,
) -> ApiResult<bool> {
    const UPDATE_SWEEP_AGENTS: &str = "UPDATE sweep_agents SET exited_at = $1 WHERE sweep_pk = $2 AND id = $3 AND exited_at IS NULL";
    let done = on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_SWEEP_AGENTS)
            .bind(now)
            .bind(sweep_pk)
            .bind(agent_id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done > 0)
}
