"""``wanllmdb import tensorboard``: event files written by tensorboardX become runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, history

tbx = pytest.importorskip("tensorboardX")


def write_logs(root: Path) -> None:
    """Two runs: one with scalars (old-style values and TensorFlow 2's rank-0 tensors) beside
    histograms, images and text; one nested, with a NaN and a step written twice."""
    import numpy as np
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto

    w = tbx.SummaryWriter(str(root / "baseline"))
    for i in range(300):
        w.add_scalar("loss/train", 1.0 / (i + 1), i, walltime=1_700_000_000 + i)
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
        t = TensorProto(dtype=2, double_val=[i / 300])
        value = Summary.Value(tag="acc", tensor=t, metadata=meta)
        w.file_writer.add_summary(Summary(value=[value]), i, walltime=1_700_000_000 + i)
        if i % 100 == 0:
            w.add_histogram("weights", np.arange(10.0), i)
            # An image summary, written directly (tensorboardX's add_image needs Pillow).
            image = Summary.Image(height=1, width=1, colorspace=1, encoded_image_string=b"png")
            w.file_writer.add_summary(Summary(value=[Summary.Value(tag="sample", image=image)]), i)
    w.add_text("notes", "first try", 0)
    w.close()
    w = tbx.SummaryWriter(str(root / "sweep" / "lr-0.1"))
    w.add_scalar("x", float("nan"), 0, walltime=1_700_000_000)
    w.add_scalar("x", 1.0, 1, walltime=1_700_000_001)
    w.add_scalar("x", 2.5, 1, walltime=1_700_000_002)
    w.close()


def test_every_scalar_is_imported_and_the_rest_is_counted(env, api, tmp_path):
    logs = tmp_path / "logs"
    write_logs(logs)
    out = cli(env, "import", "tensorboard", str(logs), "--project", "tb", "--json")
    assert out.returncode == 0, out.stderr
    report = {r["path"]: r for r in json.loads(out.stdout)}
    assert set(report) == {"baseline", "sweep/lr-0.1"}
    base = report["baseline"]
    assert (base["points"], base["keys"]) == (600, 2)
    assert base["skipped"] == {"histograms": 3, "images": 3, "text": 1}

    run = api.get(f"/runs/{base['run']}")
    assert run["project"] == "tb" and run["name"] == "baseline" and run["state"] == "finished"
    assert run["started_at"].startswith("2023-11-14T22:13:20")
    h = history(api, base["run"])
    assert h["loss/train"] == {i: pytest.approx(1.0 / (i + 1), rel=1e-6) for i in range(300)}
    assert h["acc"] == {i: pytest.approx(i / 300) for i in range(300)}
    # Wall times are kept.
    got = api.get(f"/runs/{base['run']}/history", {"keys": "acc"})
    assert got["series"][0]["timestamps"][:2] == [1_700_000_000.0, 1_700_000_001.0]

    x = history(api, report["sweep/lr-0.1"]["run"])["x"]
    # The JSON history writes NaN as "NaN"; the later value of a step written twice is kept.
    assert x[0] == "NaN" and x[1] == 2.5

    # Importing again creates nothing new and changes nothing.
    again = cli(env, "import", "tensorboard", str(logs), "--project", "tb", "--json")
    assert again.returncode == 0, again.stderr
    assert [r["run"] for r in json.loads(again.stdout)] == [r["run"] for r in report.values()]
    runs = api.get("/runs", {"project": "tb"})["items"]
    assert len(runs) == 2
    assert history(api, base["run"])["acc"] == h["acc"]


def test_a_directory_without_event_files_is_an_error_with_a_hint(env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli(env, "import", "tensorboard", str(empty), "--project", "tb")
    assert out.returncode != 0
    assert "no TensorBoard event files" in out.stderr
    out = cli(env, "import", "tensorboard", str(tmp_path / "missing"), "--project", "tb")
    assert out.returncode != 0
    assert "not a directory" in out.stderr


def test_dry_run_reads_without_writing(env, api, tmp_path):
    logs = tmp_path / "logs"
    write_logs(logs)
    out = cli(env, "import", "tensorboard", str(logs), "--project", "dry", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    assert sum(r["points"] for r in json.loads(out.stdout)) == 603
    assert "dry" not in [p["name"] for p in api.get("/projects")["items"]]
