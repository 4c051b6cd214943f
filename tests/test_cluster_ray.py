"""``harstream cluster`` on a real local Ray (issue 22): what tests/test_cluster_failover.py shows
without Ray, with the engines as Ray actors.

One Ray (``ray.init`` in the test), one cluster as ``harstream cluster up`` makes it (controller,
router pinned to this node, engine actors), fed real HAPT recordings through the router's public
ingest endpoint, while: an engine actor's process is SIGKILLed (Ray restarts it, it rejoins);
``scale`` adds an engine; an engine actor's process is SIGSTOPped until the router drops it by
heartbeat, then SIGCONTed (the same process rejoins). Each change after the kill moves exactly the
streams rendezvous hashing predicts; no window is published twice; the streams never moved lose
nothing and get no ``$error``; every loss is reported. Runs in a loopback-only network namespace
(tests/netns.py): Ray's processes then use 127.0.0.1 and no test traffic leaves loopback.
Waits are caps, never thresholds; the figures are printed (``-rP``) and go to docs/scaling.md."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from netns import loopback_only

from harstream.cluster.config import RouterConfig
from harstream.cluster.ray_config import ClusterConfig
from harstream.cluster.ray_controller import ClusterPlan
from harstream.cluster.ray_router import RouterSpec
from harstream.cluster.rendezvous import moved as predicted_moves
from harstream.cluster.rendezvous import owner
from harstream.data.hapt import read_dataset
from harstream.errors import HarstreamError
from harstream.loopback import free_endpoint, free_port
from harstream.protocol import ErrorEvent, Prediction, StatsEvent, encode_chunk
from harstream.serve.client import Subscriber
from harstream.serve.run import ModelSettings
from harstream.signal.windows import window_ends

ENGINES = 3
KILLED = 1
"""The slot whose engine process is SIGKILLed (Ray restarts it)."""
ADDED = ENGINES
"""The slot ``scale`` adds."""
HUNG = 2
"""The slot whose engine process is SIGSTOPped, then SIGCONTed (it rejoins; Ray restarts nothing)."""
STREAMS = 24
CHUNK = 50
"""Samples per chunk (1 s at 50 Hz)."""
ROUND_S = 0.1
"""Pause between rounds of one chunk per stream (10 times real time)."""
AFTER_REJOIN = 30
"""Rounds sent after the restarted engine is back in the router's $stats."""
PAUSE_AFTER = 80
"""Rounds after which the streams pause until the killed engine is back."""
AFTER_CHANGE = 10
"""Rounds sent after each later change (engine added, hung, resumed): a re-warm and then some."""
ROUNDS = PAUSE_AFTER + AFTER_REJOIN + 3 * AFTER_CHANGE
"""The most rounds a run sends (each stream has samples for them)."""
CAP_S = 600.0
"""Longest any phase may take (a cap: a healthy run takes a few minutes)."""


class Watcher:
    """Everything the router publishes, sorted as it comes."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.windows: dict[str, set[int]] = defaultdict(set)
        self.duplicates: list[tuple[str, int]] = []
        self.errors: list[ErrorEvent] = []
        self.incarnations: dict[int, list[str]] = defaultdict(list)
        self.last_stats: dict[str, Any] = {}
        self.router_events: list[dict[str, Any]] = []
        """The router's membership events (joined, lost), each once, from every $stats seen."""

    def drain(self, wait_s: float = 0.0) -> None:
        deadline = time.monotonic() + wait_s
        while (event := self.sub.receive(timeout_s=max(0.0, deadline - time.monotonic()))) is not None:
            if isinstance(event, Prediction):
                if event.seq_end in self.windows[event.stream]:
                    self.duplicates.append((event.stream, event.seq_end))
                self.windows[event.stream].add(event.seq_end)
            elif isinstance(event, ErrorEvent):
                self.errors.append(event)
            elif isinstance(event, StatsEvent):
                self._stats(event.fields)
            if time.monotonic() >= deadline:
                return

    def _stats(self, fields: dict[str, Any]) -> None:
        self.last_stats = fields
        for row in fields.get("engines", []):
            seen = self.incarnations[row["slot"]]
            if row["incarnation"] not in seen:
                seen.append(row["incarnation"])
        events = fields.get("router", {}).get("events", [])
        self.router_events += [e for e in events if e not in self.router_events]

    def live_slots(self) -> set[int]:
        return {row["slot"] for row in self.last_stats.get("engines", [])}

    def lost(self, slot: int, incarnation: str) -> dict[str, Any] | None:
        """The router's event dropping that engine, once it has published one."""
        return next((e for e in self.router_events if e["kind"] == "lost" and e["slot"] == slot
                     and e["incarnation"] == incarnation), None)


