//! The model registry: registered models (unique names, governed by one project's roles),
//! numbered versions linked to an artifact version and a run, stages with approvals, aliases,
//! and a per-model history of every change (also written to the audit log).
//!
//! Changes to one model's versions are serialised by touching the model's row first in the
//! transaction (a row lock on PostgreSQL, the write lock on SQLite), so two racing promotions
//! with `archive_existing` leave exactly one version in Production.

pub mod routes;

use std::collections::HashMap;

use wanllmdb_api_types::projects::Role;
use wanllmdb_api_types::registry::{
    ApprovalRequest, CreateModelVersionRequest, ModelEvent, ModelVersion, RegisterModelRequest,
    RegisteredModel, RegistryPolicy, SetModelAliasRequest, Stage, TransitionRequest,
    UpdateModelRequest, is_valid_model_name,
};

use crate::app::AppState;
use crate::artifacts::Artifacts;
use crate::audit::{self, AuditEvent};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::projects::{ProjectAccess, Projects};
use crate::runs::Runs;
use crate::store::{Store, format_time, now_us};
use crate::tags;
use crate::{on_backend, with_tx};

/// Whether moving a version from stage `from` to `to` voids its approval for Production.
fn voids_approval(from: &str, to: Stage) -> bool {
    (from == Stage::Production.as_str() && to != Stage::Production)
        || matches!(to, Stage::Staging | Stage::None)
}

/// Longest description or comment.
const MAX_TEXT: usize = 16 * 1024;

const MODEL_SELECT: &str = "SELECT m.id, m.name, m.project_id, p.name AS project, m.description, m.tags, \
     m.require_approval, u.username AS created_by, m.created_at, m.updated_at, \
     (SELECT COUNT(*) FROM model_versions v WHERE v.model_id = m.id) AS version_count, \
     (SELECT MAX(v.version) FROM model_versions v WHERE v.model_id = m.id) AS latest \
     FROM registered_models m JOIN projects p ON p.id = m.project_id LEFT JOIN users u ON u.id = m.created_by";

const VERSION_SELECT: &str = "SELECT v.id, v.version, v.stage, v.description, v.metrics, v.tags, \
     v.created_by AS creator_id, cu.username AS created_by, v.created_at, au.username AS approved_by, v.approved_at, \
     r.id AS run, ap.id AS art_project_id, ap.name AS art_project, a.name AS art_name, av.version AS art_version \
     FROM model_versions v LEFT JOIN users cu ON cu.id = v.created_by LEFT JOIN users au ON au.id = v.approved_by \
     LEFT JOIN runs r ON r.pk = v.run_pk LEFT JOIN artifact_versions av ON av.id = v.artifact_version_id \
     LEFT JOIN artifacts a ON a.id = av.artifact_id LEFT JOIN projects ap ON ap.id = a.project_id";

/// Appends a history entry inside a transaction: model id, version, action, from, to,
/// comment, username, time.
const HISTORY_SQL: &str = "INSERT INTO model_history (model_id, version, action, from_value, to_value, comment, username, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// One history entry, before it is written.
struct Change<'a> {
    version: Option<i64>,
    action: &'static str,
    from: Option<String>,
    to: Option<String>,
    comment: Option<&'a str>,
}

