"""A tiny training run end to end, and the artifact's round trip and refusals."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harstream.errors import ArtifactError
from harstream.model import artifact
from harstream.model.classifier import Classifier
from training.recipe import TrainConfig
from training.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(hapt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    metrics = train(hapt_dir, out, TrainConfig(epochs=1, max_windows=256, train_hop=64))
    assert metrics["epochs_run"] == 1
    for name in ("harnet-fusion.keras", "harnet-fusion.json", "curves.png", "confusion_validation.png",
                 "per_subject_validation.png", "metrics.json", "history.json"):
        assert (out / name).is_file(), name
    return out / "harnet-fusion.keras"


def test_tiny_training_produces_a_loadable_artifact(tiny_model: Path) -> None:
    clf = Classifier.load(tiny_model)
    meta = clf.artifact.meta
    assert meta.labels[0] == "WALKING" and meta.window == 128 and meta.hop == 64
    assert len(meta.norm_mean) == len(meta.norm_std) == 9
    assert set(meta.subjects) == {"train", "validation", "test"}
    assert not set(meta.subjects["test"]) & set(meta.subjects["train"] + meta.subjects["validation"])
    assert len(meta.training_data_sha256) == 64
    probs = clf.predict_proba(np.zeros((3, 128, 9), np.float32))
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_padding_batches_does_not_change_probabilities(tiny_model: Path) -> None:
    clf = Classifier.load(tiny_model)
    x = np.random.default_rng(0).standard_normal((300, 128, 9)).astype(np.float32)
    together = clf.predict_proba(x)
    one_by_one = np.concatenate([clf.predict_proba(x[i : i + 1]) for i in range(0, 300, 37)])
    np.testing.assert_allclose(one_by_one, together[::37], atol=1e-5)


def test_tampered_weights_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.keras"
    shutil.copy(tiny_model, copy)
    shutil.copy(tiny_model.with_suffix(".json"), copy.with_suffix(".json"))
    with copy.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="does not match the metadata"):
        artifact.load(copy)


def test_other_signal_chain_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.keras"
    shutil.copy(tiny_model, copy)
    meta = json.loads(tiny_model.with_suffix(".json").read_text())
    meta["chain"]["gravity_cutoff_hz"] = 0.5
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="gravity_cutoff_hz"):
        artifact.load(copy)


def test_missing_metadata_is_named(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.keras"
    shutil.copy(tiny_model, copy)
    with pytest.raises(ArtifactError, match="metadata file not found"):
        artifact.load(copy)


def train_parser() -> argparse.ArgumentParser:
    """The parser of ``harstream train`` alone."""
    from training.cli.train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_cli_offers_every_architecture() -> None:
    from training.architectures import ARCHITECTURES
    from training.recipe import BATCH_SIZES, EPOCHS, LEARNING_RATES, SHIPPED

    arch = next(a for a in train_parser()._actions if a.dest == "arch")
    assert arch.choices is not None and sorted(arch.choices) == sorted(ARCHITECTURES)
    assert arch.default == SHIPPED.arch == TrainConfig().arch
    assert set(EPOCHS) == set(BATCH_SIZES) == set(LEARNING_RATES) == set(ARCHITECTURES)


def test_the_shipped_recipe_is_what_train_ran_with_no_options() -> None:
    # The augmentation `harstream train` used with no options before the recipe moved out of the CLI
    # (harstream/cli/main.py at 0f21344), fitted since issue 21 on every non-test person for the epoch
    # count cross-validation chose (docs/model.md, "Fifth round").
    from training.recipe import SHIPPED, SHIPPED_DATASETS, resolve

    assert TrainConfig(
        arch="harnet-fusion", epochs=None, seed=0, patience=10, batch_size=None, learning_rate=None,
        train_hop=16, ema=False, max_windows=None, turn_degrees=10.0, scale_motion=0.25, warp_time=0.1,
        pocket_turns="other-leg", refit=True, stop_epoch=6, distil=0.0,
    ) == SHIPPED
    assert SHIPPED_DATASETS == ("hapt", "motionsense")
    resolved = resolve(SHIPPED)
    assert (resolved.epochs, resolved.batch_size, resolved.learning_rate) == (16, 64, 1e-3)
    # ... and the recipe the shipped artifact records it was trained with
    shipped = json.loads(artifact.default_model_path().with_suffix(".json").read_text())
    recorded = shipped["metrics"]["config"]
    # recipe fields added after the artifact was trained were at their bare default in its recipe
    added = {name: getattr(TrainConfig(), name) for name in ("distil",) if name not in recorded}
    assert dataclasses.asdict(resolved) == {**recorded, **added}
    assert [part["dataset"] for part in shipped["metrics"]["data"]] == list(SHIPPED_DATASETS)


def test_the_bare_recipe_augments_nothing() -> None:
    bare = TrainConfig()
    assert (bare.turn_degrees, bare.scale_motion, bare.warp_time, bare.pocket_turns) == (0.0, 0.0, 0.0, "none")


def test_every_train_option_defaults_to_its_recipe_field() -> None:
    from training.cli.train import finetune_config, train_config
    from training.recipe import FINETUNE, SHIPPED

    parser = train_parser()
    defaults = {a.dest: a.default for a in parser._actions}
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    options = [name for name in fields if name in defaults]
    assert sorted(set(fields) - set(options)) == ["batch_size", "learning_rate"]  # the architecture's
    for name in options:  # None: the recipe's own value (the fine-tune's differs)
        assert defaults[name] in (getattr(SHIPPED, name), None), name
    assert defaults["base_windows"] == FINETUNE.base_windows
    assert train_config(parser.parse_args(["--out", "o"])) == SHIPPED
    assert finetune_config(parser.parse_args(["--out", "o", "--base", "shipped", "--data", "d"])) == FINETUNE
    given = parser.parse_args(["--out", "o", "--epochs", "3", "--patience", "2", "--turn-degrees", "0",
                               "--pocket-turns", "none", "--no-ema", "--seed", "4"])
    assert train_config(given) == dataclasses.replace(SHIPPED, epochs=3, patience=2, turn_degrees=0.0,
                                                      pocket_turns="none", seed=4, stop_epoch=None)
    assert finetune_config(given) == dataclasses.replace(FINETUNE, epochs=3, patience=2, turn_degrees=0.0,
                                                         flips=False, seed=4)
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "o", "--base-windows", "-1"])


def test_the_default_data_are_both_datasets_and_a_missing_one_is_named(
    hapt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harstream.errors import HarstreamError
    from training.cli.train import data_folders

    monkeypatch.setenv("HARSTREAM_DATA", str(hapt_dir))
    monkeypatch.setenv("HARSTREAM_MOTIONSENSE", str(tmp_path / "nowhere"))
    with pytest.raises(HarstreamError, match=r"the default recipe trains on HAPT and MotionSense, and "
                       r"MotionSense was not found at .*nowhere \(set \$HARSTREAM_MOTIONSENSE"):
        data_folders(None)
    monkeypatch.setenv("HARSTREAM_MOTIONSENSE", str(tmp_path))
    assert data_folders(None) == [hapt_dir, tmp_path]
    assert data_folders([Path("a")]) == [Path("a")]


def test_the_train_and_evaluate_verbs_import_no_numpy() -> None:
    code = ("import sys, training.cli.train, training.cli.evaluate; "
            "print(sorted(m for m in ('numpy', 'keras', 'tensorflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_cross_validation_runs_the_shipped_recipe_unless_told_otherwise() -> None:
    import inspect

    from training.crossval import cross_validate
    from training.recipe import SHIPPED

    assert inspect.signature(cross_validate).parameters["config"].default is SHIPPED
    spec = importlib.util.spec_from_file_location("cross_validate", ROOT / "scripts" / "cross_validate.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    parser = script.build_parser()
    assert script.recipe(parser.parse_args([])) == SHIPPED
    assert script.recipe(parser.parse_args(["--bare", "--epochs", "8"])) == TrainConfig(epochs=8)
    assert script.recipe(parser.parse_args(["--warp-time", "0"])) == dataclasses.replace(SHIPPED, warp_time=0.0)


class _Scripted:
    """A stand-in for a model: predicts the next scripted labels, counts its weights' versions."""

    def __init__(self, labels: list[list[int]]) -> None:
        self.labels = labels
        self.epoch = 0
        self.stop_training = False

    def predict(self, x: np.ndarray, batch_size: int, verbose: int) -> np.ndarray:
        self.epoch += 1
        return np.eye(6, dtype=np.float32)[self.labels[self.epoch - 1]]

    def get_weights(self) -> list[int]:
        return [self.epoch]


