"""The serving loop: bounded turns that read the ingest socket, filter, and feed the model stage.

Each turn of :meth:`Loop.turn`:

1. **wait** for input: right after a read, arrivals *gather* in the socket for ``gather_ms``
   (the model's answers are taken meanwhile); otherwise the PULL socket is polled, beside the
   model processes' pipes;
2. **receive**: take at most ``max_drain`` messages off the PULL socket, stamp each with its
   receipt time (monotonic and unix), decode and validate it, and append it to a bounded
   ingest queue. A message that would push the queue past ``max_queued_samples`` is *shed*:
   dropped unprocessed, reported as ``overloaded`` on ``$error`` and counted (into an empty
   queue any chunk goes, as its cost may pass the limit: a 20 Hz chunk costs 2.5 samples each);
3. **take the model's answers** (:meth:`~harstream.model.stage.ModelStage.pump`);
4. **filter**: run at most ``turn_samples`` queued samples through
   :class:`~harstream.engine.core.Engine` (oldest first), in slices of :data:`SLICE_CHUNKS`
   chunks, waking the model stage after each: it classifies the windows cut and publishes the
   predictions (:mod:`harstream.serve.stages`).

:func:`~harstream.serve.server.serve` runs the turns and has ``$stats`` published (:meth:`Loop.report`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import zmq

from harstream.engine.admission import chunk_cost
from harstream.engine.core import Engine
from harstream.engine.state import Arrival
from harstream.errors import ProtocolError
from harstream.model.process import ModelProcess
from harstream.model.stage import ModelStage
from harstream.protocol import STREAM_ID, Chunk, ErrorEvent, decode_chunk, encode_error
from harstream.serve.config import ServerConfig
from harstream.serve.security import sender_key
from harstream.serve.sockets import Sockets
from harstream.serve.stages import InferenceThread, ModelProcessStage, Outgoing, Publisher, StatsRequest
from harstream.serve.stats import ServeSummary, Stats

log = logging.getLogger("harstream.serve.loop")

SLICE_CHUNKS = 256
"""A turn's chunks are filtered in slices of this many, the model handed new windows (and, with
``--model-process``, its answer taken) after each: a model never idles through a whole turn."""
MIN_CHUNK_COST = 64
"""Samples a chunk counts as, however short: filtering one costs about as much as 64 samples."""
MAX_LOGGED_FAILURES = 20
"""Failures logged with their traceback; later ones are only counted (``internal_errors``)."""


class Loop:
    """The serving loop's state: the PULL socket, the engine, the ingest queue and the model stage."""

    def __init__(self, engine: Engine, config: ServerConfig, sockets: Sockets,
                 models: Sequence[ModelProcess] = ()) -> None:
        self.engine = engine
        self.config = config
        self.pull = sockets.pull
        self.secure = sockets.secure
        self.queue: deque[Arrival] = deque()
        self.queued_samples = 0
        """Samples in the queue, each chunk counted as at least :data:`MIN_CHUNK_COST` samples."""
        self.shed_streams: set[str] = set()
        """Streams that lost a chunk to shedding: their next chunk restarts them."""
        self.stats = Stats(engine, config)
        self.publisher = Publisher(engine, sockets.pub, self.stats, self.failed)
        self.stage: ModelStage[Outgoing] = (
            ModelProcessStage(engine, self.publisher, config.max_batch, models) if models
            else InferenceThread(engine, self.publisher, config.max_batch, self.failed))
        """Classifies and publishes: model processes driven by the turns, or an inference thread."""
        self._poller: tuple[list[int], zmq.Poller] | None = None
        self.last_read = 0.0
        """When the ingest socket was last read (monotonic; ``gather_ms`` counts from it)."""
        self.logged_failures = 0
        self._failure_lock = threading.Lock()

    def wait_ready(self, stop: threading.Event) -> bool:
        """Wait until input can come; bound sockets need nothing (join mode waits for the router)."""
        return True

    # -- one turn ------------------------------------------------------------------------------

    def turn(self, next_stats: float) -> None:
        """One bounded turn: wait for input (or gather it), receive, take the model's answers, filter."""
        now = time.monotonic()
        hold_s = min(self.last_read + self.config.gather_ms / 1000, next_stats) - now  # $stats on time
        if hold_s > 0 and not self.can_filter:
            self._take_answers_for(hold_s)
            return
        self.stats.stalls.looking()
        ready = self._input_within(self._wait_ms(now, next_stats))
        self.stats.stalls.looked()
        if ready:
            self.last_read = time.monotonic()
            self.receive(self.config.max_drain)
        self.stage.pump()
        if self.can_filter:
            self.filter()  # wakes the stage after each slice: new windows go to the model at once

    def _wait_ms(self, now: float, next_stats: float) -> int:
        """How long this turn may wait for input."""
        if self.can_filter:
            wait_ms = 0.0
        elif self.queue:  # the model stage is behind: let it catch up a little
            wait_ms = 1.0
        else:
            wait_ms = min(100.0, max(0.0, (next_stats - now) * 1000))
        return math.ceil(min(wait_ms, self.stage.longest_wait_ms()))

    def _input_within(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for input on the PULL socket, woken early by the stage's pipes."""
        fds = self.stage.filenos()
        if not fds:
            return bool(self.pull.poll(timeout_ms))
        if self._poller is None or self._poller[0] != fds:  # rebuilt when a model's child changed
            poller = zmq.Poller()
            poller.register(self.pull, zmq.POLLIN)
            for fd in fds:
                poller.register(fd, zmq.POLLIN)
            self._poller = (fds, poller)
        return bool(dict(self._poller[1].poll(timeout_ms)).get(self.pull))

    def _take_answers_for(self, hold_s: float) -> None:
        """Let arrivals gather in the socket for ``hold_s``; the model's answers are taken meanwhile."""
        fds = self.stage.filenos()
        if fds:
            zmq.select(fds, [], [], hold_s)  # poll(2): any fd number, unlike select.select
        else:
            time.sleep(hold_s)
        self.stage.pump()  # also starts a dead model's next child when its restart is due

    # -- the steps -----------------------------------------------------------------------------

    def receive(self, limit: int) -> int:
        """Take up to ``limit`` messages off the socket into the queue; returns how many."""
        engine = self.engine
        # per message: bound once here, not looked up on each of the thousands a turn may take
        recv, clock, wall_clock = self.pull.recv_multipart, engine.clock, engine.wall_clock
        count = 0
        copy = not self.secure
        for _ in range(limit):
            try:
                frames: list[Any] = recv(zmq.NOBLOCK, copy=copy)
            except zmq.Again:
                break
            count += 1
            t_recv, t_wall = clock(), wall_clock()
            try:
                chunk = decode_chunk(frames)
            except ProtocolError as exc:
                engine.counters.rejected += 1
                self.publish_error(ErrorEvent(_stream_of(frames), exc.code, exc.detail))
                continue
            if self.secure:
                chunk = _with_owner(chunk, frames[0])
            self.admit(chunk, t_recv, t_wall)
        return count

    def admit(self, chunk: Chunk, t_recv: float, t_wall: float) -> None:
        """Queue ``chunk`` received at ``t_recv`` (engine clock) and ``t_wall`` (unix), or shed it
        when the queue holds its limit; a stream that lost a chunk restarts at its next one."""
        n = _cost(chunk)
        if self.queue and self.queued_samples + n > self.config.max_queued_samples:
            self._shed(chunk)
            return
        shed_streams = self.shed_streams
        if shed_streams and chunk.stream in shed_streams:  # lost a chunk: start afresh wherever it is
            shed_streams.discard(chunk.stream)
            chunk = replace(chunk, restart=True)
        self.queue.append(Arrival(chunk, t_recv, t_wall))
        self.queued_samples += n

    def _shed(self, chunk: Chunk) -> None:
        """Drop ``chunk`` unprocessed (the queue is full), report it; its stream restarts at its next chunk."""
        self.engine.counters.shed += 1
        self.shed_streams.add(chunk.stream)
        self.publish_error(ErrorEvent(
            chunk.stream, "overloaded",
            f"the ingest queue holds its limit of {self.config.max_queued_samples} samples; "
            f"chunk at seq {chunk.seq} ({len(chunk.samples)} samples) dropped unprocessed; "
            "the stream restarts at its next chunk",
        ))

    @property
    def can_filter(self) -> bool:
        """Queued samples wait, and the model stage is not too far behind."""
        return bool(self.queue) and self.engine.n_pending < self.config.max_pending_windows

    def filter(self) -> None:
        """Run at most ``turn_samples`` queued samples through the engine; wake the model stage."""
        self.engine.reset_failed()
        batch: list[Arrival] = []
        queue = self.queue
        budget = self.config.turn_samples
        limit = self.config.max_drain
        while queue and len(batch) < limit:
            n = _cost(queue[0].chunk)  # once per chunk: a timed chunk's cost is numpy work
            if batch and budget < n:
                break
            budget -= n
            self.queued_samples -= n
            batch.append(queue.popleft())
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
                self.stage.wake()  # the model starts on these while the rest is filtered

    def report(self) -> None:
        """Forget idle streams and have ``$stats`` published."""
        self.engine.drop_idle()
        self.stage.send(StatsRequest(self.queued_samples))

    def publish_error(self, event: ErrorEvent) -> None:
        self.stage.send(encode_error(event.stream, event.code, event.detail))

    def failed(self, what: str, exc: BaseException) -> None:
        """Count and log a failure (tracebacks for the first few only); any thread."""
        with self._failure_lock:
            self.engine.counters.internal_errors += 1
            self.logged_failures += 1
            count = self.logged_failures
        if count <= MAX_LOGGED_FAILURES:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
        elif count == MAX_LOGGED_FAILURES + 1:
            log.error("further failures are counted in $stats internal_errors, not logged")
        if self.stage.accepts_reports():
            self.stage.send(encode_error(
                None, "internal", f"{what} failed inside the engine ({type(exc).__name__}); serving goes on"
            ))

    # -- the stop ------------------------------------------------------------------------------

    def flush(self, summary: ServeSummary) -> None:
        """After a stop: classify and publish what is held, within ``flush_s``; count the rest."""
        deadline = time.monotonic() + self.config.flush_s
        before = self.engine.counters.windows
        while self.queue and time.monotonic() < deadline:
            try:
                if self.can_filter:
                    self.filter()
                else:  # the model holds the windows: take its answers
                    self.stage.pump()
                    time.sleep(0.0005)
            except Exception as exc:
                self.failed("flushing", exc)
        finished = self.stage.finish(deadline)
        summary.dropped_chunks = len(self.queue)
        summary.dropped_windows = self.stage.dropped_windows + self.engine.n_pending
        summary.flushed_windows = self.engine.counters.windows - before
        self._count_unread(summary, deadline + 0.5)
        if finished:  # the PUB socket is this thread's again
            self.publisher.item(StatsRequest(self.queued_samples))
        else:
            log.error("the inference thread is still busy after the flush deadline")

    def _count_unread(self, summary: ServeSummary, deadline: float) -> None:
        """Read and count the messages left in the socket at the stop (until ``deadline``)."""
        while summary.unread_messages < 1_000_000 and time.monotonic() < deadline:
            try:
                self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:  # Again, or the context is gone
                break
            summary.unread_messages += 1


def _cost(chunk: Chunk) -> int:
    """Samples ``chunk`` counts as in the queue and the turn's budget: what the engine's work on it
    can produce (:func:`~harstream.engine.admission.chunk_cost`), at least :data:`MIN_CHUNK_COST`."""
    n = chunk_cost(chunk)
    return n if n > MIN_CHUNK_COST else MIN_CHUNK_COST


def _stream_of(frames: list[Any]) -> str | None:
    """The stream id a rejected message names, when it is a valid one (for its ``$error``)."""
    try:
        sid = bytes(frames[0]).decode("utf-8")
    except (IndexError, TypeError, UnicodeDecodeError):
        return None
    return sid if STREAM_ID.fullmatch(sid) else None


def _with_owner(chunk: Chunk, frame: zmq.Frame) -> Chunk:
    """``chunk`` owned by the CURVE public key (z85) that sent ``frame``."""
    return replace(chunk, owner=sender_key(frame))


__all__ = ["MIN_CHUNK_COST", "SLICE_CHUNKS", "Loop"]
