"""``harstream bench``: what the model, the engine's state and the live path cost on this machine.

Everything is measured in one run, so the ratios are comparable on a shared,
noisy machine (medians over repeats, the runtimes interleaved repeat by
repeat):

* the **naive baseline**: Keras ``model.predict`` on one window at a time;
* the **serving path** (:meth:`Classifier.predict_proba` with ``runtime="auto"``,
  routed as ``harstream serve`` routes) and each backend alone — ``keras``
  (``predict_on_batch``), ``onnx`` (ONNX Runtime, one thread) and ``xla``
  (the Keras model under ``tf.function(jit_compile=True)``, bench only) — at
  each batch size, with their agreement with Keras on real windows of the
  test subjects;
* the model's **FLOPs** per window, counted from its layers
  (:func:`model_flops`), this machine's float32 **matmul peak** (numpy), and
  the fraction of it each runtime reaches;
* the engine's **state per stream** (:func:`state_bytes_per_stream`, tracemalloc) and its
  Python time per chunk and per window (:func:`engine_costs`);
* the signal chain's samples/s; other models' windows/s (``--compare``);
* with ``--streams``, the live path end to end (:mod:`harstream.tools.loadtest`).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES, WINDOW
from harstream.model.classifier import Backend, Classifier, bucket, standardise
from harstream.signal import chain
from harstream.tools.loadtest import SEND_TICK_S

if TYPE_CHECKING:
    import keras

TEST_SUBJECTS: tuple[int, ...] = (2, 4, 9, 10, 12, 13, 18, 20, 24)
"""Subjects whose windows check the runtimes' agreement (never trained on)."""
KIB = 1024


# --- timing ----------------------------------------------------------------------------------


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


class _Timer:
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


# --- backends ----------------------------------------------------------------------------------


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


def _in_batches(backend: Backend, x: npt.NDArray[np.float32], batch: int) -> npt.NDArray[np.float32]:
    """``backend`` over ``x`` in calls of exactly ``batch`` windows (the last one zero-padded)."""
    parts = []
    for begin in range(0, len(x), batch):
        part = x[begin : begin + batch]
        n = len(part)
        if n < batch:
            part = np.concatenate([part, np.zeros((batch - n, *part.shape[1:]), np.float32)])
        parts.append(np.asarray(backend(part))[:n])
    return np.concatenate(parts)


# --- real windows --------------------------------------------------------------------------------


def find_data_dir(data: Path | str | None = None) -> Path | None:
    """The HAPT folder: ``data``, else ``$HARSTREAM_DATA``, else ``../shared/data/hapt`` beside
    the checkout, else the user cache; None when none of them holds ``RawData/``."""
    from harstream.paths import ENV_VAR, default_data_dir

    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"
    candidates = [Path(data)] if data is not None else [
        *([Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []), beside, default_data_dir()]
    for path in candidates:
        if (path / "RawData").is_dir() or (path.name == "RawData" and path.is_dir()):
            return path
    return None


def real_windows(data_dir: Path, recordings: int = 6, per_recording: int = 64,
                 subjects: Sequence[int] = TEST_SUBJECTS) -> npt.NDArray[np.float32]:
    """Chain-output windows (n, 128, 9) of test-subject recordings, on the engine's grid.

    ``recordings`` recordings spread over the subjects, ``per_recording``
    windows spread over each, filtered by :func:`chain.process_recording`
    exactly as the engine filters a stream.
    """
    from harstream.data.hapt import list_experiments, read_recording
    from harstream.signal.windows import window_ends

    pairs = [p for p in list_experiments(data_dir) if p[1] in set(subjects)]
    chosen = [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(recordings, len(pairs))).astype(int)]
    out = []
    for experiment, user in dict.fromkeys(chosen):
        channels = chain.process_recording(read_recording(data_dir, experiment, user).samples, chunk=25)
        ends = window_ends(0, len(channels))
        pick = ends[np.linspace(0, len(ends) - 1, min(per_recording, len(ends))).astype(int)]
        out.append(channels[pick[:, None] - WINDOW + 1 + np.arange(WINDOW)[None, :]])
    return np.concatenate(out).astype(np.float32)


# --- FLOPs ------------------------------------------------------------------------------------


def _size(shape: Sequence[int | None]) -> int:
    """Elements of one sample of a batched shape (the batch dimension dropped)."""
    return int(np.prod([d for d in list(shape)[1:] if d is not None], dtype=np.int64))


