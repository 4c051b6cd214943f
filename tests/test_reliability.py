"""The engine survives hostile and broken input: limits, failures, clocks, restarts, stops.

Most tests run :func:`harstream.serve.server.serve` in a thread with a stand-in
model (the serving code is the real one); the SIGTERM test runs the real
``harstream serve`` process.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from harstream import ACTIVITIES
from harstream.cli.main import build_parser, main
from harstream.engine.core import Engine
from harstream.protocol import (
    MAX_SEQ,
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_event,
    encode_chunk,
    encode_prediction,
    encode_stats,
)
from harstream.serve.client import Subscriber
from harstream.serve.config import ServerConfig
from harstream.serve.loop import Loop
from harstream.serve.server import serve
from harstream.serve.sockets import bind
from harstream.serve.stats import Stats
from harstream.signal.smoothing import ForwardFilter
from harstream.signal.windows import window_ends


def fake_proba(windows: np.ndarray) -> np.ndarray:
    logits = windows.mean(axis=1)[:, :6] * 10.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def signal_of(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (np.cumsum(rng.standard_normal((n, 6)), axis=0) * 0.01).astype(np.float32)
    x[:, 2] += 1.0
    return x


def classify_all(engine: Engine) -> list[Prediction]:
    """The queued windows classified as ``serve`` does: taken, classified, failed streams forgotten."""
    predictions = engine.classify_pending(engine.take_pending())
    engine.reset_failed()
    return predictions


@contextlib.contextmanager
def running(
    free_endpoint: Callable[[], str], engine: Engine | None = None, **limits: Any
) -> Iterator[tuple[ServerConfig, Engine]]:
    """``serve`` in a thread with a stand-in model; stopped (and joined) on exit."""
    engine = engine or Engine(fake_proba, ACTIVITIES, max_streams=limits.pop("max_streams", 10_000))
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), stats_interval_s=0.2,
                          flush_s=1.0, max_streams=engine.max_streams, **limits)
    stop = threading.Event()
    sockets = bind(config)
    thread = threading.Thread(target=serve, args=(engine, config, stop), kwargs={"sockets": sockets})
    thread.start()
    try:
        yield config, engine
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "serve() did not return after stop"


class Collector:
    """A subscriber collecting every event in a thread."""

    def __init__(self, endpoint: str) -> None:
        self.events: list[Any] = []
        self._sub = Subscriber(endpoint)
        self._stop = threading.Event()
        self._sub.open()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._sub.receive(timeout_s=0.05)
            if event is not None:
                self.events.append(event)

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.events):
            assert time.monotonic() < deadline, f"not seen in {timeout_s} s: {self.events[-5:]}"
            time.sleep(0.02)

    def wait_subscribed(self) -> None:
        self.wait_for(lambda ev: any(isinstance(e, StatsEvent) for e in ev))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sub.close()


@pytest.fixture
def push() -> Iterator[Callable[[str], zmq.Socket[bytes]]]:
    ctx = zmq.Context.instance()
    sockets: list[zmq.Socket[bytes]] = []

    def make(endpoint: str) -> zmq.Socket[bytes]:
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close()


def send_stream(sock: zmq.Socket[bytes], sid: str, x: np.ndarray, chunk: int = 25) -> None:
    for begin in range(0, len(x), chunk):
        sock.send_multipart(encode_chunk(sid, begin, x[begin : begin + chunk]))


# -- the loop survives -----------------------------------------------------------------------


def test_seq_overflow_chunk_is_rejected_and_other_streams_go_on(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    with running(free_endpoint) as (config, _):
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        hostile = [b"evil", b'{"v":1,"seq":9007199254740791,"rate":50}', bytes(300 * 24)]
        sock.send_multipart(hostile)
        send_stream(sock, "canary", signal_of(300))
        out.wait_for(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) == 3)
        errors = out.of(ErrorEvent)
        assert [(e.stream, e.code) for e in errors] == [("evil", "seq")]
        assert "9007199254741090" in errors[0].detail
        out.close()


def test_the_last_possible_window_is_published(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    with running(free_endpoint) as (config, _):
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        first = MAX_SEQ - 255  # 256 samples ending exactly at 2^53-1
        x = signal_of(256)
        sock.send_multipart(encode_chunk("edge", first, x))
        out.wait_for(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) >= 3)
        ends = [p.seq_end for p in out.of(Prediction)]
        assert ends and max(ends) <= MAX_SEQ
        assert ends == window_ends(first, MAX_SEQ + 1).tolist()
        out.close()


def test_a_failing_model_call_is_reported_and_serving_goes_on(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    calls = [0]

    def flaky(windows: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("simulated model failure")
        return fake_proba(windows)

    with running(free_endpoint, Engine(flaky, ACTIVITIES)) as (config, engine):
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        sock.send_multipart(encode_chunk("s", 0, signal_of(128)))
        out.wait_for(lambda ev: any(isinstance(e, ErrorEvent) for e in ev))
        sock.send_multipart(encode_chunk("s", 128, signal_of(128)))  # the stream restarts
        sock.send_multipart(encode_chunk("t", 0, signal_of(128)))
        out.wait_for(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) == 2)
        assert [(e.stream, e.code) for e in out.of(ErrorEvent)] == [("s", "internal")]
        assert {(p.stream, p.seq_end) for p in out.of(Prediction)} == {("s", 255), ("t", 127)}
        out.wait_for(lambda ev: isinstance(ev[-1], StatsEvent) and ev[-1].fields["internal_errors"] == 1)
        assert engine.counters.internal_errors == 1
        out.close()


def test_a_model_returning_nan_is_an_internal_error_not_a_crash() -> None:
    engine = Engine(lambda w: np.full((len(w), 6), np.nan, np.float32), ACTIVITIES)
    engine.ingest([encode_chunk_obj("a", 0, signal_of(128))])
    assert classify_all(engine) == []
    assert [(e.stream, e.code) for e in engine.take_errors()] == [("a", "internal")]
    assert engine.n_streams == 0  # forgotten: it restarts with its next chunk


def encode_chunk_obj(sid: str, seq: int, x: np.ndarray) -> Any:
    from harstream.protocol import decode_chunk

    return decode_chunk(encode_chunk(sid, seq, x))


def test_wall_clock_stepping_back_during_a_model_call_gives_valid_output() -> None:
    wall = [1_700_000_000.0]
    mono = [100.0]

    def slow_model(windows: np.ndarray) -> np.ndarray:
        wall[0] -= 3600.0  # NTP steps the wall clock back an hour
        mono[0] += 0.005  # 5 ms pass
        return fake_proba(windows)

    engine = Engine(slow_model, ACTIVITIES, clock=lambda: mono[0], wall_clock=lambda: wall[0])
    stats = Stats(engine, clock=lambda: mono[0])
    engine.ingest([encode_chunk_obj("a", 0, signal_of(128))])
    (prediction,) = classify_all(engine)
    assert prediction.latency_ms == pytest.approx(5.0)
    assert prediction.t_emit < prediction.t_arrival  # the wall clock did step back
    assert decode_event(encode_prediction(prediction)) == prediction
    report = stats.report(mono[0])
    assert report["latency_ms"]["max"] == pytest.approx(5.0)
    assert isinstance(decode_event(encode_stats(report)), StatsEvent)


def test_monotonic_clock_going_nowhere_gives_zero_latency() -> None:
    engine = Engine(fake_proba, ACTIVITIES, clock=lambda: 5.0)
    engine.ingest([encode_chunk_obj("a", 0, signal_of(128))], t_arrival=10.0)
    (prediction,) = classify_all(engine)
    assert prediction.latency_ms == 0.0


# -- bounded resources -----------------------------------------------------------------------


def test_stream_limit(free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]) -> None:
    with running(free_endpoint, max_streams=3) as (config, _):
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        for i in range(5):
            sock.send_multipart(encode_chunk(f"s{i}", 0, signal_of(10)))
        out.wait_for(lambda ev: len([e for e in ev if isinstance(e, ErrorEvent)]) == 2)
        assert [(e.stream, e.code) for e in out.of(ErrorEvent)] == [
            ("s3", "too_many_streams"), ("s4", "too_many_streams")
        ]
        assert "limit of 3 streams" in out.of(ErrorEvent)[0].detail
        out.wait_for(lambda ev: isinstance(ev[-1], StatsEvent) and ev[-1].fields["rejected"] == 2)
        stats = out.of(StatsEvent)[-1].fields
        assert stats["streams"] == 3 and stats["limits"]["max_streams"] == 3
        out.close()


def test_overload_is_shed_explicitly_and_counted(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    gate = threading.Event()

    def blocked_model(windows: np.ndarray) -> np.ndarray:
        gate.wait(30)  # the model is busy while a burst arrives
        return fake_proba(windows)

    engine = Engine(blocked_model, ACTIVITIES)
    # max_pending_windows=1: with windows waiting for the busy model, nothing more is filtered and
    # the burst piles up in the queue (without it, a slow machine may filter the burst as it comes)
    with running(free_endpoint, engine, max_queued_samples=3000, turn_samples=3000,
                 max_pending_windows=1) as (config, _):
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        sock.send_multipart(encode_chunk("first", 0, signal_of(128)))
        time.sleep(0.3)  # the engine is now inside the model call
        for i in range(20):
            sock.send_multipart(encode_chunk(f"b{i}", 0, signal_of(1000)))
        time.sleep(0.3)
        gate.set()
        # a $stats report is filled in when it is published: the errors it counts may follow it
        out.wait_for(lambda ev: isinstance(ev[-1], StatsEvent) and ev[-1].fields["shed"] > 0
                     and ev[-1].fields["chunks"] + ev[-1].fields["shed"] == 21
                     and sum(isinstance(e, ErrorEvent) and e.code == "overloaded" for e in ev)
                     == ev[-1].fields["shed"])
        shed = [e for e in out.of(ErrorEvent) if e.code == "overloaded"]
        stats = out.of(StatsEvent)[-1].fields
        assert len(shed) == stats["shed"] == engine.counters.shed
        assert "limit of 3000 samples" in shed[0].detail
        assert stats["limits"]["max_queued_samples"] == 3000
        out.close()


def test_a_turn_filters_at_most_turn_samples(free_endpoint: Callable[[], str]) -> None:
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), turn_samples=3000)
    sockets = bind(config)
    try:
        loop = Loop(Engine(fake_proba, ACTIVITIES), config, sockets)
        from harstream.engine.state import Arrival

        for i in range(10):
            loop.queue.append(Arrival(encode_chunk_obj(f"s{i}", 0, signal_of(1000)), 0.0, 0.0))
            loop.queued_samples += 1000
        loop.filter()
        assert len(loop.queue) == 7 and loop.queued_samples == 7000
        assert loop.engine.counters.chunks == 3
    finally:
        sockets.close()


def test_a_chunk_costing_more_than_the_queue_limit_is_taken_into_an_empty_queue(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    """A chunk's cost (what resampling it produces) may pass the smallest queue limit: a 20 Hz chunk of
    3,000 samples costs 7,500. Into an empty queue it goes (else it could never be classified, and
    would be reported as overloaded on an idle engine); behind another chunk it is shed."""
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), max_queued_samples=3000)
    sockets = bind(config)
    try:
        loop = Loop(Engine(fake_proba, ACTIVITIES), config, sockets)
        sock = push(config.ingest)
        sock.send_multipart(encode_chunk("slow", 0, signal_of(3000), rate=20))
        sock.send_multipart(encode_chunk("after", 0, signal_of(3000), rate=20))
        assert sockets.pull.poll(5000)
        deadline = time.monotonic() + 30
        while loop.engine.counters.shed + len(loop.queue) < 2:
            assert time.monotonic() < deadline
            loop.receive(10)
        assert [a.chunk.stream for a in loop.queue] == ["slow"] and loop.engine.counters.shed == 1
        loop.filter()
        assert loop.engine.counters.chunks == 1 and loop.queued_samples == 0
    finally:
        sockets.close()


def test_with_gather_ms_the_socket_is_read_gather_ms_after_the_last_read(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), gather_ms=1000.0)
    sockets = bind(config)
    try:
        loop = Loop(Engine(fake_proba, ACTIVITIES), config, sockets)
        sock = push(config.ingest)
        sock.send_multipart(encode_chunk("a", 0, signal_of(64)))
        sock.send_multipart(encode_chunk("b", 0, signal_of(64)))
        assert sockets.pull.poll(5000)  # a chunk is in the socket
        loop.last_read = time.monotonic()
        loop.turn(math.inf)  # within gather_ms of the last read: nothing is read
        assert loop.engine.counters.chunks == 0 and not loop.queue
        assert time.monotonic() >= loop.last_read + 1.0  # the turn waited out the gathering
        deadline = time.monotonic() + 30
        while loop.engine.counters.chunks < 2:  # read (in one turn, as a rule) and filtered
            assert time.monotonic() < deadline
            loop.turn(math.inf)
    finally:
        sockets.close()


def test_an_oversized_frame_is_refused_without_harm(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    with running(free_endpoint) as (config, engine):
        out = Collector(config.publish)
        out.wait_subscribed()
        bad = push(config.ingest)
        bad.send_multipart([b"huge", b'{"v":1,"seq":0,"rate":50}', bytes(config.max_message_bytes + 24)])
        good = push(config.ingest)
        send_stream(good, "canary", signal_of(256))
        out.wait_for(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) == 3)
        assert engine.counters.chunks == len(range(0, 256, 25))  # the huge one never arrived
        assert out.of(ErrorEvent) == []
        out.close()


def test_a_subscriber_that_never_reads_does_not_hold_up_the_engine(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    """Its queue is capped by the publish high-water mark; everyone else gets everything."""
    with running(free_endpoint, publish_hwm=200) as (config, _):
        ctx = zmq.Context.instance()
        with ctx.socket(zmq.SUB) as lazy:
            lazy.setsockopt(zmq.RCVHWM, 1)
            lazy.setsockopt(zmq.RCVBUF, 4096)
            lazy.setsockopt(zmq.SUBSCRIBE, b"")
            lazy.connect(config.publish)
            out = Collector(config.publish)
            out.wait_subscribed()
            sock = push(config.ingest)
            streams, rounds = 20, 30
            x = {i: signal_of(128 + 64 * 4 * rounds, i) for i in range(streams)}
            bounds = [256 * r for r in range(rounds)] + [len(x[0])]
            for r in range(rounds):  # about 80 windows a round, 2,400 in all
                for i in range(streams):
                    begin, end = bounds[r], bounds[r + 1]
                    sock.send_multipart(encode_chunk(f"s{i}", begin, x[i][begin:end]))
                # every window this round completes, before the next round is sent (counted, not
                # "more than before": the round's labels may all arrive before this line runs)
                n = streams * len(window_ends(0, bounds[r + 1]))
                out.wait_for(lambda ev, n=n: len([e for e in ev if isinstance(e, Prediction)]) >= n)
            expected = {(f"s{i}", int(e)) for i in range(streams) for e in window_ends(0, len(x[0]))}
            out.wait_for(lambda ev: {(p.stream, p.seq_end) for p in ev if isinstance(p, Prediction)}
                         == expected)
            assert len(out.of(Prediction)) == len(expected)
            out.close()


# -- restarts ------------------------------------------------------------------------------------


def test_each_engine_start_has_a_fresh_id_in_stats_and_predictions(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    ids = []
    for _ in range(2):
        with running(free_endpoint) as (config, engine):
            out = Collector(config.publish)
            out.wait_subscribed()
            push(config.ingest).send_multipart(encode_chunk("a", 0, signal_of(128)))
            out.wait_for(lambda ev: any(isinstance(e, Prediction) for e in ev))
            assert {e.fields["engine"] for e in out.of(StatsEvent)} == {engine.id}
            assert {p.engine for p in out.of(Prediction)} == {engine.id}
            ids.append(engine.id)
            out.close()
    assert ids[0] != ids[1]


def test_a_producer_restarts_its_stream_on_purpose() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    x = signal_of(300)
    engine.ingest([encode_chunk_obj("a", 0, x[:200])])
    assert [p.seq_end for p in classify_all(engine)] == [127, 191]
    errors = engine.ingest([encode_chunk_obj("a", 0, x[:10])])
    assert [e.code for e in errors] == ["seq_replay"]  # same seq without the flag: a replay
    from harstream.protocol import decode_chunk

    restarted = decode_chunk(encode_chunk("a", 0, x, restart=True))
    assert engine.ingest([restarted]) == []
    assert [p.seq_end for p in classify_all(engine)] == [127, 191, 255]


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-batch", "0"], "expected an integer in [1, 4096], got 0"),
        (["--max-batch", "many"], "expected an integer, got 'many'"),
        (["--max-pending-windows", "0"], "expected an integer in [1, 1000000], got 0"),
        (["--model-threads", "0"], "expected an integer in [1, 64], got 0"),
        (["--runtime", "tpu"], "invalid choice: 'tpu'"),
        (["--stay", "1.0"], "expected a number in (0, 1), got 1.0"),
        (["--stay", "0"], "got 0"),
        (["--idle-timeout", "2"], "expected a number in [5, 86400], got 2"),
        (["--ingest", "bogus://x"], "expected an endpoint tcp://HOST:PORT"),
        (["--ingest", "inproc://engine"], "got 'inproc://engine'"),
        (["--ingest", "tcp://127.0.0.1:5555\n"], "got 'tcp://127.0.0.1:5555\\n'"),
        (["--publish", "tcp://127.0.0.1:70000"], "port 1-65535"),
        (["--publish", "tcp://127.0.0.1"], "got 'tcp://127.0.0.1'"),
        (["--max-streams", "0"], "expected an integer in [1, 1000000], got 0"),
        (["--max-queued-samples", "10"], "got 10"),
        (["--turn-samples", "1"], "got 1"),
        (["--ingest-hwm", "0"], "got 0"),
        (["--publish-hwm", "-5"], "got -5"),
        (["--flush", "inf"], "got inf"),
        (["--switch-interval", "0"], "got 0"),
    ],
)
def test_every_bad_serve_value_is_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_busy_port_is_one_line_and_a_nonzero_exit(
    free_endpoint: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    busy = free_endpoint()
    with zmq.Context.instance().socket(zmq.PULL) as holder:
        holder.bind(busy)
        assert main(["serve", "--ingest", busy, "--publish", free_endpoint()]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot bind the ingest endpoint '{busy}'" in err and "Traceback" not in err


def test_same_endpoint_for_both_sockets_is_refused(
    free_endpoint: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = free_endpoint()
    assert main(["serve", "--ingest", endpoint, "--publish", endpoint]) == 2
    assert "cannot bind the publish endpoint" in " ".join(capsys.readouterr().err.split())


def test_a_broken_model_is_one_artifact_error_line(
    free_endpoint: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "model.keras"
    bogus.write_bytes(b"not a zip")
    rc = main(["serve", "--ingest", free_endpoint(), "--publish", free_endpoint(), "--model", str(bogus)])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and "Traceback" not in err


# -- stopping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flush_s", [5.0, 0.0])
def test_a_stop_flushes_what_is_held_or_counts_it(
    flush_s: float, free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    """Stop while most of 50 chunks wait in the queue: published within flush_s, else counted."""
    gates = [threading.Event(), threading.Event()]
    calls = [0]

    def gated(windows: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] <= len(gates):
            gates[calls[0] - 1].wait(30)
        return fake_proba(windows)

    engine = Engine(gated, ACTIVITIES)
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), max_batch=2, turn_samples=128,
                          max_pending_windows=2, flush_s=flush_s)  # 1 chunk a turn, few windows waiting
    stop, result = threading.Event(), []
    sockets = bind(config)
    thread = threading.Thread(target=lambda: result.append(serve(engine, config, stop, sockets=sockets)))
    thread.start()
    try:
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        sock.send_multipart(encode_chunk("s0", 0, signal_of(128)))
        while calls[0] < 1:  # the inference thread is in its first model call
            time.sleep(0.01)
        for i in range(1, 51):
            sock.send_multipart(encode_chunk(f"s{i}", 0, signal_of(128, i)))
        time.sleep(1.0)  # read by the engine, as a rule: 2 filtered, 48 queued behind the busy model
        gates[0].set()
        while calls[0] < 2:
            time.sleep(0.01)
        stop.set()
        gates[1].set()
        thread.join(timeout=30)
        (summary,) = result
        # every chunk is published or counted (one still in the socket on a slow machine: unread)
        lost = summary.dropped_chunks + summary.dropped_windows + summary.unread_messages
        published = 51 - lost
        assert summary.windows == published
        if flush_s:
            assert (summary.dropped_chunks, summary.dropped_windows) == (0, 0)
            assert summary.flushed_windows > 0
            assert ("nothing dropped" in summary.describe()) == (summary.unread_messages == 0)
        else:
            assert lost >= 40 and "DROPPED" in summary.describe()
        out.wait_for(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) == published)
        out.wait_for(lambda ev: isinstance(ev[-1], StatsEvent) and ev[-1].fields["windows"] == published)
        out.close()
    finally:
        for gate in gates:
            gate.set()
        stop.set()
        thread.join(timeout=30)


def test_sigterm_stops_the_real_engine_cleanly_with_a_summary(free_endpoint: Callable[[], str]) -> None:
    ingest, publish = free_endpoint(), free_endpoint()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = Collector(publish)
        deadline = time.monotonic() + 180
        while not out.of(StatsEvent):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "engine did not start"
            time.sleep(0.1)
        with zmq.Context.instance().socket(zmq.PUSH) as sock:
            sock.connect(ingest)
            for i in range(20):
                sock.send_multipart(encode_chunk(f"s{i}", 0, signal_of(384, i)))
            out.wait_for(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) == 100)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stderr = " ".join((proc.stderr.read() if proc.stderr else "").split())
        assert re.search(r"stopped: 100 windows classified, 0 messages rejected, .* nothing dropped",
                         stderr), stderr[-800:]
        out.wait_for(lambda ev: isinstance(ev[-1], StatsEvent) and ev[-1].fields["windows"] == 100)
        out.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stats_report_is_valid_json_with_limits() -> None:
    engine = Engine(fake_proba, ACTIVITIES, max_streams=7)
    report = Stats(engine, ServerConfig()).report(time.monotonic())
    body = json.loads(encode_stats(report)[1])
    assert body["limits"]["max_streams"] == 7 and body["engine"] == engine.id
    assert body["age_ms"] == {"p50": None, "p99": None, "max": None}


def test_extreme_t0_values_do_not_break_stats() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    engine.ingest([encode_chunk_obj("a", 0, signal_of(128)), encode_chunk_obj("b", 0, signal_of(128))])
    from dataclasses import replace

    engine._pending[0].t_sample = 1e305
    engine._pending[1] = replace(engine._pending[1], t_sample=-1e305)
    assert len(classify_all(engine)) == 2
    report = Stats(engine).report(time.monotonic())
    assert isinstance(decode_event(encode_stats(report)), StatsEvent)


def test_windows_cut_before_a_restart_are_smoothed_apart_from_it() -> None:
    """Both runs of a stream in one batch: the restarted run's smoothing starts afresh."""
    probs = iter([[0.9, 0.1], [0.2, 0.8]])
    engine = Engine(lambda w: np.asarray([next(probs) for _ in w], np.float32), ["A", "B"],
                    ForwardFilter(2, stay=0.9))
    x = signal_of(128)
    errors = engine.ingest([encode_chunk_obj("a", 0, x), encode_chunk_obj("a", 1024, x)])
    assert [e.code for e in errors] == ["seq_gap"]
    first, second = classify_all(engine)
    assert (first.seq_end, first.smoothed) == (127, "A")
    assert (second.seq_end, second.smoothed) == (1151, "B")
    assert second.smoothed_probs == pytest.approx((0.2, 0.8))


