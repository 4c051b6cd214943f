"""Protocol v1: round trips, one malformed message per error code, and fuzzing."""

from __future__ import annotations

import doctest
import importlib
import json
import math
import pkgutil
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harstream import MAX_SAMPLES_PER_CHUNK, protocol
from harstream.errors import ProtocolError
from harstream.protocol import (
    ERROR_CODES,
    ERROR_TOPIC,
    MAX_SEQ,
    STATS_FIELDS,
    STATS_TOPIC,
    STREAM_ID,
    Chunk,
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_chunk,
    decode_event,
    decode_prediction,
    encode_chunk,
    encode_error,
    encode_prediction,
    encode_stats,
)

stream_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
sample_arrays = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 300), st.just(6)),
    elements=st.floats(-1e6, 1e6, width=32),
)
probabilities = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8).map(tuple)
labels = st.text(min_size=1, max_size=64)

STATS: dict[str, Any] = {
    "streams": 3,
    "windows": 1200,
    "windows_per_s": 4.5,
    "latency_ms": {"p50": 3.25, "p99": 12.0, "max": 20.5},
    "rejected": 2,
    "uptime_s": 300.0,
    "t": 1700000000.0,
}


def header(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "seq": 0, "rate": 50, **fields}).encode()


def message(stream: bytes = b"phone-1", head: bytes | None = None, rows: int = 2) -> list[bytes]:
    return [stream, header() if head is None else head, np.ones((rows, 6), "<f4").tobytes()]


def prediction(**fields: Any) -> Prediction:
    values: dict[str, Any] = {
        "stream": "phone-1",
        "seq_end": 127,
        "label": "WALKING",
        "probs": (0.75, 0.25),
        "smoothed": "SITTING",
        "t_arrival": 1700000000.0,
        "t_emit": 1700000000.125,
    }
    return Prediction(**{**values, **fields})


def body(**fields: Any) -> bytes:
    _, raw = encode_prediction(prediction())
    return json.dumps({**json.loads(raw), **fields}).encode()


def assert_rejects(frames: Any, code: str, fragment: str, decode: Any = decode_chunk) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frames)
    assert caught.value.code == code
    assert code in ERROR_CODES
    assert fragment in caught.value.detail, caught.value.detail


@pytest.mark.parametrize("name", ["__init__", *sorted(m.name for m in pkgutil.iter_modules(protocol.__path__))])
def test_doctests(name: str) -> None:
    """The package's doctests and each of its modules'."""
    module = protocol if name == "__init__" else importlib.import_module(f"harstream.protocol.{name}")
    assert doctest.testmod(module).failed == 0


# -- round trips -------------------------------------------------------------------------------


@given(stream_ids, st.integers(0, MAX_SEQ), sample_arrays, st.none() | finite)
def test_chunk_round_trips_exactly(stream: str, seq: int, samples: Any, t0: float | None) -> None:
    seq = min(seq, MAX_SEQ - len(samples) + 1)  # the last sample's index is at most MAX_SEQ
    chunk = decode_chunk(encode_chunk(stream, seq, samples, t0=t0))
    assert (chunk.stream, chunk.seq, chunk.rate) == (stream, seq, 50)
    assert repr(chunk.t0) == repr(t0)  # exact, the sign of -0.0 included
    assert chunk.samples.dtype == np.float32 and chunk.samples.shape == samples.shape
    assert chunk.samples.tobytes() == samples.tobytes()  # bit-exact, -0.0 included


def test_chunk_frames_and_samples_view() -> None:
    samples = np.arange(12, dtype=np.float64).reshape(2, 6)
    frames = encode_chunk("phone-1", 64, samples, t0=1.5)
    assert frames[:2] == [b"phone-1", b'{"v":1,"seq":64,"rate":50,"t0":1.5}']
    assert frames[2] == struct.pack("<12f", *range(12))
    chunk = decode_chunk(frames)
    assert isinstance(chunk, Chunk)
    assert not chunk.samples.flags.writeable
    assert np.array_equal(chunk.samples, samples)
    with pytest.raises(ValueError):
        chunk.samples[0, 0] = 1.0


