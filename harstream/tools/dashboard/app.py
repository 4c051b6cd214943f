"""``harstream dashboard``: a live terminal view of the engine's output.

A receiver thread owns the SUB socket and feeds a :class:`DashboardState`
under a lock; the main thread redraws from snapshots at a steady rate, so
receiving never waits for drawing. ZeroMQ reconnects by itself when the
engine restarts; the header says when the engine has gone silent.

Importing this module is cheap (no ZeroMQ, numpy or rich.live) so the
command line can call :func:`add_arguments` while building its parser; the
receiver, state and view modules load when the dashboard runs.

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
from typing import TYPE_CHECKING

from harstream.serve.security import add_client_key_arguments, client_security_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from harstream.serve.security import ClientSecurity

__all__ = ["DEFAULT_CONNECT", "add_arguments", "run", "run_dashboard"]

DEFAULT_CONNECT = "tcp://127.0.0.1:5556"
"""The engine's default PUB endpoint (:data:`harstream.protocol.DEFAULT_PUBLISH`)."""


def run_dashboard(
    endpoint: str = DEFAULT_CONNECT,
    refresh_hz: float = 4.0,
    console: Console | None = None,
    max_rows: int | None = None,
    *,
    streams: Sequence[str] | None = None,
    stop: threading.Event | None = None,
    security: ClientSecurity | None = None,
) -> int:
    """Show the dashboard until Ctrl-C, ``q``, or ``stop`` is set; return 0.

    ``max_rows`` defaults to what the terminal height allows; ``streams`` are
    topic prefixes to subscribe to (default: every stream); ``security``: the
    key pair and engine public key for an engine started with ``--server-key``.
    """
    from rich.console import Console
    from rich.live import Live

    from harstream.tools.dashboard.receiver import Receiver
    from harstream.tools.dashboard.state import DashboardState
    from harstream.tools.dashboard.view import pick_rows, render, rows_for_height
    from harstream.tools.keypress import KeyReader

    console = console or Console()
    stop = stop or threading.Event()
    state, lock = DashboardState(endpoint), threading.Lock()
    period = 1.0 / refresh_hz
    shown: tuple[str, ...] = ()
    receiver = Receiver(state, lock, endpoint, streams, security=security)
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
        "--connect", metavar="EP", default=DEFAULT_CONNECT,
        help=f"the engine's PUB endpoint (default: {DEFAULT_CONNECT})",
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
    add_client_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``harstream dashboard`` with parsed :func:`add_arguments` options."""
    return run_dashboard(
        args.connect, refresh_hz=args.refresh, max_rows=args.rows, streams=args.streams,
        security=client_security_from_args(args),
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
