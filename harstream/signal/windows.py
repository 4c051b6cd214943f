"""Cutting a stream into windows: 128 samples, a new one every 64.

Windows sit on the stream's own grid: the first completes at the stream's
128th sample (index 127), then one every ``hop`` samples. Each is identified
by ``seq_end``, the stream index of its last sample. Feeding a stream in
chunks of any size emits the same windows as feeding it whole.

>>> import numpy as np
>>> ring = RingBuffer(channels=1)
>>> ring.push(np.arange(100, dtype=np.float32)[:, None]).seq_ends.tolist()
[]
>>> ready = ring.push(np.arange(100, 300, dtype=np.float32)[:, None])
>>> ready.seq_ends.tolist(), ready.windows.shape, float(ready.windows[1, -1, 0])
([127, 191, 255], (3, 128, 1), 191.0)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from harstream import HOP, WINDOW


class Windows(NamedTuple):
    """Windows completed by one push."""

    seq_ends: npt.NDArray[np.int64]
    """Stream index of each window's last sample, shape (k,)."""
    windows: npt.NDArray[np.float32]
    """The windows, shape (k, window, channels)."""


def window_ends(first: int, stop: int, window: int = WINDOW, hop: int = HOP) -> npt.NDArray[np.int64]:
    """``seq_end`` of every grid window lying wholly in stream indices ``[first, stop)``.

    >>> window_ends(0, 300).tolist()
    [127, 191, 255]
    >>> window_ends(100, 300).tolist()  # a segment starting at sample 100
    [255]
    """
    lowest_end = first + window - 1
    # first grid end >= lowest_end: ends are window-1 + k*hop
    k0 = max(0, -(-(lowest_end - (window - 1)) // hop))
    return np.arange(window - 1 + k0 * hop, stop, hop, dtype=np.int64)


class RingBuffer:
    """The last ``window`` samples of one stream, emitting grid windows as they complete.

    ``first_index`` is the stream index of the first sample pushed (a stream
    restarted after a gap keeps its grid). :meth:`push` returns the windows
    the chunk completed.

    Samples are copied into one preallocated buffer (``window - 1`` held
    back plus :data:`SLACK` rows of room), and a push that completes no
    window does nothing else: this runs for every chunk of every stream.
    """

    SLACK = 64
    """Rows of room beyond the ``window - 1`` held back; a larger chunk grows the buffer once."""

    def __init__(
        self, window: int = WINDOW, hop: int = HOP, channels: int = 9, first_index: int = 0
    ) -> None:
        if not 0 < hop <= window:
            raise ValueError(f"hop: expected 0 < hop <= window ({window}), got {hop}")
        self.window = window
        self.hop = hop
        self.channels = channels
        self.first_index = first_index
        self._buffer = np.zeros((window - 1 + self.SLACK, channels), dtype=np.float32)
        self._fill = 0
        """Rows of ``_buffer`` in use: the stream's latest samples, oldest first."""
        self._next = first_index
        k = max(0, -(-first_index // hop))  # the first grid end >= first_index + window - 1
        self._next_end = window - 1 + k * hop
        self._empty = Windows(np.zeros(0, dtype=np.int64), np.zeros((0, window, channels), dtype=np.float32))
        for array in self._empty:
            array.flags.writeable = False

    @property
    def next_index(self) -> int:
        """Stream index the next pushed sample will have."""
        return self._next

    def push(self, chunk: npt.ArrayLike) -> Windows:
        """Append ``chunk`` (n, channels); return the windows it completed."""
        x = np.asarray(chunk, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"chunk: expected shape (n, {self.channels}), got {x.shape}")
        n, keep = len(x), self.window - 1
        if self._fill + n > len(self._buffer):
            if self._fill > keep:  # only the last window - 1 samples can still be in a window
                self._buffer[:keep] = self._buffer[self._fill - keep : self._fill]
                self._fill = keep
            if self._fill + n > len(self._buffer):
                grown = np.zeros((self._fill + n, self.channels), dtype=np.float32)
                grown[: self._fill] = self._buffer[: self._fill]
                self._buffer = grown
        self._buffer[self._fill : self._fill + n] = x
        self._fill += n
        self._next += n
        stop = self._next
        if self._next_end >= stop:
            return self._empty
        ends = np.arange(self._next_end, stop, self.hop, dtype=np.int64)
        self._next_end = int(ends[-1]) + self.hop
        base = stop - self._fill  # stream index of _buffer[0]
        index = (ends - base - self.window + 1)[:, None] + np.arange(self.window)[None, :]
        return Windows(ends, self._buffer[index])
