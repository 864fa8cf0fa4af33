//! The files of a version: their entries, and short-lived download URLs (recorded in the
//! audit log).

use super::*;

impl Artifacts<'_> {
    /// Entries of a version; with `download_urls`, uploaded content gets short-lived URLs and
    /// the access is recorded in the audit log.
    pub async fn files(
        &self,
        actor: &Actor,
        project: &ProjectName,
        name: &str,
        spec: &str,
        download_urls: bool,
        client: &ClientInfo,
    ) -> ApiResult<Vec<ArtifactFile>> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let mut rows = store::entries(self.store(), v.id, None).await?;
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
        project: &ProjectName,
        name: &str,
        spec: &str,
        path: &str,
        client: &ClientInfo,
    ) -> ApiResult<ArtifactFile> {
        let access = self.access(actor, project).await?;
        let art = self.load(&access, name).await?;
        let v = self.resolve(&art, spec).await?;
        let path = normalize_path(path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        let mut f = store::entries(self.store(), v.id, Some(&path))
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

    async fn record_download(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        project: &ProjectName,
        v: &VersionRow,
        metadata: serde_json::Value,
    ) {
        let ev = AuditEvent::new(AuditAction::ArtifactDownload)
            .resource(format!("artifact:{project}/{}", v.label()))
            .status(200)
            .metadata(metadata);
        self.record(actor, client, ev).await;
    }
}
