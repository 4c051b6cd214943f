"""Send samples to harstream the way a phone or wearable would: synthetic, or a real sensor log.

    python examples/producer.py [tcp://127.0.0.1:5555] [stream-id]
    python examples/producer.py ... --key phone-1.key_secret --server-key engine.key
    python examples/producer.py ... --csv log.csv
    python examples/producer.py ... --acc TotalAcceleration.csv --gyro Gyroscope.csv --acc-unit m/s2
    python examples/producer.py ... --acc ... --gyro ... --dry-run       # check the files, send nothing

Without a log it synthesises 50 Hz accelerometer (g) and gyroscope (rad/s)
samples and sends them in chunks of 25 (0.5 s) as protocol v1 messages
(docs/protocol.md): frame 0 the stream id, frame 1 a JSON header, frame 2
n x 6 little-endian float32. With --key and --server-key (an engine started
with keys, see docs/security.md) the connection is CurveZMQ-encrypted and
authenticated. Uses only pyzmq, json, numpy and the standard library.

**Logs.** With --csv (one file holding both sensors) or --acc and --gyro
(one file each) it streams a CSV log of timestamped samples, as phone
sensor-logging apps write them, in real time (--speed), in chunks of
--chunk samples, each with the timestamps frame (frame 3: the log's times in
seconds from its first streamed sample) and the nominal rate in the header.
The engine resamples it onto its 50 Hz grid. Every conversion is explicit:

* **Columns** are found by header name. Names are compared lower-cased,
  without a unit in brackets and without anything but letters and digits
  (``"Acceleration x (m/s^2)"`` is ``accelerationx``). Time: the first of
  ``t``, ``time``, ``timestamp``, ``seconds_elapsed``, ``elapsed``; the axes:
  ``acc_x`` (also ``accel``, ``acceleration``, ``accelerometer``,
  ``total_acceleration`` before the axis letter) and ``gyro_x`` (also
  ``gyroscope``, ``rotation_rate``), and in a one-sensor file (--acc,
  --gyro, --gravity) also plain ``x``, ``y``, ``z`` in any order. Other names:
  --time-col, --acc-cols, --gyro-cols, --gravity-cols. The delimiter is the
  one of ``,`` ``;`` tab most frequent in the header line (--delimiter);
  ``.gz`` files are read as gzip; the header is the first non-blank line and
  every row must have as many fields as it.
* **Time unit**: --time-unit s|ms|us|ns, else a unit in the time column's
  header (``Time (s)``), else the automatic rule: the one of s, ms, us, ns
  under which the median interval between rows is a rate of 20-500 Hz
  (these ranges are 1000x apart, so at most one fits); none fitting is an
  error. Rows repeating the previous row's time are dropped (reported); a
  time before the previous row's is an error naming the line.
* **Rate**: the header's ``rate`` is 1 / the median interval of the
  accelerometer's times, rounded to a whole Hz (--rate overrides); it must
  lie in 20-500 Hz. Timestamps carry the true instants, so jitter and a
  rate that is not whole cost nothing; a pause over 0.1 s is reported here
  and by the engine (``seq_gap``, the stream's windows start again after it).
  A --csv file without a time column (MotionSense) needs --rate: its rows
  are taken as evenly spaced and sent without timestamps.
* **Alignment of separate files**: the stream has the accelerometer's
  timestamps; the gyroscope (and --gravity) is interpolated linearly onto
  them (the files must share a clock, as one app's files do). Accelerometer
  rows outside the gyroscope's time span are dropped (reported): nothing
  is extrapolated.
* **Units**: --acc-unit g|m/s2 and --gyro-unit rad/s|deg/s, else the unit
  in the columns' headers (``(m/s^2)``, ``(G)``, ``(deg/s)``), else g and
  rad/s. Values are sent as logged with the header's ``units`` field, and
  the engine converts (1 g = 9.80665 m/s², 1 deg/s = π/180 rad/s).
* **Gravity**: the model needs acceleration *with* gravity. Android apps
  log it (Sensor Logger: TotalAcceleration.csv; its Accelerometer.csv has
  gravity removed); iOS apps often log it apart: --gravity FILE (or
  --gravity-cols in the same file) adds it, interpolated like the gyro.
* **Sign**: protocol v1 reads (0, 0, +1) g for a phone lying face up, as
  Android apps (+9.81 m/s² on z) and HAPT do. iOS Core Motion reads
  (0, 0, -1) g: pass --acc-sign -1 for logs written by iOS apps (Sensor
  Logger on iOS unless "Standardise Units & Frames" is on, SensorLog,
  MotionSense). Nothing is guessed: the sign cannot be told from the data.
* **Check**: before sending, the gravity the acceleration holds (the median
  over the log of |acceleration averaged over 1 s|) must be 0.5-1.5 g and
  the 99th percentile of |angular rate| at most 20 rad/s; otherwise an error
  says which unit or file the values look like (--no-check skips this).

The model was trained on a phone worn at the waist (HAPT); other placements
and orientations classify worse (docs/model.md).

>>> normalized_name(' "Acceleration x (m/s^2)" ')
('accelerationx', 'm/s2')
>>> normalized_name("seconds_elapsed")
('secondselapsed', None)
>>> rate, step = nominal_rate([0.0, 0.0101, 0.0199, 0.0299], "log.csv")  # a jittery 100 Hz phone
>>> rate, round(step * 1000, 3)
(100, 10.0)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import zmq
import zmq.auth

RATE = 50
CHUNK = 25
MIN_RATE_HZ = 20
MAX_RATE_HZ = 500
MAX_SAMPLES_PER_CHUNK = 3000
MAX_PAUSE_S = 0.1
"""Longest pause between samples the engine interpolates across; longer ones restart the stream's windows."""
STANDARD_GRAVITY = 9.80665
ACC_UNITS = {"g": 1.0, "m/s2": 1.0 / STANDARD_GRAVITY}
"""Acceleration units and their factor to g."""
GYRO_UNITS = {"rad/s": 1.0, "deg/s": math.pi / 180.0}
"""Angular-rate units and their factor to rad/s."""
TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
"""Time units and how many of them make a second, in the order the automatic rule tries them."""
GRAVITY_RANGE_G = (0.5, 1.5)
"""Accepted gravity in the acceleration (g): see :func:`gravity_g`."""
MAX_GYRO_P99 = 20.0
"""Largest accepted 99th percentile of |angular rate| (rad/s)."""
STREAM_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

