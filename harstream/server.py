"""``harstream serve``: the engine behind ZeroMQ sockets.

One thread owns both sockets (the pyzmq idiom). Each turn of the loop:

1. **receive**: take at most ``max_drain`` messages off the PULL socket,
   stamp each with its receipt time (monotonic and unix), decode and
   validate it, and append it to a bounded ingest queue. A message that
   would push the queue past ``max_queued_samples`` is *shed*: dropped
   unprocessed, reported as ``overloaded`` on ``$error`` and counted;
2. **filter**: run at most ``turn_samples`` queued samples through
   :class:`~harstream.engine.Engine` (oldest first);
3. **classify**: when enough windows wait (``max_batch``), when the oldest
   has waited ``max_wait_ms``, or when no more input is waiting, classify
   them all in one model call and publish the predictions (topic = stream
   id);
4. **report**: ``$stats`` every ``stats_interval_s``.

Every step is bounded, so ``$stats`` goes out on time under any load, and
memory is bounded by the limits below (all ``serve`` options, all published
in ``$stats`` under ``"limits"``). No exception caused by one message, one
stream or one model call leaves the loop: it is reported on ``$error``
(``internal``), counted and logged, and serving goes on. On stop (SIGINT or
SIGTERM in the CLI) the engine stops reading, classifies and publishes what
it holds within ``flush_s``, and reports what it could not
(:class:`ServeSummary`).

Durations use the monotonic clock; unix times appear only as published
timestamps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import zmq

from .engine import Arrival, Engine
from .errors import ProtocolError, ServeError
from .protocol import (
    DEFAULT_INGEST,
    DEFAULT_PUBLISH,
    MAX_HEADER_BYTES,
    MAX_SAMPLES_PER_CHUNK,
    STREAM_ID,
    Chunk,
    ErrorEvent,
    Prediction,
    decode_chunk,
    encode_error,
    encode_prediction,
    encode_stats,
)
from .security import sender_key

log = logging.getLogger("harstream.server")

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
    max_batch: int = 256
    """Classify as soon as this many windows are waiting."""
    max_wait_ms: float = 2.0
    """Longest a ready window waits for more windows to batch with."""
    max_drain: int = 2048
    """Most messages taken off the ingest socket in one turn of the loop."""
    turn_samples: int = 131_072
    """Most samples filtered in one turn (bounds a turn's work, so ``$stats`` stays on time)."""
    max_queued_samples: int = 1_048_576
    """Samples the ingest queue holds (about 24 MB); beyond it chunks are shed (``overloaded``)."""
    max_streams: int = 10_000
    """Streams held at once; a chunk opening one more is refused (``too_many_streams``)."""
    ingest_hwm: int = 1000
    """ZeroMQ receive high-water mark of the PULL socket, messages per connected producer."""
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

    def limits(self) -> dict[str, int | float]:
        """The resource limits, as published in ``$stats``."""
        keys = ("max_streams", "max_queued_samples", "turn_samples", "max_drain", "max_batch",
                "ingest_hwm", "publish_hwm", "max_message_bytes", "idle_timeout_s")
        values = asdict(self)
        return {key: values[key] for key in keys}


@dataclass
class ServeSummary:
    """What happened to the engine's input by the time :func:`serve` returned."""

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


class _Stats:
    RATE_WINDOW_S = 5.0
    """windows_per_s is averaged over this long: streams emit a window every 1.28 s."""

    def __init__(self, engine: Engine, config: ServerConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.config = config or ServerConfig()
        self.clock = clock
        self.started = clock()
        self.history: deque[tuple[float, int]] = deque([(self.started, 0)])

    def report(self, now: float, queued_samples: int = 0) -> dict[str, Any]:
        """The ``$stats`` fields at monotonic time ``now``."""
        counters = self.engine.counters
        self.history.append((now, counters.windows))
        while len(self.history) > 2 and now - self.history[1][0] >= self.RATE_WINDOW_S:
            self.history.popleft()
        first_time, first_windows = self.history[0]
        rate = (counters.windows - first_windows) / max(now - first_time, 1e-9)
        return {
            "engine": self.engine.id,
            "started": self.engine.started,
            "streams": self.engine.n_streams,
            "windows": counters.windows,
            "windows_per_s": round(max(rate, 0.0), 2),
            "latency_ms": _percentiles(self.engine.take_latencies(), low=0.0),
            "age_ms": _percentiles(self.engine.take_ages()),
            "rejected": counters.rejected,
            "shed": counters.shed,
            "internal_errors": counters.internal_errors,
            "chunks": counters.chunks,
            "queued_samples": queued_samples,
            "uptime_s": round(max(now - self.started, 0.0), 3),
            "t": self.engine.wall_clock(),
            "labels": list(self.engine.labels),
            "limits": self.config.limits(),
        }


def _percentiles(values: list[float], low: float | None = None) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    array = np.clip(np.asarray(values, dtype=np.float64), -1e300, 1e300)  # no overflow in percentile
    if low is not None:
        array = np.maximum(array, low)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "max": round(float(array.max()), 3),
    }


def _stream_of(frames: list[Any]) -> str | None:
    try:
        sid = bytes(frames[0]).decode("utf-8")
    except (IndexError, TypeError, UnicodeDecodeError):
        return None
    return sid if STREAM_ID.fullmatch(sid) else None


@dataclass
class Sockets:
    """The engine's two bound sockets (and the authenticator when keys are on)."""

    pull: zmq.Socket[bytes]
    pub: zmq.Socket[bytes]
    secure: bool = False
    """Keys are on: each chunk's sender key is read (``User-Id``) and owns its streams."""
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close both sockets and stop what was started with them."""
        self.pull.close(linger=0)
        self.pub.close()
        for closer in self.closers:
            closer()


def bind(
    config: ServerConfig,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    secure: Callable[[zmq.Socket[bytes], zmq.Socket[bytes]], Callable[[], None]] | None = None,
) -> Sockets:
    """Create and bind the engine's sockets with the configured limits.

    ``secure`` (keys on) configures both sockets before they bind and returns
    what stops its authenticator. Raises :class:`ServeError` with one line
    naming the endpoint when a socket cannot bind.
    """
    ctx = context or zmq.Context.instance()
    pull, pub = ctx.socket(zmq.PULL), ctx.socket(zmq.PUB)
    sockets = Sockets(pull, pub, secure=secure is not None)
    try:
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVHWM, config.ingest_hwm)
        pull.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        pub.setsockopt(zmq.LINGER, int(config.flush_s * 1000))
        pub.setsockopt(zmq.SNDHWM, config.publish_hwm)
        if secure is not None:
            sockets.closers.append(secure(pull, pub))
        for sock, endpoint, role in ((pull, config.ingest, "ingest"), (pub, config.publish, "publish")):
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise ServeError(f"cannot bind the {role} endpoint {endpoint!r}: {exc}") from None
    except BaseException:
        sockets.close()
        raise
    return sockets


class _Loop:
    """The serving loop's state: the sockets, the engine and the ingest queue."""

    def __init__(self, engine: Engine, config: ServerConfig, sockets: Sockets) -> None:
        self.engine = engine
        self.config = config
        self.pull = sockets.pull
        self.pub = sockets.pub
        self.secure = sockets.secure
        self.queue: deque[Arrival] = deque()
        self.queued_samples = 0
        self.stats = _Stats(engine, config)
        self.oldest_pending: float | None = None
        self.logged_failures = 0

    # -- the four steps ----------------------------------------------------------------------

    def receive(self, limit: int) -> int:
        """Take up to ``limit`` messages off the socket into the queue; returns how many."""
        engine = self.engine
        count = 0
        copy = not self.secure
        for _ in range(limit):
            try:
                frames: list[Any] = self.pull.recv_multipart(zmq.NOBLOCK, copy=copy)
            except zmq.Again:
                break
            count += 1
            t_recv, t_wall = time.monotonic(), time.time()
            try:
                chunk = decode_chunk(frames)
            except ProtocolError as exc:
                engine.counters.rejected += 1
                self.publish_error(ErrorEvent(_stream_of(frames), exc.code, exc.detail))
                continue
            if self.secure:
                chunk = _with_owner(chunk, frames[0])
            n = len(chunk.samples)
            if self.queued_samples + n > self.config.max_queued_samples:
                engine.counters.shed += 1
                self.publish_error(ErrorEvent(
                    chunk.stream, "overloaded",
                    f"the ingest queue holds its limit of {self.config.max_queued_samples} samples; "
                    f"chunk at seq {chunk.seq} ({n} samples) dropped unprocessed",
                ))
                continue
            self.queue.append(Arrival(chunk, t_recv, t_wall))
            self.queued_samples += n
        return count

    def filter(self) -> None:
        """Run at most ``turn_samples`` queued samples through the engine."""
        batch: list[Arrival] = []
        budget = self.config.turn_samples
        while self.queue and (not batch or budget >= len(self.queue[0].chunk.samples)):
            arrival = self.queue.popleft()
            n = len(arrival.chunk.samples)
            budget -= n
            self.queued_samples -= n
            batch.append(arrival)
        if batch:
            for event in self.engine.ingest(batch):
                self.publish_error(event)

    def classify(self, limit: int | None = None) -> int:
        """Classify the waiting windows (at most ``limit``), publish the predictions; how many."""
        predictions = self.engine.classify(limit)
        for event in self.engine.take_errors():
            self.publish_error(event)
        for prediction in predictions:
            self.publish_prediction(prediction)
        self.oldest_pending = None
        return len(predictions)

    def report(self) -> None:
        """Forget idle streams and publish ``$stats``."""
        self.engine.drop_idle()
        frames = encode_stats(self.stats.report(time.monotonic(), self.queued_samples))
        self.pub.send_multipart(frames)

    # -- publishing ----------------------------------------------------------------------------

    def publish_error(self, event: ErrorEvent) -> None:
        self.pub.send_multipart(encode_error(event.stream, event.code, event.detail))

    def publish_prediction(self, prediction: Prediction) -> None:
        try:
            frames = encode_prediction(prediction)
        except ProtocolError as exc:  # a value the protocol cannot carry: report, never crash
            self.failed("encoding a prediction", exc)
            self.publish_error(ErrorEvent(
                prediction.stream, "internal",
                f"the prediction for seq_end {prediction.seq_end} could not be encoded: {exc.detail}",
            ))
            return
        self.pub.send_multipart(frames)

    def failed(self, what: str, exc: BaseException) -> None:
        """Count and log a failure inside the loop (tracebacks for the first few only)."""
        self.engine.counters.internal_errors += 1
        self.logged_failures += 1
        if self.logged_failures <= 20:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
        elif self.logged_failures == 21:
            log.error("further failures are counted in $stats internal_errors, not logged")

    # -- one turn ------------------------------------------------------------------------------

    def turn(self, next_stats: float) -> None:
        """One bounded turn: receive, filter, maybe classify."""
        config = self.config
        now = time.monotonic()
        if self.queue:
            wait_ms = 0.0
        elif self.oldest_pending is not None:
            wait_ms = max(0.0, config.max_wait_ms - (now - self.oldest_pending) * 1000)
        else:
            wait_ms = min(100.0, max(0.0, (next_stats - now) * 1000))
        if self.pull.poll(int(wait_ms)):
            self.receive(config.max_drain)
        self.filter()
        if self.engine.n_pending:
            now = time.monotonic()
            if self.oldest_pending is None:
                self.oldest_pending = now
            waited_ms = (now - self.oldest_pending) * 1000
            if (
                self.engine.n_pending >= config.max_batch
                or waited_ms >= config.max_wait_ms
                or (not self.queue and not self.pull.poll(0))
            ):
                self.classify()

    def flush(self, summary: ServeSummary) -> None:
        """After a stop: classify and publish what is held, within ``flush_s``."""
        deadline = time.monotonic() + self.config.flush_s
        before = self.engine.counters.windows
        while (self.queue or self.engine.n_pending) and time.monotonic() < deadline:
            try:
                if not self.engine.n_pending:
                    self.filter()
                if self.engine.n_pending:  # a batch at a time, so the deadline holds
                    self.classify(limit=self.config.max_batch)
            except Exception as exc:
                self.failed("flushing", exc)
        summary.flushed_windows = self.engine.counters.windows - before
        summary.dropped_chunks = len(self.queue)
        summary.dropped_windows = self.engine.n_pending
        while summary.unread_messages < 1_000_000 and time.monotonic() < deadline + 0.5:
            try:
                self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            summary.unread_messages += 1


def _with_owner(chunk: Chunk, frame: zmq.Frame) -> Chunk:
    """``chunk`` owned by the CURVE public key (z85) that sent ``frame``."""
    return replace(chunk, owner=sender_key(frame))


def serve(
    engine: Engine,
    config: ServerConfig = ServerConfig(),
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    sockets: Sockets | None = None,
) -> ServeSummary:
    """Run the engine on ZeroMQ sockets until ``stop`` is set; returns what happened.

    ``sockets`` are bound ones from :func:`bind` (bound here when None); they
    are closed on return.
    """
    stop = stop or threading.Event()
    sockets = sockets or bind(config, context)
    loop = _Loop(engine, config, sockets)
    summary = ServeSummary()
    try:
        if on_ready is not None:
            on_ready()
        loop.report()  # the new engine id reaches subscribers at once
        next_stats = time.monotonic() + config.stats_interval_s
        while not stop.is_set():
            try:
                loop.turn(next_stats)
                if time.monotonic() >= next_stats:
                    loop.report()
                    next_stats = time.monotonic() + config.stats_interval_s
            except zmq.ContextTerminated:
                break
            except Exception as exc:  # never let one failure end serving for every stream
                loop.failed("a serving turn", exc)
                loop.oldest_pending = None
        loop.flush(summary)
        try:
            loop.report()
        except Exception as exc:
            loop.failed("the last $stats", exc)
    finally:
        sockets.close()
    counters = engine.counters
    summary.windows, summary.rejected = counters.windows, counters.rejected
    summary.shed, summary.internal_errors = counters.shed, counters.internal_errors
    return summary


__all__ = ["MAX_HEADER_BYTES", "ServeSummary", "ServerConfig", "Sockets", "bind", "serve"]
