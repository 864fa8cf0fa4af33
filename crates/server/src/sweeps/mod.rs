//! Sweeps: the controller that hands out hyperparameters (grid, random, or TPE), stops
//! losing runs early (Hyperband), and keeps the agents that run the trials busy.
//!
//! A trial reserves a run id and a set of parameters; the run itself is an ordinary run
//! created by the agent's wrapper with that id, so a trial's state is its run's state (joined
//! by id). Handing out a trial happens in one transaction that first touches the sweep's row:
//! that row lock (PostgreSQL) or the write lock (SQLite) serialises controllers, so any number
//! of agents, through any number of server replicas on one database, share one grid cursor
//! and one run cap.

pub(crate) mod cache;
pub mod hyperband;
pub mod importance;
pub mod routes;
pub mod space;
mod store;
pub mod tpe;

use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wanllmdb_api_types::sweeps::{
    AgentCommand, AgentHeartbeat, AgentHeartbeatResponse, AgentRegistered, CreateSweepRequest,
    DeletedSweep, Goal, ParallelAxis, Param, ParamImportance, RegisterAgentRequest, RetryFailed,
    Sampler, SearchMethod, Suggestion, Sweep, SweepAgent, SweepAnalysis, SweepConfig, SweepState,
    Trial, TrialCounts, TrialState, config_warnings, parse_sweep_config,
};

use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::metrics::Metrics;
use crate::projects::{ProjectAccess, Projects};
use crate::runs::generate_run_id;
use crate::state::AppState;
use crate::store::{Store, format_time, now_us};
use cache::Trials;
pub use cache::{CurveCache, TrialCache};
use space::Space;
use store::{AgentRow, NewAgent, NewSweep, Reservation, SweepRow, TrialRow};
use wanllmdb_api_types::ProjectName;

/// Why the controller stops a run that Hyperband judged a loser.
pub const EARLY_TERMINATED: &str = "early-terminated";
/// Why the runs of a canceled sweep stop.
pub const SWEEP_CANCELED: &str = "sweep-canceled";

impl SweepRow {
    fn state(&self) -> ApiResult<SweepState> {
        Ok(known(
            SweepState::parse(&self.state),
            "sweep",
            &self.id,
            "state",
            &self.state,
        )?)
    }

    /// The stored configuration; it was validated when the sweep was created.
    fn config(&self) -> ApiResult<SweepConfig> {
        let raw: Value = serde_json::from_str(&self.config).map_err(|e| {
            ApiError::Internal(format!("sweep {} has a corrupt config: {e}", self.id))
        })?;
        parse_sweep_config(&raw)
            .map_err(|_| ApiError::Internal(format!("sweep {} has an invalid config", self.id)))
    }

    fn metric_key(cfg: &SweepConfig) -> String {
        cfg.metric
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }
}

impl TrialRow {
    /// The run's state; a reservation whose run never started within the heartbeat timeout
    /// counts as crashed.
    fn state(&self, stale_before_us: i64) -> TrialState {
        match self.run_state.as_deref() {
            Some("running") => TrialState::Running,
            Some("finished") => TrialState::Finished,
            Some("killed") => TrialState::Killed,
            Some(_) => TrialState::Crashed,
            None if self.created_at < stale_before_us => TrialState::Crashed,
            None => TrialState::Pending,
        }
    }

    /// The metric's summary value: an explicitly set summary wins over the last logged value.
    fn value(&self) -> Option<f64> {
        let v = if self.is_set.unwrap_or(false) {
            (!self.set_nan.unwrap_or(false))
                .then_some(self.set_value)
                .flatten()
        } else {
            (!self.last_nan.unwrap_or(false))
                .then_some(self.last_value)
                .flatten()
        };
        v.filter(|v| v.is_finite())
    }

    /// The parameters, decoded once per row read.
    fn params(&self) -> &Map<String, Value> {
        self.decoded
            .get_or_init(|| serde_json::from_str(&self.params).unwrap_or_default())
    }

    fn to_api(&self, stale_before_us: i64) -> Trial {
        Trial {
            number: self.number as u64,
            run_id: self.run_id.clone(),
            state: self.state(stale_before_us),
            params: self.params().clone(),
            value: self.value(),
            iterations: self.iterations.unwrap_or(0).max(0) as u64,
            stop_reason: self.stop_reason.clone(),
            retry_of: self.retry_of.map(|n| n as u64),
            agent_id: self.agent_id.clone(),
            created_at: format_time(self.created_at),
        }
    }
}

