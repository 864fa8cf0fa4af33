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

/// How an MLflow API is called.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic(String, String),
    /// None.
    Anonymous,
}

/// A server speaking MLflow's REST API: an MLflow server, or this one.
pub struct Endpoint {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    /// What to call it in messages ("the MLflow server", "wanllmdb").
    name: &'static str,
}

impl Endpoint {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Bearer(t) => r.bearer_auth(t),
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
            Auth::Anonymous => r,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> CliResult<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            user_err!("cannot reach {} at {}: {e}", self.name, self.base)
                .hint("check the URL (an MLflow server's looks like http://host:5000)")
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let message = match (body["error_code"].as_str(), body["message"].as_str()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (None, Some(m)) => m.to_string(),
            _ => text,
        };
        let err = user_err!("{} refused {what}: {status} {message}", self.name);
        Err(if status.as_u16() == 401 || status.as_u16() == 403 {
            err.hint("give its credentials: --token, or MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        } else {
            err
        })
    }

    async fn json(&self, req: reqwest::RequestBuilder, what: &str) -> CliResult<Value> {
        let resp = self.send(req, what).await?;
        let text = resp
            .text()
            .await
            .map_err(|e| user_err!("reading {}'s answer to {what}: {e}", self.name))?;
        if text.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&text)
            .map_err(|e| user_err!("{}'s answer to {what} is not JSON: {e}", self.name))
    }

    /// `GET /api/2.0/mlflow/<path>` with a query.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> CliResult<Value> {
        let req = self
            .request(reqwest::Method::GET, &format!("/api/2.0/mlflow/{path}"))
            .query(query);
        self.json(req, path).await
    }

    /// `POST /api/2.0/mlflow/<path>` with a JSON body.
    async fn post(&self, path: &str, body: Value) -> CliResult<Value> {
        let req = self
            .request(reqwest::Method::POST, &format!("/api/2.0/mlflow/{path}"))
            .json(&body);
        self.json(req, path).await
    }

    /// `PATCH /api/2.0/mlflow/<path>` with a JSON body.
    async fn patch(&self, path: &str, body: Value) -> CliResult<Value> {
        let req = self
            .request(reqwest::Method::PATCH, &format!("/api/2.0/mlflow/{path}"))
            .json(&body);
        self.json(req, path).await
    }

    /// What the artifact proxy lists under `root/dir`: (path under `root`, is a directory).
    async fn proxy_list(&self, root: &str, dir: &str) -> CliResult<Vec<(String, bool)>> {
        let full = if dir.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{dir}")
        };
        let req = self
            .request(reqwest::Method::GET, "/api/2.0/mlflow-artifacts/artifacts")
            .query(&[("path", full.as_str())]);
        let v = self.json(req, "an artifact listing").await?;
        Ok(v["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|f| {
                let name = f["path"].as_str()?;
                let path = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                Some((path, f["is_dir"].as_bool() == Some(true)))
            })
            .collect())
    }

    /// The bytes of `root/path` through the artifact proxy.
    async fn proxy_get(&self, root: &str, path: &str) -> CliResult<Vec<u8>> {
        let req = self.request(
            reqwest::Method::GET,
            &format!(
                "/api/2.0/mlflow-artifacts/artifacts/{root}/{}",
                encode_path(path)
            ),
        );
        let resp = self.send(req, "an artifact download").await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| user_err!("downloading artifact {path}: {e}"))?;
        Ok(bytes.to_vec())
    }

    /// Stores `root/path` through the artifact proxy.
    async fn proxy_put(&self, root: &str, path: &str, bytes: Vec<u8>) -> CliResult {
        let req = self
            .request(
                reqwest::Method::PUT,
                &format!(
                    "/api/2.0/mlflow-artifacts/artifacts/{root}/{}",
                    encode_path(path)
                ),
            )
            .body(bytes);
        self.send(req, "an artifact upload").await?;
        Ok(())
    }

    /// The bytes of a run's artifact: through the artifact proxy when the run's artifacts are
    /// served (`mlflow-artifacts:`), otherwise through `get-artifact`.
    async fn download(&self, info: &Value, path: &str) -> CliResult<Vec<u8>> {
        let run = info["run_id"].as_str().unwrap_or_default();
        let uri = info["artifact_uri"].as_str().unwrap_or_default();
        let req = match uri.strip_prefix("mlflow-artifacts:/") {
            Some(root) => self.request(
                reqwest::Method::GET,
                &format!(
                    "/api/2.0/mlflow-artifacts/artifacts/{}/{}",
                    root.trim_matches('/'),
                    encode_path(path)
                ),
            ),
            None => self
                .request(reqwest::Method::GET, "/get-artifact")
                .query(&[("path", path), ("run_uuid", run)]),
        };
        let resp = self.send(req, "an artifact download").await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| user_err!("downloading artifact {path} of run {run}: {e}"))?;
        Ok(bytes.to_vec())
    }

    /// Stores a run's artifact through the artifact proxy.
    async fn upload(&self, info: &Value, path: &str, bytes: Vec<u8>) -> CliResult {
        let uri = info["artifact_uri"].as_str().unwrap_or_default();
        let Some(root) = uri.strip_prefix("mlflow-artifacts:/") else {
            return Err(user_err!(
                "{} keeps run artifacts at {uri}, not behind its artifact proxy: they cannot be uploaded through it",
                self.name
            )
            .hint("start the MLflow server with artifact serving (the default since MLflow 2)"));
        };
        let req = self
            .request(
                reqwest::Method::PUT,
                &format!(
                    "/api/2.0/mlflow-artifacts/artifacts/{}/{}",
                    root.trim_matches('/'),
                    encode_path(path)
                ),
            )
            .body(bytes);
        self.send(req, "an artifact upload").await?;
        Ok(())
    }
}

