"""What the engine publishes: a :class:`Prediction` on each stream's topic, :class:`ErrorEvent` on
``$error`` and :class:`StatsEvent` on ``$stats``; their encoders and :func:`decode_event`.

>>> decode_event(encode_error("phone-1", "seq_gap", "expected seq 64, got 128")).code
'seq_gap'
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from harstream.errors import ProtocolError
from harstream.protocol._validate import (
    _MISSING,
    _count_frames,
    _dumps,
    _encode_stream,
    _expected,
    _frame,
    _int,
    _int_as_float,
    _json_object,
    _number,
    _plain,
    _stream_id,
    _text,
    _version,
)
from harstream.protocol.limits import ERROR_TOPIC, MAX_BODY_BYTES, MAX_SEQ, STATS_TOPIC, VERSION, BytesLike

STATS_FIELDS: Final[dict[str, str]] = {
    "streams": "int >= 0: streams currently active",
    "windows": "int >= 0: windows classified since start",
    "windows_per_s": "number >= 0: windows classified per second, recent rate",
    "latency_ms": 'object {"p50", "p99", "max"}: numbers >= 0 (ms) from receipt, or null before any window',
    "rejected": "int >= 0: messages rejected since start (each also sent on $error)",
    "uptime_s": "number >= 0: seconds since the engine started",
    "t": "number: unix time of this report",
}
"""Fields every ``$stats`` message carries (more may be added within v1)."""
STATS_EXTRA_FIELDS: Final[dict[str, str]] = {
    "engine": "string: id of this engine run, new at every start (a change means a restart)",
    "started": "number: unix time this engine run started",
    "labels": "array of strings: the served model's classes, the order of 'probs'",
    "chunks": "int >= 0: chunks accepted since start",
    "shed": "int >= 0: chunks dropped unprocessed because the ingest queue was full",
    "internal_errors": "int >= 0: failures inside the engine (each reported on $error as internal)",
    "queued_samples": "int >= 0: samples received but not yet filtered",
    "age_ms": 'object {"p50", "p99", "max"}: age of each window\'s last sample at publication '
    "(engine clock minus the producer's t0 clock), or nulls when no chunk carried t0",
    "gc_pauses": 'object {"count", "max_ms", "total_ms"}: the serving process\'s garbage-collector runs '
    "since the previous $stats (each stalls the serving loop)",
    "loop_stall_ms": "number >= 0: the longest time (ms) since the previous $stats the serving loop did not "
    "look at its ingest socket (messages then waited unread, before the receipt latency_ms counts from)",
    "limits": "object: the engine's resource limits (see harstream serve --help)",
}
"""Further fields the engine's ``$stats`` carries (decoders must not require them)."""

_TOPICS = {ERROR_TOPIC.encode(): "error", STATS_TOPIC.encode(): "stats"}


@dataclass(frozen=True, slots=True)
class Prediction:
    """One classified window of one stream, published on the stream's topic."""

    stream: str
    """Stream id (also the topic)."""
    seq_end: int
    """Stream index of the window's last sample."""
    label: str
    """Most probable class of this window alone."""
    probs: tuple[float, ...]
    """Class probabilities, in the model's label order."""
    smoothed: str
    """Label after online smoothing over the stream's windows."""
    t_arrival: float
    """Unix time the chunk completing the window arrived at the engine."""
    t_emit: float
    """Unix time the prediction was published."""
    smoothed_probs: tuple[float, ...] | None = None
    """Smoothed class probabilities (same order as ``probs``), if the smoother has them."""
    latency_ms: float = math.nan
    """Milliseconds from the receipt of the chunk completing the window to publication,
    on the engine's monotonic clock; defaults to ``max(0, t_emit - t_arrival) * 1000``."""
    age_ms: float | None = None
    """Age of the window's last sample at publication (engine clock minus the producer's
    ``t0`` clock), when the producer sent ``t0``."""
    engine: str | None = None
    """Id of the engine run that classified the window (new at every engine start)."""

    def __post_init__(self) -> None:
        if math.isnan(self.latency_ms):
            latency = max(0.0, (self.t_emit - self.t_arrival) * 1000.0)
            object.__setattr__(self, "latency_ms", latency)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A rejected input, published on ``$error``."""

    stream: str | None
    """Stream of the rejected message; None when its stream id itself was bad."""
    code: str
    """Machine-readable reason, a key of :data:`ERROR_CODES`."""
    detail: str
    """Human-readable: the bad value and what was expected."""


@dataclass(frozen=True, slots=True)
class StatsEvent:
    """The engine's periodic counters, published on ``$stats``."""

    fields: dict[str, Any]
    """The JSON object without ``"v"``: at least :data:`STATS_FIELDS`."""



