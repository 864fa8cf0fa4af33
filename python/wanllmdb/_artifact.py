"""Artifacts: named, typed, versioned sets of files, logged by runs and used by runs."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from ._errors import NotFound, UsageError
from ._files import normalize_path, sha256_file, upload
from ._project import Record, check_project_name, ensure_project
from ._transport import Transport, seg


class VersionName(str):
    """``"v3"`` that also carries the version's ``.id`` (``artifact.version.id``)."""

    id: int | None

    def __new__(cls, name: str, vid: int | None) -> VersionName:
        s = super().__new__(cls, name)
        s.id = vid
        return s


class ArtifactEntry:
    """One file of an artifact: ``.path``, ``.size``, ``.sha256``, ``.ref``; ``download()``."""

    def __init__(self, artifact: Artifact, info: dict[str, Any]) -> None:
        self._artifact = artifact
        self.path: str = info["path"]
        self.size: int = info.get("size") or 0
        self.sha256: str | None = info.get("sha256")
        self.md5: str | None = info.get("md5")
        self.ref: str | None = info.get("ref")
        self.local: str | None = info.get("local")

    def download(self, root: str | None = None) -> str:
        """Fetches this file (checking its SHA-256); returns the local path."""
        return self._artifact._download_entries([self], root)[0]

    def __repr__(self) -> str:
        return f"<ArtifactEntry {self.path} {self.size} bytes>"


class Artifact:
    """A version of a dataset, a model, code…: ``Artifact("mnist", type="dataset")``, then
    ``add_file``/``add_dir``/``add_reference`` and ``log_artifact(artifact)``."""

    def __init__(
        self,
        name: str,
        type: str = "file",
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9._-]{1,128}$", name):
            raise UsageError(f"Artifact(name={name!r}): use 1 to 128 of A-Z a-z 0-9 . _ -")
        if not isinstance(type, str) or not type:
            raise UsageError(f"Artifact(type={type!r}) must be a word such as 'model' or 'dataset'")
        if metadata is not None and not isinstance(metadata, dict):
            raise UsageError("Artifact(metadata=...) must be a dict")
        self.name = name
        self.type = type
        self.description = description or ""
        self.metadata = dict(metadata or {})
        self.tags = list(tags or [])
        self.project: str | None = None
        self.version: VersionName | None = None
        self.aliases: list[str] = []
        self.state = "local"
        self._entries: dict[str, dict[str, Any]] = {}
        self._transport: Transport | None = None

    # -- building ------------------------------------------------------------------------------
    def add_file(self, local_path: str, name: str | None = None) -> ArtifactEntry:
        """Adds a file, under ``name`` (default: its file name)."""
        if not os.path.isfile(local_path):
            raise UsageError(f"add_file(local_path={local_path!r}): no such file")
        path = normalize_path(name or os.path.basename(local_path), "add_file(name=...)")
        self._check_mutable()
        digest, size = sha256_file(local_path)
        self._entries[path] = {
            "path": path,
            "sha256": digest,
            "size": size,
            "local": os.path.abspath(local_path),
        }
        return ArtifactEntry(self, self._entries[path])

    def add_dir(self, local_path: str, name: str | None = None) -> None:
        """Adds every file under a directory (at the top of the artifact, or under ``name``)."""
        root = Path(local_path)
        if not root.is_dir():
            raise UsageError(f"add_dir(local_path={local_path!r}): no such directory")
        prefix = normalize_path(name, "add_dir(name=...)") + "/" if name else ""
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            self.add_file(str(f), prefix + f.relative_to(root).as_posix())

    def add_reference(
        self,
        uri: str,
        name: str | None = None,
        checksum: str | None = None,
        size: int | None = None,
    ) -> ArtifactEntry:
        """Adds a file that stays in external storage (``s3://``, ``gs://``, ``https://``)."""
        if not isinstance(uri, str) or not uri.startswith(("s3://", "gs://", "https://")):
            raise UsageError(f"add_reference(uri={uri!r}): use an s3://, gs:// or https:// URI")
        self._check_mutable()
        path = normalize_path(name or uri.rstrip("/").rsplit("/", 1)[-1], "add_reference(name=...)")
        e: dict[str, Any] = {"path": path, "ref": uri}
        if checksum:
            e["checksum"] = checksum
        if size is not None:
            e["size"] = int(size)
        self._entries[path] = e
        return ArtifactEntry(self, e)

    def _check_mutable(self) -> None:
        if self.state != "local":
            raise UsageError(f"artifact {self.name}:{self.version} is logged and cannot change")

    # -- reading -------------------------------------------------------------------------------
    def files(self) -> list[dict[str, Any]]:
        """``[{"path": "data.csv", "size": 1024000}, …]`` (with digests and references)."""
        if self.state != "local":
            self._load_files()
        return [
            {k: v for k, v in e.items() if k != "local" and v is not None}
            for e in self._entries.values()
        ]

    def get_path(self, name: str) -> ArtifactEntry:
        """One file of the artifact; ``.download()`` fetches it."""
        if self.state != "local":
            self._load_files()
        if name not in self._entries:
            raise UsageError(f"get_path(name={name!r}): artifact {self.name} has no such file")
        return ArtifactEntry(self, self._entries[name])

    def _base(self) -> str:
        return f"/projects/{seg(self.project or '')}/artifacts/{seg(self.name)}"

    def _load_files(self, urls: bool = False) -> None:
        assert self._transport is not None
        got = self._transport.get(
            f"{self._base()}/versions/{seg(str(self.version))}/files",
            {"download_urls": "true"} if urls else None,
        )
        self._entries = {f["path"]: f for f in got}

    def download(self, root: str | None = None) -> str:
        """Fetches every stored file into ``root`` (default ``./artifacts/<name>/<version>``);
        each SHA-256 is checked. Returns the directory."""
        if self.state == "local":
            raise UsageError("download(): log or use the artifact first")
        self._load_files()
        entries = [ArtifactEntry(self, e) for e in self._entries.values()]
        self._download_entries(entries, root)
        return str(self._root(root))

    def _root(self, root: str | None) -> Path:
        return Path(root) if root else Path("artifacts") / self.name / str(self.version)

    def _download_entries(self, entries: list[ArtifactEntry], root: str | None) -> list[str]:
        if self.state == "local":
            return [e.local or "" for e in entries]
        assert self._transport is not None
        self._load_files(urls=True)
        dest_root = self._root(root).resolve()
        out = []
        for e in entries:
            info = self._entries[e.path]
            dest = (dest_root / e.path).resolve()
            if dest_root not in dest.parents:
                raise UsageError(f"artifact path {e.path!r} would leave {dest_root}")
            if info.get("ref") and not info.get("download_url"):
                out.append(info["ref"])
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() and info.get("sha256") and sha256_file(dest)[0] == info["sha256"]:
                out.append(str(dest))
                continue
            status, _, body = self._transport.raw("GET", info["download_url"], timeout=600)
            if status >= 300:
                raise NotFound(f"downloading {e.path} failed: HTTP {status}")
            if info.get("sha256") and hashlib.sha256(body).hexdigest() != info["sha256"]:
                raise UsageError(f"downloaded {e.path} does not match its SHA-256")
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(body)
            os.replace(tmp, dest)
            out.append(str(dest))
        return out

    def _bind(self, t: Transport, v: dict[str, Any]) -> Artifact:
        self._transport = t
        self.project = v["project"]
        self.version = VersionName(v.get("version") or f"draft-{v['id']}", v["id"])
        self.aliases = list(v.get("aliases", []))
        self.state = v.get("state", "committed")
        self.description = v.get("description", self.description)
        self.metadata = v.get("metadata") or self.metadata
        return self

    def __repr__(self) -> str:
        return f"<Artifact {self.name}:{self.version or 'unlogged'} type={self.type}>"


