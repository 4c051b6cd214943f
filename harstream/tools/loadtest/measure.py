"""What one load level measured: windows expected, received and lost, latencies, the engine's and clients' usage.

Pure arithmetic over what the generator, the subscriber and the CPU meter
recorded; :class:`LevelResult` is the JSON of one level.

>>> expected_windows(127), expected_windows(128), expected_windows(1000)
(0, 1, 14)
>>> percentiles(np.array([1.0, 2.0, 3.0]))["p50"]
2.0
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream import HOP, SAMPLE_RATE_HZ, WINDOW
from harstream.procstat import CpuMeter
from harstream.serve.stats import percentiles as serve_percentiles
from harstream.signal.windows import window_ends


def expected_windows(samples: int, first: int = 0) -> int:
    """Windows of a stream that sent ``samples`` contiguous samples from ``seq`` ``first``.

    The engine's window grid is the stream's index grid (windows end at 127,
    191, ...), whatever the first ``seq``.

    >>> expected_windows(200, first=10), expected_windows(200, first=64)
    (1, 2)
    """
    return len(window_ends(first, first + samples))


@dataclass
class LevelResult:
    """What one load level measured (``as_dict`` is the JSON)."""

    streams: int
    windows_per_s: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    problem: str | None = None
    """Set when the level could not be measured (the engine died, a process hung, ...)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "streams": self.streams, "windows_per_s": self.windows_per_s, "latency_ms": self.latency_ms,
            "windows": self.windows, "engine": self.engine, "clients": self.clients,
            "errors": self.errors, "problem": self.problem,
        }


def percentiles(values: npt.NDArray[np.float64]) -> dict[str, float | None]:
    """p50, p99 and max of ``values`` (ms, rounded to 0.01) and their count; None when empty."""
    return {**serve_percentiles(values, digits=2), "count": len(values)}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def measure(result: LevelResult, chunk: int, offsets: npt.NDArray[np.int64], sent: npt.NDArray[np.float64],
            received: Any, t_measure: float, t_end: float,
            stats: list[dict[str, Any]], errors: dict[str, int]) -> None:
    """Fill ``result`` from the send times and the subscriber's record (``chunk`` samples per message)."""
    streams = result.streams
    chunks_sent = np.isfinite(sent).sum(axis=0) if len(sent) else np.zeros(streams, dtype=np.int64)
    expected = sum(expected_windows(int(c) * chunk, int(first))
                   for c, first in zip(chunks_sent, offsets, strict=True))
    stream, seq_end, t = received["stream"], received["seq_end"], received["t"]
    valid = (stream >= 0) & (stream < streams) & ((seq_end - (WINDOW - 1)) % HOP == 0)
    first = offsets[np.where(valid, stream, 0)]
    valid &= seq_end >= first + WINDOW - 1
    k = np.where(valid, (seq_end - first) // chunk, 0)  # the chunk holding sample seq_end
    valid &= k < chunks_sent[np.where(valid, stream, 0)]
    unique = len(np.unique(stream[valid].astype(np.int64) * 2**40 + seq_end[valid]))
    t_sent = np.full(len(t), np.nan)
    t_sent[valid] = sent[k[valid], stream[valid]]
    window = valid & (t_sent >= t_measure) & (t_sent <= t_end)
    latency = (t[window] - t_sent[window]) * 1000.0
    result.latency_ms = percentiles(latency)
    arrived = (t >= t_measure) & (t <= t_end) & valid
    result.windows_per_s = round(float(arrived.sum()) / (t_end - t_measure), 1)
    classified = stats[-1]["windows"] - stats[0]["windows"] if len(stats) > 1 else None
    result.windows = {
        "expected": int(expected), "received": int(unique), "lost": int(expected - unique),
        "duplicates": int(valid.sum() - unique), "unexpected": int((~valid).sum()),
        "classified_by_engine": int(classified) if classified is not None else -1,
    }
    result.engine = _engine_stats(stats, t_measure, t_end)
    result.errors = errors


def _engine_stats(stats: list[dict[str, Any]], t_measure: float, t_end: float) -> dict[str, Any]:
    """What the engine's own ``$stats`` reports said over the measured span."""
    measured = [s for s in stats if t_measure <= s["t"] <= t_end]
    lat = [s["latency_ms"] or {} for s in measured]
    return {
        "stats_reports": len(measured),
        "stats_latency_p50_ms_median": _median([x["p50"] for x in lat if x.get("p50") is not None]),
        "stats_latency_p99_ms_median": _median([x["p99"] for x in lat if x.get("p99") is not None]),
        "stats_latency_p99_ms_worst": max((x["p99"] for x in lat if x.get("p99") is not None), default=None),
        "stats_windows_per_s_median": _median([s["windows_per_s"] for s in measured
                                               if s.get("windows_per_s") is not None]),
        "queued_samples_max": max((s.get("queued_samples") or 0 for s in measured), default=None),
        "shed": (stats[-1]["shed"] - stats[0]["shed"]) if len(stats) > 1 else None,
        "rejected": (stats[-1]["rejected"] - stats[0]["rejected"]) if len(stats) > 1 else None,
        "internal_errors": (stats[-1]["internal_errors"] - stats[0]["internal_errors"])
        if len(stats) > 1 else None,
        **_gc_summary(measured),
    }


def _gc_summary(measured: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """The serving process's garbage-collector pauses over the measured ``$stats`` reports."""
    pauses = [s["gc_pauses"] for s in measured if isinstance(s.get("gc_pauses"), dict)]
    if not pauses:  # an engine from before gc_pauses
        return {"gc_collections": None, "gc_pause_max_ms": None, "gc_pause_total_ms": None}
    return {"gc_collections": sum(int(p.get("count", 0)) for p in pauses),
            "gc_pause_max_ms": max(float(p.get("max_ms", 0.0)) for p in pauses),
            "gc_pause_total_ms": round(sum(float(p.get("total_ms", 0.0)) for p in pauses), 3)}


def engine_usage(meter: CpuMeter, rss: list[int], rss_end: int | None) -> dict[str, Any]:
    """The engine's CPU % (with its model process) and resident memory over the measured span."""
    return {
        "cpu_pct": meter.percent("engine"),
        "rss_mb": round(rss_end / 2**20, 1) if rss_end else None,
        "rss_max_mb": round(max(rss) / 2**20, 1) if rss else None,
    }


def client_usage(meter: CpuMeter, sent: npt.NDArray[np.float64], delays: npt.NDArray[np.float64],
                 chunk: int, t_start: float, t_measure: float, t_end: float) -> dict[str, Any]:
    """The generator's and subscriber's CPU, the rest of the machine's, and how late chunks left.

    ``sent`` holds the send time of each round's chunk of each stream (rounds, streams); a
    chunk's lateness is its send time minus its moment in the schedule (round ``k``, stream
    ``i``: ``t_start + k * period + i * period / streams``).
    """
    period = chunk / SAMPLE_RATE_HZ
    streams = sent.shape[1]
    late = (sent - (t_start + np.arange(len(sent))[:, None] * period
                    + np.arange(streams)[None, :] * (period / streams))) * 1000
    late = late[(sent >= t_measure) & (sent <= t_end)]
    return {
        "generator_cpu_pct": meter.percent("generator"),
        "subscriber_cpu_pct": meter.percent("subscriber"),
        "machine_cpu_pct": meter.percent("machine"),
        "other_processes_cpu_pct": meter.others(),
        "send_lateness_ms": percentiles(late),
        "publish_to_subscriber_ms": percentiles(1000 * delays),
    }
