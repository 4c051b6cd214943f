"""The dataset builder against the real recordings and UCI HAR's published windows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harstream import ACTIVITIES
from harstream.data.hapt import read_dataset
from harstream.data.labelled_windows import build_windows, recording_windows
from harstream.data.splits import SPLITS, TEST_SUBJECTS, TRAIN_SUBJECTS, VALIDATION_SUBJECTS
from harstream.data.stats import window_stats


@pytest.fixture(scope="module")
def stats(hapt_dir: Path) -> dict:
    return window_stats(hapt_dir)


def _uci_counts(uci_dir: Path) -> Counter[tuple[int, str]]:
    counts: Counter[tuple[int, str]] = Counter()
    for part in ("train", "test"):
        subjects = np.loadtxt(uci_dir / part / f"subject_{part}.txt", dtype=int)
        labels = np.loadtxt(uci_dir / part / f"y_{part}.txt", dtype=int)
        for s, y in zip(subjects, labels, strict=True):
            counts[(int(s), ACTIVITIES[y - 1])] += 1
    return counts


def test_counts_agree_with_uci_har_within_two_percent(stats: dict, hapt_dir: Path) -> None:
    uci = _uci_counts(hapt_dir.parent / "uci-har")
    ours = sum(c["windows"] for c in stats["counts"])
    theirs = sum(uci.values())
    assert abs(ours - theirs) / theirs <= 0.02, (ours, theirs)
    assert {c["subject"] for c in stats["counts"]} == set(range(1, 31))
    assert len(stats["counts"]) == 30 * 6


def test_splits_are_disjoint_and_cover_every_subject(stats: dict) -> None:
    assert set(TEST_SUBJECTS) == {2, 4, 9, 10, 12, 13, 18, 20, 24}
    assert not set(VALIDATION_SUBJECTS) & set(TEST_SUBJECTS)
    assert not set(TRAIN_SUBJECTS) & (set(TEST_SUBJECTS) | set(VALIDATION_SUBJECTS))
    assert set(TRAIN_SUBJECTS) | set(VALIDATION_SUBJECTS) | set(TEST_SUBJECTS) == set(range(1, 31))
    assert sum(stats["splits"].values()) == sum(c["windows"] for c in stats["counts"])
    per_subject = Counter()
    for c in stats["counts"]:
        per_subject[c["subject"]] += c["windows"]
    assert stats["splits"]["test"] == sum(per_subject[s] for s in SPLITS["test"])


def test_windows_lie_inside_one_activity_segment(hapt_dir: Path) -> None:
    dataset = read_dataset(hapt_dir, {2})
    for align in ("segment", "stream"):
        for rec in dataset.recordings:
            segs = [s for s in dataset.segments_of(rec) if s.activity <= 6]
            w = recording_windows(rec, dataset.segments_of(rec), align)
            assert len(w) > 0
            for end, y in zip(w.seq_end, w.y, strict=True):
                assert any(
                    s.start <= end - 127 and end < s.stop and s.activity == y + 1 for s in segs
                )


def test_stream_windows_are_the_engine_grid(hapt_dir: Path) -> None:
    w = build_windows(hapt_dir, {4}, align="stream")
    assert ((w.seq_end + 1) % 64 == 0).all() and (w.seq_end >= 127).all()
    assert w.x.shape[1:] == (128, 9) and w.x.dtype == np.float32
