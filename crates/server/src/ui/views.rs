//! What pages show, computed from the API types: flattened configs, the run table's columns,
//! durations and numbers as people read them. Plain functions, tested without a server.

use std::collections::{BTreeMap, BTreeSet};

use wanllmdb_api_types::ProjectName;
use wanllmdb_api_types::metrics::MetricValue;
use wanllmdb_api_types::runs::{Run, RunState};

/// A config flattened to dotted paths (`optimizer.lr`), values as short JSON text.
pub fn flatten_config(config: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_into(config, "", &mut out);
    out
}

fn flatten_into(v: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(child, &path, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// A metric value as people read it: up to 6 significant digits.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return format!("{v:.4e}");
    }
    let digits = (5 - a.log10().floor() as i32).clamp(0, 10) as usize;
    let s = format!("{v:.digits$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A byte count as people read it: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.25 GiB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.2} GiB", b / 1_073_741_824.0),
    }
}

/// The page of an artifact version.
pub fn artifact_href(project: &ProjectName, artifact: &str, version: &str) -> String {
    format!(
        "/projects/{project}/artifacts/{}/{}",
        segment(artifact),
        segment(version)
    )
}

/// The page of an artifact version named `PROJECT/NAME:vN` (as a model version names it).
pub fn artifact_label_href(label: &str) -> Option<String> {
    let (project, rest) = label.split_once('/')?;
    let (artifact, version) = rest.rsplit_once(':')?;
    Some(artifact_href(
        &ProjectName::parse(project).ok()?,
        artifact,
        version,
    ))
}

/// Query-string text of name/value pairs (`a=1&b=x+y`).
pub fn query<K: serde::Serialize, V: serde::Serialize>(pairs: &[(K, V)]) -> String {
    // Pairs of strings always encode; nothing else is passed here.
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Text made safe as one path segment (`/`, `?`, `#`, `%` and spaces escaped).
pub fn segment(s: &str) -> String {
    /// What RFC 3986 allows in a segment unescaped: unreserved, sub-delims, `:` and `@`.
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':')
        .remove(b'@')
        .remove(b'!')
        .remove(b'$')
        .remove(b'&')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b'+')
        .remove(b',')
        .remove(b';')
        .remove(b'=');
    percent_encoding::utf8_percent_encode(s, KEPT).to_string()
}

/// Seconds as `1h 02m`, `3m 05s` or `12s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Unix seconds of an RFC 3339 time.
pub fn unix(t: &str) -> Option<f64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp_nanos() as f64 / 1e9)
}

/// `2026-11-27 10:15` from an RFC 3339 time.
pub fn short_time(t: &str) -> String {
    t.get(..16)
        .map_or_else(|| t.to_string(), |s| s.replace('T', " "))
}

/// How long a run ran (until now while it runs).
pub fn run_duration(run: &Run, now: f64) -> String {
    let Some(start) = unix(&run.started_at) else {
        return String::new();
    };
    let end = match (&run.finished_at, run.state) {
        (Some(f), s) if s != RunState::Running => unix(f).unwrap_or(now),
        _ => now,
    };
    duration(end - start)
}

/// A column of the run table beyond the fixed ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    /// `config.<path>`.
    Config(String),
    /// `summary.<key>`.
    Summary(String),
}

impl Column {
    /// The id used in the URL (`cols=config.lr,summary.loss`) and the query language.
    pub fn id(&self) -> String {
        match self {
            Column::Config(p) => format!("config.{p}"),
            Column::Summary(k) => format!("summary.{k}"),
        }
    }

    /// Parses an id.
    pub fn parse(id: &str) -> Option<Column> {
        if let Some(p) = id.strip_prefix("config.").filter(|p| !p.is_empty()) {
            return Some(Column::Config(p.to_string()));
        }
        id.strip_prefix("summary.")
            .filter(|k| !k.is_empty())
            .map(|k| Column::Summary(k.to_string()))
    }

    /// The header text.
    pub fn label(&self) -> &str {
        match self {
            Column::Config(p) | Column::Summary(p) => p,
        }
    }

    /// This column's cell for a run.
    pub fn cell(
        &self,
        config: &BTreeMap<String, String>,
        summary: &BTreeMap<String, MetricValue>,
    ) -> String {
        match self {
            Column::Config(p) => config.get(p).cloned().unwrap_or_default(),
            Column::Summary(k) => summary.get(k).map(|v| number(v.0)).unwrap_or_default(),
        }
    }
}

