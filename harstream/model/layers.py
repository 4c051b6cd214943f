"""Custom Keras layers of harstream's models, registered for safe-mode loading.

:func:`harstream.model.artifact.load` imports this module before loading a
``.keras`` file, so models using these layers load with ``safe_mode=True``
(no lambdas, no arbitrary code).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops


class _PhysicalUnitsLayer(keras.layers.Layer):  # type: ignore[misc]
    """A layer that reads standardised windows and computes in physical units (g, rad/s).

    ``mean``/``std`` are the model's standardisation statistics (saved in the
    layer's config), so the layer can undo the standardisation in-graph.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]

    def physical(self, inputs: Any) -> Any:
        """``inputs`` with the standardisation undone."""
        return inputs * ops.convert_to_tensor(self.std) + ops.convert_to_tensor(self.mean)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="harstream")
class GravityDirection(_PhysicalUnitsLayer):
    """Direction of gravity in the phone's frame, per window: unit vector and its angles.

    Input: standardised windows (batch, time, 9) in the chain's channel order;
    ``mean``/``std`` undo the standardisation, so gravity = total_acc -
    body_acc is in g. Output (batch, 6): the window-mean gravity's unit
    vector and the angle (radians) between it and each phone axis — the
    cue that tells SITTING from STANDING.
    """


    def call(self, inputs: Any) -> Any:
        raw = self.physical(inputs)
        gravity = ops.mean(raw[..., 6:9] - raw[..., 0:3], axis=1)
        norm = ops.sqrt(ops.sum(gravity * gravity, axis=-1, keepdims=True) + 1e-9)
        unit = gravity / norm
        angles = ops.arccos(ops.clip(unit, -1.0, 1.0))
        return ops.concatenate([unit, angles], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], 6)


_PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0)
_BAND_BINS = ((1, 3), (3, 6), (6, 10), (10, 16), (16, 24), (24, 34), (34, 48), (48, 65))
"""Spectral bands as half-open ranges of DFT bins of a 128-sample window (bin k = k * 50 / 128 Hz:
0.4-0.8, 1.2-2.0, 2.3-3.5, 3.9-5.9, 6.3-9.0, 9.4-12.9, 13.3-18.4, 18.8-25 Hz)."""


