"""The MLflow REST API, driven by the real ``mlflow`` client: a training script written for
MLflow runs unchanged against the server, and what it logged reads back through MLflow's
own calls and through the native API.

The MLflow-behaviour tests can be pointed at a real ``mlflow server`` instead
(``WANLLMDB_MLFLOW_REFERENCE_URI=http://127.0.0.1:5000``), which shows that they check what
MLflow itself does; the tests of our own credentials and native views skip there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

if sys.version_info < (3, 10):
    pytest.skip("the MLflow client needs Python 3.10 or newer", allow_module_level=True)

import mlflow
from conftest import Server
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

REFERENCE = os.environ.get("WANLLMDB_MLFLOW_REFERENCE_URI")

MLFLOW_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_REGISTRY_URI",
)


@dataclass
class Tracking:
    """Where the MLflow client is pointed, and with which credential."""

    uri: str
    token: str | None
    server: Server | None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child script: only the MLflow variables a user would set."""
        e = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANLLMDB_"))}
        e["MLFLOW_TRACKING_URI"] = self.uri
        e["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        if self.token:
            e["MLFLOW_TRACKING_TOKEN"] = self.token
        e.update(extra)
        return e


@pytest.fixture
def tracking(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Tracking]:
    """The MLflow client of this process pointed at our server with the admin key (or at the
    reference server), with no run active before or after the test."""
    for k in MLFLOW_VARS:
        monkeypatch.delenv(k, raising=False)
    if REFERENCE:
        t = Tracking(REFERENCE.rstrip("/"), None, None)
    else:
        server: Server = request.getfixturevalue("server")
        t = Tracking(server.url, server.admin_key, server)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.admin_key)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", t.uri)
    # A server error is a failure to see at once, not something to retry for minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(t.uri)
    yield t
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def ours(tracking: Tracking) -> Server:
    """Our server, for the tests of what only it has; they skip against a reference server."""
    if tracking.server is None:
        pytest.skip("checks wanllmdb itself, not MLflow's behaviour")
    return tracking.server


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def code(e: pytest.ExceptionInfo[MlflowException]) -> str:
    return e.value.error_code


TRAINING_SCRIPT = r"""
import os, sys
import mlflow

mlflow.set_experiment(sys.argv[1])
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_param("lr", "0.01")
    mlflow.log_params({"batch_size": 32, "optimizer": "adam"})
    mlflow.log_metric("loss", 0.9)
    mlflow.log_metric("loss", 0.7, step=1)
    mlflow.log_metric("loss", 0.65, step=1)
    mlflow.log_metric("loss", 0.4, step=2)
    mlflow.log_metrics({"acc": 0.5, "f1": 0.25}, step=2)
    mlflow.log_metrics({"acc": 0.75})
    mlflow.set_tag("team", "vision")
    mlflow.set_tags({"stage": "dev", "mlflow.note.content": "first try"})

    with open("weights.bin", "wb") as f:
        f.write(bytes(range(256)) * 64)
    mlflow.log_artifact("weights.bin")
    mlflow.log_artifact("weights.bin", artifact_path="extra")
    os.makedirs("out/sub", exist_ok=True)
    with open("out/report.txt", "w") as f:
        f.write("accuracy 0.75\n")
    with open("out/sub/notes v2.txt", "w") as f:
        f.write("a space in the name\n")
    mlflow.log_artifacts("out", artifact_path="outputs")
    print("RUN", run.info.run_id, run.info.experiment_id)
"""


