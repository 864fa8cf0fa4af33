//! `GET /api/v1/system/metrics`: the state of one server process, its machine, its database
//! and its blob store, for server administrators and the scripts they run.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Everything the system metrics endpoint reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemMetrics {
    /// The server process.
    pub application: ApplicationInfo,
    /// The machine the answering process runs on.
    pub system: SystemInfo,
    /// The database.
    pub database: DatabaseInfo,
    /// Where file and artifact content is kept.
    pub blob_store: BlobStoreInfo,
    /// Always null: the server keeps all shared state in the database and uses no Redis.
    #[schema(value_type = Option<Object>)]
    pub redis: Option<serde_json::Value>,
}

/// The server process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplicationInfo {
    /// Always `wanllmdb`.
    pub name: String,
    /// Server version.
    pub version: String,
    /// Seconds since this process started.
    pub uptime_seconds: f64,
    /// When this process started (RFC 3339).
    pub started_at: String,
}

/// The machine the answering process runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// Processors and load.
    pub cpu: CpuInfo,
    /// Memory of the machine and of the process.
    pub memory: MemoryInfo,
    /// The file system holding the data directory.
    pub disk: DiskInfo,
}

/// Processors and load; figures the operating system does not give are null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CpuInfo {
    /// Processors this process may run on.
    pub cores: u32,
    /// Load average over 1, 5 and 15 minutes.
    pub load_average: Option<[f64; 3]>,
    /// User and system CPU time this process has used.
    pub process_cpu_seconds: Option<f64>,
}

/// Memory of the machine and of the process; figures the operating system does not give are
/// null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryInfo {
    /// Physical memory of the machine.
    pub total_bytes: Option<u64>,
    /// Memory available to new work without swapping.
    pub available_bytes: Option<u64>,
    /// Share of the total not available, 0 to 100.
    pub used_percent: Option<f64>,
    /// Resident memory of this process.
    pub process_rss_bytes: Option<u64>,
}

/// The file system holding the data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskInfo {
    /// The data directory.
    pub path: String,
    /// Size of the file system.
    pub total_bytes: u64,
    /// Space unprivileged processes may still use.
    pub free_bytes: u64,
    /// Share of the total not free, 0 to 100.
    pub used_percent: f64,
}

/// The database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseInfo {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Space the database takes: SQLite's file and its write-ahead log, or PostgreSQL's
    /// `pg_database_size`.
    pub size_bytes: u64,
    /// Connections of this process.
    pub connections: DatabaseConnections,
}

/// Connections of this process to the database, all pools together and per pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseConnections {
    /// Most connections the pools may open.
    pub max: u32,
    /// Connections open now.
    pub open: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Open connections running a query or transaction.
    pub in_use: u32,
    /// Per pool: SQLite has `sqlite_write` (one writer) and `sqlite_read`; PostgreSQL has
    /// `postgres`.
    pub pools: Vec<PoolUsage>,
}

/// Connections of one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PoolUsage {
    /// Pool name.
    pub name: String,
    /// Most connections it may open.
    pub max: u32,
    /// Connections open now.
    pub open: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Open connections in use.
    pub in_use: u32,
}

/// Where file and artifact content is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlobStoreInfo {
    /// `local` or `s3`.
    pub backend: String,
    /// The local directory (local storage only).
    pub path: Option<String>,
    /// The bucket (S3 only).
    pub bucket: Option<String>,
    /// The key prefix inside the bucket (S3 only; empty for none).
    pub prefix: Option<String>,
    /// The S3 endpoint; null means AWS (S3 only).
    pub endpoint: Option<String>,
    /// Distinct contents stored (equal bytes are stored once).
    pub blobs: u64,
    /// Bytes of those contents.
    pub stored_bytes: u64,
}

/// `GET /metrics` with `Accept: application/json` (or `?format=json`): the product
/// description's monitoring document, for server administrators. Prometheus text stays the
/// default of `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitoringReport {
    /// The server process.
    pub application: ApplicationInfo,
    /// The machine the answering process runs on.
    pub system: MonitoredSystem,
    /// The database.
    pub database: MonitoredDatabase,
    /// Where file and artifact content is kept.
    pub blob_store: BlobStoreInfo,
    /// Redis is not used: tokens, limits and leases live in the database. Always
    /// `{"configured": false}`.
    #[schema(value_type = Object)]
    pub redis: serde_json::Value,
}

/// CPU, memory and disk as the product description names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitoredSystem {
    /// Processors.
    pub cpu: MonitoredCpu,
    /// Physical memory of the machine.
    pub memory: UsageFigures,
    /// The file system holding the data directory.
    pub disk: UsageFigures,
}

/// Processors and how busy they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitoredCpu {
    /// Share of the machine's CPU time spent busy over a short sample, 0 to 100; null where
    /// the operating system does not say.
    pub percent: Option<f64>,
    /// Processors this process may run on.
    pub count: u32,
    /// Load average over 1, 5 and 15 minutes.
    pub load_average: Option<[f64; 3]>,
    /// User and system CPU time this process has used.
    pub process_cpu_seconds: Option<f64>,
}

/// Size, use and share used of a resource; figures the operating system does not give are
/// null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageFigures {
    /// Size in bytes.
    pub total_bytes: Option<u64>,
    /// Bytes in use.
    pub used_bytes: Option<u64>,
    /// Share used, 0 to 100.
    pub percent: Option<f64>,
}

/// The database as the product description names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitoredDatabase {
    /// Whether a query just succeeded.
    pub connected: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Space the database takes.
    pub database_size_bytes: u64,
    /// Connections this process has open.
    pub connection_count: u32,
    /// Most connections this process may open.
    pub pool_size: u32,
}
