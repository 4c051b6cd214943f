"""The cluster's ``$stats``: the engines' own reports summed, one row per engine, and the router's counters.

The summed fields keep the names and meanings of one engine's ``$stats``
(docs/protocol.md), so a dashboard reads a cluster as it reads one engine;
percentiles cannot be summed, so ``latency_ms`` and ``age_ms`` are the worst
engine's. The engines' rows and the router's counters are under ``engines``
and ``router`` (docs/protocol.md, "Cluster $stats").

>>> combine_percentiles([{"p50": 1.0, "p99": 9.0, "max": 12.0}, {"p50": 2.0, "p99": None, "max": None}])
{'p50': 2.0, 'p99': 9.0, 'max': 12.0}
>>> engine_row_key({"slot": 2, "incarnation": "ab"}), engine_row_key({"engine": "x"})
((2, 'ab'), None)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harstream.cluster.router import Router

__all__ = ["SUMMED", "Counters", "Reporter", "combine_percentiles", "engine_row_key"]

SUMMED = ("streams", "windows", "windows_per_s", "rejected", "shed", "internal_errors", "chunks", "queued_samples")
"""Fields of the engines' ``$stats`` that the cluster's sums."""
ROW_FIELDS = ("engine", *SUMMED, "latency_ms", "age_ms", "loop_stall_ms", "uptime_s")
"""Fields of an engine's own ``$stats`` copied into its row."""


@dataclass
class Counters:
    """What the router counted since it started."""

    chunks_in: int = 0
    """Chunks read off the ingest socket."""
    moved: int = 0
    """``moved`` reports published (one per stream and move)."""
    no_engine: int = 0
    """Chunks dropped because no engine was live (each stream's first reported as ``no_engine``)."""
    overloaded: int = 0
    """Chunks dropped because their engine had ``engine_hwm`` chunks waiting (each reported)."""
    not_owner: int = 0
    """With keys on: chunks dropped because another producer key owns their stream (each reported)."""
    unsent: int = 0
    """PING, WELCOME or FORGET messages not sent because their engine had ``engine_hwm`` messages waiting."""
    results: int = 0
    """Engine messages forwarded to the subscribers (predictions, ``$error``)."""
    strangers: int = 0
    """Messages from engines that are not live members (a dropped engine before its HELLO) or malformed."""
    bad_stats: int = 0
    """Engine ``$stats`` that were not a JSON object."""
    forward_cpu_s: float = 0.0
    """CPU seconds spent reading and routing chunks."""

    @property
    def chunks_routed(self) -> int:
        """Chunks handed to an engine."""
        return self.chunks_in - self.no_engine - self.overloaded - self.not_owner

    def describe(self) -> str:
        """One line for the log."""
        return (f"{self.chunks_in} chunks in, {self.chunks_routed} routed, {self.no_engine} dropped with no "
                f"engine live, {self.overloaded} dropped for an overloaded engine, {self.moved} stream moves")


def engine_row_key(stats: dict[str, Any]) -> tuple[int, str] | None:
    """``(slot, incarnation)`` named by an engine's ``$stats``, or None when it names none."""
    slot, incarnation = stats.get("slot"), stats.get("incarnation")
    if type(slot) is int and isinstance(incarnation, str):
        return slot, incarnation
    return None


def combine_percentiles(rows: list[Any]) -> dict[str, float | None]:
    """The worst (largest) of each of ``p50``, ``p99`` and ``max`` over the engines' objects."""
    out: dict[str, float | None] = {}
    for key in ("p50", "p99", "max"):
        values = [row[key] for row in rows if isinstance(row, dict) and isinstance(row.get(key), int | float)]
        out[key] = max(values) if values else None
    return out


class Reporter:
    """Builds each cluster ``$stats`` (rates over the interval since the previous one)."""

    def __init__(self, now: float) -> None:
        self.last = (now, 0, 0.0, time.process_time())

    def __call__(self, router: Router, now: float) -> dict[str, Any]:
        """The cluster's ``$stats`` fields at monotonic time ``now``."""
        engines = [_member_row(member, now) for member in router.live]
        engines += [{"slot": None, "incarnation": None, **{k: stats.get(k) for k in ROW_FIELDS}}
                    for _, stats in router.unmatched.values()]
        own = [member.stats for member in router.live if member.stats] + [s for _, s in router.unmatched.values()]
        sums = {key: sum(_number(stats.get(key)) for stats in own) for key in SUMMED}
        sums["windows_per_s"] = round(float(sums["windows_per_s"]), 2)
        labels: list[str] = next((s["labels"] for s in own if isinstance(s.get("labels"), list)), [])
        return {
            "engine": router.id,
            "started": router.started,
            **sums,
            "latency_ms": combine_percentiles([s.get("latency_ms") for s in own]),
            "age_ms": combine_percentiles([s.get("age_ms") for s in own]),
            "loop_stall_ms": max((_number(s.get("loop_stall_ms")) for s in own), default=0.0),
            "uptime_s": round(max(now - router.started_mono, 0.0), 3),
            "t": time.time(),
            "labels": labels,
            "limits": router.config.limits(),
            "engines": engines,
            "router": self._router(router, now),
        }

    def _router(self, router: Router, now: float) -> dict[str, Any]:
        counters = router.counters
        then, chunks, forward_cpu, cpu = self.last
        self.last = (now, counters.chunks_in, counters.forward_cpu_s, time.process_time())
        span = max(now - then, 1e-9)
        new_chunks = counters.chunks_in - chunks
        return {
            "chunks_in": counters.chunks_in,
            "chunks_routed": counters.chunks_routed,
            "moved": counters.moved,
            "no_engine": counters.no_engine,
            "overloaded": counters.overloaded,
            "not_owner": counters.not_owner,
            "unsent": counters.unsent,
            "results": counters.results,
            "strangers": counters.strangers,
            "streams": len(router.routes),
            "live_engines": len(router.live),
            "joins": router.live.joins,
            "losses": dict(router.live.losses),
            "events": [event.to_json() for event in router.live.events],
            "chunks_per_s": round(new_chunks / span, 1),
            "route_us_per_chunk": (round((counters.forward_cpu_s - forward_cpu) / new_chunks * 1e6, 3)
                                   if new_chunks else None),
            "cpu_percent": round((self.last[3] - cpu) / span * 100.0, 1),
        }


def _member_row(member: Any, now: float) -> dict[str, Any]:
    stats = member.stats or {}
    return {
        "slot": member.slot,
        "incarnation": member.hello.incarnation,
        "host": member.hello.host,
        "pid": member.hello.pid,
        "joined": round(member.joined_unix, 3),
        "silent_ms": round(max(now - member.last_heard, 0.0) * 1000.0, 1),
        "routed_streams": member.streams,
        "chunks_routed": member.chunks,
        **{key: stats.get(key) for key in ROW_FIELDS},
    }


def _number(value: Any) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
