//! Artifacts: named, typed, versioned manifests over the content-addressed blob store.
//!
//! Creating a version sends the whole manifest. The server answers which content the project
//! lacks, with signed upload URLs; the version stays a pending draft until those bytes have
//! arrived and the client commits it, then it gets the next number and never changes. A
//! manifest equal to the latest version's makes no new version. `latest` and `vN` are
//! computed; custom aliases are stored and movable. Lineage: the run that logged a version
//! (`artifact_versions.run_pk`) and the runs that used it (`artifact_usage`).
//!
//! This file holds the artifacts themselves and what the parts share (checks, lookups, rows
//! turned into API types); `versions.rs`, `files.rs`, `aliases.rs` and `lineage.rs` add the
//! rest of [`Artifacts`], and `store.rs` holds every query they make.

mod aliases;
mod files;
mod lineage;
pub mod refs;
pub mod routes;
mod store;
mod versions;

use std::collections::{BTreeSet, HashMap, HashSet};

use wanllmdb_api_types::Page;
use wanllmdb_api_types::artifacts::{
    Artifact, ArtifactAlias, ArtifactFile, ArtifactVersion, BlobUpload, CreateArtifactRequest,
    CreateVersionRequest, CreateVersionResponse, Lineage, LineageEdge, LineageNode, LineageRun,
    MAX_ENTRIES, ManifestItem, RunArtifacts, SetAliasRequest, UpdateArtifactRequest,
    UpdateVersionRequest, VersionState, is_valid_artifact_name, is_valid_word, manifest_digest,
    parse_version_number,
};
use wanllmdb_api_types::files::{is_sha256_hex, normalize_path};

use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::files::{download_url, draft_upload_url, project_holds};
use crate::paging;
use crate::projects::{ProjectAccess, Projects};
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::{Store, format_time, now_us};
use crate::tags;
use store::{ArtifactRow, VersionRow};
use wanllmdb_api_types::{ProjectName, RunId};

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

impl VersionRow {
    /// The stored state; a version deleted since it was read is gone, and a state this server
    /// never writes is an error naming the row.
    fn state(&self) -> ApiResult<VersionState> {
        match self.state.as_str() {
            "committed" => Ok(VersionState::Committed),
            "pending" => Ok(VersionState::Pending),
            "deleted" => Err(ApiError::not_found(format!("artifact version {}", self.id))),
            other => Err(known(None, "artifact_versions", self.id, "state", other)?),
        }
    }

