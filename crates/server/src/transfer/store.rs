//! The storage side of transfers: reading every table listed in [`TABLES`] from one
//! snapshot, loading them back in one transaction, and the database's own checks. This is
//! the only place transfer SQL lives.
//!
//! Transfers are storage-level by nature: they read and write every feature's tables (the
//! owners are listed in [`TABLES`]), and the checks below read `artifact_entries`,
//! `artifact_versions` (owned by artifacts) and `blobs` (owned by blobs).
//!
//! [`TABLES`]: super::schema::TABLES

use std::collections::BTreeMap;

use futures_util::future::Either;
use futures_util::{Stream, StreamExt};
use sqlx::Row;

use super::TransferError;
use super::codec::Cell;
use super::schema::{ColumnType, TABLES, TableSpec};
use crate::on_backend;
use crate::store::{Backend, BackendKind, Store};

/// The error type of the database, wrapped by [`TransferError::Sql`].
pub(super) use sqlx::Error as DatabaseError;

/// Columns of every table as the database declares them: table → column → declared type.
pub(super) type LiveSchema = BTreeMap<String, BTreeMap<String, String>>;

/// Reads the live schema (migrations bookkeeping excluded).
pub(super) async fn live_schema(store: &Store) -> Result<LiveSchema, TransferError> {
    let rows: Vec<(String, String, String)> = match &store.backend {
        Backend::Sqlite { read, .. } => {
            sqlx::query_as(
                "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
            )
            .fetch_all(read)
            .await?
        }
        Backend::Postgres(pool) => {
            sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
            )
            .fetch_all(pool)
            .await?
        }
    };
    let mut schema = LiveSchema::new();
    for (table, column, ty) in rows {
        schema.entry(table).or_default().insert(column, ty);
    }
    Ok(schema)
}

/// Whether a column `declared` as the live schema says holds values of `ty` in this store.
pub(super) fn declared_type_holds(store: &Store, ty: ColumnType, declared: &str) -> bool {
    use ColumnType::{Bool as B, Bytes as Y, Float as F, Int as I, Text as T};
    let declared = declared.to_ascii_lowercase();
    match store.kind() {
        BackendKind::Postgres => {
            declared
                == match ty {
                    I => "bigint",
                    B => "boolean",
                    F => "double precision",
                    T => "text",
                    Y => "bytea",
                }
        }
        BackendKind::Sqlite => match ty {
            I => declared == "integer",
            B => declared == "integer" || declared == "boolean",
            F => declared == "real",
            T => declared == "text",
            Y => declared == "blob",
        },
    }
}

/// `sqlite` or `postgres`: the database a manifest says it came from.
pub(super) fn database_name(store: &Store) -> &'static str {
    match store.kind() {
        BackendKind::Sqlite => "sqlite",
        BackendKind::Postgres => "postgres",
    }
}

const SCHEMA_VERSION: &str = "SELECT MAX(version) FROM _sqlx_migrations";

/// The last migration applied (0 when none is).
pub(super) async fn schema_version(store: &Store) -> Result<i64, TransferError> {
    let v: Option<i64> = on_backend!(store, read, |pool| {
        sqlx::query_scalar(SCHEMA_VERSION).fetch_one(pool).await?
    });
    Ok(v.unwrap_or(0))
}

/// The exported tables that hold at least one row, in export order.
pub(super) async fn filled_tables(store: &Store) -> Result<Vec<&'static str>, TransferError> {
    let mut filled = Vec::new();
    for spec in TABLES {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT 1) t",
            spec.name
        );
        let n: i64 = on_backend!(store, read, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?
        });
        if n > 0 {
            filled.push(spec.name);
        }
    }
    Ok(filled)
}

/// Reads a row's cells; `$bool_as_int` reads booleans stored as integers (SQLite).
macro_rules! read_cells {
    ($row:expr, $spec:expr, $bool_as_int:expr) => {{
        let row = $row;
        let mut cells = Vec::with_capacity($spec.columns.len());
        for (i, (_, ty)) in $spec.columns.iter().enumerate() {
            cells.push(match ty {
                ColumnType::Int => Cell::Int(row.try_get::<Option<i64>, _>(i)?),
                ColumnType::Bool if $bool_as_int => {
                    Cell::Bool(row.try_get::<Option<i64>, _>(i)?.map(|v| v != 0))
                }
                ColumnType::Bool => Cell::Bool(row.try_get::<Option<bool>, _>(i)?),
                ColumnType::Float => Cell::Float(row.try_get::<Option<f64>, _>(i)?),
                ColumnType::Text => Cell::Text(row.try_get::<Option<String>, _>(i)?),
                ColumnType::Bytes => Cell::Bytes(row.try_get::<Option<Vec<u8>>, _>(i)?),
            });
        }
        Ok(cells)
    }};
}