def run_training_script(tracking: Tracking, tmp_path: Path, experiment: str) -> tuple[str, str]:
    script = tmp_path / "train.py"
    script.write_text(TRAINING_SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run(
        [sys.executable, str(script), experiment],
        env=tracking.env(),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RUN "))
    _, run_id, experiment_id = line.split()
    return run_id, experiment_id


def points(history: list[Metric]) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in history)


def test_a_training_script_runs_unchanged_and_reads_back(tracking, tmp_path):
    name = "My Experiment / v1"
    run_id, experiment_id = run_training_script(tracking, tmp_path, name)
    client = MlflowClient()

    experiment = client.get_experiment_by_name(name)
    assert experiment is not None and experiment.experiment_id == experiment_id
    assert experiment.name == name and experiment.lifecycle_stage == "active"

    run = client.get_run(run_id)
    assert run.info.run_id == run_id and run.info.experiment_id == experiment_id
    assert run.info.run_name == "baseline" and run.data.tags["mlflow.runName"] == "baseline"
    assert run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"
    assert run.info.end_time is not None and run.info.end_time >= run.info.start_time
    assert run.info.artifact_uri == f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"
    # Parameters are strings, whatever type the script passed.
    assert run.data.params == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert run.data.tags["team"] == "vision" and run.data.tags["stage"] == "dev"
    assert run.data.tags["mlflow.note.content"] == "first try"
    # The latest value of each metric: highest step, then latest time.
    assert run.data.metrics == {"loss": 0.4, "acc": 0.5, "f1": 0.25}

    # Every entry as logged, both values at step 1 and the default step 0 included.
    loss = client.get_metric_history(run_id, "loss")
    assert points(loss) == [(0, 0.9), (1, 0.65), (1, 0.7), (2, 0.4)]
    assert all(m.key == "loss" and m.timestamp > 0 for m in loss)
    assert points(client.get_metric_history(run_id, "acc")) == [(0, 0.75), (2, 0.5)]
    assert client.get_metric_history(run_id, "never-logged") == []


def test_artifacts_list_and_download_as_logged(tracking, tmp_path):
    run_id, _ = run_training_script(tracking, tmp_path, unique("artifacts"))
    client = MlflowClient()

    top = {(f.path, f.is_dir) for f in client.list_artifacts(run_id)}
    assert top == {("weights.bin", False), ("extra", True), ("outputs", True)}
    sizes = {f.path: f.file_size for f in client.list_artifacts(run_id) if not f.is_dir}
    assert sizes == {"weights.bin": 256 * 64}
    inner = {(f.path, f.is_dir) for f in client.list_artifacts(run_id, "outputs")}
    assert inner == {("outputs/report.txt", False), ("outputs/sub", True)}
    deeper = [f.path for f in client.list_artifacts(run_id, "outputs/sub")]
    assert deeper == ["outputs/sub/notes v2.txt"]
    assert [f.path for f in client.list_artifacts(run_id, "extra")] == ["extra/weights.bin"]

    dst = tmp_path / "dl"
    got = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="outputs", dst_path=str(dst)
        )
    )
    assert (got / "report.txt").read_text() == "accuracy 0.75\n"
    assert (got / "sub" / "notes v2.txt").read_text() == "a space in the name\n"
    one = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{run_id}/extra/weights.bin", dst_path=str(tmp_path / "one")
    )
    assert Path(one).read_bytes() == bytes(range(256)) * 64
    everything = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all"))
    )
    assert sorted(str(p.relative_to(everything)) for p in everything.rglob("*") if p.is_file()) == [
        "extra/weights.bin",
        "outputs/report.txt",
        "outputs/sub/notes v2.txt",
        "weights.bin",
    ]


