//! Runs: create/resume, search, heartbeats, finishing, and the reaper of silent runs.

pub mod routes;
mod store;

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wanllmdb_api_types::metrics::MetricValue;
use wanllmdb_api_types::runs::{
    CreateRunRequest, FinishRunRequest, HeartbeatResponse, Run, RunState, UpdateRunRequest,
};
use wanllmdb_api_types::{Page, ProjectName, RunId};

use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::{Accounts, Actor};
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientInfo;
use crate::paging;
use crate::projects::{ProjectAccess, Projects};
use crate::state::AppState;
use crate::store::{Store, now_us, seconds_to_us};
use crate::tags;
pub use store::RunRow;

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
pub fn generate_run_id() -> RunId {
    RunId::from_number(rand::rng().random_range(0..RunId::SPACE))
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

/// Metric summaries by run.
type RunSummaries = HashMap<i64, BTreeMap<String, MetricValue>>;

/// Tags by run, in the order they were given.
type RunTags = HashMap<i64, (Vec<String>, BTreeMap<String, String>)>;

/// Parameters of a run search.
#[derive(Debug, Default, Clone)]
pub struct RunQuery {
    /// Project name (required).
    pub project: Option<ProjectName>,
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

    async fn row(&self, id: &RunId) -> ApiResult<Option<RunRow>> {
        store::run_by_id(self.store(), id).await
    }

    /// Loads a run and the caller's access to its project; a run the caller may not read is a 404.
    pub async fn load(&self, actor: &Actor, id: &RunId) -> ApiResult<(RunRow, ProjectAccess)> {
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
        id: &RunId,
    ) -> ApiResult<(RunRow, ProjectAccess)> {
        let (row, access) = self.load(actor, id).await?;
        access.require_write()?;
        Ok((row, access))
    }

    async fn to_api(&self, row: RunRow) -> ApiResult<Run> {
        let (mut summaries, mut tags) = self.details(&[row.pk]).await?;
        let summary = summaries.remove(&row.pk).unwrap_or_default();
        let tags = tags.remove(&row.pk).unwrap_or_default();
        row.into_api(summary, tags)
    }

    /// The metric summaries and the tags of runs, read side by side.
    async fn details(&self, pks: &[i64]) -> ApiResult<(RunSummaries, RunTags)> {
        let (summaries, mut tags, mut values) = tokio::try_join!(
            store::summaries(self.store(), pks),
            store::tags_by_run(self.store(), pks),
            store::tag_values(self.store(), pks),
        )?;
        let both = pks
            .iter()
            .map(|pk| {
                let plain = tags.remove(pk).unwrap_or_default();
                (*pk, (plain, values.remove(pk).unwrap_or_default()))
            })
            .collect();
        Ok((summaries, both))
    }

    /// Key→value tags of runs, by internal key (the MLflow API's tags).
    pub(crate) async fn tag_values(
        &self,
        pks: &[i64],
    ) -> ApiResult<HashMap<i64, BTreeMap<String, String>>> {
        store::tag_values(self.store(), pks).await
    }

    /// Sets key→value tags of a run the caller was checked to write to.
    pub(crate) async fn set_tag_values(&self, pk: i64, tags: &[(String, String)]) -> ApiResult<()> {
        store::set_tag_values(self.store(), pk, tags, now_us()).await
    }

    /// Deletes a key→value tag of a run the caller was checked to write to; whether it was
    /// there.
    pub(crate) async fn delete_tag_value(&self, pk: i64, key: &str) -> ApiResult<bool> {
        store::delete_tag_value(self.store(), pk, key).await
    }

    /// One run.
    pub async fn get(&self, actor: &Actor, id: &RunId) -> ApiResult<Run> {
        Ok(self.get_with_pk(actor, id).await?.1)
    }

    /// One run and its internal key (for callers that keep their own rows about it).
    pub(crate) async fn get_with_pk(&self, actor: &Actor, id: &RunId) -> ApiResult<(i64, Run)> {
        let (row, _) = self.load(actor, id).await?;
        let pk = row.pk;
        Ok((pk, self.to_api(row).await?))
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
            AuditEvent::new(AuditAction::RunCreate).status(201)
        } else {
            AuditEvent::new(AuditAction::RunResume).status(200)
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
        if let Some(id) = &req.id
            && let Some(existing) = self.row(id).await?
        {
            if existing.project_id != access.id {
                return Err(ApiError::Conflict(format!(
                    "run id {id} is already taken; choose another id or leave it out"
                )));
            }
            return Ok((self.resume(existing, &req, config, tags).await?, false));
        }
        let id = req.id.clone().unwrap_or_else(generate_run_id);
        let now = now_us();
        // A run recorded offline keeps the time it started; a clock ahead of ours gives now.
        let started = recorded_time("started_at", req.started_at)?.map_or(now, |t| t.min(now));
        let name = req
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.to_string());
        let new_run = store::NewRun {
            id: &id,
            project_id: access.id,
            name: &name,
            config: &config.to_string(),
            tags: &tags,
            created_by: user.id,
            created_at: now,
            started_at: started,
            request: &req,
        };
        let res = store::insert_run(self.store(), &new_run).await;
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
        // Resuming merges: config keys given now override, tags are added, other fields kept
        // unless given.
        let mut merged: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&existing.config).unwrap_or_default();
        if let serde_json::Value::Object(m) = config {
            merged.extend(m);
        }
        let merged = serde_json::Value::Object(merged).to_string();
        self.check_config_size(&merged)?;
        let check = |all: &[String]| check_tags(all).map(drop);
        let now = now_us();
        store::resume_run(self.store(), existing.pk, &merged, &tags, check, req, now).await?;
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
        id: &RunId,
        req: UpdateRunRequest,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
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
        let edit = store::RunEdit {
            name: req.name.as_deref(),
            notes: req.notes.as_deref(),
            tags: tags.as_deref(),
            updated_at: now_us(),
        };
        let merge = config_patch.map(|patch| {
            move |stored: &str| {
                let merged = merge_config(stored, patch);
                self.check_config_size(&merged)?;
                Ok(merged)
            }
        });
        store::update_run(self.store(), row.pk, &edit, merge).await?;
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
            AuditEvent::new(AuditAction::RunUpdate)
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

    /// Adds one tag, or removes one, in a single transaction (concurrent changes of other tags
    /// are kept). Adding a tag the run has changes nothing; removing one it lacks is a 404.
    pub async fn change_tag(
        &self,
        actor: &Actor,
        id: &RunId,
        tag: &str,
        add: bool,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
        let (row, _) = self.load_for_write(actor, id).await?;
        let tag = check_tags(&[tag.to_string()])?.remove(0);
        let check = |tags: &[String]| check_tags(tags).map(drop);
        let changed = store::change_tag(self.store(), row.pk, &tag, add, now_us(), check).await?;
        if !add && !changed {
            return Err(ApiError::not_found(format!("tag {tag:?} on run {id}")));
        }
        if changed {
            let event = if add {
                AuditAction::RunTagAdd
            } else {
                AuditAction::RunTagRemove
            };
            self.record(
                actor,
                client,
                AuditEvent::new(event)
                    .resource(format!("run:{id}"))
                    .status(200)
                    .metadata(serde_json::json!({ "tag": tag })),
            )
            .await;
        }
        self.get(actor, id).await
    }

    /// Deletes a run with its metrics and logs.
    pub async fn delete(&self, actor: &Actor, id: &RunId, client: &ClientInfo) -> ApiResult<()> {
        let (row, access) = self.load_for_write(actor, id).await?;
        store::delete_run(self.store(), row.pk).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::RunDelete)
                .resource(format!("run:{id}"))
                .status(204)
                .metadata(serde_json::json!({ "project": access.name })),
        )
        .await;
        Ok(())
    }

    /// Records a heartbeat. A run the reaper marked crashed comes back to life; a finished or
    /// killed run stays as it is (409).
    pub async fn heartbeat(&self, actor: &Actor, id: &RunId) -> ApiResult<HeartbeatResponse> {
        let (row, _) = self.load_for_write(actor, id).await?;
        let state = row.state()?;
        let revivable = state == RunState::Running || (state == RunState::Crashed && row.reaped);
        if !revivable {
            return Err(ApiError::Conflict(format!(
                "run {id} is {}; resume it by creating it again with the same id",
                state.as_str()
            )));
        }
        store::record_heartbeat(self.store(), row.pk, now_us()).await?;
        Ok(HeartbeatResponse {
            state: RunState::Running,
            stop_requested: row.stop_requested,
        })
    }

    /// Marks a run finished, crashed or killed.
    pub async fn finish(
        &self,
        actor: &Actor,
        id: &RunId,
        req: FinishRunRequest,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
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
        let reason = req.reason.as_deref();
        store::finish_run(self.store(), row.pk, req.state, req.exit_code, end, reason).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::RunFinish)
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
        id: &RunId,
        client: &ClientInfo,
    ) -> ApiResult<Run> {
        let (row, _) = self.load_for_write(actor, id).await?;
        store::request_stop(self.store(), row.pk, now_us()).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::RunStop)
                .resource(format!("run:{id}"))
                .status(200),
        )
        .await;
        self.get(actor, id).await
    }

    /// Searches runs of a project.
    pub async fn list(&self, actor: &Actor, q: &RunQuery) -> ApiResult<Page<Run>> {
        let project = q
            .project
            .as_ref()
            .ok_or_else(|| ApiError::invalid("the project query parameter is required"))?;
        let access = Projects { state: self.state }
            .access(actor, project)
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
        if let Some(s) = &q.state
            && RunState::parse(s).is_none()
        {
            return Err(ApiError::invalid(format!(
                "unknown state {s:?}: use running, finished, crashed or killed"
            )));
        }
        // One row more than the page tells whether another page follows.
        let mut rows = store::search_runs(self.store(), access.id, q, limit + 1, offset).await?;
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            Some(encode_offset(offset + limit))
        } else {
            None
        };
        let pks: Vec<i64> = rows.iter().map(|r| r.pk).collect();
        let (mut summaries, mut tags) = self.details(&pks).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let s = summaries.remove(&r.pk).unwrap_or_default();
                let t = tags.remove(&r.pk).unwrap_or_default();
                r.into_api(s, t)
            })
            .collect::<ApiResult<_>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// Marks running runs whose heartbeat is older than the timeout as crashed. Returns how many.
pub async fn reap_silent_runs(store: &Store, timeout_us: i64) -> ApiResult<u64> {
    let now = now_us();
    store::crash_silent_runs(store, now, now - timeout_us).await
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
