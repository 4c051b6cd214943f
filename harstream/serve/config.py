"""``ServerConfig``: the endpoints, batching and resource limits of a running engine.

The one source of every ``serve`` option's default (the command line reads them from
here). Importable without numpy or ZeroMQ, so building the command line stays cheap.

>>> config = ServerConfig(max_batch=64)
>>> config.max_batch, config.limits()["max_batch"]
(64, 64)
>>> MAX_INGEST_FRAME_BYTES
72000
>>> ServerConfig(join="tcp://router:5557", slot=2).joins
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harstream import DEFAULT_INGEST, DEFAULT_PUBLISH, MAX_SAMPLES_PER_CHUNK

MAX_INGEST_FRAME_BYTES = MAX_SAMPLES_PER_CHUNK * 24
"""Largest valid ingest frame (a full samples frame); ``ZMQ_MAXMSGSIZE`` on the PULL socket.

libzmq applies the limit to each frame and disconnects a peer that sends a
larger one, before any of it is buffered."""


@dataclass(frozen=True)
class ServerConfig:
    """Endpoints, batching and resource limits of a running engine."""

    ingest: str = DEFAULT_INGEST
    """PULL endpoint producers connect to."""
    publish: str = DEFAULT_PUBLISH
    """PUB endpoint subscribers connect to."""
    join: str | None = None
    """A router's engines endpoint (``tcp://HOST:5557``): join it instead of binding ``ingest`` and
    ``publish`` (:mod:`harstream.serve.join`)."""
    slot: int = 0
    """Join mode: which engine of the cluster this is (0..N-1); the router routes streams by slot."""
    join_hwm: int = 50_000
    """Join mode: ZeroMQ receive high-water mark of the DEALER socket, in messages from the router
    (every stream the router sends here shares this one connection; a chunk is about 1 KB)."""
    max_batch: int = 256
    """Classify as soon as this many windows are waiting."""
    max_pending_windows: int = 1024
    """Windows cut and waiting for the model; beyond it, filtering pauses (samples
    wait in the ingest queue, which sheds when full)."""
    max_drain: int = 2048
    """Most messages taken off the ingest socket in one turn of the loop."""
    turn_samples: int = 131_072
    """Most samples filtered in one turn (bounds a turn's work, so ``$stats`` stays on time)."""
    max_queued_samples: int = 1_048_576
    """Samples the ingest queue holds (about 24 MB); beyond it chunks are shed (``overloaded``)."""
    max_streams: int = 10_000
    """Streams held at once; a chunk opening one more is refused (``too_many_streams``)."""
    ingest_hwm: int = 1000
    """ZeroMQ receive high-water mark of the PULL socket, messages per connected producer
    (libzmq holds each whole message in memory: see docs/protocol.md, "Limits")."""
    publish_hwm: int = 10_000
    """ZeroMQ send high-water mark of the PUB socket, messages per subscriber (a subscriber
    further behind loses messages; the engine never waits for it)."""
    max_message_bytes: int = MAX_INGEST_FRAME_BYTES
    """``ZMQ_MAXMSGSIZE`` of the PULL socket: a producer sending a larger frame is disconnected."""
    stats_interval_s: float = 1.0
    """Seconds between ``$stats`` messages."""
    idle_timeout_s: float = 60.0
    """Streams silent this long are forgotten."""
    flush_s: float = 2.0
    """On stop: longest spent classifying and publishing what is still held."""
    gather_ms: float = 5.0
    """Shortest time between two reads of the ingest socket while nothing waits to be
    filtered (or while filtering waits for the model): arrivals gather in the socket, and a
    turn filters more chunks in one vectorised call (0: read as soon as anything arrives).
    A lone stream's chunk finds the socket last read long ago and waits nothing. What it saves
    under load: docs/benchmarks.md, "Gathering arrivals"."""
    switch_interval_ms: float = 20.0
    """The interpreter's thread switch interval while serving (``sys.setswitchinterval``; Python's
    default is 5 ms). The ingest and inference threads share one GIL: fewer hand-overs cost less
    (measured in docs/benchmarks.md)."""

    @property
    def joins(self) -> bool:
        """The engine joins a router (``join`` is set) rather than binding its own endpoints."""
        return self.join is not None

    def limits(self) -> dict[str, int | float]:
        """The resource limits, as published in ``$stats`` (the engine's own override these)."""
        keys = ("max_streams", "max_queued_samples", "max_pending_windows", "turn_samples",
                "max_drain", "max_batch",
                "ingest_hwm", "publish_hwm", "max_message_bytes", "idle_timeout_s")
        values = asdict(self)
        return {key: values[key] for key in keys}


__all__ = ["MAX_INGEST_FRAME_BYTES", "ServerConfig"]