def window_features_flops(steps: int = 128, channels: int = 9) -> int:
    """An estimate of :class:`~harstream.model.layers.WindowFeatures`' float operations per window.

    Dominated by the two 128-point DFT matmuls over 11 series (2 x 2*128*11*65);
    plus the element-wise statistics, each counted as one operation per
    element touched. The sort behind the percentiles (11 x 128 log2 128
    comparisons) is not a float operation and is not counted.
    """
    series, freqs, bands = channels + 2, steps // 2 + 1, 8
    dft = 2 * (2 * steps * series * freqs)
    power = 3 * series * freqs + 2 * series * freqs * bands + series * bands
    physical = 2 * steps * channels
    magnitudes = 2 * steps * 6 + 2 * steps
    moments = steps * series * 5  # mean, centring, square, mean, + sqrt
    correlations = 6 * (2 * steps + 3)
    steps_diff = (steps - 1) * channels * 5
    gravity = steps * 6 + 30
    return dft + power + physical + magnitudes + moments + correlations + steps_diff + gravity


def model_flops(model: keras.Model) -> dict[str, Any]:
    """Float operations per window of a Keras model, counted layer by layer (a multiply-add = 2).

    * ``Conv1D``: 2·k·cin·cout·out_len (+ bias); ``Dense``: 2·in·out (+ bias and activation);
    * ``LSTM``: 2·4·(in + units)·units·steps for the matmuls, plus 13·units·steps for
      the gates (bias 4, activations 5, cell and hidden updates 4 per unit);
    * ``BatchNormalization`` and ``Normalization`` (inference): 2 per element;
      ``Activation``, ``Add``/``Subtract``/``Multiply``, pooling: 1 per element;
    * ``WindowFeatures``: estimated (:func:`window_features_flops`);
    * data movement (slicing, ``Concatenate``, ``Dropout`` at inference, input): 0.

    Layers of any other kind are listed under ``not_counted``.
    """
    rows: list[dict[str, Any]] = []
    not_counted: list[str] = []
    free: list[str] = []
    operations = getattr(model, "operations", None) or model.layers
    for op in operations:
        kind = type(op).__name__
        try:
            count, how = _op_flops(op, kind)
        except Exception as exc:  # an exotic layer: say so rather than guess
            count, how = None, f"shape unknown ({type(exc).__name__})"
        if count is None:
            not_counted.append(f"{op.name} ({kind}): {how}")
            continue
        if count:
            rows.append({"layer": op.name, "type": kind, "flops": int(count), "how": how})
        else:
            free.append(f"{op.name} ({kind})")
        if kind == "WindowFeatures":
            not_counted.append(f"{op.name}: its sort for the percentiles (about 11*128*log2(128) = 9,856 "
                               "comparisons per window, not float operations)")
    total = sum(r["flops"] for r in rows)
    estimated = sum(r["flops"] for r in rows if r["how"].startswith("estimate"))
    return {"total": int(total), "estimated_part": int(estimated), "layers": rows,
            "zero_cost": free, "not_counted": not_counted}


_ZERO = {"InputLayer", "Dropout", "Concatenate", "GetItem", "Slice", "Reshape", "Flatten", "RepeatVector",
         "Permute", "StridedSlice", "SpatialDropout1D", "GaussianNoise"}
_ELEMENTWISE = {"Activation": 1, "ReLU": 1, "Add": 1, "Subtract": 1, "Multiply": 1, "Softmax": 3,
                "BatchNormalization": 2, "Normalization": 2, "LayerNormalization": 5}


def _activation_cost(layer: Any, units: int) -> int:
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    return {"linear": 0, "relu": units, "softmax": 3 * units, "sigmoid": units, "tanh": units}.get(
        activation, units)


