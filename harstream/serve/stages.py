"""The serving loop's two model stages, each a :class:`~harstream.model.stage.ModelStage`.

* :class:`ModelProcessStage` (``serve --model-process``, the default): the serving thread
  submits batches to model processes of their own and publishes their answers; the loop
  polls their pipes beside its PULL socket.
* :class:`InferenceThread` (``--no-model-process``): a thread of this process classifies with
  ``engine.predict_proba`` and owns the PUB socket.

Both publish through a :class:`Publisher`, which only the stage's thread calls.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeAlias

import zmq

from harstream.engine.core import Engine
from harstream.engine.state import PendingWindow, stack_windows
from harstream.errors import ProtocolError
from harstream.model.process import ModelProcess, ModelState
from harstream.model.stage import ModelStage
from harstream.protocol import Prediction, encode_error, encode_prediction, encode_stats
from harstream.serve.stats import Stats


class StatsRequest(NamedTuple):
    """Ask the stage to publish ``$stats`` (with an inference thread, it owns the latency samples)."""

    queued_samples: int


Outgoing: TypeAlias = list[bytes] | StatsRequest
"""What the loop hands a stage to publish: a message's frames, or a ``$stats`` request."""

Failed: TypeAlias = Callable[[str, BaseException], None]
"""Counts, logs and reports a failure contained in the serving process (``what failed``, the exception)."""

_IDLE, _LOADING, _DEAD = ModelState.IDLE, ModelState.LOADING, ModelState.DEAD
# read on every pump: a module global is read faster than an Enum class attribute (Python 3.11)


class Publisher:
    """Everything the engine publishes on its PUB socket; called by the thread that owns the socket."""

    def __init__(self, engine: Engine, pub: zmq.Socket[bytes], stats: Stats, failed: Failed) -> None:
        self.engine = engine
        self.pub = pub
        self.stats = stats
        self.failed = failed

    def item(self, item: Outgoing) -> None:
        """Publish handed-over frames, or the ``$stats`` report a request asks for."""
        if isinstance(item, StatsRequest):
            self.pub.send_multipart(encode_stats(self.stats.report(time.monotonic(), item.queued_samples)))
        else:
            self.pub.send_multipart(item)

    def classified(self, predictions: list[Prediction]) -> None:
        """Publish the engine's waiting ``$error``s, then ``predictions`` (one that cannot be encoded is
        an ``internal`` error for its stream, never a crash)."""
        for event in self.engine.take_errors():
            self.pub.send_multipart(encode_error(event.stream, event.code, event.detail))
        for prediction in predictions:
            try:
                frames = encode_prediction(prediction)
            except ProtocolError as exc:  # a value the protocol cannot carry: report, never crash
                self.failed("encoding a prediction", exc)
                frames = encode_error(
                    prediction.stream, "internal",
                    f"the prediction for seq_end {prediction.seq_end} could not be encoded: {exc.detail}",
                )
            self.pub.send_multipart(frames)


class InferenceThread(ModelStage[Outgoing]):
    """The inference thread: classifies what the engine cut, and owns the PUB socket.

    The serving thread hands it frames to publish (``$error``, in order) and
    ``$stats`` requests through :meth:`send`, and wakes it when windows are
    ready (:meth:`wake`). Each round it publishes what was handed over, then
    takes up to ``max_batch`` ready windows, classifies them in one model
    call (TensorFlow and ONNX Runtime release the GIL, so ingest goes on
    meanwhile) and publishes the predictions. Windows arriving during a model
    call wait for the next round: batches grow with the load.
    """

    def __init__(self, engine: Engine, publisher: Publisher, max_batch: int, failed: Failed) -> None:
        self.engine = engine
        self.publisher = publisher
        self.max_batch = max_batch
        self.failed = failed
        self.cond = threading.Condition()
        self.outbox: deque[Outgoing] = deque()
        self.closing = False
        self.deadline = math.inf
        """After this (monotonic) time, waiting windows are dropped and counted."""
        self.dropped_windows = 0
        self.exited = False
        self.close_pub_on_exit = False
        """Set when serving returned while this thread was still busy: it closes the PUB socket it owns."""
        self.thread = threading.Thread(target=self._run, name="harstream-inference", daemon=True)

    @property
    def alive(self) -> bool:
        """The thread still runs."""
        return self.thread.is_alive()

    def start(self) -> None:
        self.thread.start()

    def send(self, item: Outgoing) -> None:
        """Publish ``item`` in order, from the inference thread."""
        with self.cond:
            self.outbox.append(item)
            self.cond.notify()

    def accepts_reports(self) -> bool:
        """Another thread calls, and this one is alive to publish what it sends."""
        return threading.current_thread() is not self.thread and self.thread.is_alive()

    def wake(self) -> None:
        """New windows are ready."""
        with self.cond:
            self.cond.notify()

    def pump(self) -> None:
        """Nothing: the thread takes its own answers."""

    def filenos(self) -> list[int]:
        """None: the thread publishes its answers itself, and the loop need not wake for them."""
        return []

    def longest_wait_ms(self) -> float:
        return math.inf

    def finish(self, deadline: float) -> bool:
        """Classify and publish what is left until ``deadline``, then stop; False if still busy."""
        with self.cond:
            self.closing = True
            self.deadline = deadline
            self.cond.notify()
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5.0)
        return not self.thread.is_alive()

    def hand_over_output(self) -> bool:
        """True when this thread has ended (the caller may close the PUB socket); else it closes it."""
        with self.cond:
            if not self.exited:
                self.close_pub_on_exit = True
            return self.exited

    def _run(self) -> None:
        try:
            self._serve_outbox()
        finally:
            with self.cond:
                self.exited = True
                close = self.close_pub_on_exit
            if close:  # serving has returned: nobody else may touch the socket
                self.publisher.pub.close(linger=0)

    def _serve_outbox(self) -> None:
        engine = self.engine
        while True:
            with self.cond:
                while not self.outbox and not engine.n_pending and not self.closing:
                    self.cond.wait(timeout=1.0)
                items = list(self.outbox)
                self.outbox.clear()
                closing = self.closing
            try:
                for item in items:
                    self.publisher.item(item)
                if engine.n_pending:
                    if time.monotonic() >= self.deadline:
                        self.dropped_windows += len(engine.take_pending())
                    else:
                        self._classify()
                elif closing and not self.outbox:
                    return
            except Exception as exc:  # never let one failure stop the publishing
                self.failed("the inference thread", exc)

    def _classify(self) -> None:
        engine = self.engine
        self.publisher.classified(engine.classify_pending(engine.take_pending(self.max_batch)))


