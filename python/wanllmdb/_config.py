"""``run.config`` and ``run.summary``: dict-like objects that tell their run about changes."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from ._encode import json_friendly
from ._errors import ConfigError, UsageError
from ._errors import warn as _warn


def as_mapping(d: Any, what: str) -> dict[str, Any]:
    """A dict from a dict, an argparse Namespace, or anything with ``__dict__``."""
    if d is None:
        return {}
    if isinstance(d, Mapping):
        return dict(d)
    if hasattr(d, "__dict__") and not isinstance(d, type):
        return dict(vars(d))
    raise UsageError(f"{what} takes a dict or an argparse Namespace, not a {type(d).__name__}")


class Config:
    """Hyperparameters of a run: ``config["lr"]``, ``config.lr``, ``config.update({...})``.

    Changing a value that is already set raises :class:`ConfigError` unless
    ``update(..., allow_val_change=True)`` is used, as in W&B."""

    def __init__(
        self,
        items: dict[str, Any] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_items", dict(items or {}))
        object.__setattr__(self, "_on_change", on_change)

    def _set(self, d: dict[str, Any], allow_val_change: bool) -> None:
        changed: dict[str, Any] = {}
        for k, v in d.items():
            key = str(k).strip("-")
            if not key:
                raise UsageError("config keys must not be empty")
            val = json_friendly(v, key, _warn)
            old = self._items.get(key, _MISSING)
            if old is not _MISSING and old != val and not allow_val_change:
                raise ConfigError(
                    f"config key {key!r} is already {old!r}; changing it to {val!r} needs "
                    "config.update({...}, allow_val_change=True)"
                )
            if old is _MISSING or old != val:
                changed[key] = val
            self._items[key] = val
        if changed and self._on_change is not None:
            self._on_change(changed)

    def update(self, d: Any, allow_val_change: bool = False) -> None:
        """Adds (or with ``allow_val_change=True`` changes) values; ``d`` may be a dict or an
        argparse Namespace. Example: ``wandb.config.update({"lr": 1e-3})``."""
        self._set(as_mapping(d, "config.update()"), allow_val_change)

    def setdefaults(self, d: Any) -> None:
        """Sets the values of ``d`` whose keys are not set yet."""
        self._set({k: v for k, v in as_mapping(d, "config").items() if k not in self._items}, True)

    def as_dict(self) -> dict[str, Any]:
        """A copy of every value."""
        return dict(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def keys(self) -> Any:
        return self._items.keys()

    def items(self) -> Any:
        return self._items.items()

    def values(self) -> Any:
        return self._items.values()

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._set({key: value}, False)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self._set({key: value}, False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Config({self._items!r})"


_MISSING = object()


class Summary:
    """The run's summary: each metric's last value unless set explicitly
    (``run.summary["best_acc"] = 0.93``) or defined by ``define_metric(summary=...)``."""

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        on_set: Callable[[dict[str, Any]], None],
    ) -> None:
        object.__setattr__(self, "_snapshot", snapshot)
        object.__setattr__(self, "_on_set", on_set)

    def _all(self) -> dict[str, Any]:
        return self._snapshot()

    def update(self, d: Mapping[str, Any]) -> None:
        """Sets several values."""
        self._on_set(as_mapping(d, "summary.update()"))

    def get(self, key: str, default: Any = None) -> Any:
        return self._all().get(key, default)

    def keys(self) -> Any:
        return self._all().keys()

    def items(self) -> Any:
        return self._all().items()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._all())

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._on_set({key: value})

    def __getattr__(self, key: str) -> Any:
        try:
            return self._all()[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self._on_set({key: value})

    def __contains__(self, key: object) -> bool:
        return key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"Summary({self._all()!r})"
