//! Sweep pages: a project's sweeps, and one sweep with its state and controls, parallel
//! coordinates of its trials (drawn by `parcoords.js` from the analysis endpoint), parameter
//! importance and the trials table.

use std::collections::BTreeSet;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use wanllmdb_api_types::projects::{Project, Role};
use wanllmdb_api_types::sweeps::{Sweep, SweepAnalysis, SweepState, Trial, TrialState};

use super::views;
use super::{Chrome, Notice, Page, PageError, PageResult, answer_form, refused};
use crate::error::ApiError;
use crate::extract::{ClientInfo, QueryPairs};
use crate::projects::Projects;
use crate::runs::Runs;
use crate::state::AppState;
use crate::sweeps::Sweeps;
use wanllmdb_api_types::ProjectName;

/// Width in pixels of the longest importance bar.
const BAR_WIDTH: f64 = 240.0;

#[derive(Template, WebTemplate)]
#[template(path = "sweeps.html")]
pub(super) struct SweepsPage {
    chrome: Chrome,
    project: Project,
    tab: &'static str,
    sweeps: Vec<Sweep>,
}

impl SweepsPage {
    fn best(&self, s: &Sweep) -> String {
        s.best
            .as_ref()
            .and_then(|t| t.value)
            .map(views::number)
            .unwrap_or_default()
    }
    fn metric(&self, s: &Sweep) -> String {
        metric_of(&s.config)
    }
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
}

impl SweepPage {
    fn created(&self) -> String {
        views::short_time(&self.sweep.created_at)
    }
    fn best_value(&self) -> String {
        self.sweep
            .best
            .as_ref()
            .and_then(|t| t.value)
            .map(views::number)
            .unwrap_or_default()
    }
}

/// `metric.name (goal)` of a sweep configuration, or nothing.
fn metric_of(config: &serde_json::Value) -> String {
    let m = &config["metric"];
    match (m["name"].as_str(), m["goal"].as_str()) {
        (Some(n), Some(g)) => format!("{n} ({g})"),
        (Some(n), None) => n.to_string(),
        _ => String::new(),
    }
}

/// `GET /projects/{name}/sweeps`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> PageResult<SweepsPage> {
    let name: ProjectName = page.segment(&name)?;
    let page = page
        .crumb(name.clone(), format!("/projects/{name}"))
        .crumb("Sweeps", String::new());
    let fail = |e| PageError::new(&page.chrome, e);
    let project = Projects { state: &state }
        .get(&page.actor, &name)
        .await
        .map_err(fail)?;
    let sweeps = Sweeps { state: &state }
        .list(&page.actor, &name)
        .await
        .map_err(fail)?;
    Ok(SweepsPage {
        chrome: page.chrome,
        project,
        tab: "sweeps",
        sweeps,
    })
}

/// One parallel-coordinates axis as the page offers it.
pub(super) struct AxisView {
    name: String,
    numeric: bool,
    /// Whether a log scale is possible (every value positive).
    can_log: bool,
    log: bool,
    /// Whether the configuration samples it on a log scale (the scale without `log=` in the URL).
    log_default: bool,
    flip: bool,
}

/// One bar of the importance chart.
pub(super) struct Bar {
    name: String,
    share: String,
    width: String,
    correlation: String,
}

/// One row of the trials table.
pub(super) struct TrialView {
    number: u64,
    run_id: String,
    /// Whether the run exists (a trial handed out but never started has none).
    linked: bool,
    state: &'static str,
    cells: Vec<String>,
    value: String,
    iterations: u64,
    note: String,
    best: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "sweep.html")]
pub(super) struct SweepPage {
    chrome: Chrome,
    sweep: Sweep,
    notice: Option<Notice>,
    /// State changes the caller may make now: (action, button label).
    actions: Vec<(&'static str, &'static str)>,
    metric: String,
    axes: Vec<AxisView>,
    bars: Vec<Bar>,
    params: Vec<String>,
    trials: Vec<TrialView>,
    analysis_url: String,
    /// What the chart draws, as JSON: the analysis's axes and lines, and each line's trial.
    chart_data: String,
}

