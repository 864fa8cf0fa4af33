//! Server benchmark: prints the figures behind docs/BENCHMARKS.md.
//!
//! `cargo run --release -p wanllmdb-bench` (SQLite), or with
//! `-- --database-url postgres://…` for PostgreSQL. Build the binary first
//! (`cargo build --release -p wanllmdb`) for the start-up and idle-memory figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Client;
use serde_json::{Value, json};
use wanllmdb_api_types::history_binary;
use wanllmdb_api_types::metrics::HistoryResponse;
use wanllmdb_server::{ServerConfig, Store};

struct Args {
    database_url: Option<String>,
    ingest_points: usize,
    runs_for_search: usize,
    skip_process: bool,
    history_only: bool,
    python: String,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        database_url: None,
        ingest_points: 2_000_000,
        runs_for_search: 10_000,
        skip_process: false,
        history_only: false,
        python: "python3".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--database-url" => {
                a.database_url = Some(it.next().context("--database-url needs a value")?)
            }
            "--ingest-points" => a.ingest_points = it.next().context("value")?.parse()?,
            "--runs" => a.runs_for_search = it.next().context("value")?.parse()?,
            "--skip-process" => a.skip_process = true,
            "--history-only" => a.history_only = true,
            "--python" => a.python = it.next().context("--python needs an interpreter")?,
            other => bail!(
                "unknown argument {other}; use --database-url URL, --ingest-points N, --runs N, \
                 --skip-process, --history-only (only the history reads), --python PATH (an \
                 interpreter with numpy for the SDK figure)"
            ),
        }
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Bench {
    c: Client,
    url: String,
    key: String,
}

impl Bench {
    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let r = self
            .c
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await?;
        let s = r.status();
        let v: Value = r.json().await?;
        if !s.is_success() {
            bail!("{path}: {s} {v}");
        }
        Ok(v)
    }

    async fn post_raw(&self, path: &str, body: bytes_body::Body) -> Result<()> {
        let r = self
            .c
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.0)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{path}: {}", r.status());
        }
        r.bytes().await?;
        Ok(())
    }

    async fn get_bytes(&self, path: &str) -> Result<usize> {
        let r = self
            .c
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{path}: {}", r.status());
        }
        Ok(r.bytes().await?.len())
    }

    /// A history read in the binary form, decoded into arrays; returns the points read.
    async fn get_columns(&self, path: &str, body: Option<&Value>) -> Result<usize> {
        let url = format!("{}{path}", self.url);
        let r = match body {
            Some(b) => self.c.post(url).json(b),
            None => self.c.get(url),
        };
        let r = r
            .bearer_auth(&self.key)
            .header("accept", history_binary::MEDIA_TYPE)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{path}: {}", r.status());
        }
        let runs = history_binary::decode(&r.bytes().await?)?;
        Ok(runs
            .iter()
            .flat_map(|r| &r.series)
            .map(|s| s.values.len())
            .sum())
    }

    async fn run(&self, project: &str) -> Result<String> {
        let v = self
            .post("/api/v1/runs", &json!({"project": project}))
            .await?;
        Ok(v["id"].as_str().unwrap().to_string())
    }
}

mod bytes_body {
    /// A pre-serialised request body (cheap to clone).
    #[derive(Clone)]
    pub struct Body(pub Vec<u8>);
}