def encode_prediction(p: Prediction) -> list[bytes]:
    """Frames of one prediction: topic (the stream id) and its JSON object.

    >>> p = Prediction("phone-1", 127, "SITTING", (0.1, 0.9), "SITTING", 10.0, 10.25)
    >>> import json
    >>> topic, body = encode_prediction(p)
    >>> topic, list(json.loads(body))  # doctest: +NORMALIZE_WHITESPACE
    (b'phone-1', ['v', 'stream', 'seq_end', 'label', 'probs', 'smoothed', 'smoothed_probs',
                  't_arrival', 't_emit', 'latency_ms', 'age_ms', 'engine'])
    >>> decode_prediction(encode_prediction(p)).latency_ms
    250.0
    """
    topic = _encode_stream(p.stream)
    stream = _stream_id(topic)
    # The decoder's field checks, made on the values, and the JSON written from a template: this is
    # the engine's hot path (a third of json.dumps' time). tests/test_protocol.py checks it writes
    # what json.dumps writes.
    seq_end = _plain(p.seq_end)
    if type(seq_end) is not int or not 0 <= seq_end <= MAX_SEQ:
        raise _expected("field", "'seq_end'", f"an integer in [0, {MAX_SEQ}]", seq_end)
    probs = _encoded_probs(p.probs, "probs")
    smoothed_probs = "null" if p.smoothed_probs is None else _encoded_probs(p.smoothed_probs, "smoothed_probs")
    if p.smoothed_probs is not None and len(p.smoothed_probs) != len(p.probs):
        raise _expected("field", "'smoothed_probs'", f"{len(p.probs)} values", p.smoothed_probs)
    return [topic, (
        f'{{"v":{VERSION},"stream":"{stream}","seq_end":{seq_end},"label":{_encoded_text(p.label, "label")},'
        f'"probs":{probs},"smoothed":{_encoded_text(p.smoothed, "smoothed")},"smoothed_probs":{smoothed_probs},'
        f'"t_arrival":{_encoded_number(p.t_arrival, "t_arrival")},"t_emit":{_encoded_number(p.t_emit, "t_emit")},'
        f'"latency_ms":{_encoded_number(p.latency_ms, "latency_ms")},'
        f'"age_ms":{"null" if p.age_ms is None else _encoded_number(p.age_ms, "age_ms")},'
        f'"engine":{"null" if p.engine is None else _encoded_text(p.engine, "engine")}}}'
    ).encode("ascii")]


@functools.lru_cache(maxsize=1024)
def _encoded_text(value: str, key: str) -> str:
    """A field's string as JSON (the few labels and engine ids: cached)."""
    if type(value) is not str or not 1 <= len(value) <= 64:
        raise _expected("field", repr(key), "a string of 1-64 characters", value)
    return json.dumps(value)


