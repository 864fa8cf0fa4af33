"""W&B names that scripts reach for and that wanllmdb does not support yet: they exist, so a
script does not stop with AttributeError, and each warns once."""

from __future__ import annotations

from typing import Any

from ._errors import warn

_warned: set[str] = set()


def warn_unsupported(what: str) -> None:
    if what in _warned:
        return
    _warned.add(what)
    warn(f"wanllmdb: {what} is not supported yet and is ignored")


class Unsupported:
    """Base of the media placeholders: logging one leaves that key out, with one warning."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warn_unsupported(f"wandb.{type(self).__name__}")


class Image(Unsupported):
    """Placeholder for ``wandb.Image``."""


class Table(Unsupported):
    """Placeholder for ``wandb.Table``."""

    def add_data(self, *args: Any) -> None:
        pass


class Histogram(Unsupported):
    """Placeholder for ``wandb.Histogram``."""


class Audio(Unsupported):
    """Placeholder for ``wandb.Audio``."""


class Video(Unsupported):
    """Placeholder for ``wandb.Video``."""


def watch(*args: Any, **kwargs: Any) -> None:
    """Placeholder for ``wandb.watch`` (gradient and parameter logging)."""
    warn_unsupported("wandb.watch()")
