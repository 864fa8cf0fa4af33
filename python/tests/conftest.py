"""Fixtures: the real ``wanllmdb server`` binary on a free port (one per session, more for
tests that kill it), and a clean HOME, config directory and spool for every test. The servers
keep their data in SQLite, or, when ``WANLLMDB_TEST_DATABASE_URL`` names a PostgreSQL database,
each in a schema of its own there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
# The checkout's package, as the scripts the tests start get it (child_env), even where an
# older copy is installed in the environment.
sys.path.insert(0, str(REPO / "python"))

import wanllmdb  # noqa: E402
from wanllmdb import _state  # noqa: E402
from wanllmdb._transport import Transport  # noqa: E402


def binary() -> str:
    """The CLI under test: ``WANLLMDB_BIN``, else the workspace's debug build."""
    env = os.environ.get("WANLLMDB_BIN")
    if env:
        return env
    for p in (REPO / "target" / "debug" / "wanllmdb", REPO / "target" / "release" / "wanllmdb"):
        if p.exists():
            return str(p)
    found = shutil.which("wanllmdb")
    if found:
        return found
    raise RuntimeError("no wanllmdb binary: run `cargo build -p wanllmdb` or set WANLLMDB_BIN")


_schemas: list[str] = []


def new_database() -> str | None:
    """A database URL for a new server: a fresh schema of ``WANLLMDB_TEST_DATABASE_URL``
    (dropped when the session ends), or None for SQLite in the server's data directory."""
    base = os.environ.get("WANLLMDB_TEST_DATABASE_URL")
    if not base:
        return None
    name = f"sdk_{os.getpid()}_{time.monotonic_ns()}"
    psql(base, f"CREATE SCHEMA {name}")
    _schemas.append(name)
    return f"{base}{'&' if '?' in base else '?'}options[search_path]={name}"


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-Xqc", sql], check=True, capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def _drop_schemas() -> Iterator[None]:
    yield
    base = os.environ.get("WANLLMDB_TEST_DATABASE_URL")
    for name in _schemas:
        if base:
            psql(base, f"DROP SCHEMA IF EXISTS {name} CASCADE")


class Server:
    """A running ``wanllmdb server``."""

    def __init__(
        self,
        data_dir: Path,
        bind: str = "127.0.0.1:0",
        extra: list[str] | None = None,
        database: str | None = None,
    ):
        self.data_dir = data_dir
        self.database = database
        env = dict(os.environ)
        for k in (
            "WANLLMDB_DATABASE_URL",
            "WANLLMDB_BASE_URL",
            "WANLLMDB_API_KEY",
            "WANLLMDB_CONFIG",
        ):
            env.pop(k, None)
        self.proc = subprocess.Popen(
            [
                binary(),
                "server",
                "--bind",
                bind,
                "--data-dir",
                str(data_dir),
                *(["--database-url", database] if database else []),
                *(extra or []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = ""
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].split()[0]
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError("the server printed no 'listening on' line")
        # Keep reading so the pipe never fills.
        threading.Thread(target=self._drain, daemon=True).start()
        self.admin_key = (data_dir / "admin-api-key").read_text().strip()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    @property
    def bind(self) -> str:
        return self.url.split("://", 1)[1]

    def api(self, key: str | None = None) -> Transport:
        return Transport(self.url, key or self.admin_key)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("server"), database=new_database())
    yield s
    s.stop()


@pytest.fixture
def env(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A clean user: HOME, config and spool under tmp_path, the server and its admin key in
    the environment, the working directory in tmp_path. Returns the variables for child
    processes."""
    home = tmp_path / "home"
    home.mkdir()
    values = {
        "HOME": str(home),
        "WANLLMDB_CONFIG_DIR": str(tmp_path / "config"),
        "WANLLMDB_DIR": str(tmp_path / "spool"),
        "WANLLMDB_BASE_URL": server.url,
        "WANLLMDB_API_KEY": server.admin_key,
        "WANLLMDB_KEYRING": "0",
        "WANLLMDB_BIN": binary(),
        "NO_COLOR": "1",
        # finish() keeps trying an unreachable server this long before leaving it to sync.
        "WANLLMDB_SYNC_TIMEOUT": "2",
    }
    for k in (
        "WANLLMDB_RUN_ID",
        "WANLLMDB_METRICS",
        "WANLLMDB_RUN_CONFIG",
        "WANLLMDB_PROJECT",
        "WANLLMDB_SWEEP_ID",
        "WANLLMDB_SWEEP_PARAMS",
        "WANLLMDB_MODE",
    ):
        monkeypatch.delenv(k, raising=False)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    yield values
    run = _state.current
    if run is not None:
        run.finish(quiet=True)
    _state.current = None


@pytest.fixture
def api(server: Server) -> Transport:
    return server.api()


def child_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment for a script in a child process, with this checkout's package."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("WANLLMDB_")}
    e.update(env)
    e["PYTHONPATH"] = str(REPO / "python") + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def run_script(
    path: Path, env: dict[str, str], *args: str, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), *args],
        env=child_env(env, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env.get("CWD"),
    )


def cli(
    env: dict[str, str], *args: str, timeout: float = 120, cwd: Any = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary(), *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def history(api: Transport, run_id: str, *keys: str) -> dict[str, dict[int, Any]]:
    """``{key: {step: value}}`` of a run."""
    q = {"keys": ",".join(keys)} if keys else None
    got = api.get(f"/runs/{run_id}/history", q)
    return {s["key"]: dict(zip(s["steps"], s["values"])) for s in got["series"]}


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Polls ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


__all__ = [
    "Server",
    "binary",
    "child_env",
    "cli",
    "history",
    "new_database",
    "run_script",
    "wait_for",
    "wanllmdb",
]
