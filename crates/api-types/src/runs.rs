//! Runs: one execution of a training program.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::MetricValue;

/// Life-cycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Started and heartbeating.
    Running,
    /// The program exited with code 0.
    Finished,
    /// The program failed, or its heartbeats stopped.
    Crashed,
    /// The program was stopped by a signal or a user.
    Killed,
}

impl RunState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Crashed => "crashed",
            RunState::Killed => "killed",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<RunState> {
        match s {
            "running" => Some(RunState::Running),
            "finished" => Some(RunState::Finished),
            "crashed" => Some(RunState::Crashed),
            "killed" => Some(RunState::Killed),
            _ => None,
        }
    }
}

/// Source-control state of the code a run executed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GitInfo {
    /// Commit hash.
    #[serde(default)]
    pub commit: Option<String>,
    /// Branch name.
    #[serde(default)]
    pub branch: Option<String>,
    /// Remote URL (credentials stripped by the client).
    #[serde(default)]
    pub remote: Option<String>,
    /// Whether the working tree had uncommitted changes.
    #[serde(default)]
    pub dirty: Option<bool>,
}

/// `POST /api/v1/runs`: creates a run, or resumes it when `id` already exists in `project`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunRequest {
    /// Project name.
    pub project: crate::ProjectName,
    /// Client-chosen id (8 characters of `[a-z0-9]`); generated when absent.
    #[serde(default)]
    pub id: Option<crate::RunId>,
    /// Display name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Hyperparameters: a JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<serde_json::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub notes: Option<String>,
    /// Group (for runs that belong together, e.g. distributed workers).
    #[serde(default)]
    pub group: Option<String>,
    /// Kind of job, e.g. `train` or `eval`.
    #[serde(default)]
    pub job_type: Option<String>,
    /// Source-control state.
    #[serde(default)]
    pub git: Option<GitInfo>,
    /// Host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// The program that was run.
    #[serde(default)]
    pub program: Option<String>,
    /// Runtime versions, e.g. `{"python": "3.11.7", "torch": "2.5.0"}`.
    #[serde(default)]
    pub runtime: BTreeMap<String, String>,
    /// When the run started, Unix seconds or RFC 3339, for runs recorded offline and uploaded
    /// later (`wanllmdb sync`); a new run only, and never later than now. Default: now.
    #[serde(
        default,
        deserialize_with = "crate::deserialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<f64>,
}

impl CreateRunRequest {
    /// A request for a new run in `project`, every other field left to the server's default.
    pub fn new(project: crate::ProjectName) -> CreateRunRequest {
        CreateRunRequest {
            project,
            id: None,
            name: None,
            config: None,
            tags: Vec::new(),
            notes: None,
            group: None,
            job_type: None,
            git: None,
            host: None,
            os: None,
            program: None,
            runtime: BTreeMap::new(),
            started_at: None,
        }
    }
}

/// `PATCH /api/v1/runs/{id}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRunRequest {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// New notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Config keys to set, merged into the stored config key by key (a `null` value removes
    /// the key); allowed while the run is running.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

/// `POST /api/v1/runs/{id}/tags`: adds one tag (adding a tag the run has is a no-op).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTagRequest {
    /// The tag, 1 to 128 bytes.
    pub tag: String,
}

/// `POST /api/v1/runs/{id}/finish`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRunRequest {
    /// finished, crashed or killed.
    pub state: RunState,
    /// The program's exit code.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why it ended, e.g. `early-terminated` (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it ended, Unix seconds or RFC 3339, for runs uploaded after the fact; between the
    /// run's start and now. Default: now.
    #[serde(
        default,
        deserialize_with = "crate::deserialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<f64>,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// State after the heartbeat.
    pub state: RunState,
    /// A user or a sweep asked this run to stop.
    pub stop_requested: bool,
}

/// A run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Run {
    /// 8-character id.
    pub id: crate::RunId,
    /// Project name.
    pub project: crate::ProjectName,
    /// Display name.
    pub name: String,
    /// Life-cycle state.
    pub state: RunState,
    /// Hyperparameters.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Tags.
    pub tags: Vec<String>,
    /// Free text.
    pub notes: String,
    /// Group.
    pub group: Option<String>,
    /// Job type.
    pub job_type: Option<String>,
    /// Source-control state.
    pub git: GitInfo,
    /// Host name.
    pub host: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Program.
    pub program: Option<String>,
    /// Runtime versions.
    pub runtime: BTreeMap<String, String>,
    /// Exit code, once finished.
    pub exit_code: Option<i32>,
    /// Username of the creator.
    pub created_by: String,
    /// Creation time.
    pub created_at: String,
    /// When it last (re)started.
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Last heartbeat.
    pub heartbeat_at: String,
    /// Last change.
    pub updated_at: String,
    /// A stop was requested.
    pub stop_requested: bool,
    /// Why it ended, when a reason was recorded (e.g. `early-terminated` by a sweep).
    #[serde(default)]
    pub end_reason: Option<String>,
    /// Latest value of every metric (or the value a client set).
    #[schema(value_type = Object)]
    pub summary: BTreeMap<String, MetricValue>,
    /// Key→value tags (MLflow's tags, logged through the MLflow API); `tags` holds the plain
    /// ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_values: BTreeMap<String, String>,
}
