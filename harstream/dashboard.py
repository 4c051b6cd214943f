"""``harstream dashboard``: a live terminal view of the engine's output.

A receiver thread owns the SUB socket and feeds a :class:`DashboardState`
under a lock; the main thread redraws from snapshots at a steady rate, so
receiving never waits for drawing. ZeroMQ reconnects by itself when the
engine restarts; the header says when the engine has gone silent.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--streams", "phone-", "--rows", "10"])
>>> args.connect, args.streams, args.rows, args.refresh
('tcp://127.0.0.1:5556', ['phone-'], 10, 4.0)
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import zmq
from rich.console import Console
from rich.live import Live

from ._dashboard_keys import KeyReader
from ._dashboard_state import DashboardState, EngineStats, Snapshot, StreamView
from ._dashboard_view import pick_rows, render, rows_for_height
from .client import Event, Subscriber
from .errors import HarstreamError
from .protocol import DEFAULT_PUBLISH

__all__ = [
    "DashboardState",
    "EngineStats",
    "Receiver",
    "Snapshot",
    "StreamView",
    "add_arguments",
    "render",
    "run",
    "run_dashboard",
]

_MAX_BATCH = 1000


class Receiver:
    """A thread that receives events and applies them to ``state`` while holding ``lock``."""

    def __init__(
        self,
        state: DashboardState,
        lock: threading.Lock,
        endpoint: str = DEFAULT_PUBLISH,
        streams: Sequence[str] | None = None,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.lock = lock
        self.endpoint = endpoint
        self.streams = streams
        self.poll_s = poll_s
        self.clock = clock
        self.error: HarstreamError | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        """Start receiving (idempotent); raise :class:`HarstreamError` if the socket fails."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dashboard-sub", daemon=True)
            self._thread.start()
            self._opened.wait(timeout_s)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Stop and join the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        sub = Subscriber(self.endpoint, streams=self.streams)
        try:
            sub.open()
            self._opened.set()
            while not self._stop.is_set():
                self._receive(sub)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                self.error = HarstreamError(f"cannot subscribe to {self.endpoint!r}: {exc}")
        finally:
            sub.close()
            self._opened.set()

    def _receive(self, sub: Subscriber) -> None:
        batch: list[Event] = []
        event = sub.receive(timeout_s=self.poll_s)
        while event is not None:
            batch.append(event)
            event = sub.receive(timeout_s=0.0) if len(batch) < _MAX_BATCH else None
        now = self.clock()
        with self.lock:
            for item in batch:
                self.state.update(item, now)
            self.state.note_invalid(sub.invalid, now)


def run_dashboard(
    endpoint: str = DEFAULT_PUBLISH,
    refresh_hz: float = 4.0,
    console: Console | None = None,
    max_rows: int | None = None,
    *,
    streams: Sequence[str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Show the dashboard until Ctrl-C, ``q``, or ``stop`` is set; return 0.

    ``max_rows`` defaults to what the terminal height allows; ``streams`` are
    topic prefixes to subscribe to (default: every stream).
    """
    console = console or Console()
    stop = stop or threading.Event()
    state, lock = DashboardState(endpoint), threading.Lock()
    period = 1.0 / refresh_hz
    shown: tuple[str, ...] = ()
    receiver = Receiver(state, lock, endpoint, streams)
    try:
        with (
            receiver,
            KeyReader() as keys,
            Live(console=console, screen=console.is_terminal, auto_refresh=False) as live,
        ):
            tick = time.monotonic()
            while not stop.is_set() and receiver.error is None:
                now = time.monotonic()
                with lock:
                    snap = state.snapshot(now)
                rows_n = max_rows or rows_for_height(console.size.height)
                rows = pick_rows(snap, rows_n, keep=shown)
                shown = tuple(v.stream for v in rows)
                live.update(render(snap, rows_n, console.size.width, rows), refresh=True)
                tick = max(tick + period, time.monotonic())
                if keys.active:
                    if "q" in keys.read(tick - time.monotonic()).lower():
                        break
                else:
                    stop.wait(tick - time.monotonic())
    except KeyboardInterrupt:
        pass
    if receiver.error is not None:
        raise receiver.error
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream dashboard``."""
    parser.add_argument(
        "--connect", metavar="EP", default=DEFAULT_PUBLISH,
        help=f"the engine's PUB endpoint (default: {DEFAULT_PUBLISH})",
    )
    parser.add_argument(
        "--rows", metavar="N", type=_positive(int, "an integer"), default=None,
        help="stream rows to show (default: as many as the terminal height allows)",
    )
    parser.add_argument(
        "--refresh", metavar="HZ", type=_positive(float, "a number"), default=4.0,
        help="redraws per second (default: 4)",
    )
    parser.add_argument(
        "--streams", metavar="PREFIX", action="append", default=None,
        help="only streams whose id starts with PREFIX (repeatable; default: all)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``harstream dashboard`` with parsed :func:`add_arguments` options."""
    return run_dashboard(
        args.connect, refresh_hz=args.refresh, max_rows=args.rows, streams=args.streams
    )


def _positive(kind: Callable[[str], float], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected {what} > 0, got {text!r}")
        return value

    return parse
