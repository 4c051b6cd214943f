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

A stream whose ``t`` goes back continues in a new file, ``<stream>-2.csv``,
when the chunk says ``restart``, changes the stream's rate or timing (the
engine restarts the stream then), or its own ``t0`` puts it past the file's
end (the producer restarted it); otherwise the chunk replays what the file
holds and, as the engine drops it (``seq_replay``), it is not recorded but
counted. Names come from the reader's rule (:func:`recording_name`): never
``labels`` or another reserved name, never longer than the reader takes. A
file is created once it holds two samples, and ``t`` kept increasing as
written and within the reader's range; a finished file whose rate the reader
might refuse is read back with the reader's own checks, and set aside as
``<name>.csv.refused`` (reported) if refused, so the folder stays readable. At most
a bounded number of files are open at once (:mod:`harstream.tools.record_files`).

Forwarding counts only what a connected engine took (:mod:`harstream.tools.record_relay`). Ctrl-C,
SIGTERM, ``q`` or ``--duration`` stop cleanly: what is still arriving is
recorded and forwarded for a bounded time (:func:`drain`), whatever comes
after is counted, files are closed and ``labels.csv`` written.

>>> from harstream.protocol import decode_chunk, encode_chunk
>>> chunk = decode_chunk(encode_chunk("p", 50, np.zeros((2, 6)), rate=100, t0=1000.5))
>>> chunk_times(chunk, base=None)
(array([1000.5 , 1000.51]), 1000.0)
"""

from __future__ import annotations

import errno
import io
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES, DEFAULT_INGEST, MAX_SAMPLES_PER_CHUNK
from harstream.data.recordings import (
    LABELS_FILE,
    MAX_T_S,
    MIN_SAMPLES,
    Span,
    as_written,
    check_activity,
    format_rows,
    header_line,
    list_recordings,
    read_labels,
    read_samples,
    recording_name,
    write_labels,
)
from harstream.errors import DatasetError, HarstreamError, ProtocolError, ServeError
from harstream.protocol import Chunk, decode_chunk
from harstream.signal.resample import MAX_RATE_HZ, MIN_RATE_HZ
from harstream.tools.record_files import OpenFiles
from harstream.tools.record_relay import Relay, drain, pump

DEFAULT_LISTEN = "tcp://127.0.0.1:5565"
"""Where the recorder binds its PULL socket by default (point producers here instead of the engine)."""
KEYS = "123456789abcdefghijklmnoprstuvwyz"
"""Keys picking activities, in the order of the activity list (``q`` stops, ``0``/space unlabels)."""


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
    """One recording file of a stream: created once it holds :data:`MIN_SAMPLES` samples (rows wait
    in ``pending`` till then), so no file the reader refuses for being short is ever written."""

    name: str
    """Recording name (the file is ``<name>.csv``)."""
    path: Path
    stream: str
    """The stream id it records."""
    created: bool = False
    """Whether the file exists (else its rows wait in ``pending``)."""
    pending: str = ""
    samples: int = 0
    """Samples taken, pending ones included."""
    t_first: float = math.nan
    t_last: float = math.nan
    """``t`` of the latest sample, as the file holds it (:func:`as_written`)."""
    offset: float = 0.0
    """``t`` minus wall-clock time at the stream's latest chunk."""
    base: float | None = None
    """Untimed streams: ``t = base + index / rate``."""
    rate: float = 50.0
    """Nominal rate of its latest chunk, Hz."""
    timed: bool = False
    """Whether its latest chunk carried timestamps."""
    slow_steps: int = 0
    """Steps between samples slower than the reader's lowest rate (:data:`MIN_RATE_HZ`)."""
    fast_steps: int = 0
    """Steps faster than its highest (:data:`MAX_RATE_HZ`)."""

    @property
    def rate_in_doubt(self) -> bool:
        """Whether the reader might refuse the file's rate (one over its median step): it cannot when fewer
        than half the steps are too slow and fewer than half too fast, as the median then lies in between."""
        steps = self.samples - 1
        return 2 * self.slow_steps >= steps or 2 * self.fast_steps >= steps

    @property
    def seconds(self) -> float:
        """Span of ``t`` recorded."""
        return 0.0 if self.samples < 2 else self.t_last - self.t_first

    @property
    def t_end(self) -> float:
        """End of the last sample's time slot: the exclusive end of a span covering every sample."""
        return self.t_last + 0.5 / self.rate


