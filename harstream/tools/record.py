"""``harstream record``: record live streams into a recordings folder while they reach the engine unchanged.

The recorder is a pass-through in front of the engine's ingest: producers
PUSH to the recorder's own PULL endpoint (``--listen``), every message goes
on, byte for byte, to the engine's ingest (``--engine``), and a decoded copy
is appended to ``<folder>/<stream>.csv`` in the recordings format
(:mod:`harstream.data.recordings`, ``docs/own-data.md``). ``t`` is the chunk's
timestamps frame when it has one, else ``seq / rate`` (plus the first
chunk's ``t0 - seq / rate`` when it carries ``t0``, so ``t`` is unix time).

The activity comes from ``--label`` (the whole session) or from keys while
recording: ``1``-``9`` then ``a``, ``b``, ... pick an activity from the list
shown, ``0`` or space stops labelling, ``q`` stops recording. Each switch
ends one span and starts the next in every stream's ``labels.csv`` rows;
a switch at wall-clock time ``W`` lies at ``W + (t_last - w_last)`` in a
stream's ``t``, where ``t_last`` is the time of the stream's latest sample and
``w_last`` when it arrived. ``labels.csv`` is rewritten (atomically) at each
switch and at the end; rows already there from earlier sessions are kept.

A stream whose ``t`` goes back (the producer restarted it) continues in a
new file, ``<stream>-2.csv``. Ctrl-C, SIGTERM, ``q`` or ``--duration`` stop
cleanly: files are flushed and closed and ``labels.csv`` written.

>>> from harstream.protocol import decode_chunk, encode_chunk
>>> chunk = decode_chunk(encode_chunk("p", 50, np.zeros((2, 6)), rate=100, t0=1000.5))
>>> chunk_times(chunk, base=None)
(array([1000.5 , 1000.51]), 1000.0)
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES
from harstream.data.recordings import (
    LABELS_FILE,
    Span,
    check_activity,
    format_rows,
    header_line,
    list_recordings,
    read_labels,
    stream_name,
    write_labels,
)
from harstream.errors import DatasetError, HarstreamError, ProtocolError, ServeError
from harstream.protocol import DEFAULT_INGEST, MAX_SAMPLES_PER_CHUNK, Chunk, decode_chunk

DEFAULT_LISTEN = "tcp://127.0.0.1:5565"
"""Where the recorder binds its PULL socket by default (point producers here instead of the engine)."""
KEYS = "123456789abcdefghijklmnoprstuvwyz"
"""Keys picking activities, in the order of the activity list (``q`` stops, ``0``/space unlabels)."""
FLUSH_S = 1.0
"""Seconds between flushes of the CSV files."""


def chunk_times(chunk: Chunk, base: float | None) -> tuple[npt.NDArray[np.float64], float]:
    """The ``t`` of a chunk's samples and the stream's untimed base (``t = base + index / rate``).

    ``base`` is the stream's (None before its first chunk): the first chunk
    sets it to ``t0 - seq / rate`` when it has ``t0``, else 0.
    """
    if base is None:
        base = chunk.t0 - chunk.seq / chunk.rate if chunk.t0 is not None else 0.0
    if chunk.times is not None:
        return np.asarray(chunk.times, dtype=np.float64), base
    return base + (chunk.seq + np.arange(len(chunk.samples), dtype=np.float64)) / chunk.rate, base


def key_map(activities: Sequence[str]) -> dict[str, str]:
    """Key -> activity for the activity list (at most ``len(KEYS)`` activities).

    >>> key_map(["WALKING", "JOGGING"])
    {'1': 'WALKING', '2': 'JOGGING'}
    """
    if len(activities) > len(KEYS):
        raise HarstreamError(f"--activity: expected at most {len(KEYS)} activities in all, got {len(activities)}")
    return dict(zip(KEYS, activities, strict=False))


@dataclass
class Timeline:
    """The activity over wall-clock time: ``(from, activity or None)`` in order.

    >>> line = Timeline("WALKING")
    >>> line.switch("SITTING", 100.0); line.switch(None, 160.0)
    >>> line.spans(offset=-99.0, t_first=0.0, t_end=70.0)
    [(0.0, 1.0, 'WALKING'), (1.0, 61.0, 'SITTING')]
    """

    initial: str | None = None
    """The activity from the start (``--label``), None for unlabelled."""
    changes: list[tuple[float, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changes = [(-math.inf, self.initial)]

    @property
    def current(self) -> str | None:
        """The activity now."""
        return self.changes[-1][1]

    def switch(self, activity: str | None, wall: float) -> None:
        """The activity is ``activity`` from wall-clock time ``wall`` on."""
        if activity != self.current:
            self.changes.append((wall, activity))

    def spans(self, offset: float, t_first: float, t_end: float) -> list[tuple[float, float, str]]:
        """``(start, end, activity)`` in a stream's ``t`` (``t = wall + offset``), cut to ``[t_first, t_end)``."""
        out = []
        bounds = [*self.changes[1:], (math.inf, None)]
        for (wall, activity), (until, _) in zip(self.changes, bounds, strict=True):
            start, end = max(wall + offset, t_first), min(until + offset, t_end)
            if activity is not None and end > start:
                out.append((start, end, activity))
        return out


