//! Server administration of accounts and API keys: who may use it, creating and listing
//! accounts, disabling (every credential dies at once), enabling, password resets,
//! promotion and demotion with their guards, other users' keys, and one audit event per action.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, PASSWORD, assert_error, each_backend};

const NEW_PASSWORD: &str = "Brand-New-Secret-77";

/// Creates an account through the admin API, with `PASSWORD`.
async fn create(ctx: &Ctx, name: &str) -> Value {
    let (s, b) = ctx
        .post(
            "/api/v1/admin/users",
            Some(&ctx.admin_key),
            json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

/// Logs in and returns (access token, refresh token).
async fn session(ctx: &Ctx, name: &str, password: &str) -> (String, String) {
    let (s, b) = ctx.login(name, password).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (
        b["access_token"].as_str().unwrap().to_string(),
        b["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// An API key made with `access`.
async fn api_key(ctx: &Ctx, access: &str) -> (i64, String) {
    let (s, k) = ctx
        .post(
            "/api/v1/auth/api-keys",
            Some(access),
            json!({"name": "laptop"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    (
        k["id"].as_i64().unwrap(),
        k["key"].as_str().unwrap().to_string(),
    )
}

async fn me_status(ctx: &Ctx, token: &str) -> StatusCode {
    ctx.get("/api/v1/auth/me", Some(token)).await.0
}

async fn refresh_status(ctx: &Ctx, refresh: &str) -> StatusCode {
    ctx.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await
    .0
}

/// `POST /api/v1/admin/users/{name}/{action}` as `token`.
async fn act(ctx: &Ctx, token: &str, name: &str, action: &str) -> (StatusCode, Value) {
    ctx.call(
        Method::POST,
        &format!("/api/v1/admin/users/{name}/{action}"),
        Some(token),
        None,
    )
    .await
}

/// The `admin` audit events of one type, newest first.
async fn admin_events(ctx: &Ctx, event_type: &str) -> Vec<Value> {
    admin_events_as(ctx, &ctx.admin_key, event_type).await
}

/// The same, read with another administrator's credential.
async fn admin_events_as(ctx: &Ctx, token: &str, event_type: &str) -> Vec<Value> {
    let (s, b) = ctx
        .get(
            &format!("/api/v1/audit/logs?category=admin&type={event_type}"),
            Some(token),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

/// Asserts exactly one `admin` event of a type, by the bootstrap admin, about `resource`.
async fn one_event(ctx: &Ctx, event_type: &str, resource: &str) -> Value {
    let events = admin_events(ctx, event_type).await;
    assert_eq!(events.len(), 1, "{event_type}: {events:?}");
    let e = events[0].clone();
    assert_eq!(e["username"], "admin", "{e}");
    assert_eq!(e["resource"], resource, "{e}");
    e
}

fn usernames(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

each_backend!(admin_endpoints_refuse_everyone_but_server_admins, |ctx| {
    let owner = ctx.user("olive").await;
    let project_admin = ctx.user("adam").await;
    ctx.project(&owner, "team", "private").await;
    let (s, m) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&owner),
            json!({"username": "adam", "role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let calls: [(Method, &str, Option<Value>); 10] = [
        (Method::GET, "/api/v1/admin/users", None),
        (Method::GET, "/api/v1/admin/users/olive", None),
        (
            Method::POST,
            "/api/v1/admin/users",
            Some(json!({"username": "mallory", "email": "m@example.com", "is_admin": true})),
        ),
        (Method::POST, "/api/v1/admin/users/adam/promote", None),
        (Method::POST, "/api/v1/admin/users/admin/demote", None),
        (Method::POST, "/api/v1/admin/users/admin/disable", None),
        (Method::POST, "/api/v1/admin/users/olive/enable", None),
        (
            Method::POST,
            "/api/v1/admin/users/olive/reset-password",
            Some(json!({"password": NEW_PASSWORD})),
        ),
        (Method::GET, "/api/v1/admin/api-keys", None),
        (Method::DELETE, "/api/v1/admin/api-keys/1", None),
    ];
    for (method, path, body) in calls {
        let (s, b) = ctx.call(method.clone(), path, None, body.clone()).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
        for token in [&owner, &project_admin] {
            let (s, b) = ctx
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
            assert!(
                b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("server administrators"),
                "{path}: {b}"
            );
        }
    }
    // Nothing changed: no account was made, promoted or disabled; the admin key still works.
    let (s, page) = ctx.get("/api/v1/admin/users", Some(&ctx.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(usernames(&page), ["admin", "olive", "adam"]);
    assert!(page["items"].as_array().unwrap().iter().all(|u| u["username"] == "admin"
        || (u["is_admin"] == false && u["disabled"] == false)));
    let (_, oldpw) = ctx.login("olive", PASSWORD).await;
    assert!(oldpw["access_token"].is_string(), "{oldpw}");
    assert!(admin_events(&ctx, "user_created").await.is_empty());
});

each_backend!(admin_creates_lists_and_shows_accounts, |ctx| {
    let dora = create(&ctx, "dora").await;
    assert_eq!(dora["username"], "dora");
    assert_eq!(dora["is_admin"], false);
    assert_eq!(dora["disabled"], false);
    assert!(dora["disabled_at"].is_null());
    assert!(dora["generated_password"].is_null(), "{dora}");
    session(&ctx, "dora", PASSWORD).await;

    // Without a password, one is generated, returned once, and works.
    let (s, ed) = ctx
        .post(
            "/api/v1/admin/users",
            Some(&ctx.admin_key),
            json!({"username": "Ed.Ops", "email": "ED@Example.com", "is_admin": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ed}");
    assert_eq!(ed["is_admin"], true);
    assert_eq!(ed["email"], "ed@example.com");
    let generated = ed["generated_password"].as_str().unwrap().to_string();
    let (access, _) = session(&ctx, "Ed.Ops", &generated).await;
    let (s, _) = ctx.get("/api/v1/admin/users", Some(&access)).await;
    assert_eq!(s, StatusCode::OK, "an account created as admin administers");

    for (body, status, code) in [
        (
            json!({"username": "dora", "email": "other@example.com"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"username": "dora2", "email": "dora@example.com"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"username": "x y", "email": "xy@example.com"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "xavier", "email": "not-an-email"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "xavier", "email": "x@example.com", "password": "weak"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "xavier", "email": "x@example.com", "role": "root"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ] {
        let (s, b) = ctx
            .post("/api/v1/admin/users", Some(&ctx.admin_key), body.clone())
            .await;
        assert_error(s, &b, status, code);
    }

    let (_, k) = ctx.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(k["username"], "Ed.Ops");
    api_key(&ctx, &access).await;
    let (s, all) = ctx.get("/api/v1/admin/users", Some(&ctx.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(usernames(&all), ["admin", "dora", "Ed.Ops"]);
    assert!(all["next_cursor"].is_null());
    let ed_row = &all["items"][2];
    assert_eq!(ed_row["active_api_keys"], 1, "{ed_row}");
    assert!(ed_row.get("password_hash").is_none() && ed_row.get("generated_password").is_none());

    // A filter on username or email, case-insensitive; pages by cursor.
    let (_, found) = ctx
        .get("/api/v1/admin/users?q=DOR", Some(&ctx.admin_key))
        .await;
    assert_eq!(usernames(&found), ["dora"]);
    let (_, found) = ctx
        .get("/api/v1/admin/users?q=example.com", Some(&ctx.admin_key))
        .await;
    assert_eq!(usernames(&found), ["dora", "Ed.Ops"]);
    let (_, first) = ctx
        .get("/api/v1/admin/users?limit=2", Some(&ctx.admin_key))
        .await;
    assert_eq!(usernames(&first), ["admin", "dora"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = ctx
        .get(
            &format!("/api/v1/admin/users?limit=2&cursor={cursor}"),
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(usernames(&rest), ["Ed.Ops"]);
    assert!(rest["next_cursor"].is_null());
    let (s, b) = ctx
        .get("/api/v1/admin/users?limit=0", Some(&ctx.admin_key))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    let (s, shown) = ctx
        .get("/api/v1/admin/users/dora", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(shown["email"], "dora@example.com");
    let (s, b) = ctx
        .get("/api/v1/admin/users/ghost", Some(&ctx.admin_key))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(admin_events(&ctx, "user_created").await.len(), 2);
});

each_backend!(disabling_kills_every_credential_at_once, |ctx| {
    create(&ctx, "dora").await;
    let (access, refresh) = session(&ctx, "dora", PASSWORD).await;
    let (_, key) = api_key(&ctx, &access).await;
    let (second_access, _) = session(&ctx, "dora", PASSWORD).await;
    for t in [&access, &key, &second_access] {
        assert_eq!(me_status(&ctx, t).await, StatusCode::OK);
    }

    let (s, d) = act(&ctx, &ctx.admin_key, "dora", "disable").await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["disabled"], true);
    assert!(d["disabled_at"].as_str().unwrap().ends_with('Z'), "{d}");
    assert_eq!(d["api_keys_revoked"], 1);
    assert_eq!(d["sessions_revoked"], 2);
    assert_eq!(d["active_api_keys"], 0);

    for t in [&access, &key, &second_access] {
        assert_eq!(me_status(&ctx, t).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        refresh_status(&ctx, &refresh).await,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = ctx.login("dora", PASSWORD).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("account is disabled"),
        "{b}"
    );
    // A wrong password learns nothing about the account's state.
    let (s, b) = ctx.login("dora", "Wrong-password-1").await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(!b.to_string().contains("disabled"), "{b}");
    let (s, b) = act(&ctx, &ctx.admin_key, "dora", "disable").await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = act(&ctx, &ctx.admin_key, "ghost", "disable").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (s, e) = act(&ctx, &ctx.admin_key, "dora", "enable").await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["disabled"], false);
    assert!(e["disabled_at"].is_null());
    let (fresh, _) = session(&ctx, "dora", PASSWORD).await;
    assert_eq!(me_status(&ctx, &fresh).await, StatusCode::OK);
    // Keys and sessions revoked by disabling stay revoked.
    assert_eq!(me_status(&ctx, &key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&ctx, &access).await, StatusCode::UNAUTHORIZED);
    let (s, b) = act(&ctx, &ctx.admin_key, "dora", "enable").await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    let disabled = one_event(&ctx, "user_disabled", "user:dora").await;
    assert_eq!(disabled["severity"], "medium");
    assert_eq!(disabled["metadata"]["api_keys_revoked"], 1);
    assert_eq!(disabled["path"], "/api/v1/admin/users/dora/disable");
    one_event(&ctx, "user_enabled", "user:dora").await;
});

each_backend!(password_reset_ends_the_old_sessions, |ctx| {
    create(&ctx, "dora").await;
    let (access, refresh) = session(&ctx, "dora", PASSWORD).await;
    let (_, key) = api_key(&ctx, &access).await;

    let (s, r) = ctx
        .post(
            "/api/v1/admin/users/dora/reset-password",
            Some(&ctx.admin_key),
            json!({"password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["generated_password"].is_null());
    assert_eq!(r["sessions_revoked"], 1);
    assert_eq!(me_status(&ctx, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh_status(&ctx, &refresh).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_status(&ctx, &key).await,
        StatusCode::OK,
        "API keys are kept"
    );
    let (s, _) = ctx.login("dora", PASSWORD).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (new_access, _) = session(&ctx, "dora", NEW_PASSWORD).await;

    // No body: a generated password, shown once.
    let (s, r) = act(&ctx, &ctx.admin_key, "dora", "reset-password").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let generated = r["generated_password"].as_str().unwrap().to_string();
    assert_eq!(me_status(&ctx, &new_access).await, StatusCode::UNAUTHORIZED);
    session(&ctx, "dora", &generated).await;
    let (s, _) = ctx.login("dora", NEW_PASSWORD).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, b) = ctx
        .post(
            "/api/v1/admin/users/dora/reset-password",
            Some(&ctx.admin_key),
            json!({"password": "too-weak"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx
        .post(
            "/api/v1/admin/users/ghost/reset-password",
            Some(&ctx.admin_key),
            json!({"password": NEW_PASSWORD}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    session(&ctx, "dora", &generated).await;

    let events = admin_events(&ctx, "password_reset").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["metadata"]["generated"], true);
    assert_eq!(events[1]["metadata"]["generated"], false);
    assert!(!events.iter().any(|e| e.to_string().contains(&generated)));
});

each_backend!(promotion_demotion_and_their_guards, |ctx| {
    // The bootstrap admin is the only one: it can be neither demoted nor disabled.
    for action in ["demote", "disable"] {
        let (s, b) = act(&ctx, &ctx.admin_key, "admin", action).await;
        assert_error(s, &b, StatusCode::CONFLICT, "conflict");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains("last enabled server administrator"), "{msg}");
    }

    create(&ctx, "eve").await;
    let (eve_access, _) = session(&ctx, "eve", PASSWORD).await;
    let (_, eve) = api_key(&ctx, &eve_access).await;
    let (s, _) = ctx.get("/api/v1/admin/users", Some(&eve)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = act(&ctx, &ctx.admin_key, "eve", "demote").await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, p) = act(&ctx, &ctx.admin_key, "eve", "promote").await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["is_admin"], true);
    let (s, _) = ctx.get("/api/v1/admin/users", Some(&eve)).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "promotion applies to existing keys at once"
    );
    let (s, b) = act(&ctx, &ctx.admin_key, "eve", "promote").await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    // With two administrators, neither can demote or disable themselves.
    for action in ["demote", "disable"] {
        let (s, b) = act(&ctx, &ctx.admin_key, "admin", action).await;
        assert_error(s, &b, StatusCode::CONFLICT, "conflict");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains("your own account"), "{msg}");
    }

    // Eve demotes admin; now eve is the last one and cannot step down.
    let (s, d) = act(&ctx, &eve, "admin", "demote").await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["is_admin"], false);
    let (s, _) = ctx.get("/api/v1/admin/users", Some(&ctx.admin_key)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "demotion applies at once");
    let (s, b) = act(&ctx, &eve, "eve", "demote").await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last enabled")
    );
    let (s, _) = act(&ctx, &eve, "admin", "promote").await;
    assert_eq!(s, StatusCode::OK);

    // A disabled administrator does not count: with admin disabled, eve is the last.
    let (s, b) = act(&ctx, &eve, "admin", "disable").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = act(&ctx, &eve, "eve", "disable").await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last enabled")
    );
    let (s, b) = act(&ctx, &eve, "nobody", "promote").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // The bootstrap admin's key died with its account: read the log as eve.
    assert_eq!(admin_events_as(&ctx, &eve, "user_promoted").await.len(), 2);
    let demoted = admin_events_as(&ctx, &eve, "user_demoted").await;
    assert_eq!(
        demoted.len(),
        1,
        "refused demotions leave no event: {demoted:?}"
    );
    assert_eq!(demoted[0]["username"], "eve");
    assert_eq!(demoted[0]["resource"], "user:admin");
});

each_backend!(admin_lists_and_revokes_other_users_keys, |ctx| {
    let alice = ctx.user("alice").await;
    ctx.user("bob").await;
    let (s, keys) = ctx
        .get("/api/v1/admin/api-keys?user=alice", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{keys}");
    let items = keys["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{keys}");
    let k = &items[0];
    assert_eq!(k["username"], "alice");
    assert_eq!(k["name"], "test");
    assert!(alice.starts_with(k["prefix"].as_str().unwrap()));
    assert!(k.get("key").is_none() && !keys.to_string().contains(&alice));
    let id = k["id"].as_i64().unwrap();

    let (_, all) = ctx
        .get("/api/v1/admin/api-keys", Some(&ctx.admin_key))
        .await;
    let owners: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["username"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["admin", "alice", "bob"]);
    let (_, page) = ctx
        .get("/api/v1/admin/api-keys?limit=2", Some(&ctx.admin_key))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = ctx
        .get(
            &format!("/api/v1/admin/api-keys?limit=2&cursor={cursor}"),
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(rest["items"][0]["username"], "bob");
    assert!(rest["next_cursor"].is_null());
    let (s, b) = ctx
        .get("/api/v1/admin/api-keys?user=ghost", Some(&ctx.admin_key))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    assert_eq!(me_status(&ctx, &alice).await, StatusCode::OK);
    let path = format!("/api/v1/admin/api-keys/{id}");
    let (s, b) = ctx.delete(&path, Some(&ctx.admin_key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(me_status(&ctx, &alice).await, StatusCode::UNAUTHORIZED);
    let (s, b) = ctx.delete(&path, Some(&ctx.admin_key)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .delete("/api/v1/admin/api-keys/abc", Some(&ctx.admin_key))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (_, keys) = ctx
        .get("/api/v1/admin/api-keys?user=alice", Some(&ctx.admin_key))
        .await;
    assert_eq!(keys["items"], json!([]));

    let e = one_event(&ctx, "api_key_revoked", &format!("api_key:{id}")).await;
    assert_eq!(e["category"], "security");
    assert_eq!(e["metadata"]["owner"], "alice");
});

each_backend!(admin_routes_are_in_the_openapi_document, |ctx| {
    let (s, doc) = ctx.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/admin/users",
        "/api/v1/admin/users/{username}",
        "/api/v1/admin/users/{username}/disable",
        "/api/v1/admin/users/{username}/enable",
        "/api/v1/admin/users/{username}/promote",
        "/api/v1/admin/users/{username}/demote",
        "/api/v1/admin/users/{username}/reset-password",
        "/api/v1/admin/api-keys",
        "/api/v1/admin/api-keys/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
});
