//! Aliases of an artifact: `latest` and `vN` computed, custom ones stored and movable.

use super::*;

impl Artifacts<'_> {
    /// Aliases of an artifact, `latest` first.
    pub async fn aliases(
        &self,
        actor: &Actor,
        project: &ProjectName,
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
        let rows = store::custom_aliases(self.store(), art.id).await?;
        out.extend(rows);
        Ok(out)
    }

    /// Points a custom alias at a version (moving it if it pointed elsewhere).
    pub async fn set_alias(
        &self,
        actor: &Actor,
        project: &ProjectName,
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
        let aliases = [&alias_owned].into_iter().collect();
        store::point_aliases(self.store(), art.id, v.id, &aliases, user, now_us()).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactAliasSet)
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
        project: &ProjectName,
        name: &str,
        alias: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, project).await?;
        access.require_write()?;
        check_alias(alias)?;
        let art = self.load(&access, name).await?;
        let removed = store::delete_alias(self.store(), art.id, alias).await?;
        if !removed {
            return Err(ApiError::not_found(format!(
                "alias {alias} of artifact {name}"
            )));
        }
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ArtifactAliasRemove)
                .resource(format!("artifact:{project}/{name}@{alias}"))
                .status(204),
        )
        .await;
        Ok(())
    }
}
