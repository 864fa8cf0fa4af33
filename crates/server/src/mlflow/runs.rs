//! MLflow runs: our runs, with params in the config, MLflow's key→value tags beside the plain
//! ones, and every metric entry kept in an append-only record beside the native series.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use wanllmdb_api_types::RunId;
use wanllmdb_api_types::metrics::{HistoryPoint, MetricValue, MetricValues};
use wanllmdb_api_types::runs::{
    CreateRunRequest, FinishRunRequest, Run, RunState, UpdateRunRequest,
};

use super::experiments::{self, check_tag, view_type};
use super::models::OUTPUTS_TAG;
use super::search::{self, Field, Searchable};
use super::store::{self, Entry};
use super::{
    MlResult, Params, check_len, empty, float_json, invalid, max_results, missing, page_token,
    parse_float, parse_page_token,
};
use crate::audit::AuditAction;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::metrics::Metrics;
use crate::runs::{RunQuery, Runs};
use crate::state::AppState;
use crate::store::now_us;

/// The tag MLflow keeps a run's name in.
const RUN_NAME_TAG: &str = "mlflow.runName";
/// The tag MLflow keeps a run's description in.
const NOTE_TAG: &str = "mlflow.note.content";
/// Where a run's logged dataset inputs are kept (a JSON list), hidden from MLflow's tags.
const INPUTS_TAG: &str = "mlflow.datasets";

/// MLflow's limits per log-batch request.
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
const MAX_BATCH_TOTAL: usize = 1000;
const MAX_PARAM_VALUE: usize = 6000;

/// A run's MLflow status.
fn status(state: RunState) -> &'static str {
    match state {
        RunState::Running => "RUNNING",
        RunState::Finished => "FINISHED",
        RunState::Crashed => "FAILED",
        RunState::Killed => "KILLED",
    }
}

/// Milliseconds of one of our RFC 3339 times.
pub(super) fn time_ms(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A run's params: its config, nested objects flattened with `.`, values as text (strings as
/// they are, anything else as JSON).
pub fn params_of(config: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Value::Object(m) = config {
        for (k, v) in m {
            walk(k, v, &mut out);
        }
    }
    out
}

/// What MLflow shows of a run beyond the native view.
#[derive(Debug, Default)]
struct Extra {
    pk: i64,
    tag_values: BTreeMap<String, String>,
    deleted_at: Option<i64>,
    /// Latest entry per key; keys missing here come from the native summary.
    latest: Vec<Entry>,
}

/// A run as MLflow's `RunInfo`.
fn info_json(run: &Run, experiment_id: &str, extra: &Extra) -> Value {
    let mut info = json!({
        "run_id": run.id.as_str(),
        "run_uuid": run.id.as_str(),
        "run_name": run.name,
        "experiment_id": experiment_id,
        "user_id": run.created_by,
        "status": status(run.state),
        "start_time": time_ms(&run.started_at),
        "artifact_uri": format!("mlflow-artifacts:/{experiment_id}/{}/artifacts", run.id),
        "lifecycle_stage": if extra.deleted_at.is_some() { "deleted" } else { "active" },
    });
    if let Some(end) = run.finished_at.as_deref().and_then(time_ms) {
        info["end_time"] = json!(end);
    }
    info
}

/// A run as MLflow's `Run` (info, data, inputs).
fn run_json(run: &Run, experiment_id: &str, extra: &Extra) -> Value {
    let updated = time_ms(&run.updated_at).unwrap_or(0);
    let mut metrics: Vec<Value> = extra
        .latest
        .iter()
        .map(|e| {
            json!({"key": e.key, "value": float_json(e.value), "timestamp": e.timestamp_ms, "step": e.step})
        })
        .collect();
    for (k, MetricValue(v)) in &run.summary {
        if !extra.latest.iter().any(|e| &e.key == k) {
            metrics
                .push(json!({"key": k, "value": float_json(*v), "timestamp": updated, "step": 0}));
        }
    }
    let params: Vec<Value> = params_of(&run.config)
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let mut inputs = json!([]);
    let mut outputs = json!([]);
    let mut tags: Vec<Value> = Vec::new();
    for (k, v) in &extra.tag_values {
        if k == INPUTS_TAG {
            inputs = serde_json::from_str(v).unwrap_or_else(|_| json!([]));
        } else if k == OUTPUTS_TAG {
            outputs = serde_json::from_str(v).unwrap_or_else(|_| json!([]));
        } else {
            tags.push(json!({"key": k, "value": v}));
        }
    }
    for t in &run.tags {
        if !extra.tag_values.contains_key(t) {
            tags.push(json!({"key": t, "value": ""}));
        }
    }
    tags.push(json!({"key": RUN_NAME_TAG, "value": run.name}));
    if !run.notes.is_empty() {
        tags.push(json!({"key": NOTE_TAG, "value": run.notes}));
    }
    json!({
        "info": info_json(run, experiment_id, extra),
        "data": {"metrics": metrics, "params": params, "tags": tags},
        "inputs": {"dataset_inputs": inputs},
        "outputs": {"model_outputs": outputs},
    })
}

/// A run the caller may read, with what MLflow shows of it.
async fn load(state: &AppState, actor: &Actor, id: &RunId) -> MlResult<(Run, Extra)> {
    let runs = Runs { state };
    let (pk, run) = runs.get_with_pk(actor, id).await.map_err(not_found(id))?;
    let pks = [pk];
    let (mut tags, deleted, latest) = tokio::try_join!(
        runs.tag_values(&pks),
        store::deleted_runs(&state.store, &pks),
        store::latest_entries(&state.store, pk),
    )?;
    let extra = Extra {
        pk,
        tag_values: tags.remove(&pk).unwrap_or_default(),
        deleted_at: deleted.get(&pk).copied(),
        latest,
    };
    Ok((run, extra))
}

/// MLflow's not-found for a run, in place of ours.
fn not_found(id: &RunId) -> impl Fn(ApiError) -> super::Failure + '_ {
    move |e| match e {
        ApiError::NotFound(_) => missing(format!("Run with id={id} not found")),
        other => other.into(),
    }
}

