"""The engine's core, without sockets: chunks in, windows queued for the model, predictions out.

Chunks of many streams go in (:meth:`Engine.ingest`): each is admitted to its stream
(:mod:`~harstream.engine.admission`), put on the 50 Hz grid if it needs resampling
(:mod:`~harstream.engine.grid`), and filtered through its stream's signal chain, vectorised
with every other stream that sent a chunk of the same length in the same round
(:mod:`~harstream.engine.ordering`); completed windows queue up. :meth:`Engine.take_pending`
hands them out and :meth:`Engine.classify_pending` runs the model once over them and returns one
:class:`~harstream.protocol.Prediction` per window, smoothed per stream
(:mod:`~harstream.engine.predictions`); the model may run elsewhere (another thread, another
process), its output handed to :meth:`Engine.predictions_of`. :mod:`harstream.serve` wraps
the engine in ZeroMQ sockets; tests drive it directly.

Nothing one message, one stream or one model call does can break the engine for the others:
sequence, ownership and capacity problems come back as :class:`~harstream.protocol.ErrorEvent`,
and an exception raised while resampling, filtering or classifying a group of streams is
caught, reported as ``internal`` for exactly those streams (which restart with their next
chunk) and counted. Durations use a monotonic clock, so a stepping wall clock never gives a
negative latency.

>>> import numpy as np
>>> uniform = lambda w: np.full((len(w), 2), 0.5, np.float32)
>>> engine = Engine(uniform, ["A", "B"], max_streams=1)
>>> x = np.zeros((128, 6), np.float32)
>>> engine.ingest([Chunk("a", 0, 50, None, x), Chunk("b", 0, 50, None, x)])[0].code
'too_many_streams'
>>> [(p.stream, p.seq_end) for p in engine.classify_pending(engine.take_pending())]
[('a', 127)]
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import cast

import numpy as np
import numpy.typing as npt

from harstream import SAMPLE_RATE_HZ
from harstream.engine import grid, predictions
from harstream.engine.admission import DEFAULT_MAX_STREAMS, StreamTable
from harstream.engine.ordering import rounds
from harstream.engine.state import Arrival, EngineCounters, PendingWindow, Stream, stack_windows
from harstream.protocol import Chunk, ErrorEvent, Prediction
from harstream.signal import chain, resample
from harstream.signal.smoothing import ForwardFilter

ProbaFn = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]

log = logging.getLogger("harstream.engine.core")


class Engine:
    """Per-stream chain state and ring buffers, batched classification, smoothing.

    ``predict_proba`` maps windows (n, 128, 9) to class probabilities (n, k);
    ``labels`` names the k classes. ``clock`` is monotonic (idle timeout,
    latencies); ``wall_clock`` gives the unix times published. Every engine
    has a fresh :attr:`id`, published with its output, so subscribers see a
    restart.
    """

    def __init__(
        self,
        predict_proba: ProbaFn,
        labels: Iterable[str],
        smoother: ForwardFilter | None = None,
        idle_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_streams: int = DEFAULT_MAX_STREAMS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.predict_proba = predict_proba
        self.labels = tuple(labels)
        self.smoother = smoother or ForwardFilter(classes=len(self.labels))
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.counters = EngineCounters()
        self.streams = StreamTable(max_streams, self.smoother, self.counters)
        """The streams held, their admission and their chain state rows."""
        self.max_streams = max_streams
        self.id = uuid.uuid4().hex[:12]
        """This engine run's id: new at every start."""
        self.started = wall_clock()
        """Unix time this engine run started."""
        self._pending: deque[PendingWindow] = deque()
        self._errors: list[ErrorEvent] = []
        self._failed: deque[tuple[str, Stream]] = deque()

    @property
    def n_streams(self) -> int:
        """Streams with live state."""
        return len(self.streams)

    @property
    def n_pending(self) -> int:
        """Windows waiting for the model (:meth:`take_pending`)."""
        return len(self._pending)

    def drop_idle(self) -> list[str]:
        """Forget streams silent for longer than ``idle_timeout_s``; returns their ids."""
        return self.streams.drop_idle(self.clock() - self.idle_timeout_s)

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self, chunks: Iterable[Chunk | Arrival], t_arrival: float | None = None
    ) -> list[ErrorEvent]:
        """Run decoded chunks through their streams' chains and ring buffers.

        Items are chunks (received now, or at unix time ``t_arrival``) or
        :class:`~harstream.engine.state.Arrival` records. A stream's chunks are applied in order;
        chunks of different streams with equal length are filtered in one
        vectorised call. Returns the problems found: ``seq_gap`` (the stream
        restarted at the new seq), ``seq_replay``, ``not_owner``, ``too_many_streams``,
        ``times`` and ``seq`` (the chunk was dropped), ``internal`` (it failed inside the
        engine; the stream restarts with its next chunk).
        """
        now = self.clock()
        wall = self.wall_clock() if t_arrival is None else t_arrival
        errors: list[ErrorEvent] = []
        arrivals = [item if isinstance(item, Arrival) else Arrival(item, now, wall) for item in chunks]
        for batch in rounds(arrivals, [a.chunk.stream for a in arrivals]):
            accepted = [a for a in batch if self._admit_safely(a.chunk, now, errors)]
            by_length: dict[int, list[Arrival]] = defaultdict(list)
            for a in self._on_grid(accepted, errors):
                by_length[len(a.chunk.samples)].append(a)
            for group in by_length.values():
                self._filter_group(group, now, errors)
        return errors

    def _admit_safely(self, chunk: Chunk, now: float, errors: list[ErrorEvent]) -> bool:
        try:
            return self.streams.admit(chunk, now, errors)
        except Exception as exc:
            self._fail([chunk.stream], "opening the stream", exc, errors)
            return False

    def _on_grid(self, accepted: list[Arrival], errors: list[ErrorEvent]) -> list[Arrival]:
        """The accepted chunks to filter together, by length: 50 Hz chunks as they are, resampled
        ones as :func:`~harstream.engine.grid.onto_grid` gives them. A chunk that dropouts split is
        filtered here, run by run in order. Timestamps the resampler refuses reject the chunk
        (``times``) with its stream as it was; any other failure of the resampler is that
        stream's alone (``internal``)."""
        out: list[Arrival] = []
        for a in accepted:
            c = a.chunk
            stream = self.streams.get(c.stream)
            if stream is None or stream.resampler is None:
                out.append(a)
                continue
            try:
                runs, dropouts = grid.onto_grid(stream, a)
            except resample.ResampleError as exc:
                self.streams.reject(errors, c, exc.field, exc.detail)
                continue
            except Exception as exc:  # one stream's failure must not reach the others of the slice
                self._fail([c.stream], "resampling", exc, errors)
                continue
            if dropouts is None:
                if runs:  # filtered with the others of its length
                    grid.begin_run(stream, runs[0].chunk, self.streams.rows)
                    out.append(runs[0])
                else:  # no grid point reached yet
                    self.counters.chunks += 1
                continue
            errors.append(dropouts)
            for run in runs:
                grid.begin_run(stream, run.chunk, self.streams.rows)
                if len(run.chunk.samples):
                    self._filter_group([run], self.clock(), errors, count=False)
                if stream.forgotten:
                    break
            else:
                self.counters.chunks += 1
        return out

    def _filter_group(self, group: list[Arrival], now: float, errors: list[ErrorEvent],
                      count: bool = True) -> None:
        """Filter chunks of equal length of different streams in one vectorised call; cut windows."""
        streams, rows = self.streams.streams, self.streams.rows
        try:
            indices = [streams[a.chunk.stream].row for a in group]
            samples = np.stack([a.chunk.samples for a in group])
            out, state = chain.process(samples, rows.state.take(indices))
            rows.state.put(indices, state)
        except Exception as exc:  # one group's failure must not stop the others
            self._fail([a.chunk.stream for a in group], "filtering", exc, errors)
            return
        # Finite float32 input can still overflow the filters (|x| near 3e38): that stream alone fails.
        finite = cast("npt.NDArray[np.bool_]", np.isfinite(out).all(axis=(1, 2)))
        for a, channels, ok in zip(group, out, [bool(f) for f in finite], strict=True):
            c = a.chunk
            if not ok:
                self._fail([c.stream], "filtering", ValueError("non-finite filter output"), errors)
                continue
            try:
                stream = streams[c.stream]
                ready = stream.ring.push(channels)
                for seq_end, window in zip(ready.seq_ends.tolist(), ready.windows, strict=True):
                    t_sample = None if c.t0 is None else c.t0 + (seq_end - c.seq) / SAMPLE_RATE_HZ
                    self._pending.append(
                        PendingWindow(c.stream, stream, seq_end, window, a.t_recv, a.t_wall, t_sample)
                    )
            except Exception as exc:
                self._fail([c.stream], "windowing", exc, errors)
                continue
            self.counters.chunks += count

    def _fail(self, streams: list[str], stage: str, exc: Exception, errors: list[ErrorEvent]) -> None:
        """Report ``internal`` for ``streams`` and forget them (on the ingesting thread)."""
        errors.extend(self._internal(streams, stage, exc))
        for sid in dict.fromkeys(streams):
            self.streams.forget(sid)

    def _internal(self, streams: list[str], stage: str, exc: Exception) -> list[ErrorEvent]:
        """Count and log a failure inside the engine; the ``internal`` events of ``streams``."""
        self.counters.internal_errors += 1
        log.error("%s failed for %d stream(s): %s: %s", stage, len(streams), type(exc).__name__,
                  exc, exc_info=exc)
        unique = list(dict.fromkeys(streams))
        detail = (f"{stage} failed inside the engine ({type(exc).__name__}); this stream's pending "
                  "windows were dropped and it restarts with its next chunk")
        return [ErrorEvent(sid, "internal", detail) for sid in unique]

    # -- classify --------------------------------------------------------------------------

    def take_pending(self, limit: int | None = None) -> list[PendingWindow]:
        """Remove and return the queued windows (the oldest ``limit``, or all)."""
        queue = self._pending  # a deque: appended by ingest, taken here, safe across threads
        count = min(len(queue), len(queue) if limit is None else max(1, limit))
        return [queue.popleft() for _ in range(count)]

    def classify_pending(self, pending: list[PendingWindow]) -> list[Prediction]:
        """Classify windows taken with :meth:`take_pending` in one model call; safe on another thread.

        Predictions are smoothed per stream, in order. If the model call fails or returns
        something other than finite probabilities, the windows are dropped and ``internal``
        events wait in :meth:`take_errors`. It reads the stream table but never changes it:
        streams whose windows failed are reset by :meth:`reset_failed` on the thread that ingests.
        """
        if not pending:
            return []
        try:
            probs = self.predict_proba(stack_windows(pending))
        except Exception as exc:
            self.classification_failed(pending, exc)
            return []
        return self.predictions_of(pending, probs)

    def predictions_of(self, pending: list[PendingWindow], probs: npt.ArrayLike) -> list[Prediction]:
        """The predictions of ``pending`` from the model's ``probs`` for :func:`stack_windows` of them
        (computed anywhere: another thread, another process); smoothed, counted. A wrong shape fails
        them all, a row that is no probability its stream alone."""
        if not pending:
            return []
        try:
            probs = np.asarray(probs)
            if probs.shape != (len(pending), len(self.labels)):
                raise ValueError(f"expected probabilities of shape {(len(pending), len(self.labels))}, "
                                 f"got {probs.shape}")
        except Exception as exc:
            self.classification_failed(pending, exc)
            return []
        valid = predictions.valid_rows(probs)
        bad = [p for p, ok in zip(pending, valid, strict=True) if not ok]
        if bad:
            self.classification_failed(bad, ValueError("probabilities outside [0, 1] or NaN"))
        failed = {id(p.state) for p in bad}
        live = [i for i, item in enumerate(pending)
                if not item.state.forgotten and id(item.state) not in failed]
        windows, live_probs = [pending[i] for i in live], probs[live]
        beliefs = predictions.smooth(self.smoother, [p.state for p in windows], live_probs)
        return predictions.predictions(windows, live_probs, beliefs, self.labels, self.id, self.clock(),
                                       self.wall_clock(), self.counters)

    def classification_failed(self, pending: list[PendingWindow], exc: Exception) -> None:
        """The model call for ``pending`` failed (``exc``): their windows are dropped and ``internal``
        events wait in :meth:`take_errors`; their streams restart (:meth:`reset_failed`)."""
        self._errors.extend(self._internal([p.stream for p in pending], "classification", exc))
        self._failed.extend((p.stream, p.state) for p in pending)

    def reset_failed(self) -> None:
        """Forget the streams whose windows failed to classify (unless restarted since)."""
        while self._failed:
            sid, state = self._failed.popleft()
            if self.streams.get(sid) is state:
                self.streams.forget(sid)

    def take_errors(self) -> list[ErrorEvent]:
        """``internal`` events from classification since the last call, and reset them."""
        errors, self._errors = self._errors, []
        return errors

    def take_latencies(self) -> list[float]:
        """Latencies (ms) recorded since the last call, and reset them."""
        values, self.counters.latencies_ms = self.counters.latencies_ms, []
        return values

    def take_ages(self) -> list[float]:
        """Sample ages (ms) recorded since the last call, and reset them."""
        values, self.counters.ages_ms = self.counters.ages_ms, []
        return values


__all__ = ["Engine", "ProbaFn"]
