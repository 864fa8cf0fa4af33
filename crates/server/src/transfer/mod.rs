//! Moving everything a server holds in and out of its storage: logical exports (one JSON
//! line per row, plus the content blobs) that import into any backend, single-file backups
//! and restores, and integrity checks.
//!
//! An export directory holds `manifest.json`, `tables/<table>.jsonl` and
//! `blobs/sha256/ab/<digest>`; a backup is the same tree in one tar archive. Both are read
//! from one consistent snapshot of the database while the server keeps serving.

mod blobio;
mod codec;
mod export;
mod import;
pub mod schema;
mod store;
mod tar;
mod upgrade;
mod verify;

use serde::{Deserialize, Serialize};

use crate::blobs::BlobStore;
use crate::store::Store;

pub use export::{backup, export, snapshot_manifest};
pub use import::{Comparison, ImportReport, import, restore};
pub use verify::{VerifyReport, verify, verify_backup};

/// Version of the export layout written by this code.
pub const FORMAT_VERSION: u32 = 1;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The database failed.
    #[error("database error: {0}")]
    Sql(#[from] store::DatabaseError),
    /// The file system failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Blob storage failed.
    #[error("blob storage: {0}")]
    Blob(#[from] crate::blobs::BlobError),
    /// An export or archive is malformed or does not match its manifest.
    #[error("{0}")]
    Invalid(String),
    /// The import target already holds data.
    #[error("{0}")]
    NotEmpty(String),
    /// A check could not run to its end (what it found so far is not a report).
    #[error("{0}")]
    Check(String),
    /// The database schema differs from what this version exports.
    #[error("the database schema does not match this version of wanllmdb: {0}")]
    Schema(String),
}

/// Rows and checksum of one exported table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    /// Table name.
    pub name: String,
    /// Number of rows.
    pub rows: u64,
    /// SHA-256 of `tables/<name>.jsonl`, hex.
    pub sha256: String,
}

/// Count, bytes and checksum of the exported blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSummary {
    /// Number of blobs.
    pub count: u64,
    /// Their total size.
    pub bytes: u64,
    /// SHA-256 over the `digest size\n` lines of every blob, sorted by digest.
    pub sha256: String,
}

/// What an export or backup holds: written to `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The last database migration applied to the source.
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub source_database: String,
    /// `local` or `s3`.
    pub source_blob_store: String,
    /// When the snapshot was taken (RFC 3339).
    pub created_at: String,
    /// Every table, in import order.
    pub tables: Vec<TableSummary>,
    /// The content blobs.
    pub blobs: BlobSummary,
}

impl Manifest {
    /// Differences in content (tables and blobs) between two manifests, as sentences;
    /// where and when each was taken is ignored.
    pub fn content_differences(&self, other: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        if self.schema_version != other.schema_version {
            out.push(format!(
                "schema version {} vs {}",
                self.schema_version, other.schema_version
            ));
        }
        let names = |m: &Manifest| m.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        if names(self) != names(other) {
            out.push("the two hold different tables".into());
        }
        for (a, b) in self.tables.iter().zip(&other.tables) {
            if a.rows != b.rows {
                out.push(format!("table {}: {} rows vs {}", a.name, a.rows, b.rows));
            } else if a.sha256 != b.sha256 {
                out.push(format!(
                    "table {}: same row count, different content",
                    a.name
                ));
            }
        }
        if self.blobs != other.blobs {
            out.push(format!(
                "blobs: {} ({} bytes) vs {} ({} bytes){}",
                self.blobs.count,
                self.blobs.bytes,
                other.blobs.count,
                other.blobs.bytes,
                if self.blobs.count == other.blobs.count {
                    ", different digests"
                } else {
                    ""
                }
            ));
        }
        out
    }
}

/// Where a long step stands, for progress bars. Units are rows for tables and bytes for blobs.
pub trait Progress: Send + Sync {
    /// A step begins; `total` units are expected (0 when unknown).
    fn begin(&self, step: &str, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The step is over.
    fn end(&self);
}

/// Progress that is not shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _step: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn end(&self) {}
}

/// The database and blob store a transfer reads or writes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The database.
    pub store: Store,
    /// The blob store.
    pub blobs: BlobStore,
}

impl Target {
    /// Opens the storage a server with `config` uses (creating an empty SQLite database and
    /// applying migrations as the server would). The S3 bucket must answer.
    pub async fn open(config: &crate::ServerConfig) -> Result<Target, TransferError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Store::open(&config.effective_database_url())
            .await
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        let blobs = match &config.s3 {
            None => BlobStore::local(config.data_dir.join("blobs")),
            Some(cfg) => {
                let s3 =
                    crate::blobs::s3::S3Blobs::new(cfg.clone()).map_err(TransferError::Invalid)?;
                s3.check().await.map_err(|e| {
                    TransferError::Invalid(format!("cannot use bucket {}: {e}", cfg.bucket))
                })?;
                BlobStore::S3(std::sync::Arc::new(s3))
            }
        };
        Ok(Target { store, blobs })
    }

    /// `local` or `s3`.
    pub fn blob_store_kind(&self) -> &'static str {
        match self.blobs {
            BlobStore::Local(_) => "local",
            BlobStore::S3(_) => "s3",
        }
    }

    /// Closes the database (on SQLite this checkpoints the WAL).
    pub async fn close(&self) {
        self.store.close().await;
    }
}
