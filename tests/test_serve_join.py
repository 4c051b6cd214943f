"""``serve --join``: an engine behind a router, driven by a fake router made of plain pyzmq sockets.

The fake router is a ROUTER (the engines endpoint) and an XSUB (the results endpoint) on
loopback; the engine is :func:`harstream.serve.server.serve` in a thread, as the Ray engine
actor runs it. Everything stays on 127.0.0.1 in this process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from harstream import ACTIVITIES
from harstream.engine.core import Engine
from harstream.errors import SecurityError
from harstream.loopback import free_endpoint
from harstream.protocol import Prediction, StatsEvent, decode_event, encode_chunk
from harstream.serve import cluster_wire as wire
from harstream.serve.client import Subscriber
from harstream.serve.config import ServerConfig
from harstream.serve.join import JoinedLoop, RouterLink, join
from harstream.serve.security import ClientSecurity, load_key_pair, make_key_pair
from harstream.serve.server import serve
from harstream.serve.sockets import bind
from harstream.serve.stats import ServeSummary

LONG_MS = 600_000
"""A welcome's timeout that no test outlasts: the engine never rejoins unless a test wants it."""


def fake_proba(windows: np.ndarray) -> np.ndarray:
    logits = windows.mean(axis=1)[:, :6] * 10.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


def signal_of(n: int, seed: int = 0) -> np.ndarray:
    x = (np.cumsum(np.random.default_rng(seed).standard_normal((n, 6)), axis=0) * 0.01).astype(np.float32)
    x[:, 2] += 1.0
    return x


