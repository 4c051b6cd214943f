"""Playing streams into the engine: chunked, interleaved, paced like live devices.

Every stream is cut into chunks of ``chunk`` samples; round ``k`` sends
chunk ``k`` of every stream (round-robin) at ``start + k * chunk / 50 / speed``
seconds (``speed`` 0: as fast as the engine takes them). One PUSH socket
connects to the engine's ingest endpoint; sends block while the engine is
not connected and at the high-water mark, so nothing is dropped, and
closing waits (up to ``linger_s``) until every queued message has left.

>>> import numpy as np
>>> from replay.sources import ReplayStream, RowTruth
>>> streams = [ReplayStream("a", np.zeros((60, 6), np.float32), 1, RowTruth(np.zeros(0, int)))]
>>> [(sid, seq, n) for sid, seq, n in schedule(streams, chunk=25)]
[('a', 0, 25), ('a', 25, 25), ('a', 50, 10)]
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import zmq
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from harstream import DEFAULT_INGEST, MAX_SAMPLES_PER_CHUNK, SAMPLE_RATE_HZ
from harstream.data.device import Device
from harstream.protocol import encode_chunk
from harstream.serve.security import ClientSecurity, secure_client
from replay.sources import ReplayStream, expand

SNDHWM = 10_000
"""Messages queued for the engine before a send blocks."""
STALL_WARNING_S = 3.0
"""Seconds a blocked send waits before the player says the engine is not taking input."""


@dataclass(frozen=True)
class ReplaySummary:
    """What one :func:`play` sent."""

    streams: int
    """Streams sent (copies included)."""
    messages: int
    """Chunks sent."""
    samples: int
    """Samples sent, all streams together."""
    seconds: float
    """Wall time from the first send to the flushed close."""
    interrupted: bool = False
    """True when stopped early (Ctrl-C or the ``stop`` event)."""


class _Stopped(Exception):
    """The ``stop`` event was set while waiting."""


def schedule(
    streams: Sequence[ReplayStream], chunk: int, lengths: dict[str, int] | None = None
) -> Iterator[tuple[str, int, int]]:
    """``(stream_id, seq, n)`` of every message in sending order: round-robin by chunk.

    ``lengths`` overrides the streams' lengths (samples as the device sends them).
    """
    size = {s.stream_id: len(s) for s in streams} if lengths is None else lengths
    rounds = max((math.ceil(size[s.stream_id] / chunk) for s in streams), default=0)
    for k in range(rounds):
        seq = k * chunk
        for stream in streams:
            n = size[stream.stream_id]
            if seq < n:
                yield stream.stream_id, seq, min(chunk, n - seq)


def play(
    streams: Sequence[ReplayStream],
    endpoint: str = DEFAULT_INGEST,
    speed: float = 1.0,
    chunk: int = 25,
    copies: int = 1,
    progress: bool = False,
    console: Console | None = None,
    stop: threading.Event | None = None,
    linger_s: float = 10.0,
    security: ClientSecurity | None = None,
    device: Device | None = None,
) -> ReplaySummary:
    """Send ``streams`` (each ``copies`` times) to the engine at ``endpoint``.

    Ctrl-C or setting ``stop`` ends the replay early; the summary says so.
    ``security``: this producer's key pair and the engine's public key, for
    an engine started with ``--server-key`` (an engine that does not allow
    the key takes nothing: the player reports it as not taking input).
    ``device``: send as a phone with another rate, jittered timestamps or
    other units would (``chunk`` is then scaled to the same duration).
    """
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(f"speed: expected a finite number >= 0 (0 = unpaced), got {speed}")
    if not 1 <= chunk <= MAX_SAMPLES_PER_CHUNK:
        raise ValueError(f"chunk: expected 1..{MAX_SAMPLES_PER_CHUNK} samples, got {chunk}")
    streams = expand(streams, copies)
    by_id = {s.stream_id: s for s in streams}
    if len(by_id) != len(streams):
        raise ValueError("streams: expected distinct stream ids, got duplicates")
    stop = stop or threading.Event()
    device = device or Device()
    rendered = _render(streams, device)
    lengths = {sid: len(samples) for sid, (samples, _) in rendered.items()}
    rate = device.rate_hz
    chunk = max(1, min(MAX_SAMPLES_PER_CHUNK, round(chunk * rate / SAMPLE_RATE_HZ)))
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.PUSH)
    if security is not None:
        try:
            secure_client(sock, security)
        except BaseException:
            sock.close(linger=0)
            context.term()
            raise
    bar = _Bar(console or Console(stderr=True), sum(lengths.values()), len(streams), progress)
    if security is not None:
        bar.hint = f" Does it allow the key of {security.key_file}?"
    sock.setsockopt(zmq.SNDHWM, SNDHWM)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing until the engine is connected
    sock.connect(endpoint)
    messages = samples = 0
    interrupted = False
    start = time.monotonic()
    try:
        for sid, seq, n in schedule(streams, chunk, lengths):
            # a device sends a chunk once its last sample is taken; t0 is its first sample's time
            _wait_until(start + (seq + n - 1) / rate / speed if speed > 0 else 0.0, stop)
            samples_sent, times = rendered[sid]
            frames = encode_chunk(
                sid, seq, samples_sent[seq : seq + n], rate=_wire_rate(rate),
                t0=time.time() - (n - 1) / rate,
                times=None if times is None else times[seq : seq + n], units=device.units,
            )
            _send(sock, frames, stop, bar, endpoint)
            messages += 1
            samples += n
            bar.advance(samples, messages, time.monotonic() - start)
    except (KeyboardInterrupt, _Stopped):
        interrupted = True
    finally:
        bar.advance(samples, messages, time.monotonic() - start, force=True)
        bar.flushing()
        sock.close(linger=0 if interrupted else int(linger_s * 1000))
        context.term()  # waits until the queue is flushed (or the linger time is over)
        bar.close()
    return ReplaySummary(len(streams), messages, samples, time.monotonic() - start, interrupted)


def _wire_rate(rate: float) -> float:
    """An integral rate as a JSON integer (``50``, not ``50.0``): what every v1 engine accepts."""
    return int(rate) if float(rate).is_integer() else rate


def _render(
    streams: Sequence[ReplayStream], device: Device
) -> dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float64] | None]]:
    """Each stream as ``device`` sends it (copies of one recording rendered once)."""
    done: dict[int, tuple[npt.NDArray[np.float32], npt.NDArray[np.float64] | None]] = {}
    out = {}
    for stream in streams:
        key = id(stream.samples)
        if key not in done:
            done[key] = device.render(stream.samples)
        out[stream.stream_id] = done[key]
    return out


def _wait_until(deadline: float, stop: threading.Event) -> None:
    """Sleep until ``deadline`` (``time.monotonic``); raise :class:`_Stopped` if ``stop`` is set."""
    delay = deadline - time.monotonic()
    if stop.wait(delay) if delay > 0 else stop.is_set():
        raise _Stopped


def _send(sock: zmq.Socket[bytes], frames: list[bytes], stop: threading.Event, bar: _Bar,
          endpoint: str) -> None:
    """Blocking send that still notices ``stop`` (and says when the engine takes nothing)."""
    waited, warned = 0.0, False
    while True:
        if sock.poll(100, zmq.POLLOUT):
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
        if stop.is_set():
            raise _Stopped
        waited += 0.1
        if waited >= STALL_WARNING_S and not warned:
            bar.stalled(endpoint)
            warned = True


class _Bar:
    """The progress bar on stderr (a no-op unless enabled); warnings go to the console."""

    def __init__(self, console: Console, total: int, streams: int, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.hint = ""
        self._warned = False
        self._stalled = False
        self._last = 0.0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples"),
            TextColumn("{task.fields[streams]} streams"),
            TextColumn("{task.fields[rate]:,.0f} msg/s"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID = self._progress.add_task("replay", total=total, streams=streams, rate=0)
        if enabled:
            self._progress.start()

    def advance(self, samples: int, messages: int, elapsed: float, force: bool = False) -> None:
        if self.enabled and (force or elapsed - self._last >= 0.1):
            self._last = elapsed
            rate = messages / elapsed if elapsed > 0 else 0.0
            self._progress.update(self._task, completed=samples, rate=rate)
            if self._stalled:
                self._progress.update(self._task, description="replay")
                self._stalled = False

    def stalled(self, endpoint: str) -> None:
        text = f"waiting for the engine at {endpoint} (is `harstream serve` running?{self.hint})"
        if self.enabled:
            self._progress.update(self._task, description=f"[yellow]{text}[/]")
            self._stalled = True
        elif not self._warned:
            self.console.print(f"[yellow]{text}[/]")
        self._warned = True

    def flushing(self) -> None:
        if self.enabled:
            self._progress.update(self._task, description="flushing")

    def close(self) -> None:
        if self.enabled:
            if not self._stalled:
                self._progress.update(self._task, description="replay")
            self._progress.stop()
            self.enabled = False
