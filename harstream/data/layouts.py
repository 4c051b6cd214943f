"""Which dataset a folder holds, and reading either into the same recordings.

Three layouts hold raw recordings: HAPT (:mod:`harstream.data.hapt`, the waist),
MotionSense (:mod:`harstream.data.motionsense`, the trouser pocket) and a
recordings folder of your own labelled sessions (:mod:`harstream.data.recordings`,
``docs/own-data.md``). Each reads into a :class:`harstream.data.types.Dataset` of
recordings in protocol v1's units and labelled segments, so every consumer
(``data``, ``replay``, ``evaluate``, ``train``) runs them through the same
signal chain.

Subject ids are each dataset's own (HAPT 1..30, MotionSense 1..24); where
windows of several datasets are pooled, :func:`subject_key` tells them apart.

>>> subject_key("hapt", 7), subject_key("motionsense", 7)
(7, 107)
>>> dataset_of_key(107), dataset_of_key(1001)
(('motionsense', 7), ('recordings', 1))
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harstream.data import hapt, motionsense, recordings
from harstream.data.types import Dataset
from harstream.errors import DatasetError

Layout = Literal["hapt", "motionsense", "recordings"]
"""The layouts of raw recordings harstream reads."""
LAYOUTS: tuple[Layout, ...] = ("hapt", "motionsense", "recordings")
TITLES: dict[str, str] = {"hapt": "HAPT", "motionsense": "MotionSense", "recordings": "recordings"}
"""Display name of each layout."""
SUBJECT_OFFSET: dict[str, int] = {"hapt": 0, "motionsense": 100, "recordings": 1000}
"""Added to a dataset's subject id to make :func:`subject_key` (HAPT's ids stay as they are)."""


def find_layout(path: Path | str) -> Layout | None:
    """``"hapt"`` for a folder holding ``RawData/``, ``"motionsense"`` for one holding
    ``A_DeviceMotion_data/`` (or being it), ``"recordings"`` for one holding ``labels.csv``,
    None for anything else."""
    path = Path(path)
    if not path.is_dir():
        return None
    if recordings.is_recordings_folder(path):
        return "recordings"
    try:
        hapt.raw_dir(path)
        return "hapt"
    except DatasetError:
        pass
    if motionsense.find_data_dir(path) is not None:
        return "motionsense"
    return None


def detect(path: Path | str) -> Layout:
    """Like :func:`find_layout`, but anything else is a :class:`DatasetError`."""
    layout = find_layout(path)
    if layout is not None:
        return layout
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: expected a dataset folder, there is no such folder")
    raise DatasetError(
        f"{path}: expected a HAPT folder (holding {hapt.RAW_DIR}/), a MotionSense folder "
        f"(holding {motionsense.DATA_DIR}/<code>_<trial>/sub_<n>.csv) or a recordings folder (holding "
        f"{recordings.LABELS_FILE} and <name>.csv files, docs/own-data.md), found none; run "
        f"`harstream data download` or pass --data"
    )


def read_any(path: Path | str, subjects: set[int] | None = None) -> Dataset:
    """The recordings of any layout (of ``subjects``, the dataset's own ids, when given; a recordings
    folder has one subject, 1: the person who recorded it)."""
    layout = detect(path)
    if layout == "hapt":
        return hapt.read_dataset(path, subjects)
    if layout == "recordings":
        if subjects is not None and subjects != {1}:
            raise DatasetError(f"{path}: a recordings folder has one subject (1), expected no subject "
                               f"selection, got subjects {sorted(subjects)}")
        return recordings.read_dataset(path)
    return motionsense.read_dataset(path, subjects)


def subject_key(dataset: str, subject: int) -> int:
    """A subject id unique across datasets: the dataset's own id plus its offset."""
    if dataset not in SUBJECT_OFFSET:
        raise ValueError(f"dataset: expected one of {sorted(SUBJECT_OFFSET)}, got {dataset!r}")
    return SUBJECT_OFFSET[dataset] + subject


def dataset_of_key(key: int) -> tuple[str, int]:
    """``(dataset, its own subject id)`` of a :func:`subject_key`."""
    if key < 1:
        raise ValueError(f"key: expected a subject key >= 1, got {key}")
    name = max((n for n, offset in SUBJECT_OFFSET.items() if key > offset), key=SUBJECT_OFFSET.__getitem__)
    return name, key - SUBJECT_OFFSET[name]