/// The experiment id MLflow shows for a run: its project's id.
async fn experiment_of(state: &AppState, actor: &Actor, run: &Run) -> MlResult<String> {
    let access = crate::projects::Projects { state }
        .access(actor, &run.project)
        .await?;
    Ok(access.id.to_string())
}

/// `POST runs/create`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    super::require_user(&actor)?;
    let exp_id = p.str("experiment_id")?.unwrap_or_else(|| "0".into());
    let (exp, access) = experiments::resolve(&state, &actor, &client, &exp_id).await?;
    access.require_write()?;
    if exp.deleted() {
        return Err(invalid(format!(
            "The experiment {} must be in the 'active' state. Current state is deleted.",
            exp.project_id
        )));
    }
    let mut tags = experiments::tag_pairs(&p, "run")?;
    let name_tag = tags
        .iter()
        .find(|(k, _)| k == RUN_NAME_TAG)
        .map(|(_, v)| v.clone());
    let name = p.str("run_name")?.filter(|n| !n.is_empty()).or(name_tag);
    if let Some(n) = &name {
        check_len("run_name", n, 250)?;
    }
    let notes = tags
        .iter()
        .find(|(k, _)| k == NOTE_TAG)
        .map(|(_, v)| v.clone());
    tags.retain(|(k, _)| ![RUN_NAME_TAG, NOTE_TAG, INPUTS_TAG, OUTPUTS_TAG].contains(&k.as_str()));
    let started_at = p.i64("start_time")?.map(|t| t as f64 / 1000.0);
    let git_commit = tags
        .iter()
        .find(|(k, _)| k == "mlflow.source.git.commit")
        .map(|(_, v)| v.clone());
    let program = tags
        .iter()
        .find(|(k, _)| k == "mlflow.source.name")
        .map(|(_, v)| v.clone());
    let req = CreateRunRequest {
        name,
        notes,
        git: git_commit.map(|commit| wanllmdb_api_types::runs::GitInfo {
            commit: Some(commit),
            ..Default::default()
        }),
        program,
        started_at,
        ..CreateRunRequest::new(access.name.clone())
    };
    let runs = Runs { state: &state };
    let (run, _) = runs.create(&actor, req, &client).await?;
    let (row, _) = runs.load(&actor, &run.id).await?;
    store::mark_mlflow_run(&state.store, row.pk).await?;
    runs.set_tag_values(row.pk, &tags).await?;
    let (run, extra) = load(&state, &actor, &run.id).await?;
    Ok(Json(
        json!({ "run": run_json(&run, &exp.project_id.to_string(), &extra) }),
    ))
}

