"""The signal chain: chunk invariance, steady-state start, channel layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from harstream.signal import chain
from harstream.signal.chain import CHANNELS, initial_state, process, process_recording


def _recording(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 50.0
    acc = np.c_[0.1 * np.sin(2 * np.pi * 2 * t), 0.2 * np.cos(2 * np.pi * 1 * t), 1.0 + 0 * t]
    gyro = 0.5 * np.sin(2 * np.pi * np.r_[0.7, 1.3, 3.1][None, :] * t[:, None])
    return (np.c_[acc, gyro] + 0.05 * rng.standard_normal((n, 6))).astype(np.float32)


def _chunked(x: np.ndarray, cuts: list[int]) -> np.ndarray:
    state = initial_state(x[None, 0])
    parts, start = [], 0
    for stop in [*sorted(set(cuts)), len(x)]:
        if stop <= start:
            continue
        out, state = process(x[None, start:stop], state)
        parts.append(out[0])
        start = stop
    return np.concatenate(parts)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    seed=st.integers(0, 1000),
    cuts=st.lists(st.integers(1, 399), max_size=12),
)
def test_any_chunking_equals_whole(n: int, seed: int, cuts: list[int]) -> None:
    x = _recording(n, seed)
    whole = _chunked(x, [])
    parts = _chunked(x, [c for c in cuts if c < n])
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-6)


def test_many_streams_at_once_equal_one_at_a_time() -> None:
    streams = np.stack([_recording(300, seed) for seed in range(5)])
    together, _ = process(streams, initial_state(streams[:, 0]))
    for i in range(5):
        alone, _ = process(streams[i : i + 1], initial_state(streams[i : i + 1, 0]))
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-6, atol=1e-7)


def test_constant_input_has_no_start_transient() -> None:
    x = np.tile(np.array([0.1, -0.2, 0.98, 0.01, 0.02, -0.03], np.float32), (200, 1))
    y = process_recording(x)
    np.testing.assert_allclose(y[:, 0:3], 0.0, atol=1e-6)  # no body acceleration
    np.testing.assert_allclose(y[:, 6:9], x[:, 0:3], atol=1e-6)  # total acc = input acc
    np.testing.assert_allclose(y[:, 3:6], x[:, 3:6], atol=1e-6)


def test_matches_scipy_reference_offline() -> None:
    x = _recording(500, 3).astype(np.float64)
    ext = np.vstack([x[:1], x[:1], x])
    med = np.median(np.stack([ext[:-2], ext[1:-1], ext[2:]]), axis=0)
    noise, gravity = chain.filters()
    clean, _ = signal.sosfilt(noise, med, axis=0, zi=signal.sosfilt_zi(noise)[:, :, None] * med[0])
    grav, _ = signal.sosfilt(
        gravity, clean[:, :3], axis=0, zi=signal.sosfilt_zi(gravity)[:, :, None] * clean[0, :3]
    )
    expected = np.c_[clean[:, :3] - grav, clean[:, 3:], clean[:, :3]]
    np.testing.assert_allclose(process_recording(x.astype(np.float32)), expected, atol=1e-5)


def test_channel_order_is_uci_har() -> None:
    assert CHANNELS[:3] == ("body_acc_x", "body_acc_y", "body_acc_z")
    assert CHANNELS[3:6] == ("gyro_x", "gyro_y", "gyro_z")
    assert CHANNELS[6:] == ("total_acc_x", "total_acc_y", "total_acc_z")


def test_filters_are_third_order_butterworth() -> None:
    noise, gravity = chain.filters()
    assert noise.shape == gravity.shape == (2, 6)  # 3rd order = 2 sections
    _, h = signal.sosfreqz(gravity, worN=[0.3], fs=50)
    assert abs(abs(h[0]) - 1 / np.sqrt(2)) < 1e-3  # -3 dB at the 0.3 Hz cut-off


def test_bad_shapes_name_the_argument() -> None:
    with pytest.raises(ValueError, match="samples: expected shape"):
        process(np.zeros((5, 6)), initial_state(np.zeros((1, 6))))
    with pytest.raises(ValueError, match="first: expected shape"):
        initial_state(np.zeros(6))
