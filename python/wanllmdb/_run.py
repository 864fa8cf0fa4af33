"""Runs: ``init()`` creates (or resumes, or attaches to) a run; ``log()`` only queues; the
run's :class:`~wanllmdb._worker.Worker` thread does the rest."""

from __future__ import annotations

import atexit
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import _settings, _state
from ._config import Config, Summary, as_mapping
from ._encode import json_friendly
from ._errors import (
    AuthenticationError,
    CommError,
    NotFound,
    PermissionDenied,
    RunStopped,
    UsageError,
)
from ._errors import warn as _warn
from ._spool import SPOOL_VERSION, Spool
from ._transport import Transport, Unreachable, seg, with_retries
from ._worker import MetricDef, Worker

VERSION = "0.1.0"
RUN_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
ENV_RUN_ID = "WANLLMDB_RUN_ID"
ENV_METRICS = "WANLLMDB_METRICS"
ENV_RUN_CONFIG = "WANLLMDB_RUN_CONFIG"
ENV_SWEEP_ID = "WANLLMDB_SWEEP_ID"
ENV_SWEEP_PARAMS = "WANLLMDB_SWEEP_PARAMS"
ENV_MODE = "WANLLMDB_MODE"
ENV_CONSOLE = "WANLLMDB_CONSOLE"
ENV_QUIET = "WANLLMDB_QUIET"
INIT_TIMEOUT = 10.0
FINISH_TIMEOUT = 10.0
ENV_SYNC_TIMEOUT = "WANLLMDB_SYNC_TIMEOUT"
QUEUE_CAP = 200_000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SUMMARY_MODES = ("min", "max", "mean", "last", "best", "none")

_time = time.time
_last_project: str | None = None
_lock = threading.RLock()
_hooks_installed = False


def new_run_id() -> str:
    """8 characters of a-z and 0-9, like the CLI's."""
    return "".join(random.SystemRandom().choice(RUN_ID_CHARS) for _ in range(8))


def valid_run_id(s: str) -> bool:
    return len(s) == 8 and all(c in RUN_ID_CHARS for c in s)


def last_project() -> str | None:
    """The project of the last run started in this process."""
    return _last_project


def current() -> Run | None:
    return _state.current


