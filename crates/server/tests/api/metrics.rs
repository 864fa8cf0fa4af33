//! Metric history: appends, idempotency, non-finite values, gzip, summaries, downsampling,
//! multi-run queries, and chunk boundaries in storage.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend};

async fn setup(ctx: &Ctx) -> (String, String) {
    let k = ctx.user("alice").await;
    ctx.project(&k, "m", "private").await;
    let id = ctx.run(&k, "m", json!({})).await;
    (k, id)
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn points(range: std::ops::Range<i64>, f: impl Fn(i64) -> f64) -> Value {
    let pts: Vec<Value> = range
        .map(|s| json!({"step": s, "timestamp": 1_764_250_000.0 + s as f64 * 0.01, "values": {"loss": f(s), "acc": s as f64 / 1000.0}}))
        .collect();
    json!({"points": pts})
}

each_backend!(append_read_and_summary, |ctx| {
    let (k, id) = setup(&ctx).await;
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
            points(0..1200, |s| 1.0 / (s as f64 + 1.0)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 2400);
    // More, continuing the series across chunk boundaries.
    ctx.post(
        &format!("/api/v1/runs/{id}/history"),
        Some(&k),
        points(1200..1300, |s| 1.0 / (s as f64 + 1.0)),
    )
    .await;

    let (s, h) = ctx
        .get(&format!("/api/v1/runs/{id}/history?keys=loss"), Some(&k))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["run"], id.as_str());
    let series = &h["series"][0];
    assert_eq!(series["key"], "loss");
    let steps: Vec<i64> = series["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(steps, (0..1300).collect::<Vec<_>>());
    assert_eq!(series["values"][9].as_f64().unwrap(), 0.1);
    assert_eq!(series["timestamps"][100].as_f64().unwrap(), 1_764_250_001.0);
    assert_eq!(series["total_points"], 1300);
    assert_eq!(series["downsampled"], false);

    // Step range.
    let (_, h) = ctx
        .get(
            &format!("/api/v1/runs/{id}/history?keys=acc,loss&min_step=510&max_step=515"),
            Some(&k),
        )
        .await;
    assert_eq!(h["series"].as_array().unwrap().len(), 2);
    assert_eq!(h["series"][0]["key"], "acc");
    assert_eq!(
        h["series"][0]["steps"],
        json!([510, 511, 512, 513, 514, 515])
    );
    assert_eq!(h["series"][1]["total_points"], 6);

    let (s, summ) = ctx
        .get(&format!("/api/v1/runs/{id}/summary"), Some(&k))
        .await;
    assert_eq!(s, StatusCode::OK);
    let loss = summ
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "loss")
        .unwrap();
    assert_eq!(loss["count"], 1300);
    assert_eq!(loss["last_step"], 1299);
    assert_eq!(loss["max"].as_f64().unwrap(), 1.0);
    assert_eq!(loss["min"].as_f64().unwrap(), 1.0 / 1300.0);
    let (_, run) = ctx.get(&format!("/api/v1/runs/{id}"), Some(&k)).await;
    assert_eq!(run["summary"]["acc"].as_f64().unwrap(), 1.299);

    // Clients may set summary values; they win over logged ones.
    let (s, summ) = ctx
        .post(
            &format!("/api/v1/runs/{id}/summary"),
            Some(&k),
            json!({"values": {"acc": 0.99, "best_epoch": 7}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{summ}");
    let (_, run) = ctx.get(&format!("/api/v1/runs/{id}"), Some(&k)).await;
    assert_eq!(run["summary"]["acc"].as_f64().unwrap(), 0.99);
    assert_eq!(run["summary"]["best_epoch"].as_f64().unwrap(), 7.0);
    // A key that was only set, never logged, has no history to list.
    let (_, h) = ctx
        .get(
            &format!("/api/v1/runs/{id}/history?max_points=10"),
            Some(&k),
        )
        .await;
    let keys: Vec<&str> = h["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["acc", "loss"]);
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/summary"),
            Some(&k),
            json!({"values": {"acc": "high"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(appends_are_idempotent_and_rewrites_merge, |ctx| {
    let (k, id) = setup(&ctx).await;
    let batch = points(0..700, |s| s as f64);
    for _ in 0..3 {
        let (s, _) = ctx
            .post(
                &format!("/api/v1/runs/{id}/history"),
                Some(&k),
                batch.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    // A late batch that overlaps and rewrites steps in the middle.
    let late = json!({"points": [{"step": 300, "values": {"loss": -1.0}}, {"step": 1000, "values": {"loss": 5.0}}, {"step": 650, "values": {"loss": 2.5}}]});
    ctx.post(&format!("/api/v1/runs/{id}/history"), Some(&k), late)
        .await;
    let (_, h) = ctx
        .get(&format!("/api/v1/runs/{id}/history?keys=loss"), Some(&k))
        .await;
    let s = &h["series"][0];
    let steps: Vec<i64> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let mut want: Vec<i64> = (0..700).collect();
    want.push(1000);
    assert_eq!(steps, want, "every (key, step) stored once");
    assert_eq!(s["values"][300].as_f64().unwrap(), -1.0);
    assert_eq!(s["values"][650].as_f64().unwrap(), 2.5);
    let (_, summ) = ctx
        .get(&format!("/api/v1/runs/{id}/summary"), Some(&k))
        .await;
    let loss = summ
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "loss")
        .unwrap()
        .clone();
    assert_eq!(loss["count"], 701);
    assert_eq!(loss["min"].as_f64().unwrap(), -1.0);
    assert_eq!(
        loss["max"].as_f64().unwrap(),
        699.0,
        "the untouched maximum is still there"
    );
    assert_eq!(loss["last_step"], 1000);
    assert_eq!(loss["last"].as_f64().unwrap(), 5.0);
    // Storage holds each point once: the chunk counts add up.
    let total = wanllmdb_server::on_backend!(ctx.store, read, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT CAST(SUM(c.count) AS BIGINT) FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id WHERE s.key = $1")
            .bind("loss").fetch_one(pool).await.unwrap()
    });
    assert_eq!(total, 701);
    // Duplicate steps inside one batch: the last wins.
    ctx.post(
        &format!("/api/v1/runs/{id}/history"),
        Some(&k),
        json!({"points": [{"step": 2000, "values": {"x": 1}}, {"step": 2000, "values": {"x": 2}}]}),
    )
    .await;
    let (_, h) = ctx
        .get(&format!("/api/v1/runs/{id}/history?keys=x"), Some(&k))
        .await;
    assert_eq!(h["series"][0]["values"], json!([2.0]));
});

each_backend!(non_finite_values_survive, |ctx| {
    let (k, id) = setup(&ctx).await;
    let body = json!({"points": [
        {"step": 0, "values": {"v": 1.5}}, {"step": 1, "values": {"v": "NaN"}},
        {"step": 2, "values": {"v": "Infinity"}}, {"step": 3, "values": {"v": "-Infinity"}},
        {"step": 4, "values": {"v": "NaN"}}]});
    let (s, b) = ctx
        .post(&format!("/api/v1/runs/{id}/history"), Some(&k), body)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, h) = ctx
        .get(&format!("/api/v1/runs/{id}/history?keys=v"), Some(&k))
        .await;
    assert_eq!(
        h["series"][0]["values"],
        json!([1.5, "NaN", "Infinity", "-Infinity", "NaN"])
    );
    let (_, summ) = ctx
        .get(&format!("/api/v1/runs/{id}/summary"), Some(&k))
        .await;
    assert_eq!(summ[0]["last"], "NaN");
    assert_eq!(summ[0]["min"], "-Infinity");
    assert_eq!(summ[0]["max"], "Infinity");
    assert_eq!(summ[0]["count"], 5);
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
            json!({"points": [{"step": 5, "values": {"v": "lots"}}]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(gzip_bodies_and_limits, |ctx| {
    let (k, id) = setup(&ctx).await;
    let body = serde_json::to_vec(&points(0..100, |s| s as f64)).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&body).unwrap();
    let gz = enc.finish().unwrap();
    let resp = ctx
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
        )
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    let (s, b) = crate::read(resp).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 200);

    // A small gzip that inflates past the limit (4 MiB in tests) is refused with 413.
    let bomb_json = format!(
        "{{\"points\": [], \"pad\": \"{}\"}}",
        " ".repeat(5 * 1024 * 1024)
    );
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bomb_json.as_bytes()).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 64 * 1024);
    let resp = ctx
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
        )
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let (s, b) = crate::read(resp).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let resp = ctx
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
        )
        .header("content-encoding", "gzip")
        .body(b"not gzip at all".to_vec())
        .send()
        .await
        .unwrap();
    let (s, b) = crate::read(resp).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let resp = ctx
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
        )
        .header("content-encoding", "br")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
});

each_backend!(downsampling_keeps_extremes, |ctx| {
    let (k, id) = setup(&ctx).await;
    // 20,000 steps of a smooth curve with two spikes that a chart must not lose.
    let f = |s: i64| match s {
        7_777 => 100.0,
        13_001 => -100.0,
        _ => (s as f64 / 500.0).sin(),
    };
    for start in (0..20_000).step_by(5_000) {
        let (s, _) = ctx
            .post(
                &format!("/api/v1/runs/{id}/history"),
                Some(&k),
                points(start..start + 5_000, f),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let check = |h: &Value, max_points: usize| {
        let series = &h["series"][0];
        assert_eq!(series["downsampled"], true);
        assert_eq!(series["total_points"], 20_000);
        let steps = ints(&series["steps"]);
        let (min, max, last) = (
            floats(&series["min"]),
            floats(&series["max"]),
            floats(&series["last"]),
        );
        assert_eq!(
            floats(&series["values"]),
            last,
            "values are the last points"
        );
        assert!(
            steps.len() <= max_points && steps.len() >= max_points / 2,
            "{max_points}: {}",
            steps.len()
        );
        assert_eq!((min.len(), max.len()), (steps.len(), steps.len()));
        assert!(steps.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(steps[0], 0, "{max_points}: first point kept");
        assert_eq!(last[0], f(0));
        assert_eq!(
            *steps.last().unwrap(),
            19_999,
            "{max_points}: last point kept"
        );
        assert_eq!(*last.last().unwrap(), f(19_999));
        assert!(
            max.contains(&100.0) && min.contains(&-100.0),
            "{max_points}: spikes kept"
        );
        for i in 0..steps.len() {
            assert!(
                min[i] <= last[i] && last[i] <= max[i],
                "{max_points}: bucket {i}"
            );
        }
    };
    for max_points in [10usize, 100, 1000, 3000] {
        let (s, h) = ctx
            .get(
                &format!("/api/v1/runs/{id}/history?keys=loss&max_points={max_points}"),
                Some(&k),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        check(&h, max_points);
    }
    // Chunks stored before their last points were kept are decoded instead.
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE metric_chunks SET last_value = NULL, last_ts = NULL, lasts = NULL")
            .execute(pool)
            .await
            .unwrap();
    });
    for max_points in [10usize, 100, 1000] {
        let (_, h) = ctx
            .get(
                &format!("/api/v1/runs/{id}/history?keys=loss&max_points={max_points}"),
                Some(&k),
            )
            .await;
        check(&h, max_points);
    }
    // Within a step range, and a range holding fewer points than max_points is returned whole.
    let (_, h) = ctx
        .get(
            &format!(
                "/api/v1/runs/{id}/history?keys=loss&min_step=7000&max_step=8999&max_points=50"
            ),
            Some(&k),
        )
        .await;
    let steps: Vec<i64> = h["series"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(steps.iter().all(|s| (7000..=8999).contains(s)));
    assert_eq!(
        (steps[0], *steps.last().unwrap()),
        (7000, 8999),
        "zoom keeps its ends"
    );
    assert!(
        floats(&h["series"][0]["max"]).contains(&100.0),
        "the spike survives a zoom"
    );
    assert_eq!(h["series"][0]["total_points"], 2000);
    let (_, h) = ctx
        .get(
            &format!(
                "/api/v1/runs/{id}/history?keys=loss&min_step=100&max_step=149&max_points=1000"
            ),
            Some(&k),
        )
        .await;
    assert_eq!(h["series"][0]["steps"].as_array().unwrap().len(), 50);
    assert_eq!(h["series"][0]["downsampled"], false);

    for bad in [
        "max_points=1",
        "max_points=-5",
        "min_step=10&max_step=5",
        "min_step=abc",
        "keys=loss&bogus=1",
    ] {
        let (s, b) = ctx
            .get(&format!("/api/v1/runs/{id}/history?{bad}"), Some(&k))
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    }
});

each_backend!(multi_run_query, |ctx| {
    let (k, a) = setup(&ctx).await;
    let b = ctx.run(&k, "m", json!({})).await;
    for (i, id) in [&a, &b].into_iter().enumerate() {
        ctx.post(
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
            // Run b stops at step 1999: its buckets still sit on a's grid.
            points(0..3000 - 1000 * i as i64, |s| (s as f64) * (i as f64 + 1.0)),
        )
        .await;
    }
    let (s, res) = ctx
        .post(
            "/api/v1/history/query",
            Some(&k),
            json!({"runs": [b, a], "keys": ["loss"], "max_points": 100}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let results = res["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["run"], b.as_str());
    assert_eq!(results[1]["run"], a.as_str());
    for (r, total) in results.iter().zip([2000, 3000]) {
        assert_eq!(r["series"].as_array().unwrap().len(), 1);
        assert!(r["series"][0]["steps"].as_array().unwrap().len() <= 100);
        assert_eq!(r["series"][0]["total_points"], total);
        assert_eq!(r["series"][0]["downsampled"], true);
    }
    let (steps_b, steps_a) = (
        ints(&results[0]["series"][0]["steps"]),
        ints(&results[1]["series"][0]["steps"]),
    );
    assert_eq!((steps_a[0], *steps_a.last().unwrap()), (0, 2999));
    assert!(
        steps_b.iter().all(|s| steps_a.contains(s)),
        "one grid for both runs: {steps_b:?} vs {steps_a:?}"
    );
    let last_b = *steps_b.last().unwrap();
    assert!((1999..2999).contains(&last_b), "{last_b}");
    assert_eq!(
        *floats(&results[0]["series"][0]["last"]).last().unwrap(),
        1999.0 * 2.0,
        "b's last bucket ends on its last point"
    );
    // A single-run read of b has its own grid, ending on its last step.
    let (_, h) = ctx
        .get(
            &format!("/api/v1/runs/{b}/history?keys=loss&max_points=100"),
            Some(&k),
        )
        .await;
    assert_eq!(*ints(&h["series"][0]["steps"]).last().unwrap(), 1999);
    // Plain reads carry no bucket arrays.
    let (_, h) = ctx
        .get(&format!("/api/v1/runs/{b}/history?keys=loss"), Some(&k))
        .await;
    assert!(h["series"][0].get("min").is_none() && h["series"][0].get("last").is_none());

    // Someone else's private run is not found, and nothing leaks.
    let other = ctx.user("mallory").await;
    let (s, body) = ctx
        .post(
            "/api/v1/history/query",
            Some(&other),
            json!({"runs": [a], "keys": ["loss"]}),
        )
        .await;
    assert_error(s, &body, StatusCode::NOT_FOUND, "not_found");
    let (s, body) = ctx
        .post("/api/v1/history/query", Some(&k), json!({"runs": []}))
        .await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, body) = ctx
        .post("/api/v1/history/query", Some(&k), json!({"runs": "abc"}))
        .await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_input");
});

/// Runs SQL on the test database that reads or writes one chunk blob.
async fn chunk_data(ctx: &Ctx, key: &str, start: i64) -> Vec<u8> {
    wanllmdb_server::on_backend!(ctx.store, read, |pool| {
        sqlx::query_scalar("SELECT c.data FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id WHERE s.key = $1 AND c.start_step = $2")
            .bind(key).bind(start).fetch_one(pool).await.unwrap()
    })
}

async fn set_chunk_data(ctx: &Ctx, key: &str, start: i64, data: &[u8]) {
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE metric_chunks SET data = $1 WHERE start_step = $2 AND series_id = (SELECT id FROM metric_series WHERE key = $3)")
            .bind(data).bind(start).bind(key).execute(pool).await.unwrap();
    });
}

fn target(ctx: &Ctx) -> wanllmdb_server::transfer::Target {
    wanllmdb_server::transfer::Target {
        store: ctx.store.clone(),
        blobs: wanllmdb_server::blobs::BlobStore::local(ctx._dir.path().join("blobs")),
    }
}

/// First steps of a key's chunks, in order.
async fn chunk_starts(ctx: &Ctx, key: &str) -> Vec<i64> {
    wanllmdb_server::on_backend!(ctx.store, read, |pool| {
        sqlx::query_scalar("SELECT c.start_step FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id WHERE s.key = $1 ORDER BY c.start_step")
            .bind(key).fetch_all(pool).await.unwrap()
    })
}

each_backend!(damaged_chunks_are_errors_naming_run_and_key, |ctx| {
    let (k, id) = setup(&ctx).await;
    let path = format!("/api/v1/runs/{id}/history");
    // Noisy 64-bit values: several chunks.
    let noisy = |s: i64| (s * 7919 % 1000) as f64 / 7.0;
    ctx.post(&path, Some(&k), points(0..3000, noisy)).await;
    let starts = chunk_starts(&ctx, "loss").await;
    assert!(starts.len() >= 3, "{starts:?}");
    let bad = starts[1];
    let mut data = chunk_data(&ctx, "loss", bad).await;
    let mid = data.len() / 2;
    data[mid] ^= 0x10;
    set_chunk_data(&ctx, "loss", bad, &data).await;

    // A full read, a read of the damaged range and a downsampled read fail; each names the
    // run, the key and the chunk, and is not the generic internal error.
    let inside = format!("keys=loss&min_step={bad}&max_step={}", bad + 5);
    for query in ["keys=loss", inside.as_str(), "keys=loss&max_points=100"] {
        let (s, b) = ctx.get(&format!("{path}?{query}"), Some(&k)).await;
        assert_error(s, &b, StatusCode::INTERNAL_SERVER_ERROR, "data_corrupt");
        let msg = b["error"]["message"].as_str().unwrap();
        let step = format!("step {bad} ");
        for part in [id.as_str(), "\"loss\"", step.as_str(), "admin verify"] {
            assert!(msg.contains(part), "{query}: {part} missing from {msg}");
        }
    }
    // The other key, and the undamaged steps of this one, still read.
    let (s, h) = ctx.get(&format!("{path}?keys=acc"), Some(&k)).await;
    assert_eq!(
        (s, h["series"][0]["total_points"].as_u64()),
        (StatusCode::OK, Some(3000))
    );
    let (s, h) = ctx
        .get(
            &format!("{path}?keys=loss&min_step={}", starts[2]),
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["series"][0]["values"][0].as_f64(), Some(noisy(starts[2])));
    // Rewriting a step inside the damaged chunk fails the same way and changes nothing.
    let (s, b) = ctx
        .post(&path, Some(&k), points(bad..bad + 1, |_| 9.0))
        .await;
    assert_error(s, &b, StatusCode::INTERNAL_SERVER_ERROR, "data_corrupt");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains(id.as_str())
    );
    assert_eq!(chunk_data(&ctx, "loss", bad).await, data);

    // verify finds it, names it, and counts every chunk.
    let report =
        wanllmdb_server::transfer::verify(&target(&ctx), &wanllmdb_server::transfer::NoProgress)
            .await
            .unwrap();
    let chunks = (starts.len() + chunk_starts(&ctx, "acc").await.len()) as u64;
    assert_eq!((report.metric_chunks, report.metric_points), (chunks, 6000));
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    let step = format!("step {bad} ");
    assert!(
        p.contains(&id) && p.contains("\"loss\"") && p.contains(&step) && p.contains("checksum"),
        "{p}"
    );
    // compact rewrites nothing here: every chunk is current (the damaged one included).
    let c = wanllmdb_server::metrics::chunks::compact_chunks(&ctx.store)
        .await
        .unwrap();
    assert_eq!((c.chunks, c.rewritten, c.problems.len()), (chunks, 0, 0));
});

/// The points of `src/metrics/testdata/chunk_v1.bin`, a chunk written by the first format.
fn v1_fixture_body() -> Value {
    let specials = [
        json!("NaN"),
        json!("Infinity"),
        json!("-Infinity"),
        json!(-0.0),
        json!(5e-324),
        json!(1e308),
    ];
    let pts: Vec<Value> = (0..300i64)
        .map(|i| {
            let value = match i % 50 == 7 {
                true => specials[(i / 50) as usize % 6].clone(),
                false => json!(f64::from((1.0 / (1.0 + i as f64 / 30.0)) as f32)),
            };
            let us = 1_764_250_000_000_000 + i * 10_000 + (i * 7919) % 13;
            json!({"step": 10 + 3 * i, "timestamp": us as f64 / 1e6, "values": {"old": value}})
        })
        .collect();
    json!({"points": pts})
}

each_backend!(old_format_chunks_read_and_compact, |ctx| {
    let (k, id) = setup(&ctx).await;
    let path = format!("/api/v1/runs/{id}/history?keys=old");
    ctx.post(
        &format!("/api/v1/runs/{id}/history"),
        Some(&k),
        v1_fixture_body(),
    )
    .await;
    let (_, written) = ctx.get(&path, Some(&k)).await;
    assert_eq!(written["series"][0]["total_points"], 300);
    // The same points as the first format stored them.
    set_chunk_data(
        &ctx,
        "old",
        10,
        include_bytes!("../../src/metrics/testdata/chunk_v1.bin"),
    )
    .await;
    let (s, old) = ctx.get(&path, Some(&k)).await;
    assert_eq!(s, StatusCode::OK, "{old}");
    assert_eq!(old, written);

    let report =
        wanllmdb_server::transfer::verify(&target(&ctx), &wanllmdb_server::transfer::NoProgress)
            .await
            .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.metric_chunks, report.old_format_chunks), (1, 1));

    let c = wanllmdb_server::metrics::chunks::compact_chunks(&ctx.store)
        .await
        .unwrap();
    assert_eq!((c.chunks, c.rewritten), (1, 1), "{:?}", c.problems);
    assert_eq!(
        chunk_data(&ctx, "old", 10).await[0],
        2,
        "now in the current format"
    );
    let (_, new) = ctx.get(&path, Some(&k)).await;
    assert_eq!(new, written);
    let report =
        wanllmdb_server::transfer::verify(&target(&ctx), &wanllmdb_server::transfer::NoProgress)
            .await
            .unwrap();
    assert_eq!((report.old_format_chunks, report.problems.len()), (0, 0));
});