/// Lower is better: the objective as the samplers see it.
fn signed(goal: Goal, v: f64) -> f64 {
    match goal {
        Goal::Minimize => v,
        Goal::Maximize => -v,
    }
}

fn goal_of(cfg: &SweepConfig) -> Goal {
    cfg.metric
        .as_ref()
        .map(|m| m.goal)
        .unwrap_or(Goal::Minimize)
}

/// What the sampler draws next, and what it costs the sweep's counters.
struct Draw {
    params: Map<String, Value>,
    grid_index: Option<i64>,
    retry_of: Option<i64>,
}

/// Why no trial can be handed out now.
#[derive(Debug, Clone, PartialEq)]
enum NoTrial {
    /// Paused: ask again later.
    Paused,
    /// Nothing left to hand out, ever (unless failed trials are retried).
    Exhausted(String),
    /// Finished or canceled.
    Over(String),
}

/// The sweep service.
pub struct Sweeps<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Sweeps<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    fn stale_before(&self) -> i64 {
        now_us() - self.state.config.heartbeat_timeout.as_micros() as i64
    }

    async fn row(&self, id: &str) -> ApiResult<Option<SweepRow>> {
        store::sweep_by_id(self.store(), id).await
    }

    /// The sweep and the caller's access to its project (404 for those who cannot read it).
    async fn load(&self, actor: &Actor, id: &str) -> ApiResult<(SweepRow, ProjectAccess)> {
        let missing = || ApiError::not_found(format!("sweep {id}"));
        let row = self.row(id).await?.ok_or_else(missing)?;
        let access = Projects { state: self.state }
            .access_by_id(actor, row.project_id)
            .await?;
        access.require_read().map_err(|_| missing())?;
        Ok((row, access))
    }

    async fn load_for_write(&self, actor: &Actor, id: &str) -> ApiResult<SweepRow> {
        let (row, access) = self.load(actor, id).await?;
        access.require_write()?;
        Ok(row)
    }

    async fn trials(&self, sweep_pk: i64, metric: &str) -> ApiResult<Trials> {
        store::trials(self.store(), &self.state.sweep_trials, sweep_pk, metric).await
    }

    async fn audit(&self, actor: &Actor, client: &ClientInfo, ev: AuditEvent) {
        let mut ev = ev.client(client);
        if let Some(u) = &actor.user {
            ev = ev.user(u.id, &u.username);
        }
        audit::record(self.store(), ev).await;
    }

    /// Validates a configuration and creates the sweep in a project.
    pub async fn create(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        project: &ProjectName,
        req: CreateSweepRequest,
    ) -> ApiResult<Sweep> {
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require_write()?;
        let user = actor.require_user()?;
        let cfg = parse_sweep_config(&req.config).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            ApiError::InvalidInputDetails {
                message: format!(
                    "the sweep configuration has {} problem(s): {}",
                    list.len(),
                    list.join("; ")
                ),
                details: serde_json::json!({ "problems": problems.iter().map(|p| serde_json::json!({"path": p.path, "message": p.message})).collect::<Vec<_>>() }),
            }
        })?;
        if let Some(p) = cfg.project.as_deref().filter(|p| project != p) {
            return Err(ApiError::invalid(format!(
                "the configuration names project {p:?} but the sweep is being created in {project:?}; remove `project` or create it there"
            )));
        }
        if let Some(name) = &cfg.name {
            ApiError::check_text("sweep name", name)?;
        }
        // Sweep ids have the shape of run ids.
        let id = String::from(generate_run_id());
        let name = cfg.name.clone().unwrap_or_else(|| id.clone());
        let seed = cfg.tpe.seed.unwrap_or_else(rand::random::<u64>) as i64;
        let method = match cfg.method {
            SearchMethod::Grid => "grid",
            SearchMethod::Random => "random",
            SearchMethod::Bayes => "bayes",
        };
        let new = NewSweep {
            id: &id,
            project_id: access.id,
            name: &name,
            description: cfg.description.clone().unwrap_or_default(),
            method,
            config: req.config.to_string(),
            seed,
            created_by: user.id,
            now: now_us(),
        };
        store::insert_sweep(self.store(), new).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::SweepCreate)
                .status(201)
                .resource(format!("sweep:{id}"))
                .metadata(serde_json::json!({"project": project, "method": method, "name": name})),
        )
        .await;
        self.get(actor, &id).await
    }

    /// One sweep with its counts, best trial and agents.
    pub async fn get(&self, actor: &Actor, id: &str) -> ApiResult<Sweep> {
        let (row, _) = self.load(actor, id).await?;
        self.tick(&row).await?;
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| ApiError::not_found("sweep"))?;
        self.to_api(row).await
    }

    async fn to_api(&self, row: SweepRow) -> ApiResult<Sweep> {
        let cfg = row.config()?;
        let trials = self.trials(row.pk, &SweepRow::metric_key(&cfg)).await?;
        let stale = self.stale_before();
        let mut counts = TrialCounts::default();
        for t in trials.iter() {
            match t.state(stale) {
                TrialState::Pending => counts.pending += 1,
                TrialState::Running => counts.running += 1,
                TrialState::Finished => counts.finished += 1,
                TrialState::Crashed => counts.crashed += 1,
                TrialState::Killed => counts.killed += 1,
            }
        }
        let goal = goal_of(&cfg);
        let best = cfg.metric.as_ref().and_then(|_| {
            trials
                .iter()
                .filter_map(|t| t.value().map(|v| (signed(goal, v), t)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, t)| t.to_api(stale))
        });
        let agents = self.agents(row.pk).await?;
        Ok(Sweep {
            grid_size: matches!(cfg.method, SearchMethod::Grid)
                .then(|| Space::new(&cfg).grid_size())
                .flatten(),
            state: row.state()?,
            config: serde_json::from_str(&row.config).unwrap_or(Value::Null),
            id: row.id,
            project: row.project,
            name: row.name,
            description: row.description,
            method: row.method,
            finish_reason: row.finish_reason,
            counts,
            best,
            agents,
            created_by: row.created_by,
            created_at: format_time(row.created_at),
            updated_at: format_time(row.updated_at),
            warnings: config_warnings(&cfg),
        })
    }

    async fn agents(&self, sweep_pk: i64) -> ApiResult<Vec<SweepAgent>> {
        let rows: Vec<AgentRow> = store::agents(self.store(), sweep_pk).await?;
        let stale = self.stale_before();
        Ok(rows
            .into_iter()
            .map(|a| SweepAgent {
                state: if a.exited_at.is_some() {
                    "exited"
                } else if a.heartbeat_at < stale {
                    "lost"
                } else {
                    "running"
                }
                .into(),
                id: a.id,
                host: a.host,
                pid: a.pid.and_then(|p| u32::try_from(p).ok()),
                heartbeat_at: format_time(a.heartbeat_at),
            })
            .collect())
    }

    /// The sweeps of a project, newest first.
    pub async fn list(&self, actor: &Actor, project: &ProjectName) -> ApiResult<Vec<Sweep>> {
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require_read()?;
        let rows = store::sweeps_of_project(self.store(), access.id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.to_api(row).await?);
        }
        Ok(out)
    }

    /// Every trial of a sweep, in the order handed out.
    pub async fn list_trials(&self, actor: &Actor, id: &str) -> ApiResult<Vec<Trial>> {
        let (row, _) = self.load(actor, id).await?;
        let cfg = row.config()?;
        let stale = self.stale_before();
        Ok(self
            .trials(row.pk, &SweepRow::metric_key(&cfg))
            .await?
            .iter()
            .map(|t| t.to_api(stale))
            .collect())
    }

    /// Pauses, resumes, finishes or cancels a sweep.
    pub async fn transition(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        id: &str,
        action: &str,
    ) -> ApiResult<Sweep> {
        let row = self.load_for_write(actor, id).await?;
        let from = row.state()?;
        let to = match (action, from) {
            (_, s) if s.is_terminal() => {
                return Err(ApiError::Conflict(format!(
                    "sweep {id} is {}; create a new sweep to search again",
                    s.as_str()
                )));
            }
            ("pause", SweepState::Pending | SweepState::Running) => SweepState::Paused,
            ("resume", SweepState::Paused) => SweepState::Running,
            ("finish", _) => SweepState::Finished,
            ("cancel", _) => SweepState::Canceled,
            ("pause" | "resume", s) => {
                return Err(ApiError::Conflict(format!(
                    "sweep {id} is {}; it cannot {action}",
                    s.as_str()
                )));
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "unknown action {action:?}: use pause, resume, finish or cancel"
                )));
            }
        };
        let reason = match to {
            SweepState::Finished => Some("finished by hand"),
            SweepState::Canceled => Some("canceled by hand"),
            _ => None,
        };
        self.set_state(row.pk, to, reason).await?;
        if to == SweepState::Canceled {
            self.stop_unfinished(row.pk, SWEEP_CANCELED).await?;
        }
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::SweepStateChange)
                .status(200)
                .resource(format!("sweep:{id}"))
                .metadata(serde_json::json!({"from": from.as_str(), "to": to.as_str()})),
        )
        .await;
        self.get(actor, id).await
    }

    async fn set_state(&self, pk: i64, to: SweepState, reason: Option<&str>) -> ApiResult<()> {
        let now = now_us();
        let finished_at = to.is_terminal().then_some(now);
        store::set_state(self.store(), pk, to, reason, finished_at, now).await
    }

    /// Asks every running or reserved trial's run to stop.
    async fn stop_unfinished(&self, sweep_pk: i64, reason: &str) -> ApiResult<()> {
        store::stop_unfinished(self.store(), sweep_pk, reason, now_us()).await
    }

    /// Deletes a sweep with its trials and agents. Its runs stay as ordinary runs, detached,
    /// and each one's notes say which sweep they came from.
    pub async fn delete(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        id: &str,
    ) -> ApiResult<DeletedSweep> {
        let row = self.load_for_write(actor, id).await?;
        let user = actor.require_user()?;
        let note = format!(
            "Detached from sweep {id} ({}), deleted by {} on {}.",
            row.name,
            user.username,
            &format_time(now_us())[..10]
        );
        let now = now_us();
        let detached = store::delete_sweep_detaching_runs(self.store(), row.pk, &note, now).await?;
        self.state.sweep_trials.forget(row.pk);
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::SweepDelete)
                .status(200)
                .resource(format!("sweep:{id}"))
                .metadata(serde_json::json!({"name": row.name, "runs_detached": detached.len()})),
        )
        .await;
        Ok(DeletedSweep {
            id: id.to_string(),
            detached_runs: detached,
        })
    }

    /// Queues every crashed trial to run again with the same parameters.
    pub async fn retry_failed(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        id: &str,
    ) -> ApiResult<RetryFailed> {
        let row = self.load_for_write(actor, id).await?;
        if row.state()? == SweepState::Canceled {
            return Err(ApiError::Conflict(format!(
                "sweep {id} is canceled; create a new sweep to search again"
            )));
        }
        let cfg = row.config()?;
        let stale = self.stale_before();
        let trials = self.trials(row.pk, &SweepRow::metric_key(&cfg)).await?;
        let retried: Vec<i64> = trials.iter().filter_map(|t| t.retry_of).collect();
        let failed: Vec<i64> = trials
            .iter()
            .filter(|t| t.state(stale) == TrialState::Crashed)
            .filter(|t| !t.retry_requested && !retried.contains(&t.number))
            .map(|t| t.pk)
            .collect();
        if !failed.is_empty() {
            store::queue_retries(self.store(), row.pk, &failed, now_us()).await?;
        }
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::SweepRetryFailed)
                .status(200)
                .resource(format!("sweep:{id}"))
                .metadata(serde_json::json!({"queued": failed.len()})),
        )
        .await;
        Ok(RetryFailed {
            queued: failed.len() as u64,
        })
    }

    /// Manual mode: reserves the next trial for a run the caller starts itself.
    pub async fn suggest(&self, actor: &Actor, id: &str) -> ApiResult<Suggestion> {
        let row = self.load_for_write(actor, id).await?;
        self.tick(&row).await?;
        match self.reserve(&row, None).await? {
            Ok(s) => Ok(s),
            Err(NoTrial::Paused) => Err(ApiError::Conflict(format!(
                "sweep {id} is paused; resume it with `wanllmdb sweep resume {id}`"
            ))),
            Err(NoTrial::Exhausted(why) | NoTrial::Over(why)) => Err(ApiError::Conflict(format!(
                "sweep {id} has no more trials: {why}"
            ))),
        }
    }

    /// Reserves the next trial: a queued retry first, then a fresh draw.
    async fn reserve(
        &self,
        sweep: &SweepRow,
        agent_pk: Option<i64>,
    ) -> ApiResult<Result<Suggestion, NoTrial>> {
        let cfg = sweep.config()?;
        let space = Space::new(&cfg);
        let metric = SweepRow::metric_key(&cfg);
        let stale = self.stale_before();
        let run_id = generate_run_id();
        let reservation = Reservation {
            run_id: run_id.as_str(),
            agent_pk,
            metric: &metric,
            wants_history: matches!(cfg.method, SearchMethod::Bayes),
            now: now_us(),
        };
        let cache = &self.state.sweep_trials;
        let outcome = store::reserve_trial(self.store(), cache, sweep, reservation, |locked| {
            next_draw(&cfg, &space, sweep.seed, locked, stale)
        })
        .await?;
        Ok(outcome.map(|(number, params)| Suggestion {
            sweep_id: sweep.id.clone(),
            project: sweep.project.clone(),
            run_id,
            number: number as u64,
            config: cfg.nest_params(&params),
            params,
        }))
    }

    /// Enforces what needs no caller: Hyperband stops, the metric target, and finishing a
    /// sweep that has nothing left to run.
    async fn tick(&self, sweep: &SweepRow) -> ApiResult<()> {
        if sweep.state()?.is_terminal() {
            return Ok(());
        }
        let cfg = sweep.config()?;
        let metric = SweepRow::metric_key(&cfg);
        let trials = self.trials(sweep.pk, &metric).await?;
        let stale = self.stale_before();
        if let (Some(hb), Some(m)) = (&cfg.early_terminate, &cfg.metric) {
            self.enforce_hyperband(hb, m.goal, &metric, &trials, stale)
                .await?;
        }
        if let Some(reason) = finish_reason(&cfg, sweep, &trials, stale) {
            self.set_state(sweep.pk, SweepState::Finished, Some(&reason))
                .await?;
        }
        Ok(())
    }

    async fn enforce_hyperband(
        &self,
        hb: &wanllmdb_api_types::sweeps::Hyperband,
        goal: Goal,
        metric: &str,
        trials: &[Arc<TrialRow>],
        stale: i64,
    ) -> ApiResult<()> {
        let first_band = hyperband::bands(hb).first().copied().unwrap_or(u64::MAX);
        let candidates = trials.iter().any(|t| {
            t.state(stale) == TrialState::Running
                && t.stop_reason.is_none()
                && t.iterations.unwrap_or(0) as u64 >= first_band
        });
        if !candidates {
            return Ok(());
        }
        let metrics = Metrics { state: self.state };
        let mut curves = Vec::new();
        let mut who = Vec::new();
        for t in trials {
            let (Some(run_pk), Some(n)) = (t.run_pk, t.iterations) else {
                continue;
            };
            if n == 0 {
                continue;
            }
            // A run's curve changes only when it logs: its count and last value say so.
            let version = (n, t.last_value.map(f64::to_bits));
            let values = match self.state.sweep_curves.get(run_pk, version) {
                Some(v) => v,
                None => {
                    let v: Arc<Vec<f64>> = Arc::new(
                        metrics
                            .values_of(run_pk, &t.run_id, metric)
                            .await?
                            .into_iter()
                            .filter(|v| v.is_finite())
                            .collect(),
                    );
                    self.state.sweep_curves.put(run_pk, version, v.clone());
                    v
                }
            };
            curves.push(hyperband::Curve {
                running: t.state(stale) == TrialState::Running && t.stop_reason.is_none(),
                values,
            });
            who.push(t);
        }
        for d in hyperband::decide(hb, goal, &curves) {
            let t = who[d.index];
            tracing::info!(run = %t.run_id, band = d.band, value = d.value, threshold = d.threshold, "hyperband stops a run");
            self.request_stop(t.pk, t.run_id.as_str(), EARLY_TERMINATED)
                .await?;
        }
        Ok(())
    }

    async fn request_stop(&self, trial_pk: i64, run_id: &str, reason: &str) -> ApiResult<()> {
        store::request_stop(self.store(), trial_pk, run_id, reason, now_us()).await
    }

    /// An agent joins a sweep.
    pub async fn register_agent(
        &self,
        actor: &Actor,
        id: &str,
        req: RegisterAgentRequest,
    ) -> ApiResult<AgentRegistered> {
        let row = self.load_for_write(actor, id).await?;
        let user = actor.require_user()?;
        if row.state()?.is_terminal() {
            return Err(ApiError::Conflict(format!(
                "sweep {id} is {}; there is nothing for an agent to run",
                row.state()?.as_str()
            )));
        }
        let host: String = req.host.unwrap_or_default().chars().take(256).collect();
        // Agent ids have the shape of run ids.
        let agent_id = String::from(generate_run_id());
        let new = NewAgent {
            id: &agent_id,
            sweep_pk: row.pk,
            host: &host,
            pid: req.pid.map(i64::from),
            created_by: user.id,
            now: now_us(),
        };
        store::insert_agent(self.store(), new).await?;
        Ok(AgentRegistered {
            agent_id,
            sweep: self.to_api(row).await?,
        })
    }

    /// An agent's heartbeat: records it, enforces the sweep's rules, and answers with what
    /// the agent should do — stop runs, start one, or leave.
    pub async fn agent_heartbeat(
        &self,
        actor: &Actor,
        id: &str,
        agent_id: &str,
        hb: AgentHeartbeat,
    ) -> ApiResult<AgentHeartbeatResponse> {
        let row = self.load_for_write(actor, id).await?;
        let agent_pk = self.touch_agent(row.pk, agent_id).await?;
        self.tick(&row).await?;
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| ApiError::not_found("sweep"))?;
        let cfg = row.config()?;
        let trials = self.trials(row.pk, &SweepRow::metric_key(&cfg)).await?;
        let by_run: HashMap<&str, &TrialRow> =
            trials.iter().map(|t| (t.run_id.as_str(), &**t)).collect();
        let mut commands = Vec::new();
        for run in &hb.running {
            if let Some(reason) = by_run.get(run.as_str()).and_then(|t| t.stop_reason.clone()) {
                commands.push(AgentCommand::Stop {
                    run_id: run.clone(),
                    reason,
                });
            }
        }
        if hb.running.is_empty() {
            match row.state()? {
                SweepState::Pending | SweepState::Running if hb.want_run => {
                    match self.reserve(&row, Some(agent_pk)).await? {
                        Ok(s) => commands.push(AgentCommand::Run(s)),
                        Err(NoTrial::Paused) => {}
                        Err(NoTrial::Exhausted(reason) | NoTrial::Over(reason)) => {
                            commands.push(AgentCommand::Exit { reason })
                        }
                    }
                }
                s if s.is_terminal() => commands.push(AgentCommand::Exit {
                    reason: format!(
                        "the sweep is {}{}",
                        s.as_str(),
                        row.finish_reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                }),
                _ => {}
            }
        }
        // A sweep deleted while its agent runs reads as canceled, so the agent stops.
        let state = match self.row(id).await? {
            Some(r) => r.state()?,
            None => SweepState::Canceled,
        };
        Ok(AgentHeartbeatResponse { state, commands })
    }

    async fn touch_agent(&self, sweep_pk: i64, agent_id: &str) -> ApiResult<i64> {
        match store::touch_agent(self.store(), sweep_pk, agent_id, now_us()).await? {
            None => Err(ApiError::not_found(format!(
                "agent {agent_id} of this sweep"
            ))),
            Some((_, Some(_))) => Err(ApiError::Conflict(format!(
                "agent {agent_id} has exited; start a new agent"
            ))),
            Some((pk, None)) => Ok(pk),
        }
    }

    /// An agent leaves.
    pub async fn agent_exit(&self, actor: &Actor, id: &str, agent_id: &str) -> ApiResult<()> {
        let row = self.load_for_write(actor, id).await?;
        if !store::mark_agent_exited(self.store(), row.pk, agent_id, now_us()).await? {
            return Err(ApiError::not_found(format!(
                "running agent {agent_id} of this sweep"
            )));
        }
        Ok(())
    }

    /// Trials ranked by the metric, parameter importance, and parallel-coordinates data.
    pub async fn analysis(&self, actor: &Actor, id: &str) -> ApiResult<SweepAnalysis> {
        let (row, _) = self.load(actor, id).await?;
        let cfg = row.config()?;
        let stale = self.stale_before();
        let trials = self.trials(row.pk, &SweepRow::metric_key(&cfg)).await?;
        Ok(analyse(&cfg, &trials, stale))
    }
}

