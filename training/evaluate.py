"""``harstream evaluate``: score a model on a split exactly as the engine would serve it.

Each recording of the split runs through the streaming chain and the ring
buffer; every window the engine would emit is classified (so the online
smoother sees the same sequence as live) and the windows lying wholly in a
labelled activity segment are scored, raw and smoothed. Either layout is
read (HAPT, MotionSense; :mod:`harstream.datasets`), each with its own splits
(:data:`training.dataset.DATASET_SPLITS`); MotionSense's jogging windows are
not scored, and macro-F1 is over the classes present in the truth (listed
under ``macro_f1_classes``: MotionSense has no LAYING).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from harstream.datasets import TITLES, detect, read_any
from harstream.runtime import Classifier
from harstream.smoothing import ForwardFilter

from . import report
from .dataset import SPLITS, recording_windows, split_subjects
from .metrics import score


@dataclass(frozen=True)
class StreamPredictions:
    """Scored windows of a split (row i = window i)."""

    subject: npt.NDArray[np.int64]
    """Subject of each window (the dataset's own id)."""
    experiment: npt.NDArray[np.int64]
    """Recording (experiment) of each window."""
    seq_end: npt.NDArray[np.int64]
    """Stream index of the window's last sample."""
    truth: npt.NDArray[np.int64]
    """True activity index (0..5)."""
    probs: npt.NDArray[np.float32]
    """Model probabilities."""
    smoothed: npt.NDArray[np.int64]
    """Label index after online smoothing."""


def predict_split(
    classifier: Classifier, data_dir: Path, subjects: tuple[int, ...]
) -> tuple[StreamPredictions, float]:
    """Predictions on every scored window of ``subjects``, and the model's windows/s."""
    dataset = read_any(data_dir, set(subjects))
    smoother = ForwardFilter(classes=len(classifier.labels))
    parts: list[tuple[Any, ...]] = []
    model_seconds, model_windows = 0.0, 0
    for recording in dataset.recordings:
        windows = recording_windows(
            recording, dataset.segments_of(recording), align="stream", labelled_only=False
        )
        started = time.perf_counter()
        probs = classifier.predict_proba(windows.x)
        model_seconds += time.perf_counter() - started
        model_windows += len(windows)
        smoothed = smoother.run(probs).argmax(axis=1)
        keep = windows.y >= 0
        subject = np.full(int(keep.sum()), recording.user, dtype=np.int64)
        parts.append(
            (subject, windows.experiment[keep], windows.seq_end[keep],
             windows.y[keep], probs[keep], smoothed[keep])
        )
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    rate = model_windows / model_seconds if model_seconds else 0.0
    return StreamPredictions(*columns), rate


def evaluate(classifier: Classifier, data_dir: Path, split: str = "test") -> dict[str, Any]:
    """The evaluation JSON: raw scores at top level, smoothed under ``"smoothed"``.

    ``dataset`` names the layout of ``data_dir``, ``subjects`` the split's subjects.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {sorted(SPLITS)}, got {split!r}")
    layout = detect(data_dir)
    subjects = split_subjects(layout, split)
    predictions, rate = predict_split(classifier, data_dir, subjects)
    raw = score(predictions.truth, predictions.probs.argmax(axis=1), predictions.subject)
    smoothed = score(predictions.truth, predictions.smoothed, predictions.subject)
    return {
        **raw,
        "windows_per_s": round(rate, 1),
        "split": split,
        "dataset": layout,
        "subjects": sorted(subjects),
        "model": str(classifier.artifact.path),
        "smoothed": smoothed,
    }


def print_evaluation(result: dict[str, Any], console: Console) -> None:
    """A readable table of an evaluation result."""
    title = TITLES.get(result.get("dataset", "hapt"), "")
    table = Table(title=f"{title} {result['split']} split: {result['n_windows']} windows")
    table.add_column("activity")
    for name in ("precision", "recall", "f1", "support"):
        table.add_column(name, justify="right")
    for name, row in result["per_class"].items():
        table.add_row(
            name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
            str(row["support"]),
        )
    console.print(table)
    if len(result["macro_f1_classes"]) < len(result["per_class"]):
        console.print(f"macro-F1 over the {len(result['macro_f1_classes'])} classes present in the "
                      f"truth: {', '.join(result['macro_f1_classes'])}", highlight=False)
    smoothed = result["smoothed"]
    console.print(
        f"accuracy [bold]{result['accuracy']:.4f}[/]  macro-F1 [bold]{result['macro_f1']:.4f}[/]"
        f"   smoothed: accuracy {smoothed['accuracy']:.4f}  macro-F1 {smoothed['macro_f1']:.4f}"
        f"   model {result['windows_per_s']:.0f} windows/s"
    )
    confusion = Table(title="confusion (rows = truth)")
    confusion.add_column("")
    short = [name.replace("WALKING_", "").replace("WALKING", "WALK") for name in result["per_class"]]
    for name in short:
        confusion.add_column(name, justify="right")
    for name, row in zip(short, result["confusion"], strict=True):
        confusion.add_row(name, *(str(v) for v in row))
    console.print(confusion)
    subjects = "  ".join(f"{s}: {a:.3f}" for s, a in result["per_subject"].items())
    console.print(f"per subject: {subjects}")


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    """Metrics JSON, confusion matrices and per-subject accuracy plots of an evaluation.

    Files are named by split (``metrics_test.json``), prefixed by the dataset
    when it is not HAPT (``metrics_motionsense_validation.json``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = result.get("dataset", "hapt")
    split = result["split"] if dataset == "hapt" else f"{dataset}_{result['split']}"
    (out_dir / f"metrics_{split}.json").write_text(json.dumps(result, indent=2) + "\n")
    labels = list(result["per_class"])
    report.plot_confusion(result["confusion"], labels, out_dir / f"confusion_{split}.png",
                          f"{split} subjects, raw windows")
    report.plot_confusion(result["smoothed"]["confusion"], labels,
                          out_dir / f"confusion_{split}_smoothed.png",
                          f"{split} subjects, smoothed stream output")
    report.plot_per_subject(result["per_subject"], out_dir / f"per_subject_{split}.png",
                            f"{split} accuracy per subject")
