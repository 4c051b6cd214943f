"""Streams at another rate or with timestamps onto the engine's 50 Hz grid, chunk by chunk.

:func:`onto_grid` runs a chunk through its stream's resampler
(:mod:`harstream.signal.resample`) and returns it as 50 Hz chunks (``seq`` = the 50 Hz index
of the first row): one, or, where dropouts longer than the resampler's ``max_gap_s`` split it,
one per run between them, each after the first marked ``restart``, with one ``seq_gap``
reporting them all. A run the next dropout cuts short of a window is left out: nothing of it
could be classified, so the work stays bounded by the rows, however many dropouts a chunk
holds. :func:`begin_run` prepares the stream for a run just before it is filtered.

>>> import numpy as np
>>> from harstream.engine.state import Arrival, ChainRows, Stream
>>> from harstream.protocol import Chunk
>>> from harstream.signal.windows import RingBuffer
>>> stream = Stream(0, RingBuffer(), np.zeros(2), 0.0, None, resampler=resample.start(100.0))
>>> runs, dropouts = onto_grid(stream, Arrival(Chunk("a", 0, 100, None, np.zeros((100, 6), np.float32)), 0, 0))
>>> [(r.chunk.seq, len(r.chunk.samples), r.chunk.rate) for r in runs], dropouts
([(0, 50, 50)], None)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from harstream import SAMPLE_RATE_HZ
from harstream.engine.state import Arrival, ChainRows, Stream
from harstream.protocol import Chunk, ErrorEvent
from harstream.signal import resample
from harstream.signal.chain import CHANNELS
from harstream.signal.windows import RingBuffer, window_ends


def onto_grid(stream: Stream, arrival: Arrival) -> tuple[list[Arrival], ErrorEvent | None]:
    """``arrival``'s chunk as 50 Hz chunks, in order, and the ``seq_gap`` of its dropouts (if any).

    The stream's resampler state moves on; nothing else of the stream changes until its runs are
    filtered. Raises :class:`~harstream.signal.resample.ResampleError` (the stream as it was)
    for timestamps going back or too far from the stream's time origin.
    """
    c = arrival.chunk
    assert stream.resampler is not None
    result = resample.resample(stream.resampler, c.samples, c.times)
    stream.resampler = result.state
    stream.input_next = c.seq + len(c.samples)
    runs = result.runs()
    last = len(runs) - 1
    out = []
    for i, (first, rows) in enumerate(runs):
        if 0 < i < last and not len(window_ends(first, first + len(rows))):
            continue  # cut short of a window by the next dropout
        if i > 0 or len(rows):
            out.append(_run(stream, arrival, first, rows, restart=i > 0))
    dropouts = _dropouts(c.stream, result.gaps, result.state.max_gap_s) if result.gaps else None
    return out, dropouts


def begin_run(stream: Stream, chunk: Chunk, rows: ChainRows) -> None:
    """Prepare ``stream`` for the 50 Hz ``chunk`` from :func:`onto_grid`, just before it is filtered:
    after a dropout (``restart``) its windows start again at the chunk, and its filters at the
    chunk's first row (or at the next row it gets, when the chunk has none)."""
    ring = stream.ring
    if chunk.restart or (ring.next_index != chunk.seq and ring.next_index == ring.first_index):  # no row yet
        stream.ring = RingBuffer(channels=len(CHANNELS), first_index=chunk.seq)
    stream.reseed = stream.reseed or chunk.restart
    if stream.reseed and len(chunk.samples):
        rows.seed(stream.row, chunk.samples[:1])
        stream.reseed = False


def _run(stream: Stream, arrival: Arrival, first: int, rows: npt.NDArray[np.float32], restart: bool) -> Arrival:
    """The 50 Hz ``rows`` from index ``first`` of ``arrival``'s chunk, as an arrival to filter."""
    c = arrival.chunk
    t0 = None if c.t0 is None else c.t0 + _seconds_after_first(stream, c, first)
    return Arrival(Chunk(c.stream, first, SAMPLE_RATE_HZ, t0, rows, restart, c.owner),
                   arrival.t_recv, arrival.t_wall)


def _seconds_after_first(stream: Stream, chunk: Chunk, index: int) -> float:
    """Seconds from ``chunk``'s first sample to the 50 Hz grid point ``index``."""
    grid_time = index / SAMPLE_RATE_HZ
    if chunk.times is None:
        return grid_time - chunk.seq / chunk.rate
    assert stream.t_origin is not None
    return stream.t_origin + grid_time - float(chunk.times[0])


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


__all__ = ["begin_run", "onto_grid"]