/// The axes' log and flip settings in the URL (`log=a&log=b`, `flip=c`); without any `log`,
/// the parameters the configuration samples on a log scale.
#[derive(Debug, Default)]
pub(super) struct AxisSettings {
    log: Option<BTreeSet<String>>,
    flip: BTreeSet<String>,
}

impl AxisSettings {
    pub(super) fn from_pairs(pairs: &[(String, String)]) -> AxisSettings {
        let mut s = AxisSettings::default();
        for (k, v) in pairs {
            match k.as_str() {
                "log" => {
                    let set = s.log.get_or_insert_with(BTreeSet::new);
                    if !v.is_empty() {
                        set.insert(v.clone());
                    }
                }
                "flip" if !v.is_empty() => {
                    s.flip.insert(v.clone());
                }
                _ => {}
            }
        }
        s
    }
}

/// Dotted names of the parameters a sweep configuration draws from a log-scaled distribution.
pub(super) fn log_scaled(config: &serde_json::Value) -> BTreeSet<String> {
    fn walk(params: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
        let Some(map) = params.as_object() else {
            return;
        };
        for (name, spec) in map {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if spec.get("parameters").is_some() {
                walk(&spec["parameters"], &path, out);
            } else if spec["distribution"]
                .as_str()
                .is_some_and(|d| d.contains("log"))
            {
                out.insert(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&config["parameters"], "", &mut out);
    out
}

fn axes(analysis: &SweepAnalysis, config: &serde_json::Value, s: &AxisSettings) -> Vec<AxisView> {
    let default_log = log_scaled(config);
    analysis
        .axes
        .iter()
        .map(|a| {
            let numeric = a.kind == "numeric";
            let log = match &s.log {
                Some(set) => set.contains(&a.name),
                None => default_log.contains(&a.name),
            };
            // A log scale needs positive values.
            let positive = a.min.is_some_and(|m| m > 0.0);
            AxisView {
                numeric,
                can_log: numeric && positive,
                log: numeric && positive && log,
                log_default: numeric && positive && default_log.contains(&a.name),
                flip: s.flip.contains(&a.name),
                name: a.name.clone(),
            }
        })
        .collect()
}

fn bars(analysis: &SweepAnalysis) -> Vec<Bar> {
    let top = analysis
        .importance
        .iter()
        .map(|i| i.importance)
        .fold(0.0, f64::max);
    analysis
        .importance
        .iter()
        .map(|imp| Bar {
            name: imp.name.clone(),
            share: format!("{:.0} %", imp.importance * 100.0),
            width: format!(
                "{:.1}",
                if top > 0.0 {
                    imp.importance / top * BAR_WIDTH
                } else {
                    0.0
                }
            ),
            correlation: imp
                .correlation
                .map(|c| format!("{c:+.2}"))
                .unwrap_or_default(),
        })
        .collect()
}

fn trial_view(t: &Trial, params: &[String], best: Option<u64>) -> TrialView {
    let note = match (&t.stop_reason, t.retry_of) {
        (Some(r), _) => r.clone(),
        (None, Some(n)) => format!("retry of #{n}"),
        _ => String::new(),
    };
    TrialView {
        number: t.number,
        run_id: t.run_id.to_string(),
        linked: t.state != TrialState::Pending,
        state: match t.state {
            TrialState::Pending => "pending",
            TrialState::Running => "running",
            TrialState::Finished => "finished",
            TrialState::Crashed => "crashed",
            TrialState::Killed => "killed",
        },
        cells: params
            .iter()
            .map(|p| match t.params.get(p) {
                Some(serde_json::Value::Number(n)) => {
                    n.as_f64().map(views::number).unwrap_or_default()
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect(),
        value: t.value.map(views::number).unwrap_or_default(),
        iterations: t.iterations,
        note,
        best: best == Some(t.number),
    }
}

/// The parallel-coordinates data in the page itself: the analysis is computed once per view,
/// and the chart draws without another request. The trials go by number only.
fn chart_data(analysis: &SweepAnalysis) -> String {
    let top: Vec<serde_json::Value> = analysis
        .top
        .iter()
        .map(|t| serde_json::json!({ "number": t.number }))
        .collect();
    serde_json::json!({ "axes": analysis.axes, "lines": analysis.lines, "top": top }).to_string()
}

/// The state changes a sweep in `state` allows.
fn actions(state: SweepState) -> Vec<(&'static str, &'static str)> {
    match state {
        SweepState::Pending | SweepState::Running => vec![("pause", "Pause"), ("finish", "Finish")],
        SweepState::Paused => vec![("resume", "Resume"), ("finish", "Finish")],
        SweepState::Finished | SweepState::Canceled => Vec::new(),
    }
}

async fn sweep_page(
    state: &AppState,
    page: Page,
    id: &str,
    pairs: &[(String, String)],
    notice: Option<Notice>,
) -> PageResult<SweepPage> {
    let svc = Sweeps { state };
    let fail = |e| PageError::new(&page.chrome, e);
    let sweep = svc.get(&page.actor, id).await.map_err(fail)?;
    let page = page
        .crumb(
            sweep.project.clone(),
            format!("/projects/{}", sweep.project),
        )
        .crumb("Sweeps", format!("/projects/{}/sweeps", sweep.project))
        .crumb(sweep.name.clone(), String::new());
    let fail = |e| PageError::new(&page.chrome, e);
    let access = Projects { state }
        .access(&page.actor, &sweep.project)
        .await
        .map_err(fail)?;
    let trials = svc.list_trials(&page.actor, id).await.map_err(fail)?;
    let analysis = svc.analysis(&page.actor, id).await.map_err(fail)?;
    let params: Vec<String> = analysis
        .axes
        .iter()
        .take(analysis.axes.len().saturating_sub(1))
        .map(|a| a.name.clone())
        .collect();
    let best = sweep.best.as_ref().map(|t| t.number);
    let mut rows: Vec<TrialView> = trials
        .iter()
        .map(|t| trial_view(t, &params, best))
        .collect();
    // A crashed trial may be one whose run never started: link only runs that exist.
    let runs = Runs { state };
    for (row, t) in rows.iter_mut().zip(&trials) {
        if t.state == TrialState::Crashed && t.iterations == 0 {
            row.linked = runs.get(&page.actor, &t.run_id).await.is_ok();
        }
    }
    let can_edit = access.role.is_some_and(|r| r >= Role::Member);
    Ok(SweepPage {
        actions: if can_edit {
            actions(sweep.state)
        } else {
            Vec::new()
        },
        metric: metric_of(&sweep.config),
        axes: axes(&analysis, &sweep.config, &AxisSettings::from_pairs(pairs)),
        bars: bars(&analysis),
        trials: rows,
        params,
        analysis_url: format!("/api/v1/sweeps/{}/analysis", sweep.id),
        chart_data: chart_data(&analysis),
        chrome: page.chrome,
        sweep,
        notice,
    })
}

/// `GET /sweeps/{id}?log=&flip=&brush=`: the sweep (the brushes are read by the script).
pub(super) async fn sweep(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> PageResult<SweepPage> {
    sweep_page(&state, page, &id, &pairs, None).await
}

#[derive(serde::Deserialize)]
pub(super) struct StateForm {
    action: String,
}

/// `POST /sweeps/{id}/state` (`action` = pause, resume or finish): the same change, rules and
/// audit event as `POST /api/v1/sweeps/{id}/{action}`.
pub(super) async fn change_state(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<StateForm>,
) -> PageResult<Response> {
    let (status, notice) = if ["pause", "resume", "finish"].contains(&form.action.as_str()) {
        match (Sweeps { state: &state })
            .transition(&page.actor, &client, &id, &form.action)
            .await
        {
            Ok(s) => (
                StatusCode::OK,
                Notice::ok(format!("The sweep is {} now.", s.state.as_str())),
            ),
            Err(e) => refused(e),
        }
    } else {
        refused(ApiError::invalid(format!(
            "unknown action {:?}: use pause, resume or finish",
            form.action
        )))
    };
    let body = sweep_page(&state, page, &id, &[], Some(notice)).await?;
    Ok(answer_form(status, body, &format!("/sweeps/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_scaled_parameters_come_from_the_configuration() {
        let cfg = json!({"parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
            "batch": {"values": [16, 32]},
            "opt": {"parameters": {"wd": {"distribution": "q_log_uniform_values", "min": 1e-6, "max": 1e-2, "q": 1e-6}, "m": {"min": 0.0, "max": 1.0}}}
        }});
        let names: Vec<String> = log_scaled(&cfg).into_iter().collect();
        assert_eq!(names, ["lr", "opt.wd"]);
    }

    #[test]
    fn the_url_overrides_the_default_scales() {
        let pairs = |q: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap();
        let s = AxisSettings::from_pairs(&pairs("log=a&log=b&flip=c"));
        assert_eq!(s.log.unwrap().len(), 2);
        assert!(s.flip.contains("c"));
        let none = AxisSettings::from_pairs(&pairs("log="));
        assert_eq!(none.log, Some(BTreeSet::new()), "every axis linear");
        assert_eq!(AxisSettings::from_pairs(&[]).log, None, "the defaults");
    }

    #[test]
    fn hostile_values_stay_inert_in_the_page_and_its_chart_data() {
        use askama::Template;
        let xss = "<script>alert(1)</script>\"'";
        let sweep: Sweep = serde_json::from_value(json!({
            "id": "s1", "project": "p", "name": xss, "description": "", "method": "grid",
            "state": "running", "finish_reason": null, "config": {"metric": {"name": "acc"}},
            "grid_size": null, "counts": {"pending": 0, "running": 0, "finished": 1, "crashed": 0, "killed": 0},
            "best": null, "agents": [], "created_by": "u", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let analysis: SweepAnalysis = serde_json::from_value(json!({
            "metric": "acc", "top": [{"number": 1, "run_id": "r1r1r1r1", "state": "finished", "params": {"opt": xss},
                "value": 0.5, "iterations": 1, "stop_reason": null, "retry_of": null, "agent_id": null,
                "created_at": "2026-01-01T00:00:00Z"}],
            "importance": [],
            "axes": [{"name": "opt", "kind": "categorical", "min": null, "max": null, "categories": [xss]},
                     {"name": "acc", "kind": "numeric", "min": 0.5, "max": 0.5, "categories": []}],
            "lines": [[xss, 0.5]]
        }))
        .unwrap();
        let data = chart_data(&analysis);
        let back: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            back["top"],
            json!([{"number": 1}]),
            "trials go by number only"
        );
        let page = SweepPage {
            chrome: super::super::tests::chrome(Some("u")),
            notice: None,
            actions: actions(sweep.state),
            metric: "acc".into(),
            axes: axes(&analysis, &sweep.config, &AxisSettings::default()),
            bars: Vec::new(),
            params: vec!["opt".into()],
            trials: analysis
                .top
                .iter()
                .map(|t| trial_view(t, &["opt".into()], None))
                .collect(),
            analysis_url: "/api/v1/sweeps/s1/analysis".into(),
            chart_data: data,
            sweep,
        };
        let html = page.render().unwrap();
        super::super::tests::assert_inert(&html);
        assert!(!html.contains("'\"") && html.contains("data-analysis=\"{&#34;axes&#34;"));
    }

    #[test]
    fn controls_follow_the_state() {
        assert_eq!(
            actions(SweepState::Running)
                .iter()
                .map(|a| a.0)
                .collect::<Vec<_>>(),
            ["pause", "finish"]
        );
        assert_eq!(actions(SweepState::Paused)[0].0, "resume");
        assert!(actions(SweepState::Finished).is_empty());
    }
}
