//! Storage of run files: owns the `run_files` table (which content each path of a run holds),
//! the `staged_uploads` table (name-first uploads waiting to be registered) and the `blobs`
//! rows the files feature writes (which content the server holds, its size and MD5, and when
//! an upload last touched it). It is the only place the files feature's SQL lives.

use wanllmdb_api_types::files::RunFile;

use crate::blobs::ReadBack;
use crate::error::ApiResult;
use crate::store::{Store, format_time};
use crate::{on_backend, with_tx};

/// Attaches (or re-points) a file of a run: run_pk, path, digest, user, time.
const ATTACH_SQL: &str = "INSERT INTO run_files (run_pk, path, digest, created_by, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (run_pk, path) DO UPDATE SET digest = excluded.digest, \
     created_by = excluded.created_by, created_at = excluded.created_at";

/// Records a blob whose bytes have just been stored (or refreshes its time): digest, size,
/// md5, time.
const INSERT_BLOB_SQL: &str = "INSERT INTO blobs (digest, size, md5, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at";

/// A run file's columns, as [`FileRow`] reads them.
const FILE_SELECT: &str = "SELECT rf.path, rf.digest, b.size, b.md5, rf.created_at, u.username FROM run_files rf \
     JOIN blobs b ON b.digest = rf.digest LEFT JOIN users u ON u.id = rf.created_by";

/// Most values bound in one `IN (...)` list.
const MAX_LIST: usize = 500;

/// Runs [`ATTACH_SQL`] with `$tx` inside `with_tx!`.
macro_rules! attach_file {
    ($tx:ident, $run_pk:expr, $path:expr, $digest:expr, $user:expr, $now:expr) => {
        sqlx::query(ATTACH_SQL)
            .bind($run_pk)
            .bind($path)
            .bind($digest)
            .bind($user)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

/// Runs [`INSERT_BLOB_SQL`] with `$tx` inside `with_tx!`.
macro_rules! insert_blob {
    ($tx:ident, $digest:expr, $size:expr, $md5:expr, $now:expr) => {
        sqlx::query(INSERT_BLOB_SQL)
            .bind($digest)
            .bind($size as i64)
            .bind($md5)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

/// A run file as stored, with its blob's size and MD5 and its uploader's name.
#[derive(sqlx::FromRow)]
struct FileRow {
    path: String,
    digest: String,
    size: i64,
    md5: String,
    created_at: i64,
    username: Option<String>,
}

impl FileRow {
    fn into_file(self) -> RunFile {
        RunFile {
            path: self.path,
            sha256: self.digest,
            md5: self.md5,
            size: self.size as u64,
            created_at: format_time(self.created_at),
            created_by: self.username,
            download_url: None,
        }
    }
}

/// Where a verified upload goes besides its blob row.
pub(super) enum Destination<'a> {
    /// Attached to a run at a path, by a user.
    RunFile {
        run_pk: i64,
        path: &'a str,
        user: i64,
    },
    /// Content of the artifact draft with this version id.
    Draft(i64),
    /// Nowhere (the URL named neither).
    Nowhere,
}

/// A verified upload to record.
pub(super) struct Upload<'a> {
    pub digest: &'a str,
    pub size: u64,
    pub md5: &'a str,
    pub into: Destination<'a>,
}

/// A staged upload as stored.
pub(super) struct Staged {
    pub id: String,
    pub staging_key: Option<String>,
    /// What arrived, once the bytes were put (local storage only).
    pub received: Option<ReadBack>,
}

/// A name-first upload URL being handed out.
pub(super) struct NewStaged<'a> {
    pub id: &'a str,
    pub run_pk: i64,
    pub path: &'a str,
    pub staging_key: Option<&'a str>,
    pub user: i64,
    pub now: i64,
    pub expires_at: i64,
}

/// Which of `digests` (each at most once) are content of the project, through a run file or
/// a committed artifact version, with their sizes.
pub(super) async fn held_by_project(
    store: &Store,
    project_id: i64,
    digests: &[&str],
) -> ApiResult<Vec<(String, i64)>> {
    let mut held = Vec::new();
    for chunk in digests.chunks(MAX_LIST) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        // `runs` belongs to the runs feature; `artifact_entries`, `artifact_versions` and
        // `artifacts` to the artifacts feature.
        let sql = format!(
            "SELECT b.digest, b.size FROM blobs b WHERE b.digest IN ({}) AND (\
             EXISTS (SELECT 1 FROM run_files rf JOIN runs r ON r.pk = rf.run_pk \
                     WHERE rf.digest = b.digest AND r.project_id = $1) \
             OR EXISTS (SELECT 1 FROM artifact_entries e JOIN artifact_versions v ON v.id = e.version_id \
                     JOIN artifacts a ON a.id = v.artifact_id \
                     WHERE e.digest = b.digest AND a.project_id = $1 AND v.state = 'committed'))",
            marks.join(", ")
        );
        let rows: Vec<(String, i64)> = on_backend!(store, read, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for d in chunk {
                q = q.bind(*d);
            }
            q.fetch_all(pool).await?
        });
        held.extend(rows);
    }
    Ok(held)
}

