"""Reader for the HAPT raw layout (UCI dataset 341).

A dataset folder holds ``RawData/acc_expNN_userMM.txt``, the matching
``gyro_expNN_userMM.txt`` (one row per 50 Hz sample, three columns) and
``RawData/labels.txt`` (experiment, user, activity, first, last sample;
1-based, inclusive). Broken input raises :class:`~harstream.errors.DatasetError`
naming the file, the line and what was expected.

>>> import os
>>> data = os.environ.get("HARSTREAM_DATA", "../shared/data/hapt")
>>> rec = read_recording(data, experiment=1, user=1)  # doctest: +SKIP
>>> rec.acc.shape[1], rec.gyro.shape[1]  # doctest: +SKIP
(3, 3)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES
from harstream.errors import DatasetError

RAW_DIR = "RawData"
LABELS_FILE = "labels.txt"
_RAW_NAME = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")
N_LABEL_IDS = 12
"""HAPT label ids run 1..12: 1..6 are the activities, 7..12 postural transitions."""
SIX_IDS: tuple[int, ...] = tuple(range(1, len(ACTIVITIES) + 1))
"""Activity ids of the six classes (id = index in :data:`harstream.ACTIVITIES` + 1)."""


def six_names() -> dict[int, str]:
    """Activity id -> name of the six classes, the classes every dataset shares.

    >>> six_names()[4]
    'SITTING'
    """
    return {i + 1: name for i, name in enumerate(ACTIVITIES)}


@dataclass(frozen=True)
class Recording:
    """One experiment: a continuous 50 Hz recording of one user."""

    experiment: int
    """Experiment number (1..61 in HAPT)."""
    user: int
    """Subject id (1..30), the same subjects as UCI HAR."""
    acc: npt.NDArray[np.float64]
    """Accelerometer, shape (n, 3), in g, gravity included."""
    gyro: npt.NDArray[np.float64]
    """Gyroscope, shape (n, 3), in rad/s."""
    dataset: str = "hapt"
    """The dataset it comes from (``"hapt"``, ``"motionsense"``): ``user`` is that dataset's
    own subject id, so subjects of two datasets are told apart by this too."""
    name: str | None = None
    """Its stream id when the dataset names recordings otherwise (``ms_dws_1_sub01``)."""

    @property
    def stream_id(self) -> str:
        """The stream id replay gives this recording, e.g. ``exp01_user01``."""
        if self.name is not None:
            return self.name
        return f"exp{self.experiment:02d}_user{self.user:02d}"

    @property
    def samples(self) -> npt.NDArray[np.float32]:
        """Acc and gyro side by side, shape (n, 6), float32 as sent on the wire."""
        return np.hstack([self.acc, self.gyro]).astype(np.float32)

    def __len__(self) -> int:
        return int(self.acc.shape[0])


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of one recording (0-based, ``stop`` exclusive)."""

    experiment: int
    """Experiment the segment belongs to."""
    user: int
    """Subject id."""
    activity: int
    """HAPT label id, 1..12 (1..6 are the six activities)."""
    start: int
    """Index of the first sample."""
    stop: int
    """Index one past the last sample."""


def raw_dir(data_dir: Path | str) -> Path:
    """The ``RawData`` folder of a dataset folder (which may itself be ``RawData``)."""
    data = Path(data_dir)
    if (data / RAW_DIR).is_dir():
        return data / RAW_DIR
    if data.name == RAW_DIR and data.is_dir():
        return data
    raise DatasetError(
        f"{data}: expected a HAPT dataset folder containing {RAW_DIR}/ "
        f"(acc_expNN_userMM.txt, gyro_expNN_userMM.txt, labels.txt); "
        f"run `harstream data download` or pass --data"
    )


def list_experiments(data_dir: Path | str) -> list[tuple[int, int]]:
    """``(experiment, user)`` pairs of every ``acc_*`` file, sorted by experiment."""
    pairs = []
    for path in raw_dir(data_dir).iterdir():
        match = _RAW_NAME.match(path.name)
        if match:
            pairs.append((int(match.group(1)), int(match.group(2))))
    if not pairs:
        raise DatasetError(f"{raw_dir(data_dir)}: expected acc_expNN_userMM.txt files, found none")
    return sorted(pairs)


