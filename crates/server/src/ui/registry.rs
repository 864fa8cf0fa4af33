//! Model registry pages: the models, and one model with its versions (stage, metrics, source
//! run and artifact), the stage-history timeline, approvals and the versions waiting for one.
//! Transitions and approvals go through the registry service, so they follow the API's rules
//! and leave the same audit events.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use wanllmdb_api_types::ProjectName;
use wanllmdb_api_types::projects::{Project, Role};
use wanllmdb_api_types::registry::{
    ApprovalRequest, ModelEvent, ModelVersion, RegisteredModel, RegistryPolicy, Stage,
    TransitionRequest,
};

use super::views;
use super::{Chrome, Notice, Page, PageError, PageResult, answer_form, refused};
use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::projects::Projects;
use crate::registry::{Approval, Registry};
use crate::state::AppState;

const STAGES: [Stage; 4] = [
    Stage::None,
    Stage::Staging,
    Stage::Production,
    Stage::Archived,
];

#[derive(Template, WebTemplate)]
#[template(path = "models.html")]
pub(super) struct ModelsPage {
    chrome: Chrome,
    q: String,
    /// The project the list is limited to (its tabs are shown).
    project: Option<Project>,
    tab: &'static str,
    models: Vec<RegisteredModel>,
}

impl ModelsPage {
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ModelsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    project: String,
}

/// `GET /models?q=&project=`: the models the caller can read.
pub(super) async fn models(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<ModelsQuery>,
) -> PageResult<ModelsPage> {
    let mut page = page;
    let project = match q.project.as_str() {
        "" => None,
        p => {
            let p: ProjectName = page.segment(p)?;
            page = page
                .crumb(p.to_string(), format!("/projects/{p}"))
                .crumb("Models", String::new());
            Some(
                Projects { state: &state }
                    .get(&page.actor, &p)
                    .await
                    .map_err(|e| PageError::new(&page.chrome, e))?,
            )
        }
    };
    if project.is_none() {
        page.chrome.crumbs = vec![("Models".into(), String::new())];
    }
    let models = Registry { state: &state }
        .list(
            &page.actor,
            project.as_ref().map(|p| &p.name),
            Some(q.q.trim()).filter(|s| !s.is_empty()),
        )
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    Ok(ModelsPage {
        chrome: page.chrome,
        q: q.q,
        project,
        tab: "models",
        models,
    })
}

/// A version row and what the caller may do with it.
pub(super) struct VersionView {
    v: ModelVersion,
    metrics: Vec<(String, String)>,
    artifact_href: Option<String>,
    /// Stages it may be moved to.
    targets: Vec<&'static str>,
    can_approve: bool,
    can_revoke: bool,
    waiting: bool,
}

/// One stretch of a version's life in one stage, in timeline pixels.
pub(super) struct Segment {
    x: String,
    width: String,
    stage: &'static str,
    title: String,
}

/// An approval given, revoked or voided, on the timeline.
pub(super) struct Mark {
    x: String,
    kind: &'static str,
    title: String,
}

pub(super) struct TimelineRow {
    label: String,
    y: usize,
    segments: Vec<Segment>,
    marks: Vec<Mark>,
}

/// The stage-history timeline: one row per version, time left to right.
pub(super) struct Timeline {
    width: usize,
    height: usize,
    rows: Vec<TimelineRow>,
    ticks: Vec<Tick>,
}

/// A time label under the timeline.
pub(super) struct Tick {
    x: String,
    label: String,
    anchor: &'static str,
}

const TIMELINE_WIDTH: f64 = 860.0;
const TIMELINE_LEFT: f64 = 56.0;
const ROW_HEIGHT: usize = 24;

