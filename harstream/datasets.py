"""Which dataset a folder holds, and reading either into the same recordings.

Two layouts hold raw recordings: HAPT (:mod:`harstream.hapt`, the waist)
and MotionSense (:mod:`harstream.motionsense`, the trouser pocket). Both read
into a :class:`harstream.hapt.Dataset` of recordings in protocol v1's units
and labelled segments, so every consumer (``data``, ``replay``, ``evaluate``,
``train``) runs them through the same signal chain.

Subject ids are each dataset's own (HAPT 1..30, MotionSense 1..24); where
windows of several datasets are pooled, :func:`subject_key` tells them apart.

>>> subject_key("hapt", 7), subject_key("motionsense", 7)
(7, 107)
>>> dataset_of_key(107)
('motionsense', 7)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from . import hapt, motionsense
from .errors import DatasetError

Layout = Literal["hapt", "motionsense"]
"""The layouts of raw recordings harstream reads."""
LAYOUTS: tuple[Layout, ...] = ("hapt", "motionsense")
TITLES: dict[str, str] = {"hapt": "HAPT", "motionsense": "MotionSense"}
"""Display name of each layout."""
SUBJECT_OFFSET: dict[str, int] = {"hapt": 0, "motionsense": 100}
"""Added to a dataset's subject id to make :func:`subject_key` (HAPT's ids stay as they are)."""


def find_layout(path: Path | str) -> Layout | None:
    """``"hapt"`` for a folder holding ``RawData/``, ``"motionsense"`` for one holding
    ``A_DeviceMotion_data/`` (or being it), None for anything else."""
    path = Path(path)
    if not path.is_dir():
        return None
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
        f"{path}: expected a HAPT folder (holding {hapt.RAW_DIR}/) or a MotionSense folder "
        f"(holding {motionsense.DATA_DIR}/<code>_<trial>/sub_<n>.csv), found neither; run "
        f"`harstream data download` or pass --data"
    )


def read_any(path: Path | str, subjects: set[int] | None = None) -> hapt.Dataset:
    """The recordings of either layout (of ``subjects``, the dataset's own ids, when given)."""
    if detect(path) == "hapt":
        return hapt.read_dataset(path, subjects)
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