/// Every column the runs offer, and the default choice: config keys whose values differ
/// between the runs (a key some runs lack counts as differing) and every summary metric.
pub fn columns(runs: &[(Run, BTreeMap<String, String>)]) -> (Vec<Column>, Vec<Column>) {
    let mut config_keys: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    let mut metrics: BTreeSet<&str> = BTreeSet::new();
    for (run, flat) in runs {
        for k in flat.keys() {
            config_keys.entry(k).or_default();
        }
        metrics.extend(run.summary.keys().map(String::as_str));
    }
    for (k, values) in config_keys.iter_mut() {
        for (_, flat) in runs {
            values.insert(flat.get(*k).map(String::as_str));
        }
    }
    let all: Vec<Column> = config_keys
        .keys()
        .map(|k| Column::Config(k.to_string()))
        .chain(metrics.iter().map(|k| Column::Summary(k.to_string())))
        .collect();
    let default = config_keys
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| Column::Config(k.to_string()))
        .chain(metrics.iter().map(|k| Column::Summary(k.to_string())))
        .collect();
    (all, default)
}

/// The metric keys a run page charts first: training metrics before system ones, by name.
pub fn chart_order(keys: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = keys.to_vec();
    keys.sort_by_key(|k| (is_system_metric(k), k.clone()));
    keys
}

/// Metrics the run wrapper records about the machine.
pub fn is_system_metric(key: &str) -> bool {
    key.starts_with("system/") || key.starts_with("system.")
}

/// A local path to go to after logging in (never another site).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/projects".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configs_flatten_to_paths() {
        let f = flatten_config(
            &json!({"lr": 0.01, "opt": {"name": "adam", "betas": [0.9, 0.99]}, "e": {}}),
        );
        assert_eq!(f["lr"], "0.01");
        assert_eq!(f["opt.name"], "adam");
        assert_eq!(f["opt.betas"], "[0.9,0.99]");
        assert_eq!(f["e"], "{}");
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.123456789), "0.123457");
        assert_eq!(number(1234.56789), "1234.57");
        assert_eq!(number(1e-7), "1.0000e-7");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(duration(3725.0), "1h 02m");
        assert_eq!(duration(185.0), "3m 05s");
        assert_eq!(duration(7.9), "7s");
    }

    #[test]
    fn columns_default_to_differing_config_and_all_metrics() {
        let run = |cfg: serde_json::Value, metric: &str| {
            let mut r: Run = serde_json::from_value(json!({
                "id": "aaaaaaaa", "project": "p", "name": "n", "state": "finished", "config": cfg,
                "tags": [], "notes": "", "group": null, "job_type": null, "git": {}, "host": null,
                "os": null, "program": null, "runtime": {}, "exit_code": 0, "created_by": "u",
                "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:00Z",
                "finished_at": null, "heartbeat_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z", "stop_requested": false, "summary": {}
            }))
            .unwrap();
            r.summary.insert(metric.into(), MetricValue(1.0));
            let flat = flatten_config(&r.config);
            (r, flat)
        };
        let runs = vec![
            run(json!({"lr": 0.1, "seed": 1, "only_a": true}), "loss"),
            run(json!({"lr": 0.2, "seed": 1}), "acc"),
        ];
        let (all, default) = columns(&runs);
        let ids: Vec<String> = default.iter().map(Column::id).collect();
        assert_eq!(
            ids,
            ["config.lr", "config.only_a", "summary.acc", "summary.loss"]
        );
        assert_eq!(all.len(), 5);
        assert_eq!(
            Column::parse("config.opt.lr"),
            Some(Column::Config("opt.lr".into()))
        );
        assert_eq!(Column::parse("summary."), None);
        assert_eq!(Column::parse("state"), None);
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/runs/abc")), "/runs/abc");
        assert_eq!(safe_next(Some("//evil.example")), "/projects");
        assert_eq!(safe_next(Some("https://evil.example")), "/projects");
        assert_eq!(safe_next(Some("/\\evil")), "/projects");
        assert_eq!(safe_next(None), "/projects");
    }

    #[test]
    fn sizes_and_links() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1_048_576), "3.0 MiB");
        assert_eq!(
            artifact_href(&ProjectName::parse("p").unwrap(), "data set", "v2"),
            "/projects/p/artifacts/data%20set/v2"
        );
        assert_eq!(
            artifact_label_href("vision/mnist:v3").as_deref(),
            Some("/projects/vision/artifacts/mnist/v3")
        );
        assert_eq!(artifact_label_href("no-project:v3"), None);
        assert_eq!(segment("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    }

    #[test]
    fn system_metrics_come_last() {
        let keys = vec!["system/cpu".to_string(), "loss".into(), "acc".into()];
        assert_eq!(chart_order(&keys), ["acc", "loss", "system/cpu"]);
    }
}
