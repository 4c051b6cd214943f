"""``ClusterConfig``: what ``harstream cluster`` asks of Ray, and the names of its actors.

The one source of the ``cluster`` verb's defaults (the command line reads them from here).
Importable without Ray, numpy or ZeroMQ, so building the command line stays cheap.

Every actor is detached and named in the namespace :data:`NAMESPACE`, so any later
``harstream cluster`` command (``scale``, ``status``, ``down``) finds them by name:

>>> engine_name(3), slot_of(engine_name(3)), slot_of(ROUTER_NAME)
('harstream-engine-3', 3, None)
>>> ClusterConfig().engines >= 1
True
>>> ClusterConfig(engines=0)
Traceback (most recent call last):
...
ValueError: engines: expected an integer in [1, 1024], got 0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAMESPACE = "harstream"
"""The Ray namespace of every harstream actor."""
CONTROLLER_NAME = "harstream-controller"
"""The controller actor: keeps the router and the engine actors."""
ROUTER_NAME = "harstream-router"
"""The router actor, pinned to the node ``cluster up`` ran on."""
ENGINE_PREFIX = "harstream-engine-"
"""An engine actor's name is this prefix and its slot."""

MAX_ENGINES = 1024
"""Most engines one cluster may ask for (a bound for typos, far above what one router feeds)."""

_ENGINE_NAME = re.compile(re.escape(ENGINE_PREFIX) + r"(0|[1-9][0-9]{0,5})")


def engine_name(slot: int) -> str:
    """The actor name of the engine in ``slot``."""
    return f"{ENGINE_PREFIX}{slot}"


def slot_of(name: str) -> int | None:
    """The slot of an engine actor's name; None for any other name."""
    match = _ENGINE_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ClusterConfig:
    """How many engines, where Ray is, and how long the control commands wait."""

    engines: int = 2
    """Engine actors ``up`` starts (slots 0 to engines-1)."""
    address: str | None = None
    """A running Ray cluster to join (``auto``, ``HOST:6379``); None: ``up`` starts a local head."""
    engine_cpus: float = 1.0
    """Ray CPUs each engine actor reserves: an engine keeps about one core busy at full load, so
    a node holds at most its CPU count of engines (0: no limit)."""
    ready_timeout_s: float = 300.0
    """Longest ``up`` and ``scale`` wait for a new engine to load its model and join the router."""
    stop_timeout_s: float = 30.0
    """Longest an engine gets to flush and say BYE when scaled down or stopped; then it is killed."""
    max_task_retries: int = 3
    """Ray retries of a call to an engine actor that died meanwhile (the actor itself is restarted
    without limit)."""

    def __post_init__(self) -> None:
        if isinstance(self.engines, bool) or not isinstance(self.engines, int) \
                or not 1 <= self.engines <= MAX_ENGINES:
            raise ValueError(f"engines: expected an integer in [1, {MAX_ENGINES}], got {self.engines!r}")
        if not self.engine_cpus >= 0:
            raise ValueError(f"engine_cpus: expected a number >= 0, got {self.engine_cpus!r}")
        for name in ("ready_timeout_s", "stop_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a number > 0, got {getattr(self, name)!r}")


__all__ = ["CONTROLLER_NAME", "ENGINE_PREFIX", "MAX_ENGINES", "NAMESPACE", "ROUTER_NAME", "ClusterConfig",
           "engine_name", "slot_of"]
