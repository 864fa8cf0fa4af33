//! Metric storage benchmark: bytes a point on disk for three kinds of curve, beside what
//! `xz -9` makes of the same raw columns, with ingest and full-read figures for each.
//!
//! `cargo build --release -p wanllmdb -p wanllmdb-bench`, then
//! `./target/release/wanllmdb-storage-bench [--points N] [--database-url postgres://…]`.
//! Each curve goes into its own fresh SQLite database through the HTTP API (one run, one key,
//! batches of 10,000 points), so the sizes are those of that curve alone. Then the release
//! `wanllmdb server` binary beside this program is started as its own process (over SQLite, and
//! over PostgreSQL when `--database-url` names an empty database) for the ingest rate and the
//! server's resident memory before, during and after the ingest.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
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
    let api = Api {
        http: reqwest::Client::new(),
        url: server.url(),
        key: server.admin_api_key.clone().context("admin key")?,
    };
    api.project().await?;
    let run = api.run().await?;
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
        api.post(&format!("/api/v1/runs/{run}/history"), body)
            .await?;
    }
    let ingest_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = api
        .http
        .get(format!("{}/api/v1/runs/{run}/history?keys=m", api.url));
    let r = r.bearer_auth(&api.key);
    let body = r.send().await?.bytes().await?;
    let read_ms = t.elapsed().as_secs_f64() * 1000.0;
    ensure!(body.len() > pts.len(), "short history response");
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

/// Points of the ingest figure, as in the server benchmark: 4 runs written at once, each
/// request 1,000 steps × 10 keys.
const INGEST_POINTS: usize = 2_000_000;
const INGEST_RUNS: usize = 4;
const INGEST_STEPS: usize = 1_000;
const INGEST_KEYS: usize = 10;

/// The `wanllmdb` binary built beside this program.
fn server_binary() -> Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("wanllmdb");
    ensure!(
        bin.exists(),
        "{} is missing; build it with cargo build --release -p wanllmdb",
        bin.display()
    );
    Ok(bin)
}

/// A `wanllmdb server` process over a fresh data directory, stopped when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    async fn start(database_url: Option<&str>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(server_binary()?);
        cmd.args([
            "server",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path());
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut server = ServerProcess {
            child,
            url,
            key: String::new(),
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{}/health/ready", server.url)).send();
            if ready.await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            ensure!(server.child.try_wait()?.is_none(), "the server exited");
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "server never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let key = std::fs::read_to_string(server._dir.path().join("admin-api-key"))
            .context("no admin key was written: give the benchmark an empty database")?;
        server.key = key.trim().to_string();
        Ok(server)
    }

    /// A memory figure of the process from /proc (VmRSS: resident now, VmHWM: peak), in MB.
    fn memory_mb(&self, field: &str) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("{field} in /proc/PID/status"))?;
        Ok(kb / 1024.0)
    }

    fn api(&self) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            key: self.key.clone(),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP API of a server, with its admin key.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    async fn post(&self, path: &str, body: Vec<u8>) -> Result<bytes::Bytes> {
        let r = self.http.post(format!("{}{path}", self.url));
        let r = r.bearer_auth(&self.key);
        let r = r.header("content-type", "application/json").body(body);
        let r = r.send().await?;
        match r.status().is_success() {
            true => Ok(r.bytes().await?),
            false => bail!("{path}: {}", r.status()),
        }
    }

    /// Project `b`, which [`Api::run`] puts runs in.
    async fn project(&self) -> Result<()> {
        let project = json!({"name": "b"}).to_string().into();
        self.post("/api/v1/projects", project).await.map(drop)
    }

    /// A new run in project `b`.
    async fn run(&self) -> Result<String> {
        let body = json!({"project": "b"}).to_string().into();
        let run: serde_json::Value =
            serde_json::from_slice(&self.post("/api/v1/runs", body).await?)?;
        Ok(run["id"].as_str().context("run id")?.to_string())
    }
}

/// Request bodies of the ingest figure, per run: the training curve, 10 keys a step.
fn ingest_bodies() -> Vec<Vec<Vec<u8>>> {
    let mut r = Random(0x9E37_79B9_7F4A_7C15);
    let mut bodies = vec![Vec::new(); INGEST_RUNS];
    for i in 0..INGEST_POINTS / (INGEST_STEPS * INGEST_KEYS) {
        let start = i / INGEST_RUNS * INGEST_STEPS;
        let p: Vec<_> = (start..start + INGEST_STEPS)
            .map(|s| {
                let values: serde_json::Map<_, _> = (0..INGEST_KEYS)
                    .map(|k| (format!("metric_{k}"), json!((CURVES[0].2)(s, &mut r))))
                    .collect();
                json!({"step": s, "timestamp": 1_764_250_000.0 + s as f64 * 0.01, "values": values})
            })
            .collect();
        bodies[i % INGEST_RUNS].push(serde_json::to_vec(&json!({"points": p})).unwrap());
    }
    bodies
}

/// Ingest rate and server memory over one backend, printed beside their targets.
async fn ingest_figures(name: &str, database_url: Option<&str>, target: f64) -> Result<()> {
    let server = ServerProcess::start(database_url).await?;
    let api = server.api();
    api.project().await?;
    let mut runs = Vec::new();
    for _ in 0..INGEST_RUNS {
        runs.push(api.run().await?);
    }
    let bodies = ingest_bodies();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.memory_mb("VmRSS")?;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (run, bodies) in runs.into_iter().zip(bodies) {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for body in bodies {
                api.post(&format!("/api/v1/runs/{run}/history"), body)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = INGEST_POINTS as f64 / t.elapsed().as_secs_f64();
    let peak = server.memory_mb("VmHWM")?;
    let during = server.memory_mb("VmRSS")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = server.memory_mb("VmRSS")?;
    println!(
        "{name}: ingest {rate:.0} points/s (target ≥ {target:.0}; {INGEST_POINTS} points, {INGEST_RUNS} runs at once, {INGEST_STEPS} steps × {INGEST_KEYS} keys a request)"
    );
    println!(
        "{name}: server RSS idle before {idle:.1} MB | peak {peak:.1} MB (target < 100) | at the end {during:.1} MB | 5 s later {after:.1} MB (target: near idle)"
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut sizes = vec![1_000_000, 100_000];
    let mut database_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--points" => sizes = vec![args.next().context("--points N")?.parse()?],
            "--database-url" => database_url = Some(args.next().context("--database-url URL")?),
            other => bail!("unknown argument {other}; use --points N, --database-url URL"),
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
    ingest_figures("SQLite", None, 3_000_000.0).await?;
    if let Some(url) = &database_url {
        ingest_figures("PostgreSQL", Some(url), 2_000_000.0).await?;
    }
    Ok(())
}
