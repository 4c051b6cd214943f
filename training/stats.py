"""``harstream data stats``: how many windows the dataset builder cuts, and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from harstream import ACTIVITIES

from .dataset import SPLITS, build_windows


def window_stats(data_dir: Path) -> dict[str, Any]:
    """Window counts per split and per (subject, activity), over all 30 subjects.

    Counts are of the ``"segment"`` windows (each labelled segment cut from
    its first sample, hop 64), comparable to UCI HAR's published windows.
    """
    windows = build_windows(data_dir)
    splits = {name: int(np.isin(windows.subject, subjects).sum()) for name, subjects in SPLITS.items()}
    counts = []
    for subject in sorted(set(windows.subject.tolist())):
        for index, activity in enumerate(ACTIVITIES):
            n = int(((windows.subject == subject) & (windows.y == index)).sum())
            counts.append({"subject": subject, "activity": activity, "windows": n})
    return {"splits": splits, "counts": counts}


def print_stats(stats: dict[str, Any], console: Console) -> None:
    """Windows per activity and split, as a table."""
    table = Table(title="windows (128 samples, hop 64) per activity and split")
    table.add_column("activity")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("all", justify="right")
    for activity in ACTIVITIES:
        row = [
            sum(c["windows"] for c in stats["counts"]
                if c["activity"] == activity and c["subject"] in SPLITS[split])
            for split in SPLITS
        ]
        table.add_row(activity, *map(str, row), str(sum(row)))
    table.add_row("[bold]total", *(str(stats["splits"][s]) for s in SPLITS),
                  str(sum(stats["splits"].values())))
    console.print(table)
