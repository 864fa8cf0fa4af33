"""The spool: offline runs uploaded by `wanllmdb sync`, the shared fixture read by the SDK,
and nothing lost when the training process or the server is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, Server, child_env, cli, history, new_database, wait_for

import wanllmdb as wandb

FIXTURE = REPO / "tests" / "fixtures" / "spool"


def _json_history(api, run_id):
    return {k: {str(s): v for s, v in pts.items()} for k, pts in history(api, run_id).items()}


def test_offline_runs_upload_with_wanllmdb_sync(env, api, tmp_path):
    run = wandb.init(project="sdk-offline", mode="offline", config={"lr": 0.1}, tags=["off"])
    for i in range(300):
        wandb.log({"loss": 1 / (i + 1), "nan": float("nan")})
    wandb.log_message("offline message")
    run.summary["best"] = 0.5
    wandb.config.update({"extra": 1})
    wandb.add_tag("later")
    with pytest.warns(UserWarning, match="wanllmdb sync"):
        wandb.finish()
    with pytest.raises(wandb.NotFound):
        api.get(f"/runs/{run.id}")
    out = cli(env, "sync", str(tmp_path / "spool"))
    assert out.returncode == 0, out.stderr
    got = api.get(f"/runs/{run.id}")
    assert got["state"] == "finished"
    assert got["config"] == {"lr": 0.1, "extra": 1}
    assert set(got["tags"]) == {"off", "later"}
    assert got["summary"]["best"] == 0.5
    h = history(api, run.id)
    assert len(h["loss"]) == 300 and h["loss"][299] == 1 / 300 and h["nan"][0] == "NaN"
    msgs = [ln["message"] for ln in api.get(f"/runs/{run.id}/logs")["items"]]
    assert msgs == ["offline message"]


def test_the_shared_fixture_spool_is_read_and_shipped_by_the_sdk(env, api, tmp_path):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    shutil.copytree(FIXTURE / "runs", tmp_path / "spool" / "runs")
    run = wandb.init(
        project=expected["project"],
        id=expected["run"],
        resume="allow",
        config=expected["config"],
        system_metrics=False,
        console="off",
    )
    wandb.log({"after": 1.0}, step=8)
    wandb.finish()
    got = api.get(f"/runs/{run.id}")
    assert got["state"] == "finished" and got["config"] == expected["config"]
    assert got["summary"]["best_acc"] == expected["summary"]["best_acc"]
    h = _json_history(api, run.id)
    assert h.pop("after") == {"8": 1.0}
    assert h == expected["history"]
    msgs = [ln["message"] for ln in api.get(f"/runs/{run.id}/logs")["items"]]
    assert msgs == expected["logs"]


TRAIN_AND_WAIT = textwrap.dedent("""
    import os, sys, time
    import wanllmdb as wandb
    run = wandb.init(project=sys.argv[1], id=sys.argv[2], console="off", system_metrics=False)
    for i in range(int(sys.argv[3])):
        wandb.log({"loss": 1.0 / (i + 1), "i": i})
    print("logged", flush=True)
    time.sleep(600)
""")


def test_kill_9_of_the_training_process_loses_nothing_written(env, api, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_AND_WAIT)
    proc = subprocess.Popen(
        [sys.executable, str(script), "sdk-kill", "killed01", "500"],
        env=child_env(env),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
    metrics = tmp_path / "spool" / "runs" / "killed01" / "metrics.jsonl"
    wait_for(
        lambda: metrics.exists() and len(metrics.read_text().splitlines()) == 500, what="the spool"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = cli(env, "sync", str(tmp_path / "spool"))
    assert out.returncode == 0, out.stderr
    got = api.get("/runs/killed01")
    assert got["state"] == "crashed", "no exit record: the program died"
    h = history(api, "killed01")
    assert h["i"] == {i: i for i in range(500)}


def test_kill_9_of_the_server_loses_nothing(env, tmp_path, monkeypatch):
    database = new_database()
    server = Server(tmp_path / "data", database=database)
    try:
        monkeypatch.setenv("WANLLMDB_BASE_URL", server.url)
        monkeypatch.setenv("WANLLMDB_API_KEY", server.admin_key)
        monkeypatch.setenv("WANLLMDB_SYNC_TIMEOUT", "60")
        api = server.api()
        run = wandb.init(project="sdk-outage", console="off", system_metrics=False)
        for i in range(100):
            wandb.log({"x": i})
        wait_for(lambda: len(history(api, run.id).get("x", {})) == 100, what="the first points")
        server.kill()
        with pytest.warns(UserWarning, match="waits in the spool"):
            for i in range(100, 200):
                wandb.log({"x": i})
            wandb.log_message("during the outage")
            run._worker.wake.set()
            wait_for(lambda: run._worker.outage is not None, what="the outage")
        server = Server(tmp_path / "data", bind=server.bind, database=database)
        wandb.finish()
        api = server.api()
        assert history(api, run.id)["x"] == {i: i for i in range(200)}
        assert api.get(f"/runs/{run.id}")["state"] == "finished"
        assert [ln["message"] for ln in api.get(f"/runs/{run.id}/logs")["items"]] == [
            "during the outage"
        ]
    finally:
        server.stop()


def test_a_forked_child_never_writes_to_the_parent_run(env, api):
    run = wandb.init(project="sdk-fork", console="off", system_metrics=False)
    wandb.log({"x": 1})
    pid = os.fork()
    if pid == 0:  # the child
        try:
            wandb.log({"x": 100})
            wandb.log({"child": 1})
            wandb.finish()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    wandb.log({"x": 2})
    wandb.finish()
    h = history(api, run.id)
    assert h["x"] == {0: 1, 1: 2} and "child" not in h
    assert api.get(f"/runs/{run.id}")["state"] == "finished"


def test_a_spool_of_a_newer_format_is_refused(tmp_path):
    from wanllmdb._spool import Spool

    d = tmp_path / "runs" / "newer001"
    d.mkdir(parents=True)
    (d / "run.json").write_text(
        json.dumps({"version": 99, "host": "h", "run": {"project": "p", "id": "newer001"}})
    )
    with pytest.raises(wandb.UsageError, match="newer"):
        Spool.open(d)
    assert Path(d).exists()
