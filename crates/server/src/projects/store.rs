//! Storage of projects: the `projects` and `project_members` tables. The only place the
//! projects' SQL lives. Project listings also read `users` (owned by auth) for names and
//! `runs` (owned by runs) for their counts.

use wanllmdb_api_types::projects::{Member, Project, ProjectStats, Role, Visibility};

use wanllmdb_api_types::ProjectName;

use crate::error::{ApiResult, UnknownStoredValue, known};
use crate::store::{Store, format_time};
use crate::{on_backend, with_tx};

/// A project with its owner's name, the caller's role and its run counts (`$1` is the
/// caller's user id).
const PROJECT_SELECT: &str = "SELECT p.id, p.name, p.description, p.visibility, u.username AS owner, p.created_at, p.updated_at,
    (SELECT m.role FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1) AS role,
    (SELECT COUNT(*) FROM runs r WHERE r.project_id = p.id) AS run_count,
    (SELECT COUNT(*) FROM runs r WHERE r.project_id = p.id AND r.state = 'running') AS running_count,
    (SELECT MAX(r.updated_at) FROM runs r WHERE r.project_id = p.id) AS last_run_activity,
    (SELECT e.name FROM mlflow_experiments e WHERE e.project_id = p.id) AS display_name
    FROM projects p JOIN users u ON u.id = p.owner_id";

/// One row of [`PROJECT_SELECT`].
#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: i64,
    #[sqlx(try_from = "String")]
    name: ProjectName,
    description: String,
    visibility: String,
    owner: String,
    created_at: i64,
    updated_at: i64,
    role: Option<String>,
    run_count: i64,
    running_count: i64,
    last_run_activity: Option<i64>,
    /// The MLflow experiment name (`mlflow_experiments` belongs to the MLflow API).
    display_name: Option<String>,
}

impl ProjectRow {
    /// The project as the API shows it; a visibility or role this server never writes is an
    /// error naming the project.
    fn into_api(self) -> Result<Project, UnknownStoredValue> {
        let updated = self.updated_at;
        let visibility = match self.visibility.as_str() {
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            other => known(None, "projects", &self.name, "visibility", other)?,
        };
        let role = self
            .role
            .as_deref()
            .map(|r| known(Role::parse(r), "project_members", &self.name, "role", r))
            .transpose()?;
        let display_name = self
            .display_name
            .filter(|d| d.as_str() != self.name.as_str());
        Ok(Project {
            display_name,
            id: self.id,
            name: self.name,
            description: self.description,
            visibility,
            owner: self.owner,
            role,
            created_at: format_time(self.created_at),
            updated_at: format_time(updated),
            stats: ProjectStats {
                run_count: self.run_count,
                running_count: self.running_count,
                last_activity_at: format_time(
                    self.last_run_activity.map_or(updated, |l| l.max(updated)),
                ),
            },
        })
    }
}

/// The id, visibility and `user_id`'s role of the project named `name`.
pub(super) async fn access_by_name(
    store: &Store,
    user_id: i64,
    name: &str,
) -> ApiResult<Option<(i64, String, Option<String>)>> {
    const SELECT_PROJECT_MEMBERS: &str = "SELECT p.id, p.visibility, (SELECT m.role FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1) AS role FROM projects p WHERE p.name = $2";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_PROJECT_MEMBERS)
            .bind(user_id)
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

