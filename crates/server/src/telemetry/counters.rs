//! The in-memory counters of this process (requests, latencies, ingested and transferred
//! bytes) and the text format they are written in. Bumped on the hot paths, read at scrape
//! time; holds nothing that needs the request state, so the state can hold the counters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::store::now_us;

/// Upper bounds (seconds) of the request duration histogram; `+Inf` follows.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Request durations of one method and route.
#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Default)]
struct Requests {
    /// (method, route, status) → responses.
    counts: HashMap<(&'static str, String, u16), u64>,
    /// (method, route) → durations.
    durations: HashMap<(&'static str, String), Histogram>,
}

/// What transferred blob bytes belong to: the `kind` label of the byte counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// A file attached to a run.
    RunFile,
    /// A file of an artifact version.
    Artifact,
}

impl TransferKind {
    const ALL: [TransferKind; 2] = [TransferKind::RunFile, TransferKind::Artifact];

    fn label(self) -> &'static str {
        match self {
            TransferKind::RunFile => "run_file",
            TransferKind::Artifact => "artifact",
        }
    }
}

/// Data accepted or sent since start-up; lock-free, bumped on the hot paths.
#[derive(Default)]
struct Ingested {
    points: AtomicU64,
    log_lines: AtomicU64,
    /// Indexed by `TransferKind as usize`.
    uploaded: [AtomicU64; 2],
    downloaded: [AtomicU64; 2],
}

/// In-memory request metrics of this process, and when it started.
pub struct Telemetry {
    started: Instant,
    /// Microseconds since the Unix epoch at start-up.
    started_at_us: i64,
    requests: Mutex<Requests>,
    ingested: Ingested,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            started: Instant::now(),
            started_at_us: now_us(),
            requests: Mutex::default(),
            ingested: Ingested::default(),
        }
    }
}

impl Telemetry {
    /// Time since this process started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// When this process started, in microseconds since the Unix epoch.
    pub fn started_at_us(&self) -> i64 {
        self.started_at_us
    }

    /// Counts metric points stored.
    pub fn points_ingested(&self, points: u64) {
        self.ingested.points.fetch_add(points, Ordering::Relaxed);
    }

    /// Counts log lines stored.
    pub fn log_lines_ingested(&self, lines: u64) {
        self.ingested.log_lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// Counts the bytes of an upload that was verified and stored.
    pub fn uploaded(&self, kind: TransferKind, bytes: u64) {
        self.ingested.uploaded[kind as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts bytes handed to a download response.
    pub fn downloaded(&self, kind: TransferKind, bytes: u64) {
        self.ingested.downloaded[kind as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Wraps a download body so its bytes are counted as they are sent, not when the download
    /// starts: a client that goes away midway is counted for what it got.
    pub fn count_download<S, E>(
        self: &Arc<Self>,
        kind: TransferKind,
        stream: S,
    ) -> impl Stream<Item = Result<bytes::Bytes, E>> + use<S, E>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
    {
        let telemetry = Arc::clone(self);
        stream.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                telemetry.downloaded(kind, bytes.len() as u64);
            }
        })
    }

    pub(super) fn write_ingested(&self, out: &mut String) {
        let counters = [
            (
                "wanllmdb_metric_points_ingested_total",
                "Metric points stored (one value of one key at one step).",
                &self.ingested.points,
            ),
            (
                "wanllmdb_log_lines_ingested_total",
                "Log lines stored (duplicates of lines already stored are not counted).",
                &self.ingested.log_lines,
            ),
        ];
        for (name, help, n) in counters {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", n.load(Ordering::Relaxed));
        }
        let transfers = [
            (
                "wanllmdb_bytes_uploaded_total",
                "Bytes of uploads verified and stored, by kind (run_file, artifact).",
                &self.ingested.uploaded,
            ),
            (
                "wanllmdb_bytes_downloaded_total",
                "Bytes of stored content sent by this server, by kind (run_file, artifact).",
                &self.ingested.downloaded,
            ),
        ];
        for (name, help, by_kind) in transfers {
            header(out, name, "counter", help);
            for kind in TransferKind::ALL {
                let n = by_kind[kind as usize].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{kind=\"{}\"}} {n}", kind.label());
            }
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &'static str, route: String, status: u16, took: Duration) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *r.counts.entry((method, route.clone(), status)).or_default() += 1;
        r.durations
            .entry((method, route))
            .or_default()
            .observe(took.as_secs_f64());
    }

    pub(super) fn write_requests(&self, out: &mut String) {
        let r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<_> = r.counts.iter().collect();
        counts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        header(
            out,
            "wanllmdb_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route and status.",
        );
        for ((method, route, status), n) in counts {
            let _ = writeln!(
                out,
                "wanllmdb_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let mut durations: Vec<_> = r.durations.iter().collect();
        durations.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let name = "wanllmdb_http_request_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Time from routing a request to its response head, by method and route.",
        );
        for ((method, route), h) in durations {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            let mut cumulative = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), f64::to_string);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

/// The `# HELP` and `# TYPE` lines of one metric family.
pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
pub(super) fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_puts_bounds_in_their_bucket() {
        let mut h = Histogram::default();
        h.observe(0.005);
        h.observe(0.0051);
        h.observe(60.0);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[BUCKETS.len()], 1);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
