"""The cluster's wire between a router and its engines (issue 22; docs/scaling.md, "Wire").

An engine started with ``serve --join`` connects a DEALER (routing id :func:`routing_id`)
to the router's engines endpoint (a ROUTER) and, after the welcome, a PUB to the results
endpoint the welcome names. The first frame of every message is its kind:

==========  ===============  =====================================================================
kind        direction        frames after the kind
==========  ===============  =====================================================================
``HELLO``   engine → router  JSON ``{"v":1,"slot","incarnation","pid","host"}`` (:class:`Hello`)
``BYE``     engine → router  none: a clean stop
``PONG``    engine → router  none: the answer to ``PING``, and sent unasked every ``heartbeat_ms``
``WELCOME`` router → engine  JSON ``{"v":1,"results","heartbeat_ms","timeout_ms"}`` (:class:`Welcome`)
``CHUNK``   router → engine  8-byte little-endian float64 router receipt (unix time), then the
                             producer's frames unchanged (:func:`chunk_frames`)
``PING``    router → engine  none
``FORGET``  router → engine  the stream id: the stream moved away, drop its state (:class:`Forget`)
==========  ===============  =====================================================================

This module lives in ``harstream.serve`` because the engine may not import ``harstream.cluster``;
the router imports it from here. Every ``encode_*`` validates what it returns; :func:`decode`
validates a whole message and raises :class:`~harstream.errors.ProtocolError` naming the bad
value. ``CHUNK`` is the one hot message: :func:`chunk_frames` and :func:`router_time` are cheap,
and the producer frames are left to :func:`harstream.protocol.decode_chunk`.

>>> hello = Hello(slot=2, incarnation="0123456789abcdef0123456789abcdef", pid=77, host="node-a")
>>> frames = encode_hello(hello)
>>> frames[0], decode(frames) == hello, routing_id(hello)
(b'HELLO', True, b'2.0123456789abcdef0123456789abcdef')
>>> parse_routing_id(routing_id(hello))
(2, '0123456789abcdef0123456789abcdef')
>>> decode(encode_welcome(Welcome("tcp://10.0.0.1:5558")))
Welcome(results='tcp://10.0.0.1:5558', heartbeat_ms=200, timeout_ms=1000)
>>> frames = chunk_frames(1700000000.25, [b"phone-1", b'{"v":1,"seq":0,"rate":50}', bytes(24)])
>>> frames[0], router_time(frames[1])
(b'CHUNK', 1700000000.25)
>>> decode(frames), len(decode(frames).frames)
(RoutedChunk(t_router=1700000000.25), 3)
>>> decode(encode_forget("phone-1")), decode(PING_MESSAGE), decode(PONG_MESSAGE), decode(BYE_MESSAGE)
(Forget(stream='phone-1'), Ping(), Pong(), Bye())
>>> decode([b"HELLO", b'{"v":1,"slot":-1,"incarnation":"ab","pid":1,"host":"h"}'])
Traceback (most recent call last):
...
harstream.errors.ProtocolError: field: expected HELLO 'slot' to be an integer in [0, 65535], got -1
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from harstream.errors import ProtocolError

WIRE_VERSION: Final = 1
"""The ``"v"`` of HELLO and WELCOME."""

HELLO: Final = b"HELLO"
WELCOME: Final = b"WELCOME"
CHUNK: Final = b"CHUNK"
PING: Final = b"PING"
PONG: Final = b"PONG"
FORGET: Final = b"FORGET"
BYE: Final = b"BYE"
KINDS: Final = (HELLO, WELCOME, CHUNK, PING, PONG, FORGET, BYE)
"""Every message kind (the first frame)."""

PING_MESSAGE: Final = (PING,)
"""The whole ``PING`` message."""
PONG_MESSAGE: Final = (PONG,)
"""The whole ``PONG`` message."""
BYE_MESSAGE: Final = (BYE,)
"""The whole ``BYE`` message."""

DEFAULT_HEARTBEAT_MS: Final = 200
"""Router PINGs and ZMQ_HEARTBEAT_IVL, ms."""
DEFAULT_TIMEOUT_MS: Final = 1000
"""Silence after which a peer counts as lost (ZMQ_HEARTBEAT_TIMEOUT/TTL; the engine re-hellos), ms."""
MAX_SLOT: Final = 65535
"""Largest engine slot."""
MAX_JSON_BYTES: Final = 4096
"""Size limit of a HELLO or WELCOME JSON frame."""

_INCARNATION = re.compile(r"^[0-9a-f]{1,32}$")
_STREAM = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")  # harstream.protocol.STREAM_ID, as bytes
_TIME = struct.Struct("<d")
_unpack_time = _TIME.unpack
_pack_time = _TIME.pack


@dataclass(frozen=True, slots=True)
class Hello:
    """An engine introduces itself: on start, and after hearing nothing for ``timeout_ms``."""

    slot: int
    """Which engine this is, 0..N-1: rendezvous hashing is keyed by it."""
    incarnation: str
    """Lowercase hex (uuid4 hex), new whenever the engine starts without state."""
    pid: int
    """The engine's process id (for the cluster's ``$stats`` rows)."""
    host: str
    """The engine's host name."""


