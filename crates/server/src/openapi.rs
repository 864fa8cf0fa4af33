//! The OpenAPI document, generated from the handlers' annotations.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::state::AppState;

/// Title, version and the bearer scheme.
pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wanLLMDB API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Self-hosted machine-learning experiment tracking. Authenticate with 'Authorization: Bearer <access token or API key>'."))
                .build(),
        )
        .build();
    let comps = doc.components.get_or_insert_with(Default::default);
    comps.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}

/// Statuses any operation can answer, whatever it does: a credential that is present but
/// invalid is refused everywhere, and an unavailable database or bug reaches every handler.
const UNIVERSAL: [(&str, &str); 3] = [
    ("401", "Missing, invalid, expired or revoked credentials"),
    (
        "500",
        "Internal error (details are in the server's log, not the answer)",
    ),
    (
        "503",
        "The database or the object storage is unavailable; retry later",
    ),
];

/// Fills in what every operation's annotation would otherwise repeat: its security
/// requirement (reads also work anonymously on public projects, so a `GET` without one of its
/// own takes an optional bearer; everything else needs one) and the error statuses that follow
/// from its shape (400 for parameters or a body, 404 for a path parameter, 408 for a body, 413
/// and 415 for a JSON body), each with the `ErrorBody` schema.
pub fn complete(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !matches!(
                method.as_str(),
                "get" | "put" | "post" | "patch" | "delete" | "head" | "options"
            ) {
                continue;
            }
            complete_operation(path, method, op);
        }
    }
}

fn complete_operation(path: &str, method: &str, op: &mut serde_json::Value) {
    use serde_json::json;
    let read = matches!(method, "get" | "head");
    if op.get("security").is_none() {
        op["security"] = if read {
            json!([{"bearer": []}, {}])
        } else {
            json!([{"bearer": []}])
        };
    }
    let has_params = op
        .get("parameters")
        .and_then(|p| p.as_array())
        .is_some_and(|p| !p.is_empty());
    let json_body = op
        .pointer("/requestBody/content/application~1json")
        .is_some();
    let has_body = op.get("requestBody").is_some();
    let mut wanted: Vec<(&str, &str)> = UNIVERSAL.to_vec();
    if has_params || has_body {
        wanted.push(("400", "The input is wrong; the message says how"));
    }
    if path.contains('{') {
        wanted.push(("404", "Not found, or not visible to the caller"));
    }
    if has_body {
        wanted.push((
            "408",
            "The body stopped arriving for longer than the body timeout",
        ));
    }
    if json_body {
        wanted.push(("413", "The body is larger than the server's limit"));
        wanted.push(("415", "Unsupported Content-Type or Content-Encoding"));
    }
    let responses = op["responses"].as_object_mut();
    let Some(responses) = responses else { return };
    for (code, description) in wanted {
        responses
            .entry(code)
            .or_insert_with(|| error_response(description));
    }
    // Annotations list errors by status alone; give each the error body and a sentence.
    for (code, r) in responses.iter_mut() {
        if code.starts_with('4') || code.starts_with('5') {
            if r.get("content").is_none() {
                r["content"] = error_response("")["content"].clone();
            }
            if r.get("description")
                .and_then(|d| d.as_str())
                .is_none_or(str::is_empty)
            {
                r["description"] = json!(default_description(code));
            }
        }
    }
}

fn error_response(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn default_description(code: &str) -> &'static str {
    match code {
        "400" => "The input is wrong; the message says how",
        "401" => "Missing, invalid, expired or revoked credentials",
        "403" => "Signed in, but not allowed",
        "404" => "Not found, or not visible to the caller",
        "408" => "The body stopped arriving for longer than the body timeout",
        "409" => "Conflicts with the current state; the message says how",
        "413" => "The body is larger than the server's limit",
        "415" => "Unsupported Content-Type or Content-Encoding",
        "429" => "Too many attempts; Retry-After says when to try again",
        "503" => "Unavailable; retry later",
        _ => "Error",
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_str().to_string(),
    )
}
