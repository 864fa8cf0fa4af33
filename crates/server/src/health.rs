//! Liveness and readiness.
//!
//! Readiness covers every dependency the server has: the database and the blob store. There is
//! no Redis to check: shared state (revocations, login limits, leases) lives in the database.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use wanllmdb_api_types::Health;

use crate::state::AppState;

/// `/health`, `/health/live`, `/health/ready`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

fn health(status: &str) -> Health {
    Health {
        status: status.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        checks: Default::default(),
    }
}

async fn live() -> Json<Health> {
    Json(health("ok"))
}

/// 503 naming the failing dependency when the database or the blob store does not answer.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ping()).await;
    let (code, mut h, db) = match ping {
        Ok(Ok(())) => (StatusCode::OK, health("ok"), "ok".to_string()),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            health("unavailable"),
            format!("error: {e}"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            health("unavailable"),
            "error: timed out after 3 s".to_string(),
        ),
    };
    h.checks.insert("database".into(), db);
    let blobs = tokio::time::timeout(std::time::Duration::from_secs(3), state.blobs.check()).await;
    let (code, blobs) = match blobs {
        Ok(Ok(())) => (code, "ok".to_string()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("error: {e}")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "error: timed out after 3 s".to_string(),
        ),
    };
    if code != StatusCode::OK {
        h.status = "unavailable".into();
    }
    h.checks.insert("blob_store".into(), blobs);
    (code, Json(h))
}
