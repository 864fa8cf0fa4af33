//! The MLflow model registry over ours: a registered model is a model of our registry, a
//! model version an artifact version (type `model`) made from the run files its source URI
//! names, so the files are kept as they were when it was registered. Stages, approvals and
//! aliases are the registry's own rules.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use wanllmdb_api_types::RunId;
use wanllmdb_api_types::artifacts::{CreateVersionRequest, EntrySpec};
use wanllmdb_api_types::registry::{
    CreateModelVersionRequest, ModelVersion, RegisterModelRequest, RegisteredModel,
    SetModelAliasRequest, Stage, TransitionRequest, UpdateModelRequest, is_valid_model_name,
};

use super::experiments::check_tag;
use super::runs::time_ms;
use super::search::{self, Field, Searchable};
use super::store::{self, PendingModel, VersionExtra};
use super::{
    Code, Failure, MlResult, MlflowError, Params, check_len, empty, invalid, max_results, missing,
    ms, page_token, parse_page_token,
};
use crate::artifacts::Artifacts;
use crate::audit::AuditAction;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::files::Files;
use crate::projects::Projects;
use crate::registry::Registry;
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::now_us;

/// A model's number from our `v3`.
fn number(v: &str) -> i64 {
    v.trim_start_matches('v').parse().unwrap_or(0)
}

/// A version number as MLflow sends it (`"3"`, `3`).
fn version_param(p: &Params) -> MlResult<i64> {
    let raw = p.required("version")?;
    raw.trim()
        .trim_start_matches('v')
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            invalid(format!(
                "Invalid value {raw:?} for parameter 'version': it must be a positive integer"
            ))
        })
}

fn model_missing(name: &str) -> Failure {
    missing(format!("Registered Model with name={name} not found"))
}

fn version_missing(name: &str, v: i64) -> Failure {
    missing(format!(
        "Model Version (name={name}, version={v}) not found"
    ))
}

/// A registered model, or one registered through MLflow that has no version yet.
enum Model {
    Registered(RegisteredModel),
    Pending(PendingModel),
}

