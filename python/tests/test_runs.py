"""Runs: create, log with W&B's step semantics, config, summary, tags, logs, finish."""

from __future__ import annotations

import hashlib
import math
import urllib.request
import warnings

import pytest
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


def test_step_and_commit_follow_wandb(env, api):
    run = wandb.init(project="sdk-steps")
    wandb.log({"a": 1})  # step 0
    wandb.log({"b": 2}, commit=False)  # gathers into step 1
    wandb.log({"c": 3})  # commits step 1
    wandb.log({"a": 4}, step=5)  # moves to step 5, not committed
    wandb.log({"b": 5}, step=5)  # same step: merged
    wandb.log({"a": 6})  # step 5 again (commits it), counter moves to 6
    with pytest.warns(UserWarning, match="lower than the current step"):
        wandb.log({"a": 99}, step=2)
    wandb.log({"a": 7}, step=2)  # dropped again, but warned only once
    assert run.step == 6
    wandb.log({"a": 8})
    wandb.finish()
    h = history(api, run.id)
    assert h["a"] == {0: 1, 5: 6, 6: 8}
    assert h["b"] == {1: 2, 5: 5}
    assert h["c"] == {1: 3}


def test_non_finite_nested_numpy_like_and_bad_values(env, api):
    class Scalar:
        def __init__(self, v):
            self.v = v

        def item(self):
            return self.v

    run = wandb.init(project="sdk-values")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wandb.log(
            {
                "nan": math.nan,
                "inf": math.inf,
                "ninf": -math.inf,
                "ok": True,
                "train": {"loss": 0.5, "deep": {"x": 2}},
                "t": Scalar(0.25),
                "name": "text",
                "arr": [1, 2],
            }
        )
        wandb.log({"name": "again", "ok": False})
        assert math.isnan(run.summary["nan"]) and run.summary["inf"] == math.inf
        # The background thread reports what it left out; finish() waits for it.
        wandb.finish()
    msgs = [str(w.message) for w in caught]
    assert sum("'name' was not logged" in m for m in msgs) == 1
    assert sum("'arr' was not logged" in m for m in msgs) == 1
    h = history(api, run.id)
    assert h["nan"][0] == "NaN" and h["inf"][0] == "Infinity" and h["ninf"][0] == "-Infinity"
    assert h["train/loss"][0] == 0.5 and h["train/deep/x"][0] == 2 and h["t"][0] == 0.25
    assert h["ok"] == {0: 1, 1: 0}
    assert "name" not in h and "arr" not in h


def test_config_update_namespace_and_locked_values(env, api):
    import argparse

    ns = argparse.Namespace(lr=0.1, layers=3)
    run = wandb.init(project="sdk-config", config=ns)
    wandb.config.update({"model": "resnet50"})
    wandb.config.dropout = 0.2
    with pytest.raises(wandb.ConfigError, match="lr"):
        wandb.config.update({"lr": 0.5})
    wandb.config.update({"lr": 0.5}, allow_val_change=True)
    assert wandb.config.as_dict() == {"lr": 0.5, "layers": 3, "model": "resnet50", "dropout": 0.2}
    wandb.finish()
    assert api.get(f"/runs/{run.id}")["config"] == {
        "lr": 0.5,
        "layers": 3,
        "model": "resnet50",
        "dropout": 0.2,
    }


def test_summary_is_last_values_unless_set_or_defined(env, api):
    run = wandb.init(project="sdk-summary")
    run.define_metric("val_loss", summary="min")
    for v in (0.9, 0.3, 0.5):
        wandb.log({"val_loss": v, "acc": v})
    run.summary["best_epoch"] = 2
    assert run.summary["acc"] == 0.5 and run.summary["val_loss"] == 0.3
    wandb.finish()
    s = api.get(f"/runs/{run.id}")["summary"]
    assert s["acc"] == 0.5 and s["val_loss"] == 0.3 and s["best_epoch"] == 2


