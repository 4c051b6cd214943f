"""The data layer's own types: a recording, its labelled segments, a dataset of both.

Every layout (HAPT, MotionSense, recordings folders) reads into a :class:`Dataset` of
:class:`Recording` (50 Hz, protocol v1's units) and :class:`Segment` (a labelled stretch of one
recording); :func:`window_activity` is the evaluation protocol's truth of a window over them.

>>> seg = Segment(experiment=1, user=1, activity=4, start=0, stop=256)
>>> window_activity([seg], [127, 255, 383]).tolist(), six_names()[seg.activity]
([4, 4, 0], 'SITTING')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES

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
