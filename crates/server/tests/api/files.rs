//! Run files: the signed upload/download flow, digest checks, dedup that never crosses
//! projects, path rules and permissions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend, sha, upload};

async fn put(ctx: &Ctx, key: &str, run: &str, files: Value) -> (StatusCode, Value) {
    ctx.post(
        &format!("/api/v1/runs/{run}/files"),
        Some(key),
        json!({"files": files}),
    )
    .await
}

async fn download(ctx: &Ctx, key: &str, run: &str, path: &str) -> Vec<u8> {
    let (s, f) = ctx
        .get(&format!("/api/v1/runs/{run}/file?path={path}"), Some(key))
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    let r = ctx
        .req(Method::GET, f["download_url"].as_str().unwrap(), None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-checksum-sha256"],
        f["sha256"].as_str().unwrap()
    );
    r.bytes().await.unwrap().to_vec()
}

each_backend!(upload_attach_download_and_delete, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "f", "private").await;
    let run = ctx.run(&k, "f", json!({})).await;
    let data = b"epoch,loss\n1,0.5\n".repeat(1000);
    let digest = sha(&data);
    let (s, b) = put(
        &ctx,
        &k,
        &run,
        json!([{"path": "./logs//metrics.csv", "sha256": digest, "size": data.len()}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = &b["files"][0];
    assert_eq!(t["path"], "logs/metrics.csv");
    assert_eq!(t["status"], "upload");
    let url = t["upload_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/api/v1/blobs/"));

    // Wrong bytes for the digest, or the wrong size: nothing is stored.
    let mut corrupt = data.clone();
    corrupt[0] = b'X';
    let (s, b) = upload(&ctx, &url, &corrupt).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("hash"),
        "{b}"
    );
    let (s, b) = upload(&ctx, &url, &data[..100]).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (_, list) = ctx
        .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
        .await;
    assert_eq!(list, json!([]));

    // The right bytes (a retry of the same URL) are attached.
    let (s, f) = upload(&ctx, &url, &data).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["sha256"], digest);
    assert_eq!(f["md5"], hex::encode(md5_of(&data)));
    assert_eq!(f["size"], data.len());
    assert_eq!(f["created_by"], "alice");
    let (_, list) = ctx
        .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(download(&ctx, &k, &run, "logs/metrics.csv").await, data);
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "run_file_download"
        )
        .await,
        1
    );

    let (_, listed) = ctx
        .get(
            &format!("/api/v1/runs/{run}/files?download_urls=true"),
            Some(&k),
        )
        .await;
    let dl = listed[0]["download_url"].as_str().unwrap();
    let r = ctx.req(Method::GET, dl, None).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    assert_eq!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = $1",
            "run_file_download"
        )
        .await,
        2
    );

    // The same content under another name in the same project: attached without an upload.
    let run2 = ctx.run(&k, "f", json!({})).await;
    let (_, b) = put(
        &ctx,
        &k,
        &run2,
        json!([{"path": "copy.csv", "sha256": digest, "size": data.len()}]),
    )
    .await;
    assert_eq!(b["files"][0]["status"], "stored");
    assert!(b["files"][0].get("upload_url").is_none());
    assert_eq!(download(&ctx, &k, &run2, "copy.csv").await, data);
    assert_eq!(
        ctx.count("SELECT COUNT(*) FROM blobs WHERE digest = $1", &digest)
            .await,
        1
    );

    // Signed URLs are tied to their purpose.
    let (s, b) = ctx
        .get(
            &format!("/api/v1/blobs/{}", url.rsplit('/').next().unwrap()),
            None,
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = upload(&ctx, "/api/v1/blobs/not-a-token", &data).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");

    let (s, _) = ctx
        .delete(
            &format!("/api/v1/runs/{run}/file?path=logs/metrics.csv"),
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = ctx
        .get(
            &format!("/api/v1/runs/{run}/file?path=logs/metrics.csv"),
            Some(&k),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
});

each_backend!(
    a_large_upload_gets_its_md5_after_the_acknowledgement,
    |ctx| {
        let k = ctx.user("alice").await;
        ctx.project(&k, "f", "private").await;
        let run = ctx.run(&k, "f", json!({})).await;
        // Over the size whose MD5 is computed after the upload is acknowledged.
        let data: Vec<u8> = (0..9u32 << 20).map(|i| (i % 251) as u8).collect();
        let digest = sha(&data);
        let (_, b) = put(
            &ctx,
            &k,
            &run,
            json!([{"path": "big.bin", "sha256": digest, "size": data.len()}]),
        )
        .await;
        let url = b["files"][0]["upload_url"].as_str().unwrap().to_string();
        let (s, f) = upload(&ctx, &url, &data).await;
        assert_eq!(s, StatusCode::OK, "{f}");
        assert_eq!(f["sha256"], digest);
        assert_eq!(download(&ctx, &k, &run, "big.bin").await, data);
        // The MD5 follows in the background: wait for it (bounded), then it is the right one.
        let want = hex::encode(md5_of(&data));
        let mut listed = Value::Null;
        for _ in 0..1000 {
            let (_, list) = ctx
                .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
                .await;
            listed = list[0]["md5"].clone();
            if listed != "" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(listed, want.as_str());

        // A stop before the background MD5 was recorded: the next start-up computes it.
        wanllmdb_server::on_backend!(ctx.store, write, |pool| {
            sqlx::query("UPDATE blobs SET md5 = '' WHERE digest = $1")
                .bind(&digest)
                .execute(pool)
                .await
                .unwrap();
        });
        let (_, list) = ctx
            .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
            .await;
        assert_eq!(
            list[0]["md5"], "",
            "the pending state is what a stop leaves"
        );
        ctx.restart().await;
        let mut listed = Value::Null;
        for _ in 0..1000 {
            let (_, list) = ctx
                .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
                .await;
            listed = list[0]["md5"].clone();
            if listed != "" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(listed, want.as_str(), "start-up resumes the pending MD5");
    }
);

fn md5_of(b: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(b).to_vec()
}

each_backend!(dedup_never_crosses_projects_and_paths_are_checked, |ctx| {
    let alice = ctx.user("alice").await;
    let mallory = ctx.user("mallory").await;
    ctx.project(&alice, "secret", "private").await;
    ctx.project(&mallory, "mine", "private").await;
    let a_run = ctx.run(&alice, "secret", json!({})).await;
    let m_run = ctx.run(&mallory, "mine", json!({})).await;
    let data = b"weights".repeat(100);
    let digest = sha(&data);
    let (_, b) = put(
        &ctx,
        &alice,
        &a_run,
        json!([{"path": "w.bin", "sha256": digest, "size": data.len()}]),
    )
    .await;
    let (s, _) = upload(&ctx, b["files"][0]["upload_url"].as_str().unwrap(), &data).await;
    assert_eq!(s, StatusCode::OK);

    // Citing the digest from another project grants nothing: an upload is still required,
    // and only the real bytes are accepted.
    let (_, b) = put(
        &ctx,
        &mallory,
        &m_run,
        json!([{"path": "stolen.bin", "sha256": digest, "size": data.len()}]),
    )
    .await;
    assert_eq!(b["files"][0]["status"], "upload");
    let (s, _) = upload(
        &ctx,
        b["files"][0]["upload_url"].as_str().unwrap(),
        b"guess",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, list) = ctx
        .get(&format!("/api/v1/runs/{m_run}/files"), Some(&mallory))
        .await;
    assert_eq!(list, json!([]));

    // Outsiders do not see a private run's files; nobody writes through bad paths.
    let (s, b) = ctx
        .get(&format!("/api/v1/runs/{a_run}/files"), Some(&mallory))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    for bad in ["../x", "/etc/passwd", "a/../../b", "a\\b", "a\u{0}b", ""] {
        let (s, b) = put(
            &ctx,
            &alice,
            &a_run,
            json!([{"path": bad, "sha256": digest, "size": 1}]),
        )
        .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let (s, b) = put(
        &ctx,
        &alice,
        &a_run,
        json!([{"path": "x", "sha256": "ABC", "size": 1}]),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    // A viewer reads but does not attach or delete.
    let (s, _) = ctx
        .post(
            "/api/v1/projects/secret/members",
            Some(&alice),
            json!({"username": "mallory", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(download(&ctx, &mallory, &a_run, "w.bin").await, data);
    let (s, b) = put(
        &ctx,
        &mallory,
        &a_run,
        json!([{"path": "v.bin", "sha256": digest, "size": data.len()}]),
    )
    .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = ctx
        .delete(
            &format!("/api/v1/runs/{a_run}/file?path=w.bin"),
            Some(&mallory),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
});

async fn age_all_blobs(ctx: &Ctx) {
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE blobs SET created_at = 0")
            .execute(pool)
            .await
            .unwrap();
    });
}

each_backend!(
    garbage_collection_takes_only_unreferenced_settled_blobs,
    |ctx| {
        let k = ctx.user("alice").await;
        ctx.project(&k, "gc", "private").await;
        let run = ctx.run(&k, "gc", json!({})).await;
        let keep = b"kept bytes".to_vec();
        let drop = b"dropped bytes".to_vec();
        for (path, data) in [("keep.txt", &keep), ("drop.txt", &drop)] {
            let (_, b) = put(
                &ctx,
                &k,
                &run,
                json!([{"path": path, "sha256": sha(data), "size": data.len()}]),
            )
            .await;
            let (s, _) = upload(&ctx, b["files"][0]["upload_url"].as_str().unwrap(), data).await;
            assert_eq!(s, StatusCode::OK);
        }
        let (s, _) = ctx
            .delete(&format!("/api/v1/runs/{run}/file?path=drop.txt"), Some(&k))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        // Only server administrators collect.
        let (s, b) = ctx
            .post("/api/v1/admin/blobs/gc", Some(&k), json!({}))
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
        // Unreferenced but recently uploaded: kept (an upload may still be attaching it).
        let admin = ctx.admin_key.clone();
        let (s, b) = ctx
            .post("/api/v1/admin/blobs/gc", Some(&admin), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["blobs"], 0);

        age_all_blobs(&ctx).await;
        let (_, b) = ctx
            .post(
                "/api/v1/admin/blobs/gc?dry_run=true",
                Some(&admin),
                json!({}),
            )
            .await;
        assert_eq!(
            (b["dry_run"].clone(), b["blobs"].clone(), b["bytes"].clone()),
            (json!(true), json!(1), json!(drop.len()))
        );
        assert_eq!(
            ctx.count("SELECT COUNT(*) FROM blobs WHERE digest = $1", &sha(&drop))
                .await,
            1
        );
        let (_, b) = ctx
            .post("/api/v1/admin/blobs/gc", Some(&admin), json!({}))
            .await;
        assert_eq!(b["blobs"], 1);
        assert_eq!(
            ctx.count("SELECT COUNT(*) FROM blobs WHERE digest = $1", &sha(&drop))
                .await,
            0
        );
        // The referenced blob survives, however old; the collected one must be uploaded again.
        assert_eq!(download(&ctx, &k, &run, "keep.txt").await, keep);
        let (_, b) = put(
            &ctx,
            &k,
            &run,
            json!([{"path": "again.txt", "sha256": sha(&drop), "size": drop.len()}]),
        )
        .await;
        assert_eq!(b["files"][0]["status"], "upload");
        let (s, _) = upload(&ctx, b["files"][0]["upload_url"].as_str().unwrap(), &drop).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(download(&ctx, &k, &run, "again.txt").await, drop);
        assert_eq!(
            ctx.count(
                "SELECT COUNT(*) FROM audit_events WHERE action = $1",
                "blob_gc"
            )
            .await,
            3
        );
    }
);

fn frame(body: &mut Vec<u8>, url: &str, bytes: &[u8]) {
    let token = url.trim_start_matches("/api/v1/blobs/");
    body.extend_from_slice(&(token.len() as u16).to_be_bytes());
    body.extend_from_slice(token.as_bytes());
    body.extend_from_slice(bytes);
}

each_backend!(batch_uploads_check_every_item, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "b", "private").await;
    let run = ctx.run(&k, "b", json!({})).await;
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("file {i}\n").repeat(50).into_bytes())
        .collect();
    let specs: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| json!({"path": format!("f{i}.txt"), "sha256": sha(f), "size": f.len()}))
        .collect();
    let (_, b) = put(&ctx, &k, &run, json!(specs)).await;
    let urls: Vec<String> = b["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["upload_url"].as_str().unwrap().to_string())
        .collect();
    // The second item carries wrong bytes of the right length: only it is refused.
    let mut body = Vec::new();
    frame(&mut body, &urls[0], &files[0]);
    let mut wrong = files[1].clone();
    wrong[0] = b'X';
    frame(&mut body, &urls[1], &wrong);
    frame(&mut body, &urls[2], &files[2]);
    let r = ctx
        .req(Method::POST, "/api/v1/blobs/batch", None)
        .body(body)
        .send()
        .await
        .unwrap();
    let (s, res) = crate::read(r).await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let stored: Vec<bool> = res["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["stored"].as_bool().unwrap())
        .collect();
    assert_eq!(stored, [true, false, true]);
    assert!(
        res["items"][1]["error"].as_str().unwrap().contains("hash"),
        "{res}"
    );
    let (_, list) = ctx
        .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
        .await;
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["f0.txt", "f2.txt"]);
    assert_eq!(download(&ctx, &k, &run, "f2.txt").await, files[2]);

    // A body cut inside an item, or a forged token, is refused as a whole.
    let mut cut = Vec::new();
    frame(&mut cut, &urls[1], &files[1][..10]);
    let r = ctx
        .req(Method::POST, "/api/v1/blobs/batch", None)
        .body(cut)
        .send()
        .await
        .unwrap();
    let (s, e) = crate::read(r).await;
    assert_error(s, &e, StatusCode::BAD_REQUEST, "invalid_input");
    let mut forged = Vec::new();
    frame(&mut forged, "/api/v1/blobs/not.a.token", &files[1]);
    let r = ctx
        .req(Method::POST, "/api/v1/blobs/batch", None)
        .body(forged)
        .send()
        .await
        .unwrap();
    let (s, e) = crate::read(r).await;
    assert_error(s, &e, StatusCode::FORBIDDEN, "forbidden");
});

each_backend!(bundles_carry_many_small_downloads, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "b", "private").await;
    let run = ctx.run(&k, "b", json!({})).await;
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("small {i}\n").repeat(9 * (i + 1)).into_bytes())
        .collect();
    for (i, f) in files.iter().enumerate() {
        let (_, b) = put(
            &ctx,
            &k,
            &run,
            json!([{"path": format!("s{i}"), "sha256": sha(f), "size": f.len()}]),
        )
        .await;
        let (s, _) = upload(&ctx, b["files"][0]["upload_url"].as_str().unwrap(), f).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, list) = ctx
        .get(
            &format!("/api/v1/runs/{run}/files?download_urls=true"),
            Some(&k),
        )
        .await;
    let tokens: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|f| {
            f["download_url"]
                .as_str()
                .unwrap()
                .trim_start_matches("/api/v1/blobs/")
                .to_string()
        })
        .collect();
    let r = ctx
        .req(Method::POST, "/api/v1/blobs/bundle", None)
        .json(&json!({"tokens": tokens}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap().to_vec();
    // Frames in the order asked: s2, s1, s0.
    let mut at = 0;
    for want in files.iter().rev() {
        assert_eq!(body[at], 0);
        let size = u64::from_be_bytes(body[at + 1..at + 9].try_into().unwrap()) as usize;
        assert_eq!(&body[at + 9..at + 9 + size], want.as_slice());
        at += 9 + size;
    }
    assert_eq!(at, body.len());
    let (s, e) = ctx
        .post("/api/v1/blobs/bundle", None, json!({"tokens": ["forged"]}))
        .await;
    assert_error(s, &e, StatusCode::FORBIDDEN, "forbidden");
});
