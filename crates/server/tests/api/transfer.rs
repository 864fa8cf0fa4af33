//! Backups, restores, exports and imports: a backup taken while a run keeps writing restores
//! to exactly its snapshot; SQLite → PostgreSQL → SQLite and local → S3 keep every byte;
//! `verify` finds corrupted and missing blobs.

use crate::moto;

use std::path::Path;
use std::str::FromStr;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use wanllmdb_server::blobs::BlobStore;
use wanllmdb_server::blobs::s3::{MAX_SINGLE_PART, S3Config};
use wanllmdb_server::transfer::{self, NoProgress, Target, TransferError};
use wanllmdb_server::{ServerConfig, Store};

use crate::{Backend, Ctx, backends, sha, upload};

/// Fills a server with one of everything: accounts, a project, runs with metrics (NaN
/// included), logs and a file, an artifact with content, a sweep and a registered model.
async fn populate(ctx: &Ctx) -> String {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let run = ctx
        .run(&k, "p", json!({"config": {"lr": 0.001}, "tags": ["base"]}))
        .await;
    let points: Vec<Value> = (0..50)
        .map(|s| json!({"step": s, "values": {"loss": 1.0 / f64::from(s + 1), "acc": if s == 3 { json!("NaN") } else { json!(0.1 * f64::from(s)) }}}))
        .collect();
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{run}/history"),
            Some(&k),
            json!({"points": points}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let lines: Vec<Value> = (0..20)
        .map(|i| json!({"level": "INFO", "message": format!("epoch {i} \"ok\" ü"), "source": "stdout", "line_number": i}))
        .collect();
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{run}/logs"),
            Some(&k),
            json!({"lines": lines}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let data = b"epoch,loss\n1,0.5\n".repeat(500);
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files"),
            Some(&k),
            json!({"files": [{"path": "metrics.csv", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = upload(ctx, b["files"][0]["upload_url"].as_str().unwrap(), &data).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    artifact(ctx, &k, b"weights \x00\x01\x02").await;
    let (s, b) = ctx
        .post(
            "/api/v1/projects/p/sweeps",
            Some(&k),
            json!({"config": {"method": "grid", "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"lr": {"values": [0.1, 0.01]}}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = ctx
        .post(
            "/api/v1/models",
            Some(&k),
            json!({"name": "cls", "project": "p"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = ctx
        .post(
            "/api/v1/models/cls/versions",
            Some(&k),
            json!({"artifact": "weights:v1", "metrics": {"acc": 0.9}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    k
}

/// An artifact version with one file of content, uploaded and committed.
async fn artifact(ctx: &Ctx, k: &str, bytes: &[u8]) {
    let (s, b) = ctx
        .post(
            "/api/v1/projects/p/artifacts/weights/versions",
            Some(k),
            json!({"type": "model", "entries": [{"path": "w.bin", "sha256": sha(bytes), "size": bytes.len()}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for u in b["uploads"].as_array().unwrap() {
        let (s, r) = upload(ctx, u["upload_url"].as_str().unwrap(), bytes).await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    if b["version"]["state"] != "committed" {
        let (s, v) = ctx
            .post(
                &format!(
                    "/api/v1/projects/p/artifacts/weights/drafts/{}/commit",
                    b["version"]["id"]
                ),
                Some(k),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

fn source(ctx: &Ctx) -> Target {
    Target {
        store: ctx.store.clone(),
        blobs: BlobStore::local(ctx._dir.path().join("blobs")),
    }
}

/// A new, empty SQLite data directory opened the way `wanllmdb server` would.
pub async fn sqlite_target(dir: &Path) -> Target {
    Target::open(&ServerConfig::new(dir)).await.unwrap()
}

/// A new, empty PostgreSQL schema (with the server's migrations) and a local blob directory;
/// the schema name is returned for dropping.
pub async fn postgres_target(base: &str, blobs: &Path) -> (Target, String) {
    let schema = format!("t_{}", wanllmdb_server::auth::random_hex(6));
    let admin = sqlx::PgPool::connect(base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let opts = PgConnectOptions::from_str(base)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let store = Store::open_postgres(opts).await.unwrap();
    store.migrate().await.unwrap();
    let target = Target {
        store,
        blobs: BlobStore::local(blobs.to_path_buf()),
    };
    (target, schema)
}

pub async fn drop_schema(base: &str, schema: &str) {
    let admin = sqlx::PgPool::connect(base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

/// Every table file of two exports, compared byte for byte.
fn assert_same_tables(a: &Path, b: &Path) {
    for spec in transfer::schema::TABLES {
        let name = format!("tables/{}.jsonl", spec.name);
        let x = std::fs::read(a.join(&name)).unwrap();
        let y = std::fs::read(b.join(&name)).unwrap();
        assert!(
            x == y,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Appends metric points and log lines to `run` until told to stop; returns how many
/// batches it wrote. Signals `started` after its first batch.
async fn keep_writing(
    url: String,
    key: String,
    run: String,
    started: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let client = Client::new();
    let mut started = Some(started);
    let mut step = 0u64;
    while !*stop.borrow_and_update() {
        let points = json!({"points": [{"step": step, "values": {"live": step as f64}}]});
        let r = client
            .post(format!("{url}/api/v1/runs/{run}/history"))
            .bearer_auth(&key)
            .json(&points)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let lines = json!({"lines": [{"level": "INFO", "message": format!("step {step}"), "source": "stdout", "line_number": step}]});
        let r = client
            .post(format!("{url}/api/v1/runs/{run}/logs"))
            .bearer_auth(&key)
            .json(&lines)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        step += 1;
        if let Some(s) = started.take() {
            let _ = s.send(());
        }
    }
    step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_concurrent_writes_restores_to_its_snapshot() {
    for backend in backends() {
        let ctx = Ctx::start(backend).await;
        let k = populate(&ctx).await;
        let live = ctx.run(&k, "p", json!({"name": "live"})).await;
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(keep_writing(
            ctx.url.clone(),
            k.clone(),
            live.clone(),
            started_tx,
            stop,
        ));
        started.await.unwrap();
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("b.tar");
        let taken = transfer::backup(&source(&ctx), &file, &NoProgress)
            .await
            .unwrap();
        stop_tx.send(true).unwrap();
        let written = writer.await.unwrap();
        assert!(written >= 1);
        // The archive is complete and matches its manifest.
        let checked = transfer::verify_backup(&file, &NoProgress).await.unwrap();
        assert!(checked.ok(), "{:?}", checked.problems);
        assert_eq!(checked.blobs, 2);
        let rows =
            |m: &transfer::Manifest, t: &str| m.tables.iter().find(|x| x.name == t).unwrap().rows;
        assert!(rows(&taken, "log_lines") >= 21);
        // The source kept changing after the snapshot, so it no longer matches.
        let now = transfer::snapshot_manifest(&source(&ctx), &NoProgress)
            .await
            .unwrap();
        assert!(!now.content_differences(&taken).is_empty());

        // Restored into a new data directory: an export of it is the snapshot exactly.
        let data = work.path().join("restored");
        let target = sqlite_target(&data).await;
        let report = transfer::restore(&target, &file, &data, &NoProgress)
            .await
            .unwrap();
        assert!(report.matches, "{:?}", report.comparisons);
        assert_eq!(report.blobs_uploaded, 2);
        let again = transfer::snapshot_manifest(&target, &NoProgress)
            .await
            .unwrap();
        assert_eq!(again.content_differences(&taken), Vec::<String>::new());
        let unpacked: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".restore"))
            .collect();
        assert!(unpacked.is_empty(), "the unpacked copy is removed");
        let ok = transfer::verify(&target, &NoProgress).await.unwrap();
        assert!(ok.ok(), "{:?}", ok.problems);
        assert_eq!((ok.blobs, ok.checked.as_str()), (2, "database"));

        // A restore never mixes with existing data.
        let err = transfer::restore(&target, &file, &data, &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::NotEmpty(_)), "{err}");

        corrupt_and_remove_blobs(&target, &data).await;
        target.close().await;
        ctx.stop().await;
    }
}

/// `verify` reports a flipped byte and a deleted blob, naming the digest.
async fn corrupt_and_remove_blobs(target: &Target, data: &Path) {
    let mut files: Vec<_> = walk(&data.join("blobs/sha256"));
    files.sort();
    assert_eq!(files.len(), 2);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&files[0], bytes).unwrap();
    let report = transfer::verify(target, &NoProgress).await.unwrap();
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains(&name(&files[0])),
        "{:?}",
        report.problems
    );
    assert!(report.problems[0].contains("hash"), "{:?}", report.problems);
    std::fs::remove_file(&files[1]).unwrap();
    let report = transfer::verify(target, &NoProgress).await.unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&name(&files[1])) && p.contains("missing"))
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_keeps_every_byte() {
    let Some(base) = std::env::var("WANLLMDB_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: WANLLMDB_TEST_DATABASE_URL is not set");
        return;
    };
    let ctx = Ctx::start(Backend::Sqlite).await;
    populate(&ctx).await;
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first");
    let m1 = transfer::export(&source(&ctx), &first, &NoProgress)
        .await
        .unwrap();

    let (pg, schema) = postgres_target(&base, &work.path().join("pg-blobs")).await;
    let report = transfer::import(&pg, &first, &NoProgress).await.unwrap();
    assert!(report.matches, "{:?}", report.comparisons);
    let second = work.path().join("second");
    let m2 = transfer::export(&pg, &second, &NoProgress).await.unwrap();
    assert_eq!(m2.content_differences(&m1), Vec::<String>::new());
    assert_eq!(m2.source_database, "postgres");
    assert_same_tables(&first, &second);

    // Identity sequences continue after the imported ids: a server on the copy can add rows.
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = wanllmdb_server::start_with_store(
        crate::test_config(dir.path()),
        pg.store.clone(),
        listener,
    )
    .await
    .unwrap();
    assert!(server.admin_api_key.is_none(), "the imported admin is kept");
    let (s, b) = crate::read(
        Client::new()
            .post(format!("{}/api/v1/auth/register", server.url()))
            .json(&json!({"username": "newcomer", "email": "n@example.com", "password": crate::PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    server.shutdown().await.unwrap();

    // And PostgreSQL → SQLite gives the same bytes again.
    let back = sqlite_target(&work.path().join("back")).await;
    let report = transfer::import(&back, &second, &NoProgress).await.unwrap();
    assert!(report.matches, "{:?}", report.comparisons);
    let third = work.path().join("third");
    transfer::export(&back, &third, &NoProgress).await.unwrap();
    assert_same_tables(&first, &third);
    back.close().await;
    drop_schema(&base, &schema).await;
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_blobs_move_to_s3_and_back() {
    let Some(moto) = moto::start("wanllmdb-transfer") else {
        eprintln!("skipped: moto_server not found");
        return;
    };
    let ctx = Ctx::start(Backend::Sqlite).await;
    populate(&ctx).await;
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first");
    let m1 = transfer::export(&source(&ctx), &first, &NoProgress)
        .await
        .unwrap();

    let mut cfg = ServerConfig::new(work.path().join("s3-data"));
    cfg.s3 = Some(S3Config {
        bucket: moto.bucket.clone(),
        prefix: "moved".into(),
        endpoint: Some(moto.endpoint.clone()),
        public_endpoint: None,
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        session_token: None,
        // Small parts, so the multipart path is taken by the 8 KiB file.
        multipart_threshold: 4096,
        part_size: S3Config::PART_SIZE,
        max_single_copy: MAX_SINGLE_PART,
    });
    let s3 = Target::open(&cfg).await.unwrap();
    assert_eq!(s3.blob_store_kind(), "s3");
    let report = transfer::import(&s3, &first, &NoProgress).await.unwrap();
    assert!(report.matches, "{:?}", report.comparisons);
    assert_eq!(report.blobs_uploaded, 2);
    let ok = transfer::verify(&s3, &NoProgress).await.unwrap();
    assert!(ok.ok(), "{:?}", ok.problems);
    let second = work.path().join("second");
    let m2 = transfer::export(&s3, &second, &NoProgress).await.unwrap();
    assert_eq!(m2.content_differences(&m1), Vec::<String>::new());
    assert_same_tables(&first, &second);
    for f in walk(&first.join("blobs")) {
        let rel = f.strip_prefix(&first).unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(second.join(rel)).unwrap()
        );
    }
    s3.close().await;
    ctx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_knows_every_table_and_column() {
    for backend in backends() {
        let ctx = Ctx::start(backend).await;
        let diffs = transfer::schema::differences(&ctx.store).await.unwrap();
        assert_eq!(diffs, Vec::<String>::new(), "{backend:?}");
        ctx.stop().await;
    }
    // A table a later migration adds is refused, never silently left out.
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(dir.path()).await;
    wanllmdb_server::on_backend!(target.store, write, |pool| {
        sqlx::query("CREATE TABLE later (id INTEGER PRIMARY KEY)")
            .execute(pool)
            .await
            .unwrap();
    });
    let err = transfer::export(&target, &dir.path().join("out"), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("table later is not known"),
        "{err}"
    );
    target.close().await;
}

#[tokio::test]
async fn damaged_exports_are_refused() {
    let ctx = Ctx::start(Backend::Sqlite).await;
    populate(&ctx).await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    transfer::export(&source(&ctx), &out, &NoProgress)
        .await
        .unwrap();
    // Exporting into a directory that holds something is refused.
    let err = transfer::export(&source(&ctx), &out, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::NotEmpty(_)), "{err}");
    let runs = out.join("tables/runs.jsonl");
    let text = std::fs::read_to_string(&runs).unwrap();
    std::fs::write(&runs, text.replacen("\"running\"", "\"crashed\"", 1)).unwrap();
    let target = sqlite_target(&work.path().join("t")).await;
    let err = transfer::import(&target, &out, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("tables/runs.jsonl does not match"),
        "{err}"
    );
    // Nothing of the failed import stays behind, so a corrected one can follow.
    let empty = transfer::snapshot_manifest(&target, &NoProgress)
        .await
        .unwrap();
    assert!(
        empty.tables.iter().all(|t| t.rows == 0),
        "{:?}",
        empty.tables
    );
    let err = transfer::import(&target, work.path(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no manifest.json"), "{err}");
    target.close().await;
    ctx.stop().await;
}
