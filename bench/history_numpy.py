"""Times one run's history read through the Python SDK: numpy arrays from the binary form
(``numpy.frombuffer`` views) against lists from the JSON form. Started by ``wanllmdb-bench``,
which passes the server, its key, the run and the key to read; prints one JSON line.

    python bench/history_numpy.py URL API_KEY RUN KEY REPS
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from wanllmdb._history import history
from wanllmdb._transport import Transport


def timed(reps: int, f) -> tuple[float, object]:
    out = f()  # warm-up: connection, imports
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        out = f()
        ms.append((time.perf_counter() - t) * 1000)
    return statistics.median(ms), out


def main() -> None:
    url, key, run, metric, reps = sys.argv[1:6]
    t = Transport(url, key, timeout=120)
    binary_ms, got = timed(int(reps), lambda: history(t, run, [metric], numpy=True))
    s = got[metric]
    assert type(s.values).__module__ == "numpy" and len(s.values) == s.total_points
    json_ms, lists = timed(
        max(1, int(reps) // 3), lambda: history(t, run, [metric], numpy=False)
    )
    assert len(lists[metric].values) == len(s.values)
    print(
        json.dumps(
            {"numpy_ms": binary_ms, "lists_ms": json_ms, "points": len(s.values)}
        )
    )


if __name__ == "__main__":
    main()
