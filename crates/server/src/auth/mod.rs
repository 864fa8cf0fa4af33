//! Accounts, passwords, sessions (JWT access + rotating refresh tokens) and API keys.

pub mod admin;
pub mod admin_routes;
mod jwt;
pub(crate) mod keys;
pub mod routes;
pub(crate) mod store;
pub mod web;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wanllmdb_api_types::auth::{ApiKey, ChangePasswordRequest, CreatedApiKey, TokenPair, User};

use crate::audit::{self, AuditAction, AuditEvent};
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientInfo;
use crate::state::AppState;
use crate::store::{Store, format_time, now_us};
pub use keys::{TokenKeys, random_hex};

/// Prefix of every API key, so keys are recognisable in leaked text and told apart from JWTs.
pub const API_KEY_PREFIX: &str = "wlk_";
const FAILED_LOGINS_PER_MINUTE: i64 = 5;

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Server administrator.
    pub is_admin: bool,
    /// The login session, when the caller used an access token (not an API key).
    pub session: Option<Session>,
}

/// The login an access token belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token's id.
    pub jti: String,
    /// When the access token expires (Unix seconds).
    pub exp: i64,
    /// The refresh-token family of the login: every token pair rotated from one login.
    pub family: String,
}

/// The caller of a request: a user, or anonymous.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// None for anonymous callers.
    pub user: Option<AuthUser>,
}

impl Actor {
    /// The user, or 401.
    pub fn require_user(&self) -> ApiResult<&AuthUser> {
        self.user.as_ref().ok_or_else(authentication_required)
    }

    /// The user's id, if any.
    pub fn user_id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }

    /// Whether the caller is a server administrator.
    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(parts.extensions.get::<Actor>().cloned().unwrap_or_default())
    }
}

/// Seconds of clock difference between replicas tolerated on token times.
const CLOCK_LEEWAY_SECS: u64 = 5;

/// The ids and issue time of one token pair.
struct Rotation {
    refresh_jti: String,
    access_jti: String,
    /// Unix seconds.
    iat: i64,
}

impl Rotation {
    fn fresh() -> Rotation {
        Rotation {
            refresh_jti: random_hex(16),
            access_jti: random_hex(16),
            iat: now_us() / 1_000_000,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    iat: i64,
    exp: i64,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fam: Option<String>,
}

/// What failed password attempts count against: the account (by id, so its username and its
/// email share one limit; a name no account has, by that name) and the client address.
fn failure_subjects(account: Result<i64, &str>, client: &ClientInfo) -> Vec<String> {
    let mut subjects = vec![match account {
        Ok(id) => format!("account:{id}"),
        Err(login) => format!("login:{}", login.to_lowercase()),
    }];
    if let Some(ip) = &client.ip {
        subjects.push(format!("ip:{ip}"));
    }
    subjects
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Hashes a password with Argon2id (off the async threads: it is deliberately slow).
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Checks the password policy: 12+ characters with upper, lower, digit and symbol, and not a
/// common or easily guessed password.
pub fn check_password_policy(p: &str) -> ApiResult<()> {
    check_password_for(p, &[])
}

/// The password policy, also refusing passwords built from the account's own names
/// (`user_inputs`: username, email).
pub fn check_password_for(p: &str, user_inputs: &[&str]) -> ApiResult<()> {
    let mut missing = Vec::new();
    if p.chars().count() < 12 {
        missing.push("at least 12 characters");
    }
    if !p.chars().any(|c| c.is_uppercase()) {
        missing.push("an upper-case letter");
    }
    if !p.chars().any(|c| c.is_lowercase()) {
        missing.push("a lower-case letter");
    }
    if !p.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if !p
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        missing.push("a symbol");
    }
    if p.len() > 1024 {
        return Err(ApiError::invalid("password is longer than 1024 bytes"));
    }
    if !missing.is_empty() {
        return Err(ApiError::InvalidInputDetails {
            message: format!("password is too weak: it needs {}", missing.join(", ")),
            details: serde_json::json!({ "field": "password", "missing": missing }),
        });
    }
    check_not_common(p, user_inputs)
}

/// Refuses passwords that dictionaries of leaked passwords, keyboard patterns, dates and the
/// account's own names guess quickly (zxcvbn's score below 3 of 4: under 10^8 guesses).
/// Passwords longer than 64 characters are not estimated (and not common).
fn check_not_common(p: &str, user_inputs: &[&str]) -> ApiResult<()> {
    if p.chars().count() > 64 {
        return Ok(());
    }
    let estimate = zxcvbn::zxcvbn(p, user_inputs);
    if u8::from(estimate.score()) >= 3 {
        return Ok(());
    }
    let why = estimate
        .feedback()
        .and_then(|f| f.warning())
        .map_or_else(String::new, |w| format!(" ({w})"));
    Err(ApiError::InvalidInputDetails {
        message: format!(
            "password is too easy to guess: it is a common password or built from common words, \
             patterns or your own names{why}; choose a longer, less predictable one"
        ),
        details: serde_json::json!({ "field": "password", "reason": "common" }),
    })
}

/// A display name: trimmed, at most 256 bytes, without control characters; empty means none.
fn check_full_name(name: Option<&str>) -> ApiResult<Option<&str>> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.len() > 256 {
        return Err(ApiError::invalid("full_name is longer than 256 bytes"));
    }
    ApiError::check_text("full_name", name)?;
    Ok(Some(name))
}

pub(crate) fn check_username(u: &str) -> ApiResult<()> {
    let ok = (3..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username must be 3 to 64 characters of letters, digits, '.', '_' or '-'",
        ))
    }
}

