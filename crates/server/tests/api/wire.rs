//! Input shapes the product description writes: log lines as a bare array, and every
//! timestamp as Unix seconds or an RFC 3339 string.

use reqwest::StatusCode;
use serde_json::json;

use crate::{assert_error, each_backend};

each_backend!(log_lines_as_a_bare_array_with_rfc3339_times, |ctx| {
    let k = ctx.user("alice").await;
    let id = ctx.run(&k, "p", json!({})).await;
    let path = format!("/api/v1/runs/{id}/logs");
    let (s, r) = ctx
        .post(
            &path,
            Some(&k),
            json!([
                {"level": "INFO", "message": "Epoch 1 started", "timestamp": "2025-01-31T12:00:00Z"},
                {"level": "INFO", "message": "Loss: 0.5", "timestamp": 1738324801.5},
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 2);
    // The object form still works.
    let (s, _) = ctx
        .post(
            &path,
            Some(&k),
            json!({"lines": [{"message": "third", "timestamp": "2025-01-31T20:00:02+08:00"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, page) = ctx.get(&path, Some(&k)).await;
    let lines = page["items"].as_array().unwrap();
    let times: Vec<f64> = lines
        .iter()
        .map(|l| l["timestamp"].as_f64().unwrap())
        .collect();
    assert_eq!(
        times,
        vec![1738324800.0, 1738324801.5, 1738324802.0],
        "{page}"
    );
    // A timestamp that is neither says what it should be.
    let (s, b) = ctx
        .post(
            &path,
            Some(&k),
            json!([{"message": "x", "timestamp": "yesterday"}]),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("RFC 3339"),
        "{b}"
    );
    let (s, b) = ctx.post(&path, Some(&k), json!([{"level": "INFO"}])).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("message"),
        "{b}"
    );
});

each_backend!(metric_points_take_rfc3339_times, |ctx| {
    let k = ctx.user("alice").await;
    let id = ctx.run(&k, "p", json!({})).await;
    let (s, r) = ctx
        .post(
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
            json!({"points": [
                {"step": 0, "timestamp": "2025-01-31T12:00:00.25Z", "values": {"loss": 0.7}},
                {"step": 1, "timestamp": 1738324801, "values": {"loss": 0.5}},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (_, h) = ctx
        .get(&format!("/api/v1/runs/{id}/history?keys=loss"), Some(&k))
        .await;
    assert_eq!(
        h["series"][0]["timestamps"],
        json!([1738324800.25, 1738324801.0]),
        "{h}"
    );
});
