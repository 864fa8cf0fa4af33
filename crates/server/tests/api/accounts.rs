//! Registration, login, token rotation, logout, API keys, rate limits and audit rows.

use reqwest::StatusCode;
use serde_json::json;

use crate::{PASSWORD, assert_error, each_backend};

each_backend!(register_validates_and_rejects_duplicates, |ctx| {
    let (s, b) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "alice", "email": "alice@example.com", "password": "weakpassword"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("upper-case") && msg.contains("symbol"),
        "{msg}"
    );

    let (s, b) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "alice", "email": "not-an-email", "password": PASSWORD}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    let (s, b) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["username"], "alice");
    assert!(b.get("password_hash").is_none() && !b.to_string().contains("argon2"));

    for dup in [
        json!({"username": "alice", "email": "other@example.com", "password": PASSWORD}),
        json!({"username": "alice2", "email": "ALICE@example.com", "password": PASSWORD}),
    ] {
        let (s, b) = ctx.post("/api/v1/auth/register", None, dup).await;
        assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    }
});

each_backend!(login_refresh_rotation_and_logout, |ctx| {
    ctx.user("bob").await;
    let (s, b) = ctx.login("bob", "Wrong-password-1").await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, unknown) = ctx.login("nobody", PASSWORD).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown["error"]["message"], b["error"]["message"],
        "unknown users look like wrong passwords"
    );

    // The OAuth2 password-flow form works too.
    let resp = ctx
        .req(reqwest::Method::POST, "/api/v1/auth/login", None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username=bob&password={}",
            PASSWORD
        ))
        .send()
        .await
        .unwrap();
    let (s, form) = crate::read(resp).await;
    assert_eq!(s, StatusCode::OK, "{form}");
    assert_eq!(form["token_type"], "bearer");

    let (s, pair) = ctx.login("bob", PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pair["expires_in"], 1800);
    let access = pair["access_token"].as_str().unwrap().to_string();
    let refresh = pair["refresh_token"].as_str().unwrap().to_string();
    let (s, me) = ctx.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["username"], "bob");

    // A refresh token is not an access token.
    let (s, _) = ctx.get("/api/v1/auth/me", Some(&refresh)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, pair2) = ctx
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pair2}");
    let refresh2 = pair2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh);

    // Reusing the spent token is refused and revokes the family, including the fresh token.
    let (s, b) = ctx
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, _) = ctx
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh2}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The session's access tokens end with it.
    let access2 = pair2["access_token"].as_str().unwrap().to_string();
    let (s, _) = ctx.get("/api/v1/auth/me", Some(&access2)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = ctx.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "refresh_token_reuse"
        )
        .await,
        1
    );

    // Logout revokes the access token and the refresh family.
    let (_, pair3) = ctx.login("bob", PASSWORD).await;
    let access3 = pair3["access_token"].as_str().unwrap().to_string();
    let (s, _) = ctx
        .post(
            "/api/v1/auth/logout",
            Some(&access3),
            json!({"refresh_token": pair3["refresh_token"]}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = ctx.get("/api/v1/auth/me", Some(&access3)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = ctx
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": pair3["refresh_token"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    assert!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "login_success"
        )
        .await
            >= 3
    );
    assert!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "login_failure"
        )
        .await
            >= 2
    );
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "logout"
        )
        .await,
        1
    );
    // The audit row carries who, from where and how.
    let ip_rows = ctx.count("SELECT COUNT(*) FROM audit_events WHERE action = $1 AND ip = '127.0.0.1' AND method = 'POST' AND path = '/api/v1/auth/logout' AND username = 'bob'", "logout").await;
    assert_eq!(ip_rows, 1);
});

each_backend!(failed_logins_are_rate_limited, |ctx| {
    ctx.user("carol").await;
    for _ in 0..5 {
        let (s, _) = ctx.login("carol", "Wrong-password-1").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let resp = ctx
        .req(reqwest::Method::POST, "/api/v1/auth/login", None)
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&wait), "{wait}");
    let (_, b) = crate::read(resp).await;
    assert_eq!(b["error"]["code"], "rate_limited");
});

each_backend!(api_keys_create_list_revoke, |ctx| {
    let key = ctx.user("dave").await;
    assert!(key.starts_with("wlk_"));
    let (s, me) = ctx.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["username"], "dave");

    let (s, created) = ctx
        .post(
            "/api/v1/auth/api-keys",
            Some(&key),
            json!({"name": "gpu-node-3"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let second = created["key"].as_str().unwrap().to_string();
    let (s, list) = ctx.get("/api/v1/auth/api-keys", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|k| k.get("key").is_none()),
        "secrets are never listed"
    );
    assert!(!serde_json::to_string(list).unwrap().contains(&second[8..]));

    let id = created["id"].as_i64().unwrap();
    let (s, _) = ctx
        .delete(&format!("/api/v1/auth/api-keys/{id}"), Some(&key))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = ctx.get("/api/v1/auth/me", Some(&second)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, _) = ctx
        .delete(&format!("/api/v1/auth/api-keys/{id}"), Some(&key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Someone else's key cannot be revoked.
    let other = ctx.user("erin").await;
    let (_, list) = ctx.get("/api/v1/auth/api-keys", Some(&key)).await;
    let first_id = list[0]["id"].as_i64().unwrap();
    let (s, _) = ctx
        .delete(&format!("/api/v1/auth/api-keys/{first_id}"), Some(&other))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "api_key_revoked"
        )
        .await,
        1
    );
    assert!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "api_key_created"
        )
        .await
            >= 3
    );

    // Garbage credentials are a 401 and an audit row, never anonymous access.
    let (s, _) = ctx.get("/api/v1/projects", Some("wlk_nope")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = ctx.get("/api/v1/projects", Some("not.a.jwt")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "authentication_failed"
        )
        .await
            >= 2
    );
    // The stored hash is not the key.
    assert_eq!(
        ctx.count("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1", &key)
            .await,
        0
    );
});

each_backend!(health_and_openapi, |ctx| {
    for p in ["/health", "/health/live", "/health/ready"] {
        let (s, b) = ctx.get(p, None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(b["status"], "ok");
    }
    let (_, ready) = ctx.get("/health/ready", None).await;
    assert_eq!(ready["checks"]["database"], "ok");
    let (s, doc) = ctx.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/projects/{name}",
        "/api/v1/runs/{id}/history",
        "/api/v1/history/query",
        "/api/v1/runs/{id}/logs",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(
        doc["components"]["schemas"]
            .get("CreateRunRequest")
            .is_some()
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_leaves_it_to_admins() {
    for backend in crate::backends() {
        let ctx = crate::Ctx::start_with(backend, |c| c.allow_registration = false).await;
        let body = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD});
        let (s, b) = ctx.post("/api/v1/auth/register", None, body.clone()).await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("administrator")
        );
        let (s, b) = ctx
            .post("/api/v1/auth/register", Some(&ctx.admin_key), body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, _) = ctx.login("alice", PASSWORD).await;
        assert_eq!(s, StatusCode::OK);
        ctx.stop().await;
    }
}
