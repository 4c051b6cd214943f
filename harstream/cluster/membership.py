"""The live engines: who said HELLO, who answers PINGs, who went silent, restarted or said BYE.

One :class:`Member` per live slot. A HELLO from a new incarnation of a slot replaces
the old one (the engine rejoined: its state is gone), unless another process holds
the slot and still answers (:meth:`Membership.holder`: two engines started with one
slot would otherwise replace each other every timeout); a member silent for
``timeout_s`` (no PONG, no message) is dropped; so is one the router cannot reach
(its connection closed: ``unreachable``) and one that says BYE. Every change is kept
as an :class:`Event` for the cluster's ``$stats``, with how long the engine had been
silent when it was dropped (how fast a crash or a hang was detected).

Time is the caller's monotonic clock, in seconds.

>>> from harstream.serve.cluster_wire import Hello
>>> live = Membership(timeout_s=1.0)
>>> a = live.hello(b"0.aa", Hello(0, "aa", 10, "h"), now=0.0)
>>> b = live.hello(b"1.bb", Hello(1, "bb", 11, "h"), now=0.0)
>>> sorted(live.slots()), live.heard(b"0.aa", now=0.9)
([0, 1], True)
>>> [m.slot for m in live.expire(now=1.2)]
[1]
>>> event = live.events[-1]
>>> event.kind, event.reason, event.slot, event.silent_ms, sorted(live.slots())
('lost', 'timeout', 1, 1200.0, [0])
>>> live.holder(b"0.cc", Hello(0, "cc", 12, "h"), now=1.5) is a[0]  # pid 12 is not slot 0's process
True
>>> live.holder(b"0.cc", Hello(0, "cc", 12, "h"), now=2.0) is None  # slot 0's engine silent too long
True
>>> c, replaced = live.hello(b"0.cc", Hello(0, "cc", 12, "h"), now=1.5)
>>> replaced == [a[0]], [(e.kind, e.incarnation, e.reason) for e in list(live.events)[-2:]]
(True, [('lost', 'aa', 'replaced'), ('joined', 'cc', 'hello')])
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from harstream.serve.cluster_wire import Hello

__all__ = ["Event", "Member", "Membership"]

MAX_EVENTS = 64
"""Membership events kept (the newest) for the cluster's ``$stats``."""

Reason = Literal["hello", "timeout", "unreachable", "bye", "replaced"]


@dataclass(eq=False)
class Member:
    """One live engine. Compared by identity: a re-joined engine is a new member."""

    identity: bytes
    """Its DEALER routing id, ``b"{slot}.{incarnation}"``."""
    hello: Hello
    joined: float
    """Monotonic time of its HELLO."""
    last_heard: float
    """Monotonic time of its latest message (PONG, HELLO)."""
    joined_unix: float = field(default_factory=time.time)
    chunks: int = 0
    """Chunks routed to it."""
    streams: int = 0
    """Streams the router routes to it now."""
    stats: dict[str, Any] | None = None
    """Its latest own ``$stats`` (fields as the engine publishes them), if any came."""

    @property
    def slot(self) -> int:
        return self.hello.slot

    @property
    def name(self) -> str:
        """``slot.incarnation`` (incarnation cut to 8 digits), as ``$error`` details name engines."""
        return f"{self.hello.slot}.{self.hello.incarnation[:8]}"


@dataclass(frozen=True)
class Event:
    """A change of the live set."""

    kind: Literal["joined", "lost"]
    reason: Reason
    slot: int
    incarnation: str
    t: float
    """Unix time of the change."""
    silent_ms: float
    """For ``lost``: how long the engine had been silent when it was dropped (detection time); 0 for joins."""

    def to_json(self) -> dict[str, Any]:
        """The event as a ``$stats`` row."""
        return {"kind": self.kind, "reason": self.reason, "slot": self.slot, "incarnation": self.incarnation,
                "t": round(self.t, 3), "silent_ms": round(self.silent_ms, 1)}


class Membership:
    """The live engines, one per slot, and the log of changes."""

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: expected a number > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self.by_slot: dict[int, Member] = {}
        self.by_identity: dict[bytes, Member] = {}
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self.joins = 0
        """Members admitted since start."""
        self.losses: dict[str, int] = {}
        """Members dropped since start, by reason."""

    def __len__(self) -> int:
        return len(self.by_slot)

    def __iter__(self) -> Iterator[Member]:
        return iter(list(self.by_slot.values()))

    def slots(self) -> list[int]:
        """The live slots."""
        return list(self.by_slot)

    def get(self, identity: bytes) -> Member | None:
        """The live member of routing id ``identity``, if any."""
        return self.by_identity.get(identity)

    def hello(self, identity: bytes, hello: Hello, now: float) -> tuple[Member, list[Member]]:
        """Admit the engine that says ``hello``; the member and those it replaced.

        A live member re-saying its HELLO is kept (only its time is updated). A new
        incarnation of a live slot replaces the old one, which is dropped (``replaced``).
        """
        member = self.by_identity.get(identity)
        if member is not None and member.hello == hello:
            member.last_heard = now
            return member, []
        replaced = [m for m in (member, self.by_slot.get(hello.slot)) if m is not None]
        for old in replaced:  # the same routing id with other details, or the slot's previous engine
            self.drop(old, "replaced", now)
        member = Member(identity, hello, joined=now, last_heard=now)
        self.by_slot[hello.slot] = member
        self.by_identity[identity] = member
        self.joins += 1
        self.events.append(Event("joined", "hello", hello.slot, hello.incarnation, time.time(), 0.0))
        return member, list(dict.fromkeys(replaced))

    def holder(self, identity: bytes, hello: Hello, now: float) -> Member | None:
        """The live member of another process (pid, host) that holds ``hello``'s slot and was heard
        within ``timeout_s``; None when ``hello`` may take the slot (free, the same process
        rejoining, or a holder silent too long)."""
        held = self.by_slot.get(hello.slot)
        if held is None or held.identity == identity:
            return None
        if (held.hello.pid, held.hello.host) == (hello.pid, hello.host):
            return None
        return held if now - held.last_heard <= self.timeout_s else None

    def heard(self, identity: bytes, now: float) -> bool:
        """Note a message from ``identity``; False when it is no live member (it must say HELLO)."""
        member = self.by_identity.get(identity)
        if member is None:
            return False
        member.last_heard = now
        return True

    def drop(self, member: Member, reason: Reason, now: float) -> bool:
        """Remove ``member``; False (and nothing done) when it was no longer live."""
        if self.by_identity.get(member.identity) is not member:
            return False
        del self.by_identity[member.identity]
        if self.by_slot.get(member.slot) is member:
            del self.by_slot[member.slot]
        silent_ms = max(now - member.last_heard, 0.0) * 1000.0
        event = Event("lost", reason, member.slot, member.hello.incarnation, time.time(), silent_ms)
        self.events.append(event)
        self.losses[reason] = self.losses.get(reason, 0) + 1
        return True

    def expire(self, now: float) -> list[Member]:
        """Drop the members silent for longer than ``timeout_s``; those dropped."""
        late = [m for m in self.by_slot.values() if now - m.last_heard > self.timeout_s]
        return [m for m in late if self.drop(m, "timeout", now)]
