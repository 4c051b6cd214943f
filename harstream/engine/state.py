"""What the engine holds: each stream's state, the signal chain's state of all streams, the totals.

A :class:`Stream` is one stream's run: its row of the chain state, its window buffer, its
smoothed belief, its resampler (streams at another rate or with timestamps) and its owner. The
filter state of every stream lives in one :class:`ChainRows`, a row each, so that chunks of
many streams are filtered in one vectorised call. An :class:`Arrival` is a chunk on its way
in; a :class:`PendingWindow` a window on its way to the model.

>>> rows = ChainRows(max_rows=3)
>>> [rows.allocate() for _ in range(3)], len(rows.state.history)
([0, 1, 2], 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from harstream.protocol import Chunk
from harstream.signal import chain, resample
from harstream.signal.chain import ChainState
from harstream.signal.windows import RingBuffer


class Arrival(NamedTuple):
    """A decoded chunk with what the server knows about its receipt."""

    chunk: Chunk
    """The chunk."""
    t_recv: float
    """Receipt time on the engine's monotonic clock (for latencies)."""
    t_wall: float
    """Receipt time as unix time (published as ``t_arrival``)."""


@dataclass
class Stream:
    """One run of one stream (a restart makes a new one)."""

    row: int
    """Its row of the chain state (:class:`ChainRows`)."""
    ring: RingBuffer
    belief: npt.NDArray[np.float64]
    """The smoother's belief after its last window."""
    last_seen: float
    owner: str | None
    """The producer key that opened it (keys on), else None."""
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

    @property
    def next_seq(self) -> int:
        """The ``seq`` its next chunk must have to continue it."""
        return self.ring.next_index if self.resampler is None else self.input_next

    def same_kind(self, chunk: Chunk) -> bool:
        """``chunk`` continues the stream's rate and timing (else the stream restarts)."""
        if self.resampler is None:
            return chunk.native
        return chunk.rate == self.resampler.rate_hz and (chunk.times is not None) == self.resampler.timed


@dataclass
class PendingWindow:
    """A window cut and waiting for the model (:meth:`Engine.take_pending`), with where it came from."""

    stream: str
    state: Stream
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


class ChainRows:
    """The signal chain's state of every stream, one row each; grown as streams come, up to ``max_rows``."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.state = chain.initial_state(np.zeros((0, 6)))
        self._free: list[int] = []

    def allocate(self) -> int:
        """A free row (the state grows by at least 16 rows, doubling, when none is left)."""
        if not self._free:
            old = len(self.state.history)
            grow = min(max(16, old), self.max_rows - old) or 1
            extra = chain.initial_state(np.zeros((grow, 6)))
            self.state = ChainState(
                np.concatenate([self.state.history, extra.history]),
                np.concatenate([self.state.noise_zi, extra.noise_zi], axis=1),
                np.concatenate([self.state.gravity_zi, extra.gravity_zi], axis=1),
            )
            self._free.extend(range(old + grow - 1, old - 1, -1))
        return self._free.pop()

    def free(self, row: int) -> None:
        self._free.append(row)

    def seed(self, row: int, first: npt.NDArray[np.float32]) -> None:
        """Row ``row`` starts afresh at the sample ``first`` (shape (1, 6)): steady state, no transient."""
        self.state.put([row], chain.initial_state(first))


@dataclass
class EngineCounters:
    """Totals since the engine started."""

    chunks: int = 0
    """Chunks accepted."""
    windows: int = 0
    """Windows classified."""
    rejected: int = 0
    """Messages rejected (each reported as an :class:`~harstream.protocol.ErrorEvent`)."""
    shed: int = 0
    """Chunks dropped unprocessed because the server's ingest queue was full."""
    internal_errors: int = 0
    """Failures inside the engine (each reported as ``internal`` for the streams it hit)."""
    latencies_ms: list[float] = field(default_factory=list)
    """Receipt-to-publication latencies since the last :meth:`Engine.take_latencies`."""
    ages_ms: list[float] = field(default_factory=list)
    """Ages of windows' last samples at publication (streams sending ``t0``), same period."""


__all__ = ["Arrival", "ChainRows", "EngineCounters", "PendingWindow", "Stream", "stack_windows"]
