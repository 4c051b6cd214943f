"""Recordings folders: your own labelled sessions, written by hand, by a tool or by ``harstream record``.

A folder holds ``labels.csv`` and one ``<name>.csv`` per recording
(``docs/own-data.md`` is the user's guide):

``<name>.csv``
    header ``t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z`` (columns found by
    name, extra columns ignored): ``t`` in seconds, strictly increasing,
    any origin (within ±:data:`MAX_T_S`), any steady or jittery rate in
    20-500 Hz (:func:`nominal_rate`); acceleration in g with protocol v1's
    sign (gravity included: +1 g up), gyroscope in rad/s. The samples are
    put on the model's 50 Hz grid by the engine's own resampler
    (:mod:`harstream.signal.resample`): grid sample ``k`` lies at
    ``t_first + k / 50``. A dropout longer than :data:`MAX_GAP_S` is not
    interpolated across: the recording continues as a new part
    (``<name>:2``, ``<name>:3``, ...), as a live stream would restart.
``labels.csv``
    header ``recording,start_s,end_s,activity``: the span ``[start_s,
    end_s)`` of the recording's own ``t`` is ``activity``, one of the six
    classes or a new class name (:data:`ACTIVITY_NAME`), which adds a class.
    Spans of one recording must not overlap; a span reaching past the
    recording's ends is cut at them; time outside every span is unlabelled
    (never trained on or scored).

The folder reads into a :class:`harstream.data.types.Dataset` (``name="recordings"``,
one :class:`~harstream.data.types.Recording` per part, all of ``user`` 1) whose
``activity_names`` give the six classes their ids 1..6 and new classes ids
from :data:`NEW_CLASS_ID` in alphabetical order, so that the signal chain,
the windows, training and evaluation treat it like HAPT. Every broken file
raises :class:`~harstream.errors.DatasetError` naming the file, the line and
what was expected.

>>> import tempfile, numpy as np
>>> tmp = tempfile.TemporaryDirectory(); folder = Path(tmp.name)
>>> t = 1700000000.0 + np.arange(500) / 100.0           # 5 s at 100 Hz, unix time
>>> x = np.tile([0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (500, 1))
>>> write_recording(folder / "walk1.csv", t, x)
>>> _ = write_labels(folder, [Span("walk1", t[0], t[0] + 4.0, "JOGGING")])
>>> data = read_dataset(folder)
>>> [(r.stream_id, len(r)) for r in data.recordings], data.activity_names[NEW_CLASS_ID]
([('walk1', 250)], 'JOGGING')
>>> [(s.activity, s.start, s.stop) for s in data.segments]
[(101, 0, 200)]
>>> tmp.cleanup()
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES, SAMPLE_RATE_HZ
from harstream.data.csv_text import header_names, line_of_row, open_text, read_columns, read_text
from harstream.data.types import Dataset, Recording, Segment, six_names
from harstream.errors import DatasetError
from harstream.protocol import MAX_ABS_SAMPLE, STREAM_ID
from harstream.signal.chain import INPUT_COLUMNS
from harstream.signal.resample import MAX_RATE_HZ, MAX_TIME_S, MIN_RATE_HZ, ResampleError, resample, start

NAME = "recordings"
"""Layout name, the value of ``Dataset.name`` and ``Recording.dataset``."""
LABELS_FILE = "labels.csv"
"""The labels file that makes a folder a recordings folder."""
COLUMNS: tuple[str, ...] = ("t", *INPUT_COLUMNS)
"""The columns of a recording file (found by name)."""
LABEL_COLUMNS: tuple[str, ...] = ("recording", "start_s", "end_s", "activity")
"""The columns of ``labels.csv``, in this order."""
ACTIVITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
"""A class name: a capital letter, then capitals, digits and ``_`` (at most 64 in all)."""
MAX_NAME_CHARS = 60
"""Longest recording name (its file name without ``.csv``)."""
RECORDING_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}$")
"""A recording's name (its file name without ``.csv``): also its stream id when replayed."""
MAX_GAP_S = 0.25
"""Longest dropout between two samples interpolated across, s; a longer one starts a new part."""
NEW_CLASS_ID = 101
"""Activity id of the first new class name (alphabetical order), beyond every dataset's own ids."""
MIN_SAMPLES = 2
"""Fewest samples a recording file may hold."""
MAX_T_S = MAX_TIME_S / 2
"""Largest ``|t|`` (and ``|start_s|``, ``|end_s|``) read, s (about 9e13 s, 2.8 million years): half the
resampler's largest distance from a stream's first time (:data:`~harstream.signal.resample.MAX_TIME_S`), so
any two times of a recording are within it and its 50 Hz grid indices within 2**53-1. A time beyond it is
refused on its line, before the resampler sees it."""


