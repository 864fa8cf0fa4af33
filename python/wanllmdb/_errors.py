"""Exceptions the SDK raises; each message names the argument or the server's answer."""

from __future__ import annotations


class Error(Exception):
    """Base class of every wanllmdb exception."""


class UsageError(Error, ValueError):
    """A call was given an argument it cannot use; the message names the argument."""


class ConfigError(UsageError):
    """A config value was changed without ``allow_val_change=True``."""


class AuthenticationError(Error):
    """The server did not accept the API key."""


class PermissionDenied(Error):
    """The server refused the action for this account (a project it may not write to)."""


class NotFound(Error):
    """The server has no such object (or it is private to others)."""


class CommError(Error):
    """The server could not be reached, or answered with an error."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RunStopped(Error):
    """Raised by ``log()`` once the run was asked to stop (a sweep stopped the trial, or
    someone ran ``wanllmdb runs stop``). ``agent()`` catches it and ends the run as killed."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"run {run_id} was asked to stop ({reason})")
        self.run_id = run_id
        self.reason = reason


def warn(message: str) -> None:
    """``warnings.warn`` pointing at the user's line: the first frame outside this package
    (a fixed ``stacklevel`` would point inside it, since calls reach here by different paths)."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, stacklevel=level)