pub(crate) fn check_email(e: &str) -> ApiResult<()> {
    let ok = e.len() <= 254
        && !e.contains(char::is_whitespace)
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{e:?} is not a valid email address"
        )))
    }
}

/// The authentication service.
pub struct Accounts<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Accounts<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// Creates a user (password policy and uniqueness checked).
    pub async fn register(
        &self,
        client: &ClientInfo,
        actor: &Actor,
        req: &wanllmdb_api_types::auth::RegisterRequest,
    ) -> ApiResult<User> {
        let (username, email, password) = (&req.username, &req.email, &req.password);
        if !self.state.config.allow_registration && !actor.is_admin() {
            return Err(ApiError::Forbidden(
                "registration is closed on this server; ask an administrator to create your account".into(),
            ));
        }
        check_username(username)?;
        check_email(email)?;
        check_password_for(password, &[username.as_str(), email.as_str()])?;
        let full_name = check_full_name(req.full_name.as_deref())?;
        let hash = hash_password(password.to_string()).await?;
        let mut user = self.insert_user(username, email, Some(hash), false).await?;
        if let Some(name) = full_name {
            store::set_full_name(self.store(), user.id, name).await?;
            user.full_name = Some(name.to_string());
        }
        // The actor is whoever registered the account: its new owner, or an administrator.
        let (by_id, by_name) = actor
            .user
            .as_ref()
            .map_or((user.id, user.username.as_str()), |u| {
                (u.id, u.username.as_str())
            });
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::UserRegister)
                .client(client)
                .user(by_id, by_name)
                .resource(format!("user:{}", user.username))
                .status(201),
        )
        .await;
        Ok(user)
    }

    /// Inserts a user row.
    pub async fn insert_user(
        &self,
        username: &str,
        email: &str,
        password_hash: Option<String>,
        is_admin: bool,
    ) -> ApiResult<User> {
        let res = store::insert_user(
            self.store(),
            username,
            &email.to_lowercase(),
            password_hash,
            is_admin,
            now_us(),
        )
        .await;
        match res {
            Ok(row) => Ok(row.into_api()),
            Err(ApiError::Conflict(_)) => Err(ApiError::Conflict(
                "that username or email is already registered".into(),
            )),
            Err(other) => Err(other),
        }
    }

    /// Deletes a user row (start-up undoes a bootstrap account it could not finish).
    pub async fn delete_user(&self, id: i64) -> ApiResult<()> {
        store::delete_user(self.store(), id).await
    }

    /// The number of users (zero on a fresh database).
    pub async fn user_count(&self) -> ApiResult<i64> {
        store::user_count(self.store()).await
    }

    /// Looks a user up by id.
    pub async fn user(&self, id: i64) -> ApiResult<User> {
        let row = store::user_by_id(self.store(), id).await?;
        row.map(store::UserRow::into_api)
            .ok_or_else(|| ApiError::not_found("user"))
    }

    /// Seconds to wait when any subject has used up its failed attempts for the minute.
    async fn retry_after(&self, subjects: &[String]) -> ApiResult<Option<u64>> {
        for s in subjects {
            let (n, first) = self.failures_within_minute(s).await?;
            if n >= FAILED_LOGINS_PER_MINUTE {
                let wait =
                    first.map_or(60, |f| ((f + 60_000_000 - now_us()) / 1_000_000 + 1).max(1));
                return Ok(Some(wait as u64));
            }
        }
        Ok(None)
    }

    async fn failures_within_minute(&self, subject: &str) -> ApiResult<(i64, Option<i64>)> {
        let since = now_us() - 60_000_000;
        store::failures_since(self.store(), subject, since).await
    }

    async fn record_failure(&self, subjects: &[String]) -> ApiResult<()> {
        store::insert_failures(self.store(), subjects, now_us()).await
    }

    /// Records a refused login with its reason and the account's failures in the current
    /// window, this one included (refusals the limiter does not count add one).
    async fn audit_failed_login(
        &self,
        client: &ClientInfo,
        subjects: &[String],
        username: &str,
        reason: &str,
        http_status: i64,
    ) -> ApiResult<()> {
        let (counted, _) = self.failures_within_minute(&subjects[0]).await?;
        // Wrong passwords and unknown users were just added to the window; refusals were not.
        let uncounted = !matches!(reason, "invalid_password" | "unknown_user");
        let attempts = counted + i64::from(uncounted);
        let event = audit::failed_login(client, username, reason, attempts, http_status);
        audit::record(self.store(), event).await;
        Ok(())
    }

    /// Checks a username/password pair and issues tokens. Rate-limited per username and IP.
    pub async fn login(
        &self,
        client: &ClientInfo,
        username: &str,
        password: &str,
    ) -> ApiResult<TokenPair> {
        let user_id = self.check_login(client, username, password).await?;
        self.issue_pair(user_id, &random_hex(16)).await
    }

    /// Checks a username/password pair (rate-limited, audited) and returns the user's id.
    pub async fn check_login(
        &self,
        client: &ClientInfo,
        username: &str,
        password: &str,
    ) -> ApiResult<i64> {
        // Usernames and emails match whatever their case; both name one account.
        let row = store::user_by_login(self.store(), username).await?;
        let subjects = failure_subjects(row.as_ref().map(|r| r.id).ok_or(username), client);
        if let Some(wait) = self.retry_after(&subjects).await? {
            self.audit_failed_login(client, &subjects, username, "rate_limited", 429)
                .await?;
            return Err(ApiError::TooManyRequests {
                message: "too many failed logins; wait before trying again".into(),
                retry_after: wait,
            });
        }
        // Unknown users cost the same as wrong passwords: verify against a dummy hash.
        let hash = row
            .as_ref()
            .and_then(|r| r.password_hash.clone())
            .unwrap_or_else(|| self.state.dummy_hash.clone());
        let ok = verify_password(password.to_string(), hash).await
            && row.as_ref().is_some_and(|r| r.password_hash.is_some());
        let reason = if row.is_some() {
            "invalid_password"
        } else {
            "unknown_user"
        };
        let Some(user) = row.filter(|_| ok) else {
            self.record_failure(&subjects).await?;
            self.audit_failed_login(client, &subjects, username, reason, 401)
                .await?;
            return Err(ApiError::Unauthenticated(
                "invalid username or password".into(),
            ));
        };
        // Only after the password matched, so a wrong guess never learns the account is disabled.
        if user.disabled_at.is_some() {
            self.audit_failed_login(client, &subjects, username, "account_disabled", 403)
                .await?;
            return Err(ApiError::Forbidden(
                "account is disabled; ask a server administrator".into(),
            ));
        }
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::LoginSuccess)
                .client(client)
                .user(user.id, &user.username)
                .status(200),
        )
        .await;
        Ok(user.id)
    }

    async fn issue_pair(&self, user_id: i64, family: &str) -> ApiResult<TokenPair> {
        let pair = Rotation::fresh();
        let expires = self.refresh_expiry(&pair);
        store::insert_refresh_token(self.store(), &pair.refresh_jti, family, user_id, expires)
            .await?;
        self.sign_pair(user_id, family, &pair)
    }

    /// When the refresh token of `pair` expires, in microseconds.
    fn refresh_expiry(&self, pair: &Rotation) -> i64 {
        (pair.iat + self.state.config.refresh_token_ttl.as_secs() as i64) * 1_000_000
    }

    /// The two tokens of a pair. Signing is deterministic, so the same ids and time give the
    /// same tokens: a refresh re-presented in the grace window gets exactly the pair it got.
    fn sign_pair(&self, user_id: i64, family: &str, pair: &Rotation) -> ApiResult<TokenPair> {
        let cfg = &self.state.config;
        let access_ttl = cfg.access_token_ttl.as_secs() as i64;
        let refresh_ttl = cfg.refresh_token_ttl.as_secs() as i64;
        let claims = |jti: &str, typ: &str, ttl: i64| Claims {
            sub: user_id.to_string(),
            jti: jti.to_string(),
            iat: pair.iat,
            exp: pair.iat + ttl,
            typ: typ.into(),
            // The session's family, so ending a session also ends its live access tokens.
            fam: Some(family.to_string()),
        };
        let enc = |c: &Claims| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), c, &self.state.keys.encoding)
                .map_err(|e| ApiError::Internal(format!("token signing failed: {e}")))
        };
        Ok(TokenPair {
            access_token: enc(&claims(&pair.access_jti, "access", access_ttl))?,
            refresh_token: enc(&claims(&pair.refresh_jti, "refresh", refresh_ttl))?,
            token_type: "bearer".into(),
            expires_in: access_ttl,
        })
    }

    fn decode(&self, token: &str, typ: &str) -> ApiResult<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = CLOCK_LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.state.keys.decoding, &v)
            .map_err(|e| ApiError::Unauthenticated(format!("invalid or expired token: {e}")))?;
        if data.claims.typ != typ {
            return Err(ApiError::Unauthenticated(format!("expected a {typ} token")));
        }
        if data.claims.iat > now_us() / 1_000_000 + CLOCK_LEEWAY_SECS as i64 {
            return Err(ApiError::Unauthenticated(
                "invalid token: it says it was issued in the future".into(),
            ));
        }
        Ok(data.claims)
    }

    /// Exchanges a refresh token for a new pair. A refresh token works once: presented again
    /// within the grace window after its rotation (two tabs, a retried request) it gets the
    /// same new pair; later, it revokes its whole family (someone else may hold a copy).
    pub async fn refresh(&self, client: &ClientInfo, token: &str) -> ApiResult<TokenPair> {
        let claims = self.decode(token, "refresh")?;
        let family = claims.fam.clone().unwrap_or_default();
        let user_id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ApiError::Unauthenticated("invalid token subject".into()))?;
        let now = now_us();
        let next = Rotation::fresh();
        let expires = self.refresh_expiry(&next);
        let rotated = store::rotate_refresh_token(
            self.store(),
            &claims.jti,
            &next,
            &family,
            user_id,
            now,
            expires,
        )
        .await?;
        if rotated {
            return self.sign_pair(user_id, &family, &next);
        }
        let spent = store::refresh_token(self.store(), &claims.jti).await?;
        let Some(spent) = spent.filter(|t| t.revoked_at.is_none()) else {
            return Err(ApiError::Unauthenticated(
                "refresh token is revoked or expired; log in again".into(),
            ));
        };
        let grace = self.state.config.refresh_grace.as_micros() as i64;
        if let (Some(used), Some(pair)) = (spent.used_at, spent.rotation())
            && now - used <= grace
        {
            return self.sign_pair(user_id, &family, &pair);
        }
        if spent.used_at.is_none() {
            // Unspent yet not rotated: it expired.
            return Err(ApiError::Unauthenticated(
                "refresh token is revoked or expired; log in again".into(),
            ));
        }
        // A spent token presented again: someone else may hold a copy. End the session.
        self.revoke_family(&family).await?;
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::RefreshTokenReuse)
                .client(client)
                .user_id(user_id)
                .status(401),
        )
        .await;
        Err(ApiError::Unauthenticated(
            "refresh token was already used; its session has been ended for safety, log in again"
                .into(),
        ))
    }

    async fn revoke_family(&self, family: &str) -> ApiResult<()> {
        store::revoke_family(self.store(), family, now_us()).await
    }

    /// Ends a session: revokes the access token and every refresh token of its login (the
    /// token family), so neither works afterwards on any replica. A refresh token given in the
    /// body must be the caller's; its family is revoked too.
    pub async fn logout(
        &self,
        client: &ClientInfo,
        user: &AuthUser,
        refresh_token: Option<&str>,
    ) -> ApiResult<()> {
        let Some(session) = &user.session else {
            return Err(ApiError::invalid(
                "logout ends a session token; API keys are revoked with DELETE /api/v1/auth/api-keys/{id}",
            ));
        };
        // Check the refresh token first, so a bad one changes nothing.
        let other_family = match refresh_token {
            Some(rt) => {
                let claims = self.decode(rt, "refresh")?;
                if claims.sub != user.id.to_string() {
                    return Err(ApiError::Forbidden(
                        "that refresh token belongs to another user".into(),
                    ));
                }
                claims.fam.filter(|f| *f != session.family)
            }
            None => None,
        };
        store::revoke_access_token(self.store(), &session.jti, session.exp * 1_000_000).await?;
        if !session.family.is_empty() {
            self.revoke_family(&session.family).await?;
        }
        if let Some(f) = other_family {
            self.revoke_family(&f).await?;
        }
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::Logout)
                .client(client)
                .user(user.id, &user.username)
                .status(204),
        )
        .await;
        Ok(())
    }

    /// Changes the caller's own password. Wrong current passwords count as failed logins of
    /// the account and the client, so guessing is rate-limited like logging in. The caller's
    /// other sessions end (API keys stay valid); returns how many.
    pub async fn change_password(
        &self,
        client: &ClientInfo,
        user: &AuthUser,
        req: &ChangePasswordRequest,
    ) -> ApiResult<i64> {
        let subjects = failure_subjects(Ok(user.id), client);
        if let Some(wait) = self.retry_after(&subjects).await? {
            return Err(ApiError::TooManyRequests {
                message: "too many wrong passwords; wait before trying again".into(),
                retry_after: wait,
            });
        }
        self.check_current_password(client, user, &subjects, req.current_password.as_deref())
            .await?;
        check_password_for(&req.new_password, &[user.username.as_str()])?;
        if req.current_password.as_deref() == Some(req.new_password.as_str()) {
            return Err(ApiError::invalid(
                "the new password must differ from the current one",
            ));
        }
        let hash = hash_password(req.new_password.clone()).await?;
        // Keep the session making the change; API keys carry no session.
        let keep = user
            .session
            .as_ref()
            .map(|s| s.family.clone())
            .unwrap_or_default();
        let ended = store::set_password_ending_other_sessions(
            self.store(),
            user.id,
            &hash,
            &keep,
            now_us(),
        )
        .await?;
        // The old password stops working for Basic authentication too.
        self.state.basic_logins.clear();
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::PasswordChange)
                .client(client)
                .user(user.id, &user.username)
                .resource(format!("user:{}", user.username))
                .status(204)
                .metadata(serde_json::json!({ "sessions_ended": ended })),
        )
        .await;
        Ok(ended)
    }

    /// Checks the password a user says is theirs; a mismatch is recorded as a failure.
    async fn check_current_password(
        &self,
        client: &ClientInfo,
        user: &AuthUser,
        subjects: &[String],
        given: Option<&str>,
    ) -> ApiResult<()> {
        let stored = store::password_hash(self.store(), user.id).await?;
        let Some(stored) = stored else {
            // An account made with only an API key (the bootstrap admin) sets its first one.
            return Ok(());
        };
        let Some(given) = given else {
            return Err(ApiError::InvalidInputDetails {
                message: "current_password is required to change the password".into(),
                details: serde_json::json!({ "field": "current_password" }),
            });
        };
        if verify_password(given.to_string(), stored).await {
            return Ok(());
        }
        self.record_failure(subjects).await?;
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::PasswordChangeFailure)
                .client(client)
                .user(user.id, &user.username)
                .resource(format!("user:{}", user.username))
                .status(400),
        )
        .await;
        Err(ApiError::InvalidInputDetails {
            message: "current_password is not this account's password".into(),
            details: serde_json::json!({ "field": "current_password" }),
        })
    }

    /// Creates an API key for a user; the secret is returned once.
    pub async fn create_api_key(
        &self,
        client: &ClientInfo,
        user: &AuthUser,
        name: Option<&str>,
    ) -> ApiResult<CreatedApiKey> {
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        if name.len() > 128 {
            return Err(ApiError::invalid("API key name is longer than 128 bytes"));
        }
        ApiError::check_text("API key name", name)?;
        let created = self.insert_api_key(user.id, name).await?;
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::ApiKeyCreated)
                .client(client)
                .user(user.id, &user.username)
                .resource(format!("api_key:{}", created.info.id))
                .status(201),
        )
        .await;
        Ok(created)
    }

    /// Inserts a key row (also used to bootstrap the admin).
    pub async fn insert_api_key(&self, user_id: i64, name: &str) -> ApiResult<CreatedApiKey> {
        let key = format!("{API_KEY_PREFIX}{}", random_hex(24));
        let prefix: String = key.chars().take(12).collect();
        let now = now_us();
        let id =
            store::insert_api_key(self.store(), user_id, name, &prefix, &sha256_hex(&key), now)
                .await?;
        Ok(CreatedApiKey {
            info: ApiKey {
                id,
                name: name.to_string(),
                prefix,
                created_at: format_time(now),
                last_used_at: None,
            },
            key,
        })
    }

    /// The caller's live keys.
    pub async fn list_api_keys(&self, user: &AuthUser) -> ApiResult<Vec<ApiKey>> {
        store::live_api_keys(self.store(), user.id).await
    }

    /// Revokes one of the caller's keys (admins may revoke anyone's).
    pub async fn revoke_api_key(
        &self,
        client: &ClientInfo,
        user: &AuthUser,
        id: i64,
    ) -> ApiResult<()> {
        let n =
            store::revoke_own_api_key(self.store(), id, user.id, user.is_admin, now_us()).await?;
        if n == 0 {
            return Err(ApiError::not_found(format!("API key {id}")));
        }
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::ApiKeyRevoked)
                .client(client)
                .user(user.id, &user.username)
                .resource(format!("api_key:{id}"))
                .status(204),
        )
        .await;
        Ok(())
    }

    /// Resolves a bearer credential to a user.
    pub async fn authenticate(&self, bearer: &str) -> ApiResult<AuthUser> {
        if bearer.starts_with(API_KEY_PREFIX) {
            return self.authenticate_api_key(bearer).await;
        }
        let claims = self.decode(bearer, "access")?;
        let family = claims.fam.clone().unwrap_or_default();
        let revoked = store::access_token_revoked(self.store(), &claims.jti, &family).await?;
        if revoked {
            return Err(ApiError::Unauthenticated(
                "token has been revoked; log in again".into(),
            ));
        }
        let id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ApiError::Unauthenticated("invalid token subject".into()))?;
        let account = store::account_state(self.store(), id)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the token's user no longer exists".into()))?;
        if account.disabled_at.is_some() {
            return Err(disabled_credential());
        }
        Ok(AuthUser {
            id,
            username: account.username,
            is_admin: account.is_admin,
            session: Some(Session {
                jti: claims.jti,
                exp: claims.exp,
                family,
            }),
        })
    }

    /// Resolves HTTP Basic credentials (`base64(username:password)`, what MLflow clients send
    /// for `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`). A pair is verified like a login (rate
    /// limited, audited), then remembered for a few minutes, so a client that sends it on
    /// every request costs one password hash, not one per request.
    pub async fn authenticate_basic(
        &self,
        client: &ClientInfo,
        encoded: &str,
    ) -> ApiResult<AuthUser> {
        use base64::Engine as _;
        let bad = || {
            ApiError::Unauthenticated(
                "Basic credentials must be base64 of 'username:password'".into(),
            )
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (username, password) = text.split_once(':').ok_or_else(bad)?;
        let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let id = match self.state.basic_logins.get(&key) {
            Some(id) => id,
            None => {
                let id = self.check_login(client, username, password).await?;
                self.state.basic_logins.insert(key, id);
                id
            }
        };
        let account = store::account_state(self.store(), id)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the user no longer exists".into()))?;
        if account.disabled_at.is_some() {
            return Err(disabled_credential());
        }
        Ok(AuthUser {
            id,
            username: account.username,
            is_admin: account.is_admin,
            session: None,
        })
    }

    async fn authenticate_api_key(&self, key: &str) -> ApiResult<AuthUser> {
        let found = store::live_key_by_hash(self.store(), &sha256_hex(key))
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("invalid or revoked API key".into()))?;
        if found.account.disabled_at.is_some() {
            return Err(disabled_credential());
        }
        let now = now_us();
        // Recording every use would put a write on every request; once a minute is plenty.
        if found.last_used_at.is_none_or(|t| now - t > 60_000_000) {
            store::touch_api_key(self.store(), found.id, now).await?;
        }
        Ok(AuthUser {
            id: found.user_id,
            username: found.account.username,
            is_admin: found.account.is_admin,
            session: None,
        })
    }

    /// Deletes expired bookkeeping rows.
    pub async fn prune(&self) -> ApiResult<()> {
        store::prune(self.store(), now_us()).await
    }
}

