"""The model in a process of its own (``serve --model-process``): same answers, failures contained."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from harstream.errors import ArtifactError
from harstream.model.classifier import Classifier
from harstream.model.process import CHILD_MODULE, ModelProcess, ModelProcessError, ModelState
from harstream.protocol import ErrorEvent, Prediction, StatsEvent, encode_chunk


@pytest.fixture(scope="module")
def model() -> Iterator[ModelProcess]:
    with ModelProcess(runtime="auto", threads=1) as process:
        yield process


def windows(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 128, 9)).astype(np.float32)
    x[..., 6] += 1.0
    return x


def test_the_model_process_answers_as_the_keras_model(model: ModelProcess) -> None:
    reference = Classifier.load()
    assert model.labels == reference.labels
    assert model.info.path == reference.artifact.path
    x = windows(300)  # more than one call of max_batch
    np.testing.assert_allclose(model.predict_proba(x), reference.predict_proba(x), atol=1e-4)
    assert model.predict_proba(x[:0]).shape == (0, 6)
    with pytest.raises(ValueError, match=r"windows: expected shape \(n, 128, 9\), got \(2, 64, 9\)"):
        model.predict_proba(np.zeros((2, 64, 9), np.float32))


def test_a_dead_model_process_fails_one_call_and_the_next_starts_another(model: ModelProcess) -> None:
    x = windows(5, seed=1)
    before = model.predict_proba(x)
    pid = model.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # "during a model call", or, when the child is gone before the call starts, "the next call starts"
    with pytest.raises(ModelProcessError, match=r"exited \(exit code -9\)"):
        for _ in range(50):  # the kill lands within a call or two
            model.predict_proba(x)
            time.sleep(0.05)
    assert model.pid is None
    np.testing.assert_allclose(model.predict_proba(x), before, atol=1e-4)  # a fresh child
    assert model.pid not in (None, pid) and model.restarts == 1


def test_a_model_that_cannot_load_is_one_artifact_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match=r"cannot load the model .*broken\.keras"):
        ModelProcess(bad)


def _model_children_subscribed(proc: Any, sub: Any, expected: int) -> list[str]:
    """The pids of the ``expected`` model processes ``serve`` (``proc``) started, once ``sub`` has
    its first ``$stats``: a label published before the subscription is live would be lost."""
    children = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", CHILD_MODULE],
                              capture_output=True, text=True).stdout.split()
    assert len(children) == expected, children
    deadline = time.monotonic() + 60
    while not isinstance(sub.receive(timeout_s=0.5), StatsEvent):
        assert time.monotonic() < deadline, "no $stats: not subscribed"
    return children


def test_serve_with_a_model_process_survives_its_death(
    free_endpoint: Callable[[], str], serve_process: Callable[..., object]
) -> None:
    from harstream.serve.client import Subscriber

    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish, "--model-process") as (proc, _), Subscriber(publish) as sub:  # type: ignore[attr-defined]
        children = _model_children_subscribed(proc, sub, 1)
        with zmq.Context.instance().socket(zmq.PUSH) as push:
            push.connect(ingest)

            def predictions(sid: str, n: int) -> list[Prediction]:
                seen: list[Prediction] = []
                deadline = time.monotonic() + 60
                while len(seen) < n:
                    assert time.monotonic() < deadline, f"{len(seen)} of {n} predictions for {sid}"
                    event = sub.receive(timeout_s=0.5)
                    if isinstance(event, Prediction) and event.stream == sid:
                        seen.append(event)
                return seen

            push.send_multipart(encode_chunk("before", 0, windows(1)[0, :, 3:9].copy()))
            push.send_multipart(encode_chunk("before", 128, windows(1)[0, :, 3:9].copy()))
            assert [p.seq_end for p in predictions("before", 3)] == [127, 191, 255]
            os.kill(int(children[0]), signal.SIGKILL)
            time.sleep(0.2)
            # the next model call fails (reported, windows dropped), the one after runs in a new child
            push.send_multipart(encode_chunk("during", 0, windows(1)[0, :, 3:9].copy()))
            internal: list[ErrorEvent] = []
            deadline = time.monotonic() + 180  # a new child loads the model: as long as the first
            while not internal:
                assert time.monotonic() < deadline, "no internal error after the model process died"
                event = sub.receive(timeout_s=0.5)
                if isinstance(event, ErrorEvent) and event.code == "internal":
                    internal.append(event)
            push.send_multipart(encode_chunk("after", 0, windows(1, seed=2)[0, :, 3:9].copy()))
            assert [p.seq_end for p in predictions("after", 1)] == [127]
        assert proc.poll() is None  # serving went on
    proc.wait(timeout=60)  # type: ignore[attr-defined]
    stderr = " ".join((proc.stderr.read().decode() if proc.stderr else "").split())  # type: ignore[attr-defined]
    assert re.search(r"in model process \d+", stderr), stderr[-800:]
    assert "starting model process #2" in stderr, stderr[-800:]


def test_serve_runs_as_many_model_processes_as_asked(
    free_endpoint: Callable[[], str], serve_process: Callable[..., object]
) -> None:
    from harstream.serve.client import Subscriber

    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish, "--model-processes", "2") as (proc, _), Subscriber(publish) as sub:  # type: ignore[attr-defined]
        _model_children_subscribed(proc, sub, 2)
        with zmq.Context.instance().socket(zmq.PUSH) as push:
            push.connect(ingest)
            for i in range(8):
                push.send_multipart(encode_chunk(f"s{i}", 0, windows(1, seed=i)[0, :, 3:9].copy()))
            seen: set[str] = set()
            deadline = time.monotonic() + 60
            while len(seen) < 8:
                assert time.monotonic() < deadline, f"predictions for {sorted(seen)} only"
                event = sub.receive(timeout_s=0.5)
                if isinstance(event, Prediction):
                    seen.add(event.stream)
    proc.wait(timeout=60)  # type: ignore[attr-defined]
    stderr = " ".join((proc.stderr.read().decode() if proc.stderr else "").split())  # type: ignore[attr-defined]
    assert re.search(r"in model processes \d+, \d+", stderr), stderr[-800:]


class _CountingModel:
    """A model process that counts the batches submitted to it."""

    def __init__(self, model: ModelProcess) -> None:
        self._model, self.batches = model, 0

    def submit(self, windows: np.ndarray) -> None:
        self._model.submit(windows)
        self.batches += 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)


@pytest.mark.parametrize("processes", [1, 2])
def test_serving_with_model_processes_publishes_every_window_once_in_order_as_offline(
    model: ModelProcess, free_endpoint: Callable[[], str], processes: int
) -> None:
    import threading

    from harstream import ACTIVITIES
    from harstream.engine.core import Engine
    from harstream.serve.client import Subscriber
    from harstream.serve.config import ServerConfig
    from harstream.serve.server import serve
    from harstream.serve.sockets import bind

    rng = np.random.default_rng(7)
    streams = {f"s{i}": (rng.normal(size=(384, 6)) * 0.2).astype(np.float32) for i in range(40)}
    offline = Engine(Classifier.load().predict_proba, ACTIVITIES)
    for begin in range(0, 384, 32):
        offline.ingest([encode_chunk_obj(sid, begin, x[begin : begin + 32]) for sid, x in streams.items()])
    offline_predictions = offline.classify_pending(offline.take_pending())
    expected = {(p.stream, p.seq_end): p.probs for p in offline_predictions}
    expected_smoothed = {(p.stream, p.seq_end): p.smoothed_probs for p in offline_predictions}
    assert len(expected) == 40 * 5

    engine = Engine(model.predict_proba, model.labels)
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), stats_interval_s=0.2, flush_s=5.0,
                          max_batch=16 if processes > 1 else 256)  # small batches: every process gets some
    extra = [ModelProcess(runtime="auto", threads=1) for _ in range(processes - 1)]
    counted = [_CountingModel(m) for m in [model, *extra]]
    sockets, stop = bind(config), threading.Event()
    thread = threading.Thread(target=serve, args=(engine, config, stop),
                              kwargs={"sockets": sockets, "model": counted})
    thread.start()
    seen: dict[tuple[str, int], tuple[float, ...]] = {}
    smoothed: dict[tuple[str, int], tuple[float, ...]] = {}
    last_seq_end: dict[str, int] = {}
    try:
        with Subscriber(config.publish) as sub, zmq.Context.instance().socket(zmq.PUSH) as push:
            deadline = time.monotonic() + 30
            while sub.receive(timeout_s=0.2) is None:  # the first $stats: subscribed
                assert time.monotonic() < deadline
            push.connect(config.ingest)
            for begin in range(0, 384, 32):
                for sid, x in streams.items():
                    push.send_multipart(encode_chunk(sid, begin, x[begin : begin + 32]))
            deadline = time.monotonic() + 60
            while len(seen) < len(expected) and time.monotonic() < deadline:
                event = sub.receive(timeout_s=0.5)
                if isinstance(event, Prediction):
                    key = (event.stream, event.seq_end)
                    assert key not in seen, f"{key} published twice"
                    assert event.seq_end > last_seq_end.get(event.stream, -1), f"{key} out of order"
                    last_seq_end[event.stream] = event.seq_end
                    seen[key], smoothed[key] = event.probs, event.smoothed_probs
    finally:
        stop.set()
        thread.join(timeout=30)
        for m in extra:
            m.close()
    assert set(seen) == set(expected)
    for key, probs in expected.items():
        np.testing.assert_allclose(seen[key], probs, atol=1e-4)
        np.testing.assert_allclose(smoothed[key], expected_smoothed[key], atol=1e-4)  # smoothed in order
    assert all(m.batches > 0 for m in counted), [m.batches for m in counted]


def encode_chunk_obj(sid: str, seq: int, x: np.ndarray) -> object:
    from harstream.protocol import decode_chunk

    return decode_chunk(encode_chunk(sid, seq, x))


class _GatedModel:
    """The model process, with its answers held back until ``gate`` is set (a model busy at the stop)."""

    def __init__(self, model: ModelProcess, gate: object) -> None:
        self._model, self._gate = model, gate

    def answered(self) -> bool:
        return bool(self._gate.is_set()) and self._model.answered()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)


def test_a_stop_with_the_model_process_busy_flushes_everything_held(
    model: ModelProcess, free_endpoint: Callable[[], str]
) -> None:
    import threading

    from harstream.engine.core import Engine
    from harstream.serve.client import Subscriber
    from harstream.serve.config import ServerConfig
    from harstream.serve.server import serve
    from harstream.serve.sockets import bind

    engine = Engine(model.predict_proba, model.labels)
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), max_batch=2, turn_samples=128,
                          max_pending_windows=2, flush_s=30.0,  # 1 chunk a turn, 2 windows waiting at most
                          stats_interval_s=0.05)
    gate = threading.Event()
    sockets, stop, result = bind(config), threading.Event(), []
    thread = threading.Thread(target=lambda: result.append(serve(
        engine, config, stop, sockets=sockets, model=_GatedModel(model, gate))))  # type: ignore[arg-type]
    thread.start()
    try:
        with Subscriber(config.publish) as sub, zmq.Context.instance().socket(zmq.PUSH) as push:
            push.connect(config.ingest)
            for i in range(60):
                push.send_multipart(encode_chunk(f"s{i}", 0, windows(1, seed=i)[0, :, 3:9].copy()))
            deadline = time.monotonic() + 60
            while True:  # every chunk read: 1 filtered, its window at the (held) model, 59 queued
                event = sub.receive(timeout_s=0.5)
                assert time.monotonic() < deadline, "the engine did not read the 60 chunks"
                if (isinstance(event, StatsEvent)  # 60 chunks of 128 samples, each filtered or queued
                        and event.fields["chunks"] * 128 + event.fields["queued_samples"] >= 60 * 128):
                    break
    finally:
        stop.set()  # the model is still busy: the flush must take its answers to publish the rest
        time.sleep(0.2)
        gate.set()
        thread.join(timeout=60)
    (summary,) = result
    assert (summary.dropped_chunks, summary.dropped_windows, summary.unread_messages) == (0, 0, 0)
    assert summary.windows == 60 and summary.flushed_windows >= 50


def test_a_child_that_keeps_failing_to_load_is_restarted_after_a_growing_wait(tmp_path: Path) -> None:
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a model")
    with ModelProcess(threads=1) as process:
        process.model = str(bad)  # every later child fails to load
        os.kill(process.pid or 0, signal.SIGKILL)
        with pytest.raises(ModelProcessError):
            process.submit(windows(1))
            process.collect()
        assert process.state is ModelState.DEAD
        process.revive()  # starts a child, which fails to load
        assert process.restarts == 1
        deadline = time.monotonic() + 60
        while process.state is ModelState.LOADING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
            process.revive()
        for _ in range(3):  # within the first wait (1 s): no new child
            process.revive()
            time.sleep(0.01)
        assert process.state is ModelState.DEAD and process.restarts == 1
        time.sleep(1.0)
        process.revive()
        assert process.restarts == 2


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_a_child_whose_parent_closes_the_pipe_mid_answer_exits_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """What SIGTERM to ``serve`` does to a model process answering a batch: ``serve`` closes its end
    of the pipe while the child computes. The child exits 0 and prints nothing."""
    with ModelProcess(threads=1) as process:
        pid, child = process.pid, process._process
        assert pid is not None and child is not None and process._conn is not None
        capfd.readouterr()  # what loading printed
        os.kill(pid, signal.SIGSTOP)  # the batch waits in the pipe until the parent's end is closed
        try:
            deadline = time.monotonic() + 60
            while not _stopped(pid):
                assert time.monotonic() < deadline, "the child did not stop"
                time.sleep(0.01)
            process.submit(windows(4))
            process._conn.close()  # as serve's stop does, mid-answer
        finally:
            os.kill(pid, signal.SIGCONT)
        code = child.wait(timeout=120)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    assert code == 0, err[-2000:]


def test_several_model_processes_need_the_model_process(capsys: pytest.CaptureFixture[str]) -> None:
    from harstream.cli.main import main

    assert main(["serve", "--no-model-process", "--model-processes", "2"]) == 2
    assert "--model-processes 2: expected --model-process" in " ".join(capsys.readouterr().err.split())
