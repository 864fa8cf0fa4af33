//! MLflow experiments: projects, under the MLflow name they were created with.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use wanllmdb_api_types::ProjectName;
use wanllmdb_api_types::projects::{CreateProjectRequest, Role, Visibility};

use super::search::{self, Field, Searchable};
use super::store::{self, ExperimentRow};
use super::{
    Code, MlResult, MlflowError, Params, check_len, empty, invalid, max_results, missing, ms,
    page_token, parse_page_token,
};
use crate::audit::AuditAction;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::projects::{ProjectAccess, Projects};
use crate::state::AppState;
use crate::store::now_us;

/// The MLflow name of the experiment MLflow clients log to when they name none (id `0`).
pub const DEFAULT_EXPERIMENT: &str = "Default";

/// An experiment the caller may read, by MLflow experiment id (`0`: the default experiment,
/// created on first use by a signed-in caller).
pub async fn resolve(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    id: &str,
) -> MlResult<(ExperimentRow, ProjectAccess)> {
    let not_found = || missing(format!("Could not find experiment with ID {id}"));
    let project_id = if id.trim() == "0" {
        match store::experiment_by_name(&state.store, DEFAULT_EXPERIMENT).await? {
            Some(pid) => pid,
            None if actor.user.is_some() => {
                create_experiment(state, actor, client, DEFAULT_EXPERIMENT, &[]).await?
            }
            None => return Err(not_found()),
        }
    } else {
        id.trim().parse::<i64>().map_err(|_| not_found())?
    };
    let projects = Projects { state };
    let access = match projects.access_by_id(actor, project_id).await {
        Ok(a) => a,
        Err(ApiError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    access.require_read().map_err(|_| not_found())?;
    let row = store::experiment(&state.store, project_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((row, access))
}

/// The project name derived from an MLflow experiment name: lower case, every character a
/// project name cannot hold as `-`, then `-2`, `-3`… while the name is taken.
async fn derived_project_name(state: &AppState, name: &str) -> MlResult<ProjectName> {
    let mut base = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let keep = c.is_ascii_alphanumeric() || c == '_' || c == '.';
        let c = if keep { c } else { '-' };
        if !(c == '-' && (base.is_empty() || base.ends_with('-'))) {
            base.push(c);
        }
    }
    let mut base = base.trim_matches(['-', '.']).to_string();
    base.truncate(100);
    if ProjectName::parse(&base).is_err() {
        base = "experiment".into();
    }
    for n in 1..10_000u32 {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if !store::project_name_taken(&state.store, &candidate).await? {
            return ProjectName::parse(&candidate).map_err(|e| invalid(e.to_string()));
        }
    }
    Err(invalid(format!(
        "no free project name is left for experiment {name:?}"
    )))
}

/// Creates the project of a new experiment and records its MLflow name; its id.
async fn create_experiment(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    name: &str,
    tags: &[(String, String)],
) -> MlResult<i64> {
    let projects = Projects { state };
    let already = || {
        MlflowError::new(
            Code::ResourceAlreadyExists,
            format!("Experiment '{name}' already exists."),
        )
    };
    if store::experiment_by_name(&state.store, name)
        .await?
        .is_some()
    {
        return Err(already().into());
    }
    // A name another client takes meanwhile: the next free one.
    let mut project = derived_project_name(state, name).await?;
    let mut tries = 0;
    loop {
        let req = CreateProjectRequest {
            name: project.clone(),
            description: None,
            visibility: Some(Visibility::Private),
        };
        match projects.create(actor, &req, client).await {
            Ok(_) => break,
            Err(ApiError::Conflict(_)) if tries < 5 => {
                tries += 1;
                project = derived_project_name(state, name).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let access = projects.access(actor, &project).await?;
    match store::set_experiment_name(&state.store, access.id, name, ms(now_us())).await {
        Ok(()) => {}
        Err(ApiError::Conflict(_)) => {
            // Another client created the experiment meanwhile: this project goes again.
            projects.delete(actor, &project, client).await?;
            return Err(already().into());
        }
        Err(e) => return Err(e.into()),
    }
    for (k, v) in tags {
        store::set_experiment_tag(&state.store, access.id, k, v).await?;
    }
    Ok(access.id)
}

/// `(key, value)` pairs of a `tags` list.
pub fn tag_pairs(p: &Params, what: &str) -> MlResult<Vec<(String, String)>> {
    p.objects("tags")?
        .into_iter()
        .map(|t| {
            let key = t.required("key")?;
            let value = t.str("value")?.unwrap_or_default();
            check_tag(what, &key, &value)?;
            Ok((key, value))
        })
        .collect()
}

/// MLflow's limits on a tag.
pub fn check_tag(what: &str, key: &str, value: &str) -> MlResult<()> {
    if key.is_empty() {
        return Err(invalid(format!("{what} tag key must not be empty")));
    }
    check_len("tag key", key, 250)?;
    check_len("tag value", value, 8000)
}

/// An experiment as MLflow writes it.
pub fn to_json(row: &ExperimentRow, tags: &[(String, String)]) -> Value {
    json!({
        "experiment_id": row.project_id.to_string(),
        "name": row.name(),
        "artifact_location": format!("mlflow-artifacts:/{}", row.project_id),
        "lifecycle_stage": if row.deleted() { "deleted" } else { "active" },
        "creation_time": ms(row.created_at),
        "last_update_time": row.last_update_time.unwrap_or(0).max(ms(row.updated_at)),
        "tags": tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
    })
}

async fn one(state: &AppState, row: &ExperimentRow) -> MlResult<Value> {
    let mut tags = store::experiment_tags(&state.store, &[row.project_id]).await?;
    Ok(to_json(
        row,
        &tags.remove(&row.project_id).unwrap_or_default(),
    ))
}

/// `POST experiments/create`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    super::require_user(&actor)?;
    let name = p.required("name")?;
    if name.trim().is_empty() {
        return Err(invalid(format!("Invalid experiment name: '{name}'")));
    }
    check_len("name", &name, 500)?;
    let tags = tag_pairs(&p, "experiment")?;
    let id = create_experiment(&state, &actor, &client, &name, &tags).await?;
    Ok(Json(json!({ "experiment_id": id.to_string() })))
}

/// `GET experiments/get`.
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let id = p.required("experiment_id")?;
    let (row, _) = resolve(&state, &actor, &client, &id).await?;
    Ok(Json(json!({ "experiment": one(&state, &row).await? })))
}

/// `GET experiments/get-by-name`.
pub async fn get_by_name(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("experiment_name")?;
    let not_found = || missing(format!("Could not find experiment with name '{name}'"));
    let id = match store::experiment_by_name(&state.store, &name).await? {
        Some(id) => id,
        None if name == DEFAULT_EXPERIMENT && actor.user.is_some() => {
            create_experiment(&state, &actor, &client, &name, &[]).await?
        }
        None => return Err(not_found()),
    };
    let (row, _) = resolve(&state, &actor, &client, &id.to_string())
        .await
        .map_err(|_| not_found())?;
    Ok(Json(json!({ "experiment": one(&state, &row).await? })))
}

/// Which life cycles a search returns.
pub fn view_type(p: &Params, key: &str) -> MlResult<(bool, bool)> {
    match p
        .str(key)?
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("" | "ACTIVE_ONLY" | "1") => Ok((true, false)),
        Some("DELETED_ONLY" | "2") => Ok((false, true)),
        Some("ALL" | "3") => Ok((true, true)),
        Some(other) => Err(invalid(format!(
            "Invalid value {other:?} for parameter '{key}': use ACTIVE_ONLY, DELETED_ONLY or ALL"
        ))),
    }
}

/// An experiment with its tags, as the search syntax sees it.
struct Found {
    row: ExperimentRow,
    tags: Vec<(String, String)>,
}

impl Searchable for Found {
    fn value(&self, field: &Field) -> Option<search::Value> {
        match field {
            Field::Attribute(a) => match a.as_str() {
                "name" => Some(search::Value::Str(self.row.name().to_string())),
                "experiment_id" => Some(search::Value::Num(self.row.project_id as f64)),
                "creation_time" => Some(search::Value::Num(ms(self.row.created_at) as f64)),
                "last_update_time" => Some(search::Value::Num(
                    self.row
                        .last_update_time
                        .unwrap_or(0)
                        .max(ms(self.row.updated_at)) as f64,
                )),
                "lifecycle_stage" => Some(search::Value::Str(
                    if self.row.deleted() {
                        "deleted"
                    } else {
                        "active"
                    }
                    .into(),
                )),
                _ => None,
            },
            Field::Tag(k) => self
                .tags
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| search::Value::Str(v.clone())),
            _ => None,
        }
    }
}

/// `POST experiments/search`.
pub async fn search(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let limit = max_results(&p, 1000, 50_000)?;
    let offset = parse_page_token(p.str("page_token")?.as_deref())?;
    let (active, deleted) = view_type(&p, "view_type")?;
    let filter = search::parse_filter(&p.str("filter")?.unwrap_or_default(), &search::EXPERIMENTS)
        .map_err(invalid)?;
    let order =
        search::parse_order_by(&p.strings("order_by")?, &search::EXPERIMENTS).map_err(invalid)?;
    let rows = store::visible_experiments(
        &state.store,
        actor.user_id().unwrap_or(-1),
        actor.is_admin(),
    )
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.project_id).collect();
    let mut tags = store::experiment_tags(&state.store, &ids).await?;
    let mut found: Vec<Found> = rows
        .into_iter()
        .filter(|r| if r.deleted() { deleted } else { active })
        .map(|row| Found {
            tags: tags.remove(&row.project_id).unwrap_or_default(),
            row,
        })
        .filter(|f| filter.matches(f))
        .collect();
    found.sort_by(|a, b| {
        search::compare(&order, a, b)
            .then_with(|| b.row.created_at.cmp(&a.row.created_at))
            .then_with(|| a.row.project_id.cmp(&b.row.project_id))
    });
    let total = found.len();
    let page: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(limit)
        .map(|f| to_json(&f.row, &f.tags))
        .collect();
    let mut out = json!({ "experiments": page });
    if offset + limit < total {
        out["next_page_token"] = json!(page_token(offset + limit));
    }
    Ok(Json(out))
}