/// The sweep as read under its lock.
struct Locked<'a> {
    state: SweepState,
    /// The next grid index.
    cursor: i64,
    /// Points drawn so far (retries excluded).
    drawn: i64,
    /// The first trial queued for a retry: number, params, grid index.
    retry: Option<(i64, String, Option<i64>)>,
    /// Every trial (bayes only).
    history: &'a [Arc<TrialRow>],
}

/// What to hand out: nothing while paused or over, a queued retry first, else a fresh draw.
fn next_draw(
    cfg: &SweepConfig,
    space: &Space,
    seed: i64,
    locked: Locked<'_>,
    stale: i64,
) -> Result<Draw, NoTrial> {
    match locked.state {
        SweepState::Paused => Err(NoTrial::Paused),
        s if s.is_terminal() => Err(NoTrial::Over(format!("the sweep is {}", s.as_str()))),
        _ => match locked.retry {
            Some((number, params, grid_index)) => Ok(Draw {
                params: serde_json::from_str(&params).unwrap_or_default(),
                grid_index,
                retry_of: Some(number),
            }),
            None => draw(
                cfg,
                space,
                seed,
                locked.cursor,
                locked.drawn,
                locked.history,
                stale,
            ),
        },
    }
}

impl Draw {
    /// The sweep's grid cursor and drawn count once this draw is handed out.
    fn counters_after(&self, cursor: i64, drawn: i64) -> (i64, i64) {
        match (self.retry_of, self.grid_index) {
            (Some(_), _) => (cursor, drawn),
            (None, Some(g)) => (g + 1, drawn + 1),
            (None, None) => (cursor, drawn + 1),
        }
    }
}

