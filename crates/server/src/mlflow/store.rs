//! SQL of the MLflow API: experiments' MLflow names, life cycles and tags, runs' key→value tags
//! and life cycles, and the append-only record of MLflow metric entries. `projects` belongs to
//! the projects feature and `runs` to the runs feature; they are only read here.

use std::collections::HashMap;

use crate::error::{ApiError, ApiResult};
use crate::store::{Backend, Store, id_list};
use crate::{on_backend, with_tx};

/// A project as an experiment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExperimentRow {
    /// The project's id (the experiment id).
    pub project_id: i64,
    /// The project's name.
    pub project_name: String,
    /// The MLflow name, when it was created or renamed through the MLflow API.
    pub mlflow_name: Option<String>,
    /// `active` or `deleted` (no row: active).
    pub lifecycle_stage: Option<String>,
    /// Creation, µs.
    pub created_at: i64,
    /// The project's last change, µs.
    pub updated_at: i64,
    /// The last MLflow-side change, ms.
    pub last_update_time: Option<i64>,
}

impl ExperimentRow {
    /// The name MLflow sees.
    pub fn name(&self) -> &str {
        self.mlflow_name.as_deref().unwrap_or(&self.project_name)
    }

    /// Whether MLflow sees it deleted.
    pub fn deleted(&self) -> bool {
        self.lifecycle_stage.as_deref() == Some("deleted")
    }
}

const EXPERIMENT_SELECT: &str = "SELECT p.id AS project_id, p.name AS project_name, e.name AS mlflow_name, e.lifecycle_stage, p.created_at, p.updated_at, e.last_update_time
    FROM projects p LEFT JOIN mlflow_experiments e ON e.project_id = p.id";

/// Every project `user_id` may read (all for an administrator), as experiments.
pub async fn visible_experiments(
    store: &Store,
    user_id: i64,
    admin: bool,
) -> ApiResult<Vec<ExperimentRow>> {
    let sql = format!(
        "{EXPERIMENT_SELECT} WHERE $1 OR p.visibility = 'public' OR EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = p.id AND m.user_id = $2) ORDER BY p.id"
    );
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ExperimentRow>(sqlx::AssertSqlSafe(sql))
            .bind(admin)
            .bind(user_id)
            .fetch_all(pool)
            .await?
    }))
}

/// One project as an experiment.
pub async fn experiment(store: &Store, project_id: i64) -> ApiResult<Option<ExperimentRow>> {
    let sql = format!("{EXPERIMENT_SELECT} WHERE p.id = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ExperimentRow>(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .fetch_optional(pool)
            .await?
    }))
}

/// The project an MLflow experiment name names: its MLflow name, or for a project that has
/// none, its own name.
pub async fn experiment_by_name(store: &Store, name: &str) -> ApiResult<Option<i64>> {
    const SQL: &str = "SELECT project_id FROM mlflow_experiments WHERE name = $1
        UNION ALL SELECT p.id FROM projects p WHERE p.name = $1
            AND NOT EXISTS (SELECT 1 FROM mlflow_experiments e WHERE e.project_id = p.id)";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar::<_, i64>(SQL)
            .bind(name)
            .fetch_all(pool)
            .await?
            .first()
            .copied()
    }))
}

/// Whether a project is named `name`.
pub async fn project_name_taken(store: &Store, name: &str) -> ApiResult<bool> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM projects WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await?
            > 0
    }))
}