/// A relative path with each segment percent-encoded.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The MLflow server's credentials: a token, or MLflow's username and password variables.
fn remote_auth(token: Option<String>) -> Auth {
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        return Auth::Bearer(t);
    }
    match (
        std::env::var("MLFLOW_TRACKING_USERNAME"),
        std::env::var("MLFLOW_TRACKING_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => Auth::Basic(u, p),
        _ => Auth::Anonymous,
    }
}

/// An HTTP client for long transfers.
fn http_client() -> CliResult<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| CliError::unexpected(format!("cannot build an HTTP client: {e}")))
}

/// An MLflow server's URL, checked.
fn remote_base(url: &str, flag: &str) -> CliResult<String> {
    let base = url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(user_err!("{flag} {base:?} is not an http(s) URL")
            .hint("give the MLflow server's URL, e.g. http://mlflow.internal:5000"));
    }
    Ok(base)
}

/// This server, through its MLflow API.
fn this_server(api: &Api, http: reqwest::Client) -> Endpoint {
    Endpoint {
        http,
        base: api.base().trim_end_matches('/').to_string(),
        auth: api
            .key()
            .map_or(Auth::Anonymous, |k| Auth::Bearer(k.to_string())),
        name: "wanllmdb",
    }
}

/// `wanllmdb import mlflow`.
pub async fn import(args: MlflowArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let printer = printer.with_json(args.json);
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    let http = http_client()?;
    let source = Endpoint {
        http: http.clone(),
        base: remote_base(&args.from, "--from")?,
        auth: remote_auth(args.source_token.clone()),
        name: "the MLflow server",
    };
    let target = this_server(&api, http);
    let report = copy(
        &source,
        &target,
        &args.experiments,
        !args.no_models,
        &printer,
    )
    .await?;
    print_report(&printer, &report)
}

/// Copies experiments (all active ones, or those named) with their runs and, with `models`,
/// the registered models whose versions come from the runs copied.
async fn copy(
    source: &Endpoint,
    target: &Endpoint,
    experiments: &[String],
    models: bool,
    printer: &Printer,
) -> CliResult<ImportReport> {
    let mut report = ImportReport::default();
    let chosen = source_experiments(source, experiments, &mut report).await?;
    // Source run id → (target experiment id, target run id), for the registry.
    let mut runs_here: HashMap<String, (String, String)> = HashMap::new();
    for exp in &chosen {
        let r = import_experiment(source, target, exp, printer, &mut runs_here).await?;
        report.experiments.push(r);
    }
    if models {
        import_models(source, target, &runs_here, &mut report).await?;
    }
    Ok(report)
}

