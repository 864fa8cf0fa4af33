//! Bad input is a clear 4xx; an unreachable database makes readiness fail by name.

use reqwest::StatusCode;
use serde_json::json;

use crate::{Ctx, assert_error, backends, each_backend};

each_backend!(malformed_and_mistyped_bodies, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "e", "private").await;
    let id = ctx.run(&k, "e", json!({})).await;
    let raw = |path: &str, body: &'static str| {
        ctx.req(reqwest::Method::POST, path, Some(&k))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body) in [
        ("/api/v1/projects", "{not json"),
        ("/api/v1/projects", ""),
        ("/api/v1/projects", "{\"name\": 42}"),
        ("/api/v1/runs", "{\"project\": \"e\", \"tags\": \"x\"}"),
        (
            &format!("/api/v1/runs/{id}/history") as &str,
            "{\"points\": [{\"step\": \"one\", \"values\": {}}]}",
        ),
        (
            &format!("/api/v1/runs/{id}/history") as &str,
            "{\"points\": [{\"step\": 1.5, \"values\": {}}]}",
        ),
        (
            &format!("/api/v1/runs/{id}/history") as &str,
            "{\"points\": [{\"step\": 1, \"values\": [1, 2]}]}",
        ),
        (&format!("/api/v1/runs/{id}/history") as &str, "[]"),
    ] {
        let (s, b) = crate::read(raw(path, body).await.unwrap()).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(b["error"]["message"].as_str().unwrap().len() > 10, "{b}");
    }
    let resp = ctx
        .req(reqwest::Method::POST, "/api/v1/projects", Some(&k))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Bodies over the limit (4 MiB here) are refused with 413.
    // The server answers before reading the whole body and then drops the connection, so
    // this request must not leave it in the client's pool for the next one.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let resp = ctx
        .req(reqwest::Method::POST, "/api/v1/projects", Some(&k))
        .header("connection", "close")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (s, b) = crate::read(resp).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Unknown endpoints and ids.
    let (s, b) = ctx
        .call(reqwest::Method::PUT, "/api/v1/projects", Some(&k), None)
        .await;
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let (s, b) = ctx.get("/api/v1/nothing-here", Some(&k)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx.get("/api/v1/runs/zzzzzzzz/history", Some(&k)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx.delete("/api/v1/auth/api-keys/abc", Some(&k)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx.get("/api/v1/auth/me", None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let resp = ctx
        .req(reqwest::Method::GET, "/api/v1/auth/me", None)
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_failing_database() {
    for backend in backends() {
        let ctx = Ctx::start(backend).await;
        let (s, _) = ctx.get("/health/ready", None).await;
        assert_eq!(s, StatusCode::OK);
        ctx.store.close().await;
        let (s, b) = ctx.get("/health/ready", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert_eq!(b["status"], "unavailable");
        assert!(
            b["checks"]["database"]
                .as_str()
                .unwrap()
                .starts_with("error"),
            "{b}"
        );
        let (s, _) = ctx.get("/health/live", None).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "liveness does not depend on the database"
        );
        ctx.stop().await;
    }
}