/// Writes a [`Change`] with `$tx` (inside `with_tx!`).
macro_rules! record_change {
    ($tx:ident, $model:expr, $user:expr, $now:expr, $c:expr) => {{
        let c = &$c;
        sqlx::query(HISTORY_SQL)
            .bind($model)
            .bind(c.version)
            .bind(c.action)
            .bind(&c.from)
            .bind(&c.to)
            .bind(c.comment)
            .bind($user)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// A model as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ModelRow {
    id: i64,
    name: String,
    project_id: i64,
    project: String,
    description: String,
    tags: String,
    require_approval: Option<bool>,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    version_count: i64,
    latest: Option<i64>,
}

/// A history entry as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct EventRow {
    id: i64,
    version: Option<i64>,
    action: String,
    from_value: Option<String>,
    to_value: Option<String>,
    comment: Option<String>,
    username: Option<String>,
    at: i64,
}

/// A version as stored, with the names it links to.
#[derive(Debug, Clone, sqlx::FromRow)]
struct VersionRow {
    id: i64,
    version: i64,
    stage: String,
    description: String,
    metrics: String,
    tags: String,
    creator_id: Option<i64>,
    created_by: Option<String>,
    created_at: i64,
    approved_by: Option<String>,
    approved_at: Option<i64>,
    run: Option<String>,
    art_project_id: Option<i64>,
    art_project: Option<String>,
    art_name: Option<String>,
    art_version: Option<i64>,
}

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
            run: self.run,
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

/// The one parameter (`$2`) of a version query's filter.
#[derive(Debug, Clone, Copy)]
enum Arg<'a> {
    None,
    Text(&'a str),
    Int(i64),
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

    async fn find(&self, name: &str) -> ApiResult<Option<ModelRow>> {
        let sql = format!("{MODEL_SELECT} WHERE m.name = $1");
        Ok(on_backend!(self.store(), read, |pool| {
            sqlx::query_as::<_, ModelRow>(sqlx::AssertSqlSafe(sql))
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The model and the caller's access to its project; 404 for those who cannot read it.
    async fn load(&self, actor: &Actor, name: &str) -> ApiResult<(ModelRow, ProjectAccess)> {
        let missing = || ApiError::not_found(format!("model {name}"));
        let row = self.find(name).await?.ok_or_else(missing)?;
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
        const SELECT_REGISTRY_POLICIES: &str = "SELECT require_approval, allow_self_approval FROM registry_policies WHERE project_id = $1";
        let row: Option<(bool, bool)> = on_backend!(self.store(), read, |pool| {
            sqlx::query_as(SELECT_REGISTRY_POLICIES)
                .bind(project_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row
            .map(|(require_approval, allow_self_approval)| RegistryPolicy {
                require_approval,
                allow_self_approval,
            })
            .unwrap_or_default())
    }

    async fn model_api(&self, row: ModelRow) -> ApiResult<RegisteredModel> {
        const SELECT_MODEL_VERSIONS: &str = "SELECT version FROM model_versions WHERE model_id = $1 AND stage = 'Production' ORDER BY version DESC";
        let policy = self.policy_of(row.project_id).await?;
        let production: Vec<(i64,)> = on_backend!(self.store(), read, |pool| {
            sqlx::query_as(SELECT_MODEL_VERSIONS)
                .bind(row.id)
                .fetch_all(pool)
                .await?
        });
        Ok(RegisteredModel {
            approval_required: row.require_approval.unwrap_or(policy.require_approval),
            require_approval: row.require_approval,
            production: production.into_iter().map(|(v,)| format!("v{v}")).collect(),
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
        const INSERT_REGISTERED_MODELS: &str = "INSERT INTO registered_models (name, project_id, description, tags, require_approval, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
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
        let now = now_us();
        let res: ApiResult<()> = async {
            with_tx!(self.store(), |tx| {
                let id: i64 = sqlx::query_scalar(INSERT_REGISTERED_MODELS)
                    .bind(&req.name)
                    .bind(access.id)
                    .bind(req.description.clone().unwrap_or_default())
                    .bind(serde_json::to_string(&tags).unwrap_or_default())
                    .bind(req.require_approval)
                    .bind(user.id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                record_change!(
                    tx,
                    id,
                    &user.username,
                    now,
                    Change {
                        version: None,
                        action: "registered",
                        from: None,
                        to: Some(req.project.clone()),
                        comment: req.description.as_deref()
                    }
                );
            });
            Ok(())
        }
        .await;
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
            AuditEvent::new("model_register", "registry", "info")
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
        project: Option<&str>,
        search: Option<&str>,
    ) -> ApiResult<Vec<RegisteredModel>> {
        let mut sql = format!(
            "{MODEL_SELECT} WHERE (p.visibility = 'public' OR $1 OR EXISTS (SELECT 1 FROM project_members pm WHERE pm.project_id = p.id AND pm.user_id = $2))"
        );
        if let Some(p) = project {
            Projects { state: self.state }
                .access(actor, p)
                .await?
                .require_read()?;
            sql.push_str(" AND p.name = $3");
        } else {
            sql.push_str(" AND $3 = $3");
        }
        let pattern = search.map(|s| {
            format!(
                "%{}%",
                s.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        sql.push_str(" AND ($4 IS NULL OR LOWER(m.name) LIKE $4 ESCAPE '\\' OR LOWER(m.description) LIKE $4 ESCAPE '\\') ORDER BY m.name LIMIT 1000");
        let rows: Vec<ModelRow> = on_backend!(self.store(), read, |pool| {
            sqlx::query_as::<_, ModelRow>(sqlx::AssertSqlSafe(sql))
                .bind(actor.is_admin())
                .bind(actor.user_id().unwrap_or(-1))
                .bind(project.unwrap_or_default())
                .bind(pattern)
                .fetch_all(pool)
                .await?
        });
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
        const UPDATE_REGISTERED_MODELS: &str = "UPDATE registered_models SET description = COALESCE($1, description), tags = COALESCE($2, tags), require_approval = $3, updated_at = $4 WHERE id = $5";
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
        let now = now_us();
        with_tx!(self.store(), |tx| {
            sqlx::query(UPDATE_REGISTERED_MODELS)
                .bind(&req.description)
                .bind(tags.map(|t| serde_json::to_string(&t).unwrap_or_default()))
                .bind(approval)
                .bind(now)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            let change = Change {
                version: None,
                action: "updated",
                from: policy_change.then(|| approval_text(row.require_approval)),
                to: policy_change.then(|| approval_text(approval)),
                comment: req.description.as_deref(),
            };
            record_change!(tx, row.id, &user.username, now, change);
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_update", "registry", "info")
                .status(200)
                .resource(format!("model:{name}"))
                .metadata(serde_json::json!({"require_approval": approval})),
        )
        .await;
        self.get(actor, name).await
    }

    /// Deletes a model with its versions, aliases and history (the audit log keeps the trail).
    pub async fn delete(&self, actor: &Actor, client: &ClientInfo, name: &str) -> ApiResult<()> {
        let row = self.load_with(actor, name, Role::Admin).await?;
        on_backend!(self.store(), write, |pool| {
            sqlx::query("DELETE FROM registered_models WHERE id = $1")
                .bind(row.id)
                .execute(pool)
                .await?;
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_delete", "registry", "warning")
                .status(204)
                .resource(format!("model:{name}"))
                .metadata(serde_json::json!({"versions": row.version_count})),
        )
        .await;
        Ok(())
    }

    async fn version_rows(
        &self,
        model_id: i64,
        filter: &str,
        arg: Arg<'_>,
    ) -> ApiResult<Vec<VersionRow>> {
        let sql = format!("{VERSION_SELECT} WHERE v.model_id = $1 {filter}");
        Ok(on_backend!(self.store(), read, |pool| {
            let q = sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(sql)).bind(model_id);
            let q = match arg {
                Arg::None => q,
                Arg::Text(t) => q.bind(t.to_string()),
                Arg::Int(n) => q.bind(n),
            };
            q.fetch_all(pool).await?
        }))
    }

    async fn aliases(&self, model_id: i64) -> ApiResult<HashMap<i64, Vec<String>>> {
        let rows: Vec<(i64, String)> = on_backend!(self.store(), read, |pool| {
            sqlx::query_as(
                "SELECT version_id, alias FROM model_aliases WHERE model_id = $1 ORDER BY alias",
            )
            .bind(model_id)
            .fetch_all(pool)
            .await?
        });
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        for (v, a) in rows {
            out.entry(v).or_default().push(a);
        }
        Ok(out)
    }

    async fn versions_api(
        &self,
        actor: &Actor,
        model: &ModelRow,
        rows: Vec<VersionRow>,
    ) -> ApiResult<Vec<ModelVersion>> {
        let mut aliases = self.aliases(model.id).await?;
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
        let rows = if selector == "latest" {
            self.version_rows(model.id, "ORDER BY v.version DESC LIMIT 1", Arg::None)
                .await?
        } else if let Some(alias) = selector.strip_prefix('@') {
            self.version_rows(model.id, "AND v.id = (SELECT al.version_id FROM model_aliases al WHERE al.model_id = v.model_id AND al.alias = $2)", Arg::Text(alias)).await?
        } else if let Some(stage) = Stage::parse(selector) {
            self.version_rows(
                model.id,
                "AND v.stage = $2 ORDER BY v.version DESC LIMIT 1",
                Arg::Text(stage.as_str()),
            )
            .await?
        } else {
            let n = version_number(selector)?;
            self.version_rows(model.id, "AND v.version = $2", Arg::Int(n))
                .await?
        };
        rows.into_iter().next().ok_or_else(|| {
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
        const INSERT_MODEL_VERSIONS: &str = "INSERT INTO model_versions (model_id, version, artifact_version_id, run_pk, description, metrics, tags, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
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
        let now = now_us();
        let number: i64 = with_tx!(self.store(), |tx| {
            sqlx::query("UPDATE registered_models SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(model.id)
                .execute(&mut *tx)
                .await?;
            let n: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = $1",
            )
            .bind(model.id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(INSERT_MODEL_VERSIONS)
                .bind(model.id)
                .bind(n)
                .bind(artifact_id)
                .bind(run_pk)
                .bind(req.description.clone().unwrap_or_default())
                .bind(metrics.to_string())
                .bind(serde_json::to_string(&tags).unwrap_or_default())
                .bind(user.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            record_change!(
                tx,
                model.id,
                &user.username,
                now,
                Change {
                    version: Some(n),
                    action: "version_created",
                    from: None,
                    to: Some(artifact_label.clone()),
                    comment: req.description.as_deref()
                }
            );
            n
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_version_create", "registry", "info")
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
            Some((p, r)) => (p.to_string(), r),
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
        let rows = match stage {
            Some(s) => {
                let st = Stage::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unknown stage {s:?}: use None, Staging, Production or Archived"
                    ))
                })?;
                self.version_rows(
                    model.id,
                    "AND v.stage = $2 ORDER BY v.version DESC",
                    Arg::Text(st.as_str()),
                )
                .await?
            }
            None => {
                self.version_rows(model.id, "ORDER BY v.version DESC", Arg::None)
                    .await?
            }
        };
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
        let now = now_us();
        with_tx!(self.store(), |tx| {
            sqlx::query("DELETE FROM model_versions WHERE id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            record_change!(
                tx,
                model.id,
                &user.username,
                now,
                Change {
                    version: Some(row.version),
                    action: "version_deleted",
                    from: Some(row.stage.clone()),
                    to: None,
                    comment: None
                }
            );
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_version_delete", "registry", "warning")
                .status(204)
                .resource(format!("model:{name}:v{}", row.version))
                .metadata(serde_json::json!({"stage": row.stage})),
        )
        .await;
        Ok(())
    }

    /// Usernames of those who may approve versions of a project's models.
    async fn approvers(&self, project_id: i64) -> ApiResult<Vec<String>> {
        const SELECT_PROJECT_MEMBERS: &str = "SELECT u.username FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 AND m.role IN ('owner', 'admin') ORDER BY u.username";
        let rows: Vec<(String,)> = on_backend!(self.store(), read, |pool| {
            sqlx::query_as(SELECT_PROJECT_MEMBERS)
                .bind(project_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(u,)| u).collect())
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
        const SELECT_MODEL_VERSIONS: &str = "SELECT v.version, u.username FROM model_versions v LEFT JOIN users u ON u.id = v.approved_by WHERE v.model_id = $1 AND v.stage = 'Production' AND v.id <> $2 ORDER BY v.version";
        const UPDATE_MODEL_VERSIONS: &str = "UPDATE model_versions SET stage = 'Archived', approved_by = NULL, approved_at = NULL, updated_at = $1 WHERE model_id = $2 AND version = $3";
        const VOID_APPROVAL: &str = "UPDATE model_versions SET approved_by = NULL, approved_at = NULL WHERE id = $1 AND approved_by IS NOT NULL";
        let model = self.load_with(actor, name, Role::Member).await?;
        let user = actor.require_user()?;
        check_text("comment", req.comment.as_deref())?;
        let number = version_number(version)?;
        let row = self.resolve(&model, &number.to_string()).await?;
        if req.to == Stage::Production {
            self.check_approval(&model, &row).await?;
        }
        let now = now_us();
        let archived: Vec<i64> = with_tx!(self.store(), |tx| {
            // The model's row lock serialises racing promotions.
            sqlx::query("UPDATE registered_models SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(model.id)
                .execute(&mut *tx)
                .await?;
            let from: Option<String> =
                sqlx::query_scalar("SELECT stage FROM model_versions WHERE id = $1")
                    .bind(row.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(from) = from else {
                return Err(ApiError::not_found(format!(
                    "version v{number} of model {name}"
                )));
            };
            let mut archived = Vec::new();
            if req.to == Stage::Production && req.archive_existing {
                let others: Vec<(i64, Option<String>)> = sqlx::query_as(SELECT_MODEL_VERSIONS)
                    .bind(model.id)
                    .bind(row.id)
                    .fetch_all(&mut *tx)
                    .await?;
                for (v, approver) in others {
                    sqlx::query(UPDATE_MODEL_VERSIONS)
                        .bind(now)
                        .bind(model.id)
                        .bind(v)
                        .execute(&mut *tx)
                        .await?;
                    let comment = format!("archived when v{number} was promoted to Production");
                    record_change!(
                        tx,
                        model.id,
                        &user.username,
                        now,
                        Change {
                            version: Some(v),
                            action: "transition",
                            from: Some("Production".into()),
                            to: Some("Archived".into()),
                            comment: Some(comment.as_str())
                        }
                    );
                    if approver.is_some() {
                        record_change!(
                            tx,
                            model.id,
                            &user.username,
                            now,
                            Change {
                                version: Some(v),
                                action: "approval_voided",
                                from: approver,
                                to: None,
                                comment: Some("moved from Production to Archived")
                            }
                        );
                    }
                    archived.push(v);
                }
            }
            sqlx::query("UPDATE model_versions SET stage = $1, updated_at = $2 WHERE id = $3")
                .bind(req.to.as_str())
                .bind(now)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            record_change!(
                tx,
                model.id,
                &user.username,
                now,
                Change {
                    version: Some(number),
                    action: "transition",
                    from: Some(from.clone()),
                    to: Some(req.to.as_str().into()),
                    comment: req.comment.as_deref()
                }
            );
            // An approval is for one promotion: leaving Production, or going back to Staging
            // or None, voids it (the promotion it allowed stands).
            if voids_approval(&from, req.to) {
                let voided = sqlx::query(VOID_APPROVAL)
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if voided > 0 {
                    let why = format!("moved from {from} to {}", req.to.as_str());
                    record_change!(
                        tx,
                        model.id,
                        &user.username,
                        now,
                        Change {
                            version: Some(number),
                            action: "approval_voided",
                            from: row.approved_by.clone(),
                            to: None,
                            comment: Some(why.as_str())
                        }
                    );
                }
            }
            archived
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_transition", "registry", "info")
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
        let mut who = self.approvers(model.project_id).await?;
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
        const UPDATE_MODEL_VERSIONS: &str = "UPDATE model_versions SET approved_by = $1, approved_at = $2, updated_at = $3 WHERE id = $4";
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
        let now = now_us();
        let (approver, at) = if revoke {
            (None, None)
        } else {
            (Some(user.id), Some(now))
        };
        with_tx!(self.store(), |tx| {
            sqlx::query(UPDATE_MODEL_VERSIONS)
                .bind(approver)
                .bind(at)
                .bind(now)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
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
            record_change!(tx, model.id, &user.username, now, change);
        });
        let event = if revoke {
            "model_approval_revoke"
        } else {
            "model_approve"
        };
        self.audit(
            actor,
            client,
            AuditEvent::new(event, "registry", "info")
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
        const SELECT_MODEL_ALIASES: &str = "SELECT v.version FROM model_aliases al JOIN model_versions v ON v.id = al.version_id WHERE al.model_id = $1 AND al.alias = $2";
        const INSERT_MODEL_ALIASES: &str = "INSERT INTO model_aliases (model_id, alias, version_id, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id, updated_by = excluded.updated_by, updated_at = excluded.updated_at";
        let model = self.load_with(actor, name, Role::Member).await?;
        let user = actor.require_user()?;
        check_alias(alias)?;
        check_text("comment", req.comment.as_deref())?;
        let number = version_number(&req.version)?;
        let row = self.resolve(&model, &number.to_string()).await?;
        let now = now_us();
        with_tx!(self.store(), |tx| {
            sqlx::query("UPDATE registered_models SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(model.id)
                .execute(&mut *tx)
                .await?;
            let before: Option<i64> = sqlx::query_scalar(SELECT_MODEL_ALIASES)
                .bind(model.id)
                .bind(alias)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(INSERT_MODEL_ALIASES)
                .bind(model.id)
                .bind(alias)
                .bind(row.id)
                .bind(user.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let change = Change {
                version: Some(number),
                action: "alias_set",
                from: before.map(|v| format!("{alias} was v{v}")),
                to: Some(alias.to_string()),
                comment: req.comment.as_deref(),
            };
            record_change!(tx, model.id, &user.username, now, change);
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_alias_set", "registry", "info")
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
        let now = now_us();
        with_tx!(self.store(), |tx| {
            sqlx::query("DELETE FROM model_aliases WHERE model_id = $1 AND alias = $2")
                .bind(model.id)
                .bind(alias)
                .execute(&mut *tx)
                .await?;
            record_change!(
                tx,
                model.id,
                &user.username,
                now,
                Change {
                    version: Some(row.version),
                    action: "alias_removed",
                    from: Some(alias.to_string()),
                    to: None,
                    comment: None
                }
            );
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("model_alias_remove", "registry", "info")
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
        const SELECT_MODEL_HISTORY: &str = "SELECT id, version, action, from_value, to_value, comment, username, at FROM model_history WHERE model_id = $1 AND ($2 IS NULL OR version = $2) ORDER BY id";
        let (model, _) = self.load(actor, name).await?;
        let number = version.map(version_number).transpose()?;
        let rows: Vec<EventRow> = on_backend!(self.store(), read, |pool| {
            sqlx::query_as(SELECT_MODEL_HISTORY)
                .bind(model.id)
                .bind(number)
                .fetch_all(pool)
                .await?
        });
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
    pub async fn policy(&self, actor: &Actor, project: &str) -> ApiResult<RegistryPolicy> {
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
        project: &str,
        policy: RegistryPolicy,
    ) -> ApiResult<RegistryPolicy> {
        const INSERT_REGISTRY_POLICIES: &str = "INSERT INTO registry_policies (project_id, require_approval, allow_self_approval, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (project_id) DO UPDATE SET require_approval = excluded.require_approval, allow_self_approval = excluded.allow_self_approval, updated_at = excluded.updated_at";
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require(Role::Admin)?;
        on_backend!(self.store(), write, |pool| {
            sqlx::query(INSERT_REGISTRY_POLICIES)
                .bind(access.id)
                .bind(policy.require_approval)
                .bind(policy.allow_self_approval)
                .bind(now_us())
                .execute(pool)
                .await?;
        });
        self.audit(
            actor,
            client,
            AuditEvent::new("registry_policy_change", "registry", "warning")
                .status(200)
                .resource(format!("project:{project}"))
                .metadata(serde_json::json!({"require_approval": policy.require_approval, "allow_self_approval": policy.allow_self_approval})),
        )
        .await;
        Ok(policy)
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
