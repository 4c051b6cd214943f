"""Checks the protocol's encoders and decoders share: frames, stream ids, strict JSON, typed fields.

Each raises :class:`~harstream.errors.ProtocolError` with the message's code and a detail naming
the bad value and what was expected.

>>> _int({"seq": -1}, "seq", "seq")
Traceback (most recent call last):
...
harstream.errors.ProtocolError: seq: expected 'seq' to be an integer in [0, 9007199254740991], got -1
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from harstream.errors import ProtocolError
from harstream.protocol.limits import MAX_SEQ, STREAM_ID, VERSION, BytesLike

_STREAM_ID_BYTES = re.compile(STREAM_ID.pattern.encode("ascii"))
_MISSING: Any = object()
_SHOW = 40


def _show(value: object) -> str:
    """``repr`` of a received value, cut to a readable length."""
    if value is _MISSING:
        return "nothing (missing)"
    if isinstance(value, bytes | str) and len(value) > _SHOW:
        value = value[:_SHOW]
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


def _expected(code: str, what: str, expected: str, got: object) -> ProtocolError:
    return ProtocolError(code, f"expected {what} to be {expected}, got {_show(got)}")


def _count_frames(frames: Sequence[BytesLike], n: int, names: str) -> None:
    try:
        count = len(frames)
    except TypeError:
        raise _expected("frames", "the message", "a sequence of frames", frames) from None
    if count != n:
        raise ProtocolError("frames", f"expected {n} frames ({names}), got {count}")


def _frame(frames: Sequence[BytesLike], index: int) -> bytes:
    frame = frames[index]
    if type(frame) is bytes:
        return frame
    try:  # bytearray, memoryview, zmq.Frame
        return memoryview(frame).tobytes()
    except TypeError:
        raise ProtocolError(
            "frames", f"expected frame {index} to be bytes, got {type(frame).__name__}"
        ) from None


def _stream_id(raw: bytes) -> str:
    if _STREAM_ID_BYTES.fullmatch(raw) is None:
        try:
            got: object = raw.decode("utf-8")
        except UnicodeDecodeError:
            got = raw
        raise _expected("stream_id", "the stream id", "1-64 characters of [A-Za-z0-9._:-]", got)
    return raw.decode("ascii")


def _encode_stream(stream: object) -> bytes:
    if type(stream) is not str:
        raise _expected("stream_id", "the stream id", "a str", stream)
    return stream.encode("utf-8", "backslashreplace")


def _json_object(raw: bytes, limit: int) -> dict[str, Any]:
    if len(raw) > limit:
        raise ProtocolError(
            "header", f"expected frame 1 to be at most {limit} bytes, got {len(raw)}"
        )
    try:
        obj = _HEADER_DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(
            "header", f"expected frame 1 to be UTF-8 JSON, got {_show(raw)} ({exc})"
        ) from None
    if type(obj) is not dict:
        raise _expected("header", "frame 1", "a JSON object", obj)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} overflows a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:20]!r}")
        obj[key] = value
    return obj


_HEADER_DECODER = json.JSONDecoder(
    parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)
"""Strict JSON (no NaN/Infinity, finite numbers, unique keys); built once (``json.loads`` with
options builds a decoder per call)."""


def _dumps(obj: dict[str, Any], code: str, allow_nan: bool = True) -> bytes:
    """Compact JSON; NaN is let through only where the decoder then names the bad field."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=allow_nan, default=_plain_json)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(code, f"expected JSON-encodable, finite values: {exc}") from None
    return text.encode("utf-8")


def _plain(value: Any) -> Any:
    """Numpy scalars as Python numbers; anything else unchanged (and validated later)."""
    return value.item() if isinstance(value, np.generic) else value


def _plain_json(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _version(obj: dict[str, Any]) -> None:
    version = obj.get("v", _MISSING)
    if type(version) is not int or version != VERSION:
        raise _expected("version", "'v'", str(VERSION), version)


def _int(obj: dict[str, Any], key: str, code: str) -> int:
    value = obj.get(key, _MISSING)
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        raise _expected(code, repr(key), f"an integer in [0, {MAX_SEQ}]", value)
    return value


def _number(
    obj: dict[str, Any], key: str, code: str, low: float = -math.inf, name: str = ""
) -> float:
    value = obj.get(key, _MISSING)
    number = float(value) if type(value) is float else _int_as_float(value)
    if not (math.isfinite(number) and number >= low):
        expected = "a finite number" if low == -math.inf else f"a finite number >= {low:g}"
        raise _expected(code, name or repr(key), expected, value)
    return number


def _int_as_float(value: object) -> float:
    if type(value) is not int:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.nan


def _text(obj: dict[str, Any], key: str, code: str, low: int = 1, high: int = 64) -> str:
    value = obj.get(key, _MISSING)
    if type(value) is not str or not low <= len(value) <= high:
        raise _expected(code, repr(key), f"a string of {low}-{high} characters", value)
    return value