/// A credential of a disabled account (its keys and sessions were revoked when it was
/// disabled; this also covers any issued in a race with disabling).
fn disabled_credential() -> ApiError {
    ApiError::Unauthenticated("account is disabled; ask a server administrator".into())
}

/// Username/password pairs verified recently (by a SHA-256 of the pair, never the pair
/// itself), each with its user id, for [`Accounts::authenticate_basic`].
#[derive(Debug, Default)]
pub struct BasicLogins {
    seen: std::sync::Mutex<std::collections::HashMap<[u8; 32], (i64, std::time::Instant)>>,
}

impl BasicLogins {
    /// How long a verified pair is trusted before its password is checked again.
    const TTL: std::time::Duration = std::time::Duration::from_secs(300);
    /// At most this many pairs are remembered.
    const MAX: usize = 10_000;

    fn get(&self, key: &[u8; 32]) -> Option<i64> {
        let seen = self.seen.lock().ok()?;
        seen.get(key)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(id, _)| *id)
    }

    fn insert(&self, key: [u8; 32], id: i64) {
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() >= Self::MAX {
                seen.retain(|_, (_, at)| at.elapsed() < Self::TTL);
                if seen.len() >= Self::MAX {
                    seen.clear();
                }
            }
            seen.insert(key, (id, std::time::Instant::now()));
        }
    }

    /// Forgets every remembered pair (a password changed, an account was disabled).
    pub fn clear(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
        }
    }
}

