//! MLflow 3's logged models (what `mlflow.<flavor>.log_model` creates). A logged model's files
//! are run files of the run that holds it, under `.mlflow-models/<model id>/`: the run that
//! logged it, or, for a model logged outside a run, a run made for it in the experiment.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use wanllmdb_api_types::RunId;
use wanllmdb_api_types::runs::{CreateRunRequest, FinishRunRequest, RunState};

use super::experiments;
use super::search::{self, Allowed, Field, Kinds, Searchable};
use super::store::{self, LoggedModelRow, NewLoggedModel};
use super::{
    MlResult, Params, check_len, empty, invalid, max_results, missing, ms, page_token,
    parse_page_token,
};
use crate::auth::{Actor, random_hex};
use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::projects::{ProjectAccess, Projects};
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::now_us;

/// The directory of a run's files that holds its logged models' files.
pub const MODELS_DIR: &str = ".mlflow-models";

/// Where in its run's files a logged model's files are.
pub fn files_prefix(model_id: &str) -> String {
    format!("{MODELS_DIR}/{model_id}")
}

/// What a logged-model search may filter and order by.
const LOGGED_MODELS: Allowed = Allowed {
    attributes: &[
        "name",
        "model_id",
        "model_type",
        "status",
        "source_run_id",
        "creation_timestamp",
        "creation_time",
        "last_updated_timestamp",
    ],
    numeric: &[
        "creation_timestamp",
        "creation_time",
        "last_updated_timestamp",
    ],
    list_attributes: &["name", "model_id", "model_type", "status", "source_run_id"],
    order_attributes: &[
        "name",
        "model_id",
        "creation_timestamp",
        "creation_time",
        "last_updated_timestamp",
    ],
    aliases: &[],
    entities: Kinds {
        metrics: false,
        params: true,
        tags: true,
        datasets: false,
    },
    null_checks: Kinds {
        metrics: false,
        params: true,
        tags: true,
        datasets: false,
    },
    absent_tags: &[],
};

fn map_of(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<Value> {
    map.iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

/// A logged model as MLflow writes it.
fn model_json(m: &LoggedModelRow) -> Value {
    json!({
        "info": {
            "model_id": m.model_id,
            "experiment_id": m.project_id.to_string(),
            "name": m.name,
            "artifact_uri": format!("mlflow-artifacts:/{}/models/{}/artifacts", m.project_id, m.model_id),
            "creation_timestamp_ms": m.created_at,
            "last_updated_timestamp_ms": m.updated_at,
            "model_type": m.model_type,
            "source_run_id": m.source_run_id.clone().unwrap_or_default(),
            "status": m.status,
            "tags": pairs(&map_of(&m.tags)),
        },
        "data": {"params": pairs(&map_of(&m.params)), "metrics": []},
    })
}

/// A logged model the caller may read (or, with `write`, change), with its project's access.
pub async fn resolve(
    state: &AppState,
    actor: &Actor,
    model_id: &str,
    write: bool,
) -> MlResult<(LoggedModelRow, ProjectAccess)> {
    let not_found = || missing(format!("Logged model with ID '{model_id}' not found."));
    let m = store::logged_model(&state.store, model_id)
        .await?
        .filter(|m| !m.deleted)
        .ok_or_else(not_found)?;
    let access = Projects { state }
        .access_by_id(actor, m.project_id)
        .await
        .map_err(|_| not_found())?;
    access.require_read().map_err(|_| not_found())?;
    if write {
        super::require_user(actor)?;
        access.require_write()?;
    }
    Ok((m, access))
}

/// The run and the run-file path a logged model's artifact path names.
pub async fn files_of(
    state: &AppState,
    actor: &Actor,
    model_id: &str,
    rest: &str,
) -> MlResult<(RunId, String)> {
    let (m, _) = resolve(state, actor, model_id, false).await?;
    let run = RunId::parse(&m.run_id).map_err(|e| ApiError::Internal(e.to_string()))?;
    let prefix = files_prefix(model_id);
    let path = if rest.is_empty() {
        prefix
    } else {
        format!("{prefix}/{rest}")
    };
    Ok((run, path))
}

fn kv(p: &Params, key: &str, what: &str) -> MlResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in p.objects(key)? {
        let k = t.required("key")?;
        let v = t.str("value")?.unwrap_or_default();
        if k.is_empty() {
            return Err(invalid(format!("{what} keys must not be empty")));
        }
        check_len(&format!("{what} key"), &k, 250)?;
        check_len(&format!("{what} value"), &v, 8000)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// `POST logged-models`: a pending model, whose files the client uploads next.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let user = actor.require_user()?.id;
    let exp_id = p.required("experiment_id")?;
    let (exp, access) = experiments::resolve(&state, &actor, &client, &exp_id).await?;
    access.require_write()?;
    let name = p
        .str("name")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into());
    check_len("name", &name, 500)?;
    let model_type = p.str("model_type")?.unwrap_or_default();
    check_len("model_type", &model_type, 500)?;
    let params = kv(&p, "params", "param")?;
    let tags = kv(&p, "tags", "tag")?;
    let runs = Runs { state: &state };
    let source = match p.str("source_run_id")?.filter(|s| !s.is_empty()) {
        Some(raw) => {
            let id =
                RunId::parse(&raw).map_err(|_| missing(format!("Run with id={raw} not found")))?;
            let (row, run_access) = runs.load_for_write(&actor, &id).await?;
            if run_access.id != exp.project_id {
                return Err(invalid(format!(
                    "Run {raw} is not in experiment {}",
                    exp.project_id
                )));
            }
            Some(row.pk)
        }
        None => None,
    };
    let holder = match source {
        Some(pk) => pk,
        None => {
            // A model logged outside a run: a finished run of its own holds its files.
            let req = CreateRunRequest {
                name: Some(format!("logged model {name}")),
                job_type: Some("mlflow-logged-model".into()),
                ..CreateRunRequest::new(access.name.clone())
            };
            let (run, _) = runs.create(&actor, req, &client).await?;
            let finish = FinishRunRequest {
                state: RunState::Finished,
                exit_code: None,
                reason: None,
                finished_at: None,
            };
            runs.finish(&actor, &run.id, finish, &client).await?;
            let (row, _) = runs.load(&actor, &run.id).await?;
            store::mark_mlflow_run(&state.store, row.pk).await?;
            row.pk
        }
    };
    let model_id = format!("m-{}", random_hex(16));
    let params = serde_json::to_string(&params).unwrap_or_default();
    let tags = serde_json::to_string(&tags).unwrap_or_default();
    let new = NewLoggedModel {
        model_id: &model_id,
        project_id: exp.project_id,
        run_pk: holder,
        source_run_pk: source,
        name: &name,
        model_type: &model_type,
        params: &params,
        tags: &tags,
        user,
        now_ms: ms(now_us()),
    };
    store::insert_logged_model(&state.store, &new).await?;
    let (m, _) = resolve(&state, &actor, &model_id, false).await?;
    Ok(Json(json!({ "model": model_json(&m) })))
}

/// `GET logged-models/{model_id}`.
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    Path(model_id): Path<String>,
) -> MlResult<Json<Value>> {
    let (m, _) = resolve(&state, &actor, &model_id, false).await?;
    Ok(Json(json!({ "model": model_json(&m) })))
}

