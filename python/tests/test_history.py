"""Reading history back: numpy arrays from the binary form, lists from JSON, the same numbers."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import wanllmdb as wandb


def _logged(project: str, steps: int) -> str:
    run = wandb.init(project=project)
    for i in range(steps):
        v = {0: math.nan, 1: math.inf, 2: -math.inf}.get(i, 1.0 / (i + 1))
        wandb.log({"loss": v + (40.0 if i == 123 else 0.0), "acc": i / 7}, step=i)
    wandb.finish()
    return run.id


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


def _check_alike(arrays, lists) -> None:
    assert list(arrays) == list(lists)
    for key, a in arrays.items():
        b = lists[key]
        assert isinstance(a.steps, np.ndarray) and a.steps.dtype == np.int64
        assert a.values.dtype == np.float64 and a.timestamps.dtype == np.float64
        assert isinstance(b.steps, list) and isinstance(b.values, list)
        assert a.steps.tolist() == b.steps
        assert _same(a.values.tolist(), b.values)
        assert a.timestamps.tolist() == b.timestamps
        assert (a.total_points, a.downsampled) == (b.total_points, b.downsampled)
        if a.downsampled:
            assert _same(a.min.tolist(), b.min) and _same(a.max.tolist(), b.max)
        else:
            assert a.min is None and b.min is None


def test_numpy_and_lists_give_the_same_history(env):
    rid = _logged("sdk-history", 300)
    arrays = wandb.history(rid, numpy=True)
    lists = wandb.history(rid, numpy=False)
    _check_alike(arrays, lists)
    loss = arrays["loss"]
    assert len(loss) == 300 and loss.steps[-1] == 299
    assert math.isnan(loss.values[0]) and loss.values[1] == math.inf and loss.values[2] == -math.inf
    assert loss.values[9] == 0.1
    with pytest.raises(ValueError):
        loss.values[0] = 1.0  # a view of the answer, not a copy
    # Downsampled: per-bucket bands, the spike kept.
    arrays = wandb.history(rid, "loss", max_points=20, numpy=True)
    _check_alike(arrays, wandb.history(rid, ["loss"], max_points=20, numpy=False))
    loss = arrays["loss"]
    assert loss.downsampled and len(loss) <= 20 and loss.total_points == 300
    assert (
        np.nanmax(loss.max) == math.inf and 40.0 < np.nanmax(loss.max[loss.max < math.inf]) < 41.0
    )
    # A step range, and a key the run does not have.
    part = wandb.history(rid, ["acc", "nope"], min_step=10, max_step=19)
    assert list(part) == ["acc"] and part["acc"].steps.tolist() == list(range(10, 20))


def test_many_runs_both_ways(env):
    a, b = _logged("sdk-history-many", 200), _logged("sdk-history-many", 20)
    arrays = wandb.query_history([b, a], "loss", max_points=30, numpy=True)
    lists = wandb.query_history([b, a], "loss", max_points=30, numpy=False)
    assert list(arrays) == [b, a] == list(lists)
    for rid in (a, b):
        _check_alike(arrays[rid], lists[rid])
    assert not arrays[b]["loss"].downsampled and arrays[a]["loss"].downsampled
    runs = wandb.list_runs("sdk-history-many")
    assert set(wandb.query_history(runs, "acc")) == {a, b}


def test_without_numpy_the_json_path_is_taken(env, monkeypatch):
    rid = _logged("sdk-history-pure", 5)
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now fails
    got = wandb.history(rid, "loss")
    assert isinstance(got["loss"].values, list) and got["loss"].steps == [0, 1, 2, 3, 4]
    with pytest.raises(wandb.UsageError, match="numpy is not installed"):
        wandb.history(rid, numpy=True)


def test_bad_arguments_and_missing_runs(env):
    with pytest.raises(wandb.UsageError, match="max_points"):
        wandb.history("abcd1234", max_points="10")
    with pytest.raises(wandb.UsageError, match="numpy"):
        wandb.history("abcd1234", numpy="yes")
    with pytest.raises(wandb.UsageError, match="keys"):
        wandb.history("abcd1234", keys=[""])
    with pytest.raises(wandb.UsageError, match="runs"):
        wandb.query_history([])
    for use_numpy in (True, False):
        with pytest.raises(wandb.NotFound):
            wandb.history("zzzz9999", numpy=use_numpy)
        with pytest.raises(wandb.UsageError, match="max_points"):
            wandb.history(_logged("sdk-history-bad", 1), max_points=1, numpy=use_numpy)
