"""The local spool, in the command line's format (``.wanllmdb/runs/<id>/``), so that a run
written here is uploaded by ``wanllmdb sync`` and a spool the CLI wrote is read here.

::

    run.json       {"version", "host", "run": <create-run request>, "offline", "created_at"}
    metrics.jsonl  one JSON object per line: {"_step": 3, "_timestamp": 1764250000.5, "loss": 0.25}
    system.jsonl   one wire point per line: {"step", "timestamp", "values"}
    captured.jsonl the same, from output lines (the wrapper's --scalars)
    output.jsonl   one log line per line: {"level", "message", "timestamp", "source", "line_number"}
    summary.json   {"values": {...}}: summary values set by the program
    files.json     [{"local", "remote"}]: files to attach once the run is on the server
    state.json     how far each file was shipped: {"created", "metrics": {"offset", "line",
                   "next_step"}, "captured", "system", "output", "summary_sent", "finished"}
    exit.json      {"state", "exit_code"[, "reason"]} once the program ended
    wrapper.pid    the process writing the spool, while it lives

Shipping moves a file's cursor only after the server acknowledged a batch; the server
stores points by (run, key, step) and log lines by (source, line number), so a batch sent
twice is stored once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from ._encode import MAX_KEY_BYTES, to_metric, wire_float
from ._errors import UsageError

SPOOL_VERSION = 2
BATCH_VALUES = 20_000
BATCH_LINES = 5_000
READ_CHUNK = 4 << 20

CURSORS = ("metrics", "captured", "system", "output")


def empty_state() -> dict[str, Any]:
    """A ``state.json`` with nothing shipped."""
    st: dict[str, Any] = {"created": False, "finished": False, "summary_sent": False}
    for c in CURSORS:
        st[c] = {"offset": 0, "line": 0, "next_step": 0}
    return st


def write_json(path: Path, value: Any) -> None:
    """Writes JSON atomically (a temporary file renamed over the old one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UsageError(f"{path} is damaged: {e}") from None


class Spool:
    """One run's spool directory."""

    def __init__(self, dir: Path) -> None:
        self.dir = Path(dir)

    @classmethod
    def create(cls, root: Path, meta: dict[str, Any]) -> Spool:
        """Creates ``root/runs/<id>/`` for ``meta`` (continuing a spool the id already has)."""
        spool = cls(Path(root) / "runs" / meta["run"]["id"])
        try:
            spool.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"dir: cannot create the spool {spool.dir}: {e}") from None
        write_json(spool.dir / "run.json", meta)
        if (spool.dir / "state.json").exists():
            st = spool.state()
            st["finished"] = False
            spool.save_state(st)
            (spool.dir / "exit.json").unlink(missing_ok=True)
        else:
            spool.save_state(empty_state())
        spool.path("metrics").touch()
        return spool

    @classmethod
    def open(cls, dir: Path) -> Spool:
        """An existing spool; refuses one of a newer format."""
        spool = cls(dir)
        if not (spool.dir / "run.json").is_file():
            raise UsageError(f"{dir} is not a run spool (no run.json)")
        v = spool.meta().get("version", 1)
        if v > SPOOL_VERSION:
            raise UsageError(
                f"{dir} was written in spool format {v}, newer than this SDK knows "
                f"({SPOOL_VERSION}); upgrade wanllmdb"
            )
        return spool

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.jsonl"

    def meta(self) -> dict[str, Any]:
        return read_json(self.dir / "run.json")

    def save_meta(self, meta: dict[str, Any]) -> None:
        write_json(self.dir / "run.json", meta)

    def state(self) -> dict[str, Any]:
        p = self.dir / "state.json"
        st = empty_state()
        if p.exists():
            st.update(read_json(p))
        return st

    def save_state(self, st: dict[str, Any]) -> None:
        write_json(self.dir / "state.json", st)

    def exit(self) -> dict[str, Any] | None:
        p = self.dir / "exit.json"
        return read_json(p) if p.exists() else None

    def write_exit(self, finish: dict[str, Any]) -> None:
        write_json(self.dir / "exit.json", finish)

    def summary(self) -> dict[str, Any]:
        p = self.dir / "summary.json"
        return read_json(p).get("values", {}) if p.exists() else {}

    def write_summary(self, values: dict[str, Any]) -> None:
        write_json(self.dir / "summary.json", {"values": values})

    def saved_files(self) -> list[dict[str, str]]:
        p = self.dir / "files.json"
        return read_json(p) if p.exists() else []

    def write_saved_files(self, files: list[dict[str, str]]) -> None:
        p = self.dir / "files.json"
        if files:
            write_json(p, files)
        else:
            p.unlink(missing_ok=True)

    def claim(self) -> None:
        (self.dir / "wrapper.pid").write_text(str(os.getpid()))

    def release(self) -> None:
        p = self.dir / "wrapper.pid"
        try:
            if p.read_text().strip() == str(os.getpid()):
                p.unlink()
        except OSError:
            pass

    def pending_bytes(self, st: dict[str, Any]) -> int:
        n = 0
        for c in CURSORS:
            try:
                n += max(0, self.path(c).stat().st_size - st[c]["offset"])
            except OSError:
                pass
        return n


