"""A small fine-tune on shared data: MotionSense people teach the shipped model JOGGING (issue 13's CI check).

Two MotionSense validation subjects (1, 7) record on phones of their own
(:mod:`training.own_data`): 20 s of the first trial of each known activity and
40 s of jogging to fine-tune on; two of their other trials to evaluate. The
fine-tune is tiny (2 epochs, 800 base windows) so CI stays fast; the real
numbers come from scripts/finetune_bench.py (docs/own-data.md).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harstream import ACTIVITIES
from harstream.data.motionsense import read_dataset as read_motionsense
from harstream.model import artifact
from harstream.model.classifier import Classifier
from harstream.protocol import Prediction, StatsEvent
from harstream.serve.client import Subscriber
from replay.session import score_replay
from replay.sources import recording_streams
from training.evaluate import evaluate
from training.finetune import finetune
from training.own_data import motionsense_plan, write_folder
from training.recipe import FinetuneConfig

PEOPLE = (1, 7)
SEVEN = [*ACTIVITIES, "JOGGING"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folders(motionsense_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(fine-tuning folder, evaluation folder) of the two people."""
    root = tmp_path_factory.mktemp("own")
    tune, check = motionsense_plan(read_motionsense(motionsense_dir, set(PEOPLE)), 20.0, 40.0)
    check = [p for p in check if p.recording.experiment in (16, 8)]  # jogging and walking, unseen trials
    write_folder(root / "tune", tune, PEOPLE)
    write_folder(root / "check", check, PEOPLE)
    return root / "tune", root / "check"


@pytest.fixture(scope="module")
def tuned(folders: tuple[Path, Path], hapt_dir: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("tuned")
    config = FinetuneConfig(epochs=2, patience=2, base_windows=800)
    metrics = finetune("shipped", [folders[0]], out, config, base_data=[hapt_dir])
    return out / "harnet-fusion.keras", metrics


def test_the_fine_tune_adds_jogging_and_holds_out_whole_recordings(tuned: tuple[Path, dict[str, Any]]) -> None:
    path, metrics = tuned
    meta = artifact.load(path).meta
    assert meta.labels == SEVEN
    info = metrics["finetune"]
    assert info["new_labels"] == ["JOGGING"] and info["base_windows"] == 800
    # the rule: per class, the last of its two recordings by name (person 7's) is held out
    assert info["held_out_recordings"] == sorted(f"s07_{c}_{t}" for c, t in
                                                 (("dws", 1), ("jog", 9), ("sit", 5), ("std", 6), ("ups", 3),
                                                  ("wlk", 7)))
    assert metrics["validation"]["per_class"]["JOGGING"]["support"] > 0
    assert set(metrics["base_validation"]) == {"base", "finetuned"}  # HAPT validation, before and after
    assert meta.metrics == metrics and (path.parent / "metrics.json").is_file()
    shipped = artifact.load()
    assert meta.norm_mean == shipped.meta.norm_mean and meta.architecture == shipped.meta.architecture


def test_evaluate_on_a_recordings_folder_gives_the_hapt_json(tuned: tuple[Path, dict[str, Any]],
                                                             folders: tuple[Path, Path]) -> None:
    base = evaluate(Classifier.load(), folders[1])
    mine = evaluate(Classifier.load(tuned[0]), folders[1])
    for result in (base, mine):
        assert {"accuracy", "macro_f1", "per_class", "confusion", "smoothed", "per_recording"} <= set(result)
        assert result["dataset"] == "recordings" and result["split"] == "all"
        for row in result["per_class"].values():
            assert set(row) == {"precision", "recall", "f1", "support"}
    assert list(mine["per_class"]) == SEVEN and len(mine["confusion"]) == 7
    jog_windows = mine["per_class"]["JOGGING"]["support"]
    assert jog_windows > 0 and base["unscored_windows"] == {"JOGGING": jog_windows}  # the base has no JOGGING
    assert sorted(mine["per_recording"]) == ["s01_jog_16", "s01_wlk_8", "s07_jog_16", "s07_wlk_8"]
    assert mine["n_windows"] == base["n_windows"] + jog_windows


def test_the_fine_tuned_model_serves_and_replays_with_its_labels(
    tuned: tuple[Path, dict[str, Any]], folders: tuple[Path, Path], free_endpoint: Callable[[], str]
) -> None:
    ingest, publish = free_endpoint(), free_endpoint()
    engine = subprocess.Popen(
        [sys.executable, "-m", "harstream", "serve", "--model", str(tuned[0]), "--ingest", ingest,
         "--publish", publish], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        with Subscriber(publish) as sub:
            deadline = time.monotonic() + 180
            while not isinstance(stats := sub.receive(timeout_s=1.0), StatsEvent):
                assert engine.poll() is None, engine.stderr.read().decode() if engine.stderr else ""
                assert time.monotonic() < deadline, "engine did not start"
            assert stats.fields["labels"] == SEVEN
        streams = [s for s in recording_streams(folders[1]) if "jog" in s.stream_id]
        scorer = score_replay(streams, ingest, publish, speed=0.0, timeout_s=15.0)
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
    report = scorer.report()
    assert report["labels"] == SEVEN and report["windows_missing"] == 0
    assert report["per_class"]["JOGGING"]["support"] == report["n_scored"] > 0  # scored against JOGGING
    some: Prediction = next(iter(scorer.received.values()))
    assert len(some.probs) == 7 and some.label in SEVEN
    offline = evaluate(Classifier.load(tuned[0]), folders[1])
    jog = offline["per_class"]["JOGGING"]
    assert report["per_class"]["JOGGING"]["recall"] == pytest.approx(jog["recall"], abs=0.05)
    assert np.isfinite(report["accuracy"])