TIME_NAMES = ("t", "time", "timestamp", "seconds_elapsed", "elapsed")
PREFIXES = {
    "acc": ("acc", "accel", "acceleration", "accelerometer", "total_acceleration"),
    "gyro": ("gyro", "gyroscope", "rotation_rate"),
    "gravity": ("gravity", "grav"),
}
SENSOR_NAMES = {"acc": "accelerometer", "gyro": "gyroscope", "gravity": "gravity"}

Array = npt.NDArray[np.float64]


class LogError(Exception):
    """A log that cannot be streamed; the message names the file, the line and what was expected."""


# --- reading one CSV file ---------------------------------------------------------------------------

_ANNOTATION = re.compile(r"[(\[]([^)\]]*)[)\]]")
_UNIT_WORDS = {
    "g": "g", "m/s2": "m/s2", "ms-2": "m/s2", "rad/s": "rad/s", "deg/s": "deg/s",
    "s": "s", "ms": "ms", "us": "us", "ns": "ns",
}


def _unit_of(annotation: str) -> str | None:
    """The unit an annotation like ``m/s^2`` or ``°/s`` names, if it is one we know."""
    text = annotation.strip().lower().replace(" ", "").replace("^", "").replace("²", "2")
    text = text.replace("µ", "u").replace("μ", "u").replace("°", "deg").replace("seconds", "s")
    return _UNIT_WORDS.get(text.replace("sec", "s"))


def normalized_name(header: str) -> tuple[str, str | None]:
    """A column's name as compared (letters and digits, lower case) and the unit its header states."""
    units = [_unit_of(m.group(1)) for m in _ANNOTATION.finditer(header)]
    name = re.sub(r"[^a-z0-9]", "", _ANNOTATION.sub("", header).lower())
    return name, next((u for u in units if u is not None), None)


@dataclass(frozen=True)
class Column:
    """A column found in a file's header."""

    index: int
    header: str
    unit: str | None
    """The unit the header states, if any."""


@dataclass(frozen=True)
class Series:
    """Some columns of one CSV file: raw times, values and the line of each row."""

    path: str
    raw_time: npt.NDArray[Any]
    """Times as written: int64 when every cell is an integer (exact ns), else float64."""
    values: Array
    """Shape (n, k): the requested value columns, in the order requested."""
    lines: npt.NDArray[np.int64]
    """1-based line of each row."""
    time_column: Column | None
    """None: the file has no time column (``raw_time`` is the row index)."""
    columns: tuple[Column, ...]
    header_line: int


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _find(path: str, line: int, header: Sequence[str], what: str, given: str | None,
          candidates: Sequence[str], option: str) -> Column:
    """The column named ``given`` (exactly, else normalized), else the first of ``candidates`` present."""
    names = [normalized_name(h) for h in header]
    if given is not None:
        wanted = [i for i, h in enumerate(header) if h.strip() == given.strip()]
        wanted = wanted or [i for i, (n, _) in enumerate(names) if n == normalized_name(given)[0]]
        if not wanted:
            raise LogError(f"{path}:{line}: no column {given!r} ({option}); the header has "
                           f"{', '.join(repr(h) for h in header)}")
        return Column(wanted[0], header[wanted[0]], names[wanted[0]][1])
    for candidate in candidates:
        key = normalized_name(candidate)[0]
        hits = [i for i, (n, _) in enumerate(names) if n == key]
        if hits:
            return Column(hits[0], header[hits[0]], names[hits[0]][1])
    raise LogError(f"{path}:{line}: no {what} column: expected one named {' or '.join(candidates[:6])}"
                   f"{' ...' if len(candidates) > 6 else ''} (or name it with {option}); the header has "
                   f"{', '.join(repr(h) for h in header)}")


