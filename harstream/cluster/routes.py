"""Which live engine each known stream goes to, kept up to date as engines join and leave.

A :class:`Route` holds a stream's owner (rendezvous hashing over the live slots,
:mod:`harstream.cluster.rendezvous`) and the engine its last chunk went to, which
holds the stream's state (``served``). They differ after a change of the live set
until the stream's next chunk: that is when the router announces the move
(``moved``), knowing the seq the stream restarts at on its new engine.

Changes are applied to every route at once (:meth:`Routes.joined`, :meth:`Routes.lost`),
so the hot path only looks a route up: ``route.member is route.served`` and not None
means "forward to it".

>>> from harstream.cluster.membership import Membership
>>> from harstream.serve.cluster_wire import Hello
>>> live = Membership(timeout_s=1.0)
>>> a, _ = live.hello(b"0.aa", Hello(0, "aa", 1, "h"), now=0.0)
>>> routes = Routes()
>>> streams = [f"s{i}".encode() for i in range(300)]
>>> for s in streams:
...     routes.served(routes.add(s, live), tick=0)
>>> a.streams
300
>>> b, _ = live.hello(b"1.bb", Hello(1, "bb", 2, "h"), now=0.0)
>>> forget = routes.joined(b, live)
>>> sorted({old.slot for _, old in forget}), 100 < len(forget) < 200, a.streams + b.streams
([0], True, 300)
>>> route = routes.table[forget[0][0]]
>>> route.member is b, route.served, route.origin
(True, None, 'engine 0.aa (engine 1.bb joined)')
"""

from __future__ import annotations

from collections.abc import Iterable

from harstream.cluster.membership import Member, Membership
from harstream.cluster.rendezvous import weight

__all__ = ["Route", "Routes"]


class Route:
    """One stream's owner and the engine holding its state."""

    __slots__ = ("dropped", "member", "origin", "owner", "seen", "served", "weight")

    def __init__(self, member: Member | None, weight_: int) -> None:
        self.member = member
        """The live engine rendezvous hashing picks (None: no engine is live)."""
        self.weight = weight_
        """The stream's weight on ``member``'s slot."""
        self.served: Member | None = None
        """The engine the stream's last chunk went to (None before its first chunk)."""
        self.seen = 0
        """Tick of the router's clock when its last chunk came."""
        self.origin = ""
        """Why the owner changed since the last chunk (for the ``moved`` report); empty when it did not."""
        self.dropped = 0
        """Chunks dropped since the last one forwarded, because no engine was live."""
        self.owner: str | None = None
        """With keys on: the producer key that opened the stream (only it may send its chunks)."""


def _best(stream: bytes, members: Iterable[Member]) -> tuple[Member | None, int]:
    """The member of highest weight for ``stream`` (ties to the lower slot), and that weight."""
    best: Member | None = None
    best_key = (-1, 0)
    for member in members:
        key = (weight(stream, member.slot), -member.slot)
        if key > best_key:
            best, best_key = member, key
    return best, best_key[0]


class Routes:
    """Every known stream's :class:`Route`, by stream id (bytes, as frame 0 of a chunk)."""

    def __init__(self) -> None:
        self.table: dict[bytes, Route] = {}

    def __len__(self) -> int:
        return len(self.table)

    def add(self, stream: bytes, live: Iterable[Member]) -> Route:
        """A new route for ``stream`` (remembered) to its owner among ``live``."""
        route = self.pick(stream, live)
        self.table[stream] = route
        if route.member is not None:
            route.member.streams += 1
        return route

    @staticmethod
    def pick(stream: bytes, live: Iterable[Member]) -> Route:
        """A route for ``stream`` that is not remembered (streams past the limit, bad stream ids)."""
        member, w = _best(stream, live)
        return Route(member, w)

    @staticmethod
    def served(route: Route, tick: int) -> None:
        """Note that a chunk of ``route``'s stream went to its member."""
        route.served = route.member
        route.seen = tick
        route.origin = ""
        route.dropped = 0

    def joined(self, member: Member, live: Membership) -> list[tuple[bytes, Member]]:
        """Move to ``member`` the streams whose weight on its slot beats their owner's.

        Returns the FORGETs to send: (stream, the live engine holding its state). Such a
        stream's ``served`` becomes None: its state is gone wherever it goes next.
        """
        slot = member.slot
        forget = []
        for stream, route in self.table.items():
            w = weight(stream, slot)
            old = route.member
            if old is None or (w, -slot) > (route.weight, -old.slot):
                self._move(route, member, w, f"engine {member.name} joined")
                held = route.served
                if held is not None and held is not member and live.get(held.identity) is held:
                    forget.append((stream, held))
                    route.served = None
        return forget

    def lost(self, member: Member, live: Membership, reason: str) -> list[bytes]:
        """Move ``member``'s streams to their owners among ``live`` (it is no longer in it); those streams."""
        moved = [stream for stream, route in self.table.items() if route.member is member]
        for stream in moved:
            route = self.table[stream]
            new, w = _best(stream, live)
            self._move(route, new, w, f"engine {member.name} lost: {reason}")
        return moved

    def _move(self, route: Route, member: Member | None, w: int, why: str) -> None:
        old = route.member
        if old is not None:
            old.streams -= 1
        if member is not None:
            member.streams += 1
        route.member, route.weight = member, w
        if not route.origin and route.served is not None:
            route.origin = f"engine {route.served.name} ({why})"

    def forget_idle(self, before: int) -> list[tuple[bytes, Route]]:
        """Forget the streams whose last chunk came before tick ``before``; those forgotten."""
        idle = [(stream, route) for stream, route in self.table.items() if route.seen < before]
        for stream, route in idle:
            del self.table[stream]
            if route.member is not None:
                route.member.streams -= 1
        return idle