@dataclass
class Feed:
    """The streams, sent one chunk each a round through the router's ingest, and what came back."""

    streams: dict[str, np.ndarray]
    push: zmq.Socket[bytes]
    watch: Watcher
    deadline: float = field(default_factory=lambda: time.monotonic() + CAP_S)
    sent: dict[str, int] = field(default_factory=dict)

    def round(self) -> None:
        for sid, samples in self.streams.items():
            start = self.sent.get(sid, 0)
            self.push.send_multipart(encode_chunk(sid, start, samples[start:start + CHUNK]))
            self.sent[sid] = start + CHUNK

    def rounds(self, count: int) -> None:
        for _ in range(count):
            self.round()
            self.watch.drain(ROUND_S)

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Drain until ``condition()``; every phase shares the one cap."""
        while not condition():
            self.watch.drain(0.2)
            assert time.monotonic() < self.deadline, f"{what}: not within the {CAP_S:g} s cap"

    def barrier(self) -> None:
        """Until every stream's window ending at its last sample sent is published."""
        last = {sid: int(window_ends(0, n)[-1]) for sid, n in self.sent.items()}
        self.wait(lambda: all(max(self.watch.windows[sid], default=-1) >= end for sid, end in last.items()),
                  "every stream's latest window")

    def expected(self) -> dict[str, set[int]]:
        return {sid: set(window_ends(0, n).tolist()) for sid, n in self.sent.items()}


