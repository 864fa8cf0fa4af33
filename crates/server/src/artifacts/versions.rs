//! Versions of an artifact: a manifest checked, the content it lacks asked for, the draft
//! committed under the next number; a version's description, metadata and aliases changed
//! afterwards, or the version deleted.

use super::*;

impl Artifacts<'_> {
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
        const INSERT_ARTIFACT_VERSIONS: &str = "INSERT INTO artifact_versions (artifact_id, version, state, digest, description, metadata, run_pk, \
                 file_count, total_size, pending_aliases, created_by, created_at) \
                 VALUES ($1, NULL, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";
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
            let id: i64 = sqlx::query_scalar(INSERT_ARTIFACT_VERSIONS)
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
        const SELECT_ARTIFACT_VERSIONS: &str = "SELECT version, digest FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
                 ORDER BY version DESC LIMIT 1";
        if asked.is_empty() {
            return Ok(());
        }
        let newest: Option<(i64, String)> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_as(SELECT_ARTIFACT_VERSIONS)
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
        const UPDATE_ARTIFACT_VERSIONS: &str = "UPDATE artifact_versions SET metadata = $1, description = COALESCE($2, description) WHERE id = $3";
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
            sqlx::query(UPDATE_ARTIFACT_VERSIONS)
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
        const SELECT_MODEL_VERSIONS: &str = "SELECT m.name, mv.version FROM model_versions mv JOIN registered_models m ON m.id = mv.model_id \
                 WHERE mv.artifact_version_id = $1 ORDER BY m.name, mv.version";
        const UPDATE_ARTIFACT_VERSIONS: &str = "UPDATE artifact_versions SET state = 'deleted', run_pk = NULL, file_count = 0, total_size = 0 WHERE id = $1";
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let (aliases, models): (Vec<String>, Vec<(String, i64)>) =
            on_backend!(self.state.store, read, |pool| {
                let aliases = sqlx::query_scalar(
                    "SELECT alias FROM artifact_aliases WHERE version_id = $1 ORDER BY alias",
                )
                .bind(v.id)
                .fetch_all(pool)
                .await?;
                let models = sqlx::query_as(SELECT_MODEL_VERSIONS)
                    .bind(v.id)
                    .fetch_all(pool)
                    .await?;
                (aliases, models)
            });
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
            sqlx::query(UPDATE_ARTIFACT_VERSIONS)
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
        const SELECT_ARTIFACT_VERSIONS: &str = "SELECT state, digest, pending_aliases FROM artifact_versions WHERE id = $1 AND artifact_id = $2";
        const SELECT_ARTIFACT_ENTRIES: &str = "SELECT path FROM artifact_entries WHERE version_id = $1 AND pending ORDER BY path LIMIT 5";
        const SELECT_LATEST_COMMITTED: &str = "SELECT id, digest FROM artifact_versions WHERE artifact_id = $1 AND state = 'committed' \
                             ORDER BY version DESC LIMIT 1";
        const NEXT_VERSION_NUMBER: &str =
            "SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE artifact_id = $1";
        const UPDATE_ARTIFACT_VERSIONS: &str = "UPDATE artifact_versions SET version = $1, state = 'committed', created_at = $2 WHERE id = $3";
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
            let row: Option<(String, String, String)> = sqlx::query_as(SELECT_ARTIFACT_VERSIONS)
                .bind(draft)
                .bind(art.id)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                None => Outcome::Missing,
                Some((state, _, _)) if state == "committed" => Outcome::Done(draft, false),
                Some((_, digest, aliases)) => {
                    let waiting: Vec<String> = sqlx::query_scalar(SELECT_ARTIFACT_ENTRIES)
                        .bind(draft)
                        .fetch_all(&mut *tx)
                        .await?;
                    if !waiting.is_empty() {
                        Outcome::Waiting(waiting)
                    } else {
                        let latest: Option<(i64, String)> = sqlx::query_as(SELECT_LATEST_COMMITTED)
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
                                let next: i64 = sqlx::query_scalar(NEXT_VERSION_NUMBER)
                                    .bind(art.id)
                                    .fetch_one(&mut *tx)
                                    .await?;
                                sqlx::query(UPDATE_ARTIFACT_VERSIONS)
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

    pub(super) async fn point_aliases(
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
}
