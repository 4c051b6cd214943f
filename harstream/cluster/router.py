"""``harstream router``: one ingest and one publish address in front of several engines.

Four sockets, one thread:

- **ingest** (PULL, bound where producers and ``harstream web`` connect): each chunk
  goes, unchanged and undecoded (only its stream id frame is read), to the engine
  rendezvous hashing picks among the live ones (:mod:`harstream.cluster.routes`), as
  ``CHUNK`` with the router's receipt time (:mod:`harstream.serve.cluster_wire`), on
- **engines** (ROUTER with ``ROUTER_MANDATORY``, ``ROUTER_HANDOVER`` and ZeroMQ
  heartbeats): engines' DEALERs say HELLO (answered with WELCOME), answer PINGs, get
  FORGET when a stream moves away from them, and say BYE on a clean stop. A send to an
  engine whose connection is gone fails at once (``unreachable``); an engine silent for
  ``timeout_ms`` is dropped (``timeout``: a hung engine).
- **results** (XSUB, engines' PUBs connect) -> **publish** (XPUB): a proxy,
  subscriptions flowing up, except the engines' ``$stats``, which the router takes
  and replaces by one cluster-wide ``$stats`` (:mod:`harstream.cluster.report`).

A stream whose engine changes gets one ``$error`` ``moved`` when its next chunk goes to
the new engine (naming both engines, why, and the seq it restarts at); a chunk that no
live engine can take is dropped and reported (``no_engine``, once per stream per outage,
then counted). With keys (:mod:`harstream.cluster.security`) every socket is a CURVE
server and a stream belongs to the producer key that opened it. On stop, what producers
already sent is forwarded for a moment. docs/scaling.md has the failure behaviour.

>>> import threading
>>> config = RouterConfig(ingest="inproc://doc-in", publish="inproc://doc-out",
...                       engines="inproc://doc-engines", results="inproc://doc-results")
>>> stop = threading.Event(); stop.set()
>>> run_router(config, stop=stop, say=lambda line: None).chunks_in
0
"""

from __future__ import annotations

import json
import logging
import re
import socket as socketlib
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from harstream.cluster.config import RouterConfig
from harstream.cluster.membership import Member, Membership, Reason
from harstream.cluster.report import Counters, Reporter, engine_row_key
from harstream.cluster.routes import Route, Routes
from harstream.cluster.security import RouterSecurity, secure_router
from harstream.errors import ProtocolError, SecurityError, ServeError
from harstream.protocol import STATS_TOPIC, STREAM_ID, encode_error, encode_stats
from harstream.serve import cluster_wire as wire
from harstream.serve.security import ServerSecurity, sender_key

log = logging.getLogger("harstream.cluster.router")

__all__ = ["Router", "RouterSockets", "bind", "run_router"]

_STATS = STATS_TOPIC.encode()
_VALID_ID = re.compile(STREAM_ID.pattern.encode("ascii"))
_pack_time = struct.Struct("<d").pack
_send = zmq.backend.Socket.send
"""pyzmq's own (Cython) send of one frame, without the Python layer's per-call checks: the hot path
sends six frames per chunk, and ``send_multipart`` costs several times as much (docs/scaling.md,
"What the router costs")."""
_MORE = zmq.SNDMORE | zmq.NOBLOCK
_CHUNK = wire.CHUNK
STOP_FLUSH_S = 1.0
"""On stop, what producers already sent is forwarded for at most this long (and the engines socket
lingers as long for it to leave); what is still unread then is counted in the stop line."""
MAX_ENGINE_MESSAGES = 1000
"""Most messages read off the engines' socket (or the results socket) in one turn."""


@dataclass
class RouterSockets:
    """The router's four bound sockets (and, with keys, what stops their authenticator)."""

    pull: zmq.Socket[bytes]
    xpub: zmq.Socket[bytes]
    engines: zmq.Socket[bytes]
    xsub: zmq.Socket[bytes]
    secure: bool = False
    """Keys are on: each chunk's sender key is read and must own its stream."""
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for sock in (self.pull, self.xsub):
            sock.close(linger=0)
        for sock in (self.engines, self.xpub):  # the last chunks reach the engines, $stats the subscribers
            sock.close(linger=int(STOP_FLUSH_S * 1000))
        for closer in self.closers:
            closer()


