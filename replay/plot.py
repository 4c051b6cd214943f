"""Timeline plot of a scored replay: predicted vs true activity, stream by stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from harstream import SAMPLE_RATE_HZ
from replay.scoring import Scorer

MAX_STREAMS = 12
"""Streams drawn at most (the first ones, in replay order)."""


def plot_timeline(scorer: Scorer, path: Path | str, max_streams: int = MAX_STREAMS) -> Path:
    """Save a PNG with one panel per stream: truth, raw and smoothed labels over time.

    x is the window's end in seconds of the recording (``seq_end / 50``);
    windows not scored have no truth, windows never received have no prediction.
    """
    shown = scorer.streams[:max_streams]
    if not shown:
        raise ValueError("scorer: expected at least one stream to plot, got none")
    fig = Figure(figsize=(12, 1.9 * len(shown) + 0.8))
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    names = [label.replace("WALKING_", "").replace("WALKING", "WALK") for label in scorer.labels]
    for ax, stream in zip(axes, shown, strict=True):
        ends, truth, predictions = scorer.timeline(stream.stream_id)
        seconds = np.asarray(ends, dtype=float) / SAMPLE_RATE_HZ
        true_y = np.where(np.asarray(truth) >= 0, truth, np.nan)
        raw_y, smooth_y = (
            np.array([np.nan if p is None else _y(scorer, getattr(p, field)) for p in predictions])
            for field in ("label", "smoothed")
        )
        ax.plot(seconds, true_y, color="0.6", linewidth=5, alpha=0.6, label="truth",
                drawstyle="steps-mid")
        ax.plot(seconds, smooth_y, color="tab:blue", linewidth=1.2, label="smoothed",
                drawstyle="steps-mid")
        ax.plot(seconds, raw_y, ".", color="tab:red", markersize=3, label="raw window")
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_title(stream.stream_id, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1].set_xlabel("time in recording (s), window end")
    total = len(scorer.streams)
    cap = f" (first {len(shown)} of {total} streams)" if total > len(shown) else ""
    fig.suptitle(f"replay: predicted vs true activity{cap}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def _y(scorer: Scorer, label: str) -> float:
    index = scorer.label_index(label)
    return float(index) if index >= 0 else np.nan
