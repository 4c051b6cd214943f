"""Short garbage-collector pauses in long-running processes, and a meter of them.

Python's cyclic collector walks every object it tracks in a full
collection, and the loop that triggered it waits. In ``serve`` most of
those objects are the imports (numpy, scipy, pyzmq, rich: about 74,000) and
in the model process TensorFlow's (about 390,000), so a full collection
stalls a busy engine for tens of milliseconds and the model process for
hundreds (the measurements: docs/benchmarks.md). :func:`freeze_startup` moves what is alive once
start-up is over into the permanent generation, which no collection
visits: later collections walk only what serving allocated since (about 3
objects a stream). Reference counting still frees frozen objects; only a
reference cycle among them would never be collected, and start-up objects
live as long as the process anyway.

:class:`PauseMeter` times every collection (``gc.callbacks``); ``serve``
publishes the count and the longest since the last report in ``$stats``
(``gc_pauses``).

>>> meter = PauseMeter().install()
>>> _ = gc.collect()
>>> report = meter.take()
>>> report["count"] >= 1 and report["max_ms"] >= 0.0
True
>>> meter.take()["count"], meter.uninstall()
(0, None)
"""

from __future__ import annotations

import gc
import time
from typing import Any


def freeze_startup() -> int:
    """Collect once, then freeze every object alive; returns how many are now frozen.

    Call it when a process has finished starting (imports done, model
    loaded) and before it starts serving.

    >>> freeze_startup() > 0
    True
    >>> gc.unfreeze()  # the doctest's process is not a server
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class PauseMeter:
    """Times the garbage collector's pauses on the thread that runs them (``gc.callbacks``)."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self.clock = clock
        self._started: float | None = None
        self._count = 0
        self._max_s = 0.0
        self._total_s = 0.0

    def install(self) -> PauseMeter:
        """Start timing collections; returns ``self``."""
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        """Stop timing collections."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self.clock()
        elif self._started is not None:
            pause = self.clock() - self._started
            self._started = None
            self._count += 1
            self._total_s += pause
            self._max_s = max(self._max_s, pause)

    def take(self) -> dict[str, float | int]:
        """Collections since the last call: ``count``, ``max_ms``, ``total_ms``; then start afresh."""
        report: dict[str, float | int] = {"count": self._count, "max_ms": round(self._max_s * 1000, 3),
                                          "total_ms": round(self._total_s * 1000, 3)}
        self._count, self._max_s, self._total_s = 0, 0.0, 0.0
        return report


__all__ = ["PauseMeter", "freeze_startup"]