/// Records (or changes) the MLflow name of a project; a name another experiment has is a
/// conflict.
pub async fn set_experiment_name(
    store: &Store,
    project_id: i64,
    name: &str,
    now_ms: i64,
) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_experiments (project_id, name, last_update_time) VALUES ($1, $2, $3)
        ON CONFLICT (project_id) DO UPDATE SET name = EXCLUDED.name, last_update_time = EXCLUDED.last_update_time";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(project_id)
            .bind(name)
            .bind(now_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Sets an experiment's life cycle (`active` or `deleted`); `name` is recorded for a project
/// that had no MLflow name yet.
pub async fn set_experiment_stage(
    store: &Store,
    project_id: i64,
    name: &str,
    stage: &str,
    now_ms: i64,
) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_experiments (project_id, name, lifecycle_stage, last_update_time) VALUES ($1, $2, $3, $4)
        ON CONFLICT (project_id) DO UPDATE SET lifecycle_stage = EXCLUDED.lifecycle_stage, last_update_time = EXCLUDED.last_update_time";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(project_id)
            .bind(name)
            .bind(stage)
            .bind(now_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The tags of experiments.
pub async fn experiment_tags(
    store: &Store,
    ids: &[i64],
) -> ApiResult<HashMap<i64, Vec<(String, String)>>> {
    let mut out: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i64, String, String)> = on_backend!(store, read, |pool| {
        let mut rows = Vec::new();
        for part in ids.chunks(500) {
            let list = id_list(part);
            let sql = format!(
                "SELECT project_id, key, value FROM mlflow_experiment_tags WHERE project_id IN ({list}) ORDER BY key"
            );
            rows.extend(
                sqlx::query_as::<_, (i64, String, String)>(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await?,
            );
        }
        rows
    });
    for (id, k, v) in rows {
        out.entry(id).or_default().push((k, v));
    }
    Ok(out)
}

/// Sets an experiment tag.
pub async fn set_experiment_tag(
    store: &Store,
    project_id: i64,
    key: &str,
    value: &str,
) -> ApiResult<()> {
    const SQL: &str =
        "INSERT INTO mlflow_experiment_tags (project_id, key, value) VALUES ($1, $2, $3)
        ON CONFLICT (project_id, key) DO UPDATE SET value = EXCLUDED.value";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(project_id)
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Deletes an experiment tag; whether it existed.
pub async fn delete_experiment_tag(store: &Store, project_id: i64, key: &str) -> ApiResult<bool> {
    Ok(on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM mlflow_experiment_tags WHERE project_id = $1 AND key = $2")
            .bind(project_id)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
            > 0
    }))
}

/// Marks a run as created by an MLflow client (it is never reaped for silence).
pub async fn mark_mlflow_run(store: &Store, run_pk: i64) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("INSERT INTO mlflow_runs (run_pk) VALUES ($1) ON CONFLICT (run_pk) DO NOTHING")
            .bind(run_pk)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The runs among `pks` an MLflow client deleted.
pub async fn deleted_runs(store: &Store, pks: &[i64]) -> ApiResult<HashMap<i64, i64>> {
    let mut out = HashMap::new();
    if pks.is_empty() {
        return Ok(out);
    }
    on_backend!(store, read, |pool| {
        for part in pks.chunks(500) {
            let list = id_list(part);
            let sql = format!(
                "SELECT run_pk, COALESCE(deleted_at, 0) FROM mlflow_runs WHERE lifecycle_stage = 'deleted' AND run_pk IN ({list})"
            );
            let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?;
            out.extend(rows);
        }
    });
    Ok(out)
}

/// Sets a run's life cycle as MLflow sees it.
pub async fn set_run_stage(
    store: &Store,
    run_pk: i64,
    stage: &str,
    deleted_at: Option<i64>,
) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_runs (run_pk, lifecycle_stage, deleted_at) VALUES ($1, $2, $3)
        ON CONFLICT (run_pk) DO UPDATE SET lifecycle_stage = EXCLUDED.lifecycle_stage, deleted_at = EXCLUDED.deleted_at";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(run_pk)
            .bind(stage)
            .bind(deleted_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// One MLflow metric entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Metric key.
    pub key: String,
    /// Step.
    pub step: i64,
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// Value.
    pub value: f64,
}

/// Appends MLflow metric entries to the record; an entry already there is skipped.
pub async fn record_entries(store: &Store, run_pk: i64, entries: &[Entry]) -> ApiResult<()> {
    const UNNEST: &str = "INSERT INTO mlflow_metric_log (run_pk, key, step, timestamp_ms, value_bits)
        SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[]) ON CONFLICT DO NOTHING";
    if entries.is_empty() {
        return Ok(());
    }
    match &store.backend {
        Backend::Sqlite { write, .. } => {
            // Many rows a statement: each statement is a round trip to SQLite's worker thread.
            // Anonymous `?` parameters: SQLite looks a named one up by a linear scan, which
            // makes binding thousands of `$N` quadratic.
            const ROWS: usize = 500;
            let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
            for part in entries.chunks(ROWS) {
                let mut sql = String::from(
                    "INSERT INTO mlflow_metric_log (run_pk, key, step, timestamp_ms, value_bits) VALUES ",
                );
                for i in 0..part.len() {
                    sql.push_str(if i == 0 {
                        "(?, ?, ?, ?, ?)"
                    } else {
                        ",(?, ?, ?, ?, ?)"
                    });
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for e in part {
                    q = q
                        .bind(run_pk)
                        .bind(e.key.as_str())
                        .bind(e.step)
                        .bind(e.timestamp_ms)
                        .bind(bits(e.value));
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Backend::Postgres(pool) => {
            let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
            let steps: Vec<i64> = entries.iter().map(|e| e.step).collect();
            let ts: Vec<i64> = entries.iter().map(|e| e.timestamp_ms).collect();
            let values: Vec<i64> = entries.iter().map(|e| bits(e.value)).collect();
            sqlx::query(UNNEST)
                .bind(run_pk)
                .bind(keys)
                .bind(steps)
                .bind(ts)
                .bind(values)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// A float's bits as a signed integer (what the record stores).
fn bits(v: f64) -> i64 {
    i64::from_ne_bytes(v.to_bits().to_ne_bytes())
}

/// The float whose bits the record stores.
fn from_bits(b: i64) -> f64 {
    f64::from_bits(u64::from_ne_bytes(b.to_ne_bytes()))
}

/// Every recorded entry of a run's key, by step, timestamp, then value bits.
pub async fn recorded(store: &Store, run_pk: i64, key: &str) -> ApiResult<Vec<Entry>> {
    recorded_page(store, run_pk, key, None, i64::MAX).await
}

/// Where a page of recorded entries ends: the last entry's (step, timestamp, value bits).
pub type Cursor = (i64, i64, i64);

/// The entry's place in the record's order, for [`recorded_page`].
pub fn cursor_of(e: &Entry) -> Cursor {
    (e.step, e.timestamp_ms, bits(e.value))
}

/// Up to `limit` recorded entries of a run's key after `after`, in the record's order.
pub async fn recorded_page(
    store: &Store,
    run_pk: i64,
    key: &str,
    after: Option<Cursor>,
    limit: i64,
) -> ApiResult<Vec<Entry>> {
    const FIRST: &str = "SELECT step, timestamp_ms, value_bits FROM mlflow_metric_log WHERE run_pk = $1 AND key = $2
        ORDER BY step, timestamp_ms, value_bits LIMIT $3";
    const NEXT: &str = "SELECT step, timestamp_ms, value_bits FROM mlflow_metric_log WHERE run_pk = $1 AND key = $2
        AND (step, timestamp_ms, value_bits) > ($4, $5, $6) ORDER BY step, timestamp_ms, value_bits LIMIT $3";
    let (sql, (s, t, b)) = match after {
        None => (FIRST, (0, 0, 0)),
        Some(c) => (NEXT, c),
    };
    let rows: Vec<(i64, i64, i64)> = on_backend!(store, read, |pool| {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(run_pk)
            .bind(key)
            .bind(limit);
        let q = if after.is_some() {
            q.bind(s).bind(t).bind(b)
        } else {
            q
        };
        q.fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(|(step, ts, v)| Entry {
            key: key.to_string(),
            step,
            timestamp_ms: ts,
            value: from_bits(v),
        })
        .collect())
}

/// The latest recorded entry of each key of a run (largest step, then latest timestamp).
pub async fn latest_entries(store: &Store, run_pk: i64) -> ApiResult<Vec<Entry>> {
    const SQL: &str = "SELECT l.key, l.step, l.timestamp_ms, l.value_bits FROM mlflow_metric_log l
        JOIN (SELECT key, MAX(step) AS last_step FROM mlflow_metric_log WHERE run_pk = $1 GROUP BY key) m
            ON m.key = l.key AND m.last_step = l.step
        WHERE l.run_pk = $1 ORDER BY l.key, l.timestamp_ms, l.value_bits";
    let rows: Vec<(String, i64, i64, i64)> = on_backend!(store, read, |pool| {
        sqlx::query_as(SQL).bind(run_pk).fetch_all(pool).await?
    });
    let mut out: Vec<Entry> = Vec::new();
    for (key, step, ts, v) in rows {
        let e = Entry {
            key,
            step,
            timestamp_ms: ts,
            value: from_bits(v),
        };
        match out.last_mut() {
            Some(last) if last.key == e.key => *last = e,
            _ => out.push(e),
        }
    }
    Ok(out)
}

impl From<sqlx::Error> for super::Failure {
    fn from(e: sqlx::Error) -> super::Failure {
        super::Failure::Api(ApiError::from(e))
    }
}

/// Internal keys of runs, by id.
pub async fn run_pks(
    store: &Store,
    ids: &[wanllmdb_api_types::RunId],
) -> ApiResult<HashMap<String, i64>> {
    let mut out = HashMap::new();
    on_backend!(store, read, |pool| {
        for part in ids.chunks(500) {
            // Run ids are 8 characters of a-z and 0-9 (checked by the type): nothing to escape.
            let list = part
                .iter()
                .map(|id| format!("'{}'", id.as_str()))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!("SELECT id, pk FROM runs WHERE id IN ({list})");
            let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?;
            out.extend(rows);
        }
    });
    Ok(out)
}

/// A model registered through MLflow that has no version yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingModel {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Username of who registered it.
    pub created_by: Option<String>,
    /// Its creator's id.
    pub created_by_id: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
}

const PENDING_SELECT: &str = "SELECT m.name, m.description, u.username AS created_by, m.created_by AS created_by_id, m.created_at
    FROM mlflow_pending_models m LEFT JOIN users u ON u.id = m.created_by";

/// One pending model.
pub async fn pending_model(store: &Store, name: &str) -> ApiResult<Option<PendingModel>> {
    let sql = format!("{PENDING_SELECT} WHERE m.name = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, PendingModel>(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

/// The pending models `user_id` registered (all of them for an administrator).
pub async fn pending_models(
    store: &Store,
    user_id: i64,
    admin: bool,
) -> ApiResult<Vec<PendingModel>> {
    let sql = format!("{PENDING_SELECT} WHERE $1 OR m.created_by = $2 ORDER BY m.name");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, PendingModel>(sqlx::AssertSqlSafe(sql))
            .bind(admin)
            .bind(user_id)
            .fetch_all(pool)
            .await?
    }))
}

/// Records a pending model (a name taken is a conflict).
pub async fn insert_pending(
    store: &Store,
    name: &str,
    description: &str,
    user: i64,
    now_ms: i64,
) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("INSERT INTO mlflow_pending_models (name, description, created_by, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(description)
            .bind(user)
            .bind(now_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Changes a pending model's description.
pub async fn describe_pending(store: &Store, name: &str, description: &str) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("UPDATE mlflow_pending_models SET description = $1 WHERE name = $2")
            .bind(description)
            .bind(name)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Forgets a pending model (it joined the registry, or was deleted).
pub async fn delete_pending(store: &Store, name: &str) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM mlflow_pending_models WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The key→value tags of a model (version 0) and its versions: (version, key, value).
pub async fn model_tags(store: &Store, name: &str) -> ApiResult<Vec<(i64, String, String)>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT version, key, value FROM mlflow_model_tags WHERE name = $1 ORDER BY version, key")
            .bind(name)
            .fetch_all(pool)
            .await?
    }))
}

/// Sets a tag of a model (version 0) or of one of its versions.
pub async fn set_model_tag(
    store: &Store,
    name: &str,
    version: i64,
    key: &str,
    value: &str,
) -> ApiResult<()> {
    const SQL: &str =
        "INSERT INTO mlflow_model_tags (name, version, key, value) VALUES ($1, $2, $3, $4)
        ON CONFLICT (name, version, key) DO UPDATE SET value = EXCLUDED.value";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(name)
            .bind(version)
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Deletes a tag of a model or version; whether it existed.
pub async fn delete_model_tag(
    store: &Store,
    name: &str,
    version: i64,
    key: &str,
) -> ApiResult<bool> {
    Ok(on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM mlflow_model_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(version)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
            > 0
    }))
}

/// Forgets what MLflow said of a model (all versions, or one).
pub async fn forget_model(store: &Store, name: &str, version: Option<i64>) -> ApiResult<()> {
    with_tx!(store, |tx| {
        for table in ["mlflow_model_tags", "mlflow_model_versions"] {
            let sql = match version {
                None => format!("DELETE FROM {table} WHERE name = $1"),
                Some(_) => format!("DELETE FROM {table} WHERE name = $1 AND version = $2"),
            };
            let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name);
            let q = match version {
                None => q,
                Some(v) => q.bind(v),
            };
            q.execute(&mut *tx).await?;
        }
    });
    Ok(())
}

/// What MLflow said of a version.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct VersionExtra {
    /// Version number.
    pub version: i64,
    /// The source URI.
    pub source: String,
    /// The run link.
    pub run_link: String,
    /// A description MLflow set after creating it.
    pub description: Option<String>,
    /// Unix ms of the last MLflow-side change.
    pub updated_at: i64,
}

/// What MLflow said of the versions of a model.
pub async fn version_extras(store: &Store, name: &str) -> ApiResult<HashMap<i64, VersionExtra>> {
    let rows: Vec<VersionExtra> = on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT version, source, run_link, description, updated_at FROM mlflow_model_versions WHERE name = $1")
            .bind(name)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(|r| (r.version, r)).collect())
}

