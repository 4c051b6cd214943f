"""The gateway encodes phone chunks unchecked: whatever a batch accepts must still be a valid ingest message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("aiohttp", reason="the web extra is not installed: pip install -e '.[web]'")

from harstream.errors import ProtocolError
from harstream.protocol import MAX_ABS_SAMPLE, decode_chunk, encode_chunk
from harstream.web.convert import Batch, browser_batch, sensor_logger_batch
from harstream.web.errors import WebInputError
from harstream.web.streams import PhoneStream

value = st.one_of(st.floats(-MAX_ABS_SAMPLE, MAX_ABS_SAMPLE), st.sampled_from([MAX_ABS_SAMPLE, -MAX_ABS_SAMPLE]),
                  st.integers(-1000, 1000))
time_ms = st.one_of(st.floats(-1e15, 1e15), st.floats(1.7e12, 1.7e12 + 1e5), st.integers(0, 10**13))
row = st.tuples(time_ms, value, value, value, value, value, value).map(list)
"""Rows a batch takes (times in any order: those not after the one before are dropped, counted)."""
bad_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-2 * MAX_ABS_SAMPLE,
                                                                                  2 * MAX_ABS_SAMPLE))
any_row = st.tuples(time_ms, bad_value, value, value, value, value, value).map(list)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(row, min_size=1, max_size=40) | st.lists(any_row, min_size=1, max_size=3),
                min_size=1, max_size=4), st.sampled_from([1, -1]))
def test_whatever_a_batch_accepts_encodes_to_chunks_that_decode(batches: list[list[list[float]]],
                                                                sign: int) -> None:
    stream = PhoneStream("web-0123456789ab")
    stream.set_acc_sign(sign)
    for rows in batches:
        try:
            batch = browser_batch(rows)
        except WebInputError:
            continue
        _every_chunk_decodes(stream, batch)


def _every_chunk_decodes(stream: PhoneStream, batch: Batch) -> None:
    frames, dropped = stream.chunks(batch)
    assert sum(len(decode_chunk(f).samples) for f in frames) + dropped == len(batch)


near_limit = st.one_of(value, st.floats(MAX_ABS_SAMPLE - 20, MAX_ABS_SAMPLE),
                       st.floats(-MAX_ABS_SAMPLE, -MAX_ABS_SAMPLE + 20))
"""Readings whose sum with gravity can pass the protocol's range."""
reading = st.fixed_dictionaries({"time": st.integers(0, 10**19) | st.floats(0, 1e19), "x": near_limit,
                                 "y": near_limit, "z": near_limit})
sensor = st.sampled_from(["accelerometer", "gravity", "gyroscope", "totalacceleration"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(sensor, reading), min_size=1, max_size=30), st.sampled_from(["android", "ios"]))
def test_whatever_a_push_accepts_encodes_to_chunks_that_decode(items: list[tuple[str, dict[str, float]]],
                                                               frame: str) -> None:
    body = {"deviceId": "d", "sessionId": "s", "payload": [{"name": name, **r} for name, r in items]}
    try:
        push = sensor_logger_batch(body, frame)
    except WebInputError:
        return
    _every_chunk_decodes(PhoneStream("sl-0123456789ab"), push.batch)


def test_accelerometer_plus_gravity_past_the_range_is_refused_by_name() -> None:
    body = {"deviceId": "d", "sessionId": "s", "payload": [
        {"name": "accelerometer", "time": 10**9, "x": 0, "y": 0, "z": MAX_ABS_SAMPLE - 0.1},
        {"name": "gravity", "time": 10**9, "x": 0, "y": 0, "z": 9.8},
        {"name": "gyroscope", "time": 10**9, "x": 0, "y": 0, "z": 0}]}
    with pytest.raises(WebInputError, match=r"within ±1e\+06"):
        sensor_logger_batch(body, "android")


def test_the_check_that_is_skipped_still_catches_a_bad_value() -> None:
    with pytest.raises(ProtocolError):
        encode_chunk("s", 0, [[float("nan")] * 6])
    assert decode_chunk(encode_chunk("s", 0, [[0.0] * 6], check=False)).seq == 0