def test_metric_history_keeps_every_entry_and_drops_only_exact_repeats(tracking):
    client = MlflowClient()
    experiment_id = client.create_experiment(unique("history"))
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "x", 1.0, timestamp=1000, step=0)
    client.log_metric(run_id, "x", 1.0, timestamp=2000, step=0)
    client.log_metric(run_id, "x", 2.0, timestamp=2000, step=0)
    # A retry of the same entry (same step, time and value) is stored once.
    client.log_metric(run_id, "x", 2.0, timestamp=2000, step=0)
    client.log_metric(run_id, "x", -3.5, timestamp=1500, step=7)
    got = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "x"))
    assert got == [(0, 1000, 1.0), (0, 2000, 1.0), (0, 2000, 2.0), (7, 1500, -3.5)]
    assert client.get_run(run_id).data.metrics == {"x": -3.5}

    # A batch larger than one request holds: the client splits it, the history has it all.
    now = int(time.time() * 1000)
    batch = [Metric("y", i * 0.5, now + i, i // 2) for i in range(2500)]
    client.log_batch(
        run_id, metrics=batch, params=[Param("p", "1")], tags=[RunTag("origin", "batch")]
    )
    history = client.get_metric_history(run_id, "y")
    assert len(history) == 2500
    assert sorted((m.step, m.value) for m in history) == [(i // 2, i * 0.5) for i in range(2500)]
    run = client.get_run(run_id)
    assert run.data.params == {"p": "1"} and run.data.tags["origin"] == "batch"
    assert run.data.metrics["y"] == 2499 * 0.5


def test_search_runs_filters_and_orders(tracking):
    name = unique("search")
    mlflow.set_experiment(name)
    ids = {}
    for run_name, lr, loss, team in [
        ("r1", "0.01", 0.3, "a"),
        ("r2", "0.01", 0.6, "a"),
        ("r3", "0.1", 0.2, "b"),
        ("r4", "0.01", 0.45, "b"),
    ]:
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("loss", 0.9, step=0)
            mlflow.log_metric("loss", loss, step=1)
            mlflow.set_tag("team", team)
            ids[run_name] = run.info.run_id
    by_id = {v: k for k, v in ids.items()}
    experiment_id = MlflowClient().get_experiment_by_name(name).experiment_id

    def names(runs: Any) -> list[str]:
        return [by_id[r.info.run_id] for r in runs]

    found = mlflow.search_runs(
        experiment_names=[name],
        filter_string="metrics.loss < 0.5 and params.lr = '0.01'",
        order_by=["metrics.loss ASC"],
        output_format="list",
    )
    assert names(found) == ["r1", "r4"]
    client = MlflowClient()
    found = client.search_runs(
        [experiment_id],
        filter_string="metrics.loss < 0.5 and params.lr = '0.01'",
        order_by=["metrics.loss DESC"],
    )
    assert names(found) == ["r4", "r1"]
    assert found[0].data.metrics == {"loss": 0.45} and found[0].data.params == {"lr": "0.01"}

    found = client.search_runs([experiment_id], "tags.team = 'b'", order_by=["metrics.loss"])
    assert names(found) == ["r3", "r4"]
    found = client.search_runs([experiment_id], "attributes.run_name = 'r2'")
    assert names(found) == ["r2"]
    found = client.search_runs([experiment_id], "params.lr != '0.01'")
    assert names(found) == ["r3"]
    found = client.search_runs([experiment_id], "attributes.status = 'FINISHED'")
    assert sorted(names(found)) == ["r1", "r2", "r3", "r4"]
    found = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    assert names(found) == ["r4", "r3", "r2", "r1"]

    # Pages: two at a time, then the rest, in the same order.
    first = client.search_runs([experiment_id], order_by=["metrics.loss ASC"], max_results=2)
    assert names(first) == ["r3", "r1"] and first.token
    second = client.search_runs(
        [experiment_id], order_by=["metrics.loss ASC"], max_results=2, page_token=first.token
    )
    assert names(second) == ["r4", "r2"]

    with pytest.raises(MlflowException) as e:
        client.search_runs([experiment_id], "metrics.loss <<< 1")
    assert code(e) == "INVALID_PARAMETER_VALUE"


def test_end_run_status_and_a_failing_block(tracking):
    mlflow.set_experiment(unique("status"))
    client = MlflowClient()
    with mlflow.start_run() as run:
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert client.get_run(run.info.run_id).info.status == "FINISHED"

    run = mlflow.start_run()
    mlflow.end_run(status="KILLED")
    assert client.get_run(run.info.run_id).info.status == "KILLED"

    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run:
        1 / 0  # noqa: B018
    assert client.get_run(run.info.run_id).info.status == "FAILED"

    run_id = client.create_run(run.info.experiment_id).info.run_id
    client.set_terminated(run_id, "FAILED")
    info = client.get_run(run_id).info
    assert info.status == "FAILED" and info.end_time is not None


def test_delete_and_restore_a_run(tracking):
    client = MlflowClient()
    experiment_id = client.create_experiment(unique("deletion"))
    kept = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    # A deleted run takes no more data until it is restored.
    with pytest.raises(MlflowException) as e:
        client.log_metric(gone, "x", 1.0)
    assert code(e) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.set_tag(gone, "k", "v")
    assert code(e) == "INVALID_PARAMETER_VALUE"
    active = [r.info.run_id for r in client.search_runs([experiment_id])]
    assert active == [kept]
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [gone]
    every = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert sorted(r.info.run_id for r in every) == sorted([kept, gone])

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert sorted(r.info.run_id for r in client.search_runs([experiment_id])) == sorted(
        [kept, gone]
    )


def test_experiment_lifecycle(tracking):
    client = MlflowClient()
    default = client.get_experiment("0")
    assert default.name == "Default"

    name = unique("Team / exp")
    experiment_id = client.create_experiment(name, tags={"owner": "ml"})
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(MlflowException) as e:
        client.create_experiment(name)
    assert code(e) == "RESOURCE_ALREADY_EXISTS"

    got = client.get_experiment_by_name(name)
    assert got.experiment_id == experiment_id and got.tags["owner"] == "ml"
    assert client.get_experiment(experiment_id).name == name
    assert client.get_experiment_by_name(unique("no such experiment")) is None
    found = client.search_experiments(filter_string=f"name = '{name}'")
    assert [x.experiment_id for x in found] == [experiment_id]
    found = client.search_experiments(filter_string="tags.owner = 'ml'")
    assert experiment_id in [x.experiment_id for x in found]

    client.set_experiment_tag(experiment_id, "phase", "two")
    assert client.get_experiment(experiment_id).tags["phase"] == "two"

    renamed = unique("renamed / exp")
    client.rename_experiment(experiment_id, renamed)
    assert client.get_experiment(experiment_id).name == renamed
    assert client.get_experiment_by_name(renamed).experiment_id == experiment_id
    assert client.get_experiment_by_name(name) is None

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    # Its runs are deleted with it, and come back with it.
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    active = client.search_experiments(filter_string=f"name = '{renamed}'")
    assert active == []
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{renamed}'"
    )
    assert [x.experiment_id for x in deleted] == [experiment_id]
    with pytest.raises(MlflowException):
        client.create_run(experiment_id)
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    client.create_run(experiment_id)


def test_a_changed_param_is_refused_and_the_same_value_is_not(tracking):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment(unique("params"))).info.run_id
    client.log_param(run_id, "lr", "0.01")
    client.log_param(run_id, "lr", "0.01")
    with pytest.raises(MlflowException) as e:
        client.log_param(run_id, "lr", "0.02")
    assert code(e) == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run_id).data.params == {"lr": "0.01"}


def test_missing_things_are_resource_does_not_exist(tracking):
    client = MlflowClient()
    with pytest.raises(MlflowException) as e:
        client.get_run("zz9zz9zz")
    assert code(e) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.get_experiment("987654321")
    assert code(e) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.log_metric("zz9zz9zz", "x", 1.0)
    assert code(e) == "RESOURCE_DOES_NOT_EXIST"


def raw(tracking: Tracking, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request as any HTTP client sends it: the status and the parsed JSON body."""
    headers = {"Content-Type": "application/json"}
    if tracking.token:
        headers["Authorization"] = f"Bearer {tracking.token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(tracking.uri + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_the_rest_api_answers_on_both_prefixes_with_mlflow_error_bodies(tracking):
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        status, got = raw(tracking, "GET", f"{prefix}/experiments/get?experiment_id=0")
        assert status == 200 and got["experiment"]["name"] == "Default"
        status, got = raw(tracking, "GET", f"{prefix}/runs/get?run_id=zz9zz9zz")
        assert status == 404 and got["error_code"] == "RESOURCE_DOES_NOT_EXIST", got
        assert "zz9zz9zz" in got["message"]
    # A required field left out is named in the message.
    status, got = raw(tracking, "POST", "/api/2.0/mlflow/runs/log-metric", {"key": "x"})
    assert status == 400 and got["error_code"] == "INVALID_PARAMETER_VALUE", got
    assert "run_id" in got["message"]


def registered_run(tmp_path: Path) -> str:
    """A finished run with a ``model`` directory (an ``MLmodel`` file and weights) among its
    artifacts."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01" * 100)
    # The file by which MLflow tells a model directory from any other.
    (model / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    mlflow.set_experiment(unique("registry"))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model), artifact_path="model")
    return run.info.run_id