/// `GET runs/get`.
pub async fn get(State(state): State<AppState>, actor: Actor, p: Params) -> MlResult<Json<Value>> {
    let id = p.run_id()?;
    let (run, extra) = load(&state, &actor, &id).await?;
    let exp = experiment_of(&state, &actor, &run).await?;
    Ok(Json(json!({ "run": run_json(&run, &exp, &extra) })))
}

/// A run the caller may write to, as (run id, internal key).
async fn writable(state: &AppState, actor: &Actor, p: &Params) -> MlResult<(RunId, i64)> {
    super::require_user(actor)?;
    let id = p.run_id()?;
    let (row, _) = Runs { state }
        .load_for_write(actor, &id)
        .await
        .map_err(not_found(&id))?;
    Ok((id, row.pk))
}

/// Like [`writable`], for a change MLflow allows only on an active (not deleted) run.
async fn active(state: &AppState, actor: &Actor, p: &Params) -> MlResult<(RunId, i64)> {
    let (id, pk) = writable(state, actor, p).await?;
    if store::deleted_runs(&state.store, &[pk])
        .await?
        .contains_key(&pk)
    {
        return Err(invalid(format!(
            "The run {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok((id, pk))
}

/// `POST runs/update`: status, end time and name.
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let (id, _) = active(&state, &actor, &p).await?;
    let runs = Runs { state: &state };
    if let Some(name) = p.str("run_name")?.filter(|n| !n.is_empty()) {
        check_len("run_name", &name, 250)?;
        let req = UpdateRunRequest {
            name: Some(name),
            tags: None,
            notes: None,
            config: None,
        };
        runs.update(&actor, &id, req, &client).await?;
    }
    let end_time = p.i64("end_time")?;
    if let Some(s) = p.str("status")? {
        let target = match s.to_ascii_uppercase().as_str() {
            "RUNNING" | "SCHEDULED" | "1" | "2" => None,
            "FINISHED" | "3" => Some(RunState::Finished),
            "FAILED" | "4" => Some(RunState::Crashed),
            "KILLED" | "5" => Some(RunState::Killed),
            _ => {
                return Err(invalid(format!(
                    "Invalid value {s:?} for parameter 'status': use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
                )));
            }
        };
        let current = runs.get(&actor, &id).await?;
        match target {
            Some(st) => {
                let req = FinishRunRequest {
                    state: st,
                    exit_code: None,
                    reason: None,
                    finished_at: end_time.map(|t| t as f64 / 1000.0),
                };
                runs.finish(&actor, &id, req, &client).await?;
            }
            None if current.state != RunState::Running => {
                // Back to running: resume it in its project.
                let req = CreateRunRequest {
                    id: Some(id.clone()),
                    ..CreateRunRequest::new(current.project.clone())
                };
                runs.create(&actor, req, &client).await?;
            }
            None => {}
        }
    }
    let (run, extra) = load(&state, &actor, &id).await?;
    let exp = experiment_of(&state, &actor, &run).await?;
    Ok(Json(json!({ "run_info": info_json(&run, &exp, &extra) })))
}

/// `POST runs/delete`: marks it deleted for MLflow (kept, restorable).
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    set_stage(&state, &actor, &client, &p, true).await
}

/// `POST runs/restore`.
pub async fn restore(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    set_stage(&state, &actor, &client, &p, false).await
}

/// Marks a run deleted for MLflow, or active again.
async fn set_stage(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    p: &Params,
    deleted: bool,
) -> MlResult<Json<Value>> {
    let (id, pk) = writable(state, actor, p).await?;
    let (stage, at) = if deleted {
        ("deleted", Some(super::ms(now_us())))
    } else {
        ("active", None)
    };
    store::set_run_stage(&state.store, pk, stage, at).await?;
    audit_run(
        state,
        actor,
        client,
        &id,
        json!({ "lifecycle_stage": stage }),
    )
    .await;
    Ok(empty())
}

/// Audits a change of a run that only the MLflow API makes.
async fn audit_run(state: &AppState, actor: &Actor, client: &ClientInfo, id: &RunId, meta: Value) {
    let resource = format!("run:{id}");
    super::audit(state, actor, client, AuditAction::RunUpdate, resource, meta).await;
}

/// Checks a metric or param key the way MLflow does.
fn check_key(what: &str, key: &str) -> MlResult<()> {
    if key.is_empty() {
        return Err(invalid(format!(
            "Missing value for required parameter '{what} key'"
        )));
    }
    check_len(&format!("{what} key"), key, 250)?;
    let ok = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':'));
    if !ok || key.split('/').any(|part| part == "..") || key.starts_with('/') {
        return Err(invalid(format!(
            "Invalid {what} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    Ok(())
}

/// A metric entry of a request (`log-metric` or one of `log-batch`'s `metrics`).
fn entry(p: &Params, what: &str) -> MlResult<Entry> {
    let key = p.required("key")?;
    check_key("metric", &key)?;
    let value = parse_float(p.0.get("value").unwrap_or(&Value::Null), "value")?;
    let timestamp_ms = p
        .i64("timestamp")?
        .ok_or_else(|| invalid(format!("Missing value for required parameter '{what}timestamp'. See the API docs for more information about request parameters.")))?;
    let step = p.i64("step")?.unwrap_or(0);
    Ok(Entry {
        key,
        step,
        timestamp_ms,
        value,
    })
}

/// Stores metric entries: every one in the record (a retry stores nothing twice), and in the
/// native series the latest by timestamp of each step.
async fn log_entries(
    state: &AppState,
    id: &RunId,
    pk: i64,
    mut entries: Vec<Entry>,
) -> MlResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    store::record_entries(&state.store, pk, &entries).await?;
    entries.sort_by(|a, b| {
        (a.step, a.timestamp_ms)
            .cmp(&(b.step, b.timestamp_ms))
            .then_with(|| a.value.total_cmp(&b.value))
    });
    let points: Vec<HistoryPoint> = entries
        .into_iter()
        .map(|e| HistoryPoint {
            step: e.step,
            timestamp: Some(e.timestamp_ms as f64 / 1000.0),
            values: MetricValues(vec![(e.key, MetricValue(e.value))]),
        })
        .collect();
    Metrics { state }.append_checked(pk, id, points).await?;
    Ok(())
}

/// `POST runs/log-metric`.
pub async fn log_metric(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let (id, pk) = active(&state, &actor, &p).await?;
    let e = entry(&p, "")?;
    log_entries(&state, &id, pk, vec![e]).await?;
    Ok(empty())
}

/// Params to set, checked against the run's: a changed value is refused, as MLflow does.
async fn set_params(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    id: &RunId,
    params: Vec<(String, String)>,
) -> MlResult<()> {
    if params.is_empty() {
        return Ok(());
    }
    let runs = Runs { state };
    let run = runs.get(actor, id).await?;
    let have = params_of(&run.config);
    let mut patch = serde_json::Map::new();
    for (k, v) in params {
        check_key("param", &k)?;
        check_len("param value", &v, MAX_PARAM_VALUE)?;
        match have.get(&k) {
            Some(old) if *old != v => {
                return Err(invalid(format!(
                    "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for run ID='{id}'. Attempted logging new value '{v}'."
                )));
            }
            Some(_) => {}
            None => {
                if let Some(Value::String(prev)) = patch.get(&k)
                    && *prev != v
                {
                    return Err(invalid(format!(
                        "Duplicate parameter keys have been submitted: key '{k}' with values '{prev}' and '{v}'."
                    )));
                }
                patch.insert(k, Value::String(v));
            }
        }
    }
    if patch.is_empty() {
        return Ok(());
    }
    let req = UpdateRunRequest {
        name: None,
        tags: None,
        notes: None,
        config: Some(Value::Object(patch)),
    };
    runs.update(actor, id, req, client).await?;
    Ok(())
}

/// `POST runs/log-parameter`.
pub async fn log_param(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let (id, _) = active(&state, &actor, &p).await?;
    let key = p.required("key")?;
    let value = p.str("value")?.unwrap_or_default();
    set_params(&state, &actor, &client, &id, vec![(key, value)]).await?;
    Ok(empty())
}

/// Sets tags: the name and note tags change the run's name and notes, the rest go to its
/// key→value tags.
async fn set_tags(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    id: &RunId,
    pk: i64,
    tags: Vec<(String, String)>,
) -> MlResult<()> {
    let mut name = None;
    let mut notes = None;
    let mut rest = Vec::new();
    for (k, v) in tags {
        match k.as_str() {
            RUN_NAME_TAG => name = Some(v),
            NOTE_TAG => notes = Some(v),
            INPUTS_TAG | OUTPUTS_TAG => {
                return Err(invalid(format!(
                    "the tag key '{k}' is reserved for a run's logged inputs and outputs"
                )));
            }
            _ => rest.push((k, v)),
        }
    }
    if name.is_some() || notes.is_some() {
        let req = UpdateRunRequest {
            name: name.filter(|n| !n.trim().is_empty()),
            tags: None,
            notes,
            config: None,
        };
        Runs { state }.update(actor, id, req, client).await?;
    }
    if !rest.is_empty() {
        Runs { state }.set_tag_values(pk, &rest).await?;
        let keys: Vec<&str> = rest.iter().map(|(k, _)| k.as_str()).collect();
        audit_run(state, actor, client, id, json!({ "tag_values": keys })).await;
    }
    Ok(())
}

/// `POST runs/set-tag`.
pub async fn set_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let (id, pk) = active(&state, &actor, &p).await?;
    let key = p.required("key")?;
    let value = p.str("value")?.unwrap_or_default();
    check_tag("run", &key, &value)?;
    set_tags(&state, &actor, &client, &id, pk, vec![(key, value)]).await?;
    Ok(empty())
}

/// `POST runs/delete-tag`.
pub async fn delete_tag(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let (id, pk) = active(&state, &actor, &p).await?;
    let key = p.required("key")?;
    if (Runs { state: &state }).delete_tag_value(pk, &key).await? {
        let meta = json!({ "tag_value_deleted": key });
        audit_run(&state, &actor, &client, &id, meta).await;
        return Ok(empty());
    }
    let run = Runs { state: &state }.get(&actor, &id).await?;
    if run.tags.contains(&key) {
        Runs { state: &state }
            .change_tag(&actor, &id, &key, false, &client)
            .await?;
        return Ok(empty());
    }
    Err(missing(format!(
        "No tag with name: {key} in run with id {id}"
    )))
}

/// `POST runs/log-batch`.
pub async fn log_batch(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let (id, pk) = active(&state, &actor, &p).await?;
    let metrics = p.objects("metrics")?;
    let params = p.objects("params")?;
    let tags = p.objects("tags")?;
    if metrics.len() > MAX_BATCH_METRICS
        || params.len() > MAX_BATCH_PARAMS
        || tags.len() > MAX_BATCH_TAGS
        || metrics.len() + params.len() + tags.len() > MAX_BATCH_TOTAL
    {
        return Err(invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics, {MAX_BATCH_PARAMS} params, and {MAX_BATCH_TAGS} tags, {MAX_BATCH_TOTAL} in all. Got {} metrics, {} params, and {} tags.",
            metrics.len(),
            params.len(),
            tags.len()
        )));
    }
    let entries = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| entry(m, &format!("metrics[{i}].")))
        .collect::<MlResult<Vec<_>>>()?;
    let params = params
        .iter()
        .map(|m| Ok((m.required("key")?, m.str("value")?.unwrap_or_default())))
        .collect::<MlResult<Vec<_>>>()?;
    let tags = tags
        .iter()
        .map(|m| {
            let (k, v) = (m.required("key")?, m.str("value")?.unwrap_or_default());
            check_tag("run", &k, &v)?;
            Ok((k, v))
        })
        .collect::<MlResult<Vec<_>>>()?;
    set_params(&state, &actor, &client, &id, params).await?;
    if !tags.is_empty() {
        set_tags(&state, &actor, &client, &id, pk, tags).await?;
    }
    log_entries(&state, &id, pk, entries).await?;
    Ok(empty())
}

