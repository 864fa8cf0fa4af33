//! Storage of accounts and credentials: the `users`, `api_keys`, `refresh_tokens`,
//! `revoked_tokens`, `login_failures` and `server_settings` tables. The only place the SQL of
//! accounts, sessions, API keys and their administration lives; other features look users up
//! through the `pub(crate)` functions here.

use wanllmdb_api_types::admin::{AdminApiKey, AdminUser};
use wanllmdb_api_types::auth::{ApiKey, User};

use super::{Rotation, TokenKeys, random_hex};
use crate::error::{ApiError, ApiResult};
use crate::store::{BackendKind, Store, format_time};
use crate::{on_backend, with_tx};

impl TokenKeys {
    /// The configured secret, or the one kept in the database (created on first start).
    /// Returns the database's own error: start-up reports it as such.
    pub async fn load(store: &Store, configured: Option<&str>) -> Result<TokenKeys, sqlx::Error> {
        const INSERT_SERVER_SETTINGS: &str = "INSERT INTO server_settings (name, value) VALUES ('jwt_secret', $1) ON CONFLICT (name) DO NOTHING";
        if let Some(s) = configured {
            return Ok(TokenKeys::from_secret(s.as_bytes()));
        }
        let fresh = random_hex(32);
        let secret: String = on_backend!(store, write, |pool| {
            sqlx::query(INSERT_SERVER_SETTINGS)
                .bind(&fresh)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT value FROM server_settings WHERE name = 'jwt_secret'")
                .fetch_one(pool)
                .await?
        });
        Ok(TokenKeys::from_secret(secret.as_bytes()))
    }
}

// ---- Users ----

/// One account.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: i64,
    pub(super) username: String,
    pub(super) email: String,
    pub(super) password_hash: Option<String>,
    pub(super) is_admin: bool,
    pub(super) created_at: i64,
    #[sqlx(default)]
    pub(super) full_name: Option<String>,
    /// Only the login query reads it.
    #[sqlx(default)]
    pub(super) disabled_at: Option<i64>,
}

impl UserRow {
    /// The account as the API shows it.
    pub(super) fn into_api(self) -> User {
        User {
            id: self.id,
            username: self.username,
            email: self.email,
            full_name: self.full_name,
            is_admin: self.is_admin,
            created_at: format_time(self.created_at),
        }
    }
}

/// Inserts an account; a taken username or email is a 409.
pub(super) async fn insert_user(
    store: &Store,
    username: &str,
    email: &str,
    password_hash: Option<String>,
    is_admin: bool,
    now: i64,
) -> ApiResult<UserRow> {
    const INSERT_USERS: &str = "INSERT INTO users (username, email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)
                 RETURNING id, username, email, password_hash, is_admin, created_at";
    Ok(on_backend!(store, write, |pool| {
        sqlx::query_as::<_, UserRow>(INSERT_USERS)
            .bind(username)
            .bind(email)
            .bind(password_hash)
            .bind(is_admin)
            .bind(now)
            .fetch_one(pool)
            .await?
    }))
}

/// Sets an account's display name.
pub(super) async fn set_full_name(store: &Store, id: i64, name: &str) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("UPDATE users SET full_name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Deletes an account.
pub(super) async fn delete_user(store: &Store, id: i64) -> ApiResult<()> {
    store
        .execute_with("DELETE FROM users WHERE id = $1", id)
        .await?;
    Ok(())
}

/// The number of accounts.
pub(super) async fn user_count(store: &Store) -> ApiResult<i64> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await?
    }))
}

/// The account with id `id`, with its display name.
pub(super) async fn user_by_id(store: &Store, id: i64) -> ApiResult<Option<UserRow>> {
    const SELECT_USERS: &str = "SELECT id, username, email, password_hash, is_admin, created_at, full_name FROM users WHERE id = $1";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, UserRow>(SELECT_USERS)
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// The account a login names by username or email, whatever the case, with its disabled
/// time.
pub(super) async fn user_by_login(store: &Store, login: &str) -> ApiResult<Option<UserRow>> {
    const SELECT_USERS: &str = "SELECT id, username, email, password_hash, is_admin, created_at, disabled_at FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1) ORDER BY id LIMIT 1";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, UserRow>(SELECT_USERS)
            .bind(login)
            .fetch_optional(pool)
            .await?
    }))
}

