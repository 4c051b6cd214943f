"""What the dashboard knows: a state fed with engine events, and its immutable snapshots.

>>> from harstream.protocol import Prediction
>>> state = DashboardState("tcp://127.0.0.1:5556")
>>> state.update(Prediction("phone-1", 127, "SITTING", (0.2, 0.8), "SITTING", 9.9, 10.0), now=5.0)
>>> snap = state.snapshot(now=6.0)
>>> snap.status, snap.streams[0].activity, snap.streams[0].confidence
('connected', 'SITTING', 0.8)
>>> state.snapshot(now=9.5).status
'silent'
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from harstream import ACTIVITIES
from harstream.protocol import ErrorEvent, Prediction, StatsEvent

Status: TypeAlias = Literal["waiting", "connected", "silent"]
"""``waiting``: nothing received yet; ``connected``: a message within ``silence_s``;
``silent``: messages came, then none for more than ``silence_s`` (SUB reconnects by itself)."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """The engine's totals from its last ``$stats`` message."""

    streams: int
    """Streams active in the engine."""
    windows: int
    """Windows classified since the engine started."""
    windows_per_s: float
    """Recent classification rate."""
    p50_ms: float | None
    """Median latency in the engine, ms (None before any window)."""
    p99_ms: float | None
    """99th-percentile latency in the engine, ms (None before any window)."""
    rejected: int
    """Messages rejected since the engine started."""
    uptime_s: float
    """Seconds since the engine started."""

    @classmethod
    def from_event(cls, event: StatsEvent) -> EngineStats:
        """Read the fields of a decoded (hence validated) ``$stats`` message."""
        f: dict[str, Any] = event.fields
        latency: dict[str, Any] = f.get("latency_ms") or {}
        return cls(
            streams=int(f["streams"]),
            windows=int(f["windows"]),
            windows_per_s=float(f["windows_per_s"]),
            p50_ms=_opt_float(latency.get("p50")),
            p99_ms=_opt_float(latency.get("p99")),
            rejected=int(f["rejected"]),
            uptime_s=float(f["uptime_s"]),
        )


@dataclass(frozen=True, slots=True)
class StreamView:
    """One stream as last seen: replaced whole on each of its predictions."""

    stream: str
    """Stream id."""
    activity: str
    """Current smoothed label."""
    confidence: float
    """Max of the smoothed probabilities (of the raw ones when there are none)."""
    history: tuple[str, ...]
    """Recent smoothed labels, oldest first."""
    windows: int
    """Predictions received for this stream."""
    latency_ms: float
    """Engine latency of the last prediction."""
    updated: float
    """Dashboard clock (``now``) of the last prediction."""


@dataclass(frozen=True, slots=True)
class ErrorLine:
    """A received ``$error`` and when it came."""

    event: ErrorEvent
    """The report."""
    at: float
    """Dashboard clock when it arrived."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the dashboard draws, frozen at ``now``."""

    endpoint: str
    """The engine's PUB endpoint."""
    now: float
    """Dashboard clock of this snapshot."""
    status: Status
    """Connection status."""
    silent_s: float
    """Seconds since the last message (since watching began, if none)."""
    stats: EngineStats | None
    """Last ``$stats`` totals, None before the first."""
    streams: tuple[StreamView, ...]
    """Every remembered stream, most recently updated first."""
    counts: tuple[tuple[str, int], ...]
    """Streams per current activity: every class of the served model (``$stats`` ``labels``; the six
    before the first report), then any other label seen."""
    errors: tuple[ErrorLine, ...]
    """Recent ``$error`` reports, oldest first."""
    errors_total: int
    """``$error`` reports received."""
    invalid: int
    """Messages skipped because they broke the protocol."""


class DashboardState:
    """Accumulates events into per-stream views; ``now`` is any monotonic clock in seconds."""

    def __init__(
        self,
        endpoint: str,
        history: int = 30,
        max_errors: int = 5,
        silence_s: float = 3.0,
        forget_s: float = 60.0,
    ) -> None:
        self.endpoint = endpoint
        self.history = history
        self.max_errors = max_errors
        self.silence_s = silence_s
        self.forget_s = forget_s
        self._streams: dict[str, StreamView] = {}
        self._stats: EngineStats | None = None
        self._errors: deque[ErrorLine] = deque(maxlen=max_errors)
        self._errors_total = 0
        self._invalid = 0
        self._since: float | None = None
        self._last_message: float | None = None
        self._last_prune = -math.inf
        self._labels: tuple[str, ...] = ACTIVITIES
        """The served model's classes (``$stats`` ``labels``; the six until a report says otherwise)."""

    def update(self, event: Prediction | StatsEvent | ErrorEvent, now: float) -> None:
        """Take in one received event."""
        self._heard(now)
        if isinstance(event, Prediction):
            self._predict(event, now)
        elif isinstance(event, StatsEvent):
            self._stats = EngineStats.from_event(event)
            labels = event.fields.get("labels")
            if isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels):
                self._labels = tuple(labels)
        else:
            self._errors.append(ErrorLine(event, now))
            self._errors_total += 1
        if now - self._last_prune >= 1.0:
            self._last_prune = now
            old = [s for s, v in self._streams.items() if now - v.updated > self.forget_s]
            for stream in old:
                del self._streams[stream]

    def note_invalid(self, total: int, now: float) -> None:
        """Record the subscriber's count of messages that failed validation."""
        if total > self._invalid:
            self._heard(now)
        self._invalid = total

    def snapshot(self, now: float) -> Snapshot:
        """An immutable view of the state at ``now``."""
        if self._since is None:
            self._since = now
        last = self._last_message
        silent_s = max(0.0, now - (self._since if last is None else last))
        status: Status = (
            "waiting" if last is None else "connected" if silent_s <= self.silence_s else "silent"
        )
        live = [v for v in self._streams.values() if now - v.updated <= self.forget_s]
        live.sort(key=lambda v: (-v.updated, v.stream))
        tally = Counter(v.activity for v in live)
        extra = sorted(a for a in tally if a not in self._labels)
        return Snapshot(
            endpoint=self.endpoint,
            now=now,
            status=status,
            silent_s=silent_s,
            stats=self._stats,
            streams=tuple(live),
            counts=tuple((a, tally[a]) for a in (*self._labels, *extra)),
            errors=tuple(self._errors),
            errors_total=self._errors_total,
            invalid=self._invalid,
        )

    def _heard(self, now: float) -> None:
        if self._since is None:
            self._since = now
        self._last_message = now

    def _predict(self, p: Prediction, now: float) -> None:
        old = self._streams.get(p.stream)
        keep = self.history - 1
        recent = old.history[max(0, len(old.history) - keep) :] if old and keep > 0 else ()
        probs = p.smoothed_probs if p.smoothed_probs is not None else p.probs
        self._streams[p.stream] = StreamView(
            stream=p.stream,
            activity=p.smoothed,
            confidence=max(probs),
            history=(*recent, p.smoothed),
            windows=(old.windows if old else 0) + 1,
            latency_ms=p.latency_ms,
            updated=now,
        )


def _opt_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
