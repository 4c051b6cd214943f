"""``harstream train``: fit a model honestly and write the artifact and its report.

Windows come from the dataset builder (:mod:`harstream.data.labelled_windows`); the
standardisation statistics come from the training windows only; early
stopping and the choice of epoch use the validation subjects only (macro-F1
on their windows). The test subjects are not read here at all.

Several dataset folders may be given (HAPT and MotionSense, one of each at
most): the training windows are the union of each dataset's training split,
early stopping watches the union of their validation splits (each dataset's
splits: :data:`harstream.data.splits.DATASET_SPLITS`). With one HAPT folder the
windows, and so the training-data checksum, are those of HAPT alone.

Architectures with auxiliary heads are trained on all heads and saved with
the served one only. ``--refit`` instead fits training + validation subjects
for a fixed number of epochs taken from :mod:`training.crossval`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from training.determinism import ONEDNN_ISA

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)  # before TensorFlow loads: training.determinism

import keras
import numpy as np
import numpy.typing as npt
from rich.console import Console

from harstream import ACTIVITIES
from harstream.data.labelled_windows import WindowSet, build_windows, concat
from harstream.data.layouts import SUBJECT_OFFSET, TITLES, dataset_of_key, detect, read_any
from harstream.data.scoring import score
from harstream.data.splits import DATASET_SPLITS
from harstream.errors import DatasetError
from harstream.model import artifact
from harstream.model.artifact import ModelMeta
from harstream.model.classifier import standardise
from training import report
from training.architectures import ARCHITECTURES
from training.augment import pocket_turns, scale_motion, turn_windows, warp_time
from training.determinism import configure, weight_values_sha256
from training.fitting import PREDICT_BATCH, Selection, compile_cosine, fit, served_view, soft_targets, write_run
from training.recipe import TrainConfig, resolve


def limit_windows(windows: WindowSet, n: int | None, seed: int) -> WindowSet:
    """At most ``n`` windows, drawn at random with ``seed`` (all of them when ``n`` is None)."""
    if n is None or len(windows) <= n:
        return windows
    keep = np.sort(np.random.default_rng(seed).choice(len(windows), n, replace=False))
    return WindowSet(
        windows.x[keep], windows.y[keep], windows.subject[keep], windows.experiment[keep],
        windows.seq_end[keep],
    )


WALKING_CLASSES: tuple[str, ...] = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS")
"""The classes whose pocket windows may be turned upside down (``pocket_turns="roll-upend"``)."""


def fit_windows(
    windows: WindowSet, config: TrainConfig, seed: int
) -> tuple[WindowSet, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The windows a model is fitted on (limited, turned) and their per-channel mean and std.

    One place for what ``train`` and cross-validation both do to training windows.
    """
    windows = limit_windows(windows, config.max_windows, config.seed)
    x = scale_motion(turn_windows(windows.x, config.turn_degrees, seed), config.scale_motion, seed + 2)
    x = warp_time(x, config.warp_time, seed + 3)
    pocket = windows.subject >= SUBJECT_OFFSET["motionsense"]
    moving = np.isin(windows.y, [ACTIVITIES.index(name) for name in WALKING_CLASSES])
    x = pocket_turns(x, pocket, moving, config.pocket_turns, seed + 1)
    windows = replace(windows, x=x)
    flat = windows.x.reshape(-1, windows.x.shape[-1]).astype(np.float64)
    return windows, flat.mean(axis=0), flat.std(axis=0)


def build_and_compile(
    config: TrainConfig, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64],
    x_train: npt.NDArray[np.float32],
) -> tuple[keras.Model, keras.Model]:
    """``(trained, served)``: the compiled model (all heads) and its served single-output view.

    ``config`` must be :func:`resolve`-d; ``x_train`` are the standardised
    training windows (the cosine schedule spans ``config.epochs`` passes over them).
    """
    assert config.epochs is not None and config.batch_size is not None and config.learning_rate is not None
    model = ARCHITECTURES[config.arch](mean=mean.tolist(), std=std.tolist(), sample=x_train)
    served = served_view(model)
    compile_cosine(model, config.learning_rate, config.epochs, len(x_train), config.batch_size, config.ema,
                   soft=config.distil > 0)
    return model, served


