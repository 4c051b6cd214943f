"""A tiny training run end to end, and the artifact's round trip and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harstream.errors import ArtifactError
from harstream.model import artifact
from harstream.model.classifier import Classifier
from training.train import TrainConfig, train


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


def test_cli_offers_every_architecture() -> None:
    from harstream.cli.main import build_parser
    from training.architectures import ARCHITECTURES, BATCH_SIZES, EPOCHS, LEARNING_RATES

    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb")
    arch = next(a for a in verbs.choices["train"]._actions if a.dest == "arch")
    assert sorted(arch.choices) == sorted(ARCHITECTURES)
    assert arch.default == TrainConfig().arch
    assert set(EPOCHS) == set(BATCH_SIZES) == set(LEARNING_RATES) == set(ARCHITECTURES)


def test_cross_validation_folds_partition_the_non_test_subjects() -> None:
    from harstream.data.splits import TEST_SUBJECTS
    from training.crossval import NON_TEST_SUBJECTS, subject_folds

    folds = subject_folds(NON_TEST_SUBJECTS, 7)
    assert sorted(s for fold in folds for s in fold) == sorted(NON_TEST_SUBJECTS)
    assert [len(f) for f in folds] == [3] * 7
    assert not set(NON_TEST_SUBJECTS) & set(TEST_SUBJECTS)
    assert subject_folds(NON_TEST_SUBJECTS, 7) == folds  # seeded
    with pytest.raises(ValueError, match=r"folds: expected 2\.\.21, got 1"):
        subject_folds(NON_TEST_SUBJECTS, 1)


def test_tiny_cross_validation_scores_held_out_subjects(hapt_dir: Path) -> None:
    from training.crossval import cross_validate

    result = cross_validate(
        hapt_dir, TrainConfig(epochs=1, max_windows=256, train_hop=64), folds=7, only=[0]
    )
    (fold,) = result["folds"]
    assert fold["index"] == 0 and fold["subjects"] == [17, 28, 26]
    assert fold["windows"] > 1000  # every labelled grid window of the three held-out subjects
    assert len(fold["accuracy"]) == 1 and 0.0 <= fold["accuracy"][0] <= 1.0
    assert result["mean_accuracy_per_epoch"] == [round(fold["accuracy"][0], 4)]


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
    y_kept = np.isclose(turned[..., 7], x[..., 7], atol=1e-5).all(axis=1)
    y_negated = np.isclose(turned[..., 7], -x[..., 7], atol=1e-5).all(axis=1)
    assert y_kept[which & ~moving].all()  # still postures: never upside down
    upended = which & moving & y_negated
    assert 0.3 < upended.sum() / (which & moving).sum() < 0.7  # half the walking pocket windows
    angle = np.arctan2(turned[which & ~moving, 0, 8], turned[which & ~moving, 0, 6]) - np.arctan2(
        x[which & ~moving, 0, 8], x[which & ~moving, 0, 6])
    quadrants = np.histogram(np.mod(angle, 2 * np.pi), bins=4, range=(0, 2 * np.pi))[0]
    assert quadrants.min() > 0.15 * quadrants.sum()  # the roll covers the whole turn about y
    for mode in ("roll", "roll-still", "roll-still-upend", "other-leg", "other-leg-upend"):
        np.testing.assert_array_equal(pocket_turns(x, which, moving, mode, seed=0)[~which], x[~which])  # type: ignore[arg-type]
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
    from harstream.cli.main import POCKET_TURNS, SHIPPED_POCKET_TURNS
    from training import augment

    assert POCKET_TURNS == augment.POCKET_TURNS
    assert SHIPPED_POCKET_TURNS in POCKET_TURNS
