"""``harstream record``: the labels' timeline and files, and end to end in front of a live engine."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from harstream.data.device import Device
from harstream.data.hapt import read_dataset as read_hapt
from harstream.data.recordings import read_dataset, read_labels, read_samples
from harstream.errors import DatasetError
from harstream.protocol import Chunk, Prediction, StatsEvent, encode_chunk
from harstream.serve.client import Subscriber
from harstream.signal.windows import window_ends
from harstream.tools import record_relay
from harstream.tools.record import Recorder, describe, record


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_keys_switch_spans_in_each_streams_own_t(tmp_path: Path) -> None:
    clock = Clock(5000.0)
    recorder = Recorder(tmp_path, clock=clock)
    x = np.tile(np.float32([0, 0, 1, 0, 0, 0]), (50, 1))
    for second in range(10):  # a 50 Hz untimed stream with t0, and a timed one with its own clock
        clock.now = 5000.0 + second + 1.0
        if second == 2:
            recorder.switch("WALKING")
        if second == 6:
            recorder.switch("JOGGING")
        recorder.take(encode_chunk("phone:1", 50 * second, x, t0=5000.0 + second))
        recorder.take(encode_chunk("watch", 50 * second, x, times=7.0 + second + np.arange(50) / 50.0))
    summary = recorder.close()  # unlabelled from the end on
    spans = {(s.recording, s.activity): (round(s.start_s, 2), round(s.end_s, 2)) for s in read_labels(tmp_path)}
    # wall W -> t = W + (t_last - w_last): each chunk's last sample (t0 + 0.98 s) arrives at t0 + 1 s
    assert spans == {("phone_1", "WALKING"): (5002.98, 5006.98), ("phone_1", "JOGGING"): (5006.98, 5009.98),
                     ("watch", "WALKING"): (9.98, 13.98), ("watch", "JOGGING"): (13.98, 16.98)}
    assert [r["samples"] for r in summary["recordings"]] == [500, 500]
    t, samples = read_samples(tmp_path / "watch.csv")
    np.testing.assert_allclose(t, 7.0 + np.arange(500) / 50.0, atol=1e-6)
    np.testing.assert_array_equal(samples, np.tile([0, 0, 1, 0, 0, 0], (500, 1)))


def test_a_restarted_stream_continues_in_a_new_file_and_old_sessions_stay(tmp_path: Path) -> None:
    x = np.zeros((100, 6), np.float32)
    first = Recorder(tmp_path, label="SITTING")
    first.take(encode_chunk("p", 0, x))
    first.take(encode_chunk("p", 100, x))
    first.take(encode_chunk("p", 0, x, restart=True))  # t goes back to 0
    assert first.take([b"p", b"not json", b""]) is None
    assert first.close()["rejected"] == 1
    second = Recorder(tmp_path, label="STANDING")
    second.take(encode_chunk("p", 0, x))
    second.close()
    spans = [(s.recording, s.activity) for s in read_labels(tmp_path)]
    assert spans == [("p", "SITTING"), ("p-2", "SITTING"), ("p-3", "STANDING")]
    assert {r.stream_id: len(r) for r in read_dataset(tmp_path).recordings} == {"p": 200, "p-2": 100, "p-3": 100}


def test_a_bad_label_or_folder_is_refused_before_recording(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="got 'walking' \\(did you mean 'WALKING'\\?\\)"):
        Recorder(tmp_path, label="walking")
    (tmp_path / "labels.csv").write_text("recording,start_s,end_s,activity\ngone,0,1,WALKING\n")
    with pytest.raises(DatasetError, match=r"labels\.csv:2: expected the name of a recording"):
        Recorder(tmp_path)


X = np.tile(np.array([0, 0, 1, 0, 0, 0], np.float32), (100, 1))


def test_a_stream_never_lands_on_labels_csv_nor_a_reserved_name(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, label="WALKING")
    for stream in ("labels", "LABELS", "con", "Nul"):
        recorder.take(encode_chunk(stream, 0, X))
    summary = recorder.close()
    names = ["labels-2", "LABELS-2", "con-2", "Nul-2"]
    assert [r["name"] for r in summary["recordings"]] == names
    spans = sorted((s.recording, s.activity) for s in read_labels(tmp_path))
    assert spans == sorted((name, "WALKING") for name in names)
    assert {r.stream_id: len(r) for r in read_dataset(tmp_path).recordings} == dict.fromkeys(names, 100)


def test_long_ids_and_their_restarts_get_names_the_reader_takes(tmp_path: Path) -> None:
    long, other = "a" * 64, "a" * 61 + "bcd"  # the same first 60 characters
    recorder = Recorder(tmp_path)
    recorder.take(encode_chunk(long, 0, X))
    recorder.take(encode_chunk(long, 0, X, restart=True))
    recorder.take(encode_chunk(other, 0, X))
    summary = recorder.close()
    assert [r["name"] for r in summary["recordings"]] == ["a" * 60, "a" * 58 + "-2", "a" * 58 + "-3"]
    assert len(read_dataset(tmp_path).recordings) == 3  # every name is one the reader takes
    again = Recorder(tmp_path)  # and the next session opens the folder
    again.take(encode_chunk(long, 0, X))
    assert [r["name"] for r in again.close()["recordings"]] == ["a" * 58 + "-4"]


def test_replays_are_not_fanned_out_into_files(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, label="SITTING")
    one, two = np.zeros((1, 6), np.float32), np.zeros((2, 6), np.float32)
    for _ in range(300):
        recorder.take(encode_chunk("p", 0, one))  # a replay: same seq, no restart
        recorder.take(encode_chunk("q", 0, one, restart=True))  # restarts, each of one sample
        recorder.take(encode_chunk("r", 0, two))
    recorder.switch("STANDING")  # labels.csv mid-session names only files that exist
    assert {s.recording for s in read_labels(tmp_path)} == {"r"}
    summary = recorder.close()
    assert summary["replayed"] == 299 + 299 and summary["too_short"] == 1 + 300
    assert [(r["name"], r["samples"]) for r in summary["recordings"]] == [("r", 2)]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["labels.csv", "r.csv"]
    assert [r.stream_id for r in read_dataset(tmp_path).recordings] == ["r"]
    assert "299 chunk(s) replayed" not in describe({**summary, "forwarded": 0})  # 598 of them
    assert "598 chunk(s) replayed" in describe({**summary, "forwarded": 0})


def test_a_change_of_rate_or_timing_whose_t_goes_back_is_a_new_file_not_a_replay(tmp_path: Path) -> None:
    """The engine restarts a stream whose rate or timing changes (seq_gap) and classifies it: so the
    recorder records it, in a new file when its ``t`` goes back, never drops it as a replay."""
    recorder = Recorder(tmp_path, label="WALKING")
    x = np.zeros((500, 6), np.float32)
    recorder.take(encode_chunk("p", 0, x))  # 50 Hz: t 0 to 9.98
    recorder.take(encode_chunk("p", 500, x, rate=100))  # 100 Hz from seq 500: t 5 to 9.99
    recorder.take(encode_chunk("w", 0, x, times=1000.0 + np.arange(500) / 50.0))  # timed, t 1000 on
    recorder.take(encode_chunk("w", 500, x))  # then untimed: t 10 to 19.98
    summary = recorder.close()
    assert summary["replayed"] == 0
    assert [(r["name"], r["samples"]) for r in summary["recordings"]] == [
        ("p", 500), ("w", 500), ("p-2", 500), ("w-2", 500)]
    assert {r.stream_id: len(r) for r in read_dataset(tmp_path).recordings} == {
        "p": 500, "p-2": 250, "w": 500, "w-2": 500}  # on the 50 Hz grid


def test_a_file_the_reader_would_refuse_is_set_aside_and_reported(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, label="WALKING")
    for k in range(5):  # timestamps 10 s apart: 0.1 Hz, a rate the reader refuses
        recorder.take(encode_chunk("slow", k, np.zeros((1, 6), np.float32), rate=20, times=[10.0 * k]))
    fine = 1000.0 + np.arange(50) / 50.0
    fine[1] = fine[0] + 4e-7  # within a microsecond of the sample before: written the same, so left out
    recorder.take(encode_chunk("fine", 0, np.zeros((50, 6), np.float32), rate=50, times=fine))
    summary = recorder.close()
    assert [r["name"] for r in summary["recordings"]] == ["fine"] and summary["same_microsecond"] == 1
    assert [(Path(r["file"]).name, r["samples"]) for r in summary["refused"]] == [("slow.csv.refused", 5)]
    assert "expected a sample rate of 20-500 Hz" in summary["refused"][0]["reason"]
    assert "slow.csv.refused: set aside, the reader refuses it" in describe({**summary, "forwarded": 0})
    assert [(s.recording, s.activity) for s in read_labels(tmp_path)] == [("fine", "WALKING")]
    assert len(read_dataset(tmp_path).recordings) == 1


STEPS = st.one_of(st.floats(1e-7, 2e-3), st.floats(2e-3, 0.05), st.floats(0.05, 100.0))
TIMED = st.builds(lambda base, steps, restart: ("timed", base, steps, restart),
                  st.floats(-10.0, 1e4), st.lists(STEPS, min_size=1, max_size=8), st.booleans())
UNTIMED = st.builds(lambda seq, n, rate, t0, restart: ("untimed", seq, n, rate, t0, restart),
                    st.integers(0, 400), st.integers(1, 8), st.sampled_from([20, 50, 100, 500]),
                    st.one_of(st.none(), st.floats(0.0, 2e9)), st.booleans())


@settings(max_examples=80, deadline=None)
@given(chunks=st.lists(st.tuples(st.sampled_from(["a", "b", "labels"]), st.one_of(TIMED, UNTIMED)), max_size=30))
def test_whatever_producers_send_the_folder_reads(chunks: list[tuple[str, tuple[Any, ...]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recorder = Recorder(folder, label="WALKING")
        for stream, spec in chunks:
            if spec[0] == "timed":
                _, base, steps, restart = spec
                times = base + np.cumsum(steps)
                recorder.take(encode_chunk(stream, 0, np.zeros((len(times), 6), np.float32), rate=100,
                                           times=times, restart=restart))
            else:
                _, seq, n, rate, t0, restart = spec
                recorder.take(encode_chunk(stream, seq, np.zeros((n, 6), np.float32), rate=rate, t0=t0,
                                           restart=restart))
        summary = recorder.close()
        data = read_dataset(folder)  # never a file or a span the reader refuses
        kept = {r["name"]: r["samples"] for r in summary["recordings"]}
        assert {name: len(read_samples(folder / f"{name}.csv")[0]) for name in kept} == kept
        assert {r.stream_id.split(":")[0] for r in data.recordings} <= set(kept)


def test_open_files_stay_bounded_and_every_sample_lands(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, max_open=4)
    for k in range(3):
        for i in range(20):
            recorder.take(encode_chunk(f"s{i}", 100 * k, X))
            assert len(recorder.open_files) <= 4
    summary = recorder.close()
    assert [r["samples"] for r in summary["recordings"]] == [300] * 20 and summary["unwritten"] == 0
    assert {len(r) for r in read_dataset(tmp_path).recordings} == {300}


LOW_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
from pathlib import Path
import numpy as np
from harstream.protocol import encode_chunk
from harstream.tools.record import Recorder
x = np.zeros((10, 6), np.float32)
recorder = Recorder(Path(sys.argv[1]))  # the default max_open follows the limit
for k in range(2):
    for i in range(300):
        recorder.take(encode_chunk(f"s{i}", 10 * k, x))
recorder.open_files.close_all()
hogs = []
try:  # something else takes every descriptor: chunks are counted as unwritten, nothing dies
    while True:
        hogs.append(open("/dev/null"))
except OSError:
    pass
taken = [recorder.take(encode_chunk(f"new{i}", 0, x)) is None for i in range(3)]
for h in hogs:
    h.close()
recorder.take(encode_chunk("new0", 10, x))
summary = recorder.close()
print(len(summary["recordings"]), summary["unwritten"], all(taken), "open files" in summary["write_error"].lower())
"""


