//! The S3 backend against a real S3-protocol server (moto_server, started here): presigned
//! uploads verified on completion, presigned downloads, dedup, corrupted and retried uploads,
//! and garbage collection deleting objects.
//!
//! moto_server is found through `WANLLMDB_TEST_MOTO_SERVER` or on `PATH`; without it these
//! tests say so and pass, unless `WANLLMDB_TEST_REQUIRE_S3` is set (CI sets it).

use crate::moto::{self, Moto};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wanllmdb_server::blobs::s3::{MAX_SINGLE_PART, S3Config};

use crate::{Backend, Ctx, assert_error, sha, upload};

async fn start(moto: &Moto) -> Ctx {
    start_tuned(
        moto,
        S3Config::MULTIPART_THRESHOLD,
        S3Config::PART_SIZE,
        MAX_SINGLE_PART,
    )
    .await
}

/// With small multipart settings, so parts and part copies can be tested with megabytes.
async fn start_tuned(moto: &Moto, threshold: u64, part: u64, max_copy: u64) -> Ctx {
    let endpoint = moto.endpoint.clone();
    Ctx::start_with(Backend::Sqlite, move |c| {
        c.s3 = Some(S3Config {
            bucket: moto.bucket.clone(),
            prefix: "srv".into(),
            endpoint: Some(endpoint),
            public_endpoint: None,
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
            multipart_threshold: threshold,
            part_size: part,
            max_single_copy: max_copy,
        });
    })
    .await
}

async fn complete(ctx: &Ctx, url: &str) -> (StatusCode, Value) {
    ctx.post(url, None, json!({})).await
}

