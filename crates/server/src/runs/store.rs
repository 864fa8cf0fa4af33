//! Storage of runs: the `runs` table and `run_tags`, which holds each run's tags in the order
//! they were given (and indexes them for tag filters). This is the only place the runs
//! feature's SQL lives; the service calls these functions and sees typed rows.

pub(super) mod filter;

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;
use wanllmdb_api_types::metrics::MetricValue;
use wanllmdb_api_types::runs::{CreateRunRequest, GitInfo, Run, RunState};
use wanllmdb_api_types::{ProjectName, RunId};

use super::RunQuery;
use crate::error::{ApiError, ApiResult, known};
use crate::store::{BackendKind, Store, format_time};
use crate::{on_backend, with_tx};
use filter::{Bind, SqlBuilder};

/// The columns of a run as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    /// Internal key.
    pub pk: i64,
    /// Public id.
    #[sqlx(try_from = "String")]
    pub id: RunId,
    /// Owning project.
    pub project_id: i64,
    #[sqlx(try_from = "String")]
    pub(super) project_name: ProjectName,
    pub(super) name: String,
    pub(super) state: String,
    pub(super) config: String,
    pub(super) notes: String,
    pub(super) group_name: Option<String>,
    pub(super) job_type: Option<String>,
    pub(super) git_commit: Option<String>,
    pub(super) git_branch: Option<String>,
    pub(super) git_remote: Option<String>,
    pub(super) git_dirty: Option<bool>,
    pub(super) host: Option<String>,
    pub(super) os: Option<String>,
    pub(super) program: Option<String>,
    pub(super) runtime: String,
    pub(super) exit_code: Option<i64>,
    pub(super) created_by_name: Option<String>,
    pub(super) created_at: i64,
    pub(super) started_at: i64,
    pub(super) finished_at: Option<i64>,
    pub(super) heartbeat_at: i64,
    pub(super) updated_at: i64,
    pub(super) stop_requested: bool,
    pub(super) reaped: bool,
    pub(super) end_reason: Option<String>,
}

const RUN_SELECT: &str = "SELECT r.pk, r.id, r.project_id, p.name AS project_name, r.name, r.state, r.config, r.notes,
    r.group_name, r.job_type, r.git_commit, r.git_branch, r.git_remote, r.git_dirty, r.host, r.os, r.program, r.runtime,
    r.exit_code, u.username AS created_by_name, r.created_at, r.started_at, r.finished_at, r.heartbeat_at, r.updated_at,
    r.stop_requested, r.reaped, r.end_reason
    FROM runs r JOIN projects p ON p.id = r.project_id LEFT JOIN users u ON u.id = r.created_by";

impl RunRow {
    /// The stored state; an error naming the run when it is not one this server knows.
    pub(super) fn state(&self) -> ApiResult<RunState> {
        Ok(known(
            RunState::parse(&self.state),
            "run",
            &self.id,
            "state",
            &self.state,
        )?)
    }

    /// The run as the API shows it, with its metric summary and tags.
    pub(super) fn into_api(
        self,
        summary: BTreeMap<String, MetricValue>,
        (tags, tag_values): (Vec<String>, BTreeMap<String, String>),
    ) -> ApiResult<Run> {
        Ok(Run {
            state: self.state()?,
            id: self.id,
            project: self.project_name,
            name: self.name,
            config: serde_json::from_str(&self.config).unwrap_or_else(|_| serde_json::json!({})),
            tags,
            notes: self.notes,
            group: self.group_name,
            job_type: self.job_type,
            git: GitInfo {
                commit: self.git_commit,
                branch: self.git_branch,
                remote: self.git_remote,
                dirty: self.git_dirty,
            },
            host: self.host,
            os: self.os,
            program: self.program,
            runtime: serde_json::from_str(&self.runtime).unwrap_or_default(),
            exit_code: self.exit_code.map(|c| c as i32),
            created_by: self.created_by_name.unwrap_or_default(),
            created_at: format_time(self.created_at),
            started_at: format_time(self.started_at),
            finished_at: self.finished_at.map(format_time),
            heartbeat_at: format_time(self.heartbeat_at),
            updated_at: format_time(self.updated_at),
            stop_requested: self.stop_requested,
            end_reason: self.end_reason,
            summary,
            tag_values,
        })
    }
}

