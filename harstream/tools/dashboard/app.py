"""``harstream dashboard``: a live terminal view of the engine's output.

A receiver thread owns the SUB socket and feeds a :class:`DashboardState`
under a lock; the main thread redraws from snapshots at a steady rate, so
receiving never waits for drawing. ZeroMQ reconnects by itself when the
engine restarts; the header says when the engine has gone silent.

Importing this module is cheap (no ZeroMQ, numpy or rich.live) so the
command line can read :data:`DEFAULT_CONNECT` while building its parser; the
receiver, state and view modules load when the dashboard runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harstream import DEFAULT_PUBLISH

if TYPE_CHECKING:
    from rich.console import Console

    from harstream.serve.security import ClientSecurity

__all__ = ["DEFAULT_CONNECT", "DEFAULT_REFRESH_HZ", "run_dashboard"]

DEFAULT_CONNECT = DEFAULT_PUBLISH
"""The engine's default PUB endpoint."""
DEFAULT_REFRESH_HZ = 4.0
"""Redraws per second."""


def run_dashboard(
    endpoint: str = DEFAULT_CONNECT,
    refresh_hz: float = DEFAULT_REFRESH_HZ,
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
