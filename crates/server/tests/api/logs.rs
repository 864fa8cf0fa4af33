//! Logs: append with dedup, filters, paging, export formats and the live WebSocket stream.

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{assert_error, each_backend};

each_backend!(append_filter_page_export, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "l", "private").await;
    let id = ctx.run(&k, "l", json!({})).await;
    let lines: Vec<Value> = (0..30)
        .map(|i| json!({
            "level": if i % 10 == 0 { "ERROR" } else if i % 5 == 0 { "WARNING" } else { "INFO" },
            "message": format!("epoch {i}, loss \"q\", done"),
            "timestamp": 1_764_250_000.0 + i as f64,
            "source": if i % 2 == 0 { "stdout" } else { "stderr" },
            "line_number": i,
        }))
        .collect();
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/logs"),
            Some(&k),
            json!({"lines": lines}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"accepted": 30, "duplicates": 0}));
    // A retried batch stores nothing twice.
    let (_, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/logs"),
            Some(&k),
            json!({"lines": lines[25..]}),
        )
        .await;
    assert_eq!(b, json!({"accepted": 0, "duplicates": 5}));
    // Lines without a line number are always stored.
    ctx.post(
        &format!("/api/v1/runs/{id}/logs"),
        Some(&k),
        json!({"lines": [{"message": "note"}, {"message": "note"}]}),
    )
    .await;

    let (_, page) = ctx.get(&format!("/api/v1/runs/{id}/logs"), Some(&k)).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 32);
    assert_eq!(items[31]["source"], "user");
    assert_eq!(items[31]["level"], "INFO");
    assert!(
        items
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );

    let count = |q: &str| {
        let q = q.to_string();
        let ctx = &ctx;
        let id = &id;
        let k = &k;
        async move {
            let (s, p) = ctx
                .get(&format!("/api/v1/runs/{id}/logs?{q}"), Some(k))
                .await;
            assert_eq!(s, StatusCode::OK, "{q}: {p}");
            p["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("level=ERROR").await, 3);
    assert_eq!(count("level=warning").await, 6);
    assert_eq!(count("source=stderr").await, 15);
    assert_eq!(count("q=EPOCH%201").await, 11);
    assert_eq!(count("since=1764250010&until=1764250019").await, 10);
    assert_eq!(count("since=2025-11-27T13:26:50Z").await, 32 - 10);

    // Paging.
    let (_, p1) = ctx
        .get(&format!("/api/v1/runs/{id}/logs?limit=20"), Some(&k))
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 20);
    let cur = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = ctx
        .get(
            &format!("/api/v1/runs/{id}/logs?limit=20&cursor={cur}"),
            Some(&k),
        )
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 12);
    assert!(p2["next_cursor"].is_null());

    // Exports.
    let txt = ctx
        .req(
            reqwest::Method::GET,
            &format!("/api/v1/runs/{id}/logs?format=txt&source=stdout"),
            Some(&k),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(txt.status(), StatusCode::OK);
    assert!(
        txt.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".txt")
    );
    let txt = txt.text().await.unwrap();
    assert_eq!(txt.lines().count(), 15);
    assert!(
        txt.lines().next().unwrap().contains("ERROR") && txt.contains("[stdout] epoch 0, loss")
    );
    let csv = ctx
        .req(
            reqwest::Method::GET,
            &format!("/api/v1/runs/{id}/logs?format=csv"),
            Some(&k),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next().unwrap(),
        "seq,timestamp,level,source,line_number,message"
    );
    assert!(
        rows.next()
            .unwrap()
            .ends_with(",ERROR,stdout,0,\"epoch 0, loss \"\"q\"\", done\""),
        "{csv}"
    );
    let js = ctx
        .req(
            reqwest::Method::GET,
            &format!("/api/v1/runs/{id}/logs?format=json"),
            Some(&k),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed: Vec<Value> = serde_json::from_str(&js).unwrap();
    assert_eq!(parsed.len(), 32);

    for bad in [
        "level=LOUD",
        "source=network",
        "format=xml",
        "since=yesterday",
        "limit=0",
        "cursor=abc",
    ] {
        let (s, b) = ctx
            .get(&format!("/api/v1/runs/{id}/logs?{bad}"), Some(&k))
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/logs"),
            Some(&k),
            json!({"lines": [{"message": "x", "level": "LOUD"}]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/logs"),
            Some(&k),
            json!({"lines": [{"level": "INFO"}]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(websocket_streams_backlog_then_live, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "l", "private").await;
    let id = ctx.run(&k, "l", json!({})).await;
    ctx.post(
        &format!("/api/v1/runs/{id}/logs"),
        Some(&k),
        json!({"lines": [{"message": "old 1"}, {"message": "old 2"}]}),
    )
    .await;

    let ws_url = format!(
        "{}/api/v1/runs/{id}/logs/stream",
        ctx.url.replace("http://", "ws://")
    );
    let mut req = ws_url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {k}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut next_message = async || -> Value {
        loop {
            let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .expect("stream stalled")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).unwrap();
            }
        }
    };
    assert_eq!(next_message().await["message"], "old 1");
    assert_eq!(next_message().await["message"], "old 2");
    ctx.post(
        &format!("/api/v1/runs/{id}/logs"),
        Some(&k),
        json!({"lines": [{"message": "live 1", "level": "ERROR"}]}),
    )
    .await;
    let live = next_message().await;
    assert_eq!(live["message"], "live 1");
    assert_eq!(live["level"], "ERROR");
    let _ = ws.close(None).await;

    // Without access there is no stream.
    let other = ctx.user("mallory").await;
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {other}").parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let _ = ws.send(Message::Close(None)).await;
});
