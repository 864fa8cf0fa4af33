//! Name-first file transfers, as the product description does them: an absolute upload URL
//! for a file name, a plain `PUT` without credentials, `register` checking what arrived, and
//! absolute download URLs for one file of a run or of an artifact version.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wanllmdb_server::blobs::s3::{MAX_SINGLE_PART, S3Config};

use crate::moto;
use crate::{Backend, Ctx, assert_error, each_backend, sha};

/// Asks for an upload URL and puts `bytes` to it like `requests.put(url, data=f)`.
async fn put_by_name(ctx: &Ctx, key: &str, run: &str, path: &str, bytes: &[u8]) -> Value {
    let (s, u) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(key),
            json!({"path": path}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["method"], "PUT");
    let url = u["url"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .put(url)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    u
}

async fn get_bytes(url: &str) -> (StatusCode, Vec<u8>) {
    let r = reqwest::Client::new().get(url).send().await.unwrap();
    (r.status(), r.bytes().await.unwrap().to_vec())
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

each_backend!(upload_by_name_then_register, |ctx| {
    let k = ctx.user("alice").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let data = b"weights ".repeat(10_000);
    let u = put_by_name(&ctx, &k, &run, "model.pth", &data).await;
    let url = u["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api/v1/uploads/", ctx.url)),
        "{u}"
    );
    assert!(u["expires_in"].as_i64().unwrap() > 0 && u["expires_at"].is_string());
    // Nothing is attached before registration.
    let (_, files) = ctx
        .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
        .await;
    assert_eq!(files, json!([]));

    let register = format!("/api/v1/runs/{run}/files/register");
    // A size or hash that differs from what arrived is refused, saying what differs.
    let (s, b) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": 1024000}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("size") && msg.contains(&data.len().to_string()),
        "{msg}"
    );
    assert_eq!(b["error"]["details"]["received"]["sha256"], sha(&data));
    let (s, b) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": data.len(), "md5": "0".repeat(32)}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(b["error"]["message"].as_str().unwrap().contains("md5"));
    let (s, b) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": data.len(), "md5": "xyz"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    let (s, f) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": data.len(), "md5": md5_hex(&data), "sha256": sha(&data)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(
        (f["path"].as_str(), f["size"].as_u64(), f["md5"].as_str()),
        (
            Some("model.pth"),
            Some(data.len() as u64),
            Some(md5_hex(&data).as_str())
        )
    );
    let (_, files) = ctx
        .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
        .await;
    assert_eq!(files.as_array().unwrap().len(), 1);
    // The upload is spent: registering again needs a new URL.
    let (s, b) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": data.len()}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload-url"),
        "{b}"
    );

    // The download URL is absolute and needs no credentials.
    let (s, d) = ctx
        .get(
            &format!("/api/v1/runs/{run}/files/download-url?path=model.pth"),
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(
        (d["method"].as_str(), d["sha256"].as_str()),
        (Some("GET"), Some(sha(&data).as_str()))
    );
    let (s, bytes) = get_bytes(d["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes, data);

    // Registering before anything was put, or without asking for a URL, says what to do.
    let (s, _) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(&k),
            json!({"path": "empty.bin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = ctx
        .post(&register, Some(&k), json!({"path": "empty.bin", "size": 0}))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("PUT"),
        "{b}"
    );
    let (s, b) = ctx
        .post(&register, Some(&k), json!({"path": "never.bin", "size": 3}))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    // Bad paths and outsiders.
    let (s, _) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(&k),
            json!({"path": "../etc/passwd"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let bob = ctx.user("bob").await;
    let (s, _) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(&bob),
            json!({"path": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = ctx
        .get(
            &format!("/api/v1/runs/{run}/files/download-url?path=model.pth"),
            Some(&bob),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A forged or mangled upload token is refused.
    let forged = format!("{}x", u["url"].as_str().unwrap());
    let s = reqwest::Client::new()
        .put(forged)
        .body("x")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, StatusCode::FORBIDDEN);
});

each_backend!(a_second_put_replaces_the_first, |ctx| {
    let k = ctx.user("alice").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let u = put_by_name(&ctx, &k, &run, "notes.txt", b"first").await;
    let s = reqwest::Client::new()
        .put(u["url"].as_str().unwrap())
        .body("second!")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, StatusCode::OK);
    let (s, f) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files/register"),
            Some(&k),
            json!({"path": "notes.txt", "size": 7}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["sha256"], sha(b"second!"));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_use_the_public_url() {
    let ctx = Ctx::start_with(Backend::Sqlite, |c| {
        c.public_url = Some("https://ml.example.com".into());
    })
    .await;
    let k = ctx.user("alice").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let (_, u) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(&k),
            json!({"path": "a.txt"}),
        )
        .await;
    assert!(
        u["url"]
            .as_str()
            .unwrap()
            .starts_with("https://ml.example.com/api/v1/uploads/"),
        "{u}"
    );
    ctx.stop().await;

    // Without one, forwarding headers of an untrusted peer are ignored.
    let ctx = Ctx::start(Backend::Sqlite).await;
    let k = ctx.user("alice").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let resp = ctx
        .req(
            Method::POST,
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(&k),
        )
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .json(&json!({"path": "a.txt"}))
        .send()
        .await
        .unwrap();
    let (_, u) = crate::read(resp).await;
    assert!(u["url"].as_str().unwrap().starts_with(&ctx.url), "{u}");
    ctx.stop().await;

    // From a trusted proxy, they say how clients reach the server.
    let ctx = Ctx::start_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let k = ctx.user("alice").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let resp = ctx
        .req(
            Method::POST,
            &format!("/api/v1/runs/{run}/files/upload-url"),
            Some(&k),
        )
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "ml.example.org")
        .json(&json!({"path": "a.txt"}))
        .send()
        .await
        .unwrap();
    let (_, u) = crate::read(resp).await;
    assert!(
        u["url"]
            .as_str()
            .unwrap()
            .starts_with("https://ml.example.org/api/v1/uploads/"),
        "{u}"
    );
    ctx.stop().await;
}

each_backend!(artifact_file_download_url, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let data = b"a,b\n1,2\n".to_vec();
    let (s, v) = ctx
        .post(
            "/api/v1/projects/p/artifacts/ds/versions",
            Some(&k),
            json!({"type": "dataset", "entries": [
                {"path": "data.csv", "sha256": sha(&data), "size": data.len()},
                {"path": "big.tar", "ref": "s3://bucket/big.tar"}]}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    for u in v["uploads"].as_array().unwrap() {
        crate::upload(&ctx, u["upload_url"].as_str().unwrap(), &data).await;
    }
    let draft = v["version"]["id"].as_i64().unwrap();
    ctx.post(
        &format!("/api/v1/projects/p/artifacts/ds/drafts/{draft}/commit"),
        Some(&k),
        json!({}),
    )
    .await;
    let (s, d) = ctx
        .get(
            "/api/v1/projects/p/artifacts/ds/versions/latest/files/download-url?path=data.csv",
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert!(d["url"].as_str().unwrap().starts_with("http://"), "{d}");
    let (s, bytes) = get_bytes(d["url"].as_str().unwrap()).await;
    assert_eq!((s, bytes), (StatusCode::OK, data));
    // A reference has no bytes here; a missing path is a 404.
    let (s, b) = ctx
        .get(
            "/api/v1/projects/p/artifacts/ds/versions/v1/files/download-url?path=big.tar",
            Some(&k),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s3://bucket/big.tar")
    );
    let (s, _) = ctx
        .get(
            "/api/v1/projects/p/artifacts/ds/versions/v1/files/download-url?path=nope",
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});

/// With object storage the upload URL is presigned for the public endpoint, the server reads
/// the bytes back at registration, and download URLs are presigned too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_by_name_signed_for_the_public_endpoint() {
    let Some(moto) = moto::start("wanllmdb-names") else {
        return;
    };
    // Clients reach the bucket as `localhost`, the server as `127.0.0.1`.
    let public = moto.endpoint.replace("127.0.0.1", "localhost");
    let (endpoint, bucket, public2) = (moto.endpoint.clone(), moto.bucket.clone(), public.clone());
    let ctx = Ctx::start_with(Backend::Sqlite, move |c| {
        c.s3 = Some(S3Config {
            bucket,
            prefix: "srv".into(),
            endpoint: Some(endpoint),
            public_endpoint: Some(public2),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
            multipart_threshold: S3Config::MULTIPART_THRESHOLD,
            part_size: S3Config::PART_SIZE,
            max_single_copy: MAX_SINGLE_PART,
        });
    })
    .await;
    let k = ctx.user("alice").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let data = b"object bytes ".repeat(5_000);
    let register = format!("/api/v1/runs/{run}/files/register");
    // Registering before the PUT says nothing arrived.
    let u = {
        let (_, u) = ctx
            .post(
                &format!("/api/v1/runs/{run}/files/upload-url"),
                Some(&k),
                json!({"path": "model.pth"}),
            )
            .await;
        u
    };
    assert!(u["url"].as_str().unwrap().starts_with(&public), "{u}");
    let (s, b) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": data.len()}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let s = reqwest::Client::new()
        .put(u["url"].as_str().unwrap())
        .body(data.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert!(s.is_success(), "{s}");
    let (s, f) = ctx
        .post(
            &register,
            Some(&k),
            json!({"path": "model.pth", "size": data.len(), "sha256": sha(&data)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (_, d) = ctx
        .get(
            &format!("/api/v1/runs/{run}/files/download-url?path=model.pth"),
            Some(&k),
        )
        .await;
    assert!(d["url"].as_str().unwrap().starts_with(&public), "{d}");
    let (s, bytes) = get_bytes(d["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes, data);
    ctx.stop().await;
}