impl Timeline {
    /// Builds the timeline of `versions` from the model's history (oldest first), up to `now`.
    pub(super) fn new(versions: &[ModelVersion], history: &[ModelEvent], now: f64) -> Timeline {
        let t0 = history
            .iter()
            .filter_map(|e| views::unix(&e.at))
            .fold(now, f64::min);
        let span = (now - t0).max(1.0);
        let x = |t: f64| TIMELINE_LEFT + (t - t0) / span * (TIMELINE_WIDTH - TIMELINE_LEFT);
        let rows = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mine = history
                    .iter()
                    .filter(|e| e.version.as_deref() == Some(v.version.as_str()));
                let mut segments = Vec::new();
                let mut marks = Vec::new();
                let mut open: Option<(f64, &'static str)> = None;
                for e in mine {
                    let Some(t) = views::unix(&e.at) else {
                        continue;
                    };
                    match e.action.as_str() {
                        "version_created" => open = Some((t, "None")),
                        "transition" => {
                            if let Some((start, stage)) = open.take() {
                                segments.push(segment(x(start), x(t), stage, start, t));
                            }
                            // The registry read `to` from a checked stage; a transition
                            // without one ends the bar instead of drawing a stage it never had.
                            open =
                                e.to.as_deref()
                                    .and_then(Stage::parse)
                                    .map(|to| (t, to.as_str()));
                        }
                        "approved" | "approval_revoked" | "approval_voided" => marks.push(Mark {
                            x: format!("{:.1}", x(t)),
                            kind: if e.action == "approved" {
                                "approved"
                            } else {
                                "revoked"
                            },
                            title: event_sentence(e),
                        }),
                        _ => {}
                    }
                }
                if let Some((start, stage)) = open {
                    segments.push(segment(x(start), x(now), stage, start, now));
                }
                TimelineRow {
                    label: v.version.clone(),
                    y: i * ROW_HEIGHT,
                    segments,
                    marks,
                }
            })
            .collect();
        // Labels as precise as the span needs: dates over days, times within one.
        let (from, to) = match span {
            s if s < 600.0 => (11, 19),
            s if s < 2.0 * 86_400.0 => (11, 16),
            _ => (0, 10),
        };
        let ticks = (0..5)
            .map(|k| {
                let t = t0 + span * f64::from(k) / 4.0;
                let at = crate::store::format_time((t * 1e6) as i64);
                let anchor = match k {
                    0 => "start",
                    4 => "end",
                    _ => "middle",
                };
                Tick {
                    x: format!("{:.1}", x(t)),
                    label: at.get(from..to).unwrap_or(&at).to_string(),
                    anchor,
                }
            })
            .collect();
        Timeline {
            width: TIMELINE_WIDTH as usize + 40,
            height: versions.len() * ROW_HEIGHT + 24,
            rows,
            ticks,
        }
    }

    fn axis_y(&self) -> usize {
        self.height - 20
    }
    fn label_y(&self) -> usize {
        self.height - 4
    }
}

fn segment(x0: f64, x1: f64, stage: &'static str, t0: f64, t1: f64) -> Segment {
    Segment {
        x: format!("{x0:.1}"),
        width: format!("{:.1}", (x1 - x0).max(2.0)),
        stage,
        title: format!("{stage} for {}", views::duration(t1 - t0)),
    }
}

/// A history event in words: who did what, when, and why.
fn event_sentence(e: &ModelEvent) -> String {
    let who = e.user.as_deref().unwrap_or("someone");
    let what = match e.action.as_str() {
        "approved" => "approved it for Production".to_string(),
        "approval_revoked" => "revoked its approval".to_string(),
        "approval_voided" => "voided its approval".to_string(),
        "transition" => format!(
            "moved it from {} to {}",
            e.from.as_deref().unwrap_or("?"),
            e.to.as_deref().unwrap_or("?")
        ),
        other => other.replace('_', " "),
    };
    let mut s = format!("{who} {what} at {}", views::short_time(&e.at));
    if let Some(c) = e.comment.as_deref().filter(|c| !c.is_empty()) {
        s.push_str(": ");
        s.push_str(c);
    }
    s
}

#[derive(Template, WebTemplate)]
#[template(path = "model.html")]
pub(super) struct ModelPage {
    chrome: Chrome,
    model: RegisteredModel,
    notice: Option<Notice>,
    policy: RegistryPolicy,
    versions: Vec<VersionView>,
    can_transition: bool,
    timeline: Timeline,
    /// The history, newest first.
    events: Vec<ModelEvent>,
    approvals: Vec<ModelEvent>,
    waiting: Vec<String>,
}

