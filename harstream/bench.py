"""``harstream bench``: measured throughput of the model and the signal chain on this machine.

Numbers are medians over repeats; compare models by running them in the
same invocation (``--model A --compare B``), since shared machines are noisy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import chain
from .runtime import Classifier


def _median_rate(work: Callable[[], None], items: int, repeats: int) -> float:
    work()  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        rates.append(items / (time.perf_counter() - started))
    return statistics.median(rates)


def model_rate(classifier: Classifier, batch: int = 256, batches: int = 8, repeats: int = 5) -> float:
    """Windows per second through ``predict_proba`` at the given batch size (median)."""
    x = np.random.default_rng(0).standard_normal((batch * batches, 128, 9)).astype(np.float32)

    def work() -> None:
        for i in range(0, len(x), batch):
            classifier.predict_proba(x[i : i + batch])

    return _median_rate(work, len(x), repeats)


def chain_rate(streams: int = 1000, chunk: int = 25, repeats: int = 5) -> float:
    """Samples per second through the signal chain, ``streams`` chunks per vectorised call."""
    x = np.random.default_rng(0).standard_normal((streams, chunk, 6)).astype(np.float32)
    state = chain.initial_state(x[:, 0])

    def work() -> None:
        chain.process(x, state)

    return _median_rate(work, streams * chunk, repeats)


def run_bench(models: list[Classifier], batch: int = 256, repeats: int = 5) -> dict[str, Any]:
    """Model windows/s for each model, and chain samples/s, measured in one run."""
    result: dict[str, Any] = {"batch": batch, "repeats": repeats, "models": {}}
    for clf in models:
        result["models"][str(clf.artifact.path)] = {
            "architecture": clf.artifact.meta.architecture,
            "parameters": int(clf.artifact.model.count_params()),
            "windows_per_s": round(model_rate(clf, batch, repeats=repeats), 1),
        }
    result["chain_samples_per_s"] = round(chain_rate(repeats=repeats), 1)
    return result
