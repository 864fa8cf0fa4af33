"""Sweeps: create them, control them, and run their trials in this process with
``agent(sweep_id, function=train)``."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import traceback
from typing import Any, Callable, Mapping

from . import _state
from ._errors import NotFound, RunStopped, UsageError, warn
from ._project import Record, check_project_name, ensure_project
from ._transport import Transport, seg

HEARTBEAT_EVERY = 5.0
ENV_HEARTBEAT = "WANLLMDB_SWEEP_HEARTBEAT"
FLAP_RUNS = 3


def _api() -> Transport:
    from . import _api as api

    return api()


def _heartbeat_every() -> float:
    from ._settings import env_seconds

    return env_seconds(ENV_HEARTBEAT, HEARTBEAT_EVERY)


def create(config: dict[str, Any], project: str | None, **kwargs: Any) -> str:
    from . import _project_of

    for k in kwargs:
        if k != "entity":
            from ._compat import warn_unsupported

            warn_unsupported(f"sweep({k}=)")
    if not isinstance(config, dict):
        raise UsageError("sweep(sweep=...) takes the sweep config as a dict")
    proj = project or config.get("project") or _project_of(None, "sweep()")
    check_project_name(proj, "sweep(project=...)")
    t = _api()
    path = f"/projects/{seg(proj)}/sweeps"
    try:
        got = t.post(path, {"config": config}, what="sweep()")
    except NotFound as e:
        # Sweeps, like runs, may start a project.
        if "project" not in str(e):
            raise
        ensure_project(t, proj)
        got = t.post(path, {"config": config}, what="sweep()")
    for w in got["warnings"]:
        warn(f"wanllmdb: sweep {got['id']}: {w}")
    return got["id"]


def create_from_parts(
    name: str,
    method: str,
    metric_name: str,
    metric_goal: str,
    config: Mapping[str, Any] | None,
    project: str | None,
) -> str:
    if metric_goal not in ("maximize", "minimize"):
        raise UsageError(f"create_sweep(metric_goal={metric_goal!r}): use 'maximize' or 'minimize'")
    cfg = dict(config or {})
    params = cfg.pop("parameters", None)
    if params is None:
        params, cfg = cfg, {}
    cfg.update(
        {
            "name": name,
            "method": method,
            "metric": {"name": metric_name, "goal": metric_goal},
            "parameters": params,
        }
    )
    return create(cfg, project)


def control(sweep_id: str, action: str) -> Record:
    return Record(
        _api().post(f"/sweeps/{seg(sweep_id)}/{action}", {}, what=f"{action}_sweep({sweep_id!r})")
    )


class Suggestion(dict):  # type: ignore[type-arg]
    """Suggested parameters (nested as the run's config), with ``.run_id`` reserved for the
    trial and ``.number``."""

    run_id: str
    number: int


def suggest(sweep_id: str) -> Suggestion:
    got = _api().post(f"/sweeps/{seg(sweep_id)}/suggest", {}, what=f"suggest_params({sweep_id!r})")
    s = Suggestion(got["config"])
    s.run_id = got["run_id"]
    s.number = got["number"]
    return s


def importance(sweep_id: str) -> dict[str, float]:
    a = _api().get(f"/sweeps/{seg(sweep_id)}/analysis", what=f"get_param_importance({sweep_id!r})")
    return {p["name"]: p["importance"] for p in a["importance"]}


def parallel_coords(sweep_id: str) -> dict[str, Any]:
    a = _api().get(f"/sweeps/{seg(sweep_id)}/analysis", what=f"get_parallel_coords({sweep_id!r})")
    return {"metric": a["metric"], "axes": a["axes"], "lines": a["lines"]}


def agent(sweep_id: str, function: Callable[[], Any] | None, count: int | None) -> None:
    if count is not None and (not isinstance(count, int) or count < 1):
        raise UsageError(f"agent(count={count!r}) must be a positive whole number")
    if function is None:
        _agent_binary(sweep_id, count)
        return
    if not callable(function):
        raise UsageError("agent(function=...) must be callable")
    Agent(sweep_id, function).work(count)


def _agent_binary(sweep_id: str, count: int | None) -> None:
    from ._settings import cli_binary

    exe = cli_binary()
    if not exe:
        raise UsageError(
            "agent() without function= runs the sweep's program through the `wanllmdb` binary, which is not on PATH"
        )
    cmd = [exe, "sweep", "agent", sweep_id] + (["--count", str(count)] if count else [])
    code = subprocess.call(cmd)
    if code != 0:
        raise UsageError(f"`{' '.join(cmd)}` exited with {code}")


class Agent:
    """An in-process agent: registers, asks for trials, runs each in a fresh run, heartbeats
    while it runs, and turns the controller's stop into :class:`RunStopped`."""

    def __init__(self, sweep_id: str, function: Callable[[], Any]) -> None:
        self.sweep_id = sweep_id
        self.function = function
        self.t = _api()
        self.base = f"/sweeps/{seg(sweep_id)}"

    def work(self, count: int | None) -> None:
        reg = self.t.post(
            f"{self.base}/agents",
            {"host": socket.gethostname(), "pid": os.getpid()},
            what=f"agent({self.sweep_id!r})",
        )
        self.agent_id = reg["agent_id"]
        try:
            self._loop(count)
        finally:
            try:
                self.t.delete(f"{self.base}/agents/{seg(self.agent_id)}")
            except Exception:
                pass

    def _heartbeat(self, running: list[str], want: bool) -> dict[str, Any]:
        return self.t.post(
            f"{self.base}/agents/{seg(self.agent_id)}/heartbeat",
            {"running": running, "want_run": want},
            what=f"agent({self.sweep_id!r})",
        )

    def _loop(self, count: int | None) -> None:
        done = 0
        failures: list[BaseException] = []
        healthy = False
        while count is None or done < count:
            answer = self._heartbeat([], True)
            ran = False
            for cmd in answer.get("commands", []):
                if cmd.get("type") == "exit":
                    return
                if cmd.get("type") == "run":
                    ok, err = self._trial(cmd)
                    done += 1
                    ran = True
                    if ok:
                        healthy = True
                    elif err is not None and not healthy:
                        failures.append(err)
                        if len(failures) >= FLAP_RUNS:
                            raise UsageError(
                                f"agent(): the first {FLAP_RUNS} trials all raised; the last one: {err!r}"
                            ) from err
                    if count is not None and done >= count:
                        return
            if not ran:
                time.sleep(_heartbeat_every())

    def _trial(self, cmd: dict[str, Any]) -> tuple[bool, BaseException | None]:
        from ._run import init

        run = init(
            project=cmd["project"],
            id=cmd["run_id"],
            config=cmd.get("config") or {},
            group=f"sweep-{self.sweep_id}",
            job_type="sweep",
            reinit=True,
        )
        run._agent_trial = True
        run.sweep_id = self.sweep_id
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(run, stop), daemon=True)
        beat.start()
        err: BaseException | None = None
        try:
            self.function()
        except RunStopped as e:
            run._end("killed", None, e.reason, None)
        except Exception as e:
            err = e
            traceback.print_exc()
            run._end("crashed", 1, None, None)
        finally:
            stop.set()
            beat.join(timeout=10)
            if not run._finished:
                if run.should_stop:
                    run._end("killed", None, run._stop_reason, None)
                else:
                    run.finish()
            if _state.current is run:
                _state.current = None
        return err is None, err

    def _beat(self, run: Any, stop: threading.Event) -> None:
        while not stop.wait(_heartbeat_every()):
            try:
                answer = self._heartbeat([run.id], False)
            except Exception:
                continue
            for c in answer.get("commands", []):
                if c.get("type") == "stop" and c.get("run_id") == run.id:
                    run._request_stop(c.get("reason") or "stopped by the sweep")
