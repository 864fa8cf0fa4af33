//! Hardening benchmark: prints the figures of docs/BENCHMARKS.md "Memory before authentication"
//! and "Slow clients" (Linux: memory is read from /proc).
//!
//! `cargo build -p wanllmdb -p wanllmdb-bench && ./target/debug/wanllmdb-hardening-bench`
//! Options: `--wanllmdb PATH` (the server binary to measure, default the one next to this
//! program), `--uploads N` and `--upload-mib M` (parallel anonymous posts, default 20 × 64),
//! `--half-open N` (idle half-open connections, default 500), `--requests N` (normal requests
//! timed per phase, default 2000).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    wanllmdb: Option<PathBuf>,
    uploads: usize,
    upload_mib: usize,
    half_open: usize,
    requests: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        wanllmdb: None,
        uploads: 20,
        upload_mib: 64,
        half_open: 500,
        requests: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().context("missing value");
        match x.as_str() {
            "--wanllmdb" => a.wanllmdb = Some(PathBuf::from(val()?)),
            "--uploads" => a.uploads = val()?.parse()?,
            "--upload-mib" => a.upload_mib = val()?.parse()?,
            "--half-open" => a.half_open = val()?.parse()?,
            "--requests" => a.requests = val()?.parse()?,
            other => bail!(
                "unknown argument {other}; use --wanllmdb, --uploads, --upload-mib, --half-open, --requests"
            ),
        }
    }
    Ok(a)
}

/// A `wanllmdb server` in a temporary directory.
struct Server {
    child: Child,
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(bin: &PathBuf) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(bin)
            .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("WANLLMDB_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let mut key = String::new();
        let url = loop {
            let line = lines.next().context("the server exited")??;
            if line.trim().starts_with("wlk_") {
                key = line.trim().to_string();
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().context("url")?.to_string();
            }
        };
        // Keep reading stderr, so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child,
            url,
            key,
            _dir: dir,
        })
    }

    /// Resident and peak resident memory in MiB.
    fn memory(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = |name: &str| -> Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} missing"))?;
            Ok(line
                .split_whitespace()
                .nth(1)
                .context("value")?
                .parse::<f64>()?
                / 1024.0)
        };
        Ok((kib("VmRSS:")?, kib("VmHWM:")?))
    }

    /// Makes the peak equal the current resident size (Linux `clear_refs`).
    fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A run to post to; its id.
async fn a_run(c: &reqwest::Client, s: &Server) -> Result<String> {
    let r: Value = c
        .post(format!("{}/api/v1/runs", s.url))
        .bearer_auth(&s.key)
        .json(&json!({"project": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    Ok(r["id"].as_str().context("run id")?.to_string())
}

/// `n` anonymous posts of `mib` MiB at once, with or without a declared length; the peak
/// resident memory added meanwhile (MiB).
async fn anonymous_uploads(
    s: &Server,
    run: &str,
    n: usize,
    mib: usize,
    declared: bool,
) -> Result<f64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.reset_peak()?;
    let (base, _) = s.memory()?;
    let url = format!("{}/api/v1/runs/{run}/history", s.url);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
            let chunks = (0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
            let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
            let mut req = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if declared {
                req = req.header("content-length", (mib << 20).to_string());
            }
            // The server may answer before the body is sent and close: either is fine here.
            let _ = req.send().await;
        }));
    }
    for t in tasks {
        t.await?;
    }
    let (_, peak) = s.memory()?;
    Ok(peak - base)
}

/// `n` normal requests one after another; their latencies in ms.
async fn latencies(c: &reqwest::Client, s: &Server, run: &str, n: usize) -> Result<Vec<f64>> {
    let url = format!("{}/api/v1/runs/{run}", s.url);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = c.get(&url).bearer_auth(&s.key).send().await?;
        r.bytes().await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Opens `n` connections that send half a request and then nothing; each task resolves with
/// the seconds until the server closed it.
async fn half_open(s: &Server, n: usize) -> Result<Vec<tokio::task::JoinHandle<f64>>> {
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = tokio::net::TcpStream::connect(&addr).await?;
        conn.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\n")
            .await?;
        let opened = Instant::now();
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return opened.elapsed().as_secs_f64(),
                    Ok(_) => {}
                }
            }
        }));
    }
    Ok(tasks)
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    let bin = match &args.wanllmdb {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("wanllmdb"),
    };
    let c = reqwest::Client::new();

    println!("## memory before authentication ({})", bin.display());
    let s = Server::start(&bin)?;
    let run = a_run(&c, &s).await?;
    let (idle, _) = s.memory()?;
    println!("idle server: {idle:.0} MiB resident");
    for declared in [true, false] {
        let added = anonymous_uploads(&s, &run, args.uploads, args.upload_mib, declared).await?;
        println!(
            "{} parallel anonymous {} MiB posts ({}): resident memory rose by {added:.1} MiB at peak",
            args.uploads,
            args.upload_mib,
            if declared {
                "Content-Length declared"
            } else {
                "chunked"
            }
        );
    }
    drop(s);

    println!("## slow clients");
    let s = Server::start(&bin)?;
    let run = a_run(&c, &s).await?;
    latencies(&c, &s, &run, 200).await?;
    let mut quiet = latencies(&c, &s, &run, args.requests).await?;
    let closers = half_open(&s, args.half_open).await?;
    let mut busy = latencies(&c, &s, &run, args.requests).await?;
    println!(
        "GET /api/v1/runs/{{id}}, {} requests: p50 {:.2} ms, p99 {:.2} ms on an idle server",
        args.requests,
        percentile(&mut quiet, 0.5),
        percentile(&mut quiet, 0.99)
    );
    println!(
        "same with {} half-open connections held: p50 {:.2} ms, p99 {:.2} ms",
        args.half_open,
        percentile(&mut busy, 0.5),
        percentile(&mut busy, 0.99)
    );
    // Waiting two minutes at most: a server without a header timeout never closes them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut closed = Vec::with_capacity(closers.len());
    for t in closers {
        if let Ok(r) = tokio::time::timeout_at(deadline, t).await {
            closed.push(r?);
        }
    }
    if closed.is_empty() {
        println!(
            "the server closed none of the {} half-open connections within 120 s",
            args.half_open
        );
    } else {
        println!(
            "the server closed {} of {} half-open connections within 120 s, the last {:.1} s after it was opened (first {:.1} s)",
            closed.len(),
            args.half_open,
            closed.iter().copied().fold(0.0, f64::max),
            closed.iter().copied().fold(f64::INFINITY, f64::min)
        );
    }
    Ok(())
}
