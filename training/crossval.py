"""Cross-validation over people: every non-test subject of both datasets, folds of whole subjects.

A recipe is judged by how it does on people it never saw, not on one
validation split (four MotionSense validation subjects judged the shipped
recipe 4.6 points too kindly). HAPT's 21 non-test subjects and MotionSense's
16 project subjects are each shuffled (``fold_seed``) and cut into ``folds``
groups; fold *i* holds out HAPT's group *i* and MotionSense's group *i* (the
folds are stratified by dataset). Each fold fits the recipe on everyone else
for the recipe's whole cosine schedule and scores the held-out people's
windows on the engine's grid after every epoch. HAPT's test subjects are
never read; MotionSense's outside test subjects are not in the project.

The per-epoch counts of every held-out person are kept, so the table of
docs/model.md (each dataset's CV accuracy, its worst subject, the spread)
and the pick rule's epoch come from one result (:func:`summarise`).

Folds run in worker processes (``jobs``), each on :data:`FOLD_THREADS`
threads, deterministically: the result does not depend on ``jobs``.

    python scripts/cross_validate.py --folds 3 --jobs 3 --out runs/cv-shipped

>>> dataset_folds(5)[0]
{'hapt': [17, 28, 26, 7, 5], 'motionsense': [4, 17, 5, 16]}
>>> [len(f["hapt"]) + len(f["motionsense"]) for f in dataset_folds(5)]
[9, 7, 7, 7, 7]
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from harstream.data.labelled_windows import WindowSet, build_windows, concat
from harstream.data.layouts import SUBJECT_OFFSET, dataset_of_key, detect, read_any
from harstream.data.splits import DATASET_SPLITS
from training.recipe import SHIPPED, TEACHER, TrainConfig, resolve

NON_TEST_SUBJECTS: dict[str, tuple[int, ...]] = {
    layout: tuple(sorted(splits["train"] + splits["validation"])) for layout, splits in DATASET_SPLITS.items()
}
"""The subjects cross-validation may use, by dataset (their own ids): HAPT's 21, MotionSense's 16."""
FOLD_THREADS = 1
"""TensorFlow threads of each fold's worker (fixed, so the result does not depend on ``jobs``)."""


def subject_folds(subjects: Sequence[int], folds: int, seed: int = 0) -> list[list[int]]:
    """``subjects`` shuffled with ``seed`` and cut into ``folds`` groups of (nearly) equal size.

    >>> [sorted(group) for group in subject_folds((1, 2, 3, 4, 5), 2)]
    [[3, 4, 5], [1, 2]]
    """
    if not 2 <= folds <= len(subjects):
        raise ValueError(f"folds: expected 2..{len(subjects)}, got {folds}")
    order = np.random.default_rng(seed).permutation(np.asarray(subjects))
    return [[int(s) for s in part] for part in np.array_split(order, folds)]


def dataset_folds(
    folds: int, seed: int = 0, layouts: Sequence[str] = ("hapt", "motionsense")
) -> list[dict[str, list[int]]]:
    """The held-out subjects of each fold, by dataset: each dataset's subjects cut into ``folds`` groups."""
    groups = {layout: subject_folds(NON_TEST_SUBJECTS[layout], folds, seed) for layout in layouts}
    return [{layout: groups[layout][i] for layout in layouts} for i in range(folds)]


def _windows(
    sources: Sequence[tuple[Path, str]], hop: int
) -> tuple[WindowSet, WindowSet]:
    """The training windows (``hop``) and the engine-grid windows of every non-test subject."""
    training, grid = [], []
    for folder, layout in sources:
        dataset = read_any(folder, set(NON_TEST_SUBJECTS[layout]))
        training.append(build_windows(dataset, NON_TEST_SUBJECTS[layout], hop=hop))
        grid.append(build_windows(dataset, NON_TEST_SUBJECTS[layout], align="stream"))
    return concat(training), concat(grid)


def _save(windows: WindowSet, path: Path) -> None:
    np.savez(path, x=windows.x, y=windows.y, subject=windows.subject, experiment=windows.experiment,
             seq_end=windows.seq_end)


def _load(path: Path) -> WindowSet:
    with np.load(path) as data:
        return WindowSet(data["x"], data["y"], data["subject"], data["experiment"], data["seq_end"])


def _keys(subjects: dict[str, list[int]]) -> list[int]:
    return [SUBJECT_OFFSET[layout] + s for layout, ids in subjects.items() for s in ids]


