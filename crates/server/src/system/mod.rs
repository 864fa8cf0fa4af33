//! `GET /api/v1/system/metrics`: the process, its machine, the database and the blob store,
//! as JSON for server administrators (Prometheus gets counters at `/metrics` instead).
//!
//! Machine figures come from /proc and `statvfs` (Linux); where the operating system does not
//! give one, it is null rather than a guess. The server uses no Redis: `redis` is always null.

mod store;

use std::path::Path;

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wanllmdb_api_types::ErrorBody;
use wanllmdb_api_types::system::{
    ApplicationInfo, BlobStoreInfo, CpuInfo, DatabaseConnections, DatabaseInfo, DiskInfo,
    MemoryInfo, MonitoredCpu, MonitoredDatabase, MonitoredSystem, MonitoringReport, PoolUsage,
    SystemInfo, SystemMetrics, UsageFigures,
};

use crate::auth::Actor;
use crate::blobs::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::format_time;
use crate::telemetry::{cpu_seconds, resident_bytes};
pub(crate) use store::pool_usage;

/// The system routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(system_metrics))
}

/// The state of this server process, its machine, the database and the blob store. Server
/// administrators only.
#[utoipa::path(get, path = "/system/metrics", tag = "system",
    responses((status = 200, body = SystemMetrics), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn system_metrics(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<SystemMetrics>> {
    require_admin(&actor)?;
    Ok(Json(SystemMetrics {
        application: application_info(&state),
        system: machine(&state).await?,
        database: database_info(&state).await?,
        blob_store: blob_store_info(&state).await?,
        redis: None,
    }))
}

/// 401 for anonymous callers, 403 for everyone but server administrators: these figures
/// describe the host.
fn require_admin(actor: &Actor) -> ApiResult<()> {
    if actor.require_user()?.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "system metrics are only readable by server administrators".into(),
        ))
    }
}

async fn machine(state: &AppState) -> ApiResult<SystemInfo> {
    let data_dir = state.config.data_dir.clone();
    // /proc and statvfs are file system calls: off the async threads.
    tokio::task::spawn_blocking(move || system_info(&data_dir))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// The JSON answer of `GET /metrics` (server administrators): the product description's
/// names over the same figures as `/api/v1/system/metrics`.
pub async fn monitoring_report(state: &AppState, actor: &Actor) -> ApiResult<MonitoringReport> {
    require_admin(actor)?;
    let (machine, busy) = tokio::join!(machine(state), cpu_busy_percent());
    let machine = machine?;
    let db = database_info(state).await?;
    let memory_used = machine
        .memory
        .total_bytes
        .zip(machine.memory.available_bytes)
        .map(|(t, a)| t.saturating_sub(a));
    let disk = &machine.disk;
    Ok(MonitoringReport {
        application: application_info(state),
        system: MonitoredSystem {
            cpu: MonitoredCpu {
                percent: busy,
                count: machine.cpu.cores,
                load_average: machine.cpu.load_average,
                process_cpu_seconds: machine.cpu.process_cpu_seconds,
            },
            memory: UsageFigures {
                total_bytes: machine.memory.total_bytes,
                used_bytes: memory_used,
                percent: machine.memory.used_percent,
            },
            disk: UsageFigures {
                total_bytes: Some(disk.total_bytes),
                used_bytes: Some(disk.total_bytes.saturating_sub(disk.free_bytes)),
                percent: Some(disk.used_percent),
            },
        },
        database: MonitoredDatabase {
            connected: state.store.ping().await.is_ok(),
            backend: db.backend,
            database_size_bytes: db.size_bytes,
            connection_count: db.connections.open,
            pool_size: db.connections.max,
        },
        blob_store: blob_store_info(state).await?,
        redis: serde_json::json!({ "configured": false }),
    })
}

/// Busy and total jiffies of all CPUs from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The machine's CPU use over a quarter of a second.
async fn cpu_busy_percent() -> Option<f64> {
    let (b0, t0) = cpu_times()?;
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (b1, t1) = cpu_times()?;
    (t1 > t0).then(|| percent(b1.saturating_sub(b0), t1 - t0))
}

fn application_info(state: &AppState) -> ApplicationInfo {
    ApplicationInfo {
        name: "wanllmdb".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.telemetry.uptime().as_secs_f64(),
        started_at: format_time(state.telemetry.started_at_us()),
    }
}

fn system_info(data_dir: &Path) -> ApiResult<SystemInfo> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (total, available) = memory();
    Ok(SystemInfo {
        cpu: CpuInfo {
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            load_average: load_average(),
            process_cpu_seconds: cpu_seconds(),
        },
        memory: MemoryInfo {
            total_bytes: total,
            available_bytes: available,
            used_percent: total
                .zip(available)
                .map(|(t, a)| percent(t.saturating_sub(a), t)),
            process_rss_bytes: resident_bytes(),
        },
        disk: disk(data_dir)?,
    })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

/// MemTotal and MemAvailable from /proc/meminfo, in bytes.
fn memory() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (None, None);
    };
    (
        meminfo_bytes(&text, "MemTotal:"),
        meminfo_bytes(&text, "MemAvailable:"),
    )
}

fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Size and free space of the file system holding the data directory.
fn disk(data_dir: &Path) -> ApiResult<DiskInfo> {
    let fs = nix::sys::statvfs::statvfs(data_dir).map_err(|e| {
        ApiError::Unavailable(format!(
            "cannot read the file system of the data directory: {e}"
        ))
    })?;
    let unit = fs.fragment_size() as u64;
    let total = fs.blocks() as u64 * unit;
    let free = fs.blocks_available() as u64 * unit;
    Ok(DiskInfo {
        path: data_dir.display().to_string(),
        total_bytes: total,
        free_bytes: free,
        used_percent: percent(total.saturating_sub(free), total),
    })
}

async fn database_info(state: &AppState) -> ApiResult<DatabaseInfo> {
    let backend = store::backend_name(&state.store);
    let size_bytes = store::database_size(&state.store).await?;
    let pools = pool_usage(&state.store);
    let sum = |f: fn(&PoolUsage) -> u32| pools.iter().map(f).sum();
    Ok(DatabaseInfo {
        backend: backend.into(),
        size_bytes,
        connections: DatabaseConnections {
            max: sum(|p| p.max),
            open: sum(|p| p.open),
            idle: sum(|p| p.idle),
            in_use: sum(|p| p.in_use),
            pools,
        },
    })
}

async fn blob_store_info(state: &AppState) -> ApiResult<BlobStoreInfo> {
    let (blobs, stored_bytes) = store::blob_totals(&state.store).await?;
    let mut info = BlobStoreInfo {
        backend: "local".into(),
        path: None,
        bucket: None,
        prefix: None,
        endpoint: None,
        blobs,
        stored_bytes,
    };
    match &state.blobs {
        BlobStore::Local(_) => {
            info.path = Some(state.config.data_dir.join("blobs").display().to_string());
        }
        BlobStore::S3(s3) => {
            let cfg = s3.config();
            info.backend = "s3".into();
            info.bucket = Some(cfg.bucket.clone());
            info.prefix = Some(cfg.prefix.clone());
            info.endpoint = cfg.endpoint.clone();
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        let text = "MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:   8000000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal:"), Some(16318480 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable:"), Some(8000000 * 1024));
        assert_eq!(meminfo_bytes(text, "SwapTotal:"), None);
    }

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
