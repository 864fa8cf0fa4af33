//! Sweeps: validation, exact grid coverage across concurrent agents, retries, run caps,
//! targets, Hyperband stops, states, TPE suggestions and permissions.

use std::collections::BTreeSet;
use std::str::FromStr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use wanllmdb_server::Store;

use crate::{Backend, Ctx, assert_error, each_backend};

async fn sweep(ctx: &Ctx, k: &str, project: &str, config: Value) -> String {
    let (s, b) = ctx
        .post(
            &format!("/api/v1/projects/{project}/sweeps"),
            Some(k),
            json!({ "config": config }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_string()
}

async fn agent(ctx: &Ctx, k: &str, id: &str) -> String {
    let (s, b) = ctx
        .post(
            &format!("/api/v1/sweeps/{id}/agents"),
            Some(k),
            json!({"host": "gpu-1", "pid": 42}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["agent_id"].as_str().unwrap().to_string()
}

async fn heartbeat(ctx: &Ctx, k: &str, id: &str, agent: &str, running: &[&str]) -> Value {
    let (s, b) = ctx
        .post(
            &format!("/api/v1/sweeps/{id}/agents/{agent}/heartbeat"),
            Some(k),
            json!({"running": running, "want_run": running.is_empty()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

/// Starts the run a suggestion reserved, logs `values` for `metric`, and ends it.
async fn play(
    ctx: &Ctx,
    k: &str,
    project: &str,
    s: &Value,
    metric: &str,
    values: &[f64],
    end: &str,
) {
    let run = s["run_id"].as_str().unwrap();
    ctx.run(k, project, json!({"id": run, "config": s["config"]}))
        .await;
    log(ctx, k, run, metric, 0, values).await;
    if end != "running" {
        let (st, b) = ctx
            .post(
                &format!("/api/v1/runs/{run}/finish"),
                Some(k),
                json!({"state": end}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
}

async fn log(ctx: &Ctx, k: &str, run: &str, metric: &str, from: i64, values: &[f64]) {
    let points: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"step": from + i as i64, "values": {metric: v}}))
        .collect();
    let (s, b) = ctx
        .post(
            &format!("/api/v1/runs/{run}/history"),
            Some(k),
            json!({ "points": points }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn suggest(ctx: &Ctx, k: &str, id: &str) -> (StatusCode, Value) {
    ctx.post(&format!("/api/v1/sweeps/{id}/suggest"), Some(k), json!({}))
        .await
}

each_backend!(invalid_configs_list_every_problem, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let (s, b) = ctx
        .post(
            "/api/v1/projects/p/sweeps",
            Some(&k),
            json!({"config": {
                "method": "grid",
                "metric": {"goal": "up"},
                "parameters": {
                    "lr": {"min": 0.1, "max": 0.01},
                    "wd": {"distribution": "log_uniform", "min": 1, "max": 2},
                    "opt": {"values": []}
                },
                "early_terminate": {"type": "median"},
                "run_cap": 0,
                "colour": "blue"
            }}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let problems = b["error"]["details"]["problems"].as_array().unwrap();
    let paths: BTreeSet<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for want in [
        "colour",
        "metric.name",
        "metric.goal",
        "parameters.lr.max",
        "parameters.wd",
        "parameters.opt.values",
        "early_terminate.type",
        "run_cap",
    ] {
        assert!(paths.contains(want), "{want} missing from {paths:?}");
    }
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("parameters.lr.max: must be greater than min"),
        "{msg}"
    );
    // Nothing was created.
    let (_, list) = ctx.get("/api/v1/projects/p/sweeps", Some(&k)).await;
    assert_eq!(list, json!([]));
    // A config naming another project is refused rather than silently moved.
    let (s, b) = ctx
        .post(
            "/api/v1/projects/p/sweeps",
            Some(&k),
            json!({"config": {"method": "random", "project": "other", "parameters": {"a": {"values": [1]}}}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(
    grid_is_covered_exactly_once_across_concurrent_agents,
    |ctx| {
        let k = ctx.user("alice").await;
        ctx.project(&k, "p", "private").await;
        let id = sweep(
            &ctx,
            &k,
            "p",
            json!({
                "method": "grid",
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {
                    "layers": {"min": 1, "max": 3},
                    "optimizer": {"parameters": {
                        "name": {"values": ["adam", "sgd"]},
                        "lr": {"values": [0.1, 0.01]}
                    }},
                    "epochs": {"value": 5}
                }
            }),
        )
        .await;
        let (_, s) = ctx.get(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
        assert_eq!(s["state"], "pending");
        assert_eq!(s["grid_size"], 12);
        let agents = [
            agent(&ctx, &k, &id).await,
            agent(&ctx, &k, &id).await,
            agent(&ctx, &k, &id).await,
        ];
        // 18 idle heartbeats at once, through three agents: 12 runs, and exits for the rest.
        let calls = (0..18).map(|i| heartbeat(&ctx, &k, &id, &agents[i % 3], &[]));
        let answers = futures_util::future::join_all(calls).await;
        let mut points = BTreeSet::new();
        let mut runs = Vec::new();
        let mut exits = 0;
        for a in &answers {
            for c in a["commands"].as_array().unwrap() {
                match c["type"].as_str().unwrap() {
                    "run" => {
                        assert_eq!(c["params"]["epochs"], 5);
                        assert_eq!(
                            c["config"]["optimizer"]["name"],
                            c["params"]["optimizer.name"]
                        );
                        assert!(points.insert(c["params"].to_string()), "duplicate {c}");
                        runs.push(c.clone());
                    }
                    "exit" => exits += 1,
                    other => panic!("unexpected command {other}"),
                }
            }
        }
        assert_eq!(runs.len(), 12, "{answers:?}");
        assert_eq!(exits, 6);
        let mut combos = BTreeSet::new();
        for r in &runs {
            let p = &r["params"];
            combos.insert((
                p["layers"].as_i64().unwrap(),
                p["optimizer.name"].as_str().unwrap().to_string(),
                p["optimizer.lr"].to_string(),
            ));
        }
        assert_eq!(combos.len(), 12);
        // Running them to the end finishes the sweep.
        for (i, r) in runs.iter().enumerate() {
            play(
                &ctx,
                &k,
                "p",
                r,
                "loss",
                &[1.0 / (i as f64 + 1.0)],
                "finished",
            )
            .await;
        }
        let (_, s) = ctx.get(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
        assert_eq!(s["state"], "finished", "{s}");
        assert_eq!(s["counts"]["finished"], 12);
        assert_eq!(s["best"]["value"], 1.0 / 12.0);
        assert_eq!(s["agents"].as_array().unwrap().len(), 3);
        // The runs carry their parameters as config.
        let run = runs[0]["run_id"].as_str().unwrap();
        let (_, r) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&k)).await;
        assert_eq!(r["config"]["optimizer"], runs[0]["config"]["optimizer"]);
    }
);

each_backend!(crashed_points_can_be_retried, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let id = sweep(
        &ctx,
        &k,
        "p",
        json!({"method": "grid", "metric": {"name": "acc", "goal": "maximize"},
               "parameters": {"a": {"values": [1, 2]}}}),
    )
    .await;
    let (_, s1) = suggest(&ctx, &k, &id).await;
    let (_, s2) = suggest(&ctx, &k, &id).await;
    play(&ctx, &k, "p", &s1, "acc", &[0.1], "crashed").await;
    play(&ctx, &k, "p", &s2, "acc", &[0.9], "finished").await;
    let (s, b) = suggest(&ctx, &k, &id).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (_, sw) = ctx.get(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
    assert_eq!(sw["state"], "finished");
    let (s, r) = ctx
        .post(
            &format!("/api/v1/sweeps/{id}/retry-failed"),
            Some(&k),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["queued"], 1);
    let (s, again) = suggest(&ctx, &k, &id).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["params"], s1["params"]);
    assert_ne!(again["run_id"], s1["run_id"]);
    // Nothing more to retry; queuing again finds nothing.
    let (_, r) = ctx
        .post(
            &format!("/api/v1/sweeps/{id}/retry-failed"),
            Some(&k),
            json!({}),
        )
        .await;
    assert_eq!(r["queued"], 0);
    play(&ctx, &k, "p", &again, "acc", &[0.95], "finished").await;
    let (_, trials) = ctx
        .get(&format!("/api/v1/sweeps/{id}/trials"), Some(&k))
        .await;
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[2]["retry_of"], 1);
    assert_eq!(trials[0]["state"], "crashed");
    let (_, sw) = ctx.get(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
    assert_eq!(sw["state"], "finished");
    assert_eq!(sw["best"]["value"], 0.95);
});

each_backend!(run_cap_and_target_end_the_sweep, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let capped = sweep(
        &ctx,
        &k,
        "p",
        json!({"method": "random", "run_cap": 3, "parameters": {"x": {"min": 0.0, "max": 1.0}}}),
    )
    .await;
    for _ in 0..3 {
        let (s, b) = suggest(&ctx, &k, &capped).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let x = b["params"]["x"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x));
    }
    let (s, b) = suggest(&ctx, &k, &capped).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(b["error"]["message"].as_str().unwrap().contains("run cap"));

    let target = sweep(
        &ctx,
        &k,
        "p",
        json!({"method": "bayes", "metric": {"name": "loss", "goal": "minimize", "target": 0.1},
               "parameters": {"x": {"min": -1.0, "max": 1.0}}}),
    )
    .await;
    let (_, s1) = suggest(&ctx, &k, &target).await;
    play(&ctx, &k, "p", &s1, "loss", &[0.5], "finished").await;
    let (_, s2) = suggest(&ctx, &k, &target).await;
    play(&ctx, &k, "p", &s2, "loss", &[0.05], "running").await;
    let (_, sw) = ctx.get(&format!("/api/v1/sweeps/{target}"), Some(&k)).await;
    assert_eq!(sw["state"], "finished", "{sw}");
    assert!(sw["finish_reason"].as_str().unwrap().contains("target"));
    let (s, _) = suggest(&ctx, &k, &target).await;
    assert_eq!(s, StatusCode::CONFLICT);
});

each_backend!(hyperband_stops_losers_through_the_agent, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let id = sweep(
        &ctx,
        &k,
        "p",
        json!({"method": "random", "metric": {"name": "loss", "goal": "minimize"},
               "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
               "parameters": {"x": {"values": [1, 2, 3, 4]}}}),
    )
    .await;
    let a = agent(&ctx, &k, &id).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let hb = heartbeat(&ctx, &k, &id, &a, &[]).await;
        let c = &hb["commands"][0];
        assert_eq!(c["type"], "run", "{hb}");
        runs.push(c.clone());
    }
    // Band 2: values 0.2, 0.4, 0.6, 0.8 → the better half passes (threshold 0.6).
    play(
        &ctx,
        &k,
        "p",
        &runs[0],
        "loss",
        &[1.0, 0.2, 0.1],
        "finished",
    )
    .await;
    play(&ctx, &k, "p", &runs[1], "loss", &[1.0, 0.4], "running").await;
    play(&ctx, &k, "p", &runs[2], "loss", &[1.0, 0.8], "running").await;
    play(&ctx, &k, "p", &runs[3], "loss", &[1.0], "running").await;
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    // Run 3 is past band 2 and worse than the threshold; run 2 is better; run 4 has not
    // reached the band.
    for (i, want_stop) in [(1, false), (2, true), (3, false)] {
        let hb = heartbeat(&ctx, &k, &id, &a, &[ids[i]]).await;
        let cmds = hb["commands"].as_array().unwrap();
        if want_stop {
            assert_eq!(cmds.len(), 1, "{hb}");
            assert_eq!(cmds[0]["type"], "stop");
            assert_eq!(cmds[0]["run_id"], ids[i]);
            assert_eq!(cmds[0]["reason"], "early-terminated");
        } else {
            assert!(cmds.is_empty(), "run {i}: {hb}");
        }
    }
    // The run's own heartbeat hears it too (runs started by hand have no agent).
    let (_, r) = ctx.get(&format!("/api/v1/runs/{}", ids[2]), Some(&k)).await;
    assert_eq!(r["stop_requested"], true);
    // Run 4 falls behind once it reaches the band.
    log(&ctx, &k, ids[3], "loss", 1, &[0.9]).await;
    let hb = heartbeat(&ctx, &k, &id, &a, &[ids[3]]).await;
    assert_eq!(hb["commands"][0]["type"], "stop", "{hb}");
    // Killed without a reason of its own, the run takes the sweep's.
    let (_, r) = ctx
        .post(
            &format!("/api/v1/runs/{}/finish", ids[2]),
            Some(&k),
            json!({"state": "killed"}),
        )
        .await;
    assert_eq!(r["state"], "killed");
    assert_eq!(r["end_reason"], "early-terminated");
    let (_, trials) = ctx
        .get(&format!("/api/v1/sweeps/{id}/trials"), Some(&k))
        .await;
    let stopped: Vec<&Value> = trials
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["stop_reason"].is_null())
        .collect();
    assert_eq!(stopped.len(), 2);
});

each_backend!(pause_resume_finish_cancel, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let id = sweep(
        &ctx,
        &k,
        "p",
        json!({"method": "random", "parameters": {"x": {"distribution": "normal"}}}),
    )
    .await;
    let a = agent(&ctx, &k, &id).await;
    let (s, b) = ctx
        .post(&format!("/api/v1/sweeps/{id}/pause"), Some(&k), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "paused");
    let (s, b) = suggest(&ctx, &k, &id).await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    assert!(b["error"]["message"].as_str().unwrap().contains("resume"));
    let hb = heartbeat(&ctx, &k, &id, &a, &[]).await;
    assert_eq!(hb["commands"], json!([]));
    assert_eq!(hb["state"], "paused");
    let (_, b) = ctx
        .post(&format!("/api/v1/sweeps/{id}/resume"), Some(&k), json!({}))
        .await;
    assert_eq!(b["state"], "running");
    let hb = heartbeat(&ctx, &k, &id, &a, &[]).await;
    let run = hb["commands"][0].clone();
    assert_eq!(run["type"], "run");
    assert!(run["params"]["x"].is_number());
    play(&ctx, &k, "p", &run, "loss", &[1.0], "running").await;
    let run_id = run["run_id"].as_str().unwrap();
    let (s, b) = ctx
        .post(&format!("/api/v1/sweeps/{id}/bogus"), Some(&k), json!({}))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (_, b) = ctx
        .post(&format!("/api/v1/sweeps/{id}/cancel"), Some(&k), json!({}))
        .await;
    assert_eq!(b["state"], "canceled");
    let hb = heartbeat(&ctx, &k, &id, &a, &[run_id]).await;
    assert_eq!(hb["commands"][0]["type"], "stop", "{hb}");
    assert_eq!(hb["commands"][0]["reason"], "sweep-canceled");
    let hb = heartbeat(&ctx, &k, &id, &a, &[]).await;
    assert_eq!(hb["commands"][0]["type"], "exit", "{hb}");
    let (s, b) = ctx
        .post(&format!("/api/v1/sweeps/{id}/resume"), Some(&k), json!({}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = ctx
        .post(&format!("/api/v1/sweeps/{id}/agents"), Some(&k), json!({}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, _) = ctx
        .delete(&format!("/api/v1/sweeps/{id}/agents/{a}"), Some(&k))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, sw) = ctx.get(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
    assert_eq!(sw["agents"][0]["state"], "exited");
    assert_eq!(
        ctx.count("SELECT COUNT(*) FROM audit_events WHERE action = 'sweep_state_change' AND resource = $1", &format!("sweep:{id}")).await,
        3
    );
});

each_backend!(bayes_uses_history_and_spreads_parallel_suggestions, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let id = sweep(
        &ctx,
        &k,
        "p",
        json!({"method": "bayes", "metric": {"name": "loss", "goal": "minimize"},
               "optuna_config": {"n_startup_trials": 4, "seed": 7},
               "parameters": {
                   "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
                   "layers": {"min": 1, "max": 8},
                   "opt": {"values": ["adam", "sgd"]}}}),
    )
    .await;
    for _ in 0..8 {
        let (s, b) = suggest(&ctx, &k, &id).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let lr = b["params"]["lr"].as_f64().unwrap();
        let layers = b["params"]["layers"].as_i64().unwrap();
        assert!((0.0001..=0.1).contains(&lr), "{b}");
        assert!((1..=8).contains(&layers), "{b}");
        assert!(["adam", "sgd"].contains(&b["params"]["opt"].as_str().unwrap()));
        let loss = (lr.log10() + 2.0).powi(2) + (layers as f64 - 4.0).abs() * 0.1;
        play(&ctx, &k, "p", &b, "loss", &[loss], "finished").await;
    }
    // Suggestions made while earlier ones still run are not all the same.
    let mut pending = BTreeSet::new();
    for _ in 0..3 {
        let (_, b) = suggest(&ctx, &k, &id).await;
        pending.insert(b["params"].to_string());
    }
    assert!(pending.len() >= 2, "{pending:?}");
    let (s, a) = ctx
        .get(&format!("/api/v1/sweeps/{id}/analysis"), Some(&k))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["top"].as_array().unwrap().len(), 8);
    let vals: Vec<f64> = a["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_f64().unwrap())
        .collect();
    assert!(vals.windows(2).all(|w| w[0] <= w[1]), "{vals:?}");
    assert_eq!(a["axes"].as_array().unwrap().len(), 4);
    assert_eq!(a["lines"].as_array().unwrap().len(), 8);
    assert_eq!(a["importance"].as_array().unwrap().len(), 3);
    let opt_axis = a["axes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "opt")
        .unwrap();
    assert_eq!(opt_axis["kind"], "categorical");
    assert_eq!(opt_axis["categories"], json!(["adam", "sgd"]));
});

each_backend!(sweep_permissions, |ctx| {
    let owner = ctx.user("olive").await;
    let viewer = ctx.user("vera").await;
    let outsider = ctx.user("otto").await;
    ctx.project(&owner, "team", "private").await;
    let (s, _) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&owner),
            json!({"username": "vera", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = sweep(
        &ctx,
        &owner,
        "team",
        json!({"method": "random", "parameters": {"x": {"values": [1, 2]}}}),
    )
    .await;
    let (s, _) = ctx
        .get(&format!("/api/v1/sweeps/{id}"), Some(&viewer))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = suggest(&ctx, &viewer, &id).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/sweeps",
            Some(&viewer),
            json!({"config": {"method": "random", "parameters": {"x": {"values": [1]}}}}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, b) = ctx
        .get(&format!("/api/v1/sweeps/{id}"), Some(&outsider))
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .post(
            &format!("/api/v1/sweeps/{id}/cancel"),
            Some(&outsider),
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx.get("/api/v1/sweeps/nope1234", Some(&owner)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .post(
            &format!("/api/v1/sweeps/{id}/agents/nope/heartbeat"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/sweeps",
            Some(&owner),
            json!({"config": "method: grid"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
});

/// A store with connections of its own on `ctx`'s database.
async fn own_store(ctx: &Ctx) -> Store {
    match ctx.backend {
        Backend::Sqlite => {
            let db = ctx._dir.path().join("t.db");
            Store::open(&format!("sqlite://{}", db.display()))
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let (base, schema) = ctx.pg_schema.clone().unwrap();
            let opts = PgConnectOptions::from_str(&base)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            Store::open_postgres(opts).await.unwrap()
        }
    }
}

/// (state, value, stop reason) of each trial, as `ctx` lists them.
async fn outcomes(ctx: &Ctx, k: &str, id: &str) -> Vec<(String, Value, Value)> {
    let (s, b) = ctx
        .get(&format!("/api/v1/sweeps/{id}/trials"), Some(k))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().to_string(),
                t["value"].clone(),
                t["stop_reason"].clone(),
            )
        })
        .collect()
}

fn outcome(state: &str, value: Value) -> (String, Value, Value) {
    (state.to_string(), value, Value::Null)
}

each_backend!(
    trials_read_through_the_cache_follow_changes_from_another_replica,
    |ctx| {
        let k = ctx.user("alice").await;
        ctx.project(&k, "p", "private").await;
        let id = sweep(
            &ctx,
            &k,
            "p",
            json!({"method": "random", "metric": {"name": "loss", "goal": "minimize"},
               "parameters": {"x": {"min": 0.0, "max": 1.0}}}),
        )
        .await;
        // A second server on the same database, with caches of its own, makes every change; the
        // first one has read (and cached) the trials before each.
        let dir = tempfile::tempdir().unwrap();
        let other = Ctx::serve(ctx.backend, own_store(&ctx).await, dir, Some(&k)).await;
        let mut s = Vec::new();
        for _ in 0..3 {
            let (st, b) = suggest(&ctx, &k, &id).await;
            assert_eq!(st, StatusCode::OK, "{b}");
            s.push(b);
        }
        let pending = || outcome("pending", Value::Null);
        assert_eq!(
            outcomes(&ctx, &k, &id).await,
            [pending(), pending(), pending()]
        );

        // A run starts and logs.
        play(&other, &k, "p", &s[0], "loss", &[0.5], "running").await;
        assert_eq!(
            outcomes(&ctx, &k, &id).await,
            [outcome("running", json!(0.5)), pending(), pending()]
        );
        // It logs again and finishes.
        log(
            &other,
            &k,
            s[0]["run_id"].as_str().unwrap(),
            "loss",
            1,
            &[0.25],
        )
        .await;
        let run0 = s[0]["run_id"].as_str().unwrap();
        let (st, b) = other
            .post(
                &format!("/api/v1/runs/{run0}/finish"),
                Some(&k),
                json!({"state": "finished"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        assert_eq!(
            outcomes(&ctx, &k, &id).await,
            [outcome("finished", json!(0.25)), pending(), pending()]
        );
        // Its summary is set by hand after it finished.
        let (st, b) = other
            .post(
                &format!("/api/v1/runs/{run0}/summary"),
                Some(&k),
                json!({"values": {"loss": 0.125}}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        assert_eq!(
            outcomes(&ctx, &k, &id).await[0],
            outcome("finished", json!(0.125))
        );

        // Another trial crashes; a third finishes, and then its run is deleted.
        play(&other, &k, "p", &s[1], "loss", &[0.75], "crashed").await;
        play(&other, &k, "p", &s[2], "loss", &[0.375], "finished").await;
        assert_eq!(
            outcomes(&ctx, &k, &id).await,
            [
                outcome("finished", json!(0.125)),
                outcome("crashed", json!(0.75)),
                outcome("finished", json!(0.375))
            ]
        );
        let run2 = s[2]["run_id"].as_str().unwrap();
        let (st, b) = other
            .delete(&format!("/api/v1/runs/{run2}"), Some(&k))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
        let after = outcomes(&ctx, &k, &id).await;
        assert_eq!(after.len(), 3);
        assert_eq!(after[2].1, Value::Null, "{after:?}");

        // A trial handed out elsewhere, and the sweep canceled there: the unstarted one stops.
        let (st, b) = suggest(&other, &k, &id).await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let (st, b) = other
            .post(&format!("/api/v1/sweeps/{id}/cancel"), Some(&k), json!({}))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let last = outcomes(&ctx, &k, &id).await;
        assert_eq!(last.len(), 4, "{last:?}");
        assert_eq!(last[3].2, json!("sweep-canceled"), "{last:?}");
        assert_eq!(last[0], outcome("finished", json!(0.125)));

        // Deleted on the first server: gone, and not served from its cache.
        let (st, b) = ctx.delete(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let (st, b) = ctx
            .get(&format!("/api/v1/sweeps/{id}/trials"), Some(&k))
            .await;
        assert_error(st, &b, StatusCode::NOT_FOUND, "not_found");
        other.stop().await;
    }
);