/// Adds `tags` to run `pk` inside the transaction `tx`, numbering their positions from
/// `first`, so they read back in the order given. A macro, because each backend's transaction
/// is a type of its own.
macro_rules! insert_tags {
    ($tx:ident, $pk:expr, $tags:expr, $first:expr) => {
        let mut position: i64 = $first;
        for t in $tags {
            sqlx::query("INSERT INTO run_tags (run_pk, tag, position) VALUES ($1, $2, $3)")
                .bind($pk)
                .bind(t)
                .bind(position)
                .execute(&mut *$tx)
                .await?;
            position += 1;
        }
    };
}

/// The tags of run `pk` with their positions, in order, read inside the transaction `tx`.
macro_rules! stored_tags {
    ($tx:ident, $pk:expr) => {{
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT tag, position FROM run_tags WHERE run_pk = $1 ORDER BY position",
        )
        .bind($pk)
        .fetch_all(&mut *$tx)
        .await?;
        rows
    }};
}

/// The position after the last of `stored` (from `stored_tags!`).
fn next_position(stored: &[(String, i64)]) -> i64 {
    stored.last().map_or(0, |(_, p)| p + 1)
}

/// `FOR UPDATE` where the backend has row locks; SQLite's write transaction already
/// excludes other writers.
fn row_lock(store: &Store) -> &'static str {
    match store.kind() {
        BackendKind::Postgres => " FOR UPDATE",
        BackendKind::Sqlite => "",
    }
}

/// The run with public id `id`.
pub(super) async fn run_by_id(store: &Store, id: &RunId) -> ApiResult<Option<RunRow>> {
    let sql = format!("{RUN_SELECT} WHERE r.id = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
    }))
}

/// The metric summary of each run: per key the value the client set, else the last logged.
// `metric_series` belongs to the metrics feature; runs read it to show summaries.
pub(super) async fn summaries(
    store: &Store,
    run_pks: &[i64],
) -> ApiResult<HashMap<i64, BTreeMap<String, MetricValue>>> {
    let mut out: HashMap<i64, BTreeMap<String, MetricValue>> = HashMap::new();
    if run_pks.is_empty() {
        return Ok(out);
    }
    let placeholders: Vec<String> = (1..=run_pks.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT run_pk, key, last_value, last_nan, set_value, set_nan, is_set FROM metric_series WHERE run_pk IN ({})",
        placeholders.join(",")
    );
    let rows: Vec<(i64, String, Option<f64>)> = on_backend!(store, read, |pool| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for pk in run_pks {
            q = q.bind(*pk);
        }
        let mut v = Vec::new();
        for r in q.fetch_all(pool).await? {
            let is_set: bool = r.try_get("is_set")?;
            let (val, nan): (Option<f64>, bool) = if is_set {
                (r.try_get("set_value")?, r.try_get("set_nan")?)
            } else {
                (r.try_get("last_value")?, r.try_get("last_nan")?)
            };
            let val = if nan { Some(f64::NAN) } else { val };
            v.push((r.try_get("run_pk")?, r.try_get("key")?, val));
        }
        v
    });
    for (pk, key, val) in rows {
        if let Some(v) = val {
            out.entry(pk).or_default().insert(key, MetricValue(v));
        }
    }
    Ok(out)
}

