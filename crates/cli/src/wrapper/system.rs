//! System metrics of a wrapped run: every 15 s the CPU and memory of the program's whole
//! process tree, the host's memory, and each GPU's utilisation, memory and temperature (via
//! `nvidia-smi`, when it is on PATH), written to the spool's `system.jsonl` as `system/…`
//! metrics. Their step is the Unix second of the sample, so samples never collide, however
//! often a run is resumed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wanllmdb_api_types::metrics::{HistoryPoint, MetricValue, MetricValues};

use crate::env;

/// Seconds between samples unless `WANLLMDB_SYSTEM_METRICS_INTERVAL` says otherwise.
const INTERVAL_SECS: f64 = 15.0;

/// The sampling interval in force.
pub fn interval() -> Duration {
    let secs = std::env::var(env::SYSTEM_METRICS_INTERVAL)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(INTERVAL_SECS);
    Duration::from_secs_f64(secs)
}

/// CPU time and resident memory of a process tree at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct TreeUsage {
    /// User + system CPU seconds of every live process in the tree.
    pub cpu_seconds: f64,
    /// Resident bytes of every live process in the tree.
    pub rss_bytes: u64,
}

/// One GPU as `nvidia-smi` reports it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GpuSample {
    /// Its index.
    pub index: u32,
    /// Busy percentage.
    pub utilization: Option<f64>,
    /// Memory in use, MiB.
    pub memory_used_mb: Option<f64>,
    /// Memory in all, MiB.
    pub memory_total_mb: Option<f64>,
    /// Degrees Celsius.
    pub temperature: Option<f64>,
}

/// Samples a process tree (rooted at `root`) and the machine.
pub struct SystemSampler {
    root: i32,
    spool_file: PathBuf,
    last: Option<(Instant, f64)>,
    nvidia_smi: bool,
}

impl SystemSampler {
    /// A sampler for the tree under `root`, appending to `spool_file`.
    pub fn new(root: u32, spool_file: &Path) -> SystemSampler {
        SystemSampler {
            root: root as i32,
            spool_file: spool_file.to_path_buf(),
            last: None,
            nvidia_smi: true,
        }
    }

    /// Takes one sample and appends it; the first sample has no CPU figure (it needs two).
    pub async fn sample(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        let usage = tree_usage(self.root);
        let mut values: Vec<(String, f64)> = Vec::new();
        if let Some(u) = usage {
            if let Some((then, cpu)) = self.last {
                let wall = now.duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    let pct = ((u.cpu_seconds - cpu) / wall * 100.0).max(0.0);
                    values.push(("system/cpu_percent".into(), pct));
                }
            }
            self.last = Some((now, u.cpu_seconds));
            values.push(("system/rss_mb".into(), u.rss_bytes as f64 / MIB));
        }
        if let Some((total, available)) = host_memory() {
            let used = total.saturating_sub(available);
            values.push(("system/host_memory_used_mb".into(), used as f64 / MIB));
            if total > 0 {
                values.push((
                    "system/host_memory_percent".into(),
                    used as f64 / total as f64 * 100.0,
                ));
            }
        }
        if self.nvidia_smi {
            match query_gpus().await {
                Some(gpus) => values.extend(gpu_values(&gpus)),
                // Not installed (or broken): do not spawn it every 15 s.
                None => self.nvidia_smi = false,
            }
        }
        if values.is_empty() {
            return Ok(());
        }
        let ts = crate::spool::unix_now();
        let point = HistoryPoint {
            step: ts as i64,
            timestamp: Some(ts),
            values: MetricValues(
                values
                    .into_iter()
                    .map(|(k, v)| (k, MetricValue(v)))
                    .collect(),
            ),
        };
        let mut line = serde_json::to_vec(&point).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spool_file)?;
        f.write_all(&line)
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// `system/gpu/<i>/…` values of each GPU.
pub fn gpu_values(gpus: &[GpuSample]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for g in gpus {
        let key = |name: &str| format!("system/gpu/{}/{name}", g.index);
        if let Some(v) = g.utilization {
            out.push((key("utilization_percent"), v));
        }
        if let Some(v) = g.memory_used_mb {
            out.push((key("memory_used_mb"), v));
            if let Some(t) = g.memory_total_mb.filter(|t| *t > 0.0) {
                out.push((key("memory_percent"), v / t * 100.0));
            }
        }
        if let Some(v) = g.temperature {
            out.push((key("temperature_c"), v));
        }
    }
    out
}

