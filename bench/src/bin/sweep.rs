//! Sweep controller benchmark: suggestion latency over HTTP with 1,000 and 10,000 finished
//! trials, beside the targets and beside a cold cache measured in the same run.
//!
//! `cargo run --release -p wanllmdb-bench --bin wanllmdb-sweep-bench` (SQLite), or with
//! `-- --database-url postgres://…` for PostgreSQL. Each sweep gets 1,000 finished trials
//! (suggest, start the run, log the metric, finish), then 50 more suggestions are timed one at
//! a time, each finished before the next; the default method's sweep and the random one then
//! go on to 10,000 finished trials and are timed again. The cold figure is a server started
//! on the same database for each of 5 suggestions: its first read of the sweep's trials
//! fetches and decodes every row, as every suggestion did before the trial cache.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use reqwest::Client;
use serde_json::{Value, json};
use wanllmdb_server::{ServerConfig, Store};

/// Finished trials before each timed stage, and the target for the median there (ms).
const STAGES: [(usize, f64); 2] = [(1_000, 10.0), (10_000, 50.0)];
/// Suggestions timed per stage.
const TIMED: usize = 50;
/// Suggestions timed on a fresh server per stage.
const COLD: usize = 5;

struct Api {
    c: Client,
    url: String,
    key: String,
}

impl Api {
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

    /// Asks for a suggestion (timed, in ms) and plays it.
    async fn timed_suggestion(&self, suggest: &str) -> Result<f64> {
        let t = Instant::now();
        let s = self.post(suggest, &json!({})).await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.play(&s).await?;
        Ok(ms)
    }

    /// Starts the suggested run, logs a loss computed from its parameters, finishes it.
    async fn play(&self, s: &Value) -> Result<()> {
        let run = s["run_id"].as_str().context("run_id")?;
        self.post(
            "/api/v1/runs",
            &json!({"project": "bench", "id": run, "config": s["config"]}),
        )
        .await?;
        let p = &s["params"];
        let lr = p["lr"].as_f64().unwrap_or(0.01);
        let layers = p["layers"].as_f64().unwrap_or(4.0);
        let dropout = p["dropout"].as_f64().unwrap_or(0.2);
        let opt = if p["opt"] == "adam" { 0.0 } else { 0.3 };
        let loss = (lr.log10() + 2.5).powi(2) + (layers - 5.0).abs() * 0.05 + dropout + opt;
        self.post(
            &format!("/api/v1/runs/{run}/history"),
            &json!({"points": [{"step": 0, "values": {"loss": loss}}]}),
        )
        .await?;
        self.post(
            &format!("/api/v1/runs/{run}/finish"),
            &json!({"state": "finished", "exit_code": 0}),
        )
        .await?;
        Ok(())
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Where the database is, so fresh servers can open it on connections of their own.
struct Db {
    url: String,
}

impl Db {
    /// Times the first suggestion of a server started on this database (nothing cached),
    /// `COLD` times; each trial is finished.
    async fn cold(&self, api: &Api, suggest: &str) -> Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(COLD);
        for _ in 0..COLD {
            let dir = tempfile::tempdir()?;
            let store = Store::open(&self.url).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let server =
                wanllmdb_server::start_with_store(ServerConfig::new(dir.path()), store, listener)
                    .await?;
            let fresh = Api {
                c: api.c.clone(),
                url: server.url(),
                key: api.key.clone(),
            };
            ms.push(fresh.timed_suggestion(suggest).await?);
            server.shutdown().await?;
        }
        Ok(ms)
    }
}

/// Suggests and finishes trials until the sweep has `total`; the seconds that took.
async fn seed(api: &Api, suggest: &str, done: &mut usize, total: usize) -> Result<f64> {
    let start = Instant::now();
    while *done < total {
        let s = api.post(suggest, &json!({})).await?;
        api.play(&s).await?;
        *done += 1;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Times suggestions of a new sweep at the first `stages` of `STAGES`.
async fn bench_sweep(api: &Api, db: &Db, label: &str, stages: usize, config: Value) -> Result<()> {
    let sweep = api
        .post(
            "/api/v1/projects/bench/sweeps",
            &json!({ "config": config }),
        )
        .await?;
    let id = sweep["id"].as_str().context("id")?.to_string();
    let suggest = format!("/api/v1/sweeps/{id}/suggest");
    let mut done = 0;
    for &(n, target) in STAGES.iter().take(stages) {
        let seeding = seed(api, &suggest, &mut done, n).await?;
        let mut ms = Vec::with_capacity(TIMED);
        for _ in 0..TIMED {
            ms.push(api.timed_suggestion(&suggest).await?);
        }
        let mut cold = db.cold(api, &suggest).await?;
        done += TIMED + COLD;
        let median = percentile(&mut ms, 0.5);
        let verdict = if median < target { "met" } else { "MISSED" };
        println!(
            "{label}, {n}+ finished trials: median {median:.1} ms, p95 {:.1} ms, max {:.1} ms (n={TIMED}) \
             | target < {target:.0} ms: {verdict} | cold cache: median {:.1} ms (n={COLD}) | seeding took {seeding:.1} s",
            percentile(&mut ms, 0.95),
            percentile(&mut ms, 1.0),
            percentile(&mut cold, 0.5),
        );
    }
    Ok(())
}

fn space() -> Value {
    json!({
        "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
        "layers": {"min": 1, "max": 12},
        "dropout": {"min": 0.0, "max": 0.5},
        "opt": {"values": ["adam", "sgd"]}
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut database_url = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--database-url" => database_url = Some(it.next().context("--database-url URL")?),
            other => bail!("unknown argument {other}; use --database-url URL"),
        }
    }
    // reqwest is built with TLS but no crypto provider of its own (see crates/cli).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let db = Db {
        url: database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("b.db").display())),
    };
    let store = Store::open(&db.url).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server =
        wanllmdb_server::start_with_store(ServerConfig::new(dir.path()), store, listener).await?;
    let api = Api {
        c: Client::builder().no_gzip().build()?,
        url: server.url(),
        key: server
            .admin_api_key
            .clone()
            .context("the benchmark needs an empty database (admin key)")?,
    };
    println!(
        "backend: {}",
        database_url
            .as_deref()
            .map(wanllmdb_server::store::redact_url)
            .unwrap_or_else(|| "sqlite (embedded)".into())
    );
    api.post("/api/v1/projects", &json!({"name": "bench"}))
        .await?;
    let metric = json!({"name": "loss", "goal": "minimize"});
    let sweeps = [
        (
            "bayes (TPE, multivariate, the default)",
            2,
            json!({"method": "bayes", "metric": metric, "parameters": space(), "optuna_config": {"seed": 1}}),
        ),
        (
            "random",
            2,
            json!({"method": "random", "metric": metric, "parameters": space()}),
        ),
        (
            "bayes (TPE, univariate)",
            1,
            json!({"method": "bayes", "metric": metric, "parameters": space(),
               "optuna_config": {"seed": 1, "multivariate": false}}),
        ),
        (
            "grid (2,400 points)",
            1,
            json!({"method": "grid", "metric": metric, "parameters": {
            "lr": {"values": [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]},
            "layers": {"min": 1, "max": 12},
            "dropout": {"values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]},
            "opt": {"values": ["adam", "sgd"]}}}),
        ),
    ];
    for (label, stages, config) in sweeps {
        bench_sweep(&api, &db, label, stages, config).await?;
    }
    server.shutdown().await?;
    Ok(())
}
