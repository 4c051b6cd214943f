"""Windows/s of the model's runtimes (naive Keras, the serving path, each backend) and their agreement.

The cases are timed by :class:`InterleavedTimer`, their repeats interleaved so that a
noisy neighbour slows them all alike; medians at the end.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harstream.model.classifier import Backend, Classifier, bucket, standardise
from harstream.signal import chain
from harstream.tools.fixed_batch import in_fixed_batches

if TYPE_CHECKING:
    import keras


def _median_rate(work: Callable[[], None], items: int, repeats: int) -> float:
    work()  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        rates.append(items / (time.perf_counter() - started))
    return statistics.median(rates)


def chain_rate(streams: int = 1000, chunk: int = 25, repeats: int = 5) -> float:
    """Samples per second through the signal chain, ``streams`` chunks per vectorised call."""
    x = np.random.default_rng(0).standard_normal((streams, chunk, 6)).astype(np.float32)
    state = chain.initial_state(x[:, 0])

    def work() -> None:
        chain.process(x, state)

    return _median_rate(work, streams * chunk, repeats)


class InterleavedTimer:
    """Windows/s of several (name, batch) cases, their repeats interleaved; medians at the end."""

    def __init__(self, min_seconds: float) -> None:
        self.min_seconds = min_seconds
        self.cases: dict[tuple[str, int], tuple[Callable[[], object], int, int]] = {}
        self.rates: dict[tuple[str, int], list[float]] = {}

    def add(self, name: str, batch: int, call: Callable[[], object], windows: int | None = None,
            calls: int | None = None) -> None:
        """Time ``call`` (``windows`` per call); calls per repeat from one timed call unless given."""
        call()  # trace / allocate
        if calls is None:
            started = time.perf_counter()
            call()
            one = time.perf_counter() - started
            calls = max(1, math.ceil(self.min_seconds / max(one, 1e-6)))
        self.cases[(name, batch)] = (call, windows if windows is not None else batch, calls)
        self.rates[(name, batch)] = []

    def run(self, repeats: int) -> dict[tuple[str, int], float]:
        for _ in range(repeats):
            for key, (call, windows, calls) in self.cases.items():
                started = time.perf_counter()
                for _ in range(calls):
                    call()
                self.rates[key].append(windows * calls / (time.perf_counter() - started))
        return {key: statistics.median(rates) for key, rates in self.rates.items()}


def xla_backend(model: keras.Model) -> Backend:
    """The Keras model compiled by XLA (``tf.function(jit_compile=True)``); one compile per batch shape.

    For comparison only: ``harstream serve`` does not use it.
    """
    import tensorflow as tf

    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)

    def run(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = compiled(tf.constant(x))
        if isinstance(out, list | tuple):
            out = out[0]
        return np.asarray(out, dtype=np.float32)

    return run


def runtimes(classifier: Classifier, windows: npt.NDArray[np.float32], batches: Sequence[int],
             repeats: int, min_seconds: float, naive_calls: int, xla: bool) -> dict[str, Any]:
    """Windows/s of the naive baseline, the serving path and each backend, and their agreement.

    ``classifier`` must have been loaded with ``runtime="auto"`` and warmed up
    (its routes set); ``windows`` are chain-output windows (real ones, ideally).
    """
    model = classifier.artifact.model
    x = standardise(windows, classifier.artifact.meta.norm_mean, classifier.artifact.meta.norm_std)
    need = max(batches)
    tiled = np.concatenate([x] * math.ceil(need / len(x)))[:need] if len(x) < need else x
    raw = np.concatenate([windows] * math.ceil(need / len(windows)))[:need]
    backends, problems = _backends(classifier, tiled[:1], xla)
    timer = InterleavedTimer(min_seconds)
    timer.add("naive", 1, lambda: [model.predict(tiled[i : i + 1], verbose=0) for i in range(naive_calls)],
              windows=naive_calls, calls=1)
    for size in batches:
        timer.add("auto", size, partial(classifier.predict_proba, raw[:size]))
        for name, backend in backends.items():
            timer.add(name, size, partial(backend, tiled[:size]))
    rates = _rate_rows(timer.run(repeats), classifier, list(backends), batches)
    return {"rates": rates, "agreement": _agreement(classifier, backends, windows, x), "problems": problems,
            "backends": sorted(backends)}


def _backends(classifier: Classifier, sample: npt.NDArray[np.float32],
              xla: bool) -> tuple[dict[str, Backend], dict[str, str]]:
    """The backends timed alone (keras; onnx if loaded; xla if asked for and it compiles); why one is missing."""
    model = classifier.artifact.model
    backends: dict[str, Backend] = {"keras": lambda b: np.asarray(model.predict_on_batch(b), np.float32)}
    if "onnx" in classifier.backends:
        backends["onnx"] = classifier.backends["onnx"]
    problems: dict[str, str] = {}
    if xla:
        try:
            compiled = xla_backend(model)
            compiled(sample)
            backends["xla"] = compiled
        except Exception as exc:  # XLA cannot compile every graph: report it, go on
            problems["xla"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return backends, problems


def _rate_rows(rates: dict[tuple[str, int], float], classifier: Classifier, backends: list[str],
               batches: Sequence[int]) -> dict[str, Any]:
    """The JSON rows of the timed rates: windows/s, against Keras and the naive baseline, auto's route."""
    out: dict[str, Any] = {"naive": {"windows_per_s": round(rates[("naive", 1)], 1),
                                     "how": "keras model.predict, one window per call"}}
    for name in ("auto", *backends):
        out[name] = {}
        for size in batches:
            rate = rates[(name, size)]
            row: dict[str, Any] = {"windows_per_s": round(rate, 1),
                   "vs_keras": round(rate / rates[("keras", size)], 3),
                   "vs_naive": round(rate / rates[("naive", 1)], 2)}
            if name == "auto":
                row["route"] = classifier.routes[bucket(size, classifier.max_batch)]
            out[name][str(size)] = row
    return out


def _agreement(classifier: Classifier, backends: dict[str, Backend], windows: npt.NDArray[np.float32],
               x: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Each runtime's largest probability difference from Keras (batches of 256) and its label agreement."""
    model = classifier.artifact.model
    classes = len(classifier.labels)
    reference = in_fixed_batches(backends["keras"], x, 256, classes)
    agreement: dict[str, Any] = {}
    candidates: dict[str, Callable[[], npt.NDArray[np.float32]]] = {
        "auto": lambda: classifier.predict_proba(windows),
        "naive": lambda: np.concatenate([np.asarray(model.predict(x[i : i + 1], verbose=0), np.float32)
                                         for i in range(min(len(x), 32))]),
    }
    for name, backend in backends.items():
        if name != "keras":
            candidates[name] = partial(in_fixed_batches, backend, x, 256, classes)
    for name, compute in candidates.items():
        probs = compute()
        ref = reference[: len(probs)]
        agreement[name] = {"windows": len(probs), "max_abs_diff": float(np.abs(probs - ref).max()),
                           "same_label": round(float((probs.argmax(1) == ref.argmax(1)).mean()), 4)}
    return agreement