def read_lines(
    path: Path, offset: int, final: bool, limit: int = READ_CHUNK
) -> tuple[list[bytes], int]:
    """Complete lines from ``offset`` (and a trailing partial one when ``final``); returns
    them and the offset after them. A file shorter than ``offset`` was truncated: it is read
    from its start again."""
    try:
        size = path.stat().st_size
    except OSError:
        return [], offset
    if size < offset:
        offset = 0
    if size == offset:
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(limit, size - offset))
    if final and offset + len(data) == size:
        take = len(data)
    else:
        nl = data.rfind(b"\n")
        if nl < 0:
            # No complete line yet, or one line longer than a read: skip that one.
            return [], offset + len(data) if len(data) >= limit else offset
        take = nl + 1
    return [ln for ln in data[:take].split(b"\n") if ln.strip()], offset + take


def parse_metrics_line(obj: Any) -> tuple[int | None, float | None, dict[str, Any]]:
    """A ``metrics.jsonl`` object as the CLI reads it: ``_step`` wins over ``step`` (which is
    then a metric), the same for the timestamp; nested objects flatten with ``/``."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    obj = dict(obj)
    step = obj.pop("_step", None)
    if step is None:
        step = obj.pop("step", None)
    ts = obj.pop("_timestamp", None)
    if ts is None:
        ts = obj.pop("timestamp", None)
    values: dict[str, Any] = {}
    _flat("", obj, values)
    if step is not None and (isinstance(step, bool) or float(step) != int(step)):
        raise ValueError(f"step must be a whole number, not {step}")
    return (int(step) if step is not None else None, float(ts) if ts is not None else None, values)


_NON_FINITE = {
    "nan": "NaN",
    "inf": "Infinity",
    "infinity": "Infinity",
    "+inf": "Infinity",
    "+infinity": "Infinity",
    "-inf": "-Infinity",
    "-infinity": "-Infinity",
}


def _flat(prefix: str, obj: dict[str, Any], out: dict[str, Any]) -> None:
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flat(f"{key}/", v, out)
        elif not key or len(key.encode()) > MAX_KEY_BYTES:
            continue
        elif isinstance(v, str):
            nf = _NON_FINITE.get(v.lower())
            if nf:
                out[key] = nf
        else:
            m = to_metric(v)
            if m is not None:
                out[key] = wire_float(m) if isinstance(m, float) else m


class Shipper:
    """Ships what a spool holds, file by file, moving each cursor after the server's
    acknowledgement. ``post`` sends one JSON request: ``post(path, body_bytes)``."""

    def __init__(self, spool: Spool, run_id: str, post: Callable[[str, bytes], Any]) -> None:
        self.spool = spool
        self.run_id = run_id
        self.post = post
        self.state = spool.state()
        self.malformed = 0

    def save(self) -> None:
        self.spool.save_state(self.state)

    def ship(self, final: bool) -> int:
        """Sends every file's backlog; returns the values and lines sent."""
        n = self.ship_metrics(final)
        n += self.ship_points("captured", final)
        n += self.ship_points("system", final)
        n += self.ship_output(final)
        self.ship_summary()
        return n

    def _batches(self, name: str, final: bool) -> Any:
        cur = self.state[name]
        while True:
            lines, new_offset = read_lines(self.spool.path(name), cur["offset"], final, 1 << 20)
            if new_offset < cur["offset"]:
                cur.update(offset=0, line=0)
            if not lines and new_offset == cur["offset"]:
                return
            yield lines, new_offset

    def _advance(self, name: str, offset: int, lines: int, next_step: int | None = None) -> None:
        cur = self.state[name]
        cur["offset"] = offset
        cur["line"] += lines
        if next_step is not None:
            cur["next_step"] = next_step
        self.save()

    def ship_metrics(self, final: bool) -> int:
        sent = 0
        for lines, offset in self._batches("metrics", final):
            next_step = self.state["metrics"]["next_step"]
            points = []
            for raw in lines:
                try:
                    step, ts, values = parse_metrics_line(json.loads(raw))
                except ValueError:
                    self.malformed += 1
                    continue
                if not values:
                    continue
                if step is None:
                    step = next_step
                next_step = step + 1
                p: dict[str, Any] = {"step": step, "values": values}
                if ts is not None:
                    p["timestamp"] = ts
                points.append(json.dumps(p, separators=(",", ":"), allow_nan=False))
            sent += self.post_points(points)
            self._advance("metrics", offset, len(lines), next_step)
        return sent

    def ship_points(self, name: str, final: bool) -> int:
        sent = 0
        for lines, offset in self._batches(name, final):
            sent += self.post_points([ln.decode("utf-8", "replace") for ln in lines])
            self._advance(name, offset, len(lines))
        return sent

    def post_points(self, points: list[str]) -> int:
        """Sends wire points (JSON texts) in batches of about ``BATCH_VALUES`` values."""
        if not points:
            return 0
        for i in range(0, len(points), 2000):
            chunk = points[i : i + 2000]
            body = ('{"points":[' + ",".join(chunk) + "]}").encode()
            self.post(f"/runs/{self.run_id}/history", body)
        return len(points)

    def ship_output(self, final: bool) -> int:
        sent = 0
        for lines, offset in self._batches("output", final):
            for i in range(0, len(lines), BATCH_LINES):
                chunk = lines[i : i + BATCH_LINES]
                body = b'{"lines":[' + b",".join(chunk) + b"]}"
                self.post(f"/runs/{self.run_id}/logs", body)
            sent += len(lines)
            self._advance("output", offset, len(lines))
        return sent

    def ship_summary(self) -> None:
        if self.state.get("summary_sent"):
            return
        values = self.spool.summary()
        if values:
            body = json.dumps({"values": values}, allow_nan=False).encode()
            self.post(f"/runs/{self.run_id}/summary", body)
        self.state["summary_sent"] = True
        self.save()