# Stages are deprecated in MLflow, and still what many registries use.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_registry_register_a_run_model_and_move_it_through_stages(tracking, tmp_path):
    client = MlflowClient()
    name = unique("classifier").replace(" ", "-")
    client.create_registered_model(name, description="first model")
    run_id = registered_run(tmp_path)
    version = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert version.name == name and version.version == "1" and version.run_id == run_id
    second = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert second.version == "2"

    client.transition_model_version_stage(name, "1", "Staging")
    assert client.get_model_version(name, "1").current_stage == "Staging"
    # Production is left out: on wanLLMDB it follows the project's approval policy (below).
    client.transition_model_version_stage(name, "2", "Staging", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Staging"])
    assert [v.version for v in latest] == ["2"]

    got = client.get_registered_model(name)
    assert got.name == name and got.description == "first model"
    assert name in [m.name for m in client.search_registered_models(f"name = '{name}'")]
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in versions) == ["1", "2"]


def test_registry_aliases_point_at_versions(tracking, tmp_path):
    client = MlflowClient()
    name = unique("ranker").replace(" ", "-")
    run_id = registered_run(tmp_path)
    # register_model creates the registered model when it does not exist.
    mlflow.register_model(f"runs:/{run_id}/model", name)
    mlflow.register_model(f"runs:/{run_id}/model", name)
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    client.delete_registered_model_alias(name, "champion")
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias(name, "champion")
    assert code(e) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


