"""The examples (the product description's scenarios) run as scripts against the server."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, cli, run_script

EXAMPLES = REPO / "examples"


@pytest.mark.parametrize(
    "name", ["quickstart", "image_classification", "dataset_versions", "team_projects"]
)
def test_example_runs_and_runs_again(name, env, api, tmp_path):
    for _ in range(2):
        out = run_script(
            EXAMPLES / f"{name}.py",
            env | {"CWD": str(tmp_path)},
            EXAMPLE_PROJECT=f"ex-{name.replace('_', '-')}",
            EXAMPLE_TRIALS="3",
            WANLLMDB_SWEEP_HEARTBEAT="0.2",
        )
        assert out.returncode == 0, out.stderr
    runs = api.get(
        "/runs",
        {"project": "my-project" if name == "quickstart" else f"ex-{name.replace('_', '-')}"},
    )["items"]
    assert runs and all(r["state"] == "finished" for r in runs)


def test_offline_example_then_sync(env, api, tmp_path):
    out = run_script(EXAMPLES / "offline_then_sync.py", env | {"CWD": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    spool = out.stdout.split("spooled in ")[1].split(";")[0]
    assert cli(env, "sync", spool).returncode == 0
    run_id = Path(spool).name
    assert api.get(f"/runs/{run_id}")["state"] == "finished"


def test_wrapped_example(env, api, tmp_path):
    out = cli(
        env,
        "run",
        "--project",
        "ex-wrapped",
        "--config",
        "lr=0.01",
        "--",
        "python3",
        str(EXAMPLES / "wrapped.py"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "lr 0.01" in out.stdout
    run = api.get("/runs", {"project": "ex-wrapped"})["items"][0]
    assert run["config"] == {"lr": 0.01, "epochs": 5}
