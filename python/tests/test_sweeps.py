"""Sweeps: create, control, suggest, and agent(function=) running real trials in-process."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for

import wanllmdb as wandb

CONFIG = {
    "method": "random",
    "metric": {"name": "val_accuracy", "goal": "maximize"},
    "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
        "batch_size": {"values": [16, 32, 64, 128]},
        "optimizer": {"values": ["adam", "sgd"]},
    },
}


def test_agent_runs_trials_with_suggested_config(env, api, monkeypatch):
    monkeypatch.setenv("WANLLMDB_SWEEP_HEARTBEAT", "0.2")
    sweep_id = wandb.sweep(CONFIG, project="sdk-sweep")
    seen = []

    def train():
        run = wandb.init(config={"epochs": 3})
        config = wandb.config
        seen.append((run.id, config.learning_rate, config.batch_size, config.epochs))
        wandb.log({"val_accuracy": config.batch_size / 128})

    wandb.agent(sweep_id, function=train, count=3)
    assert len(seen) == 3 and wandb.run is None
    for run_id, lr, bs, epochs in seen:
        assert epochs == 3, "the script's default joins the suggested parameters"
        run = api.get(f"/runs/{run_id}")
        assert run["state"] == "finished" and run["group"] == f"sweep-{sweep_id}"
        assert run["config"]["batch_size"] == bs and run["config"]["epochs"] == 3
        assert 0.0001 <= lr <= 0.1
    trials = api.get(f"/sweeps/{sweep_id}/trials")
    trials = trials if isinstance(trials, list) else trials["items"]
    assert {t["run_id"] for t in trials} == {s[0] for s in seen}
    imp = wandb.get_param_importance(sweep_id)
    assert set(imp) <= {"learning_rate", "batch_size", "optimizer"}
    coords = wandb.get_parallel_coords(sweep_id)
    assert len(coords["lines"]) == 3


def test_a_stopped_trial_raises_run_stopped_and_ends_killed(env, api, monkeypatch, server):
    monkeypatch.setenv("WANLLMDB_SWEEP_HEARTBEAT", "0.2")
    sweep_id = wandb.sweep(CONFIG, project="sdk-sweep-stop")
    started = threading.Event()
    caught = []

    def train():
        wandb.init()
        started.set()
        step = 0
        try:
            while True:
                wandb.log({"val_accuracy": 0.1, "step_no": step})
                step += 1
                if step > 2_000_000:
                    raise AssertionError("never stopped")
        except wandb.RunStopped as e:
            caught.append(e.reason)
            assert wandb.run.should_stop
            raise

    def cancel():
        started.wait(60)
        wait_for(
            lambda: api.get(f"/sweeps/{sweep_id}")["counts"]["running"] == 1, what="a running trial"
        )
        api.post(f"/sweeps/{sweep_id}/cancel", {})

    t = threading.Thread(target=cancel)
    t.start()
    wandb.agent(sweep_id, function=train, count=2)
    t.join()
    assert caught and "cancel" in caught[0]
    trials = api.get(f"/sweeps/{sweep_id}/trials")
    trials = trials if isinstance(trials, list) else trials["items"]
    assert len(trials) == 1, "the canceled sweep hands out nothing more"
    run = api.get(f"/runs/{trials[0]['run_id']}")
    assert run["state"] == "killed"


def test_sweep_control_suggest_and_create_sweep(env, api):
    sweep_id = wandb.create_sweep(
        name="lr-tuning",
        method="grid",
        metric_name="val_loss",
        metric_goal="minimize",
        config={"lr": {"values": [0.1, 0.01]}},
        project="sdk-sweep-ctl",
    )
    assert api.get(f"/sweeps/{sweep_id}")["name"] == "lr-tuning"
    wandb.pause_sweep(sweep_id)
    assert api.get(f"/sweeps/{sweep_id}")["state"] == "paused"
    wandb.resume_sweep(sweep_id)
    s = wandb.suggest_params(sweep_id)
    assert s["lr"] in (0.1, 0.01) and len(s.run_id) == 8
    wandb.finish_sweep(sweep_id)
    assert api.get(f"/sweeps/{sweep_id}")["state"] == "finished"
    with pytest.raises(wandb.UsageError, match="sweep"):
        wandb.sweep({"method": "nonsense"}, project="sdk-sweep-ctl")


def test_server_warnings_become_python_warnings_and_the_sampler_passes_through(env, api):
    cfg = {
        "method": "bayes",
        "metric": {"name": "acc", "goal": "maximize"},
        # W&B's log_uniform takes exponents: these bounds sample 1.0001 to 1.105.
        "parameters": {"lr": {"distribution": "log_uniform", "min": 0.0001, "max": 0.1}},
        "optuna_config": {"sampler": "RandomSampler", "n_startup_trials": 5},
    }
    with pytest.warns(UserWarning, match="log_uniform_values") as caught:
        sweep_id = wandb.sweep(cfg, project="sdk-sweep-warn")
    assert caught[0].filename == __file__, "the warning points at the caller's line"
    got = api.get(f"/sweeps/{sweep_id}")
    assert got["config"]["optuna_config"]["sampler"] == "RandomSampler"
    with pytest.warns(UserWarning, match="log_uniform_values"):
        wandb.create_sweep(
            name="parts",
            method="random",
            metric_name="acc",
            metric_goal="maximize",
            config=cfg["parameters"],
            project="sdk-sweep-warn",
        )
    with pytest.raises(wandb.UsageError, match="sampler"):
        wandb.sweep(dict(cfg, optuna_config={"sampler": "CmaEsSampler"}), project="sdk-sweep-warn")
