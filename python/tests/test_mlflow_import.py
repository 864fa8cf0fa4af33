"""``wanllmdb import mlflow``: a real ``mlflow server`` (from PyPI, SQLite backend) seeded
through the MLflow client, imported, and every value compared."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import cli, history

MLFLOW_SERVER = os.environ.get("WANLLMDB_TEST_MLFLOW_SERVER")

pytestmark = pytest.mark.skipif(
    not MLFLOW_SERVER and not os.environ.get("WANLLMDB_TEST_REQUIRE_MLFLOW"),
    reason="set WANLLMDB_TEST_MLFLOW_SERVER to an `mlflow` executable (pip install mlflow)",
)

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server with a SQLite store, serving its artifacts."""
    assert MLFLOW_SERVER, (
        "WANLLMDB_TEST_REQUIRE_MLFLOW is set but WANLLMDB_TEST_MLFLOW_SERVER is not"
    )
    root = tmp_path_factory.mktemp("mlflow-source")
    port = free_port()
    proc = subprocess.Popen(
        [
            MLFLOW_SERVER,
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("mlflow server did not start") from None
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def seed(url: str, tmp_path: Path) -> dict:
    """An experiment with params, 3 metrics of 10,000 points (repeated steps included), tags,
    artifacts, and a registered model with two versions in different stages and an alias."""
    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    exp = client.create_experiment("Fraud model / v2", tags={"team": "risk"})
    run = client.create_run(exp, run_name="baseline", tags={"owner": "ana"})
    rid = run.info.run_id
    client.log_batch(
        rid, params=[mlflow.entities.Param("lr", "0.01"), mlflow.entities.Param("depth", "6")]
    )
    t0 = 1_700_000_000_000
    for key in ("loss", "auc", "lr"):
        entries = [
            Metric(key, i / 7, t0 + i, i // 2 if key == "loss" else i) for i in range(10_000)
        ]
        for j in range(0, len(entries), 1000):
            client.log_batch(rid, metrics=entries[j : j + 1000])
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    (model / "weights.bin").write_bytes(bytes(range(256)) * 40)
    client.log_artifacts(rid, str(model), "model")
    (tmp_path / "report.txt").write_text("auc 0.91\n")
    client.log_artifact(rid, str(tmp_path / "report.txt"))

    # A model logged the MLflow 3 way (a logged model outside the run's artifacts).
    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [2 * x for x in model_input]

    # The fluent API resumes a run only in the active experiment (earlier tests set another).
    mlflow.set_experiment(experiment_id=exp)
    with mlflow.start_run(run_id=rid):
        logged = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler())
    client.set_terminated(rid, "FINISHED", end_time=run.info.start_time + 500)
    client.create_registered_model("fraud-clf", description="catches fraud")
    src = f"{run.info.artifact_uri}/model"
    client.create_model_version("fraud-clf", src, rid)
    client.create_model_version("fraud-clf", src, rid)
    client.transition_model_version_stage("fraud-clf", "1", "Archived")
    client.transition_model_version_stage("fraud-clf", "2", "Staging")
    client.set_registered_model_alias("fraud-clf", "champion", "2")
    mlflow.register_model(logged.model_uri, "fraud-clf")
    return {"run": rid, "exp": exp, "t0": t0}


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:Add type hints")
def test_an_mlflow_server_imports_whole_and_again_adds_nothing(env, api, source, tmp_path):
    seeded = seed(source, tmp_path)
    out = cli(env, "import", "mlflow", "--from", source, "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    (exp,) = [e for e in report["experiments"] if e["experiment"] == "Fraud model / v2"]
    assert (exp["runs"], exp["points"], exp["files"]) == (1, 30_000, 3)
    assert report["model_versions"] == 3 and report["skipped"] == []

    # The run, through this server's MLflow API: every value as the source has it.
    here = MlflowClient(env["WANLLMDB_BASE_URL"])
    os.environ["MLFLOW_TRACKING_TOKEN"] = env["WANLLMDB_API_KEY"]
    try:
        (run,) = here.search_runs([exp["experiment_id"]])
        src = MlflowClient(source).get_run(seeded["run"])
        assert run.info.run_name == "baseline" and run.info.status == "FINISHED"
        assert (run.info.start_time, run.info.end_time) == (src.info.start_time, src.info.end_time)
        assert run.data.params == {"lr": "0.01", "depth": "6"}
        assert run.data.tags["owner"] == "ana"
        for key in ("loss", "auc", "lr"):
            mine = [
                (m.step, m.timestamp, m.value)
                for m in here.get_metric_history(run.info.run_id, key)
            ]
            theirs = [
                (m.step, m.timestamp, m.value)
                for m in MlflowClient(source).get_metric_history(seeded["run"], key)
            ]
            assert sorted(mine) == sorted(theirs) and len(mine) == 10_000
        files = {f.path for f in here.list_artifacts(run.info.run_id)}
        assert files == {"model", "report.txt"}
        got = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id,
                artifact_path="model/weights.bin",
                tracking_uri=env["WANLLMDB_BASE_URL"],
            )
        )
        assert got.read_bytes() == bytes(range(256)) * 40
        model = here.get_registered_model("fraud-clf")
        assert model.description == "catches fraud"
        assert model.aliases == {"champion": "2"}
        stages = {
            v.version: v.current_stage for v in here.search_model_versions("name = 'fraud-clf'")
        }
        assert stages == {"1": "Archived", "2": "Staging", "3": "None"}
        # The logged model's version loads here, from files copied.
        monkey = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(env["WANLLMDB_BASE_URL"])
        try:
            assert mlflow.pyfunc.load_model("models:/fraud-clf/3").predict([4]) == [8]
        finally:
            mlflow.set_tracking_uri(monkey)
    finally:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    # The native view: the experiment's project, the run's one value a step.
    h = history(api, run.info.run_id, "loss")
    assert len(h["loss"]) == 5_000

    # Again: nothing new.
    again = cli(env, "import", "mlflow", "--from", source, "--json", timeout=600)
    assert again.returncode == 0, again.stderr
    runs = api.get("/runs", {"project": "fraud-model-v2"})["items"]
    assert len(runs) == 1
    versions = api.get("/models/fraud-clf/versions")
    assert len(versions) == 3


def test_a_wrong_url_is_an_error_with_a_hint(env):
    out = cli(env, "import", "mlflow", "--from", "http://127.0.0.1:9")
    assert out.returncode != 0
    assert "cannot reach the MLflow server" in out.stderr
    out = cli(env, "import", "mlflow", "--from", "mlflow.internal:5000")
    assert out.returncode != 0 and "http" in out.stderr


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_export_then_import_round_trips(env, api, source, tmp_path, monkeypatch):
    here_url = env["WANLLMDB_BASE_URL"]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", env["WANLLMDB_API_KEY"])
    mlflow.set_tracking_uri(here_url)
    mlflow.set_experiment("Round trip")
    with mlflow.start_run(run_name="rt") as run:
        mlflow.log_params({"lr": "0.1", "layers": "3"})
        for i in range(50):
            mlflow.log_metric("loss", 1 / (i + 1), step=i // 2, timestamp=1_700_000_000_000 + i)
        mlflow.set_tag("stage", "dev")
        model = tmp_path / "model"
        model.mkdir()
        (model / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
        (model / "w.bin").write_bytes(b"\x07" * 500)
        mlflow.log_artifacts(str(model), "model")
    rid = run.info.run_id
    here = MlflowClient(here_url)
    here.create_registered_model("rt-model")
    here.create_model_version("rt-model", f"runs:/{rid}/model", rid)
    here.transition_model_version_stage("rt-model", "1", "Staging")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")

    out = cli(env, "export", "mlflow", "--to", source, "--project", "round-trip", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["experiments"][0]["runs"] == 1 and report["model_versions"] == 1

    there = MlflowClient(source)
    exp = there.get_experiment_by_name("Round trip")
    (remote,) = there.search_runs([exp.experiment_id])
    assert remote.info.run_name == "rt" and remote.info.status == "FINISHED"
    assert remote.data.params == {"lr": "0.1", "layers": "3"}
    assert remote.data.tags["stage"] == "dev"
    theirs = sorted(
        (m.step, m.timestamp, m.value) for m in there.get_metric_history(remote.info.run_id, "loss")
    )
    assert len(theirs) == 50
    assert {f.path for f in there.list_artifacts(remote.info.run_id, "model")} == {
        "model/MLmodel",
        "model/w.bin",
    }
    assert [
        (v.version, v.current_stage) for v in there.search_model_versions("name = 'rt-model'")
    ] == [("1", "Staging")]

    # Exporting again adds nothing; importing what was exported lands on the original run.
    again = cli(env, "export", "mlflow", "--to", source, "--project", "round-trip", "--json")
    assert again.returncode == 0, again.stderr
    assert len(there.search_runs([exp.experiment_id])) == 1
    back = cli(env, "import", "mlflow", "--from", source, "--experiments", "Round trip", "--json")
    assert back.returncode == 0, back.stderr
    assert len(api.get("/runs", {"project": "round-trip"})["items"]) == 1
    assert len(api.get("/models/rt-model/versions")) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", env["WANLLMDB_API_KEY"])
    mine = sorted((m.step, m.timestamp, m.value) for m in here.get_metric_history(rid, "loss"))
    assert mine == theirs
