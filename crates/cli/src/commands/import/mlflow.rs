//! `wanllmdb import mlflow --from URL`: experiments, runs, metrics, artifacts and registered
//! models of a running MLflow server, read through its REST API and written through this
//! server's MLflow API, so an imported run is what logging it here through MLflow would have
//! made.

use std::collections::{BTreeMap, HashMap};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::Api;
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, table};

/// The tag that names, on an imported run or model version, what it was imported from.
pub const SOURCE_TAG: &str = "wanllmdb.import.source";

/// Options of `wanllmdb import mlflow`.
#[derive(Debug, Args)]
#[command(after_help = "\
Reads a running MLflow server through its REST API (whatever store it uses) and writes
experiments, runs (name, status, start and end times, params, tags, every metric's full
history, repeated steps included), run artifacts and registered models (versions, stages,
aliases) here, as MLflow clients logging here would have. The source's credentials come
from --source-token, or MLFLOW_TRACKING_TOKEN / MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD.

Every imported run and model version carries the tag wanllmdb.import.source naming where it
came from, so importing again adds nothing twice, and an interrupted import continues where
it stopped when run again.

Examples:
  wanllmdb import mlflow --from http://mlflow.internal:5000
  wanllmdb import mlflow --from http://mlflow.internal:5000 --experiments 'fraud model' churn")]
