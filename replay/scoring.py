"""Scoring the engine's live output against the truth of the replayed recordings.

The engine emits one prediction per grid window of every stream (``seq_end``
127, 191, 255, ...). :func:`expected_windows` lists them with their truth;
:class:`Scorer` matches incoming predictions by ``(stream, seq_end)`` and
reports the evaluation protocol's numbers: windows whose 128 samples lie in
one labelled segment of a class the engine's model has are scored, raw and
smoothed. The model's labels come from the engine's ``$stats`` (``labels``),
the six classes until one arrives; truth and predictions meet by class name,
so a fine-tuned model's new classes (JOGGING) are scored too.

>>> import numpy as np
>>> from harstream.protocol import Prediction
>>> from replay.sources import ReplayStream, RowTruth
>>> stream = ReplayStream("a", np.zeros((192, 6), np.float32), 1, RowTruth(np.array([4, 5])))
>>> expected_windows(stream)
{127: 3, 191: 4}
>>> scorer = Scorer([stream])
>>> scorer.update(Prediction("a", 127, "SITTING", (1.0,), "SITTING", 10.0, 10.25))
>>> r = scorer.report()
>>> r["windows_expected"], r["windows_received"], r["accuracy"], r["latency_ms"]["max"]
(2, 1, 1.0, 250.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from harstream import ACTIVITIES
from harstream.data.scoring import score
from harstream.protocol import ErrorEvent, Prediction, StatsEvent
from harstream.signal.windows import window_ends
from replay.player import ReplaySummary
from replay.sources import ReplayStream

Event = Prediction | ErrorEvent | StatsEvent


def expected_windows(stream: ReplayStream, labels: Sequence[str] = ACTIVITIES) -> dict[int, int]:
    """Every window the engine emits for ``stream``: ``seq_end`` -> index of its truth in ``labels``,
    or -1 (no truth, or a class ``labels`` lacks)."""
    ends = window_ends(0, len(stream))
    truth = np.asarray(stream.truth(ends), dtype=np.int64)
    names = list(labels)
    index_of = {i: names.index(n) for i, n in stream.activity_names.items() if n in names}
    index = [index_of.get(t, -1) for t in truth.tolist()]
    return dict(zip(ends.tolist(), index, strict=True))


class Scorer:
    """Collects the engine's events for ``streams`` and scores the predictions."""

    def __init__(self, streams: Sequence[ReplayStream], labels: Sequence[str] = ACTIVITIES) -> None:
        self.streams = tuple(streams)
        self.labels = tuple(labels)
        self.expected = {s.stream_id: expected_windows(s, self.labels) for s in self.streams}
        """Per stream id: ``seq_end`` -> truth index into :attr:`labels` (-1: not scored)."""
        self.received: dict[tuple[str, int], Prediction] = {}
        """First prediction of every expected window received."""
        self.duplicates = 0
        self.unexpected = 0
        self.foreign = 0
        self.errors: Counter[str] = Counter()
        self.playback: ReplaySummary | None = None
        """What the player sent (set by :func:`replay.session.score_replay`)."""
        self.interrupted = False
        self.engine_seen = False
        """True once any engine message (``$stats``, ``$error``, a prediction) came in."""
        self.engines: list[str] = []
        """Engine run ids in the order they were first seen (more than one: the engine restarted)."""
        self._subject = {s.stream_id: s.subject for s in self.streams}
        self._n_expected = sum(map(len, self.expected.values()))

    @property
    def done(self) -> bool:
        """True once every expected window has been received."""
        return len(self.received) == self._n_expected

    def update(self, event: Event) -> None:
        """Take one engine event; predictions and errors of other streams are only counted."""
        self.engine_seen = True
        engine = event.fields.get("engine") if isinstance(event, StatsEvent) else getattr(
            event, "engine", None)
        if isinstance(engine, str) and engine not in self.engines:
            self.engines.append(engine)
        if isinstance(event, ErrorEvent):
            if event.stream in self.expected:
                self.errors[event.code] += 1
            return
        if isinstance(event, StatsEvent):
            labels = event.fields.get("labels")
            if isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels):
                self.set_labels(labels)
            return
        windows = self.expected.get(event.stream)
        key = (event.stream, event.seq_end)
        if windows is None:
            self.foreign += 1
        elif event.seq_end not in windows:
            self.unexpected += 1
        elif key in self.received:
            self.duplicates += 1
        else:
            self.received[key] = event

    def set_labels(self, labels: Sequence[str]) -> None:
        """Score against ``labels`` (the engine's model's classes, in its order) from now on."""
        if tuple(labels) != self.labels:
            self.labels = tuple(labels)
            self.expected = {s.stream_id: expected_windows(s, self.labels) for s in self.streams}

    def lost_to_restarts(self) -> int:
        """Missing windows that fell between two engine runs.

        A missing window counts when the nearest window received before it
        and the nearest after it (or, with none after, the latest run seen)
        come from different engine runs: the engine restarted there and
        rebuilt the stream's window buffer from scratch.
        """
        if len(self.engines) < 2:
            return 0
        order = {engine: i for i, engine in enumerate(self.engines)}
        lost = 0
        for sid, windows in self.expected.items():
            runs = [(end, order.get(self.received[(sid, end)].engine or "", -1))
                    for end in sorted(windows) if (sid, end) in self.received]
            if not runs:
                continue
            ends = [end for end, _ in runs]
            for end in windows:
                if (sid, end) in self.received:
                    continue
                i = int(np.searchsorted(ends, end))
                if i == 0:
                    continue
                before = runs[i - 1][1]
                after = runs[i][1] if i < len(runs) else len(self.engines) - 1
                lost += before != after
        return lost

    def timeline(self, stream_id: str) -> tuple[list[int], list[int], list[Prediction | None]]:
        """Window ends, truth indices and the received prediction (or None) of one stream."""
        windows = self.expected[stream_id]
        ends = sorted(windows)
        return ends, [windows[e] for e in ends], [self.received.get((stream_id, e)) for e in ends]

    def label_index(self, label: str) -> int:
        """Index of a predicted label in :attr:`labels`, -1 if the model speaks another one."""
        return self.labels.index(label) if label in self.labels else -1

    def report(self) -> dict[str, Any]:
        """The replay score as JSON-ready numbers."""
        truth, raw, smooth, subjects, latencies = [], [], [], [], []
        for (sid, end), p in self.received.items():
            latencies.append(p.latency_ms)
            index = self.expected[sid][end]
            if index >= 0:
                truth.append(index)
                raw.append(self.label_index(p.label))
                smooth.append(self.label_index(p.smoothed))
                subjects.append(self._subject[sid])
        result: dict[str, Any] = {
            "streams": len(self.streams),
            "windows_expected": self._n_expected,
            "windows_received": len(self.received),
            "windows_missing": self._n_expected - len(self.received),
            "engine_restarts": max(0, len(self.engines) - 1),
            "windows_lost_to_restarts": self.lost_to_restarts(),
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
            "foreign": self.foreign,
            "errors": dict(sorted(self.errors.items())),
            "n_scored": len(truth),
            "labels": list(self.labels),
        }
        raw_score = score(truth, raw, subjects, self.labels) if truth else None
        smooth_score = score(truth, smooth, subjects, self.labels) if truth else None
        for key in ("accuracy", "macro_f1"):
            result[key] = _get(raw_score, key)
            result[f"smoothed_{key}"] = _get(smooth_score, key)
        result["macro_f1_classes"] = _get(raw_score, "macro_f1_classes")
        result["latency_ms"] = _percentiles(latencies)
        result["per_class"] = _get(raw_score, "per_class")
        for key in ("per_subject", "confusion"):
            result[key] = _get(raw_score, key)
            result[f"smoothed_{key}"] = _get(smooth_score, key)
        if self.playback is not None:
            result["replay"] = {
                "messages": self.playback.messages,
                "samples": self.playback.samples,
                "seconds": round(self.playback.seconds, 3),
            }
        result["interrupted"] = self.interrupted
        return result


def _get(scores: dict[str, Any] | None, key: str) -> Any:
    return None if scores is None else scores[key]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(max(values))}
