"""The model's float operations per window, counted from its layers, and this machine's matmul peak.

>>> window_features_flops() > 2 * 2 * 128 * 11 * 65
True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras


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


def peak_fractions(rates: dict[str, Any], flops: int, peaks: dict[str, float], threads: int) -> None:
    """Add GFLOP/s and the fraction of the matmul peak (same thread count) to every rate row."""
    peak = peaks.get(str(threads)) or max(peaks.values())
    for rows in rates.values():
        for row in rows.values() if "windows_per_s" not in rows else [rows]:
            gflops = row["windows_per_s"] * flops / 1e9
            row["gflops_per_s"] = round(gflops, 2)
            row["fraction_of_peak"] = round(gflops / peak, 4)
