"""Streams at other rates, with timestamps or in other units, through the engine onto its 50 Hz grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harstream import ACTIVITIES
from harstream.data.device import Device
from harstream.engine.core import Engine
from harstream.protocol import Chunk, Prediction, decode_chunk, encode_chunk
from harstream.signal.windows import window_ends


def fake_proba(windows: np.ndarray) -> np.ndarray:
    logits = windows.mean(axis=1)[:, :6] * 10.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def classify_all(engine: Engine) -> list[Prediction]:
    """The queued windows classified as ``serve`` does: taken, classified, failed streams forgotten."""
    predictions = engine.classify_pending(engine.take_pending())
    engine.reset_failed()
    return predictions


def recording(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """A 50 Hz walking-like signal: gravity, a 2 Hz gait and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 50)) / 50
    x = np.zeros((len(t), 6))
    x[:, 0] = 1.0 + 0.3 * np.sin(2 * np.pi * 2 * t)
    x[:, 1:3] = 0.1 * np.sin(2 * np.pi * 1 * t)[:, None]
    x[:, 3:] = 0.5 * np.cos(2 * np.pi * 2 * t)[:, None]
    return (x + rng.normal(0, 0.02, x.shape)).astype(np.float32)


def chunks(device: Device, x: np.ndarray, sizes: list[int], seq0: int = 0, t_base: float = 500.0) -> list[Chunk]:
    samples, times = device.render(x)
    rate = int(device.rate_hz) if float(device.rate_hz).is_integer() else device.rate_hz
    out, begin, k = [], 0, 0
    while begin < len(samples):
        n = sizes[k % len(sizes)]
        part = slice(begin, begin + n)
        frames = encode_chunk("s", seq0 + begin, samples[part], rate=rate, units=device.units,
                              times=None if times is None else times[part] + t_base)
        out.append(decode_chunk(frames))
        begin, k = begin + n, k + 1
    return out


def run(items: list[Chunk]) -> list[Prediction]:
    engine = Engine(fake_proba, ACTIVITIES)
    predictions = []
    for chunk in items:
        assert engine.ingest([chunk]) == []
        predictions += classify_all(engine)
    return predictions


DEVICES = [Device(100.0), Device(200.0), Device(25.0), Device(120.5), Device(50.0, jitter_ms=10),
           Device(100.0, jitter_ms=4), Device(100.0, acc_unit="m/s2", gyro_unit="deg/s")]


@pytest.mark.parametrize("device", DEVICES, ids=lambda d: f"{d.rate_hz:g}Hz-j{d.jitter_ms:g}-{d.acc_unit}")
def test_windows_land_on_the_50hz_grid_close_to_the_native_stream(device: Device) -> None:
    x = recording()
    native = run(chunks(Device(), x, [25]))
    other = run(chunks(device, x, [max(1, round(0.5 * device.rate_hz))]))
    assert [p.seq_end for p in other] == [p.seq_end for p in native] == window_ends(0, len(x)).tolist()
    diff = np.abs(np.array([p.probs for p in other]) - np.array([p.probs for p in native]))
    assert diff.max() < 0.1  # the same signal, resampled: close, not bit-equal


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(DEVICES[:5]), st.lists(st.integers(1, 90), min_size=1, max_size=6))
def test_any_chunking_gives_the_same_predictions(device: Device, sizes: list[int]) -> None:
    x = recording(6.0)
    whole = run(chunks(device, x, [10_000 if device.rate_hz <= 200 else 2999]))
    parts = run(chunks(device, x, sizes))
    assert [p.seq_end for p in parts] == [p.seq_end for p in whole]
    np.testing.assert_allclose([p.probs for p in parts], [p.probs for p in whole], atol=1e-5)


def test_a_100hz_stream_starting_later_keeps_its_grid() -> None:
    x = recording(6.0)
    predictions = run(chunks(Device(100.0), x, [50], seq0=1000))  # sample 1000 at 100 Hz = index 500
    assert predictions[0].seq_end == window_ends(500, 10**6)[0] == 639


def test_timestamps_going_back_are_rejected_and_the_stream_goes_on() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    x = np.zeros((10, 6), np.float32)
    t = 100.0 + np.arange(10) * 0.01
    assert engine.ingest([decode_chunk(encode_chunk("s", 0, x, rate=100, times=t))]) == []
    errors = engine.ingest([decode_chunk(encode_chunk("s", 10, x, rate=100, times=t + 0.05))])
    assert [e.code for e in errors] == ["times"] and "strictly increasing" in errors[0].detail
    assert engine.ingest([decode_chunk(encode_chunk("s", 10, x, rate=100, times=t + 0.1))]) == []


def test_a_long_dropout_restarts_the_stream_like_a_seq_gap() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    x = recording(8.0)
    samples, _ = Device(100.0).render(x)
    times = 10.0 + np.arange(len(samples)) / 100
    times[400:] += 2.0  # the phone stopped sending for 2 s after sample 399
    errors = engine.ingest([decode_chunk(encode_chunk("s", 0, samples[:500], rate=100, times=times[:500]))])
    assert [e.code for e in errors] == ["seq_gap"] and "2.010 s" in errors[0].detail
    engine.ingest([decode_chunk(encode_chunk("s", 500, samples[500:], rate=100, times=times[500:]))])
    ends = [p.seq_end for p in classify_all(engine)]
    resume = 300  # the first grid point at or after the sample after the pause: 10 + 4 + 2 s
    assert ends[:3] == [127, 191, window_ends(resume, 10**6)[0]]


def test_a_short_dropout_is_interpolated() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    samples, _ = Device(100.0).render(recording(4.0))
    times = 10.0 + np.arange(len(samples)) / 100
    times[200:] += 0.05
    assert engine.ingest([decode_chunk(encode_chunk("s", 0, samples, rate=100, times=times))]) == []


def test_changing_rate_restarts_the_stream() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    x = np.zeros((100, 6), np.float32)
    assert engine.ingest([decode_chunk(encode_chunk("s", 0, x))]) == []
    errors = engine.ingest([decode_chunk(encode_chunk("s", 100, x, rate=100))])
    assert [e.code for e in errors] == ["seq_gap"] and "rate 100 Hz" in errors[0].detail


def test_the_protocol_documents_worked_example_lands_at_index_250() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    rows = np.array([[0.0, 0.0, 9.80665, 0.0, 0.0, 90.0]] * 3, np.float32)
    header = b'{"v":1,"seq":500,"rate":100,"units":{"acc":"m/s2","gyro":"deg/s"},"t0":1700000005.0}'
    chunk = decode_chunk([b"phone-1", header, rows.tobytes(), np.array([12.0, 12.011, 12.019]).tobytes()])
    np.testing.assert_allclose(chunk.samples[0], [0, 0, 1, 0, 0, np.pi / 2], rtol=1e-6)
    assert engine.ingest([chunk]) == []
    stream = engine.streams.streams["phone-1"]
    assert stream.ring.first_index == 250
