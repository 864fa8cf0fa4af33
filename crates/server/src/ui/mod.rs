//! The web UI: server-rendered pages (askama templates, checked at compile time), htmx and a
//! few small JavaScript modules for the parts that move (charts, the log tail, the run table's
//! live states). Every page reads through the same services as the API, so a page shows
//! exactly what the caller may read over the API, and a private object is a 404 page to
//! outsiders. View state lives in the URL.

mod admin;
mod artifacts;
pub mod assets;
mod pages;
mod registry;
mod sweeps;
pub mod views;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::auth::web::{self, WebSession};
use crate::auth::{Accounts, Actor};
use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::state::AppState;

/// Cookie holding the CSRF token of a visitor who is not logged in (double submit: the login
/// form must echo it, and another site's page can neither read nor send it).
const PRE_SESSION_COOKIE: &str = "wanllmdb_csrf";
/// Largest form a page may post.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The pages and the static files. State-changing requests must carry the page's CSRF token.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/projects") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/projects", get(pages::projects))
        .route("/projects/{name}", get(pages::project))
        .route("/experiments/{id}", get(pages::experiment))
        .route("/projects/{name}/states", get(pages::run_states))
        .route("/projects/{name}/compare", get(pages::compare))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/logs", get(pages::run_logs))
        .route("/runs/{id}/files", get(pages::run_files))
        .route("/runs/{id}/files/download", get(pages::download_file))
        .route("/runs/{id}/artifacts", get(pages::run_artifacts))
        .route("/projects/{name}/sweeps", get(sweeps::list))
        .route("/sweeps/{id}", get(sweeps::sweep))
        .route("/sweeps/{id}/state", post(sweeps::change_state))
        .route("/projects/{name}/artifacts", get(artifacts::list))
        .route(
            "/projects/{name}/artifacts/{artifact}",
            get(artifacts::artifact),
        )
        .route(
            "/projects/{name}/artifacts/{artifact}/{version}",
            get(artifacts::version),
        )
        .route(
            "/projects/{name}/artifacts/{artifact}/{version}/files/download",
            get(artifacts::download),
        )
        .route("/models", get(registry::models))
        .route("/models/{name}", get(registry::model))
        .route(
            "/models/{name}/versions/{version}/transition",
            post(registry::transition),
        )
        .route(
            "/models/{name}/versions/{version}/approval",
            post(registry::approval),
        )
        .route("/admin", get(|| async { Redirect::to("/admin/audit") }))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{name}/{action}", post(admin::change_user))
        .route("/admin/api-keys", get(admin::api_keys))
        .route("/admin/api-keys/{id}/revoke", post(admin::revoke_key))
        .route("/static/{hash}/{*path}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(state, guard))
}

/// What every page's frame needs: asset prefix, who is logged in, the CSRF token, breadcrumbs.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// `/static/<hash>`.
    pub assets: &'static str,
    /// The logged-in user's name.
    pub user: Option<String>,
    /// Whether the logged-in user is a server administrator (the admin pages are linked).
    pub admin: bool,
    /// The token forms and scripts send back.
    pub csrf: String,
    /// Links from the top of the site to this page.
    pub crumbs: Vec<(String, String)>,
}

/// A request's page context: the caller and the frame.
pub struct Page {
    /// The caller.
    pub actor: Actor,
    /// The frame.
    pub chrome: Chrome,
}

impl Page {
    /// A path segment checked against its type's rule (a run id, a project name); a segment
    /// that breaks it is a 400 page that states the rule.
    pub fn segment<T>(&self, s: &str) -> Result<T, PageError>
    where
        T: std::str::FromStr<Err = wanllmdb_api_types::InvalidId>,
    {
        s.parse()
            .map_err(|e: wanllmdb_api_types::InvalidId| PageError::new(&self.chrome, e.into()))
    }

    /// Adds a breadcrumb.
    pub fn crumb(mut self, label: impl Into<String>, href: impl Into<String>) -> Page {
        self.chrome.crumbs.push((label.into(), href.into()));
        self
    }
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let actor = Actor::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let csrf = parts
            .extensions
            .get::<WebSession>()
            .map(|s| s.csrf.clone())
            .or_else(|| web::cookie(&parts.headers, PRE_SESSION_COOKIE).map(str::to_string))
            .unwrap_or_default();
        Ok(Page {
            chrome: Chrome {
                assets: assets::prefix(),
                user: actor.user.as_ref().map(|u| u.username.clone()),
                admin: actor.is_admin(),
                csrf,
                crumbs: vec![("Projects".into(), "/projects".into())],
            },
            actor,
        })
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    title: String,
    message: String,
    login_hint: bool,
}

/// A service error shown as a page with the error's status.
pub struct PageError {
    /// Boxed: errors travel in every page handler's `Result`, which stays small.
    chrome: Box<Chrome>,
    error: ApiError,
}

impl PageError {
    /// Wraps an error for a page.
    pub fn new(chrome: &Chrome, error: ApiError) -> PageError {
        PageError {
            chrome: Box::new(chrome.clone()),
            error,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let message = match &self.error {
            ApiError::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        };
        let status = self.error.into_response().status();
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let login_hint = self.chrome.user.is_none()
            && matches!(status, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED);
        let page = ErrorPage {
            chrome: *self.chrome,
            status: status.as_u16(),
            title,
            message,
            login_hint,
        };
        (status, page).into_response()
    }
}

/// Result of a page handler.
pub type PageResult<T> = Result<T, PageError>;

/// What a form did, shown at the top of the page it answers with.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `ok` or `error` (a CSS class).
    pub kind: &'static str,
    /// The sentence.
    pub text: String,
}

