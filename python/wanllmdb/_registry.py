"""The model registry: register models, version them from artifact versions, move versions
through stages, approve them."""

from __future__ import annotations

from typing import Any, Mapping

from . import _state
from ._errors import NotFound, UsageError, warn
from ._project import Record, check_project_name
from ._transport import Transport, seg

STAGES = ("None", "Staging", "Production", "Archived")


def _t() -> Transport:
    from . import _api

    return _api()


def _model_name(model: Any, what: str) -> str:
    name = model.get("name") if isinstance(model, Mapping) else getattr(model, "name", model)
    if not isinstance(name, str) or not name:
        raise UsageError(f"{what}: name a model (its name, or what register_model returned)")
    return name


def _version(version: Any) -> str:
    v = version.get("version") if isinstance(version, Mapping) else version
    return str(v)


def _stage(stage: Any, what: str) -> str:
    s = "None" if stage is None else str(stage)
    for known in STAGES:
        if s.lower() == known.lower():
            return known
    raise UsageError(f"{what}: stage {stage!r} is not one of {', '.join(STAGES)}")


def register_model(
    name: str, description: str | None, tags: list[str] | None, project: str
) -> Record:
    check_project_name(project, "register_model(project=...)")
    body: dict[str, Any] = {"name": name, "project": project, "tags": list(tags or [])}
    if description is not None:
        body["description"] = description
    return Record(_t().post("/models", body, what=f"register_model({name!r})"))


def create_model_version(
    model: Any,
    run_id: str | None,
    artifact_version_id: Any,
    artifact: Any,
    description: str | None,
    metrics: Mapping[str, Any] | None,
    stage: str | None,
    tags: list[str] | None,
) -> Record:
    from ._artifact import Artifact

    name = _model_name(model, "create_model_version(model_name=...)")
    body: dict[str, Any] = {"tags": list(tags or [])}
    if isinstance(artifact, Artifact):
        if artifact.version is None:
            raise UsageError("create_model_version(artifact=...): log the artifact first")
        body["artifact"] = f"{artifact.project}/{artifact.name}:{artifact.version}"
    elif artifact is not None:
        body["artifact"] = str(artifact)
    elif artifact_version_id is not None:
        body["artifact_version_id"] = _version_id(artifact_version_id)
    else:
        raise UsageError(
            "create_model_version() needs artifact='name:alias' or artifact_version_id="
        )
    if run_id is None and _state.current is not None and not _state.current.disabled:
        run_id = _state.current.id
    if run_id is not None:
        body["run_id"] = getattr(run_id, "id", run_id)
    if stage is not None:
        body["stage"] = _stage(stage, "create_model_version(stage=...)")
    if description is not None:
        body["description"] = description
    if metrics is not None:
        body["metrics"] = dict(metrics)
    v = Record(
        _t().post(f"/models/{seg(name)}/versions", body, what=f"create_model_version({name!r})")
    )
    for w in v.pop("warnings", None) or []:
        warn(f"wanllmdb: model {name} {v.get('version')}: {w}")
    return v


def _version_id(v: Any) -> int:
    """An artifact version's numeric id: an int, its text, or ``artifact.version``."""
    vid = getattr(v, "id", v)
    if isinstance(vid, str) and vid.isdigit():
        vid = int(vid)
    if isinstance(vid, bool) or not isinstance(vid, int):
        raise UsageError(
            f"create_model_version(artifact_version_id={v!r}): use an artifact version's id "
            "(artifact.version.id), or artifact='name:alias'"
        )
    return vid


def transition_stage(
    model: Any, version: Any, to_stage: str, comment: str | None, archive_existing: bool
) -> Record:
    name = _model_name(model, "transition_stage(model=...)")
    body: dict[str, Any] = {
        "to": _stage(to_stage, "transition_stage(to_stage=...)"),
        "archive_existing": bool(archive_existing),
    }
    if comment is not None:
        body["comment"] = comment
    return Record(
        _t().post(
            f"/models/{seg(name)}/versions/{seg(_version(version))}/transition",
            body,
            what=f"transition_stage({name!r}, {_version(version)!r})",
        )
    )


def approve_version(
    model: Any, version: Any, approved_by: str | None, comment: str | None
) -> Record:
    name = _model_name(model, "approve_version(model=...)")
    body: dict[str, Any] = {}
    if approved_by is not None:
        body["approved_by"] = approved_by
    if comment is not None:
        body["comment"] = comment
    return Record(
        _t().post(
            f"/models/{seg(name)}/versions/{seg(_version(version))}/approval",
            body,
            what=f"approve_version({name!r}, {_version(version)!r})",
        )
    )


def list_model_versions(model: Any, stage: str | None) -> list[Record]:
    name = _model_name(model, "list_model_versions(model=...)")
    q = {"stage": _stage(stage, "list_model_versions(stage=...)")} if stage is not None else None
    got = _t().get(f"/models/{seg(name)}/versions", q, what=f"list_model_versions({name!r})")
    return [Record(v) for v in got]


def get_latest_version(model: Any, stage: str | None) -> Record | None:
    name = _model_name(model, "get_latest_version(model=...)")
    q = {"stage": _stage(stage, "get_latest_version(stage=...)")} if stage is not None else None
    try:
        return Record(
            _t().get(
                f"/models/{seg(name)}/versions/latest", q, what=f"get_latest_version({name!r})"
            )
        )
    except NotFound:
        # No version (in that stage); a model that does not exist is still an error.
        _t().get(f"/models/{seg(name)}", what=f"get_latest_version({name!r})")
        return None