fn print_report(printer: &Printer, report: &ImportReport) -> CliResult {
    printer.data(report, || {
        let mut t = table(&["EXPERIMENT", "ID THERE", "RUNS", "POINTS", "FILES"]);
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
    })
}

/// The source's experiments to import: every active one, or the ones named.
async fn source_experiments(
    source: &Endpoint,
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
        let page = source.post("experiments/search", body).await?;
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
    source: &Endpoint,
    target: &Endpoint,
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
        let (points, files, run_here) = import_run(source, target, &here, run).await?;
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
async fn source_runs(source: &Endpoint, exp_id: &str) -> CliResult<Vec<Value>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"experiment_ids": [exp_id], "max_results": 1000, "run_view_type": "ACTIVE_ONLY"});
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = source.post("runs/search", body).await?;
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

/// The info of the run of the target that was copied from `marker`, if any.
async fn imported_run(target: &Endpoint, exp: &str, marker: &str) -> CliResult<Option<Value>> {
    let filter = format!("tags.`{SOURCE_TAG}` = '{}'", marker.replace('\'', "\\'"));
    let v = target
        .post(
            "runs/search",
            json!({"experiment_ids": [exp], "filter": filter, "run_view_type": "ALL", "max_results": 1}),
        )
        .await?;
    Ok(v["runs"][0]["info"]
        .as_object()
        .map(|o| Value::Object(o.clone())))
}

/// Imports (or completes) one run: its entries, params and tags are sent again each time and
/// stored once. Returns the entries sent, the files copied, and the run's id here.
async fn import_run(
    source: &Endpoint,
    target: &Endpoint,
    exp_here: &str,
    run: &Value,
) -> CliResult<(u64, u64, String)> {
    let info = &run["info"];
    let src_id = info["run_id"].as_str().unwrap_or_default();
    let marker = format!("{}#{src_id}", source.base);
    let mut tags = pairs(&run["data"]["tags"]);
    // A run that came from the target in the first place (exported, now imported back) is
    // that run again.
    let origin = tags
        .iter()
        .find(|(k, _)| k == SOURCE_TAG)
        .and_then(|(_, v)| v.rsplit_once('#'))
        .filter(|(base, _)| *base == target.base)
        .map(|(_, id)| id.to_string());
    tags.retain(|(k, _)| k != SOURCE_TAG);
    let found = match origin {
        Some(id) => target
            .get("runs/get", &[("run_id", id.as_str())])
            .await
            .ok()
            .and_then(|v| {
                v["run"]["info"]
                    .as_object()
                    .map(|o| Value::Object(o.clone()))
            }),
        None => None,
    };
    let found = match found {
        Some(info) => Some(info),
        None => imported_run(target, exp_here, &marker).await?,
    };
    let info_here = match found {
        Some(info) => info,
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
            v["run"]["info"].clone()
        }
    };
    let id = info_here["run_id"]
        .as_str()
        .ok_or_else(|| CliError::unexpected("runs/create answered without a run id"))?
        .to_string();
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
                ("run_id", src_id),
                ("metric_key", key.as_str()),
                ("max_results", "25000"),
            ];
            if let Some(t) = &token {
                q.push(("page_token", t.as_str()));
            }
            let page = source.get("metrics/get-history", &q).await?;
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
    let files = copy_artifacts(source, target, info, &info_here, "").await?;
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
    source: &Endpoint,
    target: &Endpoint,
    from: &Value,
    to: &Value,
    dir: &str,
) -> CliResult<u64> {
    let run = from["run_id"].as_str().unwrap_or_default();
    let mut q = vec![("run_id", run)];
    if !dir.is_empty() {
        q.push(("path", dir));
    }
    let listing = source.get("artifacts/list", &q).await?;
    let mut n = 0;
    for f in listing["files"].as_array().cloned().unwrap_or_default() {
        let Some(path) = f["path"].as_str() else {
            continue;
        };
        if f["is_dir"].as_bool() == Some(true) {
            n += Box::pin(copy_artifacts(source, target, from, to, path)).await?;
            continue;
        }
        let bytes = source.download(from, path).await?;
        target.upload(to, path, bytes).await?;
        n += 1;
    }
    Ok(n)
}

