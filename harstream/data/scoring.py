"""Scores of predicted activities against the truth, in the JSON shape the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from harstream import ACTIVITIES


def score(
    truth: npt.ArrayLike,
    predicted: npt.ArrayLike,
    subjects: npt.ArrayLike | None = None,
    labels: Sequence[str] = ACTIVITIES,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion (rows = truth), per subject.

    Macro-F1 averages the classes present in the truth (``macro_f1_classes``):
    a class no window belongs to (LAYING on MotionSense) has no F1 to count.
    Per-class rows are there for every label, support 0 included.

    >>> s = score([0, 1, 1], [0, 1, 0], subjects=[2, 2, 4], labels=["A", "B"])
    >>> round(s["accuracy"], 3), s["confusion"], s["per_subject"]
    (0.667, [[1, 0], [1, 1]], {'2': 1.0, '4': 0.0})
    >>> s = score([0, 0, 1], [0, 2, 1], labels=["A", "B", "C"])
    >>> round(s["macro_f1"], 3), s["macro_f1_classes"], s["per_class"]["C"]["support"]
    (0.833, ['A', 'B'], 0)
    """
    y = np.asarray(truth, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=classes, zero_division=0
    )
    present = [c for c in classes if support[c] > 0]
    macro = f1_score(y, p, labels=present, average="macro", zero_division=0) if present else 0.0
    result: dict[str, Any] = {
        "accuracy": float((y == p).mean()) if len(y) else 0.0,
        "macro_f1": float(macro),
        "macro_f1_classes": [labels[c] for c in present],
        "n_windows": len(y),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion": confusion_matrix(y, p, labels=classes).tolist(),
    }
    if subjects is not None:
        subj = np.asarray(subjects)
        result["per_subject"] = {
            str(s): float((y[subj == s] == p[subj == s]).mean()) for s in sorted(set(subj.tolist()))
        }
    return result
