"""One ``harstream bench`` run put together: every measurement in turn, into one JSON report.

:func:`run_full` loads the model (``runtime="auto"``, routes measured at
warm-up) and calls each step: the runtimes on real windows, FLOPs and the
matmul peak, the engine's costs, the chain, other models, the load test,
and the targets (the package docstring of :mod:`harstream.tools.bench`
lists what each step measures).
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harstream.model.classifier import Classifier
from harstream.tools.bench.compare import compare_loads, compare_models, streams_per_core
from harstream.tools.bench.data import bench_windows, find_data_dir
from harstream.tools.bench.engine_cost import engine_costs, model_cost, state_bytes_per_stream
from harstream.tools.bench.flops import matmul_peak, model_flops, peak_fractions
from harstream.tools.bench.runtimes import chain_rate, runtimes
from harstream.tools.bench.targets import targets
from harstream.tools.loadtest.generator import SEND_TICK_S

Log = Callable[[str], None]


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.partition(":")[2].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {}
    for dist in ("numpy", "tensorflow-cpu", "tensorflow", "keras", "onnxruntime"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), **versions}


def _header(classifier: Classifier, batches: Sequence[int], repeats: int, quick: bool, model_threads: int,
            data_dir: Path | None) -> dict[str, Any]:
    """The report's first keys: the machine, the run's configuration, the model and its routes."""
    return {
        "machine": _machine(),
        "config": {"batches": list(batches), "repeats": repeats, "quick": quick,
                   "model_threads": model_threads or "tensorflow default", "onnx_threads": 1,
                   "data": str(data_dir) if data_dir else None},
        "model": {"path": str(classifier.artifact.path), "architecture": classifier.artifact.meta.architecture,
                  "parameters": int(classifier.artifact.model.count_params())},
        "routes": {str(k): v for k, v in classifier.routes.items()},
    }


def _add_runtimes(report: dict[str, Any], classifier: Classifier, data_dir: Path | None,
                  batches: Sequence[int], repeats: int, quick: bool, xla: bool, say: Log) -> None:
    """``agreement``, ``runtimes`` and (if any) ``runtime_problems``."""
    windows, source = bench_windows(classifier, data_dir, quick)
    say("timing the runtimes (interleaved repeats)")
    measured = runtimes(classifier, windows, batches, repeats, min_seconds=0.02 if quick else 0.25,
                        naive_calls=3 if quick else 20, xla=xla)
    report["agreement"] = {"source": source, "reference": "keras predict_on_batch, batches of 256",
                           **measured["agreement"]}
    report["runtimes"] = measured["rates"]
    if measured["problems"]:
        report["runtime_problems"] = measured["problems"]


def _add_flops(report: dict[str, Any], classifier: Classifier, quick: bool, model_threads: int,
               say: Log) -> None:
    """``flops_per_window`` and ``matmul_peak_gflops``; each runtime row gets its fraction of the peak."""
    say("counting FLOPs, measuring the matmul peak")
    flops = model_flops(classifier.artifact.model)
    report["flops_per_window"] = flops
    size = 1024 if quick else 2048
    threads = sorted({1, os.cpu_count() or 1})
    peaks = {str(t): round(matmul_peak(size, 3 if quick else 5, t), 1) for t in threads}
    report["matmul_peak_gflops"] = {"size": size, "by_threads": peaks,
                                    "note": "numpy float32 matmul, median; model runtimes are "
                                            f"compared with the {model_threads or os.cpu_count()}-thread peak"}
    peak_fractions(report["runtimes"], flops["total"], peaks, model_threads or (os.cpu_count() or 1))


def _add_engine(report: dict[str, Any], batches: Sequence[int], quick: bool, say: Log) -> None:
    """``state_bytes_per_stream`` and ``engine_costs`` (with the model's cost per stream at the largest batch)."""
    say("measuring engine state per stream (tracemalloc)")
    report["state_bytes_per_stream"] = state_bytes_per_stream(200 if quick else 2000)
    say("measuring the engine's Python cost per chunk and per window")
    report["engine_costs"] = engine_costs(200 if quick else 4000)
    keras_rate = report["runtimes"].get("keras", {}).get(str(max(batches)), {}).get("windows_per_s")
    if keras_rate:
        report["engine_costs"].update(model_cost(keras_rate))


def _add_compared(report: dict[str, Any], classifier: Classifier, compare: Sequence[Path],
                  data_dir: Path | None, batches: Sequence[int], repeats: int, quick: bool, model_threads: int,
                  say: Log) -> None:
    """``models``: this model and each of ``compare`` through the serving path, timed in one run."""
    say(f"timing {len(compare) + 1} models side by side (interleaved repeats)")
    others = [Classifier.load(path, runtime="auto") for path in compare]
    for other in others:
        other.warm_up(repeats=2 if quick else 5)
    windows, _ = bench_windows(classifier, data_dir, quick)
    peaks = report["matmul_peak_gflops"]["by_threads"]
    peak = peaks.get(str(model_threads or os.cpu_count())) or max(peaks.values())
    report["models"] = compare_models([classifier, *others], windows, batches, repeats,
                                      0.02 if quick else 0.25, peak)


def _load(data_dir: Path | None, streams: Sequence[int], duration_s: float, warmup_s: float, aligned: bool,
          serve_args: Sequence[str], send_tick_s: float, say: Log) -> dict[str, Any]:
    """The load test's report (:func:`~harstream.tools.loadtest.run.run_load`); it needs the HAPT dataset."""
    from harstream.tools.loadtest.run import LoadConfig, run_load

    if data_dir is None:
        from harstream.errors import DatasetError

        raise DatasetError("--streams needs the HAPT dataset: pass --data or set $HARSTREAM_DATA")
    say(f"load test: {', '.join(map(str, streams))} streams")
    config = LoadConfig(data_dir, duration_s=duration_s, warmup_s=warmup_s, aligned=aligned,
                        serve_args=tuple(serve_args), send_tick_s=send_tick_s)
    return run_load(streams, config, log=say)


def run_full(
    model: Path | None = None,
    compare: Sequence[Path] = (),
    data: Path | None = None,
    batches: Sequence[int] = (1, 32, 256),
    repeats: int = 5,
    quick: bool = False,
    model_threads: int = 1,
    xla: bool = True,
    streams: Sequence[int] = (),
    duration_s: float = 30.0,
    warmup_s: float = 10.0,
    aligned: bool = False,
    serve_args: Sequence[str] = (),
    send_tick_s: float = SEND_TICK_S,
    log: Log | None = None,
) -> dict[str, Any]:
    """Everything ``harstream bench`` measures, in one run; the JSON report.

    ``model_threads`` is the TensorFlow intra-op thread count (``serve``'s
    default is 1; 0 keeps TensorFlow's own); ONNX Runtime always runs on one
    thread, as served. ``quick`` shrinks every measurement (a smoke test).
    ``streams``, ``duration_s``, ``warmup_s``, ``aligned``, ``serve_args`` and
    ``send_tick_s`` configure the load test (:class:`~harstream.tools.loadtest.run.LoadConfig`).
    """
    from harstream.model.classifier import set_model_threads

    say = log or (lambda _text: None)
    if model_threads:
        set_model_threads(model_threads)
    data_dir = find_data_dir(data)
    say("loading the model (runtime auto: Keras and ONNX Runtime, routes measured at warm-up)")
    classifier = Classifier.load(model, runtime="auto")
    classifier.warm_up(repeats=2 if quick else 5)
    report = _header(classifier, batches, repeats, quick, model_threads, data_dir)
    _add_runtimes(report, classifier, data_dir, batches, repeats, quick, xla, say)
    _add_flops(report, classifier, quick, model_threads, say)
    _add_engine(report, batches, quick, say)
    report["chain_samples_per_s"] = round(chain_rate(repeats=repeats), 1)
    if compare:
        _add_compared(report, classifier, compare, data_dir, batches, repeats, quick, model_threads, say)
    del classifier
    gc.collect()  # the model's memory goes before the load test's engine child loads its own
    if streams:
        def load(args: Sequence[str]) -> dict[str, Any]:
            return _load(data_dir, streams, duration_s, warmup_s, aligned, args, send_tick_s, say)

        # the load test serves the model benchmarked (serve's default unless --model was given)
        given = ["--model", str(model)] if model is not None and "--model" not in serve_args else []
        report["load"] = load([*serve_args, *given])
        report["load"]["streams_per_core"] = streams_per_core(report["load"])
        if compare:
            report["load_compared"] = compare_loads(compare, load, serve_args)
    report["targets"] = targets(report)
    return report
