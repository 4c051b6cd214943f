"""``bench --compare``: the model beside others (e.g. the one shipped before), measured in one run.

Each model is loaded as ``harstream serve`` loads it (``runtime="auto"``,
routes measured at warm-up) and timed through its serving path on the same
real windows, the repeats of all models interleaved, so the ratios hold on a
noisy machine. Per model: its MFLOP per window, windows/s per batch size
(with the runtime serve routes that batch to), the fraction of this machine's
matmul peak, what the model costs one real-time stream, and its cost against
the first model (the one benchmarked). With a load test, each model also gets
its **streams per core** (:func:`streams_per_core`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream.model.classifier import Classifier, bucket
from harstream.tools.bench.engine_cost import model_cost
from harstream.tools.bench.flops import model_flops
from harstream.tools.bench.runtimes import InterleavedTimer

P99_LIMIT_MS = 100.0
"""A load level counts for streams per core when its p99 is at most this and it lost no window."""


def _label(classifier: Classifier) -> str:
    return str(classifier.artifact.path)


def compare_models(models: Sequence[Classifier], windows: npt.NDArray[np.float32], batches: Sequence[int],
                   repeats: int, min_seconds: float, peak_gflops: float) -> dict[str, Any]:
    """A row for each of ``models`` (the first is the reference), timed on ``windows`` (chain output), interleaved.

    Every classifier must be loaded with ``runtime="auto"`` and warmed up.
    ``peak_gflops`` is the matmul peak at the thread count the models run on.
    """
    need = max(batches)
    raw = np.concatenate([windows] * -(-need // len(windows)))[:need]
    timer = InterleavedTimer(min_seconds)
    for index, classifier in enumerate(models):
        for size in batches:
            timer.add(str(index), size, partial(classifier.predict_proba, raw[:size]))
    rates = timer.run(repeats)
    rows: list[dict[str, Any]] = []
    reference: dict[str, float] = {}
    for index, classifier in enumerate(models):
        flops = model_flops(classifier.artifact.model)["total"]
        per_batch = {}
        for size in batches:
            rate = rates[(str(index), size)]
            per_batch[str(size)] = {
                "windows_per_s": round(rate, 1),
                "route": classifier.routes[bucket(size, classifier.max_batch)],
                "fraction_of_peak": round(rate * flops / 1e9 / peak_gflops, 4),
            }
        best = max(rates[(str(index), size)] for size in batches)
        row: dict[str, Any] = {
            "path": _label(classifier),
            "architecture": classifier.artifact.meta.architecture,
            "parameters": int(classifier.artifact.model.count_params()),
            "weights_sha256": classifier.artifact.meta.weights_sha256,
            "mflop_per_window": round(flops / 1e6, 3),
            "batches": per_batch,
            "best_windows_per_s": round(best, 1),
            **model_cost(best),
        }
        if index == 0:
            reference = {"flops": flops, "rate": best}
        row["vs_first"] = {"mflop": round(flops / reference["flops"], 3),
                           "cost_per_window": round(reference["rate"] / best, 3)}
        rows.append(row)
    return {"reference": _label(models[0]), "repeats": repeats, "peak_gflops": peak_gflops,
            "how": "serving path (predict_proba, runtime auto) on the same windows, repeats interleaved; "
                   "cost_per_window = the first model's windows/s over this one's, at each one's best batch",
            "models": rows}


def level_met(level: dict[str, Any], limit_ms: float = P99_LIMIT_MS) -> bool:
    """A load level kept p99 <= ``limit_ms`` and lost no window."""
    p99 = level["latency_ms"].get("p99")
    return p99 is not None and p99 <= limit_ms and level["windows"]["lost"] == 0


def runs_by_count(load: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The load test's measured levels (those without a problem), by stream count (a count may run twice)."""
    by_count: dict[int, list[dict[str, Any]]] = {}
    for level in load.get("levels", []):
        if not level.get("problem"):
            by_count.setdefault(level["streams"], []).append(level)
    return by_count


def streams_per_core(load: dict[str, Any], limit_ms: float = P99_LIMIT_MS) -> dict[str, Any] | None:
    """Streams one core carries: the largest count with p99 <= ``limit_ms`` and nothing lost in every run,
    over the engine's CPU there (its model process included; 100 % = one core). None if no level met it.

    >>> level = {"streams": 2000, "latency_ms": {"p99": 40.0}, "windows": {"lost": 0},
    ...          "engine": {"cpu_pct": 80.0}}
    >>> streams_per_core({"levels": [level]})["streams_per_core"]
    2500
    """
    by_count = runs_by_count(load)
    ok = [count for count, runs in by_count.items() if all(level_met(lv, limit_ms) for lv in runs)]
    if not ok:
        return None
    count = max(ok)
    cpu = float(np.median([lv["engine"]["cpu_pct"] for lv in by_count[count]]))
    return {"streams": count, "engine_cpu_pct": round(cpu, 1), "p99_limit_ms": limit_ms,
            "streams_per_core": int(count / (cpu / 100.0)) if cpu > 0 else None}


def compare_loads(paths: Sequence[Path], run_load: Callable[[Sequence[str]], dict[str, Any]],
                  serve_args: Sequence[str]) -> list[dict[str, Any]]:
    """The load test once more for each compared model (``serve --model PATH``), in order."""
    out = []
    for path in paths:
        load = run_load([*serve_args, "--model", str(path)])
        load["streams_per_core"] = streams_per_core(load)
        out.append({"path": str(path), "load": load})
    return out
