//! What the Prometheus scrape reads from the database: runs and sweeps by state and the active
//! sweep agents. Owns no table; this is the only place the scrape's SQL lives.

use crate::error::ApiResult;
use crate::on_backend;
use crate::store::Store;

/// How many runs are in each state, by state.
// `runs` belongs to the runs feature.
pub(super) async fn runs_by_state(store: &Store) -> ApiResult<Vec<(String, i64)>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await?
    }))
}

/// How many sweeps are in each state, by state.
// `sweeps` belongs to the sweeps feature.
pub(super) async fn sweeps_by_state(store: &Store) -> ApiResult<Vec<(String, i64)>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT state, COUNT(*) FROM sweeps GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await?
    }))
}

/// Sweep agents that have not exited and sent a heartbeat at `fresh_after` or later.
// `sweep_agents` belongs to the sweeps feature.
pub(super) async fn active_sweep_agents(store: &Store, fresh_after: i64) -> ApiResult<i64> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM sweep_agents WHERE exited_at IS NULL AND heartbeat_at >= $1",
        )
        .bind(fresh_after)
        .fetch_one(pool)
        .await?
    }))
}
