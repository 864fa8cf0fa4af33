"""wanllmdb: the Python SDK of wanLLMDB, a self-hosted experiment tracker.

``import wanllmdb as wandb`` keeps W&B training scripts working::

    import wanllmdb as wandb

    run = wandb.init(project="mnist", config={"lr": 1e-3})
    for step in range(100):
        wandb.log({"loss": 1 / (step + 1)})
    wandb.finish()

Module functions act on the current run (``wanllmdb.run``); the same calls exist as
:class:`Run` methods. Importing this package loads nothing heavy: the HTTP client, the JSON
encoder and the background thread come with the first ``init()``.
"""

from __future__ import annotations

from . import _state
from ._errors import (
    AuthenticationError,
    CommError,
    ConfigError,
    Error,
    NotFound,
    PermissionDenied,
    RunStopped,
    UsageError,
)

# `typing` alone costs more than the rest of the import: it is read by type checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping

    from ._artifact import Artifact
    from ._config import Config, Summary
    from ._run import Run

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "Audio",
    "AuthenticationError",
    "CommError",
    "Config",
    "ConfigError",
    "Error",
    "Histogram",
    "Image",
    "NotFound",
    "PermissionDenied",
    "Run",
    "RunStopped",
    "Summary",
    "Table",
    "UsageError",
    "Video",
    "__version__",
    "add_tag",
    "agent",
    "approve_version",
    "config",
    "create_alias",
    "create_model_version",
    "create_project",
    "create_sweep",
    "define_metric",
    "finalize_version",
    "finish",
    "finish_sweep",
    "get_best_run",
    "get_download_url",
    "get_latest_version",
    "get_parallel_coords",
    "get_param_importance",
    "get_upload_url",
    "heartbeat",
    "history",
    "init",
    "list_aliases",
    "list_model_versions",
    "list_runs",
    "log",
    "log_artifact",
    "log_batch",
    "log_message",
    "login",
    "mark_crashed",
    "pause_sweep",
    "query_history",
    "register_file",
    "register_model",
    "remove_tag",
    "resume_sweep",
    "run",
    "save",
    "suggest_params",
    "summary",
    "sweep",
    "transition_stage",
    "update_alias",
    "use_artifact",
    "watch",
]

_LAZY = {
    "Run": "_run",
    "Config": "_config",
    "Summary": "_config",
    "Artifact": "_artifact",
    "Image": "_compat",
    "Table": "_compat",
    "Histogram": "_compat",
    "Audio": "_compat",
    "Video": "_compat",
    "watch": "_compat",
}