def _time_cell(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_series(path: Path | str, time_col: str | None, sensors: Sequence[tuple[str, str | None, bool]],
                delimiter: str | None = None, untimed_ok: bool = False) -> tuple[Series, ...]:
    """Read one CSV file: its time column and, per sensor ``(name, "X,Y,Z" or None, one-sensor file)``,
    three value columns. One :class:`Series` per sensor, all with the same rows. With ``untimed_ok``
    a file without a time column is read too (its rows' times are their indices)."""
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise LogError(f"{name}: file not found")
    with _open(p) as f:
        try:
            lines: Iterator[str] = iter(f)
            skipped = 0
            first = ""
            for first in lines:
                if first.strip():
                    break
                skipped += 1
            if not first.strip():
                raise LogError(f"{name}: the file is empty; expected a header row and rows of samples")
            sep = delimiter or max(",;\t", key=lambda c: (first.count(c), c == ","))
            reader = csv.reader(itertools.chain([first], lines), delimiter=sep)
            header = next(reader)
            header_line = skipped + reader.line_num
            if all(_is_number(h) for h in header):
                raise LogError(f"{name}:{header_line}: expected a header row naming the columns "
                               f"(e.g. time,x,y,z), got {first.strip()[:60]!r}")
            time_column: Column | None
            try:
                time_column = _find(name, header_line, header, "time", time_col, TIME_NAMES,
                                    "--time-col; a --csv file without times: give its rate with --rate")
            except LogError:
                if time_col is not None or not untimed_ok:
                    raise
                time_column = None
            groups: list[tuple[Column, ...]] = []
            for sensor, given, single in sensors:
                given_names = _axis_names(given, sensor)
                cols = []
                for axis, axis_given in zip("xyz", given_names, strict=True):
                    candidates = [f"{prefix}_{axis}" for prefix in PREFIXES[sensor]]
                    if single:
                        candidates.append(axis)
                    cols.append(_find(name, header_line, header, f"{SENSOR_NAMES[sensor]} {axis}",
                                      axis_given, candidates, f"--{sensor}-cols"))
                groups.append(tuple(cols))
            wanted = [c.index for group in groups for c in group]
            times: list[int | float] = []
            values: list[list[float]] = []
            row_lines: list[int] = []
            for row in reader:
                line = skipped + reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise LogError(f"{name}:{line}: expected {len(header)} fields like the header "
                                   f"(line {header_line}), got {len(row)}")
                if time_column is None:
                    times.append(len(times))
                    values.append([_number(name, line, header[i], row[i]) for i in wanted])
                    row_lines.append(line)
                    continue
                cell = row[time_column.index]
                try:
                    t = _time_cell(cell)
                except ValueError:
                    raise LogError(f"{name}:{line}: column {time_column.header!r}: expected a time "
                                   f"(a number), got {cell.strip()[:40]!r}") from None
                if not math.isfinite(t):
                    raise LogError(f"{name}:{line}: column {time_column.header!r}: expected a finite time, "
                                   f"got {cell.strip()!r}")
                times.append(t)
                values.append([_number(name, line, header[i], row[i]) for i in wanted])
                row_lines.append(line)
        except csv.Error as exc:
            raise LogError(f"{name}:{skipped + reader.line_num}: not readable as CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise LogError(f"{name}: expected UTF-8 text: {exc}") from None
    if len(times) < 2:
        raise LogError(f"{name}: expected at least 2 rows of samples after the header, got {len(times)}")
    if all(type(t) is int for t in times):
        try:
            raw: npt.NDArray[Any] = np.array(times, dtype=np.int64)
        except OverflowError:
            raw = np.array(times, dtype=np.float64)
    else:
        raw = np.array(times, dtype=np.float64)
    matrix = np.array(values, dtype=np.float64).reshape(len(values), len(wanted))
    line_array = np.array(row_lines, dtype=np.int64)
    return tuple(
        Series(name, raw, matrix[:, 3 * k:3 * k + 3], line_array, time_column, group, header_line)
        for k, group in enumerate(groups)
    )


def _axis_names(given: str | None, sensor: str) -> list[str | None]:
    if given is None:
        return [None, None, None]
    parts = [part.strip() for part in given.split(",")]
    if len(parts) != 3 or not all(parts):
        raise LogError(f"--{sensor}-cols: expected three column names X,Y,Z, got {given!r}")
    return list(parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(path: str, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        hint = " (a decimal comma? use a decimal point)" if "," in text else ""
        raise LogError(f"{path}:{line}: column {column!r}: expected a number, got {text.strip()[:40]!r}"
                       f"{hint}") from None
    if not math.isfinite(value):
        raise LogError(f"{path}:{line}: column {column!r}: expected a finite number, got {text.strip()!r}")
    return value


# --- times ------------------------------------------------------------------------------------------


def increasing(series: Series) -> npt.NDArray[np.bool_]:
    """The rows of ``series`` to keep: all but those repeating the previous row's time.

    A time before the previous row's is an error naming both lines.
    """
    step = np.diff(series.raw_time)
    back = np.flatnonzero(step < 0)
    if back.size and series.time_column is not None:
        i = int(back[0]) + 1
        raise LogError(
            f"{series.path}:{series.lines[i]}: column {series.time_column.header!r}: time {series.raw_time[i]} "
            f"is before the previous row's {series.raw_time[i - 1]} (line {series.lines[i - 1]}); expected "
            f"times in increasing order"
        )
    return np.concatenate([[True], step > 0])


def _rows(series: Series, keep: npt.NDArray[np.bool_]) -> Series:
    return replace(series, raw_time=series.raw_time[keep], values=series.values[keep], lines=series.lines[keep])


def median_step(series: Series) -> float:
    """Median interval between rows, in the file's time unit."""
    return float(np.median(np.diff(series.raw_time).astype(np.float64)))


def time_unit(series: Series, requested: str = "auto") -> str:
    """The time unit of ``series`` (see the module's rule): explicit, stated in its header, or automatic.

    >>> s = Series("a.csv", np.array([0, 10_000_000, 20_000_000]), np.zeros((3, 3)), np.arange(2, 5),
    ...            Column(0, "time", None), (), 1)
    >>> time_unit(s)
    'ns'
    """
    column = series.time_column
    if column is None:
        raise LogError(f"{series.path}: no time column")
    stated = column.unit if column.unit in TIME_UNITS else None
    where = f"{series.path}:{series.header_line}: column {column.header!r}"
    if requested != "auto":
        if stated is not None and stated != requested:
            raise LogError(f"{where} says {stated}, but --time-unit {requested}")
        return requested
    if stated is not None:
        return stated
    step = median_step(series)
    for unit, per_s in TIME_UNITS.items():
        if MIN_RATE_HZ <= round(per_s / step) <= MAX_RATE_HZ:
            return unit
    raise LogError(
        f"{where}: the median interval between rows is {step:g} (file units): no unit of s, ms, us, ns makes "
        f"it a rate within {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz; name the unit with --time-unit"
    )


def nominal_rate(seconds: npt.ArrayLike, path: str) -> tuple[int, float]:
    """The nominal rate (1 / the median interval, rounded to a whole Hz) and the median interval in s."""
    step = float(np.median(np.diff(np.asarray(seconds, dtype=np.float64))))
    rate = round(1.0 / step)
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise LogError(f"{path}: the median interval between samples is {step * 1000:g} ms ({1 / step:.4g} Hz): "
                       f"expected a rate within {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz (is --time-unit right?)")
    return rate, step


def _seconds(raw: npt.NDArray[Any], origin: int | float, per_s: float) -> Array:
    """Times relative to ``origin`` (same unit as ``raw``) in seconds, exact for integer ns."""
    if raw.dtype.kind == "i" and isinstance(origin, int | np.integer):
        return (raw - origin).astype(np.float64) / per_s
    return (raw.astype(np.float64) - float(origin)) / per_s


def _pauses(seconds: Array) -> tuple[int, float]:
    step = np.diff(seconds)
    long = step > MAX_PAUSE_S
    return int(long.sum()), float(step.max()) if len(step) else 0.0


# --- a whole log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """How to read a log (the command line's log options)."""

    csv: str | None = None
    """One file with time, accelerometer and gyroscope columns."""
    acc: str | None = None
    """Accelerometer file (with ``gyro``)."""
    gyro: str | None = None
    """Gyroscope file (with ``acc``)."""
    gravity: str | None = None
    """Gravity file, added to the acceleration."""
    time_col: str | None = None
    acc_cols: str | None = None
    gyro_cols: str | None = None
    gravity_cols: str | None = None
    time_unit: str = "auto"
    acc_unit: str | None = None
    """None: the unit the header states, else g."""
    gyro_unit: str | None = None
    """None: the unit the header states, else rad/s."""
    acc_sign: int = 1
    rate: float | None = None
    """Nominal rate for the header; None: from the median interval."""
    delimiter: str | None = None
    check: bool = True


@dataclass(frozen=True)
class Log:
    """A log ready to stream: samples in the logged units, on the accelerometer's timestamps."""

    times: Array
    """Seconds from the first sample (which is 0.0), strictly increasing."""
    samples: Array
    """Shape (n, 6): acc (gravity included, sign applied) in ``acc_unit``, gyro in ``gyro_unit``."""
    rate: float
    """Nominal rate for the header, Hz."""
    median_interval_s: float
    acc_unit: str
    gyro_unit: str
    acc_sign: int
    sources: tuple[str, ...]
    notes: tuple[str, ...]
    """What was dropped, trimmed or found on the way (printed before streaming)."""
    timed: bool = True
    """Sent with the timestamps frame (False: a file without a time column, at --rate)."""

    @property
    def units(self) -> dict[str, str] | None:
        """The header's ``units`` field, or None for g and rad/s."""
        units = {k: v for k, v, default in (("acc", self.acc_unit, "g"), ("gyro", self.gyro_unit, "rad/s"))
                 if v != default}
        return units or None

    def in_g_and_rad_s(self) -> Array:
        """The samples as the engine reads them: acc in g, gyro in rad/s."""
        factors = np.array([ACC_UNITS[self.acc_unit]] * 3 + [GYRO_UNITS[self.gyro_unit]] * 3)
        return np.asarray(self.samples * factors, dtype=np.float64)


def _unit(series: Iterable[Series], requested: str | None, units: dict[str, float], option: str,
          default: str) -> str:
    stated = {(s.path, c.header, c.unit) for s in series for c in s.columns if c.unit in units}
    if requested is not None:
        for path, header, unit in sorted(stated):
            if unit != requested:
                raise LogError(f"{path}: column {header!r} says {unit}, but {option} {requested}")
        return requested
    found = {unit for _, _, unit in stated}
    if len(found) > 1:
        raise LogError(f"columns state different units ({', '.join(sorted(found))}); name one with {option}")
    return found.pop() if found else default


def _interpolate(times: Array, series: Series, seconds: Array) -> Array:
    return np.column_stack([np.interp(times, seconds, series.values[:, c]) for c in range(3)])


def _read(o: Options) -> tuple[Series, Series, Series | None]:
    """The accelerometer, gyroscope and gravity (if any) columns ``o`` names, as read."""
    gravity_here = o.gravity is None and o.gravity_cols is not None
    if o.csv is not None:
        if o.acc is not None or o.gyro is not None:
            raise LogError("--csv: expected either --csv FILE or --acc FILE --gyro FILE, not both")
        wanted = [("acc", o.acc_cols, False), ("gyro", o.gyro_cols, False)]
        if gravity_here:
            wanted.append(("gravity", o.gravity_cols, False))
        found = read_series(o.csv, o.time_col, wanted, o.delimiter, untimed_ok=o.rate is not None)
        acc, gyro = found[0], found[1]
        gravity = found[2] if gravity_here else None
    elif o.acc is not None and o.gyro is not None:
        wanted = [("acc", o.acc_cols, True)] + ([("gravity", o.gravity_cols, False)] if gravity_here else [])
        found = read_series(o.acc, o.time_col, wanted, o.delimiter)
        acc, gravity = found[0], (found[1] if gravity_here else None)
        (gyro,) = read_series(o.gyro, o.time_col, [("gyro", o.gyro_cols, True)], o.delimiter)
    else:
        raise LogError("expected a log: --csv FILE, or --acc FILE with --gyro FILE")
    if o.gravity is not None:
        if acc.time_column is None:
            raise LogError(f"--gravity: {acc.path} has no time column to align {o.gravity} with; "
                           f"name gravity columns in it with --gravity-cols")
        (gravity,) = read_series(o.gravity, o.time_col, [("gravity", o.gravity_cols, True)], o.delimiter)
    return acc, gyro, gravity


def _header_rate(rate: float) -> float:
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise LogError(f"--rate: expected {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz, got {rate:g}")
    return int(rate) if float(rate).is_integer() else float(rate)


def load_log(options: Options) -> Log:
    """Read, align and convert a log as ``options`` say (see the module's rules)."""
    o = options
    if o.acc_sign not in (1, -1):
        raise LogError(f"--acc-sign: expected 1 or -1, got {o.acc_sign}")
    acc, gyro, gravity = _read(o)
    notes: list[str] = []
    keep: dict[str, npt.NDArray[np.bool_]] = {}
    for s in (acc, gyro, gravity):
        if s is not None and s.path not in keep:
            keep[s.path] = increasing(s)
            if keep[s.path].sum() < 2:
                raise LogError(f"{s.path}: expected at least 2 rows with different times, got 1")
            if dropped := int((~keep[s.path]).sum()):
                notes.append(f"{s.path}: dropped {dropped} rows repeating the previous row's time")
    acc, gyro = _rows(acc, keep[acc.path]), _rows(gyro, keep[gyro.path])
    gravity = None if gravity is None else _rows(gravity, keep[gravity.path])

    rate: float
    if acc.time_column is None:  # one file without a time column, --rate given
        assert o.rate is not None
        rate = _header_rate(o.rate)
        times = np.arange(len(acc.raw_time)) / rate
        step, inside = 1.0 / rate, np.ones(len(times), dtype=bool)
        gyro_values = gyro.values
        notes.append(f"{acc.path}: no time column: rows taken as evenly spaced at {rate:g} Hz (--rate), "
                     f"sent without timestamps")
        grav_values = None if gravity is None else gravity.values
    else:
        unit = time_unit(acc, o.time_unit)
        for other in (gyro, gravity):
            if other is not None and other.path != acc.path and (u := time_unit(other, o.time_unit)) != unit:
                raise LogError(f"{other.path}: times are in {u}, but {acc.path}'s are in {unit}: expected files "
                               f"written with one clock (name it with --time-unit)")
        per_s = TIME_UNITS[unit]
        origin = acc.raw_time[0].item()
        acc_t = _seconds(acc.raw_time, origin, per_s)
        if o.rate is None:
            rate, step = nominal_rate(acc_t, acc.path)
        else:
            rate, step = _header_rate(o.rate), float(np.median(np.diff(acc_t)))
        timed = [(s, _seconds(s.raw_time, origin, per_s)) for s in (gyro, gravity) if s is not None]
        inside = _overlap(acc, acc_t, [(s, t) for s, t in timed if s.path != acc.path], notes)
        times = acc_t[inside]
        aligned = [s.values[inside] if s.path == acc.path else _interpolate(times, s, t) for s, t in timed]
        gyro_values, grav_values = aligned[0], (aligned[1] if gravity is not None else None)
    acc_values = acc.values[inside] if grav_values is None else acc.values[inside] + grav_values

    acc_unit = _unit([acc] + ([gravity] if gravity is not None else []), o.acc_unit, ACC_UNITS,
                     "--acc-unit", "g")
    gyro_unit = _unit([gyro], o.gyro_unit, GYRO_UNITS, "--gyro-unit", "rad/s")
    count, longest = _pauses(times)
    if count:
        notes.append(f"{acc.path}: {count} pauses over {MAX_PAUSE_S:g} s (longest {longest:.3f} s): the engine "
                     f"reports each as seq_gap and starts the stream's windows again after it")
    sources = tuple(dict.fromkeys(s.path for s in (acc, gyro, gravity) if s is not None))
    log = Log(times - times[0], np.hstack([o.acc_sign * acc_values, gyro_values]), rate, step,
              acc_unit, gyro_unit, o.acc_sign, sources, tuple(notes), timed=acc.time_column is not None)
    if o.check:
        check_values(log, gravity is not None)
    return log


def _overlap(acc: Series, acc_t: Array, others: list[tuple[Series, Array]], notes: list[str]
             ) -> npt.NDArray[np.bool_]:
    """The accelerometer rows within every other file's time span (nothing is extrapolated)."""
    lo = max([float(acc_t[0])] + [float(t[0]) for _, t in others])
    hi = min([float(acc_t[-1])] + [float(t[-1]) for _, t in others])
    for other, t in others:
        if t[0] > acc_t[-1] or t[-1] < acc_t[0]:
            raise LogError(f"{other.path}: its times ({t[0]:.3f} to {t[-1]:.3f} s) do not overlap "
                           f"{acc.path}'s ({acc_t[0]:.3f} to {acc_t[-1]:.3f} s; both from {acc.path}'s first "
                           f"row): expected files written with one clock")
        count, longest = _pauses(t[(t >= lo) & (t <= hi)])
        if count:
            notes.append(f"{other.path}: {count} pauses over {MAX_PAUSE_S:g} s (longest {longest:.3f} s), "
                         f"interpolated across")
    inside = (acc_t >= lo) & (acc_t <= hi)
    before, after = int((acc_t < lo).sum()), int((acc_t > hi).sum())
    if before or after:
        notes.append(f"{acc.path}: dropped {before} rows before and {after} after the other files' time span")
    if inside.sum() < 2:
        raise LogError(f"{acc.path}: fewer than 2 rows lie within the other files' time span "
                       f"({lo:.3f} to {hi:.3f} s); expected files written with one clock")
    return inside


def gravity_g(acc: Array, window: int) -> float:
    """Median over time of |acceleration averaged over ``window`` samples| (about 1 s): the gravity it holds.

    Averaging removes the motion (a body's mean acceleration over a second is small) but not gravity,
    whatever the phone's orientation.

    >>> t = np.arange(500) / 50
    >>> walking = np.c_[0.6 * np.sin(2 * np.pi * 2 * t), 0 * t, 0.4 * np.cos(2 * np.pi * 2 * t)]
    >>> round(gravity_g(walking, 50), 3), round(gravity_g(walking + [0, 0, 1], 50), 3)
    (0.0, 1.0)
    """
    n = min(window, len(acc))
    sums = np.cumsum(np.vstack([np.zeros((1, 3)), acc]), axis=0)
    means = (sums[n:] - sums[:-n]) / n
    return float(np.median(np.linalg.norm(means, axis=1)))


def check_values(log: Log, with_gravity: bool) -> None:
    """Raise :class:`LogError` when the values do not look like acceleration with gravity and rad/s."""
    x = log.in_g_and_rad_s()
    acc = gravity_g(x[:, :3], max(1, round(log.rate)))
    low, high = GRAVITY_RANGE_G
    source = log.sources[0]
    if not low <= acc <= high:
        hints = []
        if log.acc_unit == "g" and low * STANDARD_GRAVITY <= acc <= high * STANDARD_GRAVITY:
            hints.append("the values look like m/s²: pass --acc-unit m/s2")
        if log.acc_unit == "m/s2" and low / STANDARD_GRAVITY <= acc <= high / STANDARD_GRAVITY:
            hints.append("the values look like g: pass --acc-unit g")
        if acc < low and not with_gravity:
            hints.append("or is gravity removed? (Sensor Logger's Accelerometer.csv is: use TotalAcceleration.csv "
                         "on Android, or add --gravity Gravity.csv)")
        hint = "; ".join(hints) or "check the columns"
        raise LogError(f"{source}: gravity (median |acceleration averaged over 1 s|) is {acc:.3g} g with "
                       f"--acc-unit {log.acc_unit}: expected {low}-{high} g; {hint} (--no-check skips this)")
    gyro = float(np.percentile(np.linalg.norm(x[:, 3:], axis=1), 99))
    if gyro > MAX_GYRO_P99:
        hint = ("the values look like deg/s: pass --gyro-unit deg/s" if log.gyro_unit == "rad/s"
                else "check the columns")
        raise LogError(f"{log.sources[1 if len(log.sources) > 1 else 0]}: 99th percentile of |angular rate| is "
                       f"{gyro:.3g} rad/s with --gyro-unit {log.gyro_unit}: expected at most {MAX_GYRO_P99:g}; "
                       f"{hint} (--no-check skips this)")


def describe(log: Log) -> str:
    """One line about what would be streamed."""
    sign = "" if log.acc_sign == 1 else ", sign flipped"
    return (f"{' + '.join(log.sources)}: {len(log.times)} samples, {log.times[-1]:.1f} s, nominal {log.rate:g} Hz "
            f"(median interval {log.median_interval_s * 1000:.3f} ms), acc in {log.acc_unit}{sign}, "
            f"gyro in {log.gyro_unit}")


# --- messages ---------------------------------------------------------------------------------------


def chunk_frames(stream: str, seq: int, samples: npt.ArrayLike, rate: float, times: npt.ArrayLike | None = None,
                 t0: float | None = None, restart: bool = False,
                 units: dict[str, str] | None = None) -> list[bytes]:
    """The frames of one protocol v1 ingest message.

    >>> chunk_frames("phone-1", 0, [[0, 0, 1, 0, 0, 0]], 100, times=[0.0], restart=True)[1]
    b'{"v":1,"seq":0,"rate":100,"restart":true}'
    """
    header: dict[str, Any] = {"v": 1, "seq": seq, "rate": rate}
    if t0 is not None:
        header["t0"] = t0
    if restart:
        header["restart"] = True
    if units:
        header["units"] = units
    frames = [stream.encode("ascii"), json.dumps(header, separators=(",", ":")).encode(),
              np.ascontiguousarray(samples, dtype="<f4").tobytes()]
    if times is not None:
        frames.append(np.ascontiguousarray(times, dtype="<f8").tobytes())
    return frames


def check_pacing(chunk: int, speed: float) -> None:
    """Raise :class:`LogError` unless ``chunk`` and ``speed`` are usable."""
    if not 1 <= chunk <= MAX_SAMPLES_PER_CHUNK:
        raise LogError(f"--chunk: expected 1-{MAX_SAMPLES_PER_CHUNK} samples, got {chunk}")
    if not (speed >= 0 and math.isfinite(speed)):
        raise LogError(f"--speed: expected a number >= 0 (0: as fast as possible), got {speed:g}")


def log_messages(log: Log, stream: str, chunk: int = CHUNK, speed: float = 1.0,
                 start: float | None = None) -> Iterator[tuple[float, list[bytes]]]:
    """``(due, frames)`` of every message of ``log``: ``due`` is when to send it, in seconds from the
    start (its last sample's time / ``speed``; 0 when ``speed`` is 0). With ``start`` (the unix time the
    stream starts), each header carries ``t0``, the replay-clock time of the chunk's first sample. The
    first chunk restarts the stream, so running the producer again under the same id just works."""
    check_pacing(chunk, speed)
    for seq in range(0, len(log.times), chunk):
        rows = slice(seq, seq + chunk)
        t = log.times[rows]
        due = float(t[-1]) / speed if speed else 0.0
        t0 = None if start is None or not speed else start + float(t[0]) / speed
        yield due, chunk_frames(stream, seq, log.samples[rows], log.rate, t if log.timed else None, t0,
                                restart=seq == 0, units=log.units)


def send_log(push: zmq.Socket[bytes], log: Log, stream: str, chunk: int = CHUNK, speed: float = 1.0,
             clock: Callable[[], float] = time.monotonic) -> int:
    """Send ``log`` on ``push`` at ``speed`` times real time; returns the number of messages sent."""
    begin = clock()
    sent = 0
    for due, frames in log_messages(log, stream, chunk, speed, start=time.time() if speed else None):
        wait = begin + due - clock()
        if wait > 0:
            time.sleep(wait)
        push.send_multipart(frames)
        sent += 1
    return sent


# --- synthetic samples (no log) ---------------------------------------------------------------------


def read_sensor(n: int, t0: float) -> np.ndarray:
    """Stand-in for the device's sensor API: a person walking, phone upright."""
    t = t0 + np.arange(n) / RATE
    acc = np.c_[0.25 * np.sin(2 * np.pi * 1.8 * t), 1.0 + 0.3 * np.sin(2 * np.pi * 1.8 * t + 1),
                0.1 * np.cos(2 * np.pi * 0.9 * t)]
    gyro = 0.6 * np.c_[np.sin(2 * np.pi * 0.9 * t), np.cos(2 * np.pi * 1.8 * t), 0 * t]
    return np.hstack([acc, gyro]).astype("<f4")


def send_synthetic(push: zmq.Socket[bytes], stream: str) -> None:
    """Send synthetic walking samples in real time until interrupted."""
    seq, start = 0, time.time()
    while True:
        samples = read_sensor(CHUNK, seq / RATE)
        header = {"v": 1, "seq": seq, "rate": RATE, "t0": start + seq / RATE}
        push.send_multipart([stream.encode(), json.dumps(header).encode(), samples.tobytes()])
        seq += CHUNK
        time.sleep(max(0.0, start + seq / RATE - time.time()))  # real-time pace


# --- command line -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Send samples to harstream: synthetic walking, or a phone's sensor log (CSV) in real time.",
        epilog="How a log is read (columns, time unit, rate, alignment, units, gravity, sign, checks) is "
               "described at the top of examples/producer.py.",
    )
    parser.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5555",
                        help="the engine's ingest endpoint (default: tcp://127.0.0.1:5555)")
    parser.add_argument("stream", nargs="?", default="phone-1", help="stream id (default: phone-1)")
    parser.add_argument("--key", help="this producer's secret key file (NAME.key_secret)")
    parser.add_argument("--server-key", help="the engine's public key file (NAME.key)")
    log = parser.add_argument_group("streaming a log (CSV) instead of synthetic samples")
    log.add_argument("--csv", metavar="FILE", help="one file with time, acc and gyro columns "
                     "(e.g. t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z)")
    log.add_argument("--acc", metavar="FILE", help="accelerometer file, gravity included (e.g. time,x,y,z: "
                     "Sensor Logger's TotalAcceleration.csv); needs --gyro")
    log.add_argument("--gyro", metavar="FILE", help="gyroscope file (e.g. Gyroscope.csv), interpolated onto "
                     "the accelerometer's times")
    log.add_argument("--gravity", metavar="FILE", help="gravity file added to the acceleration, for logs "
                     "whose accelerometer has gravity removed (Sensor Logger on iOS: Gravity.csv)")
    log.add_argument("--time-col", metavar="NAME", help="name of the time column (default: t, time, "
                     "timestamp, seconds_elapsed or elapsed)")
    log.add_argument("--acc-cols", metavar="X,Y,Z", help="names of the acceleration columns")
    log.add_argument("--gyro-cols", metavar="X,Y,Z", help="names of the angular-rate columns")
    log.add_argument("--gravity-cols", metavar="X,Y,Z", help="names of the gravity columns (in --gravity's "
                     "file, else in the accelerometer's)")
    log.add_argument("--time-unit", choices=["auto", *TIME_UNITS], default="auto",
                     help="unit of the time column (default auto: stated in its header, else the unit that "
                     f"makes the median interval a rate of {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)")
    log.add_argument("--acc-unit", choices=list(ACC_UNITS), help="unit of the acceleration (default: stated "
                     "in the header, else g)")
    log.add_argument("--gyro-unit", choices=list(GYRO_UNITS), help="unit of the angular rate (default: "
                     "stated in the header, else rad/s)")
    log.add_argument("--acc-sign", type=int, choices=[1, -1], default=1,
                     help="1 (default): face up reads z = +1 g (Android apps, HAPT); -1: face up reads "
                     "z = -1 g (iOS apps), flipped before sending")
    log.add_argument("--rate", type=float, metavar="HZ", help="nominal rate for the header (default: 1 / the "
                     "median interval, rounded to a whole Hz); needed by a --csv file without a time column")
    log.add_argument("--chunk", type=int, default=CHUNK, metavar="N", help=f"samples per message (default "
                     f"{CHUNK})")
    log.add_argument("--speed", type=float, default=1.0, help="times real time (default 1; 0: as fast as "
                     "possible, without t0)")
    log.add_argument("--delimiter", help="field delimiter (default: the one of , ; tab most frequent in the "
                     "header)")
    log.add_argument("--no-check", dest="check", action="store_false",
                     help="skip the check that acc holds about 1 g of gravity and gyro looks like rad/s")
    log.add_argument("--dry-run", action="store_true", help="read and convert the log, print what would be "
                     "sent, send nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.key is None) != (args.server_key is None):
        parser.error("--key and --server-key go together")
    if not STREAM_ID.fullmatch(args.stream):
        parser.error(f"stream id: expected 1-64 characters of A-Z a-z 0-9 . _ : -, got {args.stream!r}")
    streaming_log = args.csv is not None or args.acc is not None or args.gyro is not None
    log = None
    if streaming_log:
        options = Options(csv=args.csv, acc=args.acc, gyro=args.gyro, gravity=args.gravity,
                          time_col=args.time_col, acc_cols=args.acc_cols, gyro_cols=args.gyro_cols,
                          gravity_cols=args.gravity_cols, time_unit=args.time_unit, acc_unit=args.acc_unit,
                          gyro_unit=args.gyro_unit, acc_sign=args.acc_sign, rate=args.rate,
                          delimiter=args.delimiter, check=args.check)
        try:
            log = load_log(options)
            check_pacing(args.chunk, args.speed)
        except (LogError, OSError) as exc:
            parser.exit(2, f"producer: {exc}\n")
        for note in log.notes:
            print(f"note: {note}", file=sys.stderr)
        messages = -(-len(log.times) // args.chunk)
        print(f"{describe(log)}; {messages} messages of up to {args.chunk} samples", file=sys.stderr)
        if args.dry_run:
            return
    elif args.dry_run:
        parser.error("--dry-run: expected a log (--csv, or --acc and --gyro)")
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    if args.key is not None:  # CurveZMQ: set before connecting
        public, secret = zmq.auth.load_certificate(args.key)
        if secret is None:
            parser.error(f"--key {args.key}: no secret key in it; expected NAME.key_secret")
        push.curve_publickey, push.curve_secretkey = public, secret
        push.curve_serverkey, _ = zmq.auth.load_certificate(args.server_key)
    push.connect(args.endpoint)
    linger = 1000
    try:
        if log is None:
            send_synthetic(push, args.stream)
        else:
            sent = send_log(push, log, args.stream, args.chunk, args.speed)
            linger = 10_000  # the log ended: give queued messages time to reach the engine
            print(f"sent {sent} messages ({len(log.times)} samples) to {args.endpoint} as {args.stream}",
                  file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        push.close(linger=linger)
        ctx.term()


if __name__ == "__main__":
    main()
