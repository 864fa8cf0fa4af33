//! Runs: ids, resume, heartbeats, finishing, the reaper, search, sorting and paging.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Backend, Ctx, assert_error, backends, each_backend};

each_backend!(create_get_update_delete, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let body = json!({
        "project": "p", "id": "abc12345", "name": "baseline", "config": {"lr": 0.001, "opt": {"name": "adam"}},
        "tags": ["a", "b", "a"], "notes": "first", "group": "g1", "job_type": "train",
        "git": {"commit": "deadbeef", "branch": "main", "remote": "git@example.com:x/y.git", "dirty": true},
        "host": "gpu-1", "os": "Linux", "program": "train.py", "runtime": {"python": "3.11.7"}
    });
    let (s, r) = ctx.post("/api/v1/runs", Some(&k), body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["id"], "abc12345");
    assert_eq!(r["state"], "running");
    assert_eq!(r["tags"], json!(["a", "b"]));
    assert_eq!(r["config"]["opt"]["name"], "adam");
    assert_eq!(r["git"]["dirty"], true);
    assert_eq!(r["runtime"]["python"], "3.11.7");
    assert_eq!(r["created_by"], "alice");
    assert!(r["finished_at"].is_null());

    // Creating it again resumes it (idempotent retry), merging config.
    let (s, r2) = ctx
        .post(
            "/api/v1/runs",
            Some(&k),
            json!({"project": "p", "id": "abc12345", "config": {"epochs": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r2}");
    assert_eq!(r2["name"], "baseline");
    assert_eq!(r2["config"]["lr"], 0.001);
    assert_eq!(r2["config"]["epochs"], 3);
    assert_eq!(r2["created_at"], r["created_at"]);

    // Generated ids have the documented shape.
    let (_, gen_run) = ctx
        .post("/api/v1/runs", Some(&k), json!({"project": "p"}))
        .await;
    let id = gen_run["id"].as_str().unwrap();
    assert!(
        id.len() == 8
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(gen_run["name"], id);

    let (s, r) = ctx
        .patch(
            "/api/v1/runs/abc12345",
            Some(&k),
            json!({"name": "renamed", "tags": ["z"], "notes": "n"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (r["name"].as_str(), r["tags"].clone(), r["notes"].as_str()),
        (Some("renamed"), json!(["z"]), Some("n"))
    );
    let (_, page) = ctx.get("/api/v1/runs?project=p&tag=z", Some(&k)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = ctx.get("/api/v1/runs?project=p&tag=a", Some(&k)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);

    for bad in [
        json!({"project": "p", "id": "UPPER123"}),
        json!({"project": "p", "id": "short"}),
        json!({"project": "p", "config": [1, 2]}),
        json!({"project": "p", "tags": [""]}),
        json!({"project": "p", "name": 5}),
        json!({"project": "p", "unknown_field": 1}),
    ] {
        let (s, b) = ctx.post("/api/v1/runs", Some(&k), bad.clone()).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    }
    // A run in a project that does not exist creates it: private, the caller its owner.
    let (s, b) = ctx
        .post("/api/v1/runs", Some(&k), json!({"project": "fresh"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["project"], "fresh");
    let (s, p) = ctx.get("/api/v1/projects/fresh", Some(&k)).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["visibility"], "private");
    let bob = ctx.user("bob").await;
    let (s, _) = ctx.get("/api/v1/projects/fresh", Some(&bob)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Others join only where they may write: bob cannot log into alice's private project.
    let (s, b) = ctx
        .post("/api/v1/runs", Some(&bob), json!({"project": "fresh"}))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    // Anonymous callers create nothing; a bad name is a 400 naming the rule.
    let (s, b) = ctx
        .post("/api/v1/runs", None, json!({"project": "anon-proj"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, _) = ctx
        .get("/api/v1/projects/anon-proj", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = ctx
        .post("/api/v1/runs", Some(&k), json!({"project": "no/slash"}))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("project name"),
        "{b}"
    );

    let (s, _) = ctx.delete("/api/v1/runs/abc12345", Some(&k)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = ctx.get("/api/v1/runs/abc12345", Some(&k)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    assert!(b["error"]["message"].as_str().unwrap().contains("abc12345"));
    let (s, b) = ctx.get("/api/v1/runs/NOTANID!", Some(&k)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(heartbeat_finish_and_stop, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let id = ctx.run(&k, "p", json!({})).await;
    let (s, hb) = ctx
        .post(&format!("/api/v1/runs/{id}/heartbeat"), Some(&k), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hb, json!({"state": "running", "stop_requested": false}));
    let (s, r) = ctx
        .post(&format!("/api/v1/runs/{id}/stop"), Some(&k), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["stop_requested"], true);
    let (_, hb) = ctx
        .post(&format!("/api/v1/runs/{id}/heartbeat"), Some(&k), json!({}))
        .await;
    assert_eq!(hb["stop_requested"], true);

    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/finish"),
            Some(&k),
            json!({"state": "running"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{id}/finish"),
            Some(&k),
            json!({"state": "done"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, r) = ctx
        .post(
            &format!("/api/v1/runs/{id}/finish"),
            Some(&k),
            json!({"state": "killed", "exit_code": 130}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["state"], "killed");
    assert_eq!(r["exit_code"], 130);
    assert!(r["finished_at"].is_string());
    let (s, b) = ctx
        .post(&format!("/api/v1/runs/{id}/heartbeat"), Some(&k), json!({}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    // Resuming brings it back.
    let (s, r) = ctx
        .post("/api/v1/runs", Some(&k), json!({"project": "p", "id": id}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["state"], "running");
    assert!(r["finished_at"].is_null() && r["exit_code"].is_null());
    assert_eq!(r["stop_requested"], false);
    // A run its client reported as crashed stays crashed; heartbeats do not revive it.
    ctx.post(
        &format!("/api/v1/runs/{id}/finish"),
        Some(&k),
        json!({"state": "crashed", "exit_code": 1}),
    )
    .await;
    let (s, b) = ctx
        .post(&format!("/api/v1/runs/{id}/heartbeat"), Some(&k), json!({}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_marks_silent_runs_crashed() {
    for backend in backends() {
        let ctx = Ctx::start_with(backend, |c| {
            c.heartbeat_timeout = Duration::from_millis(600)
        })
        .await;
        let k = ctx.user("alice").await;
        ctx.project(&k, "p", "private").await;
        let silent = ctx.run(&k, "p", json!({})).await;
        let alive = ctx.run(&k, "p", json!({})).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            ctx.post(
                &format!("/api/v1/runs/{alive}/heartbeat"),
                Some(&k),
                json!({}),
            )
            .await;
            let (_, r) = ctx.get(&format!("/api/v1/runs/{silent}"), Some(&k)).await;
            if r["state"] == "crashed" {
                assert!(r["finished_at"].is_string());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "reaper never ran: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, r) = ctx.get(&format!("/api/v1/runs/{alive}"), Some(&k)).await;
        assert_eq!(r["state"], "running", "a heartbeating run is left alone");
        // A late heartbeat from the "crashed" run revives it.
        let (s, hb) = ctx
            .post(
                &format!("/api/v1/runs/{silent}/heartbeat"),
                Some(&k),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(hb["state"], "running");
        ctx.stop().await;
    }
}

async fn ids(ctx: &Ctx, key: &str, query: &str) -> Vec<String> {
    let (s, page) = ctx
        .get(&format!("/api/v1/runs?project=s&{query}"), Some(key))
        .await;
    assert_eq!(s, StatusCode::OK, "{query}: {page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

each_backend!(search_filter_sort_and_page, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "s", "private").await;
    let specs: [(&str, f64, &str, f64, &str); 5] = [
        ("r0", 0.1, "adam", 0.50, "finished"),
        ("r1", 0.01, "sgd", 0.91, "finished"),
        ("r2", 0.001, "adam", 0.95, "crashed"),
        ("r3", 0.0001, "adam", 0.80, "running"),
        ("r4", 0.05, "sgd", f64::NAN, "running"),
    ];
    for (i, (name, lr, opt, acc, state)) in specs.into_iter().enumerate() {
        // Fixed ids: a generated one could contain "r2" and match the name search below.
        let id = ctx.run(&k, "s", json!({"id": format!("srch000{i}"), "name": name, "config": {"lr": lr, "optimizer": {"name": opt}, "deep": true}, "tags": [opt]})).await;
        let v: Value = if acc.is_nan() {
            json!("NaN")
        } else {
            json!(acc)
        };
        ctx.post(
            &format!("/api/v1/runs/{id}/history"),
            Some(&k),
            json!({"points": [{"step": 1, "values": {"val_acc": v}}]}),
        )
        .await;
        if state != "running" {
            ctx.post(
                &format!("/api/v1/runs/{id}/finish"),
                Some(&k),
                json!({"state": state}),
            )
            .await;
        }
    }
    assert_eq!(
        ids(&ctx, &k, "filter=config.lr%20%3C%200.01&sort=name").await,
        vec!["r2", "r3"]
    );
    assert_eq!(
        ids(
            &ctx,
            &k,
            "filter=summary.val_acc%20%3E%3D%200.9&sort=-summary.val_acc"
        )
        .await,
        vec!["r2", "r1"]
    );
    assert_eq!(
        ids(
            &ctx,
            &k,
            "filter=config.optimizer.name%20%3D%20adam&sort=config.lr"
        )
        .await,
        vec!["r3", "r2", "r0"]
    );
    assert_eq!(
        ids(
            &ctx,
            &k,
            "filter=config.deep%20%3D%20true%20and%20state%20%3D%20finished&sort=name"
        )
        .await,
        vec!["r0", "r1"]
    );
    assert_eq!(
        ids(&ctx, &k, "state=running&sort=name").await,
        vec!["r3", "r4"]
    );
    assert_eq!(ids(&ctx, &k, "tag=sgd&sort=-name").await, vec!["r4", "r1"]);
    assert_eq!(ids(&ctx, &k, "q=R2").await, vec!["r2"]);
    assert_eq!(
        ids(
            &ctx,
            &k,
            "filter=name%20~%20r&filter=config.lr%20%3E%200.02&sort=name"
        )
        .await,
        vec!["r0", "r4"]
    );
    // Sorting by a summary puts runs without a value last, in both directions.
    assert_eq!(
        ids(&ctx, &k, "sort=summary.val_acc").await,
        vec!["r0", "r3", "r1", "r2", "r4"]
    );
    // NaN summaries stay NaN on the wire.
    let (_, page) = ctx.get("/api/v1/runs?project=s&q=r4", Some(&k)).await;
    assert_eq!(page["items"][0]["summary"]["val_acc"], "NaN");

    // Cursor pages cover every run exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let q = if cursor.is_empty() {
            "limit=2&sort=name".to_string()
        } else {
            format!("limit=2&sort=name&cursor={cursor}")
        };
        let (_, page) = ctx
            .get(&format!("/api/v1/runs?project=s&{q}"), Some(&k))
            .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["r0", "r1", "r2", "r3", "r4"]);

    for bad in [
        "filter=config.lr%20%3C",
        "filter=bogus%20%3D%201",
        "filter=summary.acc%20%3E%20high",
        "sort=tag",
        "state=sleeping",
        "limit=abc",
        "limit=0",
        "cursor=zzz",
        "nonsense=1",
        "filter=config.lr%20%3C%3C%201",
    ] {
        let (s, b) = ctx
            .get(&format!("/api/v1/runs?project=s&{bad}"), Some(&k))
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let (s, b) = ctx.get("/api/v1/runs", Some(&k)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let _ = Backend::Sqlite;
});

each_backend!(config_merges_and_tags_change_one_at_a_time, |ctx| {
    let k = ctx.user("alice").await;
    let id = ctx
        .run(
            &k,
            "p",
            json!({"config": {"lr": 0.1, "epochs": 3, "opt": {"name": "sgd"}}, "tags": ["a"]}),
        )
        .await;
    let path = format!("/api/v1/runs/{id}");
    // Config keys merge into the running run's config; null removes one.
    let (s, r) = ctx
        .patch(
            &path,
            Some(&k),
            json!({"config": {"lr": 0.01, "batch_size": 64, "epochs": null}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["state"], "running");
    assert_eq!(
        r["config"],
        json!({"lr": 0.01, "batch_size": 64, "opt": {"name": "sgd"}})
    );
    let (s, b) = ctx.patch(&path, Some(&k), json!({"config": [1, 2]})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("config"),
        "{b}"
    );

    // One tag at a time: adding twice is a no-op, removing a missing one is a 404.
    let tags = format!("{path}/tags");
    let (s, r) = ctx
        .post(&tags, Some(&k), json!({"tag": "production-ready"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["tags"], json!(["a", "production-ready"]));
    let (s, r) = ctx
        .post(&tags, Some(&k), json!({"tag": "production-ready"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["tags"], json!(["a", "production-ready"]));
    let (_, page) = ctx
        .get("/api/v1/runs?project=p&tag=production-ready", Some(&k))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (s, r) = ctx.delete(&format!("{tags}/a"), Some(&k)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["tags"], json!(["production-ready"]));
    let (_, page) = ctx.get("/api/v1/runs?project=p&tag=a", Some(&k)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    let (s, b) = ctx.delete(&format!("{tags}/a"), Some(&k)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx.post(&tags, Some(&k), json!({"tag": ""})).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    // Concurrent adds of different tags all land.
    let adds = (0..8).map(|i| {
        let tags = tags.clone();
        let k = k.clone();
        let ctx = &ctx;
        async move {
            ctx.post(&tags, Some(&k), json!({"tag": format!("t{i}")}))
                .await
                .0
        }
    });
    for s in futures_util::future::join_all(adds).await {
        assert_eq!(s, StatusCode::OK);
    }
    let (_, r) = ctx.get(&path, Some(&k)).await;
    assert_eq!(r["tags"].as_array().unwrap().len(), 9, "{r}");

    // Outsiders cannot change tags of a private run.
    let bob = ctx.user("bob").await;
    let (s, _) = ctx.post(&tags, Some(&bob), json!({"tag": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});

each_backend!(an_unknown_stored_state_is_an_error_not_a_crash, |ctx| {
    let k = ctx.user("alice").await;
    let id = ctx.run(&k, "p", json!({})).await;
    let path = format!("/api/v1/runs/{id}");
    let (_, r) = ctx.get(&path, Some(&k)).await;
    assert_eq!(r["state"], "running");
    // A hand edit with a typo: the run must not read back as crashed (or anything else).
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE runs SET state = 'runing' WHERE id = $1")
            .bind(&id)
            .execute(pool)
            .await
            .unwrap();
    });
    let (s, b) = ctx.get(&path, Some(&k)).await;
    assert_error(s, &b, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    let (s, b) = ctx.get("/api/v1/runs?project=p", Some(&k)).await;
    assert_error(s, &b, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    // Mended, it reads back as it was.
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("UPDATE runs SET state = 'running' WHERE id = $1")
            .bind(&id)
            .execute(pool)
            .await
            .unwrap();
    });
    let (s, r) = ctx.get(&path, Some(&k)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["state"], "running");
});