/// An account's password hash (None for an account without a password).
pub(super) async fn password_hash(store: &Store, id: i64) -> ApiResult<Option<String>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?
    }))
}

/// What a credential's account is now: its name, whether it administers the server, and when
/// it was disabled.
#[derive(sqlx::FromRow)]
pub(super) struct AccountState {
    pub(super) username: String,
    pub(super) is_admin: bool,
    pub(super) disabled_at: Option<i64>,
}

/// The state of the account with id `id`.
pub(super) async fn account_state(store: &Store, id: i64) -> ApiResult<Option<AccountState>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as("SELECT username, is_admin, disabled_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// The id and username of the account with id `id`.
pub(crate) async fn id_and_name_by_id(store: &Store, id: i64) -> ApiResult<Option<(i64, String)>> {
    const BY_ID: &str = "SELECT id, username FROM users WHERE id = $1";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, (i64, String)>(BY_ID)
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// The id and username of the account named `username`, whatever the case.
pub(crate) async fn id_and_name_by_username(
    store: &Store,
    username: &str,
) -> ApiResult<Option<(i64, String)>> {
    const BY_NAME: &str = "SELECT id, username FROM users WHERE lower(username) = lower($1)";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, (i64, String)>(BY_NAME)
            .bind(username)
            .fetch_optional(pool)
            .await?
    }))
}

/// The id of the account named `username`, whatever the case.
pub(crate) async fn user_id_by_username(store: &Store, username: &str) -> ApiResult<Option<i64>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar("SELECT id FROM users WHERE lower(username) = lower($1)")
            .bind(username)
            .fetch_optional(pool)
            .await?
    }))
}

// ---- Failed logins ----

/// How many failures `subject` has after `since`, and the time of the first.
pub(super) async fn failures_since(
    store: &Store,
    subject: &str,
    since: i64,
) -> ApiResult<(i64, Option<i64>)> {
    const SELECT_LOGIN_FAILURES: &str =
        "SELECT COUNT(*) AS n, MIN(at) AS first FROM login_failures WHERE subject = $1 AND at > $2";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_LOGIN_FAILURES)
            .bind(subject)
            .bind(since)
            .fetch_one(pool)
            .await?
    }))
}

/// Records one failure at `now` against each of `subjects`, in one transaction.
pub(super) async fn insert_failures(store: &Store, subjects: &[String], now: i64) -> ApiResult<()> {
    with_tx!(store, |tx| {
        for s in subjects {
            sqlx::query("INSERT INTO login_failures (subject, at) VALUES ($1, $2)")
                .bind(s)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
    });
    Ok(())
}

/// Deletes failed logins older than an hour, and revoked and refresh tokens past their
/// expiry.
pub(super) async fn prune(store: &Store, now: i64) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(now - 3_600_000_000)
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

// ---- Sessions: refresh tokens and revoked access tokens ----

const INSERT_REFRESH_TOKENS: &str =
    "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES ($1, $2, $3, $4)";

/// Sessions still alive: refresh-token families with an unrevoked, unexpired token.
const LIVE_SESSIONS: &str = "SELECT COUNT(DISTINCT family) FROM refresh_tokens
    WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2";
/// Revoking every refresh token also kills the access tokens of those families at once
/// (see `Accounts::authenticate`).
const END_SESSIONS: &str =
    "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL";

/// Records a new refresh token of session `family`.
pub(super) async fn insert_refresh_token(
    store: &Store,
    jti: &str,
    family: &str,
    user_id: i64,
    expires_at: i64,
) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_REFRESH_TOKENS)
            .bind(jti)
            .bind(family)
            .bind(user_id)
            .bind(expires_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Spends the live refresh token `jti` and records its successor `next` (expiring at
/// `expires_at`) in one transaction, so a concurrent refresh that loses the race finds the
/// successor. False when the token was already spent, revoked or expired.
pub(super) async fn rotate_refresh_token(
    store: &Store,
    jti: &str,
    next: &Rotation,
    family: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> ApiResult<bool> {
    const UPDATE_REFRESH_TOKENS: &str = "UPDATE refresh_tokens SET used_at = $1, rotated_jti = $2, rotated_access_jti = $3, rotated_iat = $4 WHERE jti = $5 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1";
    Ok(with_tx!(store, |tx| {
        let n = sqlx::query(UPDATE_REFRESH_TOKENS)
            .bind(now)
            .bind(&next.refresh_jti)
            .bind(&next.access_jti)
            .bind(next.iat)
            .bind(jti)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            sqlx::query(INSERT_REFRESH_TOKENS)
                .bind(&next.refresh_jti)
                .bind(family)
                .bind(user_id)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
        }
        n == 1
    }))
}

/// A refresh token that could not be spent now, with the pair it was rotated into.
#[derive(sqlx::FromRow)]
pub(super) struct SpentToken {
    pub(super) used_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
    rotated_jti: Option<String>,
    rotated_access_jti: Option<String>,
    rotated_iat: Option<i64>,
}

impl SpentToken {
    /// The pair the token was rotated into, if it was.
    pub(super) fn rotation(&self) -> Option<Rotation> {
        Some(Rotation {
            refresh_jti: self.rotated_jti.clone()?,
            access_jti: self.rotated_access_jti.clone()?,
            iat: self.rotated_iat?,
        })
    }
}

/// The refresh token `jti`, whatever its state.
pub(super) async fn refresh_token(store: &Store, jti: &str) -> ApiResult<Option<SpentToken>> {
    const SELECT_REFRESH_TOKENS: &str = "SELECT used_at, revoked_at, rotated_jti, rotated_access_jti, rotated_iat FROM refresh_tokens WHERE jti = $1";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, SpentToken>(SELECT_REFRESH_TOKENS)
            .bind(jti)
            .fetch_optional(pool)
            .await?
    }))
}

