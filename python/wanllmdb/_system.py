"""System metrics sampled by the SDK when no wrapper does it: CPU and memory of this
process and its children, the host's memory, and each GPU through ``nvidia-smi``. The same
``system/…`` names and the same step (the Unix second of the sample) as the CLI's wrapper."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

from ._settings import env_seconds

INTERVAL = 15.0
ENV_INTERVAL = "WANLLMDB_SYSTEM_METRICS_INTERVAL"
ENV_OFF = "WANLLMDB_NO_SYSTEM_METRICS"
MIB = 1024.0 * 1024.0


def interval() -> float:
    return env_seconds(ENV_INTERVAL, INTERVAL)


def disabled_by_env() -> bool:
    return os.environ.get(ENV_OFF, "").strip().lower() in ("1", "true", "yes", "on")


def parse_stat(text: str) -> tuple[int, int, int] | None:
    """(ppid, utime + stime ticks, rss pages) of a ``/proc/<pid>/stat`` line."""
    close = text.rfind(")")
    if close < 0:
        return None
    f = text[close + 1 :].split()
    try:
        return int(f[1]), int(f[11]) + int(f[12]), int(f[21])
    except (IndexError, ValueError):
        return None


def tree_usage(root: int) -> tuple[float, int] | None:
    """CPU seconds and resident bytes of ``root`` and its descendants (Linux /proc)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        names = os.listdir("/proc")
    except (OSError, ValueError, AttributeError):
        return None
    stats: dict[int, tuple[int, int, int]] = {}
    for n in names:
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/stat") as fh:
                s = parse_stat(fh.read())
        except OSError:
            continue
        if s:
            stats[int(n)] = s
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, s in stats.items():
        children.setdefault(s[0], []).append(pid)
    todo, cpu, rss = [root], 0, 0
    while todo:
        pid = todo.pop()
        _, ticks, pages = stats[pid]
        cpu += ticks
        rss += pages
        todo.extend(c for c in children.get(pid, ()) if c != root)
    return cpu / tick, rss * page


def host_memory() -> tuple[int, int] | None:
    """MemTotal and MemAvailable in bytes."""
    try:
        with open("/proc/meminfo") as fh:
            text = fh.read()
    except OSError:
        return None
    vals: dict[str, int] = {}
    for line in text.splitlines():
        k, _, rest = line.partition(":")
        if k in ("MemTotal", "MemAvailable"):
            vals[k] = int(rest.split()[0]) * 1024
    if len(vals) < 2:
        return None
    return vals["MemTotal"], vals["MemAvailable"]


def parse_nvidia_smi(text: str) -> dict[str, float]:
    """``system/gpu/<i>/…`` values from ``index, util, mem used, mem total, temp`` lines."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        f = [x.strip() for x in line.split(",")]
        if len(f) < 5 or not f[0].isdigit():
            continue

        def num(s: str) -> float | None:
            try:
                return float(s)
            except ValueError:
                return None

        pre = f"system/gpu/{f[0]}/"
        util, used, total, temp = num(f[1]), num(f[2]), num(f[3]), num(f[4])
        if util is not None:
            out[pre + "utilization_percent"] = util
        if used is not None:
            out[pre + "memory_used_mb"] = used
            if total:
                out[pre + "memory_percent"] = used / total * 100.0
        if temp is not None:
            out[pre + "temperature_c"] = temp
    return out


class SystemSampler:
    """Takes samples of this process tree and the machine."""

    def __init__(self, root: int | None = None) -> None:
        self.root = root or os.getpid()
        self.last: tuple[float, float] | None = None
        self.nvidia_smi = shutil.which("nvidia-smi")

    def sample(self) -> dict[str, Any] | None:
        """One wire point, or None when nothing could be measured."""
        now = time.monotonic()
        values: dict[str, float] = {}
        usage = tree_usage(self.root)
        if usage is not None:
            cpu, rss = usage
            if self.last is not None and now > self.last[0]:
                values["system/cpu_percent"] = max(
                    0.0, (cpu - self.last[1]) / (now - self.last[0]) * 100.0
                )
            self.last = (now, cpu)
            values["system/rss_mb"] = rss / MIB
        mem = host_memory()
        if mem is not None:
            total, avail = mem
            values["system/host_memory_used_mb"] = (total - avail) / MIB
            if total:
                values["system/host_memory_percent"] = (total - avail) / total * 100.0
        if self.nvidia_smi:
            values.update(self._gpus())
        if not values:
            return None
        ts = time.time()
        return {"step": int(ts), "timestamp": ts, "values": values}

    def _gpus(self) -> dict[str, float]:
        try:
            out = subprocess.run(
                [
                    self.nvidia_smi or "nvidia-smi",
                    "--query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            self.nvidia_smi = None
            return {}
        if out.returncode != 0:
            self.nvidia_smi = None
            return {}
        return parse_nvidia_smi(out.stdout)
