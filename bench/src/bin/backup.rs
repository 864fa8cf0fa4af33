//! Backup, restore, verify, export and import throughput: prints the figures in
//! docs/BENCHMARKS.md.
//!
//! `cargo run --release -p wanllmdb-bench --bin wanllmdb-backup-bench -- [--points N]
//! [--log-lines N] [--database-url postgres://…]`. The source is always SQLite (the embedded
//! default); with `--database-url` the export is also imported into a fresh schema of that
//! PostgreSQL database, which is the move to scale-out.

use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use reqwest::Client;
use serde_json::{Value, json};
use wanllmdb_server::transfer::{self, NoProgress, Target};
use wanllmdb_server::{ServerConfig, Store};

struct Args {
    points: usize,
    log_lines: usize,
    database_url: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        points: 2_000_000,
        log_lines: 200_000,
        database_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = || it.next().context("a value is missing");
        match x.as_str() {
            "--points" => a.points = value()?.parse()?,
            "--log-lines" => a.log_lines = value()?.parse()?,
            "--database-url" => a.database_url = Some(value()?),
            other => {
                bail!("unknown argument {other}; use --points N, --log-lines N, --database-url URL")
            }
        }
    }
    Ok(a)
}

/// Fills a SQLite server with `points` metric points (10 keys, 4 runs) and `lines` log lines.
async fn populate(dir: &Path, points: usize, lines: usize) -> Result<()> {
    let mut cfg = ServerConfig::new(dir);
    cfg.max_body_bytes = 64 * 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = wanllmdb_server::start(cfg, listener).await?;
    let key = server.admin_api_key.clone().context("no admin key")?;
    let c = Client::new();
    let url = server.url();
    let post = |path: String, body: Value| {
        let r = c.post(format!("{url}{path}")).bearer_auth(&key).json(&body);
        async move {
            let r = r.send().await?;
            if !r.status().is_success() {
                bail!("{}: {}", r.status(), r.text().await?);
            }
            Ok(r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    post("/api/v1/projects".into(), json!({"name": "bench"})).await?;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let r = post("/api/v1/runs".into(), json!({"project": "bench"})).await?;
        runs.push(r["id"].as_str().context("run id")?.to_string());
    }
    let (keys, steps) = (10, 1_000);
    let batches = points / (keys * steps);
    for b in 0..batches {
        let run = &runs[b % runs.len()];
        let start = (b / runs.len()) * steps;
        let pts: Vec<Value> = (start..start + steps)
            .map(|s| {
                let values: serde_json::Map<String, Value> = (0..keys)
                    .map(|k| {
                        let v = (2.0 / (1.0 + s as f64 / 1000.0) + k as f64 * 1e-3) as f32;
                        (format!("metric_{k}"), json!(v as f64))
                    })
                    .collect();
                json!({"step": s, "values": values})
            })
            .collect();
        post(
            format!("/api/v1/runs/{run}/history"),
            json!({ "points": pts }),
        )
        .await?;
    }
    for b in 0..lines / 1_000 {
        let run = &runs[b % runs.len()];
        let batch: Vec<Value> = (0..1_000)
            .map(|i| {
                json!({"level": "INFO", "source": "stdout", "line_number": b * 1_000 + i,
                       "message": format!("epoch {b} step {i}: loss 0.{i:04} lr 3e-4 throughput 812.4 samples/s")})
            })
            .collect();
        post(
            format!("/api/v1/runs/{run}/logs"),
            json!({ "lines": batch }),
        )
        .await?;
    }
    server.shutdown().await?;
    Ok(())
}

async fn open_sqlite(dir: &Path) -> Result<Target> {
    Ok(Target::open(&ServerConfig::new(dir)).await?)
}

fn dir_bytes(p: &Path) -> u64 {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_bytes(&e.path())).sum())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Prints one table row for a step that began at `start`.
fn row(step: &str, start: Instant, bytes: u64, points: usize) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| {step} | {secs:.2} s | {:.1} MB | {:.0} MB/s | {:.2} M points/s |",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        points as f64 / 1e6 / secs
    );
}

/// Times the read-back an import ends with (its share of the import's time).
async fn read_back(target: &Target, bytes: u64, points: usize) -> Result<()> {
    let t = Instant::now();
    transfer::snapshot_manifest(target, &NoProgress).await?;
    row("  of which: reading it back", t, bytes, points);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    let t = Instant::now();
    populate(&src, args.points, args.log_lines).await?;
    let db_bytes = dir_bytes(&src.join("wanllmdb.db"));
    eprintln!(
        "populated in {:.1} s: {} points, {} log lines, database {:.1} MB",
        t.elapsed().as_secs_f64(),
        args.points,
        args.log_lines,
        db_bytes as f64 / 1e6
    );
    let source = open_sqlite(&src).await?;
    println!("| step | time | size | rate | metric points |");
    println!("|---|---|---|---|---|");

    let file = tmp.path().join("b.tar");
    let t = Instant::now();
    transfer::backup(&source, &file, &NoProgress).await?;
    let archive = dir_bytes(&file);
    row("backup (SQLite → archive)", t, archive, args.points);

    let t = Instant::now();
    let checked = transfer::verify_backup(&file, &NoProgress).await?;
    anyhow::ensure!(checked.problems.is_empty(), "{:?}", checked.problems);
    row("verify --backup", t, archive, args.points);

    let t = Instant::now();
    let checked = transfer::verify(&source, &NoProgress).await?;
    anyhow::ensure!(checked.problems.is_empty(), "{:?}", checked.problems);
    row("verify (live SQLite)", t, db_bytes, args.points);

    let restored = tmp.path().join("restored");
    let target = open_sqlite(&restored).await?;
    let t = Instant::now();
    let report = transfer::restore(&target, &file, &restored, &NoProgress).await?;
    anyhow::ensure!(report.matches, "restore differs");
    row("restore (archive → SQLite)", t, archive, args.points);
    read_back(&target, archive, args.points).await?;
    target.close().await;

    let export = tmp.path().join("export");
    let t = Instant::now();
    transfer::export(&source, &export, &NoProgress).await?;
    let exported = dir_bytes(&export);
    row("export (SQLite → directory)", t, exported, args.points);
    source.close().await;

    if let Some(base) = &args.database_url {
        let schema = format!("bench_{}", std::process::id());
        let admin = sqlx::PgPool::connect(base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await?;
        let opts = sqlx::postgres::PgConnectOptions::from_str(base)?
            .options([("search_path", schema.as_str())]);
        let store = Store::open_postgres(opts).await?;
        store.migrate().await?;
        let target = Target {
            store,
            blobs: wanllmdb_server::blobs::BlobStore::local(tmp.path().join("pg-blobs")),
        };
        let t = Instant::now();
        let report = transfer::import(&target, &export, &NoProgress).await?;
        anyhow::ensure!(report.matches, "import differs");
        row("import (directory → PostgreSQL)", t, exported, args.points);
        read_back(&target, exported, args.points).await?;
        target.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&admin)
            .await?;
    }
    Ok(())
}
