"""Calls written against endpoints the REST surface adds (name-first file URLs, sweep
warnings, registry by artifact version id). Each test probes its endpoint first and is
skipped, saying which, on a server that does not have it yet."""

from __future__ import annotations

import hashlib
import urllib.request

import pytest

import wanllmdb as wandb


def test_name_first_upload_register_and_download(env, api):
    run = wandb.init(project="sdk-contract", console="off", system_metrics=False)
    try:
        url = wandb.get_upload_url("model.pth")
    except (wandb.NotFound, wandb.UsageError) as e:
        pytest.skip(f"needs POST /runs/{{id}}/files/upload-url: {e}")
    data = b"\x01" * 1024
    req = urllib.request.Request(url, data=data, method="PUT")
    assert urllib.request.urlopen(req).status in (200, 201, 204)
    f = wandb.register_file("model.pth", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert f["path"] == "model.pth" and f["size"] == 1024
    got = urllib.request.urlopen(wandb.get_download_url("model.pth")).read()
    assert got == data
    wandb.finish()
    assert run.id


def test_sweep_warnings_become_python_warnings(env, api):
    cfg = {
        "method": "random",
        "metric": {"name": "acc", "goal": "maximize"},
        "parameters": {"lr": {"values": [0.1]}},
        "optuna_config": {"sampler": "TPESampler", "n_startup_trials": 5},
    }
    api.post("/projects", {"name": "sdk-contract-sweeps"})
    try:
        got = api.post("/projects/sdk-contract-sweeps/sweeps", {"config": cfg})
    except wandb.UsageError as e:
        pytest.skip(f"needs optuna_config.sampler and `warnings` in the sweep create answer: {e}")
    if not got.get("warnings"):
        pytest.skip(
            "needs `warnings` in the sweep create answer (none came for optuna_config on a random sweep)"
        )
    with pytest.warns(UserWarning, match="sweep"):
        wandb.sweep(cfg, project="sdk-contract-sweeps")


def test_model_version_from_an_artifact_version_id(env, api, tmp_path):
    (tmp_path / "m.bin").write_bytes(b"m")
    wandb.init(project="sdk-contract", console="off", system_metrics=False)
    art = wandb.Artifact("contract-model", type="model")
    art.add_file(str(tmp_path / "m.bin"))
    wandb.log_artifact(art)
    wandb.finish()
    wandb.register_model("contract-model", project="sdk-contract")
    from wanllmdb import _artifact

    _artifact.KNOWN_VERSIONS.clear()  # as if the artifact was logged by another process
    try:
        v = wandb.create_model_version(
            model_name="contract-model", artifact_version_id=art.version.id
        )
    except wandb.UsageError as e:
        pytest.skip(f"needs `artifact_version_id` in POST /models/{{name}}/versions: {e}")
    assert v.version == "v1"
