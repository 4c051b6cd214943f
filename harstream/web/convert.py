"""Phone samples to protocol v1: the units and axes of the browser and of Sensor Logger, explicitly.

Nothing is converted by guesswork: the gateway sends each source's own
units in the chunk header (``"units"``, :data:`harstream.protocol.ACC_UNITS`,
:data:`~harstream.protocol.GYRO_UNITS`) and lets the engine convert, and
maps only the axes here. docs/phones.md has the tables.

**Browser** (W3C ``devicemotion``): one sample is ``[t_ms, ax, ay, az,
alpha, beta, gamma]``: ``t_ms`` unix milliseconds (``performance.timeOrigin
+ event.timeStamp``), ``a*`` = ``accelerationIncludingGravity`` in m/s² (a
phone flat, screen up, reads about +9.81 on z), ``alpha, beta, gamma`` =
``rotationRate`` in deg/s about z, x and y. So gyro x, y, z = beta, gamma, alpha.

>>> batch = browser_batch([[1000.0, 0, 0, 9.81, 90.0, 0, 0], [1020.0, 0, 0, 9.81, 0, 45.0, 0]])
>>> batch.values.tolist(), batch.times.tolist(), batch.units == BROWSER_UNITS
([[0.0, 0.0, 9.81, 0.0, 0.0, 90.0], [0.0, 0.0, 9.81, 45.0, 0.0, 0.0]], [1.0, 1.02], True)

**Sensor Logger** (HTTP Push): ``accelerometer`` (without gravity) and
``gravity`` in m/s², ``gyroscope`` rad/s, ``time`` unix ns; Android's frame
(a phone flat reads gravity +z), which iOS matches with "Standardise Units &
Frames" on; without it iOS's accelerations are negated on every axis
(``frame="ios"`` negates them back; its rotation rates need no change).

>>> body = {"messageId": 0, "sessionId": "s", "deviceId": "d", "payload": [
...     {"name": "accelerometer", "time": 10**9, "x": 0.5, "y": 0.25, "z": 0},
...     {"name": "gravity", "time": 10**9, "x": 0, "y": 0, "z": -9.8},
...     {"name": "gyroscope", "time": 10**9, "x": 0.1, "y": 0, "z": 0}]}
>>> push = sensor_logger_batch(body, "ios")
>>> push.device_id, push.batch.values.tolist(), push.gravity_ms2
('d', [[-0.5, -0.25, 9.8, 0.1, 0.0, 0.0]], 9.8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from harstream.protocol import ACC_UNITS, GYRO_UNITS, MAX_ABS_SAMPLE
from harstream.web.errors import WebInputError

BROWSER_UNITS: Final[Mapping[str, str]] = {"acc": "m/s2", "gyro": "deg/s"}
"""What the browser's devicemotion gives (protocol ``units`` header)."""
SENSOR_LOGGER_UNITS: Final[Mapping[str, str]] = {"acc": "m/s2", "gyro": "rad/s"}
"""What Sensor Logger gives (protocol ``units`` header)."""
FRAMES: Final = ("android", "ios")
"""Sensor Logger conventions: ``android`` (also iOS with "Standardise Units & Frames"), ``ios`` (without)."""
BROWSER_COLUMNS: Final = ("t_ms", "ax", "ay", "az", "alpha", "beta", "gamma")
"""One browser sample, in this order."""
_BROWSER_TO_PROTOCOL: Final = [1, 2, 3, 5, 6, 4]
"""Protocol columns acc x y z, gyro x y z from browser columns (gyro x = beta, y = gamma, z = alpha)."""
GRAVITY_RANGE_MS2: Final = (7.0, 12.5)
"""A gravity reading (m/s²) outside this range is not Earth's gravity in m/s² (g units, or a bad sensor)."""

assert set(BROWSER_UNITS.values()) <= set(ACC_UNITS) | set(GYRO_UNITS)
assert set(SENSOR_LOGGER_UNITS.values()) <= set(ACC_UNITS) | set(GYRO_UNITS)