# -- review findings ---------------------------------------------------------------------------


def test_one_streams_overflowing_values_fail_that_stream_only() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    huge = np.full((128, 6), 3.4e38, np.float32)
    huge[::2] *= -1  # finite float32 samples whose filtered values overflow float32
    from harstream.protocol import Chunk  # past the protocol's ±1e6 check: the engine's safety net

    errors = engine.ingest([Chunk("bad", 0, 50, None, huge), encode_chunk_obj("good", 0, signal_of(128))])
    assert [(e.stream, e.code) for e in errors] == [("bad", "internal")]
    assert [(p.stream, p.seq_end) for p in classify_all(engine)] == [("good", 127)]


def test_a_model_row_out_of_range_fails_that_stream_only() -> None:
    def half_bad(windows: np.ndarray) -> np.ndarray:
        out = fake_proba(windows)
        out[0] = np.nan
        return out

    engine = Engine(half_bad, ACTIVITIES)
    engine.ingest([encode_chunk_obj("bad", 0, signal_of(128)), encode_chunk_obj("good", 0, signal_of(128, 1))])
    assert [p.stream for p in classify_all(engine)] == ["good"]
    assert [(e.stream, e.code) for e in engine.take_errors()] == [("bad", "internal")]
    assert engine.n_streams == 1