/// A SQLite row's cells, in the spec's column order.
fn sqlite_cells(row: &sqlx::sqlite::SqliteRow, spec: &TableSpec) -> Result<Vec<Cell>, sqlx::Error> {
    read_cells!(row, spec, true)
}

/// A PostgreSQL row's cells, in the spec's column order.
fn pg_cells(row: &sqlx::postgres::PgRow, spec: &TableSpec) -> Result<Vec<Cell>, sqlx::Error> {
    read_cells!(row, spec, false)
}

/// `SELECT <columns> FROM <table> ORDER BY <key>`. Text keys are ordered by their bytes on
/// both backends (PostgreSQL would otherwise use the database's locale).
fn select_sql(spec: &TableSpec, postgres: bool) -> String {
    let columns: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    let order: Vec<String> = spec
        .key
        .iter()
        .map(|k| {
            let text = spec
                .columns
                .iter()
                .any(|(c, t)| c == k && *t == ColumnType::Text);
            if text && postgres {
                format!("{k} COLLATE \"C\"")
            } else {
                (*k).to_string()
            }
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        spec.name,
        order.join(", ")
    )
}

/// An open transaction on whichever backend the store uses; dropped without
/// [`Tx::commit`], it rolls back.
enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    async fn commit(self) -> Result<(), TransferError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// One read transaction over a consistent snapshot of the database: SQLite's read
/// transaction sees the database as of its first read while writers go on (WAL);
/// PostgreSQL's is REPEATABLE READ.
pub(super) struct SnapshotReader(Tx);

impl SnapshotReader {
    /// Opens the snapshot.
    pub(super) async fn begin(store: &Store) -> Result<SnapshotReader, TransferError> {
        Ok(SnapshotReader(match &store.backend {
            Backend::Sqlite { read, .. } => Tx::Sqlite(read.begin().await?),
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                Tx::Postgres(tx)
            }
        }))
    }

    /// The last migration applied as of the snapshot (0 when none is).
    pub(super) async fn schema_version(&mut self) -> Result<i64, TransferError> {
        let v: Option<i64> = match &mut self.0 {
            Tx::Sqlite(tx) => {
                sqlx::query_scalar(SCHEMA_VERSION)
                    .fetch_one(&mut **tx)
                    .await?
            }
            Tx::Postgres(tx) => {
                sqlx::query_scalar(SCHEMA_VERSION)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        Ok(v.unwrap_or(0))
    }

    /// Every row of one table as cells, in key order, streamed.
    pub(super) fn rows<'a>(
        &'a mut self,
        spec: &'a TableSpec,
    ) -> impl Stream<Item = Result<Vec<Cell>, TransferError>> + 'a {
        match &mut self.0 {
            Tx::Sqlite(tx) => Either::Left(
                sqlx::query(sqlx::AssertSqlSafe(select_sql(spec, false)))
                    .fetch(&mut **tx)
                    .map(move |row| Ok(sqlite_cells(&row?, spec)?)),
            ),
            Tx::Postgres(tx) => Either::Right(
                sqlx::query(sqlx::AssertSqlSafe(select_sql(spec, true)))
                    .fetch(&mut **tx)
                    .map(move |row| Ok(pg_cells(&row?, spec)?)),
            ),
        }
    }

    /// Ends the snapshot.
    pub(super) async fn finish(self) -> Result<(), TransferError> {
        self.0.commit().await
    }
}

/// A multi-row INSERT. PostgreSQL takes numbered parameters; SQLite gets anonymous `?`
/// ones, because it resolves every numbered parameter by a linear search of the statement's
/// parameter names, which made binding a 3,500-parameter batch quadratic.
fn insert_sql(spec: &TableSpec, rows: usize, numbered: bool) -> String {
    let cols: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    let n = cols.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=n)
                .map(|i| {
                    if numbered {
                        format!("${}", r * n + i)
                    } else {
                        "?".to_string()
                    }
                })
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        spec.name,
        cols.join(", "),
        values.join(", ")
    )
}

/// Inserts the rows of one table in one statement, draining them.
macro_rules! insert_batch {
    ($tx:expr, $spec:expr, $rows:expr, $postgres:expr) => {{
        let sql = insert_sql($spec, $rows.len(), $postgres);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in $rows.drain(..) {
            for cell in row {
                q = match cell {
                    Cell::Int(v) => q.bind(v),
                    Cell::Bool(v) => q.bind(v),
                    Cell::Float(v) => q.bind(v),
                    Cell::Text(v) => q.bind(v),
                    Cell::Bytes(v) => q.bind(v),
                };
            }
        }
        q.execute(&mut **$tx).await?;
    }};
}

/// One write transaction that loads tables with their ids preserved; nothing of it is kept
/// unless [`TableLoader::finish`] is reached.
pub(super) struct TableLoader(Tx);