@dataclass(frozen=True)
class Batch:
    """Samples ready for a chunk: columns acc xyz, gyro xyz (in :attr:`units`), times in unix seconds.

    Made by :func:`browser_batch` and :func:`sensor_logger_batch` only, which check what the protocol
    asks of a chunk's samples and times (so the gateway encodes its chunks without decoding them again).
    """

    values: npt.NDArray[np.float64]
    """Shape (n, 6), in protocol column order, finite, each within ``±MAX_ABS_SAMPLE``."""
    times: npt.NDArray[np.float64]
    """Shape (n,), unix seconds, strictly increasing."""
    units: Mapping[str, str]
    """The protocol ``units`` header of :attr:`values`."""
    dropped: int = 0
    """Samples of the input left out (a time not after the one before)."""

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class Push:
    """One Sensor Logger HTTP Push message, decoded."""

    device_id: str
    session_id: str
    message_id: int | None
    batch: Batch
    gravity_ms2: float | None
    """Mean |gravity| of the message in m/s² (None without a gravity sensor)."""


def browser_batch(samples: object, max_samples: int = 3000) -> Batch:
    """A browser batch: a list of :data:`BROWSER_COLUMNS` rows; :class:`WebInputError` when malformed."""
    if not isinstance(samples, list) or not samples:
        raise WebInputError("batch", f"expected 'samples' to be a non-empty list of rows, got {_show(samples)}")
    if len(samples) > max_samples:
        raise WebInputError("batch", f"expected at most {max_samples} samples in a batch, got {len(samples)}")
    width = len(BROWSER_COLUMNS)
    # the fast check first (every row a list of 7 ints or floats); the slow one only to name a problem
    if not ({type(row) for row in samples} == {list} and {len(row) for row in samples} == {width}
            and {type(value) for row in samples for value in row} <= {int, float}):
        _name_bad_sample(samples)
    try:
        table = np.asarray(samples, dtype=np.float64)
    except OverflowError:  # a JSON integer of hundreds of digits: no double holds it
        row = next((i for i, row in enumerate(samples) if not all(map(_fits_double, row))), 0)
        raise WebInputError("values", f"sample {row}: expected finite values within ±{MAX_ABS_SAMPLE:g}, got "
                            "a number too large for a double") from None
    return _ordered(table[:, _BROWSER_TO_PROTOCOL], table[:, 0] / 1000.0, BROWSER_UNITS)


def _name_bad_sample(samples: list[Any]) -> None:
    """Raise the :class:`WebInputError` naming the first malformed browser sample."""
    for i, row in enumerate(samples):
        if not isinstance(row, list) or len(row) != len(BROWSER_COLUMNS):
            raise WebInputError("batch", f"sample {i}: expected [{', '.join(BROWSER_COLUMNS)}], got {_show(row)}")
        for value in row:
            if type(value) not in (int, float):
                what = "a null rotationRate: this device has no gyroscope" if value is None else _show(value)
                raise WebInputError("batch", f"sample {i}: expected numbers, got {what}")


