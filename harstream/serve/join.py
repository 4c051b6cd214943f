"""Join mode (``serve --join tcp://ROUTER:5557``): the engine serves a router's streams.

Instead of binding PULL and PUB, the engine connects a DEALER to the router's engines
endpoint and, once welcomed, a PUB to the results endpoint the welcome names
(:func:`join` makes them, :class:`RouterLink`). The messages are
:mod:`harstream.serve.cluster_wire`'s; filtering, batching and publishing are the bound
engine's, unchanged (:class:`JoinedLoop` only reads its input another way):

* **CHUNK**: the producer's frames are decoded by :func:`harstream.protocol.decode_chunk`;
  latency counts from the router's receipt (:meth:`JoinedLoop.receive` tells how clocks meet).
* **PONG** goes to the router every ``heartbeat_ms`` from the loop, PING or not (a PING read is
  answered at once too): the router's PING may wait behind thousands of chunks in the DEALER,
  but the loop's turns are bounded, so a busy engine keeps saying it is alive while a stopped
  or stuck one falls silent and is dropped.
* **FORGET** stream: the stream moved to another engine. Its state is forgotten as an idle
  stream's is, its chunks still queued are dropped and its windows waiting for the model are
  never published.
* **Silence**: the PUB sets ZeroMQ heartbeats, so libzmq drops a dead router's connection; the
  DEALER sets none (libzmq stops reading a connection whose receive queue is full, so under a
  backlog its own heartbeat timed out and dropped a live connection with what it held).
  Any message from the router, a CHUNK included, is news. When the loop has heard nothing
  from the router for its ``timeout_ms`` (router dead, restarted, or this engine hung: a
  stopped process finds the time passed when it resumes), it says HELLO again. If it had
  been welcomed, the router has dropped it meanwhile (it times out silent engines just as
  fast) and may have moved its streams: the engine first forgets every stream and takes a
  **new incarnation** (a new DEALER, so messages queued for the old one are discarded).
  Until a welcome comes it repeats HELLO with the same incarnation (it holds no state to
  disown).
* **Stop**: BYE first, so the router moves the streams at once; then the flush, as when bound.
* **Keys**: with a :class:`~harstream.serve.security.ClientSecurity` (the engine's key pair and
  the router's public key), both sockets are CURVE clients of the router. The router
  authenticates producers, so the engine cannot see their keys: stream ownership
  (``not_owner``) is the router's to enforce in join mode.

>>> link = join(ServerConfig(join="inproc://doc-router", slot=3))
>>> link.member()["slot"], len(link.incarnation), link.welcome is None
(3, 32, True)
>>> link.close()
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import zmq

from harstream.engine.core import Engine
from harstream.errors import ProtocolError, ServeError
from harstream.model.process import ModelProcess
from harstream.protocol import ErrorEvent, decode_chunk
from harstream.serve import cluster_wire as wire
from harstream.serve.config import ServerConfig
from harstream.serve.loop import Loop, _cost, _stream_of
from harstream.serve.security import ClientSecurity, secure_client
from harstream.serve.sockets import Sockets
from harstream.serve.stats import ServeSummary

log = logging.getLogger("harstream.serve.join")

RETRY_S = 0.05
"""A HELLO that could not go (no connection to the router yet) is tried again this soon."""
BYE_LINGER_MS = 1000
"""Longest a BYE still unsent at the stop may hold the process's exit (the router's heartbeat
drops a silent engine anyway)."""


class RouterLink(Sockets):
    """The engine's two sockets in join mode and what it knows of the router.

    ``pull`` is the DEALER to the router (replaced by :meth:`renew`), ``pub`` the PUB
    connected to the router's results endpoint at the first welcome. Used by the serving
    thread only.
    """

    def __init__(self, config: ServerConfig, context: zmq.Context[zmq.Socket[bytes]],
                 security: ClientSecurity | None = None) -> None:
        if config.join is None:
            raise ServeError("join mode needs the router's engines endpoint (ServerConfig.join)")
        if not 0 <= config.slot <= wire.MAX_SLOT:
            raise ServeError(f"slot: expected an integer in [0, {wire.MAX_SLOT}], got {config.slot!r}")
        self.router = config.join
        self.slot = config.slot
        self.config = config
        self.context = context
        self.security = security
        self.incarnation = uuid.uuid4().hex
        """New whenever the engine drops its state to rejoin (:meth:`renew`)."""
        self.welcome: wire.Welcome | None = None
        """The router's welcome to this incarnation's latest HELLO (None: not welcomed yet)."""
        self.results: str | None = None
        """The results endpoint the PUB is connected to (fixed for the engine's run)."""
        self.timeout_s = wire.DEFAULT_TIMEOUT_MS / 1000
        self.heartbeat_ms = wire.DEFAULT_HEARTBEAT_MS
        self.deadline = math.inf
        """Monotonic time after which silence from the router means rejoining (:meth:`JoinedLoop.turn`)."""
        self.next_pong = math.inf
        """Monotonic time of the next unasked PONG (:meth:`beat`; from the welcome on)."""
        self.rejoins = 0
        """Times the engine dropped its state and took a new incarnation."""
        self.host = socket.gethostname()[:255] or "unknown"
        pub = context.socket(zmq.PUB)
        super().__init__(pull=pub, pub=pub)  # the DEALER replaces pull below
        try:
            pub.setsockopt(zmq.IPV6, 1)
            pub.setsockopt(zmq.LINGER, int(config.flush_s * 1000))
            pub.setsockopt(zmq.SNDHWM, config.publish_hwm)
            self._heartbeats(pub)
            if security is not None:
                secure_client(pub, security)
            self.pull = self._dealer()
        except BaseException:
            pub.close(linger=0)
            raise

    # -- the sockets ---------------------------------------------------------------------------

    def _heartbeats(self, sock: zmq.Socket[bytes]) -> None:
        """ZMTP heartbeats: libzmq's I/O thread drops the connection of a peer silent for the timeout."""
        timeout_ms = int(self.timeout_s * 1000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, self.heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, timeout_ms)

    def _dealer(self) -> zmq.Socket[bytes]:
        """A DEALER with this incarnation's routing id, connected to the router."""
        dealer = self.context.socket(zmq.DEALER)
        try:
            dealer.setsockopt(zmq.IPV6, 1)
            dealer.setsockopt(zmq.ROUTING_ID, wire.routing_id(self._hello()))
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.IMMEDIATE, 1)  # a HELLO goes to a live connection or is retried, never queued
            dealer.setsockopt(zmq.RCVHWM, self.config.join_hwm)
            # No ZMTP heartbeats here: with its receive queue full libzmq stops reading the connection,
            # so the router's heartbeat answers go unread and a live connection was timed out. The
            # engine's own deadline (JoinedLoop.turn) detects a silent router instead.
            if self.security is not None:
                secure_client(dealer, self.security)
            try:
                dealer.connect(self.router)
            except zmq.ZMQError as exc:
                raise ServeError(f"cannot connect to the router's engines endpoint {self.router!r}: "
                                 f"{exc}") from None
        except BaseException:
            dealer.close(linger=0)
            raise
        return dealer

    def renew(self) -> zmq.Socket[bytes]:
        """Take a new incarnation: a new DEALER (routing id), the old one closed with what it held."""
        self.pull.close(linger=0)
        self.incarnation = uuid.uuid4().hex
        self.welcome = None
        self.next_pong = math.inf
        self.rejoins += 1
        self.pull = self._dealer()
        return self.pull

    def close(self, pub: bool = True) -> None:
        """Close both sockets; the DEALER lingers up to :data:`BYE_LINGER_MS` for a BYE on its way."""
        self.pull.close(linger=min(int(self.timeout_s * 1000), BYE_LINGER_MS))
        super().close(pub)

    # -- the conversation ----------------------------------------------------------------------

    def _hello(self) -> wire.Hello:
        return wire.Hello(self.slot, self.incarnation, os.getpid(), self.host)

    def hello(self) -> bool:
        """Say HELLO; False when there is no connection to the router yet (tried again soon)."""
        try:
            self.pull.send_multipart(wire.encode_hello(self._hello()), zmq.NOBLOCK)
        except zmq.Again:
            self.deadline = time.monotonic() + RETRY_S
            return False
        self.deadline = time.monotonic() + self.timeout_s
        return True

    def heard(self, now: float) -> None:
        """The router was heard from at monotonic time ``now``."""
        if self.welcome is not None:
            self.deadline = now + self.timeout_s

    def welcomed(self, welcome: wire.Welcome) -> None:
        """The router's WELCOME: the PUB connects to its results endpoint (the first time)."""
        if self.results is None:
            try:
                self.pub.connect(welcome.results)
            except zmq.ZMQError as exc:
                raise ServeError(f"cannot connect to the results endpoint {welcome.results!r} the router "
                                 f"at {self.router} named: {exc}") from None
            self.results = welcome.results
        elif welcome.results != self.results:
            raise ServeError(f"the router at {self.router} now names the results endpoint {welcome.results!r}, "
                             f"not {self.results!r} as before; restart the engine to follow it")
        self.welcome = welcome
        self.timeout_s = welcome.timeout_ms / 1000
        self.heartbeat_ms = welcome.heartbeat_ms
        now = time.monotonic()
        self.deadline = now + self.timeout_s
        self.next_pong = now

    def handshake(self, stop: threading.Event) -> bool:
        """Say HELLO until the router welcomes this engine; False if ``stop`` is set first."""
        log.info("joining the router at %s as slot %d (incarnation %s): waiting for its welcome",
                 self.router, self.slot, self.incarnation)
        self.hello()
        while not stop.is_set():
            if self.pull.poll(int(RETRY_S * 1000)):
                try:
                    message = wire.decode(self.pull.recv_multipart())
                except ProtocolError as exc:
                    log.warning("ignored a message from the router at %s while joining: %s", self.router, exc)
                    continue
                if isinstance(message, wire.Welcome):
                    self.welcomed(message)
                    return True
                if isinstance(message, wire.Ping):
                    self.pong()
            elif time.monotonic() >= self.deadline:
                self.hello()
        return False

    def pong(self) -> None:
        """Answer a PING (dropped when the connection is gone: the router times the engine out)."""
        with contextlib.suppress(zmq.Again):
            self.pull.send_multipart(wire.PONG_MESSAGE, zmq.NOBLOCK)

    def beat(self, now: float) -> None:
        """PONG unasked when ``heartbeat_ms`` has passed since the last (welcomed only): liveness
        that does not wait for the router's PING to come through the chunks queued before it."""
        if now >= self.next_pong and self.welcome is not None:
            self.next_pong = now + self.heartbeat_ms / 1000
            self.pong()

    def bye(self) -> None:
        """Tell the router this engine stops (if it still hears it)."""
        with contextlib.suppress(zmq.ZMQError):
            self.pull.send_multipart(wire.BYE_MESSAGE, zmq.NOBLOCK)

    def member(self) -> dict[str, Any]:
        """What this engine's ``$stats`` adds in join mode (the router's per-engine rows)."""
        return {"slot": self.slot, "incarnation": self.incarnation, "rejoins": self.rejoins}

    def describe(self) -> str:
        return (f"joined the router at {self.router} as slot {self.slot} (incarnation {self.incarnation}), "
                f"publishing to {self.results}")