def _op_flops(op: Any, kind: str) -> tuple[int | None, str]:
    if kind in _ZERO:
        return 0, "data movement"
    if kind == "Conv1D":
        k, cin, cout = (int(d) for d in op.kernel.shape)
        out_len = int(op.output.shape[1])
        bias = out_len * cout if op.use_bias else 0
        return 2 * k * cin * cout * out_len + bias + _activation_cost(op, out_len * cout), \
            f"2*k*cin*cout*out_len = 2*{k}*{cin}*{cout}*{out_len}"
    if kind == "Dense":
        fan_in, fan_out = (int(d) for d in op.kernel.shape)
        rows = _size(op.input.shape) // fan_in
        bias = rows * fan_out if op.use_bias else 0
        return rows * (2 * fan_in * fan_out) + bias + rows * _activation_cost(op, fan_out), \
            f"2*in*out = 2*{fan_in}*{fan_out}" + (f" x {rows} rows" if rows > 1 else "")
    if kind == "LSTM":
        steps, fan_in = int(op.input.shape[1]), int(op.input.shape[2])
        units = int(op.units)
        return steps * (2 * 4 * (fan_in + units) * units + 13 * units), \
            f"steps*(2*4*(in+units)*units + 13*units) = {steps}*(2*4*({fan_in}+{units})*{units} + 13*{units})"
    if kind == "WindowFeatures":
        shape = op.input.shape
        return window_features_flops(int(shape[1]), int(shape[2])), \
            "estimate: 2 DFT matmuls 2*2*128*11*65 + element-wise statistics (sort not counted)"
    if kind == "GravityDirection":
        steps = int(op.input.shape[1])
        return 2 * steps * 9 + 6 * steps + 30, "estimate: un-standardise, mean, normalise, arccos"
    if kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D", "AveragePooling1D", "MaxPooling1D"):
        return _size(op.input.shape), "1 per input element"
    if kind in _ELEMENTWISE:
        return _ELEMENTWISE[kind] * _size(op.output.shape), f"{_ELEMENTWISE[kind]} per element"
    return None, "no rule for this layer type"


def matmul_peak(size: int = 2048, repeats: int = 5, threads: int | None = None) -> float:
    """This machine's float32 matmul rate, GFLOP/s: median of ``size`` x ``size`` numpy products.

    ``threads`` limits the BLAS threads (threadpoolctl; None: its default, usually every core).
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            np.matmul(a, b)
            times.append(time.perf_counter() - started)
    return 2.0 * size**3 / statistics.median(times) / 1e9


# --- engine state ---------------------------------------------------------------------------------


def _uniform_proba(w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A stand-in model for measuring the engine alone: uniform probabilities."""
    return np.full((len(w), len(ACTIVITIES)), 1.0 / len(ACTIVITIES), np.float32)


def state_bytes_per_stream(streams: int = 2000, chunk: int = 25, chunks: int = 6) -> dict[str, Any]:
    """Bytes of engine state per stream, by tracemalloc around an :class:`~harstream.engine.core.Engine`.

    ``streams`` streams each send one ``chunk``-sample chunk (``after_one_chunk``),
    then more until at least 128 samples went in (``steady``: the ring buffer
    holds its full 127-sample tail; the windows cut are taken away first). The
    model is a stand-in (uniform probabilities): only the engine's own state
    is measured.
    """
    from harstream.engine.core import Engine
    from harstream.protocol import Chunk

    rng = np.random.default_rng(0)
    rounds = max(chunks, math.ceil(WINDOW / chunk))
    batches = [
        [Chunk(f"s{i:05d}", k * chunk, 50, None, rng.standard_normal((chunk, 6)).astype(np.float32))
         for i in range(streams)]
        for k in range(rounds)
    ]
    engine = Engine(_uniform_proba, ACTIVITIES, max_streams=streams)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        engine.ingest(batches[0])
        one = tracemalloc.get_traced_memory()[0] - base
        for batch in batches[1:]:
            engine.ingest(batch)
            engine.take_pending()
        gc.collect()
        steady = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return {
        "streams": streams, "chunk": chunk,
        "after_one_chunk": round(one / streams, 1),
        "steady": round(steady / streams, 1),
        "steady_after_samples": rounds * chunk,
        "target_bytes": 16 * KIB,
        "met": steady / streams <= 16 * KIB,
    }