/// Asks `nvidia-smi` about every GPU; None when it is absent or fails.
async fn query_gpus() -> Option<Vec<GpuSample>> {
    let run = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu",
            "--format=csv,noheader,nounits",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `index, utilization, memory used, memory total, temperature` lines; fields that
/// say `[N/A]` (or anything else that is not a number) are left out.
pub fn parse_nvidia_smi(text: &str) -> Vec<GpuSample> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() < 5 {
                return None;
            }
            let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
            Some(GpuSample {
                index: f[0].parse().ok()?,
                utilization: num(f[1]),
                memory_used_mb: num(f[2]),
                memory_total_mb: num(f[3]),
                temperature: num(f[4]),
            })
        })
        .collect()
}

/// MemTotal and MemAvailable, in bytes.
fn host_memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// CPU seconds and resident bytes of `root` and every process descended from it (Linux).
pub fn tree_usage(root: i32) -> Option<TreeUsage> {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)? as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)? as u64;
    let mut stats: HashMap<i32, ProcStat> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(s) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            stats.insert(pid, s);
        }
    }
    stats.get(&root)?;
    let mut usage = TreeUsage::default();
    for pid in descendants(root, &stats) {
        let s = &stats[&pid];
        usage.cpu_seconds += (s.utime + s.stime) as f64 / tick;
        usage.rss_bytes += s.rss_pages * page;
    }
    Some(usage)
}

/// The fields of `/proc/<pid>/stat` a sample needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    /// Parent process id.
    pub ppid: i32,
    /// User CPU, in clock ticks.
    pub utime: u64,
    /// System CPU, in clock ticks.
    pub stime: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may hold spaces and parentheses, so fields
/// are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12) … rss(21).
    Some(ProcStat {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
    })
}

/// `root` and every process below it.
fn descendants(root: i32, stats: &HashMap<i32, ProcStat>) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, s) in stats {
        children.entry(s.ppid).or_default().push(*pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied().filter(|p| *p != root));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_become_per_gpu_metrics() {
        let gpus = parse_nvidia_smi("0, 87, 40536, 81559, 64\n1, [N/A], 10, 100, 40\ngarbage\n");
        assert_eq!(gpus.len(), 2);
        let v = gpu_values(&gpus);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, x)| *x);
        assert_eq!(get("system/gpu/0/utilization_percent"), Some(87.0));
        assert_eq!(get("system/gpu/0/memory_used_mb"), Some(40536.0));
        assert_eq!(get("system/gpu/0/temperature_c"), Some(64.0));
        assert_eq!(get("system/gpu/1/memory_percent"), Some(10.0));
        assert_eq!(get("system/gpu/1/utilization_percent"), None);
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "42 (my (odd) prog) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                    1000 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            ProcStat {
                ppid: 7,
                utime: 250,
                stime: 50,
                rss_pages: 2048
            }
        );
    }

    #[test]
    fn the_tree_holds_children_and_grandchildren_only() {
        let st = |ppid| ProcStat {
            ppid,
            utime: 0,
            stime: 0,
            rss_pages: 0,
        };
        let stats: HashMap<i32, ProcStat> = [
            (1, st(0)),
            (10, st(1)),
            (11, st(10)),
            (12, st(11)),
            (20, st(1)),
        ]
        .into();
        let mut d = descendants(10, &stats);
        d.sort();
        assert_eq!(d, [10, 11, 12]);
    }

    #[test]
    fn this_process_has_a_tree_usage() {
        let u = tree_usage(std::process::id() as i32).unwrap();
        assert!(u.rss_bytes > 0);
    }
}