@dataclass(frozen=True, slots=True)
class Welcome:
    """The router's answer to a HELLO."""

    results: str
    """The endpoint the engine's PUB connects to (the router's XSUB)."""
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    """How often the router PINGs."""
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    """Silence after which each side counts the other as lost."""


@dataclass(frozen=True, slots=True)
class RoutedChunk:
    """A producer's chunk as the router forwards it."""

    t_router: float
    """Unix time (the router's wall clock) the router received it."""
    frames: list[Any] = field(repr=False)
    """The producer's frames, unchanged (for :func:`harstream.protocol.decode_chunk`)."""


@dataclass(frozen=True, slots=True)
class Ping:
    """The router's heartbeat; answered with PONG."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The engine's answer to PING, also sent unasked every ``heartbeat_ms`` (a PING may wait behind chunks)."""


@dataclass(frozen=True, slots=True)
class Forget:
    """The stream moved to another engine: drop its state, publish nothing more for it."""

    stream: str


@dataclass(frozen=True, slots=True)
class Bye:
    """The engine stops cleanly."""


Message: TypeAlias = Hello | Welcome | RoutedChunk | Ping | Pong | Forget | Bye
"""Any decoded cluster message."""


def routing_id(hello: Hello) -> bytes:
    """The DEALER routing id of the engine that says ``hello``: ``b"{slot}.{incarnation}"``."""
    return f"{hello.slot}.{hello.incarnation}".encode("ascii")


def parse_routing_id(identity: bytes) -> tuple[int, str]:
    """``(slot, incarnation)`` of a routing id made by :func:`routing_id`.

    >>> parse_routing_id(b"x.1")
    Traceback (most recent call last):
    ...
    harstream.errors.ProtocolError: field: expected a routing id b'SLOT.INCARNATION', got b'x.1'
    """
    slot, dot, incarnation = bytes(identity).partition(b".")
    if not (dot and slot.isdigit() and len(slot) <= 5 and int(slot) <= MAX_SLOT
            and _INCARNATION.fullmatch(incarnation.decode("ascii", "replace"))):
        raise ProtocolError("field", f"expected a routing id b'SLOT.INCARNATION', got {bytes(identity)[:80]!r}")
    return int(slot), incarnation.decode("ascii")


# -- encoders ----------------------------------------------------------------------------------


def encode_hello(hello: Hello) -> list[bytes]:
    """Frames of a HELLO."""
    frames = [HELLO, _json({"v": WIRE_VERSION, "slot": hello.slot, "incarnation": hello.incarnation,
                            "pid": hello.pid, "host": hello.host})]
    decode(frames)
    return frames


def encode_welcome(welcome: Welcome) -> list[bytes]:
    """Frames of a WELCOME."""
    frames = [WELCOME, _json({"v": WIRE_VERSION, "results": welcome.results,
                              "heartbeat_ms": welcome.heartbeat_ms, "timeout_ms": welcome.timeout_ms})]
    decode(frames)
    return frames


def chunk_frames(t_router: float, frames: Sequence[Any]) -> list[Any]:
    """Frames of a CHUNK: the router's receipt time (unix) and the producer's ``frames`` unchanged.

    Not validated (the router's hot path; the engine validates the producer's frames)."""
    return [CHUNK, _pack_time(t_router), *frames]


def router_time(frame: Any) -> float:
    """The router's receipt time from frame 1 of a CHUNK (``bytes`` or a ``zmq.Frame``).

    >>> router_time(b"1234")
    Traceback (most recent call last):
    ...
    harstream.errors.ProtocolError: frames: expected CHUNK's frame 1 to be an 8-byte float64, got 4 bytes
    """
    try:
        return float(_unpack_time(frame)[0])
    except (struct.error, TypeError):
        try:
            got = f"{memoryview(frame).nbytes} bytes"
        except TypeError:
            got = type(frame).__name__
        raise ProtocolError("frames", f"expected CHUNK's frame 1 to be an 8-byte float64, got {got}") from None


def encode_forget(stream: str) -> list[bytes]:
    """Frames of a FORGET for ``stream``."""
    frames = [FORGET, stream.encode("utf-8", "surrogatepass")]
    decode(frames)
    return frames


# -- the decoder -------------------------------------------------------------------------------