/// Records what MLflow said of a new version.
pub async fn insert_version_extra(
    store: &Store,
    name: &str,
    extra: &VersionExtra,
) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_model_versions (name, version, source, run_link, description, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (name, version) DO UPDATE SET source = EXCLUDED.source, run_link = EXCLUDED.run_link, updated_at = EXCLUDED.updated_at";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(name)
            .bind(extra.version)
            .bind(&extra.source)
            .bind(&extra.run_link)
            .bind(&extra.description)
            .bind(extra.updated_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Sets the description MLflow shows for a version.
pub async fn describe_version(
    store: &Store,
    name: &str,
    version: i64,
    description: &str,
    now_ms: i64,
) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_model_versions (name, version, source, description, updated_at) VALUES ($1, $2, '', $3, $4)
        ON CONFLICT (name, version) DO UPDATE SET description = EXCLUDED.description, updated_at = EXCLUDED.updated_at";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(name)
            .bind(version)
            .bind(description)
            .bind(now_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Whether a model (registered, or pending) is named `name`. `registered_models` belongs to
/// the registry; it is only read here.
pub async fn model_name_taken(store: &Store, name: &str) -> ApiResult<bool> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM registered_models WHERE name = $1) + (SELECT COUNT(*) FROM mlflow_pending_models WHERE name = $1)";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar::<_, i64>(SQL)
            .bind(name)
            .fetch_one(pool)
            .await?
            > 0
    }))
}

