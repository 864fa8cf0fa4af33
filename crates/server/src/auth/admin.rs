//! Server administration of accounts and API keys: list, create, disable, enable, promote,
//! demote, reset passwords, and list or revoke anyone's keys. Server administrators only;
//! every change is an audit event of category `admin`.

use rand::Rng;
use wanllmdb_api_types::Page;
use wanllmdb_api_types::admin::{
    AdminApiKey, AdminUser, CreateUserRequest, CreatedUser, DisabledUser, PasswordReset,
};

use super::store::{self, FlagUpdate, Target};
use super::{
    Accounts, Actor, AuthUser, check_email, check_password_policy, check_username, hash_password,
};
use crate::audit::{self, AuditAction, AuditEvent};
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientInfo;
use crate::paging;
use crate::state::AppState;
use crate::store::{Store, now_us};

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// What a guarded change is, for its messages.
#[derive(Debug, Clone, Copy)]
enum GuardedChange {
    Disable,
    Demote,
}

impl GuardedChange {
    fn verb(self) -> &'static str {
        match self {
            GuardedChange::Disable => "disable",
            GuardedChange::Demote => "demote",
        }
    }
}

/// 409 when a change would leave no enabled administrator, or would lock the caller out.
fn check_guarded_change(
    change: GuardedChange,
    username: &str,
    target: &Target,
    enabled_admins: &[i64],
    caller: &AuthUser,
) -> ApiResult<()> {
    let verb = change.verb();
    if enabled_admins == [target.id] {
        return Err(ApiError::Conflict(format!(
            "cannot {verb} {username}: it is the last enabled server administrator; promote another account first"
        )));
    }
    if target.id == caller.id {
        return Err(ApiError::Conflict(format!(
            "you cannot {verb} your own account; ask another server administrator"
        )));
    }
    Ok(())
}

/// 401 for anonymous callers, 403 for everyone but server administrators (project owners
/// and admins included).
fn require_admin(actor: &Actor) -> ApiResult<&AuthUser> {
    let user = actor.require_user()?;
    if user.is_admin {
        Ok(user)
    } else {
        Err(ApiError::Forbidden(
            "managing accounts and API keys is only for server administrators".into(),
        ))
    }
}

/// A page size from 1 to 1000 (100 when absent).
fn page_size(limit: Option<i64>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(format!(
            "limit={limit} must be a number from 1 to {MAX_PAGE}"
        )))
    }
}

/// A random password that meets the policy: four groups of six letters and digits joined by
/// dashes (about 139 bits), without look-alike characters.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    loop {
        let groups: Vec<String> = (0..4)
            .map(|_| {
                (0..6)
                    .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                    .collect()
            })
            .collect();
        let password = groups.join("-");
        // A draw without an upper-case letter or a digit is rare; draw again.
        if check_password_policy(&password).is_ok() {
            return password;
        }
    }
}

/// The password to set: the given one if it meets the policy, or a generated one (returned
/// as the second value, to show once).
fn chosen_password(given: Option<&str>) -> ApiResult<(String, Option<String>)> {
    match given {
        Some(p) => {
            check_password_policy(p)?;
            Ok((p.to_string(), None))
        }
        None => {
            let p = generate_password();
            Ok((p.clone(), Some(p)))
        }
    }
}