class Run:
    """One run. Module functions (``wanllmdb.log`` …) act on the current one; the same calls
    exist as methods. ``with wanllmdb.init(...) as run:`` finishes it at the end (crashed when
    an exception escapes)."""

    id: str
    name: str
    project: str
    config: Config
    summary: Summary

    def __init__(
        self,
        run_id: str,
        project: str,
        name: str | None,
        mode: str,
        settings: _settings.Settings | None,
        config: dict[str, Any],
        tags: list[str],
    ) -> None:
        self.id = run_id
        self.project = project
        self.name = name or run_id
        self.mode = mode
        self.settings = settings
        self.tags = list(tags)
        self.step = 0
        self.dir: Path | None = None
        self.url = ""
        self.attached = False
        self.sweep_id: str | None = None
        self.disabled = mode == "disabled"
        self._queue: deque[Any] = deque()
        self._partial: dict[str, Any] = {}
        self._live = not self.disabled
        self._finished = False
        self._stop_reason: str | None = None
        self._pid = os.getpid()
        self._worker: Worker | None = None
        self._spool: Spool | None = None
        self._transport: Transport | None = None
        self._meta: dict[str, Any] = {}
        self._summary_set: dict[str, Any] = {}
        self._line_no: dict[str, int] = {}
        self._tees: Any = None
        self._warned: set[str] = set()
        self._agent_trial = False
        self.config = Config(config, self._config_changed)
        self.summary = Summary(self._summary_snapshot, self._summary_set_values)

    # -- the hot path -----------------------------------------------------------------------
    def log(
        self, data: dict[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Logs metrics at the current step. Without ``step``, each call is one step (the step
        counter moves on); ``commit=False`` gathers values into the current step until a call
        commits; a ``step`` lower than the current one is dropped with a warning.

        Example: ``run.log({"loss": 0.25, "acc": 0.91})``."""
        if (
            step is None
            and commit is None
            and self._live
            and type(data) is dict
            and not self._partial
        ):
            q = self._queue
            q.append((self.step, _time(), data.copy()))
            self.step += 1
            if len(q) > QUEUE_CAP:
                self._relieve()
            return
        self._log_slow(data, step, commit)

    def _log_slow(self, data: Any, step: Any, commit: bool | None) -> None:
        if self._stop_reason is not None:
            raise RunStopped(self.id, self._stop_reason)
        if not self._usable("log"):
            return
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise UsageError(
                f"log(data=...) takes a dict of metric names to values, not a {type(data).__name__}"
            )
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int):
                try:
                    if float(step) != int(step):
                        raise ValueError
                    step = int(step)
                except (TypeError, ValueError):
                    raise UsageError(
                        f"log(step=...) must be a whole number, not {step!r}"
                    ) from None
            if step < self.step:
                self._warn_once(
                    "low-step",
                    f"wanllmdb: log(step={step}) is lower than the current step {self.step}; steps "
                    "must not decrease, so this data is dropped (reported once)",
                )
                return
            if step > self.step:
                if self._partial:
                    self._commit()
                self.step = step
        self._partial.update(data)
        if commit is None:
            commit = step is None
        if commit:
            self._commit()

    def _commit(self) -> None:
        if self._partial:
            self._queue.append((self.step, _time(), self._partial))
            self._partial = {}
        self.step += 1

    def _relieve(self) -> None:
        # The writer thread fell far behind (it only writes to disk, so this is rare): do its
        # work here rather than let memory grow.
        w = self._worker
        if w is not None:
            w.write_rows()

    def _usable(self, what: str) -> bool:
        if self.disabled:
            return False
        if os.getpid() != self._pid:
            self._warn_once(
                "fork",
                f"wanllmdb: {what}() in a forked child is ignored; run {self.id} belongs to its parent",
            )
            return False
        if self._finished:
            self._warn_once(
                f"finished-{what}", f"wanllmdb: {what}() after finish() is ignored (run {self.id})"
            )
            return False
        return True

    def _warn_once(self, cause: str, msg: str) -> None:
        if cause not in self._warned:
            self._warned.add(cause)
            _warn(msg)

    # -- stop requests -----------------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """True once the run was asked to stop; the next ``log()`` raises :class:`RunStopped`."""
        return self._stop_reason is not None

    def _request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._live = False

    # -- config, summary, tags -----------------------------------------------------------------
    def _config_changed(self, changes: dict[str, Any]) -> None:
        if self.disabled or self._worker is None:
            return
        self._meta.setdefault("run", {}).setdefault("config", {}).update(changes)
        if self._spool is not None:
            self._spool.save_meta(self._meta)
        self._op("config", changes)

    def _summary_snapshot(self) -> dict[str, Any]:
        snap = self._worker.snapshot_last() if self._worker is not None else {}
        snap.update(self._summary_set)
        return snap

    def _summary_set_values(self, values: dict[str, Any]) -> None:
        clean = {str(k): json_friendly(v, f"summary.{k}", _warn) for k, v in values.items()}
        self._summary_set.update(clean)
        if self.disabled or self._worker is None:
            return
        if self._spool is not None:
            current = self._spool.summary()
            current.update(clean)
            self._spool.write_summary(current)
        self._op("summary", clean)

    def _op(self, op: str, arg: Any) -> None:
        w = self._worker
        if w is None:
            return
        if (
            self._spool is not None
            and self._worker is not None
            and w.shipper is not None
            and op == "summary"
        ):
            # summary.json is shipped again (offline runs, and `wanllmdb sync`).
            w.shipper.state["summary_sent"] = self._transport is not None
        if self._transport is not None:
            w.ops.append((op, arg))
            w.wake.set()

    def _do_op(self, op: str, arg: Any) -> None:
        t = self._transport
        assert t is not None
        rid = seg(self.id)
        what = f"run {self.id}"
        if op == "config":
            t.patch(f"/runs/{rid}", {"config": arg}, what)
        elif op == "summary":
            t.post(f"/runs/{rid}/summary", {"values": arg}, what)
        elif op == "tag_add":
            t.post(f"/runs/{rid}/tags", {"tag": arg}, what)
        elif op == "tag_remove":
            t.delete(f"/runs/{rid}/tags/{seg(arg)}", what)
        elif op == "files":
            self._upload_saved(arg)

    def add_tag(self, tag: str) -> None:
        """Adds a tag to the run. Example: ``run.add_tag("production-ready")``."""
        tag = _check_tag(tag)
        if not self._usable("add_tag") or tag in self.tags:
            return
        self.tags.append(tag)
        self._tags_changed()
        self._op("tag_add", tag)

    def remove_tag(self, tag: str) -> None:
        """Removes a tag from the run. Example: ``run.remove_tag("baseline")``."""
        tag = _check_tag(tag)
        if not self._usable("remove_tag"):
            return
        if tag not in self.tags:
            raise UsageError(f"remove_tag(tag={tag!r}): run {self.id} has no such tag")
        self.tags.remove(tag)
        self._tags_changed()
        self._op("tag_remove", tag)

    def _tags_changed(self) -> None:
        if self._spool is not None:
            self._meta.setdefault("run", {})["tags"] = list(self.tags)
            self._spool.save_meta(self._meta)

    # -- metrics definitions -----------------------------------------------------------------
    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        summary: str | None = None,
        goal: str | None = None,
        step_sync: bool = True,
        **kwargs: Any,
    ) -> MetricDef:
        """Says how a metric (or a glob such as ``"val/*"``) is summarised: ``summary`` is
        ``min``, ``max``, ``mean``, ``best`` (with ``goal="minimize"|"maximize"``), ``last`` or
        ``none``; rows that log it also carry the last value of ``step_metric``.

        Example: ``run.define_metric("val_loss", summary="min", goal="minimize")``."""
        if not isinstance(name, str) or not name:
            raise UsageError("define_metric(name=...) must be a metric name or a glob")
        if summary is not None:
            summary = summary.split(",")[0].strip().lower()
            if summary not in SUMMARY_MODES:
                raise UsageError(
                    f"define_metric(summary={summary!r}): use one of {', '.join(SUMMARY_MODES)}"
                )
        if goal is not None and goal not in ("minimize", "maximize"):
            raise UsageError(f"define_metric(goal={goal!r}): use 'minimize' or 'maximize'")
        for k in kwargs:
            _unsupported(f"define_metric({k}=)")
        d = MetricDef(name, step_metric if step_sync else None, summary, goal)
        if self._worker is not None:
            with self._worker.lock:
                self._worker.defs.append(d)
        return d

    # -- log lines ---------------------------------------------------------------------------
    def _line(
        self, source: str, message: str, level: str = "INFO", ts: float | None = None
    ) -> None:
        n = self._line_no.get(source, 0) + 1
        self._line_no[source] = n
        if self._worker is None:
            return
        self._worker.lines.append(
            {
                "level": level,
                "message": message,
                "timestamp": ts or _time(),
                "source": source,
                "line_number": n,
            }
        )

    def _capture_line(self, source: str, message: str) -> None:
        if os.getpid() == self._pid and not self._finished:
            level = "ERROR" if source == "stderr" and "Traceback" in message else "INFO"
            self._line(source, message, level)

    def log_message(self, message: str, level: str = "INFO") -> None:
        """Adds a line to the run's log (source ``sdk``). Example:
        ``run.log_message("epoch 3 done", level="INFO")``."""
        if not self._usable("log_message"):
            return
        self._line("sdk", str(message), _check_level(level))
        self._attached_lines()

    def log_batch(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """Adds several lines: each a dict with ``message`` and optionally ``level`` and
        ``timestamp``. Example: ``run.log_batch([{"level": "INFO", "message": "Loss: 0.5"}])``."""
        if not self._usable("log_batch"):
            return
        for i, line in enumerate(lines):
            if not isinstance(line, Mapping) or "message" not in line:
                raise UsageError(f"log_batch(lines=...): item {i} needs a 'message'")
            ts = line.get("timestamp")
            self._line(
                "sdk",
                str(line["message"]),
                _check_level(line.get("level", "INFO")),
                float(ts) if isinstance(ts, (int, float)) else None,
            )
        self._attached_lines()

    def _attached_lines(self) -> None:
        # Under the wrapper the lines go straight to the server (the wrapper owns the spool).
        w = self._worker
        if not self.attached or w is None or self._transport is None:
            return
        lines = []
        while w.lines:
            lines.append(w.lines.popleft())
        w.ops.append(("lines", lines))
        w.wake.set()

    # -- the server side -----------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Tells the server the run is alive (the background thread does it every 30 s)."""
        w = self._worker
        if w is not None and self._transport is not None and not self.attached:
            w.heartbeat()

    def _require_online(self, what: str) -> Transport:
        if self._transport is None:
            raise UsageError(f"{what} needs the server; run {self.id} is {self.mode}")
        return self._transport

    # -- the end ---------------------------------------------------------------------------------
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Ends the run: everything logged is written and shipped, and the run is marked
        finished (crashed when ``exit_code`` is not 0). Example: ``wandb.finish()``."""
        state = "finished" if not exit_code else "crashed"
        self._end(state, exit_code if exit_code is not None else 0, None, quiet)

    def mark_crashed(self) -> None:
        """Ends the run as crashed."""
        self._end("crashed", 1, None, None)

    def _end(
        self, state: str, exit_code: int | None, reason: str | None, quiet: bool | None
    ) -> None:
        if self._finished or os.getpid() != self._pid:
            return
        if self._partial:
            self._commit()
        self._finished = True
        self._live = False
        if self._tees is not None:
            from . import _capture

            _capture.uninstall(self._tees)
            self._tees = None
        w = self._worker
        left = ""
        if w is not None:
            if self.attached:
                if w.lines:
                    self._attached_lines()
                w.close(FINISH_TIMEOUT)
            else:
                finish = {"state": state, "exit_code": exit_code}
                if reason:
                    finish["reason"] = reason
                if self._spool is not None:
                    self._spool.write_exit(finish)
                w.close(_settings.env_seconds(ENV_SYNC_TIMEOUT, FINISH_TIMEOUT))
                left = self._finish_on_server(w, finish)
        if self._spool is not None:
            self._spool.release()
            if not left:
                _forget_resume(self._spool.dir.parent.parent, self.id)
        with _lock:
            if _state.current is self:
                _state.current = None
        if left and not quiet:
            _warn(left)

    def _finish_on_server(self, w: Worker, finish: dict[str, Any]) -> str:
        spool = self._spool
        assert spool is not None
        if self._transport is None or w.transport is None:
            why = w.blocked or (
                "the run is offline" if self.mode == "offline" else "the server was unreachable"
            )
            return f"wanllmdb: run {self.id} ended ({finish['state']}) but is not on the server ({why}); upload it with: wanllmdb sync {spool.dir}"
        if not w.fully_shipped():
            if w.ops and w.shipper is not None:
                # Config or tag changes that did not arrive: `wanllmdb sync` re-creates the run
                # (a resume merges them).
                w.shipper.state["created"] = False
                w.shipper.save()
            return f"wanllmdb: not everything of run {self.id} reached the server ({w.outage or 'unreachable'}); upload the rest with: wanllmdb sync {spool.dir}"
        saved = spool.saved_files()
        if saved:
            try:
                self._upload_saved(saved)
                spool.write_saved_files([])
            except (CommError, OSError) as e:
                return f"wanllmdb: the files saved by run {self.id} were not attached ({e}); run: wanllmdb sync {spool.dir}"
        try:
            with_retries(
                lambda: self._transport.post(
                    f"/runs/{seg(self.id)}/finish", finish, what=f"run {self.id}"
                ),  # type: ignore[union-attr]
                time.monotonic() + FINISH_TIMEOUT,
            )
        except CommError as e:
            return f"wanllmdb: run {self.id} could not be marked {finish['state']}: {e}; run: wanllmdb sync {spool.dir}"
        if w.shipper is not None:
            w.shipper.state["finished"] = True
            w.shipper.save()
        return ""

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        elif isinstance(exc, RunStopped):
            self._end("killed", None, exc.reason, None)
        elif isinstance(exc, KeyboardInterrupt):
            self._end("killed", 130, None, None)
        else:
            self._end("crashed", 1, None, None)

    def __repr__(self) -> str:
        return f"<wanllmdb.Run {self.id} project={self.project!r} mode={self.mode}>"

    # -- files ----------------------------------------------------------------------------------
    def save(self, glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
        """Attaches files matching ``glob_str`` to the run (uploaded when it ends, or at once
        with ``policy="now"``); returns their names on the run. Example:
        ``run.save("checkpoints/*.pt")``."""
        from ._files import collect_saves

        if not self._usable("save"):
            return []
        if policy not in ("live", "now", "end"):
            raise UsageError(f"save(policy={policy!r}): use 'live', 'now' or 'end'")
        files = collect_saves(glob_str, base_path)
        if not files:
            _warn(f"wanllmdb: save({glob_str!r}) matched no files")
            return []
        if self._spool is not None:
            have = {f["remote"]: f for f in self._spool.saved_files()}
            for f in files:
                have[f["remote"]] = f
            self._spool.write_saved_files(list(have.values()))
        if policy == "now" and self._transport is not None:
            self._op("files", files)
        return [f["remote"] for f in files]

    def _upload_saved(self, files: list[dict[str, str]]) -> None:
        from ._files import put_run_files

        assert self._transport is not None
        put_run_files(self._transport, self.id, files)

    def get_upload_url(self, name: str) -> str:
        """An absolute URL that takes a plain ``PUT`` of the file's bytes, without credentials,
        for an hour; follow with :meth:`register_file`. Example:
        ``requests.put(run.get_upload_url("model.pth"), data=open("model.pth", "rb"))``."""
        t = self._require_online("get_upload_url()")
        return t.post(
            f"/runs/{seg(self.id)}/files/upload-url",
            {"path": name},
            what=f"get_upload_url({name!r})",
        )["url"]

    def register_file(
        self, name: str, size: int, md5: str | None = None, sha256: str | None = None
    ) -> dict[str, Any]:
        """Attaches a file sent to :meth:`get_upload_url` to the run, once the server checked
        that ``size`` bytes arrived (and that they match ``md5``/``sha256`` when given).
        Example: ``run.register_file("model.pth", size=os.path.getsize("model.pth"))``."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UsageError(
                f"register_file(size={size!r}) must be the number of bytes sent to the upload URL"
            )
        t = self._require_online("register_file()")
        body: dict[str, Any] = {"path": name, "size": size}
        if md5:
            body["md5"] = md5
        if sha256:
            body["sha256"] = sha256
        return t.post(f"/runs/{seg(self.id)}/files/register", body, what=f"register_file({name!r})")

    def get_download_url(self, name: str) -> str:
        """An absolute URL that answers a plain ``GET`` with the file's bytes, for five
        minutes."""
        t = self._require_online("get_download_url()")
        return t.get(
            f"/runs/{seg(self.id)}/files/download-url",
            {"path": name},
            what=f"get_download_url({name!r})",
        )["url"]

    # -- artifacts (see _artifact.py) ------------------------------------------------------------
    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
    ) -> Any:
        """Logs an :class:`Artifact` (or a file or directory path) as a new version produced
        by this run."""
        from ._artifact import log_artifact

        return log_artifact(artifact_or_path, name=name, type=type, aliases=aliases, run=self)

    def use_artifact(self, artifact_or_name: Any, type: str | None = None) -> Any:
        """Fetches an artifact version (``"name:alias"``, ``"name:v3"``, ``"name:latest"``)
        and records this run as its user."""
        from ._artifact import use_artifact

        return use_artifact(artifact_or_name, type=type, run=self)


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag.strip() or len(tag.encode()) > 128:
        raise UsageError(f"tag {tag!r} must be a string of 1 to 128 bytes")
    return tag.strip()