/// The model `name` as the caller may see it.
async fn find(state: &AppState, actor: &Actor, name: &str) -> MlResult<Model> {
    match (Registry { state }).get(actor, name).await {
        Ok(m) => return Ok(Model::Registered(m)),
        Err(ApiError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match store::pending_model(&state.store, name).await? {
        Some(p) if actor.is_admin() || p.created_by_id == actor.user_id() => Ok(Model::Pending(p)),
        _ => Err(model_missing(name)),
    }
}

/// Checks the caller may change the model's tags and descriptions (write access to its
/// project; a pending model's creator).
async fn require_write(state: &AppState, actor: &Actor, model: &Model) -> MlResult<()> {
    super::require_user(actor)?;
    match model {
        Model::Registered(m) => Projects { state }
            .access(actor, &m.project)
            .await?
            .require_write()
            .map_err(Failure::from),
        Model::Pending(_) => Ok(()),
    }
}

fn tags_json(tags: &[(i64, String, String)], version: i64) -> Vec<Value> {
    tags.iter()
        .filter(|(v, _, _)| *v == version)
        .map(|(_, k, val)| json!({"key": k, "value": val}))
        .collect()
}

/// A model version as MLflow writes it.
fn version_json(
    mv: &ModelVersion,
    extra: Option<&VersionExtra>,
    tags: &[(i64, String, String)],
) -> Value {
    let n = number(&mv.version);
    let created = time_ms(&mv.created_at).unwrap_or(0);
    let updated = extra.map_or(created, |e| e.updated_at.max(created));
    let description = extra
        .and_then(|e| e.description.clone())
        .unwrap_or_else(|| mv.description.clone());
    let source = extra.map(|e| e.source.clone()).unwrap_or_else(|| {
        mv.artifact
            .as_deref()
            .map(|a| format!("wanllmdb-artifacts:/{a}"))
            .unwrap_or_default()
    });
    json!({
        "name": mv.model,
        "version": n.to_string(),
        "creation_timestamp": created,
        "last_updated_timestamp": updated,
        "user_id": mv.created_by.clone().unwrap_or_default(),
        "current_stage": mv.stage.as_str(),
        "description": description,
        "source": source,
        "run_id": mv.run.as_ref().map(RunId::as_str).unwrap_or_default(),
        "run_link": extra.map(|e| e.run_link.clone()).unwrap_or_default(),
        "status": "READY",
        "tags": tags_json(tags, n),
        "aliases": mv.aliases,
    })
}

/// A registered model as MLflow writes it, with its latest version in each stage.
async fn model_json(state: &AppState, actor: &Actor, model: &Model) -> MlResult<Value> {
    match model {
        Model::Pending(p) => {
            let tags = store::model_tags(&state.store, &p.name).await?;
            Ok(json!({
                "name": p.name,
                "creation_timestamp": p.created_at,
                "last_updated_timestamp": p.created_at,
                "user_id": p.created_by.clone().unwrap_or_default(),
                "description": p.description,
                "latest_versions": [],
                "tags": tags_json(&tags, 0),
                "aliases": [],
            }))
        }
        Model::Registered(m) => {
            let versions = Registry { state }.versions(actor, &m.name, None).await?;
            let (tags, extras) = tokio::try_join!(
                store::model_tags(&state.store, &m.name),
                store::version_extras(&state.store, &m.name),
            )?;
            let mut latest: HashMap<&str, &ModelVersion> = HashMap::new();
            let mut aliases = Vec::new();
            for v in &versions {
                let stage = v.stage.as_str();
                if latest
                    .get(stage)
                    .is_none_or(|l| number(&l.version) < number(&v.version))
                {
                    latest.insert(stage, v);
                }
                for a in &v.aliases {
                    aliases.push(json!({"alias": a, "version": number(&v.version).to_string()}));
                }
            }
            let mut latest: Vec<&ModelVersion> = latest.into_values().collect();
            latest.sort_by_key(|v| number(&v.version));
            let updated = time_ms(&m.updated_at).unwrap_or(0);
            let updated = extras
                .values()
                .map(|e| e.updated_at)
                .fold(updated, i64::max);
            Ok(json!({
                "name": m.name,
                "creation_timestamp": time_ms(&m.created_at).unwrap_or(0),
                "last_updated_timestamp": updated,
                "user_id": m.created_by.clone().unwrap_or_default(),
                "description": m.description,
                "latest_versions": latest
                    .iter()
                    .map(|v| version_json(v, extras.get(&number(&v.version)), &tags))
                    .collect::<Vec<_>>(),
                "tags": tags_json(&tags, 0),
                "aliases": aliases,
            }))
        }
    }
}

/// `{"registered_model": …}` of the model `name`, as the caller sees it now.
async fn model_answer(state: &AppState, actor: &Actor, name: &str) -> MlResult<Json<Value>> {
    let model = find(state, actor, name).await?;
    Ok(Json(
        json!({ "registered_model": model_json(state, actor, &model).await? }),
    ))
}

/// `POST registered-models/create`: the model joins the registry with its first version, in
/// that version's run's project.
pub async fn create_model(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let user = actor.require_user()?.id;
    let name = p.required("name")?;
    check_model_name(&name)?;
    let description = p.str("description")?.unwrap_or_default();
    check_len("description", &description, 65_536)?;
    let tags = super::experiments::tag_pairs(&p, "registered model")?;
    let exists = || {
        MlflowError::new(
            Code::ResourceAlreadyExists,
            format!("Registered Model (name={name}) already exists."),
        )
    };
    if store::model_name_taken(&state.store, &name).await? {
        return Err(exists().into());
    }
    match store::insert_pending(&state.store, &name, &description, user, ms(now_us())).await {
        Ok(()) => {}
        Err(ApiError::Conflict(_)) => return Err(exists().into()),
        Err(e) => return Err(e.into()),
    }
    store::forget_model(&state.store, &name, None).await?;
    for (k, v) in &tags {
        store::set_model_tag(&state.store, &name, 0, k, v).await?;
    }
    model_answer(&state, &actor, &name).await
}

/// MLflow model names here follow the registry's rule.
fn check_model_name(name: &str) -> MlResult<()> {
    if is_valid_model_name(name) {
        return Ok(());
    }
    Err(invalid(format!(
        "Invalid registered model name {name:?}: on this server model names are 1 to 128 of A-Z a-z 0-9 . _ -"
    )))
}

/// `GET registered-models/get`.
pub async fn get_model(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    model_answer(&state, &actor, &name).await
}

/// `PATCH registered-models/update`: the description.
pub async fn update_model(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let model = find(&state, &actor, &name).await?;
    require_write(&state, &actor, &model).await?;
    if let Some(d) = p.str("description")? {
        check_len("description", &d, 65_536)?;
        match &model {
            Model::Pending(_) => store::describe_pending(&state.store, &name, &d).await?,
            Model::Registered(_) => {
                let req = UpdateModelRequest {
                    description: Some(d),
                    ..UpdateModelRequest::default()
                };
                Registry { state: &state }
                    .update(&actor, &client, &name, req)
                    .await?;
            }
        }
    }
    model_answer(&state, &actor, &name).await
}

/// `POST registered-models/rename`.
pub async fn rename_model(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let new_name = p.required("new_name")?;
    check_model_name(&new_name)?;
    let model = find(&state, &actor, &name).await?;
    require_write(&state, &actor, &model).await?;
    if store::model_name_taken(&state.store, &new_name).await? {
        return Err(MlflowError::new(
            Code::ResourceAlreadyExists,
            format!("Registered Model (name={new_name}) already exists."),
        )
        .into());
    }
    match &model {
        Model::Pending(pm) => {
            let user = pm.created_by_id.unwrap_or(actor.require_user()?.id);
            store::insert_pending(
                &state.store,
                &new_name,
                &pm.description,
                user,
                pm.created_at,
            )
            .await?;
            store::delete_pending(&state.store, &name).await?;
        }
        Model::Registered(_) => {
            Registry { state: &state }
                .rename(&actor, &client, &name, &new_name)
                .await?;
        }
    }
    store::rename_model_rows(&state.store, &name, &new_name).await?;
    model_answer(&state, &actor, &new_name).await
}

/// `DELETE registered-models/delete`.
pub async fn delete_model(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let model = find(&state, &actor, &name).await?;
    require_write(&state, &actor, &model).await?;
    match model {
        Model::Pending(_) => store::delete_pending(&state.store, &name).await?,
        Model::Registered(_) => {
            Registry { state: &state }
                .delete(&actor, &client, &name)
                .await?;
        }
    }
    store::forget_model(&state.store, &name, None).await?;
    Ok(empty())
}

/// A model as the search syntax sees it.
struct FoundModel {
    json: Value,
}

impl Searchable for FoundModel {
    fn value(&self, field: &Field) -> Option<search::Value> {
        let j = &self.json;
        match field {
            Field::Attribute(a) => match a.as_str() {
                "name" => j["name"].as_str().map(|s| search::Value::Str(s.into())),
                "creation_timestamp" | "last_updated_timestamp" => {
                    j[a.as_str()].as_i64().map(|t| search::Value::Num(t as f64))
                }
                _ => None,
            },
            Field::Tag(k) => tag_of(j, k),
            _ => None,
        }
    }
}

fn tag_of(j: &Value, key: &str) -> Option<search::Value> {
    j["tags"].as_array().and_then(|tags| {
        tags.iter()
            .find(|t| t["key"].as_str() == Some(key))
            .and_then(|t| t["value"].as_str())
            .map(|v| search::Value::Str(v.into()))
    })
}

/// Every model the caller can see, as MLflow writes them.
async fn all_models(state: &AppState, actor: &Actor) -> MlResult<Vec<Value>> {
    let registered = Registry { state }.list(actor, None, None).await?;
    let pending = store::pending_models(
        &state.store,
        actor.user_id().unwrap_or(-1),
        actor.is_admin(),
    )
    .await?;
    let mut out = Vec::with_capacity(registered.len() + pending.len());
    for m in registered {
        out.push(model_json(state, actor, &Model::Registered(m)).await?);
    }
    for p in pending {
        out.push(model_json(state, actor, &Model::Pending(p)).await?);
    }
    Ok(out)
}

/// A page of a search's results.
fn paged(items: Vec<Value>, offset: usize, limit: usize, key: &str) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let mut out = json!({ key: page });
    if offset + limit < total {
        out["next_page_token"] = json!(page_token(offset + limit));
    }
    out
}

/// `GET registered-models/search`.
pub async fn search_models(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let limit = max_results(&p, 100, 1000)?;
    let offset = parse_page_token(p.str("page_token")?.as_deref())?;
    let filter = search::parse_filter(
        &p.str("filter")?.unwrap_or_default(),
        &search::REGISTERED_MODELS,
    )
    .map_err(invalid)?;
    let order = search::parse_order_by(&p.strings("order_by")?, &search::REGISTERED_MODELS)
        .map_err(invalid)?;
    let mut found: Vec<FoundModel> = all_models(&state, &actor)
        .await?
        .into_iter()
        .map(|json| FoundModel { json })
        .filter(|m| filter.matches(m))
        .collect();
    found.sort_by(|a, b| {
        search::compare(&order, a, b)
            .then_with(|| a.json["name"].as_str().cmp(&b.json["name"].as_str()))
    });
    let items = found.into_iter().map(|m| m.json).collect();
    Ok(Json(paged(items, offset, limit, "registered_models")))
}

/// `POST registered-models/get-latest-versions`: the newest version in each stage asked for
/// (every stage when none is).
pub async fn latest_versions(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let stages: Vec<String> = p
        .strings("stages")?
        .iter()
        .map(|s| {
            Stage::parse(s).map(|st| st.as_str().to_string()).ok_or_else(|| {
                invalid(format!(
                    "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
                ))
            })
        })
        .collect::<MlResult<_>>()?;
    let model = find(&state, &actor, &name).await?;
    let j = model_json(&state, &actor, &model).await?;
    let versions: Vec<Value> = j["latest_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| {
            stages.is_empty()
                || v["current_stage"]
                    .as_str()
                    .is_some_and(|s| stages.iter().any(|w| w == s))
        })
        .collect();
    Ok(Json(json!({ "model_versions": versions })))
}

