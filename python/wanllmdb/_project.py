"""Projects and run queries: ``create_project``, ``list_runs``, ``get_best_run``."""

from __future__ import annotations

import re
from typing import Any, Mapping

from ._errors import UsageError
from ._transport import Transport, seg

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def check_project_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{what}: project name {name!r} must be 1 to 128 of A-Z a-z 0-9 . _ -")
    return name


def ensure_project(t: Transport, name: str) -> None:
    """Creates a project unless it exists (runs do this on the server; sweeps and artifacts
    here)."""
    from ._errors import Error

    try:
        t.post("/projects", {"name": name}, what=f"project {name!r}")
    except Error as e:
        if getattr(e, "status", None) != 409:
            raise


class Record(dict):  # type: ignore[type-arg]
    """An object from the server: keys as attributes too (``version.stage``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class RunInfo(Record):
    """A run as ``list_runs`` returns it: ``.id .name .state .config .tags .summary`` and
    ``.metrics`` (the summary: each metric's last value)."""

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.get("summary") or {})


_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<=", "$ne": "!=", "$eq": "=", "$regex": "~"}


def _field(k: str) -> str:
    for old, new in (("summary_metrics.", "summary."), ("tags", "tag")):
        if k.startswith(old):
            return new + k[len(old) :]
    return k


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def filter_expressions(filters: Any) -> list[str]:
    """``filters`` as the server's filter language: a string passes through; a dict
    ``{"config.lr": 0.1, "summary.acc": {"$gte": 0.9}}`` becomes conditions joined by ``and``."""
    if filters is None:
        return []
    if isinstance(filters, str):
        return [filters]
    if not isinstance(filters, Mapping):
        raise UsageError("list_runs(filters=...) takes a filter expression or a dict")
    out = []
    for k, v in filters.items():
        if isinstance(v, Mapping):
            for op, x in v.items():
                if op not in _OPS:
                    raise UsageError(
                        f"list_runs(filters=...): operator {op!r} is not one of {', '.join(_OPS)}"
                    )
                out.append(f"{_field(k)} {_OPS[op]} {_literal(x)}")
        else:
            out.append(f"{_field(k)} = {_literal(v)}")
    return out


def list_runs(
    t: Transport,
    project: str,
    filters: Any = None,
    order: str | None = None,
    limit: int | None = None,
) -> list[RunInfo]:
    check_project_name(project, "list_runs(project=...)")
    q: list[tuple[str, Any]] = [("project", project), ("limit", 1000)]
    q += [("filter", f) for f in filter_expressions(filters)]
    if order:
        q.append(
            (
                "sort",
                _field(order.lstrip("+-"))
                if not order.startswith("-")
                else "-" + _field(order[1:]),
            )
        )
    out: list[RunInfo] = []
    cursor = None
    while True:
        page = t.get(
            "/runs", [*q, ("cursor", cursor)] if cursor else q, what=f"list_runs({project!r})"
        )
        out.extend(RunInfo(r) for r in page.get("items", []))
        cursor = page.get("next_cursor")
        if not cursor or (limit is not None and len(out) >= limit):
            return out[:limit] if limit is not None else out


def get_best_run(t: Transport, project: str, metric: str, order: str) -> RunInfo | None:
    if order not in ("max", "min"):
        raise UsageError(f"get_best_run(order={order!r}): use 'max' or 'min'")
    sort = f"{'-' if order == 'max' else ''}summary.{metric}"
    for r in list_runs(t, project, order=sort, limit=50):
        v = (r.get("summary") or {}).get(metric)
        if isinstance(v, (int, float)) and v == v:
            return r
    return None


def run_id_of(run_or_id: Any) -> str:
    if isinstance(run_or_id, str):
        return run_or_id
    rid = getattr(run_or_id, "id", None)
    if isinstance(rid, str):
        return rid
    raise UsageError(f"expected a run or a run id, not a {type(run_or_id).__name__}")


def tags_call(t: Transport, run_id: str, tag: str, add: bool) -> Any:
    """Adds or removes one tag of any run (by id); removing a tag the run lacks is NotFound."""
    rid = seg(run_id)
    if add:
        return t.post(f"/runs/{rid}/tags", {"tag": tag}, what=f"add_tag({run_id!r})")
    return t.delete(f"/runs/{rid}/tags/{seg(tag)}", what=f"remove_tag({run_id!r})")
