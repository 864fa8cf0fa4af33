//! Server administration of accounts and API keys (`/api/v1/admin/...`, server
//! administrators only).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::ApiKey;

/// Audit event type: an administrator created an account.
pub const USER_CREATED: &str = "user_created";
/// Audit event type: an administrator disabled an account.
pub const USER_DISABLED: &str = "user_disabled";
/// Audit event type: an administrator enabled a disabled account again.
pub const USER_ENABLED: &str = "user_enabled";
/// Audit event type: an account was made a server administrator.
pub const USER_PROMOTED: &str = "user_promoted";
/// Audit event type: a server administrator became an ordinary account.
pub const USER_DEMOTED: &str = "user_demoted";
/// Audit event type: an administrator set a new password for an account.
pub const PASSWORD_RESET: &str = "password_reset";
/// Audit event type (category `admin`): an administrator revoked someone's API key.
pub const API_KEY_REVOKED: &str = "api_key_revoked";

/// An account as a server administrator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminUser {
    /// Numeric id.
    pub id: i64,
    /// Unique username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Server administrator.
    pub is_admin: bool,
    /// Disabled: cannot log in, and every credential it held was revoked.
    pub disabled: bool,
    /// When it was disabled (null while enabled).
    pub disabled_at: Option<String>,
    /// When the account was created.
    pub created_at: String,
    /// How many of its API keys are not revoked.
    pub active_api_keys: i64,
}

/// `POST /api/v1/admin/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 3 to 64 characters of `[A-Za-z0-9._-]`.
    pub username: String,
    /// A valid email address, unique on the server.
    pub email: String,
    /// The password; when absent the server generates one and returns it once.
    #[serde(default)]
    pub password: Option<String>,
    /// Make the account a server administrator.
    #[serde(default)]
    pub is_admin: bool,
}

/// A created account, with the generated password when none was given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    /// The account.
    #[serde(flatten)]
    pub user: AdminUser,
    /// The generated password, shown this once (null when the request set one).
    pub generated_password: Option<String>,
}

/// A disabled account and what disabling it revoked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DisabledUser {
    /// The account, now disabled.
    #[serde(flatten)]
    pub user: AdminUser,
    /// API keys revoked (enabling the account does not bring them back).
    pub api_keys_revoked: i64,
    /// Login sessions (refresh-token families) ended.
    pub sessions_revoked: i64,
}

/// `POST /api/v1/admin/users/{username}/reset-password`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The new password; when absent the server generates one and returns it once.
    #[serde(default)]
    pub password: Option<String>,
}

/// The outcome of a password reset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasswordReset {
    /// The account.
    #[serde(flatten)]
    pub user: AdminUser,
    /// The generated password, shown this once (null when the request set one).
    pub generated_password: Option<String>,
    /// Login sessions (refresh-token families) ended; API keys are kept.
    pub sessions_revoked: i64,
}

/// An API key of any account, as a server administrator sees it (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminApiKey {
    /// The key's listing.
    #[serde(flatten)]
    pub key: ApiKey,
    /// Id of the account that owns it.
    pub user_id: i64,
    /// Username of the account that owns it.
    pub username: String,
}
