"""What processes cost on this machine, read from ``/proc`` (Linux): CPU seconds, resident memory.

Stdlib only, so that every program measuring children it started (``bench
--streams``, ``bench --web``) reads them one way. Every reading is None
when the process (or ``/proc``) is gone, never an exception.

>>> cpu_seconds(os.getpid()) is None or cpu_seconds(os.getpid()) >= 0.0
True
>>> meter = CpuMeter({"me": os.getpid()}, trees=())
>>> meter.start(); meter.stop()
>>> meter.percent("nobody") is None
True
"""

from __future__ import annotations

import math
import os
import time


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``serve`` and its model process), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and its descendants; None when ``pid`` is gone."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in process_tree(pid)[1:])


def tree_rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` and its descendants; None when ``pid`` is gone."""
    own = rss_bytes(pid)
    if own is None:
        return None
    return own + sum(rss_bytes(child) or 0 for child in process_tree(pid)[1:])


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (``VmRSS``); None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine was busy since boot, all cores (``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU % of some processes, and of the whole machine, between :meth:`start` and :meth:`stop`.

    100 % is one core; ``machine`` counts every process (other people's
    work on a shared machine shows as the difference).
    """

    def __init__(self, pids: dict[str, int], trees: tuple[str, ...] = ("engine",)) -> None:
        self.pids = pids
        self.trees = trees
        """Names whose CPU includes their child processes."""
        self.begin: dict[str, float | None] = {}
        self.end: dict[str, float | None] = {}
        self.t_begin = self.t_end = math.nan

    def _read(self) -> dict[str, float | None]:
        return {"machine": machine_cpu_seconds(),
                **{name: (tree_cpu_seconds if name in self.trees else cpu_seconds)(pid)
                   for name, pid in self.pids.items()}}

    def start(self) -> None:
        """Take the first reading."""
        self.t_begin = time.monotonic()
        self.begin = self._read()

    def stop(self) -> None:
        """Take the last reading."""
        self.t_end = time.monotonic()
        self.end = self._read()

    def percent(self, name: str) -> float | None:
        """CPU % of ``name`` (or ``"machine"``) between the readings; None when unknown."""
        a, b = self.begin.get(name), self.end.get(name)
        span = self.t_end - self.t_begin
        if a is None or b is None or not span > 0:
            return None
        return round(100.0 * (b - a) / span, 1)

    def others(self) -> float | None:
        """CPU % of everything on the machine but the processes measured."""
        parts = [self.percent(name) for name in ("machine", *self.pids)]
        if any(p is None for p in parts):
            return None
        machine, *ours = (p for p in parts if p is not None)
        return round(max(0.0, machine - sum(ours)), 1)