/// The tags of each run that has any, in the order they were given: one query for all of
/// `run_pks`.
pub(super) async fn tags_by_run(
    store: &Store,
    run_pks: &[i64],
) -> ApiResult<HashMap<i64, Vec<String>>> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    if run_pks.is_empty() {
        return Ok(out);
    }
    // One row a run, its tags as a JSON list in order: a page of runs reads as many rows as
    // it has runs, not one a tag.
    let list = match store.kind() {
        BackendKind::Sqlite => "json_group_array(tag ORDER BY position)",
        BackendKind::Postgres => "json_agg(tag ORDER BY position)::text",
    };
    let placeholders: Vec<String> = (1..=run_pks.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT run_pk, {list} FROM run_tags WHERE run_pk IN ({}) GROUP BY run_pk",
        placeholders.join(",")
    );
    let rows: Vec<(i64, String)> = on_backend!(store, read, |pool| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for pk in run_pks {
            q = q.bind(*pk);
        }
        q.fetch_all(pool).await?
    });
    for (pk, json) in rows {
        let tags = serde_json::from_str(&json)
            .map_err(|e| ApiError::Internal(format!("tags of run {pk}: {e}")))?;
        out.insert(pk, tags);
    }
    Ok(out)
}

/// What a new run is stored with besides the fields the client sent as they are.
pub(super) struct NewRun<'a> {
    /// Public id.
    pub id: &'a RunId,
    /// Owning project.
    pub project_id: i64,
    /// Display name.
    pub name: &'a str,
    /// Config as a JSON object.
    pub config: &'a str,
    /// Checked tags.
    pub tags: &'a [String],
    /// The user who created it.
    pub created_by: i64,
    /// Creation time (microseconds).
    pub created_at: i64,
    /// Start time (microseconds).
    pub started_at: i64,
    /// Notes, group, job type, git, host, os, program and runtime as sent.
    pub request: &'a CreateRunRequest,
}

/// Inserts a running run and its tags in one transaction; a taken id is a Conflict.
pub(super) async fn insert_run(store: &Store, run: &NewRun<'_>) -> ApiResult<()> {
    const INSERT_RUNS: &str = "INSERT INTO runs (id, project_id, name, state, config, notes, group_name, job_type, git_commit, git_branch, git_remote, git_dirty, host, os, program, runtime, created_by, created_at, started_at, heartbeat_at, updated_at)
                     VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $18, $18, $17, $17) RETURNING pk";
    let req = run.request;
    let git = req.git.as_ref();
    with_tx!(store, |tx| {
        let pk: i64 = sqlx::query_scalar(INSERT_RUNS)
            .bind(run.id.as_str())
            .bind(run.project_id)
            .bind(run.name)
            .bind(run.config)
            .bind(req.notes.as_deref().unwrap_or_default())
            .bind(&req.group)
            .bind(&req.job_type)
            .bind(git.and_then(|g| g.commit.as_deref()))
            .bind(git.and_then(|g| g.branch.as_deref()))
            .bind(git.and_then(|g| g.remote.as_deref()))
            .bind(git.and_then(|g| g.dirty))
            .bind(&req.host)
            .bind(&req.os)
            .bind(&req.program)
            .bind(serde_json::to_string(&req.runtime).unwrap_or_default())
            .bind(run.created_by)
            .bind(run.created_at)
            .bind(run.started_at)
            .fetch_one(&mut *tx)
            .await?;
        insert_tags!(tx, pk, run.tags, 0);
    });
    Ok(())
}

