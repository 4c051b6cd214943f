"""The subjects of each split: training, validation and the test subjects kept for the final report.

The rule for every split is written here once; training, evaluation, replay and export read it.

>>> TEST_SUBJECTS[:3]
(2, 4, 9)
"""

from __future__ import annotations

from typing import Literal

from harstream.data.motionsense import ALL_SUBJECTS as MOTIONSENSE_ALL_SUBJECTS
from harstream.data.motionsense import SHARED_SUBJECTS as MOTIONSENSE_SUBJECTS

TEST_SUBJECTS: tuple[int, ...] = (2, 4, 9, 10, 12, 13, 18, 20, 24)
"""UCI HAR's test subjects: touched once, for the final report."""
VALIDATION_SUBJECTS: tuple[int, ...] = (1, 7, 15, 25, 29)
"""Training subjects held out for early stopping and model selection."""
TRAIN_SUBJECTS: tuple[int, ...] = tuple(
    s for s in range(1, 31) if s not in TEST_SUBJECTS and s not in VALIDATION_SUBJECTS
)
"""Subjects whose windows the model is fitted on."""

Split = Literal["train", "validation", "test"]
SPLITS: dict[str, tuple[int, ...]] = {
    "train": TRAIN_SUBJECTS,
    "validation": VALIDATION_SUBJECTS,
    "test": TEST_SUBJECTS,
}

MOTIONSENSE_VALIDATION_SUBJECTS: tuple[int, ...] = tuple(sorted(MOTIONSENSE_SUBJECTS)[0::4])
"""MotionSense's validation subjects, by the rule fixed before any MotionSense training
(docs/model.md, "MotionSense validation rule"): the 16 subject ids of the project's copy,
sorted, every 4th from the 1st (indices 0, 4, 8, 12): subjects 1, 7, 13, 19."""
MOTIONSENSE_TRAIN_SUBJECTS: tuple[int, ...] = tuple(
    s for s in sorted(MOTIONSENSE_SUBJECTS) if s not in MOTIONSENSE_VALIDATION_SUBJECTS
)
"""The other 12 MotionSense subjects of the project's copy."""
MOTIONSENSE_TEST_SUBJECTS: tuple[int, ...] = tuple(
    s for s in MOTIONSENSE_ALL_SUBJECTS if s not in MOTIONSENSE_SUBJECTS
)
"""MotionSense's outside test (3, 6, ..., 24): kept out of the project, never read here."""
MOTIONSENSE_SPLITS: dict[str, tuple[int, ...]] = {
    "train": MOTIONSENSE_TRAIN_SUBJECTS,
    "validation": MOTIONSENSE_VALIDATION_SUBJECTS,
    "test": MOTIONSENSE_TEST_SUBJECTS,
}
DATASET_SPLITS: dict[str, dict[str, tuple[int, ...]]] = {"hapt": SPLITS, "motionsense": MOTIONSENSE_SPLITS}
"""The splits of each layout, by its own subject ids."""


def split_subjects(layout: str, split: str) -> tuple[int, ...]:
    """The subjects of ``split`` in the dataset of ``layout``.

    >>> split_subjects("motionsense", "validation")
    (1, 7, 13, 19)
    """
    if layout not in DATASET_SPLITS:
        raise ValueError(f"layout: expected one of {sorted(DATASET_SPLITS)}, got {layout!r}")
    if split not in DATASET_SPLITS[layout]:
        raise ValueError(f"split: expected one of {sorted(SPLITS)}, got {split!r}")
    return DATASET_SPLITS[layout][split]