/// Revokes every refresh token of session `family`.
pub(super) async fn revoke_family(store: &Store, family: &str, now: i64) -> ApiResult<()> {
    const UPDATE_REFRESH_TOKENS: &str =
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL";
    on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_REFRESH_TOKENS)
            .bind(now)
            .bind(family)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Whether the access token `jti` was revoked, or its session `family` was ended.
pub(super) async fn access_token_revoked(
    store: &Store,
    jti: &str,
    family: &str,
) -> ApiResult<bool> {
    const SELECT_REVOKED_TOKENS: &str = "SELECT expires_at FROM revoked_tokens WHERE jti = $1
                 UNION ALL SELECT expires_at FROM refresh_tokens WHERE family = $2 AND revoked_at IS NOT NULL
                 LIMIT 1";
    let revoked: Option<i64> = on_backend!(store, read, |pool| {
        sqlx::query_scalar(SELECT_REVOKED_TOKENS)
            .bind(jti)
            .bind(family)
            .fetch_optional(pool)
            .await?
    });
    Ok(revoked.is_some())
}

/// Revokes the access token `jti` until it expires at `expires_at`.
pub(super) async fn revoke_access_token(
    store: &Store,
    jti: &str,
    expires_at: i64,
) -> ApiResult<()> {
    const INSERT_REVOKED_TOKENS: &str =
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_REVOKED_TOKENS)
            .bind(jti)
            .bind(expires_at)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Sets an account's password hash and, in the same transaction, ends its sessions other
/// than `keep_family`; returns how many live sessions were ended.
pub(super) async fn set_password_ending_other_sessions(
    store: &Store,
    user_id: i64,
    hash: &str,
    keep_family: &str,
    now: i64,
) -> ApiResult<i64> {
    const SELECT_REFRESH_TOKENS: &str = "SELECT COUNT(DISTINCT family) FROM refresh_tokens WHERE user_id = $1 AND family <> $2 AND revoked_at IS NULL AND expires_at > $3";
    const UPDATE_REFRESH_TOKENS: &str = "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND family <> $3 AND revoked_at IS NULL";
    Ok(with_tx!(store, |tx| {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let ended: i64 = sqlx::query_scalar(SELECT_REFRESH_TOKENS)
            .bind(user_id)
            .bind(keep_family)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(UPDATE_REFRESH_TOKENS)
            .bind(now)
            .bind(user_id)
            .bind(keep_family)
            .execute(&mut *tx)
            .await?;
        ended
    }))
}

