//! What the system report reads from the database: its size, its connection pools and the
//! total of stored blobs. Owns no table; this is the only place the report's SQL lives.

use sqlx::{Database, Pool};
use wanllmdb_api_types::system::PoolUsage;

use crate::error::ApiResult;
use crate::on_backend;
use crate::store::{Backend, Store};

/// The backend's name as the report gives it.
pub(super) fn backend_name(store: &Store) -> &'static str {
    match store.backend {
        Backend::Sqlite { .. } => "sqlite",
        Backend::Postgres(_) => "postgres",
    }
}

/// Bytes the database takes on disk.
pub(super) async fn database_size(store: &Store) -> ApiResult<u64> {
    match &store.backend {
        Backend::Sqlite { read, .. } => sqlite_size(read).await,
        Backend::Postgres(pool) => {
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await?;
            Ok(u64::try_from(size).unwrap_or(0))
        }
    }
}

/// Pages of the main file plus the write-ahead log, which holds recent commits until a
/// checkpoint copies them over.
async fn sqlite_size(pool: &sqlx::SqlitePool) -> ApiResult<u64> {
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(pool)
        .await?;
    let files: Vec<(i64, String, String)> = sqlx::query_as("PRAGMA database_list")
        .fetch_all(pool)
        .await?;
    let main = files.iter().find(|(_, name, _)| name == "main");
    let wal = match main {
        Some((_, _, file)) if !file.is_empty() => tokio::fs::metadata(format!("{file}-wal"))
            .await
            .map_or(0, |m| m.len()),
        _ => 0,
    };
    Ok(u64::try_from(pages * page_size).unwrap_or(0) + wal)
}

/// The connections of each pool the store holds: open, idle and in use.
pub(crate) fn pool_usage(store: &Store) -> Vec<PoolUsage> {
    match &store.backend {
        Backend::Sqlite { write, read } => vec![
            usage_of("sqlite_write", write),
            usage_of("sqlite_read", read),
        ],
        Backend::Postgres(pool) => vec![usage_of("postgres", pool)],
    }
}

fn usage_of<DB: Database>(name: &str, pool: &Pool<DB>) -> PoolUsage {
    let open = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    PoolUsage {
        name: name.into(),
        max: pool.options().get_max_connections(),
        open,
        idle,
        in_use: open.saturating_sub(idle),
    }
}

/// How many blobs are stored and their bytes in all.
// `blobs` belongs to the run files feature, which stores them.
pub(super) async fn blob_totals(store: &Store) -> ApiResult<(u64, u64)> {
    let (blobs, bytes): (i64, i64) = on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs")
            .fetch_one(pool)
            .await?
    });
    Ok((
        u64::try_from(blobs).unwrap_or(0),
        u64::try_from(bytes).unwrap_or(0),
    ))
}
