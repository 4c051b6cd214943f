"""``harstream serve``: the engine behind ZeroMQ sockets.

The serving thread owns the PULL socket and the streams' state. Each turn of the loop:

1. **receive**: take at most ``max_drain`` messages off the PULL socket,
   stamp each with its receipt time (monotonic and unix), decode and
   validate it, and append it to a bounded ingest queue. A message that
   would push the queue past ``max_queued_samples`` is *shed*: dropped
   unprocessed, reported as ``overloaded`` on ``$error`` and counted;
2. **filter**: run at most ``turn_samples`` queued samples through
   :class:`~harstream.engine.core.Engine` (oldest first), in slices of
   :data:`SLICE_CHUNKS` chunks, handing the windows cut to the model stage
   after each;
3. **classify**: with a model process (``model=``, ``serve --model-process``,
   the default) the serving thread itself submits the ready windows as one
   batch whenever the model is free, and publishes the predictions when the
   answer comes (the model's pipe is polled beside the PULL socket); without
   one, an inference thread that owns the PUB socket does the same with
   ``engine.predict_proba``;
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
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import zmq

from harstream.engine.core import Arrival, Engine, PendingWindow, stack_windows
from harstream.errors import ProtocolError, ServeError
from harstream.gc_pauses import PauseMeter
from harstream.protocol import (
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
from harstream.serve.security import sender_key

if TYPE_CHECKING:
    from harstream.model.process import ModelProcess

log = logging.getLogger("harstream.serve.server")

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
    ingest_hwm: int = 100
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
    A lone stream's chunk finds the socket last read long ago and waits nothing. Measured at
    4,000 streams, medians of eight same-run pairs: engine CPU 94.7 % against 129.7 % at 0,
    p99 16.4 against 23.1 ms (docs/benchmarks.md)."""
    switch_interval_ms: float = 20.0
    """The interpreter's thread switch interval while serving (``sys.setswitchinterval``; Python's
    default is 5 ms). The ingest and inference threads share one GIL: fewer hand-overs cost less.
    Measured at 4,000 streams: 20 ms p99 279 and 355 ms, none lost; 5 ms p99 470 ms in one run and
    36,101 windows shed in another (docs/benchmarks.md)."""

    def limits(self) -> dict[str, int | float]:
        """The resource limits, as published in ``$stats`` (the engine's own override these)."""
        keys = ("max_streams", "max_queued_samples", "max_pending_windows", "turn_samples",
                "max_drain", "max_batch",
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
                 clock: Callable[[], float] = time.monotonic, pauses: PauseMeter | None = None) -> None:
        self.engine = engine
        self.config = config or ServerConfig()
        self.clock = clock
        self.pauses = pauses or PauseMeter()
        """The serving process's garbage-collector pauses (``serve`` installs it while serving)."""
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
            "gc_pauses": self.pauses.take(),
            "uptime_s": round(max(now - self.started, 0.0), 3),
            "t": self.engine.wall_clock(),
            "labels": list(self.engine.labels),
            "limits": {**self.config.limits(), "max_streams": self.engine.max_streams,
                       "idle_timeout_s": self.engine.idle_timeout_s},
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

    @property
    def ingest_endpoint(self) -> str:
        """The endpoint the PULL socket is bound to (the port chosen, for ``tcp://*:*``)."""
        return _last_endpoint(self.pull)

    @property
    def publish_endpoint(self) -> str:
        """The endpoint the PUB socket is bound to."""
        return _last_endpoint(self.pub)

    def close(self, pub: bool = True) -> None:
        """Close both sockets (the PULL one only, with ``pub=False``) and stop what was started with them."""
        self.pull.close(linger=0)
        if pub:
            self.pub.close()
        for closer in self.closers:
            closer()


def _last_endpoint(sock: zmq.Socket[bytes]) -> str:
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


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
        for sock in (pull, pub):
            sock.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT binds; IPv4 works as before
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


class _StatsRequest(NamedTuple):
    """Ask the inference thread to publish ``$stats`` (it owns the latency samples)."""

    queued_samples: int


