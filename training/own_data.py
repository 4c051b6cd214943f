"""Dataset recordings written as a user's own recordings folder: people recording on their own phones.

The fine-tuning benchmark (``scripts/finetune_bench.py``) and the tests play
"a user who records a few sessions" with MotionSense's subjects: each chosen
trial is rendered as a phone of its own would deliver it (its rate, jittered
timestamps: :class:`harstream.data.device.Device`), with ``t`` in unix seconds, and
written in the recordings format (:mod:`harstream.data.recordings`) with one span
covering it, named by its class (JOGGING for MotionSense's jogging).

:func:`motionsense_plan` splits each subject's trials into the fine-tuning
sessions (the first trial of each activity, cut to a duration) and the
evaluation sessions (every other trial, whole).

>>> [d.rate_hz for d in DEVICES]
[50.0, 100.0, 60.0, 200.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harstream import SAMPLE_RATE_HZ
from harstream.data.device import Device
from harstream.data.motionsense import CODES, TRIALS
from harstream.data.recordings import Span, write_labels, write_recording
from harstream.data.types import Dataset, Recording

DEVICES: tuple[Device, ...] = (
    Device(50.0, jitter_ms=8.0, seed=1),
    Device(100.0, jitter_ms=4.0, seed=2),
    Device(60.0, jitter_ms=5.0, seed=3),
    Device(200.0, jitter_ms=1.0, seed=4),
)
"""The phones people record on, one per person in turn: rate and timestamp jitter."""
ORIGIN = 1_764_000_000.0
"""Unix time of the first recording's first sample; each further recording starts 1000 s later."""


@dataclass(frozen=True)
class Piece:
    """A stretch of a dataset recording to write as one recording file."""

    recording: Recording
    """The 50 Hz recording."""
    activity: str
    """The class name of the span covering it."""
    seconds: float | None = None
    """Its first this many seconds (None: all of it)."""

    @property
    def name(self) -> str:
        """The recording's file name stem, e.g. ``s07_jog_9``."""
        code = TRIALS.get(self.recording.experiment, "rec")
        return f"s{self.recording.user:02d}_{code}_{self.recording.experiment}"


def motionsense_plan(
    dataset: Dataset, known_s: float = 60.0, new_s: float = 120.0, new: str = "JOGGING"
) -> tuple[list[Piece], list[Piece]]:
    """``(fine-tuning pieces, evaluation pieces)`` of a MotionSense dataset.

    Per subject and activity, the lowest-numbered trial is for fine-tuning,
    cut to ``known_s`` seconds (``new_s`` for the class ``new``); every other
    trial is for evaluation, whole.
    """
    tune: list[Piece] = []
    check: list[Piece] = []
    first: dict[tuple[int, str], int] = {}
    for rec in dataset.recordings:
        code = TRIALS[rec.experiment]
        key = (rec.user, code)
        first[key] = min(first.get(key, rec.experiment), rec.experiment)
    for rec in dataset.recordings:
        code = TRIALS[rec.experiment]
        activity = CODES[code]
        if first[(rec.user, code)] == rec.experiment:
            tune.append(Piece(rec, activity, new_s if activity == new else known_s))
        else:
            check.append(Piece(rec, activity))
    return tune, check


def write_folder(folder: Path, pieces: Sequence[Piece], people: Sequence[int]) -> list[Span]:
    """Write ``pieces`` as a recordings folder; person ``people[i]`` records on ``DEVICES[i % 4]``.

    Returns the spans written to ``labels.csv``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    spans = []
    for number, piece in enumerate(pieces):
        device = DEVICES[list(people).index(piece.recording.user) % len(DEVICES)]
        samples = piece.recording.samples
        if piece.seconds is not None:
            samples = samples[: round(piece.seconds * SAMPLE_RATE_HZ)]
        values, times = device.render(samples)
        if times is None:
            times = np.arange(len(values)) / device.rate_hz
        t = ORIGIN + 1000.0 * number + times
        write_recording(folder / f"{piece.name}.csv", t, values)
        spans.append(Span(piece.name, float(t[0]), float(t[-1]) + 0.5 / device.rate_hz, piece.activity))
    write_labels(folder, spans)
    return spans