/// `POST registered-models/set-tag`.
pub async fn set_model_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    change_tag(&state, &actor, &client, &p, false, true).await
}

/// `DELETE registered-models/delete-tag`.
pub async fn delete_model_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    change_tag(&state, &actor, &client, &p, false, false).await
}

/// The run and the path inside it that a version's source URI names: `runs:/<run>/<path>`,
/// or an artifact URI of a run (`mlflow-artifacts:/<exp>/<run>/artifacts/<path>`, also as the
/// HTTP URL of this server's artifact proxy).
fn parse_source(source: &str, run_id: Option<&str>) -> MlResult<(RunId, String)> {
    let bad = || {
        invalid(format!(
            "Unsupported model version source {source:?}: give runs:/<run id>/<path> or the mlflow-artifacts:/ URI of a run's artifacts on this server"
        ))
    };
    let (run, path) = if let Some(rest) = source.strip_prefix("runs:/") {
        let rest = rest.trim_start_matches('/');
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        (run.to_string(), path.to_string())
    } else if let Some((before, path)) = source
        .split_once("/artifacts/")
        .or_else(|| source.strip_suffix("/artifacts").map(|b| (b, "")))
    {
        let run = before.rsplit('/').next().unwrap_or("");
        (run.to_string(), path.to_string())
    } else {
        return Err(bad());
    };
    let run = match run_id.filter(|r| !r.is_empty()) {
        Some(given) if given != run => {
            return Err(invalid(format!(
                "The source {source:?} is not an artifact of run {given}"
            )));
        }
        _ => run,
    };
    let id = RunId::parse(&run).map_err(|_| bad())?;
    Ok((id, path.trim_matches('/').to_string()))
}

