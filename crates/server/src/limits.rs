//! What a request body may cost, decided before a byte of it is read.
//!
//! The caller is known from the headers alone (see [`crate::auth::resolve_actor`]), so:
//! - a route that needs an account refuses an anonymous body with 401 without reading it;
//! - the routes that take credentials (login, register, refresh) and what anonymous callers
//!   may post elsewhere are capped at a few KiB;
//! - a declared `Content-Length` over the route's limit is a 413 before reading;
//! - all requests together hold at most `max_inflight_body_bytes` of bodies in memory: a
//!   request that would pass it is a 503 with `Retry-After`;
//! - a body that stops arriving for `body_timeout` ends the request with 408.

pub(crate) mod budget;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use crate::auth::Actor;
use crate::error::ApiError;
use crate::state::AppState;
pub use budget::BodyBudget;

/// Bodies of the routes that take credentials: a username and password, or a token.
pub const CREDENTIALS_BODY_BYTES: usize = 8 * 1024;
/// What an anonymous caller may post where anonymous posts are allowed (history queries of
/// public projects, the web pages' forms).
pub const ANONYMOUS_BODY_BYTES: usize = 64 * 1024;
/// A bundle download request: a list of download tokens.
const BUNDLE_BODY_BYTES: usize = 1024 * 1024;
/// At most this much of a refused signed-in body is read (and thrown away) after the 413.
const DISCARD_BYTES: u64 = 256 * 1024 * 1024;
/// How long a refused body is read for at most.
const DISCARD_FOR: Duration = Duration::from_secs(60);
/// What a 503 for a full body budget asks the client to wait.
const BUSY_RETRY_AFTER_SECS: u64 = 2;

/// How a route treats request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Anyone, at most this many bytes (login, register, refresh).
    Credentials,
    /// Signed transfer URLs: the token in the URL or body is the credential, and the handler
    /// limits the bytes to what was signed. Streamed, so not counted against the budget.
    SignedStream,
    /// Signed transfers that are read into memory (batches, completions): anyone, counted.
    SignedBuffered(Option<usize>),
    /// Anyone; anonymous callers at most [`ANONYMOUS_BODY_BYTES`].
    Public,
    /// Only signed-in callers may send a body.
    Members,
    /// Only signed-in callers; the body streams to disk, so neither the size limit nor the
    /// budget applies (the MLflow artifact proxy's uploads).
    MembersStream,
}

fn policy(method: &Method, route: Option<&str>) -> Policy {
    let Some(route) = route else {
        // Unknown paths answer 404 without reading anything.
        return Policy::Public;
    };
    if crate::mlflow::is_mlflow_path(route) {
        return match (method, route) {
            (&Method::PUT, r) if r.ends_with("/artifacts/{*path}") => Policy::MembersStream,
            _ => Policy::Members,
        };
    }
    let Some(api) = route.strip_prefix("/api/v1") else {
        // The web pages: their forms are small, and the login form is anonymous.
        return Policy::Public;
    };
    match (method, api) {
        (&Method::POST, "/auth/login" | "/auth/register" | "/auth/refresh") => Policy::Credentials,
        (&Method::PUT, "/blobs/{token}" | "/uploads/{token}") => Policy::SignedStream,
        (&Method::POST, "/blobs/{token}/complete" | "/blobs/batch") => Policy::SignedBuffered(None),
        (&Method::POST, "/blobs/bundle") => Policy::SignedBuffered(Some(BUNDLE_BODY_BYTES)),
        (&Method::POST, "/history/query") => Policy::Public,
        _ => Policy::Members,
    }
}

/// The byte limit a handler reads a request body up to, set by [`guard_body`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// What one request holds of the budget; given back when the request is answered.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<BodyBudget>,
    held: AtomicUsize,
}

impl Charge {
    fn new(budget: Arc<BodyBudget>) -> Charge {
        Charge {
            budget,
            held: AtomicUsize::new(0),
        }
    }

    /// Holds `n` more bytes, or says the server is too busy.
    pub fn add(&self, n: usize) -> Result<(), BodyError> {
        if n == 0 {
            return Ok(());
        }
        if self.budget.take(n) {
            self.held.fetch_add(n, Ordering::AcqRel);
            Ok(())
        } else {
            Err(BodyError::Busy)
        }
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(*self.held.get_mut());
    }
}

/// Why reading a request body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the route's limit.
    #[error("request body is larger than this endpoint's limit of {0} bytes")]
    TooLarge(usize),
    /// The server's body budget is spent.
    #[error("the server is receiving too much data at once; retry in a moment")]
    Busy,
    /// No bytes for the body timeout.
    #[error("the request body stopped arriving; the request was dropped")]
    Idle,
    /// The connection failed while the body was arriving.
    #[error("the request body broke off")]
    Broken,
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        match e {
            BodyError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
            BodyError::Busy => ApiError::Busy {
                message: e.to_string(),
                retry_after: BUSY_RETRY_AFTER_SECS,
            },
            BodyError::Idle => ApiError::RequestTimeout(e.to_string()),
            BodyError::Broken => ApiError::invalid(e.to_string()),
        }
    }
}

/// The error an interrupted body read turns into: ours, or the connection's.
pub fn body_read_error(e: axum::Error) -> ApiError {
    match e.into_inner().downcast::<BodyError>() {
        Ok(ours) => ApiError::from(*ours),
        Err(other) => ApiError::invalid(format!("the request body broke off: {other}")),
    }
}

