"""Plots and tables of the training report (PNG files people would rather look at)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt


def plot_curves(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Training and validation loss and accuracy per epoch."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    loss_ax.plot(epochs, history["loss"], label="train")
    if "val_loss" in history:  # a refit has no validation
        loss_ax.plot(epochs, history["val_loss"], label="validation")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.plot(epochs, history["accuracy"], label="train")
    if "val_accuracy" in history:
        acc_ax.plot(epochs, history["val_accuracy"], label="validation")
    if "val_macro_f1" in history:
        acc_ax.plot(epochs, history["val_macro_f1"], label="validation macro-F1", linestyle="--")
    acc_ax.set(xlabel="epoch", ylabel="score", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(
    confusion: npt.ArrayLike, labels: Sequence[str], path: Path, title: str = "Confusion matrix"
) -> Path:
    """Confusion matrix (rows = truth) with counts in the cells."""
    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    short = [label.replace("WALKING_", "").replace("WALKING", "WALK") for label in labels]
    ax.set_xticks(range(len(labels)), short, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), short)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_subject(accuracy: Mapping[str, float], path: Path, title: str) -> Path:
    """Accuracy of each subject (or recording, by name) as bars, with the overall mean."""
    subjects = sorted(accuracy, key=lambda s: (int(s), "") if s.isdigit() else (-1, s))
    values = [accuracy[s] for s in subjects]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(subjects) + 2), 4))
    ax.bar(subjects, values, color="tab:blue")
    ax.axhline(float(np.mean(values)), color="tab:red", linestyle="--", label="mean")
    ax.set(xlabel="subject", ylabel="accuracy", title=title, ylim=(min(0.5, min(values)), 1.0))
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