def _streams(hapt_dir: Path) -> dict[str, np.ndarray]:
    """STREAMS streams of real HAPT samples (recordings of subjects 2 and 4, each offset its own way)."""
    recordings = read_dataset(hapt_dir, {2, 4}).recordings
    streams = {}
    for i in range(STREAMS):
        rec = recordings[i % len(recordings)]
        start = (i // len(recordings)) * 1000
        streams[f"ray.{i:02d}.{rec.stream_id}"] = rec.samples[start:]
    return streams


@pytest.mark.slow
@loopback_only
def test_killed_added_and_hung_engines_under_ray_move_only_the_predicted_streams(hapt_dir: Path) -> None:
    """SIGKILL (Ray restarts the engine, it rejoins), ``scale`` N+1, SIGSTOP then SIGCONT (it rejoins)."""
    import ray

    from harstream.cluster import ray_control

    started = time.monotonic()
    # address="local": a new Ray of its own, never one a stale /tmp/ray/ray_current_cluster names
    ray.init(address="local", namespace="harstream", num_cpus=ENGINES + 1, log_to_driver=False)
    figures = {"ray_init_s": time.monotonic() - started}
    try:
        _scenario(hapt_dir, figures)
    finally:
        with contextlib.suppress(HarstreamError):  # not up: nothing to stop
            ray_control.down(ClusterConfig(), say=lambda _: None)
        ray.shutdown()
    print("figures:", {k: round(v, 2) for k, v in figures.items()})


def _scenario(hapt_dir: Path, figures: dict[str, float]) -> None:
    from harstream.cluster import ray_control

    ingest, publish = free_endpoint(), free_endpoint()
    router = RouterConfig(ingest=ingest, publish=publish, engines=f"tcp://127.0.0.1:{free_port()}",
                          results=f"tcp://127.0.0.1:{free_port()}")
    plan = ClusterPlan(cluster=ClusterConfig(engines=ENGINES, engine_cpus=1.0), router=RouterSpec(router),
                       node_id="", model=ModelSettings(runtime="onnx", model_process=False))
    started = time.monotonic()
    described = ray_control.up(plan, say=lambda _: None)
    figures["up_s"] = time.monotonic() - started
    assert [e["state"] for e in described["engines"]] == ["serving"] * ENGINES
    pids = {e["slot"]: e["pid"] for e in described["engines"]}
    streams = _streams(hapt_dir)
    assert min(len(samples) for samples in streams.values()) >= ROUNDS * CHUNK
    owners = {sid: owner(sid, range(ENGINES)) for sid in streams}
    assert KILLED in owners.values() and len(set(owners.values())) == ENGINES

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    with Subscriber(publish) as sub, ctx.socket(zmq.PUSH) as push:
        push.connect(ingest)
        feed = Feed(streams, push, Watcher(sub))
        feed.wait(lambda: feed.watch.live_slots() == set(range(ENGINES)), "subscribed, every engine listed")
        first_incarnation = feed.watch.incarnations[KILLED][-1]
        _kill(feed, pids[KILLED], figures)
        feed.barrier()
        _add_engine(feed, figures)
        hung = _hang(feed, pids[HUNG], figures)
        watch = feed.watch
        watch.drain(3.0)  # nothing more is due: anything late would show here

    assert not watch.duplicates, f"(stream, seq_end) published twice: {watch.duplicates[:10]}"
    assert watch.incarnations[KILLED][0] == first_incarnation != watch.incarnations[KILLED][-1]
    assert hung["reason"] in ("timeout", "unreachable"), hung
    assert hung["silent_ms"] <= 2000.0, f"engine {HUNG} was dropped after {hung['silent_ms']} ms of silence"
    figures["hung_silent_ms"] = hung["silent_ms"]
    _check_ray(ray_control.status(ClusterConfig()), pids)
    moved = _check_moves(watch, list(streams))
    _check_windows(watch, feed.expected(), {sid for sid in streams if owners[sid] == KILLED} | moved, figures)


def _kill(feed: Feed, pid: int, figures: dict[str, float]) -> None:
    """SIGKILL the engine actor's process mid-stream; the streams flow (pausing after PAUSE_AFTER rounds)
    until Ray has restarted it, it has rejoined, and AFTER_REJOIN rounds more."""
    watch = feed.watch
    killed_at = rejoined_at = None
    rounds = after = 0
    while after < AFTER_REJOIN:
        if rounds < PAUSE_AFTER or rejoined_at is not None:  # a slow restart: the streams pause meanwhile
            feed.round()
            rounds += 1
        watch.drain(ROUND_S)
        if rounds == 10 and killed_at is None:
            os.kill(pid, signal.SIGKILL)  # the engine actor's process: the engine itself
            killed_at = time.monotonic()
        if killed_at and rejoined_at is None and len(watch.incarnations[KILLED]) > 1 \
                and KILLED in watch.live_slots():
            rejoined_at = time.monotonic()
            figures["kill_to_rejoin_s"] = rejoined_at - killed_at
        after += rejoined_at is not None
        assert time.monotonic() < feed.deadline, "the killed engine did not rejoin"


def _add_engine(feed: Feed, figures: dict[str, float]) -> None:
    """``scale`` to ENGINES + 1 (the streams pause: every move then shows at the next chunk)."""
    from harstream.cluster import ray_control

    started = time.monotonic()
    described = ray_control.scale(ENGINES + 1, ClusterConfig(), say=lambda _: None)
    figures["scale_up_s"] = time.monotonic() - started
    assert sorted(e["slot"] for e in described["engines"] if e["state"] == "serving") == list(range(ENGINES + 1))
    feed.wait(lambda: feed.watch.live_slots() == set(range(ENGINES + 1)), "the added engine listed")
    feed.rounds(AFTER_CHANGE)
    feed.barrier()


def _hang(feed: Feed, pid: int, figures: dict[str, float]) -> dict[str, Any]:
    """SIGSTOP the engine actor's process until the router drops it; streams flow; SIGCONT: it rejoins.
    The router's event dropping it."""
    watch = feed.watch
    incarnation = watch.incarnations[HUNG][-1]
    os.kill(pid, signal.SIGSTOP)
    try:
        feed.wait(lambda: watch.lost(HUNG, incarnation) is not None, f"the router drops the stopped engine {HUNG}")
        feed.rounds(AFTER_CHANGE)
        feed.barrier()
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    feed.wait(lambda: watch.incarnations[HUNG][-1] != incarnation and HUNG in watch.live_slots(),
              f"the resumed engine {HUNG} rejoins")
    figures["sigcont_to_rejoin_s"] = time.monotonic() - resumed
    feed.rounds(AFTER_CHANGE)
    feed.barrier()
    hung = watch.lost(HUNG, incarnation)
    assert hung is not None
    return hung


def _check_ray(status: dict[str, Any], pids: dict[int, int]) -> None:
    """Ray restarted the killed engine (once) and nothing else; the hung one is the same process."""
    restarts = {a["name"]: a["restarts"] for a in status["actors"]} if isinstance(status["actors"], list) else {}
    assert restarts.get(f"harstream-engine-{KILLED}") == 1, status["actors"]
    assert restarts.get(f"harstream-engine-{HUNG}") == 0 == restarts.get(f"harstream-engine-{ADDED}"), restarts
    engines = {e["slot"]: e for e in status["engines"]}
    assert all(e["state"] == "serving" for e in engines.values()) and sorted(engines) == list(range(ENGINES + 1))
    assert engines[KILLED]["pid"] != pids[KILLED] and engines[KILLED]["restarted"]
    assert engines[HUNG]["pid"] == pids[HUNG] and not engines[HUNG]["restarted"]


PHASES = (  # (the cause a moved report names, live slots before, after): the changes after the kill
    (rf"engine {ADDED}\.\w+ joined", [0, 1, 2], [0, 1, 2, 3]),
    (rf"engine {HUNG}\.\w+ lost: (timeout|unreachable)", [0, 1, 2, 3], [0, 1, 3]),
    (rf"engine {HUNG}\.\w+ joined", [0, 1, 3], [0, 1, 2, 3]),
)


def _check_moves(watch: Watcher, ids: list[str]) -> set[str]:
    """Each change after the kill moved exactly the streams rendezvous hashing predicts; those streams."""
    moved: set[str] = set()
    for cause, before, after in PHASES:
        expected = predicted_moves(ids, before, after)
        reported = [e.stream or "" for e in watch.errors if e.code == "moved" and re.search(cause, e.detail)]
        assert expected, f"{cause}: no stream moves, the phase tests nothing"
        assert sorted(reported) == sorted(expected), (cause, sorted(reported), sorted(expected))
        moved |= expected
    return moved


def _check_windows(watch: Watcher, expected: dict[str, set[int]], moved: set[str],
                   figures: dict[str, float]) -> None:
    """Streams never moved: every window, no $error; moved ones: losses within what their moves cost."""
    reported = defaultdict(list)
    for error in watch.errors:
        reported[error.stream].append(error.code)
    assert set(expected) - moved, "every stream moved: nothing shows the others untouched"
    for sid in set(expected) - moved:  # rendezvous hashing: the other engines' streams never move
        assert expected[sid] <= watch.windows[sid] and not reported[sid], (sid, reported[sid])
    lost = {sid: len(expected[sid] - watch.windows[sid]) for sid in moved}
    for sid, missing in lost.items():  # each loss is reported; a move costs a re-warm and what was in flight
        moves = reported[sid].count("moved")
        assert moves >= 1 and set(reported[sid]) <= {"moved", "no_engine"}, (sid, reported[sid])
        assert missing <= moves * 4, (sid, missing, reported[sid])
    figures["windows_lost"] = sum(lost.values())
    figures["windows_expected"] = sum(len(v) for v in expected.values())


def _run(*argv: str, timeout_s: float = CAP_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harstream", "cluster", *argv], capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def _harstream(*argv: str, timeout_s: float = CAP_S) -> str:
    done = _run(*argv, timeout_s=timeout_s)
    assert done.returncode == 0, f"harstream cluster {' '.join(argv)}: exit {done.returncode}\n{done.stderr}"
    return done.stdout


@loopback_only
def test_without_a_cluster_the_actions_say_so() -> None:
    done = _run("status", timeout_s=120)
    assert done.returncode == 2 and "cannot connect to a Ray cluster on this machine" in done.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["--", "--slot", "2"], "engine option --slot: set by the cluster"),
    (["--", "--join=tcp://127.0.0.1:1"], "engine option --join: set by the cluster"),
    (["--engine-key", "e.key_secret"], "--engine-key needs --server-key as well"),
])
def test_up_refuses_options_before_starting_anything(argv: list[str], message: str) -> None:
    done = _run("up", "--address", "127.0.0.1:1", *argv, timeout_s=120)
    assert done.returncode == 2 and message in " ".join(done.stderr.split()), done.stderr