def test_selection_keeps_the_best_epoch_and_stops_after_patience() -> None:
    from rich.console import Console

    from training.fitting import Selection

    truth = np.array([0, 1, 2, 3])
    right = [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 2, 2], [0, 1, 0, 0]]
    model = _Scripted([right[1], right[0], right[3], right[4], right[2]])  # macro-F1 rises, then falls
    selection = Selection(model, (np.zeros((4, 1), np.float32), truth), epochs=9, patience=2,
                          console=Console(file=io.StringIO()), labels=["A", "B", "C", "D", "E", "F"])
    selection.set_model(model)
    for epoch in range(4):
        logs = {"loss": 1.0}
        selection.on_epoch_begin(epoch)
        selection.on_epoch_end(epoch, logs)
        assert set(logs) == {"loss", "val_loss", "val_accuracy", "val_macro_f1"}
        assert model.stop_training == (epoch == 3), epoch  # two epochs without a better score
    assert selection.best_epoch == 2 and selection.best_weights == [2] and selection.best == 1.0
    assert len(selection.scores) == 4 and max(selection.scores) == selection.scores[1]
    model.stop_training = False
    quiet = Selection(model, None, epochs=2, patience=0, console=Console(file=io.StringIO()))  # a refit
    quiet.set_model(model)
    quiet.on_epoch_end(0, {"loss": 1.0})
    assert quiet.best_weights is None and quiet.scores == [] and not model.stop_training