/// The proxy root (`<experiment>/models/<id>/artifacts`) of a `mlflow-artifacts:` URI.
fn proxy_root(uri: &str) -> Option<String> {
    uri.strip_prefix("mlflow-artifacts:/")
        .map(|r| r.trim_matches('/').to_string())
}

/// Copies every file under a proxy root, recursively; how many.
async fn copy_proxy_tree(
    source: &Endpoint,
    target: &Endpoint,
    from: &str,
    to: &str,
    dir: &str,
) -> CliResult<u64> {
    let mut n = 0;
    for (path, is_dir) in source.proxy_list(from, dir).await? {
        if is_dir {
            n += Box::pin(copy_proxy_tree(source, target, from, to, &path)).await?;
        } else {
            let bytes = source.proxy_get(from, &path).await?;
            target.proxy_put(to, &path, bytes).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Copies a logged model (MLflow 3's `log_model`) of the source to the target, as a logged
/// model of the copied run `run_here` in `exp_here`; its id there. One copied before (by
/// its source tag) is reused.
async fn copy_logged_model(
    source: &Endpoint,
    target: &Endpoint,
    model_id: &str,
    exp_here: &str,
    run_here: &str,
) -> CliResult<String> {
    let m = source
        .get(&format!("logged-models/{model_id}"), &[])
        .await?;
    let info = &m["model"]["info"];
    let marker = format!("{}#logged/{model_id}", source.base);
    let filter = format!("tags.`{SOURCE_TAG}` = '{}'", marker.replace('\'', "\\'"));
    let found = target
        .post(
            "logged-models/search",
            json!({"experiment_ids": [exp_here], "filter": filter, "max_results": 1}),
        )
        .await?;
    if let Some(id) = found["models"][0]["info"]["model_id"].as_str() {
        return Ok(id.to_string());
    }
    let mut tags = pairs(&info["tags"]);
    tags.retain(|(k, _)| k != SOURCE_TAG);
    tags.push((SOURCE_TAG.into(), marker));
    let created = target
        .post(
            "logged-models",
            json!({
                "experiment_id": exp_here,
                "name": info["name"],
                "model_type": info["model_type"],
                "source_run_id": run_here,
                "params": m["model"]["data"]["params"],
                "tags": kv_json(&tags),
            }),
        )
        .await?;
    let new_info = &created["model"]["info"];
    let new_id = new_info["model_id"]
        .as_str()
        .ok_or_else(|| CliError::unexpected("logged-models answered without a model id"))?
        .to_string();
    let (Some(from), Some(to)) = (
        proxy_root(info["artifact_uri"].as_str().unwrap_or_default()),
        proxy_root(new_info["artifact_uri"].as_str().unwrap_or_default()),
    ) else {
        return Err(user_err!(
            "logged model {model_id}: its files are not behind an artifact proxy ({})",
            info["artifact_uri"]
        ));
    };
    copy_proxy_tree(source, target, &from, &to, "").await?;
    target
        .patch(
            &format!("logged-models/{new_id}"),
            json!({"model_id": new_id, "status": "LOGGED_MODEL_READY"}),
        )
        .await?;
    Ok(new_id)
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
    source: &Endpoint,
    target: &Endpoint,
    runs_here: &HashMap<String, (String, String)>,
    report: &mut ImportReport,
) -> CliResult {
    let mut models = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![("max_results", "1000")];
        if let Some(t) = &token {
            q.push(("page_token", t.as_str()));
        }
        let page = source.get("registered-models/search", &q).await?;
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
            .get("model-versions/search", &[("filter", filter.as_str())])
            .await?;
        let mut versions = versions["model_versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Only models with a version from a run copied: the rest belong to other experiments.
        if !versions
            .iter()
            .any(|v| runs_here.contains_key(v["run_id"].as_str().unwrap_or_default()))
        {
            continue;
        }
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
            let marker = format!("{}#{name}/{number}", source.base);
            // Done before, or a version that came from the target in the first place.
            let origin = pairs(&v["tags"])
                .into_iter()
                .find(|(k, _)| k == SOURCE_TAG)
                .and_then(|(_, val)| {
                    let (base, rest) = val.rsplit_once('#')?;
                    let (model, n) = rest.rsplit_once('/')?;
                    (base == target.base && model == name).then(|| n.to_string())
                });
            if let Some(n) = done.get(&marker).cloned().or(origin) {
                number_here.insert(number, n);
                report.model_versions += 1;
                continue;
            }
            let src_run = v["run_id"].as_str().unwrap_or_default();
            let Some((exp_here, run_here)) = runs_here.get(src_run) else {
                report.skipped.push(format!(
                    "model {name} version {number}: its run {src_run:?} was not imported (not in the experiments imported, or no run)"
                ));
                continue;
            };
            // A version of a logged model: the model goes first, then the version names it.
            let src_source = v["source"].as_str().unwrap_or_default();
            let logged = v["model_id"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .or_else(|| {
                    src_source
                        .strip_prefix("models:/")
                        .filter(|r| r.starts_with("m-"))
                        .map(|r| r.split('/').next().unwrap_or(r).to_string())
                });
            let source_here = match &logged {
                Some(model_id) => {
                    match copy_logged_model(source, target, model_id, exp_here, run_here).await {
                        Ok(id) => Some(format!("models:/{id}")),
                        Err(e) => {
                            report
                                .skipped
                                .push(format!("model {name} version {number}: {}", e.message));
                            continue;
                        }
                    }
                }
                None => source_path(src_source, src_run).map(|p| format!("runs:/{run_here}/{p}")),
            };
            let Some(source_here) = source_here else {
                report.skipped.push(format!(
                    "model {name} version {number}: its source {} is not an artifact of its run",
                    v["source"]
                ));
                continue;
            };
            let mut tags = pairs(&v["tags"]);
            tags.retain(|(k, _)| k != SOURCE_TAG);
            tags.push((SOURCE_TAG.into(), marker));
            let created = target
                .post(
                    "model-versions/create",
                    json!({
                        "name": name,
                        "source": source_here,
                        "model_id": source_here.strip_prefix("models:/"),
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

/// Options of `wanllmdb export mlflow`.
#[derive(Debug, Args)]
#[command(after_help = "\
Writes a project's runs (name, status, times, params, tags, every metric entry, files) and
the registered models whose versions come from them to an MLflow server, through its REST
API, for teams that must keep feeding one. The MLflow server must serve artifacts (the
default of `mlflow server` since MLflow 2). Its credentials come from --token, or
MLFLOW_TRACKING_TOKEN / MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.

Every exported run and model version carries the tag wanllmdb.import.source naming where it
came from, so exporting again adds nothing twice; `wanllmdb import mlflow` of what was
exported brings back the same runs.

Examples:
  wanllmdb export mlflow --to http://mlflow.internal:5000 --project churn")]
pub struct ExportMlflowArgs {
    /// The MLflow server's URL (its MLFLOW_TRACKING_URI)
    #[arg(long = "to", value_name = "URL")]
    pub to: String,
    /// The project to export [default: from .wanllmdb.toml]
    #[arg(long, short = 'p')]
    pub project: Option<String>,
    /// A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]
    #[arg(long, env = "MLFLOW_TRACKING_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Leave out registered models
    #[arg(long)]
    pub no_models: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `wanllmdb export mlflow`.
pub async fn export(args: ExportMlflowArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let printer = printer.with_json(args.json);
    let settings = Settings::resolve(flags).await?;
    let project = match &args.project {
        Some(p) => crate::commands::valid_project_name(p)?,
        None => settings.require_project()?,
    };
    let api = Api::new(&settings)?;
    let found: wanllmdb_api_types::projects::Project =
        api.get(&format!("/api/v1/projects/{project}"), &[]).await?;
    let name = found.display_name.unwrap_or_else(|| found.name.to_string());
    let http = http_client()?;
    let source = this_server(&api, http.clone());
    let target = Endpoint {
        http,
        base: remote_base(&args.to, "--to")?,
        auth: remote_auth(args.token.clone()),
        name: "the MLflow server",
    };
    let report = copy(&source, &target, &[name], !args.no_models, &printer).await?;
    print_report(&printer, &report)
}
