"""Reader for MotionSense's Device Motion layout (an iPhone 6s in the front trouser pocket).

A dataset folder holds ``A_DeviceMotion_data/<code>_<trial>/sub_<n>.csv`` (the
official archive) or ``.csv.gz`` (the project's copy), one 50 Hz recording of
one subject per file, its activity given by the folder: the label covers the
whole recording (putting the phone into the pocket and taking it out
included). Columns are found by header name; extra columns (the official
row index, ``attitude.*``) are ignored. Readings become what protocol v1
carries: acc = ``-(gravity + userAcceleration)`` in g (iOS reads +1 g
*down*, protocol v1 and HAPT +1 g *up*), gyro = ``rotationRate`` in rad/s.

The recordings are :class:`harstream.data.types.Recording` (``experiment`` = the
trial number, ``user`` = MotionSense's subject id, ``dataset="motionsense"``)
with one :class:`harstream.data.types.Segment` each, holding a HAPT activity id;
jogging, which is none of the six classes, gets :data:`JOGGING` (named
``JOGGING`` in the dataset's ``activity_names``: trained on and scored only
for a model that has that class, such as one fine-tuned with
``harstream train --base``). Broken input raises :class:`~harstream.errors.DatasetError`
naming the file, the line and what was expected.

>>> CODES["dws"], ACTIVITY_OF["dws"], stream_name("dws", 1, 1)
('WALKING_DOWNSTAIRS', 3, 'ms_dws_1_sub01')
>>> sorted(set(ALL_SUBJECTS) - set(SHARED_SUBJECTS))  # the outside test, kept out of the project
[3, 6, 9, 12, 15, 18, 21, 24]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harstream.data.csv_text import header_names, line_of_row, open_text, read_columns
from harstream.data.types import Dataset, Recording, Segment, six_names
from harstream.errors import DatasetError

NAME = "motionsense"
"""Layout name, the value of ``Recording.dataset``."""
DATA_DIR = "A_DeviceMotion_data"
"""The folder of trial folders, in the official archive and in the project's copy."""
CODES: dict[str, str] = {
    "dws": "WALKING_DOWNSTAIRS",
    "ups": "WALKING_UPSTAIRS",
    "wlk": "WALKING",
    "sit": "SITTING",
    "std": "STANDING",
    "jog": "JOGGING",
}
"""Folder code -> activity name."""
JOGGING = 13
"""Activity id of jogging: beyond HAPT's 1..12 and none of the six classes, so its windows
are trained on and scored only for models that have a JOGGING class (replay streams it,
scored only when the engine's model has that class)."""
ACTIVITY_OF: dict[str, int] = {
    "wlk": 1, "ups": 2, "dws": 3, "sit": 4, "std": 5, "jog": JOGGING,
}
"""Folder code -> activity id (HAPT's ids 1..5; :data:`JOGGING` for ``jog``)."""
TRIALS: dict[int, str] = {
    1: "dws", 2: "dws", 11: "dws", 3: "ups", 4: "ups", 12: "ups", 7: "wlk", 8: "wlk",
    15: "wlk", 9: "jog", 16: "jog", 5: "sit", 13: "sit", 6: "std", 14: "std",
}
"""The 15 trials of the official dataset: trial number -> folder code."""
ALL_SUBJECTS: tuple[int, ...] = tuple(range(1, 25))
"""MotionSense's 24 subjects."""
SHARED_SUBJECTS: tuple[int, ...] = (1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22, 23)
"""The 16 subjects of the project's copy; the other 8 are the outside test, kept out."""
GRAVITY = ("gravity.x", "gravity.y", "gravity.z")
USER_ACCELERATION = ("userAcceleration.x", "userAcceleration.y", "userAcceleration.z")
ROTATION_RATE = ("rotationRate.x", "rotationRate.y", "rotationRate.z")
COLUMNS: tuple[str, ...] = GRAVITY + USER_ACCELERATION + ROTATION_RATE
"""The columns read, found by header name (g, g, rad/s)."""
SAMPLE_RATE_HZ = 50
"""MotionSense's sampling rate (the files carry no timestamps)."""

_TRIAL_DIR = re.compile(r"^([a-z]{3})_(\d+)$")
_FILE = re.compile(r"^sub_(\d+)\.csv(\.gz)?$")


@dataclass(frozen=True)
class Entry:
    """One recording file of the layout, before it is read."""

    code: str
    """Folder code (``dws``, ``ups``, ``wlk``, ``jog``, ``sit``, ``std``)."""
    trial: int
    """Trial number (unique across codes: 1..16 in the official dataset)."""
    subject: int
    """MotionSense subject id (1..24)."""
    path: Path
    """The ``.csv`` or ``.csv.gz`` file."""


def stream_name(code: str, trial: int, subject: int) -> str:
    """The stream id of a recording, e.g. ``ms_dws_1_sub01``."""
    return f"ms_{code}_{trial}_sub{subject:02d}"


def find_data_dir(path: Path | str) -> Path | None:
    """The ``A_DeviceMotion_data`` folder of ``path`` (or ``path`` itself), None if neither."""
    path = Path(path)
    for candidate in (path / DATA_DIR, path):
        if candidate.is_dir() and any(
            child.is_dir() and trial_code(child.name) is not None for child in candidate.iterdir()
        ):
            return candidate
    return None