/// Moves what MLflow said of a model to its new name.
pub async fn rename_model_rows(store: &Store, name: &str, new_name: &str) -> ApiResult<()> {
    with_tx!(store, |tx| {
        for table in ["mlflow_model_tags", "mlflow_model_versions"] {
            let sql = format!("UPDATE {table} SET name = $1 WHERE name = $2");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(new_name)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
    });
    Ok(())
}

/// Records that MLflow changed a version now (its last-updated time).
pub async fn touch_version(store: &Store, name: &str, version: i64, now_ms: i64) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query(
            "UPDATE mlflow_model_versions SET updated_at = $1 WHERE name = $2 AND version = $3",
        )
        .bind(now_ms)
        .bind(name)
        .bind(version)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// A logged model as stored, with its runs' ids.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedModelRow {
    /// `m-<hex>`.
    pub model_id: String,
    /// Its experiment's project.
    pub project_id: i64,
    /// The run whose files hold it.
    pub run_id: String,
    /// The run that logged it.
    pub source_run_id: Option<String>,
    /// Name.
    pub name: String,
    /// MLflow's model type.
    pub model_type: String,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    /// Params, a JSON object of strings.
    pub params: String,
    /// Tags, a JSON object of strings.
    pub tags: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Deleted (kept, hidden).
    pub deleted: bool,
}

