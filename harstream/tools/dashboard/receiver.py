"""The dashboard's receiving side: a thread that owns the SUB socket.

It drains whatever has arrived, then applies the batch to the shared
:class:`DashboardState` under the lock, so the drawing thread only ever
waits for a short ``update`` loop, never for the network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import zmq

from harstream import DEFAULT_PUBLISH
from harstream.errors import HarstreamError
from harstream.serve.client import Event, Subscriber
from harstream.serve.security import ClientSecurity
from harstream.tools.dashboard.state import DashboardState

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
        security: ClientSecurity | None = None,
    ) -> None:
        self.state = state
        self.lock = lock
        self.endpoint = endpoint
        self.streams = streams
        self.poll_s = poll_s
        self.clock = clock
        self.security = security
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
        sub = Subscriber(self.endpoint, streams=self.streams, security=self.security)
        try:
            sub.open()
            self._opened.set()
            while not self._stop.is_set():
                self._receive(sub)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                self.error = HarstreamError(f"cannot subscribe to {self.endpoint!r}: {exc}")
        except HarstreamError as exc:  # an unusable key file
            self.error = exc
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
