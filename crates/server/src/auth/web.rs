//! Browser sessions: a signed session token in an HttpOnly, SameSite=Strict cookie.
//!
//! A web session is a session family like a CLI login's: it gets a refresh-token row, so ending
//! it (logout), changing the password, disabling the account or the token reaper all work on
//! it exactly as on API sessions. The cookie carries a token of its own type (`web`), which the
//! bearer header never accepts. Each session has a random CSRF token, rendered into pages and
//! required on every state change a cookie authenticates.

use axum::http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};

use super::{Accounts, AuthUser, disabled_credential, random_hex, store};
use crate::audit::{self, AuditAction, AuditEvent};
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientInfo;
use crate::store::now_us;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "wanllmdb_session";
/// Name of the header that carries the CSRF token on script requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Debug, Serialize, Deserialize)]
struct WebClaims {
    sub: String,
    jti: String,
    fam: String,
    iat: i64,
    exp: i64,
    typ: String,
    csrf: String,
}

/// The browser session a request came with (a request extension).
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The session's family (revoking it ends the session).
    pub family: String,
    /// The token a page must send back on every state change.
    pub csrf: String,
}

/// A newly started session: the cookie value and the session.
#[derive(Debug)]
pub struct StartedSession {
    /// Goes into the cookie; never into a page.
    pub token: String,
    /// Lifetime in seconds (the cookie's Max-Age).
    pub max_age: i64,
    /// The session.
    pub session: WebSession,
}

impl Accounts<'_> {
    /// Logs in with an API key (the first-start admin has nothing else): the key is checked
    /// like a bearer key and is not kept anywhere.
    pub async fn login_with_api_key(&self, client: &ClientInfo, key: &str) -> ApiResult<AuthUser> {
        let key = key.trim();
        let result = if key.starts_with(super::API_KEY_PREFIX) {
            self.authenticate(key).await
        } else {
            Err(ApiError::Unauthenticated(format!(
                "that is not an API key (API keys start with {})",
                super::API_KEY_PREFIX
            )))
        };
        let (event, status) = match &result {
            Ok(_) => (AuditAction::LoginSuccess, 200),
            Err(_) => (AuditAction::LoginFailure, 401),
        };
        let mut ev = AuditEvent::new(event)
            .client(client)
            .status(status)
            .metadata(serde_json::json!({ "method": "api_key" }));
        if let Ok(u) = &result {
            ev = ev.user(u.id, &u.username);
        }
        audit::record(self.store(), ev).await;
        result
    }

    /// Starts a browser session for a user who has just proven who they are.
    pub async fn start_web_session(&self, user_id: i64) -> ApiResult<StartedSession> {
        let family = random_hex(16);
        let now = now_us() / 1_000_000;
        let ttl = self.state.config.refresh_token_ttl.as_secs() as i64;
        store::insert_refresh_token(
            self.store(),
            &random_hex(16),
            &family,
            user_id,
            (now + ttl) * 1_000_000,
        )
        .await?;
        let claims = WebClaims {
            sub: user_id.to_string(),
            jti: random_hex(16),
            fam: family.clone(),
            iat: now,
            exp: now + ttl,
            typ: "web".into(),
            csrf: random_hex(32),
        };
        let token = self
            .state
            .keys
            .sign(&claims)
            .map_err(|e| ApiError::Internal(format!("token signing failed: {e}")))?;
        Ok(StartedSession {
            token,
            max_age: ttl,
            session: WebSession {
                family,
                csrf: claims.csrf,
            },
        })
    }

    /// Resolves a session cookie: valid signature and expiry, family not revoked, account
    /// present and enabled.
    pub async fn authenticate_web(&self, token: &str) -> ApiResult<(AuthUser, WebSession)> {
        let claims: WebClaims = self
            .state
            .keys
            .verify(token)
            .map_err(|_| ApiError::Unauthenticated("session expired; log in again".into()))?;
        if claims.typ != "web" {
            return Err(ApiError::Unauthenticated("not a session cookie".into()));
        }
        let id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ApiError::Unauthenticated("invalid session".into()))?;
        let found = store::web_session_account(self.store(), id, &claims.fam)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthenticated("the session's user no longer exists".into())
            })?;
        if found.revoked {
            return Err(ApiError::Unauthenticated(
                "session ended; log in again".into(),
            ));
        }
        if found.account.disabled_at.is_some() {
            return Err(disabled_credential());
        }
        Ok((
            AuthUser {
                id,
                username: found.account.username,
                is_admin: found.account.is_admin,
                session: None,
            },
            WebSession {
                family: claims.fam,
                csrf: claims.csrf,
            },
        ))
    }

    /// Ends a browser session.
    pub async fn end_web_session(
        &self,
        client: &ClientInfo,
        user: &AuthUser,
        session: &WebSession,
    ) -> ApiResult<()> {
        self.revoke_family(&session.family).await?;
        audit::record(
            self.store(),
            AuditEvent::new(AuditAction::Logout)
                .client(client)
                .user(user.id, &user.username)
                .status(303),
        )
        .await;
        Ok(())
    }
}

/// The value of one cookie in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request reached us over https (directly or through a proxy that says so); the
/// session cookie is then marked Secure.
pub fn is_https(headers: &HeaderMap) -> bool {
    let says = |name: &str, needle: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
    };
    says("x-forwarded-proto", "https") || says("forwarded", "proto=https")
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure under https.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Whether a method changes state (and so needs the CSRF token).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A cookie-authenticated request from another site's page (its Origin names another host)
/// is refused: browsers send Origin on every cross-origin request and WebSocket handshake.
pub fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; wanllmdb_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(header::HOST, "127.0.0.1:8000".parse().unwrap());
        assert!(!foreign_origin(&h), "no Origin: a plain navigation");
        h.insert(header::ORIGIN, "http://127.0.0.1:8000".parse().unwrap());
        assert!(!foreign_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(foreign_origin(&h));
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
        assert!(set_cookie("s", "v", 10, true).contains("HttpOnly; SameSite=Strict"));
        assert!(set_cookie("s", "v", 10, true).ends_with("; Secure"));
        assert!(!set_cookie("s", "v", 10, false).contains("Secure"));
    }
}