def bind(config: RouterConfig, context: zmq.Context[zmq.Socket[bytes]] | None = None,
         security: RouterSecurity | None = None) -> RouterSockets:
    """Create and bind the four sockets (CURVE servers with ``security``); :class:`ServeError` naming the
    endpoint that cannot bind."""
    ctx = context or zmq.Context.instance()
    sockets = RouterSockets(ctx.socket(zmq.PULL), ctx.socket(zmq.XPUB), ctx.socket(zmq.ROUTER),
                            ctx.socket(zmq.XSUB), secure=security is not None)
    try:
        if security is not None:
            sockets.closers.append(secure_router(ctx, sockets.pull, sockets.xpub, sockets.engines, sockets.xsub,
                                                 security))
        for sock in (sockets.pull, sockets.xpub, sockets.engines, sockets.xsub):
            sock.setsockopt(zmq.IPV6, 1)
            sock.setsockopt(zmq.LINGER, 0)
        sockets.pull.setsockopt(zmq.RCVHWM, config.ingest_hwm)
        sockets.pull.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        sockets.xpub.setsockopt(zmq.SNDHWM, config.publish_hwm)
        sockets.xsub.setsockopt(zmq.RCVHWM, config.results_hwm)
        engines = sockets.engines
        engines.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone engine fails: EHOSTUNREACH
        engines.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting engine takes its routing id back
        engines.setsockopt(zmq.SNDHWM, config.engine_hwm)
        engines.setsockopt(zmq.HEARTBEAT_IVL, config.heartbeat_ms)  # libzmq drops a hung peer's pipe,
        engines.setsockopt(zmq.HEARTBEAT_TIMEOUT, config.timeout_ms)  # GIL-free, in its I/O thread
        engines.setsockopt(zmq.HEARTBEAT_TTL, config.timeout_ms)
        for sock, endpoint, role in ((sockets.pull, config.ingest, "ingest"),
                                     (sockets.xpub, config.publish, "publish"),
                                     (engines, config.engines, "engines"),
                                     (sockets.xsub, config.results, "results")):
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise ServeError(f"cannot bind the {role} endpoint {endpoint!r}: {exc}") from None
        sockets.xsub.send(b"\x01" + _STATS)  # the router's own subscription: every engine's $stats
    except BaseException:
        sockets.close()
        raise
    return sockets


def last_endpoint(sock: zmq.Socket[bytes]) -> str:
    """The endpoint ``sock`` was last bound to (the port chosen for ``tcp://HOST:*``)."""
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


def advertised(configured: str, bound: str, host: str | None) -> str:
    """The results endpoint as engines must connect to it (named in WELCOME).

    ``configured`` as given, with the port chosen when it was ``*`` (from ``bound``, the socket's
    last endpoint) and its host replaced by ``host``, or by this machine's host name when it is
    bound on every interface.

    >>> advertised("tcp://127.0.0.1:5558", "tcp://[::ffff:127.0.0.1]:5558", None)
    'tcp://127.0.0.1:5558'
    >>> advertised("tcp://*:*", "tcp://0.0.0.0:40001", "router-1")
    'tcp://router-1:40001'
    """
    if not configured.startswith("tcp://"):
        return configured
    address, _, port = configured[len("tcp://"):].rpartition(":")
    if port == "*":
        port = bound.rpartition(":")[2]
    if host is None and address in ("0.0.0.0", "[::]", "*"):
        host = socketlib.gethostname()
    return f"tcp://{host or address}:{port}"


