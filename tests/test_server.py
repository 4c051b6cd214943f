"""The engine's $stats counters."""

from __future__ import annotations

import numpy as np

from harstream import ACTIVITIES
from harstream.engine import Engine
from harstream.server import _Stats


def test_windows_per_s_is_averaged_over_several_seconds() -> None:
    engine = Engine(lambda w: np.full((len(w), 6), 1 / 6, np.float32), ACTIVITIES)
    stats = _Stats(engine)
    start = stats.started
    rates = []
    for second in range(1, 13):
        if second % 2 == 0:  # synchronised streams: a burst of 19 windows every other second
            engine.counters.windows += 19
        rates.append(stats.report(start + second)["windows_per_s"])
    assert all(r > 0 for r in rates[2:])
    assert abs(rates[-1] - 9.5) < 2.5


def test_stats_carry_the_label_order_and_latency_percentiles() -> None:
    engine = Engine(lambda w: np.full((len(w), 6), 1 / 6, np.float32), ACTIVITIES)
    stats = _Stats(engine)
    engine.counters.latencies_ms.extend([1.0, 2.0, 3.0, 100.0])
    report = stats.report(stats.started + 1)
    assert report["labels"] == list(ACTIVITIES)
    assert report["latency_ms"]["max"] == 100.0 and report["latency_ms"]["p50"] == 2.5
    assert stats.report(stats.started + 2)["latency_ms"]["p50"] is None  # reset each report