/// Sets a run running again with its merged config, and adds those of `tags` it lacks after
/// its own; name, notes, group, job type, host, os and program change only where `req` gives
/// them. One transaction: `check` vets the tag list an addition makes.
pub(super) async fn resume_run(
    store: &Store,
    pk: i64,
    config: &str,
    tags: &[String],
    check: impl FnOnce(&[String]) -> ApiResult<()>,
    req: &CreateRunRequest,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_RUNS: &str = "UPDATE runs SET state = 'running', finished_at = NULL, exit_code = NULL, end_reason = NULL, stop_requested = $1, reaped = $1, heartbeat_at = $2, updated_at = $2,
                 started_at = CASE WHEN state = 'running' THEN started_at ELSE $2 END,
                 config = $3, name = COALESCE($4, name), notes = COALESCE($5, notes), group_name = COALESCE($6, group_name),
                 job_type = COALESCE($7, job_type), host = COALESCE($8, host), os = COALESCE($9, os), program = COALESCE($10, program)
                 WHERE pk = $11";
    with_tx!(store, |tx| {
        // The update locks the run's row (on SQLite the write transaction excludes other
        // writers), so tag changes made meanwhile wait and the positions below stay free.
        sqlx::query(UPDATE_RUNS)
            .bind(false)
            .bind(now)
            .bind(config)
            .bind(req.name.as_deref().filter(|n| !n.trim().is_empty()))
            .bind(&req.notes)
            .bind(&req.group)
            .bind(&req.job_type)
            .bind(&req.host)
            .bind(&req.os)
            .bind(&req.program)
            .bind(pk)
            .execute(&mut *tx)
            .await?;
        let stored = stored_tags!(tx, pk);
        let added: Vec<&String> = tags
            .iter()
            .filter(|t| !stored.iter().any(|(s, _)| s == *t))
            .collect();
        if !added.is_empty() {
            let next = next_position(&stored);
            let all: Vec<String> = stored
                .into_iter()
                .map(|(t, _)| t)
                .chain(added.iter().map(|t| (*t).clone()))
                .collect();
            check(&all)?;
            insert_tags!(tx, pk, added, next);
        }
    });
    Ok(())
}

/// The fields an update sets; `None` keeps the stored value.
pub(super) struct RunEdit<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New notes.
    pub notes: Option<&'a str>,
    /// The full new tag list.
    pub tags: Option<&'a [String]>,
    /// When (microseconds).
    pub updated_at: i64,
}

