//! Artifact pages: a project's artifacts (by type and tag), an artifact with its versions and
//! aliases, and one version with its files, metadata and lineage graph (drawn by `lineage.js`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use wanllmdb_api_types::artifacts::{
    Artifact, ArtifactAlias, ArtifactFile, ArtifactVersion, LineageRun,
};
use wanllmdb_api_types::projects::Project;

use super::views;
use super::{Chrome, Page, PageError, PageResult};
use crate::artifacts::Artifacts;
use crate::extract::ClientInfo;
use crate::projects::Projects;
use crate::state::AppState;
use wanllmdb_api_types::ProjectName;

/// Artifacts a list page shows.
const PAGE_SIZE: usize = 50;
/// Runs listed as users of a version above its graph.
const USED_BY_LISTED: usize = 20;
/// Hops each way the lineage graph starts with.
const DEFAULT_DEPTH: u32 = 4;
/// Most hops each way the page offers.
const MAX_DEPTH: u32 = 20;

#[derive(Template, WebTemplate)]
#[template(path = "artifacts.html")]
pub(super) struct ArtifactsPage {
    chrome: Chrome,
    project: Project,
    tab: &'static str,
    kind: String,
    tag: String,
    artifacts: Vec<Artifact>,
    next: Option<String>,
}

impl ArtifactsPage {
    fn href(&self, a: &Artifact) -> String {
        format!(
            "/projects/{}/artifacts/{}",
            a.project,
            views::segment(&a.name)
        )
    }
    fn latest(&self, a: &Artifact) -> Option<String> {
        a.latest_version
            .as_deref()
            .map(|v| views::artifact_href(&a.project, &a.name, v))
    }
    fn tag_href(&self, tag: &str) -> String {
        format!(
            "/projects/{}/artifacts?{}",
            self.project.name,
            views::query(&[("tag", tag.to_string())])
        )
    }
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ListQuery {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    tag: String,
    cursor: Option<String>,
}

/// `GET /projects/{name}/artifacts?type=&tag=&cursor=`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> PageResult<ArtifactsPage> {
    let name: ProjectName = page.segment(&name)?;
    let page = page
        .crumb(name.clone(), format!("/projects/{name}"))
        .crumb("Artifacts", String::new());
    let fail = |e| PageError::new(&page.chrome, e);
    let project = Projects { state: &state }
        .get(&page.actor, &name)
        .await
        .map_err(fail)?;
    let nonempty = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
    let list = Artifacts { state: &state }
        .list(
            &page.actor,
            &name,
            nonempty(&q.kind).as_deref(),
            nonempty(&q.tag).as_deref(),
            PAGE_SIZE,
            q.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await
        .map_err(fail)?;
    let next = list.next_cursor.map(|c| {
        format!(
            "/projects/{name}/artifacts?{}",
            views::query(&[
                ("type", q.kind.clone()),
                ("tag", q.tag.clone()),
                ("cursor", c)
            ])
        )
    });
    Ok(ArtifactsPage {
        chrome: page.chrome,
        project,
        tab: "artifacts",
        kind: q.kind,
        tag: q.tag,
        artifacts: list.items,
        next,
    })
}

/// A version's page link.
fn version_href(v: &ArtifactVersion) -> Option<String> {
    v.version
        .as_deref()
        .map(|n| views::artifact_href(&v.project, &v.artifact, n))
}

#[derive(Template, WebTemplate)]
#[template(path = "artifact.html")]
pub(super) struct ArtifactPage {
    chrome: Chrome,
    artifact: Artifact,
    metadata: Vec<(String, String)>,
    aliases: Vec<ArtifactAlias>,
    versions: Vec<ArtifactVersion>,
}

impl ArtifactPage {
    fn href(&self, v: &ArtifactVersion) -> Option<String> {
        version_href(v)
    }
    fn alias_href(&self, a: &ArtifactAlias) -> String {
        views::artifact_href(&self.artifact.project, &self.artifact.name, &a.version)
    }
    fn size(&self, v: &ArtifactVersion) -> String {
        views::size(v.total_size.max(0) as u64)
    }
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
}

fn artifact_crumbs(page: Page, project: &str, artifact: &str) -> Page {
    page.crumb(project.to_string(), format!("/projects/{project}"))
        .crumb("Artifacts", format!("/projects/{project}/artifacts"))
        .crumb(
            artifact.to_string(),
            format!("/projects/{project}/artifacts/{}", views::segment(artifact)),
        )
}

/// `GET /projects/{name}/artifacts/{artifact}`: its versions, aliases and metadata.
pub(super) async fn artifact(
    State(state): State<AppState>,
    page: Page,
    Path((name, artifact)): Path<(String, String)>,
) -> PageResult<ArtifactPage> {
    let name: ProjectName = page.segment(&name)?;
    let page = artifact_crumbs(page, name.as_str(), &artifact);
    let fail = |e| PageError::new(&page.chrome, e);
    let svc = Artifacts { state: &state };
    let a = svc.get(&page.actor, &name, &artifact).await.map_err(fail)?;
    let versions = svc
        .versions(&page.actor, &name, &artifact)
        .await
        .map_err(fail)?;
    let aliases = svc
        .aliases(&page.actor, &name, &artifact)
        .await
        .map_err(fail)?;
    Ok(ArtifactPage {
        chrome: page.chrome,
        metadata: views::flatten_config(&a.metadata).into_iter().collect(),
        artifact: a,
        aliases,
        versions,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "artifact_version.html")]
pub(super) struct VersionPage {
    chrome: Chrome,
    v: ArtifactVersion,
    /// The version's number as it appears in URLs (`v3`).
    label: String,
    metadata: Vec<(String, String)>,
    files: Vec<ArtifactFile>,
    /// The first runs that used it (the graph has them all).
    used_by: Vec<LineageRun>,
    /// How many more used it.
    used_by_more: usize,
    produced_by: Option<LineageRun>,
    depth: u32,
    depths: Vec<u32>,
    lineage_url: String,
}

impl VersionPage {
    fn size(&self, f: &ArtifactFile) -> String {
        views::size(f.size)
    }
    fn created(&self) -> String {
        views::short_time(&self.v.created_at)
    }
    fn total(&self) -> String {
        views::size(self.v.total_size.max(0) as u64)
    }
    fn download(&self, f: &ArtifactFile) -> String {
        format!(
            "{}/files/download?{}",
            views::artifact_href(&self.v.project, &self.v.artifact, &self.label),
            views::query(&[("path", f.path.clone())])
        )
    }
    fn artifact_href(&self) -> String {
        format!(
            "/projects/{}/artifacts/{}",
            self.v.project,
            views::segment(&self.v.artifact)
        )
    }
}

#[derive(serde::Deserialize)]
pub(super) struct VersionQuery {
    depth: Option<u32>,
}

/// `GET /projects/{name}/artifacts/{artifact}/{version}?depth=&expand=`: files, metadata,
/// aliases, who produced and used it, and the lineage graph.
pub(super) async fn version(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path((name, artifact, version)): Path<(String, String, String)>,
    Query(q): Query<VersionQuery>,
) -> PageResult<VersionPage> {
    let name: ProjectName = page.segment(&name)?;
    let page = artifact_crumbs(page, name.as_str(), &artifact);
    let fail = |e| PageError::new(&page.chrome, e);
    let svc = Artifacts { state: &state };
    let v = svc
        .version(&page.actor, &name, &artifact, &version)
        .await
        .map_err(fail)?;
    let label = v.version.clone().unwrap_or_else(|| version.clone());
    let page = page.crumb(label.clone(), String::new());
    let fail = |e| PageError::new(&page.chrome, e);
    let files = svc
        .files(&page.actor, &name, &artifact, &label, false, &client)
        .await
        .map_err(fail)?;
    let around = svc
        .lineage(&page.actor, &name, &artifact, &label, 1)
        .await
        .map_err(fail)?;
    let depth = q.depth.unwrap_or(DEFAULT_DEPTH).clamp(1, MAX_DEPTH);
    Ok(VersionPage {
        lineage_url: format!(
            "/api/v1/projects/{name}/artifacts/{}/versions/{}/lineage?depth={depth}",
            views::segment(&artifact),
            views::segment(&label)
        ),
        chrome: page.chrome,
        metadata: views::flatten_config(&v.metadata).into_iter().collect(),
        v,
        label,
        files,
        used_by_more: around.used_by.len().saturating_sub(USED_BY_LISTED),
        used_by: around.used_by.into_iter().take(USED_BY_LISTED).collect(),
        produced_by: around.produced_by,
        depth,
        depths: vec![1, 2, 4, 8, MAX_DEPTH],
    })
}

#[derive(serde::Deserialize)]
pub(super) struct FileQuery {
    path: String,
}

/// `GET /projects/{name}/artifacts/{artifact}/{version}/files/download?path=`: to a short-lived
/// download URL (audited as over the API).
pub(super) async fn download(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path((name, artifact, version)): Path<(String, String, String)>,
    Query(q): Query<FileQuery>,
) -> PageResult<Response> {
    let name: ProjectName = page.segment(&name)?;
    let f = Artifacts { state: &state }
        .file(&page.actor, &name, &artifact, &version, &q.path, &client)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    Ok(Redirect::to(&f.download_url.unwrap_or_default()).into_response())
}