def run_fold(task: dict[str, Any]) -> dict[str, Any]:
    """Fit one fold and score its held-out people after every epoch (runs in a worker process).

    Returns, per epoch, each held-out subject key's ``[correct, windows]`` and
    each dataset's confusion matrix (rows: truth).
    """
    from training.determinism import configure
    from training.train import build_and_compile, fit_windows

    determinism = configure(FOLD_THREADS)
    import keras

    from harstream.model.classifier import standardise
    from training.fitting import PREDICT_BATCH, targets

    config = TrainConfig(**task["config"])
    assert config.epochs is not None and config.batch_size is not None
    seed = config.seed + task["index"]
    keras.utils.set_random_seed(seed)
    held_keys = _keys(task["held_out"])
    training, grid = _load(Path(task["training"])), _load(Path(task["grid"]))
    fit_keys = [k for k in np.unique(training.subject).tolist() if k not in held_keys]
    fit_set, mean, std = fit_windows(training.select(fit_keys), config, seed)
    score_set = grid.select(held_keys)
    x_fit, x_score = standardise(fit_set.x, mean, std), standardise(score_set.x, mean, std)
    console = Console(stderr=True)
    soft, teacher = _fold_teacher(config, fit_set, x_fit, mean, std, seed, task["index"], console)
    if teacher is not None:  # the student starts from the state it would have had without one
        keras.utils.set_random_seed(seed)
    model, served = build_and_compile(config, mean, std, x_fit)
    epochs: list[dict[str, Any]] = []
    for epoch in range(config.epochs):
        started = time.perf_counter()
        model.fit(x_fit, targets(model, fit_set.y, soft), epochs=epoch + 1, initial_epoch=epoch,
                  batch_size=config.batch_size, verbose=0, shuffle=True)
        predicted = served.predict(x_score, batch_size=PREDICT_BATCH, verbose=0).argmax(axis=1)
        epochs.append(_epoch_counts(score_set, predicted))
        line = "  ".join(f"{layout} {acc:.4f}" for layout, acc in _accuracies(epochs[-1]).items())
        console.print(f"fold {task['index']} epoch {epoch + 1}/{config.epochs}: {line}  "
                      f"[dim]{time.perf_counter() - started:.0f} s[/]")
    return {"index": task["index"], "held_out": task["held_out"], "fit_windows": len(fit_set),
            "determinism": determinism, "epochs": epochs, **({"teacher": teacher} if teacher else {})}


def _fold_teacher(config: TrainConfig, fit_set: WindowSet, x_fit: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  seed: int, index: int, console: Console) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """With ``config.distil``: :data:`TEACHER` fitted on the fold's people (the student's windows), the
    student's targets from its probabilities (:func:`~training.fitting.soft_targets`) and what the teacher
    was; else None, None."""
    if config.distil <= 0:
        return None, None
    import keras

    from training.fitting import PREDICT_BATCH, soft_targets, targets
    from training.train import build_and_compile

    teacher_config = resolve(TEACHER)
    assert teacher_config.batch_size is not None
    keras.utils.set_random_seed(seed)
    teacher, served = build_and_compile(teacher_config, mean, std, x_fit)
    started = time.perf_counter()
    teacher.fit(x_fit, targets(teacher, fit_set.y), epochs=teacher_config.stop_epoch or teacher_config.epochs,
                batch_size=teacher_config.batch_size, verbose=0, shuffle=True)
    proba = served.predict(x_fit, batch_size=PREDICT_BATCH, verbose=0)
    seconds = time.perf_counter() - started
    console.print(f"fold {index} teacher ({teacher_config.arch}, {teacher_config.stop_epoch} epochs): "
                  f"{seconds:.0f} s")
    agreement = float((proba.argmax(axis=1) == fit_set.y).mean())
    return soft_targets(fit_set.y, proba, config.distil), {
        "recipe": asdict(teacher_config), "seconds": round(seconds, 1), "fit_accuracy": round(agreement, 4)}


def _epoch_counts(windows: WindowSet, predicted: np.ndarray) -> dict[str, Any]:
    """Per held-out subject key ``[correct, windows]``; per dataset the confusion matrix."""
    right = predicted == windows.y
    per_subject = {int(k): [int(right[windows.subject == k].sum()), int((windows.subject == k).sum())]
                   for k in np.unique(windows.subject)}
    confusion: dict[str, list[list[int]]] = {}
    layouts = np.array([dataset_of_key(int(k))[0] for k in windows.subject])
    for layout in sorted(set(layouts.tolist())):
        mine = layouts == layout
        matrix = np.zeros((6, 6), dtype=int)
        np.add.at(matrix, (windows.y[mine], predicted[mine]), 1)
        confusion[layout] = matrix.tolist()
    return {"per_subject": per_subject, "confusion": confusion}


def _accuracies(epoch: dict[str, Any]) -> dict[str, float]:
    """Each dataset's pooled accuracy in one fold's epoch."""
    return {layout: float(np.trace(m) / np.sum(m)) for layout, m in epoch["confusion"].items()}


