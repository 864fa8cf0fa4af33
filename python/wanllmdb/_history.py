"""Reading metric history back: ``history()`` (one run) and ``query_history()`` (many runs).

With numpy installed the server is asked for its binary columnar form and every column is a
``numpy.frombuffer`` view of the answer (no parsing, no copy); without numpy, or with
``numpy=False``, the JSON answer is read into lists. Both give the same numbers."""

from __future__ import annotations

import struct
from typing import Any, Iterable

from ._errors import CommError, UsageError
from ._transport import Transport, seg

MEDIA_TYPE = "application/vnd.wanllmdb.history+binary"
_MAGIC = b"WLDBHIST"
_HEADER = struct.Struct("<8sHHIII")
_RUN = struct.Struct("<QII")
_SERIES = struct.Struct("<QIIQQQ5sBH")
# Column slots in their order in a series entry and in the data; dtype codes 1 and 2.
_COLUMNS = ("steps", "timestamps", "values", "min", "max")
_DTYPES = {1: "<i8", 2: "<f8"}


class Series:
    """The history of one metric: ``steps``, ``values`` and ``timestamps`` (Unix seconds),
    aligned. numpy arrays (int64 and float64, read-only views of the answer: ``.copy()`` one
    to change it) or lists. ``downsampled`` reads give each bucket's grid step, last value and
    last timestamp, with ``min`` and ``max`` (else None); ``total_points`` counts the points
    stored in the range read."""

    __slots__ = (
        "downsampled",
        "key",
        "max",
        "min",
        "steps",
        "timestamps",
        "total_points",
        "values",
    )

    def __init__(
        self,
        key: str,
        steps: Any,
        values: Any,
        timestamps: Any,
        total_points: int,
        downsampled: bool,
        min: Any = None,
        max: Any = None,
    ) -> None:
        self.key = key
        self.steps = steps
        self.values = values
        self.timestamps = timestamps
        self.total_points = total_points
        self.downsampled = downsampled
        self.min = min
        self.max = max

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        kind = "downsampled, " if self.downsampled else ""
        return f"<Series {self.key!r}: {len(self)} points ({kind}{self.total_points} stored)>"


def numpy_module(numpy: Any, what: str) -> Any:
    """numpy when it should be used (``numpy=None``: when importable), else None."""
    if numpy not in (None, True, False):
        raise UsageError(f"{what}(numpy={numpy!r}): use True, False or None (auto)")
    if numpy is False:
        return None
    try:
        import numpy as np
    except ImportError:
        if numpy:
            raise UsageError(
                f"{what}(numpy=True): numpy is not installed; `pip install numpy`, or pass "
                "numpy=False for lists"
            ) from None
        return None
    return np


def _floats(values: Iterable[Any]) -> list[float]:
    # Non-finite values travel as "NaN", "Infinity", "-Infinity"; float() reads all three.
    return [float(v) for v in values]


def _from_json(s: dict[str, Any]) -> Series:
    down = bool(s.get("downsampled"))
    return Series(
        s["key"],
        list(s["steps"]),
        _floats(s["values"]),
        _floats(s["timestamps"]),
        int(s["total_points"]),
        down,
        _floats(s["min"]) if down else None,
        _floats(s["max"]) if down else None,
    )


