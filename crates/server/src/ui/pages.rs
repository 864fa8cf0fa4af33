//! The pages: projects, a project's run table, a run (overview and charts, logs, files,
//! artifacts) and the comparison of runs. Each reads through the services with the caller's
//! actor, so authorization is the API's.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use wanllmdb_api_types::Page as ApiPage;
use wanllmdb_api_types::artifacts::ArtifactVersion;
use wanllmdb_api_types::files::RunFile;
use wanllmdb_api_types::logs::{LogLevel, LogLine};
use wanllmdb_api_types::metrics::MetricSummary;
use wanllmdb_api_types::projects::{Project, Visibility};
use wanllmdb_api_types::runs::{Run, RunState};

use super::views::{self, Column};
use super::{Chrome, Page, PageError, PageResult};
use crate::artifacts::Artifacts;
use crate::error::ApiError;
use crate::extract::{ClientInfo, QueryPairs};
use crate::files::Files;
use crate::logs::{LogFilter, Logs};
use crate::metrics::Metrics;
use crate::projects::Projects;
use crate::runs::{RunQuery, Runs};
use crate::state::AppState;
use wanllmdb_api_types::{ProjectName, RunId};

/// Charts a run page creates by itself; the others are a search away.
const AUTO_CHARTS: usize = 12;
/// Lines of the log tail a page starts with.
const TAIL_LINES: i64 = 500;
/// Most runs one comparison overlays.
const MAX_COMPARE: usize = 100;

fn now() -> f64 {
    crate::store::now_us() as f64 / 1e6
}

// ---------------------------------------------------------------- projects

#[derive(Template, WebTemplate)]
#[template(path = "projects.html")]
pub(super) struct ProjectsPage {
    chrome: Chrome,
    q: String,
    visibility: String,
    projects: Vec<Project>,
    next: Option<String>,
}

impl ProjectsPage {
    fn activity(&self, p: &Project) -> String {
        views::short_time(&p.stats.last_activity_at)
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ProjectsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    visibility: String,
    cursor: Option<String>,
}

/// `GET /projects?q=&visibility=&cursor=`.
pub(super) async fn projects(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<ProjectsQuery>,
) -> PageResult<ProjectsPage> {
    let visibility = match q.visibility.as_str() {
        "public" => Some(Visibility::Public),
        "private" => Some(Visibility::Private),
        _ => None,
    };
    let search = Some(q.q.as_str()).filter(|s| !s.is_empty());
    let list = Projects { state: &state }
        .list(
            &page.actor,
            search,
            visibility,
            Some(50),
            q.cursor.as_deref(),
        )
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let next = list.next_cursor.map(|c| {
        format!(
            "/projects?{}",
            views::query(&[
                ("q", q.q.clone()),
                ("visibility", q.visibility.clone()),
                ("cursor", c)
            ])
        )
    });
    Ok(ProjectsPage {
        chrome: page.chrome,
        q: q.q,
        visibility: q.visibility,
        projects: list.items,
        next,
    })
}

// ---------------------------------------------------------------- run table

/// The run table's state, all of it in the URL.
#[derive(Debug, Default, Clone)]
pub(super) struct TableState {
    q: String,
    filter: String,
    state: String,
    sort: String,
    cursor: Option<String>,
    cols: Option<Vec<String>>,
}

impl TableState {
    fn from_pairs(pairs: Vec<(String, String)>) -> TableState {
        let mut t = TableState::default();
        for (k, v) in pairs {
            match k.as_str() {
                "q" => t.q = v,
                "filter" => t.filter = v,
                "state" => t.state = v,
                "sort" => t.sort = v,
                "cursor" if !v.is_empty() => t.cursor = Some(v),
                "cols" => {
                    let cols = t.cols.get_or_insert_with(Vec::new);
                    cols.extend(v.split(',').filter(|c| !c.is_empty()).map(str::to_string));
                }
                _ => {}
            }
        }
        t
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("filter", &self.filter),
            ("state", &self.state),
            ("sort", &self.sort),
        ] {
            if !v.is_empty() {
                p.push((k, v.clone()));
            }
        }
        if let Some(c) = &self.cols {
            p.push(("cols", c.join(",")));
        }
        p
    }

    fn query(&self, project: &ProjectName) -> RunQuery {
        RunQuery {
            project: Some(project.clone()),
            state: Some(self.state.clone()).filter(|s| !s.is_empty()),
            tags: Vec::new(),
            q: Some(self.q.clone()).filter(|s| !s.is_empty()),
            // The query language joins conditions with `and` inside one expression.
            filters: Some(self.filter.clone())
                .filter(|s| !s.trim().is_empty())
                .into_iter()
                .collect(),
            sort: Some(self.sort.clone()).filter(|s| !s.is_empty()),
            limit: Some(50),
            cursor: self.cursor.clone(),
        }
    }

