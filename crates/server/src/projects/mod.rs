//! Projects, members and the authorization rules every object inherits from its project.

pub mod routes;

use sqlx::Row;
use wanllmdb_api_types::Page;
use wanllmdb_api_types::projects::{
    CreateProjectRequest, Member, Project, ProjectStats, Role, UpdateProjectRequest, Visibility,
};

use crate::app::AppState;
use crate::audit::{self, AuditEvent};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, known};
use crate::extract::ClientInfo;
use crate::paging;
use crate::store::{Store, format_time, now_us};
use crate::{on_backend, with_tx};

/// What the caller may do in one project.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    /// Project id.
    pub id: i64,
    /// Project name.
    pub name: String,
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

const PROJECT_SELECT: &str = "SELECT p.id, p.name, p.description, p.visibility, u.username AS owner, p.created_at, p.updated_at,
    (SELECT m.role FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1) AS role,
    (SELECT COUNT(*) FROM runs r WHERE r.project_id = p.id) AS run_count,
    (SELECT COUNT(*) FROM runs r WHERE r.project_id = p.id AND r.state = 'running') AS running_count,
    (SELECT MAX(r.updated_at) FROM runs r WHERE r.project_id = p.id) AS last_run_activity
    FROM projects p JOIN users u ON u.id = p.owner_id";