def test_cross_validation_folds_hold_out_every_non_test_person_once_per_dataset() -> None:
    from harstream.data.splits import MOTIONSENSE_TEST_SUBJECTS, TEST_SUBJECTS
    from training.crossval import NON_TEST_SUBJECTS, dataset_folds, subject_folds

    folds = dataset_folds(5)
    assert len(NON_TEST_SUBJECTS["hapt"]) == 21 and len(NON_TEST_SUBJECTS["motionsense"]) == 16
    for layout, test in (("hapt", TEST_SUBJECTS), ("motionsense", MOTIONSENSE_TEST_SUBJECTS)):
        held = [s for fold in folds for s in fold[layout]]
        assert sorted(held) == sorted(NON_TEST_SUBJECTS[layout])  # each person held out exactly once
        assert not set(held) & set(test)
        assert {len(fold[layout]) for fold in folds} <= {len(held) // 5, len(held) // 5 + 1}  # stratified
    assert dataset_folds(5) == folds and dataset_folds(5, seed=1) != folds  # seeded
    with pytest.raises(ValueError, match=r"folds: expected 2\.\.21, got 1"):
        subject_folds(NON_TEST_SUBJECTS["hapt"], 1)


def test_cross_validation_summary_pools_people_and_picks_the_best_mean_epoch() -> None:
    from training.crossval import summarise

    def epoch(per_subject: dict[int, list[int]]) -> dict[str, object]:
        confusion = {}
        for layout, keys in (("hapt", [k for k in per_subject if k < 100]),
                             ("motionsense", [k for k in per_subject if k > 100])):
            right, total = sum(per_subject[k][0] for k in keys), sum(per_subject[k][1] for k in keys)
            matrix = np.zeros((6, 6), dtype=int)
            matrix[0, 0], matrix[0, 1] = right, total - right
            confusion[layout] = matrix.tolist()
        return {"per_subject": per_subject, "confusion": confusion}

    folds = [
        {"epochs": [epoch({1: [8, 10], 101: [5, 10]}), epoch({1: [9, 10], 101: [9, 10]})]},
        {"epochs": [epoch({3: [30, 30], 107: [10, 10]}), epoch({3: [27, 30], 107: [8, 10]})]},
    ]
    result = summarise(folds)
    first, second = result["per_epoch"]
    assert first["hapt"]["accuracy"] == round(38 / 40, 4)  # windows pooled over the folds
    assert first["hapt"]["subject_mean"] == 0.9 and first["hapt"]["worst_subject"] == 1
    assert first["motionsense"]["worst_subject"] == 1 and first["motionsense"]["worst_accuracy"] == 0.5
    assert result["score_per_epoch"] == [round((38 / 40 + 15 / 20) / 2, 4), round((36 / 40 + 17 / 20) / 2, 4)]
    assert result["epoch"] == 2 and result["at_epoch"] is second


def test_tiny_cross_validation_scores_held_out_people_of_both_datasets(
    hapt_dir: Path, motionsense_dir: Path, tmp_path: Path
) -> None:
    from training.crossval import cross_validate

    # the cheap student, distilled: its fold first fits the teacher recipe on the fold's (256) windows
    student = TrainConfig(arch="harnet-fusion-lite", epochs=1, max_windows=256, train_hop=64, distil=0.5)
    result = cross_validate([hapt_dir, motionsense_dir], student, folds=5, only=[0], out_dir=tmp_path)
    (fold,) = result["fold_results"]
    assert fold["teacher"]["recipe"]["arch"] == "harnet-fusion" and 0.0 <= fold["teacher"]["fit_accuracy"] <= 1.0
    assert fold["held_out"] == {"hapt": [17, 28, 26, 7, 5], "motionsense": [4, 17, 5, 16]}
    assert fold["determinism"]["deterministic"] and fold["determinism"]["threads"] == 1
    table = result["at_epoch"]
    assert sorted(table["hapt"]["per_subject"]) == [5, 7, 17, 26, 28]
    assert sorted(table["motionsense"]["per_subject"]) == [4, 5, 16, 17]
    assert sum(map(sum, table["hapt"]["confusion"])) > 1000  # every labelled grid window of five people
    assert json.loads((tmp_path / "cv.json").read_text())["score"] == result["score"]
    assert (tmp_path / "fold-0.json").is_file()


def test_tiny_refit_uses_training_and_validation_subjects(hapt_dir: Path, tmp_path: Path) -> None:
    from harstream.data.splits import TEST_SUBJECTS, TRAIN_SUBJECTS, VALIDATION_SUBJECTS

    metrics = train(hapt_dir, tmp_path, TrainConfig(epochs=2, max_windows=256, train_hop=64, refit=True))
    assert metrics["epochs_run"] == metrics["best_epoch"] == 2  # no early stopping: the last epoch
    assert "validation" not in metrics
    meta = Classifier.load(tmp_path / "harnet-fusion.keras").artifact.meta
    assert meta.subjects["train"] == sorted(TRAIN_SUBJECTS + VALIDATION_SUBJECTS)
    assert meta.subjects["validation"] == [] and meta.subjects["test"] == list(TEST_SUBJECTS)
    assert (tmp_path / "curves.png").is_file()
    assert not (tmp_path / "confusion_validation.png").exists()


def test_turning_windows_rotates_all_three_sensors_alike() -> None:
    from training.augment import turn_windows

    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 128, 9)).astype(np.float32)
    assert turn_windows(x, 0.0, seed=0) is x
    turned = turn_windows(x, 15.0, seed=0)
    np.testing.assert_array_equal(turned, turn_windows(x, 15.0, seed=0))  # seeded
    assert not np.allclose(turned, x)
    for begin in (0, 3, 6):  # lengths kept per sensor
        np.testing.assert_allclose(np.linalg.norm(turned[..., begin:begin + 3], axis=-1),
                                   np.linalg.norm(x[..., begin:begin + 3], axis=-1), rtol=1e-5)
    # one rotation per window for all sensors: angles between sensors are kept
    dot = (x[..., 0:3] * x[..., 3:6]).sum(-1)
    np.testing.assert_allclose((turned[..., 0:3] * turned[..., 3:6]).sum(-1), dot, atol=1e-4)


