//! Versions as the product description handles them: `latest` and `vN` in the aliases of a
//! new version, `create_alias(…, "latest", version="v7")`, artifacts found by tag, metadata
//! merged into a version, and deleting one version.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend, read};

/// Logs a version holding one reference (committed at once, nothing to upload).
async fn log_version(
    ctx: &Ctx,
    key: &str,
    name: &str,
    uri: &str,
    aliases: Value,
) -> (StatusCode, Value) {
    ctx.post(
        &format!("/api/v1/projects/p/artifacts/{name}/versions"),
        Some(key),
        json!({"type": "model", "aliases": aliases, "metadata": {"acc": 0.9, "arch": {"layers": 12, "heads": 8}},
               "entries": [{"path": "model.pth", "ref": uri}]}),
    )
    .await
}

async fn put_alias(ctx: &Ctx, key: &str, alias: &str, version: &str) -> (StatusCode, Value) {
    let r = ctx
        .req(
            Method::PUT,
            &format!("/api/v1/projects/p/artifacts/m/aliases/{alias}"),
            Some(key),
        )
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap();
    read(r).await
}

each_backend!(latest_and_version_aliases_are_accepted, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let (s, v) = log_version(
        &ctx,
        &k,
        "m",
        "s3://bucket/1",
        json!(["v1", "latest", "production"]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"]["version"], "v1");
    assert_eq!(v["version"]["aliases"], json!(["latest", "production"]));
    // A vN that is not the version being created is refused before anything is stored.
    let (s, b) = log_version(&ctx, &k, "m", "s3://bucket/2", json!(["v7"])).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("v7") && msg.contains("v2"), "{msg}");
    let (_, versions) = ctx
        .get("/api/v1/projects/p/artifacts/m/versions", Some(&k))
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
    // The same manifest again is v1 itself, so v1 is the right number then.
    let (s, same) = log_version(&ctx, &k, "m", "s3://bucket/1", json!(["v1"])).await;
    assert_eq!(
        (s, same["created"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{same}"
    );
    let (s, v2) = log_version(
        &ctx,
        &k,
        "m",
        "s3://bucket/2",
        json!(["v2", "latest", "staging"]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    assert_eq!(v2["version"]["version"], "v2");

    // create_alias(artifact, "latest", version="v2"): a no-op where it already points.
    let (s, r) = put_alias(&ctx, &k, "latest", "v2").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["version"], "v2");
    let (s, r) = put_alias(&ctx, &k, "v1", "v1").await;
    assert_eq!((s, r["version"].as_str()), (StatusCode::OK, Some("v1")));
    // Elsewhere it is a 400 saying these move by themselves.
    let (s, b) = put_alias(&ctx, &k, "latest", "v1").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("moves by itself"),
        "{b}"
    );
    let (s, _) = put_alias(&ctx, &k, "v1", "v2").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
});

each_backend!(artifacts_by_tag_and_metadata_merges, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    for (name, tags) in [
        ("bert", json!(["bert", "nlp", "production"])),
        ("resnet", json!(["vision"])),
        ("gpt", json!(["nlp"])),
        ("odd", json!(["nlp\"x", "50%_off"])),
    ] {
        let (s, b) = ctx
            .post(
                "/api/v1/projects/p/artifacts",
                Some(&k),
                json!({"name": name, "type": "model", "tags": tags}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = ctx
        .get("/api/v1/projects/p/artifacts?tag=nlp", Some(&k))
        .await;
    assert_eq!(names(&page), ["bert", "gpt"]);
    let (_, page) = ctx
        .get("/api/v1/projects/p/artifacts?tag=nlp&type=model", Some(&k))
        .await;
    assert_eq!(names(&page), ["bert", "gpt"]);
    let (_, page) = ctx
        .get("/api/v1/projects/p/artifacts?tag=nl", Some(&k))
        .await;
    assert_eq!(names(&page), Vec::<String>::new());
    let (_, page) = ctx
        .get("/api/v1/projects/p/artifacts?tag=50%25_off", Some(&k))
        .await;
    assert_eq!(names(&page), ["odd"]);
    let (_, page) = ctx
        .get("/api/v1/projects/p/artifacts?tag=nlp%22x", Some(&k))
        .await;
    assert_eq!(names(&page), ["odd"]);

    // A version's metadata merges (RFC 7396); null removes a key; its files never change.
    let (s, _) = log_version(&ctx, &k, "bert", "s3://bucket/bert", json!([])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ctx
        .patch(
            "/api/v1/projects/p/artifacts/bert/versions/v1",
            Some(&k),
            json!({"metadata": {"acc": 0.92, "f1": 0.91, "arch": {"heads": null, "dropout": 0.1}},
                   "description": "fine-tuned"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["metadata"],
        json!({"acc": 0.92, "f1": 0.91, "arch": {"layers": 12, "dropout": 0.1}})
    );
    assert_eq!(v["description"], "fine-tuned");
    assert_eq!(v["file_count"], 1);
    let (s, b) = ctx
        .patch(
            "/api/v1/projects/p/artifacts/bert/versions/v1",
            Some(&k),
            json!({"metadata": [1]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx
        .patch(
            "/api/v1/projects/p/artifacts/bert/versions/v1",
            Some(&k),
            json!({"files": []}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    // The artifact's own metadata merges the same way.
    ctx.patch(
        "/api/v1/projects/p/artifacts/bert",
        Some(&k),
        json!({"metadata": {"team": "nlp", "owner": "alice"}}),
    )
    .await;
    let (_, a) = ctx
        .patch(
            "/api/v1/projects/p/artifacts/bert",
            Some(&k),
            json!({"metadata": {"owner": null, "reviewed": true}}),
        )
        .await;
    assert_eq!(a["metadata"], json!({"team": "nlp", "reviewed": true}));
    // Readers may not change anything.
    let bob = ctx.user("bob").await;
    ctx.post(
        "/api/v1/projects/p/members",
        Some(&k),
        json!({"username": "bob", "role": "viewer"}),
    )
    .await;
    let (s, _) = ctx
        .patch(
            "/api/v1/projects/p/artifacts/bert/versions/v1",
            Some(&bob),
            json!({"metadata": {"x": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});

each_backend!(deleting_one_version, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    log_version(&ctx, &k, "m", "s3://bucket/1", json!(["production"])).await;
    log_version(&ctx, &k, "m", "s3://bucket/2", json!([])).await;
    let v1 = "/api/v1/projects/p/artifacts/m/versions/v1";
    // Held by an alias: 409 naming it.
    let (s, b) = ctx.delete(v1, Some(&k)).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alias production"),
        "{b}"
    );
    let (s, _) = ctx
        .delete(
            "/api/v1/projects/p/artifacts/m/aliases/production",
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Held by a registered model version: 409 naming it.
    ctx.post(
        "/api/v1/models",
        Some(&k),
        json!({"name": "clf", "project": "p"}),
    )
    .await;
    let (s, mv) = ctx
        .post(
            "/api/v1/models/clf/versions",
            Some(&k),
            json!({"artifact": "m:v1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{mv}");
    let (s, b) = ctx.delete(v1, Some(&k)).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model clf v1"),
        "{b}"
    );
    ctx.delete("/api/v1/models/clf/versions/v1", Some(&k)).await;
    let (s, b) = ctx.delete(v1, Some(&k)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _) = ctx.get(v1, Some(&k)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Deleting the newest moves `latest` back; numbers are never reused.
    let (s, _) = ctx
        .delete("/api/v1/projects/p/artifacts/m/versions/v2", Some(&k))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, versions) = ctx
        .get("/api/v1/projects/p/artifacts/m/versions", Some(&k))
        .await;
    assert_eq!(versions, json!([]));
    let (s, v3) = log_version(&ctx, &k, "m", "s3://bucket/3", json!([])).await;
    assert_eq!(s, StatusCode::OK, "{v3}");
    assert_eq!(v3["version"]["version"], "v3");
    let (_, a) = ctx.get("/api/v1/projects/p/artifacts/m", Some(&k)).await;
    assert_eq!(a["latest_version"], "v3");
});
