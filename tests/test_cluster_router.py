"""The router of issue 22 against fake engines: plain DEALER and PUB sockets speaking the cluster wire.

The router runs on a thread of this process (loopback endpoints only); each fake engine
is driven by the test (:meth:`FakeEngine.pump`), so a hang is an engine the test stops
pumping and a crash one whose sockets it closes. Waits are caps, never thresholds.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from harstream.cluster.config import RouterConfig
from harstream.cluster.rendezvous import assign, moved
from harstream.cluster.router import run_router
from harstream.cluster.security import RouterSecurity
from harstream.protocol import ErrorEvent, Prediction, StatsEvent, encode_chunk, encode_prediction, encode_stats
from harstream.serve import cluster_wire as wire
from harstream.serve.client import Subscriber
from harstream.serve.security import ClientSecurity, ServerSecurity, make_key_pair, secure_client

CAP_S = 30.0
"""Longest any condition is waited for (a cap: a healthy run takes milliseconds)."""


class FakeEngine:
    """An engine reduced to the wire: says HELLO, answers PINGs, records CHUNKs and FORGETs."""

    def __init__(self, engines: str, slot: int, incarnation: str | None = None,
                 keys: ClientSecurity | None = None, rcvhwm: int = 1000, pid: int = 4242) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.hello = wire.Hello(slot, incarnation or uuid.uuid4().hex, pid, "fake")
        self.keys = keys
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.setsockopt(zmq.ROUTING_ID, wire.routing_id(self.hello))
        self.dealer.setsockopt(zmq.RCVHWM, rcvhwm)
        if keys is not None:
            secure_client(self.dealer, keys)
        self.dealer.connect(engines)
        self.dealer.send_multipart(wire.encode_hello(self.hello))
        self.pub: zmq.Socket[bytes] | None = None
        self.welcomed = False
        self.answering = True
        self.chunks: list[tuple[str, int, float, list[bytes]]] = []
        self.forgotten: list[str] = []

    @property
    def slot(self) -> int:
        return self.hello.slot

    def pump(self) -> None:
        """Handle what has arrived (PONG to each PING unless hung)."""
        while self.dealer.poll(0):
            frames = self.dealer.recv_multipart()
            message = wire.decode(frames)
            if isinstance(message, wire.Welcome):
                if self.pub is None:
                    self.pub = zmq.Context.instance().socket(zmq.PUB)
                    self.pub.setsockopt(zmq.LINGER, 0)
                    if self.keys is not None:
                        secure_client(self.pub, self.keys)
                    self.pub.connect(message.results)
                self.welcomed = True
            elif isinstance(message, wire.Ping):
                if self.answering:
                    self.dealer.send_multipart(wire.PONG_MESSAGE)
            elif isinstance(message, wire.RoutedChunk):
                header = json.loads(message.frames[1])
                self.chunks.append((message.frames[0].decode(), header.get("seq"), message.t_router,
                                    message.frames))
            elif isinstance(message, wire.Forget):
                self.forgotten.append(message.stream)

    def streams(self) -> set[str]:
        return {stream for stream, *_ in self.chunks}

    def publish(self, frames: list[bytes]) -> None:
        assert self.pub is not None
        self.pub.send_multipart(frames)

    def close(self) -> None:
        self.dealer.close(linger=0)
        if self.pub is not None:
            self.pub.close(linger=0)


class Cluster:
    """A router on a thread, fake engines, a producer and a subscriber."""

    def __init__(self, free_endpoint: Callable[[], str], security: RouterSecurity | None = None,
                 client: ClientSecurity | None = None, viewer: ClientSecurity | None = None,
                 **options: Any) -> None:
        self.config = RouterConfig(ingest=free_endpoint(), publish=free_endpoint(), engines=free_endpoint(),
                                   results=free_endpoint(), **{"heartbeat_ms": 50, "timeout_ms": 400,
                                                               "stats_interval_s": 0.2, **options})
        self.stop = threading.Event()
        self.stats: list[dict[str, Any]] = []
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()  # its own: one ZAP handler per context
        self.thread = threading.Thread(target=run_router, args=(self.config, security), daemon=True,
                                       kwargs={"stop": self.stop, "say": lambda line: None,
                                               "on_stats": self.stats.append, "context": self.context})
        self.thread.start()
        self.engines: list[FakeEngine] = []
        self.push = self.producer(client)
        self.sub = Subscriber(self.config.publish, security=viewer).open()
        self.events: list[Any] = []
        self.wait(lambda: any(isinstance(e, StatsEvent) for e in self.events), "the router's first $stats")

    def producer(self, keys: ClientSecurity | None) -> zmq.Socket[bytes]:
        push: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            secure_client(push, keys)
        push.connect(self.config.ingest)
        return push

    def add(self, slot: int, incarnation: str | None = None, keys: ClientSecurity | None = None,
            rcvhwm: int = 1000) -> FakeEngine:
        engine = FakeEngine(self.config.engines, slot, incarnation, keys, rcvhwm)
        self.engines.append(engine)
        self.wait(lambda: engine.welcomed and self.live_slots().count(slot) == 1, f"engine {slot} welcomed")
        return engine

    def live_slots(self) -> list[int]:
        return [row["slot"] for row in self.stats[-1]["engines"]] if self.stats else []

    def pump(self) -> None:
        for engine in self.engines:
            engine.pump()
        while (event := self.sub.receive(timeout_s=0.001)) is not None:
            self.events.append(event)

    def wait(self, condition: Callable[[], bool], what: str, action: Callable[[], None] = lambda: None) -> None:
        """Pump (doing ``action`` each round) until ``condition``; fail after :data:`CAP_S`."""
        deadline = time.monotonic() + CAP_S
        while not condition():
            assert time.monotonic() < deadline, f"{what}: not within the {CAP_S:g} s cap"
            assert self.thread.is_alive(), "the router stopped"
            action()
            self.pump()
            time.sleep(0.002)

    def send(self, stream: str, seq: int, n: int = 32) -> list[bytes]:
        frames = encode_chunk(stream, seq, np.full((n, 6), seq % 7, np.float32))
        self.push.send_multipart(frames)
        return frames

    def errors(self, code: str) -> list[ErrorEvent]:
        return [e for e in self.events if isinstance(e, ErrorEvent) and e.code == code]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.context.term()
        for engine in self.engines:
            engine.close()
        self.push.close(linger=0)
        self.sub.close()


@pytest.fixture
def cluster(free_endpoint: Callable[[], str]) -> Iterator[Cluster]:
    with contextlib.closing(Cluster(free_endpoint)) as c:
        yield c
    assert not c.thread.is_alive()


STREAMS = [f"phone-{i}" for i in range(60)]


def feed(cluster: Cluster, seqs: range, streams: list[str] = STREAMS) -> None:
    for seq in seqs:
        for stream in streams:
            cluster.send(stream, seq)


def received(cluster: Cluster) -> int:
    return sum(len(e.chunks) for e in cluster.engines)


def test_each_stream_goes_whole_and_in_order_to_its_rendezvous_engine(cluster: Cluster) -> None:
    engines = [cluster.add(slot) for slot in range(3)]
    sent: dict[str, list[list[bytes]]] = {stream: [] for stream in STREAMS}
    for seq in range(0, 5 * 32, 32):
        for stream in STREAMS:
            sent[stream].append(cluster.send(stream, seq))
    cluster.wait(lambda: received(cluster) == 5 * len(STREAMS), "every chunk routed")
    owners = assign(STREAMS, [0, 1, 2])
    for engine in engines:
        assert engine.streams() == {s for s in STREAMS if owners[s] == engine.slot}
        for stream in engine.streams():
            frames = [f for s, _, _, f in engine.chunks if s == stream]
            assert frames == sent[stream]  # unchanged, in order
    t_router = [t for e in engines for _, _, t, _ in e.chunks]
    assert all(abs(t - time.time()) < 3600 for t in t_router)  # a unix time (wall clock), not monotonic
    assert not cluster.errors("moved") and not engines[0].forgotten


def test_results_are_proxied_and_the_engines_stats_become_one_cluster_stats(cluster: Cluster) -> None:
    engines = [cluster.add(slot) for slot in range(2)]
    cluster.wait(lambda: all(e.pub is not None for e in engines), "engines connected to the results")
    prediction = Prediction("phone-1", 127, "SITTING", (0.5, 0.5), "SITTING", 1.0, 1.1, engine="e0")
    for engine, windows in zip(engines, (10, 32), strict=True):
        engine_stats = {"engine": f"run{engine.slot}", "slot": engine.slot,
                        "incarnation": engine.hello.incarnation, "streams": 3, "windows": windows,
                        "windows_per_s": 1.5, "rejected": 1, "uptime_s": 5.0, "t": time.time(),
                        "latency_ms": {"p50": 2.0 + engine.slot, "p99": 9.0, "max": 10.0},
                        "labels": ["A", "B"], "chunks": 7}
        frames = encode_stats(engine_stats)  # a PUB drops what it sends before the connection: repeat

        def in_row(slot: int = engine.slot, windows: int = windows) -> bool:
            return _row(cluster, slot).get("windows") == windows

        def publish(engine: FakeEngine = engine, frames: list[bytes] = frames) -> None:
            engine.publish(frames)

        cluster.wait(in_row, "the engine's $stats in its row", action=publish)
    cluster.wait(lambda: any(isinstance(e, Prediction) for e in cluster.events), "a prediction through the proxy",
                 action=lambda: engines[0].publish(encode_prediction(prediction)))
    engine_ids = {e.fields["engine"] for e in cluster.events if isinstance(e, StatsEvent)}
    assert engine_ids == {cluster.stats[-1]["engine"]}  # only the router's own $stats reach subscribers
    stats = cluster.stats[-1]
    assert (stats["windows"], stats["streams"], stats["rejected"], stats["chunks"]) == (42, 6, 2, 14)
    assert stats["latency_ms"] == {"p50": 3.0, "p99": 9.0, "max": 10.0} and stats["labels"] == ["A", "B"]
    assert [row["engine"] for row in stats["engines"]] == ["run0", "run1"]
    assert stats["router"]["live_engines"] == 2 and stats["router"]["joins"] == 2


def _row(cluster: Cluster, slot: int) -> dict[str, Any]:
    if not cluster.stats:
        return {}
    return next((row for row in cluster.stats[-1]["engines"] if row["slot"] == slot), {})


def test_a_subscription_flows_up_to_the_engines(cluster: Cluster) -> None:
    engine = cluster.add(0)
    cluster.wait(lambda: engine.pub is not None, "engine connected to the results")
    with Subscriber(cluster.config.publish, streams=["only-this"], engine_topics=False) as sub:
        mine = Prediction("only-this", 127, "A", (1.0,), "A", 1.0, 1.1)
        other = Prediction("other", 127, "A", (1.0,), "A", 1.0, 1.1)
        got: list[Any] = []
        deadline = time.monotonic() + CAP_S
        while not got:
            assert time.monotonic() < deadline, "the subscribed stream never came"
            engine.publish(encode_prediction(other))
            engine.publish(encode_prediction(mine))
            got += [e for e in sub.events(timeout_s=0.05)]
        assert {e.stream for e in got} == {"only-this"}


def test_a_crashed_engine_moves_only_its_streams_and_each_move_is_reported(cluster: Cluster) -> None:
    engines = [cluster.add(slot) for slot in range(3)]
    feed(cluster, range(0, 64, 32))
    cluster.wait(lambda: received(cluster) == 2 * len(STREAMS), "first chunks routed")
    crashed = engines[1]
    lost = set(crashed.streams())
    crashed.close()  # its connection closes, as when the process is killed
    cluster.engines.remove(crashed)
    cluster.wait(lambda: 1 not in cluster.live_slots(), "engine 1 dropped")
    feed(cluster, range(64, 128, 32))
    cluster.wait(lambda: len(cluster.errors("moved")) == len(lost), "one moved report per lost stream")
    cluster.wait(lambda: received(cluster) == 4 * len(STREAMS) - 2 * len(lost), "later chunks routed")
    after = assign(STREAMS, [0, 2])
    for engine in engines[::2]:
        assert engine.streams() == {s for s in STREAMS if after[s] == engine.slot}
    reports = {e.stream: e.detail for e in cluster.errors("moved")}
    assert set(reports) == lost == moved(STREAMS, [0, 1, 2], [0, 2])
    assert all(re.search(rf"from engine 1\.\w+ \(engine 1\.\w+ lost: (unreachable|timeout)\) to engine "
                         rf"{after[str(s)]}\.\w+ at seq 64:", detail) for s, detail in reports.items())
    event = next(e for e in cluster.stats[-1]["router"]["events"] if e["kind"] == "lost")
    assert event["slot"] == 1 and event["reason"] in ("unreachable", "timeout")


def test_a_moved_stream_that_sends_nothing_more_is_reported_when_forgotten(
        free_endpoint: Callable[[], str]) -> None:
    with contextlib.closing(Cluster(free_endpoint, idle_timeout_s=1.0)) as cluster:
        engines = [cluster.add(slot) for slot in range(2)]
        feed(cluster, range(0, 32, 32))
        cluster.wait(lambda: received(cluster) == len(STREAMS), "first chunks routed")
        lost = engines[1].streams()
        engines[1].close()  # crashed with its streams' last chunks: no chunk will announce their moves
        cluster.engines.remove(engines[1])
        cluster.wait(lambda: len(cluster.errors("moved")) == len(lost), "one moved report per lost stream")
        assert {e.stream for e in cluster.errors("moved")} == lost
        assert all("silent since" in e.detail and "forgotten after 1 s" in e.detail
                   for e in cluster.errors("moved"))


def test_a_move_not_yet_announced_is_reported_when_the_router_stops(free_endpoint: Callable[[], str]) -> None:
    with contextlib.closing(Cluster(free_endpoint)) as cluster:
        engines = [cluster.add(slot) for slot in range(2)]
        feed(cluster, range(0, 32, 32))
        cluster.wait(lambda: received(cluster) == len(STREAMS), "first chunks routed")
        lost = engines[1].streams()
        engines[1].close()
        cluster.engines.remove(engines[1])
        cluster.wait(lambda: 1 not in cluster.live_slots(), "engine 1 dropped")
        assert not cluster.errors("moved")  # the streams sent nothing since
        cluster.stop.set()
        cluster.thread.join(timeout=CAP_S)
        deadline = time.monotonic() + CAP_S
        while len(cluster.errors("moved")) < len(lost) and time.monotonic() < deadline:
            cluster.pump()
        assert {e.stream for e in cluster.errors("moved")} == lost
        assert all("the router stopped" in e.detail for e in cluster.errors("moved"))


def test_a_hung_engine_is_dropped_by_heartbeat_and_says_so(cluster: Cluster) -> None:
    engines = [cluster.add(slot) for slot in range(3)]
    feed(cluster, range(0, 32, 32))
    cluster.wait(lambda: received(cluster) == len(STREAMS), "first chunks routed")
    engines[2].answering = False  # alive and connected, but silent
    cluster.wait(lambda: 2 not in cluster.live_slots(), "engine 2 dropped")
    event = next(e for e in cluster.stats[-1]["router"]["events"] if e["kind"] == "lost")
    assert (event["slot"], event["reason"]) == (2, "timeout")
    assert event["silent_ms"] >= cluster.config.timeout_ms  # the rule: dropped once silent that long
    feed(cluster, range(32, 64, 32))
    moved_streams = moved(STREAMS, [0, 1, 2], [0, 1])
    cluster.wait(lambda: len(cluster.errors("moved")) == len(moved_streams), "moves reported")
    assert {e.stream for e in cluster.errors("moved")} == moved_streams
    assert all("lost: timeout" in e.detail for e in cluster.errors("moved"))
    # it answers again: it is a stranger until its HELLO, then its streams come back to it
    engines[2].answering = True
    engines[2].dealer.send_multipart(wire.encode_hello(engines[2].hello))
    cluster.wait(lambda: 2 in cluster.live_slots(), "engine 2 back")
    feed(cluster, range(64, 96, 32))
    cluster.wait(lambda: len(cluster.errors("moved")) == 2 * len(moved_streams), "moves back reported")


def test_a_fourth_engine_takes_exactly_the_predicted_streams_and_their_old_engines_forget_them(
        cluster: Cluster) -> None:
    engines = [cluster.add(slot) for slot in range(3)]
    feed(cluster, range(0, 64, 32))
    cluster.wait(lambda: received(cluster) == 2 * len(STREAMS), "first chunks routed")
    fourth = cluster.add(3)
    predicted = moved(STREAMS, [0, 1, 2], [0, 1, 2, 3])
    assert 0 < len(predicted) < len(STREAMS) / 2
    before = assign(STREAMS, [0, 1, 2])
    cluster.wait(lambda: sum(len(e.forgotten) for e in engines) == len(predicted), "FORGETs sent")
    for engine in engines:
        assert set(engine.forgotten) == {s for s in predicted if before[s] == engine.slot}
    feed(cluster, range(64, 96, 32))
    cluster.wait(lambda: received(cluster) == 3 * len(STREAMS), "later chunks routed")
    assert fourth.streams() == predicted
    assert {e.stream for e in cluster.errors("moved")} == predicted
    assert all("(engine 3." in e.detail and "joined)" in e.detail for e in cluster.errors("moved"))


def test_with_no_engine_live_each_stream_reports_its_loss_once_and_counts_it(cluster: Cluster) -> None:
    engine = cluster.add(0)
    feed(cluster, range(0, 32, 32), STREAMS[:5])
    cluster.wait(lambda: received(cluster) == 5, "first chunks routed")
    engine.dealer.send_multipart(wire.BYE_MESSAGE)
    cluster.wait(lambda: not cluster.live_slots(), "the engine said BYE")
    feed(cluster, range(32, 128, 32), STREAMS[:5])  # 3 chunks each, none routable
    cluster.wait(lambda: cluster.stats[-1]["router"]["no_engine"] == 15, "lost chunks counted")
    assert sorted(str(e.stream) for e in cluster.errors("no_engine")) == sorted(STREAMS[:5])
    assert all("at seq 32 was dropped" in e.detail for e in cluster.errors("no_engine"))
    back = cluster.add(1)
    feed(cluster, range(128, 160, 32), STREAMS[:5])
    cluster.wait(lambda: len(back.chunks) == 5 and len(cluster.errors("moved")) == 5, "streams back")
    assert all("at seq 128" in e.detail and "3 chunk(s) dropped while no engine was live" in e.detail
               for e in cluster.errors("moved"))


def test_a_restarted_engine_gets_its_slots_streams_back(cluster: Cluster) -> None:
    engines = [cluster.add(slot) for slot in range(2)]
    feed(cluster, range(0, 32, 32))
    cluster.wait(lambda: received(cluster) == len(STREAMS), "first chunks routed")
    mine = engines[0].streams()
    restarted = cluster.add(0)  # a new incarnation of slot 0 (the old one never said BYE)
    feed(cluster, range(32, 64, 32))
    cluster.wait(lambda: received(cluster) == 2 * len(STREAMS), "later chunks routed")
    assert restarted.streams() == mine and len(engines[0].chunks) == len(mine)
    assert {e.stream for e in cluster.errors("moved")} == mine
    assert all("lost: replaced" in e.detail for e in cluster.errors("moved"))


def test_a_second_engine_started_with_a_taken_slot_waits_until_the_slot_is_free(cluster: Cluster) -> None:
    first = cluster.add(0)
    feed(cluster, range(0, 32, 32))
    cluster.wait(lambda: received(cluster) == len(STREAMS), "first chunks routed")
    second = FakeEngine(cluster.config.engines, 0, pid=4343)  # another process, the same --slot
    cluster.engines.append(second)

    def hello_again() -> None:  # as a waiting engine does, every timeout
        second.dealer.send_multipart(wire.encode_hello(second.hello))

    rounds = len(cluster.stats)
    cluster.wait(lambda: len(cluster.stats) >= rounds + 5, "five more $stats", action=hello_again)
    assert not second.welcomed and cluster.stats[-1]["router"]["losses"] == {}  # no flapping between the two
    assert _row(cluster, 0)["incarnation"] == first.hello.incarnation
    feed(cluster, range(32, 64, 32))
    cluster.wait(lambda: len(first.chunks) == 2 * len(STREAMS), "the first engine keeps its streams")
    first.close()  # once it is gone, the waiting engine takes the slot
    cluster.engines.remove(first)
    cluster.wait(lambda: second.welcomed and _row(cluster, 0).get("incarnation") == second.hello.incarnation,
                 "the second engine welcomed", action=hello_again)


def test_a_bad_stream_id_goes_on_to_an_engine_unremembered(cluster: Cluster) -> None:
    engine = cluster.add(0)
    bad = [b"no spaces allowed", b'{"v":1,"seq":0,"rate":50}', bytes(24)]
    cluster.push.send_multipart(bad)
    cluster.wait(lambda: [frames for *_, frames in engine.chunks] == [bad], "the bad chunk forwarded")
    cluster.wait(lambda: cluster.stats[-1]["router"]["chunks_in"] == 1, "counted")
    assert cluster.stats[-1]["router"]["streams"] == 0  # the engine reports it (stream_id); not remembered


def test_with_keys_only_allowed_engines_join_and_a_stream_belongs_to_the_key_that_opened_it(
        free_endpoint: Callable[[], str], tmp_path: Path) -> None:
    keys: dict[str, tuple[Path, Path]] = {}
    for folder, names in (("router", ["router"]), ("engines", ["engine"]), ("strangers", ["stranger"]),
                          ("producers", ["alice", "bob"]), ("subscribers", ["viewer"])):
        (tmp_path / folder).mkdir()
        for name in names:
            keys[name] = make_key_pair(tmp_path / folder, name)
    router_public = keys["router"][0]

    def client(name: str) -> ClientSecurity:
        return ClientSecurity(keys[name][1], router_public)

    security = RouterSecurity(ServerSecurity(keys["router"][1], tmp_path / "producers", tmp_path / "subscribers"),
                              engines=tmp_path / "engines")
    cluster = Cluster(free_endpoint, security=security, client=client("alice"), viewer=client("viewer"))
    try:
        stranger = FakeEngine(cluster.config.engines, 1, keys=client("stranger"))
        cluster.engines.append(stranger)
        engine = cluster.add(0, keys=client("engine"))
        bob = cluster.producer(client("bob"))
        cluster.send("phone-1", 0)
        cluster.wait(lambda: len(engine.chunks) == 1, "alice's chunk routed")
        bob.send_multipart(encode_chunk("phone-1", 32, np.zeros((32, 6), np.float32)))
        bob.send_multipart(encode_chunk("phone-2", 0, np.zeros((32, 6), np.float32)))
        cluster.wait(lambda: len(engine.chunks) == 2 and bool(cluster.errors("not_owner")), "bob's chunks")
        assert [s for s, *_ in engine.chunks] == ["phone-1", "phone-2"]
        assert [e.stream for e in cluster.errors("not_owner")] == ["phone-1"]
        rounds = len(cluster.stats)
        cluster.wait(lambda: len(cluster.stats) >= rounds + 5, "five more $stats")
        assert not stranger.welcomed and cluster.live_slots() == [0]  # an engine key not allowed never joins
        assert cluster.stats[-1]["router"]["not_owner"] == 1
        bob.close(linger=0)
    finally:
        cluster.close()


def test_an_engine_far_behind_loses_chunks_reported_and_is_not_taken_for_lost(
        free_endpoint: Callable[[], str]) -> None:
    cluster = Cluster(free_endpoint, engine_hwm=100, timeout_ms=10_000)
    chunks = 20_000  # about 30 MB: more than the engine's pipe and the TCP buffers hold unread
    try:
        engine = cluster.add(0, rcvhwm=1)  # its socket reads no further ahead than one message
        for seq in range(0, chunks * 32, 32):
            cluster.send("phone-1", seq)
        time.sleep(0.5)  # the engine reads nothing meanwhile: the PINGs find its pipe full too
        cluster.wait(lambda: len(engine.chunks) + len(cluster.errors("overloaded")) == chunks, "chunks accounted")
        cluster.wait(lambda: cluster.stats[-1]["router"]["chunks_in"] == chunks, "every chunk counted")
        router = cluster.stats[-1]["router"]
        assert router["overloaded"] == len(cluster.errors("overloaded")) > 0 and router["unsent"] > 0
        assert router["losses"] == {} and cluster.live_slots() == [0]  # behind, not lost
    finally:
        cluster.close()


def test_the_help_names_the_routers_key_and_the_four_options_keys_need() -> None:
    import argparse

    from harstream.cli import router

    parser = argparse.ArgumentParser(prog="harstream router")
    router.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "--server-key FILE the router's secret key file" in text
    assert "all four sockets; off unless these three options and --allow-engines are all given" in text