class FakeRouter:
    """A ROUTER for engines and an XSUB for their results, subscribed to everything."""

    def __init__(self, curve_secret: bytes | None = None) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.engines, self.results = free_endpoint(), free_endpoint()
        self.router = ctx.socket(zmq.ROUTER)
        self.xsub = ctx.socket(zmq.XSUB)
        for sock in (self.router, self.xsub):
            sock.setsockopt(zmq.LINGER, 0)
            if curve_secret is not None:
                sock.setsockopt(zmq.CURVE_SECRETKEY, curve_secret)
                sock.setsockopt(zmq.CURVE_SERVER, 1)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.bind(self.engines)
        self.xsub.bind(self.results)
        self.xsub.send(b"\x01")  # subscribe to every topic; resent to each PUB that connects
        self.events: list[Any] = []

    def expect(self, kind: type, timeout_s: float = 30.0) -> tuple[bytes, Any]:
        """The next message of ``kind`` an engine sends (others are skipped), with its routing id."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.router.poll(50):
                identity, *frames = self.router.recv_multipart()
                message = wire.decode(frames)
                if isinstance(message, kind):
                    return identity, message
        raise AssertionError(f"no {kind.__name__} from the engine within {timeout_s} s")

    def welcome(self, identity: bytes, timeout_ms: int = LONG_MS, heartbeat_ms: int = 200) -> None:
        self.send(identity, wire.encode_welcome(wire.Welcome(self.results, heartbeat_ms, timeout_ms)))

    def send(self, identity: bytes, frames: list[bytes] | tuple[bytes, ...]) -> None:
        self.router.send_multipart([identity, *frames])

    def chunk(self, identity: bytes, sid: str, seq: int, x: np.ndarray, t_router: float | None = None) -> None:
        t = time.time() if t_router is None else t_router
        self.send(identity, wire.chunk_frames(t, encode_chunk(sid, seq, x)))

    def collect(self, until: Callable[[list[Any]], bool], timeout_s: float = 60.0) -> list[Any]:
        """Events published through the results endpoint, until ``until(events)``."""
        deadline = time.monotonic() + timeout_s
        while not until(self.events):
            assert time.monotonic() < deadline, f"not seen in {timeout_s} s; last events: {self.events[-3:]}"
            if self.xsub.poll(50):
                self.events.append(decode_event(self.xsub.recv_multipart()))
        return self.events

    def predictions(self) -> list[Prediction]:
        return [e for e in self.events if isinstance(e, Prediction)]

    def close(self) -> None:
        self.router.close()
        self.xsub.close()


@pytest.fixture
def router() -> Iterator[FakeRouter]:
    fake = FakeRouter()
    yield fake
    fake.close()


@contextlib.contextmanager
def engine_joined(router: FakeRouter, engine: Engine | None = None, slot: int = 0,
                  security: ClientSecurity | None = None) -> Iterator[tuple[Engine, threading.Event, list[Any]]]:
    """``serve`` joined to ``router`` in a thread; stopped and joined on exit. Yields the engine,
    its stop event and a list that receives its :class:`ServeSummary`."""
    engine = engine or Engine(fake_proba, ACTIVITIES)
    config = ServerConfig(join=router.engines, slot=slot, stats_interval_s=0.2, flush_s=1.0)
    stop, summaries = threading.Event(), []
    link = join(config, security=security)
    thread = threading.Thread(target=lambda: summaries.append(serve(engine, config, stop, sockets=link)))
    thread.start()
    try:
        yield engine, stop, summaries
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "serve() did not return after stop"


def joined_and_welcomed(router: FakeRouter, **welcome: int) -> tuple[bytes, wire.Hello]:
    identity, hello = router.expect(wire.Hello)
    router.welcome(identity, **welcome)
    return identity, hello


# -- the handshake ----------------------------------------------------------------------------


def test_hello_names_slot_and_incarnation_and_stats_come_through_the_results_endpoint(
        router: FakeRouter) -> None:
    with engine_joined(router, slot=3):
        identity, hello = joined_and_welcomed(router)
        assert (hello.slot, hello.pid) == (3, os.getpid())
        assert len(hello.incarnation) == 32 and identity == wire.routing_id(hello)
        stats = router.collect(lambda ev: any(isinstance(e, StatsEvent) for e in ev))[-1]
        assert isinstance(stats, StatsEvent)
        assert (stats.fields["slot"], stats.fields["incarnation"], stats.fields["rejoins"]) == (
            3, hello.incarnation, 0)


def test_ping_is_answered_with_pong(router: FakeRouter) -> None:
    with engine_joined(router):
        identity, _ = joined_and_welcomed(router)
        router.send(identity, wire.PING_MESSAGE)
        assert router.expect(wire.Pong)[0] == identity


def test_a_clean_stop_says_bye(router: FakeRouter) -> None:
    with engine_joined(router) as (_, stop, summaries):
        identity, _ = joined_and_welcomed(router)
        stop.set()
        assert router.expect(wire.Bye)[0] == identity
    assert isinstance(summaries[0], ServeSummary)


def test_a_stop_before_any_welcome_returns(router: FakeRouter) -> None:
    with engine_joined(router) as (_, stop, summaries):
        router.expect(wire.Hello)  # never welcomed
        stop.set()
    assert summaries[0].windows == 0


# -- chunks -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model() -> Any:
    from harstream.model.classifier import Classifier

    classifier = Classifier.load(runtime="onnx")
    classifier.warm_up(repeats=1)
    return classifier


def hapt_chunks(hapt_dir: Path, n: int = 1600, size: int = 50) -> list[list[bytes]]:
    """Producer frames of two real HAPT recordings' first ``n`` samples, interleaved, ``size`` at a time."""
    from harstream.data.hapt import read_dataset

    recordings = read_dataset(hapt_dir, {2}).recordings[:2]
    frames = []
    for begin in range(0, n, size):
        for rec in recordings:
            frames.append(encode_chunk(rec.stream_id, begin, rec.samples[begin : begin + size]))
    return frames


def test_chunks_through_the_router_give_the_bound_engines_predictions(
        router: FakeRouter, onnx_model: Any, hapt_dir: Path) -> None:
    chunks = hapt_chunks(hapt_dir)
    expected_count = 2 * ((1600 - 128) // 64 + 1)
    bound = _bound_predictions(Engine(onnx_model.predict_proba, onnx_model.labels), chunks, expected_count)
    with engine_joined(router, Engine(onnx_model.predict_proba, onnx_model.labels)):
        identity, _ = joined_and_welcomed(router)
        router.collect(lambda ev: any(isinstance(e, StatsEvent) for e in ev))  # the PUB is subscribed
        sent = time.time()
        for frames in chunks:
            router.send(identity, wire.chunk_frames(sent, frames))
        router.collect(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) >= expected_count)
    joined = {(p.stream, p.seq_end): p for p in router.predictions()}
    assert len(joined) == len(router.predictions()) == expected_count  # each window once
    assert joined.keys() == bound.keys()
    for key, p in joined.items():
        assert (p.label, p.smoothed) == (bound[key].label, bound[key].smoothed), key
        np.testing.assert_allclose(p.probs, bound[key].probs, atol=1e-5)
        np.testing.assert_allclose(p.smoothed_probs or (), bound[key].smoothed_probs or (), atol=1e-5)
        assert p.t_arrival == pytest.approx(sent, abs=1e-6)  # the router's receipt
        assert p.latency_ms >= 0.0


