//! `GET /metrics`: the Prometheus text format, request counters, histograms, gauges and the
//! ingestion counters; its own address; and `GET /api/v1/system/metrics`.

use std::collections::BTreeMap;

use crate::moto;

use reqwest::StatusCode;
use serde_json::json;
use wanllmdb_api_types::system::SystemMetrics;
use wanllmdb_server::blobs::s3::{MAX_SINGLE_PART, S3Config};

use crate::{Ctx, each_backend, sha};

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

/// The ingestion and transfer counters of a scrape, in a fixed order.
async fn counters(ctx: &Ctx) -> [f64; 6] {
    let (text, samples) = scrape(ctx).await;
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    [
        get("wanllmdb_metric_points_ingested_total", &[]),
        get("wanllmdb_log_lines_ingested_total", &[]),
        get("wanllmdb_bytes_uploaded_total", &[("kind", "run_file")]),
        get("wanllmdb_bytes_uploaded_total", &[("kind", "artifact")]),
        get("wanllmdb_bytes_downloaded_total", &[("kind", "run_file")]),
        get("wanllmdb_bytes_downloaded_total", &[("kind", "artifact")]),
    ]
}

/// Sends bytes to a signed URL and returns the status.
async fn put_bytes(ctx: &Ctx, url: &str, bytes: &[u8]) -> StatusCode {
    crate::upload(ctx, url, bytes).await.0
}