/// Middleware (inside [`crate::auth::resolve_actor`], so the caller is known): applies the
/// route's body policy and wraps the body so its bytes are counted and timed.
pub async fn guard_body(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    use http_body::Body as _;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let policy = policy(req.method(), route);
    let anonymous = req
        .extensions()
        .get::<Actor>()
        .is_none_or(|a| a.user.is_none());
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if matches!(policy, Policy::Members | Policy::MembersStream) && anonymous && !reads {
        // A change needs an account, body or not: refused before anything is looked up.
        return unread(crate::auth::authentication_required().into_response());
    }
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let max = state.config.max_body_bytes;
    let limit = match policy {
        Policy::Credentials => Some(CREDENTIALS_BODY_BYTES),
        Policy::SignedStream => None,
        Policy::SignedBuffered(cap) => Some(cap.unwrap_or(max).min(max)),
        Policy::Public if anonymous => Some(ANONYMOUS_BODY_BYTES.min(max)),
        Policy::Public => Some(max),
        Policy::Members if anonymous => {
            return unread(crate::auth::authentication_required().into_response());
        }
        Policy::Members => Some(max),
        Policy::MembersStream if anonymous => {
            return unread(crate::auth::authentication_required().into_response());
        }
        Policy::MembersStream => None,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(n), Some(limit)) = (declared, limit)
        && n > limit as u64
    {
        let refused = ApiError::from(BodyError::TooLarge(limit)).into_response();
        if anonymous {
            return unread(refused);
        }
        // A signed-in client that overshot gets to read its 413: the rest of its body is read
        // and thrown away (not kept), so the connection is not torn down under it.
        let idle = state.config.body_timeout;
        tokio::spawn(discard(req.into_body(), n.min(DISCARD_BYTES), idle));
        return refused;
    }
    let charge = (!matches!(policy, Policy::SignedStream | Policy::MembersStream))
        .then(|| Arc::new(Charge::new(state.body_budget.clone())));
    if let (Some(c), Some(n)) = (&charge, declared)
        && let Err(e) = c.add(n as usize)
    {
        return unread(ApiError::from(e).into_response());
    }
    if let Some(limit) = limit {
        req.extensions_mut().insert(BodyLimit(limit));
    }
    if let Some(c) = &charge {
        req.extensions_mut().insert(c.clone());
    }
    let req = req.map(|body| {
        Body::new(GuardedBody {
            inner: body,
            limit,
            charge: charge.clone(),
            seen: 0,
            idle: state.config.body_timeout,
            timer: None,
        })
    });
    let resp = next.run(req).await;
    // The handler is done with what it read: the bytes leave the budget now.
    drop(charge);
    resp
}

/// A refusal sent without reading the body: the connection ends after it, and says so, so a
/// client does not send its next request down a connection that is about to close.
fn unread(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Reads and drops up to `limit` bytes of a refused body, for at most [`DISCARD_FOR`], and
/// stops when the body pauses for `idle`.
async fn discard(mut body: Body, limit: u64, idle: Duration) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(DISCARD_FOR, async {
        let mut read = 0u64;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(idle, body.frame()).await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read >= limit {
                break;
            }
        }
    })
    .await;
}

/// A request body that counts its bytes against the route's limit and the server's budget,
/// and gives up when the client stops sending.
struct GuardedBody {
    inner: Body,
    limit: Option<usize>,
    charge: Option<Arc<Charge>>,
    seen: usize,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl GuardedBody {
    fn count(&mut self, n: usize) -> Result<(), BodyError> {
        self.seen = self.seen.saturating_add(n);
        if let Some(limit) = self.limit
            && self.seen > limit
        {
            return Err(BodyError::TooLarge(limit));
        }
        if let Some(c) = &self.charge {
            // A declared length was charged up front; only bytes beyond it are new.
            c.add(self.seen.saturating_sub(c.held()))?;
        }
        Ok(())
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer = None;
                let n = frame.data_ref().map_or(0, Bytes::len);
                match this.count(n) {
                    Ok(()) => Poll::Ready(Some(Ok(frame))),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
            Poll::Ready(Some(Err(_))) => Poll::Ready(Some(Err(BodyError::Broken))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Idle))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_their_policies() {
        let p = |m: Method, r: &str| policy(&m, Some(r));
        assert_eq!(p(Method::POST, "/api/v1/auth/login"), Policy::Credentials);
        assert_eq!(
            p(Method::POST, "/api/v1/auth/register"),
            Policy::Credentials
        );
        assert_eq!(p(Method::POST, "/api/v1/auth/refresh"), Policy::Credentials);
        assert_eq!(p(Method::POST, "/api/v1/auth/logout"), Policy::Members);
        assert_eq!(
            p(Method::PUT, "/api/v1/blobs/{token}"),
            Policy::SignedStream
        );
        assert_eq!(
            p(Method::POST, "/api/v1/blobs/batch"),
            Policy::SignedBuffered(None)
        );
        assert_eq!(
            p(Method::POST, "/api/v1/runs/{id}/history"),
            Policy::Members
        );
        assert_eq!(p(Method::POST, "/api/v1/history/query"), Policy::Public);
        assert_eq!(p(Method::POST, "/login"), Policy::Public);
        assert_eq!(policy(&Method::POST, None), Policy::Public);
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = Arc::new(BodyBudget::new(100));
        let a = Charge::new(budget.clone());
        let b = Charge::new(budget.clone());
        assert!(a.add(60).is_ok());
        assert_eq!(b.add(41), Err(BodyError::Busy));
        assert!(b.add(40).is_ok());
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.add(60).is_ok());
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
