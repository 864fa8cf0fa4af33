//! The SQL store: one set of queries over SQLite (embedded default) or PostgreSQL.
//!
//! Queries use runtime `sqlx::query` with `$n` placeholders, valid on both backends; the
//! [`on_backend!`] macro expands a block once per backend so the same code serves both.
//! Where SQL differs (JSON access), [`Store::kind`] picks the dialect.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Connection pools of one backend.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite keeps one writer connection (writers queue instead of failing) and a read pool.
    Sqlite {
        /// The single writer.
        write: SqlitePool,
        /// Readers (WAL lets them run beside the writer).
        read: SqlitePool,
    },
    /// PostgreSQL uses one pool for everything.
    Postgres(PgPool),
}

/// The database.
#[derive(Clone, Debug)]
pub struct Store {
    /// The pools.
    pub backend: Backend,
}

/// Runs `body` with `pool` bound to the write (or read) pool of whichever backend the store
/// uses: `on_backend!(store, write, |pool| { … })`. Written like a closure so rustfmt formats
/// the body; it is expanded once per backend, which is what lets one body serve both.
#[macro_export]
#[doc(hidden)]
macro_rules! on_backend {
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { write: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { read: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `body` inside a write transaction bound to `tx`, committed when the body ends
/// (`with_tx!(store, |tx| { … })`): `BEGIN IMMEDIATE` on SQLite so concurrent writers wait.
/// A `?` in the body returns from the enclosing function and rolls the transaction back.
#[macro_export]
#[doc(hidden)]
macro_rules! with_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { write, .. } => {
                #[allow(unused_mut)]
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Backend::Postgres(pool) => {
                #[allow(unused_mut)]
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Bad URL or unreachable database.
    #[error("cannot open database: {0}")]
    Connect(#[from] sqlx::Error),
    /// A migration failed.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported backend.
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    Unsupported(String),
    /// Existing accounts would collide under a newer rule.
    #[error("cannot upgrade the database: {0}")]
    Collision(String),
}

impl Store {
    /// Runs one write statement whose only parameter is `$1`; returns the rows it changed.
    pub async fn execute_with(&self, sql: &'static str, param: i64) -> Result<u64, sqlx::Error> {
        on_backend!(self, write, |pool| {
            Ok(sqlx::query(sql)
                .bind(param)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Opens (creating if needed) the database at `url` and applies migrations.
    pub async fn open(url: &str) -> Result<Store, OpenError> {
        let store = if url.starts_with("sqlite:") {
            Self::open_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            Self::open_postgres(opts).await?
        } else {
            return Err(OpenError::Unsupported(redact_url(url)));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens PostgreSQL with explicit options (tests use this to pick a schema).
    pub async fn open_postgres(opts: PgConnectOptions) -> Result<Store, OpenError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(Store {
            backend: Backend::Postgres(pool),
        })
    }

    async fn open_sqlite(url: &str) -> Result<Store, OpenError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a committed transaction survives a killed process; only an
            // operating-system crash can lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("cache_size", "-8000")
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(opts.read_only(false))
            .await?;
        Ok(Store {
            backend: Backend::Sqlite { write, read },
        })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        self.check_case_collisions().await?;
        match &self.backend {
            Backend::Sqlite { write, .. } => sqlx::migrate!("migrations/sqlite").run(write).await?,
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Usernames and emails are unique whatever their case since migration 11. Accounts made
    /// before that may differ only in case; rather than fail on the unique index, say which.
    async fn check_case_collisions(&self) -> Result<(), OpenError> {
        let mut found = Vec::new();
        for column in ["username", "email"] {
            let sql = format!(
                "SELECT {column} FROM users WHERE lower({column}) IN \
                 (SELECT lower({column}) FROM users GROUP BY lower({column}) HAVING COUNT(*) > 1) \
                 ORDER BY lower({column}), {column}"
            );
            let names: Result<Vec<String>, sqlx::Error> = on_backend!(self, write, |pool| {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await
            });
            // No users table: a new database, nothing to collide.
            let Ok(names) = names else { continue };
            let mut groups: Vec<Vec<String>> = Vec::new();
            for name in names {
                match groups.last_mut() {
                    Some(g) if g[0].to_lowercase() == name.to_lowercase() => g.push(name),
                    _ => groups.push(vec![name]),
                }
            }
            for g in groups {
                found.push(format!("{column}s {}", g.join(" and ")));
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        Err(OpenError::Collision(format!(
            "usernames and emails are now matched whatever their case, and these accounts differ \
             only in case: {}. Rename or remove all but one of each (e.g. with the previous \
             version's `wanllmdb admin`, or in the database) and start again",
            found.join("; ")
        )))
    }

    /// The dialect.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite { .. } => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// A trivial query, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_backend!(self, read, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// Closes the pools; on SQLite this checkpoints the WAL into the main file.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { write, read } => {
                read.close().await;
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(write)
                    .await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// Replaces the password in a database URL with `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let base = redact_userinfo(url);
    let Some(q) = query else {
        return base;
    };
    let params: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// A comma-separated list of ids for an `IN (…)` (integers only, so nothing to escape).
pub fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Current time in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

/// Formats microseconds since the epoch as RFC 3339 (UTC).
pub fn format_time(us: i64) -> String {
    let nanos = i128::from(us) * 1000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Unix seconds (the wire's timestamps) to microseconds; None when out of range.
pub fn seconds_to_us(s: f64) -> Option<i64> {
    let us = s * 1e6;
    (us.is_finite() && us.abs() < 9.0e18).then(|| us.round() as i64)
}

/// Microseconds to Unix seconds.
pub fn us_to_seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

/// A checked value (a run id, a project name) read from a text column of `row`: a stored
/// string that breaks the type's rule is a decode error naming the column and the value.
pub fn checked<'r, T, R>(row: &'r R, column: &'static str) -> Result<T, sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    T: TryFrom<String>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let s: String = row.try_get(column)?;
    T::try_from(s).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert!(!redact_url("postgres://u:p@w@h/db").contains("p@w"));
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=hunter2&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn time_formats() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(seconds_to_us(1.5), Some(1_500_000));
        assert_eq!(seconds_to_us(f64::NAN), None);
    }
}
