"""Models with other label sets (fine-tuned: the six plus JOGGING) load, score and show by class name."""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
import pytest

from harstream import ACTIVITIES
from harstream.data.types import Segment, six_names, window_activity
from harstream.errors import ArtifactError
from harstream.model import artifact
from harstream.model.artifact import ModelMeta
from harstream.model.classifier import Classifier
from harstream.protocol import Prediction, StatsEvent
from harstream.tools.dashboard.state import DashboardState
from replay.scoring import Scorer, expected_windows
from replay.sources import ReplayStream
from training.finetune import hold_out

SEVEN = [*ACTIVITIES, "JOGGING"]
MEAN, STD = [0.0] * 9, [1.0] * 9


def _save(tmp_path: Path, labels: list[str], outputs: int) -> Path:
    inputs = keras.Input((128, 9))
    x = keras.layers.GlobalAveragePooling1D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax")(x))
    meta = ModelMeta("tiny", MEAN, STD, {"train": [1]}, "ab" * 32, labels=labels)
    path = tmp_path / "tiny.keras"
    artifact.save(model, meta, path)
    return path


def test_an_artifact_with_seven_labels_loads_and_classifies(tmp_path: Path) -> None:
    clf = Classifier.load(_save(tmp_path, SEVEN, 7))
    assert clf.labels == SEVEN
    assert clf.predict_proba(np.zeros((3, 128, 9), np.float32)).shape == (3, 7)


def test_labels_that_do_not_fit_the_output_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"expected one output of shape \(7,\)"):
        Classifier.load(_save(tmp_path, SEVEN, 6))


def _jog_stream() -> ReplayStream:
    segments = [Segment(1, 1, 1, 0, 256), Segment(1, 1, 13, 256, 512)]
    return ReplayStream("ms", np.zeros((512, 6), np.float32), 1,
                        functools.partial(window_activity, segments, ids=(1, 13)), {**six_names(), 13: "JOGGING"})


def test_replay_scores_by_the_engines_labels_from_stats() -> None:
    stream = _jog_stream()
    assert expected_windows(stream) == {127: 0, 191: 0, 255: 0, 319: -1, 383: -1, 447: -1, 511: -1}
    assert expected_windows(stream, SEVEN) == {127: 0, 191: 0, 255: 0, 319: -1, 383: 6, 447: 6, 511: 6}
    scorer = Scorer([stream])
    scorer.update(StatsEvent({"streams": 0, "labels": SEVEN}))
    for end, label in ((127, "WALKING"), (191, "WALKING"), (255, "JOGGING"), (383, "JOGGING"), (447, "JOGGING"),
                       (511, "WALKING")):
        scorer.update(Prediction("ms", end, label, (1 / 7,) * 7, label, 10.0, 10.1))
    report = scorer.report()
    assert report["labels"] == SEVEN and report["n_scored"] == 6
    assert report["per_class"]["JOGGING"]["support"] == 3
    assert report["per_class"]["JOGGING"]["recall"] == pytest.approx(2 / 3)
    assert report["confusion"][6] == [1, 0, 0, 0, 0, 0, 2]


def test_the_dashboard_counts_the_served_models_classes() -> None:
    state = DashboardState("tcp://127.0.0.1:1")
    state.update(StatsEvent({"streams": 1, "windows": 0, "windows_per_s": 0.0, "latency_ms": {}, "rejected": 0,
                             "uptime_s": 1.0, "t": 0.0, "labels": ["JOGGING", "SITTING"]}), now=0.0)
    state.update(Prediction("p", 127, "JOGGING", (0.9, 0.1), "JOGGING", 0.0, 0.1), now=0.5)
    assert state.snapshot(now=1.0).counts == (("JOGGING", 1), ("SITTING", 0))


def test_hold_out_rule_keeps_a_training_recording_of_every_class() -> None:
    people = {f"s{p:02d}_{a}": {a} for p in (1, 7, 13, 19) for a in ("jog", "sit", "wlk")}
    assert hold_out(people) == ["s19_jog", "s19_sit", "s19_wlk"]
    ten = {f"r{i}": {"WALK"} for i in range(10)}
    assert hold_out(ten) == ["r8", "r9"]  # one in five
    mixed = {"a": {"WALK", "JOG"}, "b": {"WALK"}}
    assert hold_out(mixed) == ["b"]  # "a" is JOG's only recording
