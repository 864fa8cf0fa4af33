//! Storage of artifacts: the `artifacts`, `artifact_versions`, `artifact_entries` (manifests),
//! `artifact_aliases` and `artifact_usage` (lineage) tables. This is the only place the
//! artifacts' SQL lives; the service calls these functions and gets typed rows back.

use std::collections::{BTreeSet, HashMap};

use sqlx::Row;
use wanllmdb_api_types::ProjectName;
use wanllmdb_api_types::artifacts::{ArtifactAlias, ArtifactFile, LineageRun};

use super::Entry;
use crate::error::ApiResult;
use crate::store::{BackendKind, Store, checked, format_time};
use crate::{on_backend, with_tx};

const ARTIFACT_SELECT: &str = "SELECT a.id, a.project_id, p.name AS project, a.name, a.kind, a.description, \
     a.metadata, a.tags, u.username AS created_by, a.created_at, a.updated_at, \
     (SELECT COUNT(*) FROM artifact_versions v WHERE v.artifact_id = a.id AND v.state = 'committed') AS version_count, \
     (SELECT MAX(v.version) FROM artifact_versions v WHERE v.artifact_id = a.id AND v.state = 'committed') AS latest \
     FROM artifacts a JOIN projects p ON p.id = a.project_id LEFT JOIN users u ON u.id = a.created_by";

const VERSION_SELECT: &str = "SELECT v.id, v.artifact_id, a.project_id, a.name AS artifact, p.name AS project, a.kind, \
     v.version, v.state, v.digest, v.description, v.metadata, r.id AS run, v.file_count, v.total_size, \
     u.username AS created_by, v.created_at \
     FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id JOIN projects p ON p.id = a.project_id \
     LEFT JOIN runs r ON r.pk = v.run_pk LEFT JOIN users u ON u.id = v.created_by";

/// Points an alias at a version (moving it): artifact, alias, version, user, time.
const POINT_ALIAS_SQL: &str = "INSERT INTO artifact_aliases (artifact_id, alias, version_id, updated_by, updated_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (artifact_id, alias) DO UPDATE SET \
     version_id = excluded.version_id, updated_by = excluded.updated_by, updated_at = excluded.updated_at";

/// Most ids bound in one `IN (…)` list.
const IDS_PER_QUERY: usize = 500;

/// An artifact as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ArtifactRow {
    pub(super) id: i64,
    #[sqlx(try_from = "String")]
    pub(super) project: ProjectName,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) description: String,
    pub(super) metadata: String,
    pub(super) tags: String,
    pub(super) created_by: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) version_count: i64,
    pub(super) latest: Option<i64>,
}

/// A version as stored, with the names of its artifact, project, run and creator.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct VersionRow {
    pub(super) id: i64,
    pub(super) artifact_id: i64,
    pub(super) project_id: i64,
    pub(super) artifact: String,
    #[sqlx(try_from = "String")]
    pub(super) project: ProjectName,
    pub(super) kind: String,
    pub(super) version: Option<i64>,
    pub(super) state: String,
    pub(super) digest: String,
    pub(super) description: String,
    pub(super) metadata: String,
    pub(super) run: Option<String>,
    pub(super) file_count: i64,
    pub(super) total_size: i64,
    pub(super) created_by: Option<String>,
    pub(super) created_at: i64,
}

/// `$first, $first+1, …`: `n` placeholders for an `IN (…)` list.
fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- artifacts ----

