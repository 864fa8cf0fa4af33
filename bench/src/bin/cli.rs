//! Command-line benchmark: prints the figures for the run wrapper, `wanllmdb log` and
//! `wanllmdb sync` in docs/BENCHMARKS.md.
//!
//! `cargo build --release -p wanllmdb -p wanllmdb-bench && ./target/release/wanllmdb-cli-bench`
//! Options: `--lines N` (metric lines the wrapped program writes, default 1,000,000),
//! `--reps N` (default 5), `--sync-runs N` and `--sync-points N` (default 100 × 10,000).
//! `--files`: run-file and artifact transfers of 1 GiB and of 10,000 small files against `cp`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

struct Args {
    files: bool,
    lines: usize,
    reps: usize,
    sync_runs: usize,
    sync_points: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        files: false,
        lines: 1_000_000,
        reps: 5,
        sync_runs: 100,
        sync_points: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || -> Result<usize> { Ok(it.next().context("missing value")?.parse()?) };
        match x.as_str() {
            "--lines" => a.lines = val()?,
            "--reps" => a.reps = val()?,
            "--sync-runs" => a.sync_runs = val()?,
            "--sync-points" => a.sync_points = val()?,
            "--files" => a.files = true,
            other => {
                bail!("unknown argument {other}; use --lines, --reps, --sync-runs, --sync-points")
            }
        }
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The release `wanllmdb` next to this program.
fn wanllmdb() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join("wanllmdb");
    if !bin.exists() {
        bail!(
            "{} is missing: cargo build --release -p wanllmdb",
            bin.display()
        );
    }
    Ok(bin)
}

struct Server {
    child: std::process::Child,
    url: String,
    key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &Path, data: &Path) -> Result<Server> {
    let mut child = Command::new(bin)
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().context("server exited")??;
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().context("url")?.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let key = std::fs::read_to_string(data.join("admin-api-key"))?
        .trim()
        .to_string();
    Ok(Server { child, url, key })
}

const PROGRAM: &str = r#"
import os, sys, time
n = int(sys.argv[1])
t0 = time.perf_counter()
with open(os.environ["WANLLMDB_METRICS"], "a") as f:
    for i in range(n):
        f.write(f'{{"step": {i}, "loss": {1.0 / (i + 1)}}}\n')
t1 = time.perf_counter()
print(f"elapsed={t1 - t0} end={time.time()}", flush=True)
"#;

struct Timing {
    elapsed: f64,
    end: f64,
}

fn parse_timing(stdout: &str) -> Result<Timing> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("elapsed="))
        .context("the program printed no timing")?;
    let mut t = Timing {
        elapsed: 0.0,
        end: 0.0,
    };
    for part in line.split_whitespace() {
        if let Some(v) = part.strip_prefix("elapsed=") {
            t.elapsed = v.parse()?;
        } else if let Some(v) = part.strip_prefix("end=") {
            t.end = v.parse()?;
        }
    }
    Ok(t)
}

fn client_cmd(bin: &Path, s: &Server, cwd: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cwd)
        .env("WANLLMDB_BASE_URL", &s.url)
        .env("WANLLMDB_API_KEY", &s.key)
        .env("WANLLMDB_KEYRING", "0")
        .env("WANLLMDB_CONFIG_DIR", cwd.join("cfg"))
        .env_remove("WANLLMDB_PROJECT")
        .env_remove("WANLLMDB_RUN_ID")
        .env_remove("WANLLMDB_METRICS");
    c
}