@keras.saving.register_keras_serializable(package="harstream")
class WindowFeatures(_PhysicalUnitsLayer):
    """Hand-crafted statistics of each window, computed inside the model (214 values).

    Input: standardised windows (batch, time, 9) in the chain's channel order
    (body_acc, gyro, total_acc); ``mean``/``std`` undo the standardisation.
    Output, all from physical units: the gravity direction (unit vector and
    axis angles, 6); for the 9 channels plus the body-acc and gyro
    magnitudes (11 series): mean, std, min, max, the 10/25/50/75/90th
    percentiles and log(1 + energy) in 8 spectral bands (187); the
    correlations between the body-acc axes and between the gyro axes (6);
    log std of the first difference of each channel (9) and log std of
    body_acc and gyro (6). These are the window statistics that tell
    SITTING from STANDING across people far better than the raw sequence does.

    >>> import numpy as np
    >>> layer = WindowFeatures([0.0] * 9, [1.0] * 9)
    >>> tuple(layer(np.random.default_rng(0).normal(size=(2, 128, 9)).astype("float32")).shape)
    (2, 214)
    """

    features = 214

    def __init__(self, mean: Sequence[float], std: Sequence[float], percentile_stride: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(mean, std, **kwargs)
        if percentile_stride not in (1, 2, 4, 8):
            raise ValueError(f"percentile_stride: expected 1, 2, 4 or 8, got {percentile_stride!r}")
        self.percentile_stride = int(percentile_stride)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "percentile_stride": self.percentile_stride}

    def build(self, input_shape: Sequence[int | None]) -> None:
        if input_shape[1] != 128:
            raise ValueError(f"WindowFeatures: expected windows of 128 samples, got shape {input_shape}")
        window = 128
        t = np.arange(window)[:, None]
        freqs = np.arange(window // 2 + 1)
        angle = 2.0 * np.pi * t * freqs[None, :] / window
        self._cos = np.cos(angle).astype("float32")
        self._sin = np.sin(angle).astype("float32")
        self._bands = np.stack(
            [((freqs >= lo) & (freqs < hi)).astype("float32") for lo, hi in _BAND_BINS], axis=1
        )
        sampled = window // self.percentile_stride
        positions = [q / 100.0 * (sampled - 1) for q in _PERCENTILES]
        self._lower = [int(np.floor(p)) for p in positions]
        self._upper = [min(int(np.floor(p)) + 1, sampled - 1) for p in positions]
        self._frac = [float(p - np.floor(p)) for p in positions]

    def call(self, inputs: Any) -> Any:
        raw = self.physical(inputs)
        body, gyro, total = raw[..., 0:3], raw[..., 3:6], raw[..., 6:9]
        gravity = ops.mean(total - body, axis=1)
        unit = gravity / ops.sqrt(ops.sum(gravity * gravity, axis=-1, keepdims=True) + 1e-9)
        angles = ops.arccos(ops.clip(unit, -1.0, 1.0))
        magnitudes = [
            ops.sqrt(ops.sum(part * part, axis=-1, keepdims=True) + 1e-12) for part in (body, gyro)
        ]
        series = ops.concatenate([raw, *magnitudes], axis=-1)  # (batch, time, 11)
        mean = ops.mean(series, axis=1)
        centred = series - mean[:, None, :]
        std = ops.sqrt(ops.mean(centred * centred, axis=1) + 1e-12)
        # (the sort dominates the layer's cost: a stride > 1 sorts every k-th sample only)
        sampled = series if self.percentile_stride == 1 else series[:, :: self.percentile_stride, :]
        ordered = ops.sort(ops.transpose(sampled, (0, 2, 1)), axis=-1)  # (batch, 11, time / stride)
        percentiles = [
            ordered[..., lo] * (1.0 - frac) + ordered[..., hi] * frac
            for lo, hi, frac in zip(self._lower, self._upper, self._frac, strict=True)
        ]
        real = ops.einsum("btc,tf->bcf", centred, ops.convert_to_tensor(self._cos))
        imag = ops.einsum("btc,tf->bcf", centred, ops.convert_to_tensor(self._sin))
        power = real * real + imag * imag  # (batch, 11, freqs)
        band_power = ops.matmul(power, ops.convert_to_tensor(self._bands))  # (batch, 11, bands)
        bands = ops.log1p(ops.reshape(band_power, (-1, 11 * len(_BAND_BINS))))
        pairs = [(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)]
        # (+1e-9: a still axis gets correlation ~0 instead of a division by zero)
        correlations = [
            ops.mean(centred[..., a] * centred[..., b], axis=1) / (std[:, a] * std[:, b] + 1e-9)
            for a, b in pairs
        ]
        step = raw[:, 1:, :] - raw[:, :-1, :]
        step_centred = step - ops.mean(step, axis=1, keepdims=True)
        step_std = ops.sqrt(ops.mean(step_centred * step_centred, axis=1) + 1e-12)
        return ops.concatenate(
            [
                unit, angles, mean, std, ops.min(series, axis=1), ops.max(series, axis=1),
                *percentiles, bands, ops.stack(correlations, axis=-1),
                ops.log(step_std + 1e-6), ops.log(std[:, 0:6] + 1e-6),
            ],
            axis=-1,
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.features)


@keras.saving.register_keras_serializable(package="harstream")
class GravityFrame(_PhysicalUnitsLayer):
    """Motion along and across gravity, per sample: tilt-free inputs for the motion branch.

    Input: standardised windows (batch, time, 9) in the chain's channel order;
    ``mean``/``std`` undo the standardisation. With g the unit vector of the
    window's mean gravity (total_acc - body_acc), the output (batch, time, 4)
    is: body_acc along g and the magnitude across it (g units), gyro along g
    (turning about the vertical) and across it (rad/s). These do not depend
    on how the phone is tilted in its holder, so a network reading them
    cannot learn a person's phone tilt, yet sees the vertical bounce that
    tells stairs from level walking.

    >>> import numpy as np
    >>> x = np.zeros((1, 128, 9), "float32"); x[..., 8] = 1.0; x[..., 2] = 0.5
    >>> np.asarray(GravityFrame([0.0] * 9, [1.0] * 9)(x))[0, 0].round(3).tolist()
    [0.5, 0.0, 0.0, 0.0]
    """


    def call(self, inputs: Any) -> Any:
        raw = self.physical(inputs)
        body, gyro, total = raw[..., 0:3], raw[..., 3:6], raw[..., 6:9]
        gravity = ops.mean(total - body, axis=1, keepdims=True)  # (batch, 1, 3)
        unit = gravity / ops.sqrt(ops.sum(gravity * gravity, axis=-1, keepdims=True) + 1e-9)
        parts = []
        for vector in (body, gyro):
            along = ops.sum(vector * unit, axis=-1, keepdims=True)
            rest = vector - along * unit
            parts += [along, ops.sqrt(ops.sum(rest * rest, axis=-1, keepdims=True) + 1e-12)]
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1], 4)