class _Inference:
    """The inference thread: classifies what the engine cut, and owns the PUB socket.

    The ingest thread hands it frames to publish (``$error``, in order) and
    ``$stats`` requests through :meth:`send`, and wakes it when windows are
    ready (:meth:`wake`). Each round it publishes what was handed over, then
    takes up to ``max_batch`` ready windows, classifies them in one model
    call (TensorFlow and ONNX Runtime release the GIL, so ingest goes on
    meanwhile) and publishes the predictions. Windows arriving during a model
    call wait for the next round: batches grow with the load.
    """

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop
        self.engine = loop.engine
        self.pub = loop.pub
        self.cond = threading.Condition()
        self.outbox: deque[list[bytes] | _StatsRequest] = deque()
        self.closing = False
        self.deadline = math.inf
        """After this (monotonic) time, waiting windows are dropped and counted."""
        self.dropped_windows = 0
        self.exited = False
        self.close_pub_on_exit = False
        """Set when serving returned while this thread was still busy: it closes the PUB socket it owns."""
        self.thread = threading.Thread(target=self._run, name="harstream-inference", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def send(self, item: list[bytes] | _StatsRequest) -> None:
        """Publish ``item`` (frames, or a ``$stats`` report) in order, from the inference thread."""
        with self.cond:
            self.outbox.append(item)
            self.cond.notify()

    def wake(self) -> None:
        """New windows are ready."""
        with self.cond:
            self.cond.notify()

    def finish(self, deadline: float) -> bool:
        """Classify and publish what is left until ``deadline``, then stop; False if still busy."""
        with self.cond:
            self.closing = True
            self.deadline = deadline
            self.cond.notify()
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5.0)
        return not self.thread.is_alive()

    def hand_over_pub(self) -> bool:
        """True when this thread has ended (the caller may close the PUB socket); else it closes it."""
        with self.cond:
            if not self.exited:
                self.close_pub_on_exit = True
            return self.exited

    def _run(self) -> None:
        try:
            self._serve_outbox()
        finally:
            with self.cond:
                self.exited = True
                close = self.close_pub_on_exit
            if close:  # serving has returned: nobody else may touch the socket
                self.pub.close(linger=0)

    def _serve_outbox(self) -> None:
        engine = self.engine
        while True:
            with self.cond:
                while not self.outbox and not engine.n_pending and not self.closing:
                    self.cond.wait(timeout=1.0)
                items = list(self.outbox)
                self.outbox.clear()
                closing = self.closing
            try:
                for item in items:
                    self._publish(item)
                if engine.n_pending:
                    if time.monotonic() >= self.deadline:
                        self.dropped_windows += len(engine.take_pending())
                    else:
                        self._classify()
                elif closing and not self.outbox:
                    return
            except Exception as exc:  # never let one failure stop the publishing
                self.loop.failed("the inference thread", exc)

    def _publish(self, item: list[bytes] | _StatsRequest) -> None:
        _publish_item(self.loop, self.pub, item)

    def _classify(self) -> None:
        engine = self.engine
        predictions = engine.classify_pending(engine.take_pending(self.loop.config.max_batch))
        _publish_classified(self.loop, self.pub, predictions)

    def accepts_reports(self) -> bool:
        """Frames handed over by :meth:`send` now will be published (another thread, this one alive)."""
        return threading.current_thread() is not self.thread and self.thread.is_alive()

    @property
    def alive(self) -> bool:
        """The thread still runs."""
        return self.thread.is_alive()


def _publish_item(loop: _Loop, pub: zmq.Socket[bytes], item: list[bytes] | _StatsRequest) -> None:
    """Publish handed-over frames, or the ``$stats`` report a request asks for."""
    if isinstance(item, _StatsRequest):
        pub.send_multipart(encode_stats(loop.stats.report(time.monotonic(), item.queued_samples)))
    else:
        pub.send_multipart(item)