def __getattr__(name: str) -> Any:
    # `wanllmdb.run`, `.config` and `.summary` follow the current run; classes load on use.
    if name == "run":
        return _state.current
    if name == "config":
        r = _state.current
        if r is not None:
            return r.config
        from ._config import Config

        return Config()
    if name == "summary":
        r = _state.current
        return r.summary if r is not None else None
    mod = _LAZY.get(name)
    if mod is not None:
        import importlib

        return getattr(importlib.import_module(f".{mod}", __name__), name)
    raise AttributeError(f"module 'wanllmdb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def _current_run() -> Run:
    r = _state.current
    if r is None:
        raise UsageError("there is no current run: call wanllmdb.init() first")
    return r


# -- runs ------------------------------------------------------------------------------------


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
    dir: str | None = None,
    reinit: bool | None = None,
    host: str | None = None,
    api_key: str | None = None,
    **kwargs: Any,
) -> Run:
    """Starts a run and makes it the current one.

    ``mode`` is ``"online"`` (default), ``"offline"`` (only the local spool; upload later
    with ``wanllmdb sync``) or ``"disabled"`` (every call does nothing). ``resume``:
    ``"allow"``, ``"must"``, ``"never"``, or ``True`` to continue this directory's last
    unfinished run. ``config`` is a dict or an argparse Namespace. Credentials come from
    ``host``/``api_key``, then ``WANLLMDB_BASE_URL``/``WANLLMDB_API_KEY``, then
    ``wanllmdb login``. Under ``wanllmdb run`` or a sweep agent, the wrapper's run is used.
    Extra keywords: ``console="off"`` (no stdout/stderr capture), ``system_metrics=False``.

    Example: ``run = wanllmdb.init(project="mnist", config={"lr": 3e-4}, tags=["baseline"])``
    """
    from ._run import init as _init

    return _init(
        project,
        name,
        id,
        config,
        tags,
        notes,
        group,
        job_type,
        mode,
        resume,
        dir,
        reinit,
        host,
        api_key,
        **kwargs,
    )


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Logs metrics to the current run (W&B's step semantics; see :meth:`Run.log`).

    Example: ``wanllmdb.log({"loss": 0.25, "acc": 0.9})``"""
    r = _state.current
    if r is None:
        raise UsageError("there is no current run: call wanllmdb.init() before log()")
    r.log(data, step, commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finishes the current run: flushes and ships everything, marks it finished.

    Example: ``wanllmdb.finish()``"""
    r = _state.current
    if r is not None:
        r.finish(exit_code=exit_code, quiet=quiet)


def mark_crashed() -> None:
    """Ends the current run as crashed."""
    _current_run().mark_crashed()


def heartbeat() -> None:
    """Tells the server the current run is alive (also done every 30 s in the background)."""
    _current_run().heartbeat()


def define_metric(
    name: str,
    step_metric: str | None = None,
    summary: str | None = None,
    goal: str | None = None,
    **kwargs: Any,
) -> Any:
    """How a metric is summarised (``summary="min"|"max"|"mean"|"best"|"last"``).

    Example: ``wanllmdb.define_metric("val_loss", summary="min")``"""
    return _current_run().define_metric(
        name, step_metric=step_metric, summary=summary, goal=goal, **kwargs
    )


def add_tag(run_or_tag: Any, tag: str | None = None) -> None:
    """Tags the current run (``add_tag("best")``), or any run (``add_tag(run_or_id, "best")``)."""
    if tag is None:
        _current_run().add_tag(run_or_tag)
        return
    _tag_other(run_or_tag, tag, add=True)


def remove_tag(run_or_tag: Any, tag: str | None = None) -> None:
    """Removes a tag from the current run, or from any run (``remove_tag(run_or_id, tag)``)."""
    if tag is None:
        _current_run().remove_tag(run_or_tag)
        return
    _tag_other(run_or_tag, tag, add=False)


def _tag_other(run_or_id: Any, tag: str, add: bool) -> None:
    from ._project import run_id_of, tags_call
    from ._run import _check_tag

    rid = run_id_of(run_or_id)
    cur = _state.current
    if cur is not None and cur.id == rid:
        (cur.add_tag if add else cur.remove_tag)(tag)
        return
    tags_call(_api(), rid, _check_tag(tag), add)
    if isinstance(run_or_id, dict) and isinstance(run_or_id.get("tags"), list):
        tags = run_or_id["tags"]
        if add and tag not in tags:
            tags.append(tag)
        elif not add and tag in tags:
            tags.remove(tag)


def log_message(message: str, level: str = "INFO") -> None:
    """Adds a line to the current run's log.

    Example: ``wanllmdb.log_message("Custom log message", level="INFO")``"""
    _current_run().log_message(message, level)


def log_batch(lines: Iterable[Mapping[str, Any]]) -> None:
    """Adds several log lines: ``[{"level": "INFO", "message": "Epoch 1 started"}, …]``."""
    _current_run().log_batch(lines)


def save(glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
    """Attaches files to the current run. Example: ``wanllmdb.save("checkpoints/*")``."""
    return _current_run().save(glob_str, base_path, policy)


def get_upload_url(name: str) -> str:
    """A URL taking a plain PUT of ``name``'s bytes for the current run."""
    return _current_run().get_upload_url(name)


def register_file(
    name: str, size: int, md5: str | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """Attaches a file sent to :func:`get_upload_url` to the current run (``size``: the bytes
    sent; the server checks them)."""
    return _current_run().register_file(name, size=size, md5=md5, sha256=sha256)


def get_download_url(name: str) -> str:
    """A URL answering a plain GET with the bytes of the current run's file ``name``."""
    return _current_run().get_download_url(name)


# -- the server beyond one run -----------------------------------------------------------------


def _api() -> Any:
    """The transport of the current run, else one from the settings (arguments of the last
    init(), environment, `wanllmdb login`)."""
    r = _state.current
    if r is not None and getattr(r, "_transport", None) is not None:
        return r._transport
    from ._settings import resolve
    from ._transport import Transport

    s = resolve()
    return Transport(s.host, s.api_key)


def _project_of(project: str | None, what: str) -> str:
    if project:
        return project
    r = _state.current
    if r is not None:
        return r.project
    from ._run import last_project
    from ._settings import resolve

    p = resolve().project or last_project()
    if not p:
        raise UsageError(f"{what} needs project=..., a current run, or WANLLMDB_PROJECT")
    return p


def create_project(name: str, visibility: str = "private", description: str | None = None) -> Any:
    """Creates a project. Example: ``wanllmdb.create_project("dialogue-system")``."""
    from ._project import Record, check_project_name

    check_project_name(name, "create_project(name=...)")
    if visibility not in ("private", "public"):
        raise UsageError(f"create_project(visibility={visibility!r}): use 'private' or 'public'")
    body: dict[str, Any] = {"name": name, "visibility": visibility}
    if description is not None:
        body["description"] = description
    return Record(_api().post("/projects", body, what=f"create_project({name!r})"))


def list_runs(
    project: str | None = None, filters: Any = None, order: str | None = None
) -> list[Any]:
    """The runs of a project, each with ``.metrics`` (its summary), ``.config``, ``.tags``,
    ``.state``. ``filters``: ``"config.lr < 0.01 and state = finished"`` or
    ``{"config.lr": 0.01, "summary.acc": {"$gte": 0.9}}``; ``order``: ``"-summary.acc"``."""
    from ._project import list_runs as _list

    return _list(_api(), _project_of(project, "list_runs()"), filters, order)


def get_best_run(metric: str, order: str = "max", project: str | None = None) -> Any:
    """The run with the highest (``order="max"``) or lowest summary value of ``metric``."""
    from ._project import get_best_run as _best

    return _best(_api(), _project_of(project, "get_best_run()"), metric, order)


def history(
    run: Any,
    keys: str | Iterable[str] | None = None,
    *,
    min_step: int | None = None,
    max_step: int | None = None,
    max_points: int | None = None,
    numpy: bool | None = None,
) -> dict[str, Any]:
    """The metric history of a run (a :class:`Run`, a ``list_runs`` record or an id):
    ``{key: Series}`` with ``.steps``, ``.values``, ``.timestamps`` (Unix seconds) and, for a
    read downsampled to ``max_points`` buckets, ``.min`` and ``.max`` per bucket. ``keys``:
    one name or several (all when absent); ``min_step``/``max_step``: an inclusive range.
    With numpy installed (``numpy=None``) the columns are numpy arrays read from the server's
    binary form without parsing; ``numpy=False`` gives lists, ``numpy=True`` insists on arrays.

    Example: ``loss = wanllmdb.history(run, "loss")["loss"]; loss.values.min()``"""
    from ._history import history as _history
    from ._project import run_id_of

    return _history(_api(), run_id_of(run), keys, min_step, max_step, max_points, numpy)


def query_history(
    runs: Iterable[Any],
    keys: str | Iterable[str] | None = None,
    *,
    min_step: int | None = None,
    max_step: int | None = None,
    max_points: int | None = None,
    numpy: bool | None = None,
) -> dict[str, dict[str, Any]]:
    """The history of many runs in one request (what a comparison needs): ``{run id: {key:
    Series}}``, in the order given. Downsampled series of one key share one step grid across
    the runs. Arguments as for :func:`history`.

    Example: ``wanllmdb.query_history(wanllmdb.list_runs("mnist"), "loss", max_points=500)``"""
    from ._history import query_history as _query
    from ._project import run_id_of

    ids = [run_id_of(r) for r in runs]
    return _query(_api(), ids, keys, min_step, max_step, max_points, numpy)


def login(key: str | None = None, host: str | None = None, relogin: bool | None = None) -> bool:
    """Checks an API key against the server and stores it as ``wanllmdb login`` does. Without
    ``key``, checks the key the SDK would use (``WANLLMDB_API_KEY``, or the one ``wanllmdb
    login`` stored), so ``wandb.login()`` at the top of a script works after a CLI login.

    Example: ``wanllmdb.login(key="wlk_...", host="http://127.0.0.1:8000")``"""
    import os

    from ._settings import ENV_API_KEY, resolve, store_login
    from ._transport import Transport

    s = resolve(host=host, api_key=key)
    if not s.api_key:
        raise UsageError(
            f"login(key=...) needs an API key for {s.host} (the server prints one at first "
            "start), or run `wanllmdb login` once"
        )
    me = Transport(s.host, s.api_key).get("/auth/me", what=f"login(host={s.host!r})")
    if key or os.environ.get(ENV_API_KEY):
        # A key handed in: kept for later, as the command line keeps it.
        store_login(s.host, me.get("username", ""), s.api_key)
    return True


# -- artifacts, sweeps, registry -----------------------------------------------------------------


def log_artifact(
    artifact_or_path: Any,
    name: str | None = None,
    type: str | None = None,
    aliases: list[str] | None = None,
) -> Any:
    """Logs an :class:`Artifact` (or a path) as a new version, produced by the current run."""
    from ._artifact import log_artifact as _log

    return _log(artifact_or_path, name=name, type=type, aliases=aliases, run=_state.current)


def use_artifact(artifact_or_name: Any, type: str | None = None) -> Any:
    """An artifact version (``"name:alias"``, ``"name:v2"``, ``"name:latest"``), recorded as
    used by the current run. Example: ``wanllmdb.use_artifact("dataset:v2").download()``."""
    from ._artifact import use_artifact as _use

    return _use(artifact_or_name, type=type, run=_state.current)


def create_alias(artifact: Any, alias: str, version: str, project: str | None = None) -> Any:
    """Points ``alias`` at a version. Example: ``create_alias("model", "production", "v3")``."""
    from ._artifact import set_alias

    return set_alias(artifact, alias, version, project)


def update_alias(artifact: Any, alias: str, version: str, project: str | None = None) -> Any:
    """Moves ``alias`` to another version."""
    from ._artifact import set_alias

    return set_alias(artifact, alias, version, project)


def list_aliases(artifact: Any, project: str | None = None) -> list[dict[str, str]]:
    """``[{"alias": "latest", "version": "v6"}, …]``."""
    from ._artifact import list_aliases as _la

    return _la(artifact, project)


def finalize_version(artifact: Any, version: Any, project: str | None = None) -> Any:
    """Commits a pending version; returns it (already committed: returned unchanged)."""
    from ._artifact import finalize_version as _fv

    return _fv(artifact, version, project)


def sweep(sweep: Mapping[str, Any], project: str | None = None, **kwargs: Any) -> str:
    """Creates a sweep from a W&B-format config; returns its id."""
    from ._sweep import create

    return create(dict(sweep), project, **kwargs)


def create_sweep(
    name: str,
    method: str,
    metric_name: str,
    metric_goal: str = "maximize",
    config: Mapping[str, Any] | None = None,
    project: str | None = None,
) -> str:
    """Creates a sweep from its parts; ``config`` holds the parameters."""
    from ._sweep import create_from_parts

    return create_from_parts(name, method, metric_name, metric_goal, config, project)


def agent(
    sweep_id: str,
    function: Any = None,
    count: int | None = None,
    project: str | None = None,
    entity: str | None = None,
) -> None:
    """Runs trials of a sweep: ``function()`` in this process, once per suggestion, each in
    a fresh run whose config holds the parameters (without ``function``, the sweep's
    ``program`` through ``wanllmdb sweep agent``)."""
    from ._sweep import agent as _agent

    _agent(sweep_id, function, count)


def pause_sweep(sweep_id: str) -> Any:
    """Stops handing out trials until :func:`resume_sweep`."""
    from ._sweep import control

    return control(sweep_id, "pause")


def resume_sweep(sweep_id: str) -> Any:
    """Hands out trials again."""
    from ._sweep import control

    return control(sweep_id, "resume")


def finish_sweep(sweep_id: str) -> Any:
    """Ends the sweep; running trials finish."""
    from ._sweep import control

    return control(sweep_id, "finish")


def suggest_params(sweep_id: str) -> Any:
    """Reserves the next trial by hand: its parameters (a dict with ``.run_id``)."""
    from ._sweep import suggest

    return suggest(sweep_id)


def get_param_importance(sweep_id: str) -> dict[str, float]:
    """``{parameter: importance}`` of a sweep's trials."""
    from ._sweep import importance

    return importance(sweep_id)


def get_parallel_coords(sweep_id: str) -> dict[str, Any]:
    """Axes and lines of a parallel-coordinates view of a sweep."""
    from ._sweep import parallel_coords

    return parallel_coords(sweep_id)


def register_model(
    name: str,
    description: str | None = None,
    tags: list[str] | None = None,
    project: str | None = None,
) -> Any:
    """Registers a model (in the current run's project unless ``project`` is given)."""
    from ._registry import register_model as _rm

    return _rm(name, description, tags, _project_of(project, "register_model()"))


def create_model_version(
    model_name: str | None = None,
    run_id: str | None = None,
    artifact_version_id: Any = None,
    description: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    stage: str | None = None,
    model: Any = None,
    artifact: Any = None,
    tags: list[str] | None = None,
) -> Any:
    """Creates the next version of a model from an artifact version (``artifact="name:alias"``
    or ``artifact_version_id=artifact.version.id``), trained by ``run_id`` (default: the
    current run), and moves it to ``stage``. A Production that still needs an approval leaves
    it in None, with the server's reason as a warning.

    Example: ``create_model_version("classifier", artifact="model:latest", stage="Staging")``"""
    from ._registry import create_model_version as _cmv

    return _cmv(
        model_name or model,
        run_id,
        artifact_version_id,
        artifact,
        description,
        metrics,
        stage,
        tags,
    )


def transition_stage(
    model: Any,
    version: str,
    to_stage: str,
    comment: str | None = None,
    archive_existing: bool = False,
) -> Any:
    """Moves a model version to ``Staging``, ``Production``, ``Archived`` or ``None``."""
    from ._registry import transition_stage as _ts

    return _ts(model, version, to_stage, comment, archive_existing)


def approve_version(
    model: Any, version: str, approved_by: str | None = None, comment: str | None = None
) -> Any:
    """Approves a model version for Production (project admins; not its creator unless the
    project allows it). ``approved_by``, when given, must name the caller; the server checks.

    Example: ``approve_version("classifier", "v3", comment="passed review")``"""
    from ._registry import approve_version as _av

    return _av(model, version, approved_by, comment)


def list_model_versions(model: Any, stage: str | None = None) -> list[Any]:
    """A model's versions, newest first (only those in ``stage`` when given)."""
    from ._registry import list_model_versions as _lmv

    return _lmv(model, stage)


def get_latest_version(model: Any, stage: str | None = None) -> Any:
    """A model's newest version (in ``stage`` when given), or None."""
    from ._registry import get_latest_version as _glv

    return _glv(model, stage)