/// The artifact `name` of a project.
pub(super) async fn find_artifact(
    store: &Store,
    project_id: i64,
    name: &str,
) -> ApiResult<Option<ArtifactRow>> {
    let sql = format!("{ARTIFACT_SELECT} WHERE a.project_id = $1 AND a.name = $2");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ArtifactRow>(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

/// Up to `take` artifacts of a project named after `after`, by name, of one type and with one
/// tag when those are given.
pub(super) async fn artifacts_page(
    store: &Store,
    project_id: i64,
    after: &str,
    kind: Option<&str>,
    tag: Option<&str>,
    take: usize,
) -> ApiResult<Vec<ArtifactRow>> {
    // Tags are stored as a JSON array written by serde_json; the tag encoded the same way,
    // quotes included, matches exactly that element.
    let tag_pattern = tag.map(|t| {
        let quoted = serde_json::to_string(t).unwrap_or_default();
        format!(
            "%{}%",
            quoted
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let sql = format!(
        "{ARTIFACT_SELECT} WHERE a.project_id = $1 AND a.name > $2 AND ($3 = '' OR a.kind = $3) \
         AND ($4 = '' OR a.tags LIKE $4 ESCAPE '\\') ORDER BY a.name LIMIT {take}"
    );
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ArtifactRow>(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(after)
            .bind(kind.unwrap_or(""))
            .bind(tag_pattern.as_deref().unwrap_or(""))
            .fetch_all(pool)
            .await?
    }))
}

/// A new artifact's columns.
pub(super) struct NewArtifact<'a> {
    pub(super) project_id: i64,
    pub(super) name: &'a str,
    pub(super) kind: &'a str,
    pub(super) description: &'a str,
    pub(super) metadata: &'a str,
    pub(super) tags: &'a str,
    pub(super) created_by: Option<i64>,
    pub(super) now: i64,
}

/// Inserts an artifact unless its project already has one of that name; true when it did.
pub(super) async fn insert_artifact(store: &Store, a: &NewArtifact<'_>) -> ApiResult<bool> {
    const INSERT_ARTIFACTS: &str = "INSERT INTO artifacts (project_id, name, kind, description, metadata, tags, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (project_id, name) DO NOTHING";
    let done = on_backend!(store, write, |pool| {
        sqlx::query(INSERT_ARTIFACTS)
            .bind(a.project_id)
            .bind(a.name)
            .bind(a.kind)
            .bind(a.description)
            .bind(a.metadata)
            .bind(a.tags)
            .bind(a.created_by)
            .bind(a.now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(done > 0)
}

/// Sets an artifact's description, metadata (JSON) and tags (JSON list).
pub(super) async fn update_artifact(
    store: &Store,
    id: i64,
    description: &str,
    metadata: &str,
    tags: &str,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_ARTIFACTS: &str = "UPDATE artifacts SET description = $1, metadata = $2, tags = $3, updated_at = $4 WHERE id = $5";
    on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_ARTIFACTS)
            .bind(description)
            .bind(metadata)
            .bind(tags)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Deletes an artifact; its versions, entries, aliases and usage go with it (cascade).
pub(super) async fn delete_artifact(store: &Store, id: i64) -> ApiResult<()> {
    store
        .execute_with("DELETE FROM artifacts WHERE id = $1", id)
        .await?;
    Ok(())
}

// ---- versions ----

/// Versions matching `filter` (which may end in ORDER BY / LIMIT), binding `binds` as $1, $2, ….
async fn versions_where(store: &Store, filter: &str, binds: &[i64]) -> ApiResult<Vec<VersionRow>> {
    let sql = format!("{VERSION_SELECT} WHERE {filter}");
    Ok(on_backend!(store, read, |pool| {
        let mut q = sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(pool).await?
    }))
}

/// The first version matching `filter`.
async fn version_where(
    store: &Store,
    filter: &str,
    binds: &[i64],
) -> ApiResult<Option<VersionRow>> {
    Ok(versions_where(store, filter, binds)
        .await?
        .into_iter()
        .next())
}

/// A version in any state (drafts included) by id.
pub(super) async fn version_by_id(store: &Store, id: i64) -> ApiResult<Option<VersionRow>> {
    version_where(store, "v.id = $1", &[id]).await
}

/// A committed version by id.
pub(super) async fn committed_version_by_id(
    store: &Store,
    id: i64,
) -> ApiResult<Option<VersionRow>> {
    version_where(store, "v.id = $1 AND v.state = 'committed'", &[id]).await
}

/// The newest committed version of an artifact.
pub(super) async fn latest_version(
    store: &Store,
    artifact_id: i64,
) -> ApiResult<Option<VersionRow>> {
    version_where(
        store,
        "v.artifact_id = $1 AND v.state = 'committed' ORDER BY v.version DESC LIMIT 1",
        &[artifact_id],
    )
    .await
}

/// The committed version number `n` of an artifact.
pub(super) async fn numbered_version(
    store: &Store,
    artifact_id: i64,
    n: i64,
) -> ApiResult<Option<VersionRow>> {
    version_where(
        store,
        "v.artifact_id = $1 AND v.state = 'committed' AND v.version = $2",
        &[artifact_id, n],
    )
    .await
}

/// The version a custom alias of an artifact points at.
pub(super) async fn aliased_version(
    store: &Store,
    artifact_id: i64,
    alias: &str,
) -> ApiResult<Option<VersionRow>> {
    let sql = format!(
        "{VERSION_SELECT} WHERE v.id = (SELECT al.version_id FROM artifact_aliases al \
         WHERE al.artifact_id = $1 AND al.alias = $2)"
    );
    let rows: Vec<VersionRow> = on_backend!(store, read, |pool| {
        sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(sql))
            .bind(artifact_id)
            .bind(alias)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().next())
}

/// The committed versions of an artifact, newest first.
pub(super) async fn committed_versions(
    store: &Store,
    artifact_id: i64,
) -> ApiResult<Vec<VersionRow>> {
    versions_where(
        store,
        "v.artifact_id = $1 AND v.state = 'committed' ORDER BY v.version DESC",
        &[artifact_id],
    )
    .await
}

/// The committed versions among `ids`, by id.
pub(super) async fn committed_versions_in(
    store: &Store,
    ids: &[i64],
) -> ApiResult<HashMap<i64, VersionRow>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let filter = format!(
            "v.id IN ({}) AND v.state = 'committed'",
            in_list(1, chunk.len())
        );
        for r in versions_where(store, &filter, chunk).await? {
            out.insert(r.id, r);
        }
    }
    Ok(out)
}

/// The versions a run used, by artifact name and number.
pub(super) async fn versions_used_by(store: &Store, run_pk: i64) -> ApiResult<Vec<VersionRow>> {
    versions_where(
        store,
        "v.id IN (SELECT version_id FROM artifact_usage WHERE run_pk = $1) ORDER BY a.name, v.version",
        &[run_pk],
    )
    .await
}

/// The committed versions a run logged, by artifact name and number.
pub(super) async fn versions_logged_by(store: &Store, run_pk: i64) -> ApiResult<Vec<VersionRow>> {
    versions_where(
        store,
        "v.run_pk = $1 AND v.state = 'committed' ORDER BY a.name, v.version",
        &[run_pk],
    )
    .await
}

/// Number and manifest digest of the newest committed version of an artifact.
pub(super) async fn newest_number_and_digest(
    store: &Store,
    artifact_id: i64,
) -> ApiResult<Option<(i64, String)>> {
    const SELECT_ARTIFACT_VERSIONS: &str = "SELECT version, digest FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
             ORDER BY version DESC LIMIT 1";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_ARTIFACT_VERSIONS)
            .bind(artifact_id)
            .fetch_optional(pool)
            .await?
    }))
}

