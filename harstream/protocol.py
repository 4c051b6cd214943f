"""Protocol v1: every message between producers, the engine and subscribers.

A message is a ZeroMQ multipart message, a list of byte frames. Each
``encode_*`` returns one; each ``decode_*`` validates one completely before
returning and otherwise raises :class:`~harstream.errors.ProtocolError` with a
stable ``code`` (see :data:`ERROR_CODES`) and a ``detail`` naming the bad value
and what was expected. Headers are JSON, samples raw little-endian float32;
nothing is ever unpickled. Encoders run the matching decoder's checks on
what they send, so whatever they return is accepted on the other side.
``docs/protocol.md`` is the specification for implementers in other languages.

>>> import numpy as np
>>> frames = encode_chunk("phone-1", 0, np.zeros((64, 6), np.float32), t0=1700000000.5)
>>> frames[:2]
[b'phone-1', b'{"v":1,"seq":0,"rate":50,"t0":1700000000.5}']
>>> chunk = decode_chunk(frames)
>>> chunk.stream, chunk.seq, chunk.samples.shape, chunk.samples.dtype
('phone-1', 0, (64, 6), dtype('float32'))
>>> try:
...     decode_chunk([b"phone-1", b'{"v":1,"seq":-1,"rate":50}', frames[2]])
... except ProtocolError as exc:
...     print(exc.code, "|", exc.detail)
seq | expected 'seq' to be an integer in [0, 9007199254740991], got -1
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from harstream import MAX_SAMPLES_PER_CHUNK, SAMPLE_RATE_HZ
from harstream.errors import ProtocolError

VERSION: Final = 1
"""Protocol version, the ``"v"`` field of every JSON frame."""
STREAM_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
"""A valid stream id (use ``fullmatch``). ``$`` is excluded: ``$`` topics are the engine's."""
ERROR_TOPIC: Final = "$error"
"""Topic of rejected-input reports (:class:`ErrorEvent`)."""
STATS_TOPIC: Final = "$stats"
"""Topic of the engine's periodic counters (:class:`StatsEvent`)."""
COLUMNS: Final = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
"""Sample columns: acc in g (gravity included), gyro in rad/s."""
MAX_SEQ: Final = 2**53 - 1
"""Largest ``seq``/``seq_end``: exact in a double, so JavaScript subscribers read it exactly."""
MIN_RATE_HZ: Final = 20
"""Lowest sample rate accepted, Hz (the engine resamples every stream to 50 Hz)."""
MAX_RATE_HZ: Final = 500
"""Highest sample rate accepted, Hz."""
STANDARD_GRAVITY: Final = 9.80665
"""m/s² per g: acceleration sent in m/s² is divided by this."""
ACC_UNITS: Final[dict[str, float]] = {"g": 1.0, "m/s2": 1.0 / STANDARD_GRAVITY}
"""Accepted acceleration units and their factor to g."""
GYRO_UNITS: Final[dict[str, float]] = {"rad/s": 1.0, "deg/s": math.pi / 180.0}
"""Accepted angular-rate units and their factor to rad/s."""
MAX_ABS_SAMPLE: Final = 1e6
"""Largest magnitude of a sample value (g or rad/s): far beyond any sensor, far below overflow."""
MAX_HEADER_BYTES: Final = 1024
"""Size limit of an ingest header frame."""
MAX_BODY_BYTES: Final = 65536
"""Size limit of the JSON frame of an engine message."""

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""What decoders take as a frame (also anything exposing the buffer protocol, e.g. zmq.Frame)."""

ERROR_CODES: Final[dict[str, str]] = {
    "frames": "wrong number of frames, or a frame that is not bytes",
    "stream_id": "a stream id (ingest frame 0, a topic, a 'stream' field) is not 1-64 "
    "characters of [A-Za-z0-9._:-] (or not UTF-8)",
    "header": "frame 1 is not a UTF-8 JSON object, or is over its size limit",
    "version": "'v' is missing or is not 1",
    "seq": "'seq' is missing or not an integer in [0, 2**53-1] (booleans are not integers), "
    "or the chunk's last sample would lie past 2**53-1, or (below 50 Hz) its 50 Hz index would",
    "rate": f"'rate' is missing or not a number of Hz in [{MIN_RATE_HZ}, {MAX_RATE_HZ}]",
    "t0": "'t0' is present but not a finite number",
    "restart": "'restart' is present but not a boolean",
    "units": "'units' is present but not an object like {\"acc\": \"g\" or \"m/s2\", "
    "\"gyro\": \"rad/s\" or \"deg/s\"}",
    "times": "the timestamps frame (frame 3) is not n little-endian float64 seconds, finite and strictly "
    "increasing, one per sample; engine: not after the stream's last, or too far from its time origin",
    "samples": "samples frame length is not a multiple of 24 bytes, holds no sample, "
    f"more than {MAX_SAMPLES_PER_CHUNK}, or a NaN/infinite value or one beyond ±1e6",
    "topic": "an engine message has an unknown '$' topic, or a topic other than its 'stream'",
    "field": "a field of an engine message (prediction, $error, $stats) is missing or invalid",
    "seq_gap": "engine: a chunk's seq is ahead of the expected index (samples were lost); "
    "the stream restarts at the new seq, its filter state and window buffer reset",
    "seq_replay": "engine: a chunk's seq is behind the expected index; the chunk is dropped",
    "too_many_streams": "engine: the chunk would open a stream beyond the engine's stream limit; "
    "dropped (streams are freed after the idle timeout)",
    "not_owner": "engine (keys on): the stream id belongs to another producer key; dropped",
    "overloaded": "engine: the ingest queue was full; the chunk was dropped unprocessed (the "
    "stream's next chunk reports seq_gap and restarts it)",
    "internal": "engine: processing this stream's data failed inside the engine; its windows "
    "were dropped and the stream restarts with its next chunk; serving goes on",
    "moved": "router: the stream's engine changed (one was lost, hung, restarted or added); it restarts on "
    "its new engine at the seq named and its first windows re-warm; chunks in flight to a lost engine are lost",
    "no_engine": "router: no engine is live; the chunk was dropped (reported once per stream, the stream's "
    "next chunks counted, until an engine joins)",
}
"""Every ``ProtocolError.code`` and ``$error`` code, with its meaning."""

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

_ROW_BYTES = 4 * len(COLUMNS)
_WIRE_DTYPE = np.dtype("<f4")
_NATIVE = sys.byteorder == "little"
_STREAM_ID_BYTES = re.compile(STREAM_ID.pattern.encode("ascii"))
_TOPICS = {ERROR_TOPIC.encode(): "error", STATS_TOPIC.encode(): "stats"}
_MISSING: Any = object()
_SHOW = 40


@dataclass(frozen=True, slots=True, eq=False)
class Chunk:
    """One decoded ingest message (identity equality: it holds an array)."""

    stream: str
    """Stream id."""
    seq: int
    """Stream index of the first sample."""
    rate: float
    """Nominal sample rate in Hz, in [MIN_RATE_HZ, MAX_RATE_HZ] (50 for the model's own rate)."""
    t0: float | None
    """Unix time of the first sample, if the producer sent it."""
    samples: npt.NDArray[np.float32]
    """Shape (n, 6), :data:`COLUMNS`; read-only, a view of the frame when it was ``bytes``."""
    restart: bool = False
    """The producer restarts its stream at ``seq`` on purpose (no ``seq_replay``, no ``seq_gap``)."""
    owner: str | None = None
    """The producer's public key (z85) when the engine runs with keys; never on the wire."""
    times: npt.NDArray[np.float64] | None = None
    """Per-sample timestamps in seconds (any origin, strictly increasing), if the producer sent them."""

    @property
    def native(self) -> bool:
        """At the model's rate with implicit times: no resampling needed."""
        return self.times is None and self.rate == SAMPLE_RATE_HZ


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


def encode_chunk(
    stream: str,
    seq: int,
    samples: npt.ArrayLike,
    rate: float = SAMPLE_RATE_HZ,
    t0: float | None = None,
    restart: bool = False,
    times: npt.ArrayLike | None = None,
    units: Mapping[str, str] | None = None,
) -> list[bytes]:
    """Frames of one ingest message; ``samples`` has shape (n, 6), any real dtype.

    ``times`` (n seconds, strictly increasing) adds the timestamps frame;
    ``units`` (e.g. ``{"acc": "m/s2"}``) says what ``samples`` are in.

    >>> frames = encode_chunk("watch.7", 128, [[0, 0, 1, 0, 0, 0]])
    >>> frames[1], frames[2].hex(" ", 4)
    (b'{"v":1,"seq":128,"rate":50}', '00000000 00000000 0000803f 00000000 00000000 00000000')
    """
    header: dict[str, Any] = {"v": VERSION, "seq": _plain(seq), "rate": _plain(rate)}
    if t0 is not None:
        header["t0"] = _plain(t0)
        _number(header, "t0", "t0")  # named here: the decoder would see non-standard JSON
    if restart:
        header["restart"] = True
    if units:
        header["units"] = dict(units)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.ascontiguousarray(samples, dtype=_WIRE_DTYPE)
    except (TypeError, ValueError) as exc:
        raise ProtocolError("samples", f"expected an (n, 6) array of numbers: {exc}") from None
    if array.ndim != 2 or array.shape[1] != len(COLUMNS):
        raise ProtocolError("samples", f"expected samples of shape (n, 6), got {array.shape}")
    frames = [_encode_stream(stream), _dumps(header, "header"), array.tobytes()]
    if times is not None:
        frames.append(np.ascontiguousarray(times, dtype="<f8").tobytes())
    decode_chunk(frames)
    return frames


def decode_chunk(frames: Sequence[BytesLike]) -> Chunk:
    """Validate and decode one ingest message; raise :class:`ProtocolError` if malformed.

    ``samples`` is a read-only float32 (n, 6) array, a zero-copy view of frame
    2 when that frame is ``bytes`` (as ``recv_multipart()`` returns); copy it
    (``np.array(chunk.samples)``) to modify it.

    Samples sent in other units (``"units"``) come back in g and rad/s.

    >>> decode_chunk([b"phone-1", b'{"v":1,"seq":0,"rate":600}', bytes(24)])
    Traceback (most recent call last):
    ...
    harstream.errors.ProtocolError: rate: expected 'rate' to be a number of Hz in [20, 500], got 600
    """
    try:
        count = len(frames)
    except TypeError:
        count = -1
    _count_frames(frames, 4 if count == 4 else 3, "stream id, header, samples[, timestamps]")
    stream = _stream_id(_frame(frames, 0))
    header = _json_object(_frame(frames, 1), MAX_HEADER_BYTES)
    _version(header)
    seq = _int(header, "seq", "seq")
    rate = header.get("rate", _MISSING)
    if type(rate) not in (int, float) or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise _expected("rate", "'rate'", f"a number of Hz in [{MIN_RATE_HZ}, {MAX_RATE_HZ}]", rate)
    t0 = None if header.get("t0") is None else _number(header, "t0", "t0")
    restart = header.get("restart", False)
    if type(restart) is not bool:
        raise _expected("restart", "'restart'", "true or false", restart)
    acc_factor, gyro_factor = _units(header)
    samples = _samples(_frame(frames, 2), acc_factor, gyro_factor)
    times = _times(_frame(frames, 3), len(samples)) if len(frames) == 4 else None
    last = seq + len(samples) - 1
    if last > MAX_SEQ:
        raise ProtocolError("seq", f"expected seq + samples - 1 <= {MAX_SEQ}, got seq {seq} with {len(samples)} "
                            f"samples (the last sample's index would be {last})")
    # below 50 Hz the 50 Hz index, last * 50 / rate, is larger: past 2**53-1 only if last > MAX_SEQ // 3
    if rate < SAMPLE_RATE_HZ and last > MAX_SEQ // 3 and last * SAMPLE_RATE_HZ >= (MAX_SEQ + 1) * Fraction(rate):
        raise ProtocolError("seq", f"expected the last sample's 50 Hz index (seq + samples - 1) * 50 / rate to be "
                            f"at most {MAX_SEQ}, got sample {last} at {rate:g} Hz")
    return Chunk(stream, seq, rate, t0, samples, restart, times=times)


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


def _probs(obj: dict[str, Any], key: str) -> tuple[float, ...]:
    value = obj.get(key, _MISSING)
    if type(value) is list and 0 < len(value) <= 1024:
        probs = tuple(float(x) if type(x) is float else _int_as_float(x) for x in value)
        if all(0.0 <= x <= 1.0 for x in probs):  # NaN fails the comparison
            return probs
    raise _expected("field", repr(key), "a non-empty list of numbers in [0, 1]", value)


def _units(header: dict[str, Any]) -> tuple[float, float]:
    units = header.get("units")
    if units is None:
        return 1.0, 1.0
    expected = 'an object like {"acc": "g" or "m/s2", "gyro": "rad/s" or "deg/s"}'
    if type(units) is not dict or not set(units) <= {"acc", "gyro"}:
        raise _expected("units", "'units'", expected, units)
    acc, gyro = units.get("acc", "g"), units.get("gyro", "rad/s")
    if acc not in ACC_UNITS or gyro not in GYRO_UNITS:
        raise _expected("units", "'units'", expected, units)
    return ACC_UNITS[acc], GYRO_UNITS[gyro]


def _times(raw: bytes, n: int) -> npt.NDArray[np.float64]:
    if len(raw) != 8 * n:
        raise ProtocolError("times", f"expected {n} float64 timestamps ({8 * n} bytes), got {len(raw)} bytes")
    times: npt.NDArray[np.float64] = np.frombuffer(raw, "<f8")
    if not np.isfinite(times).all():
        raise ProtocolError("times", f"expected finite timestamps, got {times[~np.isfinite(times)][0]}")
    with np.errstate(over="ignore"):  # -1.7e308 then 1.7e308 increases: the step overflows to inf > 0
        steps = np.diff(times)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise ProtocolError("times", f"expected strictly increasing timestamps, got {float(times[i])!r} then "
                            f"{float(times[i + 1])!r} at samples {i} and {i + 1}")
    return times.astype(np.float64) if not _NATIVE else times


def _samples(raw: bytes, acc_factor: float = 1.0, gyro_factor: float = 1.0) -> npt.NDArray[np.float32]:
    n, extra = divmod(len(raw), _ROW_BYTES)
    if extra or not 0 < n <= MAX_SAMPLES_PER_CHUNK:
        raise ProtocolError(
            "samples",
            f"expected 1-{MAX_SAMPLES_PER_CHUNK} rows of 6 float32 (a multiple of 24 bytes), "
            f"got {len(raw)} bytes",
        )
    samples: npt.NDArray[np.float32] = np.frombuffer(raw, _WIRE_DTYPE).reshape(n, len(COLUMNS))
    if not (np.abs(samples) <= MAX_ABS_SAMPLE).all():  # NaN fails too
        row, col = np.argwhere(~(np.abs(samples) <= MAX_ABS_SAMPLE))[0]
        raise ProtocolError(
            "samples",
            f"expected finite values within ±{MAX_ABS_SAMPLE:g}, got {samples[row, col]} at row {row}, "
            f"{COLUMNS[col]}",
        )
    if acc_factor != 1.0 or gyro_factor != 1.0:
        samples = samples * np.array([acc_factor] * 3 + [gyro_factor] * 3, dtype=np.float32)
    elif not _NATIVE:
        samples = samples.astype(np.float32)
    samples.flags.writeable = False
    return samples
