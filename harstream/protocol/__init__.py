"""Protocol v1: every message between producers, the engine and subscribers.

A message is a ZeroMQ multipart message, a list of byte frames. Each
``encode_*`` returns one; each ``decode_*`` validates one completely before
returning and otherwise raises :class:`~harstream.errors.ProtocolError` with a
stable ``code`` (see :data:`ERROR_CODES`) and a ``detail`` naming the bad value
and what was expected. Headers are JSON, samples raw little-endian float32;
nothing is ever unpickled. Encoders run the matching decoder's checks on
what they send, so whatever they return is accepted on the other side.
``docs/protocol.md`` is the specification for implementers in other languages.

The package, one concept a module: :mod:`~harstream.protocol.limits` (version, stream ids, topics,
columns, units, size limits), :mod:`~harstream.protocol.codes` (:data:`ERROR_CODES`),
:mod:`~harstream.protocol.chunk` (ingest messages) and :mod:`~harstream.protocol.events` (what the
engine publishes). Import every name from ``harstream.protocol``.

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

from harstream.errors import ProtocolError
from harstream.protocol.chunk import Chunk, decode_chunk, encode_chunk
from harstream.protocol.codes import ERROR_CODES
from harstream.protocol.events import (
    STATS_EXTRA_FIELDS,
    STATS_FIELDS,
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_event,
    decode_prediction,
    encode_error,
    encode_prediction,
    encode_stats,
)
from harstream.protocol.limits import (
    ACC_UNITS,
    COLUMNS,
    ERROR_TOPIC,
    GYRO_UNITS,
    MAX_ABS_SAMPLE,
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    MAX_RATE_HZ,
    MAX_SEQ,
    MIN_RATE_HZ,
    STANDARD_GRAVITY,
    STATS_TOPIC,
    STREAM_ID,
    VERSION,
    BytesLike,
)

__all__ = [
    "ACC_UNITS", "COLUMNS", "ERROR_CODES", "ERROR_TOPIC", "GYRO_UNITS", "MAX_ABS_SAMPLE", "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES", "MAX_RATE_HZ", "MAX_SEQ", "MIN_RATE_HZ", "STANDARD_GRAVITY", "STATS_EXTRA_FIELDS",
    "STATS_FIELDS", "STATS_TOPIC", "STREAM_ID", "VERSION", "BytesLike", "Chunk", "ErrorEvent", "Prediction",
    "ProtocolError", "StatsEvent", "decode_chunk", "decode_event", "decode_prediction", "encode_chunk",
    "encode_error", "encode_prediction", "encode_stats",
]