    /// The current sort key without its direction, and whether it is descending.
    fn sorted_by(&self) -> (&str, bool) {
        let s = if self.sort.is_empty() {
            "-created_at"
        } else {
            &self.sort
        };
        match s.strip_prefix('-') {
            Some(f) => (f, true),
            None => (s, false),
        }
    }
}

pub(super) struct RowView {
    id: String,
    name: String,
    state: &'static str,
    tags: Vec<String>,
    created: String,
    duration: String,
    cells: Vec<String>,
}

pub(super) struct HeaderView {
    label: String,
    href: String,
    arrow: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "project.html")]
pub(super) struct ProjectPage {
    chrome: Chrome,
    project: Project,
    tab: &'static str,
    t: TableState,
    headers: Vec<HeaderView>,
    fixed: Vec<HeaderView>,
    rows: Vec<RowView>,
    picker: Vec<(String, String, bool)>,
    cols_value: String,
    next: Option<String>,
    first: Option<String>,
    error: Option<String>,
    states_url: String,
}

fn header(project: &str, t: &TableState, label: &str, field: &str) -> HeaderView {
    let (cur, desc) = t.sorted_by();
    let mut next = t.clone();
    next.cursor = None;
    next.sort = if cur == field && !desc {
        format!("-{field}")
    } else if cur == field {
        field.to_string()
    } else {
        // Numbers and times read best largest first.
        format!("-{field}")
    };
    HeaderView {
        label: label.to_string(),
        href: format!("/projects/{project}?{}", views::query(&next.pairs())),
        arrow: match (cur == field, desc) {
            (true, true) => "▼",
            (true, false) => "▲",
            _ => "",
        },
    }
}

fn row(run: &Run, flat: &BTreeMap<String, String>, cols: &[Column]) -> RowView {
    RowView {
        id: run.id.to_string(),
        name: run.name.clone(),
        state: run.state.as_str(),
        tags: run.tags.clone(),
        created: views::short_time(&run.created_at),
        duration: views::run_duration(run, now()),
        cells: cols.iter().map(|c| c.cell(flat, &run.summary)).collect(),
    }
}

/// `/experiments/{id}`: a project by its numeric id (the MLflow experiment id in the links
/// MLflow clients print), sent on to its page.
pub(super) async fn experiment(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let not_found = || ApiError::not_found(format!("experiment {id}"));
    let access = match id.parse::<i64>() {
        Ok(n) => {
            Projects { state: &state }
                .access_by_id(&page.actor, n)
                .await
        }
        Err(_) => Err(not_found()),
    };
    let access = access
        .and_then(|a| a.require_read().map(|()| a))
        .map_err(|_| PageError::new(&page.chrome, not_found()))?;
    Ok(Redirect::to(&format!("/projects/{}", access.name)).into_response())
}

