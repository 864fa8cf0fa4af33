//! The product description's REST examples, in the order it gives them, as a client written
//! against it would send them: the runs a project needs, logs streamed and exported, the
//! account flow (register with a full name, form login, bearer reads, form refresh, logout),
//! the audit queries and summary, health checks and the JSON monitoring document.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Ctx, each_backend, read};

async fn form(ctx: &Ctx, path: &str, body: &str) -> (StatusCode, Value) {
    read(
        ctx.req(Method::POST, path, None)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

each_backend!(the_description_rest_examples_in_order, |ctx| {
    let admin = ctx.admin_key.clone();
    // 1.1–1.2: `wandb.init(project=…, name=…, config=…, tags=…)` creates or joins the project.
    let (s, run) = ctx
        .post(
            "/api/v1/runs",
            Some(&admin),
            json!({"project": "image-classification", "name": "resnet50-exp1",
                   "config": {"learning_rate": 0.001, "batch_size": 64, "epochs": 100},
                   "tags": ["baseline", "v1"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    // heartbeat, add_tag / remove_tag.
    let (s, _) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/heartbeat"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, r) = ctx
        .post(
            &format!("/api/v1/runs/{run_id}/tags"),
            Some(&admin),
            json!({"tag": "production-ready"}),
        )
        .await;
    assert!(
        r["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("production-ready"))
    );
    let (_, r) = ctx
        .delete(
            &format!("/api/v1/runs/{run_id}/tags/baseline"),
            Some(&admin),
        )
        .await;
    assert_eq!(r["tags"], json!(["v1", "production-ready"]));

    // 1.3: logs in a batch, then the live stream at ws://…/logs/stream and a txt export.
    let (s, _) = ctx
        .post(
            &format!("/api/v1/runs/{run_id}/logs"),
            Some(&admin),
            json!([
                {"level": "INFO", "message": "Epoch 1 started"},
                {"level": "INFO", "message": "Loss: 0.5"},
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let ws_url = format!(
        "{}/api/v1/runs/{run_id}/logs/stream",
        ctx.url.replace("http://", "ws://")
    );
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("the stream sends the backlog")
            .unwrap()
            .unwrap()
        {
            Message::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(first["message"], "Epoch 1 started");
    let _ = ws.close(None).await;
    let text = ctx
        .req(
            Method::GET,
            &format!("/api/v1/runs/{run_id}/logs?format=txt"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("Epoch 1 started") && text.contains("Loss: 0.5"),
        "{text}"
    );

    // 5.1: register with a full name, log in with a form, read with the bearer.
    let (s, user) = ctx
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "john", "email": "john@example.com",
                   "password": "SecurePass123!", "full_name": "John Doe"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let (s, tokens) = form(
        &ctx,
        "/api/v1/auth/login",
        "username=john&password=SecurePass123!",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let (s, projects) = ctx.get("/api/v1/projects", Some(&access)).await;
    assert_eq!(s, StatusCode::OK, "{projects}");
    // Refresh with a form, then log out with the header alone: neither token works after.
    let (s, fresh) = form(
        &ctx,
        "/api/v1/auth/refresh",
        &format!("refresh_token={refresh}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{fresh}");
    let access = fresh["access_token"].as_str().unwrap().to_string();
    let refresh = fresh["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = ctx
        .call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = ctx.get("/api/v1/projects", Some(&access)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = form(
        &ctx,
        "/api/v1/auth/refresh",
        &format!("refresh_token={refresh}"),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // 5.2: a failed login is recorded with the description's fields.
    let (s, _) = form(
        &ctx,
        "/api/v1/auth/login",
        "username=john&password=wrong-guess",
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, failed) = ctx
        .get(
            "/api/v1/audit/logs/security/failed-logins?hours=24",
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{failed}");
    let last = &failed.as_array().unwrap()[0];
    assert_eq!(last["event_type"], "auth.login.failed");
    assert_eq!(last["username"], "john");
    assert_eq!(last["metadata"]["reason"], "invalid_password");
    assert_eq!(last["metadata"]["attempts"], 1);
    assert!(last["ip_address"].is_string() && last["created_at"].is_string());
    let john_id = user["id"].as_i64().unwrap();
    let (s, johns) = ctx
        .get(&format!("/api/v1/audit/logs/user/{john_id}"), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{johns}");
    let types: Vec<&str> = johns["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"auth.logout") && types.contains(&"auth.login.success"),
        "{types:?}"
    );
    let today = &user["created_at"].as_str().unwrap()[..10];
    let (s, filtered) = ctx
        .get(
            &format!("/api/v1/audit/logs?event_category=data_modification&severity=info&start_date={today}&end_date={today}"),
            Some(&admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{filtered}");
    assert!(
        filtered["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event_category"] == "data_modification" && e["severity"] == "info"),
        "{filtered}"
    );
    let (s, summary) = ctx
        .get("/api/v1/audit/stats/summary?hours=24", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{summary}");
    assert!(summary["total_events"].as_u64().unwrap() > 0);
    assert!(summary["by_category"]["authentication"].as_u64().unwrap() >= 3);
    assert!(summary["by_severity"].is_object());
    let auth = &summary["authentication"];
    assert!(auth["successful_logins"].as_u64().unwrap() >= 1);
    assert_eq!(auth["failed_logins"], 1);
    assert!(auth["failure_rate"].as_f64().unwrap() > 0.0);

    // 5.3: health checks and the monitoring document.
    for path in ["/health", "/health/ready", "/health/live"] {
        let (s, b) = ctx.get(path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
    }
    let (s, m) = ctx.get("/metrics?format=json", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    for key in ["application", "system", "database", "redis"] {
        assert!(m[key].is_object(), "{key}: {m}");
    }
});