# Only our server from here on: credentials, rights, policies and the native API's view.


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_registry_production_follows_the_projects_approval_policy(ours, tracking, tmp_path):
    client = MlflowClient()
    name = unique("approved").replace(" ", "-")
    run_id = registered_run(tmp_path)
    mlflow.register_model(f"runs:/{run_id}/model", name)
    # By default a version needs a second person's approval before Production.
    with pytest.raises(MlflowException) as e:
        client.transition_model_version_stage(name, "1", "Production")
    assert code(e) == "INVALID_STATE" and "approve" in e.value.message
    assert client.get_model_version(name, "1").current_stage == "None"

    project = ours.api().get(f"/runs/{run_id}")["project"]
    ours.api().put(
        f"/projects/{project}/registry-policy",
        {"require_approval": False, "allow_self_approval": False},
    )
    client.transition_model_version_stage(name, "1", "Production")
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["1"]


def test_the_native_api_shows_the_same_run(ours, tracking, tmp_path):
    name = unique("Native View / v1")
    run_id, experiment_id = run_training_script(tracking, tmp_path, name)
    api = ours.api()
    run = api.get(f"/runs/{run_id}")
    assert run["id"] == run_id and run["name"] == "baseline" and run["state"] == "finished"
    assert run["config"] == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert run["notes"] == "first try"
    assert str(api.get(f"/projects/{run['project']}")["id"]) == experiment_id

    got = api.get(f"/runs/{run_id}/history", {"keys": "loss,acc"})
    series = {s["key"]: dict(zip(s["steps"], s["values"])) for s in got["series"]}
    # One value per step in the native series: the latest logged at step 1.
    assert series["loss"] == {0: 0.9, 1: 0.65, 2: 0.4}
    assert series["acc"] == {0: 0.75, 2: 0.5}
    files = {f["path"]: f["size"] for f in api.get(f"/runs/{run_id}/files")}
    assert files == {
        "weights.bin": 256 * 64,
        "extra/weights.bin": 256 * 64,
        "outputs/report.txt": 14,
        "outputs/sub/notes v2.txt": 20,
    }
    # The project's name is derived from the experiment's: lower case, one '-' for each run
    # of other characters.
    derived = re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip("-.")
    assert run["project"] == derived


def test_native_plain_tags_appear_as_empty_mlflow_tags(ours, tracking):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment(unique("tags"))).info.run_id
    ours.api().post(f"/runs/{run_id}/tags", {"tag": "baseline"})
    assert client.get_run(run_id).data.tags["baseline"] == ""