impl TableLoader {
    /// Opens the transaction (`BEGIN IMMEDIATE` on SQLite, so other writers wait).
    pub(super) async fn begin(store: &Store) -> Result<TableLoader, TransferError> {
        Ok(TableLoader(match &store.backend {
            Backend::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        }))
    }

    /// Inserts `rows` of one table in one statement and empties the list; nothing when empty.
    pub(super) async fn insert(
        &mut self,
        spec: &TableSpec,
        rows: &mut Vec<Vec<Cell>>,
    ) -> Result<(), TransferError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &mut self.0 {
            Tx::Sqlite(tx) => insert_batch!(tx, spec, rows, false),
            Tx::Postgres(tx) => insert_batch!(tx, spec, rows, true),
        }
        Ok(())
    }

    /// After a table is loaded, moves its id sequence (PostgreSQL identity) past the largest
    /// id, so new rows do not collide with imported ones. SQLite needs nothing.
    pub(super) async fn renumber(&mut self, spec: &TableSpec) -> Result<(), TransferError> {
        if let Tx::Postgres(tx) = &mut self.0
            && let Some(col) = spec.identity()
        {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{t}', '{col}'), COALESCE(MAX({col}), 0) + 1, false) FROM {t}",
                t = spec.name
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Commits everything loaded.
    pub(super) async fn finish(self) -> Result<(), TransferError> {
        self.0.commit().await
    }
}

/// A row whose foreign key points at no row.
pub(super) struct BrokenReference {
    /// The referring table.
    pub(super) table: String,
    /// The referring row's rowid, when it has one.
    pub(super) rowid: Option<i64>,
    /// The table it refers to.
    pub(super) parent: String,
}

/// What SQLite's own checks report: every line of its page-level check (`ok` when sound)
/// and every row whose foreign key points nowhere. PostgreSQL enforces both as it writes,
/// so it reports nothing.
pub(super) async fn engine_checks(
    store: &Store,
) -> Result<(Vec<String>, Vec<BrokenReference>), TransferError> {
    let Backend::Sqlite { read: pool, .. } = &store.backend else {
        return Ok((Vec::new(), Vec::new()));
    };
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(pool)
        .await?;
    let fks: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
            .fetch_all(pool)
            .await?;
    let broken = fks
        .into_iter()
        .map(|(table, rowid, parent)| BrokenReference {
            table,
            rowid,
            parent,
        })
        .collect();
    Ok((integrity, broken))
}

/// A file of a committed artifact version whose content the `blobs` table does not record.
pub(super) struct UnrecordedContent {
    /// The artifact version.
    pub(super) version_id: i64,
    /// The file's path in it.
    pub(super) path: String,
    /// The content's digest.
    pub(super) digest: String,
}

/// Blob references the schema cannot enforce: committed artifact entries need their bytes.
/// Reads `artifact_entries`, `artifact_versions` (owned by artifacts) and `blobs` (owned by
/// blobs).
pub(super) async fn unrecorded_contents(
    store: &Store,
) -> Result<Vec<UnrecordedContent>, TransferError> {
    let missing: Vec<(i64, String, String)> = on_backend!(store, read, |pool| {
        sqlx::query_as(
            "SELECT e.version_id, e.path, e.digest FROM artifact_entries e \
             JOIN artifact_versions v ON v.id = e.version_id \
             WHERE e.digest IS NOT NULL AND v.state = 'committed' \
             AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = e.digest) \
             ORDER BY e.version_id, e.path",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(missing
        .into_iter()
        .map(|(version_id, path, digest)| UnrecordedContent {
            version_id,
            path,
            digest,
        })
        .collect())
}

/// `(digest, size)` of every blob the `blobs` table records (owned by blobs), by digest.
pub(super) async fn recorded_blobs(store: &Store) -> Result<Vec<(String, i64)>, TransferError> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT digest, size FROM blobs ORDER BY digest")
            .fetch_all(pool)
            .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_number_every_parameter() {
        let spec = TABLES.iter().find(|t| t.name == "run_tags").unwrap();
        assert_eq!(
            insert_sql(spec, 2, true),
            "INSERT INTO run_tags (run_pk, tag, position) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(
            insert_sql(spec, 2, false),
            "INSERT INTO run_tags (run_pk, tag, position) VALUES (?, ?, ?), (?, ?, ?)"
        );
    }

    #[test]
    fn text_keys_sort_by_bytes_on_postgres() {
        let spec = TABLES.iter().find(|t| t.name == "run_tags").unwrap();
        assert_eq!(
            select_sql(spec, true),
            "SELECT run_pk, tag, position FROM run_tags ORDER BY run_pk, tag COLLATE \"C\""
        );
        assert_eq!(
            select_sql(spec, false),
            "SELECT run_pk, tag, position FROM run_tags ORDER BY run_pk, tag"
        );
    }
}