class _Body:
    """Bounds-checked reads of a binary answer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.view = memoryview(data)

    def fail(self, why: str) -> CommError:
        return CommError(f"the server's binary history answer is malformed: {why}")

    def unpack(self, s: struct.Struct, at: int) -> tuple[Any, ...]:
        if at + s.size > len(self.data):
            raise self.fail("a table reaches past its end")
        return s.unpack_from(self.data, at)

    def text(self, at: int, n: int) -> str:
        if at + n > len(self.data):
            raise self.fail("a name reaches past its end")
        return str(self.view[at : at + n], "utf-8")


def decode(data: bytes, np: Any) -> list[tuple[str, list[Series]]]:
    """The runs of a binary answer, in order, each with its series as numpy arrays."""
    b = _Body(data)
    magic, version, entry, nruns, nseries, _ = b.unpack(_HEADER, 0)
    if magic != _MAGIC or version != 1 or entry < _SERIES.size:
        raise b.fail(f"magic {magic!r}, version {version}")
    runs: list[tuple[str, list[Series]]] = []
    for i in range(nruns):
        off, n, _count = b.unpack(_RUN, _HEADER.size + i * _RUN.size)
        runs.append((b.text(off, n), []))
    table = _HEADER.size + nruns * _RUN.size
    for i in range(nseries):
        koff, klen, run, points, total, at, dtypes, flags, _ = b.unpack(_SERIES, table + i * entry)
        if run >= nruns or at % 8:
            raise b.fail(f"series {i} names run {run} at offset {at}")
        cols: dict[str, Any] = {}
        for name, code in zip(_COLUMNS, dtypes):
            if code == 0:
                continue
            if code not in _DTYPES or at + points * 8 > len(data):
                raise b.fail(f"column {name} (dtype {code}) of series {i}")
            cols[name] = np.frombuffer(data, dtype=_DTYPES[code], count=points, offset=at)
            at += points * 8
        if "steps" not in cols or "values" not in cols:
            raise b.fail(f"series {i} lacks steps or values")
        runs[run][1].append(
            Series(
                b.text(koff, klen),
                cols["steps"],
                cols["values"],
                cols.get("timestamps", np.empty(0)),
                total,
                bool(flags & 1),
                cols.get("min"),
                cols.get("max"),
            )
        )
    return runs


def _keys(keys: Any, what: str) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, str):
        keys = [keys]
    out = list(keys)
    if not all(isinstance(k, str) and k for k in out):
        raise UsageError(f"{what}(keys={keys!r}): metric names must be non-empty strings")
    return out


def _range(min_step: Any, max_step: Any, max_points: Any, what: str) -> dict[str, Any]:
    for name, v in (("min_step", min_step), ("max_step", max_step), ("max_points", max_points)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise UsageError(f"{what}({name}={v!r}): must be an integer")
    return {"min_step": min_step, "max_step": max_step, "max_points": max_points}


def history(
    t: Transport,
    run_id: str,
    keys: Any = None,
    min_step: Any = None,
    max_step: Any = None,
    max_points: Any = None,
    numpy: Any = None,
) -> dict[str, Series]:
    what = "history"
    np = numpy_module(numpy, what)
    q = {
        "keys": ",".join(_keys(keys, what)) or None,
        **_range(min_step, max_step, max_points, what),
    }
    path, label = f"/runs/{seg(run_id)}/history", f"history({run_id!r})"
    if np is None:
        got = t.request("GET", path, query=q, what=label)
        return {s["key"]: _from_json(s) for s in got["series"]}
    rh, data = t.exchange("GET", path, query=q, what=label, accept=MEDIA_TYPE)
    runs = _answer(rh, data, np)
    return {s.key: s for s in runs[0][1]} if runs else {}


def query_history(
    t: Transport,
    run_ids: list[str],
    keys: Any = None,
    min_step: Any = None,
    max_step: Any = None,
    max_points: Any = None,
    numpy: Any = None,
) -> dict[str, dict[str, Series]]:
    what = "query_history"
    np = numpy_module(numpy, what)
    if not run_ids:
        raise UsageError(f"{what}(runs=...): name at least one run")
    body = {"runs": run_ids, "keys": _keys(keys, what)}
    body.update(
        {k: v for k, v in _range(min_step, max_step, max_points, what).items() if v is not None}
    )
    if np is None:
        got = t.request("POST", "/history/query", body=body, what=what)
        return {r["run"]: {s["key"]: _from_json(s) for s in r["series"]} for r in got["results"]}
    rh, data = t.exchange("POST", "/history/query", body=body, what=what, accept=MEDIA_TYPE)
    return {run: {s.key: s for s in series} for run, series in _answer(rh, data, np)}


def _answer(headers: dict[str, str], data: bytes, np: Any) -> list[tuple[str, list[Series]]]:
    """The runs of an answer to a binary request; a server from before the binary form
    answers in JSON, whose lists become arrays."""
    if headers.get("content-type", "").startswith(MEDIA_TYPE):
        return decode(data, np)
    import json

    got = json.loads(data)
    runs = got.get("results", [got])
    out = []
    for r in runs:
        series = []
        for s in map(_from_json, r["series"]):
            for name, dtype in (("steps", "<i8"), ("values", "<f8"), ("timestamps", "<f8")):
                setattr(s, name, np.asarray(getattr(s, name), dtype=dtype))
            if s.downsampled:
                s.min, s.max = np.asarray(s.min, dtype="<f8"), np.asarray(s.max, dtype="<f8")
            series.append(s)
        out.append((r["run"], series))
    return out