impl Notice {
    /// Something was done.
    pub fn ok(text: impl Into<String>) -> Notice {
        Notice {
            kind: "ok",
            text: text.into(),
        }
    }
}

/// A service error as a notice, and the status the page answers with.
pub fn refused(error: ApiError) -> (StatusCode, Notice) {
    let text = match &error {
        ApiError::Internal(_) => "internal server error".to_string(),
        other => other.to_string(),
    };
    let status = error.into_response().status();
    (
        status,
        Notice {
            kind: "error",
            text,
        },
    )
}

/// The page a form answers with. The form's action is not a page, so the address bar is set to
/// `url` (htmx reads `HX-Push-Url`): reloading reads that page instead of posting again.
pub fn answer_form(status: StatusCode, page: impl IntoResponse, url: &str) -> Response {
    let mut resp = (status, page).into_response();
    if let Ok(v) = HeaderValue::from_str(url) {
        resp.headers_mut().insert("hx-push-url", v);
    }
    resp
}

/// Headers every UI response gets; the CSRF check of state changes.
async fn guard(req: Request, next: Next) -> Response {
    let req = if web::changes_state(req.method()) {
        match check_csrf(req).await {
            Ok(req) => req,
            Err(resp) => return resp,
        }
    } else {
        req
    };
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Lets a state change through only with the session's CSRF token (or, before logging in,
/// the pre-session cookie's), sent in the `X-CSRF-Token` header or a form's `csrf` field.
async fn check_csrf(req: Request) -> Result<Request, Response> {
    let forbidden = |why: &str| {
        (
            StatusCode::FORBIDDEN,
            format!("{why}: reload the page and try again"),
        )
            .into_response()
    };
    let expected = req
        .extensions()
        .get::<WebSession>()
        .map(|s| s.csrf.clone())
        .or_else(|| web::cookie(req.headers(), PRE_SESSION_COOKIE).map(str::to_string));
    let Some(expected) = expected.filter(|e| !e.is_empty()) else {
        return Err(forbidden("missing CSRF cookie"));
    };
    if let Some(sent) = req
        .headers()
        .get(web::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return if web::same_token(sent, &expected) {
            Ok(req)
        } else {
            Err(forbidden("wrong CSRF token"))
        };
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| forbidden("form too large"))?;
    let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
    match sent {
        Some(s) if web::same_token(&s, &expected) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(forbidden("missing or wrong CSRF token")),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the two ways in; sets the pre-session CSRF cookie when missing.
async fn login_page(
    page: Page,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let mut chrome = page.chrome;
    let mut set = None;
    if chrome.csrf.is_empty() {
        chrome.csrf = crate::auth::random_hex(32);
        set = Some(web::set_cookie(
            PRE_SESSION_COOKIE,
            &chrome.csrf,
            3600,
            web::is_https(&headers),
        ));
    }
    let body = LoginPage {
        chrome,
        next: views::safe_next(q.next.as_deref()),
        username: String::new(),
        error: None,
    };
    let mut resp = body.into_response();
    if let Some(c) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

#[derive(serde::Deserialize)]
struct LoginForm {
    method: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    api_key: String,
    next: Option<String>,
}

/// `POST /login`: username and password, or an API key; starts a session.
async fn login(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let accounts = Accounts { state: &state };
    let user_id = match form.method.as_str() {
        "password" => {
            accounts
                .check_login(&client, &form.username, &form.password)
                .await
        }
        "api_key" => accounts
            .login_with_api_key(&client, &form.api_key)
            .await
            .map(|u| u.id),
        other => Err(ApiError::invalid(format!("unknown login method {other:?}"))),
    };
    let started = match user_id {
        Ok(id) => accounts.start_web_session(id).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(s) => {
            let secure = web::is_https(&headers);
            let mut resp = Redirect::to(&views::safe_next(form.next.as_deref())).into_response();
            let h = resp.headers_mut();
            for c in [
                web::set_cookie(web::SESSION_COOKIE, &s.token, s.max_age, secure),
                web::set_cookie(PRE_SESSION_COOKIE, "", 0, secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => {
            let status = match &e {
                ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
                ApiError::InvalidInput(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            let body = LoginPage {
                chrome: page.chrome,
                next: views::safe_next(form.next.as_deref()),
                username: form.username,
                error: Some(e.to_string()),
            };
            (status, body).into_response()
        }
    }
}

/// `POST /logout`: ends the session and clears the cookie.
async fn logout(
    State(state): State<AppState>,
    page: Page,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    session: Option<axum::Extension<WebSession>>,
) -> Response {
    if let (Some(user), Some(axum::Extension(s))) = (page.actor.user.as_ref(), session)
        && let Err(e) = (Accounts { state: &state })
            .end_web_session(&client, user, &s)
            .await
    {
        return PageError::new(&page.chrome, e).into_response();
    }
    let mut resp = Redirect::to("/login").into_response();
    let clear = web::set_cookie(web::SESSION_COOKIE, "", 0, web::is_https(&headers));
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests;