def _check_level(level: Any) -> str:
    lv = str(level).upper()
    lv = "WARNING" if lv == "WARN" else lv
    if lv not in LEVELS:
        raise UsageError(f"level={level!r}: use one of {', '.join(LEVELS)}")
    return lv


def _unsupported(what: str) -> None:
    from ._compat import warn_unsupported

    warn_unsupported(what)


# -- init ---------------------------------------------------------------------------------------


def _git_info() -> tuple[dict[str, Any] | None, str | None]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        s = out.stdout.strip()
        return s if out.returncode == 0 and s else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    remote = git("remote", "get-url", "origin")
    if remote and "://" in remote and "@" in remote.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = remote.split("://", 1)
        remote = f"{scheme}://{rest.split('@', 1)[1]}"
    status = git("status", "--porcelain", "--untracked-files=no")
    info = {
        "commit": commit,
        "branch": branch if branch != "HEAD" else None,
        "remote": remote,
        "dirty": bool(status),
    }
    return info, None


def _runtime() -> dict[str, str]:
    rt = {"python": platform.python_version(), "wanllmdb": VERSION}
    for mod in ("torch", "numpy", "tensorflow", "jax", "transformers"):
        m = sys.modules.get(mod)
        v = getattr(m, "__version__", None) if m is not None else None
        if isinstance(v, str):
            rt[mod] = v
    return rt