def engine_costs(streams: int = 1000, chunk: int = 25, rounds: int = 11) -> dict[str, Any]:
    """Python time of the engine's hot path per chunk and per window, the model left out.

    Everything here holds the GIL, so the two serving threads share one
    core's worth of it: ``decode`` (:func:`~harstream.protocol.decode_chunk`),
    ``ingest`` (:meth:`Engine.ingest` of one chunk from each of ``streams``
    streams per call, as a serving turn batches them), ``classify`` (the
    bookkeeping and smoothing of :meth:`Engine.classify_pending` around a
    stand-in model) and ``encode`` (:func:`~harstream.protocol.encode_prediction`).
    Socket calls are not included. ``gil_us_per_stream_s`` is what one
    real-time stream costs per second (2 chunks, 50/64 windows);
    ``streams_per_gil_core`` the streams one core of it would carry.
    """
    from harstream import HOP, SAMPLE_RATE_HZ
    from harstream.engine.core import Engine
    from harstream.protocol import decode_chunk, encode_chunk, encode_prediction

    rng = np.random.default_rng(0)
    frames = [
        [encode_chunk(f"s{i:05d}", k * chunk, rng.standard_normal((chunk, 6)), t0=1.7e9 + k * 0.5)
         for i in range(streams)]
        for k in range(rounds)
    ]
    engine = Engine(_uniform_proba, ACTIVITIES, max_streams=streams)
    decode = ingest = classify = encode = 0.0
    windows = 0
    for batch in frames:
        started = time.perf_counter()
        chunks = [decode_chunk(f) for f in batch]
        decode += time.perf_counter() - started
        started = time.perf_counter()
        engine.ingest(chunks)
        ingest += time.perf_counter() - started
        pending = engine.take_pending()
        if pending:
            started = time.perf_counter()
            predictions = engine.classify_pending(pending)
            classify += time.perf_counter() - started
            started = time.perf_counter()
            for p in predictions:
                encode_prediction(p)
            encode += time.perf_counter() - started
            windows += len(predictions)
    n_chunks = streams * rounds
    per = {
        "decode_us_per_chunk": round(1e6 * decode / n_chunks, 2),
        "ingest_us_per_chunk": round(1e6 * ingest / n_chunks, 2),
        "classify_us_per_window": round(1e6 * classify / max(windows, 1), 2),
        "encode_us_per_window": round(1e6 * encode / max(windows, 1), 2),
    }
    chunks_per_s = SAMPLE_RATE_HZ / chunk
    windows_per_s = SAMPLE_RATE_HZ / HOP
    gil = (chunks_per_s * (per["decode_us_per_chunk"] + per["ingest_us_per_chunk"])
           + windows_per_s * (per["classify_us_per_window"] + per["encode_us_per_window"]))
    return {"streams": streams, "chunk": chunk, "windows": windows, **per,
            "gil_us_per_stream_s": round(gil, 1), "streams_per_gil_core": int(1e6 / gil) if gil else None}


