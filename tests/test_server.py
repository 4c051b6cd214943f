"""The engine's $stats counters, and the garbage-collector pauses they report."""

from __future__ import annotations

import gc

import numpy as np

from harstream import ACTIVITIES
from harstream.engine.core import Engine
from harstream.gc_pauses import PauseMeter, freeze_startup
from harstream.serve.stats import Stats


def test_windows_per_s_is_averaged_over_several_seconds() -> None:
    engine = Engine(lambda w: np.full((len(w), 6), 1 / 6, np.float32), ACTIVITIES)
    stats = Stats(engine)
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
    stats = Stats(engine)
    engine.counters.latencies_ms.extend([1.0, 2.0, 3.0, 100.0])
    report = stats.report(stats.started + 1)
    assert report["labels"] == list(ACTIVITIES)
    assert report["latency_ms"]["max"] == 100.0 and report["latency_ms"]["p50"] == 2.5
    assert stats.report(stats.started + 2)["latency_ms"]["p50"] is None  # reset each report


def test_stats_report_the_collector_pauses_since_the_last_report() -> None:
    engine = Engine(lambda w: np.full((len(w), 6), 1 / 6, np.float32), ACTIVITIES)
    ticks = iter([10.0, 10.025, 20.0, 20.004])  # two collections: 25 ms, then 4 ms
    stats = Stats(engine, pauses=PauseMeter(clock=lambda: next(ticks)))
    meter = stats.pauses
    meter._callback("start", {"generation": 2})
    meter._callback("stop", {"generation": 2})
    meter._callback("start", {"generation": 0})
    meter._callback("stop", {"generation": 0})
    first = stats.report(stats.started + 1)["gc_pauses"]
    assert first == {"count": 2, "max_ms": 25.0, "total_ms": 29.0}
    assert stats.report(stats.started + 2)["gc_pauses"] == {"count": 0, "max_ms": 0.0, "total_ms": 0.0}


def test_the_pause_meter_times_real_collections_only_while_installed() -> None:
    meter = PauseMeter().install()
    try:
        meter.install()  # twice is once
        assert gc.callbacks.count(meter._callback) == 1
        gc.collect()
        assert meter.take()["count"] >= 1  # an automatic collection may come too
    finally:
        meter.uninstall()
    gc.collect()
    assert meter.take()["count"] == 0 and meter._callback not in gc.callbacks


def test_freeze_startup_takes_the_live_objects_out_of_later_collections() -> None:
    try:
        frozen = freeze_startup()
        # reference counting may free frozen objects since (other threads too), never add any
        assert frozen >= gc.get_freeze_count() > 1000  # pytest and numpy alone hold more
        assert len(gc.get_objects()) < frozen  # a collection now walks only what came after
    finally:
        gc.unfreeze()