def _create_request(
    project: str,
    run_id: str,
    name: str | None,
    config: dict[str, Any],
    tags: list[str],
    notes: str | None,
    group: str | None,
    job_type: str | None,
) -> dict[str, Any]:
    git, _ = _git_info()
    req: dict[str, Any] = {
        "project": project,
        "id": run_id,
        "config": config,
        "tags": tags,
        "host": socket.gethostname(),
        "os": f"{platform.system().lower()} ({platform.platform()})",
        "program": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
        if sys.argv and sys.argv[0]
        else None,
        "runtime": _runtime(),
    }
    for k, v in (
        ("name", name),
        ("notes", notes),
        ("group", group),
        ("job_type", job_type),
        ("git", git),
    ):
        if v is not None:
            req[k] = v
    return {k: v for k, v in req.items() if v is not None}


def _resume_file(root: Path) -> Path:
    return root / "resume.json"


def _remember_resume(root: Path, run_id: str) -> None:
    try:
        (root / "runs").mkdir(parents=True, exist_ok=True)
        _resume_file(root).write_text(json.dumps({"run_id": run_id}))
    except OSError:
        pass


def _forget_resume(root: Path, run_id: str) -> None:
    p = _resume_file(root)
    try:
        if json.loads(p.read_text()).get("run_id") == run_id:
            p.unlink()
    except (OSError, ValueError):
        pass


