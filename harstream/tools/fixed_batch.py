"""A model that takes a fixed batch, run over any number of windows (the last call zero-padded).

Shared by the bench (each backend at one batch size) and the export (a
fixed-batch TFLite file).

>>> import numpy as np
>>> double = lambda x: 2 * x[:, :, 0]
>>> in_fixed_batches(double, np.ones((5, 1, 1), np.float32), 4, outputs=1).ravel().tolist()
[2.0, 2.0, 2.0, 2.0, 2.0]
>>> in_fixed_batches(double, np.ones((0, 1, 1), np.float32), 4, outputs=1).shape
(0, 1)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


def in_fixed_batches(run: Callable[[Array], npt.ArrayLike], x: Array, batch: int, outputs: int) -> Array:
    """``run`` over ``x`` in calls of exactly ``batch`` windows; (0, ``outputs``) when ``x`` is empty."""
    parts = []
    for begin in range(0, len(x), batch):
        part = x[begin : begin + batch]
        n = len(part)
        if n < batch:
            part = np.concatenate([part, np.zeros((batch - n, *part.shape[1:]), np.float32)])
        parts.append(np.asarray(run(part))[:n])
    return np.concatenate(parts) if parts else np.zeros((0, outputs), np.float32)
