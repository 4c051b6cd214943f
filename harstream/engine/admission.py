"""Admission and ownership: which chunk opens, continues or restarts which stream, and which is refused.

:class:`StreamTable` holds every stream the engine knows, up to ``max_streams``, and decides
for each chunk (:meth:`StreamTable.admit`): a new stream opens (``too_many_streams`` beyond
the limit); a chunk from another producer key than the stream's is refused (``not_owner``);
the next ``seq`` continues the stream; a ``restart`` flag, another rate or timing, or a
``seq`` ahead (``seq_gap``) starts it afresh; a ``seq`` behind is a replay (``seq_replay``).
A timed chunk whose timestamps the 50 Hz grid cannot hold is refused (``times``) before
anything changes. :func:`chunk_cost` is what a chunk costs the engine, for the serving
loop's budgets.

>>> import numpy as np
>>> from harstream.engine.state import EngineCounters
>>> from harstream.signal.smoothing import ForwardFilter
>>> table = StreamTable(1, ForwardFilter(classes=2), EngineCounters())
>>> x, errors = np.zeros((25, 6), np.float32), []
>>> table.admit(Chunk("a", 0, 50, None, x), 0.0, errors), table.admit(Chunk("b", 0, 50, None, x), 0.0, errors)
(True, False)
>>> [(e.stream, e.code) for e in errors]
[('b', 'too_many_streams')]
"""

from __future__ import annotations

import math

import numpy as np

from harstream import SAMPLE_RATE_HZ
from harstream.engine.state import ChainRows, EngineCounters, Stream
from harstream.protocol import Chunk, ErrorEvent
from harstream.signal import resample
from harstream.signal.chain import CHANNELS
from harstream.signal.smoothing import ForwardFilter
from harstream.signal.windows import RingBuffer

DEFAULT_MAX_STREAMS = 10_000
"""Streams the engine holds at once unless told otherwise (about 12 KB of state each)."""
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
        rate = chunk.rate
        # the serving loop asks for every chunk twice: the common case (50 Hz) without float maths
        return n if rate >= SAMPLE_RATE_HZ else max(n, math.ceil(n * SAMPLE_RATE_HZ / rate))
    with np.errstate(over="ignore", invalid="ignore"):
        steps = np.diff(chunk.times)
    short = steps <= max_gap_s
    pauses = len(steps) - int(np.count_nonzero(short))
    # each stretch between pauses reaches one grid point more than its length covers, and the
    # step from the previous chunk's last sample one more
    produced = math.ceil(float(steps[short].sum()) * max(chunk.rate, SAMPLE_RATE_HZ)) + pauses + 2
    return max(n, produced) + DROPOUT_COST * pauses


class StreamTable:
    """Every stream the engine holds, by id, and the chain state rows they use."""

    def __init__(self, max_streams: int, smoother: ForwardFilter, counters: EngineCounters) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams: expected at least 1, got {max_streams}")
        self.max_streams = max_streams
        self.smoother = smoother
        self.counters = counters
        self.streams: dict[str, Stream] = {}
        """The streams by id (read it; change it through the methods)."""
        self.rows = ChainRows(max_streams)

    def __len__(self) -> int:
        return len(self.streams)

    def get(self, sid: str) -> Stream | None:
        return self.streams.get(sid)

    def forget(self, sid: str) -> None:
        """Forget stream ``sid`` (if held): its windows still waiting are dropped, its row freed."""
        stream = self.streams.pop(sid, None)
        if stream is not None:
            stream.forgotten = True
            self.rows.free(stream.row)

    def drop_idle(self, last_seen_before: float) -> list[str]:
        """Forget the streams last seen before that time; returns their ids."""
        gone = [sid for sid, s in self.streams.items() if s.last_seen < last_seen_before]
        for sid in gone:
            self.forget(sid)
        return gone

    def admit(self, chunk: Chunk, now: float, errors: list[ErrorEvent]) -> bool:
        """Whether ``chunk`` goes on to be filtered (its stream opened or restarted as needed); the
        problems found join ``errors``."""
        stream = self.streams.get(chunk.stream)
        if stream is None:
            if len(self.streams) >= self.max_streams:
                return self.reject(errors, chunk, "too_many_streams",
                                   f"the engine holds its limit of {self.max_streams} streams; "
                                   "a stream is freed after its idle timeout")
            return self._open(chunk, now, errors)
        if stream.owner != chunk.owner:
            return self.reject(errors, chunk, "not_owner",
                               "the stream id belongs to another producer key; chunk dropped")
        expected = stream.next_seq
        if chunk.restart:
            return self._open(chunk, now, errors)
        if not stream.same_kind(chunk):
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
        return self.reject(errors, chunk, "seq_replay",
                           f"expected seq {expected}, got {chunk.seq}: chunk dropped "
                           '(send "restart": true to restart the stream on purpose)')

    def reject(self, errors: list[ErrorEvent], chunk: Chunk, code: str, detail: str) -> bool:
        """Report ``chunk`` refused (``code``) and count it; False."""
        errors.append(ErrorEvent(chunk.stream, code, detail))
        self.counters.rejected += 1
        return False

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
                return self.reject(errors, chunk, exc.field, exc.detail)
        if gap is not None:
            errors.append(ErrorEvent(chunk.stream, "seq_gap", gap))
        self._start(chunk, now, origin)
        return True

    def _start(self, chunk: Chunk, now: float, origin: float | None) -> None:
        """A fresh run of ``chunk``'s stream at ``chunk.seq`` (a timed one on the grid of ``origin``)."""
        old = self.streams.get(chunk.stream)
        row = old.row if old is not None else self.rows.allocate()
        self.rows.seed(row, chunk.samples[:1])
        resampler = None
        if not chunk.native:
            resampler = resample.start(chunk.rate, seq=chunk.seq,
                                       origin=origin if chunk.times is not None else None)
        first = chunk.seq if resampler is None else resampler.next_index
        self.streams[chunk.stream] = Stream(
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


__all__ = ["DEFAULT_MAX_STREAMS", "DROPOUT_COST", "StreamTable", "chunk_cost"]