def _resumable_id(root: Path) -> str | None:
    try:
        rid = json.loads(_resume_file(root).read_text()).get("run_id")
    except (OSError, ValueError):
        return None
    return rid if isinstance(rid, str) and valid_run_id(rid) else None


def init(
    project: str | None = None,
    name: str | None = None,
    id: str | None = None,
    config: Any = None,
    tags: Iterable[str] | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    resume: bool | str | None = None,
    dir: str | os.PathLike[str] | None = None,
    reinit: bool | None = None,
    host: str | None = None,
    api_key: str | None = None,
    console: str | None = None,
    system_metrics: bool | None = None,
    **kwargs: Any,
) -> Run:
    """Starts a run (see the package documentation for every argument)."""
    global _last_project
    for k in kwargs:
        if k == "entity":
            continue
        _unsupported(f"init({k}=)")
    with _lock:
        cur = _state.current
        if cur is not None and not cur._finished:
            if cur._agent_trial or (os.environ.get(ENV_RUN_ID) == cur.id):
                if config is not None:
                    cur.config.setdefaults(as_mapping(config, "init(config=...)"))
                return cur
            if not reinit:
                _warn(
                    f"wanllmdb: init() while run {cur.id} is active returns that run; pass reinit=True for a new one"
                )
                return cur
            cur.finish()
        mode = (mode or os.environ.get(ENV_MODE) or "online").lower()
        if mode not in ("online", "offline", "disabled"):
            raise UsageError(f"init(mode={mode!r}): use 'online', 'offline' or 'disabled'")
        cfg = as_mapping(config, "init(config=...)")
        cfg = {str(k): json_friendly(v, str(k), _warn) for k, v in cfg.items()}
        tag_list = [_check_tag(t) for t in (tags or [])]
        if mode == "disabled":
            run = Run(
                id or new_run_id(), project or "disabled", name, "disabled", None, cfg, tag_list
            )
            _state.current = run
            return run
        if os.environ.get(ENV_RUN_ID) and os.environ.get(ENV_METRICS):
            run = _attach(cfg, name, tag_list, host, api_key)
        else:
            run = _start(
                project,
                name,
                id,
                cfg,
                tag_list,
                notes,
                group,
                job_type,
                mode,
                resume,
                dir,
                host,
                api_key,
                console,
                system_metrics,
            )
        _last_project = run.project
        _state.current = run
        _install_hooks()
        return run


