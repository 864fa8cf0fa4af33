//! Artifacts: named, typed, versioned manifests over the content-addressed blob store.
//!
//! Creating a version sends the whole manifest. The server answers which content the project
//! lacks, with signed upload URLs; the version stays a pending draft until those bytes have
//! arrived and the client commits it, then it gets the next number and never changes. A
//! manifest equal to the latest version's makes no new version. `latest` and `vN` are
//! computed; custom aliases are stored and movable. Lineage: the run that logged a version
//! (`artifact_versions.run_pk`) and the runs that used it (`artifact_usage`).

pub mod refs;
pub mod routes;

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
        let rows: Vec<(i64, String)> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_as(
                "SELECT version_id, alias FROM artifact_aliases WHERE artifact_id = $1 ORDER BY alias",
            )
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
            sqlx::query(
                "INSERT INTO artifacts (project_id, name, kind, description, metadata, tags, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (project_id, name) DO NOTHING",
            )
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
            sqlx::query("UPDATE artifacts SET description = $1, metadata = $2, tags = $3, updated_at = $4 WHERE id = $5")
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

    async fn check_entries(&self, req: &CreateVersionRequest) -> ApiResult<Vec<Entry>> {
        if req.entries.len() > MAX_ENTRIES {
            return Err(ApiError::invalid(format!(
                "at most {MAX_ENTRIES} entries per version"
            )));
        }
        let mut seen = HashSet::with_capacity(req.entries.len());
        let mut checked_hosts: HashMap<String, Result<(), String>> = HashMap::new();
        let mut out = Vec::with_capacity(req.entries.len());
        for (i, e) in req.entries.iter().enumerate() {
            let path = normalize_path(&e.path)
                .map_err(|m| ApiError::invalid(format!("entries[{i}].path: {m}")))?;
            if !seen.insert(path.clone()) {
                return Err(ApiError::invalid(format!(
                    "entries[{i}].path: {path} appears more than once"
                )));
            }
            match (&e.sha256, &e.reference) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid(format!(
                        "entries[{i}]: give either sha256 (uploaded content) or ref (a reference), not both"
                    )));
                }
                (None, None) => {
                    return Err(ApiError::invalid(format!(
                        "entries[{i}]: give sha256 and size for content, or ref for a reference"
                    )));
                }
                (Some(d), None) => {
                    if !is_sha256_hex(d) {
                        return Err(ApiError::invalid(format!(
                            "entries[{i}].sha256 must be 64 lowercase hex characters"
                        )));
                    }
                    let size = e.size.ok_or_else(|| {
                        ApiError::invalid(format!("entries[{i}].size is required with sha256"))
                    })?;
                    if e.checksum.is_some() {
                        return Err(ApiError::invalid(format!(
                            "entries[{i}].checksum is only for references"
                        )));
                    }
                    out.push(Entry {
                        path,
                        digest: Some(d.clone()),
                        size,
                        reference: None,
                        checksum: None,
                    });
                }
                (None, Some(uri)) => {
                    let key = uri
                        .split_once("://")
                        .map(|(s, r)| {
                            format!("{s}://{}", r.split(['/', '?', '#']).next().unwrap_or(""))
                        })
                        .unwrap_or_else(|| uri.clone());
                    let verdict = match checked_hosts.get(&key) {
                        Some(v) => v.clone(),
                        None if checked_hosts.len() >= MAX_REFERENCE_HOSTS => {
                            return Err(ApiError::invalid(format!(
                                "entries[{i}].ref: references name more than {MAX_REFERENCE_HOSTS} different hosts or buckets in one version"
                            )));
                        }
                        None => {
                            let v = refs::check_reference(
                                uri,
                                &self.state.config.reference_allow_hosts,
                            )
                            .await;
                            checked_hosts.insert(key, v.clone());
                            v
                        }
                    };
                    verdict.map_err(|m| ApiError::invalid(format!("entries[{i}].ref: {m}")))?;
                    if let Some(c) = &e.checksum
                        && (c.len() > MAX_CHECKSUM || c.chars().any(char::is_control))
                    {
                        return Err(ApiError::invalid(format!(
                            "entries[{i}].checksum: at most {MAX_CHECKSUM} printable characters"
                        )));
                    }
                    out.push(Entry {
                        path,
                        digest: None,
                        size: e.size.unwrap_or(0),
                        reference: Some(uri.clone()),
                        checksum: e.checksum.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Creates a version from a manifest: committed at once when the project holds all its
    /// content, otherwise a pending draft with upload URLs for what is missing.
    pub async fn create_version(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        req: CreateVersionRequest,
        client: &ClientInfo,
    ) -> ApiResult<CreateVersionResponse> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let user = actor.require_user()?.id;
        check_description(&req.description)?;
        let metadata = check_object(req.metadata.clone(), "metadata")?;
        // `latest` and `vN` move by themselves: asked for, they are checked, not stored.
        let mut auto_versions = Vec::new();
        for a in &req.aliases {
            match parse_version_number(a) {
                Some(n) => auto_versions.push((a.as_str(), n)),
                None if a == "latest" => {}
                None => check_alias(a)?,
            }
        }
        let aliases: BTreeSet<&String> = req
            .aliases
            .iter()
            .filter(|a| *a != "latest" && parse_version_number(a).is_none())
            .collect();
        let entries = self.check_entries(&req).await?;
        let run_pk = match &req.run {
            Some(id) => {
                let (run, _) = Runs { state: self.state }.load_for_write(actor, id).await?;
                if run.project_id != access.id {
                    return Err(ApiError::invalid(format!(
                        "run {id} belongs to another project; log the artifact in the run's project"
                    )));
                }
                Some(run.pk)
            }
            None => None,
        };
        let art = match self.find(access.id, name).await? {
            Some(a) => {
                if let Some(k) = &req.kind
                    && *k != a.kind
                {
                    return Err(ApiError::Conflict(format!(
                        "artifact {name} in project {project} is a {}, not a {k}",
                        a.kind
                    )));
                }
                a
            }
            None => {
                let kind = req.kind.clone().ok_or_else(|| {
                    ApiError::invalid(format!(
                        "artifact {name} does not exist in project {project} yet; give its type to create it"
                    ))
                })?;
                self.insert_artifact(
                    &access,
                    actor,
                    &CreateArtifactRequest {
                        name: name.to_string(),
                        kind,
                        description: String::new(),
                        metadata: None,
                        tags: vec![],
                    },
                )
                .await?
            }
        };
        let mut items: Vec<ManifestItem<'_>> = entries
            .iter()
            .map(|e| match (&e.digest, &e.reference) {
                (Some(d), _) => ManifestItem::Blob {
                    path: &e.path,
                    sha256: d,
                    size: e.size,
                },
                (None, r) => ManifestItem::Reference {
                    path: &e.path,
                    uri: r.as_deref().unwrap_or(""),
                    checksum: e.checksum.as_deref().unwrap_or(""),
                    size: e.size,
                },
            })
            .collect();
        let digest = manifest_digest(&mut items);
        self.check_version_aliases(&art, &digest, &auto_versions)
            .await?;
        let aliases_json = serde_json::to_string(&aliases).unwrap_or_else(|_| "[]".into());
        // The same manifest as the newest version: that version, with any aliases asked for.
        if let Ok(latest) = self.resolve(&art, "latest").await
            && latest.digest == digest
        {
            let id = latest.id;
            self.point_aliases(art.id, id, &aliases, user).await?;
            let version = self.one_api(self.version_by_id(id).await?).await?;
            return Ok(CreateVersionResponse {
                version,
                created: false,
                uploads: vec![],
            });
        }
        let digests: Vec<&str> = entries.iter().filter_map(|e| e.digest.as_deref()).collect();
        let held = project_holds(self.state, access.id, &digests).await?;
        let total: u64 = entries.iter().map(|e| e.size).sum();
        let now = now_us();
        let draft: i64 = with_tx!(self.state.store, |tx| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO artifact_versions (artifact_id, version, state, digest, description, metadata, run_pk, \
                 file_count, total_size, pending_aliases, created_by, created_at) \
                 VALUES ($1, NULL, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(art.id)
            .bind(&digest)
            .bind(&req.description)
            .bind(&metadata)
            .bind(run_pk)
            .bind(entries.len() as i64)
            .bind(total as i64)
            .bind(&aliases_json)
            .bind(user)
            .bind(now)
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
                    let pending = e
                        .digest
                        .as_ref()
                        .is_some_and(|d| !held.contains(&(d.clone(), e.size)));
                    q = q
                        .bind(&e.path)
                        .bind(&e.digest)
                        .bind(e.size as i64)
                        .bind(&e.reference)
                        .bind(&e.checksum)
                        .bind(pending);
                }
                q.execute(&mut *tx).await?;
            }
            id
        });
        let mut uploads = Vec::new();
        let mut asked = HashSet::new();
        for e in &entries {
            if let Some(d) = &e.digest
                && !held.contains(&(d.clone(), e.size))
                && asked.insert(d.clone())
            {
                let target = draft_upload_url(self.state, d, e.size, draft, user).await?;
                uploads.push(BlobUpload {
                    sha256: d.clone(),
                    size: e.size,
                    upload_url: target.url,
                    complete_url: target.complete_url,
                    parts: target.parts,
                    expires_in: target.expires_in,
                });
            }
        }
        if uploads.is_empty() {
            let (version, created) = self
                .commit_draft(actor, &access, &art, draft, client)
                .await?;
            return Ok(CreateVersionResponse {
                version,
                created,
                uploads,
            });
        }
        let version = self.one_api(self.version_by_id(draft).await?).await?;
        Ok(CreateVersionResponse {
            version,
            created: true,
            uploads,
        })
    }

    /// Checks `vN` aliases of a version being created: N must be the number the upload will
    /// get (the newest version's own, when the manifest equals it), so a mistake is refused
    /// before a byte is stored.
    async fn check_version_aliases(
        &self,
        art: &ArtifactRow,
        digest: &str,
        asked: &[(&str, i64)],
    ) -> ApiResult<()> {
        if asked.is_empty() {
            return Ok(());
        }
        let newest: Option<(i64, String)> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_as(
                "SELECT version, digest FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(art.id)
            .fetch_optional(pool)
            .await?
        });
        let expected = match &newest {
            Some((n, d)) if d == digest => *n,
            Some((n, _)) => n + 1,
            None => 1,
        };
        match asked.iter().find(|(_, n)| *n != expected) {
            None => Ok(()),
            Some((alias, n)) => Err(ApiError::InvalidInputDetails {
                message: format!(
                    "alias {alias} conflicts with the version being created: this upload becomes v{expected} of {} (v{n} is another version); leave vN aliases out, they are set automatically",
                    art.name
                ),
                details: serde_json::json!({ "alias": alias, "version": format!("v{expected}") }),
            }),
        }
    }

    /// Changes a version's description or merges keys into its metadata.
    pub async fn update_version(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
        req: UpdateVersionRequest,
        client: &ClientInfo,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        if let Some(d) = &req.description {
            check_description(d)?;
        }
        let lock = match self.state.store.kind() {
            crate::store::BackendKind::Postgres => " FOR UPDATE",
            crate::store::BackendKind::Sqlite => "",
        };
        with_tx!(self.state.store, |tx| {
            let sql = format!("SELECT metadata FROM artifact_versions WHERE id = $1{lock}");
            let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(v.id)
                .fetch_one(&mut *tx)
                .await?;
            let metadata = match req.metadata.clone() {
                Some(patch) => merge_metadata(&stored, patch)?,
                None => stored,
            };
            sqlx::query("UPDATE artifact_versions SET metadata = $1, description = COALESCE($2, description) WHERE id = $3")
                .bind(&metadata)
                .bind(&req.description)
                .bind(v.id)
                .execute(&mut *tx)
                .await?;
        });
        let fields: Vec<&str> = [
            ("description", req.description.is_some()),
            ("metadata", req.metadata.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, given)| given.then_some(f))
        .collect();
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_version_update", "data_modification", "info")
                .resource(format!("artifact:{project}/{}", v.label()))
                .status(200)
                .metadata(serde_json::json!({ "fields": fields })),
        )
        .await;
        self.one_api(self.version_by_id(v.id).await?).await
    }

    /// Deletes one version. A version that custom aliases point at or that registered model
    /// versions were made from is kept (409 naming them). Its number is never reused.
    pub async fn delete_version(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let (aliases, models): (Vec<String>, Vec<(String, i64)>) = on_backend!(
            self.state.store,
            read,
            |pool| {
                let aliases = sqlx::query_scalar(
                    "SELECT alias FROM artifact_aliases WHERE version_id = $1 ORDER BY alias",
                )
                .bind(v.id)
                .fetch_all(pool)
                .await?;
                let models = sqlx::query_as(
                "SELECT m.name, mv.version FROM model_versions mv JOIN registered_models m ON m.id = mv.model_id \
                 WHERE mv.artifact_version_id = $1 ORDER BY m.name, mv.version",
            )
            .bind(v.id)
            .fetch_all(pool)
            .await?;
                (aliases, models)
            }
        );
        let mut holders: Vec<String> = aliases.iter().map(|a| format!("alias {a}")).collect();
        holders.extend(models.iter().map(|(m, n)| format!("model {m} v{n}")));
        if !holders.is_empty() {
            return Err(ApiError::Conflict(format!(
                "{} is still held by {}: move or remove those first",
                v.label(),
                holders.join(", ")
            )));
        }
        // The row stays as a tombstone so the number is never handed out again; its files
        // and lineage go (the bytes stay until garbage collection).
        with_tx!(self.state.store, |tx| {
            sqlx::query("DELETE FROM artifact_entries WHERE version_id = $1")
                .bind(v.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM artifact_usage WHERE version_id = $1")
                .bind(v.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE artifact_versions SET state = 'deleted', run_pk = NULL, file_count = 0, total_size = 0 WHERE id = $1")
                .bind(v.id)
                .execute(&mut *tx)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_version_delete", "data_modification", "warning")
                .resource(format!("artifact:{project}/{}", v.label()))
                .status(204)
                .metadata(serde_json::json!({ "files": v.file_count, "bytes": v.total_size })),
        )
        .await;
        Ok(())
    }

    /// Commits a draft once its content has arrived.
    pub async fn commit(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        draft: i64,
        client: &ClientInfo,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let art = self.load(&access, name).await?;
        Ok(self
            .commit_draft(actor, &access, &art, draft, client)
            .await?
            .0)
    }

    async fn commit_draft(
        &self,
        actor: &Actor,
        access: &ProjectAccess,
        art: &ArtifactRow,
        draft: i64,
        client: &ClientInfo,
    ) -> ApiResult<(ArtifactVersion, bool)> {
        let user = actor.require_user()?.id;
        let now = now_us();
        enum Outcome {
            Missing,
            Waiting(Vec<String>),
            Done(i64, bool),
        }
        let outcome: Outcome = with_tx!(self.state.store, |tx| {
            // Serialises commits of one artifact (a row lock on PostgreSQL; SQLite has one writer).
            sqlx::query("UPDATE artifacts SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(art.id)
                .execute(&mut *tx)
                .await?;
            let row: Option<(String, String, String)> = sqlx::query_as(
                "SELECT state, digest, pending_aliases FROM artifact_versions WHERE id = $1 AND artifact_id = $2",
            )
            .bind(draft)
            .bind(art.id)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => Outcome::Missing,
                Some((state, _, _)) if state == "committed" => Outcome::Done(draft, false),
                Some((_, digest, aliases)) => {
                    let waiting: Vec<String> = sqlx::query_scalar(
                        "SELECT path FROM artifact_entries WHERE version_id = $1 AND pending ORDER BY path LIMIT 5",
                    )
                    .bind(draft)
                    .fetch_all(&mut *tx)
                    .await?;
                    if !waiting.is_empty() {
                        Outcome::Waiting(waiting)
                    } else {
                        let latest: Option<(i64, String)> = sqlx::query_as(
                            "SELECT id, digest FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
                             ORDER BY version DESC LIMIT 1",
                        )
                        .bind(art.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        let target = match latest {
                            Some((id, d)) if d == digest => {
                                sqlx::query("DELETE FROM artifact_versions WHERE id = $1")
                                    .bind(draft)
                                    .execute(&mut *tx)
                                    .await?;
                                Outcome::Done(id, false)
                            }
                            _ => {
                                let next: i64 = sqlx::query_scalar(
                                    "SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE artifact_id = $1",
                                )
                                .bind(art.id)
                                .fetch_one(&mut *tx)
                                .await?;
                                sqlx::query(
                                    "UPDATE artifact_versions SET version = $1, state = 'committed', created_at = $2 WHERE id = $3",
                                )
                                .bind(next)
                                .bind(now)
                                .bind(draft)
                                .execute(&mut *tx)
                                .await?;
                                Outcome::Done(draft, true)
                            }
                        };
                        if let Outcome::Done(id, _) = &target {
                            let list: Vec<String> =
                                serde_json::from_str(&aliases).unwrap_or_default();
                            for a in list {
                                sqlx::query(POINT_ALIAS_SQL)
                                    .bind(art.id)
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
        });
        let (id, created) = match outcome {
            Outcome::Missing => {
                return Err(ApiError::not_found(format!(
                    "draft {draft} of artifact {} (drafts expire an hour after their upload URLs were issued; create the version again)",
                    art.name
                )));
            }
            Outcome::Waiting(paths) => {
                return Err(ApiError::Conflict(format!(
                    "content not uploaded yet for {}; send it with the upload URLs first (create the version again for fresh URLs)",
                    paths.join(", ")
                )));
            }
            Outcome::Done(id, created) => (id, created),
        };
        let row = self.version_by_id(id).await?;
        if created {
            self.record(
                actor,
                client,
                AuditEvent::new("artifact_version_create", "data_modification", "info")
                    .resource(format!("artifact:{}/{}", access.name, row.label()))
                    .status(201)
                    .metadata(serde_json::json!({
                        "files": row.file_count, "bytes": row.total_size, "digest": row.digest,
                    })),
            )
            .await;
        }
        Ok((self.one_api(row).await?, created))
    }

    async fn point_aliases(
        &self,
        artifact_id: i64,
        version_id: i64,
        aliases: &BTreeSet<&String>,
        user: i64,
    ) -> ApiResult<()> {
        if aliases.is_empty() {
            return Ok(());
        }
        let now = now_us();
        with_tx!(self.state.store, |tx| {
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

    /// Entries of a version; with `download_urls`, uploaded content gets short-lived URLs and
    /// the access is recorded in the audit log.
    pub async fn files(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
        download_urls: bool,
        client: &ClientInfo,
    ) -> ApiResult<Vec<ArtifactFile>> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let mut rows = self.entries(v.id, None).await?;
        if download_urls {
            for f in &mut rows {
                if let Some(d) = &f.sha256 {
                    f.download_url = Some(artifact_download_url(self.state, d, f.size)?);
                }
            }
            let files = serde_json::json!({ "files": rows.len() });
            self.record_download(actor, client, project, &v, files)
                .await;
        }
        Ok(rows)
    }

    /// One file of a version with a short-lived download URL (relative for local storage);
    /// recorded in the audit log. A reference has no stored bytes: the error says where it
    /// points.
    pub async fn file(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
        path: &str,
        client: &ClientInfo,
    ) -> ApiResult<ArtifactFile> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let path = normalize_path(path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        let mut f = self
            .entries(v.id, Some(&path))
            .await?
            .pop()
            .ok_or_else(|| ApiError::not_found(format!("file {path} in {}", v.label())))?;
        let Some(digest) = f.sha256.clone() else {
            return Err(ApiError::invalid(format!(
                "{path} is a reference to {}: fetch it from there",
                f.reference.as_deref().unwrap_or("another location")
            )));
        };
        f.download_url = Some(artifact_download_url(self.state, &digest, f.size)?);
        let files = serde_json::json!({ "files": 1, "path": path });
        self.record_download(actor, client, project, &v, files)
            .await;
        Ok(f)
    }

    /// The entries of a version by path, or only the one at `path`.
    async fn entries(&self, version_id: i64, path: Option<&str>) -> ApiResult<Vec<ArtifactFile>> {
        Ok(on_backend!(self.state.store, read, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT e.path, e.digest, e.size, e.ref_uri, e.ref_checksum, b.md5 FROM artifact_entries e \
                 LEFT JOIN blobs b ON b.digest = e.digest WHERE e.version_id = $1 AND ($2 IS NULL OR e.path = $2) \
                 ORDER BY e.path",
            )
            .bind(version_id)
            .bind(path)
            .fetch_all(pool)
            .await?
            {
                let size: i64 = r.try_get("size")?;
                out.push(ArtifactFile {
                    path: r.try_get("path")?,
                    sha256: r.try_get("digest")?,
                    md5: r.try_get("md5")?,
                    size: size as u64,
                    reference: r.try_get("ref_uri")?,
                    checksum: r.try_get("ref_checksum")?,
                    download_url: None,
                });
            }
            out
        }))
    }

    async fn record_download(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        project: &str,
        v: &VersionRow,
        metadata: serde_json::Value,
    ) {
        let ev = AuditEvent::new("artifact_download", "data_access", "info")
            .resource(format!("artifact:{project}/{}", v.label()))
            .status(200)
            .metadata(metadata);
        self.record(actor, client, ev).await;
    }

    /// Aliases of an artifact, `latest` first.
    pub async fn aliases(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
    ) -> ApiResult<Vec<ArtifactAlias>> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let mut out = Vec::new();
        if let Ok(l) = self.resolve(&art, "latest").await {
            out.push(ArtifactAlias {
                alias: "latest".into(),
                version: format!("v{}", l.version.unwrap_or(0)),
                updated_by: None,
                updated_at: format_time(l.created_at),
            });
        }
        let rows = on_backend!(self.state.store, read, |pool| {
            sqlx::query(
                "SELECT al.alias, v.version, u.username, al.updated_at FROM artifact_aliases al \
                 JOIN artifact_versions v ON v.id = al.version_id LEFT JOIN users u ON u.id = al.updated_by \
                 WHERE al.artifact_id = $1 ORDER BY al.alias",
            )
            .bind(art.id)
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
        });
        out.extend(rows);
        Ok(out)
    }

    /// Points a custom alias at a version (moving it if it pointed elsewhere).
    pub async fn set_alias(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        alias: &str,
        req: SetAliasRequest,
        client: &ClientInfo,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let user = actor.require_user()?.id;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, &req.version).await?;
        if alias == "latest" || parse_version_number(alias).is_some() {
            // These move by themselves: pointing one where it already points is a no-op.
            let current = self.resolve(&art, alias).await.ok().map(|c| c.id);
            if current == Some(v.id) {
                return self.one_api(v).await;
            }
            return Err(ApiError::invalid(format!(
                "alias {alias:?} of {name} moves by itself (`latest` is the newest version, `vN` the N-th) and cannot point at v{}; use a custom alias such as production",
                v.version.unwrap_or(0)
            )));
        }
        check_alias(alias)?;
        let alias_owned = alias.to_string();
        self.point_aliases(art.id, v.id, &[&alias_owned].into_iter().collect(), user)
            .await?;
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_alias_set", "data_modification", "info")
                .resource(format!("artifact:{project}/{name}@{alias}"))
                .status(200)
                .metadata(serde_json::json!({ "version": format!("v{}", v.version.unwrap_or(0)) })),
        )
        .await;
        self.one_api(v).await
    }

    /// Removes a custom alias.
    pub async fn remove_alias(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        alias: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        check_alias(alias)?;
        let art = self.load(&access, name).await?;
        let n = on_backend!(self.state.store, write, |pool| {
            sqlx::query("DELETE FROM artifact_aliases WHERE artifact_id = $1 AND alias = $2")
                .bind(art.id)
                .bind(alias)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 0 {
            return Err(ApiError::not_found(format!(
                "alias {alias} of artifact {name}"
            )));
        }
        self.record(
            actor,
            client,
            AuditEvent::new("artifact_alias_remove", "data_modification", "info")
                .resource(format!("artifact:{project}/{name}@{alias}"))
                .status(204),
        )
        .await;
        Ok(())
    }

    /// Records that a run used a version as an input.
    pub async fn use_version(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
        run_id: &str,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        on_backend!(self.state.store, write, |pool| {
            sqlx::query(
                "INSERT INTO artifact_usage (version_id, run_pk, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (version_id, run_pk) DO NOTHING",
            )
            .bind(v.id)
            .bind(run.pk)
            .bind(now_us())
            .execute(pool)
            .await?;
        });
        self.one_api(v).await
    }

    /// Which projects (by id) the caller may read, memoised.
    async fn readable(
        &self,
        actor: &Actor,
        cache: &mut HashMap<i64, bool>,
        project_id: i64,
    ) -> bool {
        if let Some(b) = cache.get(&project_id) {
            return *b;
        }
        let ok = match (Projects { state: self.state })
            .access_by_id(actor, project_id)
            .await
        {
            Ok(a) => a.require_read().is_ok(),
            Err(_) => false,
        };
        cache.insert(project_id, ok);
        ok
    }

    async fn pairs(&self, sql: &str, ids: &[i64]) -> ApiResult<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let q = sql.replace("{ids}", &in_list(1, chunk.len()));
            let rows: Vec<(i64, i64)> = on_backend!(self.state.store, read, |pool| {
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

    async fn runs_info(&self, pks: &[i64]) -> ApiResult<HashMap<i64, (i64, LineageRun)>> {
        let mut out = HashMap::new();
        for chunk in pks.chunks(500) {
            let sql = format!(
                "SELECT r.pk, r.project_id, r.id, r.name, r.state, p.name AS project FROM runs r \
                 JOIN projects p ON p.id = r.project_id WHERE r.pk IN ({})",
                in_list(1, chunk.len())
            );
            let rows = on_backend!(self.state.store, read, |pool| {
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
                            id: r.try_get("id")?,
                            name: r.try_get("name")?,
                            project: r.try_get("project")?,
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

    async fn versions_info(&self, ids: &[i64]) -> ApiResult<HashMap<i64, VersionRow>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let filter = format!(
                "v.id IN ({}) AND v.state = 'committed'",
                in_list(1, chunk.len())
            );
            for r in self.version_rows(&filter, chunk).await? {
                out.insert(r.id, r);
            }
        }
        Ok(out)
    }

    /// Who produced and used a version, and the lineage graph around it up to `depth` hops
    /// each way (runs and versions the caller may not read are left out).
    pub async fn lineage(
        &self,
        actor: &Actor,
        project: &str,
        name: &str,
        spec: &str,
        depth: u32,
    ) -> ApiResult<Lineage> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let start = self.resolve(&art, spec).await?;
        let depth = depth.clamp(1, MAX_DEPTH) as i32;
        let mut readable = HashMap::new();
        let mut nodes: Vec<LineageNode> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut edges: BTreeSet<(String, String, &'static str)> = BTreeSet::new();
        let vnode = |v: &VersionRow, d: i32| LineageNode {
            id: format!("artifact:{}/{}", v.project, v.label()),
            kind: "artifact_version".into(),
            label: v.label(),
            project: v.project.clone(),
            depth: d,
        };
        let rnode = |r: &LineageRun, d: i32| LineageNode {
            id: format!("run:{}", r.id),
            kind: "run".into(),
            label: r.name.clone(),
            project: r.project.clone(),
            depth: d,
        };
        let first = vnode(&start, 0);
        seen.insert(first.id.clone());
        nodes.push(first);
        let mut produced_by = None;
        let mut used_by = Vec::new();
        for direction in [-1i32, 1] {
            // Alternating layers: versions at even hops, runs at odd hops.
            let mut versions = vec![start.id];
            let mut runs: Vec<i64> = Vec::new();
            for hop in 1..=depth {
                if nodes.len() >= MAX_NODES {
                    break;
                }
                let d = hop * direction;
                if hop % 2 == 1 {
                    // versions → runs (producers upstream, users downstream)
                    let links = if direction < 0 {
                        self.pairs(
                            "SELECT id, run_pk FROM artifact_versions WHERE run_pk IS NOT NULL AND id IN ({ids})",
                            &versions,
                        )
                        .await?
                    } else {
                        self.pairs(
                            "SELECT version_id, run_pk FROM artifact_usage WHERE version_id IN ({ids})",
                            &versions,
                        )
                        .await?
                    };
                    let pks: Vec<i64> = links.iter().map(|l| l.1).collect();
                    let info = self.runs_info(&pks).await?;
                    let vinfo = self.versions_info(&versions).await?;
                    runs.clear();
                    for (vid, pk) in links {
                        let (Some((pid, run)), Some(v)) = (info.get(&pk), vinfo.get(&vid)) else {
                            continue;
                        };
                        if !self.readable(actor, &mut readable, *pid).await {
                            continue;
                        }
                        let rn = rnode(run, d);
                        let vid_s = format!("artifact:{}/{}", v.project, v.label());
                        if hop == 1 {
                            if direction < 0 {
                                produced_by = Some(run.clone());
                            } else {
                                used_by.push(run.clone());
                            }
                        }
                        if direction < 0 {
                            edges.insert((rn.id.clone(), vid_s, "produced"));
                        } else {
                            edges.insert((vid_s, rn.id.clone(), "used"));
                        }
                        if seen.insert(rn.id.clone()) && nodes.len() < MAX_NODES {
                            nodes.push(rn);
                            runs.push(pk);
                        }
                    }
                    if runs.is_empty() {
                        break;
                    }
                } else {
                    // runs → versions (inputs upstream, outputs downstream)
                    let links = if direction < 0 {
                        self.pairs(
                            "SELECT run_pk, version_id FROM artifact_usage WHERE run_pk IN ({ids})",
                            &runs,
                        )
                        .await?
                    } else {
                        self.pairs(
                            "SELECT run_pk, id FROM artifact_versions WHERE state = 'committed' AND run_pk IN ({ids})",
                            &runs,
                        )
                        .await?
                    };
                    let vids: Vec<i64> = links.iter().map(|l| l.1).collect();
                    let vinfo = self.versions_info(&vids).await?;
                    let rinfo = self.runs_info(&runs).await?;
                    versions.clear();
                    for (pk, vid) in links {
                        let (Some(v), Some((_, run))) = (vinfo.get(&vid), rinfo.get(&pk)) else {
                            continue;
                        };
                        if !self.readable(actor, &mut readable, v.project_id).await {
                            continue;
                        }
                        let vn = vnode(v, d);
                        let rid = format!("run:{}", run.id);
                        if direction < 0 {
                            edges.insert((vn.id.clone(), rid, "used"));
                        } else {
                            edges.insert((rid, vn.id.clone(), "produced"));
                        }
                        if seen.insert(vn.id.clone()) && nodes.len() < MAX_NODES {
                            nodes.push(vn);
                            versions.push(vid);
                        }
                    }
                    if versions.is_empty() {
                        break;
                    }
                }
            }
        }
        used_by.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Lineage {
            produced_by,
            used_by,
            nodes,
            edges: edges
                .into_iter()
                .map(|(from, to, relation)| LineageEdge {
                    from,
                    to,
                    relation: relation.into(),
                })
                .collect(),
        })
    }

    /// What a run used and produced (versions the caller may read).
    pub async fn of_run(&self, actor: &Actor, run_id: &str) -> ApiResult<RunArtifacts> {
        let (run, _) = Runs { state: self.state }.load(actor, run_id).await?;
        let mut readable = HashMap::new();
        let used = self
            .version_rows(
                "v.id IN (SELECT version_id FROM artifact_usage WHERE run_pk = $1) ORDER BY a.name, v.version",
                &[run.pk],
            )
            .await?;
        let produced = self
            .version_rows(
                "v.run_pk = $1 AND v.state = 'committed' ORDER BY a.name, v.version",
                &[run.pk],
            )
            .await?;
        let mut lists = [Vec::new(), Vec::new()];
        for (i, rows) in [used, produced].into_iter().enumerate() {
            for r in rows {
                if self.readable(actor, &mut readable, r.project_id).await {
                    lists[i].push(r);
                }
            }
        }
        let [used, produced] = lists;
        Ok(RunArtifacts {
            used: self.to_api(used).await?,
            produced: self.to_api(produced).await?,
        })
    }
}
