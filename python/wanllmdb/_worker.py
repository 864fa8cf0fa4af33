"""The one background thread of a run: it takes what ``log()`` queued, writes it to the spool
(or to the wrapper's metrics file), ships it, heartbeats, samples system metrics, and carries
out config, tag and summary changes. The training loop never waits on the disk or the network."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import deque
from fnmatch import fnmatchcase
from typing import Any, Callable

from ._encode import MetricEncoder, dumps, wire_float
from ._errors import CommError, UsageError
from ._settings import env_seconds
from ._spool import Shipper, Spool
from ._transport import Transport, is_transient

WRITE_EVERY = 0.2
SHIP_EVERY = 1.0
HEARTBEAT_EVERY = 30.0
ENV_HEARTBEAT = "WANLLMDB_HEARTBEAT_INTERVAL"
# Wire points kept in memory to ship without reading the spool back; past this the backlog
# is read from the spool file (the server is slow or away), so memory stays bounded.
MEMORY_POINTS = 50_000
POINTS_PER_POST = 2_000


_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def heartbeat_every() -> float:
    return env_seconds(ENV_HEARTBEAT, HEARTBEAT_EVERY)


class MetricDef:
    """One ``define_metric`` call."""

    def __init__(self, name: str, step_metric: str | None, summary: str | None, goal: str | None):
        self.name = name
        self.glob = any(c in name for c in "*?[")
        self.step_metric = step_metric
        self.summary = summary
        self.goal = goal

    def matches(self, key: str) -> bool:
        return fnmatchcase(key, self.name) if self.glob else key == self.name


class Worker(threading.Thread):
    """Background thread of one run."""

    def __init__(
        self,
        run_id: str,
        queue: deque[Any],
        spool: Spool | None,
        transport: Transport | None,
        metrics_file: str | None,
        created: bool,
        create_run: Callable[[], Any] | None,
        on_stop: Callable[[str], None],
        system: Any,
    ) -> None:
        super().__init__(name=f"wanllmdb-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.queue = queue
        self.lines: deque[dict[str, Any]] = deque()
        self.ops: deque[tuple[str, Any]] = deque()
        self.spool = spool
        self.transport = transport
        self.metrics_file = metrics_file
        self.created = created
        self.create_run = create_run
        self.on_stop = on_stop
        self.system = system
        self.encoder = MetricEncoder(self._warn)
        self.lock = threading.Lock()
        self.last: dict[str, Any] = {}
        self.defs: list[MetricDef] = []
        self.defined_summary: dict[str, Any] = {}
        self._agg: dict[str, list[float]] = {}
        self.wake = threading.Event()
        self.closing = False
        self.done = threading.Event()
        self.outage: str | None = None
        self.blocked: str | None = None
        self.warned: set[str] = set()
        self.mem_points: list[str] | None = [] if spool is not None else None
        self.shipper: Shipper | None = None
        self._file: Any = None
        self._out_file: Any = None
        self._next_ship = 0.0
        self._next_heartbeat = time.monotonic() + heartbeat_every()
        self._next_system = time.monotonic()
        self._next_create = 0.0
        self._failures = 0
        if spool is not None:
            self.shipper = Shipper(spool, run_id, self._post)
            if spool.pending_bytes(self.shipper.state) > 0:
                # A resumed spool with unshipped lines: those go out from the file first.
                self.mem_points = None

    # -- warnings and posts--------------------------------------------------------------------
    def _warn(self, msg: str) -> None:
        warnings.warn(msg, stacklevel=2)

    def warn_once(self, cause: str, msg: str) -> None:
        if cause not in self.warned:
            self.warned.add(cause)
            warnings.warn(msg, stacklevel=2)

    def _post(self, path: str, body: bytes) -> Any:
        assert self.transport is not None
        return self.transport.request("POST", path, raw_json=body, what=f"run {self.run_id}")

    def online(self) -> bool:
        return self.transport is not None and self.spool is not None

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.closing:
                self.wake.wait(WRITE_EVERY)
                self.wake.clear()
                if self.closing:
                    break
                self.cycle(final=False)
        except Exception as e:  # a bug here must not take the training down
            self.warn_once(
                "worker", f"wanllmdb: background thread of run {self.run_id} failed: {e!r}"
            )
        finally:
            self.done.set()

    def cycle(self, final: bool) -> None:
        self.write_rows()
        self.write_lines()
        now = time.monotonic()
        if self.system is not None and now >= self._next_system:
            self._next_system = now + self.system_interval
            self.sample_system()
        if self.transport is None:
            return
        if not self.created and self.spool is not None:
            if now < self._next_create and not final:
                return
            self.try_create()
            if not self.created:
                return
        self.run_ops()
        if self.spool is not None and (final or now >= self._next_ship):
            self._next_ship = now + SHIP_EVERY
            self.ship(final)
        if self.spool is not None and now >= self._next_heartbeat and not final:
            self._next_heartbeat = now + heartbeat_every()
            self.heartbeat()

    system_interval = 15.0

    # -- metrics ---------------------------------------------------------------------------
    def drain(self) -> list[Any]:
        q = self.queue
        out = []
        pop = q.popleft
        try:
            for _ in range(len(q)):
                out.append(pop())
        except IndexError:
            pass
        return out

    def write_rows(self) -> None:
        """Encodes what log() queued and appends it to the spool (or the wrapper's file)."""
        with self.lock:
            rows = self.drain()
            if not rows:
                return
            lines, points = self.encode(rows)
            if not lines:
                return
            text = "".join(lines)
            if self.metrics_file is not None:
                self._append_metrics_file(text)
                return
            if self.spool is None:
                return
            if self._file is None:
                self._file = open(self.spool.path("metrics"), "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(text)
            self._file.flush()
            if self.mem_points is not None:
                self.mem_points.extend(points)
                if len(self.mem_points) > MEMORY_POINTS:
                    self.mem_points = None

    def _append_metrics_file(self, text: str) -> None:
        try:
            if self._file is None:
                self._file = open(self.metrics_file, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(text)
            self._file.flush()
        except OSError as e:
            self.warn_once("metrics-file", f"wanllmdb: cannot write {self.metrics_file}: {e}")

    def encode(self, rows: list[Any]) -> tuple[list[str], list[str]]:
        """Lines for the metrics file and wire points; updates last values and summaries."""
        lines: list[str] = []
        points: list[str] = []
        encoder = self.encoder
        enc = encoder.encode_values
        last = self.last
        defs = self.defs
        for step, ts, row in rows:
            if defs:
                row = self.apply_defs(row)
            vals = enc(row)
            if vals is None:
                continue
            clean = encoder.last_clean
            last.update(row if clean is None else clean)
            if defs:
                self.summarise(row if clean is None else clean)
            t = repr(ts)
            if vals == "{}":
                continue
            lines.append(f'{{"_step":{step},"_timestamp":{t},{vals[1:]}\n')
            points.append(f'{{"step":{step},"timestamp":{t},"values":{vals}}}')
        return lines, points

    def apply_defs(self, row: dict[str, Any]) -> dict[str, Any]:
        for d in self.defs:
            sm = d.step_metric
            if sm and sm not in row and sm in self.last and any(d.matches(k) for k in row):
                row = dict(row)
                row[sm] = self.last[sm]
        return row

    def summarise(self, vals: dict[str, Any]) -> None:
        for k, v in vals.items():
            if isinstance(v, str) or v != v:
                continue
            for d in self.defs:
                if d.summary and d.matches(k):
                    agg = self._agg.setdefault(k, [v, v, 0.0, 0])
                    agg[0], agg[1] = min(agg[0], v), max(agg[1], v)
                    agg[2] += v
                    agg[3] += 1
                    mode = d.summary
                    if mode == "best":
                        mode = "max" if (d.goal or "minimize").startswith("max") else "min"
                    value = {"min": agg[0], "max": agg[1], "mean": agg[2] / agg[3]}.get(mode)
                    if value is not None:
                        self.defined_summary[k] = value
                        self.ops.append(("summary", {k: value}))
                    break

    def snapshot_last(self) -> dict[str, Any]:
        """Last values, including rows log() queued a moment ago."""
        self.write_rows()
        with self.lock:
            snap = dict(self.last)
            snap.update(self.defined_summary)
        for k, v in snap.items():
            if isinstance(v, str):
                snap[k] = _FLOATS.get(v, v)
        return snap

    # -- log lines --------------------------------------------------------------------------
    def write_lines(self) -> None:
        if not self.lines or self.spool is None:
            return
        out = []
        pop = self.lines.popleft
        try:
            for _ in range(len(self.lines)):
                out.append(dumps(pop()) + "\n")
        except IndexError:
            pass
        if self._out_file is None:
            self._out_file = open(self.spool.path("output"), "a", encoding="utf-8")  # noqa: SIM115
        self._out_file.write("".join(out))
        self._out_file.flush()

    def sample_system(self) -> None:
        try:
            p = self.system.sample()
        except Exception:  # sampling must never stop the run
            return
        if p is None or self.spool is None:
            return
        p["values"] = {k: wire_float(v) for k, v in p["values"].items()}
        with open(self.spool.path("system"), "a", encoding="utf-8") as f:
            f.write(dumps(p) + "\n")

    # -- the server --------------------------------------------------------------------------
    def try_create(self) -> None:
        assert self.create_run is not None
        try:
            self.create_run()
        except CommError as e:
            self._note_failure(e)
            self._next_create = time.monotonic() + min(30.0, 1.0 * 2 ** min(self._failures, 5))
            return
        except Exception as e:
            self.blocked = str(e)
            self.warn_once(
                "blocked",
                f"wanllmdb: the server refused run {self.run_id}: {e}; it stays in the spool",
            )
            self.transport = None
            return
        self.created = True
        self._back_online()

    def _note_failure(self, e: Exception) -> None:
        self._failures += 1
        if self.outage is None:
            self.outage = str(e)
            self.warn_once(
                "outage",
                f"wanllmdb: {e}; run {self.run_id} goes on, and its data waits in the spool "
                "until the server is back",
            )

    def _back_online(self) -> None:
        self._failures = 0
        if self.outage is not None:
            self.outage = None
            self.warned.discard("outage")

    def ship(self, final: bool) -> None:
        assert self.shipper is not None
        sh = self.shipper
        try:
            if self.mem_points is not None and self._file is not None:
                self._ship_memory()
            else:
                sh.ship_metrics(final)
                if self._file is not None:
                    # Caught up from the file: ship from memory again.
                    st = sh.state["metrics"]
                    if st["offset"] >= os.path.getsize(self.spool.path("metrics")):  # type: ignore[union-attr]
                        self.mem_points = []
            sh.ship_points("system", final)
            sh.ship_output(final)
            sh.ship_summary()
            self._back_online()
        except CommError as e:
            if is_transient(e):
                self._note_failure(e)
                self._next_ship = time.monotonic() + min(30.0, 0.5 * 2 ** min(self._failures, 6))
            else:
                self._refused(e)
        except UsageError as e:
            self._refused(e)

    def _refused(self, e: Exception) -> None:
        self.blocked = str(e)
        self.warn_once(
            "refused",
            f"wanllmdb: the server refused data of run {self.run_id}: {e}; it stays in the spool",
        )
        self.transport = None

    def _ship_memory(self) -> None:
        sh = self.shipper
        assert sh is not None and self.mem_points is not None and self.spool is not None
        pts = self.mem_points
        end = os.path.getsize(self.spool.path("metrics"))
        while pts:
            chunk = pts[:POINTS_PER_POST]
            sh.post_points(chunk)
            del pts[: len(chunk)]
        st = sh.state["metrics"]
        if st["offset"] != end:
            st["offset"] = end
            sh.save()

    def heartbeat(self) -> None:
        assert self.transport is not None
        try:
            hb = self.transport.post(
                f"/runs/{self.run_id}/heartbeat", {}, what=f"run {self.run_id}"
            )
        except CommError as e:
            if is_transient(e):
                self._note_failure(e)
            return
        except Exception:
            return
        if hb and hb.get("stop_requested"):
            self.on_stop("stop requested")

    def run_ops(self) -> None:
        while self.ops:
            op, arg = self.ops[0]
            try:
                self.do_op(op, arg)
            except CommError as e:
                if is_transient(e):
                    self._note_failure(e)
                    return
                self.warn_once(f"op-{op}", f"wanllmdb: {op} of run {self.run_id} failed: {e}")
            except Exception as e:
                self.warn_once(f"op-{op}", f"wanllmdb: {op} of run {self.run_id} failed: {e}")
            self.ops.popleft()

    do_op: Callable[[str, Any], None]

    # -- the end -----------------------------------------------------------------------------
    def close(self, timeout: float) -> None:
        """Stops the loop and writes (and ships, within ``timeout``) everything left."""
        self.closing = True
        self.wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5.0)
        self.write_rows()
        self.write_lines()
        if self.transport is not None:
            deadline = time.monotonic() + timeout
            while True:
                self._next_ship = 0.0
                self._next_create = 0.0
                self.cycle(final=True)
                if self.transport is None or self.fully_shipped():
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        for f in (self._file, self._out_file):
            if f is not None:
                f.close()
        self._file = self._out_file = None

    def fully_shipped(self) -> bool:
        """Everything is on the server (attached runs: every change was carried out)."""
        if self.transport is None or not self.created or self.ops:
            return False
        if self.spool is None or self.shipper is None:
            return True
        st = self.shipper.state
        return self.spool.pending_bytes(st) == 0 and bool(st.get("summary_sent"))