/// The caller of a request as its log line names it (a username), set on the response.
#[derive(Debug, Clone)]
pub struct LoggedActor(pub String);

/// Middleware: resolves the bearer credential once per request and stores the [`Actor`].
/// A credential that is present but invalid is a 401 (and an audit row), never anonymous.
pub async fn resolve_actor(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    crate::extract::resolve_client_ip(&mut req, &state.config.trusted_proxies);
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let actor = match header {
        None => match web_session(&state, req.headers(), req.method(), req.uri().path()).await {
            Ok(Some((user, session))) => {
                req.extensions_mut().insert(session);
                Actor { user: Some(user) }
            }
            Ok(None) => Actor::default(),
            Err(e) => return e.into_response(),
        },
        Some(h) => {
            let token = h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
                .map(str::trim)
                .unwrap_or("");
            let basic = h
                .strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
                .map(str::trim);
            let result = if let Some(creds) = basic {
                let client = ClientInfo::from_request(&req);
                Accounts { state: &state }
                    .authenticate_basic(&client, creds)
                    .await
            } else if token.is_empty() {
                Err(ApiError::Unauthenticated(
                    "Authorization header must be 'Bearer <access token or API key>' (or 'Basic' with a username and password)".into(),
                ))
            } else {
                Accounts { state: &state }.authenticate(token).await
            };
            match result {
                Ok(user) => Actor { user: Some(user) },
                Err(e) => {
                    let (parts, _) = req.into_parts();
                    let client = ClientInfo::from_parts(&parts);
                    audit::record(
                        &state.store,
                        AuditEvent::new(AuditAction::AuthenticationFailed)
                            .client(&client)
                            .status(401),
                    )
                    .await;
                    return e.into_response();
                }
            }
        }
    };
    let who = actor.user.as_ref().map(|u| (u.id, u.username.clone()));
    let client = ClientInfo::from_request(&req);
    req.extensions_mut().insert(actor);
    let mut resp = next.run(req).await;
    if let Some((_, name)) = &who {
        resp.extensions_mut().insert(LoggedActor(name.clone()));
    }
    if resp.status() == axum::http::StatusCode::FORBIDDEN
        && resp.extensions().get::<audit::AlreadyRecorded>().is_none()
    {
        let mut ev = AuditEvent::new(AuditAction::AccessDenied)
            .client(&client)
            .status(403);
        if let Some((id, name)) = &who {
            ev = ev.user(*id, name);
        }
        audit::record(&state.store, ev).await;
    }
    resp
}