/// `PATCH logged-models/{model_id}`: finalizes it (ready, or upload failed).
pub async fn finalize(
    State(state): State<AppState>,
    actor: Actor,
    Path(model_id): Path<String>,
    p: Params,
) -> MlResult<Json<Value>> {
    resolve(&state, &actor, &model_id, true).await?;
    let status = match p.str("status")?.as_deref() {
        Some("LOGGED_MODEL_READY" | "2") => "LOGGED_MODEL_READY",
        Some("LOGGED_MODEL_UPLOAD_FAILED" | "3") => "LOGGED_MODEL_UPLOAD_FAILED",
        Some("LOGGED_MODEL_PENDING" | "1") => "LOGGED_MODEL_PENDING",
        other => {
            return Err(invalid(format!(
                "Invalid value {other:?} for parameter 'status': use LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"
            )));
        }
    };
    store::update_logged_model(
        &state.store,
        &model_id,
        Some(status),
        None,
        None,
        None,
        ms(now_us()),
    )
    .await?;
    let (m, _) = resolve(&state, &actor, &model_id, false).await?;
    Ok(Json(json!({ "model": model_json(&m) })))
}

/// `DELETE logged-models/{model_id}`: hidden from then on (its files stay with their run).
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    Path(model_id): Path<String>,
) -> MlResult<Json<Value>> {
    resolve(&state, &actor, &model_id, true).await?;
    store::update_logged_model(
        &state.store,
        &model_id,
        None,
        None,
        None,
        Some(true),
        ms(now_us()),
    )
    .await?;
    Ok(empty())
}

/// `PATCH logged-models/{model_id}/tags`.
pub async fn set_tags(
    State(state): State<AppState>,
    actor: Actor,
    Path(model_id): Path<String>,
    p: Params,
) -> MlResult<Json<Value>> {
    let (m, _) = resolve(&state, &actor, &model_id, true).await?;
    let mut tags = map_of(&m.tags);
    tags.extend(kv(&p, "tags", "tag")?);
    let text = serde_json::to_string(&tags).unwrap_or_default();
    store::update_logged_model(
        &state.store,
        &model_id,
        None,
        None,
        Some(&text),
        None,
        ms(now_us()),
    )
    .await?;
    Ok(empty())
}

/// `DELETE logged-models/{model_id}/tags/{tag_key}`.
pub async fn delete_tag(
    State(state): State<AppState>,
    actor: Actor,
    Path((model_id, key)): Path<(String, String)>,
) -> MlResult<Json<Value>> {
    let (m, _) = resolve(&state, &actor, &model_id, true).await?;
    let mut tags = map_of(&m.tags);
    if tags.remove(&key).is_none() {
        return Err(missing(format!(
            "No tag with key '{key}' on logged model {model_id}"
        )));
    }
    let text = serde_json::to_string(&tags).unwrap_or_default();
    store::update_logged_model(
        &state.store,
        &model_id,
        None,
        None,
        Some(&text),
        None,
        ms(now_us()),
    )
    .await?;
    Ok(empty())
}

