//! The OpenAPI document describes the server as it behaves: every operation states its
//! security requirement and every error status it answers, and every parameter it lists is
//! one the server accepts. Checked by calling every operation of the document.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, each_backend, read};

/// A value for a path parameter: well-formed, naming nothing that exists.
fn path_value(name: &str) -> &'static str {
    match name {
        "id" | "agent" => "abc12345",
        "version" | "selector" => "v1",
        "draft" => "999999",
        "action" => "pause",
        _ => "nothing-here",
    }
}

fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(path_value(&rest[start + 1..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Calls an operation; with a request body of `{}` (or empty bytes for binary bodies).
async fn call(
    ctx: &Ctx,
    method: &str,
    url: &str,
    op: &Value,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut r = ctx.req(method, url, key);
    if let Some(content) = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
    {
        r = if content.contains_key("application/json") {
            r.json(&json!({}))
        } else {
            r.header("content-type", "application/octet-stream")
                .body(Vec::new())
        };
    }
    read(r.send().await.unwrap()).await
}

fn listed(op: &Value, s: StatusCode) -> bool {
    op["responses"].get(s.as_str()).is_some()
}

each_backend!(every_operation_is_described_as_it_behaves, |ctx| {
    let (s, doc) = ctx.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let member = ctx.user("alice").await;
    let mut problems = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path.ends_with("/logs/stream") {
                // A WebSocket: its HTTP answers are covered by the logs tests.
                continue;
            }
            operations += 1;
            let what = format!("{} {path}", method.to_uppercase());
            let url = fill(path);
            let security = &op["security"];
            let required = *security == json!([{"bearer": []}]);
            let public = security.as_array().is_some_and(|s| s.contains(&json!({})));
            if !required && !public {
                problems.push(format!(
                    "{what}: security {security} says neither required nor optional"
                ));
            }
            for error in ["400", "401", "404", "500"] {
                if let Some(r) = op["responses"].get(error)
                    && r.pointer("/content/application~1json/schema/$ref")
                        .is_none()
                {
                    problems.push(format!("{what}: {error} has no error body"));
                }
            }
            // Anonymous: 401 exactly when a bearer is required.
            let (s, b) = call(&ctx, method, &url, op, None).await;
            if required != (s == StatusCode::UNAUTHORIZED) || !listed(op, s) || s.is_server_error()
            {
                problems.push(format!(
                    "{what}: anonymous call answered {s} (security {security}): {b}"
                ));
            }
            // Signed in, as a member and as an administrator.
            for key in [member.as_str(), ctx.admin_key.as_str()] {
                let (s, b) = call(&ctx, method, &url, op, Some(key)).await;
                if !listed(op, s) || s.is_server_error() {
                    problems.push(format!("{what}: answered {s}, which is not listed: {b}"));
                }
            }
            // Every query parameter it lists is accepted.
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] != "query" {
                    continue;
                }
                let name = p["name"].as_str().unwrap();
                let q = format!("{url}?{name}=1");
                let (s, b) = call(&ctx, method, &q, op, Some(&ctx.admin_key)).await;
                let msg = b["error"]["message"].as_str().unwrap_or("").to_lowercase();
                if msg.contains("unknown query parameter") || msg.contains("unknown field") {
                    problems.push(format!("{what}: listed parameter {name} is refused: {msg}"));
                }
                if !listed(op, s) || s.is_server_error() {
                    problems.push(format!(
                        "{what}?{name}=1 answered {s}, which is not listed: {b}"
                    ));
                }
            }
            // A body that is not JSON is a 400 or 415 it lists.
            if op
                .pointer("/requestBody/content/application~1json")
                .is_some()
            {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let r = ctx
                    .req(m, &url, Some(&ctx.admin_key))
                    .header("content-type", "application/json")
                    .body("{not json")
                    .send()
                    .await
                    .unwrap();
                let (s, b) = read(r).await;
                if !listed(op, s) || s.is_server_error() {
                    problems.push(format!("{what}: a broken JSON body answered {s}: {b}"));
                }
            }
        }
    }
    assert!(operations > 100, "only {operations} operations");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
});