/// Updates a run in one transaction. With `merge_config`, the stored config is read under a
/// row lock and replaced by what `merge_config` makes of it (an error rolls everything back).
pub(super) async fn update_run<F>(
    store: &Store,
    pk: i64,
    edit: &RunEdit<'_>,
    merge_config: Option<F>,
) -> ApiResult<()>
where
    F: FnOnce(&str) -> ApiResult<String>,
{
    const UPDATE_RUNS: &str = "UPDATE runs SET name = COALESCE($1, name), notes = COALESCE($2, notes), updated_at = $3 WHERE pk = $4";
    let lock = row_lock(store);
    with_tx!(store, |tx| {
        if let Some(merge) = merge_config {
            let sql = format!("SELECT config FROM runs WHERE pk = $1{lock}");
            let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(pk)
                .fetch_one(&mut *tx)
                .await?;
            let merged = merge(&stored)?;
            sqlx::query("UPDATE runs SET config = $1 WHERE pk = $2")
                .bind(merged)
                .bind(pk)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(UPDATE_RUNS)
            .bind(edit.name)
            .bind(edit.notes)
            .bind(edit.updated_at)
            .bind(pk)
            .execute(&mut *tx)
            .await?;
        if let Some(tags) = edit.tags {
            sqlx::query("DELETE FROM run_tags WHERE run_pk = $1")
                .bind(pk)
                .execute(&mut *tx)
                .await?;
            insert_tags!(tx, pk, tags, 0);
        }
    });
    Ok(())
}

/// Adds `tag` to a run (`add`) or removes it, in one transaction that locks the run's row,
/// so concurrent changes of other tags are kept. `check` vets the list an addition makes.
/// Returns whether the run's tags changed.
pub(super) async fn change_tag(
    store: &Store,
    pk: i64,
    tag: &str,
    add: bool,
    now: i64,
    check: impl FnOnce(&[String]) -> ApiResult<()>,
) -> ApiResult<bool> {
    let lock = row_lock(store);
    Ok(with_tx!(store, |tx| {
        let sql = format!("SELECT pk FROM runs WHERE pk = $1{lock}");
        let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(pk)
            .fetch_one(&mut *tx)
            .await?;
        let stored = stored_tags!(tx, pk);
        let had = stored.iter().any(|(t, _)| t == tag);
        let changed = had != add;
        if changed {
            if add {
                let next = next_position(&stored);
                let mut tags: Vec<String> = stored.into_iter().map(|(t, _)| t).collect();
                tags.push(tag.to_string());
                check(&tags)?;
                insert_tags!(tx, pk, [tag], next);
            } else {
                sqlx::query("DELETE FROM run_tags WHERE run_pk = $1 AND tag = $2")
                    .bind(pk)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE runs SET updated_at = $1 WHERE pk = $2")
                .bind(now)
                .bind(pk)
                .execute(&mut *tx)
                .await?;
        }
        changed
    }))
}

/// Deletes a run; its metrics, logs and files go with it by cascade.
pub(super) async fn delete_run(store: &Store, pk: i64) -> ApiResult<()> {
    store
        .execute_with("DELETE FROM runs WHERE pk = $1", pk)
        .await?;
    Ok(())
}

/// Records a heartbeat at `now`, setting the run running (and no longer reaped).
pub(super) async fn record_heartbeat(store: &Store, pk: i64, now: i64) -> ApiResult<()> {
    const UPDATE_RUNS: &str = "UPDATE runs SET heartbeat_at = $1, updated_at = $1, state = 'running', finished_at = NULL, reaped = $3 WHERE pk = $2";
    on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_RUNS)
            .bind(now)
            .bind(pk)
            .bind(false)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Ends a run in `state` at `end`. A killed run without a `reason` takes the reason its
/// sweep stopped it for, if any.
// `sweep_trials` belongs to the sweeps feature; the subquery reads the stop reason there.
pub(super) async fn finish_run(
    store: &Store,
    pk: i64,
    state: RunState,
    exit_code: Option<i32>,
    end: i64,
    reason: Option<&str>,
) -> ApiResult<()> {
    const UPDATE_RUNS: &str = "UPDATE runs SET state = $1, exit_code = $2, finished_at = $3, updated_at = $3, reaped = $5,
                 end_reason = CASE WHEN $1 = 'killed' THEN COALESCE($6, (SELECT t.stop_reason FROM sweep_trials t WHERE t.run_id = runs.id)) ELSE $6 END
                 WHERE pk = $4";
    on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_RUNS)
            .bind(state.as_str())
            .bind(exit_code.map(i64::from))
            .bind(end)
            .bind(pk)
            .bind(false)
            .bind(reason)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Sets a run's stop request.
pub(super) async fn request_stop(store: &Store, pk: i64, now: i64) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("UPDATE runs SET stop_requested = $1, updated_at = $2 WHERE pk = $3")
            .bind(true)
            .bind(now)
            .bind(pk)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Marks running runs whose last heartbeat is before `silent_since` crashed (and reaped) at
/// `now`. Returns how many.
pub(super) async fn crash_silent_runs(
    store: &Store,
    now: i64,
    silent_since: i64,
) -> ApiResult<u64> {
    // Runs an MLflow client created send no heartbeats (`mlflow_runs` belongs to the MLflow
    // API): they stay running until the client ends them, as MLflow's own server keeps them.
    const UPDATE_RUNS: &str = "UPDATE runs SET state = 'crashed', reaped = $3, finished_at = $1, updated_at = $1 WHERE state = 'running' AND heartbeat_at < $2
        AND NOT EXISTS (SELECT 1 FROM mlflow_runs m WHERE m.run_pk = runs.pk)";
    Ok(on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_RUNS)
            .bind(now)
            .bind(silent_since)
            .bind(true)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// The runs of a project that match `q` (state, tags, text, filters; in its sort order), at
/// most `limit` from `offset`. The state is taken as it is: the caller checks it is one.
pub(super) async fn search_runs(
    store: &Store,
    project_id: i64,
    q: &RunQuery,
    limit: i64,
    offset: i64,
) -> ApiResult<Vec<RunRow>> {
    let mut b = SqlBuilder::new(store.kind(), 2);
    let mut wheres = vec!["r.project_id = $1".to_string()];
    if let Some(s) = &q.state {
        wheres.push(format!("r.state = {}", b.param(Bind::Text(s.clone()))));
    }
    for t in &q.tags {
        let p = b.param(Bind::Text(t.clone()));
        wheres.push(format!(
            "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_pk = r.pk AND t.tag = {p})"
        ));
    }
    if let Some(text) = q.q.as_deref().filter(|s| !s.is_empty()) {
        let p = b.param(Bind::Text(filter::contains_pattern(text)));
        wheres.push(format!(
            "(LOWER(r.name) LIKE {p} ESCAPE '\\' OR r.id LIKE {p} ESCAPE '\\')"
        ));
    }
    for f in &q.filters {
        for c in filter::parse(f)? {
            wheres.push(b.condition(&c)?);
        }
    }
    let order = b.order_by(q.sort.as_deref().unwrap_or("-created_at"))?;
    let limit_p = b.param(Bind::Int(limit));
    let offset_p = b.param(Bind::Int(offset));
    let sql = format!(
        "{RUN_SELECT} {} WHERE {} ORDER BY {order}, r.pk DESC LIMIT {limit_p} OFFSET {offset_p}",
        b.joins.join(" "),
        wheres.join(" AND ")
    );
    Ok(on_backend!(store, read, |pool| {
        let mut query = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql)).bind(project_id);
        for bind in &b.binds {
            query = match bind {
                Bind::Int(i) => query.bind(*i),
                Bind::Float(f) => query.bind(*f),
                Bind::Text(t) => query.bind(t.clone()),
            };
        }
        query.fetch_all(pool).await?
    }))
}

/// The key→value tags of runs (`run_tag_values`).
pub(super) async fn tag_values(
    store: &Store,
    pks: &[i64],
) -> ApiResult<HashMap<i64, BTreeMap<String, String>>> {
    let mut out: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
    if pks.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i64, String, String)> = on_backend!(store, read, |pool| {
        let mut rows = Vec::new();
        for part in pks.chunks(500) {
            let list = crate::store::id_list(part);
            let sql = format!(
                "SELECT run_pk, key, value FROM run_tag_values WHERE run_pk IN ({list}) ORDER BY key"
            );
            rows.extend(
                sqlx::query_as::<_, (i64, String, String)>(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await?,
            );
        }
        rows
    });
    for (pk, k, v) in rows {
        out.entry(pk).or_default().insert(k, v);
    }
    Ok(out)
}

/// Sets key→value tags of a run (in one transaction) and its update time.
pub(super) async fn set_tag_values(
    store: &Store,
    run_pk: i64,
    tags: &[(String, String)],
    now: i64,
) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO run_tag_values (run_pk, key, value) VALUES ($1, $2, $3)
        ON CONFLICT (run_pk, key) DO UPDATE SET value = EXCLUDED.value";
    if tags.is_empty() {
        return Ok(());
    }
    with_tx!(store, |tx| {
        for (k, v) in tags {
            sqlx::query(SQL)
                .bind(run_pk)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE runs SET updated_at = $1 WHERE pk = $2")
            .bind(now)
            .bind(run_pk)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// Deletes a key→value tag of a run; whether it existed.
pub(super) async fn delete_tag_value(store: &Store, run_pk: i64, key: &str) -> ApiResult<bool> {
    Ok(on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM run_tag_values WHERE run_pk = $1 AND key = $2")
            .bind(run_pk)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
            > 0
    }))
}
