"""The model in a process of its own: model calls stop sharing the serving process's GIL.

With the model in ``serve``'s own interpreter, an inference thread runs it
beside the ingest thread. TensorFlow releases the GIL while it computes, but
a Keras call also runs Python before and after, and each time the inference
thread wants the GIL back it waits for the ingest thread's turn to end
(``--switch-interval``); under load those waits can be most of a window's
latency (docs/benchmarks.md). :class:`ModelProcess` runs the
:class:`~harstream.model.classifier.Classifier` in a child process instead: windows
go to it through shared memory and probabilities come back through a pipe.
``serve`` (the default, ``--model-process``) submits a batch and goes on
with its turn, polling the pipe beside its socket; :meth:`ModelProcess.predict_proba`
is the same call made to wait.

The answers are the classifier's own (the same backends, routes and
verification, run in the child). A model call that fails, or a child that
dies or stops answering, raises :class:`ModelProcessError`: the engine then
drops that batch's windows and reports ``internal`` (as for any failed
model call), and a fresh child is started.

>>> with ModelProcess(runtime="keras") as model:  # doctest: +SKIP
...     model.predict_proba(windows).shape
(n, 6)
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from enum import Enum
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream.errors import ArtifactError, HarstreamError

log = logging.getLogger("harstream.model.process")

START_TIMEOUT_S = 300.0
"""Longest wait for a child to load and warm up its model."""
MAX_RESTART_DELAY_S = 30.0
"""Longest wait between children that fail to load (the wait doubles from 1 s)."""
CALL_TIMEOUT_S = 60.0
"""Longest wait for one model call; a child that takes longer is killed and replaced."""


class ModelProcessError(HarstreamError):
    """A model call in the child process failed, or the child died or stopped answering."""


class ModelState(Enum):
    """Where a :class:`ModelProcess`'s child is.

    >>> ModelState.IDLE.value
    'idle'
    """

    LOADING = "loading"
    """A child is starting: loading and warming up the model."""
    IDLE = "idle"
    """The child waits for a batch."""
    BUSY = "busy"
    """A call is in flight."""
    DEAD = "dead"
    """No child (after a failure, or once closed)."""


_BUSY = ModelState.BUSY  # answered() runs on every pump: a module global reads faster than an Enum member


@dataclass(frozen=True)
class ModelInfo:
    """What the child reports once its model is loaded and warmed up."""

    path: Path
    """The ``.keras`` file loaded."""
    meta_json: str
    """The artifact's metadata (:meth:`harstream.model.artifact.ModelMeta.to_json`)."""
    labels: list[str]
    """Class names in output order."""
    routes: dict[int, str]
    """Backend per batch bucket (:attr:`harstream.model.classifier.Classifier.routes`)."""