def _publish_classified(loop: _Loop, pub: zmq.Socket[bytes], predictions: list[Prediction]) -> None:
    """Publish the engine's waiting ``$error``s, then ``predictions`` (one that cannot be encoded is
    an ``internal`` error for its stream, never a crash)."""
    for event in loop.engine.take_errors():
        pub.send_multipart(encode_error(event.stream, event.code, event.detail))
    for prediction in predictions:
        try:
            frames = encode_prediction(prediction)
        except ProtocolError as exc:  # a value the protocol cannot carry: report, never crash
            loop.failed("encoding a prediction", exc)
            frames = encode_error(
                prediction.stream, "internal",
                f"the prediction for seq_end {prediction.seq_end} could not be encoded: {exc.detail}",
            )
        pub.send_multipart(frames)


class _ModelProcessStage:
    """Classification on the serving thread, the model computing in processes of its own
    (``serve --model-process``, :class:`~harstream.model.process.ModelProcess`).

    The duties of :class:`_Inference` (publish handed-over frames in order,
    classify ready windows in batches, publish the predictions), driven by the
    loop's turns instead of a thread: :meth:`pump` takes the answers that have
    come in and submits the next batches, and the loop polls the models' pipes
    beside its PULL socket. The models compute while the loop receives and
    filters, and no second thread shares the serving process's GIL. With
    several model processes (``--model-processes``), each free one takes the
    next batch, and answers are published in the order the batches were
    submitted: a stream's windows stay in order, and so does its smoothing.
    """

    def __init__(self, loop: _Loop, models: Sequence[ModelProcess]) -> None:
        if not models:
            raise ValueError("models: expected at least one model process, got none")
        self.loop = loop
        self.engine = loop.engine
        self.pub = loop.pub
        self.models = list(models)
        self.in_flight: deque[tuple[ModelProcess, list[PendingWindow]]] = deque()
        """The model calls in flight, oldest first: each model process and its batch's windows."""
        self.deadline = math.inf
        """After this (monotonic) time, waiting windows are dropped and counted."""
        self.dropped_windows = 0
        self.alive = False
        """No thread to stop."""

    def start(self) -> None:
        """Nothing to start: the loop drives this stage."""

    def send(self, item: list[bytes] | _StatsRequest) -> None:
        """Publish ``item`` (frames, or a ``$stats`` report) now: this is the serving thread."""
        _publish_item(self.loop, self.pub, item)

    def accepts_reports(self) -> bool:
        return True

    def wake(self) -> None:
        """New windows are ready: submit them if a model is free."""
        self.pump()

    def filenos(self) -> list[int]:
        """The models' pipes, each readable when its answer (or a new child's report) is in."""
        return [fd for fd in (model.fileno() for model in self.models) if fd is not None]

    @property
    def waiting_on_child(self) -> bool:
        """A call is in flight or a child is loading: its pipe will wake the loop's poll."""
        return bool(self.in_flight) or any(model.state == "loading" for model in self.models)

    @property
    def any_dead(self) -> bool:
        """A model process has no child (it starts one when its restart is due)."""
        return any(model.state == "dead" for model in self.models)

    def pump(self) -> None:
        """Take the answers that have come, in submission order; submit batches to the free models."""
        engine = self.engine
        while self.in_flight and self.in_flight[0][0].answered():
            model, pending = self.in_flight.popleft()
            try:
                probs = model.collect()
            except Exception as exc:
                engine.classification_failed(pending, exc)
                predictions = []
            else:
                predictions = engine.predictions_of(pending, probs)
            _publish_classified(self.loop, self.pub, predictions)
        busy = {id(model) for model, _ in self.in_flight}
        for model in self.models:
            if id(model) in busy:
                continue
            if model.state != "idle":
                model.revive()  # a child that failed is replaced; windows wait meanwhile
            if model.state != "idle" or not engine.n_pending:
                continue
            if time.monotonic() >= self.deadline:
                self.dropped_windows += len(engine.take_pending())
                return
            pending = engine.take_pending(min(self.loop.config.max_batch, model.max_batch))
            try:
                model.submit(stack_windows(pending))
            except Exception as exc:
                engine.classification_failed(pending, exc)
                _publish_classified(self.loop, self.pub, [])
            else:
                self.in_flight.append((model, pending))

    def finish(self, deadline: float) -> bool:
        """Classify and publish what is left until ``deadline``; drop (and count) the rest."""
        self.deadline = deadline
        while (self.in_flight or self.engine.n_pending) and time.monotonic() < deadline:
            self.pump()
            fds = self.filenos()
            if fds and self.waiting_on_child:
                zmq.select(fds, [], [], max(0.0, min(0.1, deadline - time.monotonic())))
            elif self.any_dead:
                time.sleep(0.01)
        self.dropped_windows += sum(len(pending) for _, pending in self.in_flight)
        self.dropped_windows += len(self.engine.take_pending())
        self.in_flight.clear()
        return True

    def hand_over_pub(self) -> bool:
        """The PUB socket never left the serving thread."""
        return True


