"""Ingest messages: :class:`Chunk`, :func:`encode_chunk`, :func:`decode_chunk` and the samples and
timestamps frames they carry.

>>> frames = encode_chunk("watch.7", 0, [[0, 0, 1, 0, 0, 0]] * 2, rate=25, times=[0.0, 0.04])
>>> chunk = decode_chunk(frames)
>>> chunk.times.tolist(), chunk.native
([0.0, 0.04], False)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream import MAX_SAMPLES_PER_CHUNK, SAMPLE_RATE_HZ
from harstream.errors import ProtocolError
from harstream.protocol._validate import (
    _MISSING,
    _count_frames,
    _dumps,
    _encode_stream,
    _expected,
    _frame,
    _int,
    _json_object,
    _number,
    _plain,
    _stream_id,
    _version,
)
from harstream.protocol.limits import (
    ACC_UNITS,
    COLUMNS,
    GYRO_UNITS,
    MAX_ABS_SAMPLE,
    MAX_HEADER_BYTES,
    MAX_RATE_HZ,
    MAX_SEQ,
    MIN_RATE_HZ,
    VERSION,
    BytesLike,
)

_ROW_BYTES = 4 * len(COLUMNS)
_WIRE_DTYPE = np.dtype("<f4")
_NATIVE = sys.byteorder == "little"


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


def encode_chunk(
    stream: str,
    seq: int,
    samples: npt.ArrayLike,
    rate: float = SAMPLE_RATE_HZ,
    t0: float | None = None,
    restart: bool = False,
    times: npt.ArrayLike | None = None,
    units: Mapping[str, str] | None = None,
    check: bool = True,
) -> list[bytes]:
    """Frames of one ingest message; ``samples`` has shape (n, 6), any real dtype.

    ``times`` (n seconds, strictly increasing) adds the timestamps frame;
    ``units`` (e.g. ``{"acc": "m/s2"}``) says what ``samples`` are in. The
    message is decoded before it is returned, so a bad value raises
    :class:`ProtocolError` here; ``check=False`` skips that, for a caller that
    has checked its samples, times, rate and size itself (the web gateway:
    a third of its cost per chunk otherwise).

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
    if check:
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


# -- frames --------------------------------------------------------------------------------------


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
