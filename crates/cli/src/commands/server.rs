//! `wanllmdb server`: run the tracking server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use wanllmdb_server::ServerConfig;

use crate::env;

/// Where a server's data lives. `wanllmdb server` takes these, and so do the admin commands
/// that work on the storage directly (backup, restore, verify, export, import).
#[derive(Debug, Default, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database, files and the admin key [default: the platform data directory]
    #[arg(long, env = env::DATA_DIR, value_name = "DIR", hide_env_values = true)]
    pub data_dir: Option<PathBuf>,
    /// Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]
    #[arg(long, env = env::DATABASE_URL, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object
    /// storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN])
    /// [default: <data-dir>/blobs]
    #[arg(long, env = env::STORAGE_URL, value_name = "URL", hide_env_values = true)]
    pub storage_url: Option<String>,
    /// Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]
    #[arg(long, env = env::S3_ENDPOINT, value_name = "URL", hide_env_values = true)]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1]
    #[arg(long, env = env::S3_REGION, value_name = "REGION", hide_env_values = true)]
    pub s3_region: Option<String>,
    /// Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]
    #[arg(long, env = env::S3_PATH_STYLE, value_name = "BOOL", hide_env_values = true)]
    pub s3_path_style: Option<bool>,
    /// TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies
    #[arg(long, env = env::CONFIG, value_name = "FILE", hide_env_values = true)]
    pub config: Option<PathBuf>,
}

/// Options of `wanllmdb server`. Each may also come from its environment variable or from
/// the TOML config file; flags win over the environment, which wins over the file.
#[derive(Debug, Default, Args)]
#[command(
    after_help = "Examples:\n  wanllmdb server                                   # SQLite + local files in the data directory\n  wanllmdb server --bind 0.0.0.0:8000 --data-dir /srv/wanllmdb\n  wanllmdb server --database-url postgres://wanllmdb@db/wanllmdb\n  wanllmdb server --bind 0.0.0.0:8000 --metrics-bind 127.0.0.1:9090   # /metrics only on localhost\n  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… wanllmdb server --storage-url s3://ml-artifacts/wanllmdb --s3-endpoint http://minio:9000\n\nOn first start with an empty database an 'admin' account is created; its API key is printed\nonce and saved to <data-dir>/admin-api-key (mode 0600)."
)]
pub struct ServerArgs {
    /// Address and port to listen on [default: 127.0.0.1:8000]
    #[arg(long, env = env::BIND, value_name = "ADDR", hide_env_values = true)]
    pub bind: Option<SocketAddr>,
    /// Serve /metrics on this address only (e.g. 127.0.0.1:9090), so it can stay off the network
    /// the API is on [default: /metrics is served on --bind]
    #[arg(long, env = env::METRICS_BIND, value_name = "ADDR", hide_env_values = true)]
    pub metrics_bind: Option<SocketAddr>,
    /// The server's URL as clients reach it (e.g. https://ml.example.com behind a proxy), used
    /// in the absolute upload and download URLs it hands out [default: from each request's Host]
    #[arg(long, env = env::PUBLIC_URL, value_name = "URL", hide_env_values = true)]
    pub public_url: Option<String>,
    /// The S3 endpoint as clients reach it, when it differs from --s3-endpoint (e.g. the server
    /// reaches http://minio:9000 but clients https://minio.example.com): presigned URLs are
    /// signed for it [default: --s3-endpoint]
    #[arg(long, env = env::S3_PUBLIC_ENDPOINT, value_name = "URL", hide_env_values = true)]
    pub s3_public_endpoint: Option<String>,
    /// Where the data lives: database, content storage, config file.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Largest accepted request body in bytes, after decompression [default: 67108864]
    #[arg(long, env = env::MAX_BODY_BYTES, value_name = "BYTES", hide_env_values = true)]
    pub max_body_bytes: Option<usize>,
    /// Request body bytes all requests together may hold in memory; past it requests are
    /// answered 503 with Retry-After [default: 268435456]
    #[arg(long, env = env::MAX_INFLIGHT_BODY_BYTES, value_name = "BYTES", hide_env_values = true)]
    pub max_inflight_body_bytes: Option<usize>,
    /// Largest run config in bytes of JSON; a larger one is refused with 413 [default: 1048576]
    #[arg(long, env = env::MAX_RUN_CONFIG_BYTES, value_name = "BYTES", hide_env_values = true)]
    pub max_run_config_bytes: Option<usize>,
    /// Seconds a connection may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept open [default: 30]
    #[arg(long, env = env::HEADER_TIMEOUT, value_name = "SECONDS", hide_env_values = true)]
    pub header_timeout: Option<u64>,
    /// Seconds a request body may pause before the request is dropped with 408 [default: 30]
    #[arg(long, env = env::BODY_TIMEOUT, value_name = "SECONDS", hide_env_values = true)]
    pub body_timeout: Option<u64>,
    /// Log lines as text or as JSON objects, one per line (one per request, plus events) [default: text]
    #[arg(long, env = env::LOG_FORMAT, value_name = "FORMAT", value_enum, hide_env_values = true)]
    pub log_format: Option<LogFormat>,
    /// Seconds without a heartbeat after which a running run is marked crashed [default: 300]
    #[arg(long, env = env::HEARTBEAT_TIMEOUT, value_name = "SECONDS", hide_env_values = true)]
    pub heartbeat_timeout: Option<u64>,
    /// Days to keep audit events; older ones are deleted hourly (0 keeps them forever) [default: 365]
    #[arg(long, env = env::AUDIT_RETENTION_DAYS, value_name = "DAYS", hide_env_values = true)]
    pub audit_retention_days: Option<u32>,
    /// Let anyone register an account (true) or only administrators create them (false) [default: true]
    #[arg(long, env = env::ALLOW_REGISTRATION, value_name = "BOOL", hide_env_values = true)]
    pub allow_registration: Option<bool>,
    /// Secret for signing session tokens; generated and kept in the database when unset
    #[arg(long, env = env::JWT_SECRET, value_name = "SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Host that artifact references may point at although it resolves to a private address
    /// (an exact name, or .example.com for all its subdomains); repeat or separate with commas
    #[arg(long = "reference-allow-host", env = env::REFERENCE_ALLOW_HOSTS, value_name = "HOST",
        value_delimiter = ',', hide_env_values = true)]
    pub reference_allow_hosts: Vec<String>,
    /// Reverse proxy (an address or a CIDR network such as 10.0.0.0/8) whose X-Forwarded-For or
    /// Forwarded header names the client for audit rows and login limits; repeat or separate
    /// with commas. Headers from other peers are ignored [default: none]
    #[arg(long = "trusted-proxy", env = env::TRUSTED_PROXIES, value_name = "CIDR",
        value_delimiter = ',', hide_env_values = true)]
    pub trusted_proxies: Vec<String>,
}

