//! The binary columnar form of history reads: the same answer as JSON, chosen by `Accept`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wanllmdb_api_types::history_binary::{self, MEDIA_TYPE, RunColumns};

use crate::{Ctx, assert_error, each_backend, read};

/// The answer to `method path` with `accept`: status, content type and body bytes.
async fn fetch(
    ctx: &Ctx,
    method: Method,
    path: &str,
    key: &str,
    accept: &str,
    body: Option<&Value>,
) -> (StatusCode, String, Vec<u8>) {
    let mut r = ctx.req(method, path, Some(key)).header("accept", accept);
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, resp.bytes().await.unwrap().to_vec())
}

/// Reads a path both ways (a POST when there is a body) and checks the binary body decodes to
/// the JSON answer; returns the decoded runs.
async fn both_ways(ctx: &Ctx, path: &str, key: &str, body: Option<Value>) -> Vec<RunColumns> {
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let (s, kind, json) = fetch(
        ctx,
        method.clone(),
        path,
        key,
        "application/json",
        body.as_ref(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&json));
    assert_eq!(kind, "application/json");
    let json: Value = serde_json::from_slice(&json).unwrap();
    let (s, kind, bin) = fetch(ctx, method, path, key, MEDIA_TYPE, body.as_ref()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(kind, MEDIA_TYPE);
    let runs = history_binary::decode(&bin).unwrap();
    let as_json: Vec<Value> = runs
        .iter()
        .map(|r| {
            let series: Vec<_> = r.series.iter().map(|s| s.to_series()).collect();
            json!({"run": r.run, "series": series})
        })
        .collect();
    match json.get("results") {
        Some(results) => assert_eq!(&Value::from(as_json), results),
        None => assert_eq!(as_json, vec![json]),
    }
    runs
}

async fn setup(ctx: &Ctx) -> (String, String) {
    let k = ctx.user("alice").await;
    ctx.project(&k, "m", "private").await;
    let id = ctx.run(&k, "m", json!({})).await;
    (k, id)
}

async fn append(ctx: &Ctx, k: &str, id: &str, body: Value) {
    let (s, b) = ctx
        .post(&format!("/api/v1/runs/{id}/history"), Some(k), body)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

fn curve(range: std::ops::Range<i64>) -> Value {
    let pts: Vec<Value> = range
        .map(|s| {
            let spike = if s == 2345 { 50.0 } else { 0.0 };
            json!({"step": s, "timestamp": 1_764_250_000.0 + s as f64 * 0.013,
                   "values": {"loss": 1.0 / (s as f64 + 1.0) + spike, "acc": s as f64 / 7.0}})
        })
        .collect();
    json!({"points": pts})
}

each_backend!(binary_equals_json_whole_and_downsampled, |ctx| {
    let (k, id) = setup(&ctx).await;
    append(&ctx, &k, &id, curve(0..5000)).await;
    let whole = both_ways(&ctx, &format!("/api/v1/runs/{id}/history"), &k, None).await;
    let loss = &whole[0].series.iter().find(|s| s.key == "loss").unwrap();
    assert_eq!(loss.steps, (0..5000).collect::<Vec<_>>());
    assert_eq!(loss.values[9], 0.1);
    assert_eq!(loss.timestamps.as_ref().unwrap()[1000], 1_764_250_013.0);
    assert!(!loss.downsampled && loss.min.is_none());

    for q in [
        "keys=loss&max_points=100",
        "keys=loss&max_points=2000",
        "keys=loss,acc&min_step=100&max_step=4000&max_points=7",
    ] {
        let runs = both_ways(&ctx, &format!("/api/v1/runs/{id}/history?{q}"), &k, None).await;
        let s = &runs[0].series[0];
        assert!(s.downsampled, "{q}");
        let (min, max) = (s.min.as_ref().unwrap(), s.max.as_ref().unwrap());
        assert_eq!(min.len(), s.steps.len());
        assert!(min.iter().zip(max).all(|(a, b)| a <= b), "{q}");
        if q.ends_with("max_points=100") {
            assert!(
                max.contains(&(50.0 + 1.0 / 2346.0)),
                "the spike is in the band"
            );
        }
    }
});

each_backend!(binary_empty_and_non_finite, |ctx| {
    let (k, id) = setup(&ctx).await;
    // A run without points, and names it does not have: no series, still a valid body.
    let runs = both_ways(&ctx, &format!("/api/v1/runs/{id}/history"), &k, None).await;
    assert_eq!(
        (runs.len(), runs[0].run.as_str(), runs[0].series.len()),
        (1, id.as_str(), 0)
    );
    append(
        &ctx,
        &k,
        &id,
        json!({"points": [
        {"step": 0, "values": {"v": 1.5}}, {"step": 1, "values": {"v": "NaN"}},
        {"step": 2, "values": {"v": "Infinity"}}, {"step": 3, "values": {"v": "-Infinity"}},
        {"step": 4, "values": {"v": -0.0}}]}),
    )
    .await;
    let runs = both_ways(
        &ctx,
        &format!("/api/v1/runs/{id}/history?keys=v,nope"),
        &k,
        None,
    )
    .await;
    let v = &runs[0].series[0].values;
    assert_eq!(runs[0].series.len(), 1);
    assert!(v[0] == 1.5 && v[1].is_nan() && v[2] == f64::INFINITY && v[3] == f64::NEG_INFINITY);
    assert!(
        v[4] == 0.0 && v[4].is_sign_negative(),
        "the sign of zero travels"
    );
    // An empty step range.
    let runs = both_ways(
        &ctx,
        &format!("/api/v1/runs/{id}/history?keys=v&min_step=100"),
        &k,
        None,
    )
    .await;
    let s = &runs[0].series[0];
    assert_eq!((s.steps.len(), s.values.len(), s.total_points), (0, 0, 0));
});

each_backend!(binary_many_runs, |ctx| {
    let (k, a) = setup(&ctx).await;
    let b = ctx.run(&k, "m", json!({})).await;
    let c = ctx.run(&k, "m", json!({})).await;
    append(&ctx, &k, &a, curve(0..3000)).await;
    append(&ctx, &k, &b, curve(500..1200)).await;
    let q = json!({"runs": [b, c, a], "keys": ["loss"], "max_points": 50});
    let runs = both_ways(&ctx, "/api/v1/history/query", &k, Some(q)).await;
    let ids: Vec<&str> = runs.iter().map(|r| r.run.as_str()).collect();
    assert_eq!(
        ids,
        vec![b.as_str(), c.as_str(), a.as_str()],
        "runs in the asked order"
    );
    assert!(
        runs[1].series.is_empty(),
        "a run without points keeps its place"
    );
    // The runs share one grid: every step of the shorter run is a step of the longer one.
    let grid = &runs[2].series[0].steps;
    assert!(runs[0].series[0].steps.iter().all(|s| grid.contains(s)));
    let q = json!({"runs": [a], "keys": ["loss", "acc"]});
    let runs = both_ways(&ctx, "/api/v1/history/query", &k, Some(q)).await;
    assert_eq!(runs[0].series.len(), 2);
    assert_eq!(runs[0].series[0].steps.len(), 3000);
});

each_backend!(accept_negotiation_and_errors, |ctx| {
    let (k, id) = setup(&ctx).await;
    append(&ctx, &k, &id, curve(0..10)).await;
    let path = format!("/api/v1/runs/{id}/history");
    for (accept, want) in [
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        (
            "application/json, application/vnd.wanllmdb.history+binary",
            "application/json",
        ),
        (
            "application/vnd.wanllmdb.history+binary;q=0.5, application/json;q=0.4",
            MEDIA_TYPE,
        ),
        (
            "application/vnd.wanllmdb.history+binary, */*;q=0.1",
            MEDIA_TYPE,
        ),
        ("application/vnd.wanllmdb.history+binary, */*", MEDIA_TYPE),
        (
            "text/html, APPLICATION/VND.WANLLMDB.HISTORY+BINARY",
            MEDIA_TYPE,
        ),
        ("application/json;q=0, */*", MEDIA_TYPE),
    ] {
        let (s, kind, _) = fetch(&ctx, Method::GET, &path, &k, accept, None).await;
        assert_eq!(
            (s, kind.as_str()),
            (StatusCode::OK, want),
            "Accept: {accept}"
        );
    }
    // No Accept header at all: JSON, as before.
    let resp = ctx.req(Method::GET, &path, Some(&k)).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["vary"], "accept");
    // Neither form acceptable: 406 with a JSON error body, on both endpoints.
    for accept in [
        "text/html",
        "application/xml, image/*",
        "application/json;q=0, application/vnd.wanllmdb.history+binary;q=0",
    ] {
        let resp = ctx
            .req(Method::GET, &path, Some(&k))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let (s, b) = read(resp).await;
        assert_error(s, &b, StatusCode::NOT_ACCEPTABLE, "not_acceptable");
        let resp = ctx
            .req(Method::POST, "/api/v1/history/query", Some(&k))
            .header("accept", accept)
            .json(&json!({"runs": [id]}))
            .send()
            .await
            .unwrap();
        let (s, b) = read(resp).await;
        assert_error(s, &b, StatusCode::NOT_ACCEPTABLE, "not_acceptable");
    }
    // Errors asked for in binary are JSON error bodies with their status.
    let (s, kind, body) = fetch(
        &ctx,
        Method::GET,
        "/api/v1/runs/zzzzzzzz/history",
        &k,
        MEDIA_TYPE,
        None,
    )
    .await;
    assert_eq!(
        (s, kind.as_str()),
        (StatusCode::NOT_FOUND, "application/json")
    );
    let b: Value = serde_json::from_slice(&body).unwrap();
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, _, body) = fetch(
        &ctx,
        Method::GET,
        &format!("{path}?max_points=1"),
        &k,
        MEDIA_TYPE,
        None,
    )
    .await;
    assert_error(
        s,
        &serde_json::from_slice(&body).unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    let (s, _, body) = fetch(
        &ctx,
        Method::POST,
        "/api/v1/history/query",
        &k,
        MEDIA_TYPE,
        Some(&json!({"runs": []})),
    )
    .await;
    assert_error(
        s,
        &serde_json::from_slice(&body).unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    // Another user's private run stays a 404 in binary too.
    let other = ctx.user("bob").await;
    let (s, _, body) = fetch(&ctx, Method::GET, &path, &other, MEDIA_TYPE, None).await;
    assert_error(
        s,
        &serde_json::from_slice(&body).unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    );
});
