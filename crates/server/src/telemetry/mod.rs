//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4, written by hand: the
//! format is a few lines of text per family, and most figures are read from the database at
//! scrape time, which a metrics registry crate would only copy into its own counters first).
//!
//! Request counters and latency histograms are kept in memory by a middleware, ingestion and
//! transfer counters by the handlers that store or send the data; everything else (runs,
//! sweeps, agents, pools, process) is read when Prometheus scrapes, so it is never stale.
//! The endpoint needs no credentials, like `/health`: operators keep it off the public network,
//! or serve it on its own address (`metrics_bind`).

pub(crate) mod counters;
mod store;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{Store, now_us};
pub use counters::{Telemetry, TransferKind};
use counters::{escape, header};

/// The content type Prometheus expects for the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Records every request into [`Telemetry`] and writes its one log line (method, route,
/// status, duration, actor, request id); added to the whole router, so the route is known.
pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let id = RequestId::of(&req);
    req.extensions_mut().insert(id.clone());
    let start = Instant::now();
    let mut resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    let actor = resp
        .extensions()
        .get::<crate::auth::LoggedActor>()
        .map_or("anonymous", |a| a.0.as_str());
    // The route template, never the path: paths carry signed tokens (`/blobs/{token}`).
    tracing::info!(
        target: "wanllmdb_server::request",
        method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        actor,
        request_id = %id.0,
        "request"
    );
    if let Ok(v) = header::HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    state.telemetry.observe(method, route, status, elapsed);
    resp
}

/// The header a request id travels in, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request, in its log line and its `X-Request-Id` answer header: the client's
/// own when it sent a plausible one (a proxy's), else a fresh one.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn of(req: &Request) -> RequestId {
        let given = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        RequestId(given.map_or_else(|| crate::auth::random_hex(8), str::to_string))
    }
}

/// Known methods by name; anything else as `other`, so clients cannot grow the label set.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics` on the main address, unless it has an address of its own.
pub fn router(config: &ServerConfig) -> Router<AppState> {
    if config.metrics_bind.is_some() {
        Router::new()
    } else {
        Router::new().route("/metrics", get(scrape))
    }
}

/// Listens on the separate metrics address, when one is configured; the error says which
/// address could not be bound.
pub async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, String> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))
}

/// Serves `/metrics` alone on its own listener until `shutdown` turns true.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let header_timeout = state.config.header_timeout;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|uri: Uri| async move {
            ApiError::NotFound(format!(
                "no such endpoint: {} (this address serves only /metrics)",
                uri.path()
            ))
        })
        // The JSON form is for administrators, so credentials are read here too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::resolve_actor,
        ))
        .with_state(state);
    tokio::spawn(crate::connections::serve(
        listener,
        app,
        header_timeout,
        shutdown,
    ))
}

/// `?format=` of `/metrics`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrapeQuery {
    format: Option<String>,
}

/// `/metrics`: Prometheus text, or with `Accept: application/json` (or `?format=json`) the
/// monitoring document of the product description, for server administrators.
async fn scrape(
    State(state): State<AppState>,
    actor: crate::auth::Actor,
    headers: axum::http::HeaderMap,
    crate::extract::Query(q): crate::extract::Query<ScrapeQuery>,
) -> ApiResult<Response> {
    let wants_json = match q.format.as_deref() {
        Some("json") => true,
        Some("prometheus" | "text") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown format {other:?}: use json, or prometheus (the default)"
            )));
        }
        None => headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/json")),
    };
    if wants_json {
        let report = crate::system::monitoring_report(&state, &actor).await?;
        return Ok(axum::Json(report).into_response());
    }
    prometheus_text(&state).await
}