pub struct MlflowArgs {
    /// The MLflow server's URL (its MLFLOW_TRACKING_URI)
    #[arg(long = "from", value_name = "URL")]
    pub from: String,
    /// Only these experiments (by name) [default: every active experiment]
    #[arg(long, num_args = 1..)]
    pub experiments: Vec<String>,
    /// A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]
    #[arg(long, env = "MLFLOW_TRACKING_TOKEN", hide_env_values = true)]
    pub source_token: Option<String>,
    /// Leave out registered models
    #[arg(long)]
    pub no_models: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// What one experiment's import did.
#[derive(Debug, Default, Serialize)]
pub struct ExperimentReport {
    /// The MLflow experiment name.
    pub experiment: String,
    /// Its experiment id here.
    pub experiment_id: String,
    /// Runs imported or brought up to date.
    pub runs: u64,
    /// Metric entries sent (entries already here are stored once).
    pub points: u64,
    /// Artifact files copied.
    pub files: u64,
}

/// What the whole import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// Per experiment.
    pub experiments: Vec<ExperimentReport>,
    /// Registered model versions imported or already here.
    pub model_versions: u64,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

/// The MLflow server read from.
struct Source {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    basic: Option<(String, String)>,
}

impl Source {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match (&self.token, &self.basic) {
            (Some(t), _) => r.bearer_auth(t),
            (None, Some((u, p))) => r.basic_auth(u, Some(p)),
            _ => r,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> CliResult<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            user_err!("cannot reach the MLflow server at {}: {e}", self.base)
                .hint("check --from (the MLflow server's URL, e.g. http://host:5000)")
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        let err = user_err!("the MLflow server refused {what}: {status} {message}");
        Err(if status.as_u16() == 401 || status.as_u16() == 403 {
            err.hint("give its credentials: --source-token, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        } else {
            err
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> CliResult<Value> {
        let resp = self
            .send(self.request(reqwest::Method::GET, path).query(query), path)
            .await?;
        resp.json()
            .await
            .map_err(|e| user_err!("the MLflow server's answer to {path} is not JSON: {e}"))
    }

    async fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        let resp = self
            .send(self.request(reqwest::Method::POST, path).json(body), path)
            .await?;
        resp.json()
            .await
            .map_err(|e| user_err!("the MLflow server's answer to {path} is not JSON: {e}"))
    }
}

/// This server's MLflow API.
struct Target<'a> {
    api: &'a Api,
    http: reqwest::Client,
}

impl Target<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> CliResult<Value> {
        let url = self.api.url(&format!("/api/2.0/mlflow/{path}"));
        let mut req = self.http.request(method, url);
        if let Some(k) = self.api.key() {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| user_err!("cannot reach {}: {e}", self.api.base()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        Err(CliError::user(format!(
            "{path}: {} {}",
            v["error_code"].as_str().unwrap_or(status.as_str()),
            v["message"].as_str().unwrap_or(&text)
        )))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> CliResult<Value> {
        let q = serde_urlencoded::to_string(query).unwrap_or_default();
        self.call(reqwest::Method::GET, &format!("{path}?{q}"), None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> CliResult<Value> {
        self.call(reqwest::Method::POST, path, Some(&body)).await
    }

    async fn put_artifact(&self, exp: &str, run: &str, path: &str, bytes: Vec<u8>) -> CliResult {
        let encoded: Vec<String> = path
            .split('/')
            .map(|s| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect();
        let url = self.api.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{}",
            encoded.join("/")
        ));
        let mut req = self.http.put(url).body(bytes);
        if let Some(k) = self.api.key() {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| user_err!("cannot reach {}: {e}", self.api.base()))?;
        if !resp.status().is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(user_err!("uploading artifact {path} of run {run}: {text}"));
        }
        Ok(())
    }
}

/// `wanllmdb import mlflow`.
pub async fn import(args: MlflowArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let printer = printer.with_json(args.json);
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| CliError::unexpected(format!("cannot build an HTTP client: {e}")))?;
    let basic = match (
        std::env::var("MLFLOW_TRACKING_USERNAME"),
        std::env::var("MLFLOW_TRACKING_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => Some((u, p)),
        _ => None,
    };
    let base = args.from.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(user_err!("--from {base:?} is not an http(s) URL")
            .hint("give the MLflow server's URL, e.g. http://mlflow.internal:5000"));
    }
    let source = Source {
        http: http.clone(),
        base: base.clone(),
        token: args.source_token.clone(),
        basic,
    };
    let target = Target { api: &api, http };
    let mut report = ImportReport::default();
    let experiments = source_experiments(&source, &args.experiments, &mut report).await?;
    // Source run id → (this server's experiment id, run id), for the registry.
    let mut runs_here: HashMap<String, (String, String)> = HashMap::new();
    for exp in &experiments {
        let r = import_experiment(&source, &target, &base, exp, &printer, &mut runs_here).await?;
        report.experiments.push(r);
    }
    if !args.no_models {
        import_models(&source, &target, &base, &runs_here, &mut report).await?;
    }
    printer.data(&report, || {
        let mut t = table(&["EXPERIMENT", "ID HERE", "RUNS", "POINTS", "FILES"]);
        for e in &report.experiments {
            t.add_row(vec![
                e.experiment.clone(),
                e.experiment_id.clone(),
                e.runs.to_string(),
                e.points.to_string(),
                e.files.to_string(),
            ]);
        }
        let mut text = t.to_string();
        text.push_str(&format!("\nmodel versions: {}", report.model_versions));
        for s in &report.skipped {
            text.push_str(&format!("\nskipped: {s}"));
        }
        text
    })?;
    Ok(())
}

/// The source's experiments to import: every active one, or the ones named.
async fn source_experiments(
    source: &Source,
    names: &[String],
    report: &mut ImportReport,
) -> CliResult<Vec<Value>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"max_results": 1000, "view_type": "ACTIVE_ONLY"});
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = source
            .post("/api/2.0/mlflow/experiments/search", &body)
            .await?;
        all.extend(page["experiments"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for n in names {
        match all.iter().find(|e| e["name"].as_str() == Some(n)) {
            Some(e) => chosen.push(e.clone()),
            None => report.skipped.push(format!(
                "experiment {n:?}: the MLflow server has no active experiment of that name"
            )),
        }
    }
    Ok(chosen)
}

/// `(key, value)` pairs of an MLflow list of `{key, value}`.
fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t["key"].as_str()?.to_string(),
                        t["value"].as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kv_json(p: &[(String, String)]) -> Vec<Value> {
    p.iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

/// Imports one experiment and its runs.
async fn import_experiment(
    source: &Source,
    target: &Target<'_>,
    base: &str,
    exp: &Value,
    printer: &Printer,
    runs_here: &mut HashMap<String, (String, String)>,
) -> CliResult<ExperimentReport> {
    let name = exp["name"].as_str().unwrap_or_default().to_string();
    let src_id = exp["experiment_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The experiment here: found by name, or created with the source's tags.
    let here = match target
        .get(
            "experiments/get-by-name",
            &[("experiment_name", name.as_str())],
        )
        .await
    {
        Ok(v) => v["experiment"]["experiment_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Err(_) => {
            let tags: Vec<(String, String)> = pairs(&exp["tags"])
                .into_iter()
                .filter(|(k, _)| !k.starts_with("mlflow."))
                .collect();
            let v = target
                .post(
                    "experiments/create",
                    json!({"name": name, "tags": kv_json(&tags)}),
                )
                .await?;
            v["experiment_id"].as_str().unwrap_or_default().to_string()
        }
    };
    let mut report = ExperimentReport {
        experiment: name.clone(),
        experiment_id: here.clone(),
        ..ExperimentReport::default()
    };
    let runs = source_runs(source, &src_id).await?;
    let bar = if printer.progress() {
        let pb = ProgressBar::new(runs.len() as u64);
        pb.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} runs")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(name.clone());
        pb
    } else {
        ProgressBar::hidden()
    };
    for run in &runs {
        let (points, files, run_here) = import_run(source, target, base, &here, run).await?;
        let src_run = run["info"]["run_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        runs_here.insert(src_run, (here.clone(), run_here));
        report.runs += 1;
        report.points += points;
        report.files += files;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Every active run of a source experiment.
async fn source_runs(source: &Source, exp_id: &str) -> CliResult<Vec<Value>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"experiment_ids": [exp_id], "max_results": 1000, "run_view_type": "ACTIVE_ONLY"});
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = source.post("/api/2.0/mlflow/runs/search", &body).await?;
        all.extend(page["runs"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    // Oldest first, so runs are created here in the order they were there.
    all.sort_by_key(|r| r["info"]["start_time"].as_i64().unwrap_or(0));
    Ok(all)
}

/// The run here that was imported from `marker`, if any.
async fn imported_run(target: &Target<'_>, exp: &str, marker: &str) -> CliResult<Option<String>> {
    let filter = format!("tags.`{SOURCE_TAG}` = '{}'", marker.replace('\'', "\\'"));
    let v = target
        .post(
            "runs/search",
            json!({"experiment_ids": [exp], "filter": filter, "run_view_type": "ALL", "max_results": 1}),
        )
        .await?;
    Ok(v["runs"][0]["info"]["run_id"].as_str().map(str::to_string))
}

/// Imports (or completes) one run: its entries, params and tags are sent again each time and
/// stored once. Returns the entries sent, the files copied, and the run's id here.
async fn import_run(
    source: &Source,
    target: &Target<'_>,
    base: &str,
    exp_here: &str,
    run: &Value,
) -> CliResult<(u64, u64, String)> {
    let info = &run["info"];
    let src_id = info["run_id"].as_str().unwrap_or_default();
    let marker = format!("{base}#{src_id}");
    let mut tags = pairs(&run["data"]["tags"]);
    tags.retain(|(k, _)| k != SOURCE_TAG);
    let id = match imported_run(target, exp_here, &marker).await? {
        Some(id) => id,
        None => {
            let mut create_tags = tags.clone();
            create_tags.push((SOURCE_TAG.into(), marker.clone()));
            let v = target
                .post(
                    "runs/create",
                    json!({
                        "experiment_id": exp_here,
                        "run_name": info["run_name"],
                        "start_time": info["start_time"],
                        "tags": kv_json(&create_tags),
                    }),
                )
                .await?;
            v["run"]["info"]["run_id"]
                .as_str()
                .ok_or_else(|| CliError::unexpected("runs/create answered without a run id"))?
                .to_string()
        }
    };
    // Params and tags, 100 a request.
    let params = pairs(&run["data"]["params"]);
    for chunk in params.chunks(100) {
        target
            .post(
                "runs/log-batch",
                json!({"run_id": id, "params": kv_json(chunk)}),
            )
            .await?;
    }
    for chunk in tags.chunks(100) {
        target
            .post(
                "runs/log-batch",
                json!({"run_id": id, "tags": kv_json(chunk)}),
            )
            .await?;
    }
    // Every metric's whole history, 1,000 entries a request.
    let mut points = 0u64;
    let keys: Vec<String> = run["data"]["metrics"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for key in keys {
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![
                ("run_id", src_id.to_string()),
                ("metric_key", key.clone()),
                ("max_results", "25000".to_string()),
            ];
            if let Some(t) = &token {
                q.push(("page_token", t.clone()));
            }
            let page = source
                .get("/api/2.0/mlflow/metrics/get-history", &q)
                .await?;
            let entries = page["metrics"].as_array().cloned().unwrap_or_default();
            for chunk in entries.chunks(1000) {
                let metrics: Vec<Value> = chunk
                    .iter()
                    .map(|m| {
                        json!({"key": key, "value": m["value"], "timestamp": m["timestamp"], "step": m["step"].as_i64().unwrap_or(0)})
                    })
                    .collect();
                target
                    .post("runs/log-batch", json!({"run_id": id, "metrics": metrics}))
                    .await?;
                points += chunk.len() as u64;
            }
            match page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
    }
    let files = copy_artifacts(source, target, src_id, exp_here, &id, "").await?;
    // The run's end, as the source has it.
    let status = info["status"].as_str().unwrap_or("RUNNING");
    if status != "RUNNING" && status != "SCHEDULED" {
        let mut body = json!({"run_id": id, "status": status});
        if let Some(end) = info["end_time"].as_i64() {
            body["end_time"] = json!(end);
        }
        target.post("runs/update", body).await?;
    }
    Ok((points, files, id))
}

/// Copies a run's artifacts under `dir`, recursively; the number of files.
async fn copy_artifacts(
    source: &Source,
    target: &Target<'_>,
    src_run: &str,
    exp_here: &str,
    run_here: &str,
    dir: &str,
) -> CliResult<u64> {
    let mut q = vec![("run_id", src_run.to_string())];
    if !dir.is_empty() {
        q.push(("path", dir.to_string()));
    }
    let listing = source.get("/api/2.0/mlflow/artifacts/list", &q).await?;
    let mut n = 0;
    for f in listing["files"].as_array().cloned().unwrap_or_default() {
        let Some(path) = f["path"].as_str() else {
            continue;
        };
        if f["is_dir"].as_bool() == Some(true) {
            n += Box::pin(copy_artifacts(
                source, target, src_run, exp_here, run_here, path,
            ))
            .await?;
            continue;
        }
        let resp = source
            .send(
                source
                    .request(reqwest::Method::GET, "/get-artifact")
                    .query(&[("path", path), ("run_uuid", src_run)]),
                "an artifact download",
            )
            .await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| user_err!("downloading artifact {path} of run {src_run}: {e}"))?;
        target
            .put_artifact(exp_here, run_here, path, bytes.to_vec())
            .await?;
        n += 1;
    }
    Ok(n)
}

/// The path inside its run's artifacts that a model version's source names.
fn source_path(source: &str, run_id: &str) -> Option<String> {
    if let Some(rest) = source.strip_prefix("runs:/") {
        let rest = rest.trim_start_matches('/');
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        return (run == run_id).then(|| path.to_string());
    }
    let needle = format!("{run_id}/artifacts");
    let at = source.find(&needle)?;
    Some(
        source[at + needle.len()..]
            .trim_start_matches('/')
            .to_string(),
    )
}

/// Imports registered models whose versions come from imported runs.
async fn import_models(
    source: &Source,
    target: &Target<'_>,
    base: &str,
    runs_here: &HashMap<String, (String, String)>,
    report: &mut ImportReport,
) -> CliResult {
    let mut models = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![("max_results", "1000".to_string())];
        if let Some(t) = &token {
            q.push(("page_token", t.clone()));
        }
        let page = source
            .get("/api/2.0/mlflow/registered-models/search", &q)
            .await?;
        models.extend(
            page["registered_models"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        match page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    for m in models {
        let name = m["name"].as_str().unwrap_or_default().to_string();
        let filter = format!("name = '{}'", name.replace('\'', "\\'"));
        let versions = source
            .get(
                "/api/2.0/mlflow/model-versions/search",
                &[("filter", filter)],
            )
            .await?;
        let mut versions = versions["model_versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        versions.sort_by_key(|v| {
            v["version"]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        });
        let missing = target
            .get("registered-models/get", &[("name", name.as_str())])
            .await
            .is_err();
        if missing
            && let Err(e) = target
                .post(
                    "registered-models/create",
                    json!({"name": name, "description": m["description"], "tags": m["tags"]}),
                )
                .await
        {
            report.skipped.push(format!("model {name}: {e}"));
            continue;
        }
        // Versions here already imported, by their source marker.
        let here = target
            .get(
                "model-versions/search",
                &[("filter", &format!("name = '{name}'"))],
            )
            .await?;
        let mut done: HashMap<String, String> = HashMap::new();
        for v in here["model_versions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            for (k, val) in pairs(&v["tags"]) {
                if k == SOURCE_TAG {
                    done.insert(val, v["version"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        let mut number_here: BTreeMap<String, String> = BTreeMap::new();
        for v in &versions {
            let number = v["version"].as_str().unwrap_or_default().to_string();
            let marker = format!("{base}#{name}/{number}");
            if let Some(n) = done.get(&marker) {
                number_here.insert(number, n.clone());
                report.model_versions += 1;
                continue;
            }
            let src_run = v["run_id"].as_str().unwrap_or_default();
            let Some((_, run_here)) = runs_here.get(src_run) else {
                report.skipped.push(format!(
                    "model {name} version {number}: its run {src_run:?} was not imported (not in the experiments imported, or no run)"
                ));
                continue;
            };
            let Some(path) = source_path(v["source"].as_str().unwrap_or_default(), src_run) else {
                report.skipped.push(format!(
                    "model {name} version {number}: its source {} is not an artifact of its run",
                    v["source"]
                ));
                continue;
            };
            let mut tags = pairs(&v["tags"]);
            tags.push((SOURCE_TAG.into(), marker));
            let created = target
                .post(
                    "model-versions/create",
                    json!({
                        "name": name,
                        "source": format!("runs:/{run_here}/{path}"),
                        "run_id": run_here,
                        "description": v["description"],
                        "tags": kv_json(&tags),
                    }),
                )
                .await;
            let created = match created {
                Ok(c) => c,
                Err(e) => {
                    report
                        .skipped
                        .push(format!("model {name} version {number}: {e}"));
                    continue;
                }
            };
            let n = created["model_version"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            number_here.insert(number.clone(), n.clone());
            report.model_versions += 1;
            let stage = v["current_stage"].as_str().unwrap_or("None");
            if stage != "None"
                && let Err(e) = target
                    .post(
                        "model-versions/transition-stage",
                        json!({"name": name, "version": n, "stage": stage}),
                    )
                    .await
            {
                report.skipped.push(format!(
                    "model {name} version {number}: stage {stage} not set here: {e}"
                ));
            }
        }
        for a in m["aliases"].as_array().cloned().unwrap_or_default() {
            let (Some(alias), Some(v)) = (a["alias"].as_str(), a["version"].as_str()) else {
                continue;
            };
            let Some(n) = number_here.get(v) else {
                continue;
            };
            if let Err(e) = target
                .post(
                    "registered-models/alias",
                    json!({"name": name, "alias": alias, "version": n}),
                )
                .await
            {
                report
                    .skipped
                    .push(format!("model {name} alias {alias}: {e}"));
            }
        }
    }
    Ok(())
}
