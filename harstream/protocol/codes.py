"""What every error code means: each ``ProtocolError.code`` and ``$error`` code, for people and docs.

>>> ERROR_CODES["seq_replay"]
"engine: a chunk's seq is behind the expected index; the chunk is dropped"
"""

from __future__ import annotations

from typing import Final

from harstream import MAX_SAMPLES_PER_CHUNK
from harstream.protocol.limits import MAX_RATE_HZ, MIN_RATE_HZ

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
