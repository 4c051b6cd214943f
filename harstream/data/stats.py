"""``harstream data stats``: how many windows the dataset builder cuts, and where.

Counts are of the ``"segment"`` windows (each labelled segment cut from its
first sample, hop 64; :func:`harstream.data.labelled_windows.recording_windows`), so
they are comparable to UCI HAR's published windows. Counting needs only the
segments, not the signal chain. On MotionSense the jogging windows (no
class of the six: never trained on or scored) are counted apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harstream import ACTIVITIES, HOP, WINDOW
from harstream.data.labelled_windows import _segment_ends
from harstream.data.layouts import TITLES, read_any
from harstream.data.motionsense import JOGGING
from harstream.data.splits import DATASET_SPLITS
from harstream.data.types import window_activity


def window_stats(data_dir: Path) -> dict[str, Any]:
    """Window counts per split and per (subject, activity), over every subject of the folder.

    ``dataset`` names the layout; ``excluded`` counts the windows of labels
    that are none of the six classes (MotionSense's jogging), by split.
    """
    dataset = read_any(data_dir)
    splits = DATASET_SPLITS[dataset.name]
    per: dict[tuple[int, int], int] = {}
    jog: dict[int, int] = {}
    for rec in dataset.recordings:
        segments = dataset.segments_of(rec)
        truth = window_activity(segments, _segment_ends(segments), WINDOW)
        for activity in range(1, len(ACTIVITIES) + 1):
            per[(rec.user, activity)] = per.get((rec.user, activity), 0) + int((truth == activity).sum())
        jogging = [s for s in segments if s.activity == JOGGING]
        jog[rec.user] = jog.get(rec.user, 0) + sum(
            len(range(s.start + WINDOW - 1, s.stop, HOP)) for s in jogging
        )
    subjects = sorted({rec.user for rec in dataset.recordings})
    counts = [
        {"subject": subject, "activity": activity, "windows": per[(subject, index + 1)]}
        for subject in subjects
        for index, activity in enumerate(ACTIVITIES)
    ]
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "splits": {
            name: sum(c["windows"] for c in counts if c["subject"] in members)
            for name, members in splits.items()
        },
        "counts": counts,
    }
    if dataset.name == "motionsense":
        result["excluded"] = {
            "JOGGING": {name: sum(jog.get(s, 0) for s in members) for name, members in splits.items()}
        }
        result["missing_subjects"] = {
            name: [s for s in members if s not in subjects] for name, members in splits.items()
            if any(s not in subjects for s in members)
        }
    return result


def print_stats(stats: dict[str, Any], console: Console) -> None:
    """Windows per activity and split, as a table."""
    splits = DATASET_SPLITS[stats.get("dataset", "hapt")]
    missing = stats.get("missing_subjects", {})
    title = TITLES[stats.get("dataset", "hapt")]
    table = Table(title=f"{title}: windows (128 samples, hop 64) per activity and split")
    table.add_column("activity")
    for split in splits:
        table.add_column(f"{split} (not here)" if split in missing else split, justify="right")
    table.add_column("all", justify="right")
    present = {c["activity"] for c in stats["counts"] if c["windows"]}
    for activity in ACTIVITIES:
        row = [
            sum(c["windows"] for c in stats["counts"]
                if c["activity"] == activity and c["subject"] in splits[split])
            for split in splits
        ]
        name = activity if activity in present or not stats["counts"] else f"{activity} (none)"
        table.add_row(name, *map(str, row), str(sum(row)))
    table.add_row("[bold]total", *(str(stats["splits"][s]) for s in splits),
                  str(sum(stats["splits"].values())))
    for label, by_split in stats.get("excluded", {}).items():
        table.add_row(f"[dim]{label} (excluded)", *(f"[dim]{by_split[s]}" for s in splits),
                      f"[dim]{sum(by_split.values())}")
    console.print(table)
    for split, subjects in missing.items():
        console.print(f"{split}: subjects {', '.join(map(str, subjects))} are not in this folder "
                      f"(MotionSense's outside test is kept out of the project)", highlight=False)