def sensor_logger_batch(body: object, frame: str = "android") -> Push:
    """One Sensor Logger HTTP Push body (parsed JSON); :class:`WebInputError` names what is wrong.

    Total acceleration is ``totalacceleration`` when present, else
    ``accelerometer + gravity``; gyroscope and gravity are interpolated at
    the acceleration's times.
    """
    if frame not in FRAMES:
        raise WebInputError("frame", f"expected frame to be one of {', '.join(FRAMES)}, got {_show(frame)}")
    if not isinstance(body, dict):
        raise WebInputError("body", f"expected a JSON object, got {_show(body)}")
    device_id, session_id = _text(body, "deviceId"), _text(body, "sessionId")
    message_id = body.get("messageId")
    if message_id is not None and (type(message_id) is not int or message_id < 0):
        raise WebInputError("messageId", f"expected an integer >= 0, got {_show(message_id)}")
    payload = body.get("payload")
    if not isinstance(payload, list):
        raise WebInputError("payload", f"expected 'payload' to be a list, got {_show(payload)}")
    series = _series(payload)
    if "gyroscope" not in series:
        raise WebInputError("payload", "expected 'gyroscope' readings: the model needs rotation rates")
    gravity = series.get("gravity")
    if "totalacceleration" in series:
        t, acc = series["totalacceleration"]
    elif "accelerometer" in series and gravity is not None:
        t, acc = series["accelerometer"]
        acc = acc + _at(t, *gravity)
    else:
        raise WebInputError("payload", "expected 'totalacceleration', or 'accelerometer' and 'gravity' "
                            "readings (total acceleration, gravity included)")
    sign = -1.0 if frame == "ios" else 1.0
    values = np.hstack([sign * acc, _at(t, *series["gyroscope"])])
    g = None if gravity is None else float(np.mean(np.linalg.norm(gravity[1], axis=1)))
    return Push(device_id, session_id, message_id, _ordered(values, t, SENSOR_LOGGER_UNITS), g)


def _series(payload: Sequence[Any]) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """``name -> (times s sorted, xyz)`` of the motion readings; other sensors are ignored."""
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            raise WebInputError("payload", f"item {i}: expected an object, got {_show(item)}")
        name = item.get("name")
        if name not in ("accelerometer", "gravity", "gyroscope", "totalacceleration"):
            continue
        values = item.get("values", item)  # the app's newer format nests x, y, z in "values"
        xyz = [values.get(axis) if isinstance(values, dict) else None for axis in "xyz"]
        numbers = []
        for value in (item.get("time"), *xyz):
            if not isinstance(value, int | float) or isinstance(value, bool) or not _fits_double(value):
                what = "a number too large for a double" if isinstance(value, int) else _show(value)
                raise WebInputError("payload", f"item {i} ({name}): expected finite numbers 'time' (ns), "
                                    f"'x', 'y', 'z', got {what}")
            numbers.append(float(value))
        rows.setdefault(str(name), []).append((numbers[0] / 1e9, numbers[1], numbers[2], numbers[3]))
    out = {}
    for name, items in rows.items():
        table = np.asarray(sorted(items), dtype=np.float64)
        _check_values(table[:, 1:], name)
        out[name] = (table[:, 0], table[:, 1:])
    return out


def _at(t: npt.NDArray[np.float64], times: npt.NDArray[np.float64],
        xyz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``xyz`` sampled at ``times`` interpolated at ``t`` (held at the ends)."""
    return np.stack([np.interp(t, times, xyz[:, k]) for k in range(3)], axis=1)


def _ordered(values: npt.NDArray[np.float64], times: npt.NDArray[np.float64],
             units: Mapping[str, str]) -> Batch:
    """The batch of ``values`` at ``times``: every value finite within the protocol's range (else
    :class:`WebInputError`), and only the samples whose time is after every earlier one (strictly
    increasing times). Every :class:`Batch` comes from here, so its chunks need no second check."""
    _check_values(values, "sample")
    if not np.all(np.isfinite(times)):
        raise WebInputError("times", "expected finite timestamps")
    keep = np.ones(len(times), dtype=bool)
    keep[1:] = times[1:] > np.maximum.accumulate(times)[:-1]
    return Batch(values[keep], times[keep], units, int(np.count_nonzero(~keep)))


def _check_values(values: npt.NDArray[np.float64], what: str) -> None:
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_SAMPLE)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise WebInputError("values", f"{what} {row}: expected finite values within ±{MAX_ABS_SAMPLE:g}, "
                            f"got {values[row].tolist()}")


def _fits_double(value: float) -> bool:
    """Whether ``value`` (a JSON number) is a finite double: False for NaN, infinities and huge integers.

    >>> _fits_double(1.5), _fits_double(float("nan")), _fits_double(10**400)
    (True, False, False)
    """
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise WebInputError(key, f"expected {key!r} to be a string of 1-256 characters, got {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