/// The administration service.
pub struct AccountAdmin<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl AccountAdmin<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// An `admin` audit event by `admin` from `client`.
    fn event(action: AuditAction, client: &ClientInfo, admin: &AuthUser) -> AuditEvent {
        AuditEvent::new(action)
            .client(client)
            .user(admin.id, &admin.username)
    }

    async fn find(&self, username: &str) -> ApiResult<AdminUser> {
        store::admin_user(self.store(), username)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {username}")))
    }

    /// Accounts, oldest first (the same order on every backend, unlike collations of
    /// names); `q` keeps those whose username or email contains it.
    pub async fn list_users(
        &self,
        actor: &Actor,
        q: Option<&str>,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> ApiResult<Page<AdminUser>> {
        require_admin(actor)?;
        let limit = page_size(limit)?;
        let after = cursor
            .map(paging::position_as::<i64>)
            .transpose()?
            .unwrap_or(0);
        let mut items = store::admin_users_page(self.store(), after, q, limit + 1).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|u| paging::cursor(&u.id.to_string()))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// One account.
    pub async fn user(&self, actor: &Actor, username: &str) -> ApiResult<AdminUser> {
        require_admin(actor)?;
        self.find(username).await
    }

    /// Creates an account; without a password, a generated one is returned once.
    pub async fn create_user(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        req: &CreateUserRequest,
    ) -> ApiResult<CreatedUser> {
        let admin = require_admin(actor)?;
        check_username(&req.username)?;
        check_email(&req.email)?;
        let (password, generated_password) = chosen_password(req.password.as_deref())?;
        let hash = hash_password(password).await?;
        Accounts { state: self.state }
            .insert_user(&req.username, &req.email, Some(hash), req.is_admin)
            .await?;
        let user = self.find(&req.username).await?;
        audit::record(
            self.store(),
            Self::event(AuditAction::UserCreated, client, admin)
                .resource(format!("user:{}", user.username))
                .metadata(serde_json::json!({ "is_admin": user.is_admin }))
                .status(201),
        )
        .await;
        Ok(CreatedUser {
            user,
            generated_password,
        })
    }

    /// Disables an account and, in the same transaction, revokes its API keys and sessions;
    /// its access tokens stop working at once.
    pub async fn disable(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        username: &str,
    ) -> ApiResult<DisabledUser> {
        let admin = require_admin(actor)?;
        let (api_keys_revoked, sessions_revoked) =
            store::disable_user(self.store(), username, now_us(), |target, admins| {
                if target.disabled_at.is_some() {
                    return Err(ApiError::Conflict(format!(
                        "user {username} is already disabled"
                    )));
                }
                // The caller is an enabled administrator, so only administrators need guarding.
                if target.is_admin {
                    check_guarded_change(GuardedChange::Disable, username, target, admins, admin)?;
                }
                Ok(())
            })
            .await?;
        audit::record(
            self.store(),
            Self::event(AuditAction::UserDisabled, client, admin)
                .resource(format!("user:{username}"))
                .metadata(serde_json::json!({
                    "api_keys_revoked": api_keys_revoked,
                    "sessions_revoked": sessions_revoked,
                }))
                .status(200),
        )
        .await;
        Ok(DisabledUser {
            user: self.find(username).await?,
            api_keys_revoked,
            sessions_revoked,
        })
    }

    /// Lets a disabled account log in again. Keys revoked when it was disabled stay revoked.
    pub async fn enable(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        username: &str,
    ) -> ApiResult<AdminUser> {
        let change = FlagChange {
            update: FlagUpdate::Enable,
            unchanged: "is not disabled",
            event: AuditAction::UserEnabled,
        };
        self.set_flag(actor, client, username, change).await
    }

    /// Makes an account a server administrator.
    pub async fn promote(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        username: &str,
    ) -> ApiResult<AdminUser> {
        let change = FlagChange {
            update: FlagUpdate::Promote,
            unchanged: "is already a server administrator",
            event: AuditAction::UserPromoted,
        };
        self.set_flag(actor, client, username, change).await
    }

    /// Applies one conditional update to an account: 404 for an unknown account, 409 when
    /// the update found nothing to change, else one audit event.
    async fn set_flag(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        username: &str,
        change: FlagChange,
    ) -> ApiResult<AdminUser> {
        let admin = require_admin(actor)?;
        let changed = store::apply_flag(self.store(), change.update, username).await?;
        let user = self.find(username).await?;
        if changed == 0 {
            return Err(ApiError::Conflict(format!(
                "user {username} {}",
                change.unchanged
            )));
        }
        audit::record(
            self.store(),
            Self::event(change.event, client, admin)
                .resource(format!("user:{username}"))
                .status(200),
        )
        .await;
        Ok(user)
    }

    /// Makes a server administrator an ordinary account again.
    pub async fn demote(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        username: &str,
    ) -> ApiResult<AdminUser> {
        let admin = require_admin(actor)?;
        store::demote_user(self.store(), username, |target, admins| {
            if !target.is_admin {
                return Err(ApiError::Conflict(format!(
                    "user {username} is not a server administrator"
                )));
            }
            check_guarded_change(GuardedChange::Demote, username, target, admins, admin)
        })
        .await?;
        audit::record(
            self.store(),
            Self::event(AuditAction::UserDemoted, client, admin)
                .resource(format!("user:{username}"))
                .status(200),
        )
        .await;
        self.find(username).await
    }

    /// Sets a new password (given, or generated and returned once) and ends every session of
    /// the account, so whoever knew the old password is logged out. API keys are kept.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        username: &str,
        password: Option<&str>,
    ) -> ApiResult<PasswordReset> {
        let admin = require_admin(actor)?;
        let (password, generated_password) = chosen_password(password)?;
        // Unknown users are refused before the slow hash.
        self.find(username).await?;
        let hash = hash_password(password).await?;
        let sessions_revoked =
            store::reset_password(self.store(), username, &hash, now_us()).await?;
        self.state.basic_logins.clear();
        audit::record(
            self.store(),
            Self::event(AuditAction::PasswordReset, client, admin)
                .resource(format!("user:{username}"))
                .metadata(serde_json::json!({
                    "generated": generated_password.is_some(),
                    "sessions_revoked": sessions_revoked,
                }))
                .status(200),
        )
        .await;
        Ok(PasswordReset {
            user: self.find(username).await?,
            generated_password,
            sessions_revoked,
        })
    }

    /// Active API keys of every account, or of one, by id.
    pub async fn list_api_keys(
        &self,
        actor: &Actor,
        username: Option<&str>,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> ApiResult<Page<AdminApiKey>> {
        require_admin(actor)?;
        let limit = page_size(limit)?;
        let after = cursor
            .map(paging::position_as::<i64>)
            .transpose()?
            .unwrap_or(0);
        let owner = match username.filter(|u| !u.is_empty()) {
            Some(u) => Some(self.find(u).await?.id),
            None => None,
        };
        let mut items = store::admin_api_keys_page(self.store(), after, owner, limit + 1).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|k| paging::cursor(&k.key.id.to_string()))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Revokes any account's API key.
    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        id: i64,
    ) -> ApiResult<()> {
        let admin = require_admin(actor)?;
        let owner = store::revoke_any_api_key(self.store(), id, now_us()).await?;
        let owner = owner.ok_or_else(|| {
            ApiError::not_found(format!("API key {id} (or it is already revoked)"))
        })?;
        audit::record(
            self.store(),
            Self::event(AuditAction::ApiKeyRevokedByAdmin, client, admin)
                .resource(format!("api_key:{id}"))
                .metadata(serde_json::json!({ "owner": owner }))
                .status(204),
        )
        .await;
        Ok(())
    }
}

