//! Names of the environment variables the binary reads, shared by clap and the docs.

/// Address the server listens on.
pub const BIND: &str = "WANLLMDB_BIND";
/// Separate address for `/metrics`.
pub const METRICS_BIND: &str = "WANLLMDB_METRICS_BIND";
/// Server data directory.
pub const DATA_DIR: &str = "WANLLMDB_DATA_DIR";
/// Database URL.
pub const DATABASE_URL: &str = "WANLLMDB_DATABASE_URL";
/// Server config file.
pub const CONFIG: &str = "WANLLMDB_CONFIG";
/// Token signing secret.
pub const JWT_SECRET: &str = "WANLLMDB_JWT_SECRET";
/// Hosts artifact references may point at although they are private (comma-separated).
pub const REFERENCE_ALLOW_HOSTS: &str = "WANLLMDB_REFERENCE_ALLOW_HOSTS";
/// Reverse proxies whose forwarding headers name the client (comma-separated CIDRs).
pub const TRUSTED_PROXIES: &str = "WANLLMDB_TRUSTED_PROXIES";
/// Where content is stored: s3://bucket/prefix (default: the data directory).
pub const STORAGE_URL: &str = "WANLLMDB_STORAGE_URL";
/// S3 endpoint for S3-compatible services.
pub const S3_ENDPOINT: &str = "WANLLMDB_S3_ENDPOINT";
/// The S3 endpoint as clients reach it, for presigned URLs.
pub const S3_PUBLIC_ENDPOINT: &str = "WANLLMDB_S3_PUBLIC_ENDPOINT";
/// The server's URL as clients reach it, for the absolute URLs it hands out.
pub const PUBLIC_URL: &str = "WANLLMDB_PUBLIC_URL";
/// S3 region.
pub const S3_REGION: &str = "WANLLMDB_S3_REGION";
/// Whether to address the bucket in the path.
pub const S3_PATH_STYLE: &str = "WANLLMDB_S3_PATH_STYLE";
/// Request body limit.
pub const MAX_BODY_BYTES: &str = "WANLLMDB_MAX_BODY_BYTES";
/// Request body bytes all requests together may hold in memory.
pub const MAX_INFLIGHT_BODY_BYTES: &str = "WANLLMDB_MAX_INFLIGHT_BODY_BYTES";
/// Largest run config.
pub const MAX_RUN_CONFIG_BYTES: &str = "WANLLMDB_MAX_RUN_CONFIG_BYTES";
/// Seconds a connection may take to send a request's headers (and stay idle between requests).
pub const HEADER_TIMEOUT: &str = "WANLLMDB_HEADER_TIMEOUT";
/// Seconds a request body may pause.
pub const BODY_TIMEOUT: &str = "WANLLMDB_BODY_TIMEOUT";
/// Heartbeat timeout in seconds.
pub const HEARTBEAT_TIMEOUT: &str = "WANLLMDB_HEARTBEAT_TIMEOUT";
/// Days audit events are kept (0 = forever).
pub const AUDIT_RETENTION_DAYS: &str = "WANLLMDB_AUDIT_RETENTION_DAYS";
/// Whether self-registration is open.
pub const ALLOW_REGISTRATION: &str = "WANLLMDB_ALLOW_REGISTRATION";
/// Log filter.
pub const LOG: &str = "WANLLMDB_LOG";
/// The server's log format: text or json.
pub const LOG_FORMAT: &str = "WANLLMDB_LOG_FORMAT";
/// Server URL for client commands.
pub const BASE_URL: &str = "WANLLMDB_BASE_URL";
/// API key for client commands.
pub const API_KEY: &str = "WANLLMDB_API_KEY";
/// Project for client commands; set for wrapped programs.
pub const PROJECT: &str = "WANLLMDB_PROJECT";
/// Id of the wrapped run, set for the wrapped program.
pub const RUN_ID: &str = "WANLLMDB_RUN_ID";
/// Metrics file the wrapped program appends JSON lines to.
pub const METRICS: &str = "WANLLMDB_METRICS";
/// JSON file holding the wrapped run's config, set for the wrapped program.
pub const RUN_CONFIG: &str = "WANLLMDB_RUN_CONFIG";
/// Set to `1` (or `true`) to record no `system/…` metrics.
pub const NO_SYSTEM_METRICS: &str = "WANLLMDB_NO_SYSTEM_METRICS";
/// Seconds between system metric samples (15 by default).
pub const SYSTEM_METRICS_INTERVAL: &str = "WANLLMDB_SYSTEM_METRICS_INTERVAL";
/// Directory holding the user config and the credentials file.
pub const CONFIG_DIR: &str = "WANLLMDB_CONFIG_DIR";
/// Directory holding run spools (default `./.wanllmdb`).
pub const DIR: &str = "WANLLMDB_DIR";
/// Regular expression selecting output lines to capture scalars from.
pub const SCALARS: &str = "WANLLMDB_SCALARS";
/// Set to `0` to never touch the OS keyring.
pub const KEYRING: &str = "WANLLMDB_KEYRING";
/// Sweep of the wrapped run, set for programs a sweep agent starts.
pub const SWEEP_ID: &str = "WANLLMDB_SWEEP_ID";
/// The run's sweep parameters as a JSON object, set for programs a sweep agent starts.
pub const SWEEP_PARAMS: &str = "WANLLMDB_SWEEP_PARAMS";
/// Path of a JSON file holding the same parameters.
pub const SWEEP_PARAMS_FILE: &str = "WANLLMDB_SWEEP_PARAMS_FILE";
/// Seconds between a sweep agent's heartbeats.
pub const SWEEP_HEARTBEAT: &str = "WANLLMDB_SWEEP_HEARTBEAT";
/// Most the local download cache keeps (`10GiB`, `500MB`, `10%`, `0`, `unlimited`).
pub const CACHE_MAX_SIZE: &str = "WANLLMDB_CACHE_MAX_SIZE";
