"""The model runtime: standardise windows and classify them in batches.

Batches are padded to the next power of two (at most ``max_batch``), so the
compiled predict function sees a handful of shapes and never retraces while
serving; larger inputs are split.

>>> clf = Classifier.load()  # doctest: +SKIP
>>> clf.predict_proba(windows).shape  # doctest: +SKIP
(n, 6)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import numpy.typing as npt

from . import artifact
from .artifact import Artifact

MAX_BATCH = 256
"""Largest batch passed to the model in one call."""


def standardise(
    windows: npt.ArrayLike, mean: npt.ArrayLike, std: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """``(windows - mean) / std`` per channel, float32: the model's input.

    >>> standardise([[[2.0, 4.0]]], [1.0, 2.0], [1.0, 2.0]).tolist()
    [[[1.0, 1.0]]]
    """
    x = np.asarray(windows, dtype=np.float32)
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    result: npt.NDArray[np.float32] = (x - m) / s
    return result


def _bucket(n: int, max_batch: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return min(size, max_batch)


class Classifier:
    """A loaded artifact ready to classify chain output windows (n, 128, 9)."""

    def __init__(self, loaded: Artifact, max_batch: int = MAX_BATCH) -> None:
        self.artifact = loaded
        self.max_batch = max_batch
        self._mean = np.asarray(loaded.meta.norm_mean, dtype=np.float32)
        self._std = np.asarray(loaded.meta.norm_std, dtype=np.float32)

    @classmethod
    def load(cls, path: Path | str | None = None, max_batch: int = MAX_BATCH) -> Classifier:
        """Load and verify an artifact (the shipped model when ``path`` is None)."""
        return cls(artifact.load(path), max_batch)

    @property
    def labels(self) -> list[str]:
        """Class names in output order."""
        return self.artifact.meta.labels

    def predict_proba(self, windows: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Class probabilities of each window, shape (n, classes)."""
        x = standardise(windows, self._mean, self._std)
        n = len(x)
        out = np.empty((n, len(self.labels)), dtype=np.float32)
        for begin in range(0, n, self.max_batch):
            part = x[begin : begin + self.max_batch]
            size = _bucket(len(part), self.max_batch)
            if size > len(part):
                pad = np.zeros((size - len(part), *part.shape[1:]), dtype=np.float32)
                part_in = np.concatenate([part, pad])
            else:
                part_in = part
            probs = self.artifact.model.predict_on_batch(part_in)
            out[begin : begin + len(part)] = np.asarray(probs)[: len(part)]
        return out

    def warm_up(self) -> None:
        """Trace the predict function for every batch bucket, before serving."""
        size = 1
        shape = (self.artifact.meta.window, len(self.artifact.meta.channels))
        while size <= self.max_batch:
            self.predict_proba(np.zeros((size, *shape), dtype=np.float32))
            size *= 2
