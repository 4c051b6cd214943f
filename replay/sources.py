"""Recorded datasets as replayable streams: HAPT, MotionSense or recordings-folder recordings, or stitched
UCI HAR runs.

A source is an ordered list of :class:`ReplayStream`: a stream id, its 50 Hz
samples (acc xyz in g, gyro xyz in rad/s) and the truth of every window the
engine will cut from it. :func:`load_streams` reads either layout,
recognised by :func:`detect_layout`.

>>> import numpy as np
>>> stream = ReplayStream("phone-1", np.zeros((300, 6), np.float32), subject=1,
...                       truth=RowTruth(np.array([4, 4, 5])))
>>> len(stream), stream.truth(np.array([127, 191, 255, 300])).tolist()
(300, [4, 4, 5, 0])
>>> [s.stream_id for s in expand([stream], copies=3)]
['phone-1', 'phone-1.c2', 'phone-1.c3']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from harstream import HOP, WINDOW
from harstream.data.hapt import read_matrix
from harstream.data.layouts import find_layout, read_any
from harstream.data.types import six_names, window_activity
from harstream.errors import DatasetError, ProtocolError
from harstream.protocol import STREAM_ID
from replay._stitch import join_rows, split_runs

Truth: TypeAlias = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]]
"""Maps window ends (``seq_end``) to activity ids (those of the stream's ``activity_names``), or 0
for a window not scored."""
Layout = Literal["hapt", "motionsense", "recordings", "uci-har"]
"""The dataset layouts replay reads."""

UCI_ROOT = "UCI HAR Dataset"
"""Folder name inside the UCI HAR zip archive."""
UCI_SPLITS = ("train", "test")
UCI_SIGNALS = ("total_acc_x", "total_acc_y", "total_acc_z", "body_gyro_x", "body_gyro_y",
               "body_gyro_z")
"""The ``Inertial Signals/`` files replayed, in column order (acc in g, gyro in rad/s)."""


@dataclass(frozen=True, eq=False)
class ReplayStream:
    """One recording to send as one stream."""

    stream_id: str
    """Stream id on the wire (frame 0 of every chunk)."""
    samples: npt.NDArray[np.float32]
    """Shape (n, 6): acc xyz (g, gravity included), gyro xyz (rad/s), 50 Hz."""
    subject: int
    """Subject id, the dataset's own (HAPT and UCI HAR 1..30, MotionSense 1..24)."""
    truth: Truth
    """Truth of windows by their ``seq_end``: an activity id, 0 when not scored."""
    activity_names: Mapping[int, str] = field(default_factory=six_names)
    """Class name of each activity id ``truth`` gives (by default the six classes' 1..6): the
    scorer matches them to the engine's labels by name."""

    def __len__(self) -> int:
        return int(self.samples.shape[0])


@dataclass(frozen=True, eq=False)
class RowTruth:
    """Truth of a stitched UCI HAR run: window ``k`` (``seq_end = 127 + 64 k``) is row ``k``."""

    labels: npt.NDArray[np.int64]
    """Activity id of each row of the run."""

    def __call__(self, seq_ends: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        ends = np.asarray(seq_ends, dtype=np.int64)
        row, offset = np.divmod(ends - (WINDOW - 1), HOP)
        hit = (offset == 0) & (row >= 0) & (row < len(self.labels))
        truth = np.zeros(ends.shape, dtype=np.int64)
        truth[hit] = self.labels[row[hit]]
        return truth


def expand(streams: Iterable[ReplayStream], copies: int = 1) -> list[ReplayStream]:
    """Every stream ``copies`` times; copy c > 1 has the id suffix ``.c<c>``."""
    if copies < 1:
        raise ValueError(f"copies: expected an integer >= 1, got {copies}")
    return [
        stream if c == 1 else _renamed(stream, f"{stream.stream_id}.c{c}")
        for stream in streams
        for c in range(1, copies + 1)
    ]


def tagged(streams: Iterable[ReplayStream], tag: str | None) -> list[ReplayStream]:
    """The streams with ``.<tag>`` appended to their ids (fresh ids for a repeated replay).

    >>> stream = ReplayStream("exp01_user01", np.zeros((1, 6), np.float32), 1, RowTruth(
    ...     np.zeros(0, np.int64)))
    >>> [s.stream_id for s in tagged([stream], "run2")]
    ['exp01_user01.run2']
    """
    if tag is None:
        return list(streams)
    return [_renamed(stream, f"{stream.stream_id}.{tag}") for stream in streams]


def detect_layout(path: Path | str) -> Layout:
    """``"hapt"`` for a folder holding ``RawData/``, ``"motionsense"`` for one holding
    ``A_DeviceMotion_data/``, ``"recordings"`` for one holding ``labels.csv``, ``"uci-har"`` for
    UCI HAR's layout."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: expected a dataset folder, there is no such folder")
    raw = find_layout(path)
    if raw is not None:
        return raw
    root = _uci_root(path)
    if root is not None:
        if any((root / split / "Inertial Signals").is_dir() for split in UCI_SPLITS):
            return "uci-har"
        raise DatasetError(
            f"{root}: UCI HAR layout without the windowed signals; expected "
            f"train/Inertial Signals/ or test/Inertial Signals/ (the full UCI HAR download)"
        )
    raise DatasetError(
        f"{path}: expected a HAPT folder (holding RawData/), a MotionSense folder (holding "
        f"A_DeviceMotion_data/) or a UCI HAR folder (holding train/ and test/ with Inertial "
        f"Signals/), found none of them"
    )


def load_streams(path: Path | str, subjects: set[int] | None = None) -> list[ReplayStream]:
    """The streams of a dataset folder of any layout (``subjects`` None: all)."""
    if detect_layout(path) == "uci-har":
        return uci_har_streams(path, subjects)
    return recording_streams(path, subjects)


def recording_streams(data_dir: Path | str, subjects: set[int] | None = None) -> list[ReplayStream]:
    """One stream per recording of a HAPT, MotionSense or recordings folder, in the reader's order.

    Stream ids are the recordings' (``exp05_user03``, ``ms_dws_1_sub01``, a
    recording's name); MotionSense's jogging recordings are streamed too,
    scored only when the engine's model has a JOGGING class.
    """
    dataset = read_any(data_dir, subjects)
    _check_subjects({r.user for r in dataset.recordings}, subjects, data_dir)
    ids = tuple(dataset.activity_names)
    return [
        ReplayStream(
            rec.stream_id,
            rec.samples,
            rec.user,
            functools.partial(window_activity, dataset.segments_of(rec), ids=ids),
            dataset.activity_names,
        )
        for rec in dataset.recordings
    ]


hapt_streams = recording_streams
"""The former name of :func:`recording_streams` (HAPT was the only raw layout)."""


def uci_har_streams(uci_dir: Path | str, subjects: set[int] | None = None) -> list[ReplayStream]:
    """UCI HAR windows stitched into continuous runs, one stream per run (``uci_s03_r02``).

    Runs are numbered from 1 per subject, in file order (train, then test).
    """
    root = _uci_root(Path(uci_dir))
    if root is None or detect_layout(root) != "uci-har":
        raise DatasetError(f"{uci_dir}: expected a UCI HAR folder (train/, test/)")
    streams: list[ReplayStream] = []
    found: set[int] = set()
    runs_of: dict[int, int] = {}
    for split in UCI_SPLITS:
        folder = root / split
        if not (folder / "Inertial Signals").is_dir():
            continue
        who = read_matrix(folder / f"subject_{split}.txt", 1, dtype=int)[:, 0].astype(np.int64)
        found.update(who.tolist())
        if subjects is not None and not set(who.tolist()) & subjects:
            continue  # nothing wanted here: skip reading the big files
        labels = _read_labels(folder / f"y_{split}.txt", len(who))
        rows = _read_signals(folder, split, len(who))
        for first, stop in split_runs(rows, who):
            subject = int(who[first])
            if subjects is not None and subject not in subjects:
                continue
            runs_of[subject] = runs_of.get(subject, 0) + 1
            streams.append(
                ReplayStream(
                    f"uci_s{subject:02d}_r{runs_of[subject]:02d}",
                    join_rows(rows[first:stop]).astype(np.float32),
                    subject,
                    RowTruth(labels[first:stop]),
                )
            )
    _check_subjects(found, subjects, root)
    return streams


# -- helpers -----------------------------------------------------------------------------------


def _renamed(stream: ReplayStream, stream_id: str) -> ReplayStream:
    if STREAM_ID.fullmatch(stream_id) is None:
        raise ProtocolError(
            "stream_id", f"expected 1-64 characters of [A-Za-z0-9._:-], got {stream_id!r}"
        )
    return replace(stream, stream_id=stream_id)


def _uci_root(path: Path) -> Path | None:
    """The folder holding ``train/``/``test/``: ``path`` itself or its ``UCI HAR Dataset``."""
    for candidate in (path, path / UCI_ROOT):
        if any((candidate / split / f"subject_{split}.txt").is_file() for split in UCI_SPLITS):
            return candidate
    return None


def _read_labels(path: Path, rows: int) -> npt.NDArray[np.int64]:
    labels = read_matrix(path, 1, dtype=int)[:, 0].astype(np.int64)
    if len(labels) != rows:
        raise DatasetError(f"{path}: expected {rows} rows like subject_*.txt, got {len(labels)}")
    bad = np.flatnonzero((labels < 1) | (labels > 6))
    if bad.size:
        raise DatasetError(
            f"{path}:{bad[0] + 1}: expected an activity id in 1..6, got {labels[bad[0]]}"
        )
    return labels


def _read_signals(folder: Path, split: str, rows: int) -> npt.NDArray[np.float64]:
    """Shape (rows, 128, 6): the :data:`UCI_SIGNALS` of every row."""
    columns = []
    for name in UCI_SIGNALS:
        path = folder / "Inertial Signals" / f"{name}_{split}.txt"
        values = read_matrix(path, WINDOW)
        if len(values) != rows:
            raise DatasetError(f"{path}: expected {rows} rows like subject_{split}.txt, "
                               f"got {len(values)}")
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
            raise DatasetError(f"{path}:{row + 1}: expected finite numbers, got NaN or inf")
        columns.append(values)
    return np.stack(columns, axis=2)


def _check_subjects(found: set[int], wanted: set[int] | None, where: Path | str) -> None:
    missing = sorted(wanted - found) if wanted is not None else []
    if missing or not found:
        have = ", ".join(map(str, sorted(found))) or "none"
        raise DatasetError(
            f"{where}: expected recordings of subject(s) "
            f"{', '.join(map(str, missing)) or 'any'}, found subjects {have}"
        )

