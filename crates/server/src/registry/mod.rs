//! The model registry: registered models (unique names, governed by one project's roles),
//! numbered versions linked to an artifact version and a run, stages with approvals, aliases,
//! and a per-model history of every change (also written to the audit log).
//!
//! Changes to one model's versions are serialised by touching the model's row first in the
//! transaction (a row lock on PostgreSQL, the write lock on SQLite), so two racing promotions
//! with `archive_existing` leave exactly one version in Production.

pub mod routes;
mod store;

use std::collections::HashMap;

use wanllmdb_api_types::projects::Role;
use wanllmdb_api_types::registry::{
    ApprovalRequest, CreateModelVersionRequest, ModelEvent, ModelVersion, RegisterModelRequest,
    RegisteredModel, RegistryPolicy, SetModelAliasRequest, Stage, TransitionRequest,
    UpdateModelRequest, is_valid_model_name,
};

use crate::artifacts::Artifacts;
use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::{Actor, AuthUser};
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::projects::{ProjectAccess, Projects};
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::{Store, format_time, now_us};
use crate::tags;
use store::{Change, Editor, ModelRow, VersionRow};
use wanllmdb_api_types::{ProjectName, RunId};

/// Longest description or comment.
const MAX_TEXT: usize = 16 * 1024;

impl VersionRow {
    fn stage(&self) -> ApiResult<Stage> {
        Ok(known(
            Stage::parse(&self.stage),
            "model version",
            self.id,
            "stage",
            &self.stage,
        )?)
    }

    fn into_api(self, model: &str, aliases: Vec<String>) -> ApiResult<ModelVersion> {
        let artifact = match (&self.art_project, &self.art_name, self.art_version) {
            (Some(p), Some(a), Some(v)) => Some(format!("{p}/{a}:v{v}")),
            _ => None,
        };
        Ok(ModelVersion {
            stage: self.stage()?,
            model: model.to_string(),
            version: format!("v{}", self.version),
            artifact,
            run: self
                .run
                .map(|r| known(RunId::parse(&r).ok(), "model version", self.id, "run", &r))
                .transpose()?,
            description: self.description,
            metrics: serde_json::from_str(&self.metrics).unwrap_or_else(|_| serde_json::json!({})),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            aliases,
            created_by: self.created_by,
            created_at: format_time(self.created_at),
            approved_by: self.approved_by,
            approved_at: self.approved_at.map(format_time),
            warnings: Vec::new(),
        })
    }
}

fn check_text(what: &str, s: Option<&str>) -> ApiResult<()> {
    match s {
        Some(t) if t.len() > MAX_TEXT => Err(ApiError::invalid(format!(
            "{what} is longer than {MAX_TEXT} bytes"
        ))),
        _ => Ok(()),
    }
}

fn check_tags(tags: &[String]) -> ApiResult<Vec<String>> {
    tags::check(tags, 128)
}

/// `v3` or `3` → 3, or a 400 that says what a version looks like.
fn version_number(s: &str) -> ApiResult<i64> {
    wanllmdb_api_types::artifacts::parse_version_number(s).ok_or_else(|| {
        ApiError::invalid(format!(
            "{s:?} is not a version: use v1, v2, … (or 1, 2, …)"
        ))
    })
}

/// What an approval request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Approve the version for Production.
    Grant,
    /// Withdraw an earlier approval.
    Revoke,
}