/// The account of a browser session, and whether the session `family` was ended.
#[derive(sqlx::FromRow)]
pub(super) struct WebSessionAccount {
    #[sqlx(flatten)]
    pub(super) account: AccountState,
    pub(super) revoked: bool,
}

/// The state of account `user_id` and of its browser session `family`.
pub(super) async fn web_session_account(
    store: &Store,
    user_id: i64,
    family: &str,
) -> ApiResult<Option<WebSessionAccount>> {
    const SELECT_REFRESH_TOKENS: &str = "SELECT u.username, u.is_admin, u.disabled_at,
                        EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family = $2 AND t.revoked_at IS NOT NULL) AS revoked
                 FROM users u WHERE u.id = $1";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_REFRESH_TOKENS)
            .bind(user_id)
            .bind(family)
            .fetch_optional(pool)
            .await?
    }))
}

// ---- API keys ----

/// One API key, without its owner.
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: i64,
    name: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl ApiKeyRow {
    fn into_api(self) -> ApiKey {
        ApiKey {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            created_at: format_time(self.created_at),
            last_used_at: self.last_used_at.map(format_time),
        }
    }
}

/// Inserts a key by the hash of its secret; returns its id.
pub(super) async fn insert_api_key(
    store: &Store,
    user_id: i64,
    name: &str,
    prefix: &str,
    key_hash: &str,
    now: i64,
) -> ApiResult<i64> {
    const INSERT_API_KEYS: &str = "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id";
    Ok(on_backend!(store, write, |pool| {
        sqlx::query_scalar(INSERT_API_KEYS)
            .bind(user_id)
            .bind(name)
            .bind(prefix)
            .bind(key_hash)
            .bind(now)
            .fetch_one(pool)
            .await?
    }))
}

/// An account's live keys, oldest first.
pub(super) async fn live_api_keys(store: &Store, user_id: i64) -> ApiResult<Vec<ApiKey>> {
    const SELECT_API_KEYS: &str = "SELECT id, name, prefix, created_at, last_used_at FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ApiKeyRow>(SELECT_API_KEYS)
            .bind(user_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(ApiKeyRow::into_api)
            .collect()
    }))
}

/// Revokes live key `id` when `user_id` owns it or `any_owner` is set; returns how many keys
/// were revoked (0 or 1).
pub(super) async fn revoke_own_api_key(
    store: &Store,
    id: i64,
    user_id: i64,
    any_owner: bool,
    now: i64,
) -> ApiResult<u64> {
    const UPDATE_API_KEYS: &str = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND (user_id = $3 OR $4)";
    Ok(on_backend!(store, write, |pool| {
        sqlx::query(UPDATE_API_KEYS)
            .bind(now)
            .bind(id)
            .bind(user_id)
            .bind(any_owner)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// A live key and the state of its account.
#[derive(sqlx::FromRow)]
pub(super) struct KeyAccount {
    pub(super) id: i64,
    pub(super) last_used_at: Option<i64>,
    pub(super) user_id: i64,
    #[sqlx(flatten)]
    pub(super) account: AccountState,
}

/// The live key whose secret hashes to `key_hash`, with its account.
pub(super) async fn live_key_by_hash(
    store: &Store,
    key_hash: &str,
) -> ApiResult<Option<KeyAccount>> {
    const SELECT_API_KEYS: &str = "SELECT k.id, k.last_used_at, u.id AS user_id, u.username, u.is_admin, u.disabled_at FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1 AND k.revoked_at IS NULL";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_API_KEYS)
            .bind(key_hash)
            .fetch_optional(pool)
            .await?
    }))
}

/// Records that key `id` was used at `now`.
pub(super) async fn touch_api_key(store: &Store, id: i64, now: i64) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

// ---- Administration ----

const USER_SELECT: &str = "SELECT u.id, u.username, u.email, u.is_admin, u.disabled_at, u.created_at,
    (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id AND k.revoked_at IS NULL) AS active_api_keys
    FROM users u";