fn get(s: &Server, path: &str) -> Result<Value> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {}", s.key)])
        .arg(format!("{}{path}", s.url))
        .output()?;
    if !out.status.success() {
        bail!("GET {path} failed");
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn wrapper_figures(bin: &Path, s: &Server, work: &Path, a: &Args) -> Result<()> {
    let prog = work.join("prog.py");
    std::fs::write(&prog, PROGRAM)?;
    let n = a.lines.to_string();
    let mut base = Vec::new();
    let mut plain_file = Vec::new();
    let mut wrapped = Vec::new();
    let mut base_wall = Vec::new();
    let mut wrapped_wall = Vec::new();
    let mut drain = Vec::new();
    for rep in 0..a.reps {
        let t = Instant::now();
        let out = Command::new("python3")
            .arg(&prog)
            .arg(&n)
            .env("WANLLMDB_METRICS", "/dev/null")
            .output()?;
        base_wall.push(t.elapsed().as_secs_f64());
        base.push(parse_timing(&String::from_utf8_lossy(&out.stdout))?.elapsed);

        // The same program writing to a regular file, unwrapped: the cost of the disk alone.
        let file = work.join("plain.jsonl");
        let out = Command::new("python3")
            .arg(&prog)
            .arg(&n)
            .env("WANLLMDB_METRICS", &file)
            .output()?;
        plain_file.push(parse_timing(&String::from_utf8_lossy(&out.stdout))?.elapsed);
        std::fs::remove_file(&file)?;

        let id = format!("wrap{rep:04}");
        let t = Instant::now();
        let out = client_cmd(bin, s, work)
            .args([
                "-q",
                "run",
                "--project",
                "bench",
                "--id",
                &id,
                "--",
                "python3",
            ])
            .arg(&prog)
            .arg(&n)
            .output()?;
        let exited = now();
        wrapped_wall.push(t.elapsed().as_secs_f64());
        if !out.status.success() {
            bail!(
                "wrapped run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let timing = parse_timing(&String::from_utf8_lossy(&out.stdout))?;
        wrapped.push(timing.elapsed);
        drain.push(exited - timing.end);
        let h = get(
            s,
            &format!("/api/v1/runs/{id}/history?keys=loss&max_points=10"),
        )?;
        let total = h["series"][0]["total_points"].as_u64().unwrap_or(0);
        if total != a.lines as u64 {
            bail!(
                "run {id}: {total} points on the server, expected {}",
                a.lines
            );
        }
        let _ = std::fs::remove_dir_all(work.join(".wanllmdb"));
    }
    let b = median(base.clone());
    let w = median(wrapped.clone());
    println!(
        "wrapped program writing {} metric lines: {:.3} s vs {:.3} s to /dev/null (median of {}): {:+.1} % (target <= +10 %)",
        a.lines,
        w,
        b,
        a.reps,
        (w / b - 1.0) * 100.0
    );
    println!(
        "  per repetition, /dev/null: {:?}",
        base.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>()
    );
    println!(
        "  same program writing a regular file, no wrapper: {:.3} s ({:+.1} %)",
        median(plain_file.clone()),
        (median(plain_file) / b - 1.0) * 100.0
    );
    println!(
        "  per repetition, wrapped:   {:?}",
        wrapped
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect::<Vec<_>>()
    );
    println!(
        "  whole process: {:.3} s wrapped vs {:.3} s bare python",
        median(wrapped_wall),
        median(base_wall)
    );
    println!(
        "all {} points on the server, run marked finished, after the program's exit: median {:.2} s, max {:.2} s (target < 3 s)",
        a.lines,
        median(drain.clone()),
        drain.iter().cloned().fold(0.0, f64::max)
    );
    Ok(())
}

fn log_figures(bin: &Path, s: &Server, work: &Path) -> Result<()> {
    let out = client_cmd(bin, s, work)
        .args([
            "-q",
            "run",
            "--project",
            "bench",
            "--id",
            "logcall1",
            "--",
            "true",
        ])
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    for (label, with_step) in [("--step given", true), ("step looked up", false)] {
        let mut times = Vec::new();
        for i in 0..50 {
            let step = i.to_string();
            let mut c = client_cmd(bin, s, work);
            c.args(["log", "--run", "logcall1"]);
            if with_step {
                c.args(["--step", &step]);
            }
            c.arg(format!("loss={}", 1.0 / (i as f64 + 1.0)));
            let t = Instant::now();
            let st = c.status()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if !st.success() {
                bail!("wanllmdb log failed");
            }
        }
        println!(
            "wanllmdb log outside a wrapper ({label}), process start to exit: median {:.1} ms, p90 {:.1} ms over 50 calls (target < 20 ms)",
            median(times.clone()),
            percentile(times, 0.9)
        );
    }
    Ok(())
}

fn sync_figures(bin: &Path, s: &Server, work: &Path, a: &Args) -> Result<()> {
    let root = work.join("spools");
    for r in 0..a.sync_runs {
        let id = format!("sync{r:04}");
        let dir = root.join("runs").join(&id);
        std::fs::create_dir_all(&dir)?;
        let meta = json!({
            "version": 1,
            "host": s.url,
            "run": {"project": "bench", "id": id, "config": {"lr": 0.001 * r as f64}},
            "offline": true,
            "created_at": now(),
        });
        std::fs::write(dir.join("run.json"), serde_json::to_vec(&meta)?)?;
        let mut m = String::with_capacity(a.sync_points * 40);
        for i in 0..a.sync_points {
            m.push_str(&format!(
                "{{\"step\": {i}, \"loss\": {}}}\n",
                1.0 / (i as f64 + 1.0)
            ));
        }
        std::fs::write(dir.join("metrics.jsonl"), m)?;
        std::fs::write(
            dir.join("exit.json"),
            serde_json::to_vec(&json!({"state": "finished", "exit_code": 0}))?,
        )?;
    }
    let t = Instant::now();
    let out = client_cmd(bin, s, work)
        .args(["-q", "sync"])
        .arg(&root)
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("sync failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let last = format!("sync{:04}", a.sync_runs - 1);
    let h = get(
        s,
        &format!("/api/v1/runs/{last}/history?keys=loss&max_points=10"),
    )?;
    if h["series"][0]["total_points"].as_u64() != Some(a.sync_points as u64) {
        bail!("sync left run {last} incomplete: {h}");
    }
    println!(
        "wanllmdb sync of {} spooled runs x {} points: {:.2} s (target < 5 s)",
        a.sync_runs, a.sync_points, secs
    );
    Ok(())
}

fn timed(mut c: Command) -> Result<f64> {
    let t = Instant::now();
    let out = c.output()?;
    if !out.status.success() {
        bail!("{:?} failed: {}", c, String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Samples the server's resident memory until `stop` is set; returns the peak in MB.
fn watch_rss(
    pid: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_mb(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// Runs a client command with arguments and paths.
fn client(bin: &Path, s: &Server, work: &Path, args: &[&str], paths: &[&Path]) -> Command {
    let mut c = client_cmd(bin, s, work);
    c.env("WANLLMDB_CACHE_DIR", work.join("cache"));
    c.args(args).args(paths);
    c
}

fn write_data(data: &Path) -> Result<()> {
    std::fs::create_dir_all(data.join("small"))?;
    // 1 GiB of incompressible-looking bytes.
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(data.join("big.bin"))?);
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block)?;
        }
    }
    for i in 0..10_000 {
        std::fs::write(
            data.join("small").join(format!("f{i:05}.txt")),
            format!("{i}\n").repeat(400),
        )?;
    }
    Ok(())
}

/// Run files and artifacts: one 1 GiB file and 10,000 small files, up and down, against `cp`
/// of the same data in the same run.
fn files_figures(bin: &Path, s: &Server, work: &Path) -> Result<()> {
    let run = client(
        bin,
        s,
        work,
        &[
            "-q",
            "run",
            "--project",
            "bench",
            "--id",
            "filebnch",
            "--",
            "true",
        ],
        &[],
    )
    .output()?;
    if !run.status.success() {
        bail!("{}", String::from_utf8_lossy(&run.stderr));
    }
    let data = work.join("data");
    write_data(&data)?;
    let big = data.join("big.bin");
    let small = data.join("small");
    let down = work.join("down");
    let gib = 1024.0;
    let cp_big = timed({
        let mut c = Command::new("cp");
        c.arg(&big).arg(work.join("big.copy"));
        c
    })?;
    std::fs::remove_file(work.join("big.copy"))?;
    let cp_small = timed({
        let mut c = Command::new("cp");
        c.arg("-r").arg(&small).arg(work.join("small.copy"));
        c
    })?;
    std::fs::remove_dir_all(work.join("small.copy"))?;
    println!(
        "cp: 1 GiB {:.0} MB/s; 10,000 files of 2 KB {cp_small:.2} s",
        gib / cp_big
    );
    let pct = |t: f64, base: f64| base / t * 100.0;

    // Run files.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_rss(s.child.id(), stop.clone());
    let up = timed(client(
        bin,
        s,
        work,
        &["-q", "files", "put", "filebnch"],
        &[&big],
    ))?;
    let dn = timed(client(
        bin,
        s,
        work,
        &["-q", "files", "get", "filebnch", "big.bin", "--dir"],
        &[&down],
    ))?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_files = watcher.join().unwrap_or(0.0);
    std::fs::remove_dir_all(&down)?;
    println!(
        "run files, 1 GiB: upload {:.0} MB/s ({:.0} % of cp); download {:.0} MB/s ({:.0} % of cp)",
        gib / up,
        pct(up, cp_big),
        gib / dn,
        pct(dn, cp_big)
    );
    let up_small = timed(client(
        bin,
        s,
        work,
        &["-q", "files", "put", "filebnch"],
        &[&small],
    ))?;
    let again = timed(client(
        bin,
        s,
        work,
        &["-q", "files", "put", "filebnch"],
        &[&small],
    ))?;
    println!(
        "run files, 10,000 small: upload {up_small:.2} s ({:.0} % of cp -r); re-put unchanged {again:.2} s",
        pct(up_small, cp_small)
    );

    // Artifacts (the same content again: new to no artifact, but already held by the project,
    // so a separate project makes the uploads real).
    let p = ["--project", "bench-art"];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_rss(s.child.id(), stop.clone());
    let put = |name: &str, path: &Path| {
        let mut args = vec!["-q", "artifact", "put", "--name", name, "--type", "dataset"];
        args.extend(p);
        client(bin, s, work, &args, &[path])
    };
    let get = |name: &str, extra: &[&str], dir: &Path| {
        let mut args = vec!["-q", "artifact", "get", name];
        args.extend(p);
        args.extend(extra);
        args.push("--dir");
        client(bin, s, work, &args, &[dir])
    };
    let up = timed(put("big", &big))?;
    let dn = timed(get("big", &["--no-cache"], &down))?;
    std::fs::remove_dir_all(&down)?;
    let dn_fill = timed(get("big", &[], &down))?;
    std::fs::remove_dir_all(&down)?;
    let dn_cached = timed(get("big", &[], &down))?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_art = watcher.join().unwrap_or(0.0);
    std::fs::remove_dir_all(&down)?;
    println!(
        "artifact, 1 GiB: put {:.0} MB/s ({:.0} % of cp); get {:.0} MB/s ({:.0} % of cp); \
         get filling the cache {:.0} MB/s; get from the cache {:.0} MB/s ({:.0} % of cp) (target >= 70 %)",
        gib / up,
        pct(up, cp_big),
        gib / dn,
        pct(dn, cp_big),
        gib / dn_fill,
        gib / dn_cached,
        pct(dn_cached, cp_big)
    );
    let up_small = timed(put("small", &small))?;
    let again = timed(put("small", &small))?;
    let dn_small = timed(get("small", &["--no-cache"], &down))?;
    std::fs::remove_dir_all(&down)?;
    println!(
        "artifact, 10,000 small: put {up_small:.2} s ({:.0} % of cp -r); get {dn_small:.2} s ({:.0} % of cp -r)",
        pct(up_small, cp_small),
        pct(dn_small, cp_small)
    );
    println!(
        "artifact, re-putting the unchanged 10,000-file directory: {again:.2} s, nothing sent (target < 2 s)"
    );
    println!(
        "server peak RSS while 1 GiB streamed up and down: run files {peak_files:.1} MB, artifacts {peak_art:.1} MB (target < 100 MB)"
    );
    Ok(())
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let bin = wanllmdb()?;
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work)?;
    let s = start_server(&bin, &tmp.path().join("data"))?;
    let t = Instant::now();
    while get(&s, "/api/v1/auth/me").is_err() {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("server not ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = client_cmd(&bin, &s, &work)
        .args(["-q", "project", "create", "bench"])
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    println!("server: {} (SQLite, separate process, same machine)", s.url);
    if a.files {
        return files_figures(&bin, &s, &work);
    }
    log_figures(&bin, &s, &work)?;
    sync_figures(&bin, &s, &work, &a)?;
    wrapper_figures(&bin, &s, &work, &a)?;
    Ok(())
}