def child_main(spec: dict[str, Any], conn: Connection) -> None:
    """The child: load, warm up, then answer ``n`` (windows waiting in shared memory) with probabilities.

    Returns, quietly, when the parent closes its end of the pipe (it stops, or gave up on this
    child), also when that happens while a batch is being answered.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; the child ends with the pipe
    from harstream.gc_pauses import freeze_startup
    from harstream.model.classifier import Classifier, set_model_threads

    try:
        if spec["threads"]:
            set_model_threads(spec["threads"])
        classifier = Classifier.load(spec["model"], max_batch=spec["max_batch"], runtime=spec["runtime"])
        classifier.warm_up()
    except Exception as exc:
        _reply(conn, ("error", f"{type(exc).__name__}: {exc}"))
        return
    freeze_startup()  # TensorFlow's many start-up objects: collections would walk them all
    shm = SharedMemory(name=spec["shm_name"])
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]  # the parent's
    windows: npt.NDArray[np.float32] = np.ndarray(
        (spec["max_batch"], spec["window"], spec["channels"]), dtype=np.float32, buffer=shm.buf
    )
    try:
        loaded = classifier.artifact
        ready = {"path": str(loaded.path), "meta_json": loaded.meta.to_json(),
                 "labels": list(classifier.labels), "routes": dict(classifier.routes)}
        if not _reply(conn, ("ready", ready)):
            return
        while True:
            try:
                n = conn.recv()
            except (EOFError, OSError):  # the parent closed the pipe (or died)
                return
            try:
                probs = np.ascontiguousarray(classifier.predict_proba(windows[:n]), dtype=np.float32)
                reply: tuple[Any, ...] = ("ok", probs.shape, probs.tobytes())
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            if not _reply(conn, reply):
                return
    finally:
        del windows
        shm.close()


def _reply(conn: Connection, message: tuple[Any, ...]) -> bool:
    """Send ``message`` to the parent; False when the parent has closed its end (nobody to answer)."""
    try:
        conn.send(message)
    except OSError:  # BrokenPipeError, ConnectionResetError: the parent stopped or replaced this child
        return False
    return True


CHILD_MODULE = child_main.__module__
"""The module ``python -m`` runs in a model process (derived from the code, so a move cannot break it)."""


class ModelProcess:
    """A :class:`~harstream.model.classifier.Classifier` served from a child process (same arguments).

    Two ways to call it: :meth:`predict_proba` waits for the answer (any one
    thread at a time; a lock keeps calls in order); or, from one thread,
    :meth:`submit` a batch, go on with other work (:meth:`fileno` can be
    polled with the thread's sockets), and :meth:`collect` once
    :meth:`answered`. A child that failed is replaced: at the next
    :meth:`predict_proba`, or by :meth:`revive` without waiting for it to
    load. :meth:`close` ends the child; so does the parent's exit (the child
    sees its pipe close).
    """

    def __init__(
        self, model: Path | str | None = None, max_batch: int = 256, runtime: str = "keras",
        threads: int = 0, start_timeout_s: float = START_TIMEOUT_S, call_timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        from harstream import WINDOW
        from harstream.signal.chain import CHANNELS

        self.model = None if model is None else str(model)
        self.max_batch = max_batch
        self.runtime = runtime
        self.threads = threads
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self._shape = (WINDOW, len(CHANNELS))
        self._shm: SharedMemory | None = SharedMemory(create=True, size=max_batch * WINDOW * len(CHANNELS) * 4)
        self._windows: npt.NDArray[np.float32] = np.ndarray(
            (max_batch, *self._shape), dtype=np.float32, buffer=self._shm.buf
        )
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.state = ModelState.DEAD
        """Where the child is (starting, waiting, answering, or none)."""
        self._since = 0.0
        """Monotonic time the child started loading, or the call in flight was submitted."""
        self._submitted = 0
        self.restarts = 0
        """Children started after the first (each after a failure)."""
        self._failed_starts = 0
        self._next_start = 0.0
        """With ``revive``: no child is started before this (monotonic) time (1, 2, 4 ... s after
        children that failed to load, at most :data:`MAX_RESTART_DELAY_S`)."""
        self.info: ModelInfo
        """What the child reported once it had loaded the model."""
        try:
            self._spawn()
            self._await_ready()
        except BaseException:
            self.close()
            raise

    # -- the child's life -----------------------------------------------------------------

    def _spawn(self) -> None:
        assert self._shm is not None
        ours, theirs = socket.socketpair()
        spec = {"model": self.model, "max_batch": self.max_batch, "runtime": self.runtime,
                "threads": self.threads, "shm_name": self._shm.name, "window": self._shape[0],
                "channels": self._shape[1], "fd": theirs.fileno()}
        try:  # a fresh interpreter (never fork one with threads), without re-running the caller's script
            process = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, json.dumps(spec)],
                                       pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._process, self._conn = process, Connection(ours.detach())
        self.state, self._since = ModelState.LOADING, time.monotonic()

    def _respawn(self) -> None:
        """Start a child in place of one that failed."""
        self.restarts += 1
        log.warning("starting model process #%d", self.restarts + 1)
        self._spawn()

    def _await_ready(self) -> None:
        """Wait for a loading child's first message (raises :class:`ArtifactError` if it fails)."""
        assert self._conn is not None
        if not self._conn.poll(self.start_timeout_s):
            self._stop_child()
            raise ArtifactError(f"the model process did not load the model within {self.start_timeout_s:g} s")
        self._take_ready()

    def _take_ready(self) -> None:
        assert self._conn is not None
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            code = self._stop_child()
            raise ArtifactError(f"the model process exited while loading the model (exit code {code})") from None
        if kind != "ready":
            self._stop_child()
            raise ArtifactError(f"cannot load the model {self.model or 'shipped with harstream'}: {value}")
        self.info = ModelInfo(Path(value["path"]), value["meta_json"], value["labels"],
                              {int(k): v for k, v in value["routes"].items()})
        self.state = ModelState.IDLE

    def revive(self) -> None:
        """Without waiting: start a child if there is none, and take a loading child's answer when it
        has come (a child that fails to load, or takes over ``start_timeout_s``, is replaced again)."""
        if self._shm is None:
            return
        now = time.monotonic()
        if self.state is ModelState.DEAD:
            if now < self._next_start:  # a child that keeps failing is not restarted in a tight loop
                return
            self._respawn()
        elif self.state is ModelState.LOADING:
            assert self._conn is not None
            if self._conn.poll(0):
                try:
                    self._take_ready()
                    self._failed_starts = 0
                    return
                except ArtifactError as exc:
                    log.error("%s", exc)
            elif now - self._since > self.start_timeout_s:
                log.error("the model process did not load the model within %g s: replaced", self.start_timeout_s)
                self._stop_child()
            else:
                return
            self._failed_starts += 1
            self._next_start = time.monotonic() + min(MAX_RESTART_DELAY_S, 2.0 ** (self._failed_starts - 1))

    def _stop_child(self, polite: bool = False) -> int | None:
        """End the child, its exit code: a failed one at once (nothing waits on it), with ``polite``
        (closing) after up to 2 s to finish on its own."""
        conn, process = self._conn, self._process
        self._conn = self._process = None
        self.state = ModelState.DEAD
        if conn is not None:
            conn.close()  # a child still reading sees its pipe close and ends
        if process is None:
            return None
        if polite:
            try:
                return process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is None:
            process.kill()
        return process.wait()

    def close(self) -> None:
        """End the child and free the shared memory (idempotent)."""
        with self._lock:
            self._stop_child(polite=True)
            if self._shm is not None:
                del self._windows
                self._shm.close()
                self._shm.unlink()
                self._shm = None

    def __enter__(self) -> ModelProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the classifier's face --------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """Class names in output order."""
        return self.info.labels

    @property
    def routes(self) -> dict[int, str]:
        """Backend per batch bucket, as the child measured them."""
        return self.info.routes

    @property
    def pid(self) -> int | None:
        """The child's process id (None between a failure and the next start)."""
        return None if self._process is None else int(self._process.pid)

    def fileno(self) -> int | None:
        """The pipe to the child (readable when an answer or the loading child's report is in)."""
        return None if self._conn is None else self._conn.fileno()

    def predict_proba(self, windows: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Class probabilities of each window (n, 128, 9) -> (n, classes), computed in the child."""
        x = self._checked(windows)
        with self._lock:
            if self._shm is None:
                raise ModelProcessError("the model process is closed")
            if self.state is ModelState.DEAD:  # the last child failed: start another
                self._respawn()
            if self.state is ModelState.LOADING:
                try:
                    self._await_ready()
                except ArtifactError as exc:
                    raise ModelProcessError(str(exc)) from None
            parts = []
            for begin in range(0, len(x), self.max_batch):
                self._submit(x[begin : begin + self.max_batch])
                parts.append(self.collect())
        if not parts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _checked(self, windows: npt.ArrayLike) -> npt.NDArray[np.float32]:
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != self._shape:
            raise ValueError(f"windows: expected shape (n, {self._shape[0]}, {self._shape[1]}), got {x.shape}")
        return x

    def submit(self, windows: npt.ArrayLike) -> None:
        """Start classifying at most ``max_batch`` windows in the child (it must be ``idle``)."""
        self._submit(self._checked(windows))

    def _submit(self, x: npt.NDArray[np.float32]) -> None:
        if self.state is not ModelState.IDLE or self._conn is None:
            raise ModelProcessError(f"the model process is {self.state.value}, not idle: nothing submitted")
        if not 0 < len(x) <= self.max_batch:
            raise ValueError(f"windows: expected 1-{self.max_batch} of them, got {len(x)}")
        self._windows[: len(x)] = x
        try:
            self._conn.send(len(x))
        except OSError:
            code = self._stop_child()
            raise ModelProcessError(f"the model process exited (exit code {code}); the next call starts "
                                    "another") from None
        self.state, self._since, self._submitted = ModelState.BUSY, time.monotonic(), len(x)

    def answered(self) -> bool:
        """The call in flight has its answer (or ran out of time: :meth:`collect` then says so)."""
        if self.state is not _BUSY or self._conn is None:
            return False
        return self._conn.poll(0) or time.monotonic() - self._since > self.call_timeout_s

    def collect(self) -> npt.NDArray[np.float32]:
        """The probabilities of the call in flight (n, classes), waiting up to ``call_timeout_s`` for them."""
        conn = self._conn
        if self.state is not ModelState.BUSY or conn is None:
            raise ModelProcessError(f"the model process is {self.state.value}: no call in flight")
        try:
            left = self.call_timeout_s - (time.monotonic() - self._since)
            if not conn.poll(max(0.0, left)):  # waits without the GIL
                self._stop_child()
                raise ModelProcessError(
                    f"the model process gave no answer within {self.call_timeout_s:g} s: replaced")
            reply = conn.recv()
        except (EOFError, OSError):
            code = self._stop_child()
            raise ModelProcessError(f"the model process exited (exit code {code}) during a model call; "
                                    "the next call starts another") from None
        self.state = ModelState.IDLE
        if reply[0] != "ok":
            raise ModelProcessError(f"the model call failed in the model process: {reply[1]}")
        _, shape, data = reply
        probs: npt.NDArray[np.float32] = np.frombuffer(data, dtype=np.float32).reshape(shape)
        log.debug("model call: %d windows in %.2f ms", self._submitted, (time.monotonic() - self._since) * 1000)
        return probs


def _main(argv: list[str]) -> None:
    """``python -m CHILD_MODULE SPEC``: the child's entry point (started by :class:`ModelProcess`)."""
    spec = json.loads(argv[0])
    child_main(spec, Connection(spec["fd"]))


if __name__ == "__main__":
    _main(sys.argv[1:])


__all__ = [
    "CALL_TIMEOUT_S", "CHILD_MODULE", "MAX_RESTART_DELAY_S", "START_TIMEOUT_S", "ModelInfo", "ModelProcess",
    "ModelProcessError", "ModelState", "child_main",
]
