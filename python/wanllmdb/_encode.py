"""Turning what users log into what the wire and the spool carry.

Metric values: numbers, bools and objects with ``__float__`` (numpy and torch scalars);
nested dicts flatten with ``/``; NaN and ±Infinity travel as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (Python's ``json`` would write bare ``NaN``, which is not
JSON). Anything else is left out and named in one warning per key."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Callable

MAX_KEY_BYTES = 256

# Types whose JSON spelling is already a valid metric value (finite floats are checked by
# the encoder itself: allow_nan=False raises on NaN and infinities).
FAST_TYPES = frozenset({float, int, bool})

_dumps_fast = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def wire_float(f: float) -> Any:
    """A float as the wire carries it: non-finite values as strings."""
    if f != f:
        return "NaN"
    return NON_FINITE.get(f, f)


class MetricEncoder:
    """Encodes rows of metrics; warns once per key about values that are not metrics."""

    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        self._warned: set[str] = set()
        self._good_keys: frozenset[str] | None = None
        # The converted row of the last encode_values() call, or None when the row itself was
        # already plain (flat, finite numbers).
        self.last_clean: dict[str, Any] | None = None
        self._warn = warn or (lambda m: warnings.warn(m, stacklevel=3))

    def encode_values(self, row: dict[str, Any]) -> str | None:
        """The row's values as a JSON object text, or None when nothing in it is a metric.
        The common row (flat, plain numbers, finite) takes one C-level encoder call."""
        if FAST_TYPES.issuperset(map(type, row.values())) and (
            self._good_keys is not None and self._good_keys.issuperset(row)
        ):
            try:
                text = _dumps_fast(row)
                self.last_clean = None
                return text
            except ValueError:
                pass
        clean = self.last_clean = self.clean(row)
        if not clean:
            return None
        if all(type(v) in FAST_TYPES for v in row.values()):
            self._good_keys = frozenset(clean) | (self._good_keys or frozenset())
        return json.dumps(clean, separators=(",", ":"), allow_nan=False)

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """Flattens, converts and filters a row; the result encodes with ``allow_nan=False``."""
        out: dict[str, Any] = {}
        self._flatten("", row, out)
        return out

    def _flatten(self, prefix: str, row: dict[str, Any], out: dict[str, Any]) -> None:
        for k, v in row.items():
            key = f"{prefix}{k}" if isinstance(k, str) else f"{prefix}{k!s}"
            if isinstance(v, dict):
                self._flatten(f"{key}/", v, out)
                continue
            if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
                self._skip(key[:60], "metric names must be 1 to 256 bytes")
                continue
            f = to_metric(v)
            if f is None:
                if v is not None:
                    self._skip(key, _why_not(v))
                continue
            out[key] = wire_float(f) if isinstance(f, float) else f

    def _skip(self, key: str, why: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self._warn(f"wanllmdb: {key!r} was not logged: {why} (reported once per key)")


def _why_not(v: Any) -> str:
    from ._compat import Unsupported

    name = type(v).__name__
    if isinstance(v, Unsupported):
        return f"wandb.{name} values are not supported yet"
    return f"a {name} is not a metric value"


def to_metric(v: Any) -> Any:
    """A number (bools as themselves), or None when ``v`` is not a metric value."""
    t = type(v)
    if t is float or t is int or t is bool:
        return v
    if isinstance(v, (str, bytes, list, tuple, dict, set)) or v is None:
        return None
    # numpy/torch scalars and 0-d arrays; a larger array refuses float().
    item = getattr(v, "item", None)
    if item is not None:
        try:
            x = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return x if type(x) in FAST_TYPES else to_metric(x) if type(x) is not type(v) else None
    if hasattr(v, "__float__"):
        try:
            return float(v)
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def json_friendly(v: Any, where: str, warn: Callable[[str], None]) -> Any:
    """A config value as JSON can hold it (numpy values, tuples, paths, Namespaces…)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return wire_float(v) if not math.isfinite(v) else v
    if isinstance(v, dict):
        return {str(k): json_friendly(x, f"{where}.{k}", warn) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [json_friendly(x, where, warn) for x in v]
    if hasattr(v, "__dict__") and type(v).__name__ == "Namespace":
        return json_friendly(vars(v), where, warn)
    tolist = getattr(v, "tolist", None)
    if tolist is not None:
        try:
            return json_friendly(tolist(), where, warn)
        except (TypeError, ValueError):
            pass
    m = to_metric(v)
    if m is not None:
        return json_friendly(m, where, warn)
    if hasattr(v, "__fspath__"):
        return str(v)
    warn(f"wanllmdb: config {where!r} holds a {type(v).__name__}; stored as its text")
    return str(v)


def dumps(v: Any) -> str:
    """Compact JSON; raises ValueError on NaN (callers convert non-finite values first)."""
    return json.dumps(v, separators=(",", ":"), allow_nan=False)
