"""The one place the SDK talks HTTP: JSON in and out, gzip, the bearer key, error bodies
turned into our exceptions, and retries with backoff (``Retry-After`` honoured)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import zlib
from typing import Any, Callable, Iterable
from urllib.parse import quote, urlencode, urlsplit

from ._errors import AuthenticationError, CommError, NotFound, PermissionDenied, UsageError

USER_AGENT = "wanllmdb-python/0.1.0"
GZIP_ABOVE = 2048


def seg(s: str) -> str:
    """Percent-encodes one path segment."""
    return quote(str(s), safe="")


class Unreachable(CommError):
    """No answer: the connection failed or broke."""


def is_transient(e: BaseException) -> bool:
    """Worth retrying later: the network, or a busy or restarting server."""
    if isinstance(e, Unreachable):
        return True
    if isinstance(e, CommError) and e.status is not None:
        return e.status >= 500 or e.status == 429
    return False


def gzip_bytes(raw: bytes) -> bytes:
    """gzip framing around zlib's deflate (the gzip module costs an import)."""
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    return c.compress(raw) + c.flush()


def _decode_error(status: int, body: bytes, what: str) -> CommError:
    code, message = "", ""
    try:
        err = json.loads(body.decode("utf-8"))["error"]
        code, message = err.get("code", ""), err.get("message", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        message = body[:200].decode("utf-8", "replace").strip()
    message = message or f"HTTP {status}"
    err: Exception
    if status == 401:
        err = AuthenticationError(
            f"the server did not accept the API key ({message}); pass api_key=, set "
            "WANLLMDB_API_KEY, or run `wanllmdb login`"
        )
    elif status == 403:
        err = PermissionDenied(f"{what}: {message}")
    elif status == 404:
        err = NotFound(f"{what}: {message}")
    elif 400 <= status < 500 and status not in (408, 429):
        err = UsageError(f"{what}: {message}")
    else:
        return CommError(f"{what}: {message} ({status})", status=status, code=code)
    err.status, err.code = status, code  # type: ignore[attr-defined]
    return err  # type: ignore[return-value]


class Transport:
    """HTTP to one server with one key; safe to share between threads (one connection each)."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"host {base_url!r} must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------
    def _connect(self, scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
        host, _, port = netloc.rpartition(":") if netloc.count(":") == 1 else (netloc, "", "")
        host = host or netloc
        port_n = int(port) if port.isdigit() else None
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port_n, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, port_n, timeout=timeout)

    def _conn(self, scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (scheme, netloc)
        conn = pool.get(key)
        if conn is None:
            conn = pool[key] = self._connect(scheme, netloc, timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        pool = getattr(self._local, "pool", {})
        conn = pool.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Closes this thread's connections."""
        for conn in getattr(self._local, "pool", {}).values():
            conn.close()
        self._local.pool = {}

    # -- requests ----------------------------------------------------------------------
    def url(self, path: str) -> str:
        """The absolute URL of an API path (or of a URL the server handed out)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    def raw(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; returns status, headers (lower-case names) and the body."""
        url = self.url(url)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        own = parts.netloc == self._netloc and parts.scheme == self._scheme
        h = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
        if auth and own and self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if headers:
            h.update(headers)
        if body is not None:
            h["Content-Length"] = str(len(body))
        t = self.timeout if timeout is None else timeout
        for attempt in (0, 1):
            conn = self._conn(parts.scheme, parts.netloc, t)
            try:
                conn.request(method, target, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError, socket.timeout) as e:
                self._drop(parts.scheme, parts.netloc)
                # A kept-alive connection the server closed: one fresh try.
                if attempt == 0 and isinstance(
                    e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                ):
                    continue
                raise Unreachable(f"cannot reach {self.base_url}: {e}") from None
            rh = {k.lower(): v for k, v in resp.getheaders()}
            if rh.get("content-encoding") == "gzip":
                data = zlib.decompress(data, 47)
            if rh.get("connection", "").lower() == "close":
                self._drop(parts.scheme, parts.netloc)
            return resp.status, rh, data
        raise Unreachable(f"cannot reach {self.base_url}")

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """A JSON call to ``/api/v1`` + ``path`` (arguments as for :meth:`exchange`); returns
        the decoded answer (None for 204)."""
        _, resp = self.exchange(method, path, **kw)
        return json.loads(resp) if resp else None

    def exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
        raw_json: bytes | None = None,
        what: str = "",
        timeout: float | None = None,
        accept: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """A call to ``/api/v1`` + ``path`` with a JSON body; returns the answer's headers and
        bytes (empty for 204). With ``accept``, asks for that form, uncompressed."""
        url = f"{self._prefix}/api/v1{path}"
        if query:
            items = query.items() if isinstance(query, dict) else query
            url += "?" + urlencode([(k, v) for k, v in items if v is not None])
        headers: dict[str, str] = {}
        if accept is not None:
            headers["Accept"] = accept
            headers["Accept-Encoding"] = "identity"
        data = raw_json
        if data is None and body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
            if len(data) > GZIP_ABOVE:
                data = gzip_bytes(data)
                headers["Content-Encoding"] = "gzip"
        status, rh, resp = self.raw(method, url, data, headers, timeout)
        if status >= 400:
            err = _decode_error(status, resp, what or f"{method} {path}")
            if status == 429 or status == 503:
                err.retry_after = _retry_after(rh)  # type: ignore[attr-defined]
            raise err
        return rh, b"" if status == 204 else resp

    def get(self, path: str, query: Any = None, what: str = "") -> Any:
        return self.request("GET", path, query=query, what=what)

    def post(self, path: str, body: Any = None, what: str = "", **kw: Any) -> Any:
        return self.request("POST", path, body=body if body is not None else {}, what=what, **kw)

    def patch(self, path: str, body: Any, what: str = "") -> Any:
        return self.request("PATCH", path, body=body, what=what)

    def put(self, path: str, body: Any, what: str = "") -> Any:
        return self.request("PUT", path, body=body, what=what)

    def delete(self, path: str, what: str = "") -> Any:
        return self.request("DELETE", path, what=what)

    def pages(self, path: str, query: dict[str, Any], what: str = "") -> Iterable[Any]:
        """Every item of a paged list."""
        q = dict(query)
        while True:
            page = self.get(path, q, what)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return
            q["cursor"] = cursor


def _retry_after(headers: dict[str, str]) -> float | None:
    v = headers.get("retry-after")
    try:
        return max(0.0, float(v)) if v is not None else None
    except ValueError:
        return None


def with_retries(
    call: Callable[[], Any],
    deadline: float,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Any] = time.sleep,
    give_up: type[BaseException] | None = None,
) -> Any:
    """Calls until it succeeds, a non-transient error, or ``deadline`` (monotonic seconds)."""
    failures = 0
    while True:
        try:
            return call()
        except CommError as e:
            if not is_transient(e) or time.monotonic() >= deadline or stop():
                raise
            if give_up is not None and isinstance(e, give_up):
                raise
            failures += 1
            wait = getattr(e, "retry_after", None)
            if wait is None:
                wait = min(0.25 * (2 ** min(failures, 5)), 5.0)
            sleep(max(0.0, min(wait, deadline - time.monotonic())))