/// How the server writes its log lines (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event
    Text,
    /// One JSON object per line
    Json,
}

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    metrics_bind: Option<SocketAddr>,
    public_url: Option<String>,
    s3_public_endpoint: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    max_body_bytes: Option<usize>,
    max_inflight_body_bytes: Option<usize>,
    max_run_config_bytes: Option<usize>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    refresh_grace_secs: Option<u64>,
    heartbeat_timeout_secs: Option<u64>,
    audit_retention_days: Option<u32>,
    allow_registration: Option<bool>,
    jwt_secret: Option<String>,
    reference_allow_hosts: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    storage_url: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_path_style: Option<bool>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    s3_multipart_threshold: Option<u64>,
    s3_part_size: Option<u64>,
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The platform data directory (e.g. ~/.local/share/wanllmdb on Linux).
fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("wanllmdb"))
        .unwrap_or_else(|| PathBuf::from(".wanllmdb-data"))
}

impl ServerArgs {
    /// Merges flags/env with the config file and defaults.
    pub fn resolve(self) -> Result<ServerConfig> {
        let file = match &self.storage.config {
            Some(p) => read_file_config(p)?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .storage
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let mut cfg = ServerConfig::new(data_dir);
        if let Some(b) = self.bind.or(file.bind) {
            cfg.bind = b;
        }
        cfg.metrics_bind = self.metrics_bind.or(file.metrics_bind);
        cfg.public_url = self
            .public_url
            .or(file.public_url)
            .map(|u| public_url(&u, "--public-url"))
            .transpose()?;
        let s3_public_endpoint = self
            .s3_public_endpoint
            .or(file.s3_public_endpoint)
            .map(|u| public_url(&u, "--s3-public-endpoint"))
            .transpose()?;
        let s3_public_endpoint_given = s3_public_endpoint.is_some();
        if cfg.metrics_bind == Some(cfg.bind) && cfg.bind.port() != 0 {
            bail!("--metrics-bind must differ from --bind ({})", cfg.bind);
        }
        cfg.database_url = self.storage.database_url.or(file.database_url);
        let supported = |u: &str| {
            u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://")
        };
        if cfg.database_url.as_deref().is_some_and(|u| !supported(u)) {
            bail!("unsupported --database-url: expected sqlite://FILE or postgres://…");
        }
        if let Some(n) = self.max_body_bytes.or(file.max_body_bytes) {
            if n < 1024 {
                bail!("--max-body-bytes must be at least 1024");
            }
            cfg.max_body_bytes = n;
        }
        if let Some(n) = self
            .max_inflight_body_bytes
            .or(file.max_inflight_body_bytes)
        {
            cfg.max_inflight_body_bytes = n;
        }
        if cfg.max_inflight_body_bytes < cfg.max_body_bytes {
            bail!(
                "--max-inflight-body-bytes ({}) must be at least --max-body-bytes ({}): otherwise \
                 the largest request could never be received",
                cfg.max_inflight_body_bytes,
                cfg.max_body_bytes
            );
        }
        if let Some(n) = self.max_run_config_bytes.or(file.max_run_config_bytes) {
            if n < 1024 {
                bail!("--max-run-config-bytes must be at least 1024");
            }
            cfg.max_run_config_bytes = n;
        }
        if let Some(s) = self.header_timeout.or(file.header_timeout_secs) {
            if s == 0 {
                bail!("--header-timeout must be at least 1 second");
            }
            cfg.header_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.body_timeout.or(file.body_timeout_secs) {
            if s == 0 {
                bail!("--body-timeout must be at least 1 second");
            }
            cfg.body_timeout = Duration::from_secs(s);
        }
        if let Some(s) = file.refresh_grace_secs {
            cfg.refresh_grace = Duration::from_secs(s);
        }
        if let Some(s) = self.heartbeat_timeout.or(file.heartbeat_timeout_secs) {
            if s == 0 {
                bail!("--heartbeat-timeout must be at least 1 second");
            }
            cfg.heartbeat_timeout = Duration::from_secs(s);
            cfg.reaper_interval = Duration::from_secs(s.clamp(1, 30));
        }
        if let Some(d) = self.audit_retention_days.or(file.audit_retention_days) {
            cfg.audit_retention_days = d;
        }
        if let Some(a) = self.allow_registration.or(file.allow_registration) {
            cfg.allow_registration = a;
        }
        cfg.jwt_secret = self.jwt_secret.or(file.jwt_secret);
        cfg.reference_allow_hosts = if self.reference_allow_hosts.is_empty() {
            file.reference_allow_hosts.unwrap_or_default()
        } else {
            self.reference_allow_hosts
        };
        cfg.reference_allow_hosts.retain(|h| !h.trim().is_empty());
        let proxies = if self.trusted_proxies.is_empty() {
            file.trusted_proxies.unwrap_or_default()
        } else {
            self.trusted_proxies
        };
        cfg.trusted_proxies = trusted_proxies(&proxies)?;
        if let Some(url) = self.storage.storage_url.or(file.storage_url) {
            cfg.s3 = storage(
                &url,
                self.storage.s3_endpoint.or(file.s3_endpoint),
                self.storage.s3_region.or(file.s3_region),
                self.storage.s3_path_style.or(file.s3_path_style),
                file.s3_access_key_id,
                file.s3_secret_access_key,
            )?;
            if let Some(c) = cfg.s3.as_mut() {
                c.public_endpoint = s3_public_endpoint;
                const MIN_PART: u64 = 5 * 1024 * 1024;
                if let Some(t) = file.s3_multipart_threshold {
                    c.multipart_threshold = t.max(MIN_PART);
                }
                if let Some(p) = file.s3_part_size {
                    if !(MIN_PART..=wanllmdb_server::blobs::s3::MAX_SINGLE_PART).contains(&p) {
                        bail!("s3_part_size must be between 5 MiB and 5 GiB (in bytes)");
                    }
                    c.part_size = p;
                }
            }
        }
        if cfg.s3.is_none() && s3_public_endpoint_given {
            bail!("--s3-public-endpoint needs S3 storage (--storage-url s3://…)");
        }
        if cfg.jwt_secret.as_deref().is_some_and(|s| s.len() < 32) {
            bail!("--jwt-secret must be at least 32 characters");
        }
        Ok(cfg)
    }
}

/// Checks a URL clients are given: http(s), a host, no path, query or trailing slash.
fn public_url(url: &str, flag: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{flag} {url:?} is not a URL: use e.g. https://ml.example.com");
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['?', '#', ' ']) {
        bail!(
            "{flag} {url:?} must be http:// or https:// with a host, e.g. https://ml.example.com"
        );
    }
    if flag == "--s3-public-endpoint" && rest.contains('/') {
        bail!("{flag} {url:?} must not have a path");
    }
    Ok(url.to_string())
}

/// Parses `--trusted-proxy` entries; a bad one stops the server from starting.
fn trusted_proxies(entries: &[String]) -> Result<Vec<wanllmdb_server::config::Cidr>> {
    entries
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.parse()
                .map_err(|why| anyhow::anyhow!("--trusted-proxy: {why}"))
        })
        .collect()
}

