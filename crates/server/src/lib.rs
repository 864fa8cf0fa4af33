//! The wanLLMDB server: an axum application over SQLite or PostgreSQL.
//!
//! Layers: `routes` (thin handlers) → services (domain rules, authorization) → `store` (SQL).

pub mod app;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod config;
pub mod connections;
pub mod datadir;
pub mod error;
mod extract;
pub mod files;
pub mod health;
pub mod lease;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod mlflow;
pub mod openapi;
pub mod paging;
pub mod projects;
pub mod registry;
pub mod runs;
pub mod state;
pub mod store;
pub mod sweeps;
pub mod system;
pub mod tags;
pub mod telemetry;
pub mod transfer;
pub mod ui;

pub use app::{RunningServer, serve, start, start_with_store};
pub use config::ServerConfig;
pub use store::Store;
