"""The custom layers: WindowFeatures against a NumPy reference, and safe-mode loading."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt
import pytest

from harstream.model.layers import GravityDirection, GravityFrame, WindowFeatures


def _reference(raw: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
    """The same statistics written plainly with NumPy (physical units in)."""
    body, gyro, total = raw[..., 0:3], raw[..., 3:6], raw[..., 6:9]
    gravity = (total - body).mean(axis=1)
    unit = gravity / np.linalg.norm(gravity, axis=1, keepdims=True)
    series = np.concatenate(
        [raw, np.linalg.norm(body, axis=2)[..., None], np.linalg.norm(gyro, axis=2)[..., None]], axis=2
    )
    spectrum = np.abs(np.fft.rfft(series - series.mean(axis=1, keepdims=True), axis=1)) ** 2
    edges = [(1, 3), (3, 6), (6, 10), (10, 16), (16, 24), (24, 34), (34, 48), (48, 65)]
    bands = np.stack([spectrum[:, a:b].sum(axis=1) for a, b in edges], axis=2)  # (n, 11, 8)
    return {
        "unit": unit,
        "angles": np.arccos(unit),
        "mean": series.mean(axis=1),
        "std": series.std(axis=1),
        "min": series.min(axis=1),
        "max": series.max(axis=1),
        "percentiles": np.concatenate(list(np.percentile(series, [10, 25, 50, 75, 90], axis=1)), axis=1),
        "bands": np.log1p(bands).reshape(len(raw), -1),
        "body_xy_corr": np.array([np.corrcoef(w[:, 0], w[:, 1])[0, 1] for w in raw]),
        "step_log_std": np.log(np.diff(raw, axis=1).std(axis=1) + 1e-6),
    }


@pytest.fixture(scope="module")
def windows() -> tuple[npt.NDArray[np.float64], list[float], list[float]]:
    rng = np.random.default_rng(0)
    t = np.arange(128) / 50.0
    raw = rng.normal(scale=0.2, size=(5, 128, 9))
    raw[..., 0] += np.sin(2 * np.pi * 1.8 * t)  # a walking-like rhythm on body_acc x
    raw[..., 6:9] += raw[..., 0:3] + np.array([0.9, -0.3, 0.2])  # total = body + gravity
    mean = [0.1] * 9
    std = [0.5] * 9
    return raw, mean, std


def test_window_features_match_numpy(windows: tuple[npt.NDArray[np.float64], list[float], list[float]]) -> None:
    raw, mean, std = windows
    standardised = ((raw - np.array(mean)) / np.array(std)).astype(np.float32)
    out = np.asarray(WindowFeatures(mean, std)(standardised), dtype=np.float64)
    assert out.shape == (5, WindowFeatures.features)
    ref = _reference(raw)
    blocks = {"unit": 3, "angles": 3, "mean": 11, "std": 11, "min": 11, "max": 11, "percentiles": 55,
              "bands": 88}
    start = 0
    for name, width in blocks.items():
        np.testing.assert_allclose(out[:, start : start + width], ref[name], rtol=2e-4, atol=2e-4,
                                   err_msg=name)
        start += width
    np.testing.assert_allclose(out[:, start], ref["body_xy_corr"], atol=1e-4)
    np.testing.assert_allclose(out[:, start + 6 : start + 15], ref["step_log_std"], atol=1e-4)


def test_gravity_direction_is_a_unit_vector_with_its_angles(
    windows: tuple[npt.NDArray[np.float64], list[float], list[float]],
) -> None:
    raw, mean, std = windows
    standardised = ((raw - np.array(mean)) / np.array(std)).astype(np.float32)
    out = np.asarray(GravityDirection(mean, std)(standardised))
    np.testing.assert_allclose(np.linalg.norm(out[:, :3], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.cos(out[:, 3:]), out[:, :3], atol=1e-5)


def test_models_with_custom_layers_load_in_safe_mode(tmp_path: Path) -> None:
    inputs = keras.Input((128, 9))
    features = WindowFeatures([0.0] * 9, [1.0] * 9)(inputs[..., :])
    outputs = keras.layers.Dense(6, activation="softmax")(
        keras.layers.Concatenate()([features, GravityDirection([0.0] * 9, [1.0] * 9)(inputs)])
    )
    model = keras.Model(inputs, outputs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).normal(size=(4, 128, 9)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_gravity_frame_does_not_depend_on_how_the_phone_is_turned(
    windows: tuple[npt.NDArray[np.float64], list[float], list[float]],
) -> None:
    raw, _, _ = windows
    angle = 0.7
    turn = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    turned = raw.copy()
    for begin in (0, 3, 6):  # body_acc, gyro and total_acc all turn with the phone
        turned[..., begin : begin + 3] = raw[..., begin : begin + 3] @ turn.T
    frame = GravityFrame([0.0] * 9, [1.0] * 9)
    original = np.asarray(frame(raw.astype(np.float32)))
    np.testing.assert_allclose(np.asarray(frame(turned.astype(np.float32))), original, atol=1e-5)
    assert original.shape == (5, 128, 4)
    assert np.abs(original[..., 0]).max() > 0.1  # it does carry the motion along gravity