fn aws_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// Object storage settings from `--storage-url` and friends.
fn storage(
    url: &str,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    key_id: Option<String>,
    secret: Option<String>,
) -> Result<Option<wanllmdb_server::blobs::s3::S3Config>> {
    if url.starts_with("file://") || url == "local" {
        return Ok(None);
    }
    let (bucket, prefix) = wanllmdb_server::blobs::s3::S3Config::parse_url(url)
        .map_err(|e| anyhow::anyhow!("--storage-url: {e} (expected s3://BUCKET[/PREFIX])"))?;
    let endpoint = endpoint.or_else(|| aws_env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]));
    let access_key_id = key_id
        .or_else(|| aws_env(&["AWS_ACCESS_KEY_ID"]))
        .context("S3 storage needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")?;
    let secret_access_key = secret
        .or_else(|| aws_env(&["AWS_SECRET_ACCESS_KEY"]))
        .context("S3 storage needs credentials: set AWS_SECRET_ACCESS_KEY")?;
    Ok(Some(wanllmdb_server::blobs::s3::S3Config {
        bucket,
        prefix,
        path_style: path_style.unwrap_or(endpoint.is_some()),
        endpoint,
        public_endpoint: None,
        region: region
            .or_else(|| aws_env(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
            .unwrap_or_else(|| "us-east-1".into()),
        access_key_id,
        secret_access_key,
        session_token: aws_env(&["AWS_SESSION_TOKEN"]),
        multipart_threshold: wanllmdb_server::blobs::s3::S3Config::MULTIPART_THRESHOLD,
        part_size: wanllmdb_server::blobs::s3::S3Config::PART_SIZE,
        max_single_copy: wanllmdb_server::blobs::s3::MAX_SINGLE_PART,
    }))
}

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is called, before the
/// server says it is listening, so a signal sent the moment it does is a clean shutdown rather
/// than the default action (killed with unsaved state).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> Result<()> {
    let cfg = args.resolve()?;
    // The server creates the data directory itself, private to this user.
    let shutdown = shutdown_signal()?;
    wanllmdb_server::serve(cfg, shutdown)
        .await
        .map_err(anyhow::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_parsed_and_bad_ones_refused() {
        let ok = trusted_proxies(&["10.0.0.0/8".into(), " ".into(), "::1".into()]).unwrap();
        let shown: Vec<String> = ok.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128"]);
        let err = trusted_proxies(&["10.0.0.0/8".into(), "proxy.internal".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--trusted-proxy: \"proxy.internal\" is not an IP address"),
            "{err}"
        );
    }
}
