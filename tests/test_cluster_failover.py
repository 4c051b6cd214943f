"""Issue 22 without Ray: a router and real engines (`serve --join`), 60 HAPT streams, engines killed,
added, hung and resumed while the streams flow.

One run, in phases separated by barriers (every stream's latest window published):

1. chunks 0-15 to 3 engines (slots 0-2);
2. chunks 16-19, then SIGKILL of engine 1 at once (some chunks are in flight to it);
   the router reports it lost; chunks 20-27;
3. a 4th engine (slot 3) joins; chunks 28-35;
4. SIGSTOP of engine 2: the router drops it by heartbeat; chunks 36-43;
5. SIGCONT: engine 2 rejoins (a new incarnation); chunks 44-47.

Then: no (stream, seq_end) published twice; every move is the one rendezvous hashing predicts
and is reported once (``$error`` ``moved``, with the seq the stream restarts at); every window
not published is explained by a reported move (the re-warm after it, and the chunks that were
in flight to the killed engine); every window that is published equals the offline model's on
the same samples (from the stream's start, or from its move); the hung engine is dropped by the
router's heartbeat, by the router's own account. Runs in a loopback-only network namespace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from netns import loopback_only

from harstream import HOP, WINDOW
from harstream.cluster.rendezvous import moved as predicted_moves
from harstream.cluster.rendezvous import owner
from harstream.data.hapt import read_dataset
from harstream.data.labelled_windows import recording_windows
from harstream.data.types import Recording
from harstream.protocol import ErrorEvent, Prediction, StatsEvent, encode_chunk
from harstream.serve.client import Subscriber

pytestmark = pytest.mark.slow

STREAMS = 60
CHUNK = 64
"""Samples per chunk (a multiple of HOP: a move's seq sits on the grid's hop)."""
CAP_S = 600.0
"""Longest any phase may take (a cap, not a wait: engines start in seconds to a minute)."""
ENGINE_ARGS = ("--runtime", "onnx", "--no-model-process")
"""The lightest engine: one process, ONNX Runtime (verified against Keras at load)."""


class Events:
    """Everything the router publishes, collected on a thread of its own."""

    def __init__(self, publish: str) -> None:
        self.publish = publish
        self.predictions: list[Prediction] = []
        self.errors: list[ErrorEvent] = []
        self.stats: list[dict[str, Any]] = []
        self.latest: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with Subscriber(self.publish) as sub:
            while not self.stop.is_set():
                event = sub.receive(timeout_s=0.2)
                if isinstance(event, Prediction):
                    self.predictions.append(event)
                    self.latest[event.stream] = max(self.latest.get(event.stream, -1), event.seq_end)
                elif isinstance(event, ErrorEvent):
                    self.errors.append(event)
                elif isinstance(event, StatsEvent):
                    self.stats.append(event.fields)

    def router_events(self) -> list[dict[str, Any]]:
        return list(self.stats[-1]["router"]["events"]) if self.stats else []

    def rows(self) -> dict[int, dict[str, Any]]:
        return {row["slot"]: row for row in self.stats[-1]["engines"]} if self.stats else {}


class Cluster:
    """The router and engine processes; every one stopped (and waited for) at the end."""

    def __init__(self, free_endpoint: Callable[[], str]) -> None:
        self.ingest, self.publish = free_endpoint(), free_endpoint()
        self.engines_endpoint, self.results = free_endpoint(), free_endpoint()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.start("router", "router", "--ingest", self.ingest, "--publish", self.publish,
                   "--engines", self.engines_endpoint, "--results", self.results)
        self.events = Events(self.publish)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.push = ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(self.ingest)

    def start(self, name: str, *argv: str) -> None:
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "harstream", *argv],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start_engine(self, slot: int) -> None:
        self.start(f"engine{slot}", "serve", "--join", self.engines_endpoint, "--slot", str(slot), *ENGINE_ARGS)

    def engine(self, slot: int) -> subprocess.Popen[bytes]:
        return self.processes[f"engine{slot}"]

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + CAP_S
        while not condition():
            assert time.monotonic() < deadline, f"{what}: not within the {CAP_S:g} s cap"
            for name, proc in self.processes.items():
                if proc.poll() is not None and not name.startswith("killed"):
                    pytest.fail(f"{name} exited ({proc.returncode}):\n{self.stderr(proc)}")
            time.sleep(0.05)

    def wait_live(self, slots: set[int], what: str) -> dict[int, dict[str, Any]]:
        """Until the router's rows are exactly ``slots``, each with its engine's own $stats; the rows."""
        self.wait(lambda: set(self.events.rows()) == slots
                  and all(row.get("engine") for row in self.events.rows().values()), what)
        return self.events.rows()

    def kill(self, slot: int) -> None:
        proc = self.processes.pop(f"engine{slot}")
        proc.kill()
        proc.wait(timeout=60)
        self.processes[f"killed{slot}"] = proc

    @staticmethod
    def stderr(proc: subprocess.Popen[bytes]) -> str:
        if proc.stderr is None:
            return ""
        with contextlib.suppress(Exception):
            return proc.stderr.read().decode(errors="replace")[-4000:]
        return ""

    def close(self) -> None:
        self.events.stop.set()
        self.events.thread.join(timeout=10)
        self.push.close(linger=0)
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def cluster(free_endpoint: Callable[[], str]) -> Iterator[Cluster]:
    with contextlib.closing(Cluster(free_endpoint)) as c:
        yield c


def send(cluster: Cluster, recordings: list[Recording], chunks: range) -> None:
    """Chunks ``chunks`` of every stream, interleaved, as fast as the socket takes them."""
    for index in chunks:
        start = index * CHUNK
        for rec in recordings:
            cluster.push.send_multipart(encode_chunk(rec.stream_id, start, rec.samples[start:start + CHUNK]))


def barrier(cluster: Cluster, recordings: list[Recording], chunks: int) -> None:
    """Until every stream's window ending at the last sample of chunk ``chunks - 1`` is published."""
    last = chunks * CHUNK - 1
    cluster.wait(lambda: all(cluster.events.latest.get(r.stream_id, -1) >= last for r in recordings),
                 f"every stream's window ending at {last}")


