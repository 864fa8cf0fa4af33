//! `GET /metrics`: the Prometheus text format, request counters, histograms and gauges.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::{Ctx, each_backend};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses every non-comment line as `name{labels} value`, failing on anything else.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("bad sample line: {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut body = body;
        loop {
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = body.find("=\"")?;
            let key = body[..eq].to_string();
            body = &body[eq + 2..];
            let mut value = String::new();
            let mut it = body.char_indices();
            let end = loop {
                let (i, c) = it.next()?;
                match c {
                    '\\' => match it.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.insert(key, value);
            body = &body[end + 1..];
            body = body.strip_prefix(',').unwrap_or(body);
        }
    }
    let value = rest.strip_prefix(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name.to_string(), labels, value))
}

async fn scrape(ctx: &Ctx) -> (String, Vec<Sample>) {
    let resp = ctx
        .req(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

const CREATE_PROJECT: [(&str, &str); 3] = [
    ("method", "POST"),
    ("route", "/api/v1/projects"),
    ("status", "201"),
];

each_backend!(telemetry_metrics_endpoint, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    ctx.run(&k, "p", json!({})).await;
    ctx.run(&k, "p", json!({})).await;

    // No credentials needed, like /health.
    let (text, samples) = scrape(&ctx).await;
    let created = value(&samples, "wanllmdb_http_requests_total", &CREATE_PROJECT)
        .unwrap_or_else(|| panic!("no project-creation counter in\n{text}"));
    assert!(created >= 1.0, "{created}");
    assert_eq!(
        value(&samples, "wanllmdb_runs", &[("state", "running")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "wanllmdb_build_info", &[]),
        Some(1.0),
        "{text}"
    );
    assert!(value(&samples, "wanllmdb_uptime_seconds", &[]).is_some_and(|v| v >= 0.0));
    assert_eq!(
        value(&samples, "wanllmdb_sweep_agents_active", &[]),
        Some(0.0)
    );
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "wanllmdb_db_pool_connections" && l.contains_key("pool")),
        "{text}"
    );
    if cfg!(target_os = "linux") {
        assert!(
            value(&samples, "wanllmdb_process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0)
        );
        assert!(value(&samples, "wanllmdb_process_cpu_seconds_total", &[]).is_some());
    }
    // Unknown paths are counted under one label, not one series per path.
    let (s, _) = ctx.get("/no/such/thing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every sampled family is announced with HELP and TYPE.
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| {
                name.strip_suffix(suf)
                    .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
            })
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {name}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {name}"
        );
    }

    ctx.project(&k, "q", "private").await;
    let (text, samples) = scrape(&ctx).await;
    let after = value(&samples, "wanllmdb_http_requests_total", &CREATE_PROJECT).unwrap();
    assert_eq!(after, created + 1.0, "{text}");
    assert!(
        value(
            &samples,
            "wanllmdb_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );

    // Histograms: buckets cumulative, ending at +Inf equal to _count.
    let hist = "wanllmdb_http_request_duration_seconds";
    let series: Vec<_> = samples
        .iter()
        .filter(|(n, _, _)| n == &format!("{hist}_count"))
        .collect();
    assert!(!series.is_empty(), "{text}");
    for (_, labels, count) in series {
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == &format!("{hist}_bucket")
                    && l.get("method") == labels.get("method")
                    && l.get("route") == labels.get("route")
            })
            .map(|(_, l, v)| {
                let le = l["le"].as_str();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, *v)
            })
            .collect();
        assert_eq!(buckets.len(), 12, "{labels:?}");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{buckets:?}"
        );
        assert_eq!(
            buckets.last().unwrap(),
            &(f64::INFINITY, *count),
            "{labels:?}"
        );
    }
    let project_count = value(
        &samples,
        &format!("{hist}_count"),
        &[("method", "POST"), ("route", "/api/v1/projects")],
    );
    assert_eq!(project_count, Some(after), "{text}");
});

#[test]
fn telemetry_parser_rejects_malformed_lines() {
    assert!(parse_line("ok_name{a=\"x\\\"y\",b=\"2\"} 3.5").is_some_and(|s| s.1["a"] == "x\"y"));
    assert!(parse_line("1bad 2").is_none());
    assert!(parse_line("name{a=\"x\"} notanumber").is_none());
    assert!(parse_line("name{a=\"x} 1").is_none());
}