@dataclass
class StreamFile:
    """One recording file being written."""

    name: str
    """Recording name (the file is ``<name>.csv``)."""
    path: Path
    handle: IO[str]
    stream: str
    """The stream id it records."""
    samples: int = 0
    t_first: float = math.nan
    t_last: float = math.nan
    offset: float = 0.0
    """``t`` minus wall-clock time at the stream's latest chunk."""
    base: float | None = None
    """Untimed streams: ``t = base + index / rate``."""
    rate: float = 50.0
    """Nominal rate of its latest chunk, Hz."""

    @property
    def seconds(self) -> float:
        """Span of ``t`` recorded."""
        return 0.0 if self.samples < 2 else self.t_last - self.t_first

    @property
    def t_end(self) -> float:
        """End of the last sample's time slot: the exclusive end of a span covering every sample."""
        return self.t_last + 0.5 / self.rate


class Recorder:
    """Appends decoded chunks to CSV files of ``folder`` and keeps the labels' timeline."""

    def __init__(self, folder: Path, label: str | None = None, clock: Callable[[], float] = time.time) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.clock = clock
        if label is not None:
            check_activity(label, "--label")
        self.existing: list[Span] = read_labels(folder) if (folder / LABELS_FILE).is_file() else []
        self.taken = set(list_recordings(folder))
        self.timeline = Timeline(label)
        self.files: dict[str, StreamFile] = {}
        self.done: list[StreamFile] = []
        self.messages = 0
        self.rejected = 0
        self._last_flush = clock()
        write_labels(folder, self.existing)  # fails now, not at the end, if the folder is not writable

    def _open(self, stream: str) -> StreamFile:
        base = stream_name(stream)
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}-{k}"
        self.taken.add(name)
        path = self.folder / f"{name}.csv"
        handle = path.open("w", encoding="utf-8", newline="\n")
        handle.write(header_line())
        return StreamFile(name, path, handle, stream)

    def take(self, frames: Sequence[bytes], wall: float | None = None) -> Chunk | None:
        """Record one ingest message (None, counted, when it breaks the protocol)."""
        wall = self.clock() if wall is None else wall
        self.messages += 1
        try:
            chunk = decode_chunk(frames)
        except ProtocolError:
            self.rejected += 1
            return None
        current = self.files.get(chunk.stream)
        t, base = chunk_times(chunk, None if current is None else current.base)
        if current is not None and current.samples and not t[0] > current.t_last:
            self._finish(current)  # t went back: the producer restarted the stream
            current = None
            t, base = chunk_times(chunk, None)
        if current is None:
            current = self.files[chunk.stream] = self._open(chunk.stream)
        if not current.samples:
            current.t_first = float(t[0])
        current.handle.write(format_rows(t, chunk.samples))
        current.samples += len(t)
        current.t_last = float(t[-1])
        current.offset = current.t_last - wall
        current.base = base
        current.rate = chunk.rate
        if wall - self._last_flush >= FLUSH_S:
            self.flush(wall)
        return chunk

    def switch(self, activity: str | None, wall: float | None = None) -> None:
        """Label from now on with ``activity`` (None: unlabelled); ``labels.csv`` is rewritten."""
        self.timeline.switch(activity, self.clock() if wall is None else wall)
        self.write_labels()

    def spans(self) -> list[Span]:
        """Every span of this session, per recording file."""
        out = []
        for f in [*self.done, *self.files.values()]:
            if f.samples:
                out += [Span(f.name, a, b, activity) for a, b, activity in
                        self.timeline.spans(f.offset, f.t_first, f.t_end)]
        return out

    def write_labels(self) -> Path:
        """Write ``labels.csv``: the earlier sessions' rows, then this session's."""
        return write_labels(self.folder, [*self.existing, *self.spans()])

    def flush(self, wall: float | None = None) -> None:
        """Flush every open file to disk."""
        for f in self.files.values():
            f.handle.flush()
        self._last_flush = self.clock() if wall is None else wall

    def _finish(self, f: StreamFile) -> None:
        f.handle.close()
        if f.samples:
            self.done.append(f)
        else:
            f.path.unlink(missing_ok=True)
            self.taken.discard(f.name)
        self.files.pop(f.stream, None)

    def close(self) -> dict[str, Any]:
        """Close every file, write ``labels.csv``; returns the session's summary."""
        self.timeline.switch(None, self.clock())
        for f in list(self.files.values()):
            self._finish(f)
        self.write_labels()
        spans = self.spans()
        return {
            "folder": str(self.folder),
            "messages": self.messages,
            "rejected": self.rejected,
            "recordings": [
                {"name": f.name, "stream": f.stream, "file": str(f.path), "samples": f.samples,
                 "seconds": round(f.seconds, 3),
                 "spans": [[round(s.start_s, 6), round(s.end_s, 6), s.activity] for s in spans
                           if s.recording == f.name]}
                for f in self.done
            ],
        }


