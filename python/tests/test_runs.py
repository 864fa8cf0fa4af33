"""Runs: create, log with W&B's step semantics, config, summary, tags, logs, finish."""

from __future__ import annotations

from conftest import history

import wanllmdb as wandb


def test_a_run_records_config_metrics_and_ends_finished(env, api):
    run = wandb.init(
        project="sdk-basic",
        name="exp1",
        config={"lr": 0.001, "batch_size": 64},
        tags=["baseline", "v1"],
    )
    assert wandb.run is run
    assert wandb.config.lr == 0.001 and wandb.config["batch_size"] == 64
    for i in range(5):
        wandb.log({"loss": 1.0 / (i + 1), "acc": i / 10})
    wandb.finish()
    assert wandb.run is None
    got = api.get(f"/runs/{run.id}")
    assert got["state"] == "finished" and got["name"] == "exp1"
    assert got["config"] == {"lr": 0.001, "batch_size": 64}
    assert set(got["tags"]) == {"baseline", "v1"}
    h = history(api, run.id)
    assert h["loss"] == {i: 1.0 / (i + 1) for i in range(5)}
    assert h["acc"][4] == 0.4
