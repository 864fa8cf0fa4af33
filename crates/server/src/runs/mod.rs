//! (in progress)
pub mod routes;
pub fn spawn_reaper(_s: crate::app::AppState, _r: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> { tokio::spawn(async {}) }
