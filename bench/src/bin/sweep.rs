//! Sweep controller benchmark: suggestion latency over HTTP with 1,000 finished trials.
//!
//! `cargo run --release -p wanllmdb-bench --bin wanllmdb-sweep-bench` (SQLite), or with
//! `-- --database-url postgres://…` for PostgreSQL. Each sweep gets 1,000 finished trials
//! (suggest, start the run, log the metric, finish), then 50 more suggestions are timed one at
//! a time; each timed trial is finished before the next, so the history stays at 1,000+.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use reqwest::Client;
use serde_json::{Value, json};
use wanllmdb_server::{ServerConfig, Store};

const SEEDED: usize = 1_000;
const TIMED: usize = 50;

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

async fn bench_sweep(api: &Api, label: &str, config: Value) -> Result<()> {
    let sweep = api
        .post(
            "/api/v1/projects/bench/sweeps",
            &json!({ "config": config }),
        )
        .await?;
    let id = sweep["id"].as_str().context("id")?.to_string();
    let suggest = format!("/api/v1/sweeps/{id}/suggest");
    let seed_start = Instant::now();
    for _ in 0..SEEDED {
        let s = api.post(&suggest, &json!({})).await?;
        api.play(&s).await?;
    }
    let seeding = seed_start.elapsed().as_secs_f64();
    let mut ms = Vec::with_capacity(TIMED);
    for _ in 0..TIMED {
        let t = Instant::now();
        let s = api.post(&suggest, &json!({})).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        api.play(&s).await?;
    }
    let median = percentile(&mut ms, 0.5);
    let p95 = percentile(&mut ms, 0.95);
    let max = percentile(&mut ms, 1.0);
    println!(
        "{label}: suggest with {SEEDED}+ finished trials: median {median:.1} ms, p95 {p95:.1} ms, max {max:.1} ms (n={TIMED}; seeding took {seeding:.1} s)"
    );
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
    let cfg = ServerConfig::new(dir.path());
    let store = match &database_url {
        Some(u) => Store::open(u).await?,
        None => Store::open(&format!("sqlite://{}", dir.path().join("b.db").display())).await?,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = wanllmdb_server::start_with_store(cfg, store, listener).await?;
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
    bench_sweep(
        &api,
        "bayes (TPE, univariate)",
        json!({"method": "bayes", "metric": metric, "parameters": space(), "optuna_config": {"seed": 1}}),
    )
    .await?;
    bench_sweep(
        &api,
        "bayes (TPE, multivariate)",
        json!({"method": "bayes", "metric": metric, "parameters": space(),
               "optuna_config": {"seed": 1, "multivariate": true}}),
    )
    .await?;
    bench_sweep(
        &api,
        "random",
        json!({"method": "random", "metric": metric, "parameters": space()}),
    )
    .await?;
    bench_sweep(
        &api,
        "grid (2,400 points)",
        json!({"method": "grid", "metric": metric, "parameters": {
            "lr": {"values": [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]},
            "layers": {"min": 1, "max": 12},
            "dropout": {"values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]},
            "opt": {"values": ["adam", "sgd"]}}}),
    )
    .await?;
    server.shutdown().await?;
    Ok(())
}