const LOGGED_MODEL_SELECT: &str = "SELECT m.model_id, m.project_id, r.id AS run_id, s.id AS source_run_id, m.name, m.model_type, m.status, m.params, m.tags,
    m.created_at, m.updated_at, m.deleted
    FROM mlflow_logged_models m JOIN runs r ON r.pk = m.run_pk LEFT JOIN runs s ON s.pk = m.source_run_pk";

/// One logged model.
pub async fn logged_model(store: &Store, model_id: &str) -> ApiResult<Option<LoggedModelRow>> {
    let sql = format!("{LOGGED_MODEL_SELECT} WHERE m.model_id = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, LoggedModelRow>(sqlx::AssertSqlSafe(sql))
            .bind(model_id)
            .fetch_optional(pool)
            .await?
    }))
}

/// The logged models of a project that are not deleted, oldest first.
pub async fn logged_models_of(store: &Store, project_id: i64) -> ApiResult<Vec<LoggedModelRow>> {
    let sql = format!(
        "{LOGGED_MODEL_SELECT} WHERE m.project_id = $1 AND m.deleted = $2 ORDER BY m.created_at, m.model_id"
    );
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, LoggedModelRow>(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(false)
            .fetch_all(pool)
            .await?
    }))
}

/// A logged model being created.
pub struct NewLoggedModel<'a> {
    /// `m-<hex>`.
    pub model_id: &'a str,
    /// Its experiment's project.
    pub project_id: i64,
    /// The run whose files hold it.
    pub run_pk: i64,
    /// The run that logged it.
    pub source_run_pk: Option<i64>,
    /// Name.
    pub name: &'a str,
    /// Model type.
    pub model_type: &'a str,
    /// Params as a JSON object.
    pub params: &'a str,
    /// Tags as a JSON object.
    pub tags: &'a str,
    /// Who.
    pub user: i64,
    /// Unix ms.
    pub now_ms: i64,
}

