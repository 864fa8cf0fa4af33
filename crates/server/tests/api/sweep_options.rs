//! The product description's sweep options: Optuna's sampler names, warnings about
//! `log_uniform` bounds (which W&B reads as exponents), and deleting a sweep.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Ctx, assert_error, each_backend};

async fn create(ctx: &Ctx, k: &str, config: Value) -> (StatusCode, Value) {
    ctx.post(
        "/api/v1/projects/p/sweeps",
        Some(k),
        json!({ "config": config }),
    )
    .await
}

each_backend!(log_uniform_bounds_come_back_as_warnings, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    // The description's own example.
    let (s, sw) = create(
        &ctx,
        &k,
        json!({
            "method": "bayes",
            "metric": {"name": "val_accuracy", "goal": "maximize"},
            "parameters": {
                "learning_rate": {"distribution": "log_uniform", "min": 0.0001, "max": 0.1},
                "batch_size": {"values": [16, 32, 64, 128]},
                "dropout": {"distribution": "uniform", "min": 0.1, "max": 0.5},
                "optimizer": {"values": ["adam", "sgd", "rmsprop"]}
            },
            "early_terminate": {"type": "hyperband", "min_iter": 10}
        }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sw}");
    let warnings = sw["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{sw}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("parameters.learning_rate")
            && w.contains("1.0001 to 1.1052")
            && w.contains("log_uniform_values"),
        "{w}"
    );
    // A configuration without surprises has none.
    let (_, clean) = create(
        &ctx,
        &k,
        json!({"method": "random", "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1}}}),
    )
    .await;
    assert_eq!(clean["warnings"], json!([]));
});

each_backend!(samplers_by_optuna_name, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    for sampler in ["TPESampler", "RandomSampler"] {
        let (s, sw) = create(
            &ctx,
            &k,
            json!({"method": "bayes", "metric": {"name": "f1_score", "goal": "maximize"},
                   "optuna_config": {"sampler": sampler, "n_startup_trials": 2, "n_ei_candidates": 24},
                   "parameters": {"lr": {"min": 0.0001, "max": 0.1}, "weight_decay": {"min": 0, "max": 0.01}}}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{sw}");
        let id = sw["id"].as_str().unwrap();
        for _ in 0..4 {
            let (s, sg) = ctx
                .post(&format!("/api/v1/sweeps/{id}/suggest"), Some(&k), json!({}))
                .await;
            assert_eq!(s, StatusCode::OK, "{sg}");
            let lr = sg["params"]["lr"].as_f64().unwrap();
            assert!((0.0001..=0.1).contains(&lr), "{sg}");
        }
    }
    let (s, b) = create(
        &ctx,
        &k,
        json!({"method": "bayes", "metric": {"name": "f1", "goal": "maximize"},
               "optuna_config": {"sampler": "CmaEsSampler"},
               "parameters": {"lr": {"min": 0.0001, "max": 0.1}}}),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("TPESampler") && msg.contains("RandomSampler"),
        "{msg}"
    );
    assert_eq!(
        b["error"]["details"]["problems"][0]["path"],
        "optuna_config.sampler"
    );
});

each_backend!(deleting_a_sweep_keeps_its_runs, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let (_, sw) = create(
        &ctx,
        &k,
        json!({"name": "lr-tuning", "method": "random", "parameters": {"lr": {"values": [0.1, 0.01]}}}),
    )
    .await;
    let id = sw["id"].as_str().unwrap().to_string();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (_, sg) = ctx
            .post(&format!("/api/v1/sweeps/{id}/suggest"), Some(&k), json!({}))
            .await;
        let run = sg["run_id"].as_str().unwrap().to_string();
        ctx.run(
            &k,
            "p",
            json!({"id": run, "config": sg["config"], "notes": "tried lr"}),
        )
        .await;
        runs.push(run);
    }
    // A viewer may not delete it.
    let bob = ctx.user("bob").await;
    ctx.post(
        "/api/v1/projects/p/members",
        Some(&k),
        json!({"username": "bob", "role": "viewer"}),
    )
    .await;
    let (s, _) = ctx
        .delete(&format!("/api/v1/sweeps/{id}"), Some(&bob))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, d) = ctx.delete(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["detached_runs"], json!(runs));
    let (s, _) = ctx.get(&format!("/api/v1/sweeps/{id}"), Some(&k)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = ctx.get("/api/v1/projects/p/sweeps", Some(&k)).await;
    assert_eq!(list, json!([]));
    for run in &runs {
        let (s, r) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&k)).await;
        assert_eq!(s, StatusCode::OK);
        let notes = r["notes"].as_str().unwrap();
        assert!(notes.starts_with("tried lr\n"), "{notes}");
        assert!(
            notes.contains(&format!("Detached from sweep {id} (lr-tuning)")),
            "{notes}"
        );
        assert!(r["config"]["lr"].is_number(), "{r}");
    }
});
