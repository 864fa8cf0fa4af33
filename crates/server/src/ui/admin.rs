//! Administration pages, for server administrators only (everyone else gets a 404 page, as
//! for anything they may not see): the audit log with the API's filters, accounts (create,
//! disable, enable, promote, demote, reset a password) and every active API key. Each action
//! goes through the same service as `/api/v1/admin/...`, with the same checks and audit events.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wanllmdb_api_types::admin::{AdminApiKey, AdminUser, CreateUserRequest};
use wanllmdb_api_types::audit::AuditLogEntry;

use super::views;
use super::{Chrome, Notice, Page, PageError, PageResult, answer_form, refused};
use crate::audit::query;
use crate::audit::routes::AuditQuery;
use crate::auth::admin::AccountAdmin;
use crate::error::ApiError;
use crate::extract::{ClientInfo, QueryPairs};
use crate::state::AppState;

/// Rows of an admin page.
const PAGE_SIZE: i64 = 50;

/// The page, if the caller is a server administrator; a 404 page otherwise.
fn admin_only(page: Page, section: &str) -> PageResult<Page> {
    if !page.actor.is_admin() {
        return Err(PageError::new(&page.chrome, ApiError::not_found("page")));
    }
    let mut page = page;
    page.chrome.crumbs = vec![
        ("Admin".into(), "/admin/audit".into()),
        (section.to_string(), String::new()),
    ];
    Ok(page)
}

// ---------------------------------------------------------------- audit log

/// The filter fields of the audit page, in the API's names.
const AUDIT_FIELDS: [&str; 9] = [
    "event_category",
    "event_type",
    "severity",
    "status",
    "username",
    "resource_type",
    "resource_id",
    "start_date",
    "end_date",
];

