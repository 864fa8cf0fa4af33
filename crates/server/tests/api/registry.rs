//! Model registry: versions from artifacts, transitions and their history, approvals with four
//! eyes, racing promotions, aliases and stage references, permissions, and the audit log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend};

/// An artifact version made of references only (nothing to upload); returns its version name.
async fn artifact(ctx: &Ctx, key: &str, project: &str, name: &str, tag: &str) -> String {
    let (s, b) = ctx
        .post(
            &format!("/api/v1/projects/{project}/artifacts/{name}/versions"),
            Some(key),
            json!({"type": "model", "entries": [{"path": "model.bin", "ref": format!("s3://models/{tag}.bin"), "size": 3}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["version"]["version"].as_str().unwrap().to_string()
}

async fn member(ctx: &Ctx, owner: &str, project: &str, user: &str, role: &str) {
    let (s, b) = ctx
        .post(
            &format!("/api/v1/projects/{project}/members"),
            Some(owner),
            json!({"username": user, "role": role}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn version(ctx: &Ctx, key: &str, model: &str, artifact: &str) -> Value {
    let (s, v) = ctx
        .post(
            &format!("/api/v1/models/{model}/versions"),
            Some(key),
            json!({"artifact": artifact, "metrics": {"acc": 0.9}, "description": "trained"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn transition(
    ctx: &Ctx,
    key: &str,
    model: &str,
    v: &str,
    body: Value,
) -> (StatusCode, Value) {
    ctx.post(
        &format!("/api/v1/models/{model}/versions/{v}/transition"),
        Some(key),
        body,
    )
    .await
}

async fn approve(ctx: &Ctx, key: &str, model: &str, v: &str, revoke: bool) -> (StatusCode, Value) {
    let path = if revoke {
        "approval/revoke"
    } else {
        "approval"
    };
    ctx.post(
        &format!("/api/v1/models/{model}/versions/{v}/{path}"),
        Some(key),
        json!({"comment": "looked at the eval"}),
    )
    .await
}

each_backend!(promotion_needs_a_second_pair_of_eyes, |ctx| {
    let owner = ctx.user("olive").await;
    let alice = ctx.user("alice").await;
    let viewer = ctx.user("vera").await;
    let outsider = ctx.user("otto").await;
    ctx.project(&owner, "team", "private").await;
    member(&ctx, &owner, "team", "alice", "admin").await;
    member(&ctx, &owner, "team", "vera", "viewer").await;
    let v1 = artifact(&ctx, &alice, "team", "resnet", "a").await;
    assert_eq!(v1, "v1");
    let (s, m) = ctx
        .post(
            "/api/v1/models",
            Some(&alice),
            json!({"name": "resnet-cls", "project": "team", "description": "classifier", "tags": ["vision"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["approval_required"], true);
    let (s, b) = ctx
        .post(
            "/api/v1/models",
            Some(&owner),
            json!({"name": "resnet-cls", "project": "team"}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    let v = version(&ctx, &alice, "resnet-cls", "resnet:v1").await;
    assert_eq!(v["version"], "v1");
    assert_eq!(v["stage"], "None");
    assert_eq!(v["artifact"], "team/resnet:v1");
    assert_eq!(v["created_by"], "alice");

    let (s, v) = transition(
        &ctx,
        &alice,
        "resnet-cls",
        "v1",
        json!({"to": "Staging", "comment": "eval"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stage"], "Staging");
    // Production without an approval: refused, naming who can approve (not alice, the creator).
    let (s, b) = transition(
        &ctx,
        &alice,
        "resnet-cls",
        "v1",
        json!({"to": "Production"}),
    )
    .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("olive") && !msg.contains("alice,"), "{msg}");
    // Four eyes: the creator cannot approve; a viewer cannot either; an outsider sees nothing.
    let (s, b) = approve(&ctx, &alice, "resnet-cls", "v1", false).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = approve(&ctx, &viewer, "resnet-cls", "v1", false).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = transition(&ctx, &viewer, "resnet-cls", "v1", json!({"to": "Archived"})).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = ctx.get("/api/v1/models/resnet-cls", Some(&outsider)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = ctx.get("/api/v1/models", Some(&outsider)).await;
    assert_eq!(list, json!([]));
    let (_, list) = ctx.get("/api/v1/models?search=RESNET", Some(&viewer)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (s, v) = approve(&ctx, &owner, "resnet-cls", "v1", false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approved_by"], "olive");
    let (s, v) = transition(
        &ctx,
        &alice,
        "resnet-cls",
        "v1",
        json!({"to": "Production", "comment": "ship it"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stage"], "Production");

    // A revoked approval blocks a later promotion.
    artifact(&ctx, &alice, "team", "resnet", "b").await;
    let v2 = version(&ctx, &alice, "resnet-cls", "resnet:latest").await;
    assert_eq!(v2["artifact"], "team/resnet:v2");
    approve(&ctx, &owner, "resnet-cls", "v2", false).await;
    let (s, v) = approve(&ctx, &owner, "resnet-cls", "v2", true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["approved_by"].is_null());
    let (s, b) = transition(
        &ctx,
        &alice,
        "resnet-cls",
        "v2",
        json!({"to": "Production"}),
    )
    .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = approve(&ctx, &owner, "resnet-cls", "v2", true).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    // The project may relax four eyes; then the creator may approve their own version.
    let policy = json!({"require_approval": true, "allow_self_approval": true});
    let (s, b) = ctx
        .call(
            Method::PUT,
            "/api/v1/projects/team/registry-policy",
            Some(&viewer),
            Some(policy.clone()),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = ctx
        .call(
            Method::PUT,
            "/api/v1/projects/team/registry-policy",
            Some(&alice),
            Some(policy.clone()),
        )
        .await;
    assert_eq!((s, b), (StatusCode::OK, policy));
    let (s, v) = approve(&ctx, &alice, "resnet-cls", "v2", false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = transition(
        &ctx,
        &alice,
        "resnet-cls",
        "v2",
        json!({"to": "Production", "archive_existing": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, prod) = ctx
        .get(
            "/api/v1/models/resnet-cls/versions?stage=Production",
            Some(&viewer),
        )
        .await;
    let prod: Vec<&str> = prod
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(prod, vec!["v2"]);
    let (_, m) = ctx.get("/api/v1/models/resnet-cls", Some(&viewer)).await;
    assert_eq!(m["production"], json!(["v2"]));
    assert_eq!(m["version_count"], 2);

    // The whole trail, in order, with who and why.
    let (_, h) = ctx
        .get("/api/v1/models/resnet-cls/history", Some(&viewer))
        .await;
    let trail: Vec<(String, String, String)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["version"].as_str().unwrap_or("-").to_string(),
                e["to"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want: Vec<(&str, &str, &str)> = vec![
        ("registered", "-", "team"),
        ("version_created", "v1", "resnet:v1"),
        ("transition", "v1", "Staging"),
        ("approved", "v1", "olive"),
        ("transition", "v1", "Production"),
        ("version_created", "v2", "resnet:latest"),
        ("approved", "v2", "olive"),
        ("approval_revoked", "v2", "-"),
        ("approved", "v2", "alice"),
        ("transition", "v1", "Archived"),
        ("approval_voided", "v1", "-"),
        ("transition", "v2", "Production"),
    ];
    let got: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(h[4]["comment"], "ship it");
    assert_eq!(h[4]["user"], "alice");
    assert_eq!(h[4]["from"], "Staging");
    let (_, h1) = ctx
        .get(
            "/api/v1/models/resnet-cls/history?version=v1",
            Some(&viewer),
        )
        .await;
    assert_eq!(h1.as_array().unwrap().len(), 6);
    for (event, n) in [
        ("model_register", 1),
        ("model_version_create", 2),
        ("model_transition", 3),
        ("model_approve", 3),
        ("model_approval_revoke", 1),
        ("registry_policy_change", 1),
    ] {
        assert_eq!(
            ctx.count("SELECT COUNT(*) FROM audit_events WHERE action = $1", event)
                .await,
            n,
            "{event}"
        );
    }
});

each_backend!(racing_promotions_leave_one_production_version, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    artifact(&ctx, &k, "p", "m", "a").await;
    ctx.post(
        "/api/v1/models",
        Some(&k),
        json!({"name": "m1", "project": "p", "require_approval": false}),
    )
    .await;
    for _ in 0..6 {
        version(&ctx, &k, "m1", "m:v1").await;
    }
    // Six promotions at once, each archiving what is in Production.
    let calls = (1..=6).map(|i| {
        let ctx = &ctx;
        let k = &k;
        async move {
            transition(
                ctx,
                k,
                "m1",
                &format!("v{i}"),
                json!({"to": "Production", "archive_existing": true}),
            )
            .await
        }
    });
    for (s, b) in futures_util::future::join_all(calls).await {
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, prod) = ctx
        .get("/api/v1/models/m1/versions?stage=Production", Some(&k))
        .await;
    assert_eq!(prod.as_array().unwrap().len(), 1, "{prod}");
    let (_, archived) = ctx
        .get("/api/v1/models/m1/versions?stage=Archived", Some(&k))
        .await;
    assert_eq!(archived.as_array().unwrap().len(), 5);
    // Without archive_existing two versions may serve side by side (A/B).
    let (_, a) = ctx
        .get("/api/v1/models/m1/versions/Archived", Some(&k))
        .await;
    let other = a["version"].as_str().unwrap().to_string();
    let (s, _) = transition(&ctx, &k, "m1", &other, json!({"to": "Production"})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, prod) = ctx
        .get("/api/v1/models/m1/versions?stage=Production", Some(&k))
        .await;
    assert_eq!(prod.as_array().unwrap().len(), 2);
    // NAME/Production is the newest version in Production.
    let (_, newest) = ctx
        .get("/api/v1/models/m1/versions/production", Some(&k))
        .await;
    assert_eq!(newest["version"], prod[0]["version"]);
});

each_backend!(aliases_resolve_move_and_are_recorded, |ctx| {
    let k = ctx.user("alice").await;
    let other = ctx.user("bob").await;
    ctx.project(&k, "p", "private").await;
    ctx.project(&other, "secret", "private").await;
    artifact(&ctx, &k, "p", "m", "a").await;
    artifact(&ctx, &other, "secret", "hidden", "x").await;
    ctx.post(
        "/api/v1/models",
        Some(&k),
        json!({"name": "m1", "project": "p"}),
    )
    .await;
    version(&ctx, &k, "m1", "m:v1").await;
    version(&ctx, &k, "m1", "p/m:v1").await;
    // An artifact version the caller cannot read is refused as if it did not exist.
    let (s, b) = ctx
        .post(
            "/api/v1/models/m1/versions",
            Some(&k),
            json!({"artifact": "secret/hidden:v1"}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .post(
            "/api/v1/models/m1/versions",
            Some(&k),
            json!({"artifact": "m:v9"}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .post(
            "/api/v1/models/m1/versions",
            Some(&k),
            json!({"artifact": "m:v1", "metrics": [1]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    let set = |alias: &'static str, v: &'static str| {
        let ctx = &ctx;
        let k = &k;
        async move {
            let body = json!({"version": v, "comment": "best so far"});
            ctx.call(
                Method::PUT,
                &format!("/api/v1/models/m1/aliases/{alias}"),
                Some(k),
                Some(body),
            )
            .await
            .0
        }
    };
    assert_eq!(set("champion", "v1").await, StatusCode::OK);
    let (_, v) = ctx
        .get("/api/v1/models/m1/versions/@champion", Some(&k))
        .await;
    assert_eq!(v["version"], "v1");
    assert_eq!(v["aliases"], json!(["champion"]));
    assert_eq!(set("champion", "v2").await, StatusCode::OK);
    let (_, v) = ctx
        .get("/api/v1/models/m1/versions/@champion", Some(&k))
        .await;
    assert_eq!(v["version"], "v2");
    assert_eq!(set("v3", "v1").await, StatusCode::BAD_REQUEST);
    assert_eq!(set("Production", "v1").await, StatusCode::BAD_REQUEST);
    let (s, _) = ctx
        .delete("/api/v1/models/m1/aliases/champion", Some(&k))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = ctx
        .get("/api/v1/models/m1/versions/@champion", Some(&k))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .get("/api/v1/models/m1/versions/Staging", Some(&k))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, _) = ctx.delete("/api/v1/models/m1/versions/v1", Some(&k)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, h) = ctx.get("/api/v1/models/m1/history", Some(&k)).await;
    let actions: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "registered",
            "version_created",
            "version_created",
            "alias_set",
            "alias_set",
            "alias_removed",
            "version_deleted"
        ]
    );
    assert_eq!(h[4]["from"], "champion was v1");
    let (s, _) = ctx.delete("/api/v1/models/m1", Some(&k)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE resource LIKE $1",
            "model:m1%"
        )
        .await,
        8
    );
});
