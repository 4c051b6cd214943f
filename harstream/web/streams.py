"""One phone's stream: its id, ``seq``, nominal rate and last time, turned into protocol v1 chunks.

A connection (a page's WebSocket, a Sensor Logger session) gets a new
:class:`PhoneStream`, whose first chunk sets ``"restart": true``: a reloaded
page keeps its stream id but its clock and ``seq`` start afresh, and the
engine must not call that a replay. Samples not after the stream's
last time are dropped and counted.

>>> import numpy as np
>>> from harstream.web.convert import browser_batch
>>> stream = PhoneStream("web-0123456789ab")
>>> rows = [[1000.0 + 16 * i, 0, 0, 9.81, 0, 0, 0] for i in range(4)]
>>> frames, dropped = stream.chunks(browser_batch(rows))
>>> len(frames), frames[0][1], dropped
(1, b'{"v":1,"seq":0,"rate":62.5,"t0":1.0,"restart":true,"units":{"acc":"m/s2","gyro":"deg/s"}}', 0)
>>> stream.chunks(browser_batch(rows))[1]   # the same times again: dropped
4
"""

from __future__ import annotations

import secrets
from typing import Final

import numpy as np
import numpy.typing as npt

from harstream import MAX_SAMPLES_PER_CHUNK
from harstream.protocol import MAX_RATE_HZ, MIN_RATE_HZ, STREAM_ID, encode_chunk
from harstream.web.convert import Batch

DEFAULT_RATE_HZ: Final = 60.0
"""Nominal rate of a stream whose first batch has one sample (browsers fire devicemotion at about 60 Hz)."""


def new_phone_id() -> str:
    """A fresh stream id for a browser phone: ``web-`` and 12 hex digits.

    >>> import re
    >>> bool(re.fullmatch(r"web-[0-9a-f]{12}", new_phone_id()))
    True
    """
    return f"web-{secrets.token_hex(6)}"


def nominal_rate(times: npt.NDArray[np.float64]) -> float:
    """The rate (Hz, in the protocol's range, 0.1 Hz steps) of strictly increasing times in seconds.

    >>> nominal_rate(np.arange(10) / 100.0)
    100.0
    """
    if len(times) < 2:
        return DEFAULT_RATE_HZ
    rate = round(1.0 / float(np.median(np.diff(times))), 1)
    return float(min(MAX_RATE_HZ, max(MIN_RATE_HZ, rate)))


class PhoneStream:
    """The engine-side state of one phone's stream.

    Its chunks are encoded unchecked (``check=False``): every :class:`~harstream.web.convert.Batch`
    was checked where it was made (finite values within the protocol's range, strictly increasing
    finite times), the rate is clamped to the protocol's range and a chunk holds at most
    ``MAX_SAMPLES_PER_CHUNK`` samples (tests/test_web_streams.py tries both sources).
    """

    def __init__(self, stream_id: str) -> None:
        if not STREAM_ID.fullmatch(stream_id):
            raise ValueError(f"stream id {stream_id!r}: expected 1-64 characters of [A-Za-z0-9._:-]")
        self.stream_id = stream_id
        self.seq = 0
        self.rate: float | None = None
        self.last_time: float | None = None
        self.restart_next = True
        self.acc_sign = 1.0

    def set_acc_sign(self, sign: int) -> None:
        """Negate acceleration from now on (``-1``) or not (``1``); a change restarts the stream."""
        if float(sign) != self.acc_sign:
            self.acc_sign = float(sign)
            self.restart_next = True

    def chunks(self, batch: Batch) -> tuple[list[list[bytes]], int]:
        """The ingest messages of ``batch`` and how many of its samples were dropped (too early)."""
        values, times = batch.values, batch.times
        if self.last_time is not None:
            later = times > self.last_time
            values, times = values[later], times[later]
        dropped = len(batch) - len(times)
        if not len(times):
            return [], dropped
        if self.rate is None:
            self.rate = nominal_rate(times)
        if self.acc_sign != 1.0:
            values = values * np.array([self.acc_sign] * 3 + [1.0] * 3)
        out = []
        for start in range(0, len(times), MAX_SAMPLES_PER_CHUNK):
            part = slice(start, start + MAX_SAMPLES_PER_CHUNK)
            out.append(encode_chunk(self.stream_id, self.seq, values[part], rate=self.rate,
                                    t0=float(times[part][0]), restart=self.restart_next,
                                    times=times[part], units=batch.units, check=False))
            self.seq += len(times[part])
            self.restart_next = False
        self.last_time = float(times[-1])
        return out, dropped