class _Loop:
    """The serving loop's state: the sockets, the engine, the ingest queue, the inference thread."""

    def __init__(self, engine: Engine, config: ServerConfig, sockets: Sockets,
                 models: Sequence[ModelProcess] = ()) -> None:
        self.engine = engine
        self.config = config
        self.pull = sockets.pull
        self.pub = sockets.pub
        self.secure = sockets.secure
        self.queue: deque[Arrival] = deque()
        self.queued_samples = 0
        """Samples in the queue, each chunk counted as at least :data:`MIN_CHUNK_COST` samples."""
        self.shed_streams: set[str] = set()
        """Streams that lost a chunk to shedding: their next chunk restarts them."""
        self.stats = _Stats(engine, config)
        self.inference: _Inference | _ModelProcessStage = (
            _ModelProcessStage(self, models) if models else _Inference(self))
        self.stage = self.inference if isinstance(self.inference, _ModelProcessStage) else None
        """The model-process stage the turns drive (None: the inference thread classifies)."""
        self._poller: tuple[list[int], zmq.Poller] | None = None
        self.last_read = 0.0
        """When the ingest socket was last read (monotonic; ``gather_ms`` counts from it)."""
        self.logged_failures = 0
        self._failure_lock = threading.Lock()

    # -- the ingest steps --------------------------------------------------------------------

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
            t_recv, t_wall = engine.clock(), engine.wall_clock()
            try:
                chunk = decode_chunk(frames)
            except ProtocolError as exc:
                engine.counters.rejected += 1
                self.publish_error(ErrorEvent(_stream_of(frames), exc.code, exc.detail))
                continue
            if self.secure:
                chunk = _with_owner(chunk, frames[0])
            n = _cost(chunk)
            if self.queued_samples + n > self.config.max_queued_samples:
                engine.counters.shed += 1
                self.shed_streams.add(chunk.stream)
                self.publish_error(ErrorEvent(
                    chunk.stream, "overloaded",
                    f"the ingest queue holds its limit of {self.config.max_queued_samples} samples; "
                    f"chunk at seq {chunk.seq} ({len(chunk.samples)} samples) dropped unprocessed; "
                    "the stream restarts at its next chunk",
                ))
                continue
            if chunk.stream in self.shed_streams:  # lost a chunk: start afresh wherever it is
                self.shed_streams.discard(chunk.stream)
                chunk = replace(chunk, restart=True)
            self.queue.append(Arrival(chunk, t_recv, t_wall))
            self.queued_samples += n
        return count

    @property
    def can_filter(self) -> bool:
        """Queued samples wait, and the inference thread is not too far behind."""
        return bool(self.queue) and self.engine.n_pending < self.config.max_pending_windows

    def filter(self) -> None:
        """Run at most ``turn_samples`` queued samples through the engine; wake inference."""
        self.engine.reset_failed()
        batch: list[Arrival] = []
        budget = self.config.turn_samples
        while (
            self.queue
            and len(batch) < self.config.max_drain
            and (not batch or budget >= _cost(self.queue[0].chunk))
        ):
            arrival = self.queue.popleft()
            n = _cost(arrival.chunk)
            budget -= n
            self.queued_samples -= n
            batch.append(arrival)
        for begin in range(0, len(batch), SLICE_CHUNKS):  # in order: a stream's chunks stay in order
            part = batch[begin : begin + SLICE_CHUNKS]
            try:
                events = self.engine.ingest(part)
            except Exception as exc:  # the engine contains its own failures; this is a last resort
                self.failed("filtering a batch", exc)
                events = [ErrorEvent(sid, "internal", "filtering failed inside the engine; the "
                                     "chunk was dropped") for sid in dict.fromkeys(a.chunk.stream for a in part)]
            for event in events:
                self.publish_error(event)
            if self.engine.n_pending:
                self.inference.wake()  # the model starts on these while the rest is filtered

    def report(self) -> None:
        """Forget idle streams and have ``$stats`` published."""
        self.engine.drop_idle()
        self.inference.send(_StatsRequest(self.queued_samples))

    def publish_error(self, event: ErrorEvent) -> None:
        self.inference.send(encode_error(event.stream, event.code, event.detail))

    def failed(self, what: str, exc: BaseException) -> None:
        """Count and log a failure (tracebacks for the first few only); any thread."""
        with self._failure_lock:
            self.engine.counters.internal_errors += 1
            self.logged_failures += 1
            count = self.logged_failures
        if count <= 20:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
        elif count == 21:
            log.error("further failures are counted in $stats internal_errors, not logged")
        if self.inference.accepts_reports():
            self.inference.send(encode_error(
                None, "internal", f"{what} failed inside the engine ({type(exc).__name__}); serving goes on"
            ))

    # -- one turn ------------------------------------------------------------------------------

    def turn(self, next_stats: float) -> None:
        """One bounded turn: receive, filter (the inference thread classifies meanwhile)."""
        now = time.monotonic()
        hold_s = min(self.last_read + self.config.gather_ms / 1000, next_stats) - now  # $stats on time
        if hold_s > 0 and not self.can_filter:
            self._gather(hold_s)
            return
        if self.can_filter:
            wait_ms = 0.0
        elif self.queue:  # the inference thread is behind: let it catch up a little
            wait_ms = 1.0
        else:
            wait_ms = min(100.0, max(0.0, (next_stats - now) * 1000))
        if self.stage is None:
            if self.pull.poll(math.ceil(wait_ms)):
                self.last_read = time.monotonic()
                self.receive(self.config.max_drain)
            if self.can_filter:
                self.filter()
            return
        if self.stage.any_dead:
            wait_ms = min(wait_ms, 10.0)  # its restart is due at a time, not on a pipe
        elif self.stage.waiting_on_child:
            wait_ms = min(wait_ms, 100.0)  # a pipe wakes the poll; 100 ms bounds a lost wake-up
        if dict(self._poll(math.ceil(wait_ms))).get(self.pull):
            self.last_read = time.monotonic()
            self.receive(self.config.max_drain)
        self.stage.pump()
        if self.can_filter:
            self.filter()  # wakes the stage after each slice: new windows go to the model at once

    def _gather(self, hold_s: float) -> None:
        """Let arrivals gather in the socket for ``hold_s``; the models' answers are taken meanwhile."""
        if self.stage is None:
            time.sleep(hold_s)
            return
        fds = self.stage.filenos()
        if fds:
            zmq.select(fds, [], [], hold_s)  # poll(2): any fd number, unlike select.select
        else:
            time.sleep(hold_s)
        self.stage.pump()  # also starts a dead model's next child when its restart is due

    def _poll(self, timeout_ms: int) -> list[tuple[Any, int]]:
        """Poll the PULL socket and the models' pipes (rebuilt when a model's child changed)."""
        assert self.stage is not None
        fds = self.stage.filenos()
        if self._poller is None or self._poller[0] != fds:
            poller = zmq.Poller()
            poller.register(self.pull, zmq.POLLIN)
            for fd in fds:
                poller.register(fd, zmq.POLLIN)
            self._poller = (fds, poller)
        return self._poller[1].poll(timeout_ms)

    def flush(self, summary: ServeSummary) -> None:
        """After a stop: classify and publish what is held, within ``flush_s``; count the rest."""
        deadline = time.monotonic() + self.config.flush_s
        before = self.engine.counters.windows
        while self.queue and time.monotonic() < deadline:
            try:
                if self.can_filter:
                    self.filter()
                elif self.stage is not None:  # the model holds the windows: take its answer
                    self.stage.pump()
                    time.sleep(0.0005)
                else:
                    time.sleep(0.001)
            except Exception as exc:
                self.failed("flushing", exc)
        finished = self.inference.finish(deadline)
        summary.dropped_chunks = len(self.queue)
        summary.dropped_windows = self.inference.dropped_windows + self.engine.n_pending
        summary.flushed_windows = self.engine.counters.windows - before
        while summary.unread_messages < 1_000_000 and time.monotonic() < deadline + 0.5:
            try:
                self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:  # Again, or the context is gone
                break
            summary.unread_messages += 1
        if finished:  # the PUB socket is this thread's again
            self.pub.send_multipart(encode_stats(self.stats.report(time.monotonic(), self.queued_samples)))
        else:
            log.error("the inference thread is still busy after the flush deadline")


