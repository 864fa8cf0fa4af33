//! Projects and their members.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who may see a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone, including anonymous callers, may read it.
    Public,
    /// Only members may see it; everyone else gets 404.
    Private,
}

impl Visibility {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

/// A member's role, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read and write runs.
    Member,
    /// Also manage members and settings.
    Admin,
    /// Also delete the project.
    Owner,
}

impl Role {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// Unique name, `[A-Za-z0-9._-]{1,128}`.
    pub name: crate::ProjectName,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Defaults to private.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// `PATCH /api/v1/projects/{name}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// Activity figures of a project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectStats {
    /// Number of runs.
    pub run_count: i64,
    /// Runs currently running.
    pub running_count: i64,
    /// Most recent change to any run, or the project's creation.
    pub last_activity_at: String,
}

/// A project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Project {
    /// Numeric id.
    pub id: i64,
    /// Unique name.
    pub name: crate::ProjectName,
    /// Free text.
    pub description: String,
    /// public or private.
    pub visibility: Visibility,
    /// Username of the owner who created it.
    pub owner: String,
    /// The caller's role, if a member.
    pub role: Option<Role>,
    /// Creation time.
    pub created_at: String,
    /// Last change to the project itself.
    pub updated_at: String,
    /// Run count and last activity.
    pub stats: ProjectStats,
    /// The name MLflow clients know it by (its experiment name, which may hold spaces and
    /// `/`), when it differs from `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A member of a project.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// Username.
    pub username: String,
    /// Role in the project.
    pub role: Role,
    /// When the membership began.
    pub added_at: String,
}

/// `POST /api/v1/projects/{name}/members`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// Username of an existing account.
    pub username: String,
    /// Role to grant.
    pub role: Role,
}

/// `PATCH /api/v1/projects/{name}/members/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    /// New role.
    pub role: Role,
}