def test_decode_accepts_any_bytes_like_frame() -> None:
    frames = message()
    chunk = decode_chunk([bytearray(frames[0]), memoryview(frames[1]), bytearray(frames[2])])
    assert chunk.stream == "phone-1" and chunk.samples.shape == (2, 6)


def test_header_extras_ignored_and_null_t0_means_absent() -> None:
    chunk = decode_chunk(message(head=header(t0=None, device="pixel")))
    assert chunk.t0 is None
    assert decode_chunk(message(head=header(t0=17))).t0 == 17.0


def test_encode_chunk_accepts_numpy_scalars() -> None:
    frames = encode_chunk("a", np.int64(5), np.zeros((1, 6)), t0=np.float32(2.5))  # type: ignore[arg-type]
    chunk = decode_chunk(frames)
    assert (chunk.seq, chunk.t0) == (5, 2.5)


@given(
    stream_ids,
    st.integers(0, MAX_SEQ),
    labels,
    probabilities,
    labels,
    finite,
    finite,
    st.booleans(),
)
def test_prediction_round_trips_exactly(
    stream: str,
    seq_end: int,
    label: str,
    probs: tuple[float, ...],
    smoothed: str,
    t_arrival: float,
    t_emit: float,
    with_smoothed_probs: bool,
) -> None:
    if not math.isfinite(t_emit - t_arrival) or not math.isfinite((t_emit - t_arrival) * 1000):
        t_emit = t_arrival
    p = Prediction(
        stream, seq_end, label, probs, smoothed, t_arrival, t_emit,
        probs[::-1] if with_smoothed_probs else None,
    )
    frames = encode_prediction(p)
    assert frames[0] == stream.encode()
    assert decode_prediction(frames) == p
    assert decode_event(frames) == p


def test_prediction_json_fields() -> None:
    p = prediction(probs=np.array([0.75, 0.25], np.float32), smoothed_probs=(0.5, 0.5))
    topic, raw = encode_prediction(p)
    assert topic == b"phone-1"
    assert json.loads(raw) == {
        "v": 1,
        "stream": "phone-1",
        "seq_end": 127,
        "label": "WALKING",
        "probs": [0.75, 0.25],
        "smoothed": "SITTING",
        "smoothed_probs": [0.5, 0.5],
        "t_arrival": 1700000000.0,
        "t_emit": 1700000000.125,
        "latency_ms": 125.0,
        "age_ms": None,
        "engine": None,
    }
    assert decode_prediction([topic, raw]).latency_ms == 125.0


unit_floats = st.floats(0.0, 1.0)
finite = st.floats(allow_nan=False, allow_infinity=False)


@given(stream_ids, st.integers(0, 2**53 - 1), st.lists(unit_floats, min_size=1, max_size=8), finite, finite,
       st.none() | finite, st.none() | finite, st.none() | st.text("0123456789abcdef", min_size=12, max_size=12),
       st.booleans())
def test_the_prediction_template_writes_what_json_dumps_writes(
    stream: str, seq_end: int, probs: list[float], t_arrival: float, t_emit: float, latency: float | None,
    age: float | None, engine: str | None, smoothed: bool,
) -> None:
    p = Prediction(stream, seq_end, "WALKING", tuple(probs), "LAYING", t_arrival, t_emit,
                   tuple(reversed(probs)) if smoothed else None, math.nan if latency is None else latency,
                   age, engine)
    if not math.isfinite(p.latency_ms):  # the default, from two far-apart times, may overflow
        return
    body = {"v": 1, "stream": stream, "seq_end": seq_end, "label": "WALKING", "probs": probs,
            "smoothed": "LAYING", "smoothed_probs": list(reversed(probs)) if smoothed else None,
            "t_arrival": t_arrival, "t_emit": t_emit, "latency_ms": p.latency_ms, "age_ms": age, "engine": engine}
    topic, raw = encode_prediction(p)
    assert raw == json.dumps(body, separators=(",", ":")).encode()
    assert decode_prediction([topic, raw]) == p


