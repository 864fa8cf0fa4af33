//! Names of the environment variables the binary reads, shared by clap and the docs.

/// Address the server listens on.
pub const BIND: &str = "WANLLMDB_BIND";
/// Server data directory.
pub const DATA_DIR: &str = "WANLLMDB_DATA_DIR";
/// Database URL.
pub const DATABASE_URL: &str = "WANLLMDB_DATABASE_URL";
/// Server config file.
pub const CONFIG: &str = "WANLLMDB_CONFIG";
/// Token signing secret.
pub const JWT_SECRET: &str = "WANLLMDB_JWT_SECRET";
/// Request body limit.
pub const MAX_BODY_BYTES: &str = "WANLLMDB_MAX_BODY_BYTES";
/// Heartbeat timeout in seconds.
pub const HEARTBEAT_TIMEOUT: &str = "WANLLMDB_HEARTBEAT_TIMEOUT";
/// Whether self-registration is open.
pub const ALLOW_REGISTRATION: &str = "WANLLMDB_ALLOW_REGISTRATION";
/// Log filter.
pub const LOG: &str = "WANLLMDB_LOG";