@dataclass
class Losses:
    """What a :class:`Recorder` took but did not keep, by cause (each counted, none silent)."""

    rejected: int = 0
    """Messages that broke the protocol."""
    replayed: int = 0
    """Chunks whose ``t`` did not pass the stream's latest, without ``restart``: replays, as the engine's
    ``seq_replay``."""
    unwritten: int = 0
    """Chunks the file system refused (``write_error`` says why)."""
    write_error: str = ""
    same_microsecond: int = 0
    """Samples within a microsecond of the one before (``t`` is written to the microsecond)."""
    out_of_range: int = 0
    """Chunks with a ``t`` beyond the reader's ±:data:`MAX_T_S`."""
    short: int = 0
    """Recordings left unwritten for holding fewer than :data:`MIN_SAMPLES` samples."""
    refused: list[dict[str, Any]] = field(default_factory=list)
    """Files the reader refused when finished, set aside as ``<name>.csv.refused``."""


class Recorder:
    """Appends decoded chunks to CSV files of ``folder`` and keeps the labels' timeline.

    At most ``max_open`` files are open at once (:class:`OpenFiles`)."""

    def __init__(self, folder: Path, label: str | None = None, clock: Callable[[], float] = time.time,
                 max_open: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.clock = clock
        if label is not None:
            check_activity(label, "--label")
        self.existing: list[Span] = read_labels(folder) if (folder / LABELS_FILE).is_file() else []
        self.taken = set(list_recordings(folder))
        self.timeline = Timeline(label)
        self.open_files = OpenFiles(max_open)
        self.files: dict[str, StreamFile] = {}
        self.files_made: dict[str, int] = {}
        """How many files each stream has had: where its next name's search starts."""
        self.done: list[StreamFile] = []
        self.messages = 0
        self.losses = Losses()
        write_labels(folder, self.existing)  # fails now, not at the end, if the folder is not writable

    def _new_file(self, stream: str) -> StreamFile:
        made = self.files_made[stream] = self.files_made.get(stream, 0) + 1
        name = recording_name(stream, self.taken, first=made)
        self.taken.add(name)
        f = self.files[stream] = StreamFile(name, self.folder / f"{name}.csv", stream)
        return f

    def take(self, frames: Sequence[bytes], wall: float | None = None) -> Chunk | None:
        """Record one ingest message; None, counted in :attr:`losses`, when nothing of it was recorded."""
        wall = self.clock() if wall is None else wall
        self.messages += 1
        try:
            chunk = decode_chunk(frames)
        except ProtocolError:
            self.losses.rejected += 1
            return None
        placed = self._place(chunk)
        if placed is None:
            self.losses.replayed += 1
            return None
        f, t, base = placed
        if not (np.abs(t) <= MAX_T_S).all():
            self.losses.out_of_range += 1
            return None
        steps = np.diff(t, prepend=f.t_last if f.samples else -math.inf)
        keep = steps > 0
        t, steps = t[keep], steps[keep][0 if f.samples else 1:]
        try:
            self._write(f, format_rows(t, chunk.samples[keep]), len(t))
        except OSError as exc:
            self.losses.unwritten += 1
            self.losses.write_error = f"{f.path}: {exc.strerror or exc}"
            return None
        self.losses.same_microsecond += len(keep) - len(t)
        rates = 1.0 / steps
        f.slow_steps += int((rates < MIN_RATE_HZ).sum())
        f.fast_steps += int((rates > MAX_RATE_HZ).sum())
        if not f.samples:
            f.t_first = float(t[0])
        f.samples += len(t)
        f.t_last = float(t[-1])
        f.offset = f.t_last - wall
        f.base = base
        f.rate = chunk.rate
        f.timed = chunk.times is not None
        return chunk

    def _place(self, chunk: Chunk) -> tuple[StreamFile, npt.NDArray[np.float64], float] | None:
        """The file a chunk goes to and its samples' ``t`` as written, None for a replay.

        A chunk continues its stream's file when its ``t`` passes the file's last; a chunk whose ``t`` goes
        back starts a new file when it says ``restart``, changes the stream's rate or timing (the engine
        restarts the stream then), or its own ``t0`` moves it past the file's last (the producer restarted
        the stream); else it replays what the file holds and is not recorded.
        """
        f = self.files.get(chunk.stream)
        if f is not None and f.samples:
            t, base = chunk_times(chunk, f.base)
            t = as_written(t)
            if t[0] > f.t_last:
                return f, t, base
            t, base = chunk_times(chunk, None)
            t = as_written(t)
            if not (chunk.restart or t[0] > f.t_last or chunk.rate != f.rate
                    or (chunk.times is not None) != f.timed):
                return None
            self._finish(f)
            f = None
        else:
            t, base = chunk_times(chunk, None)
            t = as_written(t)
        return f or self._new_file(chunk.stream), t, base

    def _write(self, f: StreamFile, rows: str, n: int) -> None:
        """Append ``n`` rows; a file is created when it first holds :data:`MIN_SAMPLES` samples."""
        if f.created:
            self.open_files.append(f.path, rows.encode())
            return
        if f.samples + n < MIN_SAMPLES:
            f.pending += rows
            return
        for _ in range(100):
            try:
                self.open_files.create(f.path)
                break
            except FileExistsError:  # the folder changed, or a file system ignoring case has that name
                self.taken.add(f.name)
                f.name = recording_name(f.stream, self.taken)
                f.path = self.folder / f"{f.name}.csv"
                self.taken.add(f.name)
        else:
            raise FileExistsError(errno.EEXIST, "no free name after 100 tries", str(f.path))
        try:
            self.open_files.append(f.path, (header_line() + f.pending + rows).encode())
        except OSError:
            f.path.unlink(missing_ok=True)
            raise
        f.created, f.pending = True, ""

    def switch(self, activity: str | None, wall: float | None = None) -> None:
        """Label from now on with ``activity`` (None: unlabelled); ``labels.csv`` is rewritten."""
        self.timeline.switch(activity, self.clock() if wall is None else wall)
        self.write_labels()

    def spans(self) -> list[Span]:
        """Every span of this session, per recording file written."""
        out = []
        for f in [*self.done, *self.files.values()]:
            if f.created:
                out += [Span(f.name, a, b, activity) for a, b, activity in
                        self.timeline.spans(f.offset, f.t_first, f.t_end)]
        return out

    def write_labels(self) -> Path:
        """Write ``labels.csv``: the earlier sessions' rows, then this session's."""
        return write_labels(self.folder, [*self.existing, *self.spans()])

    def _finish(self, f: StreamFile) -> None:
        """Close a stream's file. Every rule of the reader holds by construction (names, two samples, ``t``
        increasing and in range, values as the protocol bounds them) but the rate, one over the median step:
        a file whose rate is in doubt is read back by the reader, and set aside as ``<name>.csv.refused``
        (reported) if it refuses it, so the folder stays readable."""
        self.files.pop(f.stream, None)
        self.open_files.close(f.path)
        if not f.created:
            self.taken.discard(f.name)
            self.losses.short += f.samples > 0
            return
        try:
            if f.rate_in_doubt:
                read_samples(f.path)
        except (DatasetError, OSError) as exc:
            aside = f.path.with_name(f"{f.path.name}.refused")
            for k in range(2, 1000):
                if not aside.exists():
                    break
                aside = f.path.with_name(f"{f.path.name}.refused-{k}")
            f.path.replace(aside)
            self.losses.refused.append({"file": str(aside), "stream": f.stream, "samples": f.samples,
                                        "reason": str(exc)})
            self.write_labels()  # no longer naming it
            return
        self.done.append(f)

    def close(self) -> dict[str, Any]:
        """Close every file, write ``labels.csv``; returns the session's summary."""
        self.timeline.switch(None, self.clock())
        for f in list(self.files.values()):
            self._finish(f)
        self.open_files.close_all()
        self.write_labels()
        spans = self.spans()
        losses = self.losses
        return {
            "folder": str(self.folder),
            "messages": self.messages,
            "rejected": losses.rejected,
            "replayed": losses.replayed,
            "unwritten": losses.unwritten,
            "write_error": losses.write_error,
            "same_microsecond": losses.same_microsecond,
            "out_of_range": losses.out_of_range,
            "too_short": losses.short,
            "refused": losses.refused,
            "recordings": [
                {"name": f.name, "stream": f.stream, "file": str(f.path), "samples": f.samples,
                 "seconds": round(f.seconds, 3),
                 "spans": [[round(s.start_s, 6), round(s.end_s, 6), s.activity] for s in spans
                           if s.recording == f.name]}
                for f in self.done
            ],
        }


# -- the live loop ---------------------------------------------------------------------------------


def _view(recorder: Recorder, keys: dict[str, str], relay: Relay, started: float, keys_active: bool) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = time.monotonic()
    current = recorder.timeline.current
    losses = recorder.losses
    if relay.engine is None:
        engine = ", not forwarded (--engine none)"
    else:
        engine = f", forwarded {relay.forwarded:,} to {relay.engine}"
    head = Text.assemble(
        ("recording ", "bold"), (current or "(unlabelled)", "bold green" if current else "dim"),
        f"  {now - started:,.0f} s  ·  {recorder.messages:,} messages", engine,
        (f", {relay.dropped:,} NOT forwarded (no engine taking them)" if relay.dropped else "", "yellow"),
        (f", {losses.rejected:,} broke the protocol" if losses.rejected else "", "yellow"),
        (f", {losses.replayed:,} replays not recorded" if losses.replayed else "", "yellow"),
        (f", {losses.unwritten:,} NOT written ({losses.write_error})" if losses.unwritten else "", "red"),
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
    """Record (and forward) until ``stop`` is set, ``q`` is pressed or ``duration_s`` passes; then
    :func:`drain` what is still arriving."""
    import zmq
    from rich.console import Console

    listed = list(dict.fromkeys([*ACTIVITIES, *activities, *([label] if label else [])]))
    for name in listed:
        check_activity(name, "--activity")
    keys = key_map(listed)
    recorder = Recorder(folder, label)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.MAXMSGSIZE, MAX_SAMPLES_PER_CHUNK * 24)
    relay = None
    try:
        try:
            pull.bind(listen)
        except zmq.ZMQError as exc:
            raise ServeError(f"cannot bind the recorder's endpoint {listen!r}: {exc}") from None
        relay = Relay(context, engine)
        err = Console(stderr=True)
        if engine is not None and not relay.ready():
            err.print(f"harstream record: no engine is taking messages at {engine}: recording goes on, and "
                      "forwarding starts once one does (messages until then are counted as not forwarded)",
                      style="yellow", highlight=False, markup=False)
        bound = pull.getsockopt(zmq.LAST_ENDPOINT)
        endpoint = bound.decode() if isinstance(bound, bytes) else str(bound)
        if on_ready is not None:
            on_ready(endpoint)
        _loop(pull, relay, recorder, keys, stop or threading.Event(), duration_s, err if progress else None)
        left = drain(pull, relay, recorder.take)
        summary = recorder.close()
        summary.update(forwarded=relay.forwarded, not_forwarded=relay.dropped, engine=engine,
                       engine_connected=relay.seen, left=left, listen=endpoint)
        return summary
    except BaseException:
        recorder.close()
        raise
    finally:
        pull.close(linger=0)
        if relay is not None:
            relay.close()
        context.term()


def _loop(pull: Any, relay: Relay, recorder: Recorder, keys: dict[str, str], stop: threading.Event,
          duration_s: float | None, console: Any) -> None:
    """Forward, record and read keys until a stop; the live view on ``console`` (None: no view)."""
    from rich.live import Live

    from harstream.tools.keypress import KeyReader

    started = time.monotonic()
    reader = KeyReader()
    live: Any = Live(console=console, refresh_per_second=4, transient=False) if console else _NoLive()
    with reader, live:
        last_view = 0.0
        while not stop.is_set():
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            if pull.poll(50):
                pump(pull, relay, recorder.take)
            pressed = reader.read(0.0)
            if "q" in pressed:
                break
            for key in pressed:
                if key in ("0", " "):
                    recorder.switch(None)
                elif key in keys:
                    recorder.switch(keys[key])
            if console and time.monotonic() - last_view >= 0.25:
                last_view = time.monotonic()
                live.update(_view(recorder, keys, relay, started, reader.active))
        if console:
            live.update(_view(recorder, keys, relay, started, reader.active))


class _NoLive:
    """Stands in for ``rich.live.Live`` without progress."""

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: Any) -> None:
        return None


