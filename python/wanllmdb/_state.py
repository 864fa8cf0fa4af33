"""The current run, kept apart so that ``import wanllmdb`` stays light."""

from __future__ import annotations

current = None
