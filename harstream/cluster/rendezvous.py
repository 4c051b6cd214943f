"""Which engine serves a stream: rendezvous (highest random weight) hashing of the stream id over slots.

Every (stream, slot) pair gets a pseudo-random weight; a stream goes to the live
slot of highest weight. Keyed by the engine's *slot*, not its incarnation, so an
engine restarted in its slot gets its streams back; adding a slot moves only the
streams whose new weight beats their owner's (about 1/N of them), and losing a
slot moves only that slot's streams, spread over the others.

The weight is a BLAKE2b digest of the stream id salted with the slot, the same in every
process and Python run (Python's own ``hash`` of bytes is salted per process). It is no
secret: a producer could choose stream ids that all land on one engine, as it could send
them all to one engine anyway.

>>> owner("exp01_user01", [0, 1, 2]) in (0, 1, 2)
True
>>> owner("exp01_user01", []) is None
True
>>> streams = [f"phone-{i}" for i in range(1000)]
>>> before = assign(streams, [0, 1, 2])
>>> after = assign(streams, [0, 1, 2, 3])
>>> changed = moved(streams, [0, 1, 2], [0, 1, 2, 3])
>>> all(after[s] == 3 for s in changed), 200 < len(changed) < 300
(True, True)
>>> lost = moved(streams, [0, 1, 2], [0, 2])
>>> lost == {s for s in streams if before[s] == 1}
True
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

__all__ = ["assign", "moved", "owner", "weight"]

_PERSON = b"harstream-rdv-v1"
"""BLAKE2b's personalisation of every weight: changing it reassigns every stream, so it is versioned."""
_SALTS: dict[int, bytes] = {}
"""Each slot's salt (16 bytes), made once."""


def weight(stream: str | bytes, slot: int) -> int:
    """The pseudo-random weight of ``stream`` on ``slot``: a 64-bit integer, the same everywhere.

    >>> weight("phone-1", 0) == weight(b"phone-1", 0) != weight("phone-1", 1)
    True
    >>> weight("phone-1", -1)
    Traceback (most recent call last):
    ...
    ValueError: slot: expected an integer >= 0, got -1
    """
    salt = _SALTS.get(slot)
    if salt is None:
        if slot < 0:
            raise ValueError(f"slot: expected an integer >= 0, got {slot}")
        salt = _SALTS[slot] = slot.to_bytes(16, "little")
    raw = stream.encode("utf-8", "surrogatepass") if isinstance(stream, str) else stream
    return int.from_bytes(blake2b(raw, digest_size=8, salt=salt, person=_PERSON).digest(), "little")


def owner(stream: str | bytes, slots: Iterable[int]) -> int | None:
    """The slot among ``slots`` that serves ``stream`` (None when there is none).

    Ties (a 2**-64 chance) go to the lower slot, so the answer never depends on the order of ``slots``.

    >>> owner("phone-1", [2, 0, 1]) == owner("phone-1", [0, 1, 2])
    True
    """
    best: tuple[int, int] | None = None
    for slot in slots:
        key = (weight(stream, slot), -slot)
        if best is None or key > best:
            best = key
    return None if best is None else -best[1]


def assign(streams: Iterable[str], slots: Iterable[int]) -> dict[str, int | None]:
    """Each stream's slot among ``slots``.

    >>> assign(["a", "b"], [])
    {'a': None, 'b': None}
    """
    live = list(slots)
    return {stream: owner(stream, live) for stream in streams}


def moved(streams: Iterable[str], before: Iterable[int], after: Iterable[int]) -> set[str]:
    """The streams whose slot differs between the live sets ``before`` and ``after``.

    >>> moved(["a", "b", "c"], [0, 1], [0, 1])
    set()
    """
    old, new = list(before), list(after)
    return {stream for stream in streams if owner(stream, old) != owner(stream, new)}
