//! Server settings, resolved by the binary from flags, environment and config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::extract::cidr::Cidr;

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// The server's URL as clients reach it (`https://ml.example.com`, no trailing slash), for
    /// the absolute URLs it hands out; None builds them from each request's Host header.
    pub public_url: Option<String>,
    /// When set, `/metrics` is served only on this address (and not on `bind`).
    pub metrics_bind: Option<SocketAddr>,
    /// Where the SQLite file, blobs and the admin key file live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; None means `<data_dir>/wanllmdb.db`.
    pub database_url: Option<String>,
    /// Largest request body accepted, counted after decompression.
    pub max_body_bytes: usize,
    /// Request body bytes held in memory by all requests together; a request that would pass
    /// it is answered 503 with `Retry-After`.
    pub max_inflight_body_bytes: usize,
    /// Largest run config, as JSON; a bigger one is refused with 413.
    pub max_run_config_bytes: usize,
    /// How long a connection may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept.
    pub header_timeout: Duration,
    /// How long a request body may pause between bytes before the request is dropped.
    pub body_timeout: Duration,
    /// For how long after its rotation a refresh token, presented again, gets the same new pair
    /// (two tabs or a retried request refreshing at once); later it counts as stolen.
    pub refresh_grace: Duration,
    /// A running run without a heartbeat for this long is marked crashed.
    pub heartbeat_timeout: Duration,
    /// How often the reaper looks for such runs.
    pub reaper_interval: Duration,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Secret for signing tokens; when None one is generated and kept in the database, so
    /// replicas sharing a database agree on it.
    pub jwt_secret: Option<String>,
    /// Whether anyone may register an account (otherwise only server admins can create them).
    pub allow_registration: bool,
    /// Object storage for content; None keeps it in `<data_dir>/blobs`.
    pub s3: Option<crate::blobs::s3::S3Config>,
    /// Hosts that artifact references may point at even though they resolve to private
    /// addresses: exact names, or `.example.com` for every subdomain.
    pub reference_allow_hosts: Vec<String>,
    /// Audit events older than this many days are deleted (0 keeps them forever).
    pub audit_retention_days: u32,
    /// Print the admin key and write it to `<data_dir>/admin-api-key` on first start.
    pub bootstrap_admin: bool,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client; the
    /// headers of any other peer are ignored.
    pub trusted_proxies: Vec<Cidr>,
}

impl ServerConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            metrics_bind: None,
            public_url: None,
            data_dir: data_dir.into(),
            database_url: None,
            max_body_bytes: 64 * 1024 * 1024,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            max_run_config_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            refresh_grace: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(300),
            reaper_interval: Duration::from_secs(30),
            access_token_ttl: Duration::from_secs(30 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            jwt_secret: None,
            allow_registration: true,
            bootstrap_admin: true,
            audit_retention_days: 365,
            reference_allow_hosts: Vec::new(),
            s3: None,
            trusted_proxies: Vec::new(),
        }
    }

    /// The database URL in effect.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("wanllmdb.db").display()),
        }
    }
}
