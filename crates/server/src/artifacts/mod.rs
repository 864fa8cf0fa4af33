//! Artifacts: named, typed, versioned manifests over the content-addressed blob store.
//!
//! Creating a version sends the whole manifest. The server answers which content the project
//! lacks, with signed upload URLs; the version stays a pending draft until those bytes have
//! arrived and the client commits it, then it gets the next number and never changes. A
//! manifest equal to the latest version's makes no new version. `latest` and `vN` are
//! computed; custom aliases are stored and movable. Lineage: the run that logged a version
//! (`artifact_versions.run_pk`) and the runs that used it (`artifact_usage`).
//!
//! This file holds the artifacts themselves and what the parts share (rows, checks, lookups);
//! `versions.rs`, `files.rs`, `aliases.rs` and `lineage.rs` add the rest of [`Artifacts`].

mod aliases;
mod files;
mod lineage;
pub mod refs;
pub mod routes;
mod versions;

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::Row;
use wanllmdb_api_types::Page;
use wanllmdb_api_types::artifacts::{
    Artifact, ArtifactAlias, ArtifactFile, ArtifactVersion, BlobUpload, CreateArtifactRequest,
    CreateVersionRequest, CreateVersionResponse, Lineage, LineageEdge, LineageNode, LineageRun,
    MAX_ENTRIES, ManifestItem, RunArtifacts, SetAliasRequest, UpdateArtifactRequest,
    UpdateVersionRequest, VersionState, is_valid_artifact_name, is_valid_word, manifest_digest,
    parse_version_number,
};
use wanllmdb_api_types::files::{is_sha256_hex, normalize_path};

use crate::app::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientInfo;
use crate::files::{download_url, draft_upload_url, project_holds};
use crate::paging;
use crate::projects::{ProjectAccess, Projects};
use crate::runs::Runs;
use crate::store::{format_time, now_us};
use crate::tags;
use crate::{on_backend, with_tx};

/// Longest description.
const MAX_DESCRIPTION: usize = 16 * 1024;
/// Longest reference checksum.
const MAX_CHECKSUM: usize = 256;
/// Most distinct hosts (or buckets) the references of one version may name; each https host
/// is resolved when the version is created.
const MAX_REFERENCE_HOSTS: usize = 100;
/// Most hops a lineage query follows in each direction.
const MAX_DEPTH: u32 = 20;
/// Most nodes in one lineage answer.
const MAX_NODES: usize = 1000;

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

/// An artifact as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ArtifactRow {
    id: i64,
    project: String,
    name: String,
    kind: String,
    description: String,
    metadata: String,
    tags: String,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    version_count: i64,
    latest: Option<i64>,
}

impl ArtifactRow {
    fn into_api(self) -> Artifact {
        Artifact {
            name: self.name,
            project: self.project,
            kind: self.kind,
            description: self.description,
            metadata: serde_json::from_str(&self.metadata)
                .unwrap_or_else(|_| serde_json::json!({})),
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            version_count: self.version_count,
            latest_version: self.latest.map(|n| format!("v{n}")),
            created_by: self.created_by,
            created_at: format_time(self.created_at),
            updated_at: format_time(self.updated_at),
        }
    }
}

/// A version as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct VersionRow {
    id: i64,
    artifact_id: i64,
    project_id: i64,
    artifact: String,
    project: String,
    kind: String,
    version: Option<i64>,
    state: String,
    digest: String,
    description: String,
    metadata: String,
    run: Option<String>,
    file_count: i64,
    total_size: i64,
    created_by: Option<String>,
    created_at: i64,
}

impl VersionRow {
    fn into_api(self, aliases: Vec<String>) -> ArtifactVersion {
        ArtifactVersion {
            id: self.id,
            artifact: self.artifact,
            project: self.project,
            kind: self.kind,
            version: self.version.map(|n| format!("v{n}")),
            state: if self.state == "committed" {
                VersionState::Committed
            } else {
                VersionState::Pending
            },
            digest: self.digest,
            description: self.description,
            metadata: serde_json::from_str(&self.metadata)
                .unwrap_or_else(|_| serde_json::json!({})),
            run: self.run,
            file_count: self.file_count,
            total_size: self.total_size,
            aliases,
            created_by: self.created_by,
            created_at: format_time(self.created_at),
        }
    }

    fn label(&self) -> String {
        format!("{}:v{}", self.artifact, self.version.unwrap_or(0))
    }
}

/// A checked manifest entry.
struct Entry {
    path: String,
    digest: Option<String>,
    size: u64,
    reference: Option<String>,
    checksum: Option<String>,
}