def test_recording_under_a_low_open_files_limit_never_dies(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", LOW_LIMIT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["301", "3", "True", "True"]
    assert len(read_dataset(tmp_path).recordings) == 301


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.01)


@pytest.fixture
def recording(tmp_path: Path, free_endpoint: Callable[[], str],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, Any]]]:
    """Runs :func:`record` on a thread: ``start(engine)`` returns its listen endpoint and the stop event's
    ``finish()``; the summary is what ``finish`` returns."""
    monkeypatch.setattr(record_relay, "QUIET_S", 2.0)  # a busy test machine must not end a drain early
    monkeypatch.setattr(record_relay, "ENGINE_WAIT_S", 0.2)
    threads: list[threading.Thread] = []

    def start(engine: str | None) -> dict[str, Any]:
        state: dict[str, Any] = {"stop": threading.Event(), "ready": threading.Event()}

        def ready(endpoint: str) -> None:
            state["listen"] = endpoint
            state["ready"].set()

        def run() -> None:
            state["summary"] = record(tmp_path / "out", listen=free_endpoint(), engine=engine, stop=state["stop"],
                                      progress=False, on_ready=ready)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        assert state["ready"].wait(60), "record never became ready"

        def finish() -> dict[str, Any]:
            state["stop"].set()
            thread.join(60)
            assert not thread.is_alive()
            summary: dict[str, Any] = state["summary"]
            return summary

        state["finish"] = finish
        return state

    yield start
    for thread in threads:
        thread.join(60)