def _bound_predictions(engine: Engine, chunks: list[list[bytes]], count: int) -> dict[tuple[str, int], Prediction]:
    """What a bound engine publishes for ``chunks`` pushed to its PULL socket."""
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), stats_interval_s=0.2, flush_s=1.0)
    stop, sockets = threading.Event(), bind(config)
    thread = threading.Thread(target=serve, args=(engine, config, stop), kwargs={"sockets": sockets})
    thread.start()
    received: dict[tuple[str, int], Prediction] = {}
    try:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        with Subscriber(config.publish) as sub, ctx.socket(zmq.PUSH) as push:
            push.connect(config.ingest)
            deadline = time.monotonic() + 60
            while not isinstance(sub.receive(timeout_s=0.5), StatsEvent):
                assert time.monotonic() < deadline, "the bound engine published no $stats"
            for frames in chunks:
                push.send_multipart(frames)
            while len(received) < count:
                assert time.monotonic() < deadline + 60, f"{len(received)} of {count} predictions"
                event = sub.receive(timeout_s=0.5)
                if isinstance(event, Prediction):
                    received[(event.stream, event.seq_end)] = event
    finally:
        stop.set()
        thread.join(timeout=30)
    return received


def test_latency_counts_from_the_router_and_never_goes_negative(router: FakeRouter) -> None:
    x = signal_of(128)
    with engine_joined(router):
        identity, _ = joined_and_welcomed(router)
        router.collect(lambda ev: any(isinstance(e, StatsEvent) for e in ev))
        router.chunk(identity, "early", 0, x, t_router=time.time() - 2.0)  # two seconds in the router
        router.chunk(identity, "skewed", 0, x, t_router=time.time() + 3600.0)  # a router clock ahead
        router.collect(lambda ev: len([e for e in ev if isinstance(e, Prediction)]) >= 2)
    latency = {p.stream: p.latency_ms for p in router.predictions()}
    assert latency["early"] >= 2000.0
    assert 0.0 <= latency["skewed"] < 2000.0


# -- FORGET -----------------------------------------------------------------------------------


def test_forget_drops_the_stream_and_a_new_chunk_restarts_it(router: FakeRouter) -> None:
    x = signal_of(512)
    with engine_joined(router) as (engine, _, _):
        identity, _ = joined_and_welcomed(router)
        router.collect(lambda ev: any(isinstance(e, StatsEvent) for e in ev))
        for begin in range(0, 256, 32):
            router.chunk(identity, "moved", begin, x[begin : begin + 32])
        router.collect(lambda ev: {127, 191, 255} <= {p.seq_end for p in router.predictions()})
        router.send(identity, wire.encode_forget("moved"))
        deadline = time.monotonic() + 30  # not a PONG: the engine PONGs unasked as well
        while engine.streams.get("moved") is not None:
            assert time.monotonic() < deadline, "the FORGET was not applied"
            time.sleep(0.01)
        for begin in range(256, 512, 32):  # old state would give 319; a new stream at 256 first gives 383
            router.chunk(identity, "moved", begin, x[begin : begin + 32])
        router.collect(lambda ev: 511 in {p.seq_end for p in router.predictions()})
    assert [p.seq_end for p in router.predictions()] == [127, 191, 255, 383, 447, 511]


def test_forget_drops_the_streams_chunks_still_queued_but_not_later_ones(router: FakeRouter) -> None:
    with loop_welcomed(router) as (_, link, loop, identity):
        x = signal_of(96)
        router.chunk(identity, "a", 0, x[:32])
        router.chunk(identity, "b", 0, x[:32])
        router.chunk(identity, "a", 32, x[32:64])
        router.send(identity, wire.encode_forget("a"))
        router.chunk(identity, "a", 64, x[64:])  # after the FORGET: the stream starts again here
        received = 0
        deadline = time.monotonic() + 30
        while received < 5:
            assert time.monotonic() < deadline
            if link.pull.poll(100):
                received += loop.receive(5 - received)
        assert [(a.chunk.stream, a.chunk.seq) for a in loop.queue] == [("b", 0), ("a", 64)]
        assert loop.queued_samples == 2 * 64  # each short chunk counts as MIN_CHUNK_COST
        assert loop.forgotten == 1 and not loop.forgetting