/// The name, visibility and `user_id`'s role of the project with id `id`.
pub(super) async fn access_by_id(
    store: &Store,
    user_id: i64,
    id: i64,
) -> ApiResult<Option<(String, String, Option<String>)>> {
    const SELECT_PROJECT_MEMBERS: &str = "SELECT p.name, p.visibility, (SELECT m.role FROM project_members m WHERE m.project_id = p.id AND m.user_id = $1) AS role FROM projects p WHERE p.id = $2";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_PROJECT_MEMBERS)
            .bind(user_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// Inserts a project and makes `owner_id` its owner, in one transaction.
pub(super) async fn insert_project(
    store: &Store,
    name: &str,
    description: &str,
    visibility: Visibility,
    owner_id: i64,
    now: i64,
) -> ApiResult<()> {
    const INSERT_PROJECTS: &str = "INSERT INTO projects (name, description, visibility, owner_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
    const INSERT_PROJECT_MEMBERS: &str = "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)";
    with_tx!(store, |tx| {
        let id: i64 = sqlx::query_scalar(INSERT_PROJECTS)
            .bind(name)
            .bind(description)
            .bind(visibility.as_str())
            .bind(owner_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(INSERT_PROJECT_MEMBERS)
            .bind(id)
            .bind(owner_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// The project with id `id`, as `user_id` sees it.
pub(super) async fn project(store: &Store, user_id: i64, id: i64) -> ApiResult<Project> {
    let sql = format!("{PROJECT_SELECT} WHERE p.id = $2");
    let row = on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(id)
            .fetch_one(pool)
            .await?
    });
    Ok(row.into_api()?)
}

/// Which projects [`projects_page`] lists.
pub(super) struct ProjectFilter<'a> {
    /// The caller (-1 when anonymous).
    pub(super) user_id: i64,
    /// Server administrators see every project.
    pub(super) admin: bool,
    /// Only names after this one.
    pub(super) after: &'a str,
    /// Only names containing this, whatever its case.
    pub(super) name_contains: Option<&'a str>,
    /// Only projects of this visibility.
    pub(super) visibility: Option<Visibility>,
}

/// Up to `limit` projects the filter's caller can see, by name.
pub(super) async fn projects_page(
    store: &Store,
    f: &ProjectFilter<'_>,
    limit: i64,
) -> ApiResult<Vec<Project>> {
    let pattern = f.name_contains.map(|q| {
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
    let rows: Vec<ProjectRow> = on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql))
            .bind(f.user_id)
            .bind(f.after)
            .bind(f.admin)
            .bind(&pattern)
            .bind(f.visibility.map(|v| v.as_str()))
            .bind(limit)
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(ProjectRow::into_api)
        .collect::<Result<_, _>>()?)
}

/// Sets the description and/or visibility of a project (the ones given) and its update time.
pub(super) async fn update_project(
    store: &Store,
    id: i64,
    description: Option<&str>,
    visibility: Option<Visibility>,
    now: i64,
) -> ApiResult<()> {
    const UPDATE_PROJECTS: &str = "UPDATE projects SET description = COALESCE($1, description), visibility = COALESCE($2, visibility), updated_at = $3 WHERE id = $4";
    on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_PROJECTS)
            .bind(description)
            .bind(visibility.map(|v| v.as_str()))
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Deletes a project (everything in it goes with it).
pub(super) async fn delete_project(store: &Store, id: i64) -> ApiResult<()> {
    store
        .execute_with("DELETE FROM projects WHERE id = $1", id)
        .await?;
    Ok(())
}

/// A project's members by username.
pub(super) async fn members(store: &Store, project_id: i64) -> ApiResult<Vec<Member>> {
    const SELECT_PROJECT_MEMBERS: &str = "SELECT u.username, m.role, m.added_at FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.username";
    let rows: Vec<(String, String, i64)> = on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_PROJECT_MEMBERS)
            .bind(project_id)
            .fetch_all(pool)
            .await?
    });
    rows.into_iter()
        .map(|(username, role, added_at)| {
            Ok(Member {
                role: known(
                    Role::parse(&role),
                    "project member",
                    &username,
                    "role",
                    &role,
                )?,
                username,
                added_at: format_time(added_at),
            })
        })
        .collect()
}

/// The role of `user_id` in a project, if a member.
pub(super) async fn member_role(
    store: &Store,
    project_id: i64,
    user_id: i64,
) -> ApiResult<Option<Role>> {
    let role: Option<String> = on_backend!(store, read, |pool| {
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

/// How many owners a project has.
pub(super) async fn owner_count(store: &Store, project_id: i64) -> ApiResult<i64> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM project_members WHERE project_id = $1 AND role = 'owner'",
        )
        .bind(project_id)
        .fetch_one(pool)
        .await?
    }))
}

/// Makes `user_id` a member of a project with `role`.
pub(super) async fn insert_member(
    store: &Store,
    project_id: i64,
    user_id: i64,
    role: Role,
    now: i64,
) -> ApiResult<()> {
    const INSERT_PROJECT_MEMBERS: &str =
        "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_PROJECT_MEMBERS)
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Changes a member's role; returns when the member was added.
pub(super) async fn set_member_role(
    store: &Store,
    project_id: i64,
    user_id: i64,
    role: Role,
) -> ApiResult<i64> {
    const UPDATE_PROJECT_MEMBERS: &str = "UPDATE project_members SET role = $1 WHERE project_id = $2 AND user_id = $3 RETURNING added_at";
    Ok(on_backend!(store, write, |pool| {
        sqlx::query_scalar(UPDATE_PROJECT_MEMBERS)
            .bind(role.as_str())
            .bind(project_id)
            .bind(user_id)
            .fetch_one(pool)
            .await?
    }))
}

/// Removes `user_id` from a project.
pub(super) async fn delete_member(store: &Store, project_id: i64, user_id: i64) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(pool)
            .await?;
    });
    Ok(())
}