def test_forwarding_counts_only_what_a_connected_engine_took(
    free_endpoint: Callable[[], str], recording: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[Chunk | None] = []
    take = Recorder.take
    monkeypatch.setattr(Recorder, "take", lambda self, frames: taken.append(take(self, frames)))
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    nobody = free_endpoint()  # nothing listens there
    session = recording(nobody)
    with ctx.socket(zmq.PUSH) as push:
        push.connect(session["listen"])
        for k in range(100):
            push.send_multipart(encode_chunk("p", 2 * k, X[:2]))
        _until(lambda: len(taken) == 100, "100 chunks recorded")
    summary = session["finish"]()
    assert (summary["messages"], summary["forwarded"], summary["not_forwarded"]) == (100, 0, 100)
    assert summary["engine_connected"] is False
    assert f"no engine ever connected at {nobody}: nothing was forwarded" in describe(summary)

    engine = free_endpoint()
    monkeypatch.setattr(record_relay, "ENGINE_WAIT_S", 60.0)  # ends once connected: a loaded machine may be slow
    with ctx.socket(zmq.PULL) as sink, ctx.socket(zmq.PUSH) as push:
        sink.bind(engine)
        session = recording(engine)
        push.connect(session["listen"])
        for k in range(100):
            push.send_multipart(encode_chunk("q", 2 * k, X[:2]))
        received = [sink.recv_multipart() for _ in range(100)]
        summary = session["finish"]()
    assert (summary["forwarded"], summary["not_forwarded"], summary["engine_connected"]) == (100, 0, True)
    assert received[-1] == encode_chunk("q", 198, X[:2])


@pytest.mark.parametrize("drain_s", [60.0, 0.0])  # a drain ends after QUIET_S without arrivals, 60 s is a cap
def test_a_stop_drains_the_socket_or_counts_what_is_left(
    drain_s: float, tmp_path: Path, recording: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_relay, "DRAIN_S", drain_s)
    monkeypatch.setattr(record_relay, "COUNT_S", 30.0)  # ends when nothing arrives for QUIET_S
    entered, gate = threading.Event(), threading.Event()
    take = Recorder.take

    def slow_take(self: Recorder, frames: Any, wall: float | None = None) -> Any:
        entered.set()
        gate.wait(60)  # the recorder is slower than the producer: messages wait in its socket
        return take(self, frames, wall)

    monkeypatch.setattr(Recorder, "take", slow_take)
    session = recording(None)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100_000)
    push.connect(session["listen"])
    for k in range(3000):
        push.send_multipart(encode_chunk("p", 2 * k, X[:2]))
    assert entered.wait(60)
    session["stop"].set()  # SIGTERM while 3,000 messages wait
    gate.set()
    push.close(linger=-1)
    ctx.term()  # every message has left the producer
    summary = session["finish"]()
    if drain_s:
        assert summary["messages"] == 3000 and summary.get("left") == 0
        assert summary["recordings"][0]["samples"] == 6000
    else:
        assert summary["messages"] < 3000 and summary["messages"] + summary.get("left", 0) == 3000
        assert "message(s) still arriving after the stop were neither recorded nor forwarded" in describe(summary)


