"""The gateway's limits, its drop counters and the per-phone sample budget.

>>> bucket = SampleBudget(rate=100.0, burst_s=2.0, now=0.0)
>>> bucket.take(150, now=0.0), bucket.take(100, now=0.0), bucket.take(100, now=1.0)
(True, False, True)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Every bound of the gateway, each a ``harstream web`` option."""

    max_body_bytes: int = 1 << 20
    """Largest ``POST /push`` body (Sensor Logger sends about 30 kB a second at 100 Hz)."""
    max_message_bytes: int = 256 << 10
    """Largest WebSocket message from a phone or a labels client."""
    max_samples_per_s: float = 500.0
    """Samples per second per phone, sustained (a budget of :attr:`burst_s` seconds' worth)."""
    burst_s: float = 5.0
    """Seconds of :attr:`max_samples_per_s` a phone may send at once (after a reconnect)."""
    max_phones: int = 200
    """Phones held at once: WebSocket connections plus Sensor Logger sessions."""
    max_label_clients: int = 100
    """Labels feeds (``/labels``) open at once."""
    max_streams_per_feed: int = 100
    """Streams one labels feed may name."""
    idle_timeout_s: float = 60.0
    """A Sensor Logger session silent this long is forgotten (its stream slot freed)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SampleBudget:
    """A token bucket of samples: :meth:`take` says whether ``n`` samples fit now."""

    def __init__(self, rate: float, burst_s: float, now: float) -> None:
        self.rate = rate
        self.capacity = rate * burst_s
        self.tokens = self.capacity
        self.stamp = now

    def take(self, n: int, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if n > self.tokens:
            return False
        self.tokens -= n
        return True


@dataclass
class Counters:
    """What the gateway received, sent and dropped (``dropped`` by reason, in samples or messages)."""

    samples_in: int = 0
    chunks_out: int = 0
    events_out: int = 0
    dropped_samples: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    """Requests and messages refused whole, by reason (``token``, ``body``, ``too_many_phones``...)."""
    events_dropped: int = 0
    """Engine events not delivered to a slow client (its queue was full)."""
    message_gaps: int = 0
    """Sensor Logger messages missing (``messageId`` gaps)."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropped_samples"] = dict(self.dropped_samples)
        out["refused"] = dict(self.refused)
        return out
