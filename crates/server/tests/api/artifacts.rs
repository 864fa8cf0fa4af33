//! Artifacts: versions from manifests, upload-then-commit, dedup, aliases, references with
//! their address checks, lineage, permissions and garbage collection.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend, read, sha, upload};

fn entry(path: &str, bytes: &[u8]) -> Value {
    json!({"path": path, "sha256": sha(bytes), "size": bytes.len()})
}

async fn create(
    ctx: &Ctx,
    key: &str,
    project: &str,
    name: &str,
    body: Value,
) -> (StatusCode, Value) {
    ctx.post(
        &format!("/api/v1/projects/{project}/artifacts/{name}/versions"),
        Some(key),
        body,
    )
    .await
}

/// Creates a version, uploads what the server asks for, commits; returns the version.
async fn put_version(
    ctx: &Ctx,
    key: &str,
    project: &str,
    name: &str,
    files: &[(&str, &[u8])],
    extra: Value,
) -> Value {
    let mut body = extra;
    body["entries"] = files.iter().map(|(p, b)| entry(p, b)).collect();
    let (s, b) = create(ctx, key, project, name, body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let by_digest: HashMap<String, &[u8]> = files.iter().map(|(_, b)| (sha(b), *b)).collect();
    for u in b["uploads"].as_array().unwrap() {
        let bytes = by_digest[u["sha256"].as_str().unwrap()];
        let (s, r) = upload(ctx, u["upload_url"].as_str().unwrap(), bytes).await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    if b["version"]["state"] == "committed" {
        return b["version"].clone();
    }
    let (s, v) = ctx
        .post(
            &format!(
                "/api/v1/projects/{project}/artifacts/{name}/drafts/{}/commit",
                b["version"]["id"]
            ),
            Some(key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn files_of(ctx: &Ctx, key: &str, project: &str, spec: &str) -> Value {
    let (s, b) = ctx
        .get(
            &format!("/api/v1/projects/{project}/artifacts/{spec}/files?download_urls=true"),
            Some(key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

async fn fetch(ctx: &Ctx, url: &str) -> Vec<u8> {
    let r = ctx.req(Method::GET, url, None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().to_vec()
}

each_backend!(versions_dedup_aliases_and_immutability, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let weights = b"weights v1".repeat(500);
    let config = b"lr: 0.1\n".to_vec();

    // A new artifact needs a type.
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "model",
        json!({"entries": [entry("w.bin", &weights)]}),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("type"),
        "{b}"
    );

    // First version: both files must be uploaded; committing early says what is missing.
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "model",
        json!({"type": "model", "description": "first", "metadata": {"acc": 0.9},
               "aliases": ["staging"],
               "entries": [entry("w.bin", &weights), entry("conf/config.yaml", &config)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"]["state"], "pending");
    assert_eq!(b["version"]["version"], Value::Null);
    assert_eq!(b["uploads"].as_array().unwrap().len(), 2);
    let draft = b["version"]["id"].clone();
    let commit_path = format!("/api/v1/projects/p/artifacts/model/drafts/{draft}/commit");
    let (s, e) = ctx.post(&commit_path, Some(&k), json!({})).await;
    assert_error(s, &e, StatusCode::CONFLICT, "conflict");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("w.bin"),
        "{e}"
    );

    // A corrupted upload is refused; an interrupted one (too short) too; the retry lands.
    let url_w = b["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["sha256"] == sha(&weights))
        .unwrap()["upload_url"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bad = weights.clone();
    bad[3] ^= 1;
    let (s, e) = upload(&ctx, &url_w, &bad).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, _) = upload(&ctx, &url_w, &weights[..1000]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for u in b["uploads"].as_array().unwrap() {
        let bytes: &[u8] = if u["sha256"] == sha(&weights) {
            &weights
        } else {
            &config
        };
        let (s, r) = upload(&ctx, u["upload_url"].as_str().unwrap(), bytes).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["sha256"], sha(bytes));
    }
    let (s, v1) = ctx.post(&commit_path, Some(&k), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v1}");
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["state"], "committed");
    assert_eq!(v1["file_count"], 2);
    assert_eq!(v1["total_size"], weights.len() + config.len());
    assert_eq!(v1["metadata"]["acc"], 0.9);
    assert_eq!(v1["aliases"], json!(["latest", "staging"]));
    // Committing again changes nothing.
    let (s, again) = ctx.post(&commit_path, Some(&k), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["version"], "v1");

    // The same manifest in another order: no new version.
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "model",
        json!({"entries": [entry("conf/config.yaml", &config), entry("w.bin", &weights)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["created"].clone(), b["version"]["version"].clone()),
        (json!(false), json!("v1"))
    );
    assert_eq!(b["uploads"], json!([]));

    // v2 changes one file: only it is uploaded; the other content is stored once.
    let weights2 = b"weights v2".repeat(500);
    let v2 = put_version(
        &ctx,
        &k,
        "p",
        "model",
        &[("w.bin", &weights2), ("conf/config.yaml", &config)],
        json!({"aliases": ["production"]}),
    )
    .await;
    assert_eq!(v2["version"], "v2");
    // Same content in another artifact: nothing to upload, committed at once, stored once.
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "dataset",
        json!({"type": "dataset", "entries": [entry("copy.bin", &weights)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["uploads"], json!([]));
    assert_eq!(b["version"]["state"], "committed");
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM blobs WHERE digest = $1",
            &sha(&weights)
        )
        .await,
        1
    );
    // Type must match an existing artifact.
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "dataset",
        json!({"type": "model", "entries": []}),
    )
    .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    // v1 is unchanged by v2: its files and bytes are as committed.
    let f1 = files_of(&ctx, &k, "p", "model/versions/v1").await;
    let w1 = f1
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "w.bin")
        .unwrap();
    assert_eq!(w1["sha256"], sha(&weights));
    assert_eq!(w1["md5"].as_str().unwrap().len(), 32);
    assert_eq!(
        fetch(&ctx, w1["download_url"].as_str().unwrap()).await,
        weights
    );

    // latest, vN, numbers and aliases resolve; aliases move; reserved names are refused.
    for (spec, want) in [
        ("latest", "v2"),
        ("v1", "v1"),
        ("2", "v2"),
        ("staging", "v1"),
        ("production", "v2"),
    ] {
        let (s, v) = ctx
            .get(
                &format!("/api/v1/projects/p/artifacts/model/versions/{spec}"),
                Some(&k),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{spec}: {v}");
        assert_eq!(v["version"], want, "{spec}");
    }
    let (s, _) = ctx
        .req(
            Method::PUT,
            "/api/v1/projects/p/artifacts/model/aliases/production",
            Some(&k),
        )
        .json(&json!({"version": "v1"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (_, al) = ctx
        .get("/api/v1/projects/p/artifacts/model/aliases", Some(&k))
        .await;
    let pairs: Vec<(String, String)> = al
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alias"].as_str().unwrap().into(),
                a["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("latest".into(), "v2".into()),
            ("production".into(), "v1".into()),
            ("staging".into(), "v1".into())
        ]
    );
    for reserved in ["latest", "v7"] {
        let r = ctx
            .req(
                Method::PUT,
                &format!("/api/v1/projects/p/artifacts/model/aliases/{reserved}"),
                Some(&k),
            )
            .json(&json!({"version": "v1"}))
            .send()
            .await
            .unwrap();
        let (s, b) = read(r).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let (s, _) = ctx
        .delete(
            "/api/v1/projects/p/artifacts/model/aliases/staging",
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = ctx
        .get(
            "/api/v1/projects/p/artifacts/model/versions/staging",
            Some(&k),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    let (_, list) = ctx
        .get("/api/v1/projects/p/artifacts?type=model", Some(&k))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["latest_version"], "v2");
    assert_eq!(list["items"][0]["version_count"], 2);
    let (_, vs) = ctx
        .get("/api/v1/projects/p/artifacts/model/versions", Some(&k))
        .await;
    assert_eq!(vs[0]["version"], "v2");
    assert_eq!(vs[1]["version"], "v1");
    assert!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "artifact_download"
        )
        .await
            >= 1
    );
});

each_backend!(entries_paths_and_references_are_checked, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let d = sha(b"x");
    for bad in ["../x", "/etc/passwd", "a/../../b", "a\\b", "a\u{0}b", ""] {
        let (s, b) = create(
            &ctx,
            &k,
            "p",
            "a",
            json!({"type": "file", "entries": [{"path": bad, "sha256": d, "size": 1}]}),
        )
        .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("entries[0].path"),
            "{b}"
        );
    }
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "a",
        json!({"type": "file", "entries": [{"path": "x", "sha256": d, "size": 1}, {"path": "./x", "sha256": d, "size": 1}]}),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    // Unsafe reference targets: other schemes, loopback, link-local and metadata, private
    // ranges, IPv4-mapped IPv6, and a hostname that resolves to 127.0.0.1.
    for uri in [
        "http://example.com/data.csv",
        "file:///etc/passwd",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.10.1/x",
        "https://10.0.0.8/x",
        "https://172.16.5.4/x",
        "https://192.168.0.1/x",
        "https://[fd00:ec2::254]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://localhost:8443/x",
    ] {
        let (s, b) = create(
            &ctx,
            &k,
            "p",
            "refs",
            json!({"type": "dataset", "entries": [{"path": "data", "ref": uri}]}),
        )
        .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("entries[0].ref"),
            "{uri}: {b}"
        );
    }
    // Each https host is resolved once per version; a version may name at most 100 of them.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"path": format!("d{i}"), "ref": format!("s3://bucket-{i:03}/x")}))
        .collect();
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "refs",
        json!({"type": "dataset", "entries": many}),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    // Public targets are recorded as they are, with their checksum; nothing is uploaded.
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "refs",
        json!({"type": "dataset", "entries": [
            {"path": "train.csv", "ref": "s3://my-bucket/train.csv", "size": 10, "checksum": "etag-1"},
            {"path": "val.csv", "ref": "https://93.184.215.14/val.csv"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"]["state"], "committed");
    let f = files_of(&ctx, &k, "p", "refs/versions/latest").await;
    assert_eq!(f[0]["ref"], "s3://my-bucket/train.csv");
    assert_eq!(f[0]["checksum"], "etag-1");
    assert_eq!(f[0]["sha256"], Value::Null);
    assert!(f[0].get("download_url").is_none());
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_listed_host_may_be_private() {
    let ctx = Ctx::start_with(crate::Backend::Sqlite, |c| {
        c.reference_allow_hosts = vec!["localhost".into()];
    })
    .await;
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "refs",
        json!({"type": "dataset", "entries": [{"path": "d", "ref": "https://localhost/d"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = create(
        &ctx,
        &k,
        "p",
        "refs",
        json!({"entries": [{"path": "d", "ref": "https://127.0.0.1/d"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    ctx.stop().await;
}

each_backend!(
    permissions_follow_project_roles_and_dedup_stays_inside,
    |ctx| {
        let alice = ctx.user("alice").await;
        let bob = ctx.user("bob").await;
        ctx.project(&alice, "secret", "private").await;
        ctx.project(&bob, "bobs", "private").await;
        let data = b"private weights".repeat(10);
        put_version(
            &ctx,
            &alice,
            "secret",
            "m",
            &[("w", &data)],
            json!({"type": "model"}),
        )
        .await;

        // An outsider sees nothing, and citing the digest in their own project grants nothing.
        let (s, b) = ctx
            .get("/api/v1/projects/secret/artifacts/m", Some(&bob))
            .await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
        let (s, b) = create(
            &ctx,
            &bob,
            "bobs",
            "steal",
            json!({"type": "model", "entries": [entry("w", &data)]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["version"]["state"], "pending");
        assert_eq!(b["uploads"].as_array().unwrap().len(), 1);
        let (s, e) = ctx
            .post(
                &format!(
                    "/api/v1/projects/bobs/artifacts/steal/drafts/{}/commit",
                    b["version"]["id"]
                ),
                Some(&bob),
                json!({}),
            )
            .await;
        assert_error(s, &e, StatusCode::CONFLICT, "conflict");
        // A draft of another artifact cannot be committed through this one.
        let (s, _) = ctx
            .post(
                &format!(
                    "/api/v1/projects/secret/artifacts/m/drafts/{}/commit",
                    b["version"]["id"]
                ),
                Some(&bob),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // A viewer reads and downloads but does not create, alias or delete.
        let (s, _) = ctx
            .post(
                "/api/v1/projects/secret/members",
                Some(&alice),
                json!({"username": "bob", "role": "viewer"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let f = files_of(&ctx, &bob, "secret", "m/versions/v1").await;
        assert_eq!(
            fetch(&ctx, f[0]["download_url"].as_str().unwrap()).await,
            data
        );
        let (s, b) = create(
            &ctx,
            &bob,
            "secret",
            "m",
            json!({"entries": [entry("w", b"x")]}),
        )
        .await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
        let r = ctx
            .req(
                Method::PUT,
                "/api/v1/projects/secret/artifacts/m/aliases/prod",
                Some(&bob),
            )
            .json(&json!({"version": "v1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let (s, _) = ctx
            .delete("/api/v1/projects/secret/artifacts/m", Some(&bob))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = ctx
            .delete("/api/v1/projects/secret/artifacts/m", Some(&alice))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = ctx
            .get("/api/v1/projects/secret/artifacts/m/versions", Some(&alice))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(
            ctx.count(
                "SELECT COUNT(*) FROM audit_events WHERE action = $1",
                "artifact_delete"
            )
            .await,
            1
        );
    }
);

each_backend!(lineage_links_runs_and_versions, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let prep = ctx.run(&k, "p", json!({"name": "prepare"})).await;
    let train = ctx.run(&k, "p", json!({"name": "train"})).await;
    let eval = ctx.run(&k, "p", json!({"name": "evaluate"})).await;
    put_version(
        &ctx,
        &k,
        "p",
        "data",
        &[("d.csv", b"1,2,3")],
        json!({"type": "dataset", "run": prep}),
    )
    .await;
    let (s, _) = ctx
        .post(
            "/api/v1/projects/p/artifacts/data/versions/latest/use",
            Some(&k),
            json!({"run": train}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    put_version(
        &ctx,
        &k,
        "p",
        "model",
        &[("m.bin", b"model")],
        json!({"type": "model", "run": train}),
    )
    .await;
    let (s, _) = ctx
        .post(
            "/api/v1/projects/p/artifacts/model/versions/v1/use",
            Some(&k),
            json!({"run": eval}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, l) = ctx
        .get(
            "/api/v1/projects/p/artifacts/model/versions/v1/lineage",
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{l}");
    assert_eq!(l["produced_by"]["id"], train);
    assert_eq!(l["used_by"][0]["id"], eval);
    let ids: Vec<(&str, i64)> = l["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["depth"].as_i64().unwrap()))
        .collect();
    let want_train = format!("run:{train}");
    let want_prep = format!("run:{prep}");
    let want_eval = format!("run:{eval}");
    for (id, depth) in [
        ("artifact:p/model:v1", 0),
        (want_train.as_str(), -1),
        ("artifact:p/data:v1", -2),
        (want_prep.as_str(), -3),
        (want_eval.as_str(), 1),
    ] {
        assert!(ids.contains(&(id, depth)), "{id} at {depth} missing: {l}");
    }
    assert_eq!(l["edges"].as_array().unwrap().len(), 4, "{l}");

    let (_, ra) = ctx
        .get(&format!("/api/v1/runs/{train}/artifacts"), Some(&k))
        .await;
    assert_eq!(ra["used"][0]["artifact"], "data");
    assert_eq!(ra["produced"][0]["artifact"], "model");
    // A run of another project cannot be named as the producer.
    ctx.project(&k, "other", "private").await;
    let stranger = ctx.run(&k, "other", json!({})).await;
    let (s, b) = create(
        &ctx,
        &k,
        "p",
        "model",
        json!({"run": stranger, "entries": [entry("m.bin", b"x")]}),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(garbage_collection_respects_artifacts_and_drafts, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let kept = b"kept by an artifact".to_vec();
    let gone = b"only in a deleted artifact".to_vec();
    put_version(
        &ctx,
        &k,
        "p",
        "keep",
        &[("k", &kept)],
        json!({"type": "file"}),
    )
    .await;
    put_version(
        &ctx,
        &k,
        "p",
        "gone",
        &[("g", &gone)],
        json!({"type": "file"}),
    )
    .await;
    // A draft in progress that reuses the kept content and waits for new content.
    let fresh = b"still uploading".to_vec();
    let (_, draft) = create(
        &ctx,
        &k,
        "p",
        "keep",
        json!({"entries": [entry("k", &kept), entry("new", &fresh)]}),
    )
    .await;
    assert_eq!(draft["version"]["state"], "pending");
    let (s, _) = ctx
        .delete("/api/v1/projects/p/artifacts/gone", Some(&k))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE blobs SET created_at = 0")
            .execute(pool)
            .await
            .unwrap();
    });
    let admin = ctx.admin_key.clone();
    let (s, b) = ctx
        .post("/api/v1/admin/blobs/gc", Some(&admin), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["blobs"], 1, "{b}");
    assert_eq!(
        ctx.count("SELECT COUNT(*) FROM blobs WHERE digest = $1", &sha(&gone))
            .await,
        0
    );
    assert_eq!(
        ctx.count("SELECT COUNT(*) FROM blobs WHERE digest = $1", &sha(&kept))
            .await,
        1
    );
    // The draft goes on: upload, commit, and every byte is there.
    let u = &draft["uploads"][0];
    let (s, _) = upload(&ctx, u["upload_url"].as_str().unwrap(), &fresh).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ctx
        .post(
            &format!(
                "/api/v1/projects/p/artifacts/keep/drafts/{}/commit",
                draft["version"]["id"]
            ),
            Some(&k),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], "v2");
    let f = files_of(&ctx, &k, "p", "keep/versions/v2").await;
    for file in f.as_array().unwrap() {
        let bytes = fetch(&ctx, file["download_url"].as_str().unwrap()).await;
        assert_eq!(sha(&bytes), file["sha256"].as_str().unwrap());
    }
});