fn project_from_row<R: Row>(r: &R) -> Result<Project, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let updated: i64 = r.try_get("updated_at")?;
    let last: Option<i64> = r.try_get("last_run_activity")?;
    let vis: String = r.try_get("visibility")?;
    Ok(Project {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        visibility: if vis == "public" {
            Visibility::Public
        } else {
            Visibility::Private
        },
        owner: r.try_get("owner")?,
        role: r
            .try_get::<Option<String>, _>("role")?
            .as_deref()
            .and_then(Role::parse),
        created_at: format_time(r.try_get("created_at")?),
        updated_at: format_time(updated),
        stats: ProjectStats {
            run_count: r.try_get("run_count")?,
            running_count: r.try_get("running_count")?,
            last_activity_at: format_time(last.map_or(updated, |l| l.max(updated))),
        },
    })
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
    pub async fn access(&self, actor: &Actor, name: &str) -> ApiResult<ProjectAccess> {
        const SELECT_PROJECT_MEMBERS: &str = "SELECT p.id, p.visibility, (SELECT m.role FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1) AS role FROM projects p WHERE p.name = $2";
        let row = on_backend!(self.store(), read, |pool| {
            sqlx::query(SELECT_PROJECT_MEMBERS)
                .bind(actor.user_id().unwrap_or(-1))
                .bind(name)
                .fetch_optional(pool)
                .await?
                .map(|r| -> Result<(i64, String, Option<String>), sqlx::Error> {
                    Ok((
                        r.try_get("id")?,
                        r.try_get("visibility")?,
                        r.try_get("role")?,
                    ))
                })
                .transpose()?
        });
        let (id, vis, role) = row.ok_or_else(|| ApiError::not_found(format!("project {name}")))?;
        Ok(Self::build_access(actor, id, name, &vis, role.as_deref()))
    }

    /// Like [`Projects::access`], but a project that does not exist is created first (private,
    /// the caller its owner) when the caller is signed in, so "log to project X" means
    /// "create or join X". Anonymous callers still get the 404.
    pub async fn access_or_create(
        &self,
        actor: &Actor,
        name: &str,
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
            name: name.to_string(),
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
        const SELECT_PROJECT_MEMBERS: &str = "SELECT p.name, p.visibility, (SELECT m.role FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1) AS role FROM projects p WHERE p.id = $2";
        let row = on_backend!(self.store(), read, |pool| {
            sqlx::query(SELECT_PROJECT_MEMBERS)
                .bind(actor.user_id().unwrap_or(-1))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(
                    |r| -> Result<(String, String, Option<String>), sqlx::Error> {
                        Ok((
                            r.try_get("name")?,
                            r.try_get("visibility")?,
                            r.try_get("role")?,
                        ))
                    },
                )
                .transpose()?
        });
        let (name, vis, role) = row.ok_or_else(|| ApiError::not_found("project"))?;
        Ok(Self::build_access(actor, id, &name, &vis, role.as_deref()))
    }

    fn build_access(
        actor: &Actor,
        id: i64,
        name: &str,
        vis: &str,
        role: Option<&str>,
    ) -> ProjectAccess {
        let role = if actor.is_admin() {
            Some(Role::Owner)
        } else {
            role.and_then(Role::parse)
        };
        ProjectAccess {
            id,
            name: name.to_string(),
            visibility: if vis == "public" {
                Visibility::Public
            } else {
                Visibility::Private
            },
            role,
            anonymous: actor.user.is_none(),
        }
    }

    /// Creates a project owned by the caller.
    pub async fn create(
        &self,
        actor: &Actor,
        req: &CreateProjectRequest,
        client: &ClientInfo,
    ) -> ApiResult<Project> {
        const INSERT_PROJECTS: &str = "INSERT INTO projects (name, description, visibility, owner_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
        const INSERT_PROJECT_MEMBERS: &str = "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)";
        let user = actor.require_user()?;
        if !wanllmdb_api_types::is_valid_project_name(&req.name) {
            return Err(ApiError::invalid(format!(
                "invalid project name {:?}: use 1 to 128 characters of letters, digits, '.', '_' or '-'",
                req.name
            )));
        }
        let desc = req.description.clone().unwrap_or_default();
        check_description(&desc)?;
        let vis = req.visibility.unwrap_or(Visibility::Private);
        let now = now_us();
        let res: Result<(), ApiError> = async {
            with_tx!(self.store(), |tx| {
                let id: i64 = sqlx::query_scalar(INSERT_PROJECTS)
                    .bind(&req.name)
                    .bind(&desc)
                    .bind(vis.as_str())
                    .bind(user.id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(INSERT_PROJECT_MEMBERS)
                    .bind(id)
                    .bind(user.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            });
            Ok(())
        }
        .await;
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
            AuditEvent::new("project_create", "data_modification", "info")
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
    pub async fn get(&self, actor: &Actor, name: &str) -> ApiResult<Project> {
        let access = self.access(actor, name).await?;
        access.require_read()?;
        let sql = format!("{PROJECT_SELECT} WHERE p.id = $2");
        let uid = actor.user_id().unwrap_or(-1);
        let mut p = on_backend!(self.store(), read, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uid)
                .bind(access.id)
                .fetch_one(pool)
                .await?;
            project_from_row(&row)?
        });
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
        let pattern = q.map(|q| {
            format!(
                "%{}%",
                q.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        let sql = format!(
            "{PROJECT_SELECT} WHERE p.name > $2
               AND ($3 OR p.visibility = 'public' OR EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1))
               AND ($4 IS NULL OR LOWER(p.name) LIKE $4 ESCAPE '\\')
               AND ($5 IS NULL OR p.visibility = $5)
             ORDER BY p.name LIMIT $6"
        );
        let uid = actor.user_id().unwrap_or(-1);
        let mut items = on_backend!(self.store(), read, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(uid)
                .bind(&after)
                .bind(actor.is_admin())
                .bind(&pattern)
                .bind(visibility.map(|v| v.as_str()))
                .bind(limit + 1)
                .fetch_all(pool)
                .await?
                .iter()
                .map(project_from_row)
                .collect::<Result<Vec<_>, _>>()?
        });
        if actor.is_admin() {
            for p in &mut items {
                p.role = Some(Role::Owner);
            }
        }
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|p| paging::cursor(&p.name))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Changes description or visibility (owner/admin).
    pub async fn update(
        &self,
        actor: &Actor,
        name: &str,
        req: &UpdateProjectRequest,
        client: &ClientInfo,
    ) -> ApiResult<Project> {
        const UPDATE_PROJECTS: &str = "UPDATE projects SET description = COALESCE($1, description), visibility = COALESCE($2, visibility), updated_at = $3 WHERE id = $4";
        let access = self.access(actor, name).await?;
        access.require(Role::Admin)?;
        if let Some(d) = &req.description {
            check_description(d)?;
        }
        on_backend!(self.store(), write, |pool| {
            sqlx::query(UPDATE_PROJECTS)
                .bind(&req.description)
                .bind(req.visibility.map(|v| v.as_str()))
                .bind(now_us())
                .bind(access.id)
                .execute(pool)
                .await?;
        });
        self.record(actor, client, update_event(&access, req)).await;
        self.get(actor, name).await
    }

    /// Deletes a project and everything in it (owner only).
    pub async fn delete(&self, actor: &Actor, name: &str, client: &ClientInfo) -> ApiResult<()> {
        let access = self.access(actor, name).await?;
        access.require(Role::Owner)?;
        on_backend!(self.store(), write, |pool| {
            sqlx::query("DELETE FROM projects WHERE id = $1")
                .bind(access.id)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("project_delete", "data_modification", "warning")
                .resource(format!("project:{name}"))
                .status(204),
        )
        .await;
        Ok(())
    }

    /// Members of a project.
    pub async fn members(&self, actor: &Actor, name: &str) -> ApiResult<Vec<Member>> {
        const SELECT_PROJECT_MEMBERS: &str = "SELECT u.username, m.role, m.added_at FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.username";
        let access = self.access(actor, name).await?;
        access.require_read()?;
        let rows = on_backend!(self.store(), read, |pool| {
            sqlx::query(SELECT_PROJECT_MEMBERS)
                .bind(access.id)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| -> Result<Member, sqlx::Error> {
                    let role: String = r.try_get("role")?;
                    let username: String = r.try_get("username")?;
                    Ok(Member {
                        role: known(
                            Role::parse(&role),
                            "project member",
                            &username,
                            "role",
                            &role,
                        )?,
                        username,
                        added_at: format_time(r.try_get("added_at")?),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    async fn user_id_by_name(&self, username: &str) -> ApiResult<i64> {
        let id: Option<i64> = on_backend!(self.store(), read, |pool| {
            sqlx::query_scalar("SELECT id FROM users WHERE lower(username) = lower($1)")
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
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

    async fn member_role(&self, project_id: i64, user_id: i64) -> ApiResult<Option<Role>> {
        let role: Option<String> = on_backend!(self.store(), read, |pool| {
            sqlx::query_scalar(
                "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
            )
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(role.as_deref().and_then(Role::parse))
    }

    async fn owner_count(&self, project_id: i64) -> ApiResult<i64> {
        Ok(on_backend!(self.store(), read, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM project_members WHERE project_id = $1 AND role = 'owner'",
            )
            .bind(project_id)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Adds a member (owner/admin; only owners grant ownership).
    pub async fn add_member(
        &self,
        actor: &Actor,
        name: &str,
        username: &str,
        role: Role,
        client: &ClientInfo,
    ) -> ApiResult<Member> {
        const INSERT_PROJECT_MEMBERS: &str = "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)";
        let access = self.access(actor, name).await?;
        Self::check_grant(&access, role)?;
        let uid = self.user_id_by_name(username).await?;
        if self.member_role(access.id, uid).await?.is_some() {
            return Err(ApiError::Conflict(format!(
                "{username} is already a member of {name}; change the role with PATCH .../members/{username}"
            )));
        }
        let now = now_us();
        on_backend!(self.store(), write, |pool| {
            sqlx::query(INSERT_PROJECT_MEMBERS)
                .bind(access.id)
                .bind(uid)
                .bind(role.as_str())
                .bind(now)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("member_add", "data_modification", "info")
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
        name: &str,
        username: &str,
        role: Role,
        client: &ClientInfo,
    ) -> ApiResult<Member> {
        const UPDATE_PROJECT_MEMBERS: &str = "UPDATE project_members SET role = $1 WHERE project_id = $2 AND user_id = $3 RETURNING added_at";
        let access = self.access(actor, name).await?;
        Self::check_grant(&access, role)?;
        let uid = self.user_id_by_name(username).await?;
        let current = self
            .member_role(access.id, uid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("member {username} of project {name}")))?;
        if current == Role::Owner && access.role != Some(Role::Owner) {
            return Err(ApiError::Forbidden(
                "only an owner can change an owner's role".into(),
            ));
        }
        if current == Role::Owner && role != Role::Owner && self.owner_count(access.id).await? <= 1
        {
            return Err(ApiError::Conflict(format!(
                "{username} is the last owner of {name}; make someone else an owner first"
            )));
        }
        let added: i64 = on_backend!(self.store(), write, |pool| {
            sqlx::query_scalar(UPDATE_PROJECT_MEMBERS)
                .bind(role.as_str())
                .bind(access.id)
                .bind(uid)
                .fetch_one(pool)
                .await?
        });
        self.record(
            actor,
            client,
            AuditEvent::new("member_update", "data_modification", "info")
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
        name: &str,
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
        let current = self
            .member_role(access.id, uid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("member {username} of project {name}")))?;
        if current == Role::Owner {
            if access.role != Some(Role::Owner) {
                return Err(ApiError::Forbidden(
                    "only an owner can remove an owner".into(),
                ));
            }
            if self.owner_count(access.id).await? <= 1 {
                return Err(ApiError::Conflict(format!(
                    "{username} is the last owner of {name}; make someone else an owner first"
                )));
            }
        }
        on_backend!(self.store(), write, |pool| {
            sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
                .bind(access.id)
                .bind(uid)
                .execute(pool)
                .await?;
        });
        self.record(
            actor,
            client,
            AuditEvent::new("member_remove", "data_modification", "info")
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
    AuditEvent::new(
        "project_update",
        "data_modification",
        if opened { "warning" } else { "info" },
    )
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
