//! Command-line benchmark: prints the figures for the run wrapper, `wanllmdb log` and
//! `wanllmdb sync` in docs/BENCHMARKS.md.
//!
//! `cargo build --release -p wanllmdb -p wanllmdb-bench && ./target/release/wanllmdb-cli-bench`
//! Options: `--lines N` (metric lines the wrapped program writes, default 1,000,000),
//! `--reps N` (default 5), `--sync-runs N` and `--sync-points N` (default 100 × 10,000).
//! `--files`: run-file and artifact transfers of 1 GiB and of 10,000 files of 4 KiB against
//! `cp` and `cp` + `sync` of the same data, with `dvc push` / `dvc pull` beside them (DVC is
//! installed from PyPI into a bench-only venv, `WANLLMDB_BENCH_VENV`, default
//! `target/bench-venv`; skipped with a note when that fails).

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

/// Clock ticks per second of `/proc` CPU times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name, from the state on.
fn proc_stat(pid: &str) -> Vec<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_string()))
        .map(|rest| {
            rest.split_whitespace()
                .map(|v| v.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds (user + system) the server has used so far.
fn server_cpu(pid: u32) -> f64 {
    let f = proc_stat(&pid.to_string());
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / clock_ticks()
}

/// CPU seconds used so far by the child processes this program has waited for.
fn children_cpu() -> f64 {
    let f = proc_stat("self");
    (f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)) / clock_ticks()
}

/// A client command's wall time and the CPU seconds it and the server spent.
struct Measured {
    secs: f64,
    client_cpu: f64,
    server_cpu: f64,
}

impl Measured {
    /// `MB/s (N % of base), CPU s/GiB client + server`.
    fn rate(&self, base: f64, what: &str) -> String {
        format!(
            "{:.0} MB/s ({:.0} % of {what}; CPU per GiB: client {:.2} s, server {:.2} s)",
            1024.0 / self.secs,
            base / self.secs * 100.0,
            self.client_cpu,
            self.server_cpu
        )
    }

    /// `N s (N % of base), CPU s client + server`.
    fn time(&self, base: f64, what: &str) -> String {
        format!(
            "{:.2} s ({:.0} % of {what}; CPU: client {:.2} s, server {:.2} s)",
            self.secs,
            base / self.secs * 100.0,
            self.client_cpu,
            self.server_cpu
        )
    }
}

fn measured(c: Command, server: u32) -> Result<Measured> {
    let (c0, s0) = (children_cpu(), server_cpu(server));
    let secs = timed(c)?;
    Ok(Measured {
        secs,
        client_cpu: children_cpu() - c0,
        server_cpu: server_cpu(server) - s0,
    })
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

/// Small files in the benchmark, and their size.
const SMALL_FILES: usize = 10_000;
const SMALL_SIZE: usize = 4096;

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
    for i in 0..SMALL_FILES {
        let body = format!("{i:07}\n").repeat(SMALL_SIZE / 8);
        std::fs::write(data.join("small").join(format!("f{i:05}.txt")), body)?;
    }
    Ok(())
}

/// What a plain copy of the benchmark's data costs on this disk, timed in the same run.
struct Copies {
    big: f64,
    big_synced: f64,
    small: f64,
    small_synced: f64,
}

fn copy_baselines(big: &Path, small: &Path, work: &Path) -> Result<Copies> {
    let cp = |args: &[&Path]| {
        let mut c = Command::new("cp");
        c.args(args);
        timed(c)
    };
    let sync = |flag: &str, p: &Path| {
        let mut c = Command::new("sync");
        c.arg(flag).arg(p);
        timed(c)
    };
    let (big_copy, small_copy) = (work.join("big.copy"), work.join("small.copy"));
    let big_t = cp(&[big, &big_copy])?;
    std::fs::remove_file(&big_copy)?;
    let big_synced = cp(&[big, &big_copy])? + sync("--", &big_copy)?;
    std::fs::remove_file(&big_copy)?;
    let small_t = cp(&[Path::new("-r"), small, &small_copy])?;
    std::fs::remove_dir_all(&small_copy)?;
    let small_synced = cp(&[Path::new("-r"), small, &small_copy])? + sync("-f", &small_copy)?;
    std::fs::remove_dir_all(&small_copy)?;
    Ok(Copies {
        big: big_t,
        big_synced,
        small: small_t,
        small_synced,
    })
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
    let cp = copy_baselines(&big, &small, work)?;
    println!(
        "cp: 1 GiB {:.0} MB/s, cp + sync {:.0} MB/s; {SMALL_FILES} files of {SMALL_SIZE} B: cp -r {:.2} s, cp -r + sync {:.2} s",
        gib / cp.big,
        gib / cp.big_synced,
        cp.small,
        cp.small_synced
    );
    let pid = s.child.id();

    // Run files.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_rss(pid, stop.clone());
    let up = measured(
        client(bin, s, work, &["-q", "files", "put", "filebnch"], &[&big]),
        pid,
    )?;
    let dn = measured(
        client(
            bin,
            s,
            work,
            &["-q", "files", "get", "filebnch", "big.bin", "--dir"],
            &[&down],
        ),
        pid,
    )?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_files = watcher.join().unwrap_or(0.0);
    std::fs::remove_dir_all(&down)?;
    println!(
        "run files, 1 GiB (the client hashes it first): upload {}; download {}",
        up.rate(cp.big_synced, "cp + sync"),
        dn.rate(cp.big, "cp")
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
        "run files, {SMALL_FILES} small: upload {up_small:.2} s ({:.0} % of cp -r + sync); re-put unchanged {again:.2} s",
        cp.small_synced / up_small * 100.0
    );

    // Artifacts (the same content again: new to no artifact, but already held by the project,
    // so a separate project makes the uploads real).
    let p = ["--project", "bench-art"];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_rss(pid, stop.clone());
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
    let up = measured(put("big", &big), pid)?;
    let dn = measured(get("big", &["--no-cache"], &down), pid)?;
    std::fs::remove_dir_all(&down)?;
    let dn_fill = timed(get("big", &[], &down))?;
    std::fs::remove_dir_all(&down)?;
    let dn_cached = timed(get("big", &[], &down))?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_art = watcher.join().unwrap_or(0.0);
    std::fs::remove_dir_all(&down)?;
    println!(
        "artifact put, 1 GiB, durable before acknowledged (digest remembered from the run-file put): {} (target >= 50 % of cp + sync)",
        up.rate(cp.big_synced, "cp + sync")
    );
    println!(
        "artifact get, 1 GiB (--no-cache): {} (target >= 40 % of cp)",
        dn.rate(cp.big, "cp")
    );
    println!(
        "artifact get, 1 GiB, filling the cache {:.0} MB/s; from the cache {:.0} MB/s ({:.0} % of cp)",
        gib / dn_fill,
        gib / dn_cached,
        cp.big / dn_cached * 100.0
    );
    let up_small = measured(put("small", &small), pid)?;
    let again = timed(put("small", &small))?;
    // Creating many files soon after many were deleted (here: the server's temporary files of
    // the put just above) costs the kernel far more than on a quiet file system (ext4 skips
    // recently freed inodes), so the start-of-run `cp -r` is not the copy this download races.
    // Time one right beside it, in the same state, and keep both copies until both are done.
    let near = work.join("small.near");
    let mut c = Command::new("cp");
    c.arg("-r").arg(&small).arg(&near);
    let cp_near = timed(c)?;
    let dn_small = measured(get("small", &["--no-cache"], &down), pid)?;
    std::fs::remove_dir_all(&down)?;
    std::fs::remove_dir_all(&near)?;
    println!(
        "artifact put, {SMALL_FILES} x {SMALL_SIZE} B: {} (target >= 50 % of cp -r + sync)",
        up_small.time(cp.small_synced, "cp -r + sync")
    );
    println!(
        "artifact get, {SMALL_FILES} x {SMALL_SIZE} B (--no-cache): {} (target >= 70 % of cp -r); {:.0} % of a cp -r timed just before it ({cp_near:.2} s)",
        dn_small.time(cp.small, "cp -r"),
        cp_near / dn_small.secs * 100.0
    );
    println!(
        "artifact, re-putting the unchanged {SMALL_FILES}-file directory: {again:.2} s, nothing sent (target < 2 s)"
    );
    println!(
        "server peak RSS while 1 GiB streamed up and down: run files {peak_files:.1} MB, artifacts {peak_art:.1} MB (target < 100 MB)"
    );
    dvc_figures(
        work,
        &big,
        &small,
        &cp,
        (up.secs, dn.secs, up_small.secs, dn_small.secs),
    )
}

/// The bench-only virtual environment DVC is installed into (`WANLLMDB_BENCH_VENV`, by default
/// `target/bench-venv` under the current directory); its `dvc`, installed on first use.
fn dvc_bin() -> Option<PathBuf> {
    let venv = std::env::var_os("WANLLMDB_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-venv"));
    // Absolute, since DVC runs in its own repository directory.
    let venv = std::env::current_dir().ok()?.join(venv);
    let dvc = venv.join("bin").join("dvc");
    if dvc.exists() {
        return Some(dvc);
    }
    eprintln!("installing DVC into {} ...", venv.display());
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin").join("pip"))
            .args(["install", "-q", "dvc"])
            .status()
            .is_ok_and(|s| s.success());
    (ok && dvc.exists()).then_some(dvc)
}

/// `dvc push` and `dvc pull` of the same data to and from a local remote, beside ours:
/// `ours` is (put 1 GiB, get 1 GiB, put small, get small) in seconds.
fn dvc_figures(
    work: &Path,
    big: &Path,
    small: &Path,
    cp: &Copies,
    ours: (f64, f64, f64, f64),
) -> Result<()> {
    let Some(dvc) = dvc_bin() else {
        println!("DVC: not measured (it could not be installed from PyPI into the bench venv)");
        return Ok(());
    };
    let repo = work.join("dvc-repo");
    std::fs::create_dir_all(&repo)?;
    let dvc_cmd = |args: &[&str]| {
        let mut c = Command::new(&dvc);
        c.current_dir(&repo).args(args);
        c
    };
    timed(dvc_cmd(&["init", "--no-scm", "-q"]))?;
    let remote = work.join("dvc-remote");
    let remote = remote.to_string_lossy();
    timed(dvc_cmd(&["remote", "add", "-d", "local", &remote]))?;
    let version = dvc_cmd(&["--version"]).output()?;
    let side = |name: &str, src: &Path, dir: bool| -> Result<(f64, f64, f64)> {
        let mut c = Command::new("cp");
        if dir {
            c.arg("-r");
        }
        timed({
            c.arg(src).arg(repo.join(name));
            c
        })?;
        let add = timed(dvc_cmd(&["add", "-q", name]))?;
        let push = timed(dvc_cmd(&["push", "-q"]))?;
        std::fs::remove_dir_all(repo.join(".dvc").join("cache"))?;
        if dir {
            std::fs::remove_dir_all(repo.join(name))?;
        } else {
            std::fs::remove_file(repo.join(name))?;
        }
        let pull = timed(dvc_cmd(&["pull", "-q"]))?;
        Ok((add, push, pull))
    };
    let (big_add, big_push, big_pull) = side("big.bin", big, false)?;
    let (small_add, small_push, small_pull) = side("small", small, true)?;
    println!(
        "DVC {} to a local remote, 1 GiB: add {:.2} s, push {:.0} MB/s ({:.0} % of cp + sync), pull {:.0} MB/s ({:.0} % of cp); ours: put {:.0} MB/s, get {:.0} MB/s",
        String::from_utf8_lossy(&version.stdout).trim(),
        big_add,
        1024.0 / big_push,
        cp.big_synced / big_push * 100.0,
        1024.0 / big_pull,
        cp.big / big_pull * 100.0,
        1024.0 / ours.0,
        1024.0 / ours.1
    );
    println!(
        "DVC, {SMALL_FILES} x {SMALL_SIZE} B: add {small_add:.2} s, push {small_push:.2} s, pull {small_pull:.2} s; ours: put {:.2} s, get {:.2} s",
        ours.2, ours.3
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