@dataclass(frozen=True)
class Span:
    """One row of ``labels.csv``: ``[start_s, end_s)`` of a recording's ``t`` is ``activity``."""

    recording: str
    """The recording's name (``<name>.csv``)."""
    start_s: float
    """Start, in the recording's own ``t`` seconds."""
    end_s: float
    """End (exclusive), in the recording's own ``t`` seconds."""
    activity: str
    """One of the six classes or a new class name."""
    line: int = 0
    """Line of ``labels.csv`` it was read from (0: not read from a file)."""


@dataclass(frozen=True)
class Part:
    """A stretch of a recording without dropouts, on the 50 Hz grid."""

    name: str
    """Stream name: the recording's name, ``:2``, ``:3``, ... appended after each dropout."""
    recording: str
    """The recording it belongs to."""
    t_first: float
    """Time of its first grid sample, in the recording's ``t``; sample ``k`` is at ``t_first + k / 50``."""
    samples: npt.NDArray[np.float32]
    """Shape (m, 6): acc in g, gyro in rad/s, 50 Hz."""


def is_recordings_folder(path: Path | str) -> bool:
    """Whether ``path`` is a folder holding ``labels.csv``."""
    return (Path(path) / LABELS_FILE).is_file()


def recording_of(stream_name: str) -> str:
    """The recording a part's stream name belongs to (``walk:2`` -> ``walk``).

    >>> recording_of("walk1:2"), recording_of("walk1")
    ('walk1', 'walk1')
    """
    return stream_name.split(":", 1)[0]


def list_recordings(folder: Path | str) -> dict[str, Path]:
    """Recording name -> file of every ``<name>.csv`` beside ``labels.csv``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: expected a recordings folder, there is no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".csv" or path.name == LABELS_FILE or not path.is_file():
            continue
        if RECORDING_NAME.fullmatch(path.stem) is None:
            raise DatasetError(
                f"{path}: expected a recording file name of 1-60 letters, digits, '.', '_' or '-' "
                f"(starting with a letter or digit) before .csv, got {path.name!r}"
            )
        found[path.stem] = path
    return found


def read_samples(path: Path | str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(t, samples)`` of one recording file: (n,) seconds and (n, 6) in g and rad/s.

    Checks the header, every row's fields and numbers, the values' range and
    that ``t`` strictly increases; errors name the file and line.
    """
    path = Path(path)
    expected = ",".join(COLUMNS)
    with open_text(path) as lines:
        header = lines.readline().rstrip("\r\n")
        if not header.strip():
            raise DatasetError(f"{path}:1: expected the header {expected}, the file is empty")
        names = header_names(header)
        index = {}
        for column in COLUMNS:
            if names.count(column) != 1:
                problem = "it repeats" if names.count(column) > 1 else "it is missing"
                raise DatasetError(
                    f"{path}:1: expected the header {expected} (a column named {column!r} once; {problem}), "
                    f"got {header[:120]!r}"
                )
            index[column] = names.index(column)
        values = read_columns(path, lines, names, [index[c] for c in COLUMNS],
                              f"expected at least {MIN_SAMPLES} rows of samples after the header, got none")
    if len(values) < MIN_SAMPLES:
        raise DatasetError(f"{path}:{2 + len(values)}: expected at least {MIN_SAMPLES} rows of samples "
                           f"after the header, got {len(values)}")
    bad = np.flatnonzero(~(np.abs(values) < math.inf).all(axis=1))
    if bad.size:
        raise DatasetError(f"{path}:{line_of_row(path, int(bad[0]))}: expected finite numbers, got NaN or inf")
    t, samples = values[:, 0], values[:, 1:]
    far = np.flatnonzero(np.abs(t) > MAX_T_S)
    if far.size:
        raise DatasetError(f"{path}:{line_of_row(path, int(far[0]))}: expected t within ±{MAX_T_S:.4g} s (so the "
                           f"50 Hz grid index of any t stays within 2**53-1), got {float(t[far[0]]):g}")
    big = np.flatnonzero((np.abs(samples) > MAX_ABS_SAMPLE).any(axis=1))
    if big.size:
        row = int(big[0])
        column = COLUMNS[1 + int(np.argmax(np.abs(samples[row]) > MAX_ABS_SAMPLE))]
        raise DatasetError(f"{path}:{line_of_row(path, row)}: expected {column} within ±{MAX_ABS_SAMPLE:g} "
                           f"(g or rad/s), got {samples[row, COLUMNS.index(column) - 1]:g}")
    steps = np.diff(t)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 1
        raise DatasetError(
            f"{path}:{line_of_row(path, row)}: expected t to increase (seconds, one row per sample), "
            f"got {float(t[row])!r} after {float(t[row - 1])!r} on line {line_of_row(path, row - 1)}"
        )
    rate = 1.0 / float(np.median(steps))
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise DatasetError(
            f"{path}: expected a sample rate of {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz, but t's median step is "
            f"{1.0 / rate:.6g} s ({rate:.4g} Hz); expected t in seconds"
        )
    return t, samples


