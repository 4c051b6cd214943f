"""The engine's core, without sockets: per-stream state, batching, smoothing.

Chunks of many streams go in (:meth:`Engine.ingest`); each stream's signal
chain runs vectorised with every other stream that sent a chunk of the same
length in the same batch; completed windows queue up; :meth:`Engine.classify`
runs the model once over every queued window of every stream and returns one
:class:`~harstream.protocol.Prediction` per window, smoothed per stream.
:mod:`harstream.serve.server` wraps it in ZeroMQ sockets; tests drive it directly.

Nothing one message, one stream or one model call does can break the engine
for the others: sequence, ownership and capacity problems come back as
:class:`~harstream.protocol.ErrorEvent`, and an exception raised while
filtering or classifying a group of streams is caught, reported as
``internal`` for exactly those streams (which restart with their next chunk)
and counted. Durations use a monotonic clock, so a stepping wall clock never
gives a negative latency.

>>> import numpy as np
>>> uniform = lambda w: np.full((len(w), 2), 0.5, np.float32)
>>> engine = Engine(uniform, ["A", "B"], max_streams=1)
>>> x = np.zeros((128, 6), np.float32)
>>> engine.ingest([Chunk("a", 0, 50, None, x), Chunk("b", 0, 50, None, x)])[0].code
'too_many_streams'
>>> [(p.stream, p.seq_end) for p in engine.classify()]
[('a', 127)]
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import numpy as np
import numpy.typing as npt

from harstream import SAMPLE_RATE_HZ
from harstream.protocol import Chunk, ErrorEvent, Prediction
from harstream.signal import chain, resample
from harstream.signal.chain import CHANNELS, ChainState
from harstream.signal.smoothing import ForwardFilter
from harstream.signal.windows import RingBuffer, window_ends

ProbaFn = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]

log = logging.getLogger("harstream.engine.core")

DEFAULT_MAX_STREAMS = 10_000
"""Streams the engine holds at once unless told otherwise (about 12 KB of state each)."""
MAX_LATENCY_SAMPLES = 100_000
"""Latency samples kept between two :meth:`Engine.take_latencies` calls."""
DROPOUT_COST = 64
"""Samples a dropout in a chunk's timestamps counts as in :func:`chunk_cost`: the stream's filters
and windows restart there, about the work of filtering 64 samples."""


def chunk_cost(chunk: Chunk, max_gap_s: float = resample.DEFAULT_MAX_GAP_S) -> int:
    """Samples' worth of work ``chunk`` can make the engine do (the serving loop's budgets count it).

    Its own samples, or the samples its resampling produces if more: on the 50 Hz grid, or at
    the stream's rate when a timed stream is faster (the resampler first puts it on a uniform
    grid at its rate); plus :data:`DROPOUT_COST` for each pause longer than ``max_gap_s``
    between its timestamps (not interpolated across: nothing is produced there).

    >>> x = np.zeros((100, 6), np.float32)
    >>> chunk_cost(Chunk("a", 0, 50, None, x)), chunk_cost(Chunk("a", 0, 20, None, x))
    (100, 250)
    >>> chunk_cost(Chunk("a", 0, 20, None, x, times=np.arange(100) * 0.11))  # 99 pauses
    6437
    """
    n = len(chunk.samples)
    if chunk.times is None:
        return max(n, math.ceil(n * SAMPLE_RATE_HZ / chunk.rate))
    with np.errstate(over="ignore", invalid="ignore"):
        steps = np.diff(chunk.times)
    short = steps <= max_gap_s
    pauses = len(steps) - int(np.count_nonzero(short))
    # each stretch between pauses reaches one grid point more than its length covers, and the
    # step from the previous chunk's last sample one more
    produced = math.ceil(float(steps[short].sum()) * max(chunk.rate, SAMPLE_RATE_HZ)) + pauses + 2
    return max(n, produced) + DROPOUT_COST * pauses


def _dropouts(stream: str, gaps: Sequence[resample.Gap], max_gap_s: float) -> ErrorEvent:
    """The one ``seq_gap`` reporting a chunk's dropouts (``gaps``, at least one)."""
    last = gaps[-1]
    if len(gaps) == 1:
        return ErrorEvent(stream, "seq_gap", f"no sample for {last.seconds:.3f} s in the timestamps (more than "
                                             f"{max_gap_s:g} s): the stream restarts at index {last.resume}")
    seconds = [g.seconds for g in gaps]
    return ErrorEvent(stream, "seq_gap", (
        f"{len(gaps)} pauses in the timestamps longer than {max_gap_s:g} s ({min(seconds):.3f} to "
        f"{max(seconds):.3f} s): the stream restarts after each, the last time at index {last.resume}"))


