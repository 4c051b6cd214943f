"""The recorder's sockets: forwarding to the engine (:class:`Relay`), and taking messages until a stop
and after it (:func:`pump`, :func:`drain`).

ZeroMQ's PUSH queues a message for an engine that is not there and drops
that queue when the socket closes; the relay sets ``IMMEDIATE`` so a
message is only ever handed to a connected engine, and counts the rest.
After a stop, what still waits in the recorder's socket would be lost
uncounted when it closes: :func:`drain` takes it, within bounds.

>>> context = zmq.Context()
>>> relay = Relay(context, "tcp://127.0.0.1:9")  # nothing listens there
>>> relay.send([b"p", b"{}", b""]); relay.ready(0.0), relay.forwarded, relay.dropped
(False, 0, 1)
>>> relay.close(); context.term()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import zmq

ENGINE_WAIT_S = 2.0
"""Seconds the recorder waits at its start for the engine to connect before warning that none does."""
DRAIN_S = 5.0
"""Longest the recorder goes on recording and forwarding after a stop, s."""
QUIET_S = 0.2
"""Seconds with nothing arriving that end the drain after a stop."""
COUNT_S = 1.0
"""After :data:`DRAIN_S`, seconds spent counting (only) what still arrives, so that it is reported."""


class Relay:
    """Forwards messages to the engine's ingest, counting only what a connected engine took.

    The PUSH socket queues only while an engine is connected (``IMMEDIATE``): with none there, or one not
    taking messages, a message is counted in ``dropped`` at once instead of waiting in a queue that nothing
    reads, so ``forwarded`` never counts a message no engine was there to receive.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], engine: str | None) -> None:
        self.engine = engine
        self.forwarded = self.dropped = 0
        self.seen = False
        """Whether an engine was ever connected."""
        self.socket: zmq.Socket[bytes] | None = None
        if engine is not None:
            self.socket = context.socket(zmq.PUSH)
            self.socket.setsockopt(zmq.SNDHWM, 10_000)
            self.socket.setsockopt(zmq.LINGER, 5000)
            self.socket.setsockopt(zmq.IMMEDIATE, 1)
            self.socket.connect(engine)

    def ready(self, timeout_s: float | None = None) -> bool:
        """Whether an engine is connected and taking messages (waiting up to ``timeout_s`` for one, default
        :data:`ENGINE_WAIT_S`)."""
        if self.socket is None:
            return False
        if self.socket.poll(int((ENGINE_WAIT_S if timeout_s is None else timeout_s) * 1000), zmq.POLLOUT):
            self.seen = True
            return True
        return False

    def send(self, frames: Sequence[bytes]) -> None:
        """Forward one message (counted in ``forwarded`` or ``dropped``)."""
        if self.socket is None:
            return
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return
        self.forwarded += 1
        self.seen = True

    def close(self) -> None:
        """Close the socket (queued messages get its linger to reach the engine)."""
        if self.socket is not None:
            self.socket.close()


def pump(pull: zmq.Socket[bytes], relay: Relay, take: Callable[[list[bytes]], object], limit: int = 1000) -> int:
    """Forward and record up to ``limit`` waiting messages; returns how many there were."""
    for n in range(limit):
        try:
            frames = pull.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return n
        relay.send(frames)
        take(frames)
    return limit


def drain(pull: zmq.Socket[bytes], relay: Relay, take: Callable[[list[bytes]], object]) -> int:
    """After a stop: forward and record what is still arriving until nothing has for :data:`QUIET_S`, for at
    most :data:`DRAIN_S`; then count what arrives within :data:`COUNT_S` more without recording or forwarding
    it. Returns that count (messages left)."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        if not pull.poll(int(QUIET_S * 1000)):
            return 0
        pump(pull, relay, take, 100)
    left = 0
    deadline = time.monotonic() + COUNT_S
    while time.monotonic() < deadline and pull.poll(int(QUIET_S * 1000)):
        for _ in range(1000):
            try:
                pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            left += 1
    return left