def _wait_for(proc: subprocess.Popen[str], text: str, timeout_s: float = 120.0) -> str:
    """Lines of ``proc``'s stderr up to one containing ``text``."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} not seen; stderr so far: {''.join(seen)}")


@pytest.mark.slow
def test_record_end_to_end_in_front_of_a_live_engine(
    hapt_dir: Path, tmp_path: Path, free_endpoint: Callable[[], str]
) -> None:
    ingest, publish, listen = free_endpoint(), free_endpoint(), free_endpoint()
    out = tmp_path / "mine"
    engine = subprocess.Popen(
        [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    recorder = subprocess.Popen(
        [sys.executable, "-m", "harstream", "record", "--out", str(out), "--listen", listen, "--engine",
         ingest, "--label", "WALKING", "--no-progress", "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for(engine, "ready")
        _wait_for(recorder, "listening on")
        rec = read_hapt(hapt_dir, {1}).recordings[0]
        plain = rec.samples[:1600]
        phone, times = Device(100.0, jitter_ms=4.0, seed=2).render(plain)
        assert times is not None
        t0 = 1_764_000_000.0
        expected = {("plain", int(e)) for e in window_ends(0, len(plain))}
        received: dict[tuple[str, int], Prediction] = {}
        ctx = zmq.Context.instance()
        with Subscriber(publish) as sub, ctx.socket(zmq.PUSH) as push:
            push.connect(listen)
            while not isinstance(sub.receive(timeout_s=2.0), StatsEvent):
                pass
            for k in range(0, len(plain), 25):  # the producer talks to the recorder as it would to the engine
                push.send_multipart(encode_chunk("plain", k, plain[k:k + 25], t0=t0 + k / 50.0))
            for k in range(0, len(phone), 50):
                push.send_multipart(encode_chunk("phone", k, phone[k:k + 50], rate=100, times=times[k:k + 50]))
            deadline = time.monotonic() + 300  # $stats never falls silent: a missing window must fail
            for event in sub.events(timeout_s=15.0):
                assert time.monotonic() < deadline, f"{len(expected - set(received))} windows never came"
                if isinstance(event, Prediction):
                    received[(event.stream, event.seq_end)] = event
                    phone_windows = sum(s == "phone" for s, _ in received)
                    if set(received) >= expected and phone_windows >= len(expected) - 1:
                        break
        assert {k for k in received if k[0] == "plain"} == expected  # every window reached the engine
        assert sum(s == "phone" for s, _ in received) >= len(expected) - 1  # resampled from 100 Hz
        time.sleep(1.0)
        recorder.send_signal(signal.SIGINT)
        stdout, stderr = recorder.communicate(timeout=30)
        assert recorder.returncode == 0, stderr
    finally:
        for proc in (recorder, engine):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    summary = json.loads(stdout)
    messages = len(range(0, len(plain), 25)) + len(range(0, len(phone), 50))
    assert summary["forwarded"] == summary["messages"] == messages and summary["not_forwarded"] == 0
    assert [(r["name"], r["samples"]) for r in summary["recordings"]] == [("plain", 1600), ("phone", len(phone))]
    t, samples = read_samples(out / "plain.csv")
    np.testing.assert_allclose(t, t0 + np.arange(1600) / 50.0, rtol=0, atol=2e-6)  # t0 - seq/rate based
    np.testing.assert_array_equal(samples.astype(np.float32), plain)  # float32 written exactly
    t, samples = read_samples(out / "phone.csv")
    np.testing.assert_allclose(t, times, rtol=0, atol=1e-6)  # the timestamps frame
    spans = read_labels(out)
    assert [(s.recording, s.activity) for s in spans] == [("plain", "WALKING"), ("phone", "WALKING")]
    assert spans[0].start_s == pytest.approx(t0) and spans[0].end_s == pytest.approx(t0 + 1599.5 / 50.0)
    data = read_dataset(out)
    back = {r.stream_id: r for r in data.recordings}
    assert abs(len(back["plain"]) - 1600) <= 1 and abs(len(back["phone"]) - 1600) <= 1
    np.testing.assert_allclose(back["plain"].samples, plain[: len(back["plain"])], atol=1e-4)
    assert all(data.activity_names[s.activity] == "WALKING" for s in data.segments)
