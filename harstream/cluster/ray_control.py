"""``cluster up | scale | status | down`` as functions: what the ``cluster`` verb and the tests call.

Each function connects to Ray unless this process already is (a test's ``ray.init``), then
talks to the controller actor (:mod:`harstream.cluster.ray_controller`) by name, so the
command that ran ``up`` need not be the one that runs ``down``.

``up`` without an address starts a local Ray head that outlives the command
(``ray start --head``, as a Ray user would) and records in the controller that it did,
so ``down`` stops it again (``ray stop``); with an address (``auto``, ``HOST:6379``) it
joins that cluster and ``down`` leaves Ray running.

>>> NOT_RUNNING.startswith("no harstream cluster")
True
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harstream.cluster.ray_config import CONTROLLER_NAME, NAMESPACE, ROUTER_NAME, ClusterConfig, slot_of
from harstream.cluster.ray_controller import ClusterPlan, Controller
from harstream.errors import HarstreamError

__all__ = ["NOT_RUNNING", "connect", "down", "scale", "start_head", "status", "stop_head", "up"]

NOT_RUNNING = "no harstream cluster runs in this Ray cluster (no actor named {name!r} in namespace {ns!r})"
"""What ``scale``, ``status`` and ``down`` say when ``up`` has not run."""

HEAD_TIMEOUT_S = 120.0
"""Longest ``ray start --head`` and ``ray stop`` may take."""

Say = Callable[[str], None]


def connect(address: str | None) -> None:
    """Connect this process to Ray (``address``; None: the cluster running on this machine), unless
    it already is."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address or "auto", namespace=NAMESPACE, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True)
    except (ConnectionError, RuntimeError) as exc:
        where = f"at {address!r}" if address else "on this machine"
        raise HarstreamError(f"cannot connect to a Ray cluster {where}: {exc} (start one with "
                             "`harstream cluster up`, or pass --address HOST:6379)") from None


def start_head(extra: tuple[str, ...] = ()) -> None:
    """Start a Ray head on this machine that outlives this process (``ray start --head``)."""
    argv = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--disable-usage-stats", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=HEAD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise HarstreamError(f"`ray start --head` failed (exit {done.returncode}); if a Ray cluster "
                             f"already runs here, join it with --address auto:\n{tail}")


def stop_head() -> None:
    """Stop the Ray processes on this machine (``ray stop``): the head that ``up`` started."""
    import ray

    ray.shutdown()
    argv = [sys.executable, "-m", "ray.scripts.scripts", "stop"]
    subprocess.run(argv, capture_output=True, text=True, timeout=HEAD_TIMEOUT_S, check=False)


def _controller() -> Any:
    import ray

    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def up(plan: ClusterPlan, *, say: Say = print) -> dict[str, Any]:
    """Start (or join) Ray, then the controller, the router and ``plan.cluster.engines`` engines;
    return once every engine serves (the controller's description). ``plan.node_id`` may be empty:
    this process's node."""
    import ray

    started_head = False
    if not ray.is_initialized() and plan.cluster.address is None:
        say("starting a local Ray head (ray start --head)...")
        start_head()
        started_head = True
    connect(plan.cluster.address)
    if _controller() is not None:
        raise HarstreamError(f"a harstream cluster already runs here (actor {CONTROLLER_NAME!r}): "
                             "`harstream cluster scale N` changes it, `harstream cluster down` stops it")
    node_id = plan.node_id or ray.get_runtime_context().get_node_id()
    plan = replace(plan, node_id=node_id, started_head=started_head)
    controller_class: Any = ray.remote(Controller)
    controller = controller_class.options(
        name=CONTROLLER_NAME, namespace=NAMESPACE, lifetime="detached", max_restarts=-1,
        max_task_retries=0, num_cpus=0,
    ).remote(plan)
    _check_cpus(plan.cluster.engines, plan.cluster, say)
    say(f"starting the router and {plan.cluster.engines} engine(s)...")
    try:
        described: dict[str, Any] = ray.get(controller.ready.remote(), timeout=_wait(plan.cluster))
    except BaseException:
        _down(controller, stop_started_head=started_head)
        raise
    return described