def summarise(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The CV table of a recipe from its folds' counts, and the pick rule's epoch and score.

    Per dataset and epoch: ``accuracy`` (every held-out window of the dataset
    once, pooled over the folds), the mean, worst and standard deviation of
    the per-subject accuracies. The score of an epoch is the mean of the
    datasets' accuracies; ``epoch`` is the best one (the earliest of equals),
    and ``at_epoch`` the table there (docs/model.md, the pick rule).
    """
    n_epochs = min(len(f["epochs"]) for f in folds)
    table: list[dict[str, Any]] = []
    for e in range(n_epochs):
        counts: dict[int, list[int]] = {}
        confusion: dict[str, np.ndarray] = {}
        for fold in folds:
            counts.update({int(k): v for k, v in fold["epochs"][e]["per_subject"].items()})
            for layout, m in fold["epochs"][e]["confusion"].items():
                confusion[layout] = confusion.get(layout, np.zeros((6, 6), dtype=int)) + np.asarray(m)
        row: dict[str, Any] = {}
        for layout, matrix in sorted(confusion.items()):
            subjects = {dataset_of_key(k)[1]: c / n for k, (c, n) in counts.items()
                        if dataset_of_key(k)[0] == layout}
            accs = np.array(list(subjects.values()))
            worst = min(subjects, key=subjects.__getitem__)
            row[layout] = {
                "accuracy": round(float(np.trace(matrix) / matrix.sum()), 4),
                "subject_mean": round(float(accs.mean()), 4), "subject_std": round(float(accs.std()), 4),
                "worst_subject": worst, "worst_accuracy": round(subjects[worst], 4),
                "per_subject": {s: round(a, 4) for s, a in sorted(subjects.items())},
                "confusion": matrix.tolist(),
            }
        row["score"] = round(float(np.mean([row[layout]["accuracy"] for layout in confusion])), 4)
        table.append(row)
    best = max(range(n_epochs), key=lambda e: (table[e]["score"], -e))
    return {"epoch": best + 1, "score": table[best]["score"], "at_epoch": table[best],
            "score_per_epoch": [row["score"] for row in table], "per_epoch": table}


def cross_validate(
    data_dirs: Sequence[Path],
    config: TrainConfig = SHIPPED,
    folds: int = 3,
    jobs: int = 1,
    only: Sequence[int] | None = None,
    fold_seed: int = 0,
    out_dir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Cross-validate the recipe ``config`` (default: the shipped one) over the people of ``data_dirs``.

    ``only`` runs a subset of the folds (by index). ``out_dir`` receives each
    fold's result as it ends (``fold-<i>.json``) and the whole (``cv.json``).
    The folds depend on ``fold_seed`` only, so runs with another
    ``config.seed`` compare on the same people: the seed-to-seed spread is
    the noise any comparison of recipes has to beat.
    """
    console = console or Console(stderr=True)
    config = resolve(config)
    sources = [(Path(d), detect(d)) for d in data_dirs]
    plan = dataset_folds(folds, fold_seed, [layout for _, layout in sources])
    chosen = [i for i in range(folds) if only is None or i in only]
    with tempfile.TemporaryDirectory(prefix="harstream-cv-") as scratch:
        with console.status("building windows through the streaming signal chain..."):
            training, grid = _windows(sources, config.train_hop)
            _save(training, Path(scratch) / "training.npz")
            _save(grid, Path(scratch) / "grid.npz")
        console.print(f"{len(chosen)} folds of {folds}, {jobs} at a time: training windows {len(training)}, "
                      f"engine-grid windows {len(grid)}")
        tasks = [{"index": i, "held_out": plan[i], "config": asdict(config),
                  "training": str(Path(scratch) / "training.npz"), "grid": str(Path(scratch) / "grid.npz")}
                 for i in chosen]
        results = _run(tasks, jobs, out_dir)
    result = {"config": asdict(config), "folds": folds, "fold_seed": fold_seed, "fold_threads": FOLD_THREADS,
              "data": [str(d) for d in data_dirs], "fold_results": results, **summarise(results)}
    if out_dir is not None:
        (out_dir / "cv.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _run(tasks: list[dict[str, Any]], jobs: int, out_dir: Path | None) -> list[dict[str, Any]]:
    """Run the folds' tasks, ``jobs`` at a time in fresh processes; write each as it ends."""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context, max_tasks_per_child=1) as pool:
        for fold in pool.map(run_fold, tasks):
            results.append(fold)
            if out_dir is not None:
                (out_dir / f"fold-{fold['index']}.json").write_text(json.dumps(fold) + "\n")
    return results