def test_pocket_flips_turn_pocket_windows_only_by_half_turns() -> None:
    from training.augment import HALF_TURNS, pocket_flips

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 16, 9)).astype(np.float32)
    which = np.arange(400) % 2 == 0  # even windows are "pocket" windows
    flipped = pocket_flips(x, which, seed=0)
    np.testing.assert_array_equal(flipped[~which], x[~which])  # waist windows untouched
    assert all(np.isclose(np.linalg.det(r), 1.0) for r in HALF_TURNS)  # rotations, not mirrors
    signs = np.sign(flipped[which][:, 0, :] * x[which][:, 0, :])  # per window and channel
    for begin in (0, 3, 6):  # the same half-turn for body_acc, gyro and total_acc
        np.testing.assert_array_equal(signs[:, begin : begin + 3], signs[:, 0:3])
    seen = {tuple(row) for row in signs[:, 0:3].astype(int)}
    assert seen == {tuple(int(v) for v in np.diag(r)) for r in HALF_TURNS}  # all four ways occur
    np.testing.assert_array_equal(np.abs(flipped), np.abs(x))


def test_pocket_roll_turns_about_the_long_axis_and_upends_walking_only() -> None:
    from training.augment import pocket_turns

    rng = np.random.default_rng(5)
    n = 600
    x = rng.normal(size=(n, 16, 9)).astype(np.float32)
    which = np.arange(n) % 3 != 0  # two thirds are pocket windows
    moving = np.arange(n) % 2 == 0
    turned = pocket_turns(x, which, moving, "roll-upend", seed=0)
    np.testing.assert_array_equal(turned[~which], x[~which])  # waist windows untouched
    for begin in (0, 3, 6):  # lengths kept: rotations
        np.testing.assert_allclose(np.linalg.norm(turned[..., begin:begin + 3], axis=-1),
                                   np.linalg.norm(x[..., begin:begin + 3], axis=-1), rtol=1e-5)
    # one rotation per window for all sensors: angles between sensors are kept
    dot = (x[..., 0:3] * x[..., 6:9]).sum(-1)
    np.testing.assert_allclose((turned[..., 0:3] * turned[..., 6:9]).sum(-1), dot, atol=1e-4)
    y_kept = np.asarray(np.isclose(turned[..., 7], x[..., 7], atol=1e-5).all(axis=1))
    y_negated = np.asarray(np.isclose(turned[..., 7], -x[..., 7], atol=1e-5).all(axis=1))
    assert y_kept[which & ~moving].all()  # still postures: never upside down
    upended = which & moving & y_negated
    assert 0.3 < upended.sum() / (which & moving).sum() < 0.7  # half the walking pocket windows
    angle = np.arctan2(turned[which & ~moving, 0, 8], turned[which & ~moving, 0, 6]) - np.arctan2(
        x[which & ~moving, 0, 8], x[which & ~moving, 0, 6])
    quadrants = np.histogram(np.mod(angle, 2 * np.pi), bins=4, range=(0, 2 * np.pi))[0]
    assert quadrants.min() > 0.15 * quadrants.sum()  # the roll covers the whole turn about y
    for mode in ("roll", "roll-still", "roll-still-upend", "other-leg", "other-leg-upend"):
        np.testing.assert_array_equal(pocket_turns(x, which, moving, mode, seed=0)[~which], x[~which])
    mixed = pocket_turns(x, which, moving, "roll-still-upend", seed=0)
    walking = which & moving
    signs = np.sign(mixed[walking][:, 0, 6:9] * x[walking][:, 0, 6:9]).astype(int)  # half-turns only
    assert {tuple(row) for row in signs} == {(1, 1, 1), (-1, 1, -1), (-1, -1, 1), (1, -1, -1)}
    assert np.isclose(mixed[which & ~moving][..., 7], x[which & ~moving][..., 7], atol=1e-5).all()
    still_only = pocket_turns(x, which, moving, "roll-still", seed=0)
    signs = np.sign(still_only[walking][:, 0, 6:9] * x[walking][:, 0, 6:9]).astype(int)  # screen flips only
    assert {tuple(row) for row in signs} == {(1, 1, 1), (-1, 1, -1)}
    legs = x.copy()
    legs[..., 6:9] += np.array([-0.3, -0.36, 0.88], np.float32)  # a sitting pocket phone's gravity
    for mode in ("other-leg", "other-leg-upend"):
        other = pocket_turns(legs, which, moving, mode, seed=0)  # type: ignore[arg-type]
        g, g0 = ((w[..., 6:9] - w[..., 0:3]).mean(axis=1) for w in (other, legs))
        still = which & ~moving
        np.testing.assert_allclose(np.abs(g[still]), np.abs(g0[still]), atol=1e-4)  # mirrored or flipped
        np.testing.assert_allclose(g[still, 1], g0[still, 1], atol=1e-5)  # never upside down
        mirrored = (np.isclose(g[still, 0], -g0[still, 0], atol=1e-4)
                    & np.isclose(g[still, 2], g0[still, 2], atol=1e-4))
        assert 0.15 < mirrored.mean() < 0.4  # the other leg alone: half mirrored x half not flipped
        upended = np.isclose(g[walking, 1], -g0[walking, 1], atol=1e-4).mean()
        assert (0.3 < upended < 0.7) if mode == "other-leg-upend" else upended == 0.0
    rolled = pocket_turns(x, which, moving, "roll", seed=0)
    assert np.isclose(rolled[..., 7], x[..., 7], atol=1e-5).all()  # "roll" never upends
    assert pocket_turns(x, which, moving, "none", seed=0) is x
    with pytest.raises(ValueError, match="pocket turns: expected one of"):
        pocket_turns(x, which, moving, "sideways", seed=0)  # type: ignore[arg-type]