fn check_object(v: Option<serde_json::Value>, what: &str) -> ApiResult<String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok("{}".into()),
        Some(o @ serde_json::Value::Object(_)) => Ok(o.to_string()),
        Some(_) => Err(ApiError::invalid(format!("{what} must be a JSON object"))),
    }
}

/// Applies a JSON merge patch (RFC 7396) to stored metadata: keys in the patch replace the
/// stored ones, nested objects merge, `null` removes a key.
fn merge_metadata(stored: &str, patch: serde_json::Value) -> ApiResult<String> {
    if !patch.is_object() {
        return Err(ApiError::invalid(
            "metadata must be a JSON object of the keys to change (null removes a key)",
        ));
    }
    let mut target: serde_json::Value =
        serde_json::from_str(stored).unwrap_or_else(|_| serde_json::json!({}));
    merge_patch(&mut target, patch);
    Ok(target.to_string())
}

fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = serde_json::json!({});
    }
    if let serde_json::Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(&k);
            } else {
                merge_patch(t.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
    }
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.len() > MAX_DESCRIPTION {
        return Err(ApiError::invalid(format!(
            "description is longer than {MAX_DESCRIPTION} bytes"
        )));
    }
    Ok(())
}

/// Artifact tags as stored: checked, then kept as a sorted JSON list.
fn check_tags(tags: &[String]) -> ApiResult<String> {
    let set: BTreeSet<String> = tags::check(tags, 64)?.into_iter().collect();
    Ok(serde_json::to_string(&set).unwrap_or_else(|_| "[]".into()))
}

fn check_type(kind: &str) -> ApiResult<()> {
    if !is_valid_word(kind) {
        return Err(ApiError::invalid(format!(
            "type {kind:?}: use one word of 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-' (model, dataset, …)"
        )));
    }
    Ok(())
}

