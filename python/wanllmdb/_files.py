"""Run files and content transfers: hashing, upload tickets, signed URLs."""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path
from typing import Any

from ._errors import CommError, UsageError
from ._transport import Transport, seg

PUT_CHUNK = 1000


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read once."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


def normalize_path(p: str, what: str) -> str:
    """A relative, ``/``-separated path without ``..`` (as the server stores them)."""
    parts = [x for x in p.replace(os.sep, "/").split("/") if x not in ("", ".")]
    if not parts or p.startswith("/") or ".." in parts or "\\" in p or "\0" in p:
        raise UsageError(f"{what}: {p!r} must be a relative path without '..'")
    return "/".join(parts)


def collect_saves(glob_str: str, base_path: str | None) -> list[dict[str, str]]:
    """Files a ``save()`` pattern names: ``{"local": absolute path, "remote": run path}``."""
    if not isinstance(glob_str, str) or not glob_str:
        raise UsageError("save(glob_str=...) must be a file name or a glob pattern")
    base = Path(base_path).resolve() if base_path else Path.cwd().resolve()
    out = []
    for m in sorted(glob.glob(glob_str, recursive=True)):
        p = Path(m).resolve()
        files = (
            [p]
            if p.is_file()
            else sorted(x for x in p.rglob("*") if x.is_file())
            if p.is_dir()
            else []
        )
        for f in files:
            try:
                rel = f.relative_to(base).as_posix()
            except ValueError:
                rel = f.name if f == p else f"{p.name}/{f.relative_to(p).as_posix()}"
            out.append({"local": str(f), "remote": normalize_path(rel, "save()")})
    return out


def upload(t: Transport, ticket: dict[str, Any], local: str) -> None:
    """Sends a file where an upload ticket says (one PUT, or parts, then completion)."""
    parts = ticket.get("parts")
    etags = []
    if parts:
        with open(local, "rb") as f:
            for part in parts:
                f.seek(part["offset"])
                data = f.read(part["size"])
                status, headers, body = t.raw("PUT", part["url"], data, auth=False, timeout=600)
                _check(status, body, local)
                etags.append({"number": part["number"], "etag": headers.get("etag", "")})
    else:
        with open(local, "rb") as f:
            data = f.read()
        status, _, body = t.raw(
            "PUT",
            ticket["upload_url"],
            data,
            {"Content-Type": "application/octet-stream"},
            timeout=600,
        )
        _check(status, body, local)
    complete = ticket.get("complete_url")
    if complete:
        payload = b'{"parts":' + _json(etags) + b"}" if etags else None
        status, _, body = t.raw(
            "POST",
            complete,
            payload,
            {"Content-Type": "application/json"} if payload else None,
            timeout=600,
        )
        _check(status, body, local)


def _json(v: Any) -> bytes:
    import json

    return json.dumps(v).encode()


def _check(status: int, body: bytes, local: str) -> None:
    if status >= 300:
        raise CommError(f"uploading {local} failed: HTTP {status} {body[:200]!r}", status=status)


def put_run_files(t: Transport, run_id: str, files: list[dict[str, str]]) -> int:
    """Attaches local files to a run, uploading only content the server lacks."""
    specs = []
    for f in files:
        if not os.path.isfile(f["local"]):
            continue
        digest, size = sha256_file(f["local"])
        specs.append((f["local"], {"path": f["remote"], "sha256": digest, "size": size}))
    for i in range(0, len(specs), PUT_CHUNK):
        chunk = specs[i : i + PUT_CHUNK]
        resp = t.post(
            f"/runs/{seg(run_id)}/files",
            {"files": [s for _, s in chunk]},
            what=f"files of run {run_id}",
        )
        for (local, _), ticket in zip(chunk, resp["files"]):
            if ticket.get("status") == "upload":
                upload(t, ticket, local)
    return len(specs)
