//! `wanllmdb admin status`: the server's system metrics as a table, or their JSON.

use indicatif::HumanBytes;
use wanllmdb_api_types::system::SystemMetrics;

use crate::client::Api;
use crate::error::CliResult;
use crate::output::when;
use crate::output::{Printer, kv_table};

/// Fetches `GET /api/v1/system/metrics` and prints it.
pub async fn run(api: &Api, json: bool, printer: Printer) -> CliResult {
    let m: SystemMetrics = api.get("/api/v1/system/metrics", &[]).await?;
    printer.with_json(json).data(&m, || kv_table(&rows(&m)))
}

/// One line per figure, in the order an operator reads them.
fn rows(m: &SystemMetrics) -> Vec<(&'static str, String)> {
    let app = &m.application;
    let cpu = &m.system.cpu;
    let mem = &m.system.memory;
    let disk = &m.system.disk;
    let db = &m.database;
    let c = &db.connections;
    vec![
        ("version", app.version.clone()),
        (
            "up since",
            format!(
                "{} ({})",
                when(&app.started_at),
                duration(app.uptime_seconds)
            ),
        ),
        (
            "cpu",
            format!(
                "{} core(s), load {}, process {}",
                cpu.cores,
                cpu.load_average.map_or("unknown".into(), |l| format!(
                    "{:.2} {:.2} {:.2}",
                    l[0], l[1], l[2]
                )),
                cpu.process_cpu_seconds
                    .map_or("unknown".into(), |s| format!("{s:.1} s")),
            ),
        ),
        (
            "memory",
            match (mem.total_bytes, mem.available_bytes, mem.used_percent) {
                (Some(t), Some(a), Some(p)) => format!(
                    "{} available of {} ({p:.1}% used)",
                    HumanBytes(a),
                    HumanBytes(t)
                ),
                _ => "unknown".into(),
            },
        ),
        (
            "process memory",
            mem.process_rss_bytes
                .map_or("unknown".into(), |b| HumanBytes(b).to_string()),
        ),
        (
            "disk",
            format!(
                "{} free of {} ({:.1}% used) at {}",
                HumanBytes(disk.free_bytes),
                HumanBytes(disk.total_bytes),
                disk.used_percent,
                disk.path
            ),
        ),
        (
            "database",
            format!("{}, {}", db.backend, HumanBytes(db.size_bytes)),
        ),
        (
            "connections",
            format!("{} in use, {} idle, {} max", c.in_use, c.idle, c.max),
        ),
        ("blob store", blob_store(m)),
        (
            "stored content",
            format!(
                "{} blob(s), {}",
                m.blob_store.blobs,
                HumanBytes(m.blob_store.stored_bytes)
            ),
        ),
        (
            "redis",
            m.redis
                .as_ref()
                .map_or("not used".into(), ToString::to_string),
        ),
    ]
}

fn blob_store(m: &SystemMetrics) -> String {
    let b = &m.blob_store;
    match (&b.path, &b.bucket) {
        (Some(path), _) => format!("{} at {path}", b.backend),
        (None, Some(bucket)) => {
            let prefix = b.prefix.as_deref().unwrap_or_default();
            let at = b.endpoint.as_deref().unwrap_or("AWS");
            format!("{} s3://{bucket}/{prefix} ({at})", b.backend)
        }
        (None, None) => b.backend.clone(),
    }
}

/// `3d 4h`, `2h 5m`, `42s`: enough precision to tell a restart.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn uptime_is_shown_at_a_useful_precision() {
        assert_eq!(duration(42.9), "42s");
        assert_eq!(duration(125.0), "2m 5s");
        assert_eq!(duration(2.0 * 3600.0 + 300.0), "2h 5m");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3600.0 + 59.0), "3d 4h");
    }
}