impl ModelPage {
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
    fn change(&self, e: &ModelEvent) -> String {
        match (e.from.as_deref(), e.to.as_deref()) {
            (Some(f), Some(t)) => format!("{f} → {t}"),
            (None, Some(t)) => t.to_string(),
            (Some(f), None) => f.to_string(),
            (None, None) => String::new(),
        }
    }
}

fn version_view(
    v: ModelVersion,
    model: &RegisteredModel,
    policy: &RegistryPolicy,
    role: Option<Role>,
    me: Option<&str>,
) -> VersionView {
    let owner_or_admin = role.is_some_and(|r| r >= Role::Admin);
    let own = me.is_some() && v.created_by.as_deref() == me;
    let approved = v.approved_by.is_some();
    VersionView {
        metrics: views::flatten_config(&v.metrics).into_iter().collect(),
        artifact_href: v.artifact.as_deref().and_then(views::artifact_label_href),
        targets: if role.is_some_and(|r| r >= Role::Member) {
            STAGES
                .iter()
                .filter(|s| **s != v.stage)
                .map(|s| s.as_str())
                .collect()
        } else {
            Vec::new()
        },
        can_approve: owner_or_admin && !approved && (policy.allow_self_approval || !own),
        can_revoke: owner_or_admin && approved,
        waiting: model.approval_required && !approved && v.stage == Stage::Staging,
        v,
    }
}

async fn model_page(
    state: &AppState,
    page: Page,
    name: &str,
    notice: Option<Notice>,
) -> PageResult<ModelPage> {
    let reg = Registry { state };
    let fail = |e| PageError::new(&page.chrome, e);
    let model = reg.get(&page.actor, name).await.map_err(fail)?;
    let page = page
        .crumb(
            model.project.clone(),
            format!("/projects/{}", model.project),
        )
        .crumb("Models", format!("/models?project={}", model.project))
        .crumb(model.name.clone(), String::new());
    let fail = |e| PageError::new(&page.chrome, e);
    let access = Projects { state }
        .access(&page.actor, &model.project)
        .await
        .map_err(fail)?;
    let policy = reg
        .policy(&page.actor, &model.project)
        .await
        .map_err(fail)?;
    let versions = reg.versions(&page.actor, name, None).await.map_err(fail)?;
    let history = reg.history(&page.actor, name, None).await.map_err(fail)?;
    let timeline = Timeline::new(&versions, &history, crate::store::now_us() as f64 / 1e6);
    let me = page.actor.user.as_ref().map(|u| u.username.as_str());
    let versions: Vec<VersionView> = versions
        .into_iter()
        .map(|v| version_view(v, &model, &policy, access.role, me))
        .collect();
    let waiting = versions
        .iter()
        .filter(|v| v.waiting)
        .map(|v| v.v.version.clone())
        .collect();
    let approvals = history
        .iter()
        .filter(|e| e.action.starts_with("approv"))
        .rev()
        .cloned()
        .collect();
    Ok(ModelPage {
        chrome: page.chrome,
        can_transition: access.role.is_some_and(|r| r >= Role::Member),
        model,
        notice,
        policy,
        versions,
        timeline,
        events: history.into_iter().rev().collect(),
        approvals,
        waiting,
    })
}