async fn fetch(ctx: &Ctx, url: &str) -> (StatusCode, Vec<u8>) {
    let r = ctx.req(Method::GET, url, None).send().await.unwrap();
    (r.status(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uploads_are_presigned_verified_and_deduplicated() {
    let Some(moto) = moto::start("wanllmdb-test") else {
        return;
    };
    let ctx = start(&moto).await;
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let data = b"checkpoint bytes ".repeat(20_000);
    let small = b"config".to_vec();
    let (s, b) = ctx
        .post(
            "/api/v1/projects/p/artifacts/m/versions",
            Some(&k),
            json!({"type": "model", "entries": [
                {"path": "w.bin", "sha256": sha(&data), "size": data.len()},
                {"path": "c.yaml", "sha256": sha(&small), "size": small.len()}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let uploads = b["uploads"].as_array().unwrap().clone();
    assert_eq!(uploads.len(), 2);
    let find = |d: &str| uploads.iter().find(|u| u["sha256"] == d).unwrap().clone();
    let big = find(&sha(&data));
    let url = big["upload_url"].as_str().unwrap();
    // The bytes go to the bucket, not through the server.
    assert!(url.starts_with(&moto.endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let done = big["complete_url"].as_str().unwrap().to_string();

    // Completing before any bytes arrived, or after wrong bytes: refused, nothing kept.
    let (s, e) = complete(&ctx, &done).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");
    let mut bad = data.clone();
    bad[7] ^= 1;
    let (s, _) = upload(&ctx, url, &bad).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = complete(&ctx, &done).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("hash"),
        "{e}"
    );
    // An interrupted upload (too short) is refused too; the full retry lands.
    let (s, _) = upload(&ctx, url, &data[..1000]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = complete(&ctx, &done).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = upload(&ctx, url, &data).await;
    assert_eq!(s, StatusCode::OK);
    let (s, r) = complete(&ctx, &done).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["sha256"], sha(&data));
    // Uploading through the server's own endpoint is not how this server works.
    let token_path = done.trim_end_matches("/complete");
    let (s, e) = upload(&ctx, token_path, &data).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");

    let c = find(&sha(&small));
    let (s, _) = upload(&ctx, c["upload_url"].as_str().unwrap(), &small).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = complete(&ctx, c["complete_url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ctx
        .post(
            &format!(
                "/api/v1/projects/p/artifacts/m/drafts/{}/commit",
                b["version"]["id"]
            ),
            Some(&k),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], "v1");

    // Downloads are presigned bucket URLs and return the exact bytes.
    let (_, files) = ctx
        .get(
            "/api/v1/projects/p/artifacts/m/versions/v1/files?download_urls=true",
            Some(&k),
        )
        .await;
    let w = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "w.bin")
        .unwrap();
    let dl = w["download_url"].as_str().unwrap();
    assert!(dl.starts_with(&moto.endpoint), "{dl}");
    assert_eq!(fetch(&ctx, dl).await, (StatusCode::OK, data.clone()));
    assert_eq!(w["md5"].as_str().unwrap().len(), 32);

    // The same content as a run file of the project: nothing to upload.
    let run = ctx.run(&k, "p", json!({})).await;
    let (_, t) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files"),
            Some(&k),
            json!({"files": [{"path": "copy.bin", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    assert_eq!(t["files"][0]["status"], "stored");
    // A new run file goes through the same presigned flow and is attached on completion.
    let note = b"a note".to_vec();
    let (_, t) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files"),
            Some(&k),
            json!({"files": [{"path": "note.txt", "sha256": sha(&note), "size": note.len()}]}),
        )
        .await;
    let t = &t["files"][0];
    assert_eq!(t["status"], "upload");
    let (s, _) = upload(&ctx, t["upload_url"].as_str().unwrap(), &note).await;
    assert_eq!(s, StatusCode::OK);
    let (s, f) = complete(&ctx, t["complete_url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["path"], "note.txt");
    let (_, f) = ctx
        .get(&format!("/api/v1/runs/{run}/file?path=note.txt"), Some(&k))
        .await;
    assert_eq!(
        fetch(&ctx, f["download_url"].as_str().unwrap()).await.1,
        note
    );
    let (s, h) = ctx.get("/health/ready", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["checks"]["blob_store"], "ok");
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_garbage_collection_deletes_objects() {
    let Some(moto) = moto::start("wanllmdb-test") else {
        return;
    };
    let ctx = start(&moto).await;
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let data = b"soon unreferenced".to_vec();
    let (_, b) = ctx
        .post(
            "/api/v1/projects/p/artifacts/tmp/versions",
            Some(&k),
            json!({"type": "file", "entries": [{"path": "x", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    let u = &b["uploads"][0];
    upload(&ctx, u["upload_url"].as_str().unwrap(), &data).await;
    let (s, _) = complete(&ctx, u["complete_url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ctx
        .post(
            &format!(
                "/api/v1/projects/p/artifacts/tmp/drafts/{}/commit",
                b["version"]["id"]
            ),
            Some(&k),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, files) = ctx
        .get(
            "/api/v1/projects/p/artifacts/tmp/versions/v1/files?download_urls=true",
            Some(&k),
        )
        .await;
    let dl = files[0]["download_url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&ctx, &dl).await.0, StatusCode::OK);

    let (s, _) = ctx
        .delete("/api/v1/projects/p/artifacts/tmp", Some(&k))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE blobs SET created_at = 0")
            .execute(pool)
            .await
            .unwrap();
    });
    let admin = ctx.admin_key.clone();
    let (s, r) = ctx
        .post("/api/v1/admin/blobs/gc", Some(&admin), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["blobs"], 1);
    assert_eq!(fetch(&ctx, &dl).await.0, StatusCode::NOT_FOUND);
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_files_go_in_parts() {
    let Some(moto) = moto::start("wanllmdb-parts") else {
        return;
    };
    const MIB: u64 = 1024 * 1024;
    let ctx = start_tuned(&moto, 6 * MIB, 5 * MIB, 8 * MIB).await;
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let data: Vec<u8> = (0..12 * MIB as u32).map(|i| (i % 253) as u8).collect();
    let (s, b) = ctx
        .post(
            "/api/v1/projects/p/artifacts/big/versions",
            Some(&k),
            json!({"type": "model", "entries": [{"path": "w.bin", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let u = &b["uploads"][0];
    let parts = u["parts"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 3, "{u}");
    assert_eq!(u["upload_url"], parts[0]["url"]);
    let done = u["complete_url"].as_str().unwrap().to_string();

    let send = |p: &Value, bytes: Vec<u8>| {
        let url = p["url"].as_str().unwrap().to_string();
        let r = ctx.req(Method::PUT, &url, None).body(bytes);
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.headers()["etag"].to_str().unwrap().to_string()
        }
    };
    let mut etags = Vec::new();
    for p in &parts {
        let (off, size) = (
            p["offset"].as_u64().unwrap() as usize,
            p["size"].as_u64().unwrap() as usize,
        );
        let mut bytes = data[off..off + size].to_vec();
        if p["number"] == 2 {
            bytes[0] ^= 1; // a damaged part
        }
        etags.push(json!({"number": p["number"], "etag": send(p, bytes).await}));
    }
    // Completing without the parts is refused; with a damaged part the content is refused.
    let (s, e) = complete(&ctx, &done).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, e) = ctx.post(&done, None, json!({"parts": etags})).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("hash"),
        "{e}"
    );

    // A fresh draft (the refused upload is gone), sent right, is copied into place in parts.
    let (_, b) = ctx
        .post(
            "/api/v1/projects/p/artifacts/big/versions",
            Some(&k),
            json!({"entries": [{"path": "w.bin", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    let u = &b["uploads"][0];
    let mut etags = Vec::new();
    for p in u["parts"].as_array().unwrap() {
        let (off, size) = (
            p["offset"].as_u64().unwrap() as usize,
            p["size"].as_u64().unwrap() as usize,
        );
        etags.push(
            json!({"number": p["number"], "etag": send(p, data[off..off + size].to_vec()).await}),
        );
    }
    let (s, r) = ctx
        .post(
            u["complete_url"].as_str().unwrap(),
            None,
            json!({"parts": etags}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, v) = ctx
        .post(
            &format!(
                "/api/v1/projects/p/artifacts/big/drafts/{}/commit",
                b["version"]["id"]
            ),
            Some(&k),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, files) = ctx
        .get(
            "/api/v1/projects/p/artifacts/big/versions/latest/files?download_urls=true",
            Some(&k),
        )
        .await;
    let (s, got) = fetch(&ctx, files[0]["download_url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(got == data, "downloaded content differs");
    ctx.stop().await;
}