def test_up_help_names_the_routers_key_and_the_options_keys_need(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from harstream.cli import cluster

    parser = argparse.ArgumentParser(prog="harstream cluster")
    cluster.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["up", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--server-key FILE the router's secret key file" in text
    assert "off unless these three options and --engine-key are all given" in text


@pytest.mark.slow
@loopback_only
def test_the_verb_starts_a_head_scales_and_stops_everything(tmp_path: Path) -> None:
    """``cluster up`` (with keys) starts a Ray head that outlives it; ``down`` stops it again."""
    from harstream.serve.security import make_key_pair

    clients = tmp_path / "clients"
    make_key_pair(clients, "phone")
    _, router_secret = make_key_pair(tmp_path, "router")
    _, engine_secret = make_key_pair(tmp_path, "engine")
    keys = ["--server-key", str(router_secret), "--allow-producers", str(clients), "--allow-subscribers",
            str(clients), "--engine-key", str(engine_secret)]
    ports = [str(free_port()) for _ in range(2)]
    started = time.monotonic()
    try:
        out = _harstream("up", "--engines", "1", "--engine-cpus", "0.5", "--ingest", free_endpoint(),
                         "--publish", free_endpoint(), "--engines-port", ports[0], "--results-port", ports[1],
                         *keys, "--", "--runtime", "onnx", "--no-model-process")
        up_s = time.monotonic() - started
        assert "engine slot 0: serving" in out
        state = json.loads(_harstream("status", "--json"))
        assert [e["slot"] for e in state["engines"]] == [0] and state["started_head"]
        assert [row["slot"] for row in state["stats"]["engines"]] == [0]
        assert "engine slot 1: serving" in _harstream("scale", "2")
        out = _harstream("scale", "1")
        assert "slot 1" not in out
        state = json.loads(_harstream("status", "--json"))
        assert {a["name"] for a in state["actors"]} == {"harstream-controller", "harstream-router",
                                                         "harstream-engine-0"}
    finally:
        down = subprocess.run([sys.executable, "-m", "harstream", "cluster", "down"], capture_output=True,
                              text=True, timeout=CAP_S, check=False)
    assert down.returncode == 0, down.stderr
    assert "local Ray head stopped" in down.stderr
    left = subprocess.run(["pgrep", "-f", "gcs_server|raylet"], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"Ray processes left: {left.stdout}"
    print("figures:", {"cli_up_s": round(up_s, 2)})