SLICE_CHUNKS = 256
"""A turn's chunks are filtered in slices of this many, the model handed new windows (and, with
``--model-process``, its answer taken) after each: a model never idles through a whole turn."""
MIN_CHUNK_COST = 64
"""Samples a chunk counts as, however short: filtering one costs about as much as 64 samples."""


def _cost(chunk: Chunk) -> int:
    return max(len(chunk.samples), MIN_CHUNK_COST)


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
    model: ModelProcess | Sequence[ModelProcess] | None = None,
) -> ServeSummary:
    """Run the engine on ZeroMQ sockets until ``stop`` is set; returns what happened.

    ``sockets`` are bound ones from :func:`bind` (bound here when None); they
    are closed on return. With ``model`` (the engine's model in a process of
    its own, or several) the serving thread submits batches to it and goes on
    while it computes; without, an inference thread calls ``engine.predict_proba``.
    """
    stop = stop or threading.Event()
    sockets = sockets or bind(config, context)
    if model is None:
        models: list[ModelProcess] = []
    else:
        models = list(model) if isinstance(model, (list, tuple)) else [cast("ModelProcess", model)]
    loop = _Loop(engine, config, sockets, models)
    summary = ServeSummary()
    previous_switch = sys.getswitchinterval()
    sys.setswitchinterval(config.switch_interval_ms / 1000)  # restored on return
    loop.stats.pauses.install()
    try:
        loop.inference.start()
        if on_ready is not None:
            on_ready()
        loop.report()  # the new engine id reaches subscribers at once
        next_stats = time.monotonic() + config.stats_interval_s
        while not stop.is_set():
            try:
                loop.turn(next_stats)
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + config.stats_interval_s
                    loop.report()
            except zmq.ContextTerminated:
                break
            except Exception as exc:  # never let one failure end serving for every stream
                loop.failed("a serving turn", exc)
        loop.flush(summary)
    finally:
        if loop.inference.alive:
            loop.inference.finish(time.monotonic())
        # A socket belongs to one thread: a still-busy inference thread closes the PUB socket itself.
        sockets.close(pub=loop.inference.hand_over_pub())
        sys.setswitchinterval(previous_switch)
        loop.stats.pauses.uninstall()
    counters = engine.counters
    summary.windows, summary.rejected = counters.windows, counters.rejected
    summary.shed, summary.internal_errors = counters.shed, counters.internal_errors
    return summary


__all__ = ["MAX_HEADER_BYTES", "ServeSummary", "ServerConfig", "Sockets", "bind", "serve"]
