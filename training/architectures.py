"""Model definitions: the shipped harnet-fusion, its predecessors, and the notebook's model for comparison.

Every builder takes the input shape, the class count, the standardisation
statistics and a sample of standardised training windows (for layers that
adapt to data), and returns an uncompiled ``keras.Model`` whose input is
standardised chain output (window, 9) and whose first output is the softmax
over the activities that gets served. Further outputs are auxiliary heads:
trained with their own loss, dropped from the saved artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import keras
import numpy as np
import numpy.typing as npt
from keras import layers

from harstream.model.layers import GravityDirection, GravityFrame, WindowFeatures


def _conv_lstm(x: keras.KerasTensor) -> keras.KerasTensor:
    """Two stride-2 convolutions (4x shorter), one more convolution, two LSTMs of 64."""
    for filters in (64, 96):
        x = layers.Conv1D(filters, 5, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.Conv1D(96, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.LSTM(64, return_sequences=True)(x)
    return layers.LSTM(64)(x)


def _conv_lstm_lite(x: keras.KerasTensor, convs: Sequence[tuple[int, int]] = ((32, 5), (48, 5), (64, 3)),
                    units: int = 64) -> keras.KerasTensor:
    """Stride-2 convolutions of (filters, kernel) ``convs`` (each halves the sequence), one LSTM of ``units``.

    The default: 8x shorter (16 steps), a quarter of :func:`_conv_lstm`'s
    recurrent steps and about a fifth of its float operations (counted by
    ``harstream bench``).
    """
    for filters, kernel in convs:
        x = layers.Conv1D(filters, kernel, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return layers.LSTM(units)(x)


_LITE32 = partial(_conv_lstm_lite, convs=((32, 5), (48, 5)), units=48)
"""The lite32 students' motion branch: 32 steps, one LSTM of 48."""


def harnet(
    window: int = 128,
    channels: int = 9,
    classes: int = 6,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    sample: npt.NDArray[np.float32] | None = None,
    gravity: bool = False,
) -> keras.Model:
    """The CNN-LSTM alone (shipped before harnet-fusion): strided CNN front-end, two LSTMs, window mean/std.

    Two stride-2 convolutions shorten the sequence 4x before the LSTMs (speed);
    the per-channel mean and standard deviation of the window (the mean of
    total_acc is the gravity direction, which separates SITTING from
    STANDING) join the LSTM summary before the softmax. With ``gravity``, the
    window's gravity direction (unit vector and angles, in physical units via
    ``mean``/``std``) joins them too.
    """
    inputs = keras.Input((window, channels), name="window")
    x = _conv_lstm(inputs)
    window_mean = layers.GlobalAveragePooling1D(name="window_mean")(inputs)
    centred = layers.Subtract()([inputs, layers.RepeatVector(window)(window_mean)])
    spread = layers.GlobalAveragePooling1D(name="window_var")(layers.Multiply()([centred, centred]))
    parts = [window_mean, spread]
    if gravity:
        if mean is None or std is None:
            raise ValueError("gravity=True needs the standardisation mean and std")
        parts.append(GravityDirection(mean, std, name="gravity_direction")(inputs))
    stats = layers.Concatenate()(parts)
    stats = layers.Dense(32, activation="relu")(stats)
    x = layers.Concatenate()([x, stats])
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax", name="activity")(x)
    return keras.Model(inputs, outputs, name="harnet")


def notebook(
    window: int = 128,
    channels: int = 9,
    classes: int = 6,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    sample: npt.NDArray[np.float32] | None = None,
) -> keras.Model:
    """The notebook's model: Conv1D(64, k3, causal), LSTM(128) x2, Dense(64) x2, L2."""
    reg = keras.regularizers.L2(1e-4)
    inputs = keras.Input((window, channels), name="window")
    x = layers.Conv1D(64, 3, padding="causal", activation="relu", kernel_regularizer=reg)(inputs)
    x = layers.LSTM(128, return_sequences=True, kernel_regularizer=reg)(x)
    x = layers.LSTM(128, kernel_regularizer=reg)(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=reg)(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=reg)(x)
    outputs = layers.Dense(classes, activation="softmax", name="activity")(x)
    return keras.Model(inputs, outputs, name="notebook")


