//! Audit coverage: every security-relevant action leaves exactly one event of the expected
//! type, category, user, resource and status; routine traffic (metrics, logs, heartbeats,
//! reads) leaves none. And the client address in those events: the peer, unless the peer is
//! a trusted proxy.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Backend, Ctx, PASSWORD, backends, each_backend, sha, upload};

const NEW_PASSWORD: &str = "Battery-Staple-77";

/// One action and the single event it must leave.
struct Step<'a> {
    method: Method,
    path: String,
    token: Option<&'a str>,
    body: Option<Value>,
    status: StatusCode,
    event: &'static str,
    category: &'static str,
    user: Option<&'static str>,
    resource: Option<String>,
}

fn step<'a>(
    method: Method,
    path: impl Into<String>,
    token: Option<&'a str>,
    body: Option<Value>,
    status: StatusCode,
) -> Step<'a> {
    Step {
        method,
        path: path.into(),
        token,
        body,
        status,
        event: "",
        category: "",
        user: None,
        resource: None,
    }
}

impl Step<'_> {
    fn leaves(
        mut self,
        event: &'static str,
        category: &'static str,
        user: Option<&'static str>,
        resource: Option<&str>,
    ) -> Self {
        self.event = event;
        self.category = category;
        self.user = user;
        self.resource = resource.map(str::to_string);
        self
    }
}