/// The enabled administrators. On PostgreSQL their rows are locked, so two administrators
/// demoting or disabling each other at once cannot leave the server with none; SQLite's
/// `BEGIN IMMEDIATE` already serialises the transactions.
const ENABLED_ADMINS_SQLITE: &str =
    "SELECT id FROM users WHERE is_admin AND disabled_at IS NULL ORDER BY id";
const ENABLED_ADMINS_POSTGRES: &str =
    "SELECT id FROM users WHERE is_admin AND disabled_at IS NULL ORDER BY id FOR UPDATE";

/// The account a guarded change (disable, demote) is about.
const GUARDED_TARGET: &str =
    "SELECT id, is_admin, disabled_at FROM users WHERE lower(username) = lower($1)";

fn enabled_admins_sql(store: &Store) -> &'static str {
    match store.kind() {
        BackendKind::Sqlite => ENABLED_ADMINS_SQLITE,
        BackendKind::Postgres => ENABLED_ADMINS_POSTGRES,
    }
}

/// An account as administrators see it.
#[derive(sqlx::FromRow)]
struct AdminUserRow {
    id: i64,
    username: String,
    email: String,
    is_admin: bool,
    disabled_at: Option<i64>,
    created_at: i64,
    active_api_keys: i64,
}

impl AdminUserRow {
    fn into_api(self) -> AdminUser {
        AdminUser {
            id: self.id,
            username: self.username,
            email: self.email,
            is_admin: self.is_admin,
            disabled: self.disabled_at.is_some(),
            disabled_at: self.disabled_at.map(format_time),
            created_at: format_time(self.created_at),
            active_api_keys: self.active_api_keys,
        }
    }
}