async fn prometheus_text(state: &AppState) -> ApiResult<Response> {
    let mut out = String::with_capacity(16 * 1024);
    state.telemetry.write_requests(&mut out);
    state.telemetry.write_ingested(&mut out);
    write_database(state, &mut out).await?;
    write_pools(&state.store, &mut out);
    write_process(&mut out);
    header(
        &mut out,
        "wanllmdb_uptime_seconds",
        "gauge",
        "Seconds since this server process started.",
    );
    let _ = writeln!(
        out,
        "wanllmdb_uptime_seconds {}",
        state.telemetry.uptime().as_secs_f64()
    );
    header(
        &mut out,
        "wanllmdb_build_info",
        "gauge",
        "Always 1; the version label names the server build.",
    );
    let _ = writeln!(
        out,
        "wanllmdb_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    write_singletons(state, &mut out);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response())
}

/// Which singleton jobs this replica runs: summed over replicas, each job should be 1.
fn write_singletons(state: &AppState, out: &mut String) {
    header(
        out,
        "wanllmdb_singleton_job_leader",
        "gauge",
        "1 when this replica holds the job's lease and runs it, else 0.",
    );
    for lease in state.singletons.all() {
        let _ = writeln!(
            out,
            "wanllmdb_singleton_job_leader{{job=\"{}\"}} {}",
            lease.name(),
            u8::from(lease.is_held())
        );
    }
}

async fn write_database(state: &AppState, out: &mut String) -> ApiResult<()> {
    let runs = store::runs_by_state(&state.store).await?;
    header(out, "wanllmdb_runs", "gauge", "Runs by state.");
    for (s, n) in runs {
        let _ = writeln!(out, "wanllmdb_runs{{state=\"{}\"}} {n}", escape(&s));
    }
    let sweeps = store::sweeps_by_state(&state.store).await?;
    header(out, "wanllmdb_sweeps", "gauge", "Sweeps by state.");
    for (s, n) in sweeps {
        let _ = writeln!(out, "wanllmdb_sweeps{{state=\"{}\"}} {n}", escape(&s));
    }
    let fresh_after = now_us() - state.config.heartbeat_timeout.as_micros() as i64;
    let agents = store::active_sweep_agents(&state.store, fresh_after).await?;
    header(
        out,
        "wanllmdb_sweep_agents_active",
        "gauge",
        "Sweep agents that have not exited and sent a heartbeat within the heartbeat timeout.",
    );
    let _ = writeln!(out, "wanllmdb_sweep_agents_active {agents}");
    Ok(())
}

fn write_pools(store: &Store, out: &mut String) {
    header(
        out,
        "wanllmdb_db_pool_connections",
        "gauge",
        "Open database connections by pool, in use or idle.",
    );
    for pool in crate::system::pool_usage(store) {
        let name = &pool.name;
        let _ = writeln!(
            out,
            "wanllmdb_db_pool_connections{{pool=\"{name}\",state=\"in_use\"}} {}",
            pool.in_use
        );
        let _ = writeln!(
            out,
            "wanllmdb_db_pool_connections{{pool=\"{name}\",state=\"idle\"}} {}",
            pool.idle
        );
    }
}

/// Resident memory and CPU time from /proc (Linux); left out where /proc cannot be read.
fn write_process(out: &mut String) {
    if let Some(bytes) = resident_bytes() {
        header(
            out,
            "wanllmdb_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the server process.",
        );
        let _ = writeln!(out, "wanllmdb_process_resident_memory_bytes {bytes}");
    }
    if let Some(seconds) = cpu_seconds() {
        header(
            out,
            "wanllmdb_process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the server process.",
        );
        let _ = writeln!(out, "wanllmdb_process_cpu_seconds_total {seconds}");
    }
}

/// Resident pages from /proc/self/statm, times the page size. Without libc the page size is not
/// asked of the kernel: /proc/self/status gives the same figure in kB, which fixes it.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let rss_kb = status.as_deref().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    // Both files are read a moment apart; the page size is whichever power of two fits best.
    let page_size = match rss_kb {
        Some(kb) if pages > 0 => {
            let approx = kb * 1024 / pages;
            [4096u64, 16384, 65536]
                .into_iter()
                .min_by_key(|p| p.abs_diff(approx))
                .unwrap_or(4096)
        }
        _ => 4096,
    };
    Some(pages * page_size)
}

/// utime + stime (fields 14 and 15 of /proc/self/stat) in clock ticks; Linux fixes the
/// user-visible tick rate (USER_HZ) at 100 on every architecture.
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().is_some_and(|b| b > 0));
            assert!(cpu_seconds().is_some());
        }
    }
}
