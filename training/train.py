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

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

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
from training.architectures import ARCHITECTURES, BATCH_SIZES, EPOCHS, LEARNING_RATES
from training.augment import PocketTurns, pocket_turns, scale_motion, turn_windows, warp_time

AUXILIARY_LOSS_WEIGHT = 0.5
"""Loss weight of each auxiliary head of a multi-output architecture (the served head has 1)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe."""

    arch: str = "harnet-fusion"
    """Architecture name (a key of :data:`training.architectures.ARCHITECTURES`)."""
    epochs: int | None = None
    """Epochs of the cosine schedule (early stopping may end sooner); None takes the
    architecture's default (:data:`training.architectures.EPOCHS`)."""
    seed: int = 0
    """Seed for Python, NumPy and the backend."""
    patience: int = 10
    """Epochs without a better validation macro-F1 before stopping."""
    batch_size: int | None = None
    """Batch size; None takes the architecture's default."""
    learning_rate: float | None = None
    """Peak learning rate (cosine decay); None takes the architecture's default."""
    train_hop: int = 16
    """Hop between training windows within a segment (< 64 augments; validation keeps 64)."""
    ema: bool = False
    """Evaluate, select and ship the exponential moving average of the weights (Polyak)."""
    max_windows: int | None = None
    """Keep at most this many training and validation windows (smoke tests)."""
    turn_degrees: float = 0.0
    """Turn each training window by a random rotation, angle ~ Normal(0, this) degrees
    (:mod:`training.augment`); 0 turns nothing."""
    scale_motion: float = 0.0
    """Scale each training window's motion by ``exp(Normal(0, this))`` (gravity kept;
    :func:`training.augment.scale_motion`); 0 scales nothing."""
    warp_time: float = 0.0
    """Replay each training window at a random speed ``exp(Normal(0, this))``
    (:func:`training.augment.warp_time`); 0 warps nothing."""
    pocket_turns: PocketTurns = "none"
    """How pocket-dataset (MotionSense) training windows are turned in the pocket
    (:func:`training.augment.pocket_turns`): ``"none"``, ``"screen"``, ``"roll"`` or ``"roll-upend"``."""
    refit: bool = False
    """Fit on the training AND validation subjects for the whole schedule (no early stopping).
    The epoch count must then come from cross-validation (:mod:`training.crossval`), which
    is where the validation subjects did their selecting."""


class _EpochReport(keras.callbacks.Callback):  # type: ignore[misc]
    """Scores the served output on validation each epoch, adds it to the logs, prints a line.

    ``served`` is the model whose single output is the prediction (for models
    trained with auxiliary heads, a view of the trained model without them).
    """

    def __init__(
        self, served: keras.Model, validation: tuple[np.ndarray, np.ndarray] | None, epochs: int,
        console: Console,
    ) -> None:
        super().__init__()
        self.served = served
        self.validation = validation
        self.epochs = epochs
        self.console = console
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.validation is None:  # a refit: nothing held out
            self.console.print(
                f"epoch {epoch + 1:>3}/{self.epochs}  loss {logs['loss']:.4f}  "
                f"acc {logs['accuracy']:.4f}  [dim]{time.perf_counter() - self._start:.1f} s[/]"
            )
            return
        x, y = self.validation
        probs = self.served.predict(x, batch_size=512, verbose=0)
        predicted = probs.argmax(axis=1)
        picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
        logs["val_loss"] = float(-np.log(picked).mean())
        logs["val_accuracy"] = float((predicted == y).mean())
        logs["val_macro_f1"] = score(y, predicted)["macro_f1"]
        self.console.print(
            f"epoch {epoch + 1:>3}/{self.epochs}  loss {logs['loss']:.4f}  "
            f"acc {logs['accuracy']:.4f}  val_loss {logs['val_loss']:.4f}  "
            f"val_acc {logs['val_accuracy']:.4f}  val_macro_f1 {logs['val_macro_f1']:.4f}  "
            f"[dim]{time.perf_counter() - self._start:.1f} s[/]"
        )


class _ServedLogs(keras.callbacks.Callback):  # type: ignore[misc]
    """For multi-head models: ``loss`` and ``accuracy`` in the logs become the served head's.

    Keras logs the weighted sum over all heads as ``loss``; it is kept as
    ``total_loss``, so that the curves compare like with like (the validation
    loss is the served head's alone).
    """

    def __init__(self, head: str) -> None:
        super().__init__()
        self.head = head

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is None:
            return
        keys = (f"{self.head}_loss", f"{self.head}_accuracy")
        missing = [k for k in keys if k not in logs]
        if missing:
            raise KeyError(f"training logs lack {missing} (have {sorted(logs)}): Keras renamed them?")
        logs["total_loss"] = logs["loss"]
        logs["loss"], logs["accuracy"] = logs[keys[0]], logs[keys[1]]


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