/// Custom aliases are words that are neither `latest` nor `vN`.
fn check_alias(alias: &str) -> ApiResult<()> {
    if !is_valid_word(alias) {
        return Err(ApiError::invalid(format!(
            "alias {alias:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )));
    }
    if alias == "latest" || parse_version_number(alias).is_some() {
        return Err(ApiError::invalid(format!(
            "alias {alias:?} is reserved: `latest` and `vN` always mean the newest and the N-th version"
        )));
    }
    Ok(())
}

/// A short-lived URL for the bytes of an artifact file.
fn artifact_download_url(state: &AppState, digest: &str, size: u64) -> ApiResult<String> {
    download_url(
        state,
        digest,
        size,
        crate::telemetry::TransferKind::Artifact,
    )
}

fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The artifact service.
pub struct Artifacts<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Artifacts<'_> {
    async fn access(&self, actor: &Actor, project: &str) -> ApiResult<ProjectAccess> {
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require_read()?;
        Ok(access)
    }

    async fn find(&self, project_id: i64, name: &str) -> ApiResult<Option<ArtifactRow>> {
        let sql = format!("{ARTIFACT_SELECT} WHERE a.project_id = $1 AND a.name = $2");
        Ok(on_backend!(self.state.store, read, |pool| {
            sqlx::query_as::<_, ArtifactRow>(sqlx::AssertSqlSafe(sql))
                .bind(project_id)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn load(&self, access: &ProjectAccess, name: &str) -> ApiResult<ArtifactRow> {
        self.find(access.id, name).await?.ok_or_else(|| {
            ApiError::not_found(format!("artifact {name} in project {}", access.name))
        })
    }

    async fn version_rows(&self, filter: &str, binds: &[i64]) -> ApiResult<Vec<VersionRow>> {
        let sql = format!("{VERSION_SELECT} WHERE {filter}");
        Ok(on_backend!(self.state.store, read, |pool| {
            let mut q = sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_all(pool).await?
        }))
    }

    async fn version_by_id(&self, id: i64) -> ApiResult<VersionRow> {
        self.version_rows("v.id = $1", &[id])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Internal(format!("version {id} vanished")))
    }

    /// A committed version by its numeric id, when the caller may read its project (404
    /// otherwise, as for any object an outsider may not see).
    pub async fn version_by_id_for(&self, actor: &Actor, id: i64) -> ApiResult<ArtifactVersion> {
        let missing = || ApiError::not_found(format!("artifact version {id}"));
        let row = self
            .version_rows("v.id = $1 AND v.state = 'committed'", &[id])
            .await?
            .into_iter()
            .next()
            .ok_or_else(missing)?;
        Projects { state: self.state }
            .access_by_id(actor, row.project_id)
            .await?
            .require_read()
            .map_err(|_| missing())?;
        self.one_api(row).await
    }

    /// Resolves `v3`, `3`, `latest` or a custom alias to a committed version.
    async fn resolve(&self, art: &ArtifactRow, spec: &str) -> ApiResult<VersionRow> {
        let rows = if spec == "latest" {
            self.version_rows(
                "v.artifact_id = $1 AND v.state = 'committed' ORDER BY v.version DESC LIMIT 1",
                &[art.id],
            )
            .await?
        } else if let Some(n) = parse_version_number(spec) {
            self.version_rows(
                "v.artifact_id = $1 AND v.state = 'committed' AND v.version = $2",
                &[art.id, n],
            )
            .await?
        } else {
            let sql = format!(
                "{VERSION_SELECT} WHERE v.id = (SELECT al.version_id FROM artifact_aliases al \
                 WHERE al.artifact_id = $1 AND al.alias = $2)"
            );
            on_backend!(self.state.store, read, |pool| {
                sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(sql))
                    .bind(art.id)
                    .bind(spec)
                    .fetch_all(pool)
                    .await?
            })
        };
        rows.into_iter().next().ok_or_else(|| {
            ApiError::not_found(format!(
                "version or alias {spec:?} of artifact {}",
                art.name
            ))
        })
    }

    /// Aliases of versions of one artifact, `latest` included.
    async fn aliases_of(&self, artifact_id: i64) -> ApiResult<HashMap<i64, Vec<String>>> {
        const SELECT_ARTIFACT_ALIASES: &str =
            "SELECT version_id, alias FROM artifact_aliases WHERE artifact_id = $1 ORDER BY alias";
        let rows: Vec<(i64, String)> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_as(SELECT_ARTIFACT_ALIASES)
                .bind(artifact_id)
                .fetch_all(pool)
                .await?
        });
        let latest: Option<i64> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(artifact_id)
            .fetch_optional(pool)
            .await?
        });
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        if let Some(l) = latest {
            out.entry(l).or_default().push("latest".into());
        }
        for (v, a) in rows {
            out.entry(v).or_default().push(a);
        }
        Ok(out)
    }

    async fn to_api(&self, rows: Vec<VersionRow>) -> ApiResult<Vec<ArtifactVersion>> {
        let mut cache: HashMap<i64, HashMap<i64, Vec<String>>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(r.artifact_id) {
                slot.insert(self.aliases_of(r.artifact_id).await?);
            }
            let aliases = cache[&r.artifact_id]
                .get(&r.id)
                .cloned()
                .unwrap_or_default();
            out.push(r.into_api(aliases));
        }
        Ok(out)
    }

    async fn one_api(&self, row: VersionRow) -> ApiResult<ArtifactVersion> {
        self.to_api(vec![row])
            .await?
            .pop()
            .ok_or_else(|| ApiError::Internal("version vanished".into()))
    }

    async fn record(&self, actor: &Actor, client: &ClientInfo, ev: AuditEvent) {
        let mut ev = ev.client(client);
        if let Some(u) = &actor.user {
            ev = ev.user(u.id, &u.username);
        }
        audit::record(&self.state.store, ev).await;
    }

    /// Artifacts of a project by name, optionally of one type.
    pub async fn list(
        &self,
        actor: &Actor,
        project: &str,
        kind: Option<&str>,
        tag: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> ApiResult<Page<Artifact>> {
        let access = self.access(actor, project).await?;
        let after = cursor
            .map(paging::position)
            .transpose()?
            .unwrap_or_default();
        let limit = limit.clamp(1, 1000);
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
             AND ($4 = '' OR a.tags LIKE $4 ESCAPE '\\') ORDER BY a.name LIMIT {}",
            limit + 1
        );
        let mut rows: Vec<ArtifactRow> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_as::<_, ArtifactRow>(sqlx::AssertSqlSafe(sql))
                .bind(access.id)
                .bind(&after)
                .bind(kind.unwrap_or(""))
                .bind(tag_pattern.as_deref().unwrap_or(""))
                .fetch_all(pool)
                .await?
        });
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| paging::cursor(&r.name))
        } else {
            None
        };
        Ok(Page {
            items: rows.into_iter().map(ArtifactRow::into_api).collect(),
            next_cursor: next,
        })
    }

    async fn insert_artifact(
        &self,
        access: &ProjectAccess,
        actor: &Actor,
        req: &CreateArtifactRequest,
    ) -> ApiResult<ArtifactRow> {
        const INSERT_ARTIFACTS: &str = "INSERT INTO artifacts (project_id, name, kind, description, metadata, tags, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (project_id, name) DO NOTHING";
        if !is_valid_artifact_name(&req.name) {
            return Err(ApiError::invalid(format!(
                "artifact name {:?}: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '-'",
                req.name
            )));
        }
        check_type(&req.kind)?;
        check_description(&req.description)?;
        let metadata = check_object(req.metadata.clone(), "metadata")?;
        let tags = check_tags(&req.tags)?;
        let now = now_us();
        let done = on_backend!(self.state.store, write, |pool| {
            sqlx::query(INSERT_ARTIFACTS)
                .bind(access.id)
                .bind(&req.name)
                .bind(&req.kind)
                .bind(&req.description)
                .bind(&metadata)
                .bind(&tags)
                .bind(actor.user_id())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        let row = self.load(access, &req.name).await?;
        if done == 0 && row.kind != req.kind {
            return Err(ApiError::Conflict(format!(
                "artifact {} in project {} is a {}, not a {}",
                req.name, access.name, row.kind, req.kind
            )));
        }
        Ok(row)
    }

    /// Creates an artifact (409 when the name is taken).
    pub async fn create(
        &self,
        actor: &Actor,
        project: &str,
        req: CreateArtifactRequest,
        client: &ClientInfo,
    ) -> ApiResult<Artifact> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        if self.find(access.id, &req.name).await?.is_some() {
            return Err(ApiError::Conflict(format!(
                "artifact {} already exists in project {project}",
                req.name
            )));
        }
        let row = self.insert_artifact(&access, actor, &req).await?;
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_create", "data_modification", "info")
                .resource(format!("artifact:{project}/{}", req.name))
                .status(201),
        )
        .await;
        Ok(row.into_api())
    }

    /// One artifact.
    pub async fn get(&self, actor: &Actor, project: &str, name: &str) -> ApiResult<Artifact> {
        let access = self.access(actor, project).await?;
        Ok(self.load(&access, name).await?.into_api())
    }

    /// Changes description, metadata or tags.
    pub async fn update(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        req: UpdateArtifactRequest,
        client: &ClientInfo,
    ) -> ApiResult<Artifact> {
        const UPDATE_ARTIFACTS: &str = "UPDATE artifacts SET description = $1, metadata = $2, tags = $3, updated_at = $4 WHERE id = $5";
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let row = self.load(&access, name).await?;
        let fields: Vec<&str> = [
            ("description", req.description.is_some()),
            ("metadata", req.metadata.is_some()),
            ("tags", req.tags.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, given)| given.then_some(f))
        .collect();
        let description = req.description.unwrap_or(row.description);
        check_description(&description)?;
        let metadata = match req.metadata {
            Some(patch) => merge_metadata(&row.metadata, patch)?,
            None => row.metadata,
        };
        let tags = match req.tags {
            Some(t) => check_tags(&t)?,
            None => row.tags,
        };
        on_backend!(self.state.store, write, |pool| {
            sqlx::query(UPDATE_ARTIFACTS)
                .bind(&description)
                .bind(&metadata)
                .bind(&tags)
                .bind(now_us())
                .bind(row.id)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_update", "data_modification", "info")
                .resource(format!("artifact:{project}/{name}"))
                .status(200)
                .metadata(serde_json::json!({ "fields": fields })),
        )
        .await;
        self.get(actor, project, name).await
    }

    /// Deletes an artifact with its versions, aliases and lineage (blobs stay until garbage
    /// collection).
    pub async fn delete(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let row = self.load(&access, name).await?;
        on_backend!(self.state.store, write, |pool| {
            sqlx::query("DELETE FROM artifacts WHERE id = $1")
                .bind(row.id)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_delete", "data_modification", "warning")
                .resource(format!("artifact:{project}/{name}"))
                .status(204)
                .metadata(serde_json::json!({ "versions": row.version_count })),
        )
        .await;
        Ok(())
    }

    /// Finalized versions, newest first.
    pub async fn versions(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
    ) -> ApiResult<Vec<ArtifactVersion>> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let rows = self
            .version_rows(
                "v.artifact_id = $1 AND v.state = 'committed' ORDER BY v.version DESC",
                &[art.id],
            )
            .await?;
        self.to_api(rows).await
    }

    /// One version by number, `latest` or alias.
    pub async fn version(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let row = self.resolve(&art, spec).await?;
        self.one_api(row).await
    }
}
