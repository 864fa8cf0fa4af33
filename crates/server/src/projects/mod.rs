//! Projects, members and the authorization rules every object inherits from its project.

pub mod routes;
mod store;

use wanllmdb_api_types::projects::{
    CreateProjectRequest, Member, Project, Role, UpdateProjectRequest, Visibility,
};
use wanllmdb_api_types::{Page, ProjectName};

use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::Actor;
use crate::auth::store as auth_store;
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::paging;
use crate::state::AppState;
use crate::store::{Store, format_time, now_us};

/// What the caller may do in one project.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    /// Project id.
    pub id: i64,
    /// Project name.
    pub name: ProjectName,
    /// Visibility.
    pub visibility: Visibility,
    /// The caller's role (server admins count as owners).
    pub role: Option<Role>,
    /// Whether the caller is anonymous.
    pub anonymous: bool,
}

impl ProjectAccess {
    /// Read access: members, and anyone for public projects. Others get 404.
    pub fn require_read(&self) -> ApiResult<()> {
        if self.role.is_some() || self.visibility == Visibility::Public {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("project {}", self.name)))
        }
    }

    /// At least `min`; a private project stays a 404 to outsiders.
    pub fn require(&self, min: Role) -> ApiResult<()> {
        self.require_read()?;
        match self.role {
            Some(r) if r >= min => Ok(()),
            _ if self.anonymous => Err(ApiError::Unauthenticated(
                "authentication required to change this project".into(),
            )),
            Some(r) => Err(ApiError::Forbidden(format!(
                "your role in project {} is {}; this needs {} or higher",
                self.name,
                r.as_str(),
                min.as_str()
            ))),
            None => Err(ApiError::Forbidden(format!(
                "you are not a member of project {}; ask one of its owners or admins to add you",
                self.name
            ))),
        }
    }

    /// Write access (member or higher).
    pub fn require_write(&self) -> ApiResult<()> {
        self.require(Role::Member)
    }
}

