//! Storage of runs: the `runs` table and its tag index `run_tags`. This is the only place the
//! runs feature's SQL lives; the service calls these functions and sees typed rows.

pub(super) mod filter;

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;
use wanllmdb_api_types::metrics::MetricValue;
use wanllmdb_api_types::runs::{CreateRunRequest, GitInfo, Run, RunState};

use super::RunQuery;
use crate::error::{ApiResult, known};
use crate::store::{BackendKind, Store, format_time};
use crate::{on_backend, with_tx};
use filter::{Bind, SqlBuilder};

/// The columns of a run as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    /// Internal key.
    pub pk: i64,
    /// Public id.
    pub id: String,
    /// Owning project.
    pub project_id: i64,
    pub(super) project_name: String,
    pub(super) name: String,
    pub(super) state: String,
    pub(super) config: String,
    pub(super) tags: String,
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

const RUN_SELECT: &str = "SELECT r.pk, r.id, r.project_id, p.name AS project_name, r.name, r.state, r.config, r.tags, r.notes,
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

    /// The run as the API shows it, with its metric summary.
    pub(super) fn into_api(self, summary: BTreeMap<String, MetricValue>) -> ApiResult<Run> {
        Ok(Run {
            state: self.state()?,
            id: self.id,
            project: self.project_name,
            name: self.name,
            config: serde_json::from_str(&self.config).unwrap_or_else(|_| serde_json::json!({})),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
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
        })
    }
}

/// Adds a run's tag to the `run_tags` index.
const INSERT_TAG: &str = "INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2)";

/// Adds a run's tag to the `run_tags` index unless it is there already.
const INSERT_TAG_IF_NEW: &str =
    "INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// Runs `insert` (one of the two above) for each of `tags` of run `pk` inside the transaction
/// `tx`. A macro, because each backend's transaction is a type of its own.
macro_rules! insert_tags {
    ($tx:ident, $insert:expr, $pk:expr, $tags:expr) => {
        for t in $tags {
            sqlx::query($insert)
                .bind($pk)
                .bind(t)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Tags as the `runs.tags` column stores them: a JSON array.
fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_default()
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
pub(super) async fn run_by_id(store: &Store, id: &str) -> ApiResult<Option<RunRow>> {
    let sql = format!("{RUN_SELECT} WHERE r.id = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
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

/// What a new run is stored with besides the fields the client sent as they are.
pub(super) struct NewRun<'a> {
    /// Public id.
    pub id: &'a str,
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
    const INSERT_RUNS: &str = "INSERT INTO runs (id, project_id, name, state, config, tags, notes, group_name, job_type, git_commit, git_branch, git_remote, git_dirty, host, os, program, runtime, created_by, created_at, started_at, heartbeat_at, updated_at)
                     VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $19, $19, $18, $18) RETURNING pk";
    let req = run.request;
    let git = req.git.as_ref();
    with_tx!(store, |tx| {
        let pk: i64 = sqlx::query_scalar(INSERT_RUNS)
            .bind(run.id)
            .bind(run.project_id)
            .bind(run.name)
            .bind(run.config)
            .bind(tags_json(run.tags))
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
        insert_tags!(tx, INSERT_TAG, pk, run.tags);
    });
    Ok(())
}

/// Sets a run running again with its merged config and tags; name, notes, group, job type,
/// host, os and program change only where `req` gives them. One transaction.
pub(super) async fn resume_run(
    store: &Store,
    pk: i64,
    config: &str,
    tags: &[String],
    req: &CreateRunRequest,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_RUNS: &str = "UPDATE runs SET state = 'running', finished_at = NULL, exit_code = NULL, end_reason = NULL, stop_requested = $1, reaped = $1, heartbeat_at = $2, updated_at = $2,
                 started_at = CASE WHEN state = 'running' THEN started_at ELSE $2 END,
                 config = $3, tags = $4, name = COALESCE($5, name), notes = COALESCE($6, notes), group_name = COALESCE($7, group_name),
                 job_type = COALESCE($8, job_type), host = COALESCE($9, host), os = COALESCE($10, os), program = COALESCE($11, program)
                 WHERE pk = $12";
    with_tx!(store, |tx| {
        sqlx::query(UPDATE_RUNS)
            .bind(false)
            .bind(now)
            .bind(config)
            .bind(tags_json(tags))
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
        insert_tags!(tx, INSERT_TAG_IF_NEW, pk, tags);
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
    const UPDATE_RUNS: &str = "UPDATE runs SET name = COALESCE($1, name), notes = COALESCE($2, notes), tags = COALESCE($3, tags), updated_at = $4 WHERE pk = $5";
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
            .bind(edit.tags.map(tags_json))
            .bind(edit.updated_at)
            .bind(pk)
            .execute(&mut *tx)
            .await?;
        if let Some(tags) = edit.tags {
            sqlx::query("DELETE FROM run_tags WHERE run_pk = $1")
                .bind(pk)
                .execute(&mut *tx)
                .await?;
            insert_tags!(tx, INSERT_TAG, pk, tags);
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
        let sql = format!("SELECT tags FROM runs WHERE pk = $1{lock}");
        let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(pk)
            .fetch_one(&mut *tx)
            .await?;
        let mut tags: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
        let had = tags.iter().any(|t| t == tag);
        let changed = had != add;
        if changed {
            if add {
                tags.push(tag.to_string());
                check(&tags)?;
                sqlx::query(INSERT_TAG_IF_NEW)
                    .bind(pk)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            } else {
                tags.retain(|t| t != tag);
                sqlx::query("DELETE FROM run_tags WHERE run_pk = $1 AND tag = $2")
                    .bind(pk)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE runs SET tags = $1, updated_at = $2 WHERE pk = $3")
                .bind(tags_json(&tags))
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
    on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM runs WHERE pk = $1")
            .bind(pk)
            .execute(pool)
            .await?;
    });
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
    const UPDATE_RUNS: &str = "UPDATE runs SET state = 'crashed', reaped = $3, finished_at = $1, updated_at = $1 WHERE state = 'running' AND heartbeat_at < $2";
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