def on_grid(t: npt.NDArray[np.float64], samples: npt.NDArray[np.float64], name: str,
            where: Path | str = "") -> list[Part]:
    """The samples put on the 50 Hz grid by the engine's resampler, one :class:`Part` per stretch
    without a dropout longer than :data:`MAX_GAP_S` (parts shorter than one grid step are left out).

    >>> t = np.concatenate([np.arange(100) / 50.0, 10.0 + np.arange(100) / 50.0])  # a 8 s dropout
    >>> [(p.name, p.t_first, len(p.samples)) for p in on_grid(t, np.zeros((200, 6)), "r")]
    [('r', 0.0, 100), ('r:2', 10.0, 100)]
    """
    rate = nominal_rate(t)
    try:
        state = start(rate, origin=float(t[0]), max_gap_s=MAX_GAP_S)
        result = resample(state, samples, t)
    except ResampleError as exc:  # read_samples checked what the resampler checks: a last resort
        raise DatasetError(f"{where or name}: expected samples the resampler takes, {exc}") from None
    parts = []
    for k, (first, rows) in enumerate(result.runs()):
        if len(rows):
            parts.append(Part(name if k == 0 else f"{name}:{k + 1}", name,
                              float(t[0]) + first / SAMPLE_RATE_HZ, rows))
    return parts


def nominal_rate(t: npt.NDArray[np.float64]) -> float:
    """The nominal rate of samples at times ``t``: one over the median step, snapped to the nearest whole
    Hz within 1% (a 50 Hz phone stays at 50, so it is not low-passed as a faster one is), in 20-500 Hz.

    >>> nominal_rate(np.arange(10) / 50.0), nominal_rate(np.array([0.0, 0.0199, 0.0401, 0.0598]))
    (50.0, 50.0)
    """
    rate = 1.0 / float(np.median(np.diff(t)))
    if abs(rate - round(rate)) <= 0.01 * rate:
        rate = float(round(rate))
    return min(max(rate, MIN_RATE_HZ), MAX_RATE_HZ)


