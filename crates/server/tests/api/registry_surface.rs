//! The registry as the product description calls it: versions from an artifact version's id
//! with `run_id` and `stage`, `to_stage`, `approved_by`, approvals voided by a demotion, and
//! the newest version in a stage.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend};

/// An artifact version of references only; its numeric id.
async fn artifact_version_id(ctx: &Ctx, key: &str, project: &str, tag: &str) -> i64 {
    let (s, b) = ctx
        .post(
            &format!("/api/v1/projects/{project}/artifacts/model/versions"),
            Some(key),
            json!({"type": "model", "entries": [{"path": "model.pth", "ref": format!("s3://models/{tag}.pth")}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["version"]["id"].as_i64().unwrap()
}

async fn create(ctx: &Ctx, key: &str, body: Value) -> (StatusCode, Value) {
    ctx.post(
        "/api/v1/models/sentiment-classifier/versions",
        Some(key),
        body,
    )
    .await
}

each_backend!(versions_from_ids_with_run_and_stage, |ctx| {
    let alice = ctx.user("alice").await;
    ctx.project(&alice, "sentiment-analysis", "private").await;
    let run = ctx.run(&alice, "sentiment-analysis", json!({})).await;
    let (s, m) = ctx
        .post(
            "/api/v1/models",
            Some(&alice),
            json!({"name": "sentiment-classifier", "project": "sentiment-analysis", "description": "BERT"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let av = artifact_version_id(&ctx, &alice, "sentiment-analysis", "a").await;

    let (s, v) = create(
        &ctx,
        &alice,
        json!({"run_id": run, "artifact_version_id": av, "description": "100k reviews",
               "metrics": {"accuracy": 0.92, "f1": 0.91}, "stage": "Staging"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["version"].as_str(),
            v["stage"].as_str(),
            v["run"].as_str()
        ),
        (Some("v1"), Some("Staging"), Some(run.as_str()))
    );
    assert_eq!(v["artifact"], "sentiment-analysis/model:v1");
    assert!(v.get("warnings").is_none(), "{v}");

    // Production needs an approval first: created in None, with a warning that says so.
    let av2 = artifact_version_id(&ctx, &alice, "sentiment-analysis", "b").await;
    let (s, v2) = create(
        &ctx,
        &alice,
        json!({"artifact_version_id": av2, "stage": "Production"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["stage"], "None");
    let w = v2["warnings"][0].as_str().unwrap();
    assert!(w.contains("approve") && w.contains("transition"), "{w}");

    // Bad references.
    let (s, b) = create(
        &ctx,
        &alice,
        json!({"artifact": "model:v1", "artifact_version_id": av}),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = create(&ctx, &alice, json!({"description": "nothing"})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("artifact_version_id")
    );
    let (s, _) = create(&ctx, &alice, json!({"artifact_version_id": 999_999})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // An artifact version of a private project the caller cannot read is a 404.
    let bob = ctx.user("bob").await;
    ctx.project(&bob, "bobs", "private").await;
    let hidden = artifact_version_id(&ctx, &bob, "bobs", "c").await;
    let (s, _) = create(&ctx, &alice, json!({"artifact_version_id": hidden})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});

each_backend!(approvals_and_demotions, |ctx| {
    let alice = ctx.user("alice").await;
    let lead = ctx.user("lead").await;
    ctx.project(&alice, "p", "private").await;
    ctx.post(
        "/api/v1/projects/p/members",
        Some(&alice),
        json!({"username": "lead", "role": "admin"}),
    )
    .await;
    ctx.post(
        "/api/v1/models",
        Some(&alice),
        json!({"name": "sentiment-classifier", "project": "p"}),
    )
    .await;
    for tag in ["a", "b"] {
        let av = artifact_version_id(&ctx, &alice, "p", tag).await;
        let (s, _) = create(&ctx, &alice, json!({"artifact_version_id": av})).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let path =
        |v: &str, what: &str| format!("/api/v1/models/sentiment-classifier/versions/{v}/{what}");
    // `to_stage`, as the description writes it.
    let (s, v) = ctx
        .post(
            &path("v2", "transition"),
            Some(&alice),
            json!({"to_stage": "Staging", "comment": "ready for testing"}),
        )
        .await;
    assert_eq!(
        (s, v["stage"].as_str()),
        (StatusCode::OK, Some("Staging")),
        "{v}"
    );
    // approved_by must be the caller.
    let (s, b) = ctx
        .post(
            &path("v2", "approval"),
            Some(&lead),
            json!({"approved_by": "alice", "comment": "+5%"}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, v) = ctx
        .post(
            &path("v2", "approval"),
            Some(&lead),
            json!({"approved_by": "lead", "comment": "+5%"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approved_by"], "lead");
    let (_, me) = ctx.get("/api/v1/auth/me", Some(&lead)).await;
    let (s, _) = ctx
        .post(
            &path("v1", "approval"),
            Some(&lead),
            json!({"approved_by": me["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ctx
        .post(
            &path("v2", "transition"),
            Some(&alice),
            json!({"to_stage": "Production"}),
        )
        .await;
    assert_eq!(
        (s, v["stage"].as_str()),
        (StatusCode::OK, Some("Production"))
    );
    // The promotion stands; moving it back voids the approval.
    assert_eq!(v["approved_by"], "lead");
    let (_, v) = ctx
        .post(
            &path("v2", "transition"),
            Some(&alice),
            json!({"to_stage": "Staging", "comment": "rollback"}),
        )
        .await;
    assert!(v["approved_by"].is_null(), "{v}");
    let (s, b) = ctx
        .post(
            &path("v2", "transition"),
            Some(&alice),
            json!({"to_stage": "Production"}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    // v1 was approved in None; going to Staging voids that too.
    let (_, v) = ctx
        .post(
            &path("v1", "transition"),
            Some(&alice),
            json!({"to_stage": "Staging"}),
        )
        .await;
    assert!(v["approved_by"].is_null(), "{v}");
    let (_, h) = ctx
        .get("/api/v1/models/sentiment-classifier/history", Some(&alice))
        .await;
    let voided: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "approval_voided")
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    assert_eq!(voided, ["v2", "v1"], "{h}");
    // Archiving from Production voids it as well.
    ctx.post(&path("v2", "approval"), Some(&lead), json!({}))
        .await;
    ctx.post(
        &path("v2", "transition"),
        Some(&alice),
        json!({"to": "Production"}),
    )
    .await;
    let (_, v) = ctx
        .post(
            &path("v2", "transition"),
            Some(&alice),
            json!({"to": "Archived"}),
        )
        .await;
    assert!(v["approved_by"].is_null(), "{v}");
});

each_backend!(latest_version_in_a_stage, |ctx| {
    let alice = ctx.user("alice").await;
    ctx.project(&alice, "p", "private").await;
    ctx.put_policy_without_approval(&alice).await;
    ctx.post(
        "/api/v1/models",
        Some(&alice),
        json!({"name": "sentiment-classifier", "project": "p"}),
    )
    .await;
    for (tag, stage) in [
        ("a", "Production"),
        ("b", "Production"),
        ("c", "Staging"),
        ("d", "None"),
    ] {
        let av = artifact_version_id(&ctx, &alice, "p", tag).await;
        let (s, v) = create(
            &ctx,
            &alice,
            json!({"artifact_version_id": av, "stage": stage}),
        )
        .await;
        assert_eq!(
            (s, v["stage"].as_str()),
            (StatusCode::CREATED, Some(stage)),
            "{v}"
        );
    }
    let latest = |q: &str| {
        let path = format!("/api/v1/models/sentiment-classifier/versions/latest{q}");
        let (ctx, alice) = (&ctx, alice.clone());
        async move { ctx.get(&path, Some(&alice)).await }
    };
    assert_eq!(latest("").await.1["version"], "v4");
    assert_eq!(latest("?stage=Production").await.1["version"], "v2");
    assert_eq!(latest("?stage=Staging").await.1["version"], "v3");
    let (s, _) = latest("?stage=Archived").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = latest("?stage=Gold").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx
        .get(
            "/api/v1/models/sentiment-classifier/versions/v1?stage=Production",
            Some(&alice),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

impl Ctx {
    /// Lets project `p` promote to Production without approvals.
    async fn put_policy_without_approval(&self, key: &str) {
        let r = self
            .req(
                reqwest::Method::PUT,
                "/api/v1/projects/p/registry-policy",
                Some(key),
            )
            .json(&json!({"require_approval": false, "allow_self_approval": false}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}