# --- the whole bench ------------------------------------------------------------------------------


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
    backends: dict[str, Backend] = {"keras": lambda b: np.asarray(model.predict_on_batch(b), np.float32)}
    if "onnx" in classifier.backends:
        backends["onnx"] = classifier.backends["onnx"]
    problems: dict[str, str] = {}
    if xla:
        try:
            compiled = xla_backend(model)
            compiled(tiled[:1])
            backends["xla"] = compiled
        except Exception as exc:  # XLA cannot compile every graph: report it, go on
            problems["xla"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    timer = _Timer(min_seconds)
    timer.add("naive", 1, lambda: [model.predict(tiled[i : i + 1], verbose=0) for i in range(naive_calls)],
              windows=naive_calls, calls=1)
    for size in batches:
        timer.add("auto", size, partial(classifier.predict_proba, raw[:size]))
        for name, backend in backends.items():
            timer.add(name, size, partial(backend, tiled[:size]))
    rates = timer.run(repeats)
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
    reference = _in_batches(backends["keras"], x, 256)
    agreement: dict[str, Any] = {}
    candidates: dict[str, Callable[[], npt.NDArray[np.float32]]] = {
        "auto": lambda: classifier.predict_proba(windows),
        "naive": lambda: np.concatenate([np.asarray(model.predict(x[i : i + 1], verbose=0), np.float32)
                                         for i in range(min(len(x), 32))]),
    }
    for name, backend in backends.items():
        if name != "keras":
            candidates[name] = partial(_in_batches, backend, x, 256)
    for name, compute in candidates.items():
        probs = compute()
        ref = reference[: len(probs)]
        agreement[name] = {"windows": len(probs), "max_abs_diff": float(np.abs(probs - ref).max()),
                           "same_label": round(float((probs.argmax(1) == ref.argmax(1)).mean()), 4)}
    return {"rates": out, "agreement": agreement, "problems": problems, "backends": sorted(backends)}


def _peak_fractions(rates: dict[str, Any], flops: int, peaks: dict[str, float], threads: int) -> None:
    """Add GFLOP/s and the fraction of the matmul peak (same thread count) to every rate row."""
    peak = peaks.get(str(threads)) or max(peaks.values())
    for rows in rates.values():
        for row in rows.values() if "windows_per_s" not in rows else [rows]:
            gflops = row["windows_per_s"] * flops / 1e9
            row["gflops_per_s"] = round(gflops, 2)
            row["fraction_of_peak"] = round(gflops / peak, 4)


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
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Everything ``harstream bench`` measures, in one run; the JSON report.

    ``model_threads`` is the TensorFlow intra-op thread count (``serve``'s
    default is 1; 0 keeps TensorFlow's own); ONNX Runtime always runs on one
    thread, as served. ``quick`` shrinks every measurement (a smoke test).
    ``streams``, ``duration_s``, ``warmup_s``, ``aligned``, ``serve_args`` and
    ``send_tick_s`` configure the load test (:class:`~harstream.tools.loadtest.LoadConfig`).
    """
    from harstream.model.classifier import set_model_threads

    say = log or (lambda _text: None)
    if model_threads:
        set_model_threads(model_threads)
    data_dir = find_data_dir(data)
    say("loading the model (runtime auto: Keras and ONNX Runtime, routes measured at warm-up)")
    classifier = Classifier.load(model, runtime="auto")
    classifier.warm_up(repeats=2 if quick else 5)
    report: dict[str, Any] = {
        "machine": _machine(),
        "config": {"batches": list(batches), "repeats": repeats, "quick": quick,
                   "model_threads": model_threads or "tensorflow default", "onnx_threads": 1,
                   "data": str(data_dir) if data_dir else None},
        "model": {"path": str(classifier.artifact.path), "architecture": classifier.artifact.meta.architecture,
                  "parameters": int(classifier.artifact.model.count_params())},
        "routes": {str(k): v for k, v in classifier.routes.items()},
    }
    if data_dir is not None:
        windows = real_windows(data_dir, recordings=3 if quick else 6, per_recording=32 if quick else 64)
        source = f"{len(windows)} windows of test-subject recordings (chain.process_recording, engine grid)"
    else:
        from harstream.model.onnx_runtime import verification_windows

        meta = classifier.artifact.meta
        standard = verification_windows(WINDOW, len(meta.channels), 256)
        windows = (standard * np.asarray(meta.norm_std, np.float32) + np.asarray(meta.norm_mean, np.float32))
        source = "synthetic random walks (no HAPT data found)"
    say("timing the runtimes (interleaved repeats)")
    measured = runtimes(classifier, windows, batches, repeats, min_seconds=0.02 if quick else 0.25,
                        naive_calls=3 if quick else 20, xla=xla)
    report["agreement"] = {"source": source, "reference": "keras predict_on_batch, batches of 256",
                           **measured["agreement"]}
    report["runtimes"] = measured["rates"]
    if measured["problems"]:
        report["runtime_problems"] = measured["problems"]
    say("counting FLOPs, measuring the matmul peak")
    flops = model_flops(classifier.artifact.model)
    report["flops_per_window"] = flops
    size = 1024 if quick else 2048
    threads = sorted({1, os.cpu_count() or 1})
    peaks = {str(t): round(matmul_peak(size, 3 if quick else 5, t), 1) for t in threads}
    report["matmul_peak_gflops"] = {"size": size, "by_threads": peaks,
                                    "note": "numpy float32 matmul, median; model runtimes are "
                                            f"compared with the {model_threads or os.cpu_count()}-thread peak"}
    _peak_fractions(report["runtimes"], flops["total"], peaks, model_threads or (os.cpu_count() or 1))
    say("measuring engine state per stream (tracemalloc)")
    report["state_bytes_per_stream"] = state_bytes_per_stream(200 if quick else 2000)
    say("measuring the engine's Python cost per chunk and per window")
    report["engine_costs"] = engine_costs(200 if quick else 1000)
    keras_256 = report["runtimes"].get("keras", {}).get(str(max(batches)), {}).get("windows_per_s")
    if keras_256:
        from harstream import HOP, SAMPLE_RATE_HZ

        model_us = 1e6 * SAMPLE_RATE_HZ / HOP / keras_256
        report["engine_costs"]["model_us_per_stream_s"] = round(model_us, 1)
        report["engine_costs"]["streams_per_model_core"] = int(1e6 / model_us)
    report["chain_samples_per_s"] = round(chain_rate(repeats=repeats), 1)
    if compare:
        others = [classifier, *(Classifier.load(p) for p in compare)]
        report["models"] = run_bench(others, batch=max(batches), repeats=repeats)["models"]
    del classifier
    gc.collect()
    if streams:
        from harstream.tools.loadtest import LoadConfig, run_load

        if data_dir is None:
            from harstream.errors import DatasetError

            raise DatasetError("--streams needs the HAPT dataset: pass --data or set $HARSTREAM_DATA")
        say(f"load test: {', '.join(map(str, streams))} streams")
        config = LoadConfig(data_dir, duration_s=duration_s, warmup_s=warmup_s, aligned=aligned,
                            serve_args=tuple(serve_args), send_tick_s=send_tick_s)
        report["load"] = run_load(streams, config, log=say)
    report["targets"] = targets(report)
    return report


def plot_load(report: dict[str, Any], path: Path, target_ms: float = 100.0) -> None:
    """PNG of the load test: latency p50/p99/max (log scale) against streams, windows lost marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv for lv in (report.get("load") or {}).get("levels", [])
              if not lv.get("problem") and lv["latency_ms"].get("p99") is not None]
    if not levels:
        raise ValueError("the report has no measured load level to plot")
    n = [lv["streams"] for lv in levels]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=90)
    for key, style in (("max", ":"), ("p99", "-"), ("p50", "--")):
        ax.plot(n, [lv["latency_ms"][key] for lv in levels], style, marker="o", label=f"latency {key}")
    ax.axhline(target_ms, color="tab:red", lw=0.8, label=f"target p99 <= {target_ms:g} ms")
    for lv in levels:
        if lv["windows"]["lost"]:
            ax.annotate(f"{lv['windows']['lost']:,} lost", (lv["streams"], lv["latency_ms"]["p99"]),
                        textcoords="offset points", xytext=(-10, 8), fontsize=8, color="tab:red")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time streams (50 Hz, 25-sample chunks)")
    ax.set_ylabel("chunk sent -> prediction received (ms)")
    machine = report.get("machine", {})
    ax.set_title(f"harstream serve over loopback, {machine.get('nproc', '?')} cores "
                 f"({machine.get('cpu', '?')}); generator and subscriber on the same machine", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _p99_met(level: dict[str, Any]) -> bool:
    """A load level kept p99 <= 100 ms and lost no window."""
    p99 = level["latency_ms"].get("p99")
    return p99 is not None and p99 <= 100.0 and level["windows"]["lost"] == 0


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The project's performance targets, each with the measured value and whether it is met."""
    out: dict[str, Any] = {}
    rates = report.get("runtimes", {})
    keras_256 = rates.get("keras", {}).get("256", {}).get("windows_per_s")
    if keras_256:
        best = max((name for name in rates if name != "naive" and "256" in rates[name]),
                   key=lambda name: rates[name]["256"]["windows_per_s"])
        speedup = rates[best]["256"]["windows_per_s"] / keras_256
        out["batch256_speedup_vs_keras"] = {"target": 1.5, "best": best, "value": round(speedup, 3),
                                            "met": speedup >= 1.5}
    state = report.get("state_bytes_per_stream")
    if state:
        out["state_per_stream_bytes"] = {"target": 16 * KIB, "value": state["steady"], "met": state["met"]}
    levels = [lv for lv in (report.get("load") or {}).get("levels", []) if not lv.get("problem")]
    if levels:
        by_count: dict[int, list[dict[str, Any]]] = {}
        for lv in levels:
            by_count.setdefault(lv["streams"], []).append(lv)
        # a count measured more than once is met only if every one of its runs met it
        ok = [count for count, runs in by_count.items() if all(_p99_met(lv) for lv in runs)]
        out["largest_streams_p99_le_100ms"] = max(ok) if ok else None
        if 4000 in by_count:
            runs = by_count[4000]
            p99s = [lv["latency_ms"].get("p99") for lv in runs]
            measured = [p for p in p99s if p is not None]
            out["streams_4000"] = {
                "target": "p99 <= 100 ms, no window lost",
                "p99_ms": float(np.median(measured)) if measured else None,  # the median run
                "runs_p99_ms": p99s,
                "lost": sum(lv["windows"]["lost"] for lv in runs),
                "runs_met": sum(_p99_met(lv) for lv in runs),
                "runs": len(runs),
                "met": all(_p99_met(lv) for lv in runs),
            }
        one = next((lv for lv in levels if lv["streams"] == 1), None)
        if one is not None:
            p50 = one["latency_ms"].get("p50")
            out["one_stream_p50"] = {"target_ms": 5.0, "value_ms": p50, "met": p50 is not None and p50 <= 5.0}
    return out