/// Draws a fresh point for the sweep's method; `cursor` is the next grid index, `drawn` the
/// points drawn so far.
fn draw(
    cfg: &SweepConfig,
    space: &Space,
    seed: i64,
    cursor: i64,
    drawn: i64,
    history: &[Arc<TrialRow>],
    stale: i64,
) -> Result<Draw, NoTrial> {
    if cfg.run_cap.is_some_and(|cap| drawn as u64 >= cap) {
        return Err(NoTrial::Exhausted(format!(
            "the run cap of {} was reached",
            cfg.run_cap.unwrap_or(0)
        )));
    }
    // Each draw has its own stream, so a sweep's sequence is reproducible from its seed.
    let mut rng =
        StdRng::seed_from_u64((seed as u64) ^ (drawn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let params = match cfg.method {
        SearchMethod::Grid => {
            let size = space.grid_size().unwrap_or(0);
            if cursor as u64 >= size {
                return Err(NoTrial::Exhausted(format!(
                    "all {size} grid points were handed out"
                )));
            }
            let point = space
                .grid_point(cursor as u64)
                .ok_or_else(|| NoTrial::Exhausted("the grid is empty".into()))?;
            return Ok(Draw {
                params: point,
                grid_index: Some(cursor),
                retry_of: None,
            });
        }
        SearchMethod::Random => space.sample(&mut rng),
        SearchMethod::Bayes if cfg.tpe.sampler == Sampler::Random => space.sample(&mut rng),
        SearchMethod::Bayes => suggest_tpe(cfg, space, history, stale, &mut rng),
    };
    Ok(Draw {
        params,
        grid_index: None,
        retry_of: None,
    })
}

/// The TPE suggestion given every trial so far: finished ones by their value, crashed ones (and
/// finished ones without the metric) as the worst, running ones as unknown.
fn suggest_tpe(
    cfg: &SweepConfig,
    space: &Space,
    history: &[Arc<TrialRow>],
    stale: i64,
    rng: &mut StdRng,
) -> Map<String, Value> {
    let dims = space.dims();
    let goal = goal_of(cfg);
    let observations: Vec<tpe::Observation> = history
        .iter()
        .filter_map(|t| {
            let params = space.to_coords(&dims, t.params())?;
            let value = match t.state(stale) {
                TrialState::Pending | TrialState::Running => None,
                TrialState::Crashed => Some(f64::INFINITY),
                TrialState::Finished | TrialState::Killed => {
                    Some(t.value().map_or(f64::INFINITY, |v| signed(goal, v)))
                }
            };
            Some(tpe::Observation { params, value })
        })
        .collect();
    let opts = tpe::TpeOptions {
        n_startup_trials: cfg.tpe.n_startup_trials,
        n_ei_candidates: cfg.tpe.n_ei_candidates,
        multivariate: cfg.tpe.multivariate,
        constant_liar: cfg.tpe.constant_liar,
        ..tpe::TpeOptions::default()
    };
    let only_dims: Vec<tpe::Dim> = dims.iter().map(|(_, d)| d.clone()).collect();
    let coords = tpe::suggest(&only_dims, &observations, &opts, rng);
    space.from_coords(&dims, &coords)
}

/// Why the sweep is over now, if it is: its target reached, or nothing left to run.
fn finish_reason(
    cfg: &SweepConfig,
    sweep: &SweepRow,
    trials: &[Arc<TrialRow>],
    stale: i64,
) -> Option<String> {
    if let Some(m) = &cfg.metric
        && let Some(target) = m.target
    {
        let hit = trials
            .iter()
            .filter_map(|t| t.value())
            .find(|v| match m.goal {
                Goal::Minimize => *v <= target,
                Goal::Maximize => *v >= target,
            });
        if let Some(v) = hit {
            return Some(format!("{} reached the target {target} ({v})", m.name));
        }
    }
    let busy = trials
        .iter()
        .any(|t| matches!(t.state(stale), TrialState::Pending | TrialState::Running));
    let queued = trials.iter().any(|t| t.retry_requested);
    if busy || queued || matches!(sweep.state(), Ok(SweepState::Pending)) {
        return None;
    }
    if let Some(cap) = cfg.run_cap
        && sweep.trial_count as u64 >= cap
    {
        return Some(format!("the run cap of {cap} was reached"));
    }
    if matches!(cfg.method, SearchMethod::Grid) {
        let size = Space::new(cfg).grid_size().unwrap_or(0);
        if sweep.grid_cursor as u64 >= size {
            return Some(format!("all {size} grid points were tried"));
        }
    }
    None
}

/// Ranks trials, estimates parameter importance and lays out the parallel-coordinates view.
fn analyse(cfg: &SweepConfig, trials: &[Arc<TrialRow>], stale: i64) -> SweepAnalysis {
    let goal = goal_of(cfg);
    let mut scored: Vec<(f64, &TrialRow)> = trials
        .iter()
        .filter_map(|t| t.value().map(|v| (signed(goal, v), &**t)))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let space = Space::new(cfg);
    let searched: Vec<&space::Leaf> = space
        .dims()
        .iter()
        .map(|(i, _)| &space.leaves[*i])
        .collect();
    let params: Vec<&Map<String, Value>> = scored.iter().map(|(_, t)| t.params()).collect();
    let objective: Vec<f64> = scored.iter().filter_map(|(_, t)| t.value()).collect();
    let columns: Vec<(String, Vec<importance::ParamValue>)> = searched
        .iter()
        .map(|leaf| {
            let col = params
                .iter()
                .map(|p| param_value(p.get(&leaf.name).unwrap_or(&Value::Null)))
                .collect();
            (leaf.name.clone(), col)
        })
        .collect();
    let mut imp: Vec<ParamImportance> = importance::importance(&columns, &objective)
        .into_iter()
        .map(|i| ParamImportance {
            name: i.name,
            importance: i.importance,
            correlation: i.correlation,
        })
        .collect();
    imp.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    let mut axes: Vec<ParallelAxis> = searched.iter().map(|l| axis(l, &params)).collect();
    let metric = cfg.metric.as_ref().map(|m| m.name.clone());
    axes.push(ParallelAxis {
        name: metric.clone().unwrap_or_else(|| "value".into()),
        kind: "numeric".into(),
        min: objective.iter().copied().reduce(f64::min),
        max: objective.iter().copied().reduce(f64::max),
        categories: Vec::new(),
    });
    let lines = params
        .iter()
        .zip(&objective)
        .map(|(p, v)| {
            let mut line: Vec<Value> = searched
                .iter()
                .map(|l| p.get(&l.name).cloned().unwrap_or(Value::Null))
                .collect();
            line.push(Value::from(*v));
            line
        })
        .collect();
    SweepAnalysis {
        metric,
        top: scored.iter().map(|(_, t)| t.to_api(stale)).collect(),
        importance: imp,
        axes,
        lines,
    }
}

fn param_value(v: &Value) -> importance::ParamValue {
    match v {
        Value::Number(n) => importance::ParamValue::Num(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => importance::ParamValue::Cat(s.clone()),
        other => importance::ParamValue::Cat(other.to_string()),
    }
}

fn axis(leaf: &space::Leaf, params: &[&Map<String, Value>]) -> ParallelAxis {
    let values: Vec<&Value> = params.iter().filter_map(|p| p.get(&leaf.name)).collect();
    let numeric =
        !matches!(leaf.param, Param::Choice { .. }) || values.iter().all(|v| v.is_number());
    if numeric {
        let nums = values.iter().filter_map(|v| v.as_f64());
        ParallelAxis {
            name: leaf.name.clone(),
            kind: "numeric".into(),
            min: nums.clone().reduce(f64::min),
            max: nums.reduce(f64::max),
            categories: Vec::new(),
        }
    } else {
        let categories = match &leaf.param {
            Param::Choice { values, .. } => values.clone(),
            _ => Vec::new(),
        };
        ParallelAxis {
            name: leaf.name.clone(),
            kind: "categorical".into(),
            min: None,
            max: None,
            categories,
        }
    }
}

/// Starts the background controller: every `reaper_interval` it enforces Hyperband, targets
/// and completion on running sweeps, so runs started by hand (`sweep suggest`) are governed
/// as agent runs are. It stops when `stop` turns true.
pub fn spawn_scheduler(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.reaper_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if !state.singletons.sweep_scheduler.acquire(&state.store).await {
                continue;
            }
            if let Err(e) = (Sweeps { state: &state }).tick_all().await {
                tracing::warn!(error = %e, "sweep scheduler failed");
            }
        }
        state.singletons.sweep_scheduler.release(&state.store).await;
    })
}

impl Sweeps<'_> {
    async fn tick_all(&self) -> ApiResult<()> {
        for row in store::active_sweeps(self.store()).await? {
            self.tick(&row).await?;
        }
        Ok(())
    }
}