def read_labels(folder: Path | str, recordings: Iterable[str] | None = None) -> list[Span]:
    """The spans of ``labels.csv``, checked: names, numbers, classes, no overlaps within a recording.

    ``recordings`` are the names a span may refer to (default: the folder's ``<name>.csv`` files).
    """
    folder = Path(folder)
    path = folder / LABELS_FILE
    known = set(list_recordings(folder) if recordings is None else recordings)
    rows = read_text(path).splitlines()
    expected = ",".join(LABEL_COLUMNS)
    header = [field.strip().strip('"') for field in rows[0].split(",")] if rows else []
    if header != list(LABEL_COLUMNS):
        got = repr(rows[0][:120]) if rows else "an empty file"
        raise DatasetError(f"{path}:1: expected the header {expected}, got {got}")
    spans: list[Span] = []
    for number, line in enumerate(rows[1:], start=2):
        if not line.strip():
            continue
        fields = [field.strip().strip('"') for field in line.split(",")]
        where = f"{path}:{number}"
        if len(fields) != len(LABEL_COLUMNS):
            raise DatasetError(f"{where}: expected {len(LABEL_COLUMNS)} comma-separated fields ({expected}), "
                               f"got {len(fields)} ({line.strip()[:80]!r})")
        name, first, last, activity = fields
        if name not in known:
            have = ", ".join(f"{n}.csv" for n in sorted(known)[:5]) or "none"
            more = ", ..." if len(known) > 5 else ""
            raise DatasetError(f"{where}: expected the name of a recording of this folder ({have}{more}), "
                               f"got {name!r} (there is no {name}.csv)")
        start_s, end_s = _seconds(first, "start_s", where), _seconds(last, "end_s", where)
        if not start_s < end_s:
            raise DatasetError(f"{where}: expected start_s < end_s, got {first} .. {last}")
        check_activity(activity, where)
        spans.append(Span(name, start_s, end_s, activity, number))
    _check_overlaps(spans, path)
    return spans


def check_activity(activity: str, where: str) -> None:
    """Refuse a class name that is none of the six and no valid new name.

    >>> check_activity("JOGGING", "labels.csv:2")
    >>> check_activity("jogging", "labels.csv:2")
    Traceback (most recent call last):
    ...
    harstream.errors.DatasetError: labels.csv:2: expected one of the six classes (WALKING, \
WALKING_UPSTAIRS, WALKING_DOWNSTAIRS, SITTING, STANDING, LAYING) or a new class name (a capital letter, \
then capitals, digits or _; at most 64), got 'jogging' (did you mean 'JOGGING'?)
    """
    if activity in ACTIVITIES or ACTIVITY_NAME.fullmatch(activity):
        return
    hint = ""
    if ACTIVITY_NAME.fullmatch(activity.upper().replace(" ", "_").replace("-", "_")):
        hint = f" (did you mean {activity.upper().replace(' ', '_').replace('-', '_')!r}?)"
    raise DatasetError(
        f"{where}: expected one of the six classes ({', '.join(ACTIVITIES)}) or a new class name "
        f"(a capital letter, then capitals, digits or _; at most 64), got {activity!r}{hint}"
    )


def class_ids(activities: Iterable[str]) -> dict[int, str]:
    """Activity id -> name: the six classes' 1..6, new names from :data:`NEW_CLASS_ID`, alphabetically.

    >>> class_ids(["WALKING", "SKIPPING", "JOGGING"])[101], class_ids(["SKIPPING", "JOGGING"])[102]
    ('JOGGING', 'SKIPPING')
    """
    names = six_names()
    new = sorted(set(activities) - set(ACTIVITIES))
    return {**names, **{NEW_CLASS_ID + i: name for i, name in enumerate(new)}}


def read_dataset(folder: Path | str, recordings: Iterable[str] | None = None) -> Dataset:
    """Every recording of the folder (or only those named in ``recordings``) on the 50 Hz grid, and
    the labelled segments of ``labels.csv`` on that grid."""
    folder = Path(folder)
    files = list_recordings(folder)
    spans = read_labels(folder, files)
    wanted = set(files) if recordings is None else set(recordings)
    missing = sorted(wanted - set(files))
    if missing:
        raise DatasetError(f"{folder}: expected recording(s) {', '.join(missing)}, there is no such .csv")
    names = class_ids(span.activity for span in spans)
    id_of = {name: i for i, name in names.items()}
    parts: list[Recording] = []
    segments: list[Segment] = []
    for name, path in files.items():
        if name not in wanted:
            continue
        t, samples = read_samples(path)
        mine = [s for s in spans if s.recording == name]
        for s in mine:
            if s.end_s <= t[0] or s.start_s > t[-1]:
                raise DatasetError(
                    f"{folder / LABELS_FILE}:{s.line}: the span {s.start_s:g} .. {s.end_s:g} s lies outside "
                    f"recording {name}, whose t runs {t[0]:.6g} .. {t[-1]:.6g} s; expected a span in the "
                    f"recording's own t"
                )
        for part in on_grid(t, samples, name, path):
            number = len(parts) + 1
            rec = Recording(number, 1, part.samples[:, :3].astype(np.float64),
                            part.samples[:, 3:].astype(np.float64), dataset=NAME, name=part.name)
            parts.append(rec)
            segments += _segments(part, mine, number, id_of)
    return Dataset(parts, segments, name=NAME, activity_names=names)