/// The logged model a source URI names: `models:/m-<hex>`, or its artifact URI
/// (`…/<experiment id>/models/m-<hex>/artifacts…`).
fn logged_model_in(source: &str) -> Option<String> {
    let id = match source.strip_prefix("models:/") {
        Some(rest) => rest.split('/').next().unwrap_or(""),
        None => {
            let (_, after) = source.split_once("/models/")?;
            let (id, _) = after.split_once("/artifacts")?;
            id
        }
    };
    (id.starts_with("m-") && id.len() > 2).then(|| id.to_string())
}

/// `POST model-versions/create`.
pub async fn create_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    super::require_user(&actor)?;
    let name = p.required("name")?;
    let source = p.required("source")?;
    let run_param = p.str("run_id")?;
    let logged = p
        .str("model_id")?
        .filter(|m| !m.is_empty())
        .or_else(|| logged_model_in(&source));
    let (run_id, path) = match &logged {
        Some(model_id) => super::models::files_of(&state, &actor, model_id, "").await?,
        None => parse_source(&source, run_param.as_deref())?,
    };
    let description = p.str("description")?.unwrap_or_default();
    check_len("description", &description, 65_536)?;
    let tags = super::experiments::tag_pairs(&p, "model version")?;
    let run_link = p.str("run_link")?.unwrap_or_default();
    let model = find(&state, &actor, &name).await?;
    let (run, _) = Runs { state: &state }
        .load(&actor, &run_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(format!("Run with id={run_id} not found")),
            other => other.into(),
        })?;
    let project = crate::projects::Projects { state: &state }
        .access_by_id(&actor, run.project_id)
        .await?
        .name;
    // The run's files under the source path, as the artifact version's manifest.
    let files = Files { state: &state }
        .list(&actor, &run_id, false, &client)
        .await?;
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let entries: Vec<EntrySpec> = files
        .iter()
        .filter_map(|f| {
            let rel = if f.path == path {
                f.path.rsplit('/').next().map(str::to_string)
            } else {
                f.path.strip_prefix(&prefix).map(str::to_string)
            }?;
            Some(EntrySpec {
                path: rel,
                sha256: Some(f.sha256.clone()),
                size: Some(f.size),
                reference: None,
                checksum: None,
            })
        })
        .collect();
    if entries.is_empty() {
        return Err(invalid(format!(
            "Run {run_id} has no artifacts under {:?}: log the model's files first",
            if path.is_empty() { "/" } else { &path }
        )));
    }
    if let Model::Pending(pm) = &model {
        let req = RegisterModelRequest {
            name: name.clone(),
            project: project.clone(),
            description: Some(pm.description.clone()).filter(|d| !d.is_empty()),
            tags: Vec::new(),
            require_approval: None,
        };
        Registry { state: &state }
            .register(&actor, &client, req)
            .await?;
        store::delete_pending(&state.store, &name).await?;
    }
    let req = CreateVersionRequest {
        kind: Some("model".into()),
        description: description.clone(),
        metadata: Some(json!({ "mlflow_source": source })),
        run: Some(run_id.clone()),
        aliases: Vec::new(),
        entries,
    };
    let art = Artifacts { state: &state }
        .create_version(&actor, &project, &name, req, &client)
        .await?;
    let req = CreateModelVersionRequest {
        artifact_version_id: Some(art.version.id),
        run: Some(run_id.clone()),
        description: Some(description).filter(|d| !d.is_empty()),
        ..CreateModelVersionRequest::default()
    };
    let mv = Registry { state: &state }
        .create_version(&actor, &client, &name, req)
        .await?;
    let n = number(&mv.version);
    let extra = VersionExtra {
        version: n,
        source,
        run_link,
        description: None,
        updated_at: ms(now_us()),
    };
    store::insert_version_extra(&state.store, &name, &extra).await?;
    for (k, v) in &tags {
        store::set_model_tag(&state.store, &name, n, k, v).await?;
    }
    let all_tags = store::model_tags(&state.store, &name).await?;
    Ok(Json(
        json!({ "model_version": version_json(&mv, Some(&extra), &all_tags) }),
    ))
}