def test_tags_messages_and_captured_output(env, api, capsys):
    run = wandb.init(project="sdk-logs", tags=["baseline"])
    wandb.add_tag("production-ready")
    wandb.remove_tag("baseline")
    print("Training started...")
    wandb.log_message("Custom log message", level="WARNING")
    wandb.log_batch([{"level": "INFO", "message": "Epoch 1 started"}, {"message": "Loss: 0.5"}])
    with pytest.raises(wandb.UsageError, match="level"):
        wandb.log_message("x", level="LOUD")
    wandb.finish()
    assert "Training started..." in capsys.readouterr().out
    got = api.get(f"/runs/{run.id}")
    assert got["tags"] == ["production-ready"]
    lines = api.get(f"/runs/{run.id}/logs")["items"]
    by_msg = {ln["message"]: ln for ln in lines}
    assert by_msg["Training started..."]["source"] == "stdout"
    assert by_msg["Custom log message"]["level"] == "WARNING"
    assert by_msg["Custom log message"]["source"] == "sdk"
    assert "Epoch 1 started" in by_msg and "Loss: 0.5" in by_msg


def test_context_manager_marks_a_crash(env, api):
    with pytest.raises(RuntimeError), wandb.init(project="sdk-ctx") as run:
        wandb.log({"x": 1})
        raise RuntimeError("boom")
    got = api.get(f"/runs/{run.id}")
    assert got["state"] == "crashed"
    assert history(api, run.id)["x"] == {0: 1}


def test_disabled_mode_does_nothing(env, api):
    run = wandb.init(project="sdk-disabled", mode="disabled")
    wandb.log({"x": 1})
    wandb.config.update({"a": 1})
    wandb.finish()
    with pytest.raises(wandb.NotFound):
        api.get(f"/runs/{run.id}")


def test_bad_credentials_and_unwritable_project_fail_at_init(env, api, server, monkeypatch):
    monkeypatch.setenv("WANLLMDB_API_KEY", "wlk_not_a_real_key")
    with pytest.raises(wandb.AuthenticationError, match="API key"):
        wandb.init(project="sdk-auth")
    # A second account that is not a member of a private project.
    api.post("/projects", {"name": "sdk-private", "visibility": "private"})
    api.post(
        "/admin/users",
        {"username": "outsider", "email": "o@example.com", "password": "Outsider-pass-123!"},
    )
    tokens = server.api(None).post(
        "/auth/login", {"username": "outsider", "password": "Outsider-pass-123!"}
    )
    key = server.api(tokens["access_token"]).post("/auth/api-keys", {"name": "t"})["key"]
    monkeypatch.setenv("WANLLMDB_API_KEY", key)
    with pytest.raises((wandb.PermissionDenied, wandb.NotFound), match="sdk-private"):
        wandb.init(project="sdk-private")