class Arrival(NamedTuple):
    """A decoded chunk with what the server knows about its receipt."""

    chunk: Chunk
    """The chunk."""
    t_recv: float
    """Receipt time on the engine's monotonic clock (for latencies)."""
    t_wall: float
    """Receipt time as unix time (published as ``t_arrival``)."""


def _same_kind(stream: _Stream, chunk: Chunk) -> bool:
    """The chunk continues the stream's rate and timing (else the stream restarts)."""
    if stream.resampler is None:
        return chunk.native
    return chunk.rate == stream.resampler.rate_hz and (chunk.times is not None) == stream.resampler.timed


@dataclass
class _Stream:
    row: int
    ring: RingBuffer
    belief: npt.NDArray[np.float64]
    last_seen: float
    owner: str | None
    windows: int = 0
    resampler: resample.ResampleState | None = None
    """Streams at another rate or with timestamps: their resampler onto the 50 Hz grid."""
    input_next: int = 0
    """Resampled streams: the input index (at the stream's own rate) the next chunk must have."""
    t_origin: float | None = None
    """Timed streams: the producer-clock time of input index 0 (keeps indices on one grid)."""
    forgotten: bool = False
    """Set when the engine forgets the stream: its windows still waiting are dropped."""
    reseed: bool = False
    """A dropout restarted the stream: its filters start again at the next row it gets."""


@dataclass
class PendingWindow:
    """A window cut and waiting for the model (:meth:`Engine.take_pending`), with where it came from."""

    stream: str
    state: _Stream
    """The stream as it was when the window was cut (a restart makes a new one)."""
    seq_end: int
    window: npt.NDArray[np.float32]
    t_recv: float
    t_wall: float
    t_sample: float | None
    """Producer-clock unix time of the window's last sample (from the chunk's t0), if known."""


def stack_windows(pending: Sequence[PendingWindow]) -> npt.NDArray[np.float32]:
    """The windows of ``pending`` as one model input (n, 128, 9)."""
    return np.stack([p.window for p in pending])


