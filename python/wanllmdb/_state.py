"""The current run, kept apart so that ``import wanllmdb`` stays light."""

from __future__ import annotations

from typing import Any

current: Any = None
