"""What the engine reports: ``$stats`` while it serves, :class:`ServeSummary` when it stops.

>>> percentiles([1.0, 2.0, 3.0, 100.0])
{'p50': 2.5, 'p99': 97.09, 'max': 100.0}
>>> percentiles([])
{'p50': None, 'p99': None, 'max': None}
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harstream.gc_pauses import PauseMeter
from harstream.serve.config import ServerConfig

if TYPE_CHECKING:  # the benchmarks import percentiles without the engine
    from harstream.engine.core import Engine


class Stats:
    """The fields of each ``$stats`` message, from the engine's counters and samples."""

    RATE_WINDOW_S = 5.0
    """windows_per_s is averaged over this long: streams emit a window every 1.28 s."""

    def __init__(self, engine: Engine, config: ServerConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, pauses: PauseMeter | None = None) -> None:
        self.engine = engine
        self.config = config or ServerConfig()
        self.clock = clock
        self.pauses = pauses or PauseMeter()
        """The serving process's garbage-collector pauses (``serve`` installs it while serving)."""
        self.started = clock()
        self.history: deque[tuple[float, int]] = deque([(self.started, 0)])
        self.stalls = StallMeter(clock)
        """How long the serving loop went without looking at its ingest socket (the loop marks it)."""
        self.member: dict[str, Any] | None = None
        """Join mode: the engine's place in the cluster (slot, incarnation...), added to each report
        (:meth:`harstream.serve.join.RouterLink.member`); replaced whole when it changes."""

    def report(self, now: float, queued_samples: int = 0) -> dict[str, Any]:
        """The ``$stats`` fields at monotonic time ``now`` (latency samples and pauses are taken)."""
        counters = self.engine.counters
        self.history.append((now, counters.windows))
        while len(self.history) > 2 and now - self.history[1][0] >= self.RATE_WINDOW_S:
            self.history.popleft()
        first_time, first_windows = self.history[0]
        rate = (counters.windows - first_windows) / max(now - first_time, 1e-9)
        report = {
            "engine": self.engine.id,
            "started": self.engine.started,
            "streams": self.engine.n_streams,
            "windows": counters.windows,
            "windows_per_s": round(max(rate, 0.0), 2),
            "latency_ms": percentiles(self.engine.take_latencies(), low=0.0),
            "age_ms": percentiles(self.engine.take_ages()),
            "rejected": counters.rejected,
            "shed": counters.shed,
            "internal_errors": counters.internal_errors,
            "chunks": counters.chunks,
            "queued_samples": queued_samples,
            "gc_pauses": self.pauses.take(),
            "loop_stall_ms": self.stalls.take(),
            "uptime_s": round(max(now - self.started, 0.0), 3),
            "t": self.engine.wall_clock(),
            "labels": list(self.engine.labels),
            "limits": {**self.config.limits(), "max_streams": self.engine.max_streams,
                       "idle_timeout_s": self.engine.idle_timeout_s},
        }
        member = self.member
        if member is not None:
            report.update(member)
        return report


class StallMeter:
    """The longest time the serving loop went without looking at its ingest socket, per period.

    A message arriving then waits unread, before the receipt ``latency_ms`` counts from. The
    loop calls :meth:`looking` as it starts waiting for input and :meth:`looked` when it
    stops; :meth:`take` (any thread) returns the period's longest stall in ms, the one still
    going included, and starts the next period.

    >>> now = [0.0]
    >>> meter = StallMeter(lambda: now[0])
    >>> meter.looking(); meter.looked(); now[0] = 0.25; meter.looking(); meter.looked(); now[0] = 0.3
    >>> meter.take(), meter.take()
    (250.0, 0.0)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        """When the loop last stopped looking (None: while it looks, or before it first did)."""
        self._longest = 0.0

    def looking(self) -> None:
        with self._lock:
            if self._since is not None:
                self._longest = max(self._longest, self.clock() - self._since)
            self._since = None

    def looked(self) -> None:
        with self._lock:
            self._since = self.clock()

    def take(self) -> float:
        with self._lock:
            now = self.clock()
            longest = self._longest if self._since is None else max(self._longest, now - self._since)
            self._longest = 0.0
            if self._since is not None:
                self._since = now
        return round(longest * 1000.0, 3)


def percentiles(values: Sequence[float] | npt.NDArray[np.float64], low: float | None = None,
                digits: int | None = 3) -> dict[str, float | None]:
    """p50, p99 and max of ``values`` (each at least ``low``), rounded to ``digits`` places (None: not
    rounded); None when empty. The shape of ``$stats``' ``latency_ms``, which the benchmarks report too.

    >>> percentiles([1.0, 2.0, 3.0, 4.0], digits=None)
    {'p50': 2.5, 'p99': 3.9699999999999998, 'max': 4.0}
    """
    if len(values) == 0:
        return {"p50": None, "p99": None, "max": None}
    array = np.clip(np.asarray(values, dtype=np.float64), -1e300, 1e300)  # no overflow in percentile
    if low is not None:
        array = np.maximum(array, low)
    p50, p99, top = float(np.percentile(array, 50)), float(np.percentile(array, 99)), float(array.max())
    if digits is not None:
        p50, p99, top = round(p50, digits), round(p99, digits), round(top, digits)
    return {"p50": p50, "p99": p99, "max": top}


@dataclass
class ServeSummary:
    """What happened to the engine's input by the time :func:`~harstream.serve.server.serve` returned.

    >>> ServeSummary(windows=3).describe().split("; ")[1]
    'at stop: 0 windows flushed, nothing dropped'
    >>> ServeSummary(dropped_windows=2).describe().split("; ")[1]
    'at stop: 0 windows flushed, DROPPED 0 queued chunks, 2 windows and 0 unread messages'
    """

    windows: int = 0
    """Windows classified and published since start."""
    rejected: int = 0
    """Messages rejected since start (each reported on ``$error``)."""
    shed: int = 0
    """Chunks shed under overload since start (each reported on ``$error``)."""
    internal_errors: int = 0
    """Failures inside the engine since start (each reported on ``$error``)."""
    flushed_windows: int = 0
    """Windows classified and published during the stop."""
    dropped_chunks: int = 0
    """Chunks received but not processed when the flush deadline passed."""
    dropped_windows: int = 0
    """Windows cut but not classified when the flush deadline passed."""
    unread_messages: int = 0
    """Messages still waiting in ZeroMQ at the stop, read and counted, not processed."""

    def describe(self) -> str:
        """One line for the log."""
        text = (f"{self.windows} windows classified, {self.rejected} messages rejected, "
                f"{self.shed} chunks shed, {self.internal_errors} internal errors; "
                f"at stop: {self.flushed_windows} windows flushed")
        lost = (self.dropped_chunks, self.dropped_windows, self.unread_messages)
        if any(lost):
            text += (f", DROPPED {self.dropped_chunks} queued chunks, {self.dropped_windows} "
                     f"windows and {self.unread_messages} unread messages")
        else:
            text += ", nothing dropped"
        return text


__all__ = ["ServeSummary", "StallMeter", "Stats", "percentiles"]