class ModelProcessStage(ModelStage[Outgoing]):
    """Classification on the serving thread, the model computing in processes of its own
    (``serve --model-process``, :class:`~harstream.model.process.ModelProcess`).

    The duties of :class:`InferenceThread` (publish handed-over frames in order,
    classify ready windows in batches, publish the predictions), driven by the
    loop's turns instead of a thread: :meth:`pump` takes the answers that have
    come in and submits the next batches, and the loop polls the models' pipes
    beside its PULL socket. The models compute while the loop receives and
    filters, and no second thread shares the serving process's GIL. With
    several model processes (``--model-processes``), each free one takes the
    next batch, and answers are published in the order the batches were
    submitted: a stream's windows stay in order, and so does its smoothing.
    """

    def __init__(self, engine: Engine, publisher: Publisher, max_batch: int,
                 models: Sequence[ModelProcess]) -> None:
        if not models:
            raise ValueError("models: expected at least one model process, got none")
        self.engine = engine
        self.publisher = publisher
        self.max_batch = max_batch
        self.models = list(models)
        self.in_flight: deque[tuple[ModelProcess, list[PendingWindow]]] = deque()
        """The model calls in flight, oldest first: each model process and its batch's windows."""
        self.deadline = math.inf
        """After this (monotonic) time, waiting windows are dropped and counted."""
        self.dropped_windows = 0

    @property
    def alive(self) -> bool:
        """False: no thread to stop."""
        return False

    def start(self) -> None:
        """Nothing to start: the loop drives this stage."""

    def send(self, item: Outgoing) -> None:
        """Publish ``item`` now: this is the serving thread."""
        self.publisher.item(item)

    def accepts_reports(self) -> bool:
        return True

    def wake(self) -> None:
        """New windows are ready: submit them if a model is free."""
        self.pump()

    def filenos(self) -> list[int]:
        """The models' pipes, each readable when its answer (or a new child's report) is in."""
        return [fd for fd in (model.fileno() for model in self.models) if fd is not None]

    def longest_wait_ms(self) -> float:
        if self.any_dead:
            return 10.0  # its restart is due at a time, not on a pipe
        if self.waiting_on_child:
            return 100.0  # a pipe wakes the poll; 100 ms bounds a lost wake-up
        return math.inf

    @property
    def waiting_on_child(self) -> bool:
        """A call is in flight or a child is loading: its pipe will wake the loop's poll."""
        return bool(self.in_flight) or any(model.state is _LOADING for model in self.models)

    @property
    def any_dead(self) -> bool:
        """A model process has no child (it starts one when its restart is due)."""
        return any(model.state is _DEAD for model in self.models)

    def pump(self) -> None:
        """Take the answers that have come, in submission order; submit batches to the free models."""
        engine = self.engine
        while self.in_flight and self.in_flight[0][0].answered():
            model, pending = self.in_flight.popleft()
            try:
                probs = model.collect()
            except Exception as exc:
                engine.classification_failed(pending, exc)
                predictions = []
            else:
                predictions = engine.predictions_of(pending, probs)
            self.publisher.classified(predictions)
        busy = {id(model) for model, _ in self.in_flight}
        for model in self.models:
            if id(model) in busy:
                continue
            if model.state is not _IDLE:
                model.revive()  # a child that failed is replaced; windows wait meanwhile
            if model.state is not _IDLE or not engine.n_pending:
                continue
            if time.monotonic() >= self.deadline:
                self.dropped_windows += len(engine.take_pending())
                return
            pending = engine.take_pending(min(self.max_batch, model.max_batch))
            try:
                model.submit(stack_windows(pending))
            except Exception as exc:
                engine.classification_failed(pending, exc)
                self.publisher.classified([])
            else:
                self.in_flight.append((model, pending))

    def finish(self, deadline: float) -> bool:
        """Classify and publish what is left until ``deadline``; drop (and count) the rest."""
        self.deadline = deadline
        while (self.in_flight or self.engine.n_pending) and time.monotonic() < deadline:
            self.pump()
            fds = self.filenos()
            if fds and self.waiting_on_child:
                zmq.select(fds, [], [], max(0.0, min(0.1, deadline - time.monotonic())))
            elif self.any_dead:
                time.sleep(0.01)
        self.dropped_windows += sum(len(pending) for _, pending in self.in_flight)
        self.dropped_windows += len(self.engine.take_pending())
        self.in_flight.clear()
        return True

    def hand_over_output(self) -> bool:
        """True: the PUB socket never left the serving thread."""
        return True


__all__ = ["Failed", "InferenceThread", "ModelProcessStage", "Outgoing", "Publisher", "StatsRequest"]