def scale(engines: int, config: ClusterConfig, *, say: Say = print) -> dict[str, Any]:
    """Have ``engines`` engines: start the missing slots (and wait until they serve) or stop the
    highest ones cleanly."""
    import ray

    connect(config.address)
    controller = _required()
    _check_cpus(engines, ray.get(controller.config.remote(), timeout=60.0), say)
    say(f"scaling to {engines} engine(s)...")
    described: dict[str, Any] = ray.get(controller.scale.remote(engines), timeout=_wait(config))
    return described


def _check_cpus(engines: int, config: ClusterConfig, say: Say) -> None:
    """Say so when ``engines`` engines reserve more CPUs than the Ray cluster has: the rest wait
    (until nodes join, or ``ready_timeout_s``)."""
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]  # untyped in Ray
    need, have = engines * config.engine_cpus, float(resources.get("CPU", 0.0))
    if need > have:
        say(f"note: {engines} engines reserve {need:g} CPUs (--engine-cpus {config.engine_cpus:g} each) and the "
            f"Ray cluster has {have:g}: engines beyond that wait for nodes to join, at most "
            f"{config.ready_timeout_s:g} s (--engine-cpus 0 packs them regardless)")


def status(config: ClusterConfig) -> dict[str, Any]:
    """Ray's view (nodes, the harstream actors with their restarts), the controller's (each engine
    actor's state) and the router's latest cluster ``$stats``."""
    import ray

    connect(config.address)
    controller = _required()
    described: dict[str, Any] = ray.get(controller.describe.remote(), timeout=60.0)
    stats = ray.get(controller.router_stats.remote(), timeout=60.0)
    nodes = [{"node_id": node["NodeID"], "address": node["NodeManagerAddress"], "alive": node["Alive"],
              "cpus": node.get("Resources", {}).get("CPU", 0.0)} for node in _nodes()]
    return {**described, "stats": stats, "nodes": nodes, "actors": _ray_actors()}


def _nodes() -> list[dict[str, Any]]:
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]  # Ray leaves it untyped
    return nodes


def _ray_actors() -> list[dict[str, Any]] | str:
    """Ray's table of the harstream actors (state, restarts, node), or why it is not available
    (the state API needs Ray's dashboard process)."""
    try:
        from ray.util.state import list_actors

        rows = list_actors(filters=[("ray_namespace", "=", NAMESPACE)], detail=True, timeout=10,
                           raise_on_missing_output=False)
    except Exception as exc:  # Ray's own error types vary: a missing dashboard, a timeout
        return f"Ray's state API is not available ({type(exc).__name__}): start Ray with its dashboard"
    return [{"name": row.name, "state": row.state, "pid": row.pid, "node_id": row.node_id,
             "restarts": row.num_restarts, "class": row.class_name}
            for row in rows if row.state != "DEAD"]


def down(config: ClusterConfig, *, say: Say = print) -> dict[str, Any]:
    """Stop every engine cleanly, then the router and the controller; the local Ray head too if
    ``up`` started it."""
    connect(config.address)
    controller = _required()
    say("stopping the engines, the router and the controller...")
    return _down(controller, stop_started_head=None)


def _down(controller: Any, *, stop_started_head: bool | None) -> dict[str, Any]:
    """Stop through ``controller``; stop the head if ``stop_started_head`` (None: as the controller says)."""
    import ray

    report: dict[str, Any] = {}
    try:
        report = ray.get(controller.down.remote(), timeout=600.0)
    finally:
        ray.kill(controller, no_restart=True)
        report["leftovers"] = _kill_leftovers()
    if stop_started_head if stop_started_head is not None else report.get("started_head", False):
        stop_head()
        report["head_stopped"] = True
    return report


def _kill_leftovers() -> list[str]:
    """Kill any harstream engine or router still named (one the controller lost track of); their names."""
    import ray

    names = [actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
             if actor["namespace"] == NAMESPACE
             and (actor["name"] == ROUTER_NAME or slot_of(actor["name"]) is not None)]
    for name in names:
        with contextlib.suppress(ValueError):  # gone meanwhile
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    return names


def _required() -> Any:
    controller = _controller()
    if controller is None:
        raise HarstreamError(NOT_RUNNING.format(name=CONTROLLER_NAME, ns=NAMESPACE))
    return controller


def _wait(config: ClusterConfig) -> float:
    """How long a driver waits for the controller: the engines' start, and a margin."""
    return config.ready_timeout_s + config.stop_timeout_s + 60.0

