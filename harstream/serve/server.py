"""``harstream serve``: the engine behind ZeroMQ sockets, until it is told to stop.

:func:`serve` runs the bounded turns of :class:`~harstream.serve.loop.Loop` (receive, filter,
classify) and has ``$stats`` published every ``stats_interval_s``. Every step is bounded, so
``$stats`` goes out on time under any load, and memory is bounded by the limits of
:class:`~harstream.serve.config.ServerConfig` (all ``serve`` options, all published in
``$stats`` under ``"limits"``). No exception caused by one message, one stream or one model
call leaves the loop: it is reported on ``$error`` (``internal``), counted and logged, and
serving goes on. On stop (SIGINT or SIGTERM in the CLI) the engine stops reading, classifies
and publishes what it holds within ``flush_s``, and reports what it could not
(:class:`~harstream.serve.stats.ServeSummary`).

Durations use the monotonic clock; unix times appear only as published timestamps.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import cast

import zmq

from harstream.engine.core import Engine
from harstream.errors import ServeError
from harstream.model.process import ModelProcess
from harstream.serve.config import ServerConfig
from harstream.serve.join import JoinedLoop, RouterLink, join
from harstream.serve.loop import Loop
from harstream.serve.sockets import Sockets, bind
from harstream.serve.stats import ServeSummary


def serve(
    engine: Engine,
    config: ServerConfig | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    sockets: Sockets | None = None,
    model: ModelProcess | Sequence[ModelProcess] | None = None,
) -> ServeSummary:
    """Run the engine on ZeroMQ sockets until ``stop`` is set; returns what happened.

    ``config`` defaults to ``ServerConfig()``. ``sockets`` are bound ones from
    :func:`~harstream.serve.sockets.bind`, or a router's from :func:`~harstream.serve.join.join`
    (made here when None: joined when ``config.join`` is set, else bound); they are closed on
    return. Joined, serving starts once the router has welcomed the engine (``on_ready`` is
    called then). With ``model`` (the engine's model in a process of its own, or several) the
    serving thread submits batches to it and goes on while it computes; without, an
    inference thread calls ``engine.predict_proba``.
    """
    config = config or ServerConfig()
    stop = stop or threading.Event()
    sockets = sockets or (join(config, context) if config.joins else bind(config, context))
    if model is None:
        models: list[ModelProcess] = []
    else:
        models = list(model) if isinstance(model, (list, tuple)) else [cast("ModelProcess", model)]
    loop = (JoinedLoop(engine, config, sockets, models) if isinstance(sockets, RouterLink)
            else Loop(engine, config, sockets, models))
    summary = ServeSummary()
    previous_switch = sys.getswitchinterval()
    sys.setswitchinterval(config.switch_interval_ms / 1000)  # restored on return
    loop.stats.pauses.install()
    try:
        loop.stage.start()
        if loop.wait_ready(stop):
            if on_ready is not None:
                on_ready()
            loop.report()  # the new engine id reaches subscribers at once
            _run(loop, config, stop)
        loop.flush(summary)
    finally:
        if loop.stage.alive:
            loop.stage.finish(time.monotonic())
        # A socket belongs to one thread: a still-busy inference thread closes the PUB socket itself.
        sockets.close(pub=loop.stage.hand_over_output())
        sys.setswitchinterval(previous_switch)
        loop.stats.pauses.uninstall()
    counters = engine.counters
    summary.windows, summary.rejected = counters.windows, counters.rejected
    summary.shed, summary.internal_errors = counters.shed, counters.internal_errors
    return summary


def _run(loop: Loop, config: ServerConfig, stop: threading.Event) -> None:
    """Turn the loop, ``$stats`` every ``stats_interval_s``, until ``stop`` is set (or the context ends)."""
    next_stats = time.monotonic() + config.stats_interval_s
    while not stop.is_set():
        try:
            loop.turn(next_stats)
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + config.stats_interval_s
                loop.report()
        except zmq.ContextTerminated:
            break
        except ServeError:  # the engine cannot go on serving (join mode: the router changed its results)
            raise
        except Exception as exc:  # never let one failure end serving for every stream
            loop.failed("a serving turn", exc)


__all__ = ["serve"]