def _start(
    project: str | None,
    name: str | None,
    run_id: str | None,
    cfg: dict[str, Any],
    tags: list[str],
    notes: str | None,
    group: str | None,
    job_type: str | None,
    mode: str,
    resume: Any,
    dir: Any,
    host: str | None,
    api_key: str | None,
    console: str | None,
    system_metrics: bool | None,
) -> Run:
    settings = _settings.resolve(host, api_key, project)
    proj = project or settings.project or _last_project or "uncategorized"
    from ._project import check_project_name

    check_project_name(proj, "init(project=...)")
    root = _settings.spool_root(settings, dir)
    if run_id is None and resume in (True, "auto", "allow", "must"):
        run_id = _resumable_id(root)
    if run_id is None:
        if resume == "must":
            raise UsageError("init(resume='must') needs id= (or a run of this directory to resume)")
        run_id = new_run_id()
    if not isinstance(run_id, str) or not valid_run_id(run_id):
        raise UsageError(f"init(id={run_id!r}): a run id is 8 characters of a-z and 0-9")
    if resume not in (None, False, True, "auto", "allow", "must", "never"):
        raise UsageError(f"init(resume={resume!r}): use 'allow', 'must', 'never', 'auto' or True")
    run = Run(run_id, proj, name, mode, settings, cfg, tags)
    req = _create_request(proj, run_id, name, cfg, tags, notes, group, job_type)
    meta = {
        "version": SPOOL_VERSION,
        "host": settings.host,
        "run": req,
        "offline": mode == "offline",
        "created_at": _time(),
    }
    spool = Spool.create(root, meta)
    spool.claim()
    run._spool, run._meta = spool, meta
    run.dir = spool.dir
    run._line_no = _line_numbers(spool)
    transport = None
    created = False
    if mode == "online":
        transport = Transport(settings.host, settings.api_key)
        try:
            created = _create_online(transport, run, req, resume)
        except (AuthenticationError, PermissionDenied, UsageError, NotFound):
            spool.release()
            raise
        except CommError as e:
            _warn(
                f"wanllmdb: {e}; run {run_id} is recorded offline in {spool.dir} and shipped if the "
                "server comes back (else upload it with: wanllmdb sync)"
            )
        run._transport = transport
        run.url = run_page(settings.host, run_id)
    _remember_resume(root, run_id)
    sampler = None
    if system_metrics is None:
        from ._system import disabled_by_env

        system_metrics = not disabled_by_env()
    if system_metrics:
        from ._system import SystemSampler, interval

        sampler = SystemSampler()
    w = Worker(
        run_id,
        run._queue,
        spool,
        transport,
        None,
        created,
        (lambda: _create_online(transport, run, req, "allow")) if transport else None,
        run._request_stop,
        sampler,
    )
    if sampler is not None:
        w.system_interval = interval()
    w.do_op = run._do_op  # type: ignore[method-assign]
    if created and w.shipper is not None:
        w.shipper.state["created"] = True
        w.shipper.save()
    run._worker = w
    w.start()
    _announce(run)
    console = (console or os.environ.get(ENV_CONSOLE) or "auto").lower()
    if console not in ("auto", "wrap", "off", "redirect"):
        raise UsageError(f"init(console={console!r}): use 'auto', 'wrap' or 'off'")
    if console != "off":
        from . import _capture

        run._tees = _capture.install(run._capture_line)
    return run