def harnet_fusion(
    window: int = 128,
    channels: int = 9,
    classes: int = 6,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    sample: npt.NDArray[np.float32] | None = None,
    frame: bool = False,
    motion_branch: Callable[[keras.KerasTensor], keras.KerasTensor] = _conv_lstm,
    percentile_stride: int = 1,
) -> keras.Model:
    """The shipped model: a CNN-LSTM on the motion channels fused with window statistics.

    The CNN-LSTM reads body_acc and gyro only (the motion: it tells the
    walking classes apart); the orientation comes from :class:`WindowFeatures`
    (gravity direction, percentiles, spectra, ...), standardised by a
    ``Normalization`` layer adapted to ``sample`` (training passes all its
    standardised training windows), then a small MLP. Their
    summaries meet in the fused softmax (served). Two auxiliary softmax heads,
    one per branch, are trained beside it so that each branch learns on its
    own: a CNN-LSTM fed the gravity direction learns each training subject's
    phone tilt and generalises worse to new people (cross-validated over the
    21 non-test subjects). With ``frame``, the motion branch also reads
    :class:`GravityFrame` (motion along and across gravity; not shipped:
    no cross-validated gain). ``motion_branch`` builds the motion summary and
    ``percentile_stride`` thins the samples the percentiles sort (the
    features' largest cost); ``harnet-fusion-lite``, the cheaper model, takes
    :func:`_conv_lstm_lite` and a stride of 4.
    """
    if mean is None or std is None or sample is None:
        raise ValueError("harnet-fusion needs the standardisation mean and std and a training sample")
    inputs = keras.Input((window, channels), name="window")
    motion_input = inputs[..., :6]
    if frame:
        frame_channels = GravityFrame(mean, std, name="gravity_frame")(inputs)
        motion_input = layers.Concatenate()([motion_input, frame_channels])
    motion = motion_branch(motion_input)
    features = WindowFeatures(mean, std, percentile_stride=percentile_stride, name="window_features")
    statistics = np.concatenate(
        [keras.ops.convert_to_numpy(features(sample[i : i + 2048])) for i in range(0, len(sample), 2048)]
    )
    normalise = layers.Normalization(name="feature_norm")
    normalise.adapt(statistics)
    f = normalise(features(inputs))
    f = layers.Dense(128, activation="relu")(f)
    f = layers.Dropout(0.3)(f)
    f = layers.Dense(64, activation="relu")(f)
    z = layers.Dropout(0.3)(layers.Concatenate()([motion, f]))
    z = layers.Dense(64, activation="relu")(z)
    fused = layers.Dense(classes, activation="softmax", name="activity")(z)
    motion_head = layers.Dense(classes, activation="softmax", name="motion_head")(
        layers.Dropout(0.3)(motion)
    )
    feature_head = layers.Dense(classes, activation="softmax", name="feature_head")(f)
    return keras.Model(inputs, [fused, motion_head, feature_head], name="harnet_fusion")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "harnet": harnet,
    "harnet-gravity": partial(harnet, gravity=True),  # + the window's gravity direction
    "harnet-fusion": harnet_fusion,
    "harnet-fusion-frame": partial(harnet_fusion, frame=True),  # + tilt-free GravityFrame channels
    # the cheaper model: 8x shorter motion sequence, one LSTM, percentiles of every 4th sample
    "harnet-fusion-lite": partial(harnet_fusion, motion_branch=_conv_lstm_lite, percentile_stride=4),
    # the teacher's 32 steps (two stride-2 convolutions) and an LSTM of 48; percentiles of every 4th or 8th sample
    "harnet-fusion-lite32": partial(harnet_fusion, motion_branch=_LITE32, percentile_stride=4),
    "harnet-fusion-lite32-s8": partial(harnet_fusion, motion_branch=_LITE32, percentile_stride=8),
    "notebook": notebook,
}
"""Builders by the name ``harstream train --arch`` takes (their schedule defaults: :mod:`training.recipe`)."""
