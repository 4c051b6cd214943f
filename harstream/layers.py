"""Custom Keras layers of harstream's models, registered for safe-mode loading.

:func:`harstream.artifact.load` imports this module before loading a
``.keras`` file, so models using these layers load with ``safe_mode=True``
(no lambdas, no arbitrary code).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="harstream")
class GravityDirection(keras.layers.Layer):  # type: ignore[misc]
    """Direction of gravity in the phone's frame, per window: unit vector and its angles.

    Input: standardised windows (batch, time, 9) in the chain's channel order;
    ``mean``/``std`` undo the standardisation, so gravity = total_acc -
    body_acc is in g. Output (batch, 6): the window-mean gravity's unit
    vector and the angle (radians) between it and each phone axis — the
    cue that tells SITTING from STANDING.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]

    def call(self, inputs: Any) -> Any:
        raw = inputs * ops.convert_to_tensor(self.std) + ops.convert_to_tensor(self.mean)
        gravity = ops.mean(raw[..., 6:9] - raw[..., 0:3], axis=1)
        norm = ops.sqrt(ops.sum(gravity * gravity, axis=-1, keepdims=True) + 1e-9)
        unit = gravity / norm
        angles = ops.arccos(ops.clip(unit, -1.0, 1.0))
        return ops.concatenate([unit, angles], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], 6)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std}
