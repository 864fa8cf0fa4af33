//! Accounts, sessions and API keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 64 characters of `[A-Za-z0-9._-]`.
    pub username: String,
    /// A valid email address, unique on the server.
    pub email: String,
    /// At least 12 characters with upper case, lower case, a digit and a symbol.
    pub password: String,
    /// Display name, e.g. "John Doe" (at most 256 bytes).
    #[serde(default)]
    pub full_name: Option<String>,
}

/// `POST /api/v1/auth/login` (JSON; the OAuth2 password-flow form is accepted too).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username (or email).
    pub username: String,
    /// Password.
    pub password: String,
}

/// Tokens returned by login and refresh.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    /// Access JWT, valid for `expires_in` seconds.
    pub access_token: String,
    /// Refresh JWT (7 days); single use, rotated on every refresh.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// `POST /api/v1/auth/logout`: the bearer access token is revoked; the refresh token's
/// family too when one is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Refresh token whose whole family is revoked.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `POST /api/v1/auth/password`: the caller changes their own password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now in use; may be left out only by an account that has none yet.
    #[serde(default)]
    pub current_password: Option<String>,
    /// The new password, under the same policy as registration.
    pub new_password: String,
}

/// A user account as others may see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Numeric id.
    pub id: i64,
    /// Unique username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Display name given at registration, when there is one.
    #[serde(default)]
    pub full_name: Option<String>,
    /// Server administrator (may do anything).
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: String,
}

/// `POST /api/v1/auth/api-keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label such as `gpu-node-3`.
    #[serde(default)]
    pub name: Option<String>,
}

/// An API key as listed (the secret itself is never shown again).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// Numeric id, used to revoke it.
    pub id: i64,
    /// Label.
    pub name: String,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    /// When it was created.
    pub created_at: String,
    /// When it last authenticated a request.
    pub last_used_at: Option<String>,
}

/// A newly created API key: `key` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's listing.
    #[serde(flatten)]
    pub info: ApiKey,
    /// The secret key; store it now.
    pub key: String,
}