/// A one-statement change of an account (enable, promote).
struct FlagChange {
    /// The change; it changes nothing when there is nothing to do.
    update: FlagUpdate,
    /// Completes "user NAME …" in the 409 when nothing changed.
    unchanged: &'static str,
    event: AuditAction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_the_policy_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert!(check_password_policy(&a).is_ok(), "{a}");
        assert_eq!(a.len(), 27, "{a}");
        assert_ne!(a, b);
    }

    fn caller(id: i64) -> AuthUser {
        AuthUser {
            id,
            username: format!("u{id}"),
            is_admin: true,
            session: None,
        }
    }

    #[test]
    fn the_last_admin_and_the_caller_are_guarded() {
        let target = Target {
            id: 1,
            is_admin: true,
            disabled_at: None,
        };
        let last = check_guarded_change(GuardedChange::Demote, "root", &target, &[1], &caller(1))
            .unwrap_err()
            .to_string();
        assert!(last.contains("last enabled server administrator"), "{last}");
        let own =
            check_guarded_change(GuardedChange::Disable, "root", &target, &[1, 2], &caller(1))
                .unwrap_err()
                .to_string();
        assert!(own.contains("your own account"), "{own}");
        assert!(
            check_guarded_change(GuardedChange::Disable, "root", &target, &[1, 2], &caller(2))
                .is_ok()
        );
    }
}
