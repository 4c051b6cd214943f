"""The router actor: ``harstream router`` on a thread of a Ray actor's process.

The controller pins it to the node ``cluster up`` ran on, so the public ingest and publish
endpoints are that machine's. Ray restarts it if its process dies (``max_restarts=-1``);
engines then re-join by themselves (they say HELLO again when they hear nothing).

With ``on_node`` (the default of ``cluster up``), the engines and results endpoints are bound
on this node's address as Ray knows it (the address other nodes reach it by) and the
welcome names it; :meth:`RouterActor.join_endpoint` is what engines connect to.

>>> import threading
>>> def body(spec, stop, ready, stats):
...     ready()
...     stats({"streams": 0})
...     stop.wait()
>>> actor = RouterActor(RouterSpec(), body=body, host="10.0.0.7")
>>> actor.join_endpoint(), actor.spec.config.advertise
('tcp://10.0.0.7:5557', '10.0.0.7')
>>> actor.wait_ready(5.0)["state"], actor.stats()
('routing', {'streams': 0})
>>> actor.stop(5.0)["state"]
'stopped'
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harstream.cluster.config import RouterConfig

if TYPE_CHECKING:
    from harstream.cluster.security import RouterSecurity

StatsSink = Callable[[dict[str, Any]], None]
RouterBody = Callable[["RouterSpec", threading.Event, Callable[[], None], StatsSink], None]
"""What runs in the actor: ``body(spec, stop, ready, stats)`` routes until ``stop`` is set, calling
``ready()`` once its sockets are bound and ``stats(fields)`` with each cluster ``$stats`` it
publishes (default: :func:`serve_router`)."""


@dataclass(frozen=True)
class RouterSpec:
    """The router's configuration, as ``harstream router`` takes it, and where to bind."""

    config: RouterConfig = field(default_factory=RouterConfig)
    on_node: bool = True
    """Bind the engines and results endpoints on this node's Ray address (their ports from
    ``config``) and advertise it; False: ``config`` as given."""
    security: RouterSecurity | None = None
    """CurveZMQ keys of the router's sockets (key file paths, on the router's node)."""


def on_node(config: RouterConfig, host: str) -> RouterConfig:
    """``config`` with its engines and results endpoints bound on ``host`` and ``host`` advertised.

    >>> on_node(RouterConfig(), "10.0.0.7").engines
    'tcp://10.0.0.7:5557'
    """
    def rehost(endpoint: str) -> str:
        if not endpoint.startswith("tcp://"):
            raise ValueError(f"expected a tcp:// endpoint for a router reached from other nodes, got {endpoint!r}")
        return f"tcp://{host}:{endpoint.rsplit(':', 1)[1]}"

    return replace(config, engines=rehost(config.engines), results=rehost(config.results), advertise=host)


def serve_router(spec: RouterSpec, stop: threading.Event, ready: Callable[[], None], stats: StatsSink) -> None:
    """Run the router in this process until ``stop`` is set."""
    from harstream.cluster.router import run_router

    def say(line: str) -> None:
        print(line, flush=True)  # the actor's log (Ray keeps a worker's stdout)

    run_router(spec.config, spec.security, stop=stop, on_ready=ready, on_stats=stats, say=say)


class RouterActor:
    """The router on a thread of this (actor) process; see the module's doc."""

    def __init__(self, spec: RouterSpec, body: RouterBody = serve_router, host: str | None = None) -> None:
        self._host = host or _node_address()
        self.spec = replace(spec, config=on_node(spec.config, self._host)) if spec.on_node else spec
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: str | None = None
        self._stats: dict[str, Any] | None = None
        self._started = time.time()
        self._thread = threading.Thread(target=self._run, args=(body,), name="router", daemon=True)
        self._thread.start()

    def _run(self, body: RouterBody) -> None:
        try:
            body(self.spec, self._stop, self._ready.set, self._keep_stats)
        except BaseException as exc:  # reported by info(): a router that cannot bind says why
            self._error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            traceback.print_exc()

    def join_endpoint(self) -> str:
        """Where engines connect (the engines endpoint)."""
        return self.spec.config.engines

    def info(self) -> dict[str, Any]:
        """State, pid, host, endpoints, error."""
        if self._thread.is_alive():
            state = "routing" if self._ready.is_set() else "stopping" if self._stop.is_set() else "starting"
        else:
            state = "failed" if self._error is not None else "stopped"
        config = self.spec.config
        return {"state": state, "pid": os.getpid(), "host": self._host, "ingest": config.ingest,
                "publish": config.publish, "engines": config.engines, "results": config.results,
                "error": self._error, "started": self._started}

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """:meth:`info` once bound, failed, or after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1) and self._thread.is_alive() and time.monotonic() < deadline:
            pass
        return self.info()

    def _keep_stats(self, fields: dict[str, Any]) -> None:
        self._stats = fields

    def stats(self) -> dict[str, Any] | None:
        """The latest cluster ``$stats`` the router published (None before the first)."""
        return self._stats

    def stop(self, timeout_s: float) -> dict[str, Any]:
        """Stop routing; :meth:`info` once stopped or after ``timeout_s``."""
        self._stop.set()
        self._thread.join(timeout_s)
        return self.info()


def _node_address() -> str:
    """This node's address as Ray knows it (127.0.0.1 outside Ray)."""
    try:
        import ray
    except ImportError:
        return "127.0.0.1"
    if not ray.is_initialized():
        return "127.0.0.1"
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]  # Ray leaves it untyped


__all__ = ["RouterActor", "RouterBody", "RouterSpec", "StatsSink", "on_node", "serve_router"]