@contextlib.contextmanager
def loop_welcomed(router: FakeRouter, config: ServerConfig | None = None,
                  ) -> Iterator[tuple[Engine, RouterLink, JoinedLoop, bytes]]:
    """A joined engine's loop that the test turns itself, welcomed by ``router`` (the handshake runs in
    a thread); yields the engine, its link, the loop and its routing id; the link is closed on exit."""
    engine = Engine(fake_proba, ACTIVITIES)
    config = config or ServerConfig(join=router.engines)
    link = join(config)
    try:
        loop = JoinedLoop(engine, config, link)
        stop = threading.Event()
        welcomed: list[bool] = []
        thread = threading.Thread(target=lambda: welcomed.append(link.handshake(stop)))
        thread.start()
        identity, _ = router.expect(wire.Hello)
        router.welcome(identity)
        thread.join(timeout=30)
        assert welcomed == [True]
        yield engine, link, loop, identity
    finally:
        link.close()


# -- silence ----------------------------------------------------------------------------------


def test_router_silence_makes_the_engine_rejoin_as_a_new_incarnation_without_state(
        router: FakeRouter) -> None:
    x = signal_of(64)
    with engine_joined(router) as (engine, _, _):
        identity, first = joined_and_welcomed(router, timeout_ms=LONG_MS)
        router.chunk(identity, "s", 0, x)
        router.send(identity, wire.PING_MESSAGE)
        router.expect(wire.Pong)
        deadline = time.monotonic() + 30
        while engine.n_streams == 0:  # filtered after the read that answered the PING
            assert time.monotonic() < deadline
            time.sleep(0.01)
        router.welcome(identity, timeout_ms=300)  # the same router, now expecting PINGs every 300 ms
        second_id, second = router.expect(wire.Hello, timeout_s=30)  # none come
        assert second.slot == first.slot and second.incarnation != first.incarnation
        assert second_id == wire.routing_id(second) and engine.n_streams == 0
        third_id, third = router.expect(wire.Hello, timeout_s=30)  # not welcomed: the same incarnation again
        assert third.incarnation == second.incarnation and third_id == second_id
        router.welcome(third_id, timeout_ms=LONG_MS)
        stats = router.collect(lambda ev: any(isinstance(e, StatsEvent) and e.fields["rejoins"] == 1 for e in ev))
        assert [e for e in stats if isinstance(e, StatsEvent)][-1].fields["incarnation"] == second.incarnation


def test_after_a_hang_stale_messages_are_not_news_and_the_engine_rejoins(router: FakeRouter) -> None:
    with loop_welcomed(router) as (engine, link, loop, identity):
        old = link.incarnation
        router.chunk(identity, "s", 0, signal_of(64))
        assert link.pull.poll(30_000) and loop.receive(1) == 1
        loop.filter()
        assert engine.n_streams == 1
        router.send(identity, wire.PING_MESSAGE)  # sent before the hang, read after it
        assert link.pull.poll(30_000)
        link.deadline = time.monotonic() - 1.0  # as if the process had been stopped past its timeout
        loop.turn(next_stats=time.monotonic() + 60)
        assert link.incarnation != old and engine.n_streams == 0
        deadline = time.monotonic() + 30
        while not router.router.poll(0):  # the new DEALER's HELLO goes once it is connected
            assert time.monotonic() < deadline, "no HELLO from the new incarnation"
            loop.turn(next_stats=time.monotonic() + 60)
        new_id, hello = router.expect(wire.Hello)
        assert hello.incarnation != old and new_id != identity and engine.n_streams == 0
        assert not router.router.poll(200)  # the stale PING went with the old DEALER: no PONG