/// The 401 of a call that needs a signed-in caller and has none.
pub(crate) fn authentication_required() -> ApiError {
    ApiError::Unauthenticated(
        "authentication required: send an 'Authorization: Bearer <token or API key>' header".into(),
    )
}

/// The browser session of a request without an Authorization header. A cookie that is no
/// longer valid counts as anonymous (the page offers a login). A request a cookie
/// authenticates is refused when it comes from another site's page, and, outside the web
/// pages (which check their forms themselves), when it changes state without the session's
/// CSRF token in the `X-CSRF-Token` header.
async fn web_session(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    method: &axum::http::Method,
    path: &str,
) -> ApiResult<Option<(AuthUser, web::WebSession)>> {
    let Some(token) = web::cookie(headers, web::SESSION_COOKIE) else {
        return Ok(None);
    };
    let Ok((user, session)) = (Accounts { state }).authenticate_web(token).await else {
        return Ok(None);
    };
    if web::foreign_origin(headers) {
        return Err(ApiError::Forbidden(
            "a request from another site's page cannot use this session".into(),
        ));
    }
    if web::changes_state(method) && path.starts_with("/api/") {
        let sent = headers
            .get(web::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !web::same_token(sent, &session.csrf) {
            return Err(ApiError::Forbidden(
                "missing or wrong CSRF token: send the page's token in the X-CSRF-Token header"
                    .into(),
            ));
        }
    }
    Ok(Some((user, session)))
}

/// Formats a user row for the API (used by `me`).
pub async fn me(state: &AppState, user: &AuthUser) -> ApiResult<User> {
    Accounts { state }.user(user.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused() {
        for common in [
            "Password123!",
            "P@ssw0rd1234",
            "Qwerty123456!",
            "Welcome@2024",
        ] {
            let err = check_password_policy(common).unwrap_err().to_string();
            assert!(err.contains("too easy to guess"), "{common}: {err}");
        }
        assert!(check_password_for("Alice@example.com1", &["alice", "alice@example.com"]).is_err());
        assert!(check_password_policy("Correct-Horse-42").is_ok());
        assert!(check_password_policy("Quiet-Harbour-Lamp-31").is_ok());
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("Sup3r-secret-pw").is_ok());
        assert!(check_password_policy("short1A!").is_err());
        assert!(check_password_policy("alllowercase123!").is_err());
        assert!(check_password_policy("ALLUPPERCASE123!").is_err());
        assert!(check_password_policy("NoDigitsHere!!!").is_err());
        assert!(check_password_policy("NoSymbols12345").is_err());
        let err = check_password_policy("abc").unwrap_err().to_string();
        assert!(
            err.contains("12 characters") && err.contains("symbol"),
            "{err}"
        );
    }

    #[test]
    fn usernames_and_emails() {
        assert!(check_username("alice_01").is_ok());
        assert!(check_username("al").is_err());
        assert!(check_username("al ice").is_err());
        assert!(check_email("a@b.io").is_ok());
        assert!(check_email("a@b").is_err());
        assert!(check_email("@b.io").is_err());
    }
}