def _transport_and_project(run: Any, project: str | None, what: str) -> tuple[Transport, str]:
    from . import _api, _project_of

    t = (
        run._transport
        if run is not None and getattr(run, "_transport", None) is not None
        else _api()
    )
    if run is not None and getattr(run, "_transport", None) is None and run.mode != "disabled":
        raise UsageError(f"{what} needs the server; run {run.id} is {run.mode}")
    proj = project or (run.project if run is not None else None) or _project_of(None, what)
    return t, check_project_name(proj, what)


def log_artifact(
    artifact_or_path: Any,
    name: str | None = None,
    type: str | None = None,
    aliases: list[str] | None = None,
    run: Any = None,
) -> Artifact:
    if isinstance(artifact_or_path, Artifact):
        art = artifact_or_path
    elif isinstance(artifact_or_path, (str, os.PathLike)):
        p = Path(artifact_or_path)
        art = Artifact(name or p.name.replace(" ", "-"), type or "file")
        if p.is_dir():
            art.add_dir(str(p))
        elif p.is_file():
            art.add_file(str(p))
        else:
            raise UsageError(f"log_artifact({str(p)!r}): no such file or directory")
    else:
        raise UsageError(
            f"log_artifact() takes an Artifact or a path, not a {artifact_or_path.__class__.__name__}"
        )
    if art.state != "local":
        raise UsageError(f"artifact {art.name} was logged already as {art.version}")
    if not art._entries:
        raise UsageError(
            f"artifact {art.name} holds no files: add_file, add_dir or add_reference first"
        )
    t, project = _transport_and_project(run, None, "log_artifact()")
    if aliases is not None and (
        isinstance(aliases, str) or not all(isinstance(a, str) for a in aliases)
    ):
        raise UsageError(f"log_artifact(aliases={aliases!r}) takes a list of strings")
    body: dict[str, Any] = {
        "type": art.type,
        "description": art.description,
        # `latest` and `vN` are checked by the server: they must name the version created.
        "aliases": list(aliases or []),
        "entries": [{k: v for k, v in e.items() if k != "local"} for e in art._entries.values()],
    }
    if art.metadata:
        body["metadata"] = art.metadata
    if run is not None and not getattr(run, "disabled", False):
        body["run"] = run.id
    base = f"/projects/{seg(project)}/artifacts/{seg(art.name)}"
    what = f"log_artifact({art.name!r})"
    try:
        resp = t.post(f"{base}/versions", body, what=what)
    except NotFound as e:
        if "project" not in str(e):
            raise
        ensure_project(t, project)
        resp = t.post(f"{base}/versions", body, what=what)
    locals_by_digest = {e["sha256"]: e["local"] for e in art._entries.values() if e.get("sha256")}
    for up in resp.get("uploads", []):
        upload(t, up, locals_by_digest[up["sha256"]])
    version = resp["version"]
    if version.get("state") == "pending":
        version = t.post(f"{base}/drafts/{version['id']}/commit", {}, what=what)
    art._bind(t, version)
    if art.tags:
        t.patch(base, {"tags": sorted(set(art.tags))}, what=what)
    return art