/// `GET /projects/{name}?q=&filter=&state=&sort=&cursor=&cols=`: the run table.
pub(super) async fn project(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> PageResult<Response> {
    let name: ProjectName = page.segment(&name)?;
    let page = page.crumb(name.clone(), format!("/projects/{name}"));
    let project = Projects { state: &state }
        .get(&page.actor, &name)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let t = TableState::from_pairs(pairs);
    let (list, error) = match (Runs { state: &state })
        .list(&page.actor, &t.query(&name))
        .await
    {
        Ok(l) => (l, None),
        Err(e @ ApiError::InvalidInput(_)) => (
            ApiPage {
                items: Vec::new(),
                next_cursor: None,
            },
            Some(e.to_string()),
        ),
        Err(e) => return Err(PageError::new(&page.chrome, e)),
    };
    let runs: Vec<(Run, BTreeMap<String, String>)> = list
        .items
        .into_iter()
        .map(|r| {
            let flat = views::flatten_config(&r.config);
            (r, flat)
        })
        .collect();
    let (all, default) = views::columns(&runs);
    let shown: Vec<Column> = match &t.cols {
        Some(ids) => ids.iter().filter_map(|c| Column::parse(c)).collect(),
        None => default,
    };
    let mut offered: BTreeSet<Column> = all.into_iter().collect();
    offered.extend(shown.iter().cloned());
    let picker = offered
        .iter()
        .map(|c| (c.id(), c.label().to_string(), shown.contains(c)))
        .collect();
    let rows = runs.iter().map(|(r, f)| row(r, f, &shown)).collect();
    let headers = shown
        .iter()
        .map(|c| header(name.as_str(), &t, c.label(), &c.id()))
        .collect();
    let fixed = [
        ("State", "state"),
        ("Name", "name"),
        ("Created", "created_at"),
    ]
    .iter()
    .map(|(l, f)| header(name.as_str(), &t, l, f))
    .collect();
    let with_cursor = |c: Option<String>| {
        let mut s = t.clone();
        s.cursor = c;
        let mut p = s.pairs();
        if let Some(c) = &s.cursor {
            p.push(("cursor", c.clone()));
        }
        format!("/projects/{name}?{}", views::query(&p))
    };
    let next = list.next_cursor.map(|c| with_cursor(Some(c)));
    let first = t.cursor.as_ref().map(|_| with_cursor(None));
    let mut state_pairs = t.pairs();
    if let Some(c) = &t.cursor {
        state_pairs.push(("cursor", c.clone()));
    }
    let states_url = format!("/projects/{name}/states?{}", views::query(&state_pairs));
    let status = if error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    let cols_value = shown.iter().map(Column::id).collect::<Vec<_>>().join(",");
    let body = ProjectPage {
        chrome: page.chrome,
        project,
        tab: "runs",
        t,
        headers,
        fixed,
        rows,
        picker,
        cols_value,
        next,
        first,
        error,
        states_url,
    };
    Ok((status, body).into_response())
}

/// One row's live fields.
#[derive(serde::Serialize)]
pub(super) struct RunStateView {
    id: String,
    state: &'static str,
    duration: String,
}

/// `GET /projects/{name}/states?…`: states and durations of the table's runs (the table polls
/// it while it is on screen).
pub(super) async fn run_states(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<RunStateView>>, ApiError> {
    let name = ProjectName::parse(&name)?;
    let t = TableState::from_pairs(pairs);
    let list = Runs { state: &state }
        .list(&page.actor, &t.query(&name))
        .await?;
    let now = now();
    Ok(Json(
        list.items
            .iter()
            .map(|r| RunStateView {
                id: r.id.to_string(),
                state: r.state.as_str(),
                duration: views::run_duration(r, now),
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------- run page

/// Chart settings of a run or comparison page, all in the URL.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(super) struct ChartSettings {
    #[serde(default)]
    smooth: Option<f64>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    logy: Option<String>,
    #[serde(default)]
    outliers: Option<String>,
    /// Charts added by search, comma-separated.
    #[serde(default)]
    keys: Option<String>,
}

impl ChartSettings {
    fn smooth(&self) -> f64 {
        self.smooth.unwrap_or(0.0).clamp(0.0, 0.99)
    }
    fn x(&self) -> &str {
        match self.x.as_deref() {
            Some("time") => "time",
            Some("relative") => "relative",
            _ => "step",
        }
    }
    fn logy(&self) -> bool {
        self.logy.as_deref().is_some_and(|v| v == "1" || v == "on")
    }
    fn outliers(&self) -> bool {
        self.outliers
            .as_deref()
            .is_some_and(|v| v == "1" || v == "on")
    }
    /// The keys to chart: the first [`AUTO_CHARTS`], then any asked for in the URL.
    pub(super) fn charted(&self, keys: &[String]) -> Vec<String> {
        let mut out: Vec<String> = keys.iter().take(AUTO_CHARTS).cloned().collect();
        for k in self.keys.as_deref().unwrap_or("").split(',') {
            if keys.iter().any(|x| x == k) && !out.iter().any(|x| x == k) {
                out.push(k.to_string());
            }
        }
        out
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "run.html")]
pub(super) struct RunPage {
    chrome: Chrome,
    run: Run,
    tab: &'static str,
    duration: String,
    config: Vec<(String, String)>,
    summary: Vec<MetricSummary>,
    runtime: Vec<(String, String)>,
    charts: Vec<String>,
    all_keys: Vec<String>,
    settings: ChartSettings,
}

#[cfg(test)]
impl RunPage {
    /// A page over a run and metric keys, without a server.
    pub(super) fn for_test(chrome: Chrome, run: Run, keys: Vec<String>) -> RunPage {
        let settings = ChartSettings::default();
        RunPage {
            chrome,
            duration: "1s".into(),
            config: views::flatten_config(&run.config).into_iter().collect(),
            summary: Vec::new(),
            runtime: Vec::new(),
            charts: settings.charted(&keys),
            all_keys: keys,
            settings,
            run,
            tab: "overview",
        }
    }
}

impl RunPage {
    fn num(&self, v: &Option<wanllmdb_api_types::metrics::MetricValue>) -> String {
        v.map(|v| views::number(v.0)).unwrap_or_default()
    }
    fn running(&self) -> bool {
        self.run.state == RunState::Running
    }
}

async fn load_run(state: &AppState, page: Page, id: &RunId) -> PageResult<(Page, Run)> {
    let run = Runs { state }
        .get(&page.actor, id)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let page = page
        .crumb(run.project.clone(), format!("/projects/{}", run.project))
        .crumb(run.name.clone(), format!("/runs/{}", run.id));
    Ok((page, run))
}

/// `GET /runs/{id}?smooth=&x=&logy=&outliers=&keys=`: overview and charts.
pub(super) async fn run(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Query(settings): Query<ChartSettings>,
) -> PageResult<RunPage> {
    let id: RunId = page.segment(&id)?;
    let (page, run) = load_run(&state, page, &id).await?;
    let summary = Metrics { state: &state }
        .summary(&page.actor, &id)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let keys: Vec<String> = summary
        .iter()
        .filter(|s| s.count > 0)
        .map(|s| s.key.clone())
        .collect();
    let all_keys = views::chart_order(&keys);
    Ok(RunPage {
        chrome: page.chrome,
        duration: views::run_duration(&run, now()),
        config: views::flatten_config(&run.config).into_iter().collect(),
        runtime: run
            .runtime
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        charts: settings.charted(&all_keys),
        all_keys,
        summary,
        settings,
        run,
        tab: "overview",
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "run_logs.html")]
pub(super) struct LogsPage {
    chrome: Chrome,
    run: Run,
    tab: &'static str,
    duration: String,
    level: String,
    q: String,
    lines: Vec<LogLine>,
    cursor: i64,
    stream_url: String,
}

impl LogsPage {
    fn time(&self, l: &LogLine) -> String {
        let t = crate::store::format_time((l.timestamp * 1e6) as i64);
        t.get(11..19).unwrap_or(&t).to_string()
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LogsQuery {
    #[serde(default)]
    level: String,
    #[serde(default)]
    q: String,
}

/// `GET /runs/{id}/logs?level=&q=`: the last lines, then new ones as they arrive.
pub(super) async fn run_logs(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> PageResult<LogsPage> {
    let id: RunId = page.segment(&id)?;
    let (page, run) = load_run(&state, page, &id).await?;
    let level = LogLevel::parse(&q.level);
    let filter = LogFilter {
        level,
        text: Some(q.q.clone()).filter(|t| !t.is_empty()),
        ..LogFilter::default()
    };
    let (row, _) = Runs { state: &state }
        .load(&page.actor, &id)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let lines = Logs { state: &state }
        .tail(row.pk, &filter, TAIL_LINES)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let cursor = lines.last().map_or(0, |l| l.seq);
    let mut params = vec![("cursor", cursor.to_string())];
    if let Some(l) = level {
        params.push(("level", l.as_str().to_string()));
    }
    if !q.q.is_empty() {
        params.push(("q", q.q.clone()));
    }
    Ok(LogsPage {
        chrome: page.chrome,
        duration: views::run_duration(&run, now()),
        stream_url: format!("/api/v1/runs/{id}/logs/stream?{}", views::query(&params)),
        run,
        tab: "logs",
        level: level.map_or(String::new(), |l| l.as_str().to_string()),
        q: q.q,
        lines,
        cursor,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "run_files.html")]
pub(super) struct FilesPage {
    chrome: Chrome,
    run: Run,
    tab: &'static str,
    duration: String,
    files: Vec<RunFile>,
}

impl FilesPage {
    fn size(&self, f: &RunFile) -> String {
        views::size(f.size)
    }
    fn href(&self, f: &RunFile) -> String {
        format!(
            "/runs/{}/files/download?{}",
            self.run.id,
            views::query(&[("path", f.path.clone())])
        )
    }
}

/// `GET /runs/{id}/files`.
pub(super) async fn run_files(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path(id): Path<String>,
) -> PageResult<FilesPage> {
    let id: RunId = page.segment(&id)?;
    let (page, run) = load_run(&state, page, &id).await?;
    let files = Files { state: &state }
        .list(&page.actor, &id, false, &client)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    Ok(FilesPage {
        chrome: page.chrome,
        duration: views::run_duration(&run, now()),
        run,
        tab: "files",
        files,
    })
}

#[derive(serde::Deserialize)]
pub(super) struct FileQuery {
    path: String,
}

/// `GET /runs/{id}/files/download?path=`: to a short-lived download URL (audited like the API).
pub(super) async fn download_file(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> PageResult<Response> {
    let id: RunId = page.segment(&id)?;
    let f = Files { state: &state }
        .get(&page.actor, &id, &q.path, &client)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let url = f.download_url.unwrap_or_default();
    Ok(Redirect::to(&url).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "run_artifacts.html")]
pub(super) struct ArtifactsPage {
    chrome: Chrome,
    run: Run,
    tab: &'static str,
    duration: String,
    used: Vec<ArtifactVersion>,
    produced: Vec<ArtifactVersion>,
}

impl ArtifactsPage {
    /// The version's page; a version still being uploaded has none yet.
    fn href(&self, v: &ArtifactVersion) -> Option<String> {
        v.version
            .as_deref()
            .map(|n| views::artifact_href(&v.project, &v.artifact, n))
    }
}

/// `GET /runs/{id}/artifacts`: what the run used and produced.
pub(super) async fn run_artifacts(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> PageResult<ArtifactsPage> {
    let id: RunId = page.segment(&id)?;
    let (page, run) = load_run(&state, page, &id).await?;
    let a = Artifacts { state: &state }
        .of_run(&page.actor, &id)
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    Ok(ArtifactsPage {
        chrome: page.chrome,
        duration: views::run_duration(&run, now()),
        run,
        tab: "artifacts",
        used: a.used,
        produced: a.produced,
    })
}

// ---------------------------------------------------------------- compare

#[derive(Template, WebTemplate)]
#[template(path = "compare.html")]
pub(super) struct ComparePage {
    chrome: Chrome,
    project: String,
    runs: Vec<Run>,
    run_ids: String,
    diff: Vec<(String, Vec<String>)>,
    charts: Vec<String>,
    all_keys: Vec<String>,
    settings: ChartSettings,
}

/// `GET /projects/{name}/compare?runs=a,b&…`: the runs' curves overlaid, and their config
/// differences.
pub(super) async fn compare(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> PageResult<ComparePage> {
    let name: ProjectName = page.segment(&name)?;
    let page = page
        .crumb(name.clone(), format!("/projects/{name}"))
        .crumb("Compare", String::new());
    let mut ids: Vec<String> = Vec::new();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        if k == "runs" {
            for id in v.split(',').filter(|s| !s.is_empty()) {
                if !ids.iter().any(|x| x == id) {
                    ids.push(id.to_string());
                }
            }
        } else {
            rest.push((k, v));
        }
    }
    if ids.is_empty() || ids.len() > MAX_COMPARE {
        return Err(PageError::new(
            &page.chrome,
            ApiError::invalid(format!(
                "select 1 to {MAX_COMPARE} runs to compare (got {})",
                ids.len()
            )),
        ));
    }
    let settings: ChartSettings =
        serde_urlencoded::from_str(&serde_urlencoded::to_string(&rest).unwrap_or_default())
            .unwrap_or_default();
    let (runs_svc, metrics) = (Runs { state: &state }, Metrics { state: &state });
    let mut runs = Vec::with_capacity(ids.len());
    let mut keys = BTreeSet::new();
    for id in &ids {
        let id: &RunId = &page.segment(id)?;
        let run = runs_svc
            .get(&page.actor, id)
            .await
            .map_err(|e| PageError::new(&page.chrome, e))?;
        let summary = metrics
            .summary(&page.actor, id)
            .await
            .map_err(|e| PageError::new(&page.chrome, e))?;
        keys.extend(summary.into_iter().filter(|s| s.count > 0).map(|s| s.key));
        runs.push(run);
    }
    let flats: Vec<BTreeMap<String, String>> = runs
        .iter()
        .map(|r| views::flatten_config(&r.config))
        .collect();
    let all_paths: BTreeSet<&String> = flats.iter().flat_map(|f| f.keys()).collect();
    let diff = all_paths
        .into_iter()
        .filter_map(|p| {
            let vals: Vec<String> = flats
                .iter()
                .map(|f| f.get(p).cloned().unwrap_or_default())
                .collect();
            (vals.iter().any(|v| *v != vals[0])).then(|| (p.clone(), vals))
        })
        .collect();
    let keys: Vec<String> = keys.into_iter().collect();
    let all_keys = views::chart_order(&keys);
    Ok(ComparePage {
        chrome: page.chrome,
        project: name.to_string(),
        run_ids: ids.join(","),
        runs,
        diff,
        charts: settings.charted(&all_keys),
        all_keys,
        settings,
    })
}