#[derive(Template, WebTemplate)]
#[template(path = "admin_audit.html")]
pub(super) struct AuditPage {
    chrome: Chrome,
    tab: &'static str,
    /// The filters as given, by field name.
    filters: Vec<(&'static str, String)>,
    events: Vec<AuditLogEntry>,
    error: Option<String>,
    next: Option<String>,
    first: Option<String>,
    export: String,
}

impl AuditPage {
    fn value(&self, field: &str) -> &str {
        self.filters
            .iter()
            .find(|(k, _)| *k == field)
            .map_or("", |(_, v)| v.as_str())
    }
    fn time(&self, e: &AuditLogEntry) -> String {
        e.created_at
            .get(..19)
            .unwrap_or(&e.created_at)
            .replace('T', " ")
    }
    fn resource(&self, e: &AuditLogEntry) -> String {
        match (&e.resource_type, &e.resource_id) {
            (Some(t), Some(i)) => format!("{t}:{i}"),
            (Some(t), None) => t.clone(),
            (None, Some(i)) => i.clone(),
            (None, None) => String::new(),
        }
    }
}

/// `GET /admin/audit?event_category=&event_type=&severity=&status=&username=&resource_type=&resource_id=&start_date=&end_date=&cursor=`:
/// the audit log, newest first, 50 events a page.
pub(super) async fn audit(
    State(state): State<AppState>,
    page: Page,
    QueryPairs(pairs): QueryPairs,
) -> PageResult<Response> {
    let page = admin_only(page, "Audit log")?;
    let filters: Vec<(&'static str, String)> = AUDIT_FIELDS
        .iter()
        .map(|f| {
            let v = pairs
                .iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default();
            (*f, v)
        })
        .collect();
    let cursor = pairs
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.clone())
        .filter(|c| !c.is_empty());
    let given: Vec<(String, String)> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut asked = given.clone();
    if let Some(c) = &cursor {
        asked.push(("cursor".into(), c.clone()));
    }
    let read = async {
        let q: AuditQuery = serde_urlencoded::from_str(&views::query(&asked))
            .map_err(|e| ApiError::invalid(format!("audit filters: {e}")))?;
        query::page(&state.store, &q.filter()?, PAGE_SIZE).await
    };
    let (status, events, next, error) = match read.await {
        Ok(p) => (StatusCode::OK, p.items, p.next_cursor, None),
        Err(e) => {
            let (status, notice) = refused(e);
            (status, Vec::new(), None, Some(notice.text))
        }
    };
    let url = |extra: Option<String>| {
        let mut p = given.clone();
        if let Some(c) = extra {
            p.push(("cursor".into(), c));
        }
        format!("/admin/audit?{}", views::query(&p))
    };
    let mut export = given.clone();
    export.push(("format".into(), "csv".into()));
    let body = AuditPage {
        chrome: page.chrome,
        tab: "audit",
        next: next.map(|c| url(Some(c))),
        first: cursor.map(|_| url(None)),
        export: format!("/api/v1/audit/logs?{}", views::query(&export)),
        filters,
        events,
        error,
    };
    Ok((status, body).into_response())
}

// ---------------------------------------------------------------- accounts

#[derive(Template, WebTemplate)]
#[template(path = "admin_users.html")]
pub(super) struct UsersPage {
    chrome: Chrome,
    tab: &'static str,
    notice: Option<Notice>,
    q: String,
    users: Vec<AdminUser>,
    next: Option<String>,
    me: String,
}

impl UsersPage {
    fn keys_href(&self, u: &AdminUser) -> String {
        format!(
            "/admin/api-keys?{}",
            views::query(&[("user", u.username.clone())])
        )
    }
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct UsersQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

async fn users_page(
    state: &AppState,
    page: Page,
    q: UsersQuery,
    notice: Option<Notice>,
) -> PageResult<UsersPage> {
    let page = admin_only(page, "Users")?;
    let list = AccountAdmin { state }
        .list_users(
            &page.actor,
            Some(q.q.trim()),
            Some(PAGE_SIZE),
            q.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await
        .map_err(|e| PageError::new(&page.chrome, e))?;
    let next = list.next_cursor.map(|c| {
        format!(
            "/admin/users?{}",
            views::query(&[("q", q.q.clone()), ("cursor", c)])
        )
    });
    Ok(UsersPage {
        me: page.chrome.user.clone().unwrap_or_default(),
        chrome: page.chrome,
        tab: "users",
        notice,
        q: q.q,
        users: list.items,
        next,
    })
}

/// `GET /admin/users?q=&cursor=`.
pub(super) async fn users(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<UsersQuery>,
) -> PageResult<UsersPage> {
    users_page(&state, page, q, None).await
}

/// The users page after a form.
async fn users_answer(
    state: &AppState,
    page: Page,
    outcome: Result<String, ApiError>,
) -> PageResult<Response> {
    let (status, notice) = match outcome {
        Ok(text) => (StatusCode::OK, Notice::ok(text)),
        Err(e) => refused(e),
    };
    let body = users_page(state, page, UsersQuery::default(), Some(notice)).await?;
    Ok(answer_form(status, body, "/admin/users"))
}

#[derive(serde::Deserialize)]
pub(super) struct CreateUserForm {
    username: String,
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    is_admin: Option<String>,
}

/// `POST /admin/users` (`username`, `email`, `password` or none to generate one, `is_admin`).
pub(super) async fn create_user(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    axum::Form(form): axum::Form<CreateUserForm>,
) -> PageResult<Response> {
    let page = admin_only(page, "Users")?;
    let req = CreateUserRequest {
        username: form.username.trim().to_string(),
        email: form.email.trim().to_string(),
        password: Some(form.password).filter(|p| !p.is_empty()),
        is_admin: form.is_admin.is_some(),
    };
    let outcome = AccountAdmin { state: &state }
        .create_user(&page.actor, &client, &req)
        .await
        .map(|c| match c.generated_password {
            Some(p) => format!(
                "Created {}. Its password, shown only now: {p}",
                c.user.username
            ),
            None => format!("Created {}.", c.user.username),
        });
    users_answer(&state, page, outcome).await
}

#[derive(serde::Deserialize)]
pub(super) struct UserActionForm {
    #[serde(default)]
    password: String,
}

/// `POST /admin/users/{name}/{action}`: `disable`, `enable`, `promote`, `demote` or
/// `reset-password` (with `password`, or none to generate one).
pub(super) async fn change_user(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path((name, action)): Path<(String, String)>,
    axum::Form(form): axum::Form<UserActionForm>,
) -> PageResult<Response> {
    let page = admin_only(page, "Users")?;
    let svc = AccountAdmin { state: &state };
    let (actor, name) = (&page.actor, name.as_str());
    let outcome = match action.as_str() {
        "disable" => svc.disable(actor, &client, name).await.map(|d| {
            format!(
                "Disabled {name}: {} API keys and {} sessions revoked.",
                d.api_keys_revoked, d.sessions_revoked
            )
        }),
        "enable" => svc
            .enable(actor, &client, name)
            .await
            .map(|_| format!("Enabled {name}.")),
        "promote" => svc
            .promote(actor, &client, name)
            .await
            .map(|_| format!("{name} is a server administrator now.")),
        "demote" => svc
            .demote(actor, &client, name)
            .await
            .map(|_| format!("{name} is no longer a server administrator.")),
        "reset-password" => {
            let given = Some(form.password.as_str()).filter(|p| !p.is_empty());
            svc.reset_password(actor, &client, name, given)
                .await
                .map(|r| match r.generated_password {
                    Some(p) => format!(
                        "New password of {name}, shown only now: {p} ({} sessions ended).",
                        r.sessions_revoked
                    ),
                    None => format!(
                        "Password of {name} set ({} sessions ended).",
                        r.sessions_revoked
                    ),
                })
        }
        other => Err(ApiError::invalid(format!(
            "unknown action {other:?}: use disable, enable, promote, demote or reset-password"
        ))),
    };
    users_answer(&state, page, outcome).await
}

// ---------------------------------------------------------------- API keys

#[derive(Template, WebTemplate)]
#[template(path = "admin_keys.html")]
pub(super) struct KeysPage {
    chrome: Chrome,
    tab: &'static str,
    notice: Option<Notice>,
    user: String,
    keys: Vec<AdminApiKey>,
    next: Option<String>,
}

impl KeysPage {
    fn time(&self, t: &str) -> String {
        views::short_time(t)
    }
    fn used(&self, k: &AdminApiKey) -> String {
        k.key
            .last_used_at
            .as_deref()
            .map_or_else(|| "never".to_string(), views::short_time)
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct KeysQuery {
    #[serde(default)]
    user: String,
    cursor: Option<String>,
}

async fn keys_page(
    state: &AppState,
    page: Page,
    q: KeysQuery,
    notice: Option<Notice>,
) -> PageResult<Response> {
    let page = admin_only(page, "API keys")?;
    let listed = AccountAdmin { state }
        .list_api_keys(
            &page.actor,
            Some(q.user.trim()),
            Some(PAGE_SIZE),
            q.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await;
    let (status, notice, list) = match listed {
        Ok(list) => (StatusCode::OK, notice, list),
        // An unknown account in the filter is said on the page, over an empty list.
        Err(e @ ApiError::NotFound(_)) => {
            let (status, n) = refused(e);
            (
                status,
                Some(n),
                wanllmdb_api_types::Page {
                    items: Vec::new(),
                    next_cursor: None,
                },
            )
        }
        Err(e) => return Err(PageError::new(&page.chrome, e)),
    };
    let next = list.next_cursor.map(|c| {
        format!(
            "/admin/api-keys?{}",
            views::query(&[("user", q.user.clone()), ("cursor", c)])
        )
    });
    let body = KeysPage {
        chrome: page.chrome,
        tab: "keys",
        notice,
        user: q.user,
        keys: list.items,
        next,
    };
    Ok((status, body).into_response())
}

/// `GET /admin/api-keys?user=&cursor=`: active keys (never the keys themselves: their
/// prefixes).
pub(super) async fn api_keys(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<KeysQuery>,
) -> PageResult<Response> {
    keys_page(&state, page, q, None).await
}

/// `POST /admin/api-keys/{id}/revoke`.
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let page = admin_only(page, "API keys")?;
    let outcome = match id.parse::<i64>() {
        Ok(n) => AccountAdmin { state: &state }
            .revoke_api_key(&page.actor, &client, n)
            .await
            .map(|()| format!("API key {n} revoked.")),
        Err(_) => Err(ApiError::invalid(format!("{id:?} is not an API key id"))),
    };
    let (status, notice) = match outcome {
        Ok(text) => (StatusCode::OK, Notice::ok(text)),
        Err(e) => refused(e),
    };
    let body = keys_page(&state, page, KeysQuery::default(), Some(notice)).await?;
    Ok(answer_form(status, body, "/admin/api-keys"))
}