/// The registry service.
pub struct Registry<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Registry<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    async fn audit(&self, actor: &Actor, client: &ClientInfo, ev: AuditEvent) {
        let mut ev = ev.client(client);
        if let Some(u) = &actor.user {
            ev = ev.user(u.id, &u.username);
        }
        audit::record(self.store(), ev).await;
    }

    /// The model and the caller's access to its project; 404 for those who cannot read it.
    async fn load(&self, actor: &Actor, name: &str) -> ApiResult<(ModelRow, ProjectAccess)> {
        let missing = || ApiError::not_found(format!("model {name}"));
        let row = store::find_model(self.store(), name)
            .await?
            .ok_or_else(missing)?;
        let access = Projects { state: self.state }
            .access_by_id(actor, row.project_id)
            .await?;
        access.require_read().map_err(|_| missing())?;
        Ok((row, access))
    }

    async fn load_with(&self, actor: &Actor, name: &str, min: Role) -> ApiResult<ModelRow> {
        let (row, access) = self.load(actor, name).await?;
        access.require(min)?;
        Ok(row)
    }

    async fn policy_of(&self, project_id: i64) -> ApiResult<RegistryPolicy> {
        Ok(store::policy(self.store(), project_id)
            .await?
            .unwrap_or_default())
    }

    async fn model_api(&self, row: ModelRow) -> ApiResult<RegisteredModel> {
        let policy = self.policy_of(row.project_id).await?;
        let production = store::production_numbers(self.store(), row.id).await?;
        Ok(RegisteredModel {
            approval_required: row.require_approval.unwrap_or(policy.require_approval),
            require_approval: row.require_approval,
            production: production.into_iter().map(|v| format!("v{v}")).collect(),
            name: row.name,
            project: row.project,
            description: row.description,
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            version_count: row.version_count,
            latest_version: row.latest.map(|v| format!("v{v}")),
            created_by: row.created_by,
            created_at: format_time(row.created_at),
            updated_at: format_time(row.updated_at),
        })
    }

    /// Registers a model in a project.
    pub async fn register(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        req: RegisterModelRequest,
    ) -> ApiResult<RegisteredModel> {
        if !is_valid_model_name(&req.name) {
            return Err(ApiError::invalid(format!(
                "model name {:?} is not valid: use 1 to 128 of A-Z a-z 0-9 . _ -",
                req.name
            )));
        }
        check_text("description", req.description.as_deref())?;
        let tags = check_tags(&req.tags)?;
        let access = Projects { state: self.state }
            .access(actor, &req.project)
            .await?;
        access.require_write()?;
        let user = actor.require_user()?;
        let tags = serde_json::to_string(&tags).unwrap_or_default();
        let model = store::NewModel {
            name: &req.name,
            project_id: access.id,
            description: req.description.as_deref().unwrap_or_default(),
            tags: &tags,
            require_approval: req.require_approval,
        };
        let change = Change {
            version: None,
            action: "registered",
            from: None,
            to: Some(req.project.to_string()),
            comment: req.description.as_deref(),
        };
        let res = store::insert_model(self.store(), &model, &editor(user), &change).await;
        match res {
            Err(ApiError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!(
                    "a model named {} already exists (model names are unique on the server)",
                    req.name
                )));
            }
            other => other?,
        }
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelRegister)
                .status(201)
                .resource(format!("model:{}", req.name))
                .metadata(serde_json::json!({"project": req.project})),
        )
        .await;
        self.get(actor, &req.name).await
    }

    /// One model.
    pub async fn get(&self, actor: &Actor, name: &str) -> ApiResult<RegisteredModel> {
        let (row, _) = self.load(actor, name).await?;
        self.model_api(row).await
    }

    /// Models the caller can read, optionally of one project and matching a search text.
    pub async fn list(
        &self,
        actor: &Actor,
        project: Option<&ProjectName>,
        search: Option<&str>,
    ) -> ApiResult<Vec<RegisteredModel>> {
        if let Some(p) = project {
            Projects { state: self.state }
                .access(actor, p)
                .await?
                .require_read()?;
        }
        let rows = store::visible_models(
            self.store(),
            actor.is_admin(),
            actor.user_id(),
            project.map(ProjectName::as_str),
            search,
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.model_api(r).await?);
        }
        Ok(out)
    }

    /// Changes a model's description, tags or approval setting.
    pub async fn update(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        req: UpdateModelRequest,
    ) -> ApiResult<RegisteredModel> {
        let policy_change = req.require_approval.is_some() || req.follow_project;
        // Loosening or tightening what Production needs is an admin's decision.
        let min = if policy_change {
            Role::Admin
        } else {
            Role::Member
        };
        let row = self.load_with(actor, name, min).await?;
        let user = actor.require_user()?;
        check_text("description", req.description.as_deref())?;
        let tags = req.tags.as_deref().map(check_tags).transpose()?;
        let approval = if req.follow_project {
            None
        } else {
            req.require_approval.or(row.require_approval)
        };
        let tags = tags.map(|t| serde_json::to_string(&t).unwrap_or_default());
        let change = Change {
            version: None,
            action: "updated",
            from: policy_change.then(|| approval_text(row.require_approval)),
            to: policy_change.then(|| approval_text(approval)),
            comment: req.description.as_deref(),
        };
        store::update_model(
            self.store(),
            row.id,
            req.description.as_deref(),
            tags.as_deref(),
            approval,
            &editor(user),
            &change,
        )
        .await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelUpdate)
                .status(200)
                .resource(format!("model:{name}"))
                .metadata(serde_json::json!({"require_approval": approval})),
        )
        .await;
        self.get(actor, name).await
    }

    /// Renames a model; its versions, aliases and history stay with it.
    pub async fn rename(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        new_name: &str,
    ) -> ApiResult<RegisteredModel> {
        if !is_valid_model_name(new_name) {
            return Err(ApiError::invalid(format!(
                "model name {new_name:?} is not valid: use 1 to 128 of A-Z a-z 0-9 . _ -"
            )));
        }
        let row = self.load_with(actor, name, Role::Admin).await?;
        let user = actor.require_user()?;
        let change = Change {
            version: None,
            action: "renamed",
            from: Some(name.to_string()),
            to: Some(new_name.to_string()),
            comment: None,
        };
        match store::rename_model(self.store(), row.id, new_name, &editor(user), &change).await {
            Err(ApiError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!(
                    "a model named {new_name} already exists (model names are unique on the server)"
                )));
            }
            other => other?,
        }
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelUpdate)
                .status(200)
                .resource(format!("model:{name}"))
                .metadata(serde_json::json!({"renamed_to": new_name})),
        )
        .await;
        self.get(actor, new_name).await
    }

    /// Deletes a model with its versions, aliases and history (the audit log keeps the trail).
    pub async fn delete(&self, actor: &Actor, client: &ClientInfo, name: &str) -> ApiResult<()> {
        let row = self.load_with(actor, name, Role::Admin).await?;
        store::delete_model(self.store(), row.id).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelDelete)
                .status(204)
                .resource(format!("model:{name}"))
                .metadata(serde_json::json!({"versions": row.version_count})),
        )
        .await;
        Ok(())
    }

    async fn versions_api(
        &self,
        actor: &Actor,
        model: &ModelRow,
        rows: Vec<VersionRow>,
    ) -> ApiResult<Vec<ModelVersion>> {
        let mut aliases: HashMap<i64, Vec<String>> = HashMap::new();
        for (v, a) in store::alias_targets(self.store(), model.id).await? {
            aliases.entry(v).or_default().push(a);
        }
        // A version may hold an artifact of another project; a reader who cannot read that
        // project does not learn its name.
        let mut readable: HashMap<i64, bool> = HashMap::from([(model.project_id, true)]);
        let mut out = Vec::with_capacity(rows.len());
        for mut r in rows {
            if let Some(project) = r.art_project_id {
                let ok = match readable.get(&project) {
                    Some(ok) => *ok,
                    None => {
                        let ok = Projects { state: self.state }
                            .access_by_id(actor, project)
                            .await
                            .is_ok_and(|a| a.require_read().is_ok());
                        readable.insert(project, ok);
                        ok
                    }
                };
                if !ok {
                    r.art_project = None;
                    r.art_name = None;
                    r.art_version = None;
                }
            }
            let a = aliases.remove(&r.id).unwrap_or_default();
            out.push(r.into_api(&model.name, a)?);
        }
        Ok(out)
    }

    /// Resolves `v3`/`3`, `latest`, `@alias`, or a stage name (the newest version in that
    /// stage).
    async fn resolve(&self, model: &ModelRow, selector: &str) -> ApiResult<VersionRow> {
        let row = if selector == "latest" {
            store::latest_version(self.store(), model.id).await?
        } else if let Some(alias) = selector.strip_prefix('@') {
            store::aliased_version(self.store(), model.id, alias).await?
        } else if let Some(stage) = Stage::parse(selector) {
            store::newest_in_stage(self.store(), model.id, stage).await?
        } else {
            let n = version_number(selector)?;
            store::numbered_version(self.store(), model.id, n).await?
        };
        row.ok_or_else(|| {
            ApiError::not_found(format!("version {selector} of model {}", model.name))
        })
    }

    /// Creates the next version of a model from an artifact version the caller can read.
    pub async fn create_version(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        req: CreateModelVersionRequest,
    ) -> ApiResult<ModelVersion> {
        let model = self.load_with(actor, name, Role::Member).await?;
        let user = actor.require_user()?;
        check_text("description", req.description.as_deref())?;
        let tags = check_tags(&req.tags)?;
        let metrics = match &req.metrics {
            None => serde_json::json!({}),
            Some(v @ serde_json::Value::Object(_)) => v.clone(),
            Some(_) => return Err(ApiError::invalid("metrics must be a JSON object")),
        };
        let (artifact_id, artifact_label) = match (&req.artifact, req.artifact_version_id) {
            (Some(a), None) => (self.artifact_version(actor, &model, a).await?, a.clone()),
            (None, Some(id)) => {
                let v = Artifacts { state: self.state }
                    .version_by_id_for(actor, id)
                    .await?;
                (
                    v.id,
                    format!(
                        "{}/{}:{}",
                        v.project,
                        v.artifact,
                        v.version.unwrap_or_default()
                    ),
                )
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "give the artifact version once: `artifact` (NAME:VER) or `artifact_version_id`, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "say which artifact version holds the model: `artifact` (NAME:v3, NAME:ALIAS or PROJECT/NAME:v3) or `artifact_version_id`",
                ));
            }
        };
        let run_pk = match &req.run {
            Some(run) => Some(Runs { state: self.state }.load(actor, run).await?.0.pk),
            None => None,
        };
        let metrics = metrics.to_string();
        let tags = serde_json::to_string(&tags).unwrap_or_default();
        let version = store::NewVersion {
            artifact_version_id: artifact_id,
            run_pk,
            description: req.description.as_deref(),
            metrics: &metrics,
            tags: &tags,
            artifact_label: &artifact_label,
        };
        let number = store::insert_version(self.store(), model.id, &version, &editor(user)).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelVersionCreate)
                .status(201)
                .resource(format!("model:{name}:v{number}"))
                .metadata(serde_json::json!({"artifact": artifact_label, "run": req.run})),
        )
        .await;
        match req.stage {
            None | Some(Stage::None) => self.version(actor, name, &number.to_string()).await,
            Some(stage) => {
                self.stage_new_version(actor, client, &model, number, stage)
                    .await
            }
        }
    }

    /// Moves a version just created to the stage its request named, under the transition
    /// rules. A promotion to Production that needs an approval leaves it in None, with a
    /// warning that says what to do.
    async fn stage_new_version(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        model: &ModelRow,
        number: i64,
        stage: Stage,
    ) -> ApiResult<ModelVersion> {
        let name = &model.name;
        if stage == Stage::Production {
            let row = self.resolve(model, &number.to_string()).await?;
            if let Err(ApiError::Conflict(why)) = self.check_approval(model, &row).await {
                let mut v = self.version(actor, name, &number.to_string()).await?;
                v.warnings.push(format!(
                    "created in stage None, not Production: {why}; then move it with `wanllmdb model transition {name} v{number} --to Production`"
                ));
                return Ok(v);
            }
        }
        let req = TransitionRequest {
            to: stage,
            comment: Some("stage given when the version was created".into()),
            archive_existing: false,
        };
        self.transition(actor, client, name, &number.to_string(), req)
            .await
    }

    /// The id of the artifact version `ART:SPEC` (in the model's project) or
    /// `PROJECT/ART:SPEC`, checking the caller can read it.
    async fn artifact_version(
        &self,
        actor: &Actor,
        model: &ModelRow,
        reference: &str,
    ) -> ApiResult<i64> {
        let (project, rest) = match reference.split_once('/') {
            Some((p, r)) => (ProjectName::parse(p)?, r),
            None => (model.project.clone(), reference),
        };
        let (artifact, spec) = rest.split_once(':').unwrap_or((rest, "latest"));
        if artifact.is_empty() || spec.is_empty() {
            return Err(ApiError::invalid(format!(
                "artifact {reference:?} should look like NAME:v3, NAME:ALIAS or PROJECT/NAME:v3"
            )));
        }
        let v = Artifacts { state: self.state }
            .version(actor, &project, artifact, spec)
            .await?;
        Ok(v.id)
    }

    /// Versions of a model, newest first, optionally in one stage.
    pub async fn versions(
        &self,
        actor: &Actor,
        name: &str,
        stage: Option<&str>,
    ) -> ApiResult<Vec<ModelVersion>> {
        let (model, _) = self.load(actor, name).await?;
        let stage = stage
            .map(|s| {
                Stage::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unknown stage {s:?}: use None, Staging, Production or Archived"
                    ))
                })
            })
            .transpose()?;
        let rows = store::versions(self.store(), model.id, stage).await?;
        self.versions_api(actor, &model, rows).await
    }

    /// One version by number, `latest`, `@alias` or stage.
    pub async fn version(
        &self,
        actor: &Actor,
        name: &str,
        selector: &str,
    ) -> ApiResult<ModelVersion> {
        self.version_in(actor, name, selector, None).await
    }

    /// One version; with a stage, `latest` means the newest version in that stage.
    pub async fn version_in(
        &self,
        actor: &Actor,
        name: &str,
        selector: &str,
        stage: Option<&str>,
    ) -> ApiResult<ModelVersion> {
        let (model, _) = self.load(actor, name).await?;
        let row = match stage {
            None => self.resolve(&model, selector).await?,
            Some(s) if selector == "latest" => {
                let st = Stage::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unknown stage {s:?}: use None, Staging, Production or Archived"
                    ))
                })?;
                self.resolve(&model, st.as_str()).await?
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "stage= only goes with versions/latest (the newest version in that stage), not with {selector:?}"
                )));
            }
        };
        let mut v = self.versions_api(actor, &model, vec![row]).await?;
        v.pop()
            .ok_or_else(|| ApiError::Internal("version vanished".into()))
    }

    /// Deletes a version (its aliases go with it).
    pub async fn delete_version(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        version: &str,
    ) -> ApiResult<()> {
        let model = self.load_with(actor, name, Role::Admin).await?;
        let user = actor.require_user()?;
        let row = self
            .resolve(&model, &version_number(version)?.to_string())
            .await?;
        let change = Change {
            version: Some(row.version),
            action: "version_deleted",
            from: Some(row.stage.clone()),
            to: None,
            comment: None,
        };
        store::delete_version(self.store(), model.id, row.id, &editor(user), &change).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelVersionDelete)
                .status(204)
                .resource(format!("model:{name}:v{}", row.version))
                .metadata(serde_json::json!({"stage": row.stage})),
        )
        .await;
        Ok(())
    }

    /// Moves a version to another stage. Into Production it needs a valid approval when the
    /// policy says so; `archive_existing` archives the versions in Production in the same step.
    pub async fn transition(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        version: &str,
        req: TransitionRequest,
    ) -> ApiResult<ModelVersion> {
        let model = self.load_with(actor, name, Role::Member).await?;
        let user = actor.require_user()?;
        check_text("comment", req.comment.as_deref())?;
        let number = version_number(version)?;
        let row = self.resolve(&model, &number.to_string()).await?;
        if req.to == Stage::Production {
            self.check_approval(&model, &row).await?;
        }
        let t = store::Transition {
            model: name,
            version_id: row.id,
            number,
            to: req.to,
            archive_existing: req.archive_existing,
            comment: req.comment.as_deref(),
            approved_by: row.approved_by.as_deref(),
        };
        let archived = store::transition(self.store(), model.id, &t, &editor(user)).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelTransition)
                .status(200)
                .resource(format!("model:{name}:v{number}"))
                .metadata(serde_json::json!({"from": row.stage, "to": req.to.as_str(), "comment": req.comment, "archived": archived})),
        )
        .await;
        self.version(actor, name, &number.to_string()).await
    }

    /// Refuses a promotion to Production without a valid approval, naming who can approve.
    async fn check_approval(&self, model: &ModelRow, row: &VersionRow) -> ApiResult<()> {
        let policy = self.policy_of(model.project_id).await?;
        let required = model.require_approval.unwrap_or(policy.require_approval);
        if !required || row.approved_by.is_some() {
            return Ok(());
        }
        let mut who = store::approvers(self.store(), model.project_id).await?;
        if !policy.allow_self_approval
            && let Some(creator) = &row.created_by
        {
            who.retain(|u| u != creator);
        }
        let who = if who.is_empty() {
            "no one yet: add an owner or admin to the project who did not create this version"
                .to_string()
        } else {
            who.join(", ")
        };
        Err(ApiError::Conflict(format!(
            "v{} of model {} is not approved for Production; it can be approved by a project owner or admin other than its creator ({who}) with `wanllmdb model approve {} v{}`",
            row.version, model.name, model.name, row.version
        )))
    }

    /// Approves a version for Production, or revokes its approval (project owners and
    /// admins; approval not by the version's creator unless the project allows it).
    pub async fn approve(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        version: &str,
        req: &ApprovalRequest,
        change: Approval,
    ) -> ApiResult<ModelVersion> {
        let comment = req.comment.as_deref();
        let approved_by = req.approved_by.as_deref();
        let revoke = change == Approval::Revoke;
        let model = self.load_with(actor, name, Role::Admin).await?;
        let user = actor.require_user()?;
        if let Some(who) = approved_by
            && who != user.username
            && who != user.id.to_string()
        {
            return Err(ApiError::Forbidden(format!(
                "approved_by is {who:?}, but approvals are recorded under the caller ({}); each approver approves with their own credentials",
                user.username
            )));
        }
        check_text("comment", comment)?;
        let number = version_number(version)?;
        let row = self.resolve(&model, &number.to_string()).await?;
        if !revoke {
            let policy = self.policy_of(model.project_id).await?;
            if !policy.allow_self_approval && row.creator_id == Some(user.id) {
                return Err(ApiError::Forbidden(format!(
                    "you created v{number} of model {name}; another owner or admin of project {} must approve it (four eyes)",
                    model.project
                )));
            }
        } else if row.approved_by.is_none() {
            return Err(ApiError::Conflict(format!(
                "v{number} of model {name} is not approved; there is nothing to revoke"
            )));
        }
        let change = Change {
            version: Some(number),
            action: if revoke {
                "approval_revoked"
            } else {
                "approved"
            },
            from: row.approved_by.clone(),
            to: (!revoke).then(|| user.username.clone()),
            comment,
        };
        store::set_approval(
            self.store(),
            model.id,
            row.id,
            !revoke,
            &editor(user),
            &change,
        )
        .await?;
        let event = if revoke {
            AuditAction::ModelApprovalRevoke
        } else {
            AuditAction::ModelApprove
        };
        self.audit(
            actor,
            client,
            AuditEvent::new(event)
                .status(200)
                .resource(format!("model:{name}:v{number}"))
                .metadata(serde_json::json!({"comment": comment})),
        )
        .await;
        self.version(actor, name, &number.to_string()).await
    }

    /// Points an alias at a version (moving it from another).
    pub async fn set_alias(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        alias: &str,
        req: SetModelAliasRequest,
    ) -> ApiResult<ModelVersion> {
        let model = self.load_with(actor, name, Role::Member).await?;
        let user = actor.require_user()?;
        check_alias(alias)?;
        check_text("comment", req.comment.as_deref())?;
        let number = version_number(&req.version)?;
        let row = self.resolve(&model, &number.to_string()).await?;
        store::point_alias(
            self.store(),
            model.id,
            alias,
            row.id,
            number,
            req.comment.as_deref(),
            &editor(user),
        )
        .await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelAliasSet)
                .status(200)
                .resource(format!("model:{name}:v{number}"))
                .metadata(serde_json::json!({"alias": alias})),
        )
        .await;
        self.version(actor, name, &number.to_string()).await
    }

    /// Removes an alias.
    pub async fn remove_alias(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        name: &str,
        alias: &str,
    ) -> ApiResult<()> {
        let model = self.load_with(actor, name, Role::Member).await?;
        let user = actor.require_user()?;
        let row = self
            .resolve(&model, &format!("@{alias}"))
            .await
            .map_err(|_| ApiError::not_found(format!("alias {alias} of model {name}")))?;
        let change = Change {
            version: Some(row.version),
            action: "alias_removed",
            from: Some(alias.to_string()),
            to: None,
            comment: None,
        };
        store::delete_alias(self.store(), model.id, alias, &editor(user), &change).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::ModelAliasRemove)
                .status(204)
                .resource(format!("model:{name}:v{}", row.version))
                .metadata(serde_json::json!({"alias": alias})),
        )
        .await;
        Ok(())
    }

    /// A model's history, oldest first, optionally of one version.
    pub async fn history(
        &self,
        actor: &Actor,
        name: &str,
        version: Option<&str>,
    ) -> ApiResult<Vec<ModelEvent>> {
        let (model, _) = self.load(actor, name).await?;
        let number = version.map(version_number).transpose()?;
        let rows = store::history(self.store(), model.id, number).await?;
        Ok(rows
            .into_iter()
            .map(|e| ModelEvent {
                id: e.id,
                action: e.action,
                version: e.version.map(|n| format!("v{n}")),
                from: e.from_value,
                to: e.to_value,
                comment: e.comment,
                user: e.username,
                at: format_time(e.at),
            })
            .collect())
    }

    /// A project's registry policy.
    pub async fn policy(&self, actor: &Actor, project: &ProjectName) -> ApiResult<RegistryPolicy> {
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require_read()?;
        self.policy_of(access.id).await
    }

    /// Sets a project's registry policy (project owners and admins).
    pub async fn set_policy(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        project: &ProjectName,
        policy: RegistryPolicy,
    ) -> ApiResult<RegistryPolicy> {
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require(Role::Admin)?;
        store::set_policy(self.store(), access.id, &policy, now_us()).await?;
        self.audit(
            actor,
            client,
            AuditEvent::new(AuditAction::RegistryPolicyChange)
                .status(200)
                .resource(format!("project:{project}"))
                .metadata(serde_json::json!({"require_approval": policy.require_approval, "allow_self_approval": policy.allow_self_approval})),
        )
        .await;
        Ok(policy)
    }
}

/// The editor of a change: the signed-in caller, now.
fn editor(user: &AuthUser) -> Editor<'_> {
    Editor {
        user_id: user.id,
        username: &user.username,
        now: now_us(),
    }
}

fn approval_text(v: Option<bool>) -> String {
    match v {
        Some(true) => "approval required".into(),
        Some(false) => "no approval required".into(),
        None => "project policy".into(),
    }
}

fn check_alias(alias: &str) -> ApiResult<()> {
    if !wanllmdb_api_types::artifacts::is_valid_word(alias)
        || wanllmdb_api_types::artifacts::parse_version_number(alias).is_some()
        || Stage::parse(alias).is_some()
    {
        return Err(ApiError::invalid(format!(
            "alias {alias:?} is not valid: use 1 to 64 of A-Z a-z 0-9 . _ -, not a version (v3) or a stage name"
        )));
    }
    Ok(())
}
