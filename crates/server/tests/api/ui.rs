//! Web UI pages of sweeps, artifacts, the registry and administration, over HTTP on both
//! backends: who sees which page and control, and forms that act through the same services as
//! the API (same rules, same audit events). The browser tests in ui-tests/ drive the scripts.

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Client, StatusCode, redirect};
use serde_json::{Value, json};

use crate::{Ctx, PASSWORD, each_backend};

/// A browser session: its cookie header and the CSRF token its pages carry.
struct Session {
    cookie: String,
    csrf: String,
    client: Client,
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A form body.
fn form_body(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

fn cookie_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta")
        + 27;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

impl Session {
    /// Logs in through the login form.
    async fn login(ctx: &Ctx, user: &str) -> Session {
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap();
        let page = client
            .get(format!("{}/login", ctx.url))
            .send()
            .await
            .unwrap();
        let pre = cookie_of(&page, "wanllmdb_csrf").expect("pre-session cookie");
        let token = csrf_in(&page.text().await.unwrap());
        let resp = client
            .post(format!("{}/login", ctx.url))
            .header(COOKIE, &pre)
            .header(CONTENT_TYPE, FORM)
            .body(form_body(&[
                ("csrf", token.as_str()),
                ("method", "password"),
                ("username", user),
                ("password", PASSWORD),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login of {user}");
        let cookie = cookie_of(&resp, "wanllmdb_session").expect("session cookie");
        let mut s = Session {
            cookie,
            csrf: String::new(),
            client,
        };
        let (_, html) = s.get(ctx, "/projects").await;
        s.csrf = csrf_in(&html);
        s
    }

    async fn get(&self, ctx: &Ctx, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", ctx.url))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, ctx: &Ctx, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let mut fields = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        let r = self
            .client
            .post(format!("{}{path}", ctx.url))
            .header(COOKIE, &self.cookie)
            .header(CONTENT_TYPE, FORM)
            .body(form_body(&fields))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

/// A page read with a bearer credential (pages take the API's credentials too).
async fn page_of(ctx: &Ctx, path: &str, token: &str) -> (StatusCode, String) {
    let r = ctx
        .req(reqwest::Method::GET, path, Some(token))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn member(ctx: &Ctx, owner: &str, user: &str, role: &str) {
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(owner),
            json!({"username": user, "role": role}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

/// A sweep with three finished trials.
async fn sweep(ctx: &Ctx, k: &str) -> String {
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/sweeps",
            Some(k),
            json!({"config": {"method": "random", "metric": {"name": "acc", "goal": "maximize"},
                "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
                               "batch": {"values": [16, 32]}}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    for acc in [0.5, 0.7, 0.9] {
        let (_, t) = ctx
            .post(&format!("/api/v1/sweeps/{id}/suggest"), Some(k), json!({}))
            .await;
        let run = t["run_id"].as_str().unwrap();
        ctx.run(k, "team", json!({"id": run, "config": t["config"]}))
            .await;
        ctx.post(
            &format!("/api/v1/runs/{run}/history"),
            Some(k),
            json!({"points": [{"step": 0, "values": {"acc": acc}}]}),
        )
        .await;
        ctx.post(
            &format!("/api/v1/runs/{run}/finish"),
            Some(k),
            json!({"state": "finished"}),
        )
        .await;
    }
    id
}

/// A model whose v1 (from an artifact version logged by a run) needs an approval for Production.
async fn model(ctx: &Ctx, k: &str) -> String {
    let run = ctx.run(k, "team", json!({"name": "train"})).await;
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/artifacts/clf/versions",
            Some(k),
            json!({"type": "model", "run": run,
                   "entries": [{"path": "model.bin", "ref": "s3://models/clf.bin", "size": 3}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = ctx
        .post(
            "/api/v1/models",
            Some(k),
            json!({"name": "clf", "project": "team", "require_approval": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = ctx
        .post(
            "/api/v1/models/clf/versions",
            Some(k),
            json!({"artifact": "clf:v1", "run": run, "metrics": {"acc": 0.93}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    run
}

async fn audit_events(ctx: &Ctx, event_type: &str) -> Vec<Value> {
    let (s, b) = ctx
        .get(
            &format!("/api/v1/audit/logs?event_type={event_type}"),
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

each_backend!(ui_sweep_controls_follow_the_role, |ctx| {
    let owner = ctx.user("olive").await;
    ctx.user("vera").await;
    ctx.project(&owner, "team", "private").await;
    member(&ctx, &owner, "vera", "viewer").await;
    let id = sweep(&ctx, &owner).await;

    let olive = Session::login(&ctx, "olive").await;
    let (s, html) = olive.get(&ctx, &format!("/sweeps/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"sweep-controls\"") && html.contains("data-action=\"pause\""));
    assert!(html.contains("data-parcoords") && html.contains("id=\"importance\""));
    assert_eq!(
        html.matches("data-trial=").count(),
        3,
        "every trial is a row"
    );
    let (s, list) = olive.get(&ctx, "/projects/team/sweeps").await;
    assert_eq!(s, StatusCode::OK);
    assert!(list.contains(&format!("href=\"/sweeps/{id}\"")));

    let vera = Session::login(&ctx, "vera").await;
    let (s, html) = vera.get(&ctx, &format!("/sweeps/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !html.contains("sweep-controls"),
        "a viewer sees no controls"
    );
    // The form is refused to a viewer by the service, as over the API.
    let (s, html) = vera
        .post(&ctx, &format!("/sweeps/{id}/state"), &[("action", "pause")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(html.contains("class=\"notice error\""));

    let (s, html) = olive
        .post(&ctx, &format!("/sweeps/{id}/state"), &[("action", "pause")])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("The sweep is paused now."));
    assert!(html.contains("data-action=\"resume\""));
    let events = audit_events(&ctx, "sweep.update").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["username"], "olive");
    assert_eq!(events[0]["request_path"], format!("/sweeps/{id}/state"));
    // Without the page's token the form is refused before anything happens.
    let r = olive
        .client
        .post(format!("{}/sweeps/{id}/state", ctx.url))
        .header(COOKIE, &olive.cookie)
        .header(CONTENT_TYPE, FORM)
        .body(form_body(&[("action", "resume")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(audit_events(&ctx, "sweep.update").await.len(), 1);
});

each_backend!(ui_transitions_and_approvals_follow_the_api_rules, |ctx| {
    let owner = ctx.user("olive").await;
    ctx.user("adam").await;
    ctx.user("vera").await;
    ctx.project(&owner, "team", "private").await;
    member(&ctx, &owner, "adam", "admin").await;
    member(&ctx, &owner, "vera", "viewer").await;
    let run = model(&ctx, &owner).await;

    let olive = Session::login(&ctx, "olive").await;
    let (s, html) = olive.get(&ctx, "/models/clf").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/runs/{run}\"")),
        "source run"
    );
    assert!(
        html.contains("href=\"/projects/team/artifacts/clf/v1\""),
        "artifact"
    );
    assert!(
        html.contains("data-transition"),
        "the owner may move versions"
    );
    assert!(
        !html.contains("data-approve"),
        "but not approve a version of their own"
    );
    let (s, html) = olive
        .post(
            &ctx,
            "/models/clf/versions/v1/transition",
            &[("to", "Staging"), ("comment", "eval next")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("v1 is in Staging now."));
    assert!(html.contains("id=\"waiting\""), "waiting for an approval");
    let (s, html) = olive
        .post(
            &ctx,
            "/models/clf/versions/v1/transition",
            &[("to", "Production")],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("is not approved for Production"), "{html}");

    let adam = Session::login(&ctx, "adam").await;
    let (_, html) = adam.get(&ctx, "/models/clf").await;
    assert!(html.contains("data-approve"));
    let (s, html) = adam
        .post(
            &ctx,
            "/models/clf/versions/v1/approval",
            &[("comment", "looked at the eval")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("looked at the eval"), "the approvals list");
    let (s, _) = olive
        .post(
            &ctx,
            "/models/clf/versions/v1/transition",
            &[("to", "Production")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = ctx
        .get("/api/v1/models/clf/versions/v1", Some(&owner))
        .await;
    assert_eq!(v["stage"], "Production");
    let events = audit_events(&ctx, "model_version.transition").await;
    assert_eq!(events.len(), 2, "{events:?}");
    let (s, html) = adam
        .post(
            &ctx,
            "/models/clf/versions/v1/approval",
            &[("revoke", "1"), ("comment", "regression found")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("The approval of v1 is revoked."));
    assert!(html.contains("regression found"));
    assert!(
        events
            .iter()
            .all(|e| e["request_path"] == "/models/clf/versions/v1/transition")
    );

    let vera = Session::login(&ctx, "vera").await;
    let (s, html) = vera.get(&ctx, "/models/clf").await;
    assert_eq!(s, StatusCode::OK);
    for control in ["data-transition", "data-approve", "data-revoke"] {
        assert!(!html.contains(control), "a viewer sees no {control}");
    }
    let (s, _) = vera
        .post(
            &ctx,
            "/models/clf/versions/v1/transition",
            &[("to", "Archived")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        audit_events(&ctx, "model_version.transition").await.len(),
        2
    );
});

each_backend!(ui_artifact_pages_exist_for_every_link, |ctx| {
    let owner = ctx.user("olive").await;
    ctx.project(&owner, "team", "private").await;
    let run = model(&ctx, &owner).await;
    let (s, html) = page_of(&ctx, &format!("/runs/{run}/artifacts"), &owner).await;
    assert_eq!(s, StatusCode::OK);
    let href = "/projects/team/artifacts/clf/v1";
    assert!(html.contains(&format!("href=\"{href}\"")));
    let (s, html) = page_of(&ctx, href, &owner).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("data-lineage") && html.contains("model.bin"));
    assert!(
        html.contains(&format!("href=\"/runs/{run}\"")),
        "produced by"
    );
    for page in [
        "/projects/team/artifacts",
        "/projects/team/artifacts?type=model",
        "/projects/team/artifacts/clf",
        "/models?project=team",
    ] {
        let (s, html) = page_of(&ctx, page, &owner).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(html.contains("clf"), "{page}");
    }
    let (s, html) = page_of(&ctx, "/projects/team/artifacts?type=dataset", &owner).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("href=\"/projects/team/artifacts/clf\""));
    let (s, _) = page_of(&ctx, "/projects/team/artifacts/clf/v9", &owner).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let outsider = ctx.user("otto").await;
    let (s, html) = page_of(&ctx, href, &outsider).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!html.contains("model.bin"));
});

each_backend!(ui_admin_pages_are_for_administrators_only, |ctx| {
    let alice = ctx.user("alice").await;
    for page in ["/admin/audit", "/admin/users", "/admin/api-keys"] {
        let (s, html) = page_of(&ctx, page, &alice).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{page}");
        assert!(!html.contains("admin-link"));
        let (s, _) = page_of(&ctx, page, &ctx.admin_key).await;
        assert_eq!(s, StatusCode::OK, "{page}");
    }
    let (s, html) = page_of(
        &ctx,
        "/admin/audit?event_type=auth.register",
        &ctx.admin_key,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("alice") && html.contains("id=\"audit-events\""));
    let (s, html) = page_of(&ctx, "/admin/audit?severity=loud", &ctx.admin_key).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("severity"),
        "the filter's error is on the page"
    );
    let (_, html) = page_of(&ctx, "/admin/users", &ctx.admin_key).await;
    assert!(html.contains("data-user=\"alice\""));
    let (_, html) = page_of(&ctx, "/admin/api-keys?user=alice", &ctx.admin_key).await;
    assert!(html.contains("<td>alice</td>") && !html.contains("<td>admin</td>"));
});

each_backend!(ui_admin_forms_act_through_the_account_service, |ctx| {
    ctx.user("alice").await;
    // The bootstrap administrator has only a key: make one with a password.
    let (s, b) = ctx
        .post(
            "/api/v1/admin/users",
            Some(&ctx.admin_key),
            json!({"username": "root", "email": "root@example.com", "password": PASSWORD, "is_admin": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let root = Session::login(&ctx, "root").await;
    let (s, html) = root
        .post(
            &ctx,
            "/admin/users",
            &[("username", "bob"), ("email", "bob@example.com")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Created bob. Its password, shown only now: "));
    let (s, html) = root.post(&ctx, "/admin/users/alice/promote", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("alice is a server administrator now."));
    let (s, _) = root.post(&ctx, "/admin/users/alice/promote", &[]).await;
    assert_eq!(s, StatusCode::CONFLICT, "the service's rule");
    let (s, html) = root.post(&ctx, "/admin/users/bob/disable", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Disabled bob"));
    let (s, html) = root
        .post(
            &ctx,
            "/admin/users/alice/reset-password",
            &[("password", "")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("New password of alice, shown only now: "));
    let (s, html) = root.post(&ctx, "/admin/users/root/disable", &[]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        html.contains("you cannot disable your own account"),
        "{html}"
    );
    let (_, keys) = ctx
        .get("/api/v1/admin/api-keys?user=alice", Some(&ctx.admin_key))
        .await;
    let id = keys["items"][0]["id"].as_i64().unwrap().to_string();
    let (s, html) = root
        .post(&ctx, &format!("/admin/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&format!("API key {id} revoked.")));
    for event in [
        "user.create",
        "user.promote",
        "user.disable",
        "user.password_reset",
        "api_key.revoke",
    ] {
        let found = audit_events(&ctx, event).await;
        assert!(
            found.iter().any(|e| e["username"] == "root"),
            "{event}: {found:?}"
        );
    }
});
