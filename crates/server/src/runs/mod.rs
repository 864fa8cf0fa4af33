//! Runs: create/resume, search, heartbeats, finishing, and the reaper of silent runs.

pub mod filter;
pub mod routes;

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wanllmdb_api_types::Page;
use wanllmdb_api_types::metrics::MetricValue;
use wanllmdb_api_types::runs::{
    CreateRunRequest, FinishRunRequest, GitInfo, HeartbeatResponse, Run, RunState, UpdateRunRequest,
};

use crate::app::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::{Accounts, Actor};
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::paging;
use crate::projects::{ProjectAccess, Projects};
use crate::store::{BackendKind, Store, format_time, now_us, seconds_to_us};
use crate::tags;
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
    project_name: String,
    name: String,
    state: String,
    config: String,
    tags: String,
    notes: String,
    group_name: Option<String>,
    job_type: Option<String>,
    git_commit: Option<String>,
    git_branch: Option<String>,
    git_remote: Option<String>,
    git_dirty: Option<bool>,
    host: Option<String>,
    os: Option<String>,
    program: Option<String>,
    runtime: String,
    exit_code: Option<i64>,
    created_by_name: Option<String>,
    created_at: i64,
    started_at: i64,
    finished_at: Option<i64>,
    heartbeat_at: i64,
    updated_at: i64,
    stop_requested: bool,
    reaped: bool,
    end_reason: Option<String>,
}

const RUN_SELECT: &str = "SELECT r.pk, r.id, r.project_id, p.name AS project_name, r.name, r.state, r.config, r.tags, r.notes,
    r.group_name, r.job_type, r.git_commit, r.git_branch, r.git_remote, r.git_dirty, r.host, r.os, r.program, r.runtime,
    r.exit_code, u.username AS created_by_name, r.created_at, r.started_at, r.finished_at, r.heartbeat_at, r.updated_at,
    r.stop_requested, r.reaped, r.end_reason
    FROM runs r JOIN projects p ON p.id = r.project_id LEFT JOIN users u ON u.id = r.created_by";

impl RunRow {
    fn state(&self) -> ApiResult<RunState> {
        Ok(known(
            RunState::parse(&self.state),
            "run",
            &self.id,
            "state",
            &self.state,
        )?)
    }

