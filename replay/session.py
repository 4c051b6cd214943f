"""A scored replay: subscribe to the engine, play the streams, collect every window.

The subscriber connects first and waits for the engine's first ``$stats``
(ZeroMQ's slow joiner: a SUB socket only sees messages published after its
subscription reached the publisher); then the player runs in a thread while
this thread feeds every event to a :class:`~replay.scoring.Scorer`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from rich.console import Console

from harstream import DEFAULT_INGEST, DEFAULT_PUBLISH
from harstream.data.device import Device
from harstream.protocol import Prediction, StatsEvent
from harstream.serve.client import Subscriber
from harstream.serve.security import ClientSecurity
from replay.player import ReplaySummary, play
from replay.scoring import Scorer
from replay.sources import ReplayStream, expand

READY_S = 1.5
"""Longest wait for the engine's first ``$stats`` before playing anyway."""
POLL_S = 0.1


def score_replay(
    streams: Sequence[ReplayStream],
    ingest_endpoint: str = DEFAULT_INGEST,
    publish_endpoint: str = DEFAULT_PUBLISH,
    speed: float = 1.0,
    chunk: int = 25,
    copies: int = 1,
    timeout_s: float = 10.0,
    progress: bool = False,
    console: Console | None = None,
    ready_s: float = READY_S,
    security: ClientSecurity | None = None,
    device: Device | None = None,
) -> Scorer:
    """Replay ``streams`` into the engine and score what it publishes.

    Returns once every expected window arrived, after ``timeout_s`` without
    a prediction once the player has finished, or after ``timeout_s``
    without any engine message while it plays (the player is then stopped);
    on Ctrl-C, early, with ``scorer.interrupted`` set. ``security`` (one key
    pair for both sockets) is for an engine started with ``--server-key``:
    its key must be in both the producers' and the subscribers' allow-list.
    """
    if timeout_s < 0:
        raise ValueError(f"timeout_s: expected seconds >= 0, got {timeout_s}")
    streams = expand(streams, copies)
    scorer = Scorer(streams)
    stop = threading.Event()
    outcome: list[ReplaySummary | BaseException] = []

    def player() -> None:
        try:
            outcome.append(play(streams, ingest_endpoint, speed, chunk, 1, progress, console,
                                stop=stop, security=security, device=device))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)

    thread = threading.Thread(target=player, name="replay-player", daemon=True)
    with Subscriber(publish_endpoint, security=security) as sub:
        try:
            if not _wait_for_engine(sub, scorer, ready_s) and console is not None:
                console.print(f"[yellow]no $stats from {publish_endpoint} within {ready_s:g} s; "
                              "replaying anyway (is `harstream serve` running?)[/]")
            thread.start()
            _collect(sub, scorer, thread, timeout_s)
        except KeyboardInterrupt:
            scorer.interrupted = True
        finally:
            stop.set()
            if thread.ident is not None:
                thread.join()
    result = outcome[0] if outcome else None
    if isinstance(result, BaseException):
        raise result
    scorer.playback = result
    return scorer


def _wait_for_engine(sub: Subscriber, scorer: Scorer, ready_s: float) -> bool:
    """Wait up to ``ready_s`` for ``$stats``; True when the engine was heard."""
    deadline = time.monotonic() + ready_s
    while (left := deadline - time.monotonic()) > 0:
        event = sub.receive(timeout_s=left)
        if event is None:
            break
        scorer.update(event)
        if isinstance(event, StatsEvent):
            return True
    return False


def _collect(sub: Subscriber, scorer: Scorer, thread: threading.Thread, timeout_s: float) -> None:
    """Feed events to ``scorer`` until it is done, or ``timeout_s`` passes without news.

    While the player runs, news is any engine message (``$stats`` comes every
    second, so silence means no engine); afterwards, only a prediction is.
    """
    last_event = quiet_since = time.monotonic()
    while not scorer.done:
        event = sub.receive(timeout_s=POLL_S)
        now = time.monotonic()
        if event is not None:
            scorer.update(event)
            last_event = now
        if thread.is_alive() or isinstance(event, Prediction):
            quiet_since = now
        if now - (last_event if thread.is_alive() else quiet_since) >= timeout_s:
            return