/// One version, as MLflow writes it.
async fn one_version(
    state: &AppState,
    actor: &Actor,
    name: &str,
    selector: &str,
) -> MlResult<Value> {
    let mv = Registry { state }
        .version(actor, name, selector)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(format!(
                "Model Version (name={name}, version={}) not found",
                selector.trim_start_matches('@')
            )),
            other => other.into(),
        })?;
    let (tags, extras) = tokio::try_join!(
        store::model_tags(&state.store, name),
        store::version_extras(&state.store, name),
    )?;
    Ok(version_json(&mv, extras.get(&number(&mv.version)), &tags))
}

/// `GET model-versions/get`.
pub async fn get_version(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let v = version_param(&p)?;
    find(&state, &actor, &name).await?;
    let j = one_version(&state, &actor, &name, &v.to_string()).await?;
    Ok(Json(json!({ "model_version": j })))
}

/// `GET model-versions/get-download-uri`: where the version's files are.
pub async fn download_uri(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let v = version_param(&p)?;
    find(&state, &actor, &name).await?;
    let j = one_version(&state, &actor, &name, &v.to_string()).await?;
    let source = j["source"].as_str().unwrap_or_default().to_string();
    // A `runs:/` source names the run's artifact URI, a `models:/` one the logged model's.
    if let Some(model_id) = source
        .strip_prefix("models:/")
        .and_then(|_| logged_model_in(&source))
    {
        let (m, _) = super::models::resolve(&state, &actor, &model_id, false).await?;
        let uri = format!(
            "mlflow-artifacts:/{}/models/{model_id}/artifacts",
            m.project_id
        );
        return Ok(Json(json!({ "artifact_uri": uri })));
    }
    let uri = match parse_source(&source, None) {
        Ok((run, path)) if source.starts_with("runs:/") => {
            let r = Runs { state: &state }.get(&actor, &run).await?;
            let exp = Projects { state: &state }
                .access(&actor, &r.project)
                .await?
                .id;
            let base = format!("mlflow-artifacts:/{exp}/{run}/artifacts");
            if path.is_empty() {
                base
            } else {
                format!("{base}/{path}")
            }
        }
        _ => source,
    };
    Ok(Json(json!({ "artifact_uri": uri })))
}