/// `POST runs/log-inputs`: datasets the run used, shown as its inputs.
pub async fn log_inputs(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let (_, pk) = active(&state, &actor, &p).await?;
    let datasets = p.objects("datasets")?;
    let runs = Runs { state: &state };
    let mut have: Vec<Value> = runs
        .tag_values(&[pk])
        .await?
        .remove(&pk)
        .unwrap_or_default()
        .remove(INPUTS_TAG)
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    for (i, d) in datasets.into_iter().enumerate() {
        let Some(Value::Object(ds)) = d.0.get("dataset") else {
            return Err(invalid(format!("datasets[{i}].dataset is required")));
        };
        for field in ["name", "digest"] {
            if !ds.get(field).is_some_and(Value::is_string) {
                return Err(invalid(format!(
                    "datasets[{i}].dataset.{field} is required"
                )));
            }
        }
        let input = Value::Object(d.0.clone());
        let same = |v: &Value| {
            v.get("dataset").and_then(|x| x.get("name")) == ds.get("name")
                && v.get("dataset").and_then(|x| x.get("digest")) == ds.get("digest")
        };
        match have.iter_mut().find(|v| same(v)) {
            Some(old) => *old = input,
            None => have.push(input),
        }
    }
    let text = Value::Array(have).to_string();
    runs.set_tag_values(pk, &[(INPUTS_TAG.into(), text)])
        .await?;
    Ok(empty())
}

