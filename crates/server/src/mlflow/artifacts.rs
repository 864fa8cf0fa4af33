//! MLflow artifacts: a run's artifacts are its run files. The tracking API lists them; the
//! `mlflow-artifacts` proxy (what `mlflow-artifacts:/…` URIs resolve to) uploads, downloads,
//! lists and deletes them.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};
use wanllmdb_api_types::RunId;
use wanllmdb_api_types::files::RunFile;

use super::{MlResult, Params, empty, invalid, missing, page_token, parse_page_token};
use crate::auth::Actor;
use crate::blobs::BlobStore;
use crate::extract::ClientInfo;
use crate::files::Files;
use crate::state::AppState;

/// The proxy's routes, relative to `/api/2.0/mlflow-artifacts`.
pub fn proxy_router() -> Router<AppState> {
    Router::new().route("/artifacts", get(proxy_list)).route(
        "/artifacts/{*path}",
        get(download).put(upload).delete(remove),
    )
}

/// What a run's files hold under `dir` (no leading or trailing `/`; empty for the root):
/// entries named relative to `dir`, directories with no size.
fn children(files: &[RunFile], dir: &str) -> Vec<(String, bool, Option<u64>)> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut out: BTreeMap<String, (bool, Option<u64>)> = BTreeMap::new();
    for f in files {
        let Some(rest) = f.path.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((d, _)) => {
                out.insert(d.to_string(), (true, None));
            }
            None if !rest.is_empty() => {
                out.entry(rest.to_string()).or_insert((false, Some(f.size)));
            }
            None => {}
        }
    }
    out.into_iter().map(|(n, (d, s))| (n, d, s)).collect()
}

/// Whether an entry of a run's artifact root is the directory its logged models' files live
/// in: MLflow lists a run's artifacts without its logged models.
fn hidden(dir: &str, name: &str) -> bool {
    dir.is_empty() && name == super::models::MODELS_DIR
}

fn file_json(path: String, is_dir: bool, size: Option<u64>) -> Value {
    let mut v = json!({ "path": path, "is_dir": is_dir });
    if let Some(s) = size {
        v["file_size"] = json!(s);
    }
    v
}

/// Trims a relative artifact path (`None` for one that climbs out with `..`).
fn clean(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// `GET artifacts/list` (tracking API): paths relative to the run's artifact root.
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let id = p.run_id()?;
    let dir = clean(&p.str("path")?.unwrap_or_default())
        .ok_or_else(|| invalid("Invalid path: it must not contain '..'"))?;
    let files = Files { state: &state }
        .list(&actor, &id, false, &client)
        .await
        .map_err(|e| match e {
            crate::error::ApiError::NotFound(_) => missing(format!("Run with id={id} not found")),
            other => other.into(),
        })?;
    let access = crate::runs::Runs { state: &state }
        .load(&actor, &id)
        .await?
        .1;
    let all: Vec<Value> = children(&files, &dir)
        .into_iter()
        .filter(|(name, _, _)| !hidden(&dir, name))
        .map(|(name, is_dir, size)| {
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            file_json(path, is_dir, size)
        })
        .collect();
    let offset = parse_page_token(p.str("page_token")?.as_deref())?;
    let limit = match p.i64("max_results")? {
        None => usize::MAX,
        Some(_) => super::max_results(&p, 1000, 100_000)?,
    };
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    let mut out = json!({
        "root_uri": format!("mlflow-artifacts:/{}/{id}/artifacts", access.id),
        "files": page,
    });
    if limit != usize::MAX && offset + limit < total {
        out["next_page_token"] = json!(page_token(offset + limit));
    }
    Ok(Json(out))
}

/// What a proxy path names: `<experiment id>/<run id>/artifacts[/<path>]` (a run's files) or
/// `<experiment id>/models/<model id>/artifacts[/<path>]` (a logged model's): the run and the
/// path among its files (empty for the run's root). `None` for a path above either root.
async fn target(state: &AppState, actor: &Actor, path: &str) -> MlResult<Option<(RunId, String)>> {
    let cleaned = clean(path).ok_or_else(|| invalid("Invalid path: it must not contain '..'"))?;
    let segs: Vec<&str> = cleaned.split('/').collect();
    if segs.len() >= 4 && segs[1] == "models" && segs[3] == "artifacts" {
        let rest = segs[4..].join("/");
        return super::models::files_of(state, actor, segs[2], &rest)
            .await
            .map(Some);
    }
    if segs.len() >= 3 && segs[2] == "artifacts" {
        let run = segs[1];
        let id = RunId::parse(run).map_err(|_| missing(format!("Run with id={run} not found")))?;
        return Ok(Some((id, segs[3..].join("/"))));
    }
    if segs.len() < 4 {
        return Ok(None);
    }
    Err(missing(format!(
        "No artifacts at {path:?}: paths are <experiment id>/<run id>/artifacts/<path> or <experiment id>/models/<model id>/artifacts/<path>"
    )))
}