/// `POST logged-models/{model_id}/params`.
pub async fn log_params(
    State(state): State<AppState>,
    actor: Actor,
    Path(model_id): Path<String>,
    p: Params,
) -> MlResult<Json<Value>> {
    let (m, _) = resolve(&state, &actor, &model_id, true).await?;
    let mut params = map_of(&m.params);
    for (k, v) in kv(&p, "params", "param")? {
        match params.get(&k) {
            Some(old) if *old != v => {
                return Err(invalid(format!(
                    "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for model ID='{model_id}'. Attempted logging new value '{v}'."
                )));
            }
            _ => {
                params.insert(k, v);
            }
        }
    }
    let text = serde_json::to_string(&params).unwrap_or_default();
    store::update_logged_model(
        &state.store,
        &model_id,
        None,
        Some(&text),
        None,
        None,
        ms(now_us()),
    )
    .await?;
    Ok(empty())
}

/// A logged model as the search syntax sees it.
struct Found(LoggedModelRow);

impl Searchable for Found {
    fn value(&self, field: &Field) -> Option<search::Value> {
        use search::Value::{Num, Str};
        let m = &self.0;
        match field {
            Field::Attribute(a) => match a.as_str() {
                "name" => Some(Str(m.name.clone())),
                "model_id" => Some(Str(m.model_id.clone())),
                "model_type" => Some(Str(m.model_type.clone())),
                "status" => Some(Str(m.status.clone())),
                "source_run_id" => Some(Str(m.source_run_id.clone().unwrap_or_default())),
                "creation_timestamp" | "creation_time" => Some(Num(m.created_at as f64)),
                "last_updated_timestamp" => Some(Num(m.updated_at as f64)),
                _ => None,
            },
            Field::Param(k) => map_of(&m.params).remove(k).map(Str),
            Field::Tag(k) => map_of(&m.tags).remove(k).map(Str),
            _ => None,
        }
    }
}

/// `POST logged-models/search`: the logged models of experiments, newest first unless
/// ordered otherwise.
pub async fn search(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let limit = max_results(&p, 100, 10_000)?;
    let offset = parse_page_token(p.str("page_token")?.as_deref())?;
    let filter = search::parse_filter(&p.str("filter")?.unwrap_or_default(), &LOGGED_MODELS)
        .map_err(invalid)?;
    let order: Vec<String> = p
        .objects("order_by")?
        .iter()
        .map(|o| {
            let field = o.required("field_name")?;
            let asc = !matches!(o.0.get("ascending"), Some(Value::Bool(false)));
            Ok(format!("{field} {}", if asc { "ASC" } else { "DESC" }))
        })
        .collect::<MlResult<_>>()?;
    let order = search::parse_order_by(&order, &LOGGED_MODELS).map_err(invalid)?;
    let mut found = Vec::new();
    for id in p.strings("experiment_ids")? {
        let (exp, _) = experiments::resolve(&state, &actor, &client, &id).await?;
        for m in store::logged_models_of(&state.store, exp.project_id).await? {
            let f = Found(m);
            if filter.matches(&f) {
                found.push(f);
            }
        }
    }
    found.sort_by(|a, b| {
        search::compare(&order, a, b)
            .then_with(|| b.0.created_at.cmp(&a.0.created_at))
            .then_with(|| a.0.model_id.cmp(&b.0.model_id))
    });
    let total = found.len();
    let page: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(limit)
        .map(|f| model_json(&f.0))
        .collect();
    let mut out = json!({ "models": page });
    if offset + limit < total {
        out["next_page_token"] = json!(page_token(offset + limit));
    }
    Ok(Json(out))
}

/// `POST runs/outputs`: the models a run produced (shown as its outputs).
pub async fn log_outputs(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    super::require_user(&actor)?;
    let id = p.run_id()?;
    let runs = Runs { state: &state };
    let (row, _) = runs.load_for_write(&actor, &id).await?;
    let mut outputs: Vec<Value> = runs
        .tag_values(&[row.pk])
        .await?
        .remove(&row.pk)
        .unwrap_or_default()
        .remove(OUTPUTS_TAG)
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    for m in p.objects("models")? {
        let model_id = m.required("model_id")?;
        resolve(&state, &actor, &model_id, false).await?;
        let step = m.i64("step")?.unwrap_or(0);
        let entry = json!({"model_id": model_id, "step": step});
        if !outputs.contains(&entry) {
            outputs.push(entry);
        }
    }
    let text = Value::Array(outputs).to_string();
    runs.set_tag_values(row.pk, &[(OUTPUTS_TAG.into(), text)])
        .await?;
    Ok(empty())
}

/// Where a run's model outputs are kept (a JSON list), hidden from MLflow's tags.
pub const OUTPUTS_TAG: &str = "mlflow.model_outputs";