def test_username_and_password_work_like_the_token(ours, tracking, tmp_path):
    api = ours.api()
    user = f"ml{uuid.uuid4().hex[:8]}"
    password = "Mlflow-user-pass-123!"
    api.post(
        "/admin/users", {"username": user, "email": f"{user}@example.com", "password": password}
    )
    env = tracking.env(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    env.pop("MLFLOW_TRACKING_TOKEN")
    script = tmp_path / "basic.py"
    script.write_text(
        textwrap.dedent(
            """
            import mlflow
            mlflow.set_experiment("basic auth experiment")
            with mlflow.start_run() as run:
                mlflow.log_metric("m", 1.5)
            print("RUN", run.info.run_id)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-4000:]
    run_id = out.stdout.split("RUN ", 1)[1].split()[0]
    assert api.get(f"/runs/{run_id}")["created_by"] == user

    env["MLFLOW_TRACKING_PASSWORD"] = "Wrong-pass-123!"
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "UNAUTHENTICATED" in out.stderr, out.stderr[-2000:]


def test_a_wrong_token_is_unauthenticated(ours, tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wlk_not_a_real_key")
    with pytest.raises(MlflowException) as e:
        MlflowClient().search_experiments()
    assert code(e) == "UNAUTHENTICATED"
    assert e.value.get_http_status_code() == 401


def test_a_key_without_rights_cannot_see_or_write_a_private_project(ours, tracking, monkeypatch):
    api = ours.api()
    project = f"ml-private-{uuid.uuid4().hex[:6]}"
    experiment_id = str(api.post("/projects", {"name": project, "visibility": "private"})["id"])
    run_id = MlflowClient().create_run(experiment_id).info.run_id
    user = f"out{uuid.uuid4().hex[:8]}"
    password = "Outsider-pass-123!"
    api.post(
        "/admin/users", {"username": user, "email": f"{user}@example.com", "password": password}
    )
    tokens = ours.api(None).post("/auth/login", {"username": user, "password": password})
    key = ours.api(tokens["access_token"]).post("/auth/api-keys", {"name": "ml"})["key"]

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", key)
    client = MlflowClient()
    refused = ("PERMISSION_DENIED", "RESOURCE_DOES_NOT_EXIST")
    for call in (
        lambda: client.get_experiment(experiment_id),
        lambda: client.get_run(run_id),
        lambda: client.create_run(experiment_id),
        lambda: client.log_metric(run_id, "x", 1.0),
        lambda: client.set_tag(run_id, "k", "v"),
        lambda: client.delete_run(run_id),
    ):
        with pytest.raises(MlflowException) as e:
            call()
        assert code(e) in refused and e.value.get_http_status_code() in (403, 404)
    try:
        assert client.get_experiment_by_name(project) is None
    except MlflowException as e:
        assert e.error_code in refused
    assert experiment_id not in [x.experiment_id for x in client.search_experiments()]

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ours.admin_key)
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics == {} and run.info.lifecycle_stage == "active"


@pytest.mark.filterwarnings("ignore:Add type hints")
def test_log_model_then_load_and_register_it(tracking, tmp_path):
    class Doubler(mlflow.pyfunc.PythonModel):
        """A model with no dependencies beyond the MLflow client."""

        def predict(self, context, model_input, params=None):
            return [2 * x for x in model_input]

    mlflow.set_experiment(unique("logged models"))
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler())
    assert info.model_uri == f"models:/{info.model_id}"
    # By the logged model, and through the run that logged it.
    for uri in (info.model_uri, f"runs:/{run.info.run_id}/doubler"):
        assert mlflow.pyfunc.load_model(uri).predict([1, 2]) == [2, 4]
    client = MlflowClient()
    found = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string="name = 'doubler'"
    )
    assert [m.model_id for m in found] == [info.model_id]
    assert found[0].source_run_id == run.info.run_id
    name = unique("doubler").replace(" ", "-")
    version = mlflow.register_model(info.model_uri, name)
    assert version.version == "1"
    assert mlflow.pyfunc.load_model(f"models:/{name}/1").predict([3]) == [6]
    # A model logged outside any run.
    outside = mlflow.pyfunc.log_model(name="standalone", python_model=Doubler())
    assert mlflow.pyfunc.load_model(outside.model_uri).predict([5]) == [10]