/// `PATCH model-versions/update`: the description.
pub async fn update_version(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let v = version_param(&p)?;
    let model = find(&state, &actor, &name).await?;
    require_write(&state, &actor, &model).await?;
    one_version(&state, &actor, &name, &v.to_string()).await?;
    if let Some(d) = p.str("description")? {
        check_len("description", &d, 65_536)?;
        store::describe_version(&state.store, &name, v, &d, ms(now_us())).await?;
    }
    let j = one_version(&state, &actor, &name, &v.to_string()).await?;
    Ok(Json(json!({ "model_version": j })))
}

/// `DELETE model-versions/delete`.
pub async fn delete_version(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let v = version_param(&p)?;
    find(&state, &actor, &name).await?;
    Registry { state: &state }
        .delete_version(&actor, &client, &name, &v.to_string())
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => version_missing(&name, v),
            other => other.into(),
        })?;
    store::forget_model(&state.store, &name, Some(v)).await?;
    Ok(empty())
}

/// `POST model-versions/transition-stage`, under the registry's rules: a promotion to
/// Production that needs an approval is refused until the version is approved.
pub async fn transition(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let v = version_param(&p)?;
    let raw = p.required("stage")?;
    let stage = Stage::parse(&raw).ok_or_else(|| {
        invalid(format!(
            "Invalid Model Version stage: {raw}. Value must be one of None, Staging, Production, Archived."
        ))
    })?;
    let archive = match p.0.get("archive_existing_versions") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    find(&state, &actor, &name).await?;
    let req = TransitionRequest {
        to: stage,
        comment: Some("transitioned through the MLflow API".into()),
        archive_existing: archive,
    };
    Registry { state: &state }
        .transition(&actor, &client, &name, &v.to_string(), req)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => version_missing(&name, v),
            // The approval rule: MLflow's word for a state that forbids the change.
            ApiError::Conflict(m) => MlflowError::new(Code::InvalidState, m).into(),
            other => other.into(),
        })?;
    store::touch_version(&state.store, &name, v, ms(now_us())).await?;
    let j = one_version(&state, &actor, &name, &v.to_string()).await?;
    Ok(Json(json!({ "model_version": j })))
}

/// A version as the search syntax sees it.
struct FoundVersion {
    json: Value,
}

impl Searchable for FoundVersion {
    fn value(&self, field: &Field) -> Option<search::Value> {
        let j = &self.json;
        let s = |k: &str| j[k].as_str().map(|s| search::Value::Str(s.into()));
        match field {
            Field::Attribute(a) => match a.as_str() {
                "name" | "run_id" | "source" | "current_stage" | "user_id" | "status" => s(a),
                "source_path" => s("source"),
                "version_number" | "version" => j["version"]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(search::Value::Num),
                "creation_timestamp" | "last_updated_timestamp" => {
                    j[a.as_str()].as_i64().map(|t| search::Value::Num(t as f64))
                }
                _ => None,
            },
            Field::Tag(k) => tag_of(j, k),
            _ => None,
        }
    }
}