@given(st.none() | stream_ids, st.sampled_from(sorted(ERROR_CODES)), st.text(max_size=300))
def test_error_round_trips(stream: str | None, code: str, detail: str) -> None:
    frames = encode_error(stream, code, detail)
    assert frames[0] == ERROR_TOPIC.encode()
    assert decode_event(frames) == ErrorEvent(stream, code, detail)
    assert json.loads(frames[1]) == {"v": 1, "stream": stream, "code": code, "detail": detail}


def test_stats_round_trip() -> None:
    frames = encode_stats({**STATS, "extra": [1, 2]})
    assert frames[0] == STATS_TOPIC.encode()
    event = decode_event(frames)
    assert isinstance(event, StatsEvent)
    assert event.fields == {**STATS, "extra": [1, 2]}
    assert set(STATS_FIELDS) <= set(event.fields)
    empty = {**STATS, "latency_ms": {"p50": None, "p99": None, "max": None}}
    assert decode_event(encode_stats(empty)) == StatsEvent(empty)


def test_stats_encoder_converts_numpy_and_rejects_nan() -> None:
    event = decode_event(encode_stats({**STATS, "windows": np.int64(7)}))
    assert isinstance(event, StatsEvent) and event.fields["windows"] == 7
    assert_rejects({**STATS, "windows_per_s": math.nan}, "field", "finite", encode_stats)
    assert_rejects({**STATS, "extra": [math.inf]}, "field", "finite", encode_stats)
    assert_rejects({**STATS, "extra": {1, 2}}, "field", "set", encode_stats)
    assert_rejects({**STATS, "v": 1}, "field", "'v'", encode_stats)
    assert_rejects({k: v for k, v in STATS.items() if k != "t"}, "field", "'t'", encode_stats)


# -- one malformed message per error code ------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "fragment"),
    [
        (message()[:2], "got 2"),
        ([*message(), b"", b""], "got 5"),
        ([], "got 0"),
        ([b"phone-1", "header", b""], "str"),
        (b"abc", "frame 0"),
        (None, "None"),
    ],
)
def test_frames(frames: Any, fragment: str) -> None:
    assert_rejects(frames, "frames", fragment)


@pytest.mark.parametrize(
    ("stream", "fragment"),
    [
        (b"", "''"),
        (b"phone 1", "'phone 1'"),
        (b"$stats", "'$stats'"),
        (b"x" * 65, "'xxxx"),
        ("caf\u00e9".encode(), "caf\u00e9"),
        (b"\xff\xfe", "b'\\xff\\xfe'"),
        (b"phone-1\n", "'phone-1\\n'"),
    ],
)
def test_stream_id(stream: bytes, fragment: str) -> None:
    assert_rejects(message(stream=stream), "stream_id", fragment)


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (b"not json", "b'not json'"),
        (b"[1, 2]", "[1, 2]"),
        (b'"v"', "'v'"),
        (b"\xff{}", "UTF-8"),
        (b'{"v":1,"pad":"' + b"x" * 1100 + b'"}', "1024 bytes"),
        (b"[" * 1000 + b"]" * 1000, "1024 bytes"),
    ],
)
def test_header(head: bytes, fragment: str) -> None:
    assert_rejects(message(head=head), "header", fragment)


@pytest.mark.parametrize(("version", "fragment"), [(2, "got 2"), (True, "True"), ("1", "'1'")])
def test_version(version: Any, fragment: str) -> None:
    assert_rejects(message(head=header(v=version)), "version", fragment)
    assert_rejects(message(head=b'{"seq":0,"rate":50}'), "version", "missing")


@pytest.mark.parametrize(
    ("seq", "fragment"),
    [(-1, "got -1"), (1.0, "got 1.0"), (True, "got True"), ("7", "got '7'"),
     (2**53, "got 9007199254740992"), (None, "got None")],
)
def test_seq(seq: Any, fragment: str) -> None:
    assert_rejects(message(head=header(seq=seq)), "seq", fragment)
    assert_rejects(message(head=b'{"v":1,"rate":50}'), "seq", "missing")


