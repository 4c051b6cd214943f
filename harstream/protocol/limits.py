"""The wire's fixed facts: version, stream ids, topics, sample columns, units and size limits.

>>> STREAM_ID.fullmatch("phone-1") is not None, STREAM_ID.fullmatch("$stats") is None
(True, True)
>>> round(ACC_UNITS["m/s2"] * STANDARD_GRAVITY, 12), MAX_SEQ == 2**53 - 1
(1.0, True)
"""

from __future__ import annotations

import math
import re
from typing import Final, TypeAlias

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