def run_page(host: str, run_id: str) -> str:
    """The run's page in the web UI."""
    return f"{host}/runs/{seg(run_id)}"


def _announce(run: Run) -> None:
    # One line on stderr saying where the run went (before stderr is recorded as its log).
    if os.environ.get(ENV_QUIET, "").lower() in ("1", "true", "yes"):
        return
    where = f"view it at {run.url}" if run._transport is not None else f"offline (spool {run.dir})"
    print(f"wanllmdb: run {run.id} in project {run.project}; {where}", file=sys.stderr)


def _line_numbers(spool: Spool) -> dict[str, int]:
    """Line numbers continue in a resumed spool (the server keeps one line per number)."""
    out: dict[str, int] = {}
    try:
        with open(spool.path("output"), "rb") as f:
            for raw in f:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                src, n = line.get("source"), line.get("line_number")
                if isinstance(src, str) and isinstance(n, int):
                    out[src] = max(out.get(src, 0), n)
    except OSError:
        pass
    return out


def _create_online(t: Transport, run: Run, req: dict[str, Any], resume: Any) -> bool:
    """Creates (or resumes) the run (the server creates a missing project). True when done."""
    what = f"init(project={run.project!r})"
    if resume in ("must", "never"):
        try:
            t.get(f"/runs/{seg(run.id)}", what=what)
            exists = True
        except NotFound:
            exists = False
        if resume == "must" and not exists:
            raise NotFound(f"init(resume='must'): run {run.id} does not exist on {t.base_url}")
        if resume == "never" and exists:
            raise UsageError(f"init(resume='never'): run {run.id} already exists")

    def create() -> Any:
        return t.post("/runs", req, what=what, timeout=INIT_TIMEOUT)

    try:
        # A busy server is waited for; one that does not answer at all is left to the
        # background thread (the run goes on in the spool).
        got = with_retries(
            create, time.monotonic() + INIT_TIMEOUT, stop=lambda: False, give_up=Unreachable
        )
    except (PermissionDenied, NotFound) as e:
        # The server creates a missing project, so a project it does not find is a private
        # project of others (it says no more than that to outsiders), as a 403 is a read-only one.
        if isinstance(e, NotFound) and "project" not in str(e):
            raise
        raise PermissionDenied(
            f"{what}: this account may not write to project {run.project!r} ({e})"
        ) from None
    if isinstance(got, dict):
        run.name = got.get("name") or run.name
        if got.get("created_at") != got.get("started_at") and not any(run._line_no.values()):
            run._line_no = _server_line_numbers(t, run.id)
    return True