@pytest.mark.parametrize(
    ("rate", "fragment"),
    [(19.9, "got 19.9"), (500.5, "got 500.5"), (0, "got 0"), (-50, "got -50"), ("50", "got '50'"),
     (True, "True")],
)
def test_rate(rate: Any, fragment: str) -> None:
    assert_rejects(message(head=header(rate=rate)), "rate", fragment)
    assert_rejects(message(head=b'{"v":1,"seq":0}'), "rate", "missing")


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (header(t0="now"), "'now'"),
        (header(t0=True), "True"),
        (header(t0=[1.0]), "[1.0]"),
        (header(t0=10**400), "1000000"),
    ],
)
def test_t0(head: bytes, fragment: str) -> None:
    assert_rejects(message(head=head), "t0", fragment)


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (b'{"v":1,"seq":0,"rate":50,"t0":NaN}', "NaN is not standard JSON"),
        (b'{"v":1,"seq":0,"rate":50,"t0":-Infinity}', "-Infinity is not standard JSON"),
        (b'{"v":1,"seq":0,"rate":50,"t0":1e999}', "1e999 overflows a double"),
        (b'{"v":1,"seq":0,"rate":50,"x":1e999}', "overflows"),
        (b'{"v":1,"seq":0,"seq":5,"rate":50}', "duplicate key 'seq'"),
    ],
)
def test_non_standard_json_is_rejected(head: bytes, fragment: str) -> None:
    assert_rejects(message(head=head), "header", fragment)


@pytest.mark.parametrize("n", [1, 2, 300, MAX_SAMPLES_PER_CHUNK])
def test_chunk_must_end_at_or_before_max_seq(n: int) -> None:
    samples = np.zeros((n, 6), "<f4").tobytes()
    last_ok = MAX_SEQ - n + 1
    assert decode_chunk([b"a", header(seq=last_ok), samples]).seq == last_ok
    assert_rejects([b"a", header(seq=last_ok + 1), samples], "seq", str(MAX_SEQ + 1))


def test_restart_flag() -> None:
    assert decode_chunk(message(head=header(restart=True))).restart is True
    assert decode_chunk(message()).restart is False
    assert_rejects(message(head=header(restart=1)), "restart", "1")
    assert decode_chunk(encode_chunk("a", 5, np.zeros((1, 6)), restart=True)).restart


def test_samples() -> None:
    frames = message()
    assert_rejects([*frames[:2], frames[2][:-1]], "samples", "got 47 bytes")
    assert_rejects([*frames[:2], b""], "samples", "got 0 bytes")
    too_many = np.zeros((MAX_SAMPLES_PER_CHUNK + 1, 6), "<f4").tobytes()
    assert_rejects([*frames[:2], too_many], "samples", f"got {len(too_many)} bytes")
    for bad, shown in [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]:
        samples = np.ones((3, 6), "<f4")
        samples[2, 4] = bad
        assert_rejects([*frames[:2], samples.tobytes()], "samples", f"{shown} at row 2, gyro_y")


def test_encode_chunk_refuses_what_decode_rejects() -> None:
    zeros = np.zeros((2, 6))
    assert_rejects(("phone 1", 0, zeros), "stream_id", "'phone 1'", lambda a: encode_chunk(*a))
    assert_rejects((b"phone", 0, zeros), "stream_id", "b'phone'", lambda a: encode_chunk(*a))
    assert_rejects(("a", -3, zeros), "seq", "-3", lambda a: encode_chunk(*a))
    assert_rejects(("a", True, zeros), "seq", "True", lambda a: encode_chunk(*a))
    assert_rejects(("a", 0, np.zeros((4, 3))), "samples", "(4, 3)", lambda a: encode_chunk(*a))
    assert_rejects(("a", 0, np.zeros(6)), "samples", "(6,)", lambda a: encode_chunk(*a))
    assert_rejects(("a", 0, [["x"] * 6]), "samples", "numbers", lambda a: encode_chunk(*a))
    assert_rejects(("a", 0, np.full((1, 6), 1e40)), "samples", "inf", lambda a: encode_chunk(*a))
    with pytest.raises(ProtocolError) as caught:
        encode_chunk("a", 0, zeros, rate=1000)
    assert caught.value.code == "rate"
    with pytest.raises(ProtocolError) as caught:
        encode_chunk("a", 0, zeros, t0=math.nan)
    assert caught.value.code == "t0" and "nan" in caught.value.detail