    fn into_api(self, summary: BTreeMap<String, MetricValue>) -> ApiResult<Run> {
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

/// The stored config with `patch` merged in: each key replaces the stored one, `null` removes
/// it. A stored config that is not an object (never written by this server) starts empty.
fn merge_config(stored: &str, patch: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stored).unwrap_or_default();
    for (k, v) in patch {
        if v.is_null() {
            config.remove(k);
        } else {
            config.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(config).to_string()
}

/// A new random run id: 8 characters of `[a-z0-9]`.
pub fn generate_run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_len(what: &str, s: &Option<String>, max: usize) -> ApiResult<()> {
    match s {
        Some(v) if v.len() > max => Err(ApiError::invalid(format!(
            "{what} is longer than {max} bytes"
        ))),
        _ => Ok(()),
    }
}

/// A time a client recorded (Unix seconds), in microseconds; a 400 naming `what` when it is not
/// a time.
fn recorded_time(what: &str, t: Option<f64>) -> ApiResult<Option<i64>> {
    t.map(|t| {
        seconds_to_us(t).ok_or_else(|| ApiError::invalid(format!("{what} is not a valid time")))
    })
    .transpose()
}

/// A one-line field shown in tables (name, group, job type): limited, and without control
/// or bidirectional-override characters.
fn check_label(what: &str, s: &Option<String>, max: usize) -> ApiResult<()> {
    check_len(what, s, max)?;
    s.as_deref()
        .map_or(Ok(()), |v| ApiError::check_text(what, v))
}

fn check_tags(tags: &[String]) -> ApiResult<Vec<String>> {
    tags::check(tags, 128)
}

fn encode_offset(n: i64) -> String {
    paging::cursor(&format!("o:{n}"))
}

fn decode_offset(c: &str) -> ApiResult<i64> {
    let offset = paging::position(c)?;
    match offset.strip_prefix("o:").map(str::parse::<i64>) {
        Some(Ok(n)) if n >= 0 => Ok(n),
        _ => Err(paging::invalid(c)),
    }
}

/// Parameters of a run search.
#[derive(Debug, Default, Clone)]
pub struct RunQuery {
    /// Project name (required).
    pub project: String,
    /// State filter.
    pub state: Option<String>,
    /// Tags every run must carry.
    pub tags: Vec<String>,
    /// Name or id substring.
    pub q: Option<String>,
    /// Filter expressions (ANDed).
    pub filters: Vec<String>,
    /// Sort key, default `-created_at`.
    pub sort: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Cursor of the page.
    pub cursor: Option<String>,
}

/// The run service.
pub struct Runs<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Runs<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    async fn row(&self, id: &str) -> ApiResult<Option<RunRow>> {
        let sql = format!("{RUN_SELECT} WHERE r.id = $1");
        Ok(on_backend!(self.store(), read, |pool| {
            sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Loads a run and the caller's access to its project; a run the caller may not read is a 404.
    pub async fn load(&self, actor: &Actor, id: &str) -> ApiResult<(RunRow, ProjectAccess)> {
        if !wanllmdb_api_types::is_valid_run_id(id) {
            return Err(ApiError::invalid(format!(
                "invalid run id {id:?}: run ids are 8 characters of a-z and 0-9"
            )));
        }
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("run {id}")))?;
        let access = Projects { state: self.state }
            .access_by_id(actor, row.project_id)
            .await?;
        access
            .require_read()
            .map_err(|_| ApiError::not_found(format!("run {id}")))?;
        Ok((row, access))
    }

    /// Loads a run the caller may write to.
    pub async fn load_for_write(
        &self,
        actor: &Actor,
        id: &str,
    ) -> ApiResult<(RunRow, ProjectAccess)> {
        let (row, access) = self.load(actor, id).await?;
        access.require_write()?;
        Ok((row, access))
    }

    async fn summaries(
        &self,
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
        let rows: Vec<(i64, String, Option<f64>)> = on_backend!(self.store(), read, |pool| {
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

    async fn to_api(&self, row: RunRow) -> ApiResult<Run> {
        let mut s = self.summaries(&[row.pk]).await?;
        let summary = s.remove(&row.pk).unwrap_or_default();
        row.into_api(summary)
    }

    /// One run.
    pub async fn get(&self, actor: &Actor, id: &str) -> ApiResult<Run> {
        let (row, _) = self.load(actor, id).await?;
        self.to_api(row).await
    }

    /// Creates a run, or resumes it when the id exists in the same project and the caller may
    /// write there. Returns the run and whether it was newly created.
    pub async fn create(
        &self,
        actor: &Actor,
        req: CreateRunRequest,
        client: &ClientInfo,
    ) -> ApiResult<(Run, bool)> {
        let project = req.project.clone();
        let (run, created) = self.create_or_resume(actor, req, client).await?;
        let ev = if created {
            AuditEvent::new("run_create", "data_modification", "info").status(201)
        } else {
            AuditEvent::new("run_resume", "data_modification", "info").status(200)
        };
        let ev = ev
            .resource(format!("run:{}", run.id))
            .metadata(serde_json::json!({ "project": project }));
        self.record(actor, client, ev).await;
        Ok((run, created))
    }

    async fn record(&self, actor: &Actor, client: &ClientInfo, ev: AuditEvent) {
        audit::record(self.store(), ev.client(client).actor(actor)).await;
    }

    async fn create_or_resume(
        &self,
        actor: &Actor,
        req: CreateRunRequest,
        client: &ClientInfo,
    ) -> ApiResult<(Run, bool)> {
        const INSERT_RUNS: &str = "INSERT INTO runs (id, project_id, name, state, config, tags, notes, group_name, job_type, git_commit, git_branch, git_remote, git_dirty, host, os, program, runtime, created_by, created_at, started_at, heartbeat_at, updated_at)
                     VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $19, $19, $18, $18) RETURNING pk";
        let access = Projects { state: self.state }
            .access_or_create(actor, &req.project, client)
            .await?;
        access.require_write()?;
        let user = actor.require_user()?;
        let config = match &req.config {
            None => serde_json::json!({}),
            Some(v @ serde_json::Value::Object(_)) => v.clone(),
            Some(_) => return Err(ApiError::invalid("config must be a JSON object")),
        };
        check_label("name", &req.name, 256)?;
        check_len("notes", &req.notes, 100_000)?;
        check_label("group", &req.group, 256)?;
        check_label("job_type", &req.job_type, 256)?;
        self.check_config_size(&config.to_string())?;
        let tags = check_tags(&req.tags)?;
        if let Some(id) = &req.id {
            if !wanllmdb_api_types::is_valid_run_id(id) {
                return Err(ApiError::invalid(format!(
                    "invalid run id {id:?}: run ids are 8 characters of a-z and 0-9"
                )));
            }
            if let Some(existing) = self.row(id).await? {
                if existing.project_id != access.id {
                    return Err(ApiError::Conflict(format!(
                        "run id {id} is already taken; choose another id or leave it out"
                    )));
                }
                return Ok((self.resume(existing, &req, config, tags).await?, false));
            }
        }
        let id = req.id.clone().unwrap_or_else(generate_run_id);
        let now = now_us();
        // A run recorded offline keeps the time it started; a clock ahead of ours gives now.
        let started = recorded_time("started_at", req.started_at)?.map_or(now, |t| t.min(now));
        let git = req.git.clone().unwrap_or_default();
        let name = req
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.clone());
        let res: ApiResult<()> = async {
            with_tx!(self.store(), |tx| {
                let pk: i64 = sqlx::query_scalar(INSERT_RUNS)
                    .bind(&id)
                    .bind(access.id)
                    .bind(&name)
                    .bind(config.to_string())
                    .bind(serde_json::to_string(&tags).unwrap_or_default())
                    .bind(req.notes.clone().unwrap_or_default())
                    .bind(&req.group)
                    .bind(&req.job_type)
                    .bind(&git.commit)
                    .bind(&git.branch)
                    .bind(&git.remote)
                    .bind(git.dirty)
                    .bind(&req.host)
                    .bind(&req.os)
                    .bind(&req.program)
                    .bind(serde_json::to_string(&req.runtime).unwrap_or_default())
                    .bind(user.id)
                    .bind(now)
                    .bind(started)
                    .fetch_one(&mut *tx)
                    .await?;
                for t in &tags {
                    sqlx::query("INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2)")
                        .bind(pk)
                        .bind(t)
                        .execute(&mut *tx)
                        .await?;
                }
            });
            Ok(())
        }
        .await;
        match res {
            // Two clients raced for the same id: the loser resumes (or is told it is taken).
            Err(ApiError::Conflict(_)) => {
                let existing = self
                    .row(&id)
                    .await?
                    .ok_or_else(|| ApiError::Conflict(format!("run id {id} is already taken")))?;
                if existing.project_id != access.id {
                    return Err(ApiError::Conflict(format!(
                        "run id {id} is already taken; choose another id or leave it out"
                    )));
                }
                return Ok((self.resume(existing, &req, config, tags).await?, false));
            }
            other => other?,
        }
        let row = self
            .row(&id)
            .await?
            .ok_or_else(|| ApiError::Internal("created run vanished".into()))?;
        Ok((self.to_api(row).await?, true))
    }

    async fn resume(
        &self,
        existing: RunRow,
        req: &CreateRunRequest,
        config: serde_json::Value,
        tags: Vec<String>,
    ) -> ApiResult<Run> {
        const UPDATE_RUNS: &str = "UPDATE runs SET state = 'running', finished_at = NULL, exit_code = NULL, end_reason = NULL, stop_requested = $1, reaped = $1, heartbeat_at = $2, updated_at = $2,
                 started_at = CASE WHEN state = 'running' THEN started_at ELSE $2 END,
                 config = $3, tags = $4, name = COALESCE($5, name), notes = COALESCE($6, notes), group_name = COALESCE($7, group_name),
                 job_type = COALESCE($8, job_type), host = COALESCE($9, host), os = COALESCE($10, os), program = COALESCE($11, program)
                 WHERE pk = $12";
        // Resuming merges: config keys given now override, tags are added, other fields kept
        // unless given.
        let mut merged: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&existing.config).unwrap_or_default();
        if let serde_json::Value::Object(m) = config {
            merged.extend(m);
        }
        let mut all_tags: Vec<String> = serde_json::from_str(&existing.tags).unwrap_or_default();
        for t in tags {
            if !all_tags.contains(&t) {
                all_tags.push(t);
            }
        }
        let all_tags = check_tags(&all_tags)?;
        let merged = serde_json::Value::Object(merged).to_string();
        self.check_config_size(&merged)?;
        let now = now_us();
        let pk = existing.pk;
        with_tx!(self.store(), |tx| {
            sqlx::query(UPDATE_RUNS)
                .bind(false)
                .bind(now)
                .bind(merged)
                .bind(serde_json::to_string(&all_tags).unwrap_or_default())
                .bind(req.name.clone().filter(|n| !n.trim().is_empty()))
                .bind(&req.notes)
                .bind(&req.group)
                .bind(&req.job_type)
                .bind(&req.host)
                .bind(&req.os)
                .bind(&req.program)
                .bind(pk)
                .execute(&mut *tx)
                .await?;
            for t in &all_tags {
                sqlx::query(
                    "INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(pk)
                .bind(t)
                .execute(&mut *tx)
                .await?;
            }
        });
        let row = self
            .row(&existing.id)
            .await?
            .ok_or_else(|| ApiError::not_found("run"))?;
        self.to_api(row).await
    }

    /// Renames, retags or re-notes a run, and merges config keys into its config.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        req: UpdateRunRequest,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
        const UPDATE_RUNS: &str = "UPDATE runs SET name = COALESCE($1, name), notes = COALESCE($2, notes), tags = COALESCE($3, tags), updated_at = $4 WHERE pk = $5";
        let (row, _) = self.load_for_write(actor, id).await?;
        check_label("name", &req.name, 256)?;
        check_len("notes", &req.notes, 100_000)?;
        if req.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ApiError::invalid("name cannot be empty"));
        }
        let tags = req.tags.as_deref().map(check_tags).transpose()?;
        let config_patch = match &req.config {
            None => None,
            Some(serde_json::Value::Object(m)) => Some(m),
            Some(_) => {
                return Err(ApiError::invalid(
                    "config must be a JSON object of the keys to set (null removes a key)",
                ));
            }
        };
        let now = now_us();
        let lock = self.row_lock();
        with_tx!(self.store(), |tx| {
            if let Some(patch) = config_patch {
                let sql = format!("SELECT config FROM runs WHERE pk = $1{lock}");
                let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(row.pk)
                    .fetch_one(&mut *tx)
                    .await?;
                let merged = merge_config(&stored, patch);
                self.check_config_size(&merged)?;
                sqlx::query("UPDATE runs SET config = $1 WHERE pk = $2")
                    .bind(merged)
                    .bind(row.pk)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(UPDATE_RUNS)
                .bind(&req.name)
                .bind(&req.notes)
                .bind(
                    tags.as_ref()
                        .map(|t| serde_json::to_string(t).unwrap_or_default()),
                )
                .bind(now)
                .bind(row.pk)
                .execute(&mut *tx)
                .await?;
            if let Some(tags) = &tags {
                sqlx::query("DELETE FROM run_tags WHERE run_pk = $1")
                    .bind(row.pk)
                    .execute(&mut *tx)
                    .await?;
                for t in tags {
                    sqlx::query("INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2)")
                        .bind(row.pk)
                        .bind(t)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        });
        let fields: Vec<&str> = [
            ("name", req.name.is_some()),
            ("notes", req.notes.is_some()),
            ("tags", tags.is_some()),
            ("config", config_patch.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, given)| given.then_some(f))
        .collect();
        let mut metadata = serde_json::json!({ "fields": fields });
        if let Some(patch) = config_patch {
            metadata["config_keys"] = patch.keys().cloned().collect();
        }
        self.record(
            actor,
            client,
            AuditEvent::new("run_update", "data_modification", "info")
                .resource(format!("run:{id}"))
                .status(200)
                .metadata(metadata),
        )
        .await;
        self.get(actor, id).await
    }

    /// A 413 when a run's config, as JSON, is over the server's limit: configs come back in
    /// every run list, so one huge config would make every page huge.
    fn check_config_size(&self, json: &str) -> ApiResult<()> {
        let max = self.state.config.max_run_config_bytes;
        if json.len() <= max {
            return Ok(());
        }
        Err(ApiError::PayloadTooLarge(format!(
            "the run config is {} bytes as JSON; this server keeps configs of at most {max} \
             bytes (its --max-run-config-bytes): keep large values in files or artifacts",
            json.len()
        )))
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite's write transaction already
    /// excludes other writers.
    fn row_lock(&self) -> &'static str {
        match self.store().kind() {
            BackendKind::Postgres => " FOR UPDATE",
            BackendKind::Sqlite => "",
        }
    }

    /// Adds one tag, or removes one, in a single transaction (concurrent changes of other tags
    /// are kept). Adding a tag the run has changes nothing; removing one it lacks is a 404.
    pub async fn change_tag(
        &self,
        actor: &Actor,
        id: &str,
        tag: &str,
        add: bool,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
        let (row, _) = self.load_for_write(actor, id).await?;
        let tag = check_tags(&[tag.to_string()])?.remove(0);
        let lock = self.row_lock();
        let now = now_us();
        let changed: bool = with_tx!(self.store(), |tx| {
            let sql = format!("SELECT tags FROM runs WHERE pk = $1{lock}");
            let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(row.pk)
                .fetch_one(&mut *tx)
                .await?;
            let mut tags: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
            let had = tags.contains(&tag);
            let changed = had != add;
            if changed {
                if add {
                    tags.push(tag.clone());
                    check_tags(&tags)?;
                    sqlx::query(
                        "INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(row.pk)
                    .bind(&tag)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    tags.retain(|t| *t != tag);
                    sqlx::query("DELETE FROM run_tags WHERE run_pk = $1 AND tag = $2")
                        .bind(row.pk)
                        .bind(&tag)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE runs SET tags = $1, updated_at = $2 WHERE pk = $3")
                    .bind(serde_json::to_string(&tags).unwrap_or_default())
                    .bind(now)
                    .bind(row.pk)
                    .execute(&mut *tx)
                    .await?;
            }
            changed
        });
        if !add && !changed {
            return Err(ApiError::not_found(format!("tag {tag:?} on run {id}")));
        }
        if changed {
            let event = if add { "run_tag_add" } else { "run_tag_remove" };
            self.record(
                actor,
                client,
                AuditEvent::new(event, "data_modification", "info")
                    .resource(format!("run:{id}"))
                    .status(200)
                    .metadata(serde_json::json!({ "tag": tag })),
            )
            .await;
        }
        self.get(actor, id).await
    }

    /// Deletes a run with its metrics and logs.
    pub async fn delete(&self, actor: &Actor, id: &str, client: &ClientInfo) -> ApiResult<()> {
        let (row, access) = self.load_for_write(actor, id).await?;
        on_backend!(self.store(), write, |pool| {
            sqlx::query("DELETE FROM runs WHERE pk = $1")
                .bind(row.pk)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("run_delete", "data_modification", "warning")
                .resource(format!("run:{id}"))
                .status(204)
                .metadata(serde_json::json!({ "project": access.name })),
        )
        .await;
        Ok(())
    }

    /// Records a heartbeat. A run the reaper marked crashed comes back to life; a finished or
    /// killed run stays as it is (409).
    pub async fn heartbeat(&self, actor: &Actor, id: &str) -> ApiResult<HeartbeatResponse> {
        const UPDATE_RUNS: &str = "UPDATE runs SET heartbeat_at = $1, updated_at = $1, state = 'running', finished_at = NULL, reaped = $3 WHERE pk = $2";
        let (row, _) = self.load_for_write(actor, id).await?;
        let state = row.state()?;
        let revivable = state == RunState::Running || (state == RunState::Crashed && row.reaped);
        if !revivable {
            return Err(ApiError::Conflict(format!(
                "run {id} is {}; resume it by creating it again with the same id",
                state.as_str()
            )));
        }
        let now = now_us();
        on_backend!(self.store(), write, |pool| {
            sqlx::query(UPDATE_RUNS)
                .bind(now)
                .bind(row.pk)
                .bind(false)
                .execute(pool)
                .await?;
        });
        Ok(HeartbeatResponse {
            state: RunState::Running,
            stop_requested: row.stop_requested,
        })
    }

    /// Marks a run finished, crashed or killed.
    pub async fn finish(
        &self,
        actor: &Actor,
        id: &str,
        req: FinishRunRequest,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
        const UPDATE_RUNS: &str = "UPDATE runs SET state = $1, exit_code = $2, finished_at = $3, updated_at = $3, reaped = $5,
                 end_reason = CASE WHEN $1 = 'killed' THEN COALESCE($6, (SELECT t.stop_reason FROM sweep_trials t WHERE t.run_id = runs.id)) ELSE $6 END
                 WHERE pk = $4";
        let (row, _) = self.load_for_write(actor, id).await?;
        if req.state == RunState::Running {
            return Err(ApiError::invalid(
                "finish takes state finished, crashed or killed",
            ));
        }
        check_len("reason", &req.reason, 256)?;
        let now = now_us();
        // A run recorded offline keeps the time it ended, between its start and now.
        let end = recorded_time("finished_at", req.finished_at)?
            .map_or(now, |t| t.clamp(row.started_at.min(now), now));
        // A run a sweep stopped ends with the sweep's reason unless the client gave one.
        on_backend!(self.store(), write, |pool| {
            sqlx::query(UPDATE_RUNS)
                .bind(req.state.as_str())
                .bind(req.exit_code.map(i64::from))
                .bind(end)
                .bind(row.pk)
                .bind(false)
                .bind(&req.reason)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("run_finish", "data_modification", "info")
                .resource(format!("run:{id}"))
                .status(200)
                .metadata(
                    serde_json::json!({ "state": req.state.as_str(), "exit_code": req.exit_code }),
                ),
        )
        .await;
        self.get(actor, id).await
    }

    /// Asks a run to stop; its wrapper learns on the next heartbeat.
    pub async fn request_stop(
        &self,
        actor: &Actor,
        id: &str,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
        let (row, _) = self.load_for_write(actor, id).await?;
        on_backend!(self.store(), write, |pool| {
            sqlx::query("UPDATE runs SET stop_requested = $1, updated_at = $2 WHERE pk = $3")
                .bind(true)
                .bind(now_us())
                .bind(row.pk)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("run_stop", "data_modification", "info")
                .resource(format!("run:{id}"))
                .status(200),
        )
        .await;
        self.get(actor, id).await
    }

    /// Searches runs of a project.
    pub async fn list(&self, actor: &Actor, q: &RunQuery) -> ApiResult<Page<Run>> {
        if q.project.is_empty() {
            return Err(ApiError::invalid("the project query parameter is required"));
        }
        let access = Projects { state: self.state }
            .access(actor, &q.project)
            .await?;
        access.require_read()?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 1000"));
        }
        let offset = q
            .cursor
            .as_deref()
            .map(decode_offset)
            .transpose()?
            .unwrap_or(0);
        let mut b = SqlBuilder::new(self.store().kind(), 2);
        let mut wheres = vec!["r.project_id = $1".to_string()];
        if let Some(s) = &q.state {
            if RunState::parse(s).is_none() {
                return Err(ApiError::invalid(format!(
                    "unknown state {s:?}: use running, finished, crashed or killed"
                )));
            }
            wheres.push(format!("r.state = {}", b.param(Bind::Text(s.clone()))));
        }
        for t in &q.tags {
            let p = b.param(Bind::Text(t.clone()));
            wheres.push(format!(
                "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_pk = r.pk AND t.tag = {p})"
            ));
        }
        if let Some(text) = q.q.as_deref().filter(|s| !s.is_empty()) {
            let esc = text
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let p = b.param(Bind::Text(format!("%{esc}%")));
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
        let limit_p = b.param(Bind::Int(limit + 1));
        let offset_p = b.param(Bind::Int(offset));
        let sql = format!(
            "{RUN_SELECT} {} WHERE {} ORDER BY {order}, r.pk DESC LIMIT {limit_p} OFFSET {offset_p}",
            b.joins.join(" "),
            wheres.join(" AND ")
        );
        let project_id = access.id;
        let mut rows: Vec<RunRow> = on_backend!(self.store(), read, |pool| {
            let mut query = sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for bind in &b.binds {
                query = match bind {
                    Bind::Int(i) => query.bind(*i),
                    Bind::Float(f) => query.bind(*f),
                    Bind::Text(t) => query.bind(t.clone()),
                };
            }
            query.fetch_all(pool).await?
        });
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            Some(encode_offset(offset + limit))
        } else {
            None
        };
        let pks: Vec<i64> = rows.iter().map(|r| r.pk).collect();
        let mut summaries = self.summaries(&pks).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let s = summaries.remove(&r.pk).unwrap_or_default();
                r.into_api(s)
            })
            .collect::<ApiResult<_>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// Marks running runs whose heartbeat is older than the timeout as crashed. Returns how many.
pub async fn reap_silent_runs(store: &Store, timeout_us: i64) -> Result<u64, sqlx::Error> {
    const UPDATE_RUNS: &str = "UPDATE runs SET state = 'crashed', reaped = $3, finished_at = $1, updated_at = $1 WHERE state = 'running' AND heartbeat_at < $2";
    let now = now_us();
    Ok(on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_RUNS)
            .bind(now)
            .bind(now - timeout_us)
            .bind(true)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Starts the background reaper; it stops when `stop` turns true.
pub fn spawn_reaper(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.reaper_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timeout = state.config.heartbeat_timeout.as_micros() as i64;
        let mut audit_retention = crate::audit::query::RetentionSchedule::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if !state.singletons.reaper.acquire(&state.store).await {
                continue;
            }
            match reap_silent_runs(&state.store, timeout).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "marked runs without heartbeats as crashed"),
                Err(e) => tracing::warn!(error = %e, "reaper failed"),
            }
            if let Err(e) = (Accounts { state: &state }).prune().await {
                tracing::warn!(error = %e, "pruning expired tokens failed");
            }
            audit_retention
                .tick(&state.store, state.config.audit_retention_days)
                .await;
        }
        // Another replica takes over at its next tick instead of waiting for expiry.
        state.singletons.reaper.release(&state.store).await;
    })
}