def _server_line_numbers(t: Transport, run_id: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in t.pages(f"/runs/{seg(run_id)}/logs", {"limit": 10000}):
            src, n = line.get("source"), line.get("line_number")
            if isinstance(src, str) and isinstance(n, int):
                out[src] = max(out.get(src, 0), n)
    except CommError:
        pass
    return out


def _attach(
    cfg: dict[str, Any], name: str | None, tags: list[str], host: str | None, api_key: str | None
) -> Run:
    """Under ``wanllmdb run`` / ``sweep agent``: the wrapper's run, metrics through its file."""
    run_id = os.environ[ENV_RUN_ID]
    project = os.environ.get("WANLLMDB_PROJECT") or "uncategorized"
    config: dict[str, Any] = {}
    path = os.environ.get(ENV_RUN_CONFIG)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = json.load(f)
            if isinstance(loaded, dict):
                config.update(loaded)
        except (OSError, ValueError) as e:
            _warn(f"wanllmdb: cannot read the run's config {path}: {e}")
    elif os.environ.get(ENV_SWEEP_PARAMS):
        try:
            config.update(json.loads(os.environ[ENV_SWEEP_PARAMS]))
        except ValueError:
            pass
    settings = _settings.resolve(host, api_key, project)
    run = Run(run_id, project, name, "online", settings, config, tags)
    run.attached = True
    run.sweep_id = os.environ.get(ENV_SWEEP_ID)
    transport = Transport(settings.host, settings.api_key)
    run._transport = transport
    run.url = run_page(settings.host, run_id)
    w = Worker(
        run_id,
        run._queue,
        None,
        transport,
        os.environ[ENV_METRICS],
        True,
        None,
        run._request_stop,
        None,
    )
    w.do_op = run._do_attached_op  # type: ignore[method-assign]
    run._worker = w
    w.start()
    # Values the script passes to init() that the wrapper's config lacks join the run's config.
    new = {k: v for k, v in cfg.items() if k not in config}
    if new:
        run.config.setdefaults(new)
    for t in tags:
        if t not in run.tags:
            run._op("tag_add", t)
    if name:
        w.ops.append(("name", name))
    return run


def _do_attached_op(self: Run, op: str, arg: Any) -> None:
    t = self._transport
    assert t is not None
    if op == "lines":
        t.post(f"/runs/{seg(self.id)}/logs", {"lines": arg}, what=f"run {self.id}")
    elif op == "name":
        t.patch(f"/runs/{seg(self.id)}", {"name": arg}, what=f"run {self.id}")
    else:
        self._do_op(op, arg)


Run._do_attached_op = _do_attached_op  # type: ignore[attr-defined]


# -- process hooks: atexit, uncaught exceptions, sys.exit codes, SIGTERM, fork --------------------

_exit_code: int | None = None
_exception: BaseException | None = None
_orig_exit: Callable[..., Any] = sys.exit


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    prev_hook = sys.excepthook

    def excepthook(tp: Any, value: BaseException, tb: Any) -> None:
        global _exception
        _exception = value
        prev_hook(tp, value, tb)

    sys.excepthook = excepthook

    def exit_hook(code: Any = None) -> None:
        global _exit_code
        _exit_code = code if isinstance(code, int) else (0 if code is None else 1)
        _orig_exit(code)

    sys.exit = exit_hook
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)


def _after_fork() -> None:
    # A forked child never writes to its parent's run: its log() calls are ignored.
    run = _state.current
    if run is not None:
        run._live = False
        run._worker = None
        run._tees = None


def _at_exit() -> None:
    run = _state.current
    if run is None or run._finished or os.getpid() != run._pid:
        return
    if isinstance(_exception, RunStopped):
        run._end("killed", None, _exception.reason, None)
    elif isinstance(_exception, KeyboardInterrupt):
        run._end("killed", 130, None, None)
    elif _exception is not None:
        run._end("crashed", 1, None, None)
    elif _exit_code:
        run._end("crashed", _exit_code, None, None)
    else:
        run._end("finished", 0, None, None)


def _on_sigterm(signum: int, frame: Any) -> None:
    run = _state.current
    if run is not None and os.getpid() == run._pid:
        run._end("killed", 128 + signum, None, True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finishes the current run (a no-op without one)."""
    run = _state.current
    if run is not None:
        run.finish(exit_code=exit_code, quiet=quiet)
