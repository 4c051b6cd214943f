"""``harstream serve``: the engine behind ZeroMQ sockets.

One thread owns both sockets (the pyzmq idiom): it drains every chunk
waiting on the PULL socket, decodes and validates each one, runs the
chunks through :class:`~harstream.engine.Engine`, then classifies every
ready window of every stream in one model call and publishes the
predictions on PUB (topic = stream id). While the model runs, new chunks
queue in ZeroMQ, so the next batch grows with the load: batching costs a
lone stream nothing, and ``max_wait_ms`` bounds how long a window may wait
for company. ``$stats`` goes out every second, ``$error`` for every
rejected message; a stop event (SIGINT/SIGTERM in the CLI) ends the loop
cleanly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from .engine import Engine
from .errors import ProtocolError
from .protocol import (
    DEFAULT_INGEST,
    DEFAULT_PUBLISH,
    STREAM_ID,
    Chunk,
    ErrorEvent,
    decode_chunk,
    encode_error,
    encode_prediction,
    encode_stats,
)


@dataclass(frozen=True)
class ServerConfig:
    """Endpoints and batching of a running engine."""

    ingest: str = DEFAULT_INGEST
    """PULL endpoint producers connect to."""
    publish: str = DEFAULT_PUBLISH
    """PUB endpoint subscribers connect to."""
    max_batch: int = 256
    """Classify as soon as this many windows are waiting."""
    max_wait_ms: float = 2.0
    """Longest a ready window waits for more windows to batch with."""
    max_drain: int = 2048
    """Most messages taken off the ingest socket between two model calls."""
    stats_interval_s: float = 1.0
    """Seconds between ``$stats`` messages."""
    idle_timeout_s: float = 60.0
    """Streams silent this long are forgotten."""


class _Stats:
    RATE_WINDOW_S = 5.0
    """windows_per_s is averaged over this long: streams emit a window every 1.28 s."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.started = time.time()
        self.history: deque[tuple[float, int]] = deque([(self.started, 0)])

    def report(self, now: float) -> dict[str, Any]:
        counters = self.engine.counters
        latencies = self.engine.take_latencies()
        self.history.append((now, counters.windows))
        while len(self.history) > 2 and now - self.history[1][0] >= self.RATE_WINDOW_S:
            self.history.popleft()
        first_time, first_windows = self.history[0]
        rate = (counters.windows - first_windows) / max(now - first_time, 1e-9)
        latency: dict[str, float | None] = {"p50": None, "p99": None, "max": None}
        if latencies:
            values = np.asarray(latencies)
            latency = {
                "p50": round(float(np.percentile(values, 50)), 3),
                "p99": round(float(np.percentile(values, 99)), 3),
                "max": round(float(values.max()), 3),
            }
        return {
            "streams": self.engine.n_streams,
            "windows": counters.windows,
            "windows_per_s": round(rate, 2),
            "latency_ms": latency,
            "rejected": counters.rejected,
            "chunks": counters.chunks,
            "uptime_s": round(now - self.started, 3),
            "t": now,
            "labels": list(self.engine.labels),
        }


def _error_frames(event: ErrorEvent) -> list[bytes]:
    return encode_error(event.stream, event.code, event.detail)


def _stream_of(frames: list[bytes]) -> str | None:
    try:
        sid = frames[0].decode("utf-8")
    except (IndexError, UnicodeDecodeError):
        return None
    return sid if STREAM_ID.fullmatch(sid) else None


def serve(
    engine: Engine,
    config: ServerConfig = ServerConfig(),
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> None:
    """Run the engine on ZeroMQ sockets until ``stop`` is set."""
    stop = stop or threading.Event()
    ctx = context or zmq.Context.instance()
    stats = _Stats(engine)
    with ctx.socket(zmq.PULL) as pull, ctx.socket(zmq.PUB) as pub:
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVHWM, 100_000)
        pub.setsockopt(zmq.LINGER, 1000)
        pub.setsockopt(zmq.SNDHWM, 1_000_000)
        pull.bind(config.ingest)
        pub.bind(config.publish)
        if on_ready is not None:
            on_ready()
        next_stats = time.time() + config.stats_interval_s
        oldest_pending: float | None = None
        try:
            while not stop.is_set():
                now = time.time()
                if oldest_pending is not None:
                    wait_ms = max(0.0, config.max_wait_ms - (now - oldest_pending) * 1000)
                else:
                    wait_ms = min(100.0, max(0.0, (next_stats - now) * 1000))
                if pull.poll(int(wait_ms)):
                    _drain(pull, pub, engine, config.max_drain)
                if engine.n_pending:
                    now = time.time()
                    oldest_pending = oldest_pending or now
                    waited_ms = (now - oldest_pending) * 1000
                    if (
                        engine.n_pending >= config.max_batch
                        or waited_ms >= config.max_wait_ms
                        or not pull.poll(0)
                    ):
                        for prediction in engine.classify():
                            pub.send_multipart(encode_prediction(prediction))
                        oldest_pending = None
                now = time.time()
                if now >= next_stats:
                    engine.drop_idle()
                    pub.send_multipart(encode_stats(stats.report(now)))
                    next_stats = now + config.stats_interval_s
        except zmq.ContextTerminated:
            pass


def _drain(pull: zmq.Socket[bytes], pub: zmq.Socket[bytes], engine: Engine, limit: int) -> None:
    arrival = time.time()
    chunks: list[Chunk] = []
    for _ in range(limit):
        try:
            frames = pull.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        try:
            chunks.append(decode_chunk(frames))
        except ProtocolError as exc:
            engine.counters.rejected += 1
            pub.send_multipart(encode_error(_stream_of(frames), exc.code, exc.detail))
    for event in engine.ingest(chunks, arrival):
        pub.send_multipart(_error_frames(event))