/// A typical training curve: f32-precision noisy decaying values, steps += 1, timestamps ~10 ms apart.
fn curve_batch(start: usize, steps: usize, keys: usize, seed: &mut u64) -> bytes_body::Body {
    let mut pts = Vec::with_capacity(steps);
    for s in start..start + steps {
        let mut values = serde_json::Map::new();
        for k in 0..keys {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let noise = (*seed % 10_000) as f64 / 10_000.0 - 0.5;
            let v = (2.0 / (1.0 + s as f64 / 1000.0) + 0.05 * noise) as f32 as f64;
            values.insert(format!("metric_{k}"), json!(v));
        }
        pts.push(
            json!({"step": s, "timestamp": 1_764_250_000.0 + s as f64 * 0.01, "values": values}),
        );
    }
    bytes_body::Body(serde_json::to_vec(&json!({"points": pts})).unwrap())
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

async fn ingest(b: &Bench, project: &str, total_points: usize) -> Result<(f64, String)> {
    // 1,000 steps × 10 keys = 10,000 points per batch; bodies are prepared before timing.
    let keys = 10;
    let steps_per_batch = 1_000;
    let batches = total_points / (keys * steps_per_batch);
    let streams = 4;
    let mut seed = 0x9E3779B97F4A7C15u64;
    let mut runs = Vec::new();
    let mut bodies: Vec<Vec<bytes_body::Body>> = Vec::new();
    for _ in 0..streams {
        runs.push(b.run(project).await?);
        bodies.push(Vec::new());
    }
    for i in 0..batches {
        let stream = i % streams;
        let start = (i / streams) * steps_per_batch;
        bodies[stream].push(curve_batch(start, steps_per_batch, keys, &mut seed));
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (run, bs) in runs.iter().zip(bodies) {
        let (c, url, key, run) = (b.c.clone(), b.url.clone(), b.key.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let bench = Bench { c, url, key };
            for body in bs {
                bench
                    .post_raw(&format!("/api/v1/runs/{run}/history"), body)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((
        (batches * keys * steps_per_batch) as f64 / secs,
        runs[0].clone(),
    ))
}

async fn one_key_run(b: &Bench, project: &str, points: usize) -> Result<String> {
    let run = b.run(project).await?;
    let mut seed = 42u64;
    for start in (0..points).step_by(10_000) {
        b.post_raw(
            &format!("/api/v1/runs/{run}/history"),
            curve_batch(start, 10_000, 1, &mut seed),
        )
        .await?;
    }
    Ok(run)
}

async fn timed<F, Fut>(n: usize, mut f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    f().await?; // warm-up
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(v))
}

async fn process_figures(bin: &PathBuf) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["server", "--bind", "127.0.0.1:18931", "--data-dir"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let c = Client::new();
    let ready_ms = loop {
        let ready = c.get("http://127.0.0.1:18931/health/ready").send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break t.elapsed().as_secs_f64() * 1000.0;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            bail!("server never became ready");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    Ok((ready_ms, rss_kb / 1024.0))
}

/// Bytes of the pages that hold metric chunks (SQLite: `dbstat`, when the build has it;
/// PostgreSQL: the table with its TOAST and index) and of the database's free pages (SQLite).
async fn chunk_pages(store: &Store) -> (Option<i64>, Option<i64>) {
    wanllmdb_server::on_backend!(store, read, |pool| {
        let one = async |sql: &'static str| -> Option<i64> {
            sqlx::query_scalar(sql).fetch_one(pool).await.ok().flatten()
        };
        match store.kind() == wanllmdb_server::store::BackendKind::Postgres {
            true => (
                one("SELECT pg_total_relation_size('metric_chunks')").await,
                None,
            ),
            false => (
                one("SELECT SUM(pgsize) FROM dbstat WHERE name IN ('metric_chunks', 'sqlite_autoindex_metric_chunks_1')").await,
                one("SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size").await,
            ),
        }
    })
}

/// The ingest rate and the bytes a point takes on disk.
async fn ingest_figures(
    b: &Bench,
    args: &Args,
    store: &Store,
    dir: &std::path::Path,
) -> Result<()> {
    let checkpoint = async || {
        if args.database_url.is_none() {
            let _ = wanllmdb_server::on_backend!(store, write, |pool| {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await
                    .map(|_| ())
            });
        }
    };
    checkpoint().await;
    let empty = dir_size(dir);
    let (rate, _) = ingest(b, "bench", args.ingest_points).await?;
    println!(
        "ingest, HTTP, batches of 10,000 points (1,000 steps x 10 keys), 4 concurrent runs: {:.0} points/s",
        rate
    );
    if args.database_url.is_none() {
        checkpoint().await;
        let bytes = dir_size(dir);
        println!(
            "on-disk size (whole data directory incl. indexes) after {} points: {:.2} bytes/point; growth over the empty database ({} KiB): {:.2} bytes/point",
            args.ingest_points,
            bytes as f64 / args.ingest_points as f64,
            empty / 1024,
            bytes.saturating_sub(empty) as f64 / args.ingest_points as f64
        );
    }
    let per_point = |b: Option<i64>| {
        b.map_or("n/a".into(), |b| {
            format!("{:.2}", b as f64 / args.ingest_points as f64)
        })
    };
    let (pages, free) = chunk_pages(store).await;
    println!(
        "metric chunks alone (table and primary-key index pages): {} bytes/point; free pages left by rewritten chunks: {} bytes/point",
        per_point(pages),
        per_point(free)
    );
    Ok(())
}

/// Prints `name: X ms (target …)`.
fn figure(name: &str, ms: f64, reps: usize, target: Option<f64>) {
    let target = target.map_or(String::new(), |t| format!("; target < {t} ms"));
    println!("{name}: {ms:.1} ms (median of {reps}{target})");
}

/// What a Python interpreter with numpy measures through the SDK, or why it could not.
async fn python_figures(args: &Args, b: &Bench, run: &str) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/history_numpy.py");
    let mut cmd = std::process::Command::new(&args.python);
    cmd.args([script, &b.url, &b.key, run, "metric_0", "5"]);
    let python = args.python.clone();
    // The server runs in this process: wait for the client off the runtime's threads.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Full and downsampled reads of one key of 1,000,000 points, and the many-runs query, in
/// JSON (the baseline) and in the binary form.
async fn history_figures(b: &Bench, gz: &Bench, args: &Args) -> Result<()> {
    let big = one_key_run(b, "bench", 1_000_000).await?;
    let full_path = format!("/api/v1/runs/{big}/history?keys=metric_0");
    let full = timed(5, || b.get_bytes(&full_path)).await?;
    figure(
        "history of one key, 1,000,000 points, full, JSON body received",
        full,
        5,
        Some(100.0),
    );
    let parsed = timed(5, || async {
        let r =
            b.c.get(format!("{}{full_path}", b.url))
                .bearer_auth(&b.key)
                .send()
                .await?;
        let h: HistoryResponse = serde_json::from_slice(&r.bytes().await?)?;
        Ok(h.series[0].values.len())
    })
    .await?;
    figure(
        "  the same, JSON parsed into arrays (serde)",
        parsed,
        5,
        None,
    );
    let binary = timed(5, || b.get_columns(&full_path, None)).await?;
    figure(
        "  the same, binary form decoded into arrays (Rust client)",
        binary,
        5,
        Some(30.0),
    );
    match python_figures(args, b, &big).await {
        Ok(v) => {
            figure(
                "  the same, Python SDK, numpy.frombuffer arrays",
                v["numpy_ms"].as_f64().unwrap_or(f64::NAN),
                5,
                Some(30.0),
            );
            figure(
                "  the same, Python SDK without numpy (JSON into lists)",
                v["lists_ms"].as_f64().unwrap_or(f64::NAN),
                1,
                None,
            );
        }
        Err(why) => {
            println!("  (Python figure skipped: {why}; pass --python with numpy installed)")
        }
    }
    let full_gz = timed(5, || gz.get_bytes(&full_path)).await?;
    figure(
        "  the same, JSON, gzip-compressed response",
        full_gz,
        5,
        None,
    );
    let ds_path = format!("/api/v1/runs/{big}/history?keys=metric_0&max_points=1000");
    let ds = timed(20, || b.get_bytes(&ds_path)).await?;
    figure(
        "history of one key, 1,000,000 points downsampled to 1,000",
        ds,
        20,
        Some(10.0),
    );

    let mut many = Vec::new();
    for _ in 0..100 {
        many.push(one_key_run(b, "bench", 100_000).await?);
    }
    let q = json!({"runs": many, "keys": ["metric_0"], "max_points": 1000});
    let multi = timed(5, || async {
        b.post("/api/v1/history/query", &q).await.map(|_| 0)
    })
    .await?;
    figure(
        "100 runs x 100,000 points downsampled to 1,000 each, one query, JSON parsed",
        multi,
        5,
        Some(100.0),
    );
    let multi_bin = timed(5, || b.get_columns("/api/v1/history/query", Some(&q))).await?;
    figure(
        "  the same, binary form decoded into arrays",
        multi_bin,
        5,
        Some(100.0),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    // reqwest is built with TLS but no crypto provider of its own (see crates/cli).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let mut cfg = ServerConfig::new(dir.path());
    cfg.max_body_bytes = 256 * 1024 * 1024;
    let backend = args
        .database_url
        .clone()
        .unwrap_or_else(|| "sqlite (embedded)".into());
    let store = match &args.database_url {
        Some(u) => Store::open(u).await?,
        None => {
            Store::open(&format!(
                "sqlite://{}",
                dir.path().join("bench.db").display()
            ))
            .await?
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = wanllmdb_server::start_with_store(cfg, store.clone(), listener).await?;
    let key = server
        .admin_api_key
        .clone()
        .context("bench needs an empty database (admin key)")?;
    let b = Bench {
        c: Client::builder()
            .pool_max_idle_per_host(16)
            .no_gzip()
            .build()?,
        url: server.url(),
        key,
    };
    let gz = Bench {
        c: Client::builder().build()?,
        url: b.url.clone(),
        key: b.key.clone(),
    };
    println!("backend: {}", wanllmdb_server::store::redact_url(&backend));
    b.post("/api/v1/projects", &json!({"name": "bench"}))
        .await?;

    if !args.history_only {
        ingest_figures(&b, &args, &store, dir.path()).await?;
    }
    history_figures(&b, &gz, &args).await?;
    if args.history_only {
        server.shutdown().await?;
        return Ok(());
    }

    b.post("/api/v1/projects", &json!({"name": "search"}))
        .await?;
    for i in 0..args.runs_for_search {
        let run = b.post("/api/v1/runs", &json!({"project": "search", "config": {"lr": (i % 100) as f64 / 1000.0, "batch": 32}})).await?;
        let id = run["id"].as_str().unwrap();
        b.post(&format!("/api/v1/runs/{id}/history"), &json!({"points": [{"step": 1, "values": {"val_acc": (i * 7919 % 10_000) as f64 / 10_000.0, "loss": 1.0}}]})).await?;
    }
    let path = "/api/v1/runs?project=search&filter=summary.val_acc%20%3E%3D%200.5&sort=-summary.val_acc&limit=50";
    let search = timed(20, || b.get_bytes(path)).await?;
    println!(
        "{} runs, filter + sort by a summary metric, first page of 50: {search:.1} ms (median of 20)",
        args.runs_for_search
    );
    let path =
        "/api/v1/runs?project=search&filter=config.lr%20%3C%200.01&sort=-summary.val_acc&limit=50";
    let search2 = timed(20, || b.get_bytes(path)).await?;
    println!(
        "{} runs, filter by config + sort by a summary metric, first page of 50: {search2:.1} ms (median of 20)",
        args.runs_for_search
    );

    server.shutdown().await?;

    if !args.skip_process && args.database_url.is_none() {
        let exe = std::env::current_exe()?;
        let bin = exe.parent().unwrap().join("wanllmdb");
        if bin.exists() {
            let mut ready = Vec::new();
            let mut rss = Vec::new();
            for _ in 0..5 {
                let (r, m) = process_figures(&bin).await?;
                ready.push(r);
                rss.push(m);
            }
            println!(
                "start to ready (fresh data dir, process spawn to /health/ready 200): {:.0} ms (median of 5)",
                median(ready)
            );
            println!("idle server RSS: {:.1} MB (median of 5)", median(rss));
        } else {
            println!(
                "(build the release binary with `cargo build --release -p wanllmdb` for start-up and RSS figures)"
            );
        }
    }
    Ok(())
}
