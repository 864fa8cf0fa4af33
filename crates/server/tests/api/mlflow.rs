//! The MLflow REST API: what MLflow clients send, and what they must get back.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Ctx, PASSWORD, each_backend, read};

const API: &str = "/api/2.0/mlflow";

async fn ml(ctx: &Ctx, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    ctx.post(&format!("{API}/{path}"), Some(token), body).await
}

async fn ml_get(ctx: &Ctx, path_and_query: &str, token: &str) -> (StatusCode, Value) {
    ctx.get(&format!("{API}/{path_and_query}"), Some(token))
        .await
}

/// Asserts an MLflow error: the status and `error_code`, and a message.
fn assert_ml_error(s: StatusCode, b: &Value, status: StatusCode, code: &str) {
    assert_eq!(s, status, "{b}");
    assert_eq!(b["error_code"], code, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    assert!(b.get("error").is_none(), "native error shape leaked: {b}");
}

async fn experiment(ctx: &Ctx, k: &str, name: &str) -> String {
    let (s, b) = ml(ctx, "experiments/create", k, json!({"name": name})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["experiment_id"].as_str().unwrap().to_string()
}

async fn mlflow_run(ctx: &Ctx, k: &str, exp: &str) -> String {
    let (s, b) = ml(
        ctx,
        "runs/create",
        k,
        json!({"experiment_id": exp, "start_time": 1_700_000_000_000i64,
               "tags": [{"key": "mlflow.runName", "value": "first"},
                        {"key": "mlflow.user", "value": "alice"},
                        {"key": "mlflow.note.content", "value": "a note"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["run"]["info"]["run_name"], "first");
    assert_eq!(b["run"]["info"]["status"], "RUNNING");
    assert_eq!(b["run"]["info"]["start_time"], 1_700_000_000_000i64);
    b["run"]["info"]["run_id"].as_str().unwrap().to_string()
}

fn tag<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    run["data"]["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

each_backend!(experiments_map_onto_projects_by_name, |ctx| {
    let k = ctx.user("alice").await;
    let id = experiment(&ctx, &k, "My Experiment / v1").await;
    // The MLflow name is what get-by-name matches; the project gets a derived name.
    let (s, b) = ml_get(
        &ctx,
        "experiments/get-by-name?experiment_name=My%20Experiment%20%2F%20v1",
        &k,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["experiment"]["experiment_id"], id.as_str());
    assert_eq!(b["experiment"]["name"], "My Experiment / v1");
    assert_eq!(b["experiment"]["lifecycle_stage"], "active");
    let (s, p) = ctx.get("/api/v1/projects/my-experiment-v1", Some(&k)).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["id"].to_string(), id);
    // Another name deriving the same project name gets the next free one, deterministically.
    let id2 = experiment(&ctx, &k, "my experiment v1").await;
    let (s, p) = ctx
        .get("/api/v1/projects/my-experiment-v1-2", Some(&k))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["id"].to_string(), id2);
    // The same MLflow name twice is MLflow's error.
    let (s, b) = ml(
        &ctx,
        "experiments/create",
        &k,
        json!({"name": "My Experiment / v1"}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
    // A native project is an experiment under its own name.
    ctx.project(&k, "native", "private").await;
    let (s, b) = ml_get(&ctx, "experiments/get-by-name?experiment_name=native", &k).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Rename, tag, delete, restore, search.
    let (s, b) = ml(
        &ctx,
        "experiments/update",
        &k,
        json!({"experiment_id": id2, "new_name": "renamed"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = ml(
        &ctx,
        "experiments/set-experiment-tag",
        &k,
        json!({"experiment_id": id2, "key": "team", "value": "vision"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ml(&ctx, "experiments/delete", &k, json!({"experiment_id": id})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = ml(&ctx, "experiments/search", &k, json!({})).await;
    let names: Vec<&str> = b["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        names.contains(&"renamed") && names.contains(&"native"),
        "{b}"
    );
    assert!(
        !names.contains(&"My Experiment / v1"),
        "deleted ones are hidden: {b}"
    );
    let (_, b) = ml(
        &ctx,
        "experiments/search",
        &k,
        json!({"view_type": "DELETED_ONLY"}),
    )
    .await;
    assert_eq!(b["experiments"][0]["name"], "My Experiment / v1", "{b}");
    let (_, b) = ml(
        &ctx,
        "experiments/search",
        &k,
        json!({"filter": "tags.team = 'vision'"}),
    )
    .await;
    assert_eq!(b["experiments"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["experiments"][0]["name"], "renamed");
    let (s, b) = ml(
        &ctx,
        "experiments/search",
        &k,
        json!({"filter": "name > 3"}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (s, _) = ml(
        &ctx,
        "experiments/restore",
        &k,
        json!({"experiment_id": id}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = ml_get(&ctx, &format!("experiments/get?experiment_id={id}"), &k).await;
    assert_eq!(b["experiment"]["lifecycle_stage"], "active");
    // The default experiment exists for whoever asks.
    let (s, b) = ml_get(&ctx, "experiments/get?experiment_id=0", &k).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["experiment"]["name"], "Default");
});

each_backend!(runs_params_tags_and_metrics_read_back_as_logged, |ctx| {
    let k = ctx.user("alice").await;
    let exp = experiment(&ctx, &k, "exp").await;
    let run = mlflow_run(&ctx, &k, &exp).await;
    // Several values at one step, step 0 by default, NaN; sent twice (a retry).
    let batch = json!({"run_id": run,
        "metrics": [
            {"key": "loss", "value": 1.0, "timestamp": 1000, "step": 0},
            {"key": "loss", "value": 0.5, "timestamp": 1001, "step": 1},
            {"key": "loss", "value": 0.4, "timestamp": 1002, "step": 1},
            {"key": "acc", "value": "NaN", "timestamp": 1003},
        ],
        "params": [{"key": "lr", "value": "0.01"}, {"key": "opt", "value": "adam"}],
        "tags": [{"key": "team", "value": "vision"}]});
    for _ in 0..2 {
        let (s, b) = ml(&ctx, "runs/log-batch", &k, batch.clone()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = ml(
        &ctx,
        "runs/log-metric",
        &k,
        json!({"run_id": run, "key": "loss", "value": 0.25, "timestamp": 1004, "step": 2}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, h) = ml_get(
        &ctx,
        &format!("metrics/get-history?run_id={run}&metric_key=loss"),
        &k,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let got: Vec<(i64, f64, i64)> = h["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["step"].as_i64().unwrap(),
                m["value"].as_f64().unwrap(),
                m["timestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1.0, 1000),
            (1, 0.5, 1001),
            (1, 0.4, 1002),
            (2, 0.25, 1004)
        ]
    );
    let (_, h) = ml_get(
        &ctx,
        &format!("metrics/get-history?run_id={run}&metric_key=acc"),
        &k,
    )
    .await;
    assert_eq!(h["metrics"][0]["value"], "NaN", "{h}");
    assert_eq!(h["metrics"][0]["step"], 0);
    // The native series keeps one value a step: the latest by timestamp.
    let (s, n) = ctx
        .get(&format!("/api/v1/runs/{run}/history?keys=loss"), Some(&k))
        .await;
    assert_eq!(s, StatusCode::OK, "{n}");
    let series = &n["series"][0];
    assert_eq!(series["steps"], json!([0, 1, 2]), "{n}");
    assert_eq!(series["values"], json!([1.0, 0.4, 0.25]), "{n}");
    // Params are the config; a changed value is refused, the same one is fine.
    let (s, b) = ml(
        &ctx,
        "runs/log-parameter",
        &k,
        json!({"run_id": run, "key": "lr", "value": "0.02"}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(b["message"].as_str().unwrap().contains("lr"), "{b}");
    let (s, _) = ml(
        &ctx,
        "runs/log-parameter",
        &k,
        json!({"run_id": run, "key": "lr", "value": "0.01"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The MLflow view of the run.
    let (s, r) = ml_get(&ctx, &format!("runs/get?run_id={run}"), &k).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let r = &r["run"];
    assert_eq!(tag(r, "team"), Some("vision"));
    assert_eq!(tag(r, "mlflow.user"), Some("alice"));
    assert_eq!(tag(r, "mlflow.runName"), Some("first"));
    assert_eq!(tag(r, "mlflow.note.content"), Some("a note"));
    let params: Vec<(&str, &str)> = r["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap(), p["value"].as_str().unwrap()))
        .collect();
    assert_eq!(params, vec![("lr", "0.01"), ("opt", "adam")]);
    let loss = r["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "loss")
        .unwrap();
    assert_eq!(
        (loss["value"].as_f64(), loss["step"].as_i64()),
        (Some(0.25), Some(2))
    );
    assert_eq!(
        r["info"]["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts")
    );
    // The native view of the same run.
    let (_, nr) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&k)).await;
    assert_eq!(nr["name"], "first");
    assert_eq!(nr["notes"], "a note");
    assert_eq!(nr["config"], json!({"lr": "0.01", "opt": "adam"}));
    assert_eq!(nr["tag_values"]["team"], "vision", "{nr}");
    // Renaming through the name tag; deleting a tag.
    let (s, _) = ml(
        &ctx,
        "runs/set-tag",
        &k,
        json!({"run_id": run, "key": "mlflow.runName", "value": "second"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ml(
        &ctx,
        "runs/delete-tag",
        &k,
        json!({"run_id": run, "key": "team"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = ml(
        &ctx,
        "runs/delete-tag",
        &k,
        json!({"run_id": run, "key": "team"}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (_, nr) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&k)).await;
    assert_eq!(nr["name"], "second");
    assert!(
        nr.get("tag_values").is_none_or(|t| t.get("team").is_none()),
        "{nr}"
    );
    // Search with MLflow's syntax, then end, delete and restore.
    let other = mlflow_run(&ctx, &k, &exp).await;
    let (s, b) = ml(
        &ctx,
        "runs/search",
        &k,
        json!({"experiment_ids": [exp], "filter": "metrics.loss < 0.5 and params.lr = '0.01'"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<&str> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![run.as_str()]);
    let (s, b) = ml(
        &ctx,
        "runs/update",
        &k,
        json!({"run_id": run, "status": "FINISHED", "end_time": 1_700_000_100_000i64}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["run_info"]["status"], "FINISHED");
    assert_eq!(b["run_info"]["end_time"], 1_700_000_100_000i64);
    let (s, _) = ml(&ctx, "runs/delete", &k, json!({"run_id": other})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = ml(&ctx, "runs/search", &k, json!({"experiment_ids": [exp]})).await;
    assert_eq!(b["runs"].as_array().unwrap().len(), 1, "{b}");
    let (_, b) = ml(
        &ctx,
        "runs/search",
        &k,
        json!({"experiment_ids": [exp], "run_view_type": "DELETED_ONLY"}),
    )
    .await;
    assert_eq!(b["runs"][0]["info"]["lifecycle_stage"], "deleted", "{b}");
    let (s, _) = ml(&ctx, "runs/restore", &k, json!({"run_id": other})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = ml(
        &ctx,
        "runs/search",
        &k,
        json!({"experiment_ids": [exp], "order_by": ["attributes.start_time ASC"], "max_results": 1}),
    )
    .await;
    assert_eq!(b["runs"].as_array().unwrap().len(), 1, "{b}");
    assert!(b["next_page_token"].is_string(), "{b}");
    // Several runs in a step range, sampled.
    let (s, b) = ml_get(
        &ctx,
        &format!("metrics/get-history-bulk-interval?run_ids={run}&metric_key=loss&start_step=1&end_step=2&max_results=10"),
        &k,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["metrics"].as_array().unwrap().len(), 3, "{b}");
    assert_eq!(b["metrics"][0]["run_id"], run.as_str());
});

each_backend!(mlflow_runs_are_never_reaped, |ctx| {
    let k = ctx.user("alice").await;
    let exp = experiment(&ctx, &k, "exp").await;
    let run = mlflow_run(&ctx, &k, &exp).await;
    let native = ctx.run(&k, "exp", json!({})).await;
    // Everything is silent against a timeout of zero: only the native run is reaped.
    wanllmdb_server::runs::reap_silent_runs(&ctx.store, 0)
        .await
        .unwrap();
    let (_, r) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&k)).await;
    assert_eq!(r["state"], "running");
    let (_, r) = ctx.get(&format!("/api/v1/runs/{native}"), Some(&k)).await;
    assert_eq!(r["state"], "crashed");
});

each_backend!(errors_and_access_answer_as_mlflow_does, |ctx| {
    let alice = ctx.user("alice").await;
    let bob = ctx.user("bob").await;
    let exp = experiment(&ctx, &alice, "private one").await;
    let run = mlflow_run(&ctx, &alice, &exp).await;
    // No credentials.
    let (s, b) = read(
        ctx.req(Method::POST, &format!("{API}/runs/log-metric"), None)
            .json(&json!({"run_id": run, "key": "x", "value": 1, "timestamp": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    // Someone else's private experiment and run: not found, as if they did not exist.
    let (s, b) = ml_get(&ctx, &format!("experiments/get?experiment_id={exp}"), &bob).await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = ml_get(&ctx, &format!("runs/get?run_id={run}"), &bob).await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = ml(
        &ctx,
        "runs/log-metric",
        &bob,
        json!({"run_id": run, "key": "x", "value": 1, "timestamp": 1}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    // A viewer may read but not write: 403.
    let (s, b) = ctx
        .post(
            "/api/v1/projects/private-one/members",
            Some(&alice),
            json!({"username": "bob", "role": "viewer"}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, _) = ml_get(&ctx, &format!("runs/get?run_id={run}"), &bob).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = ml(
        &ctx,
        "runs/log-metric",
        &bob,
        json!({"run_id": run, "key": "x", "value": 1, "timestamp": 1}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // Bad input.
    let (s, b) = ml(
        &ctx,
        "runs/log-metric",
        &alice,
        json!({"run_id": run, "key": "x", "value": "lots", "timestamp": 1}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (s, b) = ml(
        &ctx,
        "runs/log-metric",
        &alice,
        json!({"run_id": run, "key": "x", "value": 1}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(b["message"].as_str().unwrap().contains("timestamp"), "{b}");
    let (s, b) = ml(
        &ctx,
        "runs/log-metric",
        &alice,
        json!({"run_id": run, "key": "bad\u{7}key", "value": 1, "timestamp": 1}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (s, b) = read(
        ctx.req(Method::POST, &format!("{API}/runs/log-batch"), Some(&alice))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": 1, "timestamp": 1, "step": i}))
        .collect();
    let (s, b) = ml(
        &ctx,
        "runs/log-batch",
        &alice,
        json!({"run_id": run, "metrics": metrics}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (s, b) = ml_get(&ctx, "runs/get?run_id=nosuchid", &alice).await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = ml_get(&ctx, "runs/get", &alice).await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (s, b) = ml_get(&ctx, "no/such/endpoint", &alice).await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND");
    // The other front door answers the same.
    let (s, b) = ctx
        .get(
            "/ajax-api/2.0/mlflow/runs/get?run_id=nosuchid",
            Some(&alice),
        )
        .await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
});

each_backend!(username_and_password_authenticate_by_basic_auth, |ctx| {
    let k = ctx.user("alice").await;
    let exp = experiment(&ctx, &k, "exp").await;
    let basic = |pass: &str| {
        ctx.req(
            Method::GET,
            &format!("{API}/experiments/get?experiment_id={exp}"),
            None,
        )
        .basic_auth("alice", Some(pass))
    };
    for _ in 0..3 {
        let (s, b) = read(basic(PASSWORD).send().await.unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["experiment"]["name"], "exp");
    }
    let (s, b) = read(basic("wrong-password").send().await.unwrap()).await;
    assert_ml_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let (s, b) = read(
        ctx.req(Method::GET, &format!("{API}/experiments/search"), None)
            .header("authorization", "Basic !!!")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
});

each_backend!(artifacts_go_through_the_proxy_as_run_files, |ctx| {
    let k = ctx.user("alice").await;
    let exp = experiment(&ctx, &k, "exp").await;
    let run = mlflow_run(&ctx, &k, &exp).await;
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts");
    for (path, bytes) in [
        ("model/w.bin", vec![7u8; 3000]),
        ("notes.txt", b"hi".to_vec()),
    ] {
        let resp = ctx
            .req(Method::PUT, &format!("{base}/{path}"), Some(&k))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let (s, b) = ctx
        .get(
            &format!("/api/2.0/mlflow-artifacts/artifacts?path={exp}/{run}/artifacts"),
            Some(&k),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["files"],
        json!([{"path": "model", "is_dir": true}, {"path": "notes.txt", "is_dir": false, "file_size": 2}])
    );
    let (_, b) = ml_get(&ctx, &format!("artifacts/list?run_id={run}&path=model"), &k).await;
    assert_eq!(
        b["files"],
        json!([{"path": "model/w.bin", "is_dir": false, "file_size": 3000}]),
        "{b}"
    );
    let resp = ctx
        .req(Method::GET, &format!("{base}/model/w.bin"), Some(&k))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), vec![7u8; 3000]);
    // The same files natively.
    let (_, files) = ctx
        .get(&format!("/api/v1/runs/{run}/files"), Some(&k))
        .await;
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    let resp = ctx
        .req(Method::DELETE, &format!("{base}/model"), Some(&k))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, b) = read(
        ctx.req(Method::GET, &format!("{base}/model/w.bin"), Some(&k))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (s, b) = read(
        ctx.req(Method::PUT, &format!("{base}/../../x"), Some(&k))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(s.is_client_error(), "{s} {b}");
});

each_backend!(the_registry_applies_its_rules_to_mlflow_clients, |ctx| {
    let k = ctx.user("alice").await;
    let exp = experiment(&ctx, &k, "exp").await;
    let run = mlflow_run(&ctx, &k, &exp).await;
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts");
    let resp = ctx
        .req(Method::PUT, &format!("{base}/model/MLmodel"), Some(&k))
        .body("flavors: {}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, b) = ml(&ctx, "registered-models/create", &k, json!({"name": "clf"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["registered_model"]["name"], "clf");
    let (s, b) = ml(&ctx, "registered-models/create", &k, json!({"name": "clf"})).await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
    let (s, b) = ml(
        &ctx,
        "model-versions/create",
        &k,
        json!({"name": "clf", "source": format!("runs:/{run}/model"), "run_id": run}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_version"]["version"], "1");
    assert_eq!(b["model_version"]["current_stage"], "None");
    // Natively: a model of the run's project, its version an artifact version of the files.
    let (s, m) = ctx.get("/api/v1/models/clf", Some(&k)).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["project"], "exp");
    let (_, v) = ctx.get("/api/v1/models/clf/versions/1", Some(&k)).await;
    assert_eq!(v["artifact"], "exp/clf:v1", "{v}");
    let (s, _) = ml(
        &ctx,
        "registered-models/alias",
        &k,
        json!({"name": "clf", "alias": "champion", "version": "1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = ml_get(&ctx, "registered-models/alias?name=clf&alias=champion", &k).await;
    assert_eq!(b["model_version"]["version"], "1", "{b}");
    // Production needs an approval here: MLflow's client gets an error that says so.
    let (s, b) = ml(
        &ctx,
        "model-versions/transition-stage",
        &k,
        json!({"name": "clf", "version": "1", "stage": "Production"}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_STATE");
    assert!(b["message"].as_str().unwrap().contains("approv"), "{b}");
    let (s, b) = ml(
        &ctx,
        "model-versions/transition-stage",
        &k,
        json!({"name": "clf", "version": "1", "stage": "Staging"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_version"]["current_stage"], "Staging");
    let (_, b) = ml_get(&ctx, "registered-models/get?name=clf", &k).await;
    assert_eq!(
        b["registered_model"]["latest_versions"][0]["current_stage"],
        "Staging"
    );
    assert_eq!(
        b["registered_model"]["aliases"],
        json!([{"alias": "champion", "version": "1"}])
    );
    let (_, b) = ml_get(
        &ctx,
        "model-versions/get-download-uri?name=clf&version=1",
        &k,
    )
    .await;
    assert_eq!(
        b["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts/model")
    );
    let (s, b) = ml(
        &ctx,
        "model-versions/create",
        &k,
        json!({"name": "clf", "source": "s3://bucket/elsewhere"}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let (s, b) = ml(
        &ctx,
        "model-versions/create",
        &k,
        json!({"name": "nope", "source": format!("runs:/{run}/model")}),
    )
    .await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    // Another user sees none of it.
    let bob = ctx.user("bob").await;
    let (s, b) = ml_get(&ctx, "registered-models/get?name=clf", &bob).await;
    assert_ml_error(s, &b, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (_, b) = ml(&ctx, "registered-models/search", &bob, json!({})).await;
    assert!(
        b["registered_models"].as_array().is_none_or(Vec::is_empty),
        "{b}"
    );
});

each_backend!(get_history_pages_through_every_entry, |ctx| {
    let k = ctx.user("alice").await;
    let exp = experiment(&ctx, &k, "exp").await;
    let run = mlflow_run(&ctx, &k, &exp).await;
    // 2,500 entries, two at every step but the last.
    let all: Vec<Value> = (0..2500)
        .map(|i| json!({"key": "m", "value": i as f64 / 4.0, "timestamp": 10_000 + i, "step": i / 2}))
        .collect();
    for chunk in all.chunks(1000) {
        let (s, b) = ml(
            &ctx,
            "runs/log-batch",
            &k,
            json!({"run_id": run, "metrics": chunk}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = format!("metrics/get-history?run_id={run}&metric_key=m&max_results=1000");
        if let Some(t) = &token {
            q.push_str(&format!("&page_token={}", urlencode(t)));
        }
        let (s, b) = ml_get(&ctx, &q, &k).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        pages += 1;
        got.extend(b["metrics"].as_array().unwrap().iter().map(|m| {
            (
                m["step"].as_i64().unwrap(),
                m["timestamp"].as_i64().unwrap(),
                m["value"].as_f64().unwrap(),
            )
        }));
        match b["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<(i64, i64, f64)> = (0..2500)
        .map(|i| (i / 2, 10_000 + i, i as f64 / 4.0))
        .collect();
    assert_eq!(got, want);
    // Without max_results, all of it in one answer.
    let (_, b) = ml_get(
        &ctx,
        &format!("metrics/get-history?run_id={run}&metric_key=m"),
        &k,
    )
    .await;
    assert_eq!(b["metrics"].as_array().unwrap().len(), 2500);
    assert!(b.get("next_page_token").is_none());
    // A key no one logged is an empty history.
    let (s, b) = ml_get(
        &ctx,
        &format!("metrics/get-history?run_id={run}&metric_key=none"),
        &k,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["metrics"], json!([]));
});

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

each_backend!(
    the_ui_and_the_audit_log_show_what_mlflow_clients_did,
    |ctx| {
        let k = ctx.user("alice").await;
        let exp = experiment(&ctx, &k, "Vision / resnet").await;
        let run = mlflow_run(&ctx, &k, &exp).await;
        let (s, _) = ml(
            &ctx,
            "runs/set-tag",
            &k,
            json!({"run_id": run, "key": "dataset", "value": "imagenet-1k"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        // The run page lists the key→value tags; the projects page the MLflow name.
        let page = |path: String| {
            let req = ctx.req(Method::GET, &path, Some(&k));
            async move {
                let r = req.send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        let (s, html) = page(format!("/runs/{run}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("id=\"tag-values\""), "{html}");
        assert!(
            html.contains("imagenet-1k") && html.contains("mlflow.user"),
            "{html}"
        );
        let (_, html) = page("/projects".into()).await;
        assert!(
            html.contains("vision-resnet") && html.contains("Vision / resnet"),
            "{html}"
        );
        // The links MLflow clients print reach the project page.
        let r = ctx
            .req(Method::GET, &format!("/experiments/{exp}"), Some(&k))
            .send()
            .await
            .unwrap();
        assert_eq!(r.url().path(), "/projects/vision-resnet");
        // Changes only the MLflow API makes are in the audit log.
        let (s, _) = ml(&ctx, "runs/delete", &k, json!({"run_id": run})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = ml(
            &ctx,
            "experiments/delete",
            &k,
            json!({"experiment_id": exp}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (_, b) = ctx
            .get(
                "/api/v1/audit/logs?event_type=run_update",
                Some(&ctx.admin_key),
            )
            .await;
        assert!(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["metadata"]["lifecycle_stage"] == "deleted"),
            "{b}"
        );
        let (_, b) = ctx
            .get(
                "/api/v1/audit/logs?event_type=project_update",
                Some(&ctx.admin_key),
            )
            .await;
        assert!(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["resource"] == "project:vision-resnet"),
            "{b}"
        );
    }
);