/// An experiment the caller may change as its project's `role`.
async fn for_change(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    p: &Params,
    role: Role,
) -> MlResult<ExperimentRow> {
    super::require_user(actor)?;
    let id = p.required("experiment_id")?;
    let (row, access) = resolve(state, actor, client, &id).await?;
    access.require(role)?;
    Ok(row)
}

/// `POST experiments/update`: renames (the MLflow name; the project keeps its own).
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let row = for_change(&state, &actor, &client, &p, Role::Admin).await?;
    let Some(new_name) = p.str("new_name")? else {
        return Ok(empty());
    };
    if new_name.trim().is_empty() {
        return Err(invalid(format!("Invalid experiment name: '{new_name}'")));
    }
    check_len("name", &new_name, 500)?;
    if new_name == row.name() {
        return Ok(empty());
    }
    if store::experiment_by_name(&state.store, &new_name)
        .await?
        .is_some()
    {
        return Err(MlflowError::new(
            Code::ResourceAlreadyExists,
            format!("Experiment '{new_name}' already exists."),
        )
        .into());
    }
    match store::set_experiment_name(&state.store, row.project_id, &new_name, ms(now_us())).await {
        Ok(()) => {
            let meta = json!({ "mlflow_name": new_name, "from": row.name() });
            audit_project(&state, &actor, &client, &row, meta).await;
            Ok(empty())
        }
        Err(ApiError::Conflict(_)) => Err(MlflowError::new(
            Code::ResourceAlreadyExists,
            format!("Experiment '{new_name}' already exists."),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// `POST experiments/delete`: marks it deleted (kept, restorable).
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let row = for_change(&state, &actor, &client, &p, Role::Owner).await?;
    if row.name() == DEFAULT_EXPERIMENT {
        return Err(invalid("Cannot delete the default experiment '0'."));
    }
    let name = row.name().to_string();
    // Its runs go with it, stamped with the same time, so a restore brings back exactly those.
    let now = ms(now_us());
    store::set_experiment_stage(&state.store, row.project_id, &name, "deleted", now).await?;
    store::delete_runs_of(&state.store, row.project_id, now).await?;
    let meta = json!({ "lifecycle_stage": "deleted" });
    audit_project(&state, &actor, &client, &row, meta).await;
    Ok(empty())
}

/// `POST experiments/restore`.
pub async fn restore(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let row = for_change(&state, &actor, &client, &p, Role::Owner).await?;
    if !row.deleted() {
        return Err(invalid(format!(
            "Cannot restore an active experiment. Experiment id {} is active.",
            row.project_id
        )));
    }
    let name = row.name().to_string();
    let deleted_at = row.last_update_time.unwrap_or(0);
    store::set_experiment_stage(&state.store, row.project_id, &name, "active", ms(now_us()))
        .await?;
    store::restore_runs_of(&state.store, row.project_id, deleted_at).await?;
    let meta = json!({ "lifecycle_stage": "active" });
    audit_project(&state, &actor, &client, &row, meta).await;
    Ok(empty())
}

/// `POST experiments/set-experiment-tag`.
pub async fn set_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let row = for_change(&state, &actor, &client, &p, Role::Member).await?;
    let key = p.required("key")?;
    let value = p.str("value")?.unwrap_or_default();
    check_tag("experiment", &key, &value)?;
    store::set_experiment_tag(&state.store, row.project_id, &key, &value).await?;
    audit_project(&state, &actor, &client, &row, json!({ "tag_set": key })).await;
    Ok(empty())
}

/// `POST experiments/delete-experiment-tag`.
pub async fn delete_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let row = for_change(&state, &actor, &client, &p, Role::Member).await?;
    let key = p.required("key")?;
    if !store::delete_experiment_tag(&state.store, row.project_id, &key).await? {
        return Err(missing(format!(
            "No tag with name: {key} in experiment with id {}",
            row.project_id
        )));
    }
    audit_project(&state, &actor, &client, &row, json!({ "tag_deleted": key })).await;
    Ok(empty())
}

/// Audits a change of a project's MLflow side.
async fn audit_project(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    row: &ExperimentRow,
    metadata: Value,
) {
    let resource = format!("project:{}", row.project_name);
    super::audit(
        state,
        actor,
        client,
        AuditAction::ProjectUpdate,
        resource,
        metadata,
    )
    .await;
}