/// `GET /models/{name}`.
pub(super) async fn model(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> PageResult<ModelPage> {
    model_page(&state, page, &name, None).await
}

#[derive(serde::Deserialize)]
pub(super) struct TransitionForm {
    to: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    archive_existing: Option<String>,
}

/// `POST /models/{name}/versions/{version}/transition` (`to`, `comment`, `archive_existing`).
pub(super) async fn transition(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path((name, version)): Path<(String, String)>,
    axum::Form(form): axum::Form<TransitionForm>,
) -> PageResult<Response> {
    let outcome = match Stage::parse(&form.to) {
        None => Err(ApiError::invalid(format!(
            "unknown stage {:?}: use None, Staging, Production or Archived",
            form.to
        ))),
        Some(to) => {
            let req = TransitionRequest {
                to,
                comment: Some(form.comment.trim().to_string()).filter(|c| !c.is_empty()),
                archive_existing: form.archive_existing.is_some(),
            };
            (Registry { state: &state })
                .transition(&page.actor, &client, &name, &version, req)
                .await
                .map(|v| format!("{} is in {} now.", v.version, v.stage.as_str()))
        }
    };
    answer(&state, page, &name, outcome).await
}

#[derive(serde::Deserialize)]
pub(super) struct ApprovalForm {
    #[serde(default)]
    comment: String,
    /// Present to revoke the approval instead.
    #[serde(default)]
    revoke: Option<String>,
}

/// `POST /models/{name}/versions/{version}/approval` (`comment`; `revoke` to withdraw it).
pub(super) async fn approval(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path((name, version)): Path<(String, String)>,
    axum::Form(form): axum::Form<ApprovalForm>,
) -> PageResult<Response> {
    let change = if form.revoke.is_some() {
        Approval::Revoke
    } else {
        Approval::Grant
    };
    let req = ApprovalRequest {
        comment: Some(form.comment.trim().to_string()).filter(|c| !c.is_empty()),
        approved_by: None,
    };
    let outcome = (Registry { state: &state })
        .approve(&page.actor, &client, &name, &version, &req, change)
        .await
        .map(|v| match change {
            Approval::Grant => format!("{} is approved for Production.", v.version),
            Approval::Revoke => format!("The approval of {} is revoked.", v.version),
        });
    answer(&state, page, &name, outcome).await
}

/// The model page after a form, saying what happened.
async fn answer(
    state: &AppState,
    page: Page,
    name: &str,
    outcome: Result<String, ApiError>,
) -> PageResult<Response> {
    let (status, notice) = match outcome {
        Ok(text) => (StatusCode::OK, Notice::ok(text)),
        Err(e) => refused(e),
    };
    let body = model_page(state, page, name, Some(notice)).await?;
    Ok(answer_form(status, body, &format!("/models/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: i64, version: &str, action: &str, to: Option<&str>, at: &str) -> ModelEvent {
        serde_json::from_value(json!({
            "id": id, "action": action, "version": version, "from": null, "to": to,
            "comment": null, "user": "alice", "at": at
        }))
        .unwrap()
    }

    #[test]
    fn the_timeline_follows_the_stages() {
        let v: ModelVersion = serde_json::from_value(json!({
            "model": "m", "version": "v1", "stage": "Production", "artifact": null, "run": null,
            "description": "", "metrics": {}, "tags": [], "aliases": [], "created_by": "alice",
            "created_at": "2026-01-01T00:00:00Z", "approved_by": "bob", "approved_at": "2026-01-01T02:00:00Z"
        }))
        .unwrap();
        let history = vec![
            event(
                1,
                "v1",
                "version_created",
                Some("p/a:v1"),
                "2026-01-01T00:00:00Z",
            ),
            event(
                2,
                "v1",
                "transition",
                Some("Staging"),
                "2026-01-01T01:00:00Z",
            ),
            event(3, "v1", "approved", Some("bob"), "2026-01-01T02:00:00Z"),
            event(
                4,
                "v1",
                "transition",
                Some("Production"),
                "2026-01-01T03:00:00Z",
            ),
        ];
        let now = views::unix("2026-01-01T04:00:00Z").unwrap();
        let t = Timeline::new(&[v], &history, now);
        let stages: Vec<&str> = t.rows[0].segments.iter().map(|s| s.stage).collect();
        assert_eq!(stages, ["None", "Staging", "Production"]);
        assert_eq!(t.rows[0].marks.len(), 1);
        assert_eq!(t.rows[0].segments[0].x, format!("{TIMELINE_LEFT:.1}"));
        assert!(t.rows[0].marks[0].title.starts_with("alice approved it"));
        let last = &t.rows[0].segments[2];
        let end: f64 = last.x.parse::<f64>().unwrap() + last.width.parse::<f64>().unwrap();
        assert!(
            (end - TIMELINE_WIDTH).abs() < 0.2,
            "the last stage lasts until now"
        );
    }
}