@pytest.mark.parametrize(
    ("frames", "fragment"),
    [
        ([b"$alerts", body()], "'$alerts'"),
        ([b"phone-2", body()], "'phone-2'"),
    ],
)
def test_topic(frames: list[bytes], fragment: str) -> None:
    assert_rejects(frames, "topic", fragment, decode_event)
    assert_rejects(frames, "topic", fragment, decode_prediction)
    assert_rejects([ERROR_TOPIC.encode(), body()], "topic", "'$error'", decode_prediction)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"seq_end": -5}, "got -5"),
        ({"seq_end": False}, "got False"),
        ({"label": ""}, "''"),
        ({"label": 3}, "got 3"),
        ({"smoothed": None}, "got None"),
        ({"probs": []}, "[]"),
        ({"probs": [0.5, 1.5]}, "1.5"),
        ({"probs": [0.5, True]}, "True"),
        ({"probs": "0.5"}, "'0.5'"),
        ({"smoothed_probs": [1.0]}, "[1.0]"),
        ({"t_arrival": "soon"}, "'soon'"),
        ({"t_emit": None}, "None"),
        ({"latency_ms": "fast"}, "'fast'"),
    ],
)
def test_field_in_prediction(fields: dict[str, Any], fragment: str) -> None:
    assert_rejects([b"phone-1", body(**fields)], "field", fragment, decode_event)


def test_field_missing_and_other_codes_in_engine_messages() -> None:
    raw = json.loads(body())
    del raw["t_emit"]
    assert_rejects([b"phone-1", json.dumps(raw).encode()], "field", "missing", decode_prediction)
    assert_rejects([b"phone-1", body(v=2)], "version", "got 2", decode_prediction)
    assert_rejects([b"phone-1", body(stream="a b")], "stream_id", "'a b'", decode_prediction)
    assert_rejects([b"phone-1", b"{"], "header", "b'{'", decode_prediction)
    assert_rejects([b"phone-1"], "frames", "got 1", decode_event)
    error = {"v": 1, "stream": None, "code": "seq", "detail": "x"}
    for key, bad, fragment in [("code", "", "''"), ("detail", 5, "got 5"), ("stream", "$", "'$'")]:
        frames = [b"$error", json.dumps({**error, key: bad}).encode()]
        code = "stream_id" if key == "stream" else "field"
        assert_rejects(frames, code, fragment, decode_event)
    for key, bad in [("streams", -1), ("windows", 1.5), ("uptime_s", -2.0), ("rejected", None)]:
        frames = [b"$stats", json.dumps({"v": 1, **STATS, key: bad}).encode()]
        assert_rejects(frames, "field", f"'{key}'", decode_event)
    latency = {"p50": -1.0, "p99": 1.0, "max": 2.0}
    frames = [b"$stats", json.dumps({"v": 1, **STATS, "latency_ms": latency}).encode()]
    assert_rejects(frames, "field", "latency_ms.p50", decode_event)


def test_encode_prediction_refuses_invalid() -> None:
    assert_rejects(prediction(probs=(0.5, math.nan)), "field", "nan", encode_prediction)
    for probs in [(math.nan, 0.5), (0.5, 1.5), (-0.1, 0.5), (0.1, math.inf), (True, 0.5)]:
        assert_rejects(prediction(probs=probs), "field", "'probs'", encode_prediction)
    body = json.loads(encode_prediction(prediction(probs=(1, np.float32(0.5), 0.25)))[1])
    assert body["probs"] == [1, 0.5, 0.25]  # ints and numpy scalars still written, one at a time
    assert_rejects(prediction(stream="a/b"), "stream_id", "'a/b'", encode_prediction)
    assert_rejects(prediction(t_emit=math.inf), "field", "inf", encode_prediction)


def test_engine_codes_are_documented() -> None:
    assert {"seq_gap", "seq_replay"} <= set(ERROR_CODES)
    event = decode_event(encode_error("phone-1", "seq_gap", "expected seq 64, got 128"))
    assert event == ErrorEvent("phone-1", "seq_gap", "expected seq 64, got 128")


def test_long_values_are_truncated_in_details() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_chunk(message(stream=b"y" * 5000))
    assert len(caught.value.detail) < 200 and "yyy" in caught.value.detail