    fn into_api(self, aliases: Vec<String>) -> ApiResult<ArtifactVersion> {
        Ok(ArtifactVersion {
            state: self.state()?,
            id: self.id,
            artifact: self.artifact,
            project: self.project,
            kind: self.kind,
            version: self.version.map(|n| format!("v{n}")),
            digest: self.digest,
            description: self.description,
            metadata: serde_json::from_str(&self.metadata)
                .unwrap_or_else(|_| serde_json::json!({})),
            run: self
                .run
                .map(|r| {
                    known(
                        RunId::parse(&r).ok(),
                        "artifact_versions",
                        self.id,
                        "run",
                        &r,
                    )
                })
                .transpose()?,
            file_count: self.file_count,
            total_size: self.total_size,
            aliases,
            created_by: self.created_by,
            created_at: format_time(self.created_at),
        })
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

/// The artifact service.
pub struct Artifacts<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Artifacts<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    async fn access(&self, actor: &Actor, project: &ProjectName) -> ApiResult<ProjectAccess> {
        let access = Projects { state: self.state }
            .access(actor, project)
            .await?;
        access.require_read()?;
        Ok(access)
    }

    async fn load(&self, access: &ProjectAccess, name: &str) -> ApiResult<ArtifactRow> {
        store::find_artifact(self.store(), access.id, name)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("artifact {name} in project {}", access.name))
            })
    }

    async fn version_by_id(&self, id: i64) -> ApiResult<VersionRow> {
        store::version_by_id(self.store(), id)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("version {id} vanished")))
    }

    /// A committed version by its numeric id, when the caller may read its project (404
    /// otherwise, as for any object an outsider may not see).
    pub async fn version_by_id_for(&self, actor: &Actor, id: i64) -> ApiResult<ArtifactVersion> {
        let missing = || ApiError::not_found(format!("artifact version {id}"));
        let row = store::committed_version_by_id(self.store(), id)
            .await?
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
        let row = if spec == "latest" {
            store::latest_version(self.store(), art.id).await?
        } else if let Some(n) = parse_version_number(spec) {
            store::numbered_version(self.store(), art.id, n).await?
        } else {
            store::aliased_version(self.store(), art.id, spec).await?
        };
        row.ok_or_else(|| {
            ApiError::not_found(format!(
                "version or alias {spec:?} of artifact {}",
                art.name
            ))
        })
    }

    /// Aliases of versions of one artifact, `latest` included.
    async fn aliases_of(&self, artifact_id: i64) -> ApiResult<HashMap<i64, Vec<String>>> {
        let rows = store::alias_targets(self.store(), artifact_id).await?;
        let latest = store::latest_version_id(self.store(), artifact_id).await?;
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
            out.push(r.into_api(aliases)?);
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
        audit::record(self.store(), ev).await;
    }

    /// Artifacts of a project by name, optionally of one type.
    pub async fn list(
        &self,
        actor: &Actor,
        project: &ProjectName,
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
        let mut rows =
            store::artifacts_page(self.store(), access.id, &after, kind, tag, limit + 1).await?;
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
        let new = store::NewArtifact {
            project_id: access.id,
            name: &req.name,
            kind: &req.kind,
            description: &req.description,
            metadata: &metadata,
            tags: &tags,
            created_by: actor.user_id(),
            now: now_us(),
        };
        let inserted = store::insert_artifact(self.store(), &new).await?;
        let row = self.load(access, &req.name).await?;
        if !inserted && row.kind != req.kind {
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
        project: &ProjectName,
        req: CreateArtifactRequest,
        client: &ClientInfo,
    ) -> ApiResult<Artifact> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        if store::find_artifact(self.store(), access.id, &req.name)
            .await?
            .is_some()
        {
            return Err(ApiError::Conflict(format!(
                "artifact {} already exists in project {project}",
                req.name
            )));
        }
        let row = self.insert_artifact(&access, actor, &req).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactCreate)
                .resource(format!("artifact:{project}/{}", req.name))
                .status(201),
        )
        .await;
        Ok(row.into_api())
    }

    /// One artifact.
    pub async fn get(
        &self,
        actor: &Actor,
        project: &ProjectName,
        name: &str,
    ) -> ApiResult<Artifact> {
        let access = self.access(actor, project).await?;
        Ok(self.load(&access, name).await?.into_api())
    }

    /// Changes description, metadata or tags.
    pub async fn update(
        &self,
        actor: &Actor,
        project: &ProjectName,
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
        store::update_artifact(
            self.store(),
            row.id,
            &description,
            &metadata,
            &tags,
            now_us(),
        )
        .await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactUpdate)
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
        project: &ProjectName,
        name: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let row = self.load(&access, name).await?;
        store::delete_artifact(self.store(), row.id).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactDelete)
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
        project: &ProjectName,
        name: &str,
    ) -> ApiResult<Vec<ArtifactVersion>> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let rows = store::committed_versions(self.store(), art.id).await?;
        self.to_api(rows).await
    }

    /// One version by number, `latest` or alias.
    pub async fn version(
        &self,
        actor: &Actor,
        project: &ProjectName,
        name: &str,
        spec: &str,
    ) -> ApiResult<ArtifactVersion> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let row = self.resolve(&art, spec).await?;
        self.one_api(row).await
    }
}