def data_sources(data_dir: Path | str | Sequence[Path | str]) -> list[tuple[Path, str]]:
    """``(folder, layout)`` of each ``--data`` folder: at most one folder per layout.

    Two folders of one layout would mix up their subjects (ids are per dataset).
    """
    folders = [Path(data_dir)] if isinstance(data_dir, (str, Path)) else [Path(d) for d in data_dir]
    if not folders:
        raise DatasetError("--data: expected at least one dataset folder, got none")
    sources: list[tuple[Path, str]] = []
    for folder in folders:
        layout = detect(folder)
        for other, seen in sources:
            if seen == layout:
                raise DatasetError(
                    f"{folder}: expected at most one {TITLES[layout]} folder, {other} is one too"
                )
        sources.append((folder, layout))
    return sources


def _split_windows(
    sources: list[tuple[Path, str]], config: TrainConfig
) -> tuple[WindowSet, WindowSet, dict[str, dict[str, list[int]]], list[dict[str, Any]]]:
    """Training and validation windows of every source, the subjects of each, what came from where."""
    train_parts, val_parts = [], []
    subjects: dict[str, dict[str, list[int]]] = {}
    summary: list[dict[str, Any]] = []
    for folder, layout in sources:
        splits = DATASET_SPLITS[layout]
        fit = splits["train"] + splits["validation"] if config.refit else splits["train"]
        held_out = () if config.refit else splits["validation"]
        dataset = read_any(folder, set(splits["train"] + splits["validation"]))
        train_parts.append(build_windows(dataset, fit, hop=config.train_hop))
        val_parts.append(build_windows(dataset, held_out))
        subjects[layout] = {"train": sorted(fit), "validation": list(held_out), "test": list(splits["test"])}
        summary.append({"dataset": layout, "train_windows": len(train_parts[-1]),
                        "validation_windows": len(val_parts[-1])})
    if len(sources) == 1:
        return train_parts[0], val_parts[0], subjects, summary
    return concat(train_parts), concat(val_parts), subjects, summary


def _meta_subjects(subjects: dict[str, dict[str, list[int]]]) -> dict[str, list[int]]:
    """Split -> subjects for the artifact: HAPT's under ``train``/``validation``/``test``, another
    dataset's under ``<layout>_train`` etc. (each dataset's own ids)."""
    return {
        (split if layout == "hapt" else f"{layout}_{split}"): ids
        for layout, splits in subjects.items()
        for split, ids in splits.items()
    }


def _of_dataset(keys: npt.NDArray[np.int64], layout: str) -> npt.NDArray[np.bool_]:
    """Which subject keys (:func:`harstream.data.layouts.subject_key`) belong to ``layout``."""
    return np.array([dataset_of_key(int(k))[0] == layout for k in keys], dtype=bool)


def _print_windows(
    console: Console, config: TrainConfig, subjects: dict[str, dict[str, list[int]]],
    summary: list[dict[str, Any]], counts: tuple[int, int],
) -> None:
    """What ``train`` fits and validates on: windows and subjects per dataset, then in all.

    ``counts`` are the training and validation windows after :func:`limit_windows`.
    """
    alone = len(summary) == 1
    for part in summary:
        splits = subjects[part["dataset"]]
        train_windows, val_windows = counts if alone else (part["train_windows"], part["validation_windows"])
        console.print(
            ("" if alone else f"{TITLES[part['dataset']]} ")
            + f"windows: train {train_windows} (subjects {splits['train']}), "
            + (f"no validation: a refit, {config.stop_epoch or config.epochs} epochs of a {config.epochs}-epoch "
               "schedule" if config.refit else
               f"validation {val_windows} (subjects {splits['validation']})")
        )
    if not alone:
        console.print(f"windows in all: train {counts[0]}, validation {counts[1]}"
                      + (f" (at most {config.max_windows} each)" if config.max_windows else ""))


