"""The controller actor: keeps one router and N engine actors alive, by name.

``harstream cluster up`` starts it (detached, named :data:`~harstream.cluster.ray_config.CONTROLLER_NAME`);
every later ``scale``, ``status`` and ``down`` is a call to it, so two commands never
change the cluster at once (a Ray actor runs one call at a time).

The cluster's state is the set of named actors itself, not a copy in the controller:
the router is :data:`~harstream.cluster.ray_config.ROUTER_NAME`, engine ``i`` is
``harstream-engine-i`` (each made with ``get_if_exists``), so a restarted controller
adopts what is running instead of starting it twice.

- the router is pinned to the node ``up`` ran on (``NodeAffinitySchedulingStrategy``,
  not soft): the public ingest and publish addresses are that machine's;
- engines are spread over the nodes (``SPREAD``), restarted by Ray without limit
  (``max_restarts=-1``) with the same slot, and each reserves ``engine_cpus`` CPUs;
- scaling down stops the highest slots cleanly (flush, BYE) before their actors go.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from harstream.cluster.ray_config import (
    CONTROLLER_NAME,
    NAMESPACE,
    ROUTER_NAME,
    ClusterConfig,
    engine_name,
    slot_of,
)
from harstream.cluster.ray_engine import Body, EngineActor, EngineSpec, serve_joined
from harstream.cluster.ray_router import RouterActor, RouterBody, RouterSpec, serve_router
from harstream.serve.config import ServerConfig
from harstream.serve.run import ModelSettings

log = logging.getLogger(__name__)

__all__ = ["ClusterPlan", "Controller"]


@dataclass(frozen=True)
class ClusterPlan:
    """What ``up`` asks for: the Ray side, the router, and the engines' template."""

    cluster: ClusterConfig
    router: RouterSpec
    node_id: str
    """The Ray node the router is pinned to (where ``up`` ran)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    """The engines' limits and batching (endpoints are set per engine: join mode)."""
    model: ModelSettings = field(default_factory=ModelSettings)
    security: Any = None
    """The engines' CurveZMQ keys (:class:`~harstream.serve.security.ServerSecurity` or None)."""
    started_head: bool = False
    """``up`` started the local Ray head, so ``down`` stops it."""
    engine_body: Body = serve_joined
    """What an engine actor runs (tests swap in a light one)."""
    router_body: RouterBody = serve_router
    """What the router actor runs."""