/// A draft's columns (its entries come separately).
pub(super) struct NewDraft<'a> {
    pub(super) artifact_id: i64,
    pub(super) digest: &'a str,
    pub(super) description: &'a str,
    pub(super) metadata: &'a str,
    pub(super) run_pk: Option<i64>,
    pub(super) total_size: u64,
    /// Custom aliases to point at the version once committed, as a JSON list.
    pub(super) aliases: &'a str,
    pub(super) created_by: i64,
    pub(super) now: i64,
}

/// Inserts a pending draft and its entries in one transaction; `pending(entry)` says which
/// entries still wait for their bytes. Returns the draft's id.
pub(super) async fn insert_draft(
    store: &Store,
    draft: &NewDraft<'_>,
    entries: &[Entry],
    pending: impl Fn(&Entry) -> bool,
) -> ApiResult<i64> {
    const INSERT_ARTIFACT_VERSIONS: &str = "INSERT INTO artifact_versions (artifact_id, version, state, digest, description, metadata, run_pk, \
             file_count, total_size, pending_aliases, created_by, created_at) \
             VALUES ($1, NULL, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";
    Ok(with_tx!(store, |tx| {
        let id: i64 = sqlx::query_scalar(INSERT_ARTIFACT_VERSIONS)
            .bind(draft.artifact_id)
            .bind(draft.digest)
            .bind(draft.description)
            .bind(draft.metadata)
            .bind(draft.run_pk)
            .bind(entries.len() as i64)
            .bind(draft.total_size as i64)
            .bind(draft.aliases)
            .bind(draft.created_by)
            .bind(draft.now)
            .fetch_one(&mut *tx)
            .await?;
        for chunk in entries.chunks(200) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, {})", in_list(2 + i * 6, 6)))
                .collect();
            let sql = format!(
                "INSERT INTO artifact_entries (version_id, path, digest, size, ref_uri, ref_checksum, pending) VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
            for e in chunk {
                q = q
                    .bind(&e.path)
                    .bind(&e.digest)
                    .bind(e.size as i64)
                    .bind(&e.reference)
                    .bind(&e.checksum)
                    .bind(pending(e));
            }
            q.execute(&mut *tx).await?;
        }
        id
    }))
}

