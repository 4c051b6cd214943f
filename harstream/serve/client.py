"""Subscribe to the engine's output from Python: an iterator of typed events.

>>> from harstream.serve.client import Subscriber
>>> with Subscriber("tcp://127.0.0.1:5556", streams=["exp01"]) as sub:  # doctest: +SKIP
...     for event in sub.events(timeout_s=5):
...         print(event.stream, event.smoothed)

``streams`` are topic prefixes (ZeroMQ SUB filtering); by default every
stream plus the engine's ``$stats`` and ``$error`` topics are received.
Messages that fail validation are skipped and counted in ``invalid``.
An engine started with ``--server-key`` needs ``security`` (this client's
key pair and the engine's public key, :class:`~harstream.serve.security.ClientSecurity`);
if the engine does not allow the key, nothing arrives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from types import TracebackType

import zmq

from harstream import DEFAULT_PUBLISH
from harstream.errors import ProtocolError
from harstream.protocol import ERROR_TOPIC, STATS_TOPIC, ErrorEvent, Prediction, StatsEvent, decode_event
from harstream.serve.security import ClientSecurity, secure_client

Event = Prediction | ErrorEvent | StatsEvent


class Subscriber:
    """A SUB socket connected to the engine's PUB endpoint."""

    def __init__(
        self,
        endpoint: str = DEFAULT_PUBLISH,
        streams: Iterable[str] | None = None,
        engine_topics: bool = True,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        security: ClientSecurity | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.security = security
        self.streams = tuple(streams) if streams is not None else ("",)
        self.engine_topics = engine_topics
        self.invalid = 0
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[bytes] | None = None

    def open(self) -> Subscriber:
        """Connect (idempotent)."""
        if self._socket is None:
            sock = self._context.socket(zmq.SUB)
            if self.security is not None:
                try:
                    secure_client(sock, self.security)
                except BaseException:
                    sock.close(linger=0)
                    raise
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, 100_000)
            topics = list(self.streams)
            if self.engine_topics and "" not in topics:
                topics += [STATS_TOPIC, ERROR_TOPIC]
            for topic in topics:
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
            sock.connect(self.endpoint)
            self._socket = sock
        return self

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> Subscriber:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def receive(self, timeout_s: float | None = None) -> Event | None:
        """The next valid event, or None when ``timeout_s`` passes first."""
        sock = self.open()._socket
        assert sock is not None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not sock.poll(None if wait is None else int(wait * 1000)):
                return None
            frames = sock.recv_multipart(copy=True)
            try:
                return decode_event(frames)
            except ProtocolError:
                self.invalid += 1

    def events(self, timeout_s: float | None = None) -> Iterator[Event]:
        """Events as they arrive; stops after ``timeout_s`` of silence (never, if None)."""
        while (event := self.receive(timeout_s)) is not None:
            yield event

    def predictions(self, timeout_s: float | None = None) -> Iterator[Prediction]:
        """Only the predictions of :meth:`events`."""
        for event in self.events(timeout_s):
            if isinstance(event, Prediction):
                yield event
