"""The engine actor: one engine, in join mode, in a Ray actor's process.

The actor's process *is* the engine: the serve loop runs on a thread of the actor
(:meth:`EngineActor.__init__` starts it), joined to the router as slot ``spec.slot``.
A SIGKILL of that process is an engine crash (and an engine that ends by itself after it has
served ends its process, so that it becomes one); Ray restarts the actor
(``max_restarts=-1``) with the same arguments, so the new process joins with the
same slot and a new incarnation, and the router gives it its streams back.
:meth:`EngineActor.stop` is the clean way out (flush, BYE), used by ``scale`` and ``down``.

The class is plain Python (the controller makes it an actor with ``ray.remote``), so its
logic is testable without a cluster:

>>> import threading
>>> def body(spec, stop, ready):
...     ready()
...     stop.wait()
>>> actor = EngineActor(EngineSpec(slot=1, join="tcp://127.0.0.1:5557"), body=body, exit_on_crash=False)
>>> actor.wait_ready(10.0)["state"]
'serving'
>>> info = actor.stop(5.0)
>>> info["state"], info["slot"]
('stopped', 1)
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harstream.serve.config import ServerConfig
from harstream.serve.run import ModelSettings

if TYPE_CHECKING:
    from harstream.serve.security import ClientSecurity

Body = Callable[["EngineSpec", threading.Event, Callable[[], None]], None]
"""What runs in the actor: ``body(spec, stop, ready)`` serves until ``stop`` is set, calling
``ready()`` once it has joined (default: :func:`serve_joined`)."""


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine actor needs to (re)start: Ray keeps it and passes it again on restart."""

    slot: int
    """Which engine this is (0..N-1): the router routes by slot, so a restart gets its streams back."""
    join: str
    """The router's engines endpoint (``tcp://HOST:PORT`` of the router's node)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    """The engine's limits and batching (its ingest/publish endpoints are unused in join mode)."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Which model and how it runs."""
    security: ClientSecurity | None = None
    """The engine's CurveZMQ key pair and the router's public key (paths: the files must exist at
    these paths on every node)."""


def serve_joined(spec: EngineSpec, stop: threading.Event, ready: Callable[[], None]) -> None:
    """Run ``serve --join`` in this process until ``stop`` is set (``ready()`` at its ready line)."""
    from harstream.serve.run import run_server

    lines = 0

    def say(line: str) -> None:  # the first line is the ready line, said once welcomed by the router
        nonlocal lines
        print(line, flush=True)  # the actor's log (Ray keeps a worker's stdout)
        lines += 1
        if lines == 1:
            ready()

    run_server(replace(spec.server, join=spec.join, slot=spec.slot), spec.model, spec.security,
               say=say, stop=stop)


class EngineActor:
    """One engine in join mode on a thread of this (actor) process; see the module's doc."""

    def __init__(self, spec: EngineSpec, body: Body = serve_joined, exit_on_crash: bool = True) -> None:
        self.spec = spec
        self._exit_on_crash = exit_on_crash
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._started = time.time()
        self._error: str | None = None
        self._restarted, self._node = _was_restarted(), _node_id()
        self._thread = threading.Thread(target=self._run, args=(body,), name=f"engine-{spec.slot}", daemon=True)
        self._thread.start()

    def _run(self, body: Body) -> None:
        try:
            body(self.spec, self._stop, self._ready.set)
        except BaseException as exc:  # reported by info(): an engine that cannot start says why
            self._error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            traceback.print_exc()
        if self._ready.is_set() and not self._stop.is_set() and self._exit_on_crash:
            # it served, then stopped by itself: end the process so that Ray restarts the engine
            print(f"engine slot {self.spec.slot} ended unasked ({self._error or 'no error'}): exiting for a "
                  "restart", flush=True)
            os._exit(1)

    def info(self) -> dict[str, Any]:
        """Where this engine is and how it is: slot, pid, host, state, error."""
        if self._thread.is_alive():
            state = "serving" if self._ready.is_set() else "stopping" if self._stop.is_set() else "starting"
        else:
            state = "failed" if self._error is not None else "stopped"
        return {"slot": self.spec.slot, "pid": os.getpid(), "host": socket.gethostname(), "node": self._node,
                "state": state, "error": self._error, "started": self._started,
                "restarted": self._restarted}

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """:meth:`info` once the engine has joined, failed, or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1) and self._thread.is_alive() and time.monotonic() < deadline:
            pass
        return self.info()

    def stop(self, timeout_s: float) -> dict[str, Any]:
        """Stop serving cleanly (flush, BYE); :meth:`info` once stopped or after ``timeout_s``."""
        self._stop.set()
        self._thread.join(timeout_s)
        return self.info()


def _was_restarted() -> bool:
    """True when Ray restarted this actor (outside Ray: False)."""
    try:
        import ray
    except ImportError:
        return False
    if not ray.is_initialized():
        return False
    with warnings.catch_warnings():  # Ray 2.60 warns about its own use of a deprecated property here
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


def _node_id() -> str | None:
    """The Ray node this process runs on (outside Ray: None)."""
    try:
        import ray
    except ImportError:
        return None
    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


__all__ = ["Body", "EngineActor", "EngineSpec", "serve_joined"]