def resolve(config: TrainConfig) -> TrainConfig:
    """``config`` with the architecture's defaults filled in; an unknown architecture is an error."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"arch: expected one of {sorted(ARCHITECTURES)}, got {config.arch!r}")
    return replace(
        config,
        epochs=EPOCHS[config.arch] if config.epochs is None else config.epochs,
        batch_size=BATCH_SIZES[config.arch] if config.batch_size is None else config.batch_size,
        learning_rate=(
            LEARNING_RATES[config.arch] if config.learning_rate is None else config.learning_rate
        ),
    )


def build_and_compile(
    config: TrainConfig, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64],
    x_train: npt.NDArray[np.float32],
) -> tuple[keras.Model, keras.Model]:
    """``(trained, served)``: the compiled model (all heads) and its served single-output view.

    ``config`` must be :func:`resolve`-d; ``x_train`` are the standardised
    training windows (the cosine schedule spans ``config.epochs`` passes over them).
    """
    assert config.epochs is not None and config.batch_size is not None
    model = ARCHITECTURES[config.arch](mean=mean.tolist(), std=std.tolist(), sample=x_train)
    heads = len(model.outputs)
    served = model if heads == 1 else keras.Model(model.inputs, model.outputs[0], name=model.name)
    steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, use_ema=config.ema, ema_momentum=0.99),
        loss=["sparse_categorical_crossentropy"] * heads,
        loss_weights=[1.0] + [AUXILIARY_LOSS_WEIGHT] * (heads - 1),
        metrics=[["accuracy"]] + [[]] * (heads - 1),
    )
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


def train(
    data_dir: Path | Sequence[Path],
    out_dir: Path,
    config: TrainConfig = TrainConfig(),
    console: Console | None = None,
) -> dict[str, Any]:
    """Train, select on validation, write ``<arch>.keras`` + JSON + report; returns the summary.

    ``data_dir`` is one dataset folder or several (one per layout; see the module docstring).
    """
    console = console or Console(stderr=True)
    config = resolve(config)
    assert config.epochs is not None and config.batch_size is not None
    sources = data_sources(data_dir)
    keras.utils.set_random_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)

    validating = not config.refit
    with console.status("building windows through the streaming signal chain..."):
        train_set, val_set, subjects, summary = _split_windows(sources, config)
    train_set, mean, std = fit_windows(train_set, config, config.seed)
    val_set = limit_windows(val_set, config.max_windows, config.seed)
    for part in summary:
        splits = subjects[part["dataset"]]
        counts = ((len(train_set), len(val_set)) if len(sources) == 1 else
                  (part["train_windows"], part["validation_windows"]))
        console.print(
            ("" if len(sources) == 1 else f"{TITLES[part['dataset']]} ")
            + f"windows: train {counts[0]} (subjects {splits['train']}), "
            + (f"validation {counts[1]} (subjects {splits['validation']})" if validating else
               f"no validation: a refit for the whole {config.epochs}-epoch schedule")
        )
    if len(sources) > 1:
        console.print(f"windows in all: train {len(train_set)}, validation {len(val_set)}"
                      + (f" (at most {config.max_windows} each)" if config.max_windows else ""))
    x_train = standardise(train_set.x, mean, std)
    x_val = standardise(val_set.x, mean, std)

    model, served = build_and_compile(config, mean, std, x_train)
    heads = len(model.outputs)
    console.print(
        f"model {config.arch}: {served.count_params():,} parameters"
        + (f" ({heads - 1} auxiliary heads during training)" if heads > 1 else "")
    )
    stopper = keras.callbacks.EarlyStopping(
        "val_macro_f1", mode="max", patience=config.patience, restore_best_weights=True
    )
    started = time.perf_counter()
    history = model.fit(
        x_train,
        train_set.y if heads == 1 else [train_set.y] * heads,
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=0,
        callbacks=[
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema else []),
            *([_ServedLogs(model.output_names[0])] if heads > 1 else []),
            _EpochReport(served, (x_val, val_set.y) if validating else None, config.epochs, console),
            *([stopper] if validating else []),
        ],
    )
    if validating and stopper.best_weights is not None:  # also when the schedule ends first
        model.set_weights(stopper.best_weights)
    model = served
    train_seconds = time.perf_counter() - started
    curves = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    metrics: dict[str, Any] = {
        "epochs_run": len(curves["loss"]),
        "train_seconds": round(train_seconds, 1),
        "parameters": int(model.count_params()),
        "config": {k: v for k, v in config.__dict__.items()},
        "data": summary,
    }
    if validating:
        metrics["best_epoch"] = int(np.argmax(curves["val_macro_f1"])) + 1
        predicted = model.predict(x_val, batch_size=512, verbose=0).argmax(axis=1)
        metrics["validation"] = val_scores = score(val_set.y, predicted, val_set.subject)
        if len(sources) > 1:  # each dataset's validation subjects alone, by their own ids
            metrics["validation_by_dataset"] = {}
            for _, layout in sources:
                mine = _of_dataset(val_set.subject, layout)
                metrics["validation_by_dataset"][layout] = score(
                    val_set.y[mine], predicted[mine], val_set.subject[mine] - SUBJECT_OFFSET[layout]
                )
        console.print(
            f"selected epoch {metrics['best_epoch']}: validation accuracy "
            f"{val_scores['accuracy']:.4f}, macro-F1 {val_scores['macro_f1']:.4f} "
            f"({train_seconds:.0f} s of training)"
        )
    else:
        metrics["best_epoch"] = len(curves["loss"])
        console.print(f"refit: kept the last epoch ({train_seconds:.0f} s of training)")
    meta = ModelMeta(
        architecture=config.arch,
        norm_mean=[float(v) for v in mean],
        norm_std=[float(v) for v in std],
        subjects=_meta_subjects(subjects),
        training_data_sha256=train_set.checksum(),
        metrics=metrics,
    )
    artifact.save(model, meta, out_dir / f"{config.arch}.keras")
    (out_dir / "history.json").write_text(json.dumps(curves, indent=2) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    report.plot_curves(curves, out_dir / "curves.png")
    if validating:
        report.plot_confusion(
            metrics["validation"]["confusion"], ACTIVITIES, out_dir / "confusion_validation.png",
            "Validation subjects (selection data)",
        )
        report.plot_per_subject(
            metrics["validation"]["per_subject"], out_dir / "per_subject_validation.png",
            "Validation accuracy",
        )
    console.print(f"wrote {out_dir / (config.arch + '.keras')} and the report in {out_dir}")
    return metrics
