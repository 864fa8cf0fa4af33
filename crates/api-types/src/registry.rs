//! The model registry: registered models, their versions, stages, approvals, aliases and the
//! history of every change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a model version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Stage {
    /// Registered, not staged.
    None,
    /// Being evaluated.
    Staging,
    /// Serving.
    Production,
    /// Retired.
    Archived,
}

impl Stage {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Parses a stage name, ignoring case.
    pub fn parse(s: &str) -> Option<Stage> {
        [
            Stage::None,
            Stage::Staging,
            Stage::Production,
            Stage::Archived,
        ]
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// Model names: 1 to 128 characters of `[A-Za-z0-9._-]`, as project names.
pub fn is_valid_model_name(s: &str) -> bool {
    crate::is_valid_project_name(s)
}

/// `POST /api/v1/models`: registers a model in a project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModelRequest {
    /// Name, unique on the server.
    pub name: String,
    /// The project whose roles govern the model.
    pub project: crate::ProjectName,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether Production needs an approval; null follows the project's policy.
    #[serde(default)]
    pub require_approval: Option<bool>,
}

/// `PATCH /api/v1/models/{name}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelRequest {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Whether Production needs an approval for this model (`null` inside `Some` is not
    /// expressible in JSON merge; use `follow_project: true` to go back to the project's policy).
    #[serde(default)]
    pub require_approval: Option<bool>,
    /// Drop the model's own approval setting and follow the project's policy.
    #[serde(default)]
    pub follow_project: bool,
}

/// A registered model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredModel {
    /// Name.
    pub name: String,
    /// Project.
    pub project: crate::ProjectName,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The model's own approval setting (null: the project's policy applies).
    pub require_approval: Option<bool>,
    /// The policy in effect: whether Production needs an approval.
    pub approval_required: bool,
    /// Number of versions.
    pub version_count: i64,
    /// Newest version number, `v3`.
    pub latest_version: Option<String>,
    /// Versions in Production, newest first.
    pub production: Vec<String>,
    /// Who registered it.
    pub created_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `POST /api/v1/models/{name}/versions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModelVersionRequest {
    /// The artifact version holding the files: `ART:v3` or `ART:ALIAS` in the model's project,
    /// or `PROJECT/ART:VER` in another project the caller can read. Give this or
    /// `artifact_version_id`.
    #[serde(default)]
    pub artifact: Option<String>,
    /// The artifact version by its numeric id (an `ArtifactVersion`'s `id`).
    #[serde(default)]
    pub artifact_version_id: Option<i64>,
    /// The run that trained it (also accepted as `run_id`).
    #[serde(default, alias = "run_id")]
    pub run: Option<crate::RunId>,
    /// A stage to move the new version to, under the same rules as a transition. When
    /// Production needs an approval that does not exist yet, the version is created in
    /// `None` and the answer's `warnings` say to approve it, then transition.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Evaluation metrics: a JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metrics: Option<serde_json::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A model version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelVersion {
    /// Model name.
    pub model: String,
    /// `v1`, `v2`, …
    pub version: String,
    /// Stage.
    pub stage: Stage,
    /// The artifact version holding the files, `PROJECT/ART:vN`; null if it was deleted.
    pub artifact: Option<String>,
    /// The run that trained it.
    pub run: Option<crate::RunId>,
    /// Free text.
    pub description: String,
    /// Evaluation metrics.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// Tags.
    pub tags: Vec<String>,
    /// Aliases pointing here.
    pub aliases: Vec<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Who approved it for Production (null when not approved, or revoked).
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<String>,
    /// What did not happen as asked (only on the answer to creating a version, e.g. a stage
    /// that needs an approval first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `POST /api/v1/models/{name}/versions/{version}/transition`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The stage to move to (also accepted as `to_stage`).
    #[serde(alias = "to_stage")]
    pub to: Stage,
    /// Why (kept in the history).
    #[serde(default)]
    pub comment: Option<String>,
    /// When moving to Production or Staging: archive the versions in that stage now.
    #[serde(default)]
    pub archive_existing: bool,
}

/// `POST /api/v1/models/{name}/versions/{version}/approval` (approve) and `DELETE` (revoke).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// Why (kept in the history).
    #[serde(default)]
    pub comment: Option<String>,
    /// Who approves: must be the caller, by username or numeric user id (403 otherwise).
    /// Optional; the approver is always the caller.
    #[serde(default, deserialize_with = "crate::deserialize_name_or_id")]
    #[schema(value_type = Option<String>)]
    pub approved_by: Option<String>,
}

/// `PUT /api/v1/models/{name}/aliases/{alias}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetModelAliasRequest {
    /// The version to point at (`v3` or `3`).
    pub version: String,
    /// Why (kept in the history).
    #[serde(default)]
    pub comment: Option<String>,
}

/// One entry of a model's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelEvent {
    /// Ascending id.
    pub id: i64,
    /// `registered`, `updated`, `version_created`, `transition`, `approved`,
    /// `approval_revoked`, `alias_set`, `alias_removed`, `version_deleted`, `renamed`.
    pub action: String,
    /// The version concerned, if any.
    pub version: Option<String>,
    /// Before (a stage, the version an alias left, …).
    pub from: Option<String>,
    /// After.
    pub to: Option<String>,
    /// The comment given.
    pub comment: Option<String>,
    /// Who.
    pub user: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// A project's registry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryPolicy {
    /// Production needs an approval unless a model says otherwise (default true).
    pub require_approval: bool,
    /// The creator of a version may approve it (default false: four eyes).
    pub allow_self_approval: bool,
}

impl Default for RegistryPolicy {
    fn default() -> Self {
        RegistryPolicy {
            require_approval: true,
            allow_self_approval: false,
        }
    }
}
