//! Sweeps: the configuration format (W&B's, re-exported from the `config` module) and the requests
//! and responses of the sweep API.

mod config;

pub use config::*;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// ---- The sweep API: requests and responses. ----

/// Life-cycle state of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SweepState {
    /// Created; no trial handed out yet.
    Pending,
    /// Handing out trials.
    Running,
    /// Hands out nothing new; running trials go on.
    Paused,
    /// Done: every point tried, the run cap or the metric target reached, or finished by hand.
    Finished,
    /// Stopped by hand; its running trials were stopped too.
    Canceled,
}

impl SweepState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepState::Pending => "pending",
            SweepState::Running => "running",
            SweepState::Paused => "paused",
            SweepState::Finished => "finished",
            SweepState::Canceled => "canceled",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<SweepState> {
        [
            SweepState::Pending,
            SweepState::Running,
            SweepState::Paused,
            SweepState::Finished,
            SweepState::Canceled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether the sweep is over for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, SweepState::Finished | SweepState::Canceled)
    }
}

/// `POST /api/v1/projects/{name}/sweeps`: the sweep configuration (W&B format, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSweepRequest {
    /// The configuration: `method`, `metric`, `parameters`, …
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// How many trials are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrialCounts {
    /// Reserved, its run not started yet.
    pub pending: u64,
    /// Running.
    pub running: u64,
    /// Finished.
    pub finished: u64,
    /// Crashed (or never started).
    pub crashed: u64,
    /// Stopped: early-terminated, canceled or killed.
    pub killed: u64,
}

/// State of one trial: its run's state, or `pending` before the run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Reserved; the run has not started.
    Pending,
    /// Running.
    Running,
    /// Finished.
    Finished,
    /// Crashed, or reserved and never started.
    Crashed,
    /// Stopped before it ended.
    Killed,
}

/// One set of parameters handed out, and how its run went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Trial {
    /// 1, 2, … in the order handed out.
    pub number: u64,
    /// The run that executes it.
    pub run_id: crate::RunId,
    /// State.
    pub state: TrialState,
    /// Parameters by dotted name.
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The metric's summary value, when the run logged it.
    pub value: Option<f64>,
    /// How many values of the metric the run logged.
    pub iterations: u64,
    /// Why the controller stopped it (e.g. `early-terminated`).
    pub stop_reason: Option<String>,
    /// The trial this one repeats (`retry-failed`).
    pub retry_of: Option<u64>,
    /// The agent it was handed to.
    pub agent_id: Option<String>,
    /// When it was handed out.
    pub created_at: String,
}

/// A sweep agent (one `wanllmdb sweep agent` process).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SweepAgent {
    /// Agent id.
    pub id: String,
    /// Host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: Option<u32>,
    /// `running`, `exited`, or `lost` (no heartbeat within the server's timeout).
    pub state: String,
    /// Last heartbeat.
    pub heartbeat_at: String,
}

/// A sweep.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Sweep {
    /// 8 characters of a-z and 0-9.
    pub id: String,
    /// Project name.
    pub project: crate::ProjectName,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `grid`, `random` or `bayes`.
    pub method: String,
    /// State.
    pub state: SweepState,
    /// Why it finished, when it did.
    pub finish_reason: Option<String>,
    /// The configuration as given.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Number of grid points (grid sweeps).
    pub grid_size: Option<u64>,
    /// Trials by state.
    pub counts: TrialCounts,
    /// The best trial by the metric so far.
    pub best: Option<Trial>,
    /// Agents that ever joined.
    pub agents: Vec<SweepAgent>,
    /// Creator.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// What the configuration says that was probably not meant, e.g. the value range a
    /// `log_uniform` parameter really samples (see `config_warnings`).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// How much one parameter explains the metric.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ParamImportance {
    /// Parameter (dotted name).
    pub name: String,
    /// Share of the metric's variance it explains (all parameters sum to 1).
    pub importance: f64,
    /// Rank correlation with the metric (numeric parameters).
    pub correlation: Option<f64>,
}

/// One axis of a parallel-coordinates view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ParallelAxis {
    /// Parameter name, or the metric's name for the last axis.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Range of a numeric axis.
    pub min: Option<f64>,
    /// Range of a numeric axis.
    pub max: Option<f64>,
    /// Categories of a categorical axis, in order.
    #[schema(value_type = Vec<Object>)]
    pub categories: Vec<serde_json::Value>,
}

/// `GET /api/v1/sweeps/{id}/analysis`: trials ranked by the metric, parameter importance and
/// the data of a parallel-coordinates view.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SweepAnalysis {
    /// The metric (name and goal), if the config has one.
    pub metric: Option<String>,
    /// Trials with a value, best first.
    pub top: Vec<Trial>,
    /// Parameter importance, most important first (needs 3 trials with a value).
    pub importance: Vec<ParamImportance>,
    /// Axes: every searched parameter, then the metric.
    pub axes: Vec<ParallelAxis>,
    /// One line per trial with a value: one entry per axis (categorical ones as the value).
    #[schema(value_type = Vec<Vec<Object>>)]
    pub lines: Vec<Vec<serde_json::Value>>,
}

/// `POST /api/v1/sweeps/{id}/agents`: an agent joins.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentRequest {
    /// Host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Process id.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// `POST /api/v1/sweeps/{id}/agents/{agent}/heartbeat`: what the agent is running.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentHeartbeat {
    /// Run ids the agent is running now.
    #[serde(default)]
    pub running: Vec<crate::RunId>,
    /// Whether the agent wants a new trial (it is idle and may start another).
    #[serde(default)]
    pub want_run: bool,
}

/// Parameters handed out for one run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Suggestion {
    /// The sweep.
    pub sweep_id: String,
    /// Project of the run.
    pub project: crate::ProjectName,
    /// The run id reserved for it: start the run with this id.
    pub run_id: crate::RunId,
    /// Trial number.
    pub number: u64,
    /// Parameters by dotted name.
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The same parameters nested as the config declares them (a nested `optimizer` → `lr`
    /// becomes `{"optimizer": {"lr": …}}`; a top-level name `model.lr` stays flat): the run's config.
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// An instruction to an agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AgentCommand {
    /// Start a run with these parameters.
    Run(Suggestion),
    /// Stop this run (SIGTERM, then SIGKILL after the grace period).
    Stop {
        /// The run.
        run_id: crate::RunId,
        /// Recorded as the run's end reason, e.g. `early-terminated`.
        reason: String,
    },
    /// Leave: the sweep has nothing more for this agent.
    Exit {
        /// Why, for the agent to print.
        reason: String,
    },
}

/// The server's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentHeartbeatResponse {
    /// The sweep's state.
    pub state: SweepState,
    /// What to do now (possibly nothing).
    pub commands: Vec<AgentCommand>,
}

/// Answer to `POST /api/v1/sweeps/{id}/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentRegistered {
    /// The agent's id, for its heartbeats.
    pub agent_id: String,
    /// The sweep.
    pub sweep: Sweep,
}

/// Answer to `DELETE /api/v1/sweeps/{id}`: the sweep is gone, its runs stay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedSweep {
    /// The sweep's id.
    pub id: String,
    /// Runs of its trials, kept as ordinary runs; each one's notes say so.
    pub detached_runs: Vec<String>,
}

/// Answer to `POST /api/v1/sweeps/{id}/retry-failed`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryFailed {
    /// Trials queued to run again.
    pub queued: u64,
}