/// Attaches files (path, digest) to a run in one transaction.
pub(super) async fn attach_files(
    store: &Store,
    run_pk: i64,
    files: &[(String, String)],
    user: i64,
    now: i64,
) -> ApiResult<()> {
    with_tx!(store, |tx| {
        for (path, digest) in files {
            attach_file!(tx, run_pk, path, digest, user, now);
        }
    });
    Ok(())
}

/// Records verified uploads in one transaction: each blob row, and the run file attached (to
/// a run that still exists) or the draft's entries no longer pending. Per upload, whether its
/// run or draft was still there.
pub(super) async fn record_uploads(
    store: &Store,
    uploads: &[Upload<'_>],
    now: i64,
) -> ApiResult<Vec<bool>> {
    // `runs` belongs to the runs feature, `artifact_entries` to the artifacts feature.
    const SELECT_RUNS: &str = "SELECT pk FROM runs WHERE pk = $1";
    const UPDATE_ARTIFACT_ENTRIES: &str = "UPDATE artifact_entries SET pending = FALSE WHERE version_id = $1 AND digest = $2 AND size = $3";
    let done: Vec<bool> = with_tx!(store, |tx| {
        let mut done = Vec::with_capacity(uploads.len());
        for u in uploads {
            insert_blob!(tx, u.digest, u.size, u.md5, now);
            let ok = match u.into {
                Destination::RunFile { run_pk, path, user } => {
                    let run: Option<i64> = sqlx::query_scalar(SELECT_RUNS)
                        .bind(run_pk)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if run.is_some() {
                        attach_file!(tx, run_pk, path, u.digest, user, now);
                    }
                    run.is_some()
                }
                Destination::Draft(draft) => {
                    sqlx::query(UPDATE_ARTIFACT_ENTRIES)
                        .bind(draft)
                        .bind(u.digest)
                        .bind(u.size as i64)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        > 0
                }
                Destination::Nowhere => false,
            };
            done.push(ok);
        }
        done
    });
    Ok(done)
}

/// Marks blobs as touched at `now`, so garbage collection leaves them alone for an upload's
/// lifetime.
pub(super) async fn touch_blobs(store: &Store, digests: &[&str], now: i64) -> ApiResult<()> {
    for chunk in digests.chunks(MAX_LIST) {
        let sql = format!(
            "UPDATE blobs SET created_at = $1 WHERE digest IN ({})",
            (0..chunk.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_backend!(store, write, |pool| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for d in chunk {
                q = q.bind(*d);
            }
            q.execute(pool).await?;
        });
    }
    Ok(())
}

/// Deletes artifact drafts created before `cutoff` that were never committed.
pub(super) async fn delete_expired_drafts(store: &Store, cutoff: i64) -> ApiResult<()> {
    // `artifact_versions` belongs to the artifacts feature.
    store
        .execute_with(
            "DELETE FROM artifact_versions WHERE state = 'pending' AND created_at < $1",
            cutoff,
        )
        .await?;
    Ok(())
}

/// Blobs untouched since `cutoff` that no run file, committed artifact version or draft
/// younger than `cutoff` refers to, by digest, with their sizes.
pub(super) async fn unreferenced_blobs(
    store: &Store,
    cutoff: i64,
) -> ApiResult<Vec<(String, i64)>> {
    // `artifact_entries` and `artifact_versions` belong to the artifacts feature.
    const SELECT_BLOBS: &str = "SELECT b.digest, b.size FROM blobs b WHERE b.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM run_files rf WHERE rf.digest = b.digest) \
                 AND NOT EXISTS (SELECT 1 FROM artifact_entries e JOIN artifact_versions v ON v.id = e.version_id \
                     WHERE e.digest = b.digest AND (v.state = 'committed' OR v.created_at >= $1)) \
                 ORDER BY b.digest";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_BLOBS)
            .bind(cutoff)
            .fetch_all(pool)
            .await?
    }))
}

/// Deletes a blob's row if it is still untouched since `cutoff` and nothing refers to it;
/// whether it was deleted.
pub(super) async fn delete_unreferenced_blob(
    store: &Store,
    digest: &str,
    cutoff: i64,
) -> ApiResult<bool> {
    // `artifact_entries` belongs to the artifacts feature.
    let deleted = on_backend!(store, write, |pool| {
        sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 AND created_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM run_files rf WHERE rf.digest = $1) \
             AND NOT EXISTS (SELECT 1 FROM artifact_entries e WHERE e.digest = $1)",
        )
        .bind(digest)
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(deleted > 0)
}