@dataclass
class EngineCounters:
    """Totals since the engine started."""

    chunks: int = 0
    """Chunks accepted."""
    windows: int = 0
    """Windows classified."""
    rejected: int = 0
    """Messages rejected (each reported as an :class:`ErrorEvent`)."""
    shed: int = 0
    """Chunks dropped unprocessed because the server's ingest queue was full."""
    internal_errors: int = 0
    """Failures inside the engine (each reported as ``internal`` for the streams it hit)."""
    latencies_ms: list[float] = field(default_factory=list)
    """Receipt-to-publication latencies since the last :meth:`Engine.take_latencies`."""
    ages_ms: list[float] = field(default_factory=list)
    """Ages of windows' last samples at publication (streams sending ``t0``), same period."""


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
        if max_streams < 1:
            raise ValueError(f"max_streams: expected at least 1, got {max_streams}")
        self.predict_proba = predict_proba
        self.labels = tuple(labels)
        self.smoother = smoother or ForwardFilter(classes=len(self.labels))
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_streams = max_streams
        self.id = uuid.uuid4().hex[:12]
        """This engine run's id: new at every start."""
        self.started = wall_clock()
        """Unix time this engine run started."""
        self.counters = EngineCounters()
        self._streams: dict[str, _Stream] = {}
        self._free_rows: list[int] = []
        self._state = chain.initial_state(np.zeros((0, 6)))
        self._pending: deque[PendingWindow] = deque()
        self._errors: list[ErrorEvent] = []
        self._failed: deque[tuple[str, _Stream]] = deque()

    # -- streams ---------------------------------------------------------------------------

    @property
    def n_streams(self) -> int:
        """Streams with live state."""
        return len(self._streams)

    @property
    def n_pending(self) -> int:
        """Windows waiting for :meth:`classify`."""
        return len(self._pending)

    def _allocate_row(self) -> int:
        if not self._free_rows:
            old = len(self._state.history)
            grow = min(max(16, old), self.max_streams - old) or 1
            extra = chain.initial_state(np.zeros((grow, 6)))
            self._state = ChainState(
                np.concatenate([self._state.history, extra.history]),
                np.concatenate([self._state.noise_zi, extra.noise_zi], axis=1),
                np.concatenate([self._state.gravity_zi, extra.gravity_zi], axis=1),
            )
            self._free_rows.extend(range(old + grow - 1, old - 1, -1))
        return self._free_rows.pop()

    def _start_stream(self, chunk: Chunk, now: float, origin: float | None) -> _Stream:
        """A fresh run of ``chunk``'s stream at ``chunk.seq`` (a timed one on the grid of ``origin``)."""
        old = self._streams.get(chunk.stream)
        row = old.row if old is not None else self._allocate_row()
        self._state.put([row], chain.initial_state(chunk.samples[:1]))
        resampler = None
        if not chunk.native:
            resampler = resample.start(chunk.rate, seq=chunk.seq,
                                       origin=origin if chunk.times is not None else None)
        first = chunk.seq if resampler is None else resampler.next_index
        stream = _Stream(
            row=row,
            ring=RingBuffer(channels=len(CHANNELS), first_index=first if first is not None else 0),
            belief=self.smoother.initial(1)[0],
            last_seen=now,
            owner=chunk.owner,
            windows=old.windows if old is not None else 0,
            resampler=resampler,
            input_next=chunk.seq,
            t_origin=origin if chunk.times is not None else None,
        )
        self._streams[chunk.stream] = stream
        return stream

    def _forget(self, sid: str) -> None:
        stream = self._streams.pop(sid, None)
        if stream is not None:
            stream.forgotten = True
            self._free_rows.append(stream.row)

    def drop_idle(self) -> list[str]:
        """Forget streams silent for longer than ``idle_timeout_s``; returns their ids."""
        limit = self.clock() - self.idle_timeout_s
        gone = [sid for sid, s in self._streams.items() if s.last_seen < limit]
        for sid in gone:
            self._forget(sid)
        return gone

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self, chunks: Iterable[Chunk | Arrival], t_arrival: float | None = None
    ) -> list[ErrorEvent]:
        """Run decoded chunks through their streams' chains and ring buffers.

        Items are chunks (received now, or at unix time ``t_arrival``) or
        :class:`Arrival` records. A stream's chunks are applied in order;
        chunks of different streams with equal length are filtered in one
        vectorised call. Returns the problems found: ``seq_gap`` (the stream
        restarted at the new seq), ``seq_replay``, ``not_owner`` and
        ``too_many_streams`` (the chunk was dropped), ``internal`` (filtering
        failed; the stream restarts with its next chunk).
        """
        now = self.clock()
        wall = self.wall_clock() if t_arrival is None else t_arrival
        errors: list[ErrorEvent] = []
        rounds: list[list[Arrival]] = []
        depth: dict[str, int] = defaultdict(int)
        for item in chunks:
            arrival = item if isinstance(item, Arrival) else Arrival(item, now, wall)
            sid = arrival.chunk.stream
            level = depth[sid]
            depth[sid] += 1
            if level == len(rounds):
                rounds.append([])
            rounds[level].append(arrival)
        for batch in rounds:
            accepted = [a for a in batch if self._admit_safely(a.chunk, now, errors)]
            by_length: dict[int, list[Arrival]] = defaultdict(list)
            for a in self._on_grid(accepted, errors):
                by_length[len(a.chunk.samples)].append(a)
            for group in by_length.values():
                self._filter_group(group, now, errors)
        return errors

    def _on_grid(self, accepted: list[Arrival], errors: list[ErrorEvent]) -> list[Arrival]:
        """The accepted chunks as 50 Hz chunks: resampled streams go through their resampler.

        A resampled chunk becomes a chunk of its 50 Hz rows (``seq`` = the 50 Hz index of the
        first). Dropouts longer than the resampler's ``max_gap_s`` restart the stream where
        output resumes, reported by one ``seq_gap`` for the chunk (:meth:`_filter_runs`).
        Timestamps going back, or too far from the origin, are rejected (``times``) with the
        stream as it was; any other failure of the resampler is that stream's alone (``internal``).
        """
        out: list[Arrival] = []
        for a in accepted:
            c = a.chunk
            stream = self._streams.get(c.stream)
            if stream is None or stream.resampler is None:
                out.append(a)
                continue
            try:
                result = resample.resample(stream.resampler, c.samples, c.times)
            except resample.ResampleError as exc:
                self._reject(errors, c, exc.field, exc.detail)
                continue
            except Exception as exc:  # one stream's failure must not reach the others of the slice
                self._fail([c.stream], "resampling", exc, errors)
                continue
            stream.resampler = result.state
            stream.input_next = c.seq + len(c.samples)
            runs = result.runs()
            if len(runs) == 1:  # filtered with the others of its length
                if len(runs[0][1]):
                    out.append(self._run_arrival(a, stream, *runs[0]))
                else:  # no grid point reached yet
                    self.counters.chunks += 1
                continue
            errors.append(_dropouts(c.stream, result.gaps, stream.resampler.max_gap_s))
            self._filter_runs(a, stream, runs, errors)
        return out

    def _filter_runs(self, a: Arrival, stream: _Stream, runs: list[tuple[int, npt.NDArray[np.float32]]],
                     errors: list[ErrorEvent]) -> None:
        """A chunk with dropouts, run by run in order: each run after a dropout restarts the stream's
        filters and windows at its first index. A run the next dropout cuts short of a window is
        skipped (nothing of it could be classified), so the work stays bounded by the rows, however
        many dropouts a chunk holds."""
        last = len(runs) - 1
        for i, (first, rows) in enumerate(runs):
            if i > 0:
                if i < last and not len(window_ends(first, first + len(rows))):
                    continue
                stream.ring = RingBuffer(channels=len(CHANNELS), first_index=first)
                stream.reseed = True
            if len(rows):
                self._filter_group([self._run_arrival(a, stream, first, rows)], self.clock(), errors,
                                   count=False)
                if stream.forgotten:
                    return
        self.counters.chunks += 1

    def _run_arrival(self, a: Arrival, stream: _Stream, first: int, rows: npt.NDArray[np.float32]) -> Arrival:
        """The 50 Hz ``rows`` from index ``first`` of ``a``'s chunk as an arrival to filter."""
        c = a.chunk
        ring = stream.ring
        if ring.next_index != first and ring.next_index == ring.first_index:  # no row yet
            stream.ring = RingBuffer(channels=len(CHANNELS), first_index=first)
        if stream.reseed and len(rows):  # a dropout restarted the stream: its filters start here
            self._state.put([stream.row], chain.initial_state(rows[:1]))
            stream.reseed = False
        t0 = None if c.t0 is None else c.t0 + self._seconds_after_first(stream, c, first)
        return Arrival(Chunk(c.stream, first, SAMPLE_RATE_HZ, t0, rows, owner=c.owner), a.t_recv, a.t_wall)

    @staticmethod
    def _seconds_after_first(stream: _Stream, chunk: Chunk, index: int) -> float:
        """Seconds from ``chunk``'s first sample to the 50 Hz grid point ``index``."""
        grid_time = index / SAMPLE_RATE_HZ
        if chunk.times is None:
            return grid_time - chunk.seq / chunk.rate
        assert stream.t_origin is not None
        return stream.t_origin + grid_time - float(chunk.times[0])

    def _admit_safely(self, chunk: Chunk, now: float, errors: list[ErrorEvent]) -> bool:
        try:
            return self._admit(chunk, now, errors)
        except Exception as exc:
            self._fail([chunk.stream], "opening the stream", exc, errors)
            return False

    def _admit(self, chunk: Chunk, now: float, errors: list[ErrorEvent]) -> bool:
        stream = self._streams.get(chunk.stream)
        if stream is None:
            if len(self._streams) >= self.max_streams:
                return self._reject(errors, chunk, "too_many_streams",
                                    f"the engine holds its limit of {self.max_streams} streams; "
                                    "a stream is freed after its idle timeout")
            return self._open(chunk, now, errors)
        if stream.owner != chunk.owner:
            return self._reject(errors, chunk, "not_owner",
                                "the stream id belongs to another producer key; chunk dropped")
        expected = stream.ring.next_index if stream.resampler is None else stream.input_next
        if chunk.restart:
            return self._open(chunk, now, errors)
        if not _same_kind(stream, chunk):
            return self._open(chunk, now, errors, gap=(
                f"the stream changed to rate {chunk.rate:g} Hz "
                f"{'with' if chunk.times is not None else 'without'} timestamps: it restarts at {chunk.seq}"))
        if chunk.seq == expected:
            stream.last_seen = now
            return True
        if chunk.seq > expected:
            return self._open(chunk, now, errors, origin=stream.t_origin, gap=(
                f"expected seq {expected}, got {chunk.seq}: {chunk.seq - expected} samples "
                f"missing; the stream restarts at {chunk.seq}"))
        return self._reject(errors, chunk, "seq_replay",
                            f"expected seq {expected}, got {chunk.seq}: chunk dropped "
                            '(send "restart": true to restart the stream on purpose)')

    def _open(self, chunk: Chunk, now: float, errors: list[ErrorEvent], origin: float | None = None,
              gap: str | None = None) -> bool:
        """Start ``chunk``'s stream afresh at ``chunk.seq``, reporting ``gap`` as ``seq_gap`` if given.

        A timed stream keeps ``origin`` (its 50 Hz grid) unless the chunk's first timestamp lies
        before it, where its samples would fall on negative indices and never be windowed: then,
        as a new stream, its first sample is at index ``seq`` at its rate. Timestamps too far
        from the origin for the grid reject the chunk (``times``) and leave the stream as it was.
        """
        if chunk.times is not None:
            first = float(chunk.times[0])
            if origin is not None and first < origin:
                origin = None
                gap = None if gap is None else (
                    f"{gap}; its timestamps lie before the stream's time origin, so its 50 Hz grid "
                    "starts afresh from this chunk")
            if origin is None:
                origin = first - chunk.seq / chunk.rate
            try:
                resample.seconds_since(origin, chunk.times)
            except resample.ResampleError as exc:
                return self._reject(errors, chunk, exc.field, exc.detail)
        if gap is not None:
            errors.append(ErrorEvent(chunk.stream, "seq_gap", gap))
        self._start_stream(chunk, now, origin)
        return True

    def _reject(self, errors: list[ErrorEvent], chunk: Chunk, code: str, detail: str) -> bool:
        errors.append(ErrorEvent(chunk.stream, code, detail))
        self.counters.rejected += 1
        return False

    def _filter_group(self, group: list[Arrival], now: float, errors: list[ErrorEvent],
                      count: bool = True) -> None:
        try:
            rows = [self._streams[a.chunk.stream].row for a in group]
            samples = np.stack([a.chunk.samples for a in group])
            out, state = chain.process(samples, self._state.take(rows))
            self._state.put(rows, state)
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
                stream = self._streams[c.stream]
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
            self._forget(sid)

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

    def classify(self, limit: int | None = None) -> list[Prediction]:
        """Classify the queued windows (the oldest ``limit``, or all) in one model call.

        Predictions are smoothed per stream, in order. If the model call fails
        or returns something other than finite probabilities, the windows are
        dropped, their streams restart, and ``internal`` events wait in
        :meth:`take_errors`.
        """
        predictions = self.classify_pending(self.take_pending(limit))
        self.reset_failed()
        return predictions

    def classify_pending(self, pending: list[PendingWindow]) -> list[Prediction]:
        """Classify windows taken with :meth:`take_pending`; safe on another thread.

        It reads the stream table but never changes it: streams whose windows
        failed are reset by :meth:`reset_failed` on the thread that ingests.
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
        in_range = cast("npt.NDArray[np.bool_]", ((probs >= 0.0) & (probs <= 1.0)).all(axis=1))
        valid = [bool(ok) for ok in in_range]  # NaN fails the comparisons: one row, one stream
        bad = [p for p, ok in zip(pending, valid, strict=True) if not ok]
        if bad:
            self.classification_failed(bad, ValueError("probabilities outside [0, 1] or NaN"))
        failed = {id(p.state) for p in bad}
        live = [i for i, item in enumerate(pending)
                if not item.state.forgotten and id(item.state) not in failed]
        beliefs = self._smooth([pending[i].state for i in live], probs[live])
        now, wall = self.clock(), self.wall_clock()
        labels = self.labels
        top, smooth_top = probs[live].argmax(axis=1).tolist(), beliefs.argmax(axis=1).tolist()
        latencies, ages = self.counters.latencies_ms, self.counters.ages_ms
        predictions = []
        for k, i in enumerate(live):
            item = pending[i]
            latency = max(0.0, (now - item.t_recv) * 1000.0)
            age = None if item.t_sample is None else (wall - item.t_sample) * 1000.0
            if age is not None and not math.isfinite(age):
                age = None
            predictions.append(Prediction(
                stream=item.stream,
                seq_end=item.seq_end,
                label=labels[top[k]],
                probs=tuple(probs[i].tolist()),
                smoothed=labels[smooth_top[k]],
                t_arrival=item.t_wall,
                t_emit=wall,
                smoothed_probs=tuple(beliefs[k].tolist()),
                latency_ms=latency,
                age_ms=age,
                engine=self.id,
            ))
            if len(latencies) < MAX_LATENCY_SAMPLES:
                latencies.append(latency)
                if age is not None:
                    ages.append(age)
        self.counters.windows += len(predictions)
        return predictions

    def classification_failed(self, pending: list[PendingWindow], exc: Exception) -> None:
        """The model call for ``pending`` failed (``exc``): their windows are dropped and ``internal``
        events wait in :meth:`take_errors`; their streams restart (:meth:`reset_failed`)."""
        self._errors.extend(self._internal([p.stream for p in pending], "classification", exc))
        self._failed.extend((p.stream, p.state) for p in pending)

    def _smooth(self, states: list[_Stream], probs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Update each window's stream belief, vectorised over streams; the new beliefs (n, k)."""
        out = np.empty(probs.shape, dtype=np.float64)
        rounds: list[list[int]] = []
        depth: dict[int, int] = defaultdict(int)
        for i, state in enumerate(states):  # a stream's windows in order, one per round
            level = depth[id(state)]
            depth[id(state)] += 1
            if level == len(rounds):
                rounds.append([])
            rounds[level].append(i)
        for index in rounds:
            group = [states[i] for i in index]
            beliefs = self.smoother.update(np.stack([s.belief for s in group]), probs[index])
            for state, belief in zip(group, beliefs, strict=True):
                state.belief = belief
            out[index] = beliefs
        return out

    def reset_failed(self) -> None:
        """Forget the streams whose windows failed to classify (unless restarted since)."""
        while self._failed:
            sid, state = self._failed.popleft()
            if self._streams.get(sid) is state:
                self._forget(sid)

    def take_errors(self) -> list[ErrorEvent]:
        """``internal`` events from :meth:`classify` since the last call, and reset them."""
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
