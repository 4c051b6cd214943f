"""How the dashboard looks: pure functions from a :class:`Snapshot` to rich renderables.

>>> import io
>>> from rich.console import Console
>>> from harstream.tools.dashboard.state import DashboardState
>>> console = Console(width=100, file=io.StringIO(), color_system=None)
>>> console.print(render(DashboardState("tcp://127.0.0.1:5556").snapshot(now=0.0)))
>>> "waiting for engine at tcp://127.0.0.1:5556" in console.file.getvalue()
True
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import groupby

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harstream.tools.dashboard.state import Snapshot, StreamView

ACTIVITY_COLORS: dict[str, str] = {
    "WALKING": "green",
    "WALKING_UPSTAIRS": "yellow",
    "WALKING_DOWNSTAIRS": "magenta",
    "SITTING": "bright_blue",
    "STANDING": "cyan",
    "LAYING": "white",
}
"""One fixed colour per activity (the 16 ANSI colours, so any terminal theme shows them)."""
SHORT_NAMES: dict[str, str] = {"WALKING_UPSTAIRS": "UPSTAIRS", "WALKING_DOWNSTAIRS": "DOWNSTAIRS"}
"""Display names where the label is long."""
STALE_S = 5.0
"""A stream without a prediction for this long is dimmed, and may leave the table."""
TIMELINE = 30
"""Windows in the recent-labels strip, when the width allows."""
CHROME_LINES = 14
"""Lines around the stream rows: header panel, table head, summary, counts, errors."""

_OTHER_COLORS = ("bright_red", "bright_green", "bright_yellow", "bright_magenta", "bright_cyan")
_EIGHTHS = " ▏▎▍▌▋▊▉█"
_BLOCK = "█"
_FIXED_COLUMNS = 62  # every column but stream and timeline, with padding


def activity_color(label: str) -> str:
    """The colour of an activity; labels of other models get a stable colour of their own."""
    color = ACTIVITY_COLORS.get(label)
    return color or _OTHER_COLORS[zlib.crc32(label.encode()) % len(_OTHER_COLORS)]


def short_name(label: str) -> str:
    """The label as the dashboard writes it."""
    return SHORT_NAMES.get(label, label)


def rows_for_height(height: int) -> int:
    """How many stream rows fit a terminal ``height`` lines tall (at least 3)."""
    return max(3, height - CHROME_LINES)


def pick_rows(
    snapshot: Snapshot, max_rows: int, keep: Iterable[str] = (), stale_s: float = STALE_S
) -> tuple[StreamView, ...]:
    """The streams to show, in natural id order: all if they fit, else the most recent.

    Streams in ``keep`` (the rows shown last time) stay while they are fresh,
    so a screen of 1,000 streams does not reshuffle on every redraw.
    """
    streams = snapshot.streams
    if len(streams) > max_rows:
        by_id = {v.stream: v for v in streams}
        fresh = snapshot.now - stale_s
        chosen = [by_id[s] for s in dict.fromkeys(keep) if s in by_id and by_id[s].updated >= fresh]
        del chosen[max_rows:]
        taken = {v.stream for v in chosen}
        for view in streams:  # most recently updated first
            if len(chosen) >= max_rows:
                break
            if view.stream not in taken:
                chosen.append(view)
        streams = tuple(chosen)
    return tuple(sorted(streams, key=lambda v: _natural(v.stream)))


def render(
    snapshot: Snapshot,
    max_rows: int = 20,
    width: int | None = None,
    rows: Sequence[StreamView] | None = None,
) -> RenderableType:
    """The whole dashboard; ``rows`` defaults to :func:`pick_rows` of ``max_rows``."""
    shown = tuple(rows) if rows is not None else pick_rows(snapshot, max_rows)
    parts: list[RenderableType] = [header(snapshot)]
    if shown:
        id_width = min(24, max(len(v.stream) for v in shown))
        free = TIMELINE if width is None else width - _FIXED_COLUMNS - id_width
        parts.append(stream_table(snapshot, shown, max(5, min(TIMELINE, free))))
    else:
        hint = "\nno predictions yet: streams appear as their windows are classified"
        parts.append(Text(hint, style="dim"))
    summary = hidden_summary(snapshot, shown)
    if summary:
        parts.append(summary)
    parts.append(activity_counts(snapshot, min(100, (width or 100) - 2)))
    parts.append(error_lines(snapshot))
    return Group(*parts)


def header(snapshot: Snapshot) -> Panel:
    """Engine totals from ``$stats`` and the connection status."""
    if snapshot.status == "connected":
        status = Text(f"● connected to {snapshot.endpoint}", style="green")
    else:
        status = Text(
            f"◌ waiting for engine at {snapshot.endpoint} (silent {snapshot.silent_s:.0f} s)",
            style="bold yellow",
        )
        if snapshot.status == "silent":
            status.append(" — reconnecting", style="yellow")
    stats = snapshot.stats
    items: list[tuple[str, str]] = [("seen here", f"{len(snapshot.streams):,}")]
    if stats is not None:
        items = [
            ("streams", f"{stats.streams:,}"),
            *items,
            ("windows/s", f"{stats.windows_per_s:,.1f}"),
            ("latency p50", _ms(stats.p50_ms)),
            ("p99", _ms(stats.p99_ms)),
            ("rejected", f"{stats.rejected:,}"),
            ("uptime", _duration(stats.uptime_s)),
        ]
    cells = [Text.assemble((f"{name} ", "dim"), (value, "bold")) for name, value in items]
    if stats is None:
        cells.append(Text("no $stats yet", style="dim"))
    if snapshot.invalid:
        cells.append(Text(f"invalid {snapshot.invalid:,} (protocol mismatch?)", style="bold red"))
    fresh = snapshot.status == "connected"
    for cell in cells if not fresh else ():
        cell.stylize("dim")
    body = Columns(cells, padding=(0, 3))
    border = "green" if fresh else "yellow"
    return Panel(body, title=status, title_align="left", border_style=border, box=box.ROUNDED)


def stream_table(snapshot: Snapshot, rows: Sequence[StreamView], span: int) -> Table:
    """One row per stream: activity, confidence, recent labels, counts, latency, age."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold dim")
    table.add_column("stream", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("activity", no_wrap=True, min_width=10)
    table.add_column("confidence", no_wrap=True, min_width=15)
    table.add_column("recent", no_wrap=True, min_width=span, justify="right")
    table.add_column("windows", justify="right", no_wrap=True)
    table.add_column("latency", justify="right", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    for view in rows:
        age = snapshot.now - view.updated
        table.add_row(
            view.stream,
            Text(short_name(view.activity), style=f"bold {activity_color(view.activity)}"),
            confidence_bar(view.confidence, activity_color(view.activity)),
            timeline(view.history, span),
            f"{view.windows:,}",
            _ms(view.latency_ms),
            _duration(age),
            style="dim" if age > STALE_S else None,
        )
    return table


def confidence_bar(value: float, color: str, width: int = 10) -> Text:
    """A bar of block characters (eighths) and a percentage."""
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    full, rest = divmod(eighths, 8)
    bar = _BLOCK * full + (_EIGHTHS[rest] if rest else "")
    text = Text(bar.ljust(width), style=color)
    text.append(f" {value:4.0%}", style="bold red" if value < 0.5 else "")
    return text


def timeline(history: Sequence[str], span: int) -> Text:
    """The last ``span`` labels, one coloured block each, newest on the right."""
    text = Text(" " * max(0, span - len(history)))
    for label, run in groupby(history[-span:]):
        text.append(_BLOCK * len(list(run)), style=activity_color(label))
    return text


def hidden_summary(snapshot: Snapshot, shown: Sequence[StreamView]) -> Text:
    """'… and N more streams: …' for the streams not in the table (empty when none)."""
    ids = {v.stream for v in shown}
    tally = Counter(v.activity for v in snapshot.streams if v.stream not in ids)
    hidden = sum(tally.values())
    if not hidden:
        return Text()
    text = Text(f"… and {hidden:,} more stream{'s' * (hidden != 1)}: ", style="dim",
                no_wrap=True, overflow="ellipsis")
    for i, (label, n) in enumerate(tally.most_common()):
        text.append(", " if i else "", style="dim")
        text.append(f"{n:,} ", style="dim")
        text.append(short_name(label), style=activity_color(label))
    return text


def activity_counts(snapshot: Snapshot, width: int) -> Group:
    """Streams per current activity: one stacked bar and its legend."""
    total = sum(n for _, n in snapshot.counts)
    bar = Text()
    for (label, _), cells in zip(snapshot.counts, _shares(snapshot.counts, width), strict=True):
        bar.append(_BLOCK * cells, style=activity_color(label))
    legend = Columns(
        [
            Text.assemble(
                (_BLOCK + " ", activity_color(label)),
                (f"{short_name(label)} ", "bold" if n else "dim"),
                (f"{n:,}" + (f" {n / total:.0%}" if n else ""), "dim"),
            )
            for label, n in snapshot.counts
        ],
        padding=(0, 2),
    )
    return Group(Text(), bar, legend) if total else Group(Text(), legend)


def error_lines(snapshot: Snapshot, limit: int = 2) -> Group:
    """The last ``limit`` ``$error`` reports, newest last, one line each."""
    if not snapshot.errors:
        return Group(Text("no $error reports", style="dim"))
    lines = [Text(f"$error reports: {snapshot.errors_total:,}", style="bold red")]
    for line in snapshot.errors[-limit:]:
        event = line.event
        lines.append(
            Text.assemble(
                (f"  {_duration(snapshot.now - line.at)} ago ", "dim"),
                (f"{event.stream or '(unreadable id)'} ", "bold"),
                (f"{event.code}: ", "red"),
                event.detail,
                no_wrap=True,
                overflow="ellipsis",
            )
        )
    return Group(*lines)


def _shares(counts: Sequence[tuple[str, int]], width: int) -> list[int]:
    """``width`` cells split in proportion to the counts (largest remainder)."""
    total = sum(n for _, n in counts)
    if not total:
        return [0] * len(counts)
    exact = [n * width / total for _, n in counts]
    cells = [int(x) for x in exact]
    by_rest = sorted(range(len(counts)), key=lambda i: cells[i] - exact[i])
    for i in by_rest[: width - sum(cells)]:
        cells[i] += 1
    return cells


def _natural(stream: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``phone-2`` before ``phone-10``."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", stream) if t)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