def decode(frames: Sequence[Any]) -> Message:
    """Validate and decode one cluster message, without a routing id frame (a ROUTER strips it first)."""
    if not frames:
        raise ProtocolError("frames", "expected a cluster message, got no frames")
    kind = _bytes(frames[0], 0)
    if kind == CHUNK:
        if len(frames) < 3 or len(_bytes(frames[1], 1)) != _TIME.size:
            sizes = [len(_bytes(frame, i)) for i, frame in enumerate(frames[:2])]
            raise ProtocolError("frames", "expected CHUNK, an 8-byte float64 router time, then the producer's "
                                f"frames; got {len(frames)} frames, the first of {sizes} bytes")
        t_router = router_time(_bytes(frames[1], 1))
        if not math.isfinite(t_router):
            raise ProtocolError("field", f"expected a finite CHUNK router time, got {t_router!r}")
        return RoutedChunk(t_router, list(frames[2:]))
    if kind in (PING, PONG, BYE):
        _count(frames, 1, kind)
        return Ping() if kind == PING else Pong() if kind == PONG else Bye()
    if kind == FORGET:
        _count(frames, 2, kind)
        stream = _bytes(frames[1], 1)
        if not _STREAM.fullmatch(stream):
            raise ProtocolError("stream_id", f"expected FORGET's stream id to be 1-64 characters of "
                                f"[A-Za-z0-9._:-], got {stream[:80]!r}")
        return Forget(stream.decode("ascii"))
    if kind == HELLO:
        _count(frames, 2, kind)
        return _hello(_body(frames[1], kind))
    if kind == WELCOME:
        _count(frames, 2, kind)
        return _welcome(_body(frames[1], kind))
    kinds = ", ".join(k.decode() for k in KINDS)
    raise ProtocolError("frames", f"expected a message kind ({kinds}), got {kind[:40]!r}")


def _hello(body: dict[str, Any]) -> Hello:
    slot = _int(body, "slot", HELLO, MAX_SLOT)
    incarnation = body.get("incarnation")
    if type(incarnation) is not str or not _INCARNATION.fullmatch(incarnation):
        raise _expected(HELLO, "incarnation", "1-32 lowercase hex digits", incarnation)
    pid = _int(body, "pid", HELLO, 2**31 - 1)
    host = body.get("host")
    if type(host) is not str or not 1 <= len(host) <= 255:
        raise _expected(HELLO, "host", "a string of 1-255 characters", host)
    return Hello(slot, incarnation, pid, host)


def _welcome(body: dict[str, Any]) -> Welcome:
    results = body.get("results")
    if type(results) is not str or not 1 <= len(results) <= 255 or "://" not in results:
        raise _expected(WELCOME, "results", "a ZeroMQ endpoint like 'tcp://host:5558'", results)
    heartbeat = _int(body, "heartbeat_ms", WELCOME, 3_600_000, low=1)
    timeout = _int(body, "timeout_ms", WELCOME, 3_600_000, low=1)
    return Welcome(results, heartbeat, timeout)


def _bytes(frame: Any, index: int) -> bytes:
    if type(frame) is bytes:
        return frame
    try:  # zmq.Frame, memoryview, bytearray
        return memoryview(frame).tobytes()
    except TypeError:
        raise ProtocolError("frames", f"expected frame {index} to be bytes, got {type(frame).__name__}") from None


def _count(frames: Sequence[Any], n: int, kind: bytes) -> None:
    if len(frames) != n:
        raise ProtocolError("frames", f"expected {kind.decode()} to have {n} frame(s), got {len(frames)}")


def _body(frame: Any, kind: bytes) -> dict[str, Any]:
    raw = _bytes(frame, 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ProtocolError("header", f"expected {kind.decode()}'s JSON within {MAX_JSON_BYTES} bytes, "
                            f"got {len(raw)}")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("header", f"expected {kind.decode()}'s frame 1 to be a JSON object: {exc}") from None
    if type(body) is not dict:
        raise _expected(kind, "frame 1", "a JSON object", body, field_name=False)
    if body.get("v") != WIRE_VERSION:
        raise ProtocolError("version", f"expected {kind.decode()} 'v' to be {WIRE_VERSION}, got {body.get('v')!r}")
    return body


def _int(body: dict[str, Any], key: str, kind: bytes, high: int, low: int = 0) -> int:
    value = body.get(key)
    if type(value) is not int or not low <= value <= high:
        raise _expected(kind, key, f"an integer in [{low}, {high}]", value)
    return value


def _expected(kind: bytes, key: str, expected: str, got: Any, field_name: bool = True) -> ProtocolError:
    what = f"{kind.decode()} {key!r}" if field_name else f"{kind.decode()} {key}"
    shown = repr(got)
    return ProtocolError("field", f"expected {what} to be {expected}, got {shown[:80]}")


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


__all__ = [
    "BYE", "BYE_MESSAGE", "CHUNK", "DEFAULT_HEARTBEAT_MS", "DEFAULT_TIMEOUT_MS", "FORGET", "HELLO", "KINDS",
    "MAX_SLOT", "PING", "PING_MESSAGE", "PONG", "PONG_MESSAGE", "WELCOME", "WIRE_VERSION", "Bye", "Forget",
    "Hello", "Message", "Ping", "Pong", "RoutedChunk", "Welcome", "chunk_frames", "decode", "encode_forget",
    "encode_hello", "encode_welcome", "parse_routing_id", "router_time",
]