def _encoded_number(value: Any, key: str) -> str:
    """A finite number as JSON writes it."""
    value = _plain(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    if type(value) is int:
        return int.__repr__(value)
    raise _expected("field", repr(key), "a finite number", value)


def _encoded_probs(values: Any, key: str) -> str:
    """Probabilities as a JSON list; each a number in [0, 1]."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if type(values) not in (tuple, list) or not 0 < len(values) <= 1024:
        raise _expected("field", repr(key), "a non-empty list of numbers in [0, 1]", values)
    try:  # the engine's case, Python floats, checked and written in C: float.__repr__ refuses all else
        text = ",".join(map(float.__repr__, values))
    except TypeError:  # ints, numpy scalars: one at a time below
        pass
    else:
        if min(values) >= 0.0 and max(values) <= 1.0 and "n" not in text:  # "nan" (and "inf") fail
            return "[" + text + "]"
        raise _expected("field", repr(key), "a non-empty list of numbers in [0, 1]", list(values))
    plain = [_plain(x) for x in values]
    if not all(type(x) in (float, int) and 0.0 <= x <= 1.0 for x in plain):  # NaN fails the comparison
        raise _expected("field", repr(key), "a non-empty list of numbers in [0, 1]", list(values))
    return "[" + ",".join([float.__repr__(x) if type(x) is float else int.__repr__(x) for x in plain]) + "]"


def decode_prediction(frames: Sequence[BytesLike]) -> Prediction:
    """Validate and decode one prediction message (see :func:`decode_event` for any topic)."""
    _count_frames(frames, 2, "topic, JSON object")
    topic = _frame(frames, 0)
    if topic.startswith(b"$"):
        raise _expected("topic", "the topic", f"a stream id, {ERROR_TOPIC} or {STATS_TOPIC}", topic)
    return _prediction(_stream_id(topic), _json_object(_frame(frames, 1), MAX_BODY_BYTES))


def encode_error(stream: str | None, code: str, detail: str) -> list[bytes]:
    """Frames of one ``$error`` report (``stream`` None when the stream id was bad).

    >>> encode_error("phone-1", "seq_replay", "expected seq 640, got 576")[1]
    b'{"v":1,"stream":"phone-1","code":"seq_replay","detail":"expected seq 640, got 576"}'
    """
    body = {"v": VERSION, "stream": stream, "code": code, "detail": detail}
    frames = [ERROR_TOPIC.encode(), _dumps(body, "field")]
    decode_event(frames)
    return frames


def encode_stats(stats: Mapping[str, Any]) -> list[bytes]:
    """Frames of one ``$stats`` report; ``stats`` holds :data:`STATS_FIELDS` (no ``"v"``)."""
    if "v" in stats:
        raise ProtocolError("field", "expected stats without 'v' (encode_stats adds it)")
    body = {"v": VERSION, **stats}
    frames = [STATS_TOPIC.encode(), _dumps(body, "field", allow_nan=False)]
    decode_event(frames)  # names a bad known field
    return frames


def decode_event(frames: Sequence[BytesLike]) -> Prediction | ErrorEvent | StatsEvent:
    """Validate and decode any message the engine publishes, by its topic.

    >>> decode_event(encode_error(None, "stream_id", "bad"))
    ErrorEvent(stream=None, code='stream_id', detail='bad')
    """
    _count_frames(frames, 2, "topic, JSON object")
    topic = _frame(frames, 0)
    kind = _TOPICS.get(topic)
    if kind is None:
        return decode_prediction(frames)
    body = _json_object(_frame(frames, 1), MAX_BODY_BYTES)
    _version(body)
    return _error_event(body) if kind == "error" else _stats_event(body)


# -- helpers -----------------------------------------------------------------------------------


def _prediction(topic: str, body: dict[str, Any]) -> Prediction:
    _version(body)
    stream = _stream_id(_text(body, "stream", "stream_id").encode("utf-8", "surrogatepass"))
    if stream != topic:
        raise _expected("topic", "the topic", f"the 'stream' field {stream!r}", topic)
    probs = _probs(body, "probs")
    smoothed_probs = None if body.get("smoothed_probs") is None else _probs(body, "smoothed_probs")
    if smoothed_probs is not None and len(smoothed_probs) != len(probs):
        raise _expected("field", "'smoothed_probs'", f"{len(probs)} values", body["smoothed_probs"])
    age = body.get("age_ms")
    engine = body.get("engine")
    if engine is not None:
        engine = _text(body, "engine", "field")
    return Prediction(
        stream=stream,
        seq_end=_int(body, "seq_end", "field"),
        label=_text(body, "label", "field"),
        probs=probs,
        smoothed=_text(body, "smoothed", "field"),
        t_arrival=_number(body, "t_arrival", "field"),
        t_emit=_number(body, "t_emit", "field"),
        smoothed_probs=smoothed_probs,
        latency_ms=_number(body, "latency_ms", "field"),  # older engines could publish < 0
        age_ms=None if age is None else _number(body, "age_ms", "field"),
        engine=engine,
    )


def _error_event(body: dict[str, Any]) -> ErrorEvent:
    stream = body.get("stream", _MISSING)
    if stream is not None:
        stream = _stream_id(_text(body, "stream", "stream_id").encode("utf-8", "surrogatepass"))
    code = _text(body, "code", "field")
    return ErrorEvent(stream, code, _text(body, "detail", "field", low=0, high=MAX_BODY_BYTES))


def _stats_event(body: dict[str, Any]) -> StatsEvent:
    for key in ("streams", "windows", "rejected"):
        _int(body, key, "field")
    for key in ("windows_per_s", "uptime_s"):
        _number(body, key, "field", low=0.0)
    _number(body, "t", "field")
    latency = body.get("latency_ms", _MISSING)
    if type(latency) is not dict:
        raise _expected("field", "'latency_ms'", 'an object {"p50", "p99", "max"}', latency)
    for key in ("p50", "p99", "max"):
        if latency.get(key, _MISSING) is not None:
            _number(latency, key, "field", low=0.0, name=f"'latency_ms.{key}'")
    return StatsEvent({key: value for key, value in body.items() if key != "v"})

def _probs(obj: dict[str, Any], key: str) -> tuple[float, ...]:
    value = obj.get(key, _MISSING)
    if type(value) is list and 0 < len(value) <= 1024:
        probs = tuple(float(x) if type(x) is float else _int_as_float(x) for x in value)
        if all(0.0 <= x <= 1.0 for x in probs):  # NaN fails the comparison
            return probs
    raise _expected("field", repr(key), "a non-empty list of numbers in [0, 1]", value)