def _segments(part: Part, spans: Sequence[Span], number: int, id_of: dict[str, int]) -> list[Segment]:
    """The spans on ``part``'s grid: samples ``k`` with ``t_first + k / 50`` in ``[start_s, end_s)``."""
    out = []
    n = len(part.samples)
    for span in spans:
        first = math.ceil((span.start_s - part.t_first) * SAMPLE_RATE_HZ - 1e-6)
        stop = math.ceil((span.end_s - part.t_first) * SAMPLE_RATE_HZ - 1e-6)
        first, stop = max(first, 0), min(stop, n)
        if stop > first:
            out.append(Segment(number, 1, id_of[span.activity], first, stop))
    return out


def _seconds(value: str, column: str, where: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise DatasetError(f"{where}: expected {column} to be a finite number of seconds, got {value!r}")
    if abs(seconds) > MAX_T_S:
        raise DatasetError(f"{where}: expected {column} within ±{MAX_T_S:.4g} s (the bound of t), got {value!r}")
    return seconds


def _check_overlaps(spans: Sequence[Span], path: Path) -> None:
    by_recording: dict[str, list[Span]] = {}
    for span in spans:
        by_recording.setdefault(span.recording, []).append(span)
    for mine in by_recording.values():
        ordered = sorted(mine, key=lambda s: (s.start_s, s.end_s))
        for before, after in itertools.pairwise(ordered):
            if after.start_s < before.end_s:
                raise DatasetError(
                    f"{path}:{after.line}: expected spans of recording {after.recording} not to overlap, "
                    f"{after.start_s:g} .. {after.end_s:g} s overlaps {before.start_s:g} .. {before.end_s:g} s "
                    f"on line {before.line}"
                )


# -- writing -------------------------------------------------------------------------------------

RESERVED_NAMES = frozenset([Path(LABELS_FILE).stem, "con", "prn", "aux", "nul",
                            *(f"{port}{i}" for port in ("com", "lpt") for i in range(1, 10))])
"""Names never given to a recording, in any letter case: ``labels`` (``labels.csv`` is the labels file, and
macOS and Windows compare names regardless of case) and the device names Windows reserves."""
T_FORMAT = ".6f"
"""How a recording file writes ``t``: to the microsecond."""


def format_rows(t: npt.ArrayLike, samples: npt.ArrayLike) -> str:
    """CSV rows (no header) of a recording file: ``t`` to the microsecond, samples as float32 exactly.

    >>> format_rows([0.5], [[0, 0, 1, 0, 0, 0.25]])
    '0.500000,0,0,1,0,0,0.25\\n'
    """
    tt = np.asarray(t, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(INPUT_COLUMNS) or len(tt) != len(x):
        raise ValueError(f"samples: expected shape ({len(tt)}, 6), one row per t, got {x.shape}")
    out = io.StringIO()
    for time_s, row in zip(tt.tolist(), x.tolist(), strict=True):
        out.write(f"{time_s:{T_FORMAT}}," + ",".join(f"{v:.9g}" for v in row) + "\n")
    return out.getvalue()


def as_written(t: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``t`` as a recording file holds it (:data:`T_FORMAT`): what a writer compares to keep ``t`` increasing.

    >>> as_written([0.1234564, 0.1234566]).tolist()
    [0.123456, 0.123457]
    """
    return np.array([float(f"{x:{T_FORMAT}}") for x in np.asarray(t, dtype=np.float64).tolist()], dtype=np.float64)


def header_line() -> str:
    """The header line of a recording file."""
    return ",".join(COLUMNS) + "\n"


def check_name(name: str, where: str) -> None:
    """Refuse a recording name the reader would refuse (:data:`RECORDING_NAME`) or a reserved one.

    >>> check_name("walk1", "--out")
    >>> check_name("Labels", "--out")
    Traceback (most recent call last):
    ...
    harstream.errors.DatasetError: --out: expected a recording name of 1-60 letters, digits, '.', '_' or '-' \
(starting with a letter or digit), not labels, con, prn, aux, nul, com1-9 or lpt1-9 in any case, got 'Labels'
    """
    if RECORDING_NAME.fullmatch(name) is None or name.casefold() in RESERVED_NAMES:
        raise DatasetError(
            f"{where}: expected a recording name of 1-{MAX_NAME_CHARS} letters, digits, '.', '_' or '-' (starting "
            f"with a letter or digit), not labels, con, prn, aux, nul, com1-9 or lpt1-9 in any case, got {name!r}"
        )


def write_recording(path: Path | str, t: npt.ArrayLike, samples: npt.ArrayLike) -> None:
    """Write one recording file (``path`` ends in ``.csv``)."""
    path = Path(path)
    if path.suffix != ".csv":
        raise DatasetError(f"{path}: expected <name>.csv, got {path.name!r}")
    check_name(path.stem, str(path))
    path.write_text(header_line() + format_rows(t, samples))


def labels_text(spans: Iterable[Span]) -> str:
    """``labels.csv``'s content for ``spans``.

    >>> print(labels_text([Span("walk1", 0.0, 61.5, "WALKING")]), end="")
    recording,start_s,end_s,activity
    walk1,0.000000,61.500000,WALKING
    """
    lines = [",".join(LABEL_COLUMNS)]
    lines += [f"{s.recording},{s.start_s:.6f},{s.end_s:.6f},{s.activity}" for s in spans]
    return "\n".join(lines) + "\n"


def write_labels(folder: Path | str, spans: Iterable[Span]) -> Path:
    """Write ``labels.csv`` in ``folder`` (replacing it at once: written beside, then renamed)."""
    path = Path(folder) / LABELS_FILE
    tmp = path.with_name(f".{LABELS_FILE}.tmp")
    tmp.write_text(labels_text(spans))
    tmp.replace(path)
    return path


def stream_name(text: str) -> str:
    """A recording name from a stream id (``:`` is a part separator here, so it becomes ``_``).

    >>> stream_name("phone:1")
    'phone_1'
    """
    if STREAM_ID.fullmatch(text) is None:
        raise DatasetError(f"stream id {text!r}: expected 1-64 characters of [A-Za-z0-9._:-]")
    name = text.replace(":", "_")[:MAX_NAME_CHARS]
    return name if name[0].isalnum() else f"s{name[:MAX_NAME_CHARS - 1]}"


def recording_name(stream: str, taken: Collection[str] = (), first: int = 1) -> str:
    """The name of a new recording of stream ``stream``: :func:`stream_name`, then ``-2``, ``-3``, ... while
    that is in ``taken`` or reserved (:data:`RESERVED_NAMES`), cut to fit :data:`RECORDING_NAME`. The search
    starts at suffix ``first`` (a caller making many files of one stream passes how many it made, so a
    stream restarted n times costs n searches, not n²/2).

    >>> recording_name("phone:1", {"phone_1"}), recording_name("labels")
    ('phone_1-2', 'labels-2')
    >>> name = recording_name("x" * 64, {"x" * 60}); name[-4:], len(name)
    ('xx-2', 60)
    >>> recording_name("walk", first=3)
    'walk-3'
    """
    base = stream_name(stream)
    for k in itertools.count(max(first, 1)):
        suffix = f"-{k}" if k > 1 else ""
        name = base[:MAX_NAME_CHARS - len(suffix)] + suffix
        if name not in taken and name.casefold() not in RESERVED_NAMES:
            check_name(name, f"stream id {stream!r}")  # the reader's rule: never a name it refuses
            return name
    raise AssertionError("unreachable: itertools.count never ends")