class Router:
    """The router's state, driven by :meth:`turn`."""

    def __init__(self, config: RouterConfig, sockets: RouterSockets,
                 clock: Callable[[], float] = time.monotonic,
                 on_stats: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.on_stats = on_stats
        self.sockets = sockets
        self.clock = clock
        self.live = Membership(config.timeout_ms / 1000.0)
        self.routes = Routes()
        self.counters = Counters()
        self.id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.started_mono = clock()
        self.tick = int(self.started_mono)
        results = advertised(config.results, last_endpoint(sockets.xsub), config.advertise)
        self.welcome = wire.encode_welcome(wire.Welcome(results, config.heartbeat_ms, config.timeout_ms))
        self.refused: set[bytes] = set()
        """Routing ids whose HELLO was refused (their slot held by another engine): logged once each."""
        self.unmatched: dict[str, tuple[float, dict[str, Any]]] = {}
        """Engines' ``$stats`` that name no live member, by engine id: (when, fields)."""
        self.next_ping = self.started_mono
        self.next_stats = self.started_mono + config.stats_interval_s
        self.reporter = Reporter(self.started_mono)
        self.read_ingest = self.forward_owned if sockets.secure else self.forward
        """What reads the ingest socket: :meth:`forward`, or with keys on :meth:`forward_owned`."""
        self._poller = zmq.Poller()
        for sock in (sockets.pull, sockets.engines, sockets.xsub, sockets.xpub):
            self._poller.register(sock, zmq.POLLIN)

    # -- the loop ----------------------------------------------------------------------------

    def turn(self, max_wait_s: float) -> None:
        """Wait for input (at most ``max_wait_s``, less when a heartbeat is due), handle it and the timers."""
        now = self.clock()
        wait = max(0.0, min(max_wait_s, self.next_ping - now, self.next_stats - now))
        ready = dict(self._poller.poll(int(wait * 1000)))
        sockets = self.sockets
        if sockets.engines in ready:
            self.read_engines()
        if sockets.pull in ready:
            self.read_ingest()
        if sockets.xsub in ready:
            self.read_results()
        if sockets.xpub in ready:
            self.read_subscriptions()
        now = self.clock()
        self.tick = int(now)
        if now >= self.next_ping:
            self.heartbeat(now)
        if now >= self.next_stats:
            self.report(now)

    def forward(self) -> int:
        """Route up to ``max_drain`` waiting chunks to their engines; how many were read (the hot path)."""
        pull, engines, send = self.sockets.pull, self.sockets.engines, _send
        table, tick, now = self.routes.table, self.tick, time.time
        more, last = _MORE, zmq.NOBLOCK
        cpu = time.thread_time()
        n = 0
        for n in range(1, self.config.max_drain + 1):
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                n -= 1
                break
            stamp = _pack_time(now())
            route = table.get(frames[0])
            if route is None or (member := route.member) is None or member is not route.served:
                self._route_slowly(frames, stamp, route)
                continue
            route.seen = tick
            try:  # the routing id frame fails (EHOSTUNREACH, EAGAIN) or the whole message goes
                send(engines, member.identity, more)
            except zmq.ZMQError as exc:
                self._send_failed(exc, frames, stamp, route, member)
                continue
            send(engines, _CHUNK, more)
            send(engines, stamp, more)
            for frame in frames[:-1]:
                send(engines, frame, more)
            send(engines, frames[-1], last)
            member.chunks += 1
        self.counters.chunks_in += n
        self.counters.forward_cpu_s += time.thread_time() - cpu
        return n

    def forward_owned(self) -> int:
        """:meth:`forward` with keys on: a stream belongs to the key that opened it (``not_owner`` otherwise)."""
        pull, table = self.sockets.pull, self.routes.table
        cpu = time.thread_time()
        n = 0
        for n in range(1, self.config.max_drain + 1):
            try:
                received = pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                n -= 1
                break
            stamp = _pack_time(time.time())
            key = sender_key(received[0])
            frames = [frame.bytes for frame in received]
            route = table.get(frames[0])
            if route is None and _valid_stream(frames[0]):
                if len(self.routes) >= self.config.max_streams:  # its owner could not be remembered
                    self._error(frames[0], "too_many_streams", f"the router holds its limit of "
                                f"{self.config.max_streams} streams; a stream is freed after its idle timeout")
                    continue
                route = self.routes.add(frames[0], self.live)
            if route is not None:
                if route.owner is None:
                    route.owner = key
                elif route.owner != key:
                    self.counters.not_owner += 1
                    self._error(frames[0], "not_owner", "the stream id belongs to another producer key; "
                                "chunk dropped")
                    continue
            self._route_slowly(frames, stamp, route)
        self.counters.chunks_in += n
        self.counters.forward_cpu_s += time.thread_time() - cpu
        return n

    # -- chunks off the hot path -------------------------------------------------------------

    def _route_slowly(self, frames: list[bytes], stamp: bytes, route: Route | None) -> None:
        """A new stream, a moved one, or one with no live engine."""
        stream = frames[0]
        if route is None:
            remember = (len(self.routes) < self.config.max_streams
                        and _valid_stream(stream))  # a bad id goes on to an engine, which reports it
            route = self.routes.add(stream, self.live) if remember else self.routes.pick(stream, self.live)
        member = route.member
        if member is None:
            self.counters.no_engine += 1
            route.dropped += 1
            route.seen = self.tick
            if route.dropped == 1:
                self._error(stream, "no_engine", f"no engine is live: the chunk at seq {_seq(frames)} was "
                            "dropped; this stream's next chunks are dropped and counted until an engine joins")
            return
        try:
            self._send_chunk(member, stamp, frames)
        except zmq.ZMQError as exc:
            self._send_failed(exc, frames, stamp, route, member)
            return
        member.chunks += 1
        if route.origin or route.dropped:
            self.counters.moved += 1
            lost = (f"; {route.dropped} chunk(s) dropped while no engine was live (reported as no_engine)"
                    if route.dropped else "")
            self._error(stream, "moved", f"moved from {route.origin or 'no engine'} to engine {member.name} "
                        f"at seq {_seq(frames)}: it restarts there (its first windows re-warm){lost}")
        self.routes.served(route, self.tick)

    def _send_chunk(self, member: Member, stamp: bytes, frames: list[bytes]) -> None:
        """CHUNK to ``member``; a :class:`zmq.ZMQError` of the routing id frame means nothing was sent."""
        engines = self.sockets.engines
        _send(engines, member.identity, _MORE)
        _send(engines, _CHUNK, _MORE)
        _send(engines, stamp, _MORE)
        for frame in frames[:-1]:
            _send(engines, frame, _MORE)
        _send(engines, frames[-1], zmq.NOBLOCK)

    def drain(self, seconds: float) -> int:
        """On stop: forward what producers already sent, for at most ``seconds``; the messages left unread."""
        deadline = self.clock() + seconds
        while self.clock() < deadline and self.read_ingest():
            self.read_engines()
        unread = 0
        while unread < 1_000_000:
            try:
                self.sockets.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            unread += 1
        return unread

    def _send_failed(self, exc: zmq.ZMQError, frames: list[bytes], stamp: bytes, route: Route,
                     member: Member) -> None:
        if exc.errno == zmq.EHOSTUNREACH:  # the engine's connection is gone: lost; the chunk goes on
            self.lose(member, "unreachable")
            self._route_slowly(frames, stamp, route)
        elif exc.errno == zmq.EAGAIN:  # the engine is this far behind: drop, never wait
            self.counters.overloaded += 1
            self._error(_text(frames[0]), "overloaded", f"router: engine {member.name} has "
                        f"{self.config.engine_hwm} chunks waiting; the chunk at seq {_seq(frames)} was dropped "
                        "(the engine reports seq_gap at the next one)")
        else:
            raise exc

    # -- engines -----------------------------------------------------------------------------

    def read_engines(self) -> None:
        """Take the engines' HELLO, PONG and BYE messages."""
        engines = self.sockets.engines
        for _ in range(MAX_ENGINE_MESSAGES):
            try:
                frames = engines.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, body = frames[0], frames[1:]
            kind = body[0] if body else b""
            now = self.clock()
            if kind == wire.PONG:
                if not self.live.heard(identity, now):
                    self.counters.strangers += 1  # a dropped engine: it says HELLO once it notices
            elif kind == wire.HELLO:
                self._hello(identity, body, now)
            elif kind == wire.BYE:
                member = self.live.get(identity)
                if member is not None:
                    self.lose(member, "bye")
            else:
                self.counters.strangers += 1
                log.warning("ignored a message of kind %r from %r", kind[:20], identity[:80])

    def _hello(self, identity: bytes, body: list[bytes], now: float) -> None:
        try:
            hello = wire.decode(body)
            if not isinstance(hello, wire.Hello) or wire.parse_routing_id(identity) != (
                    hello.slot, hello.incarnation):
                raise ProtocolError("field", f"expected the routing id {identity[:80]!r} to be "
                                    "b'SLOT.INCARNATION' of the HELLO")
        except ProtocolError as exc:
            self.counters.strangers += 1
            log.warning("refused a HELLO from %r: %s", identity[:80], exc)
            return
        holder = self.live.holder(identity, hello, now)
        if holder is not None:  # a second engine started with this slot: it waits until the slot is free
            self.counters.strangers += 1
            if len(self.refused) > 1000:
                self.refused.clear()
            if identity not in self.refused:
                self.refused.add(identity)
                log.warning("refused engine %s (pid %d on %s): slot %d is held by engine %s (pid %d on %s), "
                            "which still answers; give each engine its own --slot", f"{hello.slot}."
                            f"{hello.incarnation[:8]}", hello.pid, hello.host, hello.slot, holder.name,
                            holder.hello.pid, holder.hello.host)
            return
        known = self.live.get(identity)
        member, replaced = self.live.hello(identity, hello, now)
        for old in replaced:
            self._moved_off(old, "replaced")
        if not self._send(member, self.welcome):
            return
        if member is not known:
            log.info("engine %s joined (pid %d on %s)", member.name, hello.pid, hello.host)
            for stream, held in self.routes.joined(member, self.live):
                self._send(held, wire.encode_forget(stream.decode("ascii")))

    def lose(self, member: Member, reason: Reason) -> None:
        """Drop ``member`` (it crashed, hung or said BYE): its streams move to the other live engines."""
        if self.live.drop(member, reason, self.clock()):
            self._moved_off(member, reason)

    def _moved_off(self, member: Member, reason: str) -> None:
        moved = self.routes.lost(member, self.live, reason)
        log.warning("engine %s lost (%s): %d streams move", member.name, reason, len(moved))

    def _send(self, member: Member, frames: list[bytes] | tuple[bytes, ...]) -> bool:
        """Send to a live engine; False when it is unreachable (then it is lost) or ``engine_hwm``
        messages behind (then it is kept: the timeout tells a slow engine from a hung one)."""
        try:
            self.sockets.engines.send_multipart([member.identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EAGAIN:
                self.counters.unsent += 1
                return False
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.lose(member, "unreachable")
            return False
        return True

    def heartbeat(self, now: float) -> None:
        """PING every live engine; drop those silent for longer than the timeout."""
        self.next_ping = now + self.config.heartbeat_ms / 1000.0
        self.read_engines()  # PONGs that came while this turn worked (a long move of many streams) count
        for member in self.live.expire(self.clock()):
            self._moved_off(member, "timeout")
        for member in self.live:
            self._send(member, wire.PING_MESSAGE)

    # -- results -----------------------------------------------------------------------------

    def read_results(self) -> None:
        """Forward the engines' predictions and ``$error``s to the subscribers; keep their ``$stats``."""
        xsub, publish = self.sockets.xsub, self.sockets.xpub.send_multipart
        for _ in range(MAX_ENGINE_MESSAGES):
            try:
                frames = xsub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frames[0] == _STATS:
                self._engine_stats(frames)
            else:
                publish(frames, zmq.NOBLOCK)
                self.counters.results += 1

    def _engine_stats(self, frames: list[bytes]) -> None:
        try:
            body = json.loads(frames[1]) if len(frames) == 2 else None
        except ValueError:
            body = None
        if type(body) is not dict:
            self.counters.bad_stats += 1
            return
        key = engine_row_key(body)
        if key is None:  # an engine that does not say which it is: a row of its own, summed
            if isinstance(body.get("engine"), str):
                self.unmatched[body["engine"]] = (self.clock(), body)
            return
        member = self.live.by_slot.get(key[0])
        if member is not None and member.hello.incarnation == key[1]:
            member.stats = body
        else:  # a dropped engine still publishing (until it notices): not in the cluster's figures
            self.counters.strangers += 1

    def read_subscriptions(self) -> None:
        """Pass the subscribers' (un)subscriptions up to the engines."""
        xpub, xsub = self.sockets.xpub, self.sockets.xsub
        for _ in range(MAX_ENGINE_MESSAGES):
            try:
                xsub.send(xpub.recv(zmq.NOBLOCK))
            except zmq.Again:
                return

    # -- reports -----------------------------------------------------------------------------

    def report(self, now: float) -> None:
        """Publish the cluster's ``$stats``; forget idle streams."""
        self.next_stats = now + self.config.stats_interval_s
        for stream, route in self.routes.forget_idle(self.tick - int(self.config.idle_timeout_s)):
            self._silent_move(stream, route, f"forgotten after {self.config.idle_timeout_s:g} s of silence")
        stale = now - 3 * self.config.stats_interval_s
        self.unmatched = {k: v for k, v in self.unmatched.items() if v[0] >= stale}
        stats = self.reporter(self, now)
        self.sockets.xpub.send_multipart(encode_stats(stats), zmq.NOBLOCK)
        if self.on_stats is not None:
            self.on_stats(stats)

    def _silent_move(self, stream: bytes, route: Route, why: str) -> None:
        """Report the move of a stream that sent nothing since (no chunk will announce it)."""
        if route.origin:  # what was in flight to its old engine may be lost
            self.counters.moved += 1
            self._error(_text(stream), "moved", f"moved from {route.origin} and silent since: chunks in flight "
                        f"to that engine may be lost; {why}")

    def stop(self) -> None:
        """On stop: report the moves no chunk has announced yet (the router forgets every stream)."""
        for stream, route in self.routes.table.items():
            self._silent_move(stream, route, "the router stopped")

    def _error(self, stream: bytes | str | None, code: str, detail: str) -> None:
        name = _text(stream) if isinstance(stream, bytes) else stream
        self.sockets.xpub.send_multipart(encode_error(name, code, detail), zmq.NOBLOCK)


def _valid_stream(stream: bytes) -> bool:
    return _VALID_ID.fullmatch(stream) is not None


def _text(stream: bytes | str | None) -> str | None:
    """A stream id for an ``$error`` (None when it is no valid id)."""
    if isinstance(stream, bytes):
        return stream.decode("ascii") if _valid_stream(stream) else None
    return stream


def _seq(frames: list[bytes]) -> str:
    """The seq of a chunk's header, for a report (its header is parsed only here, off the hot path)."""
    try:
        seq = json.loads(frames[1]).get("seq") if len(frames) > 1 else None
    except (ValueError, AttributeError):
        seq = None
    return str(seq) if type(seq) is int else "(no valid seq)"


def run_router(config: RouterConfig | None = None, security: RouterSecurity | None = None, *,
               stop: threading.Event,
               on_ready: Callable[[], None] | None = None,
               on_stats: Callable[[dict[str, Any]], None] | None = None,
               say: Callable[[str], None] = print,
               context: zmq.Context[zmq.Socket[bytes]] | None = None) -> Counters:
    """Route until ``stop`` is set; the counters at the end.

    ``on_ready()`` is called once the sockets are bound, ``on_stats(fields)`` with each cluster
    ``$stats`` published. With ``security`` every socket is a CURVE server
    (:mod:`harstream.cluster.security`).
    """
    if security is not None and not isinstance(security, RouterSecurity):
        what = ("the router's key and the producers' and subscribers' allow-lists, without the engines' "
                if isinstance(security, ServerSecurity) else type(security).__name__)
        raise SecurityError(f"router keys: expected RouterSecurity (the router's ServerSecurity and the engines' "
                            f"allow-list), got {what}")
    config = config or RouterConfig()
    sockets = bind(config, context, security)
    try:
        router = Router(config, sockets, on_stats=on_stats)
        say(f"harstream router {router.id} ready: ingest (PULL) {last_endpoint(sockets.pull)}, publish (XPUB) "
            f"{last_endpoint(sockets.xpub)}, engines (ROUTER) {last_endpoint(sockets.engines)}, results (XSUB) "
            f"{last_endpoint(sockets.xsub)}; engines drop after {config.timeout_ms} ms of silence. Ctrl-C stops.")
        if on_ready is not None:
            on_ready()
        while not stop.is_set():
            router.turn(0.1)
        unread = router.drain(STOP_FLUSH_S)
        router.stop()
        counters = router.counters
        say(f"router {router.id} stopped: {counters.describe()}"
            + (f"; DROPPED {unread} messages still unread after {STOP_FLUSH_S:g} s" if unread else ""))
        return counters
    finally:
        sockets.close()
