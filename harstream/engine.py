"""The engine's core, without sockets: per-stream state, batching, smoothing.

Chunks of many streams go in (:meth:`Engine.ingest`); each stream's signal
chain runs vectorised with every other stream that sent a chunk of the same
length in the same batch; completed windows queue up; :meth:`Engine.classify`
runs the model once over every queued window of every stream and returns one
:class:`~harstream.protocol.Prediction` per window, smoothed per stream.
:mod:`harstream.server` wraps it in ZeroMQ sockets; tests drive it directly.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from . import chain
from .chain import CHANNELS, ChainState
from .protocol import Chunk, ErrorEvent, Prediction
from .smoothing import ForwardFilter
from .windows import RingBuffer

ProbaFn = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


@dataclass
class _Stream:
    row: int
    ring: RingBuffer
    belief: npt.NDArray[np.float64]
    last_seen: float
    windows: int = 0


@dataclass
class _Pending:
    stream: str
    seq_end: int
    window: npt.NDArray[np.float32]
    t_arrival: float


@dataclass
class EngineCounters:
    """Totals since the engine started."""

    chunks: int = 0
    """Chunks accepted."""
    windows: int = 0
    """Windows classified."""
    rejected: int = 0
    """Messages rejected (each reported as an :class:`ErrorEvent`)."""
    latencies_ms: list[float] = field(default_factory=list)
    """Arrival-to-classification latencies since the last :meth:`Engine.take_latencies`."""


class Engine:
    """Per-stream chain state and ring buffers, batched classification, smoothing.

    ``predict_proba`` maps windows (n, 128, 9) to class probabilities (n, k);
    ``labels`` names the k classes.
    """

    def __init__(
        self,
        predict_proba: ProbaFn,
        labels: Iterable[str],
        smoother: ForwardFilter | None = None,
        idle_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.predict_proba = predict_proba
        self.labels = tuple(labels)
        self.smoother = smoother or ForwardFilter(classes=len(self.labels))
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.counters = EngineCounters()
        self._streams: dict[str, _Stream] = {}
        self._free_rows: list[int] = []
        self._state = chain.initial_state(np.zeros((0, 6)))
        self._pending: list[_Pending] = []

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
            grow = max(16, old)
            extra = chain.initial_state(np.zeros((grow, 6)))
            self._state = ChainState(
                np.concatenate([self._state.history, extra.history]),
                np.concatenate([self._state.noise_zi, extra.noise_zi], axis=1),
                np.concatenate([self._state.gravity_zi, extra.gravity_zi], axis=1),
            )
            self._free_rows.extend(range(old + grow - 1, old - 1, -1))
        return self._free_rows.pop()

    def _start_stream(self, chunk: Chunk, now: float) -> _Stream:
        old = self._streams.get(chunk.stream)
        row = old.row if old is not None else self._allocate_row()
        self._state.put([row], chain.initial_state(chunk.samples[:1]))
        stream = _Stream(
            row=row,
            ring=RingBuffer(channels=len(CHANNELS), first_index=chunk.seq),
            belief=self.smoother.initial(1)[0],
            last_seen=now,
            windows=old.windows if old is not None else 0,
        )
        self._streams[chunk.stream] = stream
        return stream

    def drop_idle(self) -> list[str]:
        """Forget streams silent for longer than ``idle_timeout_s``; returns their ids."""
        limit = self.clock() - self.idle_timeout_s
        gone = [sid for sid, s in self._streams.items() if s.last_seen < limit]
        for sid in gone:
            self._free_rows.append(self._streams.pop(sid).row)
        return gone

    # -- ingest ----------------------------------------------------------------------------

    def ingest(self, chunks: Iterable[Chunk], t_arrival: float | None = None) -> list[ErrorEvent]:
        """Run decoded chunks through their streams' chains and ring buffers.

        A stream's chunks are applied in order; chunks of different streams
        with equal length are filtered in one vectorised call. Returns the
        sequence problems found (``seq_gap``: the stream restarted at the new
        seq; ``seq_replay``: the chunk was dropped).
        """
        now = self.clock() if t_arrival is None else t_arrival
        errors: list[ErrorEvent] = []
        rounds: list[list[Chunk]] = []
        depth: dict[str, int] = defaultdict(int)
        for chunk in chunks:
            level = depth[chunk.stream]
            depth[chunk.stream] += 1
            if level == len(rounds):
                rounds.append([])
            rounds[level].append(chunk)
        for batch in rounds:
            accepted = [c for c in batch if self._check_seq(c, now, errors)]
            by_length: dict[int, list[Chunk]] = defaultdict(list)
            for c in accepted:
                by_length[len(c.samples)].append(c)
            for group in by_length.values():
                self._filter_group(group, now)
        return errors

    def _check_seq(self, chunk: Chunk, now: float, errors: list[ErrorEvent]) -> bool:
        stream = self._streams.get(chunk.stream)
        if stream is None:
            self._start_stream(chunk, now)
            return True
        expected = stream.ring.next_index
        if chunk.seq == expected:
            stream.last_seen = now
            return True
        if chunk.seq > expected:
            errors.append(ErrorEvent(
                chunk.stream, "seq_gap",
                f"expected seq {expected}, got {chunk.seq}: {chunk.seq - expected} samples "
                f"missing; the stream restarts at {chunk.seq}",
            ))
            self._start_stream(chunk, now)
            return True
        errors.append(ErrorEvent(
            chunk.stream, "seq_replay",
            f"expected seq {expected}, got {chunk.seq}: chunk dropped",
        ))
        self.counters.rejected += 1
        return False

    def _filter_group(self, group: list[Chunk], now: float) -> None:
        rows = [self._streams[c.stream].row for c in group]
        samples = np.stack([c.samples for c in group])
        out, state = chain.process(samples, self._state.take(rows))
        self._state.put(rows, state)
        for c, channels in zip(group, out, strict=True):
            ready = self._streams[c.stream].ring.push(channels)
            for seq_end, window in zip(ready.seq_ends.tolist(), ready.windows, strict=True):
                self._pending.append(_Pending(c.stream, seq_end, window, now))
        self.counters.chunks += len(group)

    # -- classify --------------------------------------------------------------------------

    def classify(self) -> list[Prediction]:
        """Classify every queued window in one model call; smoothed per stream, in order."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        probs = self.predict_proba(np.stack([p.window for p in pending]))
        now = self.clock()
        predictions = []
        for item, p in zip(pending, probs, strict=True):
            stream = self._streams.get(item.stream)
            if stream is None:  # dropped as idle while queued
                continue
            stream.belief = self.smoother.update(stream.belief[None], p[None])[0]
            stream.windows += 1
            predictions.append(Prediction(
                stream=item.stream,
                seq_end=item.seq_end,
                label=self.labels[int(p.argmax())],
                probs=tuple(float(v) for v in p),
                smoothed=self.labels[int(stream.belief.argmax())],
                t_arrival=item.t_arrival,
                t_emit=now,
                smoothed_probs=tuple(float(v) for v in stream.belief),
            ))
            self.counters.latencies_ms.append((now - item.t_arrival) * 1000.0)
        self.counters.windows += len(predictions)
        return predictions

    def take_latencies(self) -> list[float]:
        """Latencies (ms) recorded since the last call, and reset them."""
        values, self.counters.latencies_ms = self.counters.latencies_ms, []
        return values