def lost_event(cluster: Cluster, slot: int) -> dict[str, Any] | None:
    return next((e for e in cluster.events.router_events() if e["kind"] == "lost" and e["slot"] == slot), None)


@loopback_only
def test_engines_killed_added_hung_and_resumed_lose_only_what_is_reported(
        cluster: Cluster, hapt_dir: Path) -> None:
    dataset = read_dataset(hapt_dir)
    total = 48 * CHUNK
    recordings = [dataclasses.replace(r, acc=r.acc[:total], gyro=r.gyro[:total])
                  for r in sorted(dataset.recordings, key=lambda r: r.experiment)[:STREAMS]]
    ids = [r.stream_id for r in recordings]
    assert len(set(ids)) == STREAMS and all(len(r) == total for r in recordings)
    for slot in range(3):
        cluster.start_engine(slot)
    rows = cluster.wait_live({0, 1, 2}, "three engines joined")
    engine_of = {slot: row["engine"] for slot, row in rows.items()}

    send(cluster, recordings, range(0, 16))
    barrier(cluster, recordings, 16)
    send(cluster, recordings, range(16, 20))
    cluster.kill(1)  # with chunks 16-19 on their way to it
    cluster.wait(lambda: lost_event(cluster, 1) is not None, "the router reports engine 1 lost")
    send(cluster, recordings, range(20, 28))
    barrier(cluster, recordings, 28)

    cluster.start_engine(3)
    engine_of[3] = cluster.wait_live({0, 2, 3}, "engine 3 joined")[3]["engine"]
    send(cluster, recordings, range(28, 36))
    barrier(cluster, recordings, 36)

    cluster.engine(2).send_signal(signal.SIGSTOP)
    cluster.wait(lambda: lost_event(cluster, 2) is not None, "the router drops the stopped engine 2")
    hung = lost_event(cluster, 2)
    assert hung is not None
    send(cluster, recordings, range(36, 44))
    barrier(cluster, recordings, 44)
    cluster.engine(2).send_signal(signal.SIGCONT)
    rows = cluster.wait_live({0, 2, 3}, "engine 2 rejoined")
    assert rows[2]["engine"] == engine_of[2] and rows[2]["incarnation"] != hung["incarnation"]
    send(cluster, recordings, range(44, 48))
    barrier(cluster, recordings, 48)

    # the router's own account of the two failures
    killed = lost_event(cluster, 1)
    assert killed is not None and killed["reason"] in ("unreachable", "timeout")
    assert hung["reason"] in ("timeout", "unreachable")
    assert hung["silent_ms"] <= 2000.0, f"engine 2 was dropped after {hung['silent_ms']} ms of silence"

    check_moves(cluster, ids, engine_of)
    check_windows(cluster, recordings, engine_of)


PHASES = (  # (range of the seq a stream restarts at after the change, live slots before, after, cause)
    ((16 * CHUNK, 20 * CHUNK), [0, 1, 2], [0, 2], r"engine 1\.\w+ lost: (unreachable|timeout)"),
    ((28 * CHUNK, 28 * CHUNK), [0, 2], [0, 2, 3], r"engine 3\.\w+ joined"),
    ((36 * CHUNK, 36 * CHUNK), [0, 2, 3], [0, 3], r"engine 2\.\w+ lost: (timeout|unreachable)"),
    ((44 * CHUNK, 44 * CHUNK), [0, 3], [0, 2, 3], r"engine 2\.\w+ joined"),
)
"""Chunks 16-19 were sent just before engine 1 was killed: a stream of it restarts at chunk 20,
or earlier if the router saw the loss while it was still forwarding them."""