def describe(summary: dict[str, Any]) -> str:
    """The summary as readable lines: what was recorded, and every message or sample that was not.

    >>> print(describe({"folder": "mine", "messages": 3, "forwarded": 0, "not_forwarded": 3, "engine": "tcp://e",
    ...                 "engine_connected": False, "replayed": 1, "recordings": []}), end="")
    recorded 0 recording(s) into mine (3 messages, 0 forwarded, 3 NOT forwarded)
      no engine ever connected at tcp://e: nothing was forwarded
      1 chunk(s) replayed what their stream already held (t did not advance, no restart): not recorded
    """
    out = io.StringIO()
    recordings = summary["recordings"]
    out.write(f"recorded {len(recordings)} recording(s) into {summary['folder']} "
              f"({summary['messages']:,} messages, {summary['forwarded']:,} forwarded")
    if summary.get("not_forwarded"):
        out.write(f", {summary['not_forwarded']:,} NOT forwarded")
    if summary.get("rejected"):
        out.write(f", {summary['rejected']:,} broke the protocol and were not recorded")
    out.write(")\n")
    notes = {
        "engine_connected": f"no engine ever connected at {summary.get('engine')}: nothing was forwarded",
        "left": "{:,} message(s) still arriving after the stop were neither recorded nor forwarded",
        "replayed": "{:,} chunk(s) replayed what their stream already held (t did not advance, no restart): "
                    "not recorded",
        "unwritten": "{:,} chunk(s) NOT written: " + str(summary.get("write_error")),
        "same_microsecond": "{:,} sample(s) within a microsecond of the one before were not written",
        "out_of_range": f"{{:,}} chunk(s) with t beyond ±{MAX_T_S:.4g} s (what the reader takes) were not written",
        "too_short": f"{{:,}} recording(s) of fewer than {MIN_SAMPLES} samples were not written",
    }
    for key, text in notes.items():
        value = summary.get(key)
        if key == "engine_connected":
            if summary.get("engine") is not None and value is False:
                out.write(f"  {text}\n")
        elif value:
            out.write(f"  {text.format(value)}\n")
    for r in summary.get("refused", []):
        out.write(f"  {Path(r['file']).name}: set aside, the reader refuses it: {r['reason']}\n")
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
