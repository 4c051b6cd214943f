"""Running the engine as a program: bind, load the model, serve until a signal, stop cleanly.

:func:`run_server` is ``harstream serve`` without its command line: it takes
a :class:`~harstream.serve.config.ServerConfig` and :class:`ModelSettings`.
The sockets bind before the model loads, so a busy port fails at once
rather than after the model's warm-up; once the model is loaded, SIGINT and
SIGTERM stop serving cleanly (what is held is flushed for ``flush_s``).

Importing this module is cheap (no numpy, ZeroMQ or model), so the command
line reads :class:`ModelSettings`'s defaults while it builds its parser.

>>> ModelSettings().runtime, ModelSettings().model_process
('auto', True)
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harstream.errors import HarstreamError

if TYPE_CHECKING:
    from harstream.engine.core import Engine
    from harstream.model.classifier import Classifier, Runtime
    from harstream.model.process import ModelProcess
    from harstream.serve.config import ServerConfig
    from harstream.serve.security import ClientSecurity, ServerSecurity
    from harstream.serve.sockets import Sockets
    from harstream.serve.stats import ServeSummary

__all__ = ["ModelSettings", "load_model", "run_server"]


@dataclass(frozen=True)
class ModelSettings:
    """Which model serves, how it runs, and how its output is smoothed."""

    model: Path | None = None
    """The model artifact (``.keras`` with its ``.json``, or their folder); None: the shipped model."""
    runtime: Runtime = "auto"
    """Inference backend; ``auto`` measures Keras and ONNX Runtime at start, per batch size."""
    model_threads: int = 1
    """Threads of one model call (the ingest thread needs a core of its own)."""
    model_process: bool = True
    """Run the model in a process of its own, so the serving thread goes on while it computes."""
    model_processes: int = 1
    """With ``model_process``: how many model processes take batches in turn (without it, one
    classifier on an inference thread)."""
    stay: float = 0.9
    """The smoother's probability that the activity is unchanged between windows
    (:data:`harstream.signal.smoothing.DEFAULT_STAY`; a test keeps the two equal)."""


def run_server(
    config: ServerConfig,
    settings: ModelSettings = ModelSettings(),
    security: ServerSecurity | ClientSecurity | None = None,
    *,
    say: Callable[[str], None] = print,
    status: Callable[[str], contextlib.AbstractContextManager[Any]] = lambda _: contextlib.nullcontext(),
    stop: threading.Event | None = None,
) -> ServeSummary:
    """Serve until SIGINT or SIGTERM (or until ``stop`` is set); return what happened.

    Bound (``config.join`` None), ``security`` is the engine's
    :class:`~harstream.serve.security.ServerSecurity`; joined to a router, a
    :class:`~harstream.serve.security.ClientSecurity` (the engine's key pair and the
    router's public key). ``say`` gets the ready line (endpoints, model, runtime) and
    the stopped line; ``status`` wraps the model's loading (a spinner on a terminal).
    With ``stop``, no signal handler is installed and serving ends when it is set (from
    any thread: serving may run in a thread, or in a Ray actor's). Raises
    :class:`HarstreamError` when a socket cannot bind or the model cannot load, having
    closed whatever was opened.
    """
    from harstream.engine.core import Engine
    from harstream.signal.smoothing import ForwardFilter

    sockets = _open_sockets(config, security)  # before the model loads: a busy port fails at once
    loaded: list[Classifier | ModelProcess] = []
    try:
        with status("loading and warming up the model..."):
            for _ in range(settings.model_processes if settings.model_process else 1):
                loaded.append(load_model(settings.model, config.max_batch, settings.runtime,
                                         settings.model_threads, settings.model_process))
        classifier = loaded[0]
        engine = Engine(
            classifier.predict_proba, classifier.labels,
            ForwardFilter(len(classifier.labels), stay=settings.stay),
            idle_timeout_s=config.idle_timeout_s, max_streams=config.max_streams,
        )
    except BaseException:
        sockets.close()
        _close_model_processes(loaded)
        raise
    try:
        return _serve_loaded(config, sockets, loaded, engine, say, stop)
    finally:
        _close_model_processes(loaded)


def _open_sockets(config: ServerConfig, security: ServerSecurity | ClientSecurity | None) -> Sockets:
    """The engine's sockets: bound (with the server's keys), or joined to a router (as its client)."""
    from harstream.errors import ServeError
    from harstream.serve.security import ClientSecurity, ServerSecurity, secure_server

    if config.joins:
        from harstream.serve.join import join

        if security is not None and not isinstance(security, ClientSecurity):
            raise ServeError("joining a router, the engine is its client: expected ClientSecurity (the "
                             f"engine's key pair and the router's public key), got {type(security).__name__}")
        return join(config, security=security)
    from harstream.serve.sockets import bind

    if security is not None and not isinstance(security, ServerSecurity):
        raise ServeError("a bound engine is a CURVE server: expected ServerSecurity (its key pair and "
                         f"allow-lists), got {type(security).__name__}")
    secure = None
    if security is not None:
        server_security = security

        def secure(pull: Any, pub: Any) -> Callable[[], None]:
            authenticator = secure_server(pull.context, pull, pub, server_security)
            stop_auth: Callable[[], None] = authenticator.stop
            return stop_auth

    return bind(config, secure=secure)


def load_model(model: Path | None, max_batch: int, runtime: Runtime = "keras",
               threads: int = 0, own_process: bool = False) -> Classifier | ModelProcess:
    """Load and warm up a model (with ``own_process``, in a model process of its own); any failure is
    one :class:`ArtifactError` line."""
    from harstream.errors import ArtifactError
    from harstream.model.classifier import Classifier, set_model_threads

    if own_process:
        from harstream.model.process import ModelProcess

        return ModelProcess(model, max_batch=max_batch, runtime=runtime, threads=threads)
    try:
        if threads:
            set_model_threads(threads)
        classifier = Classifier.load(model, max_batch=max_batch, runtime=runtime)
        classifier.warm_up()
    except HarstreamError:
        raise
    except Exception as exc:
        raise ArtifactError(f"cannot load the model {model or 'shipped with harstream'}: "
                            f"{type(exc).__name__}: {exc}") from None
    return classifier


def _close_model_processes(models: list[Classifier | ModelProcess]) -> None:
    from harstream.model.process import ModelProcess

    for model in models:
        if isinstance(model, ModelProcess):
            model.close()


def _serve_loaded(config: ServerConfig, sockets: Sockets, loaded: list[Classifier | ModelProcess],
                  engine: Engine, say: Callable[[str], None], stop: threading.Event | None) -> ServeSummary:
    """Serve with a loaded model (one classifier, or the model processes) until SIGINT or SIGTERM,
    or until ``stop`` is set when one is given."""
    import signal

    from harstream.gc_pauses import freeze_startup
    from harstream.model.process import ModelProcess
    from harstream.serve.server import serve

    if stop is None:
        stop = event = threading.Event()  # from here on, Ctrl-C and SIGTERM stop serving cleanly
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: event.set())

    classifier = loaded[0]
    models = [model for model in loaded if isinstance(model, ModelProcess)]

    def ready() -> None:
        if isinstance(classifier, ModelProcess):
            path, meta = classifier.info.path, json.loads(classifier.info.meta_json)
            pids = ", ".join(str(model.pid) for model in models)
            where = f", in model process{'es' if len(models) > 1 else ''} {pids}"
        else:
            path, meta, where = classifier.artifact.path, vars(classifier.artifact.meta), ""
        routes = sorted(set(classifier.routes.values()))
        say(f"harstream engine {engine.id} ready: {sockets.describe()}; model {path.name} "
            f"({meta['architecture']}, sha256 {meta['weights_sha256'][:12]}, runtime {'+'.join(routes)}{where}); "
            f"at most {config.max_streams} streams. Ctrl-C stops.")

    freeze_startup()  # full collections then skip the imports and the model: short pauses
    summary = serve(engine, config, stop=stop, on_ready=ready, sockets=sockets, model=models or None)
    say(f"engine {engine.id} stopped: {summary.describe()}")
    return summary