def test_unreachable_server_falls_back_to_offline_with_a_warning(env, tmp_path):
    with pytest.warns(UserWarning, match="recorded offline") as at_init:
        run = wandb.init(project="sdk-down", host="http://127.0.0.1:9")
    wandb.log({"x": 1})
    with pytest.warns(UserWarning, match="wanllmdb sync") as at_finish:
        wandb.finish()
    # Each warning points at the script's own line, not inside the package.
    ours = [
        w
        for w in (*at_init, *at_finish)
        if "recorded offline" in str(w.message) or "wanllmdb sync" in str(w.message)
    ]
    assert len(ours) == 2 and all(w.filename == __file__ for w in ours), ours
    lines = (tmp_path / "spool" / "runs" / run.id / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"x":1' in lines[0]


def test_unsupported_wandb_names_warn_once(env, api):
    run = wandb.init(project="sdk-compat")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wandb.watch(object())
        wandb.watch(object())
        img = wandb.Image("x.png")
        wandb.log({"pic": img, "loss": 1.0})
        wandb.log({"pic": wandb.Image("y.png"), "loss": 2.0})
        wandb.finish()
    msgs = [str(w.message) for w in caught]
    assert sum("wandb.watch()" in m for m in msgs) == 1
    # Once for the class, once for the key it was logged under.
    assert sum("wandb.Image" in m for m in msgs) == 2
    assert {k for k in history(api, run.id) if not k.startswith("system/")} == {"loss"}


def test_queries_tags_of_other_runs_and_projects(env, api):
    wandb.create_project("sdk-team", visibility="private", description="team")
    ids = []
    for acc in (0.7, 0.9, 0.8):
        r = wandb.init(project="sdk-team", config={"acc_target": acc})
        wandb.log({"accuracy": acc})
        wandb.finish()
        ids.append(r.id)
    runs = wandb.list_runs("sdk-team")
    assert {r.id for r in runs} == set(ids)
    best = sorted(runs, key=lambda r: r.metrics["accuracy"], reverse=True)
    wandb.add_tag(best[0], "production-candidate")
    assert "production-candidate" in api.get(f"/runs/{ids[1]}")["tags"]
    assert wandb.get_best_run(metric="accuracy", order="max", project="sdk-team").id == ids[1]
    assert wandb.get_best_run(metric="accuracy", order="min", project="sdk-team").id == ids[0]
    filtered = wandb.list_runs(
        "sdk-team", filters={"summary.accuracy": {"$gte": 0.8}}, order="-summary.accuracy"
    )
    assert [r.id for r in filtered] == [ids[1], ids[2]]


def test_resume_continues_a_run(env, api):
    run = wandb.init(project="sdk-resume", id="resume01")
    wandb.log({"x": 1})
    wandb.finish()
    run2 = wandb.init(project="sdk-resume", id="resume01", resume="must")
    assert run2.id == run.id
    wandb.log({"x": 2}, step=1)
    wandb.finish()
    assert history(api, "resume01")["x"] == {0: 1, 1: 2}
    with pytest.raises(wandb.UsageError, match="already exists"):
        wandb.init(project="sdk-resume", id="resume01", resume="never")
    with pytest.raises(wandb.NotFound, match="does not exist"):
        wandb.init(project="sdk-resume", id="nosuch01", resume="must")


def test_saved_files_are_attached(env, api, tmp_path):
    (tmp_path / "config.yaml").write_text("lr: 0.1\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "a.pt").write_bytes(b"\x00" * 100)
    run = wandb.init(project="sdk-files")
    assert wandb.save("config.yaml") == ["config.yaml"]
    assert wandb.save("checkpoints/*") == ["checkpoints/a.pt"]
    wandb.finish()
    files = {f["path"]: f for f in api.get(f"/runs/{run.id}/files")}
    assert files["config.yaml"]["size"] == 8 and files["checkpoints/a.pt"]["size"] == 100


def test_name_first_upload_register_and_download(env, api, server):
    run = wandb.init(project="sdk-file-urls", console="off", system_metrics=False)
    url = wandb.get_upload_url("model.pth")
    assert url.startswith(server.url + "/"), "an absolute URL on the server"
    data = b"\x01" * 1024
    # A plain PUT of the bytes, as `requests.put(url, data=f)` sends it: no credentials.
    put = urllib.request.Request(url, data=data, method="PUT")
    assert urllib.request.urlopen(put).status == 200
    with pytest.raises(wandb.UsageError, match="size"):
        wandb.register_file("model.pth", size=len(data) + 1)
    f = wandb.register_file("model.pth", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert f["path"] == "model.pth" and f["size"] == 1024
    assert urllib.request.urlopen(wandb.get_download_url("model.pth")).read() == data
    with pytest.raises(wandb.NotFound, match=r"missing\.bin"):
        wandb.get_download_url("missing.bin")
    wandb.finish()
    assert [f["path"] for f in api.get(f"/runs/{run.id}/files")] == ["model.pth"]


def test_tags_of_another_run_are_added_and_removed(env, api):
    other = wandb.init(project="sdk-other-tags", tags=["baseline"])
    wandb.finish()
    wandb.init(project="sdk-other-tags")
    wandb.add_tag(other.id, "best")
    wandb.remove_tag(other, "baseline")
    assert api.get(f"/runs/{other.id}")["tags"] == ["best"]
    with pytest.raises(wandb.NotFound, match="baseline"):
        wandb.remove_tag(other.id, "baseline")
    wandb.finish()


def test_init_says_where_the_run_is_and_its_url_is_its_page(env, api, capsys, monkeypatch):
    run = wandb.init(project="sdk-url", console="off", system_metrics=False)
    wandb.finish()
    assert f"run {run.id} in project sdk-url; view it at {run.url}" in capsys.readouterr().err
    status, _, page = api.raw("GET", run.url)
    assert status == 200 and run.id in page.decode()
    monkeypatch.setenv("WANLLMDB_QUIET", "1")
    offline = wandb.init(project="sdk-url", mode="offline", console="off", system_metrics=False)
    wandb.finish(quiet=True)
    assert offline.id not in capsys.readouterr().err