def test_windows_of_a_forgotten_stream_are_never_published() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    engine.ingest([encode_chunk_obj("a", 0, signal_of(128))])
    engine.streams.forget("a")  # as after a failure
    engine.ingest([encode_chunk_obj("a", 128, signal_of(128))])  # the stream comes back at once
    assert [p.seq_end for p in classify_all(engine)] == [255]  # 127, cut before, is gone


def test_a_stream_that_lost_a_chunk_to_shedding_restarts_at_its_next_chunk(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]]
) -> None:
    gate, busy = threading.Event(), threading.Event()

    def blocked(windows: np.ndarray) -> np.ndarray:
        busy.set()
        gate.wait(30)  # $error goes out from the inference thread: it is published once this returns
        return fake_proba(windows)

    with running(free_endpoint, Engine(blocked, ACTIVITIES), max_queued_samples=3000,
                 max_pending_windows=1) as (config, engine):
        out = Collector(config.publish)
        out.wait_subscribed()
        sock = push(config.ingest)
        sock.send_multipart(encode_chunk("a", 0, signal_of(128)))
        assert busy.wait(30)  # the model is now busy with a's window
        sock.send_multipart(encode_chunk("b", 0, signal_of(128)))
        deadline = time.monotonic() + 30
        while engine.counters.chunks < 2:  # b filtered: its window waits, the pending limit is 1
            assert time.monotonic() < deadline, "b was not filtered"
            time.sleep(0.01)
        sock.send_multipart(encode_chunk("fill", 0, signal_of(2900)))
        sock.send_multipart(encode_chunk("a", 0, signal_of(128), restart=True))  # shed
        out.wait_for(lambda ev: any(isinstance(e, ErrorEvent) and e.code == "overloaded" for e in ev), 120)
        gate.set()
        time.sleep(0.5)
        sock.send_multipart(encode_chunk("a", 128, signal_of(128)))  # behind the old index: restart
        out.wait_for(lambda ev: ("a", 255) in {(p.stream, p.seq_end) for p in ev if isinstance(p, Prediction)})
        assert [e.code for e in out.of(ErrorEvent)] == ["overloaded"]
        out.close()


def test_a_loop_failure_is_published_as_internal(
    free_endpoint: Callable[[], str], push: Callable[[str], zmq.Socket[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running(free_endpoint) as (config, engine):
        out = Collector(config.publish)
        out.wait_subscribed()
        monkeypatch.setattr(engine, "drop_idle", lambda: 1 / 0)
        out.wait_for(lambda ev: any(isinstance(e, ErrorEvent) and e.code == "internal" for e in ev))
        (error, *_) = [e for e in out.of(ErrorEvent) if e.code == "internal"]
        assert error.stream is None and "ZeroDivisionError" in error.detail
        monkeypatch.undo()
        push(config.ingest).send_multipart(encode_chunk("a", 0, signal_of(128)))
        out.wait_for(lambda ev: any(isinstance(e, Prediction) for e in ev))  # still serving
        out.close()


def test_a_rogue_publisher_cannot_crash_a_subscriber_with_a_lone_surrogate() -> None:
    from harstream.errors import ProtocolError

    body = json.dumps({"v": 1, "stream": "\ud800", "code": "x", "detail": "y"}).encode()
    with pytest.raises(ProtocolError):
        decode_event([b"$error", body])
