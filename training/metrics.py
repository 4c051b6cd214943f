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

    >>> s = score([0, 1, 1], [0, 1, 0], subjects=[2, 2, 4], labels=["A", "B"])
    >>> round(s["accuracy"], 3), s["confusion"], s["per_subject"]
    (0.667, [[1, 0], [1, 1]], {'2': 1.0, '4': 0.0})
    """
    y = np.asarray(truth, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=classes, zero_division=0
    )
    result: dict[str, Any] = {
        "accuracy": float((y == p).mean()) if len(y) else 0.0,
        "macro_f1": float(f1_score(y, p, labels=classes, average="macro", zero_division=0)),
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
