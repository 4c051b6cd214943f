"""From the model's probabilities to predictions: checked, smoothed per stream, with their latencies.

:func:`valid_rows` says which rows of the model's output are probabilities; :func:`smooth`
updates each window's stream belief with the smoother, vectorised over streams, a stream's
windows in order; :func:`predictions` builds the :class:`~harstream.protocol.Prediction` of
each window and records its latency (from the receipt of the chunk that completed it) and age.

>>> import numpy as np
>>> valid_rows(np.array([[0.5, 0.5], [np.nan, 1.0], [1.5, -0.5]], np.float32))
[True, False, False]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt

from harstream.engine.ordering import rounds
from harstream.engine.state import EngineCounters, PendingWindow, Stream
from harstream.protocol import Prediction
from harstream.signal.smoothing import ForwardFilter

MAX_LATENCY_SAMPLES = 100_000
"""Latency samples kept between two :meth:`~harstream.engine.core.Engine.take_latencies` calls."""


def valid_rows(probs: npt.NDArray[np.floating]) -> list[bool]:
    """Whether each row of ``probs`` holds only values in [0, 1] (NaN fails: one row, one stream)."""
    in_range = cast("npt.NDArray[np.bool_]", ((probs >= 0.0) & (probs <= 1.0)).all(axis=1))
    return [bool(ok) for ok in in_range]


def smooth(smoother: ForwardFilter, states: Sequence[Stream],
           probs: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Update each window's stream belief (``states[i]`` for row ``i``), vectorised over streams, a
    stream's windows in order; the new beliefs (n, k)."""
    out = np.empty(probs.shape, dtype=np.float64)
    for index in rounds(range(len(states)), [id(s) for s in states]):
        group = [states[i] for i in index]
        beliefs = smoother.update(np.stack([s.belief for s in group]), probs[index])
        for state, belief in zip(group, beliefs, strict=True):
            state.belief = belief
        out[index] = beliefs
    return out


def predictions(
    pending: Sequence[PendingWindow], probs: npt.NDArray[np.floating], beliefs: npt.NDArray[np.float64],
    labels: Sequence[str], engine: str, now: float, wall: float, counters: EngineCounters,
) -> list[Prediction]:
    """The predictions of ``pending`` (row ``i`` of ``probs`` and ``beliefs`` each), published at
    monotonic ``now`` and unix ``wall``; their latencies and ages join ``counters``."""
    top, smooth_top = probs.argmax(axis=1).tolist(), beliefs.argmax(axis=1).tolist()
    latencies, ages = counters.latencies_ms, counters.ages_ms
    out = []
    for k, item in enumerate(pending):
        latency = max(0.0, (now - item.t_recv) * 1000.0)
        age = None if item.t_sample is None else (wall - item.t_sample) * 1000.0
        if age is not None and not math.isfinite(age):
            age = None
        out.append(Prediction(
            stream=item.stream,
            seq_end=item.seq_end,
            label=labels[top[k]],
            probs=tuple(probs[k].tolist()),
            smoothed=labels[smooth_top[k]],
            t_arrival=item.t_wall,
            t_emit=wall,
            smoothed_probs=tuple(beliefs[k].tolist()),
            latency_ms=latency,
            age_ms=age,
            engine=engine,
        ))
        if len(latencies) < MAX_LATENCY_SAMPLES:
            latencies.append(latency)
            if age is not None:
                ages.append(age)
    counters.windows += len(out)
    return out


__all__ = ["MAX_LATENCY_SAMPLES", "predictions", "smooth", "valid_rows"]