/// The account named `username`, whatever the case.
pub(super) async fn admin_user(store: &Store, username: &str) -> ApiResult<Option<AdminUser>> {
    let sql = format!("{USER_SELECT} WHERE lower(u.username) = lower($1)");
    let row = on_backend!(store, read, |pool| {
        sqlx::query_as::<_, AdminUserRow>(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(AdminUserRow::into_api))
}

/// A `LIKE` pattern matching `q` anywhere, case-insensitively.
fn contains_pattern(q: &str) -> String {
    format!(
        "%{}%",
        q.to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Up to `limit` accounts with ids above `after`, oldest first; `q` keeps those whose
/// username or email contains it.
pub(super) async fn admin_users_page(
    store: &Store,
    after: i64,
    q: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<AdminUser>> {
    let pattern = q.filter(|q| !q.is_empty()).map(contains_pattern);
    let sql = format!(
        "{USER_SELECT} WHERE u.id > $1
           AND ($2 IS NULL OR LOWER(u.username) LIKE $2 ESCAPE '\\' OR LOWER(u.email) LIKE $2 ESCAPE '\\')
         ORDER BY u.id LIMIT $3"
    );
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, AdminUserRow>(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(&pattern)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(AdminUserRow::into_api)
            .collect()
    }))
}

/// The account a guarded change (disable, demote) is about, read inside its transaction.
#[derive(sqlx::FromRow)]
pub(super) struct Target {
    pub(super) id: i64,
    pub(super) is_admin: bool,
    pub(super) disabled_at: Option<i64>,
}

/// Disables the account named `username` once `check` accepts it (shown the account and
/// the enabled administrators, read in the same transaction), and revokes its API keys and
/// sessions; returns how many keys and live sessions were revoked. 404 for an unknown name.
pub(super) async fn disable_user(
    store: &Store,
    username: &str,
    now: i64,
    check: impl FnOnce(&Target, &[i64]) -> ApiResult<()>,
) -> ApiResult<(i64, i64)> {
    let admins_sql = enabled_admins_sql(store);
    Ok(with_tx!(store, |tx| {
        let admins: Vec<i64> = sqlx::query_scalar(admins_sql).fetch_all(&mut *tx).await?;
        let target = sqlx::query_as::<_, Target>(GUARDED_TARGET)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {username}")))?;
        check(&target, &admins)?;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(now)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
        let keys = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(target.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let sessions: i64 = sqlx::query_scalar(LIVE_SESSIONS)
            .bind(target.id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(END_SESSIONS)
            .bind(now)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
        (keys as i64, sessions)
    }))
}

/// Makes the account named `username` an ordinary account once `check` accepts it (shown
/// the account and the enabled administrators, read in the same transaction). 404 for an
/// unknown name.
pub(super) async fn demote_user(
    store: &Store,
    username: &str,
    check: impl FnOnce(&Target, &[i64]) -> ApiResult<()>,
) -> ApiResult<()> {
    let admins_sql = enabled_admins_sql(store);
    with_tx!(store, |tx| {
        let admins: Vec<i64> = sqlx::query_scalar(admins_sql).fetch_all(&mut *tx).await?;
        let target = sqlx::query_as::<_, Target>(GUARDED_TARGET)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {username}")))?;
        check(&target, &admins)?;
        sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(false)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// A one-statement change of an account that changes nothing when already made.
#[derive(Debug, Clone, Copy)]
pub(super) enum FlagUpdate {
    /// Lets a disabled account log in again.
    Enable,
    /// Makes an account a server administrator.
    Promote,
}

/// Applies `update` to the account named `username`; returns how many rows changed (0 for
/// an unknown account or when there was nothing to change).
pub(super) async fn apply_flag(
    store: &Store,
    update: FlagUpdate,
    username: &str,
) -> ApiResult<u64> {
    let sql = match update {
        FlagUpdate::Enable => {
            "UPDATE users SET disabled_at = NULL WHERE lower(username) = lower($1) AND disabled_at IS NOT NULL"
        }
        FlagUpdate::Promote => {
            "UPDATE users SET is_admin = TRUE WHERE lower(username) = lower($1) AND NOT is_admin"
        }
    };
    Ok(on_backend!(store, write, |pool| {
        sqlx::query(sql)
            .bind(username)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Sets the password hash of the account named `username` and ends all its sessions in one
/// transaction; returns how many live sessions were ended. 404 for an unknown name.
pub(super) async fn reset_password(
    store: &Store,
    username: &str,
    hash: &str,
    now: i64,
) -> ApiResult<i64> {
    const UPDATE_USERS: &str =
        "UPDATE users SET password_hash = $1 WHERE lower(username) = lower($2) RETURNING id";
    Ok(with_tx!(store, |tx| {
        let id: i64 = sqlx::query_scalar(UPDATE_USERS)
            .bind(hash)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {username}")))?;
        let sessions: i64 = sqlx::query_scalar(LIVE_SESSIONS)
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(END_SESSIONS)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sessions
    }))
}

/// One live key with its owner.
#[derive(sqlx::FromRow)]
struct AdminApiKeyRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    user_id: i64,
    username: String,
}

/// Up to `limit` live keys with ids above `after`, of every account or of `owner`, oldest
/// first.
pub(super) async fn admin_api_keys_page(
    store: &Store,
    after: i64,
    owner: Option<i64>,
    limit: i64,
) -> ApiResult<Vec<AdminApiKey>> {
    const SELECT_API_KEYS: &str =
        "SELECT k.id, k.name, k.prefix, k.created_at, k.last_used_at, u.id AS user_id, u.username
                 FROM api_keys k JOIN users u ON u.id = k.user_id
                 WHERE k.revoked_at IS NULL AND k.id > $1 AND ($2 IS NULL OR k.user_id = $2)
                 ORDER BY k.id LIMIT $3";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, AdminApiKeyRow>(SELECT_API_KEYS)
            .bind(after)
            .bind(owner)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| AdminApiKey {
                key: r.key.into_api(),
                user_id: r.user_id,
                username: r.username,
            })
            .collect()
    }))
}

/// Revokes live key `id` whoever owns it; returns the owner's username, None when there was
/// no such live key.
pub(super) async fn revoke_any_api_key(
    store: &Store,
    id: i64,
    now: i64,
) -> ApiResult<Option<String>> {
    const UPDATE_API_KEYS: &str = "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING user_id";
    Ok(on_backend!(store, write, |pool| {
        let user_id: Option<i64> = sqlx::query_scalar(UPDATE_API_KEYS)
            .bind(now)
            .bind(id)
            .fetch_optional(pool)
            .await?;
        match user_id {
            Some(u) => {
                sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
                    .bind(u)
                    .fetch_optional(pool)
                    .await?
            }
            None => None,
        }
    }))
}
