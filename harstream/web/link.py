"""The gateway's two sockets toward the engine: one PUSH for every phone, one SUB fanned out to clients.

Chunks go out with a non-blocking send, those of one turn of the event
loop together: when the engine is away and ZeroMQ's queue is full, a chunk
is dropped and counted (``engine_busy``) rather than stalling every phone. Events come in on one SUB socket,
subscribed to each stream some client listens to (plus ``$stats`` and
``$error``), are validated with :func:`harstream.protocol.decode_event`,
and are handed to the listeners of exactly that stream as one text
message ``{"topic": TOPIC, "body": BODY}`` where BODY is the engine's JSON
object byte for byte. The SUB socket is read by a callback on its file
descriptor, in the turn of the event loop that sees it readable (a future
per message, as :mod:`zmq.asyncio` gives, would cost every event one turn
more: docs/phones.md, "Many phones").

>>> envelope("$stats", b'{"v":1}')
'{"topic":"$stats","body":{"v":1}}'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter

import zmq

from harstream.errors import ProtocolError
from harstream.protocol import ERROR_TOPIC, STATS_TOPIC, decode_event
from harstream.serve.security import ClientSecurity, secure_client
from harstream.web.limits import Counters

log = logging.getLogger(__name__)

MAX_EVENTS_PER_TURN = 1000
"""Engine events routed in one turn of the event loop; more wait for the next (the phones get theirs)."""


def envelope(topic: str, body: bytes | str) -> str:
    """The text message a WebSocket client receives: the topic and the engine's JSON body unchanged."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return f'{{"topic":{json.dumps(topic)},"body":{text}}}'


class EngineLink:
    """PUSH to the engine's ingest endpoint, SUB to its publish endpoint; :meth:`pump` routes events."""

    def __init__(self, ingest: str, publish: str, counters: Counters,
                 security: ClientSecurity | None = None, send_hwm: int = 10_000) -> None:
        self.counters = counters
        self._context = zmq.Context()
        self._sockets: list[zmq.Socket[bytes]] = []
        try:
            self._push: zmq.Socket[bytes] = self._socket(zmq.PUSH)
            self._sub: zmq.Socket[bytes] = self._socket(zmq.SUB)
            for sock in (self._push, self._sub):
                if security is not None:
                    secure_client(sock, security)
                sock.setsockopt(zmq.LINGER, 0)
            self._push.setsockopt(zmq.SNDHWM, send_hwm)
            self._sub.setsockopt(zmq.RCVHWM, 100_000)
            for topic in (STATS_TOPIC, ERROR_TOPIC):
                self._sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
            self._push.connect(ingest)
            self._sub.connect(publish)
        except BaseException:
            self.close()
            raise
        self._listeners: dict[str, set[asyncio.Queue[str]]] = {}
        self._subscribed: Counter[str] = Counter()
        self._outbox: list[list[bytes]] = []
        self.invalid_events = 0

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self._context.socket(kind)
        self._sockets.append(sock)
        return sock

    def send(self, frames: list[bytes]) -> None:
        """Queue one chunk for the engine: sent with the others of this turn of the event loop.

        Sending a turn's chunks together wakes ZeroMQ's I/O thread once rather than once per
        chunk (most of the gateway's cost per chunk otherwise). A chunk ZeroMQ cannot take
        (its queue to the engine full) is dropped and counted as ``engine_busy`` samples.
        """
        self._outbox.append(frames)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        for frames in outbox:
            try:
                self._push.send_multipart(frames, flags=zmq.NOBLOCK)
                self.counters.chunks_out += 1
            except zmq.Again:
                self.counters.dropped_samples["engine_busy"] += len(frames[2]) // 24

    def listen(self, stream: str, queue: asyncio.Queue[str]) -> None:
        """Deliver ``stream``'s events (and ``$stats``) to ``queue`` until :meth:`unlisten`."""
        listeners = self._listeners.setdefault(stream, set())
        if queue not in listeners:
            listeners.add(queue)
            if self._subscribed[stream] == 0:
                self._subscribe(zmq.SUBSCRIBE, stream)
            self._subscribed[stream] += 1

    def unlisten(self, stream: str, queue: asyncio.Queue[str]) -> None:
        listeners = self._listeners.get(stream, set())
        if queue in listeners:
            listeners.discard(queue)
            self._subscribed[stream] -= 1
            if self._subscribed[stream] == 0:
                del self._subscribed[stream], self._listeners[stream]
                self._subscribe(zmq.UNSUBSCRIBE, stream)

    def _subscribe(self, option: int, stream: str) -> None:
        """(Un)subscribe ``stream``, then look for events: ZeroMQ may have taken the descriptor's signal
        of waiting ones while it handled the option (the descriptor is edge-triggered)."""
        self._sub.setsockopt(option, stream.encode())
        with contextlib.suppress(RuntimeError):  # no running loop: the pump looks when it starts
            asyncio.get_running_loop().call_soon(self._drain)

    def deliver(self, stream: str, text: str) -> None:
        """Hand ``text`` to ``stream``'s listeners; a full queue loses it (counted)."""
        for queue in self._listeners.get(stream, ()):
            self._offer(queue, text)

    def _offer(self, queue: asyncio.Queue[str], text: str) -> None:
        try:
            queue.put_nowait(text)
            self.counters.events_out += 1
        except asyncio.QueueFull:
            self.counters.events_dropped += 1

    async def pump(self) -> None:
        """Route the engine's events to listeners as they come, until cancelled."""
        loop = asyncio.get_running_loop()
        fd = self._sub.fileno()  # the edge-triggered ZMQ_FD
        loop.add_reader(fd, self._drain)
        loop.call_soon(self._drain)  # events that came before the reader
        try:
            await loop.create_future()  # never set: the reader does the work
        finally:
            loop.remove_reader(fd)

    def _drain(self) -> None:
        """Route the events waiting on the SUB socket, at most :data:`MAX_EVENTS_PER_TURN` (then again in
        the next turn: the descriptor only signals new arrivals)."""
        recv = self._sub.recv_multipart
        for _ in range(MAX_EVENTS_PER_TURN):
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                if exc.errno not in (zmq.ENOTSOCK, zmq.ETERM):  # not a late call after close()
                    log.error("reading the engine's events failed: %s", exc)
                return
            try:
                self._route(frames)
            except Exception:  # never leave the rest unread: the descriptor would not signal them again
                self.invalid_events += 1
                log.exception("routing an engine event failed")
        asyncio.get_running_loop().call_soon(self._drain)

    def _route(self, frames: list[bytes]) -> None:
        """Hand one engine event to the listeners of its stream (``$stats``: to every listener)."""
        try:
            event = decode_event(frames)
        except ProtocolError as exc:
            self.invalid_events += 1
            log.debug("invalid engine event: %s", exc)
            return
        topic = frames[0].decode("utf-8")
        text = envelope(topic, frames[1])
        if topic == STATS_TOPIC:
            for queue in {q for listeners in self._listeners.values() for q in listeners}:
                self._offer(queue, text)
        elif topic == ERROR_TOPIC:
            stream = getattr(event, "stream", None)
            if stream is not None:
                self.deliver(stream, text)
        else:
            self.deliver(topic, text)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(Exception):
                sock.close(linger=0)
        with contextlib.suppress(Exception):
            self._context.term()