class Controller:
    """Keeps the router and the engines of a :class:`ClusterPlan` (a Ray actor; see the module's doc)."""

    def __init__(self, plan: ClusterPlan) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.plan = plan
        router_class: Any = ray.remote(RouterActor)
        self._router: Any = router_class.options(
            name=ROUTER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            max_restarts=-1, max_task_retries=plan.cluster.max_task_retries, num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(plan.node_id, soft=False),
        ).remote(plan.router, plan.router_body)
        self.join = ""
        """The router's engines endpoint (known once it is bound)."""
        running = self._slots()
        self._target = len(running) if running else plan.cluster.engines

    def ready(self) -> dict[str, Any]:
        """Wait for the router to bind, start the engines up to the target count and wait for them
        to serve; :meth:`describe` then."""
        self._join_endpoint()
        self.scale(self._target)
        return self.describe()

    def _join_endpoint(self) -> str:
        """The router's engines endpoint, once it is bound (also after this controller restarted)."""
        import ray

        if not self.join:
            timeout = self.plan.cluster.ready_timeout_s
            router = ray.get(self._router.wait_ready.remote(timeout), timeout=timeout + 30)
            if router["state"] != "routing":
                raise RuntimeError(f"the router did not start ({router['state']}): {router['error']}")
            self.join = router["engines"]
        return self.join

    def config(self) -> ClusterConfig:
        """The cluster's configuration, as ``up`` gave it."""
        return self.plan.cluster

    def _slots(self) -> list[int]:
        import ray

        slots = (slot_of(actor["name"]) for actor in ray.util.list_named_actors(all_namespaces=True)
                 if actor["namespace"] == NAMESPACE)
        return sorted(slot for slot in slots if slot is not None)

    def _engine(self, slot: int) -> Any:
        import ray

        return ray.get_actor(engine_name(slot), namespace=NAMESPACE)

    def scale(self, engines: int) -> dict[str, Any]:
        """Have exactly ``engines`` engines (slots 0..engines-1): start the missing ones and wait until
        they serve, stop the extra ones cleanly. Returns :meth:`describe`."""
        import ray

        if not 0 <= engines <= 1024:
            raise ValueError(f"engines: expected an integer in [0, 1024], got {engines}")
        self._target = engines
        have = set(self._slots())
        extra = sorted((slot for slot in have if slot >= engines), reverse=True)
        self._stop_engines(extra)
        started = [self._start_engine(slot) for slot in range(engines) if slot not in have]
        cluster = self.plan.cluster
        infos = ray.get([actor.wait_ready.remote(cluster.ready_timeout_s) for actor in started],
                        timeout=cluster.ready_timeout_s + 30)
        failed = [info for info in infos if info["state"] != "serving"]
        if failed:
            raise RuntimeError("engines did not start: " + "; ".join(
                f"slot {info['slot']} {info['state']}: {info['error'] or 'no error reported'}" for info in failed))
        self._await_listed(set(range(engines)), cluster.ready_timeout_s)
        return self.describe()

    def _await_listed(self, slots: set[int], timeout_s: float) -> None:
        """Wait until the router's ``$stats`` lists exactly ``slots`` as its live engines."""
        import ray

        deadline = time.monotonic() + timeout_s
        while True:
            stats = ray.get(self._router.stats.remote(), timeout=10.0)
            listed = {row.get("slot") for row in (stats or {}).get("engines", ())}
            if listed == slots:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the router lists engines {sorted(listed, key=str)} after {timeout_s:g} s, "
                                   f"expected slots {sorted(slots)}")
            time.sleep(0.2)

    def _start_engine(self, slot: int) -> Any:
        import ray

        plan, cluster = self.plan, self.plan.cluster
        spec = EngineSpec(slot=slot, join=self._join_endpoint(), server=plan.server, model=plan.model,
                          security=plan.security)
        engine_class: Any = ray.remote(EngineActor)
        return engine_class.options(
            name=engine_name(slot), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            max_restarts=-1, max_task_retries=cluster.max_task_retries, num_cpus=cluster.engine_cpus,
            scheduling_strategy="SPREAD",
        ).remote(spec, plan.engine_body)

    def _stop_engines(self, slots: list[int]) -> list[dict[str, Any]]:
        """Stop these engines cleanly (all at once), then end their actors for good."""
        import ray

        actors = {slot: self._engine(slot) for slot in slots}
        timeout = self.plan.cluster.stop_timeout_s
        pending = {slot: actor.stop.remote(timeout) for slot, actor in actors.items()}
        infos = []
        for slot, ref in pending.items():
            try:
                infos.append(ray.get(ref, timeout=timeout + 10))
            except (ray.exceptions.RayError, TimeoutError) as exc:  # killed below all the same
                infos.append({"slot": slot, "state": "killed", "error": f"{type(exc).__name__}: {exc}"})
            ray.kill(actors[slot], no_restart=True)
        gone = {engine_name(slot) for slot in slots}
        deadline = time.monotonic() + timeout + 10
        while gone & {actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)} \
                and time.monotonic() < deadline:  # the names are free again only once the actors are dead
            time.sleep(0.1)
        return infos

    def describe(self) -> dict[str, Any]:
        """The router's endpoints and each engine actor's :meth:`EngineActor.info` (or why there is none)."""
        import ray

        slots = self._slots()
        refs = {slot: self._engine(slot).info.remote() for slot in slots}
        engines = []
        for slot, ref in refs.items():
            try:
                engines.append(ray.get(ref, timeout=10.0))
            except (ray.exceptions.RayError, TimeoutError) as exc:  # restarting, or gone
                engines.append({"slot": slot, "state": "unreachable", "error": f"{type(exc).__name__}: {exc}"})
        return {"controller": CONTROLLER_NAME, "target": self._target, "join": self.join,
                "router": ray.get(self._router.info.remote(), timeout=10.0), "engines": engines,
                "started_head": self.plan.started_head, "time": time.time()}

    def router_stats(self) -> dict[str, Any] | None:
        """The router's latest cluster ``$stats`` (None before its first)."""
        import ray

        stats: dict[str, Any] | None = ray.get(self._router.stats.remote(), timeout=10.0)
        return stats

    def down(self) -> dict[str, Any]:
        """Stop every engine cleanly, then the router; returns what happened. The controller ends
        itself after answering (``ray.kill`` by the caller)."""
        import ray

        engines = self._stop_engines(sorted(self._slots(), reverse=True))
        try:
            router = ray.get(self._router.stop.remote(self.plan.cluster.stop_timeout_s),
                             timeout=self.plan.cluster.stop_timeout_s + 10)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            router = {"state": "killed", "error": f"{type(exc).__name__}: {exc}"}
        ray.kill(self._router, no_restart=True)
        self._target = 0
        return {"engines": engines, "router": router, "started_head": self.plan.started_head}