/// A run as the search syntax sees it.
struct Found {
    run: Run,
    experiment_id: String,
    extra: Extra,
    params: BTreeMap<String, String>,
}

impl Searchable for Found {
    fn value(&self, field: &Field) -> Option<search::Value> {
        use search::Value::{Num, Str};
        match field {
            Field::Attribute(a) => match a.as_str() {
                "run_id" | "run_uuid" | "id" => Some(Str(self.run.id.to_string())),
                "run_name" | "name" => Some(Str(self.run.name.clone())),
                "status" => Some(Str(status(self.run.state).into())),
                "user_id" => Some(Str(self.run.created_by.clone())),
                "artifact_uri" => Some(Str(format!(
                    "mlflow-artifacts:/{}/{}/artifacts",
                    self.experiment_id, self.run.id
                ))),
                "lifecycle_stage" => Some(Str(if self.extra.deleted_at.is_some() {
                    "deleted"
                } else {
                    "active"
                }
                .into())),
                "experiment_id" => Some(Str(self.experiment_id.clone())),
                "start_time" | "created" | "Created" => {
                    time_ms(&self.run.started_at).map(|t| Num(t as f64))
                }
                "end_time" => self
                    .run
                    .finished_at
                    .as_deref()
                    .and_then(time_ms)
                    .map(|t| Num(t as f64)),
                _ => None,
            },
            Field::Metric(k) => self.run.summary.get(k).map(|v| Num(v.0)),
            Field::Param(k) => self.params.get(k).map(|v| Str(v.clone())),
            Field::Tag(k) => match k.as_str() {
                RUN_NAME_TAG => Some(Str(self.run.name.clone())),
                NOTE_TAG if !self.run.notes.is_empty() => Some(Str(self.run.notes.clone())),
                _ => self
                    .extra
                    .tag_values
                    .get(k)
                    .map(|v| Str(v.clone()))
                    .or_else(|| {
                        self.run
                            .tags
                            .iter()
                            .any(|t| t == k)
                            .then(|| Str(String::new()))
                    }),
            },
            Field::Dataset(_) => None,
        }
    }
}

