"""The model runtime: standardise windows and classify them in batches, on the fastest backend.

Two backends give the same answers (within 1e-4, verified at load):

* ``keras``: the artifact's Keras model, ``predict_on_batch``; batches are
  padded to the next power of two (at most ``max_batch``), so the compiled
  predict function sees a handful of shapes and never retraces;
* ``onnx``: the same model converted to ONNX and run by ONNX Runtime on one
  thread (:mod:`harstream.model.onnx_runtime`); several times faster at small
  batches, slower at large ones.

With ``runtime="auto"`` (``harstream serve``'s default) :meth:`Classifier.warm_up` measures
both on every batch bucket and routes each bucket to the faster one
(:attr:`Classifier.routes`). ``keras`` (the library's default: the source of
truth) or ``onnx`` force one backend.

>>> clf = Classifier.load()  # doctest: +SKIP
>>> clf.predict_proba(windows).shape  # doctest: +SKIP
(n, 6)
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import numpy.typing as npt

from harstream.errors import ArtifactError
from harstream.model import artifact
from harstream.model.artifact import Artifact

log = logging.getLogger("harstream.model.classifier")

MAX_BATCH = 256
"""Largest batch passed to the model in one call."""
Runtime = Literal["auto", "keras", "onnx"]
RUNTIMES: tuple[Runtime, ...] = ("auto", "keras", "onnx")
"""Values of ``runtime`` (``harstream serve --runtime``)."""

Backend = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


def set_model_threads(threads: int) -> None:
    """Threads of one model call (TensorFlow intra-op); call before the first model runs."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised: keep its threads
        log.warning("model threads already set; --model-threads %d ignored", threads)


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


def bucket(n: int, max_batch: int) -> int:
    """The padded batch size of ``n`` windows: the next power of two, at most ``max_batch``.

    >>> [bucket(n, 256) for n in (1, 3, 64, 65, 300)]
    [1, 4, 64, 128, 256]
    """
    size = 1
    while size < n:
        size *= 2
    return min(size, max_batch)


def buckets(max_batch: int) -> list[int]:
    """Every batch bucket up to ``max_batch``.

    >>> buckets(20)
    [1, 2, 4, 8, 16, 20]
    """
    sizes = []
    size = 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch]


class Classifier:
    """A loaded artifact ready to classify chain output windows (n, 128, 9)."""

    def __init__(self, loaded: Artifact, max_batch: int = MAX_BATCH, runtime: Runtime = "keras") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime: expected one of {RUNTIMES}, got {runtime!r}")
        self.artifact = loaded
        self.max_batch = max_batch
        self.runtime = runtime
        self._mean = np.asarray(loaded.meta.norm_mean, dtype=np.float32)
        self._std = np.asarray(loaded.meta.norm_std, dtype=np.float32)
        self.backends: dict[str, Backend] = {"keras": self._keras}
        if runtime != "keras":
            self._add_onnx(required=runtime == "onnx")
        default = "onnx" if runtime == "onnx" else "keras"
        self.routes: dict[int, str] = dict.fromkeys(buckets(max_batch), default)
        """Backend used for each batch bucket (set by :meth:`warm_up` with ``runtime="auto"``)."""

    def _add_onnx(self, required: bool) -> None:
        from harstream.model import onnx_runtime

        if not onnx_runtime.available():
            if required:
                raise ArtifactError("runtime onnx: onnxruntime is not installed")
            log.warning("onnxruntime is not installed: serving with Keras only")
            return
        try:
            session = onnx_runtime.load_session(self.artifact)
        except ArtifactError as exc:
            if required:
                raise
            log.warning("%s; serving with Keras only", exc)
            return
        self.backends["onnx"] = session.run

    @classmethod
    def load(
        cls, path: Path | str | None = None, max_batch: int = MAX_BATCH, runtime: Runtime = "keras"
    ) -> Classifier:
        """Load and verify an artifact (the shipped model when ``path`` is None)."""
        return cls(artifact.load(path), max_batch, runtime)

    @property
    def labels(self) -> list[str]:
        """Class names in output order."""
        return self.artifact.meta.labels

    def _keras(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        size = bucket(len(x), self.max_batch)
        if size > len(x):
            x = np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), dtype=np.float32)])
        return np.asarray(self.artifact.model.predict_on_batch(x), dtype=np.float32)

    def predict_proba(self, windows: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Class probabilities of each window, shape (n, classes)."""
        x = standardise(windows, self._mean, self._std)
        n = len(x)
        out = np.empty((n, len(self.labels)), dtype=np.float32)
        for begin in range(0, n, self.max_batch):
            part = x[begin : begin + self.max_batch]
            backend = self.backends[self.routes[bucket(len(part), self.max_batch)]]
            out[begin : begin + len(part)] = backend(part)[: len(part)]
        return out

    def warm_up(self, repeats: int = 5) -> dict[int, dict[str, float]]:
        """Trace every backend on every batch bucket; with ``auto``, route each to the faster.

        Returns the measured windows/s per bucket and backend (median of
        ``repeats`` calls).
        """
        shape = (self.artifact.meta.window, len(self.artifact.meta.channels))
        rates: dict[int, dict[str, float]] = {}
        for size in buckets(self.max_batch):
            x = np.zeros((size, *shape), dtype=np.float32)
            rates[size] = {}
            for name, backend in self.backends.items():
                backend(x)  # trace / allocate
                times = []
                for _ in range(repeats if self.runtime == "auto" else 0):
                    start = time.perf_counter()
                    backend(x)
                    times.append(time.perf_counter() - start)
                if times:
                    rates[size][name] = size / max(statistics.median(times), 1e-9)
            if self.runtime == "auto" and rates[size]:
                self.routes[size] = max(rates[size], key=lambda name: rates[size][name])
        if self.runtime == "auto":
            log.info("batch routes: %s", ", ".join(f"{k}:{v}" for k, v in self.routes.items()))
        return rates
