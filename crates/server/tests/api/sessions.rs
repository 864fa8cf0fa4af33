//! Sessions as the product description uses them: a display name at registration, the form
//! body of refresh, and logout ending both tokens of a login on every replica.

use reqwest::StatusCode;
use serde_json::json;

use crate::{PASSWORD, assert_error, each_backend, read, test_config};

each_backend!(register_keeps_the_full_name, |ctx| {
    let (s, u) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "john", "email": "john@example.com", "password": "SecurePass123!",
                   "full_name": "John Doe"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["full_name"], "John Doe");
    let (_, pair) = ctx.login("john", "SecurePass123!").await;
    let (s, me) = ctx
        .get("/api/v1/auth/me", pair["access_token"].as_str())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["full_name"], "John Doe");
    // Without one, it is null; a control character is refused with the field's name.
    let (_, u) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "jane", "email": "jane@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(u["full_name"].is_null(), "{u}");
    let (s, b) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "jim", "email": "jim@example.com", "password": PASSWORD,
                   "full_name": "Jim\u{7}"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("full_name")
    );
});

each_backend!(refresh_takes_a_form_body, |ctx| {
    ctx.user("bob").await;
    let (_, pair) = ctx.login("bob", PASSWORD).await;
    let refresh = pair["refresh_token"].as_str().unwrap();
    let form = |token: &str| {
        ctx.req(reqwest::Method::POST, "/api/v1/auth/refresh", None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("refresh_token={token}"))
            .send()
    };
    let (s, pair2) = read(form(refresh).await.unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{pair2}");
    assert_eq!(pair2["token_type"], "bearer");
    let (s, me) = ctx
        .get("/api/v1/auth/me", pair2["access_token"].as_str())
        .await;
    assert_eq!((s, me["username"].as_str()), (StatusCode::OK, Some("bob")));
    // A form without the field says which one is missing.
    let (s, b) = read(
        ctx.req(reqwest::Method::POST, "/api/v1/auth/refresh", None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refresh_token"),
        "{b}"
    );
});

each_backend!(logout_ends_both_tokens_on_every_replica, |ctx| {
    ctx.user("bob").await;
    // A second replica on the same database.
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other =
        wanllmdb_server::start_with_store(test_config(dir.path()), ctx.store.clone(), listener)
            .await
            .unwrap();
    let other_url = other.url();
    let on_other = |path: &str, token: &str| {
        ctx.client
            .get(format!("{other_url}{path}"))
            .bearer_auth(token)
            .send()
    };

    let (_, pair) = ctx.login("bob", PASSWORD).await;
    let access = pair["access_token"].as_str().unwrap().to_string();
    let refresh = pair["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        on_other("/api/v1/auth/me", &access).await.unwrap().status(),
        StatusCode::OK
    );
    // The description's logout: the bearer header alone, no body.
    let (s, b) = ctx
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    for check in [
        ctx.get("/api/v1/auth/me", Some(&access)).await.0,
        on_other("/api/v1/auth/me", &access).await.unwrap().status(),
    ] {
        assert_eq!(check, StatusCode::UNAUTHORIZED);
    }
    // The refresh token of that login is refused too, here and on the other replica.
    let (s, _) = ctx
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let s = ctx
        .client
        .post(format!("{other_url}/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Another login of the same user is untouched.
    let (_, second) = ctx.login("bob", PASSWORD).await;
    let (_, third) = ctx.login("bob", PASSWORD).await;
    let second_access = second["access_token"].as_str().unwrap();
    ctx.call(
        reqwest::Method::POST,
        "/api/v1/auth/logout",
        Some(second_access),
        None,
    )
    .await;
    let (s, _) = ctx
        .get("/api/v1/auth/me", third["access_token"].as_str())
        .await;
    assert_eq!(s, StatusCode::OK);
    other.shutdown().await.unwrap();
});