def read_matrix(path: Path, columns: int, dtype: type = np.float64) -> npt.NDArray[np.float64]:
    """Parse a whitespace-separated numeric text file of ``columns`` columns.

    Errors name the file, the 1-based line and what was expected.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        values: npt.NDArray[np.float64] = np.loadtxt(path, dtype=dtype, ndmin=2, comments=None)
    except ValueError:
        _raise_first_bad_line(path, columns, dtype)
        raise  # pragma: no cover - _raise_first_bad_line always raises
    if values.size == 0:
        raise DatasetError(f"{path}: expected rows of {columns} numbers, the file is empty")
    if values.shape[1] != columns:
        raise DatasetError(
            f"{path}:1: expected {columns} columns, got {values.shape[1]}"
        )
    return values


def _raise_first_bad_line(path: Path, columns: int, dtype: type) -> None:
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != columns:
                raise DatasetError(
                    f"{path}:{number}: expected {columns} columns, got {len(fields)} "
                    f"({line.strip()!r})"
                )
            for field in fields:
                try:
                    dtype(field)
                except ValueError:
                    raise DatasetError(
                        f"{path}:{number}: expected a number, got {field!r}"
                    ) from None
    raise DatasetError(f"{path}: could not parse as {columns} numeric columns")


def _line_of_row(path: Path, row: int) -> int:
    """1-based file line of data row ``row`` (blank lines hold no row)."""
    with path.open() as lines:
        seen = -1
        for number, line in enumerate(lines, start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return number
    return row + 1


def read_recording(data_dir: Path | str, experiment: int, user: int) -> Recording:
    """Read the acc and gyro files of one experiment; their row counts must match."""
    raw = raw_dir(data_dir)
    name = f"exp{experiment:02d}_user{user:02d}.txt"
    acc = read_matrix(raw / f"acc_{name}", 3)
    gyro = read_matrix(raw / f"gyro_{name}", 3)
    if len(acc) != len(gyro):
        raise DatasetError(
            f"{raw / f'gyro_{name}'}: expected {len(acc)} rows like acc_{name}, got {len(gyro)}"
        )
    for path, values in ((raw / f"acc_{name}", acc), (raw / f"gyro_{name}", gyro)):
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if bad.size:
            raise DatasetError(
                f"{path}:{_line_of_row(path, int(bad[0]))}: expected finite numbers, got NaN or inf"
            )
    return Recording(experiment, user, acc, gyro)


def read_segments(
    data_dir: Path | str,
    lengths: dict[tuple[int, int], int] | None = None,
    users: set[int] | None = None,
) -> list[Segment]:
    """Read ``labels.txt``; with ``lengths`` also check every segment fits its recording.

    ``lengths`` maps ``(experiment, user)`` to the recording's sample count;
    ``users`` keeps only the segments of those subjects.
    """
    path = raw_dir(data_dir) / LABELS_FILE
    table = read_matrix(path, 5, dtype=int).astype(np.int64)
    segments = []
    for number, (experiment, user, activity, first, last) in enumerate(table.tolist(), start=1):
        if users is not None and user not in users:
            continue
        where = f"{path}:{number}"
        if not 1 <= activity <= N_LABEL_IDS:
            raise DatasetError(f"{where}: expected an activity id in 1..{N_LABEL_IDS}, got {activity}")
        if not 1 <= first <= last:
            raise DatasetError(
                f"{where}: expected 1 <= first sample <= last sample, got {first}..{last}"
            )
        if lengths is not None:
            n = lengths.get((experiment, user))
            if n is None:
                raise DatasetError(
                    f"{where}: experiment {experiment} of user {user} has no recording "
                    f"(acc_exp{experiment:02d}_user{user:02d}.txt)"
                )
            if last > n:
                raise DatasetError(
                    f"{where}: segment {first}..{last} lies outside its recording "
                    f"exp{experiment:02d}_user{user:02d} of {n} samples"
                )
        segments.append(Segment(experiment, user, activity, first - 1, last))
    return segments


@dataclass(frozen=True)
class Dataset:
    """All recordings of a dataset folder (HAPT, or another read into the same kind) and their
    labelled segments."""

    recordings: list[Recording]
    """One per experiment, sorted by experiment."""
    segments: list[Segment]
    """Every row of ``labels.txt``, validated against the recordings."""
    name: str = "hapt"
    """The dataset's layout name (``"hapt"``, ``"motionsense"``, ``"recordings"``)."""
    activity_names: dict[int, str] = field(default_factory=six_names)
    """Activity id -> class name of every id that names a class (HAPT: the six; MotionSense adds
    JOGGING; a recordings folder adds its new classes). Ids not here (HAPT's postural
    transitions) are never trained on or scored."""

    def segments_of(self, recording: Recording) -> list[Segment]:
        """The labelled segments of one recording, in file order."""
        return [
            s for s in self.segments
            if s.experiment == recording.experiment and s.user == recording.user
        ]


def read_dataset(data_dir: Path | str, users: set[int] | None = None) -> Dataset:
    """Read every recording (or only those of ``users``) and the labels."""
    recordings = [
        read_recording(data_dir, experiment, user)
        for experiment, user in list_experiments(data_dir)
        if users is None or user in users
    ]
    lengths = {(r.experiment, r.user): len(r) for r in recordings}
    return Dataset(recordings, read_segments(data_dir, lengths, users))


def window_activity(
    segments: list[Segment], seq_ends: npt.ArrayLike, window: int = 128, ids: Iterable[int] = SIX_IDS
) -> npt.NDArray[np.int64]:
    """Truth of windows of one recording, by the evaluation protocol.

    A window ending at ``seq_end`` gets the activity id (one of ``ids``, by
    default the six classes' 1..6) of the labelled segment holding all its
    ``window`` samples, else 0 (not scored). ``segments`` must all belong to
    the same recording.

    >>> seg = [Segment(1, 1, 5, start=100, stop=400), Segment(1, 1, 13, start=400, stop=600)]
    >>> window_activity(seg, [127, 255, 383, 447, 591]).tolist()
    [0, 5, 5, 0, 0]
    >>> window_activity(seg, [127, 255, 383, 447, 591], ids=(5, 13)).tolist()
    [0, 5, 5, 0, 13]
    """
    ends = np.asarray(seq_ends, dtype=np.int64)
    truth = np.zeros(ends.shape, dtype=np.int64)
    starts = ends - window + 1
    wanted = set(ids)
    for seg in segments:
        if seg.activity in wanted:
            inside = (starts >= seg.start) & (ends < seg.stop)
            truth[inside] = seg.activity
    return truth
