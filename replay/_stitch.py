"""Stitching 50%-overlapping windows (UCI HAR rows) back into continuous runs.

Consecutive rows belong to one run when they have the same subject and the
last half of one equals the first half of the next. A run is then the first
row followed by the second half of every later row.

>>> import numpy as np
>>> signal = np.arange(256, dtype=np.float32)[:, None]
>>> rows = np.stack([signal[0:128], signal[64:192], signal[128:256]])
>>> split_runs(rows, np.array([3, 3, 3]))
[(0, 3)]
>>> bool((join_rows(rows) == signal).all())
True
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

TOLERANCE = 1e-6
"""Largest difference between overlapping halves that still counts as equal."""


def split_runs(
    rows: npt.NDArray[np.floating], subjects: npt.NDArray[np.integer], tol: float = TOLERANCE
) -> list[tuple[int, int]]:
    """``(first, stop)`` row ranges of the runs in ``rows`` (shape (r, window, channels)).

    >>> rows = np.zeros((3, 4, 1)); rows[2] += 1.0  # row 2 does not continue row 1
    >>> split_runs(rows, np.array([1, 1, 1]))
    [(0, 2), (2, 3)]
    """
    if len(rows) == 0:
        return []
    half = rows.shape[1] // 2
    same_subject = subjects[:-1] == subjects[1:]
    overlap = np.abs(rows[:-1, half:] - rows[1:, :half]) <= tol
    continues = same_subject & overlap.reshape(len(rows) - 1, -1).all(axis=1)
    breaks = np.flatnonzero(~continues) + 1
    edges = [0, *breaks.tolist(), len(rows)]
    return list(itertools.pairwise(edges))


def join_rows(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """The continuous signal of one run: row 0, then the second half of every later row."""
    half = rows.shape[1] // 2
    tail = rows[1:, half:].reshape(-1, rows.shape[2])
    return np.concatenate([rows[0], tail])
