"""Grouped cross-validation over the non-test subjects: a steadier signal for choosing a recipe.

Five validation subjects are too few to rank recipes that differ by a point
(validation accuracy swings by several points between epochs). Here the 21
non-test subjects are split into folds of whole subjects; for each fold a
model is trained on the others with a recipe (the shipped one,
:data:`training.recipe.SHIPPED`, unless told otherwise) and scored after
every epoch on the held-out subjects' windows on the engine's grid (the
evaluation protocol). The folds hold HAPT's windows alone, so a recipe's
pocket turns act on none of them. The test subjects are never read.

    python scripts/cross_validate.py --arch harnet-fusion --folds 7 --json

>>> [sorted(f) for f in subject_folds((1, 2, 3, 4, 5), 2, seed=0)]
[[3, 4, 5], [1, 2]]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from rich.console import Console

from harstream.data.hapt import read_dataset
from harstream.data.labelled_windows import build_windows
from harstream.data.splits import TRAIN_SUBJECTS, VALIDATION_SUBJECTS
from harstream.model.classifier import standardise
from training.fitting import PREDICT_BATCH, targets
from training.recipe import SHIPPED, TrainConfig, resolve
from training.train import build_and_compile, fit_windows

NON_TEST_SUBJECTS: tuple[int, ...] = tuple(sorted(TRAIN_SUBJECTS + VALIDATION_SUBJECTS))
"""The 21 subjects cross-validation may use."""


def subject_folds(subjects: Sequence[int], folds: int, seed: int = 0) -> list[list[int]]:
    """``subjects`` shuffled with ``seed`` and cut into ``folds`` groups of (nearly) equal size."""
    if not 2 <= folds <= len(subjects):
        raise ValueError(f"folds: expected 2..{len(subjects)}, got {folds}")
    order = np.random.default_rng(seed).permutation(np.asarray(subjects))
    return [[int(s) for s in part] for part in np.array_split(order, folds)]


def cross_validate(
    data_dir: Path,
    config: TrainConfig = SHIPPED,
    folds: int = 7,
    only: Sequence[int] | None = None,
    train_subjects: int | None = None,
    fold_seed: int = 0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Held-out accuracy per fold and epoch of the recipe ``config`` (default: the shipped one).

    ``only`` runs a subset of the folds (by index); ``train_subjects`` fits
    each fold on that many of its training subjects, drawn at random (a
    learning curve: how much do more people help?). The folds depend on
    ``fold_seed`` only, so runs with different ``config.seed`` (weights,
    shuffling) compare on the same folds: the seed-to-seed spread is the
    noise any recipe comparison has to beat.
    """
    console = console or Console(stderr=True)
    config = resolve(config)
    assert config.epochs is not None and config.batch_size is not None
    groups = subject_folds(NON_TEST_SUBJECTS, folds, fold_seed)
    with console.status("building windows through the streaming signal chain..."):
        dataset = read_dataset(data_dir, set(NON_TEST_SUBJECTS))
        training = build_windows(dataset, NON_TEST_SUBJECTS, hop=config.train_hop)
        held_out = build_windows(dataset, NON_TEST_SUBJECTS, align="stream")
    result: dict[str, Any] = {
        "arch": config.arch, "epochs": config.epochs, "seed": config.seed, "fold_seed": fold_seed,
        "folds": [],
    }
    for index, group in enumerate(groups):
        if only is not None and index not in only:
            continue
        keras.utils.set_random_seed(config.seed + index)
        fit_subjects = [s for s in NON_TEST_SUBJECTS if s not in group]
        if train_subjects is not None:
            if not 1 <= train_subjects <= len(fit_subjects):
                raise ValueError(f"train_subjects: expected 1..{len(fit_subjects)}, got {train_subjects}")
            rng = np.random.default_rng(config.seed + index)
            fit_subjects = sorted(int(s) for s in rng.choice(fit_subjects, train_subjects, replace=False))
        fit_set, mean, std = fit_windows(training.select(fit_subjects), config, config.seed + index)
        score_set = held_out.select(group)
        x_fit = standardise(fit_set.x, mean, std)
        x_score = standardise(score_set.x, mean, std)
        model, served = build_and_compile(config, mean, std, x_fit)
        curve = []
        for epoch in range(config.epochs):
            started = time.perf_counter()
            model.fit(x_fit, targets(model, fit_set.y), epochs=epoch + 1, initial_epoch=epoch,
                      batch_size=config.batch_size, verbose=0)
            predicted = served.predict(x_score, batch_size=PREDICT_BATCH, verbose=0).argmax(axis=1)
            curve.append(float((predicted == score_set.y).mean()))
            console.print(
                f"fold {index} (subjects {group}) epoch {epoch + 1}/{config.epochs}: "
                f"held-out accuracy {curve[-1]:.4f}  [dim]{time.perf_counter() - started:.0f} s[/]"
            )
        result["folds"].append({"index": index, "subjects": group, "windows": len(score_set),
                                "fit_subjects": fit_subjects, "accuracy": curve})
    curves = np.array([f["accuracy"] for f in result["folds"]])
    result["mean_accuracy_per_epoch"] = [round(float(v), 4) for v in curves.mean(axis=0)]
    result["mean_accuracy_last_epoch"] = round(float(curves[:, -1].mean()), 4)
    return result
