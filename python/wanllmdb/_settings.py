"""Where the SDK finds its server, API key and project, in the command line's order:
arguments, then ``WANLLMDB_*`` variables, then ``./.wanllmdb.toml`` (and its parents), then
the user config of ``wanllmdb login``. The key stored there is read from the CLI's 0600
credentials file; a key the CLI keeps in the OS keyring is asked of ``wanllmdb auth token``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import UsageError

DEFAULT_HOST = "http://127.0.0.1:8000"
PROJECT_FILE = ".wanllmdb.toml"

ENV_BASE_URL = "WANLLMDB_BASE_URL"
ENV_API_KEY = "WANLLMDB_API_KEY"
ENV_PROJECT = "WANLLMDB_PROJECT"
ENV_CONFIG_DIR = "WANLLMDB_CONFIG_DIR"
ENV_DIR = "WANLLMDB_DIR"
ENV_BIN = "WANLLMDB_BIN"


@dataclass
class Settings:
    """Everything needed to reach the server."""

    host: str
    api_key: str | None
    project: str | None
    project_file: Path | None


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else ``default``."""
    try:
        v = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return v if v > 0 else default


def normalize_host(host: str) -> str:
    """Adds ``http://`` when no scheme is given and drops trailing slashes."""
    h = host.strip().rstrip("/")
    if not h:
        raise UsageError("host is empty; pass host='http://HOST:PORT'")
    if "://" not in h:
        h = f"http://{h}"
    if not h.startswith(("http://", "https://")):
        raise UsageError(f"host {host!r} must start with http:// or https://")
    return h


def config_dir() -> Path:
    """The CLI's user config directory (config.toml, credentials.toml)."""
    d = os.environ.get(ENV_CONFIG_DIR)
    if d:
        return Path(d)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "wanllmdb"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", Path.home())) / "wanllmdb"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config") / "wanllmdb"


def find_project_file(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """``.wanllmdb.toml`` in the current directory or a parent, parsed."""
    d = (start or Path.cwd()).resolve()
    for p in (d, *d.parents):
        f = p / PROJECT_FILE
        if f.is_file():
            return f, read_toml(f)
    return None


def resolve(
    host: str | None = None, api_key: str | None = None, project: str | None = None
) -> Settings:
    """Host, key and project, each from the first place that names it."""
    pf = find_project_file()
    file_vals = pf[1] if pf else {}
    user = read_toml(config_dir() / "config.toml")
    h = (
        host
        or os.environ.get(ENV_BASE_URL)
        or file_vals.get("host")
        or user.get("host")
        or DEFAULT_HOST
    )
    h = normalize_host(str(h))
    key = api_key or os.environ.get(ENV_API_KEY) or stored_key(h, user)
    proj = project or os.environ.get(ENV_PROJECT) or file_vals.get("project")
    return Settings(h, key or None, proj or None, pf[0] if pf else None)


def stored_key(host: str, user: dict[str, Any] | None = None) -> str | None:
    """The key ``wanllmdb login`` stored for ``host``: the credentials file, else the
    keyring through ``wanllmdb auth token``."""
    user = read_toml(config_dir() / "config.toml") if user is None else user
    entry = user.get("hosts", {}).get(host, {})
    creds = read_toml(config_dir() / "credentials.toml")
    key = creds.get("hosts", {}).get(host, {}).get("api_key")
    if key:
        return str(key)
    if entry.get("keyring"):
        return key_from_binary(host)
    return None


def cli_binary() -> str | None:
    """The ``wanllmdb`` binary: ``WANLLMDB_BIN``, else the one on PATH."""
    return os.environ.get(ENV_BIN) or shutil.which("wanllmdb")


def key_from_binary(host: str) -> str | None:
    """Asks ``wanllmdb auth token --host HOST`` (the key lives in the OS keyring)."""
    exe = cli_binary()
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "auth", "token", "--host", host],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    key = out.stdout.strip()
    return key if out.returncode == 0 and key else None


def spool_root(settings: Settings | None = None, dir: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding ``runs/<id>/`` spools, as the CLI picks it: ``dir=``, then
    ``WANLLMDB_DIR``, then ``.wanllmdb`` beside the ``.wanllmdb.toml`` in effect, then
    ``./.wanllmdb``."""
    if dir is not None:
        return Path(dir)
    d = os.environ.get(ENV_DIR)
    if d:
        return Path(d)
    if settings is not None and settings.project_file is not None:
        return settings.project_file.parent / ".wanllmdb"
    return Path(".wanllmdb")


def store_login(host: str, username: str, key: str) -> Path:
    """Stores ``key`` for ``host`` as ``wanllmdb login`` does without a keyring: the 0600
    credentials file, and the host as the default in the user config."""
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True)
    creds_path = d / "credentials.toml"
    creds = read_toml(creds_path)
    creds.setdefault("hosts", {})[host] = {"api_key": key}
    write_private(creds_path, dump_toml(creds))
    cfg_path = d / "config.toml"
    cfg = read_toml(cfg_path)
    cfg["host"] = host
    cfg.setdefault("hosts", {})[host] = {"username": username, "keyring": False}
    write_private(cfg_path, dump_toml(cfg))
    return creds_path


def write_private(path: Path, text: str) -> None:
    """Writes a file only its owner can read, atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# -- the TOML the CLI writes ------------------------------------------------------------
# Python 3.11 has tomllib; for 3.9 and 3.10 a reader of the subset the CLI writes (tables,
# quoted keys, strings, booleans, numbers) keeps the SDK free of dependencies.

_KEY = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)'
_TABLE = re.compile(rf"^\[\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*\]$")
_PAIR = re.compile(rf"^({_KEY})\s*=\s*(.+)$")


def read_toml(path: Path) -> dict[str, Any]:
    """Parses a TOML file; an absent or unreadable file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    try:
        import tomllib  # type: ignore[import-not-found]

        return tomllib.loads(text)
    except ImportError:
        return _parse_toml_subset(text)
    except ValueError as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None


def _unquote(k: str) -> str:
    k = k.strip()
    return json.loads(k) if k.startswith('"') else k


def _parse_toml_subset(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    table = root
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _TABLE.match(line)
        if m:
            table = root
            for part in re.findall(_KEY, m.group(1)):
                table = table.setdefault(_unquote(part), {})
            continue
        m = _PAIR.match(line)
        if not m:
            continue
        value = m.group(2).strip()
        if value.startswith('"'):
            end = value.rfind('"')
            parsed: Any = json.loads(value[: end + 1])
        elif value.startswith("'"):
            parsed = value[1 : value.rfind("'")]
        elif value in ("true", "false"):
            parsed = value == "true"
        else:
            try:
                parsed = int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
            except ValueError:
                continue
        table[_unquote(m.group(1))] = parsed
    return root


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def dump_toml(data: dict[str, Any]) -> str:
    """Writes plain values and tables of tables (``[hosts."http://…"]``)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, sub in data.items():
        if not isinstance(sub, dict):
            continue
        for inner, vals in sub.items():
            if not isinstance(vals, dict):
                continue
            lines.append("")
            lines.append(f"[{name}.{json.dumps(inner)}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in vals.items())
    return "\n".join(lines) + "\n"