def data_dir(path: Path | str) -> Path:
    """Like :func:`find_data_dir`, but a folder without the layout is a :class:`DatasetError`."""
    found = find_data_dir(path)
    if found is None:
        raise DatasetError(
            f"{path}: expected a MotionSense folder holding {DATA_DIR}/ with "
            f"<code>_<trial>/sub_<n>.csv(.gz) files (codes {', '.join(CODES)}), found none"
        )
    return found


def list_recordings(path: Path | str) -> list[Entry]:
    """Every recording file of the layout, sorted by subject, then trial.

    Trial numbers must be unique across codes, and a recording may be there
    as ``.csv`` or as ``.csv.gz``, not both.
    """
    root = data_dir(path)
    entries: list[Entry] = []
    code_of_trial: dict[int, Path] = {}
    for folder in sorted(root.iterdir()):
        code = trial_code(folder.name) if folder.is_dir() else None
        if code is None:
            continue
        trial = int(folder.name.split("_")[1])
        if trial in code_of_trial:
            raise DatasetError(
                f"{folder}: expected each trial number once, trial {trial} is also "
                f"{code_of_trial[trial].name}/"
            )
        code_of_trial[trial] = folder
        seen: dict[int, Path] = {}
        for file in sorted(folder.iterdir()):
            match = _FILE.match(file.name)
            if match is None or not file.is_file():
                continue
            subject = int(match.group(1))
            if subject in seen:
                raise DatasetError(
                    f"{file}: expected one file per subject, {seen[subject].name} holds "
                    f"subject {subject} too"
                )
            seen[subject] = file
            entries.append(Entry(code, trial, subject, file))
    if not entries:
        raise DatasetError(f"{root}: expected sub_<n>.csv or sub_<n>.csv.gz files in the trial "
                           f"folders, found none")
    return sorted(entries, key=lambda e: (e.subject, e.trial))


def read_csv(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(acc, gyro)`` of one file, in protocol v1's frame and units (g, rad/s).

    ``.gz`` files are decompressed. Errors name the file, the line and what
    was expected.
    """
    with open_text(path) as lines:
        header = lines.readline().rstrip("\r\n")
        if not header.strip():
            raise DatasetError(f"{path}:1: expected a header naming the columns {', '.join(COLUMNS)}, "
                               f"the file is empty")
        names = header_names(header)
        index = {}
        for column in COLUMNS:
            if column not in names:
                raise DatasetError(
                    f"{path}:1: expected a column named {column!r} in the header, got {header[:120]!r}"
                )
            if names.count(column) > 1:
                raise DatasetError(f"{path}:1: expected the column {column!r} once, it repeats")
            index[column] = names.index(column)
        values = read_columns(path, lines, names, [index[c] for c in COLUMNS],
                              f"expected rows of {len(names)} numbers after the header, there are none")
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise DatasetError(
            f"{path}:{line_of_row(path, int(bad[0]))}: expected finite numbers, got NaN or inf"
        )
    gravity, user, rotation = values[:, 0:3], values[:, 3:6], values[:, 6:9]
    return -(gravity + user), np.ascontiguousarray(rotation)


def read_recording(entry: Entry) -> Recording:
    """Read one recording file."""
    acc, gyro = read_csv(entry.path)
    return Recording(
        entry.trial, entry.subject, acc, gyro, dataset=NAME,
        name=stream_name(entry.code, entry.trial, entry.subject),
    )


def read_dataset(path: Path | str, subjects: set[int] | None = None) -> Dataset:
    """Every recording (or only those of ``subjects``), one segment each over its whole length.

    Asking for a subject the folder does not hold is an error (the copy kept
    with the project lacks the 8 outside-test subjects on purpose).
    """
    entries = list_recordings(path)
    present = {e.subject for e in entries}
    if subjects is not None and not subjects <= present:
        missing = sorted(subjects - present)
        kept_out = sorted(set(missing) - set(SHARED_SUBJECTS))
        why = ""
        if kept_out:
            why = (f"; subject(s) {_ids(kept_out)} are MotionSense's outside test, kept out of "
                   f"the project's copy")
        raise DatasetError(
            f"{data_dir(path)}: expected recordings of subject(s) {_ids(missing)}, found none "
            f"(this folder holds subjects {_ids(sorted(present))}){why}"
        )
    wanted = [e for e in entries if subjects is None or e.subject in subjects]
    recordings = [read_recording(e) for e in wanted]
    segments = [
        Segment(rec.experiment, rec.user, ACTIVITY_OF[e.code], 0, len(rec))
        for e, rec in zip(wanted, recordings, strict=True)
    ]
    return Dataset(recordings, segments, name=NAME, activity_names={**six_names(), JOGGING: CODES["jog"]})


# -- helpers -----------------------------------------------------------------------------------


def trial_code(name: str) -> str | None:
    """The code of a trial folder name (``dws_1`` -> ``dws``), None if it is not one."""
    match = _TRIAL_DIR.match(name)
    return match.group(1) if match and match.group(1) in CODES else None


def _ids(values: list[int]) -> str:
    return ", ".join(map(str, values))