/// Every event so far, oldest first.
async fn events(ctx: &Ctx) -> Vec<Value> {
    let (s, b) = ctx
        .get("/api/v1/audit/logs?limit=1000", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut items = b["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

/// Performs the step and checks that exactly its event was added.
async fn check(ctx: &Ctx, s: Step<'_>) -> Value {
    let before = events(ctx).await.len();
    let label = format!("{} {}", s.method, s.path);
    let (status, body) = ctx.call(s.method, &s.path, s.token, s.body).await;
    assert_eq!(status, s.status, "{label}: {body}");
    let after = events(ctx).await;
    let added = &after[before..];
    assert_eq!(added.len(), 1, "{label} should leave one event: {added:#?}");
    let e = &added[0];
    assert_eq!(e["event_type"], s.event, "{label}: {e}");
    assert_eq!(e["event_category"], s.category, "{label}: {e}");
    assert_eq!(e["username"], json!(s.user), "{label}: {e}");
    match s.resource.as_deref().and_then(|r| r.strip_suffix('*')) {
        // Ids the server picks: only their kind is known in advance.
        Some(prefix) => assert!(
            e["resource"].as_str().unwrap_or("").starts_with(prefix),
            "{label}: {e}"
        ),
        None => assert_eq!(e["resource"], json!(s.resource), "{label}: {e}"),
    }
    assert_eq!(e["http_status"], s.status.as_u16(), "{label}: {e}");
    let outcome = if s.status.is_success() {
        "success"
    } else {
        "failure"
    };
    assert_eq!(e["status"], outcome, "{label}: {e}");
    assert_eq!(e["ip_address"], "127.0.0.1", "{label}: {e}");
    assert_eq!(
        e["request_method"],
        label.split(' ').next().unwrap(),
        "{label}: {e}"
    );
    let path = s.path.split('?').next().unwrap();
    assert_eq!(e["request_path"], path, "{label}: {e}");
    // The old names carry the same values, for one release.
    for (old, new) in [
        ("category", "event_category"),
        ("ip", "ip_address"),
        ("method", "request_method"),
        ("path", "request_path"),
        ("at", "created_at"),
    ] {
        assert_eq!(e[old], e[new], "{label}: {old}");
    }
    // The published resource is the recorded one, split at its first colon.
    if let Some(r) = e["resource"].as_str() {
        let (kind, id) = r.split_once(':').unwrap();
        assert_eq!(e["resource_id"], id, "{label}: {e}");
        assert!(
            e["resource_type"].as_str().unwrap().starts_with(kind),
            "{label}: {e}"
        );
    }
    assert!(
        !e["description"].as_str().unwrap().is_empty(),
        "{label}: {e}"
    );
    body
}

/// Performs a request that must leave no event.
async fn quiet(ctx: &Ctx, method: Method, path: &str, token: &str, body: Option<Value>) {
    let before = events(ctx).await.len();
    let (s, b) = ctx.call(method.clone(), path, Some(token), body).await;
    assert!(s.is_success(), "{method} {path}: {s} {b}");
    let after = events(ctx).await;
    assert_eq!(
        after.len(),
        before,
        "{method} {path} should leave no event: {:#?}",
        &after[before..]
    );
}

use Method as M;
use StatusCode as S;

each_backend!(accounts_and_sessions_leave_auth_events, |ctx| {
    let alice = ctx.user("alice").await;
    let (_, pair) = ctx.login("alice", PASSWORD).await;
    let access = pair["access_token"].as_str().unwrap().to_string();
    let refresh = pair["refresh_token"].as_str().unwrap().to_string();
    let (_, other) = ctx.login("alice", PASSWORD).await;
    let other_access = other["access_token"].as_str().unwrap().to_string();
    let carol = json!({"username": "carol", "email": "carol@example.com", "password": PASSWORD});
    let wrong = json!({"current_password": "Not-her-password-1", "new_password": NEW_PASSWORD});
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let u = Some("alice");
    let me = Some("user:alice");
    let steps = [
        step(
            M::POST,
            "/api/v1/auth/register",
            None,
            Some(carol),
            S::CREATED,
        )
        .leaves(
            "auth.register",
            "authentication",
            Some("carol"),
            Some("user:carol"),
        ),
        step(
            M::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "Wrong-password-9"})),
            S::UNAUTHORIZED,
        )
        .leaves("auth.login.failed", "authentication", u, me),
        step(
            M::POST,
            "/api/v1/auth/password",
            Some(&access),
            Some(wrong),
            S::BAD_REQUEST,
        )
        .leaves("auth.password.change_failed", "authentication", u, me),
        step(
            M::POST,
            "/api/v1/auth/password",
            Some(&access),
            Some(change),
            S::NO_CONTENT,
        )
        .leaves("auth.password.change", "authentication", u, me),
        step(
            M::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": NEW_PASSWORD})),
            S::OK,
        )
        .leaves("auth.login.success", "authentication", u, None),
        step(
            M::GET,
            "/api/v1/auth/me",
            Some("wlk_not-a-key"),
            None,
            S::UNAUTHORIZED,
        )
        .leaves("auth.token.invalid", "authentication", None, None),
        step(
            M::POST,
            "/api/v1/auth/api-keys",
            Some(&alice),
            Some(json!({"name": "ci"})),
            S::CREATED,
        )
        .leaves("api_key.create", "authentication", u, Some("api_key:*")),
    ];
    let mut key_id = None;
    for s in steps {
        let body = check(&ctx, s).await;
        if let Some(id) = body["id"].as_i64() {
            key_id = Some(id);
        }
    }
    let key_id = key_id.unwrap();
    let r = format!("api_key:{key_id}");
    let revoke = step(
        M::DELETE,
        format!("/api/v1/auth/api-keys/{key_id}"),
        Some(&alice),
        None,
        S::NO_CONTENT,
    )
    .leaves("api_key.revoke", "authentication", u, Some(&r));
    check(&ctx, revoke).await;

    // The password change ended the other session but kept the one that made it.
    let (s, _) = ctx.get("/api/v1/auth/me", Some(&other_access)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = ctx.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(s, StatusCode::OK);
    // Its refresh token still works once; presenting it again is reuse.
    let refresh_body = json!({"refresh_token": refresh});
    quiet(
        &ctx,
        M::POST,
        "/api/v1/auth/refresh",
        &alice,
        Some(refresh_body.clone()),
    )
    .await;
    check(
        &ctx,
        step(
            M::POST,
            "/api/v1/auth/refresh",
            None,
            Some(refresh_body),
            S::UNAUTHORIZED,
        )
        .leaves("security.suspicious", "security", None, None),
    )
    .await;
    let (_, pair) = ctx.login("alice", NEW_PASSWORD).await;
    let session = pair["access_token"].as_str().unwrap().to_string();
    check(
        &ctx,
        step(
            M::POST,
            "/api/v1/auth/logout",
            Some(&session),
            None,
            S::NO_CONTENT,
        )
        .leaves("auth.logout", "authentication", u, None),
    )
    .await;
});

each_backend!(projects_runs_and_files_leave_modification_events, |ctx| {
    let alice = ctx.user("alice").await;
    let bob = ctx.user("bob").await;
    let u = Some("alice");
    let p = Some("project:cov");
    let run = Some("run:covrun01");
    let bytes = b"weights";
    let file = json!({"files": [{"path": "model.bin", "sha256": sha(bytes), "size": bytes.len()}]});
    let steps = [
        step(
            M::POST,
            "/api/v1/projects",
            Some(&alice),
            Some(json!({"name": "cov", "visibility": "private"})),
            S::CREATED,
        )
        .leaves("project.create", "data_modification", u, p),
        step(
            M::PATCH,
            "/api/v1/projects/cov",
            Some(&alice),
            Some(json!({"description": "coverage"})),
            S::OK,
        )
        .leaves("project.update", "data_modification", u, p),
        step(
            M::POST,
            "/api/v1/projects/cov/members",
            Some(&alice),
            Some(json!({"username": "bob", "role": "viewer"})),
            S::CREATED,
        )
        .leaves("member.add", "security", u, p),
        // A viewer may not change the project: the denial is recorded centrally.
        step(
            M::PATCH,
            "/api/v1/projects/cov",
            Some(&bob),
            Some(json!({"description": "mine"})),
            S::FORBIDDEN,
        )
        .leaves("authz.access_denied", "authorization", Some("bob"), None),
        step(
            M::PATCH,
            "/api/v1/projects/cov/members/bob",
            Some(&alice),
            Some(json!({"role": "member"})),
            S::OK,
        )
        .leaves("member.update", "security", u, p),
        step(
            M::POST,
            "/api/v1/runs",
            Some(&alice),
            Some(json!({"project": "cov", "id": "covrun01"})),
            S::CREATED,
        )
        .leaves("run.create", "data_modification", u, run),
        step(
            M::POST,
            "/api/v1/runs",
            Some(&bob),
            Some(json!({"project": "cov", "id": "covrun01"})),
            S::OK,
        )
        .leaves("run.resume", "data_modification", Some("bob"), run),
        step(
            M::PATCH,
            "/api/v1/runs/covrun01",
            Some(&alice),
            Some(json!({"name": "baseline", "tags": ["a"]})),
            S::OK,
        )
        .leaves("run.update", "data_modification", u, run),
        step(
            M::POST,
            "/api/v1/runs/covrun01/files",
            Some(&alice),
            Some(file),
            S::OK,
        )
        .leaves("run_file.create", "data_modification", u, run),
    ];
    let mut tickets = Value::Null;
    for s in steps {
        let body = check(&ctx, s).await;
        if body["files"].is_array() {
            tickets = body;
        }
    }
    // The bytes themselves travel on a signed URL; the attach above was the audited step.
    let before = events(&ctx).await.len();
    let (s, b) = upload(
        &ctx,
        tickets["files"][0]["upload_url"].as_str().unwrap(),
        bytes,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(events(&ctx).await.len(), before);

    // Routine traffic of a training run writes no audit rows.
    let history = json!({"points": [{"step": 0, "values": {"loss": 0.5}}]});
    let logs = json!({"lines": [{"level": "INFO", "message": "epoch 1"}]});
    quiet(
        &ctx,
        M::POST,
        "/api/v1/runs/covrun01/history",
        &alice,
        Some(history),
    )
    .await;
    quiet(
        &ctx,
        M::POST,
        "/api/v1/runs/covrun01/logs",
        &alice,
        Some(logs),
    )
    .await;
    quiet(
        &ctx,
        M::POST,
        "/api/v1/runs/covrun01/heartbeat",
        &alice,
        None,
    )
    .await;
    quiet(&ctx, M::GET, "/api/v1/runs/covrun01", &bob, None).await;
    quiet(&ctx, M::GET, "/api/v1/runs?project=cov", &bob, None).await;
    quiet(&ctx, M::GET, "/api/v1/runs/covrun01/files", &bob, None).await;

    let file_res = "run:covrun01/model.bin";
    let steps = [
        step(
            M::GET,
            "/api/v1/runs/covrun01/file?path=model.bin",
            Some(&bob),
            None,
            S::OK,
        )
        .leaves(
            "run_file.download",
            "data_access",
            Some("bob"),
            Some(file_res),
        ),
        step(
            M::POST,
            "/api/v1/runs/covrun01/stop",
            Some(&alice),
            None,
            S::OK,
        )
        .leaves("run.stop", "data_modification", u, run),
        step(
            M::POST,
            "/api/v1/runs/covrun01/finish",
            Some(&alice),
            Some(json!({"state": "finished", "exit_code": 0})),
            S::OK,
        )
        .leaves("run.finish", "data_modification", u, run),
        step(
            M::DELETE,
            "/api/v1/runs/covrun01/file?path=model.bin",
            Some(&alice),
            None,
            S::NO_CONTENT,
        )
        .leaves("run_file.delete", "data_modification", u, Some(file_res)),
        step(
            M::DELETE,
            "/api/v1/runs/covrun01",
            Some(&alice),
            None,
            S::NO_CONTENT,
        )
        .leaves("run.delete", "data_modification", u, run),
        step(
            M::DELETE,
            "/api/v1/projects/cov/members/bob",
            Some(&alice),
            None,
            S::NO_CONTENT,
        )
        .leaves("member.remove", "security", u, p),
        step(
            M::DELETE,
            "/api/v1/projects/cov",
            Some(&alice),
            None,
            S::NO_CONTENT,
        )
        .leaves("project.delete", "data_modification", u, p),
    ];
    for s in steps {
        check(&ctx, s).await;
    }
});

each_backend!(artifacts_registry_sweeps_and_admin_leave_events, |ctx| {
    let alice = ctx.user("alice").await;
    ctx.project(&alice, "cov", "private").await;
    let u = Some("alice");
    let art = Some("artifact:cov/data");
    let sweep = json!({"config": {"method": "grid", "metric": {"name": "acc", "goal": "maximize"},
        "parameters": {"a": {"values": [1, 2]}}}});
    let steps = [
        step(
            M::POST,
            "/api/v1/projects/cov/artifacts",
            Some(&alice),
            Some(json!({"name": "data", "type": "dataset"})),
            S::CREATED,
        )
        .leaves("artifact.create", "data_modification", u, art),
        step(
            M::PATCH,
            "/api/v1/projects/cov/artifacts/data",
            Some(&alice),
            Some(json!({"description": "inputs"})),
            S::OK,
        )
        .leaves("artifact.update", "data_modification", u, art),
        step(
            M::DELETE,
            "/api/v1/projects/cov/artifacts/data",
            Some(&alice),
            None,
            S::NO_CONTENT,
        )
        .leaves("artifact.delete", "data_modification", u, art),
        step(
            M::POST,
            "/api/v1/models",
            Some(&alice),
            Some(json!({"name": "clf", "project": "cov"})),
            S::CREATED,
        )
        .leaves("model.create", "data_modification", u, Some("model:clf")),
        step(
            M::POST,
            "/api/v1/admin/blobs/gc",
            Some(&alice),
            None,
            S::FORBIDDEN,
        )
        .leaves("authz.access_denied", "authorization", u, None),
        step(
            M::POST,
            "/api/v1/admin/blobs/gc?dry_run=true",
            Some(&ctx.admin_key),
            None,
            S::OK,
        )
        .leaves("blob.gc", "data_modification", Some("admin"), None),
    ];
    for s in steps {
        check(&ctx, s).await;
    }
    let before = events(&ctx).await.len();
    let (s, b) = ctx
        .post("/api/v1/projects/cov/sweeps", Some(&alice), sweep)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let added = &events(&ctx).await[before..];
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(added[0]["event_type"], "sweep.create");
    assert_eq!(added[0]["username"], "alice");
    assert_eq!(
        added[0]["resource"],
        format!("sweep:{}", b["id"].as_str().unwrap())
    );
});

each_backend!(making_a_project_public_is_a_warning, |ctx| {
    let alice = ctx.user("alice").await;
    ctx.project(&alice, "cov", "private").await;
    let (s, _) = ctx
        .patch(
            "/api/v1/projects/cov",
            Some(&alice),
            json!({"visibility": "public"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let last = events(&ctx).await.pop().unwrap();
    assert_eq!(last["event_type"], "project.update");
    assert_eq!(last["severity"], "high");
    assert_eq!(
        last["metadata"],
        json!({"visibility": {"from": "private", "to": "public"}})
    );
});

each_backend!(
    a_password_change_checks_the_current_one_and_the_policy,
    |ctx| {
        let alice = ctx.user("alice").await;
        let call = |body: Value| ctx.post("/api/v1/auth/password", Some(&alice), body);
        let (s, b) = call(json!({"new_password": NEW_PASSWORD})).await;
        crate::assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(b["error"]["details"]["field"], "current_password");
        let (s, b) = call(json!({"current_password": PASSWORD, "new_password": "short"})).await;
        crate::assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            b["error"]["message"].as_str().unwrap().contains("too weak"),
            "{b}"
        );
        let (s, b) = call(json!({"current_password": PASSWORD, "new_password": PASSWORD})).await;
        crate::assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        let (s, b) = ctx
            .post(
                "/api/v1/auth/password",
                None,
                json!({"new_password": NEW_PASSWORD}),
            )
            .await;
        crate::assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
        // Nothing changed: the old password still logs in, the new one does not.
        assert_eq!(ctx.login("alice", PASSWORD).await.0, StatusCode::OK);
        assert_eq!(
            ctx.login("alice", NEW_PASSWORD).await.0,
            StatusCode::UNAUTHORIZED
        );
        // Guessing the current password is limited like logging in.
        for _ in 0..4 {
            let (s, _) =
                call(json!({"current_password": "Guess-guess-123", "new_password": NEW_PASSWORD}))
                    .await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
        }
        let (s, b) =
            call(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})).await;
        crate::assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
);

each_backend!(an_account_without_a_password_sets_its_first, |ctx| {
    let admin = ctx.admin_key.clone();
    let (s, b) = ctx
        .post(
            "/api/v1/auth/password",
            Some(&admin),
            json!({"new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(ctx.login("admin", NEW_PASSWORD).await.0, StatusCode::OK);
    // From now on the current one is required.
    let (s, _) = ctx
        .post(
            "/api/v1/auth/password",
            Some(&admin),
            json!({"new_password": "Another-one-55"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
});

/// A failed login sent with a forwarding header, and the address its audit row shows.
async fn failed_login_ip(ctx: &Ctx, user: &str, forwarded_for: &str) -> (StatusCode, Value) {
    let resp = ctx
        .req(Method::POST, "/api/v1/auth/login", None)
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": user, "password": "Wrong-password-1"}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let last = events(ctx).await.pop().unwrap();
    (status, last["ip_address"].clone())
}

async fn with_proxies(backend: Backend, proxies: &[&str]) -> Ctx {
    let proxies: Vec<_> = proxies.iter().map(|p| p.parse().unwrap()).collect();
    Ctx::start_with(backend, |cfg| cfg.trusted_proxies = proxies).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    for backend in backends() {
        // Nothing trusted: the header is ignored, whatever it claims.
        let ctx = with_proxies(backend, &[]).await;
        let (s, ip) = failed_login_ip(&ctx, "u1", "203.0.113.9").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(ip, "127.0.0.1");
        // So rotating it does not escape the login limit of the real address.
        for i in 2..=5 {
            failed_login_ip(&ctx, &format!("u{i}"), &format!("203.0.113.{i}")).await;
        }
        let (s, ip) = failed_login_ip(&ctx, "u6", "198.51.100.1").await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ip, "127.0.0.1");
        ctx.stop().await;

        // The test client's peer is a trusted proxy: the client is the forwarded address,
        // after skipping trusted hops from the right.
        let ctx = with_proxies(backend, &["127.0.0.1/32", "10.0.0.0/8"]).await;
        let (s, ip) = failed_login_ip(&ctx, "u1", "6.6.6.6, 203.0.113.9, 10.1.2.3").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(ip, "203.0.113.9");
        // The login limit counts per forwarded client: one client is limited, another is not.
        for i in 2..=5 {
            failed_login_ip(&ctx, &format!("u{i}"), "203.0.113.9").await;
        }
        let (s, ip) = failed_login_ip(&ctx, "u6", "203.0.113.9").await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ip, "203.0.113.9");
        let (s, ip) = failed_login_ip(&ctx, "u7", "198.51.100.1").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(ip, "198.51.100.1");
        ctx.stop().await;
    }
}