/// GETs a signed download URL and returns the bytes.
async fn fetch(ctx: &Ctx, url: &str) -> Vec<u8> {
    let r = ctx
        .req(reqwest::Method::GET, url, None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().to_vec()
}

each_backend!(telemetry_counts_what_is_ingested_and_served, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let run = ctx.run(&k, "p", json!({})).await;
    assert_eq!(counters(&ctx).await, [0.0; 6]);

    // Three points (two keys at step 0, one at step 1), then a batch refused as a whole.
    let points = json!({"points": [
        {"step": 0, "values": {"loss": 0.5, "acc": 0.1}},
        {"step": 1, "values": {"loss": 0.4}},
    ]});
    let history = format!("/api/v1/runs/{run}/history");
    let (s, b) = ctx.post(&history, Some(&k), points).await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{b}"
    );
    let bad = json!({"points": [
        {"step": 2, "values": {"loss": 0.3}},
        {"step": 3, "values": {"": 1.0}},
    ]});
    let (s, _) = ctx.post(&history, Some(&k), bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Two new lines; sending them again stores (and counts) nothing.
    let lines = json!({"lines": [
        {"level": "INFO", "message": "epoch 1", "source": "stdout", "line_number": 1},
        {"level": "INFO", "message": "epoch 2", "source": "stdout", "line_number": 2},
    ]});
    let logs = format!("/api/v1/runs/{run}/logs");
    for _ in 0..2 {
        let (s, b) = ctx.post(&logs, Some(&k), lines.clone()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    assert_eq!(counters(&ctx).await, [3.0, 2.0, 0.0, 0.0, 0.0, 0.0]);

    // A run file: wrong bytes are refused and not counted, the right ones are.
    let data = b"step,loss\n0,0.5\n".repeat(100);
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files"),
            Some(&k),
            json!({"files": [{"path": "m.csv", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let url = b["files"][0]["upload_url"].as_str().unwrap().to_string();
    let mut wrong = data.clone();
    wrong[0] = b'X';
    assert_eq!(put_bytes(&ctx, &url, &wrong).await, StatusCode::BAD_REQUEST);
    assert_eq!(put_bytes(&ctx, &url, &data).await, StatusCode::OK);
    let (_, f) = ctx
        .get(&format!("/api/v1/runs/{run}/file?path=m.csv"), Some(&k))
        .await;
    let file_url = f["download_url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&ctx, &file_url).await, data);
    let n = data.len() as f64;
    assert_eq!(counters(&ctx).await, [3.0, 2.0, n, 0.0, n, 0.0]);

    // An artifact version: its upload and its download count under their own kind.
    let weights = b"weights".repeat(300);
    let versions = "/api/v1/projects/p/artifacts/model/versions";
    let entry = json!({"path": "w.bin", "sha256": sha(&weights), "size": weights.len()});
    let (s, v) = ctx
        .post(
            versions,
            Some(&k),
            json!({"type": "model", "entries": [entry]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let up = v["uploads"][0]["upload_url"].as_str().unwrap();
    assert_eq!(put_bytes(&ctx, up, &weights).await, StatusCode::OK);
    let commit = format!(
        "/api/v1/projects/p/artifacts/model/drafts/{}/commit",
        v["version"]["id"]
    );
    let (s, c) = ctx.post(&commit, Some(&k), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let (s, files) = ctx
        .get(
            "/api/v1/projects/p/artifacts/model/versions/latest/files?download_urls=true",
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{files}");
    let art_url = files[0]["download_url"].as_str().unwrap();
    assert_eq!(fetch(&ctx, art_url).await, weights);
    let w = weights.len() as f64;
    assert_eq!(counters(&ctx).await, [3.0, 2.0, n, w, n, w]);

    // A bundle of both counts each file under its kind; its framing bytes are not content.
    let token = |u: &str| u.trim_start_matches("/api/v1/blobs/").to_string();
    let r = ctx
        .req(reqwest::Method::POST, "/api/v1/blobs/bundle", None)
        .json(&json!({"tokens": [token(&file_url), token(art_url)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.bytes().await.unwrap().len(),
        data.len() + weights.len() + 18
    );
    assert_eq!(counters(&ctx).await, [3.0, 2.0, n, w, 2.0 * n, 2.0 * w]);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_metrics_on_their_own_address() {
    for backend in crate::backends() {
        let ctx = Ctx::start_with(backend, |c| {
            c.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        })
        .await;
        let server = ctx.server.as_ref().unwrap();
        let metrics = server.metrics_addr.expect("a metrics address");
        assert_ne!(metrics, server.addr);
        let (s, b) = ctx.get("/metrics", None).await;
        crate::assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
        let r = ctx
            .req(
                reqwest::Method::GET,
                &format!("http://{metrics}/metrics"),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let samples = parse(&r.text().await.unwrap());
        assert_eq!(value(&samples, "wanllmdb_build_info", &[]), Some(1.0));
        // The main address's 404 above was counted, and is visible on the metrics address.
        assert!(
            value(
                &samples,
                "wanllmdb_http_requests_total",
                &[("route", "unmatched"), ("status", "404")]
            )
            .is_some_and(|v| v >= 1.0)
        );
        // Only /metrics is served there.
        let r = ctx
            .req(
                reqwest::Method::GET,
                &format!("http://{metrics}/api/v1/auth/me"),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // The JSON form works there too, for administrators.
        let r = ctx
            .req(
                reqwest::Method::GET,
                &format!("http://{metrics}/metrics?format=json"),
                Some(&ctx.admin_key),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (s, _) = crate::read(
            ctx.req(
                reqwest::Method::GET,
                &format!("http://{metrics}/metrics?format=json"),
                None,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        ctx.stop().await;
        // Shutting down closed the metrics listener too.
        assert!(std::net::TcpStream::connect(metrics).is_err());
    }
}

each_backend!(telemetry_system_metrics_for_admins, |ctx| {
    let k = ctx.user("alice").await;
    let path = "/api/v1/system/metrics";
    let (s, b) = ctx.get(path, None).await;
    crate::assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, b) = ctx.get(path, Some(&k)).await;
    crate::assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");

    let (s, m) = ctx.get(path, Some(&ctx.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    // The wire type reads it back: every documented field is there with its type.
    let typed: SystemMetrics = serde_json::from_value(m.clone()).unwrap();
    let app = &typed.application;
    assert_eq!(app.name, "wanllmdb");
    assert_eq!(app.version, env!("CARGO_PKG_VERSION"));
    assert!(app.uptime_seconds >= 0.0);
    assert!(app.started_at.ends_with('Z'), "{}", app.started_at);
    assert!(typed.system.cpu.cores >= 1);
    if cfg!(target_os = "linux") {
        let mem = &typed.system.memory;
        let (total, available) = (mem.total_bytes.unwrap(), mem.available_bytes.unwrap());
        assert!(total > available && available > 0, "{mem:?}");
        assert!(mem.process_rss_bytes.is_some_and(|b| b > 0));
        assert!((0.0..=100.0).contains(&mem.used_percent.unwrap()));
        let load = typed.system.cpu.load_average.unwrap();
        assert!(load.iter().all(|l| *l >= 0.0), "{load:?}");
        assert!(typed.system.cpu.process_cpu_seconds.is_some());
    }
    let disk = &typed.system.disk;
    assert!(
        disk.total_bytes > 0 && disk.total_bytes >= disk.free_bytes,
        "{disk:?}"
    );
    assert!((0.0..=100.0).contains(&disk.used_percent));
    let db = &typed.database;
    let backend = match ctx.backend {
        crate::Backend::Sqlite => "sqlite",
        crate::Backend::Postgres => "postgres",
    };
    assert_eq!(db.backend, backend);
    assert!(db.size_bytes > 0);
    let c = &db.connections;
    assert!(c.max >= c.open && c.open == c.idle + c.in_use, "{c:?}");
    assert_eq!(c.max, c.pools.iter().map(|p| p.max).sum::<u32>());
    let pools: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
    let want: &[&str] = match ctx.backend {
        crate::Backend::Sqlite => &["sqlite_write", "sqlite_read"],
        crate::Backend::Postgres => &["postgres"],
    };
    assert_eq!(pools, want);
    assert_eq!(typed.blob_store.backend, "local");
    assert!(
        typed
            .blob_store
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with("blobs"))
    );
    assert!(m.get("redis").is_some_and(|r| r.is_null()), "{m}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_with_object_storage() {
    let Some(moto) = moto::start("wanllmdb-telemetry") else {
        return;
    };
    let endpoint = moto.endpoint.clone();
    let bucket = moto.bucket.clone();
    let ctx = Ctx::start_with(crate::Backend::Sqlite, move |c| {
        c.s3 = Some(S3Config {
            bucket,
            prefix: "srv".into(),
            endpoint: Some(endpoint),
            public_endpoint: None,
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
            multipart_threshold: S3Config::MULTIPART_THRESHOLD,
            part_size: S3Config::PART_SIZE,
            max_single_copy: MAX_SINGLE_PART,
        });
    })
    .await;
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let run = ctx.run(&k, "p", json!({})).await;
    let data = b"checkpoint ".repeat(1000);
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{run}/files"),
            Some(&k),
            json!({"files": [{"path": "c.bin", "sha256": sha(&data), "size": data.len()}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ticket = &b["files"][0];
    let url = ticket["upload_url"].as_str().unwrap();
    assert_eq!(put_bytes(&ctx, url, &data).await, StatusCode::OK);
    // In the bucket but not yet verified: not counted.
    assert_eq!(counters(&ctx).await, [0.0; 6]);
    let done = ticket["complete_url"].as_str().unwrap();
    let (s, r) = ctx.post(done, None, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let n = data.len() as f64;
    assert_eq!(counters(&ctx).await, [0.0, 0.0, n, 0.0, 0.0, 0.0]);
    // Downloads come straight from the bucket: the server sends nothing.
    let (_, f) = ctx
        .get(&format!("/api/v1/runs/{run}/file?path=c.bin"), Some(&k))
        .await;
    assert_eq!(fetch(&ctx, f["download_url"].as_str().unwrap()).await, data);
    assert_eq!(counters(&ctx).await, [0.0, 0.0, n, 0.0, 0.0, 0.0]);

    let (s, m) = ctx
        .get("/api/v1/system/metrics", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let blobs = &m["blob_store"];
    assert_eq!(blobs["backend"], "s3", "{m}");
    assert_eq!(blobs["bucket"], moto.bucket.as_str());
    assert_eq!(blobs["prefix"], "srv");
    assert_eq!(blobs["endpoint"], moto.endpoint.as_str());
    assert!(blobs["path"].is_null());
    assert_eq!(
        (blobs["blobs"].as_u64(), blobs["stored_bytes"].as_u64()),
        (Some(1), Some(data.len() as u64))
    );
    assert!(!m.to_string().contains("secret_access_key"));
    ctx.stop().await;
}

each_backend!(telemetry_metrics_as_the_description_json, |ctx| {
    let k = ctx.user("alice").await;
    let json_metrics = |key: Option<&str>, accept: &str, query: &str| {
        let mut r = ctx.req(reqwest::Method::GET, &format!("/metrics{query}"), key);
        if !accept.is_empty() {
            r = r.header("accept", accept);
        }
        async move { crate::read(r.send().await.unwrap()).await }
    };
    // It reveals the host: administrators only.
    let (s, b) = json_metrics(None, "application/json", "").await;
    crate::assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, b) = json_metrics(Some(&k), "application/json", "").await;
    crate::assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    for (accept, query) in [("application/json", ""), ("", "?format=json")] {
        let (s, m) = json_metrics(Some(&ctx.admin_key), accept, query).await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert!(m["application"]["uptime_seconds"].as_f64().unwrap() >= 0.0);
        assert!(m["application"]["version"].is_string());
        assert!(m["system"]["cpu"]["count"].as_u64().unwrap() >= 1);
        let mem = &m["system"]["memory"];
        assert!(mem["used_bytes"].as_u64().unwrap() <= mem["total_bytes"].as_u64().unwrap());
        let pct = mem["percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{m}");
        let disk = &m["system"]["disk"];
        assert!(disk["used_bytes"].as_u64().unwrap() <= disk["total_bytes"].as_u64().unwrap());
        assert_eq!(m["database"]["connected"], true);
        assert!(m["database"]["database_size_bytes"].as_u64().unwrap() > 0);
        assert!(m["database"]["pool_size"].as_u64().unwrap() >= 1);
        assert!(m["database"]["connection_count"].as_u64().unwrap() >= 1);
        assert_eq!(m["redis"], json!({"configured": false}));
    }
    // Prometheus text stays the default, for anyone who can reach it.
    let r = ctx
        .req(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("wanllmdb_build_info"));
    let (s, b) = json_metrics(None, "", "?format=xml").await;
    crate::assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});