/// `GET model-versions/search`.
pub async fn search_versions(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let limit = max_results(&p, 10_000, 200_000)?;
    let offset = parse_page_token(p.str("page_token")?.as_deref())?;
    let filter = search::parse_filter(
        &p.str("filter")?.unwrap_or_default(),
        &search::MODEL_VERSIONS,
    )
    .map_err(invalid)?;
    let order = search::parse_order_by(&p.strings("order_by")?, &search::MODEL_VERSIONS)
        .map_err(invalid)?;
    let names: Vec<String> = match filter.attribute_eq("name") {
        Some(n) => vec![n.to_string()],
        None => Registry { state: &state }
            .list(&actor, None, None)
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect(),
    };
    let mut found = Vec::new();
    for name in names {
        let versions = match (Registry { state: &state })
            .versions(&actor, &name, None)
            .await
        {
            Ok(v) => v,
            Err(ApiError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let (tags, extras) = tokio::try_join!(
            store::model_tags(&state.store, &name),
            store::version_extras(&state.store, &name),
        )?;
        for mv in &versions {
            let json = version_json(mv, extras.get(&number(&mv.version)), &tags);
            let f = FoundVersion { json };
            if filter.matches(&f) {
                found.push(f);
            }
        }
    }
    found.sort_by(|a, b| {
        search::compare(&order, a, b)
            .then_with(|| a.json["name"].as_str().cmp(&b.json["name"].as_str()))
            .then_with(|| {
                let n = |j: &Value| j["version"].as_str().map_or(0, number);
                n(&b.json).cmp(&n(&a.json))
            })
    });
    let items = found.into_iter().map(|f| f.json).collect();
    Ok(Json(paged(items, offset, limit, "model_versions")))
}

/// `POST model-versions/set-tag`.
pub async fn set_version_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    change_tag(&state, &actor, &client, &p, true, true).await
}

/// `DELETE model-versions/delete-tag`.
pub async fn delete_version_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    change_tag(&state, &actor, &client, &p, true, false).await
}

/// Sets (`set`) or deletes a tag of a model or, with `versioned`, of one of its versions.
async fn change_tag(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    p: &Params,
    versioned: bool,
    set: bool,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let version = if versioned {
        Some(version_param(p)?)
    } else {
        None
    };
    let model = find(state, actor, &name).await?;
    require_write(state, actor, &model).await?;
    if let (Some(v), true) = (version, set) {
        one_version(state, actor, &name, &v.to_string()).await?;
    }
    let key = p.required("key")?;
    let (number, what, resource) = match version {
        None => (
            0,
            format!("registered model {name}"),
            format!("model:{name}"),
        ),
        Some(v) => (
            v,
            format!("version {v} of registered model {name}"),
            format!("model:{name}:v{v}"),
        ),
    };
    let meta = if set {
        let value = p.str("value")?.unwrap_or_default();
        let kind = if versioned {
            "model version"
        } else {
            "registered model"
        };
        check_tag(kind, &key, &value)?;
        store::set_model_tag(&state.store, &name, number, &key, &value).await?;
        json!({ "tag_set": key })
    } else {
        if !store::delete_model_tag(&state.store, &name, number, &key).await? {
            return Err(missing(format!("No tag with key {key} on {what}")));
        }
        json!({ "tag_deleted": key })
    };
    super::audit(
        state,
        actor,
        client,
        AuditAction::ModelUpdate,
        resource,
        meta,
    )
    .await;
    Ok(empty())
}

/// `POST registered-models/alias`: points an alias at a version.
pub async fn set_alias(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let alias = p.required("alias")?;
    let v = version_param(&p)?;
    find(&state, &actor, &name).await?;
    let req = SetModelAliasRequest {
        version: v.to_string(),
        comment: None,
    };
    Registry { state: &state }
        .set_alias(&actor, &client, &name, &alias, req)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => version_missing(&name, v),
            other => other.into(),
        })?;
    Ok(empty())
}

/// `DELETE registered-models/alias`.
pub async fn delete_alias(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let alias = p.required("alias")?;
    find(&state, &actor, &name).await?;
    Registry { state: &state }
        .remove_alias(&actor, &client, &name, &alias)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(format!(
                "Registered model alias {alias} not found on model {name}"
            )),
            other => other.into(),
        })?;
    Ok(empty())
}

/// `GET registered-models/alias`: the version an alias points at.
pub async fn get_by_alias(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let name = p.required("name")?;
    let alias = p.required("alias")?;
    find(&state, &actor, &name).await?;
    let j = one_version(&state, &actor, &name, &format!("@{alias}"))
        .await
        .map_err(|_| {
            // MLflow answers an unknown alias as a bad parameter, not a missing resource.
            invalid(format!(
                "Registered model alias {alias} not found on model {name}"
            ))
        })?;
    Ok(Json(json!({ "model_version": j })))
}