def phase_of(seq: int) -> int:
    """Which of :data:`PHASES` a move at ``seq`` belongs to."""
    return next(i for i, ((first, last), *_) in enumerate(PHASES) if first <= seq <= last)


def loss_from(move: int) -> int:
    """The lowest window end a move at ``move`` may cost: in the kill's phase, from the chunks in flight."""
    return PHASES[0][0][0] if phase_of(move) == 0 else move


def moves_of(cluster: Cluster) -> dict[str, list[tuple[int, str]]]:
    """Each stream's reported moves: (seq it restarts at, detail)."""
    moves: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for error in cluster.events.errors:
        assert error.code == "moved", f"unexpected $error {error}"
        match = re.search(r" at seq (\d+):", error.detail)
        assert match is not None and error.stream is not None, error
        moves[error.stream].append((int(match.group(1)), error.detail))
    return moves


def check_moves(cluster: Cluster, ids: list[str], engine_of: dict[int, str]) -> None:
    """Every move is rendezvous hashing's prediction, reported once, with its cause."""
    moves = moves_of(cluster)
    seqs = sorted({s for events in moves.values() for s, _ in events})
    assert all(any(first <= s <= last for (first, last), *_ in PHASES) for s in seqs), f"moves at {seqs}"
    for phase, (_, before, after, cause) in enumerate(PHASES):
        expected = predicted_moves(ids, before, after)
        assert expected, f"no stream moves in phase {phase}: the phase tests nothing"
        reported = [(stream, d) for stream, events in moves.items() for s, d in events if phase_of(s) == phase]
        assert sorted(r for r, _ in reported) == sorted(expected), f"phase {phase}: moved {reported}"
        assert all(re.search(cause, detail) for _, detail in reported), reported
    assert len({stream for stream in ids if stream not in moves}) > 0  # some streams never move


def check_windows(cluster: Cluster, recordings: list[Recording], engine_of: dict[int, str]) -> None:
    """No window twice; each missing one explained by a reported move; each published one as offline."""
    from harstream.model.classifier import Classifier

    seen: dict[tuple[str, int], Prediction] = {}
    for p in cluster.events.predictions:
        assert (p.stream, p.seq_end) not in seen, f"{(p.stream, p.seq_end)} published twice"
        seen[(p.stream, p.seq_end)] = p
    moves = moves_of(cluster)
    classifier = Classifier.load()
    for rec in recordings:
        starts = [0, *sorted(s for s, _ in moves.get(rec.stream_id, []))]
        for index, start in enumerate(starts):  # each stretch the stream spent on one engine
            end = starts[index + 1] if index + 1 < len(starts) else len(rec)
            piece = dataclasses.replace(rec, acc=rec.acc[start:end], gyro=rec.gyro[start:end])
            offline = recording_windows(piece, [], "stream", labelled_only=False)
            ends = [start + int(e) for e in offline.seq_end]
            published = [e for e in ends if (rec.stream_id, e) in seen]
            lost = sorted(set(ends) - set(published))
            next_move = starts[index + 1] if index + 1 < len(starts) else None
            # lost: only at the end of the stretch, from where chunks were in flight to a lost engine
            lowest = loss_from(next_move) if next_move is not None else None
            assert all(lowest is not None and e >= lowest for e in lost), (rec.stream_id, start, lost)
            assert ends[: len(published)] == published, (rec.stream_id, start, lost)  # one run, at the end
            engines = {seen[(rec.stream_id, e)].engine for e in published}
            slot = owner(rec.stream_id, live_at(start))
            assert slot is not None and engines == {engine_of[slot]}, (rec.stream_id, start, engines)
            keep = np.isin(np.array(ends), published)
            live = np.array([seen[(rec.stream_id, e)].probs for e in published])
            np.testing.assert_allclose(live, classifier.predict_proba(offline.x[keep]), atol=1e-4,
                                       err_msg=f"{rec.stream_id} from seq {start}")
        # a move's re-warm: the windows across its seq (at most 2) are never published
        for start in starts[1:]:
            across = range(start + HOP - 1, start + WINDOW - 1, HOP)
            assert len(across) <= 2 and not any((rec.stream_id, e) in seen for e in across)


def live_at(seq: int) -> list[int]:
    """The live slots when the streams' chunk at ``seq`` was routed."""
    live = [0, 1, 2]
    for (first, _), _, after, _ in PHASES:
        if first <= seq:
            live = after
    return live