def _validation_scores(
    served: keras.Model, x_val: npt.NDArray[np.float32], val_set: WindowSet, layouts: list[str],
) -> dict[str, Any]:
    """``validation`` (all validation windows, by subject key) and, with several datasets,
    ``validation_by_dataset`` (each dataset's validation subjects alone, by their own ids)."""
    predicted = served.predict(x_val, batch_size=PREDICT_BATCH, verbose=0).argmax(axis=1)
    scores: dict[str, Any] = {"validation": score(val_set.y, predicted, val_set.subject)}
    if len(layouts) > 1:
        scores["validation_by_dataset"] = {}
        for layout in layouts:
            mine = _of_dataset(val_set.subject, layout)
            scores["validation_by_dataset"][layout] = score(
                val_set.y[mine], predicted[mine], val_set.subject[mine] - SUBJECT_OFFSET[layout]
            )
    return scores


def teacher_targets(
    teacher: Path | None, windows: WindowSet, weight: float, console: Console
) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
    """Distillation targets of ``windows`` (``weight`` of the ``teacher`` artifact's probabilities plus the
    rest of the one-hot labels: :func:`~training.fitting.soft_targets`; the teacher standardises by its own
    statistics) and which teacher it was (path, weights' digest)."""
    if teacher is None:
        raise DatasetError("distil: expected a teacher artifact (--teacher PATH), got none")
    loaded = artifact.load(teacher)
    model = served_view(loaded.model)
    x = standardise(windows.x, loaded.meta.norm_mean, loaded.meta.norm_std)
    with console.status(f"the teacher {teacher.name} labels {len(x):,} training windows..."):
        proba = np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), np.float32)
    return soft_targets(windows.y, proba, weight), {"path": str(teacher),
                                                    "weight_values_sha256": weight_values_sha256(model)}


def _say_model(console: Console, arch: str, model: keras.Model, served: keras.Model) -> None:
    heads = len(model.outputs)
    console.print(f"model {arch}: {served.count_params():,} parameters"
                  + (f" ({heads - 1} auxiliary heads during training)" if heads > 1 else ""))


def _start_run(config: TrainConfig, out_dir: Path, console: Console) -> dict[str, Any]:
    """Make the run deterministic (said when it cannot be), seed it, create ``out_dir``; the settings."""
    determinism = configure()
    if not determinism["deterministic"]:
        console.print(f"[yellow]this run is not reproducible elsewhere: {determinism['why_not']}[/]")
    keras.utils.set_random_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    return determinism


def _selected_epoch(curves: dict[str, list[float]], served: keras.Model, x_val: npt.NDArray[np.float32],
                    val_set: WindowSet, layouts: list[str]) -> dict[str, Any]:
    """``best_epoch`` (the best validation macro-F1, whose weights the model holds) and its validation scores."""
    return {"best_epoch": int(np.argmax(curves["val_macro_f1"])) + 1,
            **_validation_scores(served, x_val, val_set, layouts)}


def _plot(out_dir: Path, curves: dict[str, list[float]], metrics: dict[str, Any]) -> None:
    """The learning curves and, when there was validation, its confusion matrix and per-subject accuracy."""
    report.plot_curves(curves, out_dir / "curves.png")
    if "validation" in metrics:
        report.plot_confusion(
            metrics["validation"]["confusion"], ACTIVITIES, out_dir / "confusion_validation.png",
            "Validation subjects (selection data)",
        )
        report.plot_per_subject(
            metrics["validation"]["per_subject"], out_dir / "per_subject_validation.png",
            "Validation accuracy",
        )