/// Records a new logged model (pending until its client finalizes it).
pub async fn insert_logged_model(store: &Store, m: &NewLoggedModel<'_>) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_logged_models (model_id, project_id, run_pk, source_run_pk, name, model_type, status, params, tags, created_by, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, 'LOGGED_MODEL_PENDING', $7, $8, $9, $10, $10)";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(m.model_id)
            .bind(m.project_id)
            .bind(m.run_pk)
            .bind(m.source_run_pk)
            .bind(m.name)
            .bind(m.model_type)
            .bind(m.params)
            .bind(m.tags)
            .bind(m.user)
            .bind(m.now_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Changes a logged model: its status, params, tags or whether it is deleted (`None`: kept).
pub async fn update_logged_model(
    store: &Store,
    model_id: &str,
    status: Option<&str>,
    params: Option<&str>,
    tags: Option<&str>,
    deleted: Option<bool>,
    now_ms: i64,
) -> ApiResult<()> {
    const SQL: &str = "UPDATE mlflow_logged_models SET status = COALESCE($1, status), params = COALESCE($2, params),
        tags = COALESCE($3, tags), deleted = COALESCE($4, deleted), updated_at = $5 WHERE model_id = $6";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(status)
            .bind(params)
            .bind(tags)
            .bind(deleted)
            .bind(now_ms)
            .bind(model_id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Marks every active run of a project deleted at `at_ms` (its experiment was deleted).
pub async fn delete_runs_of(store: &Store, project_id: i64, at_ms: i64) -> ApiResult<()> {
    const SQL: &str = "INSERT INTO mlflow_runs (run_pk, lifecycle_stage, deleted_at)
        SELECT r.pk, 'deleted', $2 FROM runs r WHERE r.project_id = $1
            AND NOT EXISTS (SELECT 1 FROM mlflow_runs m WHERE m.run_pk = r.pk AND m.lifecycle_stage = 'deleted')
        ON CONFLICT (run_pk) DO UPDATE SET lifecycle_stage = EXCLUDED.lifecycle_stage, deleted_at = EXCLUDED.deleted_at";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(project_id)
            .bind(at_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Restores the runs of a project that were deleted with it at `at_ms`.
pub async fn restore_runs_of(store: &Store, project_id: i64, at_ms: i64) -> ApiResult<()> {
    const SQL: &str = "UPDATE mlflow_runs SET lifecycle_stage = 'active', deleted_at = NULL
        WHERE deleted_at = $2 AND lifecycle_stage = 'deleted' AND run_pk IN (SELECT pk FROM runs WHERE project_id = $1)";
    on_backend!(store, write, |pool| {
        sqlx::query(SQL)
            .bind(project_id)
            .bind(at_ms)
            .execute(pool)
            .await?;
    });
    Ok(())
}