def parse_ref(ref: str, what: str) -> tuple[str | None, str, str]:
    """``[project/]name[:version]`` → (project, name, version)."""
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"{what}: name an artifact as 'name', 'name:alias' or 'project/name:v3'")
    rest, _, version = ref.partition(":")
    project, _, name = rest.rpartition("/")
    return project or None, name, version or "latest"


def _version_path(project: str, name: str, version: str) -> str:
    return f"/projects/{seg(project)}/artifacts/{seg(name)}/versions/{seg(version)}"


def use_artifact(artifact_or_name: Any, type: str | None = None, run: Any = None) -> Artifact:
    if isinstance(artifact_or_name, Artifact) and artifact_or_name.state != "local":
        proj, name, version = (
            artifact_or_name.project,
            artifact_or_name.name,
            str(artifact_or_name.version),
        )
    elif isinstance(artifact_or_name, Artifact):
        raise UsageError("use_artifact(): this artifact was never logged; log_artifact() it first")
    else:
        proj, name, version = parse_ref(artifact_or_name, "use_artifact()")
    t, project = _transport_and_project(run, proj, "use_artifact()")
    what = f"use_artifact({name}:{version})"
    v = t.get(_version_path(project, name, version), what=what)
    if type is not None and v.get("type") not in (None, type):
        raise UsageError(f"{what}: the artifact's type is {v.get('type')!r}, not {type!r}")
    if (
        run is not None
        and not getattr(run, "disabled", False)
        and getattr(run, "_transport", None) is not None
    ):
        t.post(_version_path(project, name, v["version"]) + "/use", {"run": run.id}, what=what)
    art = Artifact(name, v.get("type") or "file", v.get("description"), v.get("metadata"))
    return art._bind(t, v)


def _name_of(artifact: Any) -> tuple[str | None, str]:
    if isinstance(artifact, Artifact):
        return artifact.project, artifact.name
    proj, name, _ = parse_ref(str(artifact), "artifact=")
    return proj, name


def set_alias(artifact: Any, alias: str, version: Any, project: str | None) -> Record:
    from . import _state

    proj, name = _name_of(artifact)
    t, p = _transport_and_project(_state.current, project or proj, "create_alias()")
    version = str(version)
    # `latest` and `vN` move by themselves: the server accepts them where they already point.
    return Record(
        t.put(
            f"/projects/{seg(p)}/artifacts/{seg(name)}/aliases/{seg(alias)}",
            {"version": version},
            what=f"alias {alias} of {name}",
        )
    )


def list_aliases(artifact: Any, project: str | None) -> list[dict[str, str]]:
    from . import _state

    proj, name = _name_of(artifact)
    t, p = _transport_and_project(_state.current, project or proj, "list_aliases()")
    got = t.get(f"/projects/{seg(p)}/artifacts/{seg(name)}/aliases", what=f"list_aliases({name!r})")
    return [{"alias": a["alias"], "version": a["version"]} for a in got]


def finalize_version(artifact: Any, version: Any, project: str | None) -> Record:
    from . import _state

    proj, name = _name_of(artifact)
    t, p = _transport_and_project(_state.current, project or proj, "finalize_version()")
    what = f"finalize_version({name!r})"
    vid = version.id if isinstance(version, VersionName) else version
    if isinstance(vid, str) and vid.isdigit():
        vid = int(vid)
    if isinstance(vid, int) and not isinstance(vid, bool):
        # A draft (or version) id: committing a committed version returns it unchanged.
        return Record(
            t.post(f"/projects/{seg(p)}/artifacts/{seg(name)}/drafts/{vid}/commit", {}, what=what)
        )
    # A name (`v3`, `latest`, an alias) only ever names a committed version.
    return Record(t.get(_version_path(p, name, str(version)), what=what))
