"""stdout/stderr as log lines: the terminal still shows everything (a tee), and each
complete line is handed to the run."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, TextIO

MAX_LINE = 1024 * 1024 - 16


class Tee:
    """Wraps a text stream: writes pass through, complete lines go to ``sink(source, line)``."""

    def __init__(self, inner: TextIO, source: str, sink: Callable[[str, str], None]) -> None:
        self._inner = inner
        self._source = source
        self._sink = sink
        self._partial = ""
        self._lock = threading.Lock()
        self.active = True

    def write(self, s: str) -> int:
        n = self._inner.write(s)
        if self.active and s:
            with self._lock:
                text = self._partial + s
                *lines, self._partial = text.split("\n")
                if len(self._partial) > MAX_LINE:
                    lines.append(self._partial)
                    self._partial = ""
            for line in lines:
                # A carriage return redraws the line (progress bars): keep what is shown.
                self._sink(self._source, line.rstrip("\r").rsplit("\r", 1)[-1])
        return n

    def flush_partial(self) -> None:
        with self._lock:
            rest, self._partial = self._partial, ""
        if rest:
            self._sink(self._source, rest)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install(sink: Callable[[str, str], None]) -> tuple[Tee, Tee]:
    out = Tee(sys.stdout, "stdout", sink)
    err = Tee(sys.stderr, "stderr", sink)
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    return out, err


def uninstall(tees: tuple[Tee, Tee]) -> None:
    out, err = tees
    for t in tees:
        t.flush_partial()
        t.active = False
    if sys.stdout is out:
        sys.stdout = out._inner
    if sys.stderr is err:
        sys.stderr = err._inner
