"""``harstream evaluate``: score a model on a split exactly as the engine would serve it.

Each recording of the split runs through the streaming chain and the ring
buffer; every window the engine would emit is classified (so the online
smoother sees the same sequence as live) and the windows lying wholly in a
labelled activity segment are scored, raw and smoothed. Any layout is
read (HAPT, MotionSense, a recordings folder; :mod:`harstream.data.layouts`),
HAPT and MotionSense by their own splits (:data:`harstream.data.splits.DATASET_SPLITS`),
a recordings folder whole (its recordings are the user's own: which to
score is which folder to pass). A window's truth is matched to the model's
labels by class name, so a fine-tuned model with new classes (JOGGING) is
scored on them too; windows of a class the model does not have (MotionSense's
jogging for the shipped model) are not scored and are counted under
``unscored_windows``. Macro-F1 is over the classes present in the truth
(listed under ``macro_f1_classes``: MotionSense has no LAYING).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from harstream import WINDOW
from harstream.data.labelled_windows import recording_windows
from harstream.data.layouts import TITLES, detect, read_any
from harstream.data.recordings import recording_of
from harstream.data.scoring import score
from harstream.data.splits import SPLITS, split_subjects
from harstream.data.types import Dataset, window_activity
from harstream.errors import DatasetError
from harstream.model.classifier import Classifier
from harstream.signal.smoothing import ForwardFilter
from training import report


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
    """True class, an index into the model's labels."""
    probs: npt.NDArray[np.float32]
    """Model probabilities."""
    smoothed: npt.NDArray[np.int64]
    """Label index after online smoothing."""


def class_map(dataset: Dataset, labels: Sequence[str]) -> dict[int, int]:
    """Activity id -> index into ``labels`` of every class of ``dataset`` the model has (by name)."""
    return {i: list(labels).index(name) for i, name in dataset.activity_names.items() if name in labels}


def predict_dataset(
    classifier: Classifier, dataset: Dataset
) -> tuple[StreamPredictions, float, dict[str, int]]:
    """Predictions on every scored window of ``dataset``, the model's windows/s, and the count of
    windows lying wholly in a span of a class the model does not have (by class name)."""
    smoother = ForwardFilter(classes=len(classifier.labels))
    classes = class_map(dataset, classifier.labels)
    others = {i: name for i, name in dataset.activity_names.items() if i not in classes}
    parts: list[tuple[Any, ...]] = []
    unscored: Counter[str] = Counter()
    model_seconds, model_windows = 0.0, 0
    for recording in dataset.recordings:
        segments = dataset.segments_of(recording)
        windows = recording_windows(recording, segments, align="stream", labelled_only=False,
                                    classes=classes)
        if others:
            inside = window_activity(segments, windows.seq_end[windows.y < 0], WINDOW, others)
            unscored.update(others[i] for i in inside[inside > 0].tolist())
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
    if not parts:  # a folder without recordings
        empty = np.zeros(0, dtype=np.int64)
        parts = [(empty, empty, empty, empty, np.zeros((0, len(classifier.labels)), np.float32), empty)]
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    rate = model_windows / model_seconds if model_seconds else 0.0
    return StreamPredictions(*columns), rate, dict(sorted(unscored.items()))


def evaluate(classifier: Classifier, data_dir: Path, split: str = "test") -> dict[str, Any]:
    """The evaluation JSON: raw scores at top level, smoothed under ``"smoothed"``.

    ``dataset`` names the layout of ``data_dir``, ``subjects`` the split's
    subjects; a recordings folder is scored whole (``split`` is then
    ``"all"``) and per recording (``per_recording``) rather than per subject.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {sorted(SPLITS)}, got {split!r}")
    layout = detect(data_dir)
    subjects = None if layout == "recordings" else split_subjects(layout, split)
    dataset = read_any(data_dir, None if subjects is None else set(subjects))
    predictions, rate, unscored = predict_dataset(classifier, dataset)
    if not len(predictions.truth):
        known = sorted(set(dataset.activity_names.values()) & set(classifier.labels))
        raise DatasetError(
            f"{data_dir}: expected windows to score (128 samples wholly inside one labelled span of a class "
            f"the model has: {', '.join(classifier.labels)}), found none"
            + ("" if known else "; the labels name none of the model's classes")
        )
    labels = classifier.labels
    if layout == "recordings":
        names = {r.experiment: recording_of(r.stream_id) for r in dataset.recordings}
        keys = np.array([names[int(e)] for e in predictions.experiment])
        order = sorted(set(keys.tolist()))
        groups = np.array([order.index(k) for k in keys.tolist()], dtype=np.int64)
    else:
        groups = predictions.subject
    raw = score(predictions.truth, predictions.probs.argmax(axis=1), groups, labels)
    smoothed = score(predictions.truth, predictions.smoothed, groups, labels)
    if layout == "recordings":
        for part in (raw, smoothed):
            part["per_recording"] = {order[int(k)]: v for k, v in part.pop("per_subject").items()}
    return {
        **raw,
        "windows_per_s": round(rate, 1),
        "split": "all" if layout == "recordings" else split,
        "dataset": layout,
        **({"recordings": sorted({recording_of(r.stream_id) for r in dataset.recordings})}
           if layout == "recordings" else {"subjects": sorted(subjects or ())}),
        "unscored_windows": unscored,
        "model": str(classifier.artifact.path),
        "labels": list(labels),
        "smoothed": smoothed,
    }


def print_evaluation(result: dict[str, Any], console: Console) -> None:
    """A readable table of an evaluation result."""
    title = TITLES.get(result.get("dataset", "hapt"), "")
    what = "folder" if result.get("dataset") == "recordings" else f"{result['split']} split"
    table = Table(title=f"{title} {what}: {result['n_windows']} windows")
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
    groups = "per_recording" if "per_recording" in result else "per_subject"
    accuracies = "  ".join(f"{s}: {a:.3f}" for s, a in result[groups].items())
    console.print(f"{groups.replace('_', ' ')}: {accuracies}", highlight=False)
    if result.get("unscored_windows"):
        counts = ", ".join(f"{name} {n}" for name, n in result["unscored_windows"].items())
        console.print(f"not scored (classes the model does not have): {counts} windows", highlight=False)


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
    if "per_recording" in result:
        report.plot_per_subject(result["per_recording"], out_dir / f"per_recording_{split}.png",
                                f"{split} accuracy per recording")
    else:
        report.plot_per_subject(result["per_subject"], out_dir / f"per_subject_{split}.png",
                                f"{split} accuracy per subject")