def test_a_backlog_does_not_hold_back_the_engines_pong(router: FakeRouter) -> None:
    """The router's PING waits behind the chunks queued before it; the turning loop says PONG anyway,
    and the chunks it reads count as hearing from the router."""
    with loop_welcomed(router, ServerConfig(join=router.engines, max_drain=4)) as (_, link, loop, identity):
        incarnation, x = link.incarnation, signal_of(32)
        for seq in range(0, 32 * 40, 32):
            router.chunk(identity, "s", seq, x)
        router.send(identity, wire.PING_MESSAGE)  # behind 40 chunks: a turn reads at most 4
        assert link.pull.poll(30_000)
        assert not router.router.poll(0)  # nothing came from the engine since its HELLO
        for _ in range(2):
            link.next_pong = 0.0  # as if heartbeat_ms had passed since the last PONG
            before = link.deadline
            loop.turn(next_stats=time.monotonic() + 60)
            router.expect(wire.Pong)  # the PING is still queued: this PONG was not asked for
            assert link.incarnation == incarnation
        while not loop.receive(4):  # the turn may have gathered instead of reading
            assert link.pull.poll(30_000)
        assert link.deadline > before  # a CHUNK is news from the router as much as a PING


def test_a_full_receive_queue_keeps_the_engines_connection(router: FakeRouter) -> None:
    """libzmq stops reading a connection whose receive queue is full: a ZMTP heartbeat on the DEALER
    would time that live connection out (and the router find the engine unreachable)."""
    router.router.setsockopt(zmq.HEARTBEAT_IVL, 200)  # as the real router's, but only the engine's
    router.router.setsockopt(zmq.HEARTBEAT_TIMEOUT, LONG_MS)  # own timeout could drop the connection
    router.router.setsockopt(zmq.SNDHWM, 10)
    with loop_welcomed(router, ServerConfig(join=router.engines, join_hwm=10)) as (_, link, _, identity):
        monitor = link.pull.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        frames, sent = [wire.CHUNK, bytes(8), b"s", bytes(65536)], 0
        while sent < 100_000:  # fill the engine's queue, both TCP buffers and the router's
            try:
                router.router.send_multipart([identity, *frames], zmq.NOBLOCK)
            except zmq.Again:
                break
            sent += 1
        hold = time.monotonic() + 2.5 * wire.DEFAULT_TIMEOUT_MS / 1000  # the loop turns, reads nothing
        while time.monotonic() < hold:
            link.beat(time.monotonic())
            time.sleep(0.05)
        assert not monitor.poll(0), "the engine's connection to the router was dropped"
        received = 0
        while received < sent:
            assert link.pull.poll(30_000), f"{received} of {sent} messages arrived"
            received += link.pull.recv_multipart()[0] == wire.CHUNK
        link.pull.disable_monitor()
        monitor.close(linger=0)


# -- keys -------------------------------------------------------------------------------------


def test_with_keys_both_sockets_are_curve_clients_of_the_router(tmp_path: Path) -> None:
    router_public, router_secret = make_key_pair(tmp_path, "router")
    _, engine_secret = make_key_pair(tmp_path, "engine")
    router = FakeRouter(curve_secret=load_key_pair(router_secret)[1])
    try:
        with engine_joined(router, security=ClientSecurity(engine_secret, router_public)):
            identity, _ = joined_and_welcomed(router)
            router.collect(lambda ev: any(isinstance(e, StatsEvent) for e in ev))
            router.chunk(identity, "secret", 0, signal_of(128))
            router.collect(lambda ev: any(isinstance(e, Prediction) for e in ev))
    finally:
        router.close()


def test_join_key_options_are_checked(tmp_path: Path) -> None:
    from harstream.cli.main import build_parser
    from harstream.cli.serve import _security

    public, secret = make_key_pair(tmp_path, "k")

    def security(*argv: str) -> Any:
        return _security(build_parser(("serve",)).parse_args(["serve", *argv]))

    assert isinstance(security("--join", "tcp://r:5557", "--server-key", str(secret), "--router-key", str(public)),
                      ClientSecurity)
    assert security("--join", "tcp://r:5557") is None
    with pytest.raises(SecurityError, match="--router-key is for an engine that joins"):
        security("--router-key", str(public))
    with pytest.raises(SecurityError, match="--server-key needs --router-key"):
        security("--join", "tcp://r:5557", "--server-key", str(secret))
    with pytest.raises(SecurityError, match="with --join the router admits"):
        security("--join", "tcp://r:5557", "--allow-producers", str(public))


@pytest.mark.parametrize("option", [["--slot", "3"], ["--slot=0"], ["--join-hwm", "100"]])
def test_join_options_without_join_are_refused(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from harstream.cli.main import main

    assert main(["serve", *option, "--runtime", "onnx", "--no-model-process"]) == 2
    name = option[0].split("=")[0]
    assert f"error: {name} needs --join: it is for an engine that joins a router" in \
        " ".join(capsys.readouterr().err.split())