/// Like [`target`], for a path that must name something under a root.
async fn target_in(state: &AppState, actor: &Actor, path: &str) -> MlResult<(RunId, String)> {
    target(state, actor, path).await?.ok_or_else(|| {
        missing(format!(
            "No artifacts at {path:?}: paths are <experiment id>/<run id>/artifacts/<path>"
        ))
    })
}

fn run_missing(id: &RunId) -> impl Fn(crate::error::ApiError) -> super::Failure + '_ {
    move |e| match e {
        crate::error::ApiError::NotFound(_) => missing(format!("Run with id={id} not found")),
        other => other.into(),
    }
}

/// `GET /mlflow-artifacts/artifacts?path=…`: what a directory holds, named relative to it.
async fn proxy_list(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    p: Params,
) -> MlResult<Json<Value>> {
    let path = p.str("path")?.unwrap_or_default();
    let Some((id, dir)) = target(&state, &actor, &path).await? else {
        // Above a run's artifact root: nothing MLflow clients ask for.
        return Ok(Json(json!({ "files": [] })));
    };
    let files = Files { state: &state }
        .list(&actor, &id, false, &client)
        .await
        .map_err(run_missing(&id))?;
    if !dir.is_empty() && files.iter().any(|f| f.path == dir) {
        // A file, not a directory: MLflow lists nothing under it.
        return Ok(Json(json!({ "files": [] })));
    }
    let entries: Vec<Value> = children(&files, &dir)
        .into_iter()
        .filter(|(name, _, _)| !hidden(&dir, name))
        .map(|(name, is_dir, size)| file_json(name, is_dir, size))
        .collect();
    Ok(Json(json!({ "files": entries })))
}

/// `GET /mlflow-artifacts/artifacts/<path>`: the bytes of a file.
async fn download(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> MlResult<Response> {
    let (id, file) = target_in(&state, &actor, &path).await?;
    let f = Files { state: &state }
        .get(&actor, &id, &file, &client)
        .await
        .map_err(|e| match e {
            crate::error::ApiError::NotFound(_) => {
                missing(format!("Artifact {file:?} of run {id} not found"))
            }
            other => other.into(),
        })?;
    match &state.blobs {
        BlobStore::Local(local) => {
            let stream = local
                .read_stream(&f.sha256)
                .await
                .map_err(|_| missing(format!("Artifact {file:?} of run {id} not found")))?;
            let stream = state
                .telemetry
                .count_download(crate::telemetry::TransferKind::RunFile, stream);
            let mut resp = Response::new(Body::from_stream(stream));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(f.size));
            Ok(resp)
        }
        // Object storage: the client fetches the bytes from the bucket.
        BlobStore::S3(_) => {
            let url = f.download_url.unwrap_or_default();
            Ok(Redirect::temporary(&url).into_response())
        }
    }
}

/// `PUT /mlflow-artifacts/artifacts/<path>`: stores a file (replacing one at that path).
async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    axum::extract::Path(path): axum::extract::Path<String>,
    body: Body,
) -> MlResult<Json<Value>> {
    super::require_user(&actor)?;
    let (id, file) = target_in(&state, &actor, &path).await?;
    if file.is_empty() {
        return Err(invalid(
            "Invalid path: an upload names a file under artifacts/",
        ));
    }
    Files { state: &state }
        .put_bytes(&actor, &id, &file, body, &client)
        .await
        .map_err(run_missing(&id))?;
    Ok(empty())
}

/// `DELETE /mlflow-artifacts/artifacts/<path>`: removes a file, or every file under a
/// directory.
async fn remove(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> MlResult<Json<Value>> {
    super::require_user(&actor)?;
    let (id, target) = target_in(&state, &actor, &path).await?;
    let files = Files { state: &state };
    let all = files
        .list(&actor, &id, false, &client)
        .await
        .map_err(run_missing(&id))?;
    let prefix = format!("{target}/");
    let doomed: Vec<&RunFile> = all
        .iter()
        .filter(|f| target.is_empty() || f.path == target || f.path.starts_with(&prefix))
        .collect();
    if doomed.is_empty() {
        return Err(missing(format!(
            "Artifact {target:?} of run {id} not found"
        )));
    }
    for f in doomed {
        files.delete(&actor, &id, &f.path, &client).await?;
    }
    Ok(empty())
}
