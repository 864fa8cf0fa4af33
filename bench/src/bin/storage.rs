//! Metric storage benchmark: bytes a point on disk for three kinds of curve, beside what
//! `xz -9` makes of the same raw columns, with ingest and full-read figures for each.
//!
//! `cargo run --release -p wanllmdb-bench --bin wanllmdb-storage-bench [-- --points N]`.
//! Each curve goes into its own fresh SQLite database through the HTTP API (one run, one key,
//! batches of 10,000 points), so the sizes are those of that curve alone.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use wanllmdb_server::{ServerConfig, Store};

/// Points per request.
const BATCH: usize = 10_000;

/// The three curves: (name, target in bytes a point, value at step `s` from a random source).
type Curve = (&'static str, f64, fn(usize, &mut Random) -> f64);

const CURVES: [Curve; 3] = [
    // The server benchmark's curve: f32, decaying, uniform noise of ±0.025.
    ("training", f64::NAN, |s, r| {
        let noise = (r.next() % 10_000) as f64 / 10_000.0 - 0.5;
        f64::from((2.0 / (1.0 + s as f64 / 1000.0) + 0.05 * noise) as f32)
    }),
    // A smooth curve: rounded to f32, ±0.2 % noise.
    ("smooth", 2.5, |s, r| {
        let noise = 0.002 * (2.0 * r.unit() - 1.0);
        f64::from((2.0 / (1.0 + s as f64 / 1000.0) * (1.0 + noise)) as f32)
    }),
    // Random noise: uniform f64 in [0, 1).
    ("noise", 9.0, |_, r| r.unit()),
];

/// xorshift64, as in the server benchmark.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One curve's points as (step, timestamp in seconds, value).
fn points(curve: &Curve, n: usize) -> Vec<(usize, f64, f64)> {
    let mut r = Random(42);
    let ts = |s: usize| 1_764_250_000.0 + s as f64 * 0.01;
    (0..n).map(|s| (s, ts(s), (curve.2)(s, &mut r))).collect()
}

/// Bytes `xz -9` makes of the raw little-endian step, timestamp (µs) and value columns.
fn xz_bytes(pts: &[(usize, f64, f64)]) -> Result<usize> {
    let mut raw = Vec::with_capacity(pts.len() * 24);
    raw.extend(pts.iter().flat_map(|p| (p.0 as i64).to_le_bytes()));
    let us = |t: f64| ((t * 1e6).round() as i64).to_le_bytes();
    raw.extend(pts.iter().flat_map(|p| us(p.1)));
    raw.extend(pts.iter().flat_map(|p| p.2.to_le_bytes()));
    let mut xz = Command::new("xz")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running xz (install the xz-utils package)")?;
    let mut stdin = xz.stdin.take().context("xz stdin")?;
    let feeder = std::thread::spawn(move || stdin.write_all(&raw));
    let out = xz.wait_with_output()?;
    feeder.join().expect("xz feeder")?;
    Ok(out.stdout.len())
}

/// Figures of one curve in its own database.
struct Sizes {
    file: u64,
    pages: Option<u64>,
    payload: u64,
    ingest_secs: f64,
    read_ms: f64,
}

async fn measure(pts: &[(usize, f64, f64)]) -> Result<Sizes> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let store = Store::open(&format!("sqlite://{}", db.display())).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut cfg = ServerConfig::new(dir.path());
    cfg.max_body_bytes = 64 * 1024 * 1024;
    let server = wanllmdb_server::start_with_store(cfg, store.clone(), listener).await?;
    let key = server.admin_api_key.clone().context("admin key")?;
    let http = reqwest::Client::new();
    let url = server.url();
    let send = async |path: &str, body: Vec<u8>| -> Result<bytes::Bytes> {
        let r = http.post(format!("{url}{path}")).bearer_auth(&key);
        let r = r.header("content-type", "application/json").body(body);
        let r = r.send().await?;
        match r.status().is_success() {
            true => Ok(r.bytes().await?),
            false => bail!("{path}: {}", r.status()),
        }
    };
    send("/api/v1/projects", json!({"name": "b"}).to_string().into()).await?;
    let run: serde_json::Value = serde_json::from_slice(
        &send("/api/v1/runs", json!({"project": "b"}).to_string().into()).await?,
    )?;
    let run = run["id"].as_str().context("run id")?.to_string();
    let bodies: Vec<Vec<u8>> = pts
        .chunks(BATCH)
        .map(|b| {
            let p: Vec<_> = b
                .iter()
                .map(|(s, t, v)| json!({"step": s, "timestamp": t, "values": {"m": v}}))
                .collect();
            serde_json::to_vec(&json!({"points": p})).unwrap()
        })
        .collect();
    let t = Instant::now();
    for body in bodies {
        send(&format!("/api/v1/runs/{run}/history"), body).await?;
    }
    let ingest_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = http
        .get(format!("{url}/api/v1/runs/{run}/history?keys=m"))
        .bearer_auth(&key);
    let body = r.send().await?.bytes().await?;
    let read_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(body.len() > pts.len(), "short history response");
    let (pages, payload) = wanllmdb_server::on_backend!(store, write, |pool| {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
        // dbstat may be missing from an SQLite build; then only the file size is shown.
        let pages: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('metric_chunks', 'sqlite_autoindex_metric_chunks_1')",
        )
        .fetch_one(pool)
        .await
        .ok()
        .flatten();
        let payload: i64 = sqlx::query_scalar(
            "SELECT SUM(length(data) + length(blocks) + COALESCE(length(lasts), 0)) FROM metric_chunks",
        )
        .fetch_one(pool)
        .await?;
        anyhow::Ok((pages, payload))
    })?;
    server.shutdown().await?;
    store.close().await;
    Ok(Sizes {
        file: std::fs::metadata(&db)?.len(),
        pages: pages.map(|p| p as u64),
        payload: payload as u64,
        ingest_secs,
        read_ms,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut sizes = vec![1_000_000, 100_000];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--points" => sizes = vec![args.next().context("--points N")?.parse()?],
            other => bail!("unknown argument {other}; use --points N"),
        }
    }
    println!(
        "bytes a point: database file | metric chunk pages (dbstat) | chunk blobs | xz -9 of the raw columns (target)"
    );
    for n in sizes {
        for curve in &CURVES {
            let pts = points(curve, n);
            let xz = xz_bytes(&pts)? as f64 / n as f64;
            let s = measure(&pts).await?;
            let per = |b: u64| b as f64 / n as f64;
            let target = match curve.1.is_nan() {
                true => format!("≤ {:.2}, 1.1 × xz", 1.1 * xz),
                false => format!("≤ {}", curve.1),
            };
            let pages = s.pages.map_or("n/a".into(), |p| format!("{:.2}", per(p)));
            println!(
                "{:>9} points, {:>8}: {:.2} | {pages} | {:.2} | xz {:.2} (target {target}); ingest {:.0} points/s; full read {:.0} ms",
                n,
                curve.0,
                per(s.file),
                per(s.payload),
                xz,
                n as f64 / s.ingest_secs,
                s.read_ms
            );
        }
    }
    Ok(())
}