/// The project service.
pub struct Projects<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Projects<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// Resolves the caller's access to a project by name (404 when it does not exist).
    pub async fn access(&self, actor: &Actor, name: &ProjectName) -> ApiResult<ProjectAccess> {
        let row = store::access_by_name(self.store(), actor.user_id().unwrap_or(-1), name.as_str())
            .await?;
        let (id, vis, role) = row.ok_or_else(|| ApiError::not_found(format!("project {name}")))?;
        Self::build_access(actor, id, name, &vis, role.as_deref())
    }

    /// Like [`Projects::access`], but a project that does not exist is created first (private,
    /// the caller its owner) when the caller is signed in, so "log to project X" means
    /// "create or join X". Anonymous callers still get the 404.
    pub async fn access_or_create(
        &self,
        actor: &Actor,
        name: &ProjectName,
        client: &ClientInfo,
    ) -> ApiResult<ProjectAccess> {
        match self.access(actor, name).await {
            // Anonymous callers learn nothing about which projects exist.
            Err(ApiError::NotFound(_)) => {
                actor.require_user()?;
            }
            other => return other,
        }
        let req = CreateProjectRequest {
            name: name.clone(),
            description: None,
            visibility: Some(Visibility::Private),
        };
        match self.create(actor, &req, client).await {
            // Someone else created it meanwhile: join theirs (if allowed).
            Ok(_) | Err(ApiError::Conflict(_)) => self.access(actor, name).await,
            Err(e) => Err(e),
        }
    }

    /// Resolves access by project id.
    pub async fn access_by_id(&self, actor: &Actor, id: i64) -> ApiResult<ProjectAccess> {
        let row = store::access_by_id(self.store(), actor.user_id().unwrap_or(-1), id).await?;
        let (name, vis, role) = row.ok_or_else(|| ApiError::not_found("project"))?;
        let name = known(
            ProjectName::parse(&name).ok(),
            "projects",
            id,
            "name",
            &name,
        )?;
        Self::build_access(actor, id, &name, &vis, role.as_deref())
    }

    /// The caller's access to a project as stored; a visibility or member role this server
    /// never writes is an error naming the project, not less (or more) access.
    fn build_access(
        actor: &Actor,
        id: i64,
        name: &ProjectName,
        vis: &str,
        role: Option<&str>,
    ) -> ApiResult<ProjectAccess> {
        let stored_role = role
            .map(|r| known(Role::parse(r), "project_members", name, "role", r))
            .transpose()?;
        let role = if actor.is_admin() {
            Some(Role::Owner)
        } else {
            stored_role
        };
        let visibility = match vis {
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            other => known(None, "projects", name, "visibility", other)?,
        };
        Ok(ProjectAccess {
            id,
            name: name.clone(),
            visibility,
            role,
            anonymous: actor.user.is_none(),
        })
    }

    /// Creates a project owned by the caller.
    pub async fn create(
        &self,
        actor: &Actor,
        req: &CreateProjectRequest,
        client: &ClientInfo,
    ) -> ApiResult<Project> {
        let user = actor.require_user()?;
        let desc = req.description.clone().unwrap_or_default();
        check_description(&desc)?;
        let vis = req.visibility.unwrap_or(Visibility::Private);
        let now = now_us();
        let res =
            store::insert_project(self.store(), req.name.as_str(), &desc, vis, user.id, now).await;
        match res {
            Err(ApiError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!(
                    "project {} already exists",
                    req.name
                )));
            }
            other => other?,
        }
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ProjectCreate)
                .resource(format!("project:{}", req.name))
                .status(201)
                .metadata(serde_json::json!({ "visibility": vis.as_str() })),
        )
        .await;
        self.get(actor, &req.name).await
    }

    async fn record(&self, actor: &Actor, client: &ClientInfo, ev: AuditEvent) {
        audit::record(self.store(), ev.client(client).actor(actor)).await;
    }

    /// One project.
    pub async fn get(&self, actor: &Actor, name: &ProjectName) -> ApiResult<Project> {
        let access = self.access(actor, name).await?;
        access.require_read()?;
        let uid = actor.user_id().unwrap_or(-1);
        let mut p = store::project(self.store(), uid, access.id).await?;
        p.role = access.role;
        Ok(p)
    }

    /// Projects the caller can see, by name; `q` filters by name substring.
    pub async fn list(
        &self,
        actor: &Actor,
        q: Option<&str>,
        visibility: Option<Visibility>,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> ApiResult<Page<Project>> {
        let limit = limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 500"));
        }
        let after = cursor
            .map(paging::position)
            .transpose()?
            .unwrap_or_default();
        let filter = store::ProjectFilter {
            user_id: actor.user_id().unwrap_or(-1),
            admin: actor.is_admin(),
            after: &after,
            name_contains: q,
            visibility,
        };
        let mut items = store::projects_page(self.store(), &filter, limit + 1).await?;
        if actor.is_admin() {
            for p in &mut items {
                p.role = Some(Role::Owner);
            }
        }
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|p| paging::cursor(p.name.as_str()))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Changes description or visibility (owner/admin).
    pub async fn update(
        &self,
        actor: &Actor,
        name: &ProjectName,
        req: &UpdateProjectRequest,
        client: &ClientInfo,
    ) -> ApiResult<Project> {
        let access = self.access(actor, name).await?;
        access.require(Role::Admin)?;
        if let Some(d) = &req.description {
            check_description(d)?;
        }
        store::update_project(
            self.store(),
            access.id,
            req.description.as_deref(),
            req.visibility,
            now_us(),
        )
        .await?;
        self.record(actor, client, update_event(&access, req)).await;
        self.get(actor, name).await
    }

    /// Deletes a project and everything in it (owner only).
    pub async fn delete(
        &self,
        actor: &Actor,
        name: &ProjectName,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, name).await?;
        access.require(Role::Owner)?;
        store::delete_project(self.store(), access.id).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::ProjectDelete)
                .resource(format!("project:{name}"))
                .status(204),
        )
        .await;
        Ok(())
    }

    /// Members of a project.
    pub async fn members(&self, actor: &Actor, name: &ProjectName) -> ApiResult<Vec<Member>> {
        let access = self.access(actor, name).await?;
        access.require_read()?;
        store::members(self.store(), access.id).await
    }

    async fn user_id_by_name(&self, username: &str) -> ApiResult<i64> {
        let id = auth_store::user_id_by_username(self.store(), username).await?;
        id.ok_or_else(|| ApiError::not_found(format!("user {username}")))
    }

    fn check_grant(access: &ProjectAccess, role: Role) -> ApiResult<()> {
        access.require(Role::Admin)?;
        if role == Role::Owner && access.role != Some(Role::Owner) {
            return Err(ApiError::Forbidden(
                "only an owner can make someone an owner".into(),
            ));
        }
        Ok(())
    }

    /// Adds a member (owner/admin; only owners grant ownership).
    pub async fn add_member(
        &self,
        actor: &Actor,
        name: &ProjectName,
        username: &str,
        role: Role,
        client: &ClientInfo,
    ) -> ApiResult<Member> {
        let access = self.access(actor, name).await?;
        Self::check_grant(&access, role)?;
        let uid = self.user_id_by_name(username).await?;
        if store::member_role(self.store(), access.id, uid)
            .await?
            .is_some()
        {
            return Err(ApiError::Conflict(format!(
                "{username} is already a member of {name}; change the role with PATCH .../members/{username}"
            )));
        }
        let now = now_us();
        store::insert_member(self.store(), access.id, uid, role, now).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::MemberAdd)
                .resource(format!("project:{name}"))
                .status(201)
                .metadata(serde_json::json!({ "member": username, "role": role.as_str() })),
        )
        .await;
        Ok(Member {
            username: username.to_string(),
            role,
            added_at: format_time(now),
        })
    }

    /// Changes a member's role.
    pub async fn update_member(
        &self,
        actor: &Actor,
        name: &ProjectName,
        username: &str,
        role: Role,
        client: &ClientInfo,
    ) -> ApiResult<Member> {
        let access = self.access(actor, name).await?;
        Self::check_grant(&access, role)?;
        let uid = self.user_id_by_name(username).await?;
        let current = store::member_role(self.store(), access.id, uid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("member {username} of project {name}")))?;
        if current == Role::Owner && access.role != Some(Role::Owner) {
            return Err(ApiError::Forbidden(
                "only an owner can change an owner's role".into(),
            ));
        }
        if current == Role::Owner
            && role != Role::Owner
            && store::owner_count(self.store(), access.id).await? <= 1
        {
            return Err(ApiError::Conflict(format!(
                "{username} is the last owner of {name}; make someone else an owner first"
            )));
        }
        let added = store::set_member_role(self.store(), access.id, uid, role).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::MemberUpdate)
                .resource(format!("project:{name}"))
                .status(200)
                .metadata(serde_json::json!({
                    "member": username,
                    "from": current.as_str(),
                    "to": role.as_str(),
                })),
        )
        .await;
        Ok(Member {
            username: username.to_string(),
            role,
            added_at: format_time(added),
        })
    }

    /// Removes a member (owner/admin, or members removing themselves).
    pub async fn remove_member(
        &self,
        actor: &Actor,
        name: &ProjectName,
        username: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let access = self.access(actor, name).await?;
        access.require_read()?;
        let uid = self.user_id_by_name(username).await?;
        if actor.user_id() != Some(uid) {
            access.require(Role::Admin)?;
        } else {
            access.require_read()?;
        }
        let current = store::member_role(self.store(), access.id, uid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("member {username} of project {name}")))?;
        if current == Role::Owner {
            if access.role != Some(Role::Owner) {
                return Err(ApiError::Forbidden(
                    "only an owner can remove an owner".into(),
                ));
            }
            if store::owner_count(self.store(), access.id).await? <= 1 {
                return Err(ApiError::Conflict(format!(
                    "{username} is the last owner of {name}; make someone else an owner first"
                )));
            }
        }
        store::delete_member(self.store(), access.id, uid).await?;
        self.record(
            actor,
            client,
            AuditEvent::new(AuditAction::MemberRemove)
                .resource(format!("project:{name}"))
                .status(204)
                .metadata(serde_json::json!({ "member": username, "role": current.as_str() })),
        )
        .await;
        Ok(())
    }
}

/// What a project update changed; making a project public is a warning, as it opens its
/// data to everyone.
fn update_event(before: &ProjectAccess, req: &UpdateProjectRequest) -> AuditEvent {
    let opened =
        req.visibility == Some(Visibility::Public) && before.visibility != Visibility::Public;
    let mut changed = serde_json::Map::new();
    if req.description.is_some() {
        changed.insert("description".into(), serde_json::json!(true));
    }
    if let Some(v) = req.visibility.filter(|v| *v != before.visibility) {
        changed.insert(
            "visibility".into(),
            serde_json::json!({ "from": before.visibility.as_str(), "to": v.as_str() }),
        );
    }
    AuditEvent::new(if opened {
        AuditAction::ProjectOpened
    } else {
        AuditAction::ProjectUpdate
    })
    .resource(format!("project:{}", before.name))
    .status(200)
    .metadata(serde_json::Value::Object(changed))
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.len() > 10_000 {
        Err(ApiError::invalid("description is longer than 10,000 bytes"))
    } else {
        Ok(())
    }
}