def train(
    data_dir: Path | Sequence[Path],
    out_dir: Path,
    config: TrainConfig,
    console: Console | None = None,
    keep_epochs: bool = False,
    teacher: Path | None = None,
) -> dict[str, Any]:
    """Train by ``config``, select on validation, write ``<arch>.keras`` + JSON + report; returns the
    metrics.

    ``data_dir`` is one dataset folder or several (one per layout; see the module docstring);
    the shipped model is ``train([hapt, motionsense], out_dir, SHIPPED)`` (:mod:`training.recipe`).
    ``keep_epochs`` also writes each epoch's model, ``epochs/epoch-<n>.keras``: the model a
    ``stop_epoch`` of ``n`` gives, for choosing the epoch afterwards (cross-validation's).
    With ``config.distil``, ``teacher`` is the artifact whose probabilities the served head learns
    (:func:`teacher_targets`): the teacher recipe fitted on the same people.
    """
    console = console or Console(stderr=True)
    config = resolve(config)
    assert config.epochs is not None and config.batch_size is not None
    sources = data_sources(data_dir)
    determinism = _start_run(config, out_dir, console)

    with console.status("building windows through the streaming signal chain..."):
        train_set, val_set, subjects, summary = _split_windows(sources, config)
    train_set, mean, std = fit_windows(train_set, config, config.seed)
    val_set = limit_windows(val_set, config.max_windows, config.seed)
    _print_windows(console, config, subjects, summary, (len(train_set), len(val_set)))
    x_train = standardise(train_set.x, mean, std)
    x_val = standardise(val_set.x, mean, std)

    soft, taught_by = (teacher_targets(teacher, train_set, config.distil, console) if config.distil > 0
                       else (None, None))
    model, served = build_and_compile(config, mean, std, x_train)
    _say_model(console, config.arch, model, served)
    selection = Selection(served, None if config.refit else (x_val, val_set.y), config.epochs,
                          config.patience, console)
    def meta(metrics: dict[str, Any]) -> ModelMeta:
        return ModelMeta(
            architecture=config.arch, norm_mean=[float(v) for v in mean], norm_std=[float(v) for v in std],
            subjects=_meta_subjects(subjects), training_data_sha256=train_set.checksum(), metrics=metrics,
        )

    def keep(epoch: int) -> None:
        artifact.save(served, meta({"epoch": epoch, "weight_values_sha256": weight_values_sha256(served),
                                    "config": asdict(config)}),
                      out_dir / "epochs" / f"epoch-{epoch:02d}.keras")

    started = time.perf_counter()
    curves = fit(model, x_train, train_set.y, config.stop_epoch or config.epochs, config.batch_size, selection,
                 config.ema, keep if keep_epochs else None, soft)
    train_seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {
        "epochs_run": len(curves["loss"]),
        "train_seconds": round(train_seconds, 1),
        "parameters": int(served.count_params()),
        "config": asdict(config),
        "data": summary,
        "determinism": determinism,
        **({"teacher": taught_by} if taught_by else {}),
    }
    if config.refit:
        metrics["best_epoch"] = len(curves["loss"])
        console.print(f"refit: kept the last epoch ({train_seconds:.0f} s of training)")
    else:
        metrics.update(_selected_epoch(curves, served, x_val, val_set, [layout for _, layout in sources]))
        console.print(
            f"selected epoch {metrics['best_epoch']}: validation accuracy "
            f"{metrics['validation']['accuracy']:.4f}, macro-F1 {metrics['validation']['macro_f1']:.4f} "
            f"({train_seconds:.0f} s of training)"
        )
    metrics["weight_values_sha256"] = weight_values_sha256(served)
    path = write_run(out_dir, served, meta(metrics), curves, metrics)
    _plot(out_dir, curves, metrics)
    console.print(f"wrote {path} and the report in {out_dir}")
    return metrics