def test_stream_id_pattern() -> None:
    assert STREAM_ID.fullmatch("phone-1.acc:2_x")
    assert not STREAM_ID.fullmatch("phone-1\n")


# -- decoders raise only ProtocolError ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
header_keys = ["v", "seq", "rate", "t0", "stream", "seq_end", "label", "probs", "smoothed",
               "smoothed_probs", "t_arrival", "t_emit", "latency_ms", "code", "detail",
               *STATS_FIELDS]


def decode_all(frames: Any) -> None:
    for decode in (decode_chunk, decode_prediction, decode_event):
        try:
            decode(frames)
        except ProtocolError as exc:
            assert exc.code in ERROR_CODES


@given(st.lists(st.binary(max_size=80), max_size=5))
def test_decoders_raise_only_protocol_error_on_random_frames(frames: list[bytes]) -> None:
    decode_all(frames)


@given(
    st.sampled_from([b"phone-1", b"$error", b"$stats", b"$x"]) | st.binary(max_size=8),
    st.dictionaries(st.sampled_from(header_keys), json_values),
    st.binary(max_size=100),
    st.booleans(),
)
def test_decoders_raise_only_protocol_error_on_json_frames(
    topic: bytes, fields: dict[str, Any], tail: bytes, three: bool
) -> None:
    raw = json.dumps(fields).encode()
    decode_all([topic, raw, tail] if three else [topic, raw])


@pytest.mark.parametrize("value", [1.0000001e6, -3.4e38, 1e30])
def test_samples_beyond_a_million_are_rejected(value: float) -> None:
    rows = np.zeros((2, 6), "<f4")
    rows[1, 4] = value
    assert_rejects([b"phone-1", header(), rows.tobytes()], "samples", "at row 1, gyro_y")
    rows[1, 4] = 1e6
    assert decode_chunk([b"phone-1", header(), rows.tobytes()]).samples[1, 4] == 1e6


@pytest.mark.parametrize("rate", [20, 25, 50, 50.0, 100, 120.5, 200, 500])
def test_any_rate_in_range_is_accepted(rate: float) -> None:
    assert decode_chunk(message(head=header(rate=rate))).rate == rate


def test_timestamps_frame() -> None:
    samples = np.zeros((3, 6), "<f4").tobytes()
    times = np.array([10.0, 10.011, 10.019], "<f8")
    chunk = decode_chunk([b"a", header(rate=100), samples, times.tobytes()])
    assert chunk.times is not None and chunk.times.tolist() == times.tolist() and not chunk.native
    assert decode_chunk(message()).native and decode_chunk(message()).times is None
    assert_rejects([b"a", header(), samples, times[:2].tobytes()], "times", "expected 3 float64")
    assert_rejects([b"a", header(), samples, np.array([1.0, 2.0, 2.0], "<f8").tobytes()], "times",
                   "strictly increasing timestamps, got 2.0 then 2.0 at samples 1 and 2")
    assert_rejects([b"a", header(), samples, np.array([1.0, np.nan, 3.0], "<f8").tobytes()], "times", "nan")
    round_trip = decode_chunk(encode_chunk("a", 0, np.zeros((3, 6)), rate=100, times=times))
    assert round_trip.times is not None and round_trip.times.tolist() == times.tolist()


def test_units_are_converted_to_g_and_rad_per_s() -> None:
    rows = np.array([[9.80665, 0.0, -9.80665, 180.0, -90.0, 0.0]], "<f4")
    chunk = decode_chunk([b"a", header(units={"acc": "m/s2", "gyro": "deg/s"}), rows.tobytes()])
    np.testing.assert_allclose(chunk.samples, [[1.0, 0.0, -1.0, math.pi, -math.pi / 2, 0.0]], rtol=1e-6)
    only_gyro = decode_chunk([b"a", header(units={"gyro": "deg/s"}), rows.tobytes()])
    assert only_gyro.samples[0, 0] == np.float32(9.80665)
    for bad in ({"acc": "G"}, {"speed": "m/s"}, "g", ["g"], {"gyro": None}):
        assert_rejects([b"a", header(units=bad), rows.tobytes()], "units", "expected 'units'")