def test_cli_pocket_turn_choices_are_the_augmenters() -> None:
    from training import augment
    from training.recipe import POCKET_TURNS, SHIPPED

    turns = next(a for a in train_parser()._actions if a.dest == "pocket_turns")
    assert turns.choices == POCKET_TURNS and turns.default == SHIPPED.pocket_turns in POCKET_TURNS
    x = np.zeros((2, 4, 9), np.float32)
    for mode in POCKET_TURNS:  # every choice is one the augmenter knows
        augment.pocket_turns(x, np.ones(2, bool), np.ones(2, bool), mode, seed=0)


def _train_in_a_fresh_process(hapt_dir: Path, out: Path, cpus: set[int] | None) -> subprocess.Popen[str]:
    """``harstream train`` (tiny) started in its own process, on ``cpus`` only when given."""
    import os

    command = [sys.executable, "-m", "harstream", "train", "--data", str(hapt_dir), "--out", str(out),
               "--epochs", "1", "--max-windows", "512", "--train-hop", "64", "--no-refit", "--json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


def _metrics(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return dict(json.loads(out))


def test_training_gives_the_same_weights_whatever_cores_the_machine_has(hapt_dir: Path, tmp_path: Path) -> None:
    import os

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to compare one with two")
    # both at once: each sees the other's load, which must not matter either
    started = [_train_in_a_fresh_process(hapt_dir, tmp_path / "one-cpu", {min(os.sched_getaffinity(0))}),
               _train_in_a_fresh_process(hapt_dir, tmp_path / "every-cpu", None)]
    one, every = (_metrics(process) for process in started)
    assert one["determinism"]["deterministic"] and one["determinism"]["onednn_max_cpu_isa"] == "AVX2"
    assert one["weight_values_sha256"] == every["weight_values_sha256"]
    assert one["validation"]["confusion"] == every["validation"]["confusion"]


def test_a_run_on_another_instruction_set_says_it_is_not_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.determinism import ONEDNN_ISA, configure

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    settings = configure()
    assert not settings["deterministic"]
    assert settings["why_not"] == f"ONEDNN_MAX_CPU_ISA is 'AVX512_CORE', not {ONEDNN_ISA!r}"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)
    assert configure()["deterministic"]