/// Files of a run, by path.
pub(super) async fn run_files(store: &Store, run_pk: i64) -> ApiResult<Vec<RunFile>> {
    let rows: Vec<FileRow> = on_backend!(store, read, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{FILE_SELECT} WHERE rf.run_pk = $1 ORDER BY rf.path"
        )))
        .bind(run_pk)
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(FileRow::into_file).collect())
}

/// The file of a run at `path`, if any.
pub(super) async fn run_file(store: &Store, run_pk: i64, path: &str) -> ApiResult<Option<RunFile>> {
    let row: Option<FileRow> = on_backend!(store, read, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{FILE_SELECT} WHERE rf.run_pk = $1 AND rf.path = $2"
        )))
        .bind(run_pk)
        .bind(path)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(FileRow::into_file))
}

/// Detaches the file of a run at `path`; whether there was one.
pub(super) async fn detach_file(store: &Store, run_pk: i64, path: &str) -> ApiResult<bool> {
    let n = on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM run_files WHERE run_pk = $1 AND path = $2")
            .bind(run_pk)
            .bind(path)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n > 0)
}

/// Records a name-first upload URL handed out.
pub(super) async fn insert_staged(store: &Store, s: &NewStaged<'_>) -> ApiResult<()> {
    const INSERT_STAGED_UPLOADS: &str = "INSERT INTO staged_uploads (id, run_pk, path, staging_key, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_STAGED_UPLOADS)
            .bind(s.id)
            .bind(s.run_pk)
            .bind(s.path)
            .bind(s.staging_key)
            .bind(s.user)
            .bind(s.now)
            .bind(s.expires_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The path a staged upload is for, while it waits to be registered.
pub(super) async fn staged_path(store: &Store, id: &str) -> ApiResult<Option<String>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar("SELECT path FROM staged_uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// Records bytes put to a staged upload: the blob row and what the upload received, in one
/// transaction.
pub(super) async fn record_staged_bytes(
    store: &Store,
    id: &str,
    got: &ReadBack,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_STAGED_UPLOADS: &str = "UPDATE staged_uploads SET digest = $1, size = $2, md5 = $3, uploaded_at = $4 WHERE id = $5";
    with_tx!(store, |tx| {
        insert_blob!(tx, &got.sha256, got.size, &got.md5, now);
        sqlx::query(UPDATE_STAGED_UPLOADS)
            .bind(&got.sha256)
            .bind(got.size as i64)
            .bind(&got.md5)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// The newest staged upload of a path of a run still valid at `now`.
pub(super) async fn latest_staged(
    store: &Store,
    run_pk: i64,
    path: &str,
    now: i64,
) -> ApiResult<Option<Staged>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        staging_key: Option<String>,
        digest: Option<String>,
        size: Option<i64>,
        md5: Option<String>,
    }
    let row: Option<Row> = on_backend!(store, read, |pool| {
        sqlx::query_as(
            "SELECT id, staging_key, digest, size, md5 FROM staged_uploads
                 WHERE run_pk = $1 AND path = $2 AND expires_at > $3
                 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(run_pk)
        .bind(path)
        .bind(now)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|r| Staged {
        id: r.id,
        staging_key: r.staging_key,
        received: match (r.digest, r.size, r.md5) {
            (Some(sha256), Some(size), Some(md5)) => Some(ReadBack {
                sha256,
                md5,
                size: size as u64,
            }),
            _ => None,
        },
    }))
}

/// Records the blob, attaches the file and retires the path's staged uploads up to this one,
/// in one transaction.
pub(super) async fn attach_staged(
    store: &Store,
    run_pk: i64,
    path: &str,
    staged_id: &str,
    got: &ReadBack,
    user: i64,
    now: i64,
) -> ApiResult<()> {
    with_tx!(store, |tx| {
        insert_blob!(tx, &got.sha256, got.size, &got.md5, now);
        attach_file!(tx, run_pk, path, &got.sha256, user, now);
        sqlx::query(
            "DELETE FROM staged_uploads WHERE run_pk = $1 AND path = $2
                 AND created_at <= (SELECT created_at FROM staged_uploads WHERE id = $3)",
        )
        .bind(run_pk)
        .bind(path)
        .bind(staged_id)
        .execute(&mut *tx)
        .await?;
    });
    Ok(())
}

/// Blobs acknowledged without their MD5 (it is computed after the upload answered; the empty
/// string marks it as pending).
pub(super) async fn blobs_without_md5(store: &Store) -> ApiResult<Vec<String>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar("SELECT digest FROM blobs WHERE md5 = ''")
            .fetch_all(pool)
            .await?
    }))
}

/// Records the MD5 of a blob acknowledged without it.
pub(super) async fn record_md5(store: &Store, digest: &str, md5: &str) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("UPDATE blobs SET md5 = $1 WHERE digest = $2 AND md5 = ''")
            .bind(md5)
            .bind(digest)
            .execute(pool)
            .await?;
    });
    Ok(())
}