/// Sets a version's description (when given) and its metadata to `merge(stored metadata)`,
/// reading and writing in one transaction so concurrent merges do not lose keys.
pub(super) async fn update_version(
    store: &Store,
    id: i64,
    description: Option<&str>,
    merge: impl FnOnce(String) -> ApiResult<String>,
) -> ApiResult<()> {
    const UPDATE_ARTIFACT_VERSIONS: &str = "UPDATE artifact_versions SET metadata = $1, description = COALESCE($2, description) WHERE id = $3";
    let lock = match store.kind() {
        BackendKind::Postgres => " FOR UPDATE",
        BackendKind::Sqlite => "",
    };
    with_tx!(store, |tx| {
        let sql = format!("SELECT metadata FROM artifact_versions WHERE id = $1{lock}");
        let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let metadata = merge(stored)?;
        sqlx::query(UPDATE_ARTIFACT_VERSIONS)
            .bind(&metadata)
            .bind(description)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// What keeps a version from being deleted: the custom aliases pointing at it, and the
/// registered model versions (model name, number) made from it.
pub(super) async fn version_holders(
    store: &Store,
    version_id: i64,
) -> ApiResult<(Vec<String>, Vec<(String, i64)>)> {
    // `model_versions` and `registered_models` belong to the registry.
    const SELECT_MODEL_VERSIONS: &str = "SELECT m.name, mv.version FROM model_versions mv JOIN registered_models m ON m.id = mv.model_id \
             WHERE mv.artifact_version_id = $1 ORDER BY m.name, mv.version";
    Ok(on_backend!(store, read, |pool| {
        let aliases = sqlx::query_scalar(
            "SELECT alias FROM artifact_aliases WHERE version_id = $1 ORDER BY alias",
        )
        .bind(version_id)
        .fetch_all(pool)
        .await?;
        let models = sqlx::query_as(SELECT_MODEL_VERSIONS)
            .bind(version_id)
            .fetch_all(pool)
            .await?;
        (aliases, models)
    }))
}

/// Turns a version into a tombstone in one transaction: its entries and usage go, the row
/// stays so its number is never handed out again.
pub(super) async fn tombstone_version(store: &Store, id: i64) -> ApiResult<()> {
    const UPDATE_ARTIFACT_VERSIONS: &str = "UPDATE artifact_versions SET state = 'deleted', run_pk = NULL, file_count = 0, total_size = 0 WHERE id = $1";
    with_tx!(store, |tx| {
        sqlx::query("DELETE FROM artifact_entries WHERE version_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM artifact_usage WHERE version_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(UPDATE_ARTIFACT_VERSIONS)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// What committing a draft came to.
pub(super) enum Commit {
    /// No such draft of this artifact (expired, or never made).
    Missing,
    /// Content of these paths (the first few) has not arrived yet.
    Waiting(Vec<String>),
    /// The version (its id) and whether it is new: a draft equal to the newest version is
    /// dropped in favour of that version.
    Done(i64, bool),
}

/// Commits a draft in one transaction: checks its content has arrived, gives it the next
/// number (or drops it when it equals the newest version) and points its pending aliases at
/// the result. Commits of one artifact are serialised by touching the artifact's row first.
pub(super) async fn commit_draft(
    store: &Store,
    artifact_id: i64,
    draft: i64,
    user: i64,
    now: i64,
) -> ApiResult<Commit> {
    const SELECT_ARTIFACT_VERSIONS: &str = "SELECT state, digest, pending_aliases FROM artifact_versions WHERE id = $1 AND artifact_id = $2";
    const SELECT_ARTIFACT_ENTRIES: &str =
        "SELECT path FROM artifact_entries WHERE version_id = $1 AND pending ORDER BY path LIMIT 5";
    const SELECT_LATEST_COMMITTED: &str = "SELECT id, digest FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
                         ORDER BY version DESC LIMIT 1";
    const NEXT_VERSION_NUMBER: &str =
        "SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE artifact_id = $1";
    const UPDATE_ARTIFACT_VERSIONS: &str = "UPDATE artifact_versions SET version = $1, state = 'committed', created_at = $2 WHERE id = $3";
    Ok(with_tx!(store, |tx| {
        // Serialises commits of one artifact (a row lock on PostgreSQL; SQLite has one writer).
        sqlx::query("UPDATE artifacts SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(artifact_id)
            .execute(&mut *tx)
            .await?;
        let row: Option<(String, String, String)> = sqlx::query_as(SELECT_ARTIFACT_VERSIONS)
            .bind(draft)
            .bind(artifact_id)
            .fetch_optional(&mut *tx)
            .await?;
        match row {
            None => Commit::Missing,
            Some((state, _, _)) if state == "committed" => Commit::Done(draft, false),
            Some((_, digest, aliases)) => {
                let waiting: Vec<String> = sqlx::query_scalar(SELECT_ARTIFACT_ENTRIES)
                    .bind(draft)
                    .fetch_all(&mut *tx)
                    .await?;
                if !waiting.is_empty() {
                    Commit::Waiting(waiting)
                } else {
                    let latest: Option<(i64, String)> = sqlx::query_as(SELECT_LATEST_COMMITTED)
                        .bind(artifact_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let target = match latest {
                        Some((id, d)) if d == digest => {
                            sqlx::query("DELETE FROM artifact_versions WHERE id = $1")
                                .bind(draft)
                                .execute(&mut *tx)
                                .await?;
                            Commit::Done(id, false)
                        }
                        _ => {
                            let next: i64 = sqlx::query_scalar(NEXT_VERSION_NUMBER)
                                .bind(artifact_id)
                                .fetch_one(&mut *tx)
                                .await?;
                            sqlx::query(UPDATE_ARTIFACT_VERSIONS)
                                .bind(next)
                                .bind(now)
                                .bind(draft)
                                .execute(&mut *tx)
                                .await?;
                            Commit::Done(draft, true)
                        }
                    };
                    if let Commit::Done(id, _) = &target {
                        let list: Vec<String> = serde_json::from_str(&aliases).unwrap_or_default();
                        for a in list {
                            sqlx::query(POINT_ALIAS_SQL)
                                .bind(artifact_id)
                                .bind(&a)
                                .bind(*id)
                                .bind(user)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    target
                }
            }
        }
    }))
}

// ---- files ----

/// The entries of a version by path, or only the one at `path`.
pub(super) async fn entries(
    store: &Store,
    version_id: i64,
    path: Option<&str>,
) -> ApiResult<Vec<ArtifactFile>> {
    const SELECT_ARTIFACT_ENTRIES: &str = "SELECT e.path, e.digest, e.size, e.ref_uri, e.ref_checksum, b.md5 FROM artifact_entries e \
             LEFT JOIN blobs b ON b.digest = e.digest WHERE e.version_id = $1 AND ($2 IS NULL OR e.path = $2) \
             ORDER BY e.path";
    Ok(on_backend!(store, read, |pool| {
        let mut out = Vec::new();
        for r in sqlx::query(SELECT_ARTIFACT_ENTRIES)
            .bind(version_id)
            .bind(path)
            .fetch_all(pool)
            .await?
        {
            let size: i64 = r.try_get("size")?;
            out.push(ArtifactFile {
                path: r.try_get("path")?,
                sha256: r.try_get("digest")?,
                md5: r
                    .try_get::<Option<String>, _>("md5")?
                    .filter(|m| !m.is_empty()),
                size: size as u64,
                reference: r.try_get("ref_uri")?,
                checksum: r.try_get("ref_checksum")?,
                download_url: None,
            });
        }
        out
    }))
}

// ---- aliases ----

/// The id of the newest committed version of an artifact (where `latest` points).
pub(super) async fn latest_version_id(store: &Store, artifact_id: i64) -> ApiResult<Option<i64>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar(
            "SELECT id FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(artifact_id)
        .fetch_optional(pool)
        .await?
    }))
}

/// The custom aliases of an artifact as (version id, alias), by alias.
pub(super) async fn alias_targets(
    store: &Store,
    artifact_id: i64,
) -> ApiResult<Vec<(i64, String)>> {
    const SELECT_ARTIFACT_ALIASES: &str =
        "SELECT version_id, alias FROM artifact_aliases WHERE artifact_id = $1 ORDER BY alias";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_ARTIFACT_ALIASES)
            .bind(artifact_id)
            .fetch_all(pool)
            .await?
    }))
}

/// The custom aliases of an artifact with their versions and who last moved them, by alias.
pub(super) async fn custom_aliases(
    store: &Store,
    artifact_id: i64,
) -> ApiResult<Vec<ArtifactAlias>> {
    const SELECT_ARTIFACT_ALIASES: &str = "SELECT al.alias, v.version, u.username, al.updated_at FROM artifact_aliases al \
             JOIN artifact_versions v ON v.id = al.version_id LEFT JOIN users u ON u.id = al.updated_by \
             WHERE al.artifact_id = $1 ORDER BY al.alias";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query(SELECT_ARTIFACT_ALIASES)
            .bind(artifact_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| -> Result<ArtifactAlias, sqlx::Error> {
                let v: i64 = r.try_get("version")?;
                Ok(ArtifactAlias {
                    alias: r.try_get("alias")?,
                    version: format!("v{v}"),
                    updated_by: r.try_get("username")?,
                    updated_at: format_time(r.try_get("updated_at")?),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    }))
}

/// Points custom aliases of an artifact at a version in one transaction, moving those that
/// pointed elsewhere.
pub(super) async fn point_aliases(
    store: &Store,
    artifact_id: i64,
    version_id: i64,
    aliases: &BTreeSet<&String>,
    user: i64,
    now: i64,
) -> ApiResult<()> {
    if aliases.is_empty() {
        return Ok(());
    }
    with_tx!(store, |tx| {
        for a in aliases {
            sqlx::query(POINT_ALIAS_SQL)
                .bind(artifact_id)
                .bind(*a)
                .bind(version_id)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
    });
    Ok(())
}

/// Removes a custom alias; false when the artifact had no such alias.
pub(super) async fn delete_alias(store: &Store, artifact_id: i64, alias: &str) -> ApiResult<bool> {
    let n = on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM artifact_aliases WHERE artifact_id = $1 AND alias = $2")
            .bind(artifact_id)
            .bind(alias)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n > 0)
}

// ---- lineage ----

/// Records that a run used a version (once; again is a no-op).
pub(super) async fn insert_usage(
    store: &Store,
    version_id: i64,
    run_pk: i64,
    now: i64,
) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query(
            "INSERT INTO artifact_usage (version_id, run_pk, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (version_id, run_pk) DO NOTHING",
        )
        .bind(version_id)
        .bind(run_pk)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Runs `sql`, whose `{ids}` stands for an `IN` list, over `ids` in chunks; two ids a row.
async fn id_pairs(store: &Store, sql: &str, ids: &[i64]) -> ApiResult<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let q = sql.replace("{ids}", &in_list(1, chunk.len()));
        let rows: Vec<(i64, i64)> = on_backend!(store, read, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(q));
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await?
        });
        out.extend(rows);
    }
    Ok(out)
}

/// (version id, run pk) of the run that logged each of the versions, where one did.
pub(super) async fn producers_of(store: &Store, version_ids: &[i64]) -> ApiResult<Vec<(i64, i64)>> {
    id_pairs(
        store,
        "SELECT id, run_pk FROM artifact_versions WHERE run_pk IS NOT NULL AND id IN ({ids})",
        version_ids,
    )
    .await
}

/// (version id, run pk) for each run that used one of the versions.
pub(super) async fn users_of(store: &Store, version_ids: &[i64]) -> ApiResult<Vec<(i64, i64)>> {
    id_pairs(
        store,
        "SELECT version_id, run_pk FROM artifact_usage WHERE version_id IN ({ids})",
        version_ids,
    )
    .await
}

/// (run pk, version id) for each version one of the runs used.
pub(super) async fn inputs_of(store: &Store, run_pks: &[i64]) -> ApiResult<Vec<(i64, i64)>> {
    id_pairs(
        store,
        "SELECT run_pk, version_id FROM artifact_usage WHERE run_pk IN ({ids})",
        run_pks,
    )
    .await
}

/// (run pk, version id) for each committed version one of the runs logged.
pub(super) async fn outputs_of(store: &Store, run_pks: &[i64]) -> ApiResult<Vec<(i64, i64)>> {
    id_pairs(
        store,
        "SELECT run_pk, id FROM artifact_versions WHERE state = 'committed' AND run_pk IN ({ids})",
        run_pks,
    )
    .await
}

/// Each of the runs by pk, with its project id, as a lineage graph shows it.
pub(super) async fn lineage_runs(
    store: &Store,
    pks: &[i64],
) -> ApiResult<HashMap<i64, (i64, LineageRun)>> {
    let mut out = HashMap::new();
    for chunk in pks.chunks(IDS_PER_QUERY) {
        // `runs` belongs to the runs feature, `projects` to projects.
        let sql = format!(
            "SELECT r.pk, r.project_id, r.id, r.name, r.state, p.name AS project FROM runs r \
             JOIN projects p ON p.id = r.project_id WHERE r.pk IN ({})",
            in_list(1, chunk.len())
        );
        let rows = on_backend!(store, read, |pool| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            let mut v = Vec::new();
            for r in q.fetch_all(pool).await? {
                v.push((
                    r.try_get::<i64, _>("pk")?,
                    r.try_get::<i64, _>("project_id")?,
                    LineageRun {
                        id: checked(&r, "id")?,
                        name: r.try_get("name")?,
                        project: checked(&r, "project")?,
                        state: r.try_get("state")?,
                    },
                ));
            }
            v
        });
        for (pk, pid, run) in rows {
            out.insert(pk, (pid, run));
        }
    }
    Ok(out)
}
