"""The order the engine works in: each stream's items one after another, different streams together.

The engine filters chunks of many streams in one vectorised call and smooths the windows of
many streams in another, but two items of one stream must go one after the other, the second
seeing the state the first left. :func:`rounds` deals items into rounds holding at most one item
of each stream, in order: round ``k`` holds every stream's ``k``-th item.

>>> rounds(["a1", "b1", "a2", "a3", "b2", "c1"], [s[0] for s in ["a1", "b1", "a2", "a3", "b2", "c1"]])
[['a1', 'b1', 'c1'], ['a2', 'b2'], ['a3']]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


def rounds(items: Iterable[T], keys: Iterable[Hashable]) -> list[list[T]]:
    """``items`` dealt into rounds by their stream, ``keys`` (one per item, in the same order).

    Within a round items keep their order; a stream's items land in consecutive rounds.
    """
    out: list[list[T]] = []
    depth: dict[Hashable, int] = {}
    for item, key in zip(items, keys, strict=True):
        level = depth.get(key, 0)
        depth[key] = level + 1
        if level == len(out):
            out.append([])
        out[level].append(item)
    return out


__all__ = ["rounds"]