def join(config: ServerConfig, context: zmq.Context[zmq.Socket[bytes]] | None = None,
         security: ClientSecurity | None = None) -> RouterLink:
    """The join-mode sockets of ``config`` (``config.join`` set): DEALER connected, PUB not yet.

    Nothing is said to the router until :meth:`RouterLink.handshake` (``serve`` calls it once the
    model is loaded). Raises :class:`ServeError` naming the endpoint when it cannot connect.
    """
    return RouterLink(config, context or zmq.Context.instance(), security)


class JoinedLoop(Loop):
    """The serving loop fed by a router (:class:`RouterLink`) instead of a PULL socket."""

    def __init__(self, engine: Engine, config: ServerConfig, link: RouterLink,
                 models: Sequence[ModelProcess] = ()) -> None:
        super().__init__(engine, config, link, models)
        self.link = link
        self.forgetting: set[str] = set()
        """Streams FORGET named in this read whose queued chunks are still to be dropped."""
        self.forgotten = 0
        """Streams forgotten on the router's word."""
        self.stats.member = link.member()

    def wait_ready(self, stop: threading.Event) -> bool:
        """Wait for the router's welcome; False if ``stop`` is set first."""
        return self.link.handshake(stop)

    def turn(self, next_stats: float) -> None:
        """Rejoin if the router has been silent too long (checked before reading: a hang's stale
        messages are not taken for news), else PONG when one is due; then one turn as when bound."""
        now = time.monotonic()
        if now > self.link.deadline:
            self._silence()
        else:
            self.link.beat(now)
        super().turn(next_stats)

    def receive(self, limit: int) -> int:
        """Take up to ``limit`` messages off the DEALER: chunks into the queue, the rest answered.

        Clocks: the router stamps each chunk with its wall clock (``time.time()``) at receipt.
        The engine subtracts it from its own wall clock at receipt to learn how long the chunk
        spent in the router and on the wire, and moves its receipt times (monotonic and unix)
        back by that much: latency counts from the router's receipt. This assumes the two
        machines' wall clocks agree (NTP, within a few ms; the same clock on one machine). A
        router clock behind the engine's adds its lag to every latency; one ahead would make
        the wait negative, and is counted as no wait (latency from the engine's receipt), so a
        skewed clock never gives a negative latency.
        """
        engine = self.engine
        recv, clock, wall_clock = self.pull.recv_multipart, engine.clock, engine.wall_clock
        forgetting = self.forgetting
        router_time, chunk_kind = wire.router_time, wire.CHUNK
        count = 0
        for _ in range(limit):
            try:
                frames: list[Any] = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            count += 1
            if frames[0] != chunk_kind:
                self._control(frames)
                continue
            t_recv, t_wall = clock(), wall_clock()
            try:
                chunk = decode_chunk(frames[2:])
                waited = t_wall - router_time(frames[1])
            except ProtocolError as exc:
                engine.counters.rejected += 1
                self.publish_error(ErrorEvent(_stream_of(frames[2:]), exc.code, exc.detail))
                continue
            if 0.0 < waited < math.inf:
                t_recv -= waited
                t_wall -= waited
            if forgetting and chunk.stream in forgetting:  # its chunks from before the FORGET go first
                self._drop_forgotten()
            self.admit(chunk, t_recv, t_wall)
        if forgetting:
            self._drop_forgotten()
        if count:
            self.link.heard(time.monotonic())  # the link's clock, whatever the engine's
        return count

    def _control(self, frames: list[Any]) -> None:
        """A message from the router other than a chunk."""
        try:
            message = wire.decode(frames)
        except ProtocolError as exc:
            self.failed("a message from the router", exc)
            return
        if isinstance(message, wire.Ping):
            self.link.pong()
        elif isinstance(message, wire.Forget):
            self._forget(message.stream)
        elif isinstance(message, wire.Welcome):
            self.link.welcomed(message)
        else:
            log.warning("ignored a %s message from the router at %s", type(message).__name__.upper(),
                        self.link.router)

    def _forget(self, sid: str) -> None:
        """The router moved ``sid`` away: forget it now (its windows waiting are never published),
        drop its queued chunks at the end of this read."""
        self.engine.streams.forget(sid)
        self.shed_streams.discard(sid)
        self.forgetting.add(sid)
        self.forgotten += 1

    def _drop_forgotten(self) -> None:
        """Drop the queued chunks of the streams FORGET named (one pass over the queue)."""
        gone, queue = self.forgetting, self.queue
        if any(a.chunk.stream in gone for a in queue):
            kept = [a for a in queue if a.chunk.stream not in gone]
            self.queued_samples -= sum(_cost(a.chunk) for a in queue if a.chunk.stream in gone)
            queue.clear()
            queue.extend(kept)
        gone.clear()

    def _silence(self) -> None:
        """Nothing heard for the timeout: HELLO again, as a new incarnation if it had been welcomed."""
        link = self.link
        if link.welcome is not None:
            streams = list(self.engine.streams.streams)
            for sid in streams:
                self.engine.streams.forget(sid)
            dropped = len(self.queue)
            self.queue.clear()
            self.queued_samples = 0
            self.shed_streams.clear()
            self.forgetting.clear()
            self.pull = link.renew()
            self._poller = None  # it polled the old DEALER
            self.stats.member = link.member()
            log.warning("heard nothing from the router at %s for %.3g s: rejoining as incarnation %s; "
                        "forgot %d streams and %d queued chunks (the router has moved them)",
                        link.router, link.timeout_s, link.incarnation, len(streams), dropped)
        link.hello()

    def flush(self, summary: ServeSummary) -> None:
        """BYE first (the router moves the streams at once), then the flush as when bound."""
        self.link.bye()
        super().flush(summary)

    def _count_unread(self, summary: ServeSummary, deadline: float) -> None:
        """Count the chunks left unread at the stop (the router's PINGs are not input)."""
        while summary.unread_messages < 1_000_000 and time.monotonic() < deadline:
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                break
            summary.unread_messages += frames[0] == wire.CHUNK


__all__ = ["JoinedLoop", "RouterLink", "join"]
