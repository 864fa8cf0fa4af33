//! The state every request and background job is handed: the database, blob storage,
//! settings and the in-memory parts of the features. Features depend on this module, never
//! on the application that assembles them, so it names only leaf modules.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::auth::keys::TokenKeys;
use crate::blobs::BlobStore;
use crate::config::ServerConfig;
use crate::lease::Singletons;
use crate::limits::budget::BodyBudget;
use crate::store::Store;
use crate::sweeps::cache::{CurveCache, TrialCache};
use crate::telemetry::counters::Telemetry;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Token signing keys.
    pub keys: TokenKeys,
    /// An Argon2 hash nobody's password matches, so unknown users cost a verification too.
    pub dummy_hash: String,
    /// Wakes log streams of a run (by run pk) when lines arrive on this replica.
    pub log_events: broadcast::Sender<i64>,
    /// The OpenAPI document, serialised once.
    pub openapi_json: Arc<String>,
    /// Blob storage (run files).
    pub blobs: BlobStore,
    /// Metric curves of sweep runs, for Hyperband, so unchanged runs are not read again.
    pub sweep_curves: Arc<CurveCache>,
    /// Every sweep's trials as last read, so a read fetches only what changed.
    pub sweep_trials: Arc<TrialCache>,
    /// Request counters and latency histograms served at `/metrics`.
    pub telemetry: Arc<Telemetry>,
    /// Leases of the singleton background jobs, shared with the other replicas through the
    /// database.
    pub singletons: Arc<Singletons>,
    /// Request body bytes held in memory by all requests together.
    pub body_budget: Arc<BodyBudget>,
    /// Username/password pairs recently verified for HTTP Basic authentication.
    pub basic_logins: Arc<crate::auth::BasicLogins>,
}
