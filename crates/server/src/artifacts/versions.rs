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
        project: &ProjectName,
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
        let art = match store::find_artifact(self.store(), access.id, name).await? {
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
            store::point_aliases(self.store(), art.id, id, &aliases, user, now_us()).await?;
            let version = self.one_api(self.version_by_id(id).await?).await?;
            return Ok(CreateVersionResponse {
                version,
                created: false,
                uploads: vec![],
            });
        }
        let digests: Vec<&str> = entries.iter().filter_map(|e| e.digest.as_deref()).collect();
        let held = project_holds(self.state, access.id, &digests).await?;
        let new = store::NewDraft {
            artifact_id: art.id,
            digest: &digest,
            description: &req.description,
            metadata: &metadata,
            run_pk,
            total_size: entries.iter().map(|e| e.size).sum(),
            aliases: &aliases_json,
            created_by: user,
            now: now_us(),
        };
        let draft = store::insert_draft(self.store(), &new, &entries, |e| {
            e.digest
                .as_ref()
                .is_some_and(|d| !held.contains(&(d.clone(), e.size)))
        })
        .await?;
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
        let newest = store::newest_number_and_digest(self.store(), art.id).await?;
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
        project: &ProjectName,
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
        let fields: Vec<&str> = [
            ("description", req.description.is_some()),
            ("metadata", req.metadata.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, given)| given.then_some(f))
        .collect();
        store::update_version(
            self.store(),
            v.id,
            req.description.as_deref(),
            |stored| match req.metadata {
                Some(patch) => merge_metadata(&stored, patch),
                None => Ok(stored),
            },
        )
        .await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactVersionUpdate)
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
        project: &ProjectName,
        name: &str,
        spec: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let (aliases, models) = store::version_holders(self.store(), v.id).await?;
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
        store::tombstone_version(self.store(), v.id).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactVersionDelete)
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
        project: &ProjectName,
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
        let outcome = store::commit_draft(self.store(), art.id, draft, user, now_us()).await?;
        let (id, created) = match outcome {
            store::Commit::Missing => {
                return Err(ApiError::not_found(format!(
                    "draft {draft} of artifact {} (drafts expire an hour after their upload URLs were issued; create the version again)",
                    art.name
                )));
            }
            store::Commit::Waiting(paths) => {
                return Err(ApiError::Conflict(format!(
                    "content not uploaded yet for {}; send it with the upload URLs first (create the version again for fresh URLs)",
                    paths.join(", ")
                )));
            }
            store::Commit::Done(id, created) => (id, created),
        };
        let row = self.version_by_id(id).await?;
        if created {
            self.record(
                actor,
                client,
                AuditEvent::new(AuditAction::ArtifactVersionCreate)
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
}