# -- the live loop ---------------------------------------------------------------------------------


def _view(recorder: Recorder, keys: dict[str, str], forwarded: int, dropped: int, target: str | None,
          started: float, keys_active: bool) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = time.monotonic()
    current = recorder.timeline.current
    head = Text.assemble(
        ("recording ", "bold"), (current or "(unlabelled)", "bold green" if current else "dim"),
        f"  {now - started:,.0f} s  ·  {recorder.messages:,} messages",
        f", forwarded {forwarded:,} to {target}" if target else ", not forwarded (--engine none)",
        (f", {dropped:,} NOT forwarded (engine not taking them)" if dropped else "", "yellow"),
        (f", {recorder.rejected:,} broke the protocol" if recorder.rejected else "", "yellow"),
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("file", "stream", "samples", "seconds", "Hz"):
        table.add_column(column, justify="left" if column in ("file", "stream") else "right")
    for f in [*recorder.done, *recorder.files.values()]:
        rate = f.samples / f.seconds if f.seconds > 0 else 0.0
        table.add_row(f"{f.name}.csv", f.stream, f"{f.samples:,}", f"{f.seconds:,.1f}", f"{rate:.0f}")
    if not recorder.files and not recorder.done:
        table.add_row("(waiting for a producer)", "", "", "", "")
    if keys_active:
        help_text = "keys: " + "  ".join(f"{k} {a}" for k, a in keys.items()) + "  0/space unlabelled  q stop"
    else:
        help_text = "Ctrl-C stops (no terminal: keys are off)"
    return Group(head, table, Text(help_text, style="dim"))


def record(
    folder: Path,
    listen: str = DEFAULT_LISTEN,
    engine: str | None = DEFAULT_INGEST,
    label: str | None = None,
    activities: Sequence[str] = (),
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    progress: bool = True,
    on_ready: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Record (and forward) until ``stop`` is set, ``q`` is pressed or ``duration_s`` passes."""
    import zmq
    from rich.console import Console
    from rich.live import Live

    from harstream.tools.keypress import KeyReader

    listed = list(dict.fromkeys([*ACTIVITIES, *activities, *([label] if label else [])]))
    for name in listed:
        check_activity(name, "--activity")
    keys = key_map(listed)
    stop = stop or threading.Event()
    recorder = Recorder(folder, label)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.MAXMSGSIZE, MAX_SAMPLES_PER_CHUNK * 24)
    push = None
    try:
        try:
            pull.bind(listen)
        except zmq.ZMQError as exc:
            raise ServeError(f"cannot bind the recorder's endpoint {listen!r}: {exc}") from None
        if engine is not None:
            push = context.socket(zmq.PUSH)
            push.setsockopt(zmq.SNDHWM, 10_000)
            push.setsockopt(zmq.LINGER, 5000)
            push.connect(engine)
        bound = pull.getsockopt(zmq.LAST_ENDPOINT)
        endpoint = bound.decode() if isinstance(bound, bytes) else str(bound)
        if on_ready is not None:
            on_ready(endpoint)
        forwarded = dropped = 0
        started = time.monotonic()
        err = Console(stderr=True)
        reader = KeyReader()
        live: Any = Live(console=err, refresh_per_second=4, transient=False) if progress else _NoLive()
        with reader, live:
            last_view = 0.0
            while not stop.is_set():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                if pull.poll(50):
                    for _ in range(1000):
                        try:
                            frames = pull.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        if push is not None:
                            try:
                                push.send_multipart(frames, zmq.NOBLOCK)
                                forwarded += 1
                            except zmq.Again:
                                dropped += 1
                        recorder.take(frames)
                pressed = reader.read(0.0)
                if "q" in pressed:
                    break
                for key in pressed:
                    if key in ("0", " "):
                        recorder.switch(None)
                    elif key in keys:
                        recorder.switch(keys[key])
                if progress and time.monotonic() - last_view >= 0.25:
                    last_view = time.monotonic()
                    live.update(_view(recorder, keys, forwarded, dropped, engine, started, reader.active))
            if progress:
                live.update(_view(recorder, keys, forwarded, dropped, engine, started, reader.active))
        summary = recorder.close()
        summary.update(forwarded=forwarded, not_forwarded=dropped, engine=engine, listen=endpoint)
        return summary
    except BaseException:
        recorder.close()
        raise
    finally:
        pull.close(linger=0)
        if push is not None:
            push.close()
        context.term()


class _NoLive:
    """Stands in for ``rich.live.Live`` without progress."""

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: Any) -> None:
        return None


def describe(summary: dict[str, Any]) -> str:
    """The summary as readable lines."""
    out = io.StringIO()
    recordings = summary["recordings"]
    out.write(f"recorded {len(recordings)} recording(s) into {summary['folder']} "
              f"({summary['messages']:,} messages, {summary['forwarded']:,} forwarded")
    if summary.get("not_forwarded"):
        out.write(f", {summary['not_forwarded']:,} NOT forwarded")
    if summary.get("rejected"):
        out.write(f", {summary['rejected']:,} broke the protocol and were not recorded")
    out.write(")\n")
    for r in recordings:
        spans = ", ".join(f"{a} {e - s:.1f} s" for s, e, a in r["spans"]) or "unlabelled"
        out.write(f"  {Path(r['file']).name}: {r['samples']:,} samples, {r['seconds']:.1f} s; {spans}\n")
    return out.getvalue()


def check_folder(folder: Path) -> None:
    """Refuse a path that is a file, or a folder whose ``labels.csv`` is broken (named in the error)."""
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"--out {folder}: expected a folder (new or a recordings folder), got a file")
    if (folder / LABELS_FILE).is_file():
        read_labels(folder)
