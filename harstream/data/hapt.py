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
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harstream.data.csv_text import line_of_row
from harstream.data.types import Dataset, Recording, Segment
from harstream.errors import DatasetError

RAW_DIR = "RawData"
LABELS_FILE = "labels.txt"
_RAW_NAME = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")
N_LABEL_IDS = 12
"""HAPT label ids run 1..12: 1..6 are the activities, 7..12 postural transitions."""


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
                f"{path}:{line_of_row(path, int(bad[0]), first=1)}: expected finite numbers, got NaN or inf"
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


def read_dataset(data_dir: Path | str, users: set[int] | None = None) -> Dataset:
    """Read every recording (or only those of ``users``) and the labels."""
    recordings = [
        read_recording(data_dir, experiment, user)
        for experiment, user in list_experiments(data_dir)
        if users is None or user in users
    ]
    lengths = {(r.experiment, r.user): len(r) for r in recordings}
    return Dataset(recordings, read_segments(data_dir, lengths, users))
