"""What training from scratch and fine-tuning share: the compile, the per-epoch selection, the fit, the run folder.

* :func:`compile_cosine`: Adam on a cosine-decaying learning rate, one
  sparse cross-entropy per output (auxiliary heads weighted
  :data:`AUXILIARY_LOSS_WEIGHT`), accuracy of the served output.
* :class:`Selection`: after each epoch, macro-F1 of the served output on the
  held-out windows; keeps the best epoch's weights; stops after ``patience``
  epochs without gain; prints one line per epoch.
* :func:`fit`: fits all heads and leaves the best epoch's weights in the model.
* :func:`write_run`: the artifact, ``history.json`` and ``metrics.json`` of a run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
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
from harstream.data.scoring import score
from harstream.model import artifact
from harstream.model.artifact import ModelMeta

AUXILIARY_LOSS_WEIGHT = 0.5
"""Loss weight of each auxiliary head of a multi-output architecture (the served head has 1)."""
FINAL_LEARNING_RATE = 0.02
"""The cosine schedule ends at this fraction of the peak learning rate."""
EMA_MOMENTUM = 0.99
"""Momentum of the moving average of the weights (``TrainConfig.ema``)."""
PREDICT_BATCH = 512
"""Windows per call when scoring held-out windows."""


def compile_cosine(
    model: keras.Model, learning_rate: float, epochs: int, windows: int, batch_size: int, ema: bool = False,
    soft: bool = False,
) -> None:
    """Compile ``model`` (every output a softmax) for ``epochs`` passes over ``windows`` windows.

    The learning rate decays from ``learning_rate`` along a cosine to
    :data:`FINAL_LEARNING_RATE` of it over the whole schedule; ``ema`` keeps a
    moving average of the weights in the optimizer. With ``soft`` the served
    head learns class probabilities (:func:`soft_targets`), not label indices.
    """
    heads = len(model.outputs)
    steps = epochs * math.ceil(windows / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=FINAL_LEARNING_RATE)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, use_ema=ema, ema_momentum=EMA_MOMENTUM),
        loss=["categorical_crossentropy" if soft else "sparse_categorical_crossentropy"]
        + ["sparse_categorical_crossentropy"] * (heads - 1),
        loss_weights=[1.0] + [AUXILIARY_LOSS_WEIGHT] * (heads - 1),
        metrics=[[keras.metrics.CategoricalAccuracy(name="accuracy") if soft else "accuracy"]]
        + [[]] * (heads - 1),
    )


def served_view(model: keras.Model) -> keras.Model:
    """``model`` itself when it has one output, else a view of it with the served (first) output only."""
    return model if len(model.outputs) == 1 else keras.Model(model.inputs, model.outputs[0], name=model.name)


def targets(model: keras.Model, y: npt.NDArray[np.int64], soft: npt.NDArray[np.float32] | None = None) -> Any:
    """The fit targets of ``model``: ``y`` for each of its outputs (``soft`` for the served one, if given)."""
    served = y if soft is None else soft
    return served if len(model.outputs) == 1 else [served] + [y] * (len(model.outputs) - 1)


def soft_targets(
    y: npt.NDArray[np.int64], teacher: npt.NDArray[np.float32], weight: float
) -> npt.NDArray[np.float32]:
    """Distillation targets: ``weight`` of the teacher's probabilities plus ``1 - weight`` of the one-hot labels.

    >>> soft_targets(np.array([1]), np.array([[0.5, 0.25, 0.25]], np.float32), 0.5).tolist()
    [[0.25, 0.625, 0.125]]
    """
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"weight: expected 0 < weight <= 1, got {weight}")
    one_hot = np.eye(teacher.shape[1], dtype=np.float32)[y]
    mixed: npt.NDArray[np.float32] = (weight * teacher + (1.0 - weight) * one_hot).astype(np.float32)
    return mixed


class Selection(keras.callbacks.Callback):  # type: ignore[misc]
    """Scores the served output on the held-out windows after each epoch, keeps the best, stops early.

    The score is macro-F1 over ``labels``; ``val_loss``, ``val_accuracy`` and
    ``val_macro_f1`` join the epoch's logs (and so the history). The fitted
    model's weights at the best epoch are kept in :attr:`best_weights`
    (:func:`fit` puts them back). Training stops once ``patience`` epochs pass
    without a better score. With no held-out windows (``held_out`` None or
    empty) nothing is scored and the whole schedule runs.
    """

    def __init__(
        self, served: keras.Model, held_out: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None,
        epochs: int, patience: int, console: Console, labels: Sequence[str] = ACTIVITIES, prefix: str = "",
    ) -> None:
        super().__init__()
        self.served, self.epochs, self.patience, self.console = served, epochs, patience, console
        self.held_out = held_out if held_out is not None and len(held_out[1]) else None
        self.labels, self.prefix = list(labels), prefix
        self.best = -math.inf
        self.best_epoch = 0
        """The best epoch so far, from 1 (0: none scored)."""
        self.best_weights: list[Any] | None = None
        self.scores: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs if logs is not None else {}
        text = f"{self.prefix}epoch {epoch + 1:>3}/{self.epochs}  loss {logs.get('loss', math.nan):.4f}"
        if "accuracy" in logs:
            text += f"  acc {logs['accuracy']:.4f}"
        if self.held_out is not None:
            text += "  " + self._score(epoch, logs)
        self.console.print(f"{text}  [dim]{time.perf_counter() - self._start:.1f} s[/]", highlight=False)

    def _score(self, epoch: int, logs: dict[str, float]) -> str:
        """Score the held-out windows into ``logs``, keep the weights if best, stop if out of patience."""
        assert self.held_out is not None
        x, y = self.held_out
        probs = self.served.predict(x, batch_size=PREDICT_BATCH, verbose=0)
        predicted = probs.argmax(axis=1)
        picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
        logs["val_loss"] = float(-np.log(picked).mean())
        logs["val_accuracy"] = float((predicted == y).mean())
        logs["val_macro_f1"] = macro = float(score(y, predicted, labels=self.labels)["macro_f1"])
        self.scores.append(macro)
        if self.best_weights is None or macro > self.best:
            self.best, self.best_epoch = macro, epoch + 1
            self.best_weights = self.model.get_weights()
        elif epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True
        return (f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}  "
                f"val_macro_f1 {macro:.4f}")


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


def fit(
    model: keras.Model, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], epochs: int, batch_size: int,
    selection: Selection, ema: bool = False, after_epoch: Callable[[int], None] | None = None,
    soft: npt.NDArray[np.float32] | None = None,
) -> dict[str, list[float]]:
    """Fit ``model`` (compiled by :func:`compile_cosine`) on every head for up to ``epochs`` epochs
    (the served head on ``soft`` targets when given: :func:`soft_targets`).

    ``selection`` watches the epochs; its best epoch's weights are left in
    the model. With ``ema`` the moving average is what each epoch scores
    and so what is kept. ``after_epoch(n)`` runs after epoch ``n`` (from 1),
    the epoch's weights in the model. Returns the per-epoch curves (the history).
    """
    callbacks = [
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema else []),
        *([_ServedLogs(model.output_names[0])] if len(model.outputs) > 1 else []),
        selection,
        *([keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: after_epoch(epoch + 1))]
          if after_epoch else []),
    ]
    history = model.fit(x, targets(model, y, soft), epochs=epochs, batch_size=batch_size, verbose=0,
                        callbacks=callbacks)
    if selection.best_weights is not None:  # also when the schedule ends first
        model.set_weights(selection.best_weights)
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def write_run(
    out_dir: Path, model: keras.Model, meta: ModelMeta, curves: dict[str, list[float]], metrics: dict[str, Any]
) -> Path:
    """Write ``<architecture>.keras`` with its metadata, ``history.json`` and ``metrics.json`` into
    ``out_dir``; returns the artifact's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{meta.architecture}.keras"
    artifact.save(model, meta, path)
    (out_dir / "history.json").write_text(json.dumps(curves, indent=2) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return path