/// `POST runs/search`.
pub async fn search(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let limit = max_results(&p, 1000, 50_000)?;
    let offset = parse_page_token(p.str("page_token")?.as_deref())?;
    let (active, deleted) = view_type(&p, "run_view_type")?;
    let filter = search::parse_filter(&p.str("filter")?.unwrap_or_default(), &search::RUNS)
        .map_err(invalid)?;
    let order = search::parse_order_by(&p.strings("order_by")?, &search::RUNS).map_err(invalid)?;
    let runs = Runs { state: &state };
    let mut found = Vec::new();
    for exp_id in p.strings("experiment_ids")? {
        let (exp, access) = experiments::resolve(&state, &actor, &client, &exp_id).await?;
        let exp_id = exp.project_id.to_string();
        let mut cursor = None;
        loop {
            let q = RunQuery {
                project: Some(access.name.clone()),
                limit: Some(1000),
                cursor: cursor.take(),
                ..RunQuery::default()
            };
            let page = runs.list(&actor, &q).await?;
            let ids: Vec<RunId> = page.items.iter().map(|r| r.id.clone()).collect();
            let pks = store::run_pks(&state.store, &ids).await?;
            let all: Vec<i64> = pks.values().copied().collect();
            let (mut tags, dels) = tokio::try_join!(
                runs.tag_values(&all),
                store::deleted_runs(&state.store, &all),
            )?;
            for run in page.items {
                let pk = pks.get(run.id.as_str()).copied().unwrap_or(-1);
                let extra = Extra {
                    pk,
                    tag_values: tags.remove(&pk).unwrap_or_default(),
                    deleted_at: dels.get(&pk).copied(),
                    latest: Vec::new(),
                };
                let visible = if extra.deleted_at.is_some() {
                    deleted
                } else {
                    active
                };
                if !visible {
                    continue;
                }
                let f = Found {
                    params: params_of(&run.config),
                    run,
                    experiment_id: exp_id.clone(),
                    extra,
                };
                if filter.matches(&f) {
                    found.push(f);
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    found.sort_by(|a, b| {
        search::compare(&order, a, b)
            .then_with(|| {
                let (sa, sb) = (time_ms(&a.run.started_at), time_ms(&b.run.started_at));
                sb.cmp(&sa)
            })
            .then_with(|| a.run.id.as_str().cmp(b.run.id.as_str()))
    });
    let total = found.len();
    let mut page = Vec::new();
    for f in found.iter_mut().skip(offset).take(limit) {
        f.extra.latest = store::latest_entries(&state.store, f.extra.pk).await?;
        page.push(run_json(&f.run, &f.experiment_id, &f.extra));
    }
    let mut out = json!({ "runs": page });
    if offset + limit < total {
        out["next_page_token"] = json!(page_token(offset + limit));
    }
    Ok(Json(out))
}

/// The entries of one key of a run: the record's, or for a key logged through the native API,
/// the native series (one entry a step).
async fn entries_of(
    state: &AppState,
    actor: &Actor,
    id: &RunId,
    pk: i64,
    key: &str,
) -> MlResult<Vec<Entry>> {
    let recorded = store::recorded(&state.store, pk, key).await?;
    if !recorded.is_empty() {
        return Ok(recorded);
    }
    let h = Metrics { state }
        .history(actor, id, &[key.to_string()], None, None, None)
        .await?;
    let mut out = Vec::new();
    for s in h.series {
        for i in 0..s.steps.len() {
            out.push(Entry {
                key: s.key.clone(),
                step: s.steps[i],
                timestamp_ms: super::ms(s.timestamps_us[i]),
                value: s.values[i],
            });
        }
    }
    Ok(out)
}

fn entry_json(e: &Entry) -> Value {
    json!({"key": e.key, "value": float_json(e.value), "timestamp": e.timestamp_ms, "step": e.step})
}

/// Entries as MLflow's JSON: `{"metrics": [...]}` and the next page's token, written
/// straight into the body (a history may hold millions of entries).
fn history_body(key: &str, entries: &[Entry], next: Option<String>) -> String {
    use std::fmt::Write as _;
    let key = Value::String(key.to_string()).to_string();
    let mut out = String::with_capacity(64 + entries.len() * (key.len() + 64));
    out.push_str("{\"metrics\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"key\":{key},\"value\":");
        if e.value.is_finite() {
            let _ = write!(out, "{:?}", e.value);
        } else {
            out.push_str(&float_json(e.value).to_string());
        }
        let _ = write!(
            out,
            ",\"timestamp\":{},\"step\":{}}}",
            e.timestamp_ms, e.step
        );
    }
    out.push(']');
    if let Some(t) = next {
        let _ = write!(out, ",\"next_page_token\":{}", Value::String(t));
    }
    out.push('}');
    out
}

/// A keyset page token of the recorded history: after which entry the next page starts
/// (`h:<step>:<timestamp>:<value bits>`).
fn history_token(c: store::Cursor) -> String {
    crate::paging::cursor(&format!("h:{}:{}:{}", c.0, c.1, c.2))
}

/// The cursor a history page token holds, or the offset of an offset token.
fn parse_history_token(token: Option<&str>) -> MlResult<(Option<store::Cursor>, usize)> {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok((None, 0));
    };
    let after = crate::paging::position(t).ok().and_then(|p| {
        let mut parts = p.strip_prefix("h:")?.splitn(3, ':');
        let mut next = || parts.next()?.parse::<i64>().ok();
        Some((next()?, next()?, next()?))
    });
    match after {
        Some(c) => Ok((Some(c), 0)),
        None => Ok((None, parse_page_token(Some(t))?)),
    }
}

/// `GET metrics/get-history`: every entry logged for a key, duplicates at a step included, in
/// pages of `max_results` when it is given.
pub async fn get_history(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<axum::response::Response> {
    let id = p.run_id()?;
    let key = p.required("metric_key")?;
    let (row, _) = Runs { state: &state }
        .load(&actor, &id)
        .await
        .map_err(not_found(&id))?;
    let (after, offset) = parse_history_token(p.str("page_token")?.as_deref())?;
    let limit = match p.i64("max_results")? {
        None => None,
        Some(_) => Some(max_results(&p, 25_000, 25_000)?),
    };
    // One more than the page tells whether another follows.
    let want = limit.map_or(i64::MAX, |l| l as i64 + 1);
    let mut entries = store::recorded_page(&state.store, row.pk, &key, after, want).await?;
    let mut next = None;
    if entries.is_empty() && after.is_none() {
        // A key logged through the native API: its series, paged by offset.
        let all = entries_of(&state, &actor, &id, row.pk, &key).await?;
        let end = limit.map_or(all.len(), |l| (offset + l).min(all.len()));
        if end < all.len() {
            next = Some(page_token(end));
        }
        entries = all.into_iter().take(end).skip(offset).collect();
    } else if let Some(l) = limit
        && entries.len() > l
    {
        entries.truncate(l);
        next = entries.last().map(|e| history_token(store::cursor_of(e)));
    }
    let body = history_body(&key, &entries, next);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `GET metrics/get-history-bulk-interval`: one key of several runs in a step range, each run
/// sampled to at most `max_results` steps spread evenly (its first and last kept).
pub async fn get_history_bulk_interval(
    State(state): State<AppState>,
    actor: Actor,
    p: Params,
) -> MlResult<Json<Value>> {
    let ids = p.strings("run_ids")?;
    if ids.is_empty() {
        return Err(invalid(
            "Missing value for required parameter 'run_ids'. See the API docs for more information about request parameters.",
        ));
    }
    if ids.len() > 100 {
        return Err(invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received {} run_ids.",
            ids.len()
        )));
    }
    let key = p.required("metric_key")?;
    let lo = p.i64("start_step")?;
    let hi = p.i64("end_step")?;
    if let (Some(a), Some(b)) = (lo, hi)
        && a > b
    {
        return Err(invalid(format!(
            "end_step must be greater than start_step. Found start_step={a} and end_step={b}."
        )));
    }
    let max = max_results(&p, 320, 1000)?;
    let mut out = Vec::new();
    for raw in ids {
        let id = RunId::parse(&raw).map_err(|_| missing(format!("Run with id={raw} not found")))?;
        let (row, _) = Runs { state: &state }
            .load(&actor, &id)
            .await
            .map_err(not_found(&id))?;
        let entries: Vec<Entry> = entries_of(&state, &actor, &id, row.pk, &key)
            .await?
            .into_iter()
            .filter(|e| lo.is_none_or(|l| e.step >= l) && hi.is_none_or(|h| e.step <= h))
            .collect();
        let mut steps: Vec<i64> = entries.iter().map(|e| e.step).collect();
        steps.dedup();
        let keep: std::collections::HashSet<i64> = if steps.len() <= max {
            steps.iter().copied().collect()
        } else {
            let last = steps.len() - 1;
            (0..max)
                .map(|i| steps[if max == 1 { 0 } else { i * last / (max - 1) }])
                .collect()
        };
        for e in entries.iter().filter(|e| keep.contains(&e.step)) {
            let mut v = entry_json(e);
            v["run_id"] = json!(id.as_str());
            out.push(v);
        }
    }
    Ok(Json(json!({ "metrics": out })))
}
